//! Ed25519 signing keys for every role: the central team's root, the
//! registry's online targets/snapshot/timestamp keys, and each vendor's key.
//!
//! A private key file holds the 32-byte seed as hex and nothing else, mode
//! 0600; a public key file holds the key as TUF writes it in metadata
//! (`{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"…"}}`), so the
//! file a vendor hands the central team is exactly what goes into `targets.json`.

use ed25519_dalek::{Signer, SigningKey};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::key::{Ed25519Key, Ed25519Scheme, Key};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} already exists; refusing to overwrite a key (move it aside if you really mean to replace it)"
    )]
    Exists { path: PathBuf },
    #[error(
        "{path} is not an Outpost private key (expected 64 hex digits, an ed25519 seed, as `outpost vendor keygen` writes)"
    )]
    BadPrivate { path: PathBuf },
    #[error(
        "{path} is not a TUF ed25519 public key ({detail}); use the .pub.json file `keygen` wrote"
    )]
    BadPublic { path: PathBuf, detail: String },
    #[error("{path} can be read by other users; run `chmod 600 {path}`")]
    Exposed { path: PathBuf },
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

/// A private signing key.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("key_id", &self.key_id_hex())
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    pub fn generate() -> Result<KeyPair, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(KeyPair {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    pub fn from_seed(seed: [u8; 32]) -> KeyPair {
        KeyPair {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The key as TUF metadata lists it.
    pub fn public(&self) -> Key {
        ed25519_public(self.signing.verifying_key().to_bytes())
    }

    /// The TUF key id: sha-256 of the public key's canonical JSON.
    pub fn key_id(&self) -> Decoded<Hex> {
        key_id(&self.public())
    }

    pub fn key_id_hex(&self) -> String {
        hex::encode(self.key_id().as_ref())
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.signing.sign(message).to_bytes().to_vec()
    }

    /// Reads a private key file, refusing one that others can read.
    pub fn load(path: &Path) -> Result<KeyPair, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                return Err(KeyError::Exposed {
                    path: path.to_path_buf(),
                });
            }
        }
        let bad = || KeyError::BadPrivate {
            path: path.to_path_buf(),
        };
        let bytes = hex::decode(text.trim()).map_err(|_| bad())?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(KeyPair::from_seed(seed))
    }

    /// Writes `<stem>` (private, 0600) and `<stem>.pub.json` (public);
    /// refuses to overwrite either.
    pub fn save(&self, private: &Path) -> Result<PathBuf, KeyError> {
        let public = public_path(private);
        for path in [private, public.as_path()] {
            if path.exists() {
                return Err(KeyError::Exists {
                    path: path.to_path_buf(),
                });
            }
        }
        write_private(private, &hex::encode(self.signing.to_bytes()))?;
        let json = serde_json::to_string_pretty(&self.public()).unwrap_or_default();
        std::fs::write(&public, json + "\n").map_err(|source| KeyError::Write {
            path: public.clone(),
            source,
        })?;
        Ok(public)
    }
}

/// Where `save` puts the public half of the key at `private`.
pub fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub.json");
    PathBuf::from(name)
}

fn write_private(path: &Path, text: &str) -> Result<(), KeyError> {
    use std::io::Write;
    let error = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    // Written whole beside it, then linked into place: a reader never sees
    // a half-written key, a crash leaves no empty one, and linking fails
    // rather than replace a key that appeared meanwhile.
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.partial", std::process::id()));
    let partial = std::path::PathBuf::from(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = (|| {
        let mut file = options.open(&partial)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        match std::fs::hard_link(&partial, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists && !path.exists() => {
                // A filesystem without hard links (FAT on a USB stick).
                std::fs::rename(&partial, path)
            }
            linked => linked,
        }
    })();
    let _ = std::fs::remove_file(&partial);
    match written {
        Err(source) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(KeyError::Exists {
                path: path.to_path_buf(),
            })
        }
        other => other.map_err(error),
    }
}

/// Reads a public key file (`*.pub.json`).
pub fn load_public(path: &Path) -> Result<Key, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_public(&bytes).map_err(|detail| KeyError::BadPublic {
        path: path.to_path_buf(),
        detail,
    })
}

/// Parses a TUF public key, accepting only ed25519 keys of the right length.
pub fn parse_public(bytes: &[u8]) -> Result<Key, String> {
    let key: Key = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    match &key {
        Key::Ed25519 { keyval, .. } if keyval.public.len() == 32 => Ok(key),
        Key::Ed25519 { .. } => Err("an ed25519 public key is 32 bytes".into()),
        _ => Err("only ed25519 keys are accepted".into()),
    }
}

