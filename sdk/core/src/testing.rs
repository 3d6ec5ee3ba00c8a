//! An in-memory host, so a plugin's trait methods can be unit-tested
//! natively with `cargo test`, without a node.
//!
//! Compiled for native targets only. The helpers in [`kv`](crate::kv),
//! [`config`](crate::config), [`keystore`](crate::keystore),
//! [`outbox`](crate::outbox) and [`log`](crate::log) reach the host through
//! this module there: in a WebAssembly build they call the node, in a native
//! test they call the [`TestHost`] installed on the test's thread. Without
//! one, a host call panics with a message saying so (a native build has no
//! node to call; the generated bindings alone would abort the whole test
//! binary instead).
//!
//! ```ignore
//! use outpost_sdk::testing::TestHost;
//!
//! #[test]
//! fn counts_what_it_rendered() {
//!     let host = TestHost::new().kv_quota(4096).config("darkness", "20").install();
//!     Driver::render_label(label()).expect("label");
//!     assert_eq!(host.kv_get("rendered"), Some(b"1".to_vec()));
//!     assert!(host.logs().iter().any(|line| line.message.contains("label")));
//! }
//! ```
//!
//! What it checks as a node does: kv keys (not empty, at most 512 bytes, no
//! control characters), values up to 1 MiB, the quota (a key's bytes plus
//! its value's), outbox messages (an `http(s)` destination, an idempotency
//! key and content type of printable ASCII, payloads up to 256 KiB, a
//! conflict when one key is reused for another message), 32-byte keys.
//! `migrate` run through [`InstalledHost::migrate`] keeps its writes only
//! when it succeeds and may not use the outbox, as on a node.
//! What it does not: grants, policy and `max-pending` (every capability is
//! available; the test-kit's sandbox runs the built component with its
//! `plugin.toml`), outbox deliveries (every message stays `pending`), and outbound `http` (a call
//! panics, naming it; use the test-kit). `seal` here is a keyed checksum and
//! a keystream, deterministic and 32 bytes longer (a node's is random and
//! 40 bytes longer): good for round trips and tamper checks, not
//! encryption.

use crate::bindings::outpost::host::keystore::KeystoreError;
use crate::bindings::outpost::host::kv::{KvError, Usage};
use crate::bindings::outpost::host::log::Level;
use crate::bindings::outpost::host::outbox::{Delivery, DeliveryState, Message, OutboxError};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// A node's limit on one stored value.
const MAX_VALUE_BYTES: u64 = 1 << 20;
/// A node's limit on one key.
const MAX_KEY_BYTES: usize = 512;
/// A node's limits on one outbox message (`host/src/outbox`).
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;
const MAX_PAYLOAD_BYTES: usize = 256 << 10;
const MAX_CONTENT_TYPE_BYTES: usize = 200;
/// The length of a node's keys.
const KEY_BYTES: usize = 32;
/// The quota a [`TestHost`] starts with.
const DEFAULT_KV_QUOTA: u64 = 64 * 1024;

/// One line the plugin logged.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

#[derive(Debug, Default)]
struct State {
    kv: BTreeMap<String, Vec<u8>>,
    kv_quota: u64,
    config: BTreeMap<String, String>,
    keys: BTreeMap<String, Vec<u8>>,
    outbox: Vec<Message>,
    logs: Vec<LogLine>,
    /// Inside [`InstalledHost::migrate`]: the outbox refuses, as a node's
    /// does during `migrate`.
    migrating: bool,
}

thread_local! {
    static HOST: RefCell<Option<Rc<RefCell<State>>>> = const { RefCell::new(None) };
}

/// What a test gives the plugin: storage quota, configuration and keys.
/// [`install`](TestHost::install) makes it the host of the calling thread
/// (each `#[test]` runs on its own thread, so tests do not share one).
#[derive(Debug)]
#[must_use = "a TestHost does nothing until it is installed"]
pub struct TestHost {
    state: State,
}

impl Default for TestHost {
    fn default() -> Self {
        TestHost::new()
    }
}

impl TestHost {
    /// An empty host: no configuration, no keys, a 64 KiB kv quota.
    pub fn new() -> TestHost {
        TestHost {
            state: State {
                kv_quota: DEFAULT_KV_QUOTA,
                ..State::default()
            },
        }
    }

    /// The kv quota in bytes, as `kv = { quota-bytes = N }` in `plugin.toml`.
    pub fn kv_quota(mut self, bytes: u64) -> TestHost {
        self.state.kv_quota = bytes;
        self
    }

    /// A value stored before the test starts (state from an older version,
    /// say, for a `migrate` test). Not counted against the quota's checks.
    pub fn kv_value(mut self, key: &str, value: &[u8]) -> TestHost {
        self.state.kv.insert(key.to_string(), value.to_vec());
        self
    }

