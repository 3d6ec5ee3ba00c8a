//! `outpost`: the node binary. See `outpost --help`.

mod backups;
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
mod runbook;
mod sales;
mod service;
mod trade;
mod updates;
#[cfg(unix)]
mod users;
mod vendor;

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The service's `/var/lib/outpost` when this box has one (so the
/// operator's commands reach the node the service runs, never an empty one
/// of their own), else `$XDG_DATA_HOME/outpost`, `~/.local/share/outpost`,
/// or `./outpost-data`.
fn default_data_dir() -> PathBuf {
    let service = Path::new(service::SERVICE_DATA_DIR);
    if service.is_dir() {
        return service.to_path_buf();
    }
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(true);
    // systemd connects stderr to the journal and says so in JOURNAL_STREAM;
    // the journal stamps every line itself, so a second time is noise.
    if !logging_to_journal() {
        builder.init();
        return;
    }
    builder
        .event_format(JournalPriority(
            tracing_subscriber::fmt::format()
                .without_time()
                .with_target(true)
                .with_ansi(false),
        ))
        .init();
    // A panic skips every handler: in the journal it should read as one
    // error line from the node, at error priority, not raw stderr text.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!("the node panicked (a bug, please report it): {info}");
    }));
}

/// Each line prefixed with its syslog priority (`<4>` for a warning), which
/// the journal reads off stderr: `journalctl -u outpost -p warning` then
/// shows the node's warnings and errors only.
struct JournalPriority<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for JournalPriority<F>
where
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(context, writer, event)
    }
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
    // What the node makes is its user's alone (the unit sets the same); the
    // one file a group may read, the token, is opened up on purpose.
    #[cfg(unix)]
    // SAFETY: umask only sets this process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
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

    let mut used_data_dir = None;
    let result = match cli.command {
        cli::Command::Demo { serve } => demo::run(cli.global.data_dir, serve),
        command => {
            let data_dir = cli.global.data_dir.unwrap_or_else(|| match &command {
                // Setting up a service user: the service's directory,
                // which does not exist yet on a fresh box.
                cli::Command::Setup(args) if args.user.is_some() => {
                    PathBuf::from(service::SERVICE_DATA_DIR)
                }
                _ => default_data_dir(),
            });
            used_data_dir = Some(data_dir.clone());
            commands::run(command, &data_dir, cli.global.config.as_deref())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Under systemd, at error priority: `journalctl -p warning`
            // must show why the node would not start.
            let message = format!("error: {}", outpost_registry::report::error_chain(&error));
            if logging_to_journal() {
                // Every line: the journal reads the priority per line, and
                // the fix is often on the last.
                for line in message.lines() {
                    eprintln!("<3>{line}");
                }
            } else {
                eprintln!("{message}");
            }
            if let Some(owner) = used_data_dir.as_deref().and_then(someone_elses) {
                eprintln!(
                    "hint: the data directory belongs to the user {owner}; run the command as \
                     that user: sudo -u {owner} outpost ..."
                );
            }
            ExitCode::FAILURE
        }
    }
}

/// The name of the user owning `data_dir`, when that is not who runs this
/// (root acts as the owner instead; see `commands::before_opening`).
fn someone_elses(data_dir: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        let owner = users::other_owner(data_dir)?;
        if users::current_uid() == 0 {
            return None;
        }
        let name = users::user(&owner.to_string()).ok().flatten();
        Some(name.map_or_else(|| owner.to_string(), |user| user.name))
    }
    #[cfg(not(unix))]
    {
        let _ = data_dir;
        None
    }
}

/// True when standard error is the journal: systemd names the stream it
/// connected in JOURNAL_STREAM (`device:inode`), and a shell that merely
/// inherited the variable has another stderr.
fn logging_to_journal() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
            return false;
        };
        let Some((device, inode)) = stream.to_str().and_then(|s| s.split_once(':')) else {
            return false;
        };
        let stderr = std::os::fd::AsFd::as_fd(&std::io::stderr())
            .try_clone_to_owned()
            .map(std::fs::File::from);
        stderr
            .and_then(|file| file.metadata())
            .is_ok_and(|metadata| {
                device.parse() == Ok(metadata.dev()) && inode.parse() == Ok(metadata.ino())
            })
    }
    #[cfg(not(unix))]
    false
}
