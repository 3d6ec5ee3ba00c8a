//! Files only the node's user may read: the API token, the node key.

use std::path::Path;

/// Writes `text` to a new file at `path` with mode 0600 (on Unix), flushed
/// to disk. Fails if the file exists, so a secret is never overwritten.
pub fn create(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    file.sync_all()
}

/// Replaces the file at `path` with `text`, atomically: whoever reads it
/// sees the old secret or the new one, never neither, and after a power cut
/// the new one stays. `mode` is the new file's (0600, or 0640 for a secret
/// the node's group shares).
pub fn replace(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // tempfile makes it 0600 before anything is written into it.
    let mut staged = tempfile::Builder::new()
        .prefix(".secret-")
        .tempfile_in(folder)?;
    std::io::Write::write_all(&mut staged, text.as_bytes())?;
    staged.as_file().sync_all()?;
    set_mode(staged.path(), mode)?;
    staged.persist(path).map_err(|error| error.error)?;
    std::fs::File::open(folder)?.sync_all()
}

/// Sets a file's permission bits (nothing off Unix).
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}