    /// A plugin-config value, as the operator sets it.
    pub fn config(mut self, key: &str, value: &str) -> TestHost {
        self.state.config.insert(key.to_string(), value.to_string());
        self
    }

    /// A provisioned key's material: 32 bytes, as a node's keys are.
    pub fn key(mut self, name: &str, material: &[u8]) -> TestHost {
        assert_eq!(
            material.len(),
            KEY_BYTES,
            "TestHost::key({name:?}): a node's keys are {KEY_BYTES} bytes"
        );
        self.state.keys.insert(name.to_string(), material.to_vec());
        self
    }

    /// Makes this the calling thread's host until the returned handle is
    /// dropped.
    pub fn install(self) -> InstalledHost {
        let state = Rc::new(RefCell::new(self.state));
        HOST.with(|host| *host.borrow_mut() = Some(Rc::clone(&state)));
        InstalledHost { state }
    }
}

/// The installed host: what the plugin stored, enqueued and logged.
#[derive(Debug)]
pub struct InstalledHost {
    state: Rc<RefCell<State>>,
}

impl InstalledHost {
    /// Every line logged so far, oldest first.
    pub fn logs(&self) -> Vec<LogLine> {
        self.state.borrow().logs.clone()
    }

    /// Every message enqueued so far, oldest first.
    pub fn outbox(&self) -> Vec<Message> {
        self.state.borrow().outbox.clone()
    }

    /// The value stored under `key`.
    pub fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        self.state.borrow().kv.get(key).cloned()
    }

    /// Storage used against the quota.
    pub fn kv_usage(&self) -> Usage {
        usage(&self.state.borrow())
    }

    /// Runs `migrate` as a node runs it: its kv writes stay only if it
    /// returns `Ok` (on a node they are one transaction with the
    /// activation), and the outbox refuses messages meanwhile.
    ///
    /// ```ignore
    /// let host = TestHost::new().kv_value("count", b"7").install();
    /// host.migrate(|| Driver::migrate(Some("1.2.0".into()))).expect("migrates");
    /// ```
    pub fn migrate<E>(&self, migrate: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        let before = self.state.borrow().kv.clone();
        self.state.borrow_mut().migrating = true;
        let result = migrate();
        let mut state = self.state.borrow_mut();
        state.migrating = false;
        if result.is_err() {
            state.kv = before;
        }
        result
    }
}

impl Drop for InstalledHost {
    fn drop(&mut self) {
        HOST.with(|host| {
            let mut host = host.borrow_mut();
            if host.as_ref().is_some_and(|s| Rc::ptr_eq(s, &self.state)) {
                *host = None;
            }
        });
    }
}

/// Runs `f` on this thread's host; panics, naming the call, without one.
fn with_host<R>(call: &str, f: impl FnOnce(&mut State) -> R) -> R {
    let state = HOST.with(|host| host.borrow().clone());
    match state {
        Some(state) => f(&mut state.borrow_mut()),
        None => panic!("{}", no_host(call)),
    }
}

fn no_host(call: &str) -> String {
    if cfg!(feature = "testing") {
        format!(
            "outpost_sdk: {call} was called outside a node and no TestHost is installed on this \
             thread; start the test with `let host = outpost_sdk::testing::TestHost::new().install();`"
        )
    } else {
        format!(
            "outpost_sdk: {call} was called outside a node (a native build); to unit-test it, \
             add `outpost-sdk = {{ version = \"...\", features = [\"testing\"] }}` under \
             [dev-dependencies] and install an outpost_sdk::testing::TestHost"
        )
    }
}

fn usage(state: &State) -> Usage {
    Usage {
        used_bytes: state
            .kv
            .iter()
            .map(|(key, value)| (key.len() + value.len()) as u64)
            .sum(),
        limit_bytes: state.kv_quota,
        keys: state.kv.len() as u64,
    }
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::InvalidKey("the key is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::InvalidKey(format!(
            "the key is {} bytes; the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(KvError::InvalidKey(
            "the key contains control characters".into(),
        ));
    }
    Ok(())
}

pub(crate) mod kv {
    use super::*;

    pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        with_host("kv::get", |state| Ok(state.kv.get(key).cloned()))
    }

    pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
        check_key(key)?;
        if value.len() as u64 > MAX_VALUE_BYTES {
            return Err(KvError::ValueTooLarge(MAX_VALUE_BYTES));
        }
        with_host("kv::set", |state| {
            let before = usage(state);
            let old = state
                .kv
                .get(key)
                .map_or(0, |old| (key.len() + old.len()) as u64);
            let after = before.used_bytes - old + (key.len() + value.len()) as u64;
            if after > state.kv_quota {
                return Err(KvError::QuotaExceeded(before));
            }
            state.kv.insert(key.to_string(), value.to_vec());
            Ok(())
        })
    }

    pub fn delete(key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        with_host("kv::delete", |state| Ok(state.kv.remove(key).is_some()))
    }

    pub fn list_keys(prefix: &str, limit: u32) -> Result<Vec<String>, KvError> {
        with_host("kv::list_keys", |state| {
            Ok(state
                .kv
                .keys()
                .filter(|key| key.starts_with(prefix))
                .take(limit.min(1000) as usize)
                .cloned()
                .collect())
        })
    }

    pub fn current_usage() -> Result<Usage, KvError> {
        with_host("kv::usage", |state| Ok(usage(state)))
    }
}

