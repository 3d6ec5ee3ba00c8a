//! The handle on the database file, and its recovery from a failed write.
//!
//! After one failed write (a full disk, an I/O error) redb refuses every
//! later operation on that handle until it is closed and opened again. A
//! node that serves sales cannot wait for a restart, so every transaction
//! starts here: while the last write failed, the handle is reopened first
//! (at most once a second), and writes work again as soon as the disk does.
//! What failed is kept for `/v1/health` to report.

use super::StoreError;
use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// How often a handle that failed is reopened, at most.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// The settings every open of the node database uses, a reopen included.
pub(super) fn builder() -> redb::Builder {
    let mut builder = Database::builder();
    // A Pi-class node has little memory to spare; redb's default cache may
    // grow to 1 GiB.
    builder.set_cache_size(16 << 20);
    // Every page's checksum, before anything trusts a page: a changed byte
    // anywhere is reported as corruption rather than read as a plugin's
    // grants or panicked on later. It reads the whole file once per open,
    // and fails before redb writes anything; checking an open database
    // instead would already have marked the file as in use.
    builder.set_check_integrity_on_open(true);
    builder
}

pub(super) struct DatabaseFile {
    path: PathBuf,
    /// `None` after a reopen that failed. Callers clone the `Arc` out and
    /// release the lock before redb may wait (a write transaction waits for
    /// the one before it), so a reopen never waits behind them.
    current: RwLock<Option<Arc<Database>>>,
    trouble: Mutex<Trouble>,
}

#[derive(Default)]
struct Trouble {
    /// Why the last write failed, until one succeeds.
    failing: Option<String>,
    last_reopen: Option<Instant>,
}

impl DatabaseFile {
    pub(super) fn new(db: Database, path: &Path) -> DatabaseFile {
        DatabaseFile {
            path: path.to_path_buf(),
            current: RwLock::new(Some(Arc::new(db))),
            trouble: Mutex::new(Trouble::default()),
        }
    }

    pub(super) fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.recover_if_failing()?;
        let begun = self.handle()?.begin_write().map_err(StoreError::from);
        begun.inspect_err(|error| self.note(error))
    }

    pub(super) fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        self.recover_if_failing()?;
        let begun = self.handle()?.begin_read().map_err(StoreError::from);
        begun.inspect_err(|error| self.note(error))
    }

    /// Commits `txn`, keeping note of whether writes work.
    pub(super) fn commit(&self, txn: WriteTransaction) -> Result<(), StoreError> {
        match txn.commit() {
            Ok(()) => {
                self.lock_trouble().failing = None;
                Ok(())
            }
            Err(error) => {
                let error = StoreError::from(error);
                self.note(&error);
                Err(error)
            }
        }
    }

    /// Copies the file as of its last commit into `to`, while no commit
    /// can happen. redb writes nothing into the file between commits (the
    /// pages a commit needs go to free space, and the header that points
    /// at them is written last), so with a write transaction held open and
    /// left empty, the bytes on disk are that commit, whole. Writers wait
    /// for the copy (about a second for 100 MB on an SD card); readers do
    /// not. Returns the bytes copied.
    pub(super) fn copy_committed(&self, to: &mut dyn std::io::Write) -> Result<u64, StoreError> {
        let held = self.begin_write()?;
        let copied = std::fs::File::open(&self.path)
            .and_then(|mut file| std::io::copy(&mut file, to))
            .map_err(|source| StoreError::Open {
                path: self.path.clone(),
                source,
            });
        // Nothing was written in it: dropping it aborts, and writes nothing.
        drop(held);
        copied
    }

    /// Why writes fail now, if they do.
    pub(super) fn failing(&self) -> Option<String> {
        self.lock_trouble().failing.clone()
    }

    fn handle(&self) -> Result<Arc<Database>, StoreError> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current.clone().ok_or_else(|| StoreError::Unavailable {
            path: self.path.clone(),
            why: self
                .failing()
                .unwrap_or_else(|| "it could not be reopened".into()),
        })
    }

    fn lock_trouble(&self) -> std::sync::MutexGuard<'_, Trouble> {
        self.trouble.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers an error that leaves the handle unusable.
    fn note(&self, error: &StoreError) {
        if let StoreError::Database(inner) = error
            && matches!(inner, redb::Error::Io(_) | redb::Error::PreviousIo)
        {
            self.lock_trouble().failing = Some(inner.to_string());
        }
    }

    fn recover_if_failing(&self) -> Result<(), StoreError> {
        {
            let mut trouble = self.lock_trouble();
            if trouble.failing.is_none()
                || trouble
                    .last_reopen
                    .is_some_and(|at| at.elapsed() < REOPEN_EVERY)
            {
                return Ok(());
            }
            trouble.last_reopen = Some(Instant::now());
        }
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        // The old handle holds the file's lock: it goes before the new one
        // can open. redb closes it once the last of its transactions ends;
        // until then the open below fails and is tried again a second later.
        drop(current.take());
        match builder().open(&self.path) {
            Ok(db) => {
                *current = Some(Arc::new(db));
                tracing::info!(path = %self.path.display(), "reopened the node database after a failed write");
                Ok(())
            }
            Err(error) => {
                let why = match error {
                    redb::DatabaseError::DatabaseAlreadyOpen => {
                        "waiting for transactions on the failed handle to end before reopening"
                            .to_string()
                    }
                    other => format!("reopening it failed: {other}"),
                };
                // `failing` keeps the first cause (a full disk): that is
                // what the operator has to fix.
                Err(StoreError::Unavailable {
                    path: self.path.clone(),
                    why,
                })
            }
        }
    }
}
