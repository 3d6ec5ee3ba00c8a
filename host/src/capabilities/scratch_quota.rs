//! The `/scratch` quota, enforced as the guest writes.
//!
//! WASI has no disk quotas, and measuring the folder only after the call
//! lets a call fill the disk first. So this module replaces wasmtime-wasi's
//! `wasi:filesystem/types` with a layer over it: every method is passed on
//! unchanged, except that those that can make the folder bigger are charged
//! to the call's [`ScratchQuota`] first and refused with `quota` when the
//! charge does not fit. What can make it bigger:
//!
//! - `write` and `set-size` past a file's end: the new end minus the old;
//! - the streams of `write-via-stream` and `append-via-stream`, wrapped in a
//!   [`CountingStream`] that charges each write the same way;
//! - new entries (`open-at` with `create`, `create-directory-at`,
//!   `symlink-at`, `link-at`): [`ENTRY_BYTES`] each, plus a link target's
//!   length or a hard link's file size, since the folder's measure counts
//!   each name.
//!
//! Charges are never given back one by one: working out what a removal frees
//! needs to know whether the file is still open somewhere (an unlinked file
//! keeps its blocks until closed). Instead, when a charge would not fit and
//! something was removed or shrunk since the last look, the folder is
//! measured again ([`files::measure`]) plus what unlinked but open files
//! still hold, and the count restarts from that.
//!
//! Only descriptors with write permission are charged: `/scratch` is the
//! only preopen that has it (see `files::preopen`).

use crate::capabilities::files::{self, ENTRY_BYTES};
use crate::sandbox::CallState;
use crate::store::{BelowReserve, NodeStore};
use cap_std::fs::Dir;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode as FsErrorCode;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{
    self as fs, Host, HostDescriptor, HostDirectoryEntryStream,
};
use wasmtime_wasi::p2::bindings::sync::io::streams;
use wasmtime_wasi::p2::{
    DynOutputStream, FsError, FsResult, OutputStream, Pollable, StreamError, StreamResult,
};

/// A write refused because it would take `/scratch` past its quota.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "/scratch would hold {attempted} bytes, over its {quota}-byte quota; \
     delete files or raise `grants.scratch.quota-bytes` in plugin.toml"
)]
pub struct QuotaExceeded {
    pub attempted: u64,
    pub quota: u64,
}

/// How much of its quota a call's `/scratch` has used.
#[derive(Debug)]
pub struct ScratchQuota {
    root: Dir,
    quota: u64,
    /// Asked before each growth whether the node's disk is within the
    /// reserve plugins may not use (`store::disk`).
    disk: Option<Arc<NodeStore>>,
    state: Mutex<QuotaState>,
}

#[derive(Debug, Default)]
struct QuotaState {
    /// Never less than what the folder (and its open unlinked files) holds:
    /// every growth is charged before it happens, and nothing is given back
    /// except by measuring.
    charged: u64,
    /// Charged to stream writes still running in the background; a measure
    /// cannot see them yet.
    in_flight: u64,
    /// Something was removed or shrunk since the last measure.
    freed: bool,
    /// The most the call tried to reach past its quota, if it did.
    hit: Option<u64>,
    /// Why a growth was refused for the disk's sake, if one was.
    below_reserve: Option<BelowReserve>,
    /// Files the guest opened under the folder, so a measure can count
    /// those it unlinked but holds open.
    open_files: Vec<Weak<std::fs::File>>,
    /// `open_files.len()` after it was last pruned.
    pruned_len: usize,
}

impl ScratchQuota {
    pub fn new(root: Dir, quota: u64, disk: Option<Arc<NodeStore>>) -> ScratchQuota {
        ScratchQuota {
            root,
            quota,
            disk,
            state: Mutex::new(QuotaState::default()),
        }
    }

    /// Why a write was refused to keep the disk's reserve, if one was.
    pub fn below_reserve(&self) -> Option<BelowReserve> {
        self.lock().below_reserve.clone()
    }

    pub fn quota_bytes(&self) -> u64 {
        self.quota
    }

    /// The most the call tried to put in `/scratch`, if that was more than
    /// its quota.
    pub fn hit(&self) -> Option<u64> {
        self.lock().hit
    }

