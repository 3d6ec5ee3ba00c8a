//! `outpost`: the node binary. See `outpost --help`.

mod cli;
mod commands;
mod demo;

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

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // The demo prints its own story; node logs would interleave with it.
    let default_filter = match cli.command {
        cli::Command::Run { .. } => "info",
        _ => "warn",
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
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
