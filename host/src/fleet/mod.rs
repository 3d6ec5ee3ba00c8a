//! The node's identity in a fleet: an ed25519 key pair it makes itself at
//! first start, in `<data>/identity.key` (0600; the public half beside it
//! as `identity.key.pub.json`). The private half never leaves the box but
//! inside the node's own encrypted backups (so a restored box is the same
//! node; `outpost restore --new-identity` makes a new one instead): the
//! node proves it holds it when it enrols, and signs its requests and its
//! reports with it ([`report`]), so one node cannot speak for another.

pub mod report;

use outpost_registry::keys::{KeyError, KeyPair};
use std::path::{Path, PathBuf};

pub const IDENTITY_KEY_FILE: &str = "identity.key";
/// Its public half, beside it.
pub const IDENTITY_PUBLIC_FILE: &str = "identity.key.pub.json";

/// The node's identity key if it has one, without making one.
pub fn existing_identity(data_dir: &Path) -> Option<KeyPair> {
    let path = identity_path(data_dir);
    path.exists().then(|| KeyPair::load(&path).ok()).flatten()
}

pub fn identity_path(data_dir: &Path) -> PathBuf {
    data_dir.join(IDENTITY_KEY_FILE)
}

/// The node's identity key, made on first use.
pub fn identity(data_dir: &Path) -> Result<KeyPair, KeyError> {
    let path = identity_path(data_dir);
    if path.exists() {
        return KeyPair::load(&path);
    }
    let key = KeyPair::generate()?;
    match key.save(&path) {
        Ok(_) => {
            tracing::info!(key = %key.key_id_hex(), "made this node's identity key");
            Ok(key)
        }
        // Another process made it meanwhile: that one is the node's.
        Err(KeyError::Exists { .. }) => KeyPair::load(&path),
        Err(error) => Err(error),
    }
}

/// What the node calls itself when it enrols: the machine's host name,
/// kept to the characters a fleet name allows.
pub fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(63)
        .collect();
    if name.is_empty() { "node".into() } else { name }
}
