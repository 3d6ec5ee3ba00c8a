//! Where a plugin's stdout and stderr go: a small buffer per call.
//!
//! A guest's standard output is not the node's terminal. What it writes is
//! kept (the first [`CAPTURE_BYTES`]), the rest is counted and discarded, and
//! the node logs it when the call ends. It matters most for panics: Rust
//! prints the panic message to stderr before aborting, and the node puts that
//! message in the call's error. Writes never fail or block, so a plugin that
//! floods stderr slows nobody but itself. Card-like numbers are masked in what
//! [`OutputCapture::take`] returns, whatever the plugin (see `card_data`).

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

pub const CAPTURE_BYTES: usize = 8 << 10;

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: u64,
}

/// A shared handle to one call's captured output.
#[derive(Debug, Clone, Default)]
pub struct OutputCapture {
    inner: Arc<Mutex<Captured>>,
}

impl OutputCapture {
    fn push(&self, data: &[u8]) {
        let mut captured = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let room = CAPTURE_BYTES.saturating_sub(captured.bytes.len());
        let kept = data.len().min(room);
        captured.bytes.extend_from_slice(&data[..kept]);
        captured.dropped += (data.len() - kept) as u64;
    }

    /// What was captured, as text with card-like numbers masked, and how
    /// many bytes were dropped.
    pub fn take(&self) -> (String, u64) {
        let mut captured = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let text = String::from_utf8_lossy(&captured.bytes);
        let text = crate::card_data::mask_card_numbers(&text).into_owned();
        let dropped = captured.dropped;
        *captured = Captured::default();
        (text, dropped)
    }

    /// Replaces everything captured so far with a note when `refuse` says it
    /// must not be kept; true if it did. Whole, not in part: the node does
    /// not know which of the bytes around a match belong to it.
    pub(crate) fn withhold_if(&self, refuse: impl FnOnce(&[u8]) -> bool) -> bool {
        let mut captured = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if captured.bytes.is_empty() || !refuse(&captured.bytes) {
            return false;
        }
        captured.bytes.clear();
        captured.bytes.extend_from_slice(WITHHELD.as_bytes());
        true
    }
}

/// What the node keeps of output that carried the call's card.
pub const WITHHELD: &str = "[withheld by the node: it carried the card number of this call]";

impl IsTerminal for OutputCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputCapture {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for OutputCapture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputCapture {
    async fn ready(&mut self) {}
}

impl AsyncWrite for OutputCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The panic message in captured stderr, if the guest panicked: the lines
/// after "panicked at <place>:" up to Rust's "note:" hint.
pub fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at ")?;
    let after = &stderr[start..];
    let (place, rest) = after.split_once('\n')?;
    let message: Vec<&str> = rest
        .lines()
        .take_while(|line| !line.starts_with("note:"))
        .collect();
    let place = place
        .trim_start_matches("panicked at ")
        .trim_end_matches(':');
    Some(format!("{} (at {place})", message.join(" ").trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_the_start_and_counts_the_rest() {
        let capture = OutputCapture::default();
        let mut stream = capture.clone();
        for _ in 0..3 {
            stream
                .write(Bytes::from(vec![b'x'; CAPTURE_BYTES / 2]))
                .expect("writes never fail");
        }
        let (text, dropped) = capture.take();
        assert_eq!(text.len(), CAPTURE_BYTES);
        assert_eq!(dropped, (CAPTURE_BYTES / 2) as u64);
    }

    #[test]
    fn card_numbers_are_masked_and_can_be_withheld() {
        let capture = OutputCapture::default();
        let mut stream = capture.clone();
        stream
            .write(Bytes::from_static(b"card 4539 1488 0343 6467\n"))
            .expect("writes never fail");
        assert_eq!(capture.take().0, "card **** **** **** 6467\n");
        stream
            .write(Bytes::from_static(b"pan=453914880343"))
            .expect("writes never fail");
        assert!(!capture.withhold_if(|_| false));
        assert!(capture.withhold_if(|bytes| bytes.starts_with(b"pan=")));
        assert_eq!(capture.take().0, WITHHELD);
    }

    #[test]
    fn panic_messages_are_found() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:60:20:\n\
                      boom on purpose\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("boom on purpose (at src/lib.rs:60:20)")
        );
        assert_eq!(panic_message("just a warning\n"), None);
    }
}
