//! `outpost-registry rollout …`: a release to selected nodes in waves.

use crate::admin_link::{AdminLink, segment as encode};
use crate::nodes::when;
use anyhow::{Context, bail};
use clap::Subcommand;
use hyper::Method;
use outpost_registry::rollout::{Rollout, RolloutRequest, RolloutState, RolloutStatus};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum RolloutCommand {
    /// Start a rollout of RELEASE (vendor/plugin@1.3.0) to the nodes SELECT picks
    ///
    /// Checked whole before anything is stored: the release must be one its
    /// vendor signed, the selector must pick at least one active node, the
    /// waves must rise to 100, the abort rule must parse. The first wave
    /// opens at once; each next one when every node of the open waves has
    /// confirmed, failed, or been silent past --offline-after. When the
    /// abort rule trips the rollout halts and, unless --no-rollback, the
    /// nodes that took the release go back to their previous version.
    Create {
        /// vendor/plugin@version (or give --file)
        #[arg(required_unless_present = "file")]
        release: Option<String>,
        /// Only nodes with all these labels: region=north,kind=bakery (default: every active node)
        #[arg(long, default_value = "")]
        select: String,
        /// Percentages of the selected nodes per wave, rising to 100
        #[arg(long, value_delimiter = ',', default_value = "1,10,50,100")]
        waves: Vec<u32>,
        /// How long a node keeps the new version on probation before confirming it
        #[arg(long, default_value = "30m")]
        probation: jiff::SignedDuration,
        /// When to halt: `failed > 5% after 20` (at least 20 nodes done, more than 5% failed)
        #[arg(long, default_value = "failed > 5% after 20")]
        abort_when: String,
        /// On a halt, leave nodes on the new version instead of rolling them back
        #[arg(long)]
        no_rollback: bool,
        /// A node silent for this long no longer holds its wave back
        #[arg(long, default_value = "24h")]
        offline_after: jiff::SignedDuration,
        /// Read the rollout from a TOML file instead (the same fields, in kebab-case)
        #[arg(long, conflicts_with = "release")]
        file: Option<PathBuf>,
    },
    /// List rollouts: id, release, state, nodes
    List,
    /// Show a rollout: per wave, how many nodes are where; failure reasons grouped
    Status {
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Stop opening new waves (nodes already told keep going)
    Pause { id: String },
    /// Open waves again after a pause
    Resume { id: String },
    /// Stop the rollout for good; with rollback (the default), nodes that took it go back
    Abort { id: String },
}

/// A rollout file: the flags of `rollout create`, in kebab-case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RolloutFile {
    release: String,
    #[serde(default)]
    select: String,
    #[serde(default = "default_waves")]
    waves: Vec<u32>,
    #[serde(default = "default_probation")]
    probation: String,
    #[serde(default = "default_abort")]
    abort_when: String,
    #[serde(default = "yes")]
    rollback: bool,
    #[serde(default = "default_offline")]
    offline_after: String,
}

fn default_waves() -> Vec<u32> {
    vec![1, 10, 50, 100]
}
fn default_probation() -> String {
    "30m".into()
}
fn default_abort() -> String {
    "failed > 5% after 20".into()
}
fn yes() -> bool {
    true
}
fn default_offline() -> String {
    "24h".into()
}

fn seconds(duration: jiff::SignedDuration, what: &str) -> anyhow::Result<u64> {
    u64::try_from(duration.as_secs())
        .ok()
        .filter(|s| *s > 0)
        .with_context(|| format!("{what} must be positive, such as 30m or 24h"))
}

fn from_file(path: &Path) -> anyhow::Result<RolloutRequest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: RolloutFile =
        toml::from_str(&text).with_context(|| format!("{} is not a rollout", path.display()))?;
    let duration = |text: &str, what: &str| -> anyhow::Result<u64> {
        let parsed: jiff::SignedDuration = text.parse().with_context(|| {
            format!(
                "{}: {what} {text:?} is not a duration such as 30m",
                path.display()
            )
        })?;
        seconds(parsed, what)
    };
    Ok(RolloutRequest {
        release: file.release,
        select: file.select,
        waves: file.waves,
        probation_seconds: duration(&file.probation, "probation")?,
        abort_when: file.abort_when,
        rollback: file.rollback,
        offline_after_seconds: duration(&file.offline_after, "offline-after")?,
    })
}