pub(crate) mod config {
    use super::*;

    pub fn get(key: &str) -> Option<String> {
        with_host("config::get", |state| state.config.get(key).cloned())
    }

    pub fn get_all() -> Vec<(String, String)> {
        with_host("config::get_all", |state| {
            state
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }
}

pub(crate) mod keystore {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    fn material(state: &State, key: &str) -> Result<Vec<u8>, KeystoreError> {
        state.keys.get(key).cloned().ok_or_else(|| {
            KeystoreError::NotProvisioned(format!(
                "the test host has no key {key:?}; add it with TestHost::key"
            ))
        })
    }

    fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// XORs `data` with a keystream from `key` and `tag`.
    fn keystream(key: &[u8], tag: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        for (block, chunk) in data.chunks(32).enumerate() {
            let stream = mac(key, &[b"stream", tag, &(block as u64).to_le_bytes()]);
            out.extend(chunk.iter().zip(stream).map(|(a, b)| a ^ b));
        }
        out
    }

    pub fn hmac_sha256(key: &str, data: &[u8]) -> Result<Vec<u8>, KeystoreError> {
        with_host("keystore::hmac_sha256", |state| {
            let material = material(state, key)?;
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&material)
                .expect("HMAC takes any key length");
            mac.update(data);
            Ok(mac.finalize().into_bytes().to_vec())
        })
    }

    pub fn seal(
        key: &str,
        plaintext: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, KeystoreError> {
        with_host("keystore::seal", |state| {
            let material = material(state, key)?;
            let tag = mac(&material, &[b"tag", associated_data, plaintext]);
            let mut sealed = tag.clone();
            sealed.extend(keystream(&material, &tag, plaintext));
            Ok(sealed)
        })
    }

    pub fn unseal(
        key: &str,
        sealed: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, KeystoreError> {
        with_host("keystore::unseal", |state| {
            let material = material(state, key)?;
            if sealed.len() < 32 {
                return Err(KeystoreError::InvalidSealedData);
            }
            let (tag, body) = sealed.split_at(32);
            let plaintext = keystream(&material, tag, body);
            if mac(&material, &[b"tag", associated_data, &plaintext]) != tag {
                return Err(KeystoreError::InvalidSealedData);
            }
            Ok(plaintext)
        })
    }
}

pub(crate) mod outbox {
    use super::*;

    /// Printable ASCII, spaces allowed, as a node's headers need.
    fn printable(text: &str, most: usize) -> bool {
        !text.is_empty()
            && text.len() <= most
            && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    }

    /// The node's own rules for a message (`check_message`); which
    /// destinations are granted is the sandbox tests' to check.
    pub fn enqueue(message: &Message) -> Result<u64, OutboxError> {
        let destination = message.destination.as_str();
        if !(destination.starts_with("https://") || destination.starts_with("http://"))
            || destination.contains(char::is_whitespace)
        {
            return Err(OutboxError::Invalid(format!(
                "destination {destination:?} is not a valid http(s) URL"
            )));
        }
        if !printable(&message.idempotency_key, MAX_IDEMPOTENCY_KEY_BYTES) {
            return Err(OutboxError::Invalid(format!(
                "idempotency-key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} printable ASCII characters"
            )));
        }
        if message.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(OutboxError::Invalid(format!(
                "payload is {} bytes; the limit is {MAX_PAYLOAD_BYTES}",
                message.payload.len()
            )));
        }
        if !printable(&message.content_type, MAX_CONTENT_TYPE_BYTES) {
            return Err(OutboxError::Invalid(format!(
                "content-type must be 1 to {MAX_CONTENT_TYPE_BYTES} printable ASCII characters"
            )));
        }
        with_host("outbox::enqueue", |state| {
            if state.migrating {
                return Err(OutboxError::Unavailable(
                    "the outbox takes no messages during migrate; send them from a later call"
                        .into(),
                ));
            }
            let earlier = state
                .outbox
                .iter()
                .position(|m| m.idempotency_key == message.idempotency_key);
            match earlier {
                Some(index) if state.outbox[index] == *message => Ok(index as u64 + 1),
                Some(index) => Err(OutboxError::Conflict(index as u64 + 1)),
                None => {
                    state.outbox.push(message.clone());
                    Ok(state.outbox.len() as u64)
                }
            }
        })
    }

    pub fn status(idempotency_key: &str) -> Result<Option<Delivery>, OutboxError> {
        with_host("outbox::status", |state| {
            Ok(state
                .outbox
                .iter()
                .position(|m| m.idempotency_key == idempotency_key)
                .map(|index| Delivery {
                    id: index as u64 + 1,
                    state: DeliveryState::Pending,
                    attempts: 0,
                    response_status: None,
                    response_body: Vec::new(),
                    last_error: None,
                }))
        })
    }
}

pub(crate) mod log {
    use super::*;

    /// Logging needs no host: without one a line goes to standard error,
    /// which `cargo test` shows for a failing test.
    pub fn log(level: Level, message: &str) {
        let state = HOST.with(|host| host.borrow().clone());
        match state {
            Some(state) => state.borrow_mut().logs.push(LogLine {
                level,
                message: message.to_string(),
            }),
            None => eprintln!("[{level:?}] {message}"),
        }
    }

    pub fn enabled(_level: Level) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::post_json;

    #[test]
    fn kv_holds_a_node_s_quota_and_key_rules() {
        let host = TestHost::new().kv_quota(16).install();
        crate::kv::set("count", b"12345").expect("10 bytes fit");
        assert_eq!(host.kv_usage().used_bytes, 10);
        crate::kv::set("count", b"1234567890").expect("a replaced value counts once");
        match crate::kv::set("more", b"12") {
            Err(KvError::QuotaExceeded(usage)) => assert_eq!(usage.used_bytes, 15),
            other => panic!("over the quota: {other:?}"),
        }
        assert!(matches!(crate::kv::get(""), Err(KvError::InvalidKey(_))));
        assert!(matches!(
            crate::kv::set("tab\there", b""),
            Err(KvError::InvalidKey(_))
        ));
        assert!(crate::kv::delete("count").expect("delete"));
        assert_eq!(host.kv_get("count"), None);
    }

    #[test]
    fn keys_seal_and_unseal_and_refuse_what_was_not_provisioned() {
        let _host = TestHost::new().key("card", &[7; 32]).install();
        let sealed = crate::keystore::seal("card", b"4111", b"order-1").expect("seal");
        assert_ne!(&sealed[32..], b"4111", "not the plaintext");
        assert_eq!(
            crate::keystore::unseal("card", &sealed, b"order-1").expect("unseal"),
            b"4111"
        );
        assert!(matches!(
            crate::keystore::unseal("card", &sealed, b"order-2"),
            Err(KeystoreError::InvalidSealedData)
        ));
        let mac = crate::keystore::hmac_sha256("card", b"x").expect("hmac");
        assert_eq!(mac.len(), 32);
        assert!(matches!(
            crate::keystore::hmac_sha256("other", b"x"),
            Err(KeystoreError::NotProvisioned(_))
        ));
    }

    #[test]
    fn the_outbox_keeps_messages_and_refuses_a_reused_key() {
        let host = TestHost::new().install();
        let message = post_json("https://api.example/v1", b"{}".to_vec(), "booking-1");
        let id = crate::outbox::enqueue(&message).expect("enqueue");
        assert_eq!(crate::outbox::enqueue(&message).expect("again"), id);
        let other = post_json("https://api.example/v1", b"{\"x\":1}".to_vec(), "booking-1");
        assert!(matches!(
            crate::outbox::enqueue(&other),
            Err(OutboxError::Conflict(_))
        ));
        assert_eq!(host.outbox(), vec![message]);
        crate::info!("booked {}", 1);
        assert_eq!(host.logs()[0].message, "booked 1");
    }

    #[test]
    fn a_failed_migrate_leaves_the_store_as_it_was() {
        let host = TestHost::new().kv_value("count", b"7").install();
        let failed: Result<(), &str> = host.migrate(|| {
            crate::kv::set("count", b"8").expect("write");
            let message = post_json("https://api.example/v1", Vec::new(), "m-1");
            assert!(matches!(
                crate::outbox::enqueue(&message),
                Err(OutboxError::Unavailable(_))
            ));
            Err("failed on purpose")
        });
        assert!(failed.is_err());
        assert_eq!(host.kv_get("count"), Some(b"7".to_vec()));
        host.migrate(|| crate::kv::set("count", b"9"))
            .expect("migrates");
        assert_eq!(host.kv_get("count"), Some(b"9".to_vec()));
    }

    #[test]
    fn a_host_call_without_a_test_host_says_what_to_do() {
        let panic = std::panic::catch_unwind(|| crate::kv::get("x")).expect_err("no host");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("TestHost"), "{message}");
    }
}
