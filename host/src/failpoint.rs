//! Named places where a test can freeze the node to kill it there.
//!
//! The crash tests start a real `outpost run` with `OUTPOST_TEST_PAUSE` set
//! to one of these names and `OUTPOST_TEST_PAUSE_MARKER` to a file path; on
//! reaching that place the node writes the file and stops making progress
//! (the thread sleeps), so the test can `kill -9` it exactly there. Unset,
//! which is always so outside those tests, each place costs one load of a
//! `OnceLock`.

use std::path::PathBuf;
use std::sync::OnceLock;

static PAUSE: OnceLock<Option<(String, PathBuf)>> = OnceLock::new();

/// Freezes this thread for good if a test asked to pause at `name`.
pub fn reached(name: &str) {
    let pause = PAUSE.get_or_init(|| {
        let name = std::env::var("OUTPOST_TEST_PAUSE").ok()?;
        let marker = std::env::var_os("OUTPOST_TEST_PAUSE_MARKER")?;
        Some((name, PathBuf::from(marker)))
    });
    let Some((wanted, marker)) = pause else {
        return;
    };
    if wanted != name {
        return;
    }
    tracing::warn!("paused at {name} for a test (OUTPOST_TEST_PAUSE)");
    let _ = std::fs::write(marker, name);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
