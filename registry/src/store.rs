//! The registry's state: one redb file for everything small (namespaces,
//! tokens, TUF metadata, manifests, tags, upload sessions) and a
//! content-addressed blob folder, opened through cap-std, for the bytes.
//!
//! | table        | key                    | value                               |
//! |--------------|------------------------|-------------------------------------|
//! | `meta`       | name                   | "outpost-registry", schema version  |
//! | `namespaces` | namespace              | JSON [`Namespace`]: keys, threshold |
//! | `tokens`     | sha-256 of the token   | JSON [`TokenRecord`]                |
//! | `tuf`        | file name (`3.acme.json`) | the signed metadata as served    |
//! | `tuf_latest` | role name              | its newest version                  |
//! | `manifests`  | (repository, digest)   | the manifest's bytes                |
//! | `tags`       | (repository, tag)      | digest                              |
//! | `uploads`    | upload id              | (repository, bytes received)        |
//! | `blob_links` | (repository, digest)   | size: the blobs a repository serves |
//! | `referrers`  | (repository, subject, digest) | the referrer's descriptor    |
//! | `enrolment_tokens`, `nodes` | | the fleet ([`fleet`])                  |
//! | `rollouts`, `rollout_progress` | | rollouts ([`rollouts`])           |
//!
//! A blob is written to `uploads/<id>` and renamed to `blobs/sha256/<hex>`
//! only once its digest is checked, so a reader never sees a partial blob
//! and a crash leaves at most an orphan upload, which the upload sweep
//! removes ([`uploads`]).

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use tough::schema::key::Key;

mod fleet;
mod links;
mod rollouts;
mod uploads;
pub use fleet::{EnrolRefusal, EnrolmentToken, NodeRecord};
pub use links::named_blobs;
pub use uploads::PrunedUploads;

pub const DATABASE_FILE_NAME: &str = "registry.redb";
const FORMAT: &str = "outpost-registry";
/// 2 added `blob_links` and `referrers` ([`links`]), 3 the fleet's tables
/// ([`fleet`], [`rollouts`]); an older database is brought up to 3 when
/// opened.
const SCHEMA: &str = "3";

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const NAMESPACES: TableDefinition<&str, &[u8]> = TableDefinition::new("namespaces");
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
const TUF: TableDefinition<&str, &[u8]> = TableDefinition::new("tuf");
const TUF_LATEST: TableDefinition<&str, u64> = TableDefinition::new("tuf_latest");
const MANIFESTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("manifests");
const TAGS: TableDefinition<(&str, &str), &str> = TableDefinition::new("tags");
const UPLOADS: TableDefinition<&str, (&str, u64)> = TableDefinition::new("uploads");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the registry database {path} is in use by another process (a running `outpost-registry serve`?); stop it first"
    )]
    InUse { path: PathBuf },
    #[error("{path} is not an Outpost registry database ({detail}); it was left untouched")]
    Foreign { path: PathBuf, detail: String },
    #[error("no registry in {path}; create one with `outpost-registry init --data-dir {path}`")]
    NotInitialised { path: PathBuf },
    #[error("the registry database: {0}")]
    Database(String),
    #[error("the blob store {path}: {source}")]
    Blobs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stored {what} is damaged: {detail}")]
    Record { what: String, detail: String },
}

macro_rules! db_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(e.to_string())
            }
        }
    )*};
}
db_error!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A vendor namespace: who may sign its releases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub keys: Vec<Key>,
    pub threshold: u64,
    pub created_at: u64,
}

/// What a token may do: push and publish under one namespace, or administer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub namespace: String,
    pub created_at: u64,
    pub label: String,
}

pub struct RegistryStore {
    db: Database,
    blobs: Dir,
    uploads: Dir,
    path: PathBuf,
}

