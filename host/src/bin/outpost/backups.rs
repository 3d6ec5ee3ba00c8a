//! `outpost backup` and `outpost restore`: a node's state to a file (a USB
//! stick) and back onto a box, with what to do about the old one.

use crate::link::AdminLink;
use anyhow::{Context, bail};
use clap::Args;
use hyper::Method;
use outpost::backup::{self, RestoreOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Copy the snapshot to FILE too (a USB stick), and read the copy back
    /// to check it opens whole. FILE must be new (put the date in its name)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Let -o write over a FILE that exists (an older backup is lost if
    /// this one fails)
    #[arg(long, requires = "output")]
    pub overwrite: bool,
    /// List the local snapshots instead
    #[arg(long, conflicts_with_all = ["output", "recovery_code"])]
    pub list: bool,
    /// Show the recovery code a backup is opened with, instead (keep it off
    /// the box: on paper, in the owner's password manager)
    #[arg(long, conflicts_with = "output")]
    pub recovery_code: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup: a file from `outpost backup -o`, or a local snapshot
    pub file: PathBuf,
    /// The recovery code shown with the node's first backup (better: the
    /// OUTPOST_RECOVERY_CODE variable, out of shell history)
    #[arg(long, env = "OUTPOST_RECOVERY_CODE", hide_env_values = true)]
    pub recovery_code: Option<String>,
    /// The old node's backup.key instead of the code (for a local snapshot)
    #[arg(long, value_name = "FILE", conflicts_with = "recovery_code")]
    pub key_file: Option<PathBuf>,
    /// Put it in place of the node in the data directory (a damaged one);
    /// what is there is moved aside into before-restore-<time>/
    #[arg(long)]
    pub replace: bool,
    /// Give this box a new node identity instead of the old node's: it then
    /// enrols again (`outpost fleet join`), and the old box keeps its own
    #[arg(long)]
    pub new_identity: bool,
    /// Make a new API token at once (the old box was lost or stolen): apps
    /// then need the new one
    #[arg(long)]
    pub rotate_token: bool,
}

pub fn backup(data_dir: &Path, config: Option<&Path>, args: BackupArgs) -> anyhow::Result<()> {
    // The stick is opened by whoever runs this (root can write a stick
    // mounted for the desktop user); the rest is done as the node's user.
    let output = match &args.output {
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.read(true).write(true);
            if args.overwrite {
                options.create(true).truncate(true);
            } else {
                // Never over an older backup: this one may yet fail.
                options.create_new(true);
            }
            let file = options.open(path).with_context(|| {
                if path.exists() && !args.overwrite {
                    format!(
                        "{} exists; give the new backup its own name (the date in it), or pass \
                         --overwrite",
                        path.display()
                    )
                } else {
                    format!("cannot write {}", path.display())
                }
            })?;
            // Sealed already: whoever holds the stick may copy it, only the
            // recovery code opens it.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = file.set_permissions(std::fs::Permissions::from_mode(0o644));
            }
            Some((path.clone(), file))
        }
        None => None,
    };
    #[cfg(unix)]
    crate::users::act_as_owner(data_dir)?;
    if args.recovery_code {
        let (key, new) = backup::backup_key(data_dir)?;
        println!("{}", backup::recovery_code(&key));
        if new {
            eprintln!(
                "(the backup key was made just now, in {})",
                data_dir.join(backup::BACKUP_KEY_FILE).display()
            );
        }
        return Ok(());
    }
    if args.list {
        let snapshots = backup::local::list(data_dir);
        if snapshots.is_empty() {
            println!("No local snapshots yet (one is taken every backup.every-minutes).");
        }
        for snapshot in snapshots {
            println!(
                "{}  {:>8} KiB  {}",
                crate::trade::utc(snapshot.made_at as i64),
                snapshot.bytes >> 10,
                snapshot.path.display()
            );
        }
        return Ok(());
    }
    let link = AdminLink::open(data_dir, config)?;
    let taken: Value = link.call(
        Method::POST,
        "/admin/v1/snapshots",
        None::<&()>,
        "taking a snapshot",
    )?;
    let path = PathBuf::from(taken["snapshot"]["path"].as_str().unwrap_or_default());
    let manifest = &taken["manifest"];
    let plugins: Vec<&str> = manifest["plugins"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!(
        "snapshot: {} ({} KiB): {} plugin(s) [{}], {} key(s), the database, tokens, identity and \
         configuration",
        path.display(),
        taken["snapshot"]["bytes"].as_u64().unwrap_or(0) >> 10,
        plugins.len(),
        plugins.join(", "),
        manifest["keys"]
    );
    if let Some((output, file)) = output {
        copy_checked(data_dir, &path, &output, file)?;
        println!("copied to {} and read back whole", output.display());
    }
    if let Some(code) = taken["new_recovery_code"].as_str() {
        println!(
            "\nThis was the node's first backup, so its backup key was made now. Write this \
             recovery code down and keep it off the box: a backup cannot be restored without it.\n\n  \
             {code}\n\n(`outpost backup --recovery-code` shows it again while the box is there.)"
        );
    }
    Ok(())
}

