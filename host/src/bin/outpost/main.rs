//! `outpost`: the node binary. See `outpost --help`.

mod cli;
mod commands;
mod console;
mod demo;
mod fleet;
mod keys;
mod link;
mod outbox;
mod plugins;
mod registry;
mod trade;
mod updates;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// `$XDG_DATA_HOME/outpost`, `~/.local/share/outpost`, or `./outpost-data`.
fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("outpost");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/outpost");
    }
    PathBuf::from("outpost-data")
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|error| {
        eprintln!("warning: --log {filter:?} is not a valid filter ({error}); using `info`");
        tracing_subscriber::EnvFilter::new("info")
    });
    // Colour only for a person at a terminal, not for the journal or a file.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(true)
        .init();
}

/// Rust ignores SIGPIPE, so a command piped into `head` would panic on its
/// next line of output. A printing command should just stop, as `ls` does.
/// `run` keeps ignoring it: a long-lived node must not die because a log
/// reader went away.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists, to
    // restore the default disposition of one signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if !matches!(cli.command, cli::Command::Run { .. }) {
        quiet_on_closed_pipe();
    }
    // The demo prints its own story; node logs would interleave with it.
    // wasmtime-wasi-http warns on every refused connection; the plugin that
    // made it reports the same event in its own words, with what it did next.
    let default_filter = match cli.command {
        cli::Command::Run { .. } => "info,wasmtime_wasi_http=error",
        _ => "warn,wasmtime_wasi_http=error",
    };
    init_logging(cli.global.log.as_deref().unwrap_or(default_filter));

    let result = match cli.command {
        cli::Command::Demo { serve } => demo::run(cli.global.data_dir, serve),
        command => {
            let data_dir = cli.global.data_dir.unwrap_or_else(default_data_dir);
            commands::run(command, &data_dir, cli.global.config.as_deref())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", outpost_registry::report::error_chain(&error));
            ExitCode::FAILURE
        }
    }
}
