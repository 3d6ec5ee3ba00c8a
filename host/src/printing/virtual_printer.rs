//! A printer that lives in the node's own process, on 127.0.0.1.
//!
//! `outpost demo` prints to one so that a fresh machine with no printer shows
//! the whole path: driver, bytes, TCP, and a status query. It accepts raw jobs
//! on a TCP port like a port-9100 printer, keeps every job, and answers the
//! two status probes real printers answer: ZPL's `~HS` and ESC/POS's
//! `DLE EOT n`, always with "ready".

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a ZPL printer sends for `~HS` when idle and ready.
const ZPL_READY: &[u8] = b"\x02030,0,0,1218,000,0,0,0,000,0,0,0\x03\r\n\
\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\r\n\
\x021234,0\x03\r\n";
/// An ESC/POS status byte with no condition set.
const ESCPOS_READY: u8 = 0x12;

/// How long a connection may sit idle before the printer takes the job as
/// complete (real printers time out similarly).
const IDLE: Duration = Duration::from_secs(5);

pub struct VirtualPrinter {
    address: SocketAddr,
    jobs: Arc<Mutex<Vec<Vec<u8>>>>,
    queries: Arc<Mutex<u32>>,
    accept: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for VirtualPrinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualPrinter")
            .field("address", &self.address)
            .finish()
    }
}

/// The reply a real printer would send to `received`, if it is a probe.
fn status_reply(received: &[u8]) -> Option<Vec<u8>> {
    if received == b"~HS" {
        return Some(ZPL_READY.to_vec());
    }
    let is_escpos_probe = !received.is_empty()
        && received.len().is_multiple_of(3)
        && received
            .chunks(3)
            .all(|c| c[0] == 0x10 && c[1] == 0x04 && (1..=4).contains(&c[2]));
    is_escpos_probe.then(|| vec![ESCPOS_READY; received.len() / 3])
}

async fn serve(mut stream: TcpStream, jobs: Arc<Mutex<Vec<Vec<u8>>>>, queries: Arc<Mutex<u32>>) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match tokio::time::timeout(IDLE, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(read)) => {
                received.extend_from_slice(&buffer[..read]);
                if let Some(reply) = status_reply(&received) {
                    if let Ok(mut count) = queries.lock() {
                        *count += 1;
                    }
                    let _ = stream.write_all(&reply).await;
                    received.clear();
                }
            }
        }
    }
    if !received.is_empty()
        && let Ok(mut jobs) = jobs.lock()
    {
        jobs.push(received);
    }
}

impl VirtualPrinter {
    /// Starts listening on 127.0.0.1 on a free port.
    pub async fn start() -> std::io::Result<VirtualPrinter> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let jobs = Arc::new(Mutex::new(Vec::new()));
        let queries = Arc::new(Mutex::new(0));
        let accept = {
            let jobs = jobs.clone();
            let queries = queries.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, jobs.clone(), queries.clone()));
                }
            })
        };
        Ok(VirtualPrinter {
            address,
            jobs,
            queries,
            accept,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Every job received so far, oldest first.
    pub fn jobs(&self) -> Vec<Vec<u8>> {
        self.jobs
            .lock()
            .map(|jobs| jobs.clone())
            .unwrap_or_default()
    }

    /// How many status queries it answered.
    pub fn status_queries(&self) -> u32 {
        self.queries.lock().map(|count| *count).unwrap_or(0)
    }

    /// Waits up to `timeout` for at least `count` jobs.
    pub async fn wait_for_jobs(&self, count: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let jobs = self.jobs();
            if jobs.len() >= count || tokio::time::Instant::now() >= deadline {
                return jobs;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for VirtualPrinter {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_recognises_both_probes_and_nothing_else() {
        assert_eq!(status_reply(b"~HS").as_deref(), Some(ZPL_READY));
        assert_eq!(
            status_reply(&[0x10, 0x04, 0x01, 0x10, 0x04, 0x04]),
            Some(vec![ESCPOS_READY; 2])
        );
        assert_eq!(status_reply(b"^XA^XZ"), None);
        assert_eq!(status_reply(&[0x10, 0x04]), None);
    }
}
