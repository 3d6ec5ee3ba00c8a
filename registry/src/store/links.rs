//! What each repository holds: the blobs it may serve and the manifests
//! that refer to others (OCI 1.1 referrers).
//!
//! Blobs are stored once, by digest, whatever repository they came
//! through; a repository serves only the blobs linked to it, by an upload
//! into it, a mount into it, or (for databases made before links) a
//! manifest of it naming the blob. Without the link, any blob would be
//! readable through any repository name, other vendors' included.

use super::{MANIFESTS, META, RegistryStore, StoreError};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

/// (repository, blob digest) → the blob's size.
pub(super) const BLOB_LINKS: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("blob_links");
/// (repository, subject digest, referrer digest) → the referrer's
/// descriptor, as the referrers API lists it.
pub(super) const REFERRERS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("referrers");

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(BLOB_LINKS)?;
    txn.open_table(REFERRERS)?;
    Ok(())
}

/// The digests of the blobs a manifest names (config and layers), read
/// leniently: a manifest stored earlier passed stricter checks.
pub fn named_blobs(manifest: &[u8]) -> Vec<(String, u64)> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(manifest) else {
        return Vec::new();
    };
    let config = value.get("config").into_iter();
    let layers = value
        .get("layers")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten();
    config
        .chain(layers)
        .filter_map(|d| {
            Some((
                d.get("digest")?.as_str()?.to_string(),
                d.get("size")?.as_u64()?,
            ))
        })
        .collect()
}

/// Schema 1 had no links: every blob a stored manifest names is linked to
/// that manifest's repository. Blobs uploaded but not yet named by a
/// manifest are not; their uploader pushes them again (a `HEAD` says they
/// are missing, and the upload finds the bytes already stored).
pub(super) fn link_existing_manifests(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let manifests = txn.open_table(MANIFESTS)?;
    let mut links = txn.open_table(BLOB_LINKS)?;
    let mut linked = 0;
    for row in manifests.iter()? {
        let (key, bytes) = row?;
        let (repository, _) = key.value();
        for (digest, size) in named_blobs(bytes.value()) {
            links.insert((repository, digest.as_str()), size)?;
            linked += 1;
        }
    }
    txn.open_table(META)?.insert("schema", super::SCHEMA)?;
    Ok(linked)
}

impl RegistryStore {
    /// The size of blob `digest` if `repository` holds it.
    pub fn linked_blob_size(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOB_LINKS)?;
        if table.get((repository, digest))?.is_none() {
            return Ok(None);
        }
        Ok(self.blob_size(digest))
    }

    /// Whether `repository` holds a manifest: a name only blobs were
    /// uploaded to is not yet a repository, as in the distribution server.
    pub fn repository_exists(&self, repository: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        let manifests = txn.open_table(MANIFESTS)?;
        match manifests.range((repository, "")..)?.next() {
            Some(row) => Ok(row?.0.value().0 == repository),
            None => Ok(false),
        }
    }

    /// Links a stored blob into `repository` (a cross-repository mount).
    /// False when the blob is not stored.
    pub fn link_blob(&self, repository: &str, digest: &str) -> Result<bool, StoreError> {
        let Some(size) = self.blob_size(digest) else {
            return Ok(false);
        };
        let txn = self.db.begin_write()?;
        txn.open_table(BLOB_LINKS)?
            .insert((repository, digest), size)?;
        txn.commit()?;
        Ok(true)
    }

    /// The descriptors of `repository`'s manifests whose subject is
    /// `subject`, in referrer digest order: at most `limit` of them after
    /// the referrer `after`, each with its digest.
    pub fn referrers(
        &self,
        repository: &str,
        subject: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REFERRERS)?;
        let mut out = Vec::new();
        for row in table.range((repository, subject, after.unwrap_or(""))..)? {
            let (key, value) = row?;
            let (repo, of, digest) = key.value();
            if repo != repository || of != subject || out.len() == limit {
                break;
            }
            if Some(digest) == after {
                continue;
            }
            out.push((digest.to_string(), value.value().to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_blob(store: &RegistryStore, repository: &str, bytes: &[u8]) -> String {
        let id = store
            .start_upload(repository, 8)
            .expect("store")
            .expect("room");
        let mut file = store.upload_file(&id, 0).expect("upload file");
        std::io::Write::write_all(&mut file, bytes).expect("write");
        store
            .record_upload_size(&id, bytes.len() as u64)
            .expect("size");
        let digest = crate::artifact::digest_of(bytes);
        store
            .finish_upload(&id, &digest)
            .expect("store")
            .expect("digest");
        digest
    }

    #[test]
    fn an_upload_links_its_blob_to_its_repository_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RegistryStore::create(dir.path()).expect("create");
        let digest = store_blob(&store, "acme/a", b"bytes");
        assert_eq!(
            store.linked_blob_size("acme/a", &digest).expect("store"),
            Some(5)
        );
        assert_eq!(
            store.linked_blob_size("bob/a", &digest).expect("store"),
            None
        );
        assert!(store.link_blob("bob/a", &digest).expect("store"));
        assert_eq!(
            store.linked_blob_size("bob/a", &digest).expect("store"),
            Some(5)
        );
    }

    #[test]
    fn a_schema_1_database_links_the_blobs_its_manifests_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (config, layer, loose) = {
            let store = RegistryStore::create(dir.path()).expect("create");
            let config = store_blob(&store, "acme/a", b"{}");
            let layer = store_blob(&store, "acme/a", b"layer");
            let loose = store_blob(&store, "acme/a", b"uploaded, never named");
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "config": {"mediaType": "x", "digest": config, "size": 2},
                "layers": [{"mediaType": "y", "digest": layer, "size": 5}],
            });
            let bytes = serde_json::to_vec(&manifest).expect("json");
            let digest = crate::artifact::digest_of(&bytes);
            store
                .put_manifest("acme/a", &digest, &bytes, Some("1.0.0"), None)
                .expect("store")
                .expect("stored");
            (config, layer, loose)
        };
        // What a registry made before links looks like.
        {
            let db = redb::Database::open(dir.path().join(super::super::DATABASE_FILE_NAME))
                .expect("open");
            let txn = db.begin_write().expect("write");
            txn.delete_table(BLOB_LINKS).expect("drop links");
            txn.delete_table(REFERRERS).expect("drop referrers");
            txn.open_table(META)
                .expect("meta")
                .insert("schema", "1")
                .expect("schema");
            txn.commit().expect("commit");
        }
        let store = RegistryStore::open(dir.path()).expect("open and upgrade");
        assert_eq!(
            store.linked_blob_size("acme/a", &config).expect("store"),
            Some(2)
        );
        assert_eq!(
            store.linked_blob_size("acme/a", &layer).expect("store"),
            Some(5)
        );
        assert_eq!(
            store.linked_blob_size("bob/a", &layer).expect("store"),
            None
        );
        // Only what a manifest names: the uploader pushes the rest again.
        assert_eq!(
            store.linked_blob_size("acme/a", &loose).expect("store"),
            None
        );
        assert!(store.blob_size(&loose).is_some());
    }
}
