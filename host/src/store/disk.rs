//! Free space on the database's disk, and the part of it plugins may not
//! use.
//!
//! Plugins can make the node keep bytes (kv values, outbox messages, scratch
//! files), each within its own quota; together, or with the disk shared with
//! other things, they could still take the last of it. The node keeps a
//! reserve: below it, plugin-caused writes are refused, while the node's own
//! writes (a sale's event, an install, a delivery's outcome) go on.

use super::NodeStore;
use std::path::Path;

/// A plugin-caused write refused because the disk is nearly full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the node's disk has {} MiB free, within the {} MiB kept for sales and updates; plugins \
     may not write until space is freed on the disk that holds {}",
    .free_bytes >> 20,
    .reserve_bytes >> 20,
    .dir
)]
pub struct BelowReserve {
    pub free_bytes: u64,
    pub reserve_bytes: u64,
    pub dir: String,
}

/// Bytes an unprivileged process may still write on the filesystem holding
/// `path`, if the system says.
pub fn free_bytes(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `path` is a valid C string and `stats` is written by the
        // call before it is read, only when the call succeeds.
        let stats = unsafe {
            if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
                return None;
            }
            stats.assume_init()
        };
        Some((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

impl NodeStore {
    /// Sets the free space plugins may not use (`policy.disk-reserve-mib`).
    pub fn set_disk_reserve(&self, bytes: u64) {
        self.disk_reserve
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// The free space plugins may not use, in bytes (0: none).
    pub fn disk_reserve(&self) -> u64 {
        self.disk_reserve.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether a plugin may make the node keep more bytes now. A system that
    /// cannot say how much is free is not held to the reserve.
    pub fn check_plugin_room(&self) -> Result<(), BelowReserve> {
        let reserve_bytes = self.disk_reserve.load(std::sync::atomic::Ordering::Relaxed);
        if reserve_bytes == 0 {
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(&self.path);
        match free_bytes(dir) {
            Some(free_bytes) if free_bytes < reserve_bytes => Err(BelowReserve {
                free_bytes,
                reserve_bytes,
                dir: dir.display().to_string(),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_the_free_space_refuses_plugin_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            NodeStore::open(&dir.path().join(super::super::DATABASE_FILE_NAME)).expect("opens");
        let free = free_bytes(dir.path()).expect("statvfs works here");
        assert!(free > 0);
        store.check_plugin_room().expect("no reserve set");
        store.set_disk_reserve(1 << 20);
        store.check_plugin_room().expect("more than 1 MiB free");
        store.set_disk_reserve(free.saturating_mul(2));
        let refusal = store.check_plugin_room().expect_err("over the free space");
        assert!(refusal.to_string().contains("kept for sales"), "{refusal}");
    }
}