impl std::fmt::Debug for RegistryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Record {
        what: what.to_string(),
        detail: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn hex_of(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(hex)
}

impl RegistryStore {
    /// Creates a registry in `dir`, which must not hold one yet.
    pub fn create(dir: &Path) -> Result<RegistryStore, StoreError> {
        let path = dir.join(DATABASE_FILE_NAME);
        if path.exists() {
            return Err(StoreError::Foreign {
                path,
                detail: "a registry already exists here".into(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Blobs {
            path: dir.to_path_buf(),
            source,
        })?;
        let db = Database::create(&path).map_err(|e| open_error(&path, e))?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert("format", FORMAT)?;
            meta.insert("schema", SCHEMA)?;
            create_tables(&txn)?;
        }
        txn.commit()?;
        Self::with_db(dir, db, path)
    }

    /// Opens the registry in `dir`.
    pub fn open(dir: &Path) -> Result<RegistryStore, StoreError> {
        let path = dir.join(DATABASE_FILE_NAME);
        if !path.exists() {
            return Err(StoreError::NotInitialised {
                path: dir.to_path_buf(),
            });
        }
        let db = Database::open(&path).map_err(|e| open_error(&path, e))?;
        {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META).map_err(|e| StoreError::Foreign {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            let format = meta.get("format")?.map(|v| v.value().to_string());
            if format.as_deref() != Some(FORMAT) {
                return Err(StoreError::Foreign {
                    path,
                    detail: format!("its format is {format:?}"),
                });
            }
            let schema = meta.get("schema")?.map(|v| v.value().to_string());
            match schema.as_deref() {
                Some(SCHEMA) => {}
                Some(old @ ("1" | "2")) => {
                    let from_1 = old == "1";
                    drop(meta);
                    drop(txn);
                    let txn = db.begin_write()?;
                    let mut linked = 0;
                    if from_1 {
                        links::create_tables(&txn)?;
                        linked = links::link_existing_manifests(&txn)?;
                    }
                    fleet::create_tables(&txn)?;
                    rollouts::create_tables(&txn)?;
                    txn.open_table(META)?.insert("schema", SCHEMA)?;
                    txn.commit()?;
                    tracing::info!(linked, "registry database upgraded to schema {SCHEMA}");
                }
                other => {
                    return Err(StoreError::Foreign {
                        path,
                        detail: format!(
                            "its schema is {other:?} and this registry knows {SCHEMA}; \
                             run the outpost-registry that wrote it"
                        ),
                    });
                }
            }
        }
        Self::with_db(dir, db, path)
    }

    fn with_db(dir: &Path, db: Database, path: PathBuf) -> Result<RegistryStore, StoreError> {
        let open_dir = |name: &str| -> Result<Dir, StoreError> {
            let sub = dir.join(name);
            std::fs::create_dir_all(&sub).map_err(|source| StoreError::Blobs {
                path: sub.clone(),
                source,
            })?;
            Dir::open_ambient_dir(&sub, ambient_authority())
                .map_err(|source| StoreError::Blobs { path: sub, source })
        };
        Ok(RegistryStore {
            db,
            blobs: open_dir("blobs/sha256")?,
            uploads: open_dir("uploads")?,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    // --- namespaces and tokens ---

    pub fn namespace(&self, name: &str) -> Result<Option<Namespace>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(NAMESPACES)?;
        table
            .get(name)?
            .map(|v| decode(&format!("namespace {name}"), v.value()))
            .transpose()
    }

    pub fn namespaces(&self) -> Result<BTreeMap<String, Namespace>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(NAMESPACES)?;
        let mut out = BTreeMap::new();
        for row in table.iter()? {
            let (name, value) = row?;
            let name = name.value().to_string();
            out.insert(
                name.clone(),
                decode(&format!("namespace {name}"), value.value())?,
            );
        }
        Ok(out)
    }

    /// Records a namespace; false if it exists (namespaces are never reassigned here).
    pub fn add_namespace(&self, name: &str, namespace: &Namespace) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let added = {
            let mut table = txn.open_table(NAMESPACES)?;
            if table.get(name)?.is_some() {
                false
            } else {
                table.insert(name, encode(namespace).as_slice())?;
                true
            }
        };
        txn.commit()?;
        Ok(added)
    }

    /// Replaces an existing namespace's record; `false` if there is none.
    pub fn replace_namespace(&self, name: &str, namespace: &Namespace) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let replaced = {
            let mut table = txn.open_table(NAMESPACES)?;
            let exists = table.get(name)?.is_some();
            if exists {
                table.insert(name, encode(namespace).as_slice())?;
            }
            exists
        };
        txn.commit()?;
        Ok(replaced)
    }

    pub fn add_token(&self, token_sha256: &str, record: &TokenRecord) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(TOKENS)?
            .insert(token_sha256, encode(record).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Every token: (sha-256 of the token, record).
    pub fn tokens(&self) -> Result<Vec<(String, TokenRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TOKENS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (hash, record) = row?;
            out.push((hash.value().to_string(), decode("token", record.value())?));
        }
        Ok(out)
    }

    /// Removes the one token whose hash starts with `prefix`; `Ok(Err(n))`
    /// when n tokens match instead of one (nothing is removed).
    pub fn revoke_token(&self, prefix: &str) -> Result<Result<TokenRecord, usize>, StoreError> {
        let txn = self.db.begin_write()?;
        let outcome = {
            let mut table = txn.open_table(TOKENS)?;
            let mut matching = Vec::new();
            for row in table.iter()? {
                let (hash, record) = row?;
                if !prefix.is_empty() && hash.value().starts_with(prefix) {
                    matching.push((hash.value().to_string(), record.value().to_vec()));
                }
            }
            match matching.as_slice() {
                [(hash, record)] => {
                    let record = decode("token", record)?;
                    table.remove(hash.as_str())?;
                    Ok(record)
                }
                other => Err(other.len()),
            }
        };
        txn.commit()?;
        Ok(outcome)
    }

    pub fn token(&self, token_sha256: &str) -> Result<Option<TokenRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TOKENS)?;
        table
            .get(token_sha256)?
            .map(|v| decode("token", v.value()))
            .transpose()
    }

    // --- TUF metadata ---