    /// What the folder holds now, as `files::measure` counts it, plus the
    /// bytes of files the guest unlinked but still holds open.
    pub fn measure(&self) -> std::io::Result<u64> {
        let mut state = self.lock();
        self.held(&mut state)
    }

    // A panic while holding the lock leaves plain counters behind, which
    // are still the best numbers there are.
    fn lock(&self) -> MutexGuard<'_, QuotaState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Charges `bytes` of growth, or refuses it.
    pub fn charge(&self, bytes: u64) -> Result<(), QuotaExceeded> {
        let mut state = self.lock();
        if bytes > 0
            && let Some(full) = self.disk.as_ref().and_then(|s| s.check_plugin_room().err())
        {
            let attempted = state.charged.saturating_add(bytes);
            state.hit = Some(state.hit.map_or(attempted, |hit| hit.max(attempted)));
            state.below_reserve = Some(full);
            return Err(QuotaExceeded {
                attempted,
                quota: self.quota,
            });
        }
        if state.fits(bytes, self.quota) {
            state.charged += bytes;
            return Ok(());
        }
        if std::mem::take(&mut state.freed) {
            match self.held(&mut state) {
                Ok(held) => {
                    state.charged = held.saturating_add(state.in_flight);
                    if state.fits(bytes, self.quota) {
                        state.charged += bytes;
                        return Ok(());
                    }
                }
                Err(error) => {
                    tracing::warn!("cannot measure a call's scratch folder: {error}");
                }
            }
        }
        let attempted = state.charged.saturating_add(bytes);
        state.hit = Some(state.hit.map_or(attempted, |hit| hit.max(attempted)));
        Err(QuotaExceeded {
            attempted,
            quota: self.quota,
        })
    }

    /// Gives back a charge for something that did not happen after all.
    fn refund(&self, bytes: u64) {
        let mut state = self.lock();
        state.charged = state.charged.saturating_sub(bytes);
    }

    /// Notes that space may have been freed, to be found by the next
    /// measure.
    fn freed(&self) {
        self.lock().freed = true;
    }

    /// Remembers a file the guest opened under the folder. Only a weak
    /// handle: the guest's descriptor and streams decide when it closes.
    fn open(&self, file: &Arc<std::fs::File>) {
        let mut state = self.lock();
        if state.open_files.len() >= 2 * state.pruned_len.max(16) {
            state.open_files.retain(|file| file.strong_count() > 0);
            state.pruned_len = state.open_files.len();
        }
        state.open_files.push(Arc::downgrade(file));
    }

    /// Bytes in the folder plus those of files unlinked but still open.
    fn held(&self, state: &mut QuotaState) -> std::io::Result<u64> {
        let mut held = files::measure(&self.root)?;
        state.open_files.retain(|file| file.strong_count() > 0);
        state.pruned_len = state.open_files.len();
        for file in state.open_files.iter().filter_map(Weak::upgrade) {
            let meta = file.metadata()?;
            if link_count(&meta) == 0 {
                held = held.saturating_add(meta.len());
            }
        }
        Ok(held)
    }
}

impl QuotaState {
    fn fits(&self, bytes: u64, quota: u64) -> bool {
        self.charged
            .checked_add(bytes)
            .is_some_and(|total| total <= quota)
    }
}

#[cfg(unix)]
fn link_count(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::nlink(meta)
}

#[cfg(not(unix))]
fn link_count(_meta: &std::fs::Metadata) -> u64 {
    1
}

/// What growing a file whose metadata is `meta` to `new_end` costs: the
/// folder's measure counts a file once per name it has, and a file with no
/// name left still holds its blocks.
fn growth(meta: &std::fs::Metadata, new_end: u64) -> u64 {
    new_end
        .saturating_sub(meta.len())
        .saturating_mul(link_count(meta).max(1))
}

impl From<QuotaExceeded> for FsError {
    fn from(_: QuotaExceeded) -> FsError {
        FsErrorCode::Quota.into()
    }
}

/// wasmtime-wasi's filesystem, plus the call's quota when it has `/scratch`.
pub struct ScratchFs<'a> {
    inner: WasiFilesystemCtxView<'a>,
    quota: Option<Arc<ScratchQuota>>,
}

struct ScratchFsCapability;

impl HasData for ScratchFsCapability {
    type Data<'a> = ScratchFs<'a>;
}

