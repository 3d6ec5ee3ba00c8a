//! Cryptography with keys this plugin never sees.
//!
//! Needs `keystore` under `[grants]` in `plugin.toml`, naming the keys:
//!
//! ```toml
//! [grants]
//! keystore = ["card-token"]
//! ```
//!
//! The operator provisions each key on the node (`outpost keys add
//! vendor/name card-token`). A [`KeystoreError`] converts into a
//! [`PluginError`] with `?`: a key that is not granted becomes `denied`, one
//! not yet provisioned `unavailable`, so the caller learns what to fix.

#[cfg(target_family = "wasm")]
use crate::bindings::outpost::host::keystore as host;
// Natively (a vendor's `cargo test`) there is no node: the in-memory host.
pub use crate::bindings::outpost::host::keystore::KeystoreError;
#[cfg(not(target_family = "wasm"))]
use crate::testing::keystore as host;
use crate::types::PluginError;

/// HMAC-SHA-256 of `data` under the named key: 32 bytes, the same on every
/// call for the same key and data.
pub fn hmac_sha256(key: &str, data: &[u8]) -> Result<Vec<u8>, KeystoreError> {
    host::hmac_sha256(key, data)
}

/// Encrypts and authenticates `plaintext`; `associated_data` is checked on
/// [`unseal`] but not stored.
pub fn seal(key: &str, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KeystoreError> {
    host::seal(key, plaintext, associated_data)
}

/// Reverses [`seal`]; fails with `invalid-sealed-data` if anything changed.
pub fn unseal(key: &str, sealed: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, KeystoreError> {
    host::unseal(key, sealed, associated_data)
}

/// A sentence for a log line or an error message.
pub fn describe(error: &KeystoreError) -> String {
    match error {
        KeystoreError::Denied(why) => format!("key not granted: {why}"),
        KeystoreError::NotProvisioned(how) => format!("key not provisioned: {how}"),
        KeystoreError::InvalidSealedData => {
            "sealed data does not match its key or associated data".to_string()
        }
        KeystoreError::Unavailable(why) => format!("key store unavailable: {why}"),
    }
}

impl From<KeystoreError> for PluginError {
    fn from(error: KeystoreError) -> Self {
        let text = describe(&error);
        match error {
            KeystoreError::Denied(_) => PluginError::Denied(text),
            KeystoreError::NotProvisioned(_) | KeystoreError::Unavailable(_) => {
                PluginError::Unavailable(text)
            }
            KeystoreError::InvalidSealedData => PluginError::InvalidInput(text),
        }
    }
}
