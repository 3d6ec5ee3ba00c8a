//! `outpost setup` and `outpost token`: what running the node for real, as
//! a service on a Debian or Raspberry Pi OS box, takes.

use crate::link::AdminLink;
#[cfg(unix)]
use crate::users::{self, User};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hyper::Method;
use outpost::node::NodeOptions;
use outpost::origin::Origin;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The unit shipped in the repository, with the paths of a default install.
const UNIT: &str = include_str!("../../../dist/outpost.service");
const UNIT_PATH: &str = "/etc/systemd/system/outpost.service";
/// Where the unit keeps the node (its `StateDirectory=outpost`).
pub const SERVICE_DATA_DIR: &str = "/var/lib/outpost";

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// The user the node runs as. Run as root, setup creates it (a system
    /// user with its own group) if it is missing, gives it the data
    /// directory and does the rest as that user [default: the current user]
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Also write the systemd unit to /etc/systemd/system/outpost.service,
    /// for this binary, user and data directory (needs root)
    #[arg(long)]
    pub systemd: bool,
    /// Print that unit (for --user, default outpost) instead of setting
    /// anything up, to install it some other way
    #[arg(long, conflicts_with = "systemd")]
    pub print_unit: bool,
    /// A web page (a browser point of sale) that may call the API, as an
    /// origin: https://pos.example.com. Repeat for more. Written to a new
    /// outpost.toml as api.allowed-origins
    #[arg(long = "allow-origin", value_name = "ORIGIN", value_parser = parse_origin)]
    pub allow_origins: Vec<Origin>,
    /// Let the node's group read the API token, for an app on this box whose
    /// user is in that group (api.share-token-with-group in a new
    /// outpost.toml)
    #[arg(long)]
    pub share_token_with_group: bool,
}

fn parse_origin(text: &str) -> Result<Origin, String> {
    Origin::parse(text)
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a new API token; the old one is refused from the next request on
    ///
    /// A running node switches at once. The new token is shown once, here:
    /// give it to the point-of-sale apps (a browser POS keeps it in its
    /// settings page; an app on this box reads the token file).
    Rotate,
}

pub fn token(data_dir: &Path, config: Option<&Path>, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Rotate => {
            let link = AdminLink::open(data_dir, config)?;
            let rotated: Value = link.call(
                Method::POST,
                "/admin/v1/token/rotate",
                None::<&()>,
                "rotating the API token",
            )?;
            let token = rotated["token"].as_str().unwrap_or_default();
            let file = rotated["file"].as_str().unwrap_or_default();
            println!("new API token (shown once): {token}");
            println!("written to {file}; the old token is refused from now on.");
            println!(
                "Give it to each point-of-sale app: a browser POS in its settings, an app on this \
                 box by reading {file}."
            );
            Ok(())
        }
    }
}

/// Creates the service user (a system user with its own group, no login,
/// the data directory as home) unless it exists.
#[cfg(unix)]
fn ensure_user(name: &str, data_dir: &Path) -> anyhow::Result<User> {
    if let Some(user) = users::user(name)? {
        return Ok(user);
    }
    let status = std::process::Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home"])
        .arg("--home-dir")
        .arg(data_dir)
        .args(["--shell", "/usr/sbin/nologin", "--comment", "Outpost node"])
        .arg(name)
        .status()
        .context("cannot run useradd (Debian's passwd package) to create the node's user")?;
    if !status.success() {
        bail!("useradd could not create the user {name:?} ({status})");
    }
    println!("created the system user {name}");
    users::user(name)?.with_context(|| format!("useradd made {name:?}, but getent cannot see it"))
}

/// Every folder above the data directory must be root's (or the user's)
/// and writable by nobody else, unless sticky like /tmp: otherwise another
/// user could swap a folder for a link while root works below it, and have
/// root hand over a directory of their choosing.
#[cfg(unix)]
fn check_parents(data_dir: &Path, user: Option<u32>) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for parent in data_dir.ancestors().skip(1) {
        let Ok(metadata) = std::fs::symlink_metadata(parent) else {
            continue;
        };
        let owner_ok = metadata.uid() == 0 || Some(metadata.uid()) == user;
        let mode = metadata.mode();
        let others_write = mode & 0o022 != 0 && mode & 0o1000 == 0;
        if !owner_ok || others_write || metadata.file_type().is_symlink() {
            bail!(
                "{} is not safe to hold the data directory: it is {}; put the node under a \
                 folder only root can change (the default /var/lib/outpost)",
                parent.display(),
                if metadata.file_type().is_symlink() {
                    "a symbolic link".to_string()
                } else if !owner_ok {
                    format!("owned by uid {}", metadata.uid())
                } else {
                    "writable by others".to_string()
                }
            );
        }
    }
    Ok(())
}

