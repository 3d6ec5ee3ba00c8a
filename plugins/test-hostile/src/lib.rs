//! A test-only plugin that misbehaves on request, to show the sandbox holds.
//!
//! `render-label` runs the command named in the label's `reference`, with the
//! label's `notes` as arguments. Everything else is well behaved, so the plugin
//! installs like any printer driver. Its `info` reports the version written in
//! `/assets/version.txt` when that file exists, so tests can package one build
//! as several versions.

use outpost_sdk::printer_driver::{
    DocumentKind, HealthReport, HealthStatus, Lifecycle, PluginInfo, Printer, PrinterStatus,
    Receipt, ShippingLabel, StatusProbe,
};
use outpost_sdk::types::PluginError;
use outpost_sdk::{config, kv};
use std::hint::black_box;
use std::io::Write;

mod scratch;

struct Hostile;

fn arg(args: &[String], index: usize) -> Result<&str, PluginError> {
    args.get(index)
        .map(String::as_str)
        .ok_or_else(|| PluginError::invalid_input(format!("notes[{index}]: argument missing")))
}

fn io_error(what: &str, error: std::io::Error) -> PluginError {
    PluginError::denied(format!("{what}: {error}"))
}

/// Recurses until the stack runs out; the base case is never reached.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    if frame[0] == u64::MAX {
        return 0;
    }
    recurse(frame[0] + 1).wrapping_add(frame[63])
}

fn run(command: &str, args: &[String]) -> Result<Vec<u8>, PluginError> {
    match command {
        "echo" => Ok(args.join(" ").into_bytes()),
        "spin" => {
            let mut counter = 0u64;
            loop {
                counter = black_box(counter.wrapping_add(1));
            }
        }
        "grow-memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(black_box(vec![0xa5; 1 << 20]));
            }
        }
        "stack-overflow" => Ok(recurse(0).to_le_bytes().to_vec()),
        "panic" => panic!("hostile plugin panicked on purpose"),
        "abort" => std::process::abort(),
        "exit" => std::process::exit(7),
        "read-file" => {
            let path = arg(args, 0)?;
            std::fs::read(path).map_err(|e| io_error(&format!("read {path}"), e))
        }
        "write-file" => {
            let path = arg(args, 0)?;
            std::fs::write(path, arg(args, 1)?)
                .map(|()| b"written".to_vec())
                .map_err(|e| io_error(&format!("write {path}"), e))
        }
        "scratch-fill" => {
            let number = |index| {
                arg(args, index)?
                    .parse::<u64>()
                    .map_err(|_| PluginError::invalid_input(format!("notes[{index}]: a number")))
            };
            scratch::fill(arg(args, 0)?, number(1)?, number(2)?)
        }
        "list-dir" => {
            let path = arg(args, 0)?;
            let mut names = Vec::new();
            for entry in std::fs::read_dir(path).map_err(|e| io_error(path, e))? {
                let entry = entry.map_err(|e| io_error(path, e))?;
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            Ok(names.join("\n").into_bytes())
        }
        "env" => {
            let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
            let args: Vec<String> = std::env::args().collect();
            Ok(format!("vars={vars:?} args={args:?}").into_bytes())
        }
        "clock" => {
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| PluginError::internal(e.to_string()))?;
            // The first step the monotonic clock shows while spinning: its
            // resolution, give or take.
            let mut smallest = u128::MAX;
            let mut last = std::time::Instant::now();
            for _ in 0..20_000 {
                let now = std::time::Instant::now();
                let step = now.duration_since(last).as_nanos();
                if step > 0 {
                    smallest = step;
                    break;
                }
                last = now;
            }
            Ok(format!(
                "wall_nanos={} smallest_step_nanos={smallest}",
                wall.subsec_nanos()
            )
            .into_bytes())
        }
        "sleep" => {
            let ms: u64 = arg(args, 0)?
                .parse()
                .map_err(|_| PluginError::invalid_input("notes[0]: milliseconds"))?;
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok(b"slept".to_vec())
        }
        "kv-set" => {
            kv::set(arg(args, 0)?, arg(args, 1)?.as_bytes())?;
            Ok(b"stored".to_vec())
        }
        "kv-get" => Ok(kv::get(arg(args, 0)?)?.unwrap_or_else(|| b"<none>".to_vec())),
        // A write that lands late: while an update or a rollback happens.
        "sleep-then-kv-set" => {
            run("sleep", args.get(..1).unwrap_or_default())?;
            run("kv-set", args.get(1..).unwrap_or_default())
        }
        "kv-delete" => Ok(kv::delete(arg(args, 0)?)?.to_string().into_bytes()),
        "kv-list" => Ok(kv::list_keys(arg(args, 0)?, 1000)?.join("\n").into_bytes()),
        "kv-roundtrip" => {
            kv::set("bench", b"0123456789abcdef")?;
            kv::get("bench")?.ok_or_else(|| PluginError::internal("bench key vanished"))
        }
        "kv-fill" => {
            let chunk = vec![b'x'; 1024];
            for index in 0.. {
                kv::set(&format!("fill/{index:06}"), &chunk)?;
            }
            Ok(Vec::new())
        }
        "log-flood" => {
            // Forty times the 256 events a call may log.
            for index in 0..10_000 {
                outpost_sdk::warn!("flood line {index}");
            }
            Ok(b"logged".to_vec())
        }
        "stderr-flood" => {
            // 1 MiB, far past the node's 8 KiB capture, in the largest
            // writes WASI's blocking write takes.
            let line = [b'e'; 4096];
            let mut stderr = std::io::stderr();
            for _ in 0..256 {
                if stderr.write_all(&line).is_err() {
                    break;
                }
            }
            Ok(b"flooded".to_vec())
        }
        "config" => Ok(config::get(arg(args, 0)?)
            .unwrap_or_else(|| "<unset>".into())
            .into_bytes()),
        other => Err(PluginError::invalid_input(format!(
            "reference: unknown command {other:?}"
        ))),
    }
}

