//! All of a node's state, in one redb file.
//!
//! | table        | key                       | value                               |
//! |--------------|---------------------------|-------------------------------------|
//! | `meta`       | name                      | "outpost-node", schema version      |
//! | `plugins`    | plugin id                 | JSON [`PluginRecord`]               |
//! | `components` | sha-256 of the wasm       | the component's bytes               |
//! | `compiled`   | "digest/engine"           | sha-256 of the cached machine code  |
//! | `kv`         | (plugin id, key)          | value bytes (see `kv`)              |
//! | `kv_usage`   | plugin id                 | (bytes used, key count)             |
//! | `keys`       | (plugin id, key name)     | sealed key material (see `keys`)    |
//! | `outbox*`    | entry id, key, due time   | queued deliveries (see `outbox`)    |
//! | `trust`      | name                      | TUF root, registry, metadata seen (see `trust`) |
//! | `updates`, `update_history`, `blocked_versions`, `follows`, `kv_snapshot*` | | the update journal (see `journal`) |
//!
//! Every write a caller is told succeeded has been committed durably. Opening
//! never creates a database over an existing file: a file that is not an
//! Outpost database, or is damaged, is reported and left exactly as it was.

mod disk;
mod file;
mod fleet;
mod journal;
mod keys;
mod kv;
mod outbox;
mod telemetry;
mod trust;

pub use disk::{BelowReserve, free_bytes};
pub use fleet::{Membership, Reported};
pub use journal::{Directed, ProbationRecord, Transition, UpdateRecord, UpdateState};
pub(crate) use journal::{
    block_version, drop_kv_snapshot, put_update, restore_kv, snapshot_kv, write_transition,
};
pub use keys::StoredKey;
pub(crate) use kv::KvWriter;
pub use kv::{KvRefusal, KvUsage, MAX_KEY_BYTES, MAX_VALUE_BYTES, check_key};
pub use outbox::{
    AttemptOutcome, DeliveryState, DestinationBacklog, EnqueueError, Enqueued, MAX_RESPONSE_BYTES,
    NewMessage, OutboxEntry, OutboxMethod,
};
pub use telemetry::{BacklogSize, QueuedRollup};
pub use trust::TrustSettings;

use crate::manifest::{Grants, PluginId};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The database file's name inside the data directory.
pub const DATABASE_FILE_NAME: &str = "outpost.redb";

const FORMAT: &str = "outpost-node";
/// Bump when a table's layout changes; a node refuses newer schemas and
/// upgrades older ones in place (schema 2 added `keys` and the outbox,
/// schema 3 `trust`, schema 4 the update journal, schema 5 `fleet`, schema 6
/// the telemetry backlog).
const SCHEMA: u32 = 6;

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const PLUGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("plugins");
const COMPONENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("components");
const COMPILED: TableDefinition<&str, &str> = TableDefinition::new("compiled");
pub(crate) const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");
pub(crate) const KV_USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("kv_usage");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the node database {path} is in use by another Outpost process{holder}; let it finish \
         or stop it, then try again"
    )]
    InUse {
        path: PathBuf,
        /// " (pid 4242: outpost run)" when the kernel says who holds the lock.
        holder: String,
    },
    #[error(
        "{path} is not an Outpost node database ({detail}); it was left untouched. \
         Move it aside, or choose another data directory with --data-dir"
    )]
    Foreign { path: PathBuf, detail: String },
    #[error(
        "the node database {path} is damaged ({detail}); it was left untouched. Restore it from \
         a backup, or move it aside to start an empty node"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "the node database {path} was written by a newer Outpost (schema {found}); this build \
         reads schema {SCHEMA}. Run a newer outpost"
    )]
    Newer { path: PathBuf, found: String },
    #[error("the node database {path} cannot be opened: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("node database error: {0}")]
    Database(#[from] redb::Error),
    #[error(
        "the node database {path} cannot be used now ({why}); the node retries every second. \
         If the disk is full, free space on it"
    )]
    Unavailable { path: PathBuf, why: String },
    #[error("the stored record for {what} cannot be read ({detail}); the database may be damaged")]
    Record { what: String, detail: String },
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for StoreError {
            fn from(error: $error) -> Self {
                StoreError::Database(error.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// One installed version of a plugin, as the node keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstalledVersion {
    pub version: semver::Version,
    /// `plugin.toml` as it was installed.
    pub manifest: String,
    /// Sha-256 of the component, the key into `components`.
    pub component_digest: String,
    pub component_bytes: u64,
    /// What the operator approved at install.
    pub grants: Grants,
    /// Seconds since the Unix epoch.
    pub installed_at: u64,
}

/// An installed plugin: the version that serves calls, and the one before it,
/// kept so an update can be rolled back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRecord {
    pub id: PluginId,
    pub active: InstalledVersion,
    pub previous: Option<InstalledVersion>,
}

pub struct NodeStore {
    db: file::DatabaseFile,
    path: PathBuf,
    /// Free bytes plugins may not use (see `disk`).
    disk_reserve: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for NodeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStore")
            .field("path", &self.path)
            .finish()
    }
}