fn view(state: &mut CallState) -> ScratchFs<'_> {
    // The WASI context, and with it the scratch folder, is made on first use.
    let _ = state.ctx();
    let quota = state
        .scratch
        .as_ref()
        .map(|scratch| scratch.quota().clone());
    ScratchFs {
        inner: state.filesystem(),
        quota,
    }
}

/// Replaces `wasi:filesystem/types` in a linker that already has
/// wasmtime-wasi's version (the linker must allow shadowing).
pub fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    fs::add_to_linker::<CallState, ScratchFsCapability>(linker, view)
}

/// Another handle to the descriptor behind `fd`, for calls made on the
/// guest's behalf before or after its own.
fn again(fd: &Resource<fs::Descriptor>) -> Resource<fs::Descriptor> {
    Resource::new_borrow(fd.rep())
}

impl ScratchFs<'_> {
    /// The quota and the file behind `fd`, when writes to it are charged.
    fn charged_file(
        &self,
        fd: &Resource<fs::Descriptor>,
    ) -> Option<(Arc<ScratchQuota>, Arc<std::fs::File>)> {
        let quota = self.quota.as_ref()?;
        match self.inner.table.get(fd).ok()? {
            Descriptor::File(file) if !file.perms.write_not_permitted() => {
                Some((quota.clone(), file.file.clone()))
            }
            _ => None,
        }
    }

    /// The quota, when entries made under the folder `fd` are charged.
    fn charged_dir(&self, fd: &Resource<fs::Descriptor>) -> Option<Arc<ScratchQuota>> {
        let quota = self.quota.as_ref()?;
        match self.inner.table.get(fd).ok()? {
            Descriptor::Dir(dir) if !dir.perms.write_not_permitted() => Some(quota.clone()),
            _ => None,
        }
    }

    /// Runs `make`, which adds an entry or bytes, after charging `cost` for
    /// it; gives the charge back if it fails, since a failed write, resize
    /// or create changes nothing.
    fn make<R>(
        &mut self,
        quota: Option<(Arc<ScratchQuota>, u64)>,
        make: impl FnOnce(&mut Self) -> FsResult<R>,
    ) -> FsResult<R> {
        let Some((quota, cost)) = quota else {
            return make(self);
        };
        quota.charge(cost)?;
        let made = make(self);
        if made.is_err() {
            quota.refund(cost);
        }
        made
    }

    /// Runs `change`, which may free space, and notes it if it succeeds.
    fn free<R>(
        &mut self,
        fd: &Resource<fs::Descriptor>,
        change: impl FnOnce(&mut Self) -> FsResult<R>,
    ) -> FsResult<R> {
        let quota = self.charged_dir(fd);
        let changed = change(self)?;
        if let Some(quota) = quota {
            quota.freed();
        }
        Ok(changed)
    }

    fn counted_stream(
        &mut self,
        stream: Resource<DynOutputStream>,
        quota: Arc<ScratchQuota>,
        file: Arc<std::fs::File>,
        position: Option<u64>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let inner = self.inner.table.delete(stream)?;
        let counted: DynOutputStream = Box::new(CountingStream {
            inner,
            quota,
            file,
            position,
            in_flight: 0,
        });
        Ok(self.inner.table.push(counted)?)
    }
}

impl Host for ScratchFs<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<fs::ErrorCode> {
        Host::convert_error_code(&mut self.inner, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<streams::Error>,
    ) -> wasmtime::Result<Option<fs::ErrorCode>> {
        if self.inner.table.get(&err)?.is::<QuotaExceeded>() {
            return Ok(Some(fs::ErrorCode::Quota));
        }
        Host::filesystem_error_code(&mut self.inner, err)
    }
}

