//! Rolling local snapshots: a backup every `backup.every-minutes` into
//! `<data>/snapshots/`, kept for `backup.keep-hours` and within
//! `backup.max-local-mib`, oldest dropped first. They are for the bad day
//! when the database is damaged (the node then names the newest one that
//! opens) or a change must be undone; they share the box's fate, so a copy
//! off the box (`outpost backup -o /media/usb/...`) is still the operator's
//! to make.

use super::{BackupError, Manifest};
use crate::node::Node;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The snapshots' folder inside the data directory.
pub const SNAPSHOTS_DIR: &str = "snapshots";
const SUFFIX: &str = ".outpost-backup";

/// One local snapshot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Snapshot {
    pub path: PathBuf,
    /// Seconds since the Unix epoch, from its name.
    pub made_at: u64,
    pub bytes: u64,
}

/// The snapshots in `data_dir`, newest first.
pub fn list(data_dir: &Path) -> Vec<Snapshot> {
    let Ok(entries) = std::fs::read_dir(data_dir.join(SNAPSHOTS_DIR)) else {
        return Vec::new();
    };
    let mut snapshots: Vec<Snapshot> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let made_at = name.strip_suffix(SUFFIX)?.parse().ok()?;
            let bytes = entry.metadata().ok()?.len();
            Some(Snapshot {
                path: entry.path(),
                made_at,
                bytes,
            })
        })
        .collect();
    snapshots.sort_by_key(|snapshot| std::cmp::Reverse(snapshot.made_at));
    snapshots
}

/// A snapshot an operator asked for (`outpost backup`): where it is and
/// what it holds, with the recovery code if its key is new.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Taken {
    pub snapshot: Snapshot,
    pub manifest: Manifest,
    pub new_recovery_code: Option<String>,
}

/// Takes a snapshot now, for the operator: like the hourly one, but a disk
/// too full for it is an error that says so.
pub fn take_now(node: &Node) -> Result<Taken, BackupError> {
    take(node)?.ok_or_else(|| BackupError::Write {
        what: node.data_dir().join(SNAPSHOTS_DIR).display().to_string(),
        source: std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "the disk is too full for a snapshot; free space on it first",
        ),
    })
}

