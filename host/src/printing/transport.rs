//! Getting bytes to a printer: the wire the node owns.
//!
//! - `tcp`: a raw-port printer (port 9100 by convention). A job is one
//!   connection: connect, write, close. A status query writes the driver's
//!   probe and reads the reply until the printer goes quiet.
//! - `file`: a device such as `/dev/usb/lp0`, or a plain file, opened in
//!   append mode. A relative path is inside the data directory. The path is
//!   resolved once (so udev's `/dev/serial/by-id/...` links work) and the file
//!   is then opened through a cap-std handle on its folder.
//! - `stdout`: the node's standard output.

use crate::config::PrinterConfig;
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a printer may pause mid-reply before the reply is taken as done.
const QUIET_AFTER_REPLY: Duration = Duration::from_millis(300);

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("no answer from {address} within {}ms; is the printer on and reachable?", .after.as_millis())]
    Timeout { address: String, after: Duration },
    #[error("sending to {address} failed: {source}")]
    Send {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot write to {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write to the node's standard output: {0}")]
    Stdout(std::io::Error),
    #[error("a {0} printer cannot answer a status query; only tcp printers can")]
    NoReplies(&'static str),
    #[error("{address} closed the connection without replying")]
    NoReply { address: String },
}

/// "tcp 10.0.0.5:9100", "file /dev/usb/lp0", "stdout".
pub fn describe(config: &PrinterConfig, data_dir: &Path) -> String {
    match config {
        PrinterConfig::Tcp { address, .. } => format!("tcp {address}"),
        PrinterConfig::File { path } => format!("file {}", resolve_path(path, data_dir).display()),
        PrinterConfig::Stdout {} => "stdout".to_string(),
    }
}

fn resolve_path(path: &Path, data_dir: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        data_dir.join(path)
    }
}

/// Sends one job.
pub async fn send(
    config: &PrinterConfig,
    data_dir: &Path,
    bytes: &[u8],
) -> Result<(), TransportError> {
    match config {
        PrinterConfig::Tcp {
            address,
            timeout_ms,
        } => {
            let after = Duration::from_millis(*timeout_ms);
            let timeout = || TransportError::Timeout {
                address: address.clone(),
                after,
            };
            let send = async {
                let mut stream = connect(address).await?;
                let send_error = |source| TransportError::Send {
                    address: address.clone(),
                    source,
                };
                stream.write_all(bytes).await.map_err(send_error)?;
                stream.flush().await.map_err(send_error)?;
                stream.shutdown().await.map_err(send_error)?;
                Ok(())
            };
            tokio::time::timeout(after, send)
                .await
                .map_err(|_| timeout())?
        }
        PrinterConfig::File { path } => {
            let path = resolve_path(path, data_dir);
            let in_data_dir = path.starts_with(data_dir);
            let bytes = bytes.to_vec();
            tokio::task::spawn_blocking(move || append(&path, &bytes, in_data_dir))
                .await
                .map_err(|e| TransportError::File {
                    path: PathBuf::new(),
                    source: std::io::Error::other(e),
                })?
        }
        PrinterConfig::Stdout {} => {
            let mut stdout = tokio::io::stdout();
            stdout
                .write_all(bytes)
                .await
                .map_err(TransportError::Stdout)?;
            stdout.flush().await.map_err(TransportError::Stdout)
        }
    }
}

async fn connect(address: &str) -> Result<TcpStream, TransportError> {
    TcpStream::connect(address)
        .await
        .map_err(|source| TransportError::Connect {
            address: address.to_string(),
            source,
        })
}

/// Appends to a device or file. Folders are created only inside the data
/// directory; a device path must already exist.
fn append(path: &Path, bytes: &[u8], in_data_dir: bool) -> Result<(), TransportError> {
    let file_error = |source| TransportError::File {
        path: path.to_path_buf(),
        source,
    };
    let parent = path.parent().unwrap_or(Path::new("/"));
    if in_data_dir {
        std::fs::create_dir_all(parent).map_err(file_error)?;
    }
    // Resolve links once, with the operator's authority, then open through a
    // handle on the real folder.
    let target = if path.exists() {
        path.canonicalize().map_err(file_error)?
    } else {
        parent.canonicalize().map_err(file_error)?.join(
            path.file_name()
                .ok_or_else(|| file_error(std::io::Error::other("the path names no file")))?,
        )
    };
    let folder = target.parent().unwrap_or(Path::new("/"));
    let name = target
        .file_name()
        .ok_or_else(|| file_error(std::io::Error::other("the path names no file")))?;
    let dir = Dir::open_ambient_dir(folder, ambient_authority()).map_err(file_error)?;
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    let mut file = dir.open_with(name, &options).map_err(file_error)?;
    file.write_all(bytes).map_err(file_error)?;
    file.flush().map_err(file_error)
}

/// Sends `request` and returns the reply: up to `reply_max` bytes, ended
/// early when the printer goes quiet.
pub async fn query(
    config: &PrinterConfig,
    request: &[u8],
    reply_max: usize,
) -> Result<Vec<u8>, TransportError> {
    let PrinterConfig::Tcp {
        address,
        timeout_ms,
    } = config
    else {
        return Err(TransportError::NoReplies(match config {
            PrinterConfig::File { .. } => "file",
            _ => "stdout",
        }));
    };
    let after = Duration::from_millis(*timeout_ms);
    let timeout = || TransportError::Timeout {
        address: address.clone(),
        after,
    };
    let mut stream = tokio::time::timeout(after, connect(address))
        .await
        .map_err(|_| timeout())??;
    let send_error = |source| TransportError::Send {
        address: address.clone(),
        source,
    };
    stream.write_all(request).await.map_err(send_error)?;
    stream.flush().await.map_err(send_error)?;
    let mut reply = Vec::new();
    let mut buffer = vec![0u8; reply_max.clamp(1, 64 << 10)];
    while reply.len() < reply_max {
        let wait = if reply.is_empty() {
            after
        } else {
            QUIET_AFTER_REPLY
        };
        match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
            Err(_) if reply.is_empty() => return Err(timeout()),
            Err(_) | Ok(Ok(0)) => break,
            Ok(Ok(read)) => {
                let room = reply_max - reply.len();
                reply.extend_from_slice(&buffer[..read.min(room)]);
            }
            Ok(Err(source)) => return Err(send_error(source)),
        }
    }
    if reply.is_empty() {
        return Err(TransportError::NoReply {
            address: address.clone(),
        });
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_printers_append_inside_the_data_dir() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = PrinterConfig::File {
            path: PathBuf::from("printed/jobs.bin"),
        };
        send(&config, dir.path(), b"one").await.expect("first job");
        send(&config, dir.path(), b"two").await.expect("second job");
        let written = std::fs::read(dir.path().join("printed/jobs.bin")).expect("read");
        assert_eq!(written, b"onetwo");
    }

    #[tokio::test]
    async fn an_unreachable_tcp_printer_says_so() {
        // Bind then drop a listener so the port is closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let config = PrinterConfig::Tcp {
            address: format!("127.0.0.1:{port}"),
            timeout_ms: 500,
        };
        let error = send(&config, Path::new("/"), b"^XA^XZ").await;
        assert!(
            matches!(error, Err(TransportError::Connect { .. })),
            "{error:?}"
        );
        let error = query(&PrinterConfig::Stdout {}, b"?", 1).await;
        assert!(matches!(error, Err(TransportError::NoReplies("stdout"))));
    }
}