impl HostDescriptor for ScratchFs<'_> {
    fn write(
        &mut self,
        fd: Resource<fs::Descriptor>,
        buf: Vec<u8>,
        offset: fs::Filesize,
    ) -> FsResult<fs::Filesize> {
        let Some((quota, file)) = self.charged_file(&fd) else {
            return HostDescriptor::write(&mut self.inner, fd, buf, offset);
        };
        let end = offset.saturating_add(buf.len() as u64);
        let cost = growth(&file.metadata()?, end);
        self.make(Some((quota, cost)), |this| {
            HostDescriptor::write(&mut this.inner, fd, buf, offset)
        })
    }

    fn set_size(&mut self, fd: Resource<fs::Descriptor>, size: fs::Filesize) -> FsResult<()> {
        let Some((quota, file)) = self.charged_file(&fd) else {
            return HostDescriptor::set_size(&mut self.inner, fd, size);
        };
        let meta = file.metadata()?;
        if size < meta.len() {
            quota.freed();
        }
        let cost = growth(&meta, size);
        self.make(Some((quota, cost)), |this| {
            HostDescriptor::set_size(&mut this.inner, fd, size)
        })
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<fs::Descriptor>,
        offset: fs::Filesize,
    ) -> FsResult<Resource<streams::OutputStream>> {
        let charged = self.charged_file(&fd);
        let stream = HostDescriptor::write_via_stream(&mut self.inner, fd, offset)?;
        match charged {
            Some((quota, file)) => self.counted_stream(stream, quota, file, Some(offset)),
            None => Ok(stream),
        }
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<fs::Descriptor>,
    ) -> FsResult<Resource<streams::OutputStream>> {
        let charged = self.charged_file(&fd);
        let stream = HostDescriptor::append_via_stream(&mut self.inner, fd)?;
        match charged {
            Some((quota, file)) => self.counted_stream(stream, quota, file, None),
            None => Ok(stream),
        }
    }

    fn open_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        path_flags: fs::PathFlags,
        path: String,
        oflags: fs::OpenFlags,
        flags: fs::DescriptorFlags,
    ) -> FsResult<Resource<fs::Descriptor>> {
        let Some(quota) = self.charged_dir(&fd) else {
            return HostDescriptor::open_at(&mut self.inner, fd, path_flags, path, oflags, flags);
        };
        let exists =
            HostDescriptor::stat_at(&mut self.inner, again(&fd), path_flags, path.clone()).is_ok();
        if exists && oflags.contains(fs::OpenFlags::TRUNCATE) {
            quota.freed();
        }
        let creates = !exists && oflags.contains(fs::OpenFlags::CREATE);
        let cost = creates.then(|| (quota.clone(), ENTRY_BYTES));
        let opened = self.make(cost, |this| {
            HostDescriptor::open_at(&mut this.inner, fd, path_flags, path, oflags, flags)
        })?;
        if let Ok(Descriptor::File(file)) = self.inner.table.get(&opened) {
            quota.open(&file.file);
        }
        Ok(opened)
    }

    fn create_directory_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        let cost = self.charged_dir(&fd).map(|quota| (quota, ENTRY_BYTES));
        self.make(cost, |this| {
            HostDescriptor::create_directory_at(&mut this.inner, fd, path)
        })
    }

    fn symlink_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        let cost = self
            .charged_dir(&fd)
            .map(|quota| (quota, ENTRY_BYTES.saturating_add(src_path.len() as u64)));
        self.make(cost, |this| {
            HostDescriptor::symlink_at(&mut this.inner, fd, src_path, dest_path)
        })
    }

    fn link_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        old_path_flags: fs::PathFlags,
        old_path: String,
        new_descriptor: Resource<fs::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let cost = match self.charged_dir(&new_descriptor) {
            Some(quota) => {
                let old = HostDescriptor::stat_at(
                    &mut self.inner,
                    again(&fd),
                    old_path_flags,
                    old_path.clone(),
                )?;
                Some((quota, ENTRY_BYTES.saturating_add(old.size)))
            }
            None => None,
        };
        self.make(cost, |this| {
            HostDescriptor::link_at(
                &mut this.inner,
                fd,
                old_path_flags,
                old_path,
                new_descriptor,
                new_path,
            )
        })
    }

    fn unlink_file_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        let again = again(&fd);
        self.free(&again, |this| {
            HostDescriptor::unlink_file_at(&mut this.inner, fd, path)
        })
    }

    fn remove_directory_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        let again = again(&fd);
        self.free(&again, |this| {
            HostDescriptor::remove_directory_at(&mut this.inner, fd, path)
        })
    }

    fn rename_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        old_path: String,
        new_fd: Resource<fs::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        // Renaming onto an existing name removes what was there.
        let again = again(&new_fd);
        self.free(&again, |this| {
            HostDescriptor::rename_at(&mut this.inner, fd, old_path, new_fd, new_path)
        })
    }

    // Everything below neither grows nor shrinks the folder.

    fn advise(
        &mut self,
        fd: Resource<fs::Descriptor>,
        offset: fs::Filesize,
        len: fs::Filesize,
        advice: fs::Advice,
    ) -> FsResult<()> {
        HostDescriptor::advise(&mut self.inner, fd, offset, len, advice)
    }

    fn sync_data(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<()> {
        HostDescriptor::sync_data(&mut self.inner, fd)
    }

    fn get_flags(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::DescriptorFlags> {
        HostDescriptor::get_flags(&mut self.inner, fd)
    }

    fn get_type(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::DescriptorType> {
        HostDescriptor::get_type(&mut self.inner, fd)
    }

    fn set_times(
        &mut self,
        fd: Resource<fs::Descriptor>,
        atim: fs::NewTimestamp,
        mtim: fs::NewTimestamp,
    ) -> FsResult<()> {
        HostDescriptor::set_times(&mut self.inner, fd, atim, mtim)
    }

    fn read(
        &mut self,
        fd: Resource<fs::Descriptor>,
        len: fs::Filesize,
        offset: fs::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        HostDescriptor::read(&mut self.inner, fd, len, offset)
    }

    fn read_directory(
        &mut self,
        fd: Resource<fs::Descriptor>,
    ) -> FsResult<Resource<fs::DirectoryEntryStream>> {
        HostDescriptor::read_directory(&mut self.inner, fd)
    }

    fn sync(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<()> {
        HostDescriptor::sync(&mut self.inner, fd)
    }

    fn stat(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::DescriptorStat> {
        HostDescriptor::stat(&mut self.inner, fd)
    }

    fn stat_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        path_flags: fs::PathFlags,
        path: String,
    ) -> FsResult<fs::DescriptorStat> {
        HostDescriptor::stat_at(&mut self.inner, fd, path_flags, path)
    }

    fn set_times_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        path_flags: fs::PathFlags,
        path: String,
        atim: fs::NewTimestamp,
        mtim: fs::NewTimestamp,
    ) -> FsResult<()> {
        HostDescriptor::set_times_at(&mut self.inner, fd, path_flags, path, atim, mtim)
    }

    fn readlink_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<String> {
        HostDescriptor::readlink_at(&mut self.inner, fd, path)
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<fs::Descriptor>,
        offset: fs::Filesize,
    ) -> FsResult<Resource<streams::InputStream>> {
        HostDescriptor::read_via_stream(&mut self.inner, fd, offset)
    }

    fn is_same_object(
        &mut self,
        a: Resource<fs::Descriptor>,
        b: Resource<fs::Descriptor>,
    ) -> wasmtime::Result<bool> {
        HostDescriptor::is_same_object(&mut self.inner, a, b)
    }

    fn metadata_hash(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::MetadataHashValue> {
        HostDescriptor::metadata_hash(&mut self.inner, fd)
    }

    fn metadata_hash_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        path_flags: fs::PathFlags,
        path: String,
    ) -> FsResult<fs::MetadataHashValue> {
        HostDescriptor::metadata_hash_at(&mut self.inner, fd, path_flags, path)
    }

    fn drop(&mut self, fd: Resource<fs::Descriptor>) -> wasmtime::Result<()> {
        HostDescriptor::drop(&mut self.inner, fd)
    }
}

impl HostDirectoryEntryStream for ScratchFs<'_> {
    fn read_directory_entry(
        &mut self,
        stream: Resource<fs::DirectoryEntryStream>,
    ) -> FsResult<Option<fs::DirectoryEntry>> {
        HostDirectoryEntryStream::read_directory_entry(&mut self.inner, stream)
    }

    fn drop(&mut self, stream: Resource<fs::DirectoryEntryStream>) -> wasmtime::Result<()> {
        HostDirectoryEntryStream::drop(&mut self.inner, stream)
    }
}

/// A file's output stream that charges each write before passing it on.
struct CountingStream {
    inner: DynOutputStream,
    quota: Arc<ScratchQuota>,
    file: Arc<std::fs::File>,
    /// Where the next write lands; `None` for appends, which land at the end.
    position: Option<u64>,
    /// The charge of a write the inner stream is still doing in the
    /// background, until it reports ready.
    in_flight: u64,
}

impl CountingStream {
    fn charge(&mut self, len: usize) -> StreamResult<u64> {
        let len = len as u64;
        let meta = self
            .file
            .metadata()
            .map_err(|error| StreamError::LastOperationFailed(error.into()))?;
        let cost = match self.position {
            Some(position) => growth(&meta, position.saturating_add(len)),
            None => growth(&meta, meta.len().saturating_add(len)),
        };
        self.quota
            .charge(cost)
            .map_err(|refused| StreamError::LastOperationFailed(wasmtime::Error::new(refused)))?;
        if let Some(position) = &mut self.position {
            *position = position.saturating_add(len);
        }
        Ok(cost)
    }

    /// Starts a background write charged `cost`; a write refused at once
    /// changes nothing and is not charged.
    fn started(
        &mut self,
        cost: u64,
        write: impl FnOnce(&mut DynOutputStream) -> StreamResult<()>,
    ) -> StreamResult<()> {
        self.landed();
        match write(&mut self.inner) {
            Ok(()) => {
                self.in_flight = cost;
                self.quota.lock().in_flight += cost;
                Ok(())
            }
            Err(error) => {
                self.quota.refund(cost);
                Err(error)
            }
        }
    }

    fn landed(&mut self) {
        if self.in_flight > 0 {
            let mut state = self.quota.lock();
            state.in_flight = state.in_flight.saturating_sub(self.in_flight);
            self.in_flight = 0;
        }
    }
}

impl Drop for CountingStream {
    fn drop(&mut self) {
        self.landed();
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CountingStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        let cost = self.charge(bytes.len())?;
        self.started(cost, |inner| inner.write(bytes))
    }

    async fn blocking_write_and_flush(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        // The inner stream's own version writes on this thread, without the
        // background task its `write` uses.
        self.inner.ready().await;
        self.landed();
        self.charge(bytes.len())?;
        self.inner.blocking_write_and_flush(bytes).await
    }

    fn write_zeroes(&mut self, nelem: usize) -> StreamResult<()> {
        let cost = self.charge(nelem)?;
        self.started(cost, |inner| inner.write_zeroes(nelem))
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await;
        self.landed();
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CountingStream {
    async fn ready(&mut self) {
        self.inner.ready().await;
        self.landed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    fn quota(bytes: u64) -> (tempfile::TempDir, ScratchQuota) {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = Dir::open_ambient_dir(root.path(), ambient_authority()).expect("open");
        (root, ScratchQuota::new(dir, bytes, None))
    }

    #[test]
    fn charges_past_the_quota_are_refused_and_remembered() {
        let (_root, quota) = quota(1000);
        quota.charge(600).expect("fits");
        quota.charge(400).expect("fits exactly");
        let refused = quota.charge(1).expect_err("over");
        assert_eq!((refused.attempted, refused.quota), (1001, 1000));
        assert_eq!(quota.hit(), Some(1001));
    }

    #[test]
    fn removals_count_again_only_once_measured() {
        let (root, quota) = quota(2 * ENTRY_BYTES + 100);
        std::fs::write(root.path().join("a"), [0u8; 100]).expect("write");
        quota.charge(ENTRY_BYTES + 100).expect("fits");
        quota.charge(ENTRY_BYTES).expect("fits");
        // Nothing freed: refused without looking.
        quota.charge(1).expect_err("over");
        std::fs::remove_file(root.path().join("a")).expect("remove");
        quota.freed();
        quota
            .charge(ENTRY_BYTES + 100)
            .expect("fits after measuring");
    }

    #[test]
    fn unlinked_files_still_open_keep_their_charge() {
        let (root, quota) = quota(ENTRY_BYTES + 100);
        let file = Arc::new(std::fs::File::create(root.path().join("a")).expect("create"));
        quota.open(&file);
        std::io::Write::write_all(&mut &*file, &[0u8; 100]).expect("write");
        quota.charge(ENTRY_BYTES + 100).expect("fits");
        std::fs::remove_file(root.path().join("a")).expect("remove");
        quota.freed();
        // The name is gone, its 100 bytes are not.
        quota.charge(ENTRY_BYTES + 1).expect_err("still held");
        drop(file);
        quota.freed();
        quota.charge(ENTRY_BYTES + 100).expect("freed once closed");
    }
}