fn open_error(file: &Path, error: redb::DatabaseError) -> StoreError {
    let path = file.to_path_buf();
    match error {
        redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => {
            let holder = lock_holder(file)
                .map(|holder| format!(" ({holder})"))
                .unwrap_or_default();
            StoreError::InUse { path, holder }
        }
        redb::DatabaseError::UpgradeRequired(version) => StoreError::Corrupt {
            path,
            detail: format!("it is in redb file format {version}, which needs an upgrade"),
        },
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
            StoreError::Corrupt { path, detail }
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            let text = io.to_string();
            if text.contains("magic number") {
                StoreError::Foreign {
                    path,
                    detail: "it is not a redb file".into(),
                }
            } else if io.kind() == std::io::ErrorKind::InvalidData {
                StoreError::Corrupt { path, detail: text }
            } else {
                StoreError::Open { path, source: io }
            }
        }
        other => StoreError::Corrupt {
            path,
            detail: other.to_string(),
        },
    }
}

/// "pid 4242: outpost run", from the kernel's table of file locks (redb
/// takes a flock on the database). Asked of the kernel rather than written
/// to a file by the holder, so a node killed with SIGKILL or by a power cut
/// leaves nothing stale behind, and the answer is the process that really
/// holds the lock, not the last one that said it did.
fn lock_holder(path: &Path) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).ok()?;
        let dev = metadata.dev();
        // glibc's major()/minor(), as /proc/locks prints them.
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        let file = format!("{major:02x}:{minor:02x}:{}", metadata.ino());
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        // "3: FLOCK  ADVISORY  WRITE 4242 fe:00:10019115 0 EOF"; waiters
        // are marked "->" and hold nothing.
        let pid = locks.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [_, "FLOCK", _, _, pid, id, ..] if *id == file => pid.parse::<u32>().ok(),
                _ => None,
            }
        })?;
        if pid == 0 || pid == std::process::id() {
            return None;
        }
        let command = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|bytes| {
                let words: Vec<String> = bytes
                    .split(|b| *b == 0)
                    .filter(|word| !word.is_empty())
                    .map(|word| String::from_utf8_lossy(word).into_owned())
                    .collect();
                let mut command = words.join(" ");
                if command.chars().count() > 160 {
                    command = command.chars().take(160).collect::<String>() + "…";
                }
                command
            })
            .unwrap_or_default();
        if command.is_empty() {
            Some(format!("pid {pid}"))
        } else {
            Some(format!("pid {pid}: {command}"))
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

std::thread_local! {
    /// Set while this thread reads a database that may be damaged.
    static EXPECTING_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `read`, turning a panic into an error. redb trusts a file it shut
/// down cleanly, and bytes changed behind its back (a failing SD card, a
/// stray `dd`) make it index past a page and panic, in the open and in the
/// first reads. The panic is the news, not a bug to print a backtrace for,
/// so the default hook is kept quiet for this thread only: other threads'
/// panics are still printed.
fn catching_panics<T>(read: impl FnOnce() -> T) -> Result<T, String> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !EXPECTING_PANIC.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    EXPECTING_PANIC.with(|expecting| expecting.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read));
    EXPECTING_PANIC.with(|expecting| expecting.set(false));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "redb panicked".into())
    })
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Record {
        what: what.to_string(),
        detail: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our records are plain data; serialising them to JSON cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

impl NodeStore {
    /// Opens the node database at `path`, creating it only if no file exists.
    /// A damaged file is reported as [`StoreError::Corrupt`] and not written.
    pub fn open(path: &Path) -> Result<NodeStore, StoreError> {
        catching_panics(|| NodeStore::open_checked(path)).unwrap_or_else(|panic| {
            Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("reading it failed: {panic}"),
            })
        })
    }

    fn open_checked(path: &Path) -> Result<NodeStore, StoreError> {
        let builder = file::builder();
        let exists = path.exists();
        let db = if exists {
            builder.open(path)
        } else {
            builder.create(path)
        }
        .map_err(|e| open_error(path, e))?;
        let store = NodeStore {
            db: file::DatabaseFile::new(db, path),
            path: path.to_path_buf(),
            disk_reserve: std::sync::atomic::AtomicU64::new(0),
        };
        if exists {
            store.check_identity()?;
        } else {
            store.initialise()?;
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A consistent copy of the database, as of its last commit, while the
    /// node runs (see `file::DatabaseFile::copy_committed`).
    pub fn copy_committed(&self, to: &mut dyn std::io::Write) -> Result<u64, StoreError> {
        self.db.copy_committed(to)
    }

    fn initialise(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert("format", FORMAT)?;
            meta.insert("schema", SCHEMA.to_string().as_str())?;
            meta.insert("created-by", env!("CARGO_PKG_VERSION"))?;
            txn.open_table(PLUGINS)?;
            txn.open_table(COMPONENTS)?;
            txn.open_table(COMPILED)?;
            txn.open_table(KV)?;
            txn.open_table(KV_USAGE)?;
            keys::create_tables(&txn)?;
            outbox::create_tables(&txn)?;
            trust::create_tables(&txn)?;
            journal::create_tables(&txn)?;
            fleet::create_tables(&txn)?;
            telemetry::create_tables(&txn)?;
        }
        self.db.commit(txn)?;
        Ok(())
    }

    /// Brings an older schema up to this one: only new tables so far, so an
    /// upgrade is creating them, all in one transaction.
    fn upgrade(&self, from: u32) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            keys::create_tables(&txn)?;
            outbox::create_tables(&txn)?;
            trust::create_tables(&txn)?;
            journal::create_tables(&txn)?;
            fleet::create_tables(&txn)?;
            telemetry::create_tables(&txn)?;
            txn.open_table(META)?
                .insert("schema", SCHEMA.to_string().as_str())?;
        }
        self.db.commit(txn)?;
        tracing::info!("upgraded the node database from schema {from} to {SCHEMA}");
        Ok(())
    }

    fn check_identity(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Err(StoreError::Foreign {
                    path: self.path.clone(),
                    detail: "it is a redb database without Outpost's tables".into(),
                });
            }
            Err(other) => return Err(other.into()),
        };
        let format = meta.get("format")?.map(|v| v.value().to_string());
        if format.as_deref() != Some(FORMAT) {
            return Err(StoreError::Foreign {
                path: self.path.clone(),
                detail: format!("its format is {format:?}, not {FORMAT:?}"),
            });
        }
        let schema = meta
            .get("schema")?
            .map(|v| v.value().to_string())
            .unwrap_or_default();
        drop(meta);
        drop(txn);
        match schema.parse::<u32>() {
            Ok(found) if found == SCHEMA => Ok(()),
            Ok(found) if found < SCHEMA => self.upgrade(found),
            _ => Err(StoreError::Newer {
                path: self.path.clone(),
                found: schema,
            }),
        }
    }

    /// Commits a transaction from [`NodeStore::begin_write`], keeping note
    /// of whether writes work (see [`NodeStore::write_trouble`]).
    pub(crate) fn commit(&self, txn: WriteTransaction) -> Result<(), StoreError> {
        self.db.commit(txn)
    }

    /// Whether the last write failed (cheap; see [`NodeStore::write_trouble`]).
    pub fn writes_failing(&self) -> bool {
        self.db.failing().is_some()
    }

    /// Why writes to the database fail now, if they do. While they fail this
    /// tries one small write (at most once a second), so the answer turns
    /// back to `None` as soon as the disk has room again.
    pub fn write_trouble(&self) -> Option<String> {
        self.db.failing()?;
        let probe = self.db.begin_write().and_then(|txn| {
            txn.open_table(META)?.insert(
                "last-write-check",
                crate::clock::now_millis().to_string().as_str(),
            )?;
            self.db.commit(txn)
        });
        match probe {
            Ok(()) => None,
            Err(_) => self.db.failing(),
        }
    }

    pub(crate) fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.db.begin_write()
    }

    // ---- plugins and their components ------------------------------------

    pub fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PLUGINS)?;
        let mut records = Vec::new();
        for entry in table.iter()? {
            let (id, bytes) = entry?;
            records.push(decode(&format!("plugin {}", id.value()), bytes.value())?);
        }
        Ok(records)
    }

    pub fn plugin(&self, id: &PluginId) -> Result<Option<PluginRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PLUGINS)?;
        let record = table.get(id.as_str())?;
        record
            .map(|bytes| decode(&format!("plugin {id}"), bytes.value()))
            .transpose()
    }

    pub fn component(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(COMPONENTS)?;
        Ok(table.get(digest)?.map(|bytes| bytes.value().to_vec()))
    }

    /// Writes `record` in `txn`; the caller commits. Its components must
    /// be stored already ([`NodeStore::put_component`]).
    pub(crate) fn put_plugin(
        txn: &WriteTransaction,
        record: &PluginRecord,
    ) -> Result<(), StoreError> {
        let mut plugins = txn.open_table(PLUGINS)?;
        plugins.insert(record.id.as_str(), encode(record).as_slice())?;
        Ok(())
    }

    /// Stores a component's bytes under its digest in `txn`, once.
    pub(crate) fn put_component(
        txn: &WriteTransaction,
        digest: &str,
        component: &[u8],
    ) -> Result<(), StoreError> {
        let mut components = txn.open_table(COMPONENTS)?;
        if components.get(digest)?.is_none() {
            components.insert(digest, component)?;
        }
        Ok(())
    }

    /// Drops, in `txn`, every component that no installed version (active,
    /// previous or staged) refers to: a confirmed update retires the
    /// previous version, a removal all of a plugin's.
    pub(crate) fn drop_unreferenced_components(txn: &WriteTransaction) -> Result<(), StoreError> {
        let mut referenced: std::collections::HashSet<String> =
            journal::staged_digests(txn)?.into_iter().collect();
        let plugins = txn.open_table(PLUGINS)?;
        for entry in plugins.iter()? {
            let (key, bytes) = entry?;
            let record: PluginRecord = decode(&format!("plugin {}", key.value()), bytes.value())?;
            referenced.insert(record.active.component_digest);
            if let Some(previous) = record.previous {
                referenced.insert(previous.component_digest);
            }
        }
        let mut components = txn.open_table(COMPONENTS)?;
        components.retain(|digest, _| referenced.contains(digest))?;
        Ok(())
    }

    /// Removes a plugin, its update in flight and what it follows and, with
    /// `purge`, its stored data and blocked versions. Components no
    /// installed version refers to any more are dropped too.
    pub fn remove_plugin(&self, id: &PluginId, purge: bool) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let removed = {
            let installed = txn.open_table(PLUGINS)?.remove(id.as_str())?.is_some();
            // A new plugin held for approval is removed too (its update).
            let removed = journal::remove_all(&txn, id, purge)? || installed;
            NodeStore::drop_unreferenced_components(&txn)?;
            if purge {
                let mut kv = txn.open_table(KV)?;
                kv.retain(|(plugin, _), _| plugin != id.as_str())?;
                let mut usage = txn.open_table(KV_USAGE)?;
                usage.remove(id.as_str())?;
                keys::remove_all(&txn, id)?;
            }
            removed
        };
        self.db.commit(txn)?;
        Ok(removed)
    }

    // ---- compiled-code cache digests ------------------------------------

    pub fn compiled_digest(&self, key: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(COMPILED)?;
        Ok(table.get(key)?.map(|v| v.value().to_string()))
    }

    pub fn set_compiled_digest(&self, key: &str, digest: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(COMPILED)?.insert(key, digest)?;
        self.db.commit(txn)?;
        Ok(())
    }

    // ---- identity ---------------------------------------------------------

    /// This node's id, for the centre: made from `random` the first time and
    /// kept in the database, so it survives restarts and moves with a
    /// restored backup.
    pub fn node_id(&self, random: impl FnOnce() -> String) -> Result<String, StoreError> {
        {
            let txn = self.db.begin_read()?;
            if let Some(id) = txn.open_table(META)?.get("node-id")? {
                return Ok(id.value().to_string());
            }
        }
        let txn = self.db.begin_write()?;
        let id = {
            let mut meta = txn.open_table(META)?;
            let existing = meta.get("node-id")?.map(|v| v.value().to_string());
            match existing {
                Some(id) => id,
                None => {
                    let id = random();
                    meta.insert("node-id", id.as_str())?;
                    id
                }
            }
        };
        self.db.commit(txn)?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> (tempfile::TempDir, NodeStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = NodeStore::open(&dir.path().join(DATABASE_FILE_NAME)).expect("opens");
        (dir, store)
    }

    #[test]
    fn foreign_and_damaged_files_are_reported_and_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = dir.path().join("notes.redb");
        std::fs::write(&text, b"shopping list: bread, milk".repeat(40)).expect("write");
        let before = std::fs::read(&text).expect("read");
        assert!(matches!(
            NodeStore::open(&text),
            Err(StoreError::Foreign { .. })
        ));
        assert_eq!(std::fs::read(&text).expect("read"), before);

        let empty = dir.path().join("empty.redb");
        std::fs::write(&empty, b"").expect("write");
        assert!(matches!(
            NodeStore::open(&empty),
            Err(StoreError::Corrupt { .. })
        ));

        let other = dir.path().join("other.redb");
        {
            let db = redb::Database::create(&other).expect("create");
            let txn = db.begin_write().expect("txn");
            txn.open_table(TableDefinition::<&str, &str>::new("orders"))
                .expect("table");
            txn.commit().expect("commit");
        }
        assert!(matches!(
            NodeStore::open(&other),
            Err(StoreError::Foreign { .. })
        ));

        let good = dir.path().join(DATABASE_FILE_NAME);
        drop(NodeStore::open(&good).expect("creates"));
        let length = std::fs::metadata(&good).expect("metadata").len();
        let truncated = dir.path().join("truncated.redb");
        std::fs::copy(&good, &truncated).expect("copy");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&truncated)
            .and_then(|f| f.set_len(length / 2))
            .expect("truncate");
        assert!(matches!(
            NodeStore::open(&truncated),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_panic_while_reading_becomes_an_error() {
        assert_eq!(catching_panics(|| 7), Ok(7));
        let caught =
            catching_panics(|| -> u8 { panic!("range end index 4294967251 out of range") });
        assert_eq!(
            caught,
            Err("range end index 4294967251 out of range".to_string())
        );
        let formatted = catching_panics(|| -> u8 { panic!("page {}", 9) });
        assert_eq!(formatted, Err("page 9".to_string()));
    }

    #[test]
    fn a_second_opener_is_told_the_database_is_in_use() {
        let (dir, _store) = temp_store();
        let again = NodeStore::open(&dir.path().join(DATABASE_FILE_NAME));
        assert!(matches!(again, Err(StoreError::InUse { .. })));
    }
}
