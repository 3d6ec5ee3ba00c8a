//! Files: a plugin's read-only assets and, if granted, a scratch folder.
//!
//! Nothing else of the filesystem exists for a plugin. Both folders are WASI
//! preopens, which wasmtime-wasi serves through cap-std: paths are resolved
//! inside the folder, so `..`, absolute paths and symlinks cannot leave it.
//!
//! - `/assets`, granted by `assets = true`: the package's `assets/` folder as
//!   installed, read-only.
//! - `/scratch`, granted by `scratch = { quota-bytes = N }`: an empty folder
//!   made for the call and deleted when it ends, so nothing a call writes
//!   reaches the next one. WASI has no disk quotas, so the node keeps its
//!   own: every write, resize and new entry is counted as it happens and
//!   refused once it would pass the quota (see `scratch_quota`), and the
//!   folder is measured again when the call ends.
//!
//! The folder is measured and deleted through directory handles, one level
//! at a time, never through joined paths: a guest can nest folders until a
//! path is longer than the kernel's `PATH_MAX`, and what a path-based walk
//! cannot reach it would neither count nor delete.

use crate::capabilities::scratch_quota::ScratchQuota;
use crate::failure::CallFailure;
use crate::store::NodeStore;
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

pub const ASSETS_GUEST_PATH: &str = "/assets";
pub const SCRATCH_GUEST_PATH: &str = "/scratch";

/// What each file, folder or link in `/scratch` costs besides its bytes, so
/// that empty entries (which take inodes and directory blocks) are bounded
/// by the quota too.
pub const ENTRY_BYTES: u64 = 512;

/// A call's scratch folder, deleted when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    quota: Arc<ScratchQuota>,
}

