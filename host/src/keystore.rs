//! Keys the operator provisions for plugins, and the cryptography done with
//! them on the plugins' behalf.
//!
//! A plugin never holds key material: it names a key its manifest was granted
//! and the node computes the HMAC or seals the data (see
//! `capabilities::keystore`). Keys are per plugin and per name, generated on
//! the node (`outpost keys add`) or imported from a file for fleets that must
//! produce the same tokens on every node.
//!
//! At rest each key is sealed (XChaCha20-Poly1305) under the *node key*, a
//! random 256-bit secret in `<data>/node.key`, mode 0600, created the first
//! time a key is provisioned. The sealing binds the plugin id and key name,
//! so a row copied to another plugin's name does not open. A copy of the
//! database without the node key reveals nothing; the node key without the
//! database is just random bytes. The node refuses a node key file that
//! others may read.

use crate::plugin_id::PluginId;
use crate::store::{NodeStore, StoreError, StoredKey};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::Mac;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The node key's file name inside the data directory.
pub const NODE_KEY_FILE: &str = "node.key";
/// Every key is 256 bits.
pub const KEY_BYTES: usize = 32;
/// The most a plugin may seal at once.
pub const MAX_SEAL_BYTES: usize = 1 << 20;

const NONCE_BYTES: usize = 24;
/// First byte of everything sealed, so the format can change later.
const SEALED_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("cannot read the node key {path}: {source}")]
    NodeKeyRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the node key {path} can be read by other users (mode {mode:o}); run `chmod 600 {}` \
         and restart the node", .path.display()
    )]
    NodeKeyExposed { path: PathBuf, mode: u32 },
    #[error(
        "the node key {path} is not 64 hex digits; restore it from backup (the keys sealed \
         under it cannot be opened without it)"
    )]
    NodeKeyMalformed { path: PathBuf },
    #[error(
        "the node key {path} is missing, but this node's database holds {keys} key(s) sealed \
         under it, which nothing else opens. Restore node.key from this node's backup (`outpost \
         restore` puts back both together); if it is lost for good, remove those keys (`outpost \
         keys list`, `outpost keys remove`) and add new ones"
    )]
    NodeKeyMissing { path: PathBuf, keys: usize },
    #[error("cannot create the node key {path}: {source}")]
    NodeKeyWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot get randomness: {0}")]
    Random(String),
    #[error("no key {name:?} is provisioned for {plugin}; run `outpost keys add {plugin} {name}`")]
    NotProvisioned { plugin: PluginId, name: String },
    #[error(
        "{plugin} already has a key {name:?}; replacing it changes every token made with it. \
         Pass --replace if that is what you want"
    )]
    Exists { plugin: PluginId, name: String },
    #[error(
        "the key {name:?} of {plugin} does not open with this node's node key; was node.key \
         replaced? Restore the original, or remove and re-add the key"
    )]
    WrongNodeKey { plugin: PluginId, name: String },
    #[error("{0:?} is not a key name: {rule}", rule = crate::manifest::KEY_NAME_RULE)]
    BadName(String),
    #[error("the key to import must be exactly {KEY_BYTES} bytes, written as 64 hex digits; {0}")]
    BadImport(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key name: what a manifest grants and an operator provisions.
pub fn check_name(name: &str) -> Result<(), KeystoreError> {
    if crate::manifest::is_key_name(name) {
        Ok(())
    } else {
        Err(KeystoreError::BadName(name.to_string()))
    }
}

type KeyBytes = [u8; KEY_BYTES];

/// The node's keys. Cheap to clone handles come from `Node::keystore`.
pub struct Keystore {
    store: Arc<NodeStore>,
    node_key_path: PathBuf,
    node_key: Mutex<Option<KeyBytes>>,
    /// Opened keys, so an HMAC per card swipe does not unseal every time.
    opened: Mutex<HashMap<(PluginId, String), KeyBytes>>,
}

impl std::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystore")
            .field("node_key_path", &self.node_key_path)
            .finish_non_exhaustive()
    }
}

/// A key as operators see it: never its bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeySummary {
    pub plugin: String,
    pub name: String,
    pub created_at: u64,
    pub origin: String,
}

fn random<const N: usize>() -> Result<[u8; N], KeystoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| KeystoreError::Random(e.to_string()))?;
    Ok(bytes)
}

