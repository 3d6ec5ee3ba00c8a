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
//!   reaches the next one. WASI has no disk quotas; the node measures the
//!   folder when the call ends and fails a call that went over its quota.
//!   While the call runs, its deadline bounds how much it can write.

use std::path::{Path, PathBuf};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

pub const ASSETS_GUEST_PATH: &str = "/assets";
pub const SCRATCH_GUEST_PATH: &str = "/scratch";

/// A call's scratch folder, deleted when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    quota_bytes: u64,
}

impl ScratchDir {
    pub fn create(root: &Path, call_id: u64, quota_bytes: u64) -> std::io::Result<ScratchDir> {
        let path = root.join(format!("call-{call_id}"));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
        Ok(ScratchDir { path, quota_bytes })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn quota_bytes(&self) -> u64 {
        self.quota_bytes
    }

    /// Bytes the call left in the folder. Symlinks count as their own size
    /// and are never followed.
    pub fn usage(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|entry| match entry.path().symlink_metadata() {
                    Ok(meta) if meta.is_dir() => walk(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), "cannot remove a call's scratch folder: {error}");
        }
    }
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
        builder.preopened_dir(scratch.path(), SCRATCH_GUEST_PATH, FsPerms::ReadWrite)?;
    }
    Ok(())
}

/// Removes scratch folders left by calls that were cut short by a crash.
pub fn clear_scratch_root(root: &Path) {
    if root.exists()
        && let Err(error) = std::fs::remove_dir_all(root)
    {
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
            let scratch = ScratchDir::create(root.path(), 7, 100).expect("created");
            std::fs::write(scratch.path().join("a"), [0u8; 40]).expect("write");
            std::fs::create_dir(scratch.path().join("sub")).expect("mkdir");
            std::fs::write(scratch.path().join("sub/b"), [0u8; 2]).expect("write");
            #[cfg(unix)]
            std::os::unix::fs::symlink("/etc/passwd", scratch.path().join("link")).expect("link");
            let usage = scratch.usage();
            assert!((42..100).contains(&usage), "usage {usage}");
            scratch.path().to_path_buf()
        };
        assert!(!path.exists(), "dropped scratch is gone");
    }
}
