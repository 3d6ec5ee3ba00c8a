//! `outpost:host/keystore`: HMAC and sealing with keys the plugin never sees.
//!
//! Granted by `keystore = ["name", ...]` in the manifest. A name outside that
//! list is `denied` before the node looks anything up, so a plugin cannot even
//! learn whether another plugin's key exists; keys are stored per plugin id
//! anyway (see `crate::keystore`).

use crate::bindings::keystore::{Host, KeystoreError};
use crate::keystore::{Keystore, KeystoreError as NodeKeystoreError, MAX_SEAL_BYTES};
use crate::plugin_id::PluginId;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

pub struct KeystoreState {
    plugin: PluginId,
    granted: Arc<[String]>,
    keystore: Arc<Keystore>,
}

impl std::fmt::Debug for KeystoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoreState")
            .field("plugin", &self.plugin)
            .field("granted", &self.granted)
            .finish()
    }
}

impl KeystoreState {
    pub fn new(plugin: PluginId, granted: Arc<[String]>, keystore: Arc<Keystore>) -> Self {
        KeystoreState {
            plugin,
            granted,
            keystore,
        }
    }

    fn check(&self, key: &str) -> Result<(), KeystoreError> {
        if self.granted.iter().any(|name| name == key) {
            return Ok(());
        }
        tracing::warn!(key, "plugin asked for a key it was not granted");
        Err(KeystoreError::Denied(if self.granted.is_empty() {
            format!("key {key:?}: this plugin has no keystore grant")
        } else {
            format!(
                "key {key:?} is not granted; plugin.toml grants {}",
                self.granted.join(", ")
            )
        }))
    }

    fn node_error(&self, error: NodeKeystoreError) -> KeystoreError {
        match error {
            NodeKeystoreError::NotProvisioned { plugin, name } => {
                KeystoreError::NotProvisioned(format!("outpost keys add {plugin} {name}"))
            }
            other => {
                tracing::warn!("keystore failed: {other}");
                KeystoreError::Unavailable(other.to_string())
            }
        }
    }
}

impl Host for KeystoreState {
    fn hmac_sha256(&mut self, key: String, data: Vec<u8>) -> Result<Vec<u8>, KeystoreError> {
        self.check(&key)?;
        self.keystore
            .hmac_sha256(&self.plugin, &key, &data)
            .map_err(|e| self.node_error(e))
    }

    fn seal(
        &mut self,
        key: String,
        plaintext: Vec<u8>,
        associated_data: Vec<u8>,
    ) -> Result<Vec<u8>, KeystoreError> {
        self.check(&key)?;
        if plaintext.len() > MAX_SEAL_BYTES {
            return Err(KeystoreError::Unavailable(format!(
                "at most {MAX_SEAL_BYTES} bytes can be sealed at once"
            )));
        }
        self.keystore
            .seal(&self.plugin, &key, &plaintext, &associated_data)
            .map_err(|e| self.node_error(e))
    }

    fn unseal(
        &mut self,
        key: String,
        sealed: Vec<u8>,
        associated_data: Vec<u8>,
    ) -> Result<Vec<u8>, KeystoreError> {
        self.check(&key)?;
        match self
            .keystore
            .unseal(&self.plugin, &key, &sealed, &associated_data)
        {
            Ok(Some(plaintext)) => Ok(plaintext),
            Ok(None) => Err(KeystoreError::InvalidSealedData),
            Err(error) => Err(self.node_error(error)),
        }
    }
}

struct KeystoreCapability;

impl HasData for KeystoreCapability {
    type Data<'a> = &'a mut KeystoreState;
}

pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    state: fn(&mut T) -> &mut KeystoreState,
) -> wasmtime::Result<()> {
    crate::bindings::keystore::add_to_linker::<T, KeystoreCapability>(linker, state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DATABASE_FILE_NAME, NodeStore};

    #[test]
    fn only_granted_names_reach_the_keystore() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(NodeStore::open(&dir.path().join(DATABASE_FILE_NAME)).expect("db"));
        let keystore = Arc::new(Keystore::new(store, dir.path()));
        let plugin = PluginId::parse("acme/tokens").expect("id");
        keystore
            .provision(&plugin, "secret", None, false)
            .expect("add");
        let mut state = KeystoreState::new(plugin, Arc::from(["card-token".to_string()]), keystore);
        assert!(matches!(
            state.hmac_sha256("secret".into(), b"x".to_vec()),
            Err(KeystoreError::Denied(_))
        ));
        match state.hmac_sha256("card-token".into(), b"x".to_vec()) {
            Err(KeystoreError::NotProvisioned(how)) => {
                assert_eq!(how, "outpost keys add acme/tokens card-token")
            }
            other => panic!("expected not-provisioned, got {other:?}"),
        }
    }
}