fn row_binding(plugin: &PluginId, name: &str) -> Vec<u8> {
    format!("outpost-key\0{plugin}\0{name}").into_bytes()
}

/// `version || nonce || ciphertext-and-tag`.
fn seal_with(key: &KeyBytes, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeystoreError> {
    let cipher = XChaCha20Poly1305::new_from_slice(key)
        .map_err(|_| KeystoreError::Random("key length".into()))?;
    let nonce_bytes: [u8; NONCE_BYTES] = random()?;
    let nonce = XNonce::from(nonce_bytes);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| KeystoreError::Random("encryption failed".into()))?;
    let mut sealed = Vec::with_capacity(1 + NONCE_BYTES + ciphertext.len());
    sealed.push(SEALED_VERSION);
    sealed.extend_from_slice(&nonce_bytes);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// `None` when `sealed` is not what `seal_with` made with this key and aad.
fn unseal_with(key: &KeyBytes, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let (&version, rest) = sealed.split_first()?;
    if version != SEALED_VERSION || rest.len() < NONCE_BYTES {
        return None;
    }
    let (nonce_bytes, ciphertext) = rest.split_at(NONCE_BYTES);
    let nonce_bytes: [u8; NONCE_BYTES] = nonce_bytes.try_into().ok()?;
    let cipher = XChaCha20Poly1305::new_from_slice(key).ok()?;
    cipher
        .decrypt(
            &XNonce::from(nonce_bytes),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

impl Keystore {
    pub fn new(store: Arc<NodeStore>, data_dir: &Path) -> Keystore {
        Keystore {
            store,
            node_key_path: data_dir.join(NODE_KEY_FILE),
            node_key: Mutex::new(None),
            opened: Mutex::new(HashMap::new()),
        }
    }

    pub fn node_key_path(&self) -> &Path {
        &self.node_key_path
    }

    /// The node key, read (or with `create`, made) on first use.
    fn node_key(&self, create: bool) -> Result<KeyBytes, KeystoreError> {
        let mut cached = self
            .node_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(key) = *cached {
            return Ok(key);
        }
        let path = &self.node_key_path;
        let key = if path.exists() {
            read_node_key(path)?
        } else {
            // A database with sealed keys and no node key is a restore
            // that left node.key behind: a new node key would open none of
            // them, and would be a second key to lose.
            let keys = self.store.keys(None)?.len();
            if keys > 0 {
                return Err(KeystoreError::NodeKeyMissing {
                    path: path.clone(),
                    keys,
                });
            }
            if !create {
                return Err(KeystoreError::NodeKeyRead {
                    path: path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no keys have been provisioned on this node",
                    ),
                });
            }
            write_node_key(path)?
        };
        *cached = Some(key);
        Ok(key)
    }

    /// Generates a fresh random key for `plugin`, or stores `import`.
    pub fn provision(
        &self,
        plugin: &PluginId,
        name: &str,
        import: Option<KeyBytes>,
        replace: bool,
    ) -> Result<KeySummary, KeystoreError> {
        check_name(name)?;
        let node_key = self.node_key(true)?;
        let (material, origin) = match import {
            Some(bytes) => (bytes, "imported"),
            None => (random::<KEY_BYTES>()?, "generated"),
        };
        let sealed = seal_with(&node_key, &material, &row_binding(plugin, name))?;
        let stored = StoredKey {
            sealed: hex::encode(sealed),
            created_at: crate::clock::now_seconds(),
            origin: origin.to_string(),
        };
        if !self.store.put_key(plugin, name, &stored, replace)? {
            return Err(KeystoreError::Exists {
                plugin: plugin.clone(),
                name: name.to_string(),
            });
        }
        self.forget(plugin, name);
        Ok(KeySummary {
            plugin: plugin.to_string(),
            name: name.to_string(),
            created_at: stored.created_at,
            origin: stored.origin,
        })
    }

    pub fn remove(&self, plugin: &PluginId, name: &str) -> Result<bool, KeystoreError> {
        let removed = self.store.remove_key(plugin, name)?;
        self.forget(plugin, name);
        Ok(removed)
    }

    pub fn list(&self, plugin: Option<&PluginId>) -> Result<Vec<KeySummary>, KeystoreError> {
        Ok(self
            .store
            .keys(plugin)?
            .into_iter()
            .map(|(plugin, name, key)| KeySummary {
                plugin,
                name,
                created_at: key.created_at,
                origin: key.origin,
            })
            .collect())
    }

    fn forget(&self, plugin: &PluginId, name: &str) {
        self.opened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(plugin.clone(), name.to_string()));
    }

    /// The key's bytes, opened under the node key.
    fn open(&self, plugin: &PluginId, name: &str) -> Result<KeyBytes, KeystoreError> {
        let slot = (plugin.clone(), name.to_string());
        if let Some(key) = self
            .opened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&slot)
        {
            return Ok(*key);
        }
        let not_provisioned = || KeystoreError::NotProvisioned {
            plugin: plugin.clone(),
            name: name.to_string(),
        };
        let stored = self.store.key(plugin, name)?.ok_or_else(not_provisioned)?;
        let node_key = self.node_key(false)?;
        let wrong = || KeystoreError::WrongNodeKey {
            plugin: plugin.clone(),
            name: name.to_string(),
        };
        let sealed = hex::decode(&stored.sealed).map_err(|_| wrong())?;
        let material =
            unseal_with(&node_key, &sealed, &row_binding(plugin, name)).ok_or_else(wrong)?;
        let key: KeyBytes = material.as_slice().try_into().map_err(|_| wrong())?;
        self.opened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(slot, key);
        Ok(key)
    }

    pub fn hmac_sha256(
        &self,
        plugin: &PluginId,
        name: &str,
        data: &[u8],
    ) -> Result<Vec<u8>, KeystoreError> {
        let key = self.open(plugin, name)?;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&key)
            .map_err(|_| KeystoreError::Random("key length".into()))?;
        mac.update(data);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    pub fn seal(
        &self,
        plugin: &PluginId,
        name: &str,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, KeystoreError> {
        let key = self.open(plugin, name)?;
        seal_with(&key, plaintext, aad)
    }

    /// `Ok(None)` when `sealed` does not open with this key and `aad`.
    pub fn unseal(
        &self,
        plugin: &PluginId,
        name: &str,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<Option<Vec<u8>>, KeystoreError> {
        let key = self.open(plugin, name)?;
        Ok(unseal_with(&key, sealed, aad))
    }
}

/// Parses a key to import: 64 hex digits, surrounding whitespace allowed.
pub fn parse_import(text: &str) -> Result<KeyBytes, KeystoreError> {
    let bytes = hex::decode(text.trim())
        .map_err(|e| KeystoreError::BadImport(format!("it is not hex ({e})")))?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeystoreError::BadImport(format!("it is {} bytes", bytes.len())))
}

fn read_node_key(path: &Path) -> Result<KeyBytes, KeystoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|source| KeystoreError::NodeKeyRead {
                path: path.to_path_buf(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeystoreError::NodeKeyExposed {
                path: path.to_path_buf(),
                mode: mode & 0o777,
            });
        }
    }
    let text = std::fs::read_to_string(path).map_err(|source| KeystoreError::NodeKeyRead {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = hex::decode(text.trim()).map_err(|_| KeystoreError::NodeKeyMalformed {
        path: path.to_path_buf(),
    })?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeystoreError::NodeKeyMalformed {
            path: path.to_path_buf(),
        })
}