    pub fn tuf_file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TUF)?;
        Ok(table.get(name)?.map(|v| v.value().to_vec()))
    }

    pub fn tuf_latest(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TUF_LATEST)?;
        let mut out = BTreeMap::new();
        for row in table.iter()? {
            let (name, version) = row?;
            out.insert(name.value().to_string(), version.value());
        }
        Ok(out)
    }

    /// Writes new metadata files and role versions in one transaction, so a
    /// client never sees a timestamp naming a snapshot that is not there.
    /// `check` runs inside the transaction against the versions it sees, so
    /// two publishes cannot both build on the same snapshot.
    pub fn write_tuf<E>(
        &self,
        check: impl FnOnce(&BTreeMap<String, u64>) -> Result<TufWrite, E>,
    ) -> Result<Result<(), E>, StoreError> {
        let txn = self.db.begin_write()?;
        {
            let latest = {
                let table = txn.open_table(TUF_LATEST)?;
                let mut out = BTreeMap::new();
                for row in table.iter()? {
                    let (name, version) = row?;
                    out.insert(name.value().to_string(), version.value());
                }
                out
            };
            let write = match check(&latest) {
                Ok(write) => write,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let mut files = txn.open_table(TUF)?;
            for (name, bytes) in &write.files {
                files.insert(name.as_str(), bytes.as_slice())?;
            }
            let mut versions = txn.open_table(TUF_LATEST)?;
            for (role, version) in &write.versions {
                versions.insert(role.as_str(), *version)?;
            }
        }
        txn.commit()?;
        Ok(Ok(()))
    }

    // --- manifests and tags ---

    pub fn manifest(&self, repository: &str, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MANIFESTS)?;
        Ok(table.get((repository, digest))?.map(|v| v.value().to_vec()))
    }

    pub fn tag(&self, repository: &str, tag: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TAGS)?;
        Ok(table.get((repository, tag))?.map(|v| v.value().to_string()))
    }

    pub fn tags(&self, repository: &str) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TAGS)?;
        let mut out = Vec::new();
        for row in table.range((repository, "")..)? {
            let (key, _) = row?;
            let (repo, tag) = key.value();
            if repo != repository {
                break;
            }
            out.push(tag.to_string());
        }
        Ok(out)
    }

    /// Stores a manifest, and tags it if `tag` is given. A tag, once set,
    /// names the same manifest forever: published versions are immutable.
    /// `referrer` is (subject digest, this manifest's descriptor) for a
    /// manifest that refers to another.
    pub fn put_manifest(
        &self,
        repository: &str,
        digest: &str,
        bytes: &[u8],
        tag: Option<&str>,
        referrer: Option<(&str, &[u8])>,
    ) -> Result<Result<(), String>, StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut tags = txn.open_table(TAGS)?;
            if let Some(tag) = tag
                && let Some(existing) = tags.get((repository, tag))?
                && existing.value() != digest
            {
                return Ok(Err(format!(
                    "{repository}:{tag} is already published as {}; a published version never changes, publish a new version instead",
                    existing.value()
                )));
            }
            if let Some(tag) = tag {
                tags.insert((repository, tag), digest)?;
            }
            txn.open_table(MANIFESTS)?
                .insert((repository, digest), bytes)?;
            if let Some((subject, descriptor)) = referrer {
                txn.open_table(links::REFERRERS)?
                    .insert((repository, subject, digest), descriptor)?;
            }
        }
        txn.commit()?;
        Ok(Ok(()))
    }

    // --- blobs ---

    fn blob_name(digest: &str) -> Option<String> {
        hex_of(digest).map(str::to_string)
    }

    /// The blob's size, if stored.
    pub fn blob_size(&self, digest: &str) -> Option<u64> {
        let name = Self::blob_name(digest)?;
        self.blobs.metadata(name).ok().map(|m| m.len())
    }

    /// Opens a stored blob for reading.
    pub fn open_blob(&self, digest: &str) -> Option<cap_std::fs::File> {
        let name = Self::blob_name(digest)?;
        self.blobs.open(name).ok()
    }

    pub fn read_blob(&self, digest: &str, limit: u64) -> Option<Vec<u8>> {
        let file = self.open_blob(digest)?;
        let mut bytes = Vec::new();
        file.take(limit).read_to_end(&mut bytes).ok()?;
        Some(bytes)
    }
}

/// Metadata files and role versions to write together.
#[derive(Debug, Default)]
pub struct TufWrite {
    pub files: Vec<(String, Vec<u8>)>,
    pub versions: Vec<(String, u64)>,
}

fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(NAMESPACES)?;
    txn.open_table(TOKENS)?;
    txn.open_table(TUF)?;
    txn.open_table(TUF_LATEST)?;
    txn.open_table(MANIFESTS)?;
    txn.open_table(TAGS)?;
    txn.open_table(UPLOADS)?;
    links::create_tables(txn)?;
    fleet::create_tables(txn)?;
    rollouts::create_tables(txn)?;
    Ok(())
}

fn open_error(path: &Path, error: redb::DatabaseError) -> StoreError {
    match error {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
            path: path.to_path_buf(),
        },
        other => StoreError::Foreign {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    }
}

pub fn is_digest(digest: &str) -> bool {
    hex_of(digest).is_some()
}