/// Makes the data directory (its parents must exist), owned by `user`,
/// mode 0700. Done on the opened directory itself (never following a link),
/// and only on one that is new, root's or already the user's.
#[cfg(unix)]
fn hand_over_data_dir(data_dir: &Path, user: &User) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    check_parents(data_dir, Some(user.uid))?;
    match std::fs::DirBuilder::new().mode(0o700).create(data_dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => {
            return Err(error).with_context(|| {
                format!("cannot create the data directory {}", data_dir.display())
            });
        }
    }
    let directory = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(data_dir)
        .with_context(|| format!("{} is not a directory (or is a link)", data_dir.display()))?;
    let owner = directory.metadata()?.uid();
    if owner != 0 && owner != user.uid {
        bail!(
            "{} belongs to uid {owner}, not to root or {}: choose a new data directory, or give \
             it to {} yourself if that is what you mean",
            data_dir.display(),
            user.name,
            user.name
        );
    }
    std::os::unix::fs::fchown(&directory, Some(user.uid), Some(user.gid)).with_context(|| {
        format!(
            "cannot give the data directory {} to {}",
            data_dir.display(),
            user.name
        )
    })?;
    if owner == 0 {
        // A node root made there (a restore run as root before setup) is
        // handed over whole, or the service could not open it.
        hand_over_contents(data_dir, user)?;
    }
    directory
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("cannot make {} private", data_dir.display()))?;
    Ok(())
}

/// Gives everything under `dir` to `user`, links themselves rather than
/// what they point at.
#[cfg(unix)]
fn hand_over_contents(dir: &Path, user: &User) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        std::os::unix::fs::lchown(&path, Some(user.uid), Some(user.gid))
            .with_context(|| format!("cannot give {} to {}", path.display(), user.name))?;
        if std::fs::symlink_metadata(&path)?.is_dir() {
            hand_over_contents(&path, user)?;
        }
    }
    Ok(())
}

/// The binary the unit runs: one root owns, outside home directories (the
/// unit's `ProtectHome` hides those, and a binary a login user can rewrite
/// would run as the node).
#[cfg(unix)]
fn service_binary() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let executable = std::env::current_exe()
        .context("cannot tell where this outpost binary is, for the unit")?;
    let metadata = std::fs::metadata(&executable)?;
    let in_home = executable.starts_with("/home") || executable.starts_with("/root");
    let odd_name = executable
        .to_string_lossy()
        .contains(|c: char| c.is_whitespace() || c == '%');
    // The folders it is in must be root's too, or it can be swapped.
    let folders_safe = executable
        .parent()
        .is_some_and(|folder| check_parents(&folder.join("x"), None).is_ok());
    if in_home || odd_name || !folders_safe || metadata.uid() != 0 || metadata.mode() & 0o022 != 0 {
        bail!(
            "the unit would run {}, which {}; install the binary first (`sudo install \
             target/release/outpost /usr/local/bin/`) and run `sudo /usr/local/bin/outpost setup \
             ...` from there",
            executable.display(),
            if in_home {
                "is in a home directory the service cannot see"
            } else if odd_name {
                "has a space or % in its path, which a unit cannot hold"
            } else {
                "others than root can change (the file or a folder above it)"
            }
        );
    }
    Ok(executable)
}

/// The shipped unit with this box's binary, user and data directory.
fn unit_for(executable: &Path, user: &str, group: &str, data_dir: &Path, shared: bool) -> String {
    let mut unit = String::with_capacity(UNIT.len());
    for line in UNIT.lines() {
        let line = match line.split_once('=') {
            Some(("User", _)) => format!("User={user}"),
            Some(("Group", _)) => format!("Group={group}"),
            Some(("ExecStart", _)) => format!("ExecStart={} run", executable.display()),
            Some(("Environment", value)) if value.starts_with("OUTPOST_DATA_DIR=") => {
                format!("Environment=OUTPOST_DATA_DIR={}", data_dir.display())
            }
            // systemd makes /var/lib/<name> only; elsewhere the directory is
            // setup's to make, and the unit's to open for writing.
            Some(("StateDirectory", _)) if data_dir != Path::new(SERVICE_DATA_DIR) => {
                format!("ReadWritePaths={}", data_dir.display())
            }
            Some(("StateDirectoryMode", _)) if data_dir != Path::new(SERVICE_DATA_DIR) => {
                continue;
            }
            Some(("StateDirectoryMode", _)) if shared => "StateDirectoryMode=0710".to_string(),
            _ => line.to_string(),
        };
        unit.push_str(&line);
        unit.push('\n');
    }
    unit
}