fn write_node_key(path: &Path) -> Result<KeyBytes, KeystoreError> {
    let key: KeyBytes = random()?;
    crate::secret_file::create(path, &format!("{}\n", hex::encode(key))).map_err(|source| {
        KeystoreError::NodeKeyWrite {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DATABASE_FILE_NAME;

    fn keystore() -> (tempfile::TempDir, Keystore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(NodeStore::open(&dir.path().join(DATABASE_FILE_NAME)).expect("db"));
        let keystore = Keystore::new(store, dir.path());
        (dir, keystore)
    }

    fn id(text: &str) -> PluginId {
        PluginId::parse(text).expect("id")
    }

    #[test]
    fn a_missing_node_key_with_sealed_keys_is_named_and_never_replaced() {
        let (dir, keys) = keystore();
        let plugin = id("acme/tokens");
        keys.provision(&plugin, "card-token", None, false)
            .expect("add");
        let store = keys.store.clone();
        let node_key = dir.path().join(NODE_KEY_FILE);
        std::fs::remove_file(&node_key).expect("lose node.key");
        // A restore that left node.key behind, as the next process sees it.
        let restored = Keystore::new(store, dir.path());
        let error = restored
            .hmac_sha256(&plugin, "card-token", b"data")
            .expect_err("no node key");
        assert!(
            matches!(error, KeystoreError::NodeKeyMissing { keys: 1, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("Restore node.key"), "{error}");
        let error = restored
            .provision(&plugin, "other", None, false)
            .expect_err("refused");
        assert!(
            matches!(error, KeystoreError::NodeKeyMissing { .. }),
            "{error}"
        );
        assert!(!node_key.exists(), "a new node.key was written");
    }

    #[test]
    fn hmac_is_stable_per_key_and_differs_across_plugins() {
        let (dir, keys) = keystore();
        let a = id("acme/tokens");
        let b = id("other/tokens");
        keys.provision(&a, "card-token", None, false).expect("add");
        keys.provision(&b, "card-token", None, false).expect("add");
        let first = keys.hmac_sha256(&a, "card-token", b"data").expect("hmac");
        assert_eq!(first.len(), 32);
        assert_eq!(
            keys.hmac_sha256(&a, "card-token", b"data").expect("hmac"),
            first
        );
        assert_ne!(
            keys.hmac_sha256(&b, "card-token", b"data").expect("hmac"),
            first
        );
        assert!(matches!(
            keys.provision(&a, "card-token", None, false),
            Err(KeystoreError::Exists { .. })
        ));

        // The database holds no key material in the clear, and the node
        // key file is private.
        let key_path = dir.path().join(NODE_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_path)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let stored = keys
            .store
            .key(&a, "card-token")
            .expect("read")
            .expect("row");
        assert!(!stored.sealed.is_empty());
    }

    #[test]
    fn sealed_data_opens_only_with_its_key_and_associated_data() {
        let (_dir, keys) = keystore();
        let a = id("acme/vault");
        keys.provision(&a, "k", None, false).expect("add");
        keys.provision(&a, "other", None, false).expect("add");
        let sealed = keys.seal(&a, "k", b"secret", b"order-1").expect("seal");
        assert_eq!(
            keys.unseal(&a, "k", &sealed, b"order-1").expect("unseal"),
            Some(b"secret".to_vec())
        );
        assert_eq!(
            keys.unseal(&a, "k", &sealed, b"order-2").expect("unseal"),
            None
        );
        assert_eq!(
            keys.unseal(&a, "other", &sealed, b"order-1")
                .expect("unseal"),
            None
        );
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            keys.unseal(&a, "k", &flipped, b"order-1").expect("unseal"),
            None
        );
        assert_eq!(keys.unseal(&a, "k", b"", b"").expect("unseal"), None);
    }

    #[test]
    fn imported_keys_give_the_same_hmac_on_two_nodes() {
        let material = parse_import(&"ab".repeat(32)).expect("hex");
        let (_d1, one) = keystore();
        let (_d2, two) = keystore();
        let plugin = id("acme/tokens");
        one.provision(&plugin, "t", Some(material), false)
            .expect("add");
        two.provision(&plugin, "t", Some(material), false)
            .expect("add");
        assert_eq!(
            one.hmac_sha256(&plugin, "t", b"x").expect("hmac"),
            two.hmac_sha256(&plugin, "t", b"x").expect("hmac")
        );
        assert!(parse_import("abcd").is_err());
        assert!(parse_import("zz").is_err());
    }

    #[test]
    fn an_exposed_or_replaced_node_key_is_refused() {
        let (dir, keys) = keystore();
        let plugin = id("acme/tokens");
        keys.provision(&plugin, "t", None, false).expect("add");
        let path = dir.path().join(NODE_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let fresh = Keystore::new(keys.store.clone(), dir.path());
            assert!(matches!(
                fresh.hmac_sha256(&plugin, "t", b"x"),
                Err(KeystoreError::NodeKeyExposed { .. })
            ));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        std::fs::write(&path, hex::encode([7u8; 32])).expect("overwrite");
        let fresh = Keystore::new(keys.store.clone(), dir.path());
        assert!(matches!(
            fresh.hmac_sha256(&plugin, "t", b"x"),
            Err(KeystoreError::WrongNodeKey { .. })
        ));
        assert!(matches!(
            fresh.hmac_sha256(&plugin, "missing", b"x"),
            Err(KeystoreError::NotProvisioned { .. })
        ));
    }
}
