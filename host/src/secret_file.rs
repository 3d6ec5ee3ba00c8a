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
