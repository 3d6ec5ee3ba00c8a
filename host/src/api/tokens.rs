//! The secrets that open the node's HTTP side: the apps' bearer token, the
//! scrape token `/metrics` asks for, and the console's password. Each is a
//! file in the data directory made with 256 random bits (mode 0600) the
//! first time, and refused when others can read it: whoever holds one can
//! act with it.

use crate::config::ApiConfig;
use crate::node::Node;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the API token {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the API token {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the API token in {path} is empty; delete the file to have a new one made")]
    Empty { path: PathBuf },
    #[error(
        "the API token {path} can be read by other users (mode {mode:o}); run `chmod 600 {path}` \
         (or set api.share-token-with-group = true for its group to read it), or delete it to \
         have a new one made"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "the API token is set inline (api.token in {config}), so it cannot be rotated here: \
         remove api.token to use the token file, or change it there and restart the node"
    )]
    Inline { config: String },
    #[error(
        "the API token in {path} is {length} characters, too short to resist guessing (at least \
         {MIN_TOKEN_CHARS}); delete the file to have a new one made"
    )]
    Short { path: PathBuf, length: usize },
    #[error("cannot get randomness for a new API token: {0}")]
    Random(String),
}

/// The bearer token: `api.token` if set, else the token file, created with
/// 256 random bits (and mode 0600) the first time.
pub fn load_or_create_token(node: &Node) -> Result<String, TokenError> {
    let api = &node.config().api;
    if let Some(token) = &api.token {
        return Ok(token.clone());
    }
    let path = token_path(api, node.data_dir());
    // Sharing turned on or off since the file was made: its mode follows.
    // A file open to others than that is refused below, not fixed.
    #[cfg(unix)]
    if let Ok(metadata) = std::fs::metadata(&path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if (mode == 0o600 || mode == 0o640) && mode != token_mode(api) {
            crate::secret_file::set_mode(&path, token_mode(api)).map_err(|source| {
                TokenError::Write {
                    path: path.clone(),
                    source,
                }
            })?;
        }
    }
    let token = read_or_create_token_file(&path, api.share_token_with_group)?;
    crate::secret_file::set_mode(&path, token_mode(api))
        .map_err(|source| TokenError::Write { path, source })?;
    Ok(token)
}

/// Makes a new API token, replaces the token file with it (atomically: the
/// file holds the old token or the new one, never neither) and, on a
/// running node, refuses the old one from the next request on. Returns the
/// new token, which is shown once.
pub fn rotate_token(node: &Node) -> Result<String, TokenError> {
    let api = &node.config().api;
    if api.token.is_some() {
        return Err(TokenError::Inline {
            config: node.config_origin().to_string(),
        });
    }
    // Two rotations at once must leave the file and the node agreeing.
    static ROTATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _rotating = ROTATING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = token_path(api, node.data_dir());
    let token = new_secret()?;
    crate::secret_file::replace(&path, &format!("{token}\n"), token_mode(api)).map_err(
        |source| TokenError::Write {
            path: path.clone(),
            source,
        },
    )?;
    node.set_app_token(token.clone());
    tracing::info!(file = %path.display(), "the API token was rotated; the old one is refused");
    Ok(token)
}

/// The token file's mode: the node's group may read it only when shared.
fn token_mode(api: &ApiConfig) -> u32 {
    if api.share_token_with_group {
        0o640
    } else {
        0o600
    }
}

/// The token a client on this machine presents to a running node: the same
/// setting or file the node reads, never created here (a node that has not
/// run yet has no token and no API to talk to).
pub fn read_token(api: &ApiConfig, data_dir: &Path) -> Result<String, TokenError> {
    if let Some(token) = &api.token {
        return Ok(token.clone());
    }
    read_token_file(&token_path(api, data_dir), api.share_token_with_group)
}

/// The shortest token file accepted; the node makes 64 hex characters.
const MIN_TOKEN_CHARS: usize = 32;

/// Reads a secret file, refusing it when anyone but the node's user (and,
/// with `group_may_read`, its group, for reading only) has access.
fn read_token_file(path: &Path, group_may_read: bool) -> Result<String, TokenError> {
    let read_error = |source| TokenError::Read {
        path: path.to_path_buf(),
        source,
    };
    // Whoever can read the token can print and book as the till; the key
    // file is held to the same rule (see `keystore`).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(read_error)?
            .permissions()
            .mode()
            & 0o777;
        let forbidden = if group_may_read { 0o037 } else { 0o077 };
        if mode & forbidden != 0 {
            return Err(TokenError::Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(TokenError::Empty {
            path: path.to_path_buf(),
        });
    }
    let length = token.chars().count();
    if length < MIN_TOKEN_CHARS {
        return Err(TokenError::Short {
            path: path.to_path_buf(),
            length,
        });
    }
    Ok(token)
}

/// Where the apps' token file is.
pub fn token_path(api: &ApiConfig, data_dir: &Path) -> PathBuf {
    secret_path(&api.token_file, data_dir)
}

fn secret_path(file: &Path, data_dir: &Path) -> PathBuf {
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        data_dir.join(file)
    }
}

/// The token Prometheus presents to `/metrics` (`api.metrics-token-file`),
/// created the first time. It is not the apps' token: a scraper must not be
/// able to print or book, nor an app to read the node's figures.
pub fn load_or_create_metrics_token(node: &Node) -> Result<String, TokenError> {
    let file = &node.config().api.metrics_token_file;
    read_or_create_token_file(&secret_path(file, node.data_dir()), false)
}

/// The console's password (`api.console-password-file`), created the first
/// time; `outpost console password` shows it to whoever may read the data
/// directory.
pub fn load_or_create_console_password(node: &Node) -> Result<String, TokenError> {
    let file = &node.config().api.console_password_file;
    read_or_create_token_file(&secret_path(file, node.data_dir()), false)
}

/// The console's password as `outpost console password` shows it: made here
/// if no node has made it yet, exactly as the node would.
pub fn console_password(api: &ApiConfig, data_dir: &Path) -> Result<String, TokenError> {
    read_or_create_token_file(&secret_path(&api.console_password_file, data_dir), false)
}

/// Where the scrape token is, for Prometheus's configuration.
pub fn metrics_token_path(api: &ApiConfig, data_dir: &Path) -> PathBuf {
    secret_path(&api.metrics_token_file, data_dir)
}

fn read_or_create_token_file(path: &Path, group_may_read: bool) -> Result<String, TokenError> {
    if path.exists() {
        return read_token_file(path, group_may_read);
    }
    let token = new_secret()?;
    crate::secret_file::create(path, &format!("{token}\n")).map_err(|source| {
        TokenError::Write {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(token)
}

/// 256 random bits, as 64 hex characters.
fn new_secret() -> Result<String, TokenError> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(hex::encode(random))
}

/// Compares in time independent of where the strings first differ (the
/// pages' logins use the same).
pub(crate) use outpost_registry::web_login::same_secret as same_token;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abd", b"abc"));
        assert!(!same_token(b"ab", b"abc"));
    }

    #[test]
    fn the_token_file_is_made_once_and_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("api-token");
        let first = read_or_create_token_file(&path, false).expect("created");
        assert_eq!(first.len(), 64);
        assert_eq!(
            read_or_create_token_file(&path, false).expect("read"),
            first
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "\n").expect("write");
        assert!(matches!(
            read_or_create_token_file(&path, false),
            Err(TokenError::Empty { .. })
        ));
    }
}