/// Takes a snapshot now, then drops those past the age and size budget.
/// Skipped (`None`) when the disk is too full for one: a snapshot must
/// never be what fills the disk under a sale.
pub fn take(node: &Node) -> Result<Option<Taken>, BackupError> {
    // One at a time (the hourly one and an operator's), so neither takes
    // the other's half-written file for a crash's leftovers.
    static TAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _taking = TAKING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let settings = &node.config().backup;
    let data_dir = node.data_dir();
    let dir = data_dir.join(SNAPSHOTS_DIR);
    let write_error = |source| BackupError::Write {
        what: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(write_error)?;
    remove_leftovers(data_dir);
    // Room for one more the size of the last, above the plugins' reserve.
    let expected = list(data_dir)
        .first()
        .map_or_else(|| database_bytes(node), |newest| newest.bytes);
    let reserve = node.store.disk_reserve();
    if let Some(free) = crate::store::free_bytes(data_dir)
        && free < reserve.saturating_add(expected.saturating_mul(2))
    {
        tracing::warn!(
            free_mib = free >> 20,
            "skipped the hourly snapshot: the disk is nearly full (free space on it, or lower \
             backup.max-local-mib)"
        );
        return Ok(None);
    }
    let made_at = crate::clock::now_seconds();
    let path = dir.join(format!("{made_at}{SUFFIX}"));
    let mut staged = tempfile::Builder::new()
        .prefix(".snapshot-")
        .tempfile_in(&dir)
        .map_err(write_error)?;
    let made = super::make(node, std::io::BufWriter::new(staged.as_file_mut()))?;
    staged.as_file().sync_all().map_err(write_error)?;
    // Read back before it counts: a snapshot is for the day nothing else
    // works, and must not be found wanting then.
    let (key, _) = super::backup_key(data_dir)?;
    let written = std::fs::File::open(staged.path()).map_err(write_error)?;
    super::verify(written, &key, &staged.path().display().to_string())?;
    staged
        .persist(&path)
        .map_err(|error| write_error(error.error))?;
    prune(
        data_dir,
        &path,
        Duration::from_secs(settings.keep_hours * 3600),
        settings.max_local_mib << 20,
    );
    Ok(Some(Taken {
        snapshot: Snapshot {
            path,
            made_at,
            bytes: made.bytes,
        },
        manifest: made.manifest,
        new_recovery_code: made.new_recovery_code,
    }))
}

/// Removes what a crash left half-written: snapshots being written and the
/// database copies they were made from.
fn remove_leftovers(data_dir: &Path) {
    let places = [
        (data_dir.join(SNAPSHOTS_DIR), ".snapshot-"),
        (data_dir.to_path_buf(), ".backup-"),
    ];
    for (dir, prefix) in places {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

fn database_bytes(node: &Node) -> u64 {
    std::fs::metadata(node.store.path()).map_or(0, |m| m.len())
}

/// Drops snapshots older than `keep`, then the oldest until the rest fit
/// `budget`. `just_taken` is always kept, whatever its size: it is what a
/// bad day restores. (Ages come from the names, the clock's at the time: a
/// snapshot named in the future by a clock that ran ahead ages from now.)
fn prune(data_dir: &Path, just_taken: &Path, keep: Duration, budget: u64) {
    let now = crate::clock::now_seconds();
    let mut total = 0u64;
    let mut snapshots = list(data_dir);
    // The one just taken counts first, then the rest newest first.
    snapshots.sort_by_key(|snapshot| snapshot.path != just_taken);
    for snapshot in snapshots {
        if snapshot.path == just_taken {
            if snapshot.bytes > budget {
                tracing::warn!(
                    bytes = snapshot.bytes,
                    "a snapshot is larger than backup.max-local-mib: only the newest is kept; \
                     raise it to keep 72 hours of them"
                );
            }
            total = snapshot.bytes;
            continue;
        }
        let too_old = now.saturating_sub(snapshot.made_at.min(now)) > keep.as_secs()
            || snapshot.made_at > now.saturating_add(keep.as_secs());
        let too_big = total.saturating_add(snapshot.bytes) > budget;
        if too_old || too_big {
            if let Err(error) = std::fs::remove_file(&snapshot.path) {
                tracing::warn!(path = %snapshot.path.display(), "cannot drop an old snapshot: {error}");
            }
        } else {
            total += snapshot.bytes;
        }
    }
}

/// The newest snapshot in `data_dir` that opens whole with the node's
/// backup key, with its manifest: what to restore when the database is
/// damaged.
pub fn newest_good(data_dir: &Path) -> Option<(Snapshot, Manifest)> {
    let key = std::fs::read_to_string(data_dir.join(super::BACKUP_KEY_FILE)).ok()?;
    let key = super::parse_recovery_code(key.trim()).ok()?;
    list(data_dir).into_iter().find_map(|snapshot| {
        let file = std::fs::File::open(&snapshot.path).ok()?;
        let manifest = super::verify(file, &key, &snapshot.path.display().to_string()).ok()?;
        Some((snapshot, manifest))
    })
}

/// Takes a snapshot every `backup.every-minutes` until `stopped`.
pub async fn run(node: std::sync::Arc<Node>, stopped: impl std::future::Future<Output = ()>) {
    let every = node.config().backup.every_minutes;
    if every == 0 {
        return;
    }
    let period = Duration::from_secs(every * 60);
    tokio::pin!(stopped);
    // The first one an interval after start, so a node restarting in a
    // loop does not fill the disk with snapshots.
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = &mut stopped => return,
        }
        let worker = node.clone();
        match tokio::task::spawn_blocking(move || take(&worker)).await {
            Ok(Ok(Some(taken))) => {
                tracing::info!(
                    path = %taken.snapshot.path.display(),
                    bytes = taken.snapshot.bytes,
                    "took the local snapshot"
                );
                if taken.new_recovery_code.is_some() {
                    // Not the code itself: the journal is read by more
                    // people than the data directory.
                    tracing::warn!(
                        "made the node's backup key for its first snapshot: run `outpost backup \
                         --recovery-code` and keep the code off the box; a backup cannot be \
                         restored elsewhere without it"
                    );
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => tracing::warn!("cannot take the local snapshot: {error}"),
            Err(_) => return,
        }
    }
}

/// What to do with a damaged database when `snapshot` opens whole.
pub fn restore_advice(data_dir: &Path, snapshot: &Snapshot, manifest: &Manifest) -> String {
    let age_minutes = crate::clock::now_seconds().saturating_sub(snapshot.made_at) / 60;
    format!(
        "The newest good local snapshot is {path}, {age_minutes} minute(s) old, with {plugins} \
         plugin(s) and {keys} key(s). Stop the node (`sudo systemctl stop outpost`), then put it \
         in place (the damaged file is moved aside, not deleted):\n  sudo outpost restore {path} \
         --replace --key-file {key} --data-dir {data}\nWhat the node took after it is not in \
         it: compare the outbox and the day's sales with the centre's records.",
        path = snapshot.path.display(),
        plugins = manifest.plugins.len(),
        keys = manifest.keys,
        key = data_dir.join(super::BACKUP_KEY_FILE).display(),
        data = data_dir.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_snapshot_is_kept_whatever_the_budget_and_older_ones_go_first() {
        let dir = tempfile::tempdir().expect("dir");
        let snapshots = dir.path().join(SNAPSHOTS_DIR);
        std::fs::create_dir(&snapshots).expect("snapshots");
        let now = crate::clock::now_seconds();
        // Three recent ones of 3 KiB and one three days old.
        for (age, bytes) in [(0, 3072), (3600, 3072), (7200, 3072), (3 * 86_400 + 60, 10)] {
            std::fs::write(
                snapshots.join(format!("{}{SUFFIX}", now - age)),
                vec![0u8; bytes],
            )
            .expect("write");
        }
        let newest = snapshots.join(format!("{now}{SUFFIX}"));
        prune(dir.path(), &newest, Duration::from_secs(72 * 3600), 7 << 10);
        let kept: Vec<u64> = list(dir.path()).iter().map(|s| now - s.made_at).collect();
        assert_eq!(kept, vec![0, 3600], "the two newest fit 7 KiB");
        // A budget smaller than one snapshot still keeps the newest.
        prune(dir.path(), &newest, Duration::from_secs(72 * 3600), 1024);
        let kept: Vec<u64> = list(dir.path()).iter().map(|s| now - s.made_at).collect();
        assert_eq!(kept, vec![0]);
    }
}