impl ScratchDir {
    pub fn create(
        root: &Path,
        call_id: u64,
        quota_bytes: u64,
        disk: Option<Arc<NodeStore>>,
    ) -> io::Result<ScratchDir> {
        let path = root.join(format!("call-{call_id}"));
        remove_tree(&path)?;
        std::fs::create_dir_all(&path)?;
        let dir = Dir::open_ambient_dir(&path, ambient_authority())?;
        Ok(ScratchDir {
            path,
            quota: Arc::new(ScratchQuota::new(dir, quota_bytes, disk)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn quota_bytes(&self) -> u64 {
        self.quota.quota_bytes()
    }

    /// The running count the call's filesystem operations are checked
    /// against.
    pub fn quota(&self) -> &Arc<ScratchQuota> {
        &self.quota
    }

    /// Bytes the call holds in the folder: each entry's size (a link's is
    /// its target's length; links are never followed) plus [`ENTRY_BYTES`]
    /// per entry, plus files it unlinked but still has open. An entry that
    /// cannot be measured is an error, not zero.
    pub fn usage(&self) -> io::Result<u64> {
        self.quota.measure()
    }

    /// Why the call must fail because of what it did in `/scratch`, if it
    /// must: it hit its quota while running (however it handled the
    /// refusal), or left more than its quota, or left something the node
    /// cannot measure.
    pub fn over_quota(&self) -> Option<CallFailure> {
        let quota = self.quota_bytes();
        if let Some(used) = self.quota.hit() {
            return Some(match self.quota.below_reserve() {
                Some(full) => CallFailure::DiskReserve(full.to_string()),
                None => CallFailure::ScratchQuota { used, quota },
            });
        }
        match self.usage() {
            Ok(used) if used > quota => Some(CallFailure::ScratchQuota { used, quota }),
            Ok(_) => None,
            Err(error) => Some(CallFailure::ScratchUnmeasured(error.to_string())),
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(error) = remove_tree(&self.path) {
            tracing::warn!(path = %self.path.display(), "cannot remove a call's scratch folder: {error}");
        }
    }
}

/// Bytes under `dir` as [`ScratchDir::usage`] counts them.
pub(crate) fn measure(dir: &Dir) -> io::Result<u64> {
    walk(dir, Pass::Measure)
}

/// Deletes `path` and everything under it, however deep; a missing `path` is
/// not an error.
fn remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
        Ok(meta) if !meta.is_dir() => return std::fs::remove_file(path),
        Ok(_) => {}
    }
    let dir = Dir::open_ambient_dir(path, ambient_authority())?;
    walk(&dir, Pass::Remove)?;
    drop(dir);
    std::fs::remove_dir(path)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Measure,
    Remove,
}

/// Visits every entry under `root`, depth first, with one directory open at
/// a time: it steps down with `openat` and back up through `..`, so neither
/// path length nor depth (which would take one descriptor per level) limits
/// it. Nothing else changes the tree meanwhile: the guest is either stopped
/// or waiting in the host call that asked for the measure.
fn walk(root: &Dir, pass: Pass) -> io::Result<u64> {
    struct Level {
        /// This folder's name in its parent.
        name: OsString,
        /// The parent's subfolders not visited yet.
        parent_pending: Vec<OsString>,
    }
    let mut total = 0u64;
    let mut current = root.try_clone()?;
    let mut pending = scan(&current, pass, &mut total)?;
    let mut levels: Vec<Level> = Vec::new();
    loop {
        if let Some(name) = pending.pop() {
            let child = current.open_dir(&name)?;
            let child_pending = scan(&child, pass, &mut total)?;
            levels.push(Level {
                name,
                parent_pending: std::mem::replace(&mut pending, child_pending),
            });
            current = child;
        } else if let Some(level) = levels.pop() {
            let parent = current.open_parent_dir(ambient_authority())?;
            drop(current);
            if pass == Pass::Remove {
                parent.remove_dir(&level.name)?;
            }
            current = parent;
            pending = level.parent_pending;
        } else {
            return Ok(total);
        }
    }
}

/// Counts (or removes) the entries of one folder that are not folders, and
/// returns the names of those that are. Entry types come from the directory
/// itself, so links are never followed.
fn scan(dir: &Dir, pass: Pass, total: &mut u64) -> io::Result<Vec<OsString>> {
    let mut subfolders = Vec::new();
    for entry in dir.entries()? {
        let entry = entry?;
        *total = total.saturating_add(ENTRY_BYTES);
        if entry.file_type()?.is_dir() {
            subfolders.push(entry.file_name());
            continue;
        }
        *total = total.saturating_add(entry.metadata()?.len());
        if pass == Pass::Remove {
            entry.remove_file()?;
        }
    }
    Ok(subfolders)
}

/// Adds the granted folders as preopens.
pub fn preopen(
    builder: &mut WasiCtxBuilder,
    assets: Option<&Path>,
    scratch: Option<&ScratchDir>,
) -> wasmtime::Result<()> {
    if let Some(assets) = assets {
        builder.preopened_dir(assets, ASSETS_GUEST_PATH, FsPerms::ReadOnly)?;
    }
    if let Some(scratch) = scratch {
        // `scratch_quota` charges writes under every read-write preopen to
        // the scratch quota, so this must stay the only one.
        builder.preopened_dir(scratch.path(), SCRATCH_GUEST_PATH, FsPerms::ReadWrite)?;
    }
    Ok(())
}

/// Removes scratch folders left by calls that were cut short by a crash.
pub fn clear_scratch_root(root: &Path) {
    if let Err(error) = remove_tree(root) {
        tracing::warn!(path = %root.display(), "cannot clear old scratch folders: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_is_measured_without_following_links_and_removed() {
        let root = tempfile::tempdir().expect("temp dir");
        let path = {
            let scratch = ScratchDir::create(root.path(), 7, 100_000, None).expect("created");
            std::fs::write(scratch.path().join("a"), [0u8; 40]).expect("write");
            std::fs::create_dir(scratch.path().join("sub")).expect("mkdir");
            std::fs::write(scratch.path().join("sub/b"), [0u8; 2]).expect("write");
            std::os::unix::fs::symlink("/etc/passwd", scratch.path().join("link")).expect("link");
            let usage = scratch.usage().expect("measured");
            let bytes = 40 + 2 + "/etc/passwd".len() as u64;
            assert_eq!(usage, bytes + 4 * ENTRY_BYTES);
            assert_eq!(scratch.over_quota(), None);
            scratch.path().to_path_buf()
        };
        assert!(!path.exists(), "dropped scratch is gone");
    }

    /// Nests folders through handles (as a guest does) until the file at the
    /// bottom is far past `PATH_MAX` from the folder.
    fn bury(scratch: &ScratchDir, levels: usize, bytes: usize) -> usize {
        let name = "d".repeat(200);
        let mut dir = Dir::open_ambient_dir(scratch.path(), ambient_authority()).expect("open");
        for _ in 0..levels {
            dir.create_dir(&name).expect("mkdir");
            dir = dir.open_dir(&name).expect("open");
        }
        dir.write("deep", vec![b'x'; bytes]).expect("write");
        levels * (name.len() + 1)
    }

    #[test]
    fn files_deeper_than_path_max_are_counted_and_removed() {
        let root = tempfile::tempdir().expect("temp dir");
        let path = {
            let scratch = ScratchDir::create(root.path(), 8, 65_536, None).expect("created");
            let depth = bury(&scratch, 40, 1 << 20);
            assert!(depth > 4096, "path is {depth} bytes");
            let usage = scratch.usage().expect("measured");
            assert_eq!(usage, (1 << 20) + 41 * ENTRY_BYTES);
            assert_eq!(
                scratch.over_quota(),
                Some(CallFailure::ScratchQuota {
                    used: usage,
                    quota: 65_536
                })
            );
            scratch.path().to_path_buf()
        };
        assert!(
            std::fs::symlink_metadata(&path).is_err(),
            "the deep tree is gone"
        );
    }
}