fn state_text(rollout: &Rollout) -> String {
    let waves = rollout.waves.len();
    match &rollout.state {
        RolloutState::Running { wave } => format!("running, wave {} of {waves}", wave + 1),
        RolloutState::Paused { wave } => format!("paused at wave {} of {waves}", wave + 1),
        RolloutState::Halted { wave, reason, at } => format!(
            "halted at wave {} of {waves} on {}: {reason}{}",
            wave + 1,
            when(*at),
            if rollout.rollback {
                "; nodes that took it roll back"
            } else {
                ""
            }
        ),
        RolloutState::Aborted { wave, at } => format!(
            "aborted at wave {} of {waves} on {}{}",
            wave + 1,
            when(*at),
            if rollout.rollback {
                "; nodes that took it roll back"
            } else {
                ""
            }
        ),
        RolloutState::Completed { at } => format!("completed on {}", when(*at)),
    }
}

fn summary(rollout: &Rollout) -> String {
    format!(
        "{}\t{}@{}\t{}\t{} node(s), select {}",
        rollout.id,
        rollout.plugin,
        rollout.version,
        state_text(rollout),
        rollout.nodes.len(),
        if rollout.selector.0.is_empty() {
            "all".to_string()
        } else {
            rollout.selector.to_string()
        }
    )
}

fn print_status(status: &RolloutStatus) {
    let rollout = &status.rollout;
    println!("{}", summary(rollout));
    println!(
        "  waves {:?}, probation {} min, abort when {}",
        rollout.waves,
        rollout.probation_seconds / 60,
        rollout.abort
    );
    for (index, wave) in status.waves.iter().enumerate() {
        let counts: Vec<String> = wave
            .counts
            .iter()
            .map(|(stage, n)| format!("{n} {stage}"))
            .collect();
        println!(
            "  wave {} ({}%, {} node(s){}): {}",
            index + 1,
            wave.percent,
            wave.nodes,
            if wave.open { "" } else { ", not open yet" },
            counts.join(", ")
        );
    }
    if !status.reasons.is_empty() {
        println!("  why nodes failed:");
        let mut reasons: Vec<(&String, &usize)> = status.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (reason, n) in reasons {
            println!("    {n} × {reason}");
        }
    }
}

pub fn run(data_dir: &Path, command: RolloutCommand) -> anyhow::Result<()> {
    let link = AdminLink::open(data_dir)?;
    let steer = |id: &str, action: &str, doing: &str| -> anyhow::Result<()> {
        let rollout: Rollout = link.call(
            Method::POST,
            &format!("/admin/v1/rollouts/{}/{action}", encode(id)),
            None::<&()>,
            doing,
        )?;
        println!("{}", summary(&rollout));
        Ok(())
    };
    match command {
        RolloutCommand::Create {
            release,
            select,
            waves,
            probation,
            abort_when,
            no_rollback,
            offline_after,
            file,
        } => {
            let request = match (file, release) {
                (Some(file), _) => from_file(&file)?,
                (None, Some(release)) => RolloutRequest {
                    release,
                    select,
                    waves,
                    probation_seconds: seconds(probation, "--probation")?,
                    abort_when,
                    rollback: !no_rollback,
                    offline_after_seconds: seconds(offline_after, "--offline-after")?,
                },
                (None, None) => bail!("give the release to roll out, or --file"),
            };
            let rollout: Rollout = link.call(
                Method::POST,
                "/admin/v1/rollouts",
                Some(&request),
                "creating the rollout",
            )?;
            println!("{}", summary(&rollout));
            println!(
                "  first wave: {} node(s); `outpost-registry rollout status {}` follows it",
                rollout.wave_ends.first().copied().unwrap_or(0),
                rollout.id
            );
        }
        RolloutCommand::List => {
            let rollouts: Vec<Rollout> = link.call(
                Method::GET,
                "/admin/v1/rollouts",
                None::<&()>,
                "listing rollouts",
            )?;
            if rollouts.is_empty() {
                println!("No rollouts. Start one with `outpost-registry rollout create`.");
            }
            rollouts.iter().for_each(|r| println!("{}", summary(r)));
        }
        RolloutCommand::Status { id, json } => {
            let status: RolloutStatus = link.call(
                Method::GET,
                &format!("/admin/v1/rollouts/{}", encode(&id)),
                None::<&()>,
                "reading the rollout",
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
        }
        RolloutCommand::Pause { id } => steer(&id, "pause", "pausing the rollout")?,
        RolloutCommand::Resume { id } => steer(&id, "resume", "resuming the rollout")?,
        RolloutCommand::Abort { id } => steer(&id, "abort", "aborting the rollout")?,
    }
    Ok(())
}