/// `--allow-origin` and the like write a new outpost.toml; one that is
/// already there (or a `--config` elsewhere) is the operator's to edit.
fn refuse_existing_config(
    data_dir: &Path,
    config: Option<&Path>,
    text: &str,
) -> anyhow::Result<()> {
    let existing = match config {
        Some(path) => Some(path.to_path_buf()),
        None => Some(data_dir.join("outpost.toml")).filter(|path| path.exists()),
    };
    if let Some(path) = existing {
        bail!(
            "the node's configuration is {}, which setup does not edit: add these settings to \
             it yourself, and leave out --allow-origin and --share-token-with-group:\n{text}",
            path.display()
        );
    }
    Ok(())
}

/// The settings setup was asked for, as a new outpost.toml.
fn config_text(args: &SetupArgs) -> Option<String> {
    if args.allow_origins.is_empty() && !args.share_token_with_group {
        return None;
    }
    let origins: Vec<String> = args
        .allow_origins
        .iter()
        .map(|origin| format!("{:?}", origin.as_str()))
        .collect();
    Some(format!(
        "# Written by `outpost setup`; `outpost config --defaults` shows every setting.\n\
         [api]\nallowed-origins = [{}]\nshare-token-with-group = {}\n",
        origins.join(", "),
        args.share_token_with_group
    ))
}

