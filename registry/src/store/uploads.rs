//! Blob upload sessions: a row in `uploads` (repository, bytes received) and
//! a file `uploads/<id>` that becomes `blobs/sha256/<hex>` once its digest
//! checks out.
//!
//! Anyone holding a vendor token can open sessions and walk away, and each
//! may hold up to the largest blob accepted. Two bounds keep that from
//! filling the registry's disk: a namespace holds at most a set number of
//! unfinished sessions at once, and sessions that received nothing for a
//! while are removed by [`RegistryStore::prune_uploads`], which the server
//! runs at start and periodically.

use super::links::BLOB_LINKS;
use super::{RegistryStore, StoreError, UPLOADS};
use redb::{ReadableDatabase, ReadableTable};
use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// What one sweep of abandoned uploads removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrunedUploads {
    /// Upload sessions ended.
    pub sessions: usize,
    /// Bytes of disk given back (sessions' files and orphan files).
    pub bytes: u64,
}

fn namespace_of(repository: &str) -> &str {
    repository.split('/').next().unwrap_or(repository)
}

impl RegistryStore {
    fn upload_path(&self, id: &str) -> PathBuf {
        self.path.with_file_name("uploads").join(id)
    }

    /// Starts an upload session for `repository`, or `None` when its
    /// namespace already holds `max_open_in_namespace` unfinished ones.
    /// Counting and recording happen in one write transaction, so
    /// concurrent starts cannot overshoot the bound.
    pub fn start_upload(
        &self,
        repository: &str,
        max_open_in_namespace: usize,
    ) -> Result<Option<String>, StoreError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| StoreError::Database(e.to_string()))?;
        let id = hex::encode(id);
        let namespace = namespace_of(repository);
        let txn = self.db.begin_write()?;
        let full = {
            let mut table = txn.open_table(UPLOADS)?;
            let mut open = 0;
            for row in table.iter()? {
                let (_, value) = row?;
                if namespace_of(value.value().0) == namespace {
                    open += 1;
                }
            }
            if open < max_open_in_namespace {
                table.insert(id.as_str(), (repository, 0))?;
            }
            open >= max_open_in_namespace
        };
        if full {
            txn.abort()?;
            return Ok(None);
        }
        // The file exists before the row is visible, so a row never names a
        // missing file except while a session is being finished or removed.
        self.uploads
            .create(&id)
            .map_err(|source| StoreError::Blobs {
                path: self.upload_path(&id),
                source,
            })?;
        txn.commit()?;
        Ok(Some(id))
    }

    /// The upload's repository and bytes received so far.
    pub fn upload(&self, id: &str) -> Result<Option<(String, u64)>, StoreError> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let txn = self.db.begin_read()?;
        let table = txn.open_table(UPLOADS)?;
        Ok(table.get(id)?.map(|v| {
            let (repo, size) = v.value();
            (repo.to_string(), size)
        }))
    }

    /// The upload's file, cut to `offset` (the bytes received so far) and
    /// positioned there for the next chunk.
    pub fn upload_file(&self, id: &str, offset: u64) -> Result<cap_std::fs::File, StoreError> {
        let io = |source| StoreError::Blobs {
            path: self.upload_path(id),
            source,
        };
        let mut file = self
            .uploads
            .open_with(id, cap_std::fs::OpenOptions::new().write(true))
            .map_err(io)?;
        file.set_len(offset).map_err(io)?;
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        Ok(file)
    }

    /// Records how many bytes upload `id` holds. A session removed in the
    /// meantime stays removed.
    pub fn record_upload_size(&self, id: &str, size: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(UPLOADS)?;
            let repo = table.get(id)?.map(|v| v.value().0.to_string());
            if let Some(repo) = repo {
                table.insert(id, (repo.as_str(), size))?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Checks the upload's digest and moves it into the blob store.
    /// `Ok(Err(actual))` when the digest does not match (the upload is dropped).
    pub fn finish_upload(&self, id: &str, digest: &str) -> Result<Result<u64, String>, StoreError> {
        let io = |source| StoreError::Blobs {
            path: self.upload_path(id),
            source,
        };
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut file = self.uploads.open(id).map_err(io)?;
        let mut buffer = vec![0u8; 64 << 10];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buffer).map_err(io)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            sha2::Digest::update(&mut hasher, &buffer[..n]);
        }
        file.sync_all().map_err(io)?;
        let actual = format!("sha256:{}", hex::encode(sha2::Digest::finalize(hasher)));
        let result = if actual == digest {
            let name = Self::blob_name(digest).unwrap_or_default();
            self.uploads.rename(id, &self.blobs, &name).map_err(io)?;
            Ok(size)
        } else {
            let _ = self.uploads.remove_file(id);
            Err(actual)
        };
        let txn = self.db.begin_write()?;
        {
            let mut uploads = txn.open_table(UPLOADS)?;
            let repository = uploads.remove(id)?.map(|row| row.value().0.to_string());
            if let (Ok(size), Some(repository)) = (&result, repository) {
                txn.open_table(BLOB_LINKS)?
                    .insert((repository.as_str(), digest), *size)?;
            }
        }
        txn.commit()?;
        Ok(result)
    }

    pub fn cancel_upload(&self, id: &str) -> Result<(), StoreError> {
        let _ = self.uploads.remove_file(id);
        let txn = self.db.begin_write()?;
        txn.open_table(UPLOADS)?.remove(id)?;
        txn.commit()?;
        Ok(())
    }

    /// Removes upload sessions whose file has not been written for `idle`,
    /// files no session names (left by a crash) that old, and sessions
    /// whose file is gone. A session being written to is never idle: every
    /// chunk moves its file's modification time.
    pub fn prune_uploads(&self, idle: Duration) -> Result<PrunedUploads, StoreError> {
        let now = SystemTime::now();
        let dir_error = |source| StoreError::Blobs {
            path: self.path.with_file_name("uploads"),
            source,
        };
        // The folder is read under the write lock: `start_upload` creates a
        // session's file while it holds that lock, so every row committed
        // before this point has its file in the listing.
        let txn = self.db.begin_write()?;
        let mut stale = BTreeSet::new();
        let mut present = BTreeSet::new();
        let mut pruned = PrunedUploads::default();
        for entry in self.uploads.entries().map_err(dir_error)? {
            let entry = entry.map_err(dir_error)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            present.insert(name.clone());
            let modified = metadata.modified().map(|m| m.into_std()).unwrap_or(now);
            if now.duration_since(modified).unwrap_or_default() >= idle {
                pruned.bytes += metadata.len();
                stale.insert(name);
            }
        }
        {
            let mut table = txn.open_table(UPLOADS)?;
            let mut rows = Vec::new();
            for row in table.iter()? {
                let (id, _) = row?;
                rows.push(id.value().to_string());
            }
            for id in rows {
                if stale.contains(&id) || !present.contains(&id) {
                    table.remove(id.as_str())?;
                    pruned.sessions += 1;
                }
            }
        }
        // Rows go first: a session must not outlive its file.
        txn.commit()?;
        for name in &stale {
            if let Err(source) = self.uploads.remove_file(name)
                && source.kind() != std::io::ErrorKind::NotFound
            {
                return Err(StoreError::Blobs {
                    path: self.upload_path(name),
                    source,
                });
            }
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(store: &RegistryStore, id: &str, by: Duration) {
        let file = std::fs::File::options()
            .write(true)
            .open(store.upload_path(id))
            .expect("open upload");
        file.set_modified(SystemTime::now() - by)
            .expect("set mtime");
    }

    #[test]
    fn a_namespace_holds_a_bounded_number_of_unfinished_uploads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RegistryStore::create(dir.path()).expect("create");
        let first = store.start_upload("acme/a", 2).expect("start");
        let second = store.start_upload("acme/b", 2).expect("start");
        assert!(first.is_some() && second.is_some());
        assert_eq!(store.start_upload("acme/c", 2).expect("start"), None);
        // Other namespaces have their own bound.
        assert!(store.start_upload("bob/a", 2).expect("start").is_some());
        store
            .cancel_upload(first.as_deref().expect("id"))
            .expect("cancel");
        assert!(store.start_upload("acme/c", 2).expect("start").is_some());
    }

    #[test]
    fn idle_uploads_and_orphan_files_are_pruned_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RegistryStore::create(dir.path()).expect("create");
        let idle = store.start_upload("acme/a", 8).expect("start").expect("id");
        let live = store.start_upload("acme/b", 8).expect("start").expect("id");
        {
            use std::io::Write;
            let mut file = store.upload_file(&idle, 0).expect("file");
            file.write_all(&[7u8; 1000]).expect("write");
        }
        store.record_upload_size(&idle, 1000).expect("record");
        age(&store, &idle, Duration::from_secs(3 * 3600));
        // A crash between creating a file and recording it leaves this.
        let orphan = "0".repeat(32);
        store.uploads.create(&orphan).expect("orphan");
        age(&store, &orphan, Duration::from_secs(3 * 3600));

        let pruned = store
            .prune_uploads(Duration::from_secs(3600))
            .expect("prune");
        assert_eq!(
            pruned,
            PrunedUploads {
                sessions: 1,
                bytes: 1000
            }
        );
        assert_eq!(store.upload(&idle).expect("read"), None);
        assert!(!store.upload_path(&idle).exists());
        assert!(!store.upload_path(&orphan).exists());
        assert_eq!(
            store.upload(&live).expect("read"),
            Some(("acme/b".to_string(), 0))
        );
        assert!(store.upload_path(&live).exists());
        // A late chunk for the pruned session does not bring its row back.
        store.record_upload_size(&idle, 2000).expect("record");
        assert_eq!(store.upload(&idle).expect("read"), None);
        assert_eq!(
            store
                .prune_uploads(Duration::from_secs(3600))
                .expect("prune"),
            PrunedUploads::default()
        );
    }
}