impl Lifecycle for Hostile {
    fn info() -> PluginInfo {
        let version = std::fs::read_to_string("/assets/version.txt")
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|_| env!("CARGO_PKG_VERSION").to_string());
        PluginInfo {
            version,
            description: "Attacks its sandbox on request (tests only)".into(),
            support: "tests".into(),
        }
    }

    /// Failing when `/assets/health.txt` says "failing: why", so tests can
    /// package a release whose health check fails.
    fn health() -> HealthReport {
        let said = std::fs::read_to_string("/assets/health.txt").unwrap_or_default();
        match said.trim().strip_prefix("failing") {
            Some(why) => HealthReport {
                status: HealthStatus::Failing,
                detail: why.trim_start_matches(':').trim().to_string(),
            },
            None => HealthReport {
                status: HealthStatus::Ok,
                detail: "hostile and proud".into(),
            },
        }
    }

    /// Records what it migrated from, and fails after writing when the operator
    /// set `fail-migrate`, so tests can see a failed migration leave no trace.
    fn migrate(from_version: Option<String>) -> Result<(), PluginError> {
        let from = from_version.unwrap_or_else(|| "fresh".into());
        kv::set("migrated-from", from.as_bytes())?;
        if config::parse_or::<bool>("fail-migrate", false)? {
            return Err(PluginError::internal("migration failed on purpose"));
        }
        if config::parse_or::<bool>("spin-in-migrate", false)? {
            loop {
                black_box(());
            }
        }
        Ok(())
    }
}

impl Printer for Hostile {
    fn render_label(label: ShippingLabel) -> Result<Vec<u8>, PluginError> {
        run(&label.reference, &label.notes)
    }

    fn render_receipt(receipt: Receipt) -> Result<Vec<u8>, PluginError> {
        Ok(receipt.reference.into_bytes())
    }

    fn status_request(_kind: DocumentKind) -> StatusProbe {
        StatusProbe {
            request: b"?".to_vec(),
            reply_bytes: 1,
        }
    }

    fn parse_status(_kind: DocumentKind, reply: Vec<u8>) -> Result<PrinterStatus, PluginError> {
        Ok(PrinterStatus {
            ready: reply == b"!",
            conditions: Vec::new(),
            detail: String::from_utf8_lossy(&reply).into_owned(),
        })
    }
}

outpost_sdk::export_printer_driver!(Hostile);