/// Copies the snapshot into `file` (the stick, opened before), flushes it
/// there, and reads the copy back through the decryption. A copy that does
/// not read back is emptied, so it cannot be mistaken for a backup later.
fn copy_checked(
    data_dir: &Path,
    snapshot: &Path,
    output: &Path,
    mut file: std::fs::File,
) -> anyhow::Result<()> {
    use std::io::Seek;
    let mut from = std::fs::File::open(snapshot)
        .with_context(|| format!("cannot read {}", snapshot.display()))?;
    let (key, _) = backup::backup_key(data_dir)?;
    let checked = std::io::copy(&mut from, &mut file)
        .and_then(|_| file.sync_all())
        .and_then(|()| file.rewind())
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            backup::verify(&mut file, &key, &output.display().to_string())
                .map_err(anyhow::Error::from)
        });
    if let Err(error) = checked {
        let _ = file.set_len(0);
        return Err(error.context(format!(
            "the copy on {} did not read back whole (it was emptied: delete it); the snapshot \
             itself is fine, at {}: try again, or another stick",
            output.display(),
            snapshot.display()
        )));
    }
    Ok(())
}

pub fn restore(data_dir: &Path, config: Option<&Path>, args: RestoreArgs) -> anyhow::Result<()> {
    if crate::link::socket_answers(&outpost::api::admin::socket_path(data_dir)) {
        bail!(
            "a node is running on {}; stop it first (`sudo systemctl stop outpost`), then restore",
            data_dir.display()
        );
    }
    let key = backup::key_from(args.recovery_code.as_deref(), args.key_file.as_deref())?;
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot read the backup {}", args.file.display()))?;
    // Read by whoever runs this; restored as the node's user (a directory
    // root owns stays root's: `setup --user` hands it over, contents and all).
    #[cfg(unix)]
    crate::users::act_as_owner(data_dir)?;
    let restored = backup::restore(
        file,
        &key,
        &args.file.display().to_string(),
        data_dir,
        &RestoreOptions {
            replace: args.replace,
            new_identity: args.new_identity,
        },
    )?;
    let manifest = &restored.manifest;
    println!(
        "restored into {}: the node as it was at {} ({} plugin(s), {} key(s))",
        data_dir.display(),
        crate::trade::utc(manifest.made_at as i64),
        manifest.plugins.len(),
        manifest.keys
    );
    if let Some(aside) = &restored.moved_aside {
        println!("what was there is in {}", aside.display());
    }
    // The restored node must open, plugins and all, before anyone relies
    // on it; this also makes a new identity when asked for.
    let node =
        crate::commands::open(data_dir, config).context("the restored node does not open")?;
    for plugin in node.plugins() {
        println!("  {} {} {}", plugin.id, plugin.version, plugin.status);
    }
    let token = if args.rotate_token {
        outpost::api::rotate_token(&node)?;
        "a new API token was made: give it to the apps (it is in the api-token file)"
    } else {
        "apps keep their API token; if the old box was lost or stolen, `outpost token rotate`"
    };
    println!("\nNext:");
    if restored.identity_restored {
        println!(
            "  identity: this box is now the old node to the fleet. Never start the old box \
             again with its data (wipe it); if it was stolen, restore with --new-identity \
             instead and have the central team revoke the old node."
        );
    } else if manifest.node_identity.is_some() {
        println!(
            "  identity: this box made a new one; enrol it (`outpost fleet join`) and have the \
             central team retire the old node."
        );
    }
    println!("  token:    {token}");
    if manifest.keys > 0 {
        println!(
            "  keys:     the {} key(s) came with node.key: card tokens stay as they were",
            manifest.keys
        );
    }
    println!("  then:     outpost doctor, and start the node (sudo systemctl start outpost)");
    Ok(())
}