/// Whether `signature` is `key`'s ed25519 signature of `message` (strict:
/// no malleable or small-order forms).
pub fn verify(key: &Key, message: &[u8], signature: &[u8]) -> bool {
    let Some(public) = public_bytes(key) else {
        return false;
    };
    let Ok(public) = ed25519_dalek::VerifyingKey::from_bytes(&public) else {
        return false;
    };
    verify_with(&public, message, signature)
}

fn public_bytes(key: &Key) -> Option<[u8; 32]> {
    let Key::Ed25519 { keyval, .. } = key else {
        return None;
    };
    <[u8; 32]>::try_from(keyval.public.as_ref()).ok()
}

fn verify_with(public: &ed25519_dalek::VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
        return false;
    };
    public.verify_strict(message, &signature).is_ok()
}

/// Public keys already decoded, by their 32 bytes, for a server that checks
/// the same keys' signatures all day (a registry and its nodes): decoding a
/// key (a square root on the curve) is about a fifth of the work of
/// verifying. A key's bytes decode to one key, so an entry never goes
/// stale; the map is emptied when it reaches [`VerifyingKeys::CAPACITY`].
#[derive(Default)]
pub struct VerifyingKeys(std::sync::Mutex<HashMap<[u8; 32], ed25519_dalek::VerifyingKey>>);

impl VerifyingKeys {
    pub const CAPACITY: usize = 1 << 17;

    /// [`verify`], decoding `key` once.
    pub fn verify(&self, key: &Key, message: &[u8], signature: &[u8]) -> bool {
        let Some(bytes) = public_bytes(key) else {
            return false;
        };
        let cached = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&bytes)
            .copied();
        let public = match cached {
            Some(public) => public,
            None => {
                let Ok(public) = ed25519_dalek::VerifyingKey::from_bytes(&bytes) else {
                    return false;
                };
                let mut keys = self
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if keys.len() >= Self::CAPACITY {
                    keys.clear();
                }
                keys.insert(bytes, public);
                public
            }
        };
        verify_with(&public, message, signature)
    }
}

impl std::fmt::Debug for VerifyingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKeys").finish_non_exhaustive()
    }
}

/// The ed25519 public key `bytes` as TUF metadata lists it, with nothing
/// else: two spellings of one key (extra fields, another hex case) come out
/// the same, and so have the same key id.
pub fn ed25519_public(bytes: [u8; 32]) -> Key {
    Key::Ed25519 {
        keyval: Ed25519Key {
            public: Decoded::from(bytes.to_vec()),
            _extra: HashMap::new(),
        },
        scheme: Ed25519Scheme::Ed25519,
        _extra: HashMap::new(),
    }
}

/// `key` rebuilt from its 32 public bytes ([`ed25519_public`]), if it is
/// an ed25519 key that is a valid curve point.
pub fn canonical_ed25519(key: &Key) -> Option<Key> {
    let Key::Ed25519 { keyval, .. } = key else {
        return None;
    };
    let bytes = <[u8; 32]>::try_from(keyval.public.as_ref()).ok()?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()?;
    Some(ed25519_public(bytes))
}

/// The TUF key id of `key`.
pub fn key_id(key: &Key) -> Decoded<Hex> {
    // An ed25519 key we built or parsed always serialises.
    key.key_id()
        .unwrap_or_else(|_| Decoded::from(Vec::<u8>::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_keys_verify_exactly_as_fresh_ones() {
        let cache = VerifyingKeys::default();
        let (a, b) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
        let signed = a.sign(b"message");
        for _ in 0..2 {
            // Once decoding, once from the cache.
            assert!(cache.verify(&a.public(), b"message", &signed));
            assert!(!cache.verify(&a.public(), b"another", &signed));
            assert!(!cache.verify(&b.public(), b"message", &signed));
            assert!(!cache.verify(&a.public(), b"message", &signed[..63]));
        }
        assert_eq!(cache.0.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_saved_key_loads_back_and_its_public_half_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme");
        let key = KeyPair::generate().unwrap();
        let public = key.save(&path).unwrap();
        let loaded = KeyPair::load(&path).unwrap();
        assert_eq!(loaded.key_id(), key.key_id());
        assert_eq!(load_public(&public).unwrap(), key.public());
        assert!(matches!(key.save(&path), Err(KeyError::Exists { .. })));
    }

    #[test]
    fn a_world_readable_private_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        KeyPair::generate().unwrap().save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            KeyPair::load(&path),
            Err(KeyError::Exposed { .. })
        ));
    }
}
