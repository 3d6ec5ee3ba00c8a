//! The central team's operations on a registry: vendor namespaces and the
//! tokens that let a vendor push and publish under one.

use crate::store::{Namespace, RegistryStore, StoreError, TokenRecord, now_seconds};
use crate::tuf::RESERVED_ROLE_NAMES;
use sha2::{Digest, Sha256};
use tough::schema::key::Key;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "{0:?} cannot be a namespace: use up to 64 lowercase letters, digits and '-', starting with a letter or digit, and none of root, targets, snapshot, timestamp"
    )]
    BadName(String),
    #[error("the threshold must be between 1 and the number of keys ({keys}); it is {threshold}")]
    Threshold { threshold: u64, keys: usize },
    #[error(
        "namespace {0} exists already; to give it new keys use `outpost-registry namespace rekey`"
    )]
    Exists(String),
    #[error("namespace {0} does not exist; create it with `outpost-registry namespace add`")]
    UnknownNamespace(String),
    #[error("the system random number generator failed: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `name` can be a namespace (and so a TUF role name).
pub fn valid_namespace(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && !RESERVED_ROLE_NAMES.contains(&name)
}

/// Delegates `<name>/*` to `keys`, `threshold` of which must sign.
pub fn add_namespace(
    store: &RegistryStore,
    name: &str,
    keys: Vec<Key>,
    threshold: u64,
) -> Result<(), AdminError> {
    if !valid_namespace(name) {
        return Err(AdminError::BadName(name.to_string()));
    }
    check_threshold(&keys, threshold)?;
    let namespace = Namespace {
        keys,
        threshold,
        created_at: now_seconds(),
    };
    if store.add_namespace(name, &namespace)? {
        Ok(())
    } else {
        Err(AdminError::Exists(name.to_string()))
    }
}

/// Gives `name` new keys, for a vendor whose key was lost or stolen.
///
/// From now on the registry accepts `name`'s metadata only when signed by
/// `threshold` of `keys`. Nodes keep trusting the old keys until the
/// vendor's first publish signed with the new ones: that publish and the
/// new delegation reach nodes in one snapshot, so no node ever sees the
/// namespace delegated to keys its published metadata is not signed by.
pub fn replace_namespace_keys(
    store: &RegistryStore,
    name: &str,
    keys: Vec<Key>,
    threshold: u64,
) -> Result<(), AdminError> {
    check_threshold(&keys, threshold)?;
    let Some(current) = store.namespace(name)? else {
        return Err(AdminError::UnknownNamespace(name.to_string()));
    };
    let namespace = Namespace {
        keys,
        threshold,
        ..current
    };
    if store.replace_namespace(name, &namespace)? {
        Ok(())
    } else {
        Err(AdminError::UnknownNamespace(name.to_string()))
    }
}

fn check_threshold(keys: &[Key], threshold: u64) -> Result<(), AdminError> {
    if threshold == 0 || threshold as usize > keys.len() {
        return Err(AdminError::Threshold {
            threshold,
            keys: keys.len(),
        });
    }
    Ok(())
}

/// Makes a token for `namespace` and returns it; only its hash is kept.
pub fn issue_token(
    store: &RegistryStore,
    namespace: &str,
    label: &str,
) -> Result<String, AdminError> {
    if store.namespace(namespace)?.is_none() {
        return Err(AdminError::UnknownNamespace(namespace.to_string()));
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| AdminError::Random(e.to_string()))?;
    let token = format!("opr_{}", hex::encode(bytes));
    store.add_token(
        &token_hash(&token),
        &TokenRecord {
            namespace: namespace.to_string(),
            created_at: now_seconds(),
            label: label.to_string(),
        },
    )?;
    Ok(token)
}

/// What the registry stores of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