pub fn setup(data_dir: &Path, config: Option<&Path>, args: SetupArgs) -> anyhow::Result<()> {
    let data_dir = absolute(data_dir)?;
    if args.print_unit {
        let executable = std::env::current_exe()
            .context("cannot tell where this outpost binary is, for the unit")?;
        let user = args.user.as_deref().unwrap_or("outpost");
        print!(
            "{}",
            unit_for(
                &executable,
                user,
                user,
                &data_dir,
                args.share_token_with_group
            )
        );
        return Ok(());
    }
    #[cfg(unix)]
    {
        let root = users::current_uid() == 0;
        if (args.systemd || args.user.is_some()) && !root {
            bail!(
                "setting up a service user or the systemd unit needs root: run `sudo outpost setup \
                 ...` (or leave out --user and --systemd to set up a node for yourself)"
            );
        }
        if root && args.user.is_none() {
            bail!(
                "setup is running as root without --user, which would make a node only root can \
                 run; name the node's user: `sudo outpost setup --user outpost --systemd`"
            );
        }
        // What could refuse is checked before anything changes.
        if let Some(text) = config_text(&args) {
            refuse_existing_config(&data_dir, config, &text)?;
        }
        let service = args.user.is_some() || args.systemd;
        if service && (data_dir.starts_with("/home") || data_dir.starts_with("/root")) {
            bail!(
                "the service cannot see {} (its unit has ProtectHome); keep the node outside \
                 home directories, for example the default /var/lib/outpost",
                data_dir.display()
            );
        }
        if service && data_dir.to_string_lossy().contains(char::is_whitespace) {
            bail!(
                "{} has a space in it, which the unit's settings cannot hold; choose another",
                data_dir.display()
            );
        }
        let executable = if args.systemd {
            Some(service_binary()?)
        } else {
            None
        };
        if let Some(name) = &args.user {
            // The folders above are checked before a user is made.
            check_parents(&data_dir, users::user(name)?.map(|user| user.uid))?;
            let user = ensure_user(name, &data_dir)?;
            if user.uid == 0 {
                bail!("the node must not run as root; name a user of its own: --user outpost");
            }
            hand_over_data_dir(&data_dir, &user)?;
            if let Some(executable) = executable {
                let group = users::group_name(user.gid)?;
                let unit = unit_for(
                    &executable,
                    &user.name,
                    &group,
                    &data_dir,
                    args.share_token_with_group,
                );
                std::fs::write(UNIT_PATH, unit)
                    .with_context(|| format!("cannot write the unit {UNIT_PATH}"))?;
                println!("wrote {UNIT_PATH}");
            }
            users::become_user(&user)?;
        }
    }
    let config_file = data_dir.join("outpost.toml");
    if let Some(text) = config_text(&args) {
        refuse_existing_config(&data_dir, config, &text)?;
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        std::fs::write(&config_file, text)
            .with_context(|| format!("cannot write {}", config_file.display()))?;
        println!("wrote {}", config_file.display());
    }
    let options = NodeOptions::resolve(&data_dir, config)?;
    let node = crate::commands::open_waiting(&options, || false)
        .with_context(|| format!("cannot open the node in {}", data_dir.display()))?;
    let token = outpost::api::load_or_create_token(&node)?;
    drop(token);
    outpost::api::tokens::load_or_create_metrics_token(&node)?;
    outpost::api::tokens::load_or_create_console_password(&node)?;
    let api = &node.config().api;
    println!("data directory: {} (ready)", data_dir.display());
    println!("configuration:  {}", node.config_origin());
    println!(
        "API token:      {}",
        outpost::api::tokens::token_path(api, &data_dir).display()
    );
    println!("API:            http://{}/v1/", api.listen);
    println!("console:        http://{}/console/", api.listen);
    println!("\nNext:");
    if args.systemd {
        println!("  sudo systemctl daemon-reload && sudo systemctl enable --now outpost");
        println!("  journalctl -u outpost -f          its log");
    } else {
        println!(
            "  outpost run --data-dir {}        serve the API",
            data_dir.display()
        );
    }
    // With sudo, a command acts as the directory's owner (see `users`).
    let as_user = if args.user.is_some() { "sudo " } else { "" };
    let dir = if data_dir == Path::new(SERVICE_DATA_DIR) {
        String::new()
    } else {
        format!(" -d {}", data_dir.display())
    };
    println!("  {as_user}outpost{dir} plugin install ...   add plugins to the running node");
    println!("  {as_user}outpost{dir} doctor              can it trade right now?");
    Ok(())
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// Tells systemd how the node stands (`READY=1`, `STOPPING=1`) when it
/// runs the node as a `Type=notify` service; nothing otherwise.
pub fn notify_systemd(state: &str) {
    #[cfg(target_os = "linux")]
    if let Some(socket) = std::env::var_os("NOTIFY_SOCKET")
        && let Err(error) = send_notification(&socket, state)
    {
        tracing::warn!("cannot tell systemd {state}: {error}");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = state;
}

#[cfg(target_os = "linux")]
fn send_notification(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let sender = UnixDatagram::unbound()?;
    let address = match socket.as_bytes() {
        [b'@', name @ ..] => SocketAddr::from_abstract_name(name)?,
        _ => SocketAddr::from_pathname(socket)?,
    };
    sender.send_to_addr(state.as_bytes(), &address)?;
    Ok(())
}

/// Watches the signals a service gets, and says so in the log (the
/// journal) every time: SIGTERM and SIGINT stop the node, letting running
/// requests finish; SIGHUP, which would kill it silently, is logged and
/// ignored (the configuration is read at start). The receiver turns true
/// when the node is to stop.
pub fn stop_on_signals() -> anyhow::Result<tokio::sync::watch::Receiver<bool>> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("cannot handle {name}"))
        };
        let mut terminate = listen(SignalKind::terminate(), "SIGTERM")?;
        let mut interrupt = listen(SignalKind::interrupt(), "SIGINT")?;
        let mut hangup = listen(SignalKind::hangup(), "SIGHUP")?;
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    _ = terminate.recv() => "SIGTERM",
                    _ = interrupt.recv() => "SIGINT",
                    _ = hangup.recv() => {
                        tracing::warn!(
                            "SIGHUP received: the node keeps running with the configuration it \
                             started with; restart it to apply outpost.toml \
                             (systemctl restart outpost)"
                        );
                        continue;
                    }
                };
                tracing::info!("{name} received: stopping, letting running requests finish");
                notify_systemd("STOPPING=1");
                let _ = stop.send(true);
                break;
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C received: stopping, letting running requests finish");
        }
        let _ = stop.send(true);
    });
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn systemd_hears_the_node_is_ready() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("notify");
        let systemd = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        send_notification(path.as_os_str(), "READY=1").expect("sent");
        let mut buffer = [0u8; 64];
        let length = systemd.recv(&mut buffer).expect("received");
        assert_eq!(&buffer[..length], b"READY=1");
    }

    #[test]
    fn the_unit_takes_this_boxs_paths() {
        let unit = unit_for(
            Path::new("/opt/outpost/bin/outpost"),
            "stall",
            "stall",
            Path::new("/srv/outpost"),
            false,
        );
        assert!(unit.contains("\nExecStart=/opt/outpost/bin/outpost run\n"));
        assert!(unit.contains("\nUser=stall\nGroup=stall\n"));
        assert!(unit.contains("\nEnvironment=OUTPOST_DATA_DIR=/srv/outpost\n"));
        assert!(unit.contains("\nReadWritePaths=/srv/outpost\n"));
        assert!(!unit.contains("StateDirectory"));
        let default = unit_for(
            Path::new("/usr/local/bin/outpost"),
            "outpost",
            "outpost",
            Path::new(SERVICE_DATA_DIR),
            true,
        );
        assert!(default.contains("\nStateDirectory=outpost\nStateDirectoryMode=0710\n"));
        assert_eq!(default.replace("0710", "0700"), UNIT);
    }
}
