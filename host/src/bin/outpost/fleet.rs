//! `outpost fleet …`: the node's place in the central team's fleet.

use crate::link::AdminLink;
use clap::Subcommand;
use hyper::Method;
use outpost::control::fleet::{Checked, FleetView, JoinRequest};
use outpost::store::Membership;
use outpost_registry::desired::Action;
use std::path::Path;

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Enrol this node with the fleet's registry, with a one-time token
    ///
    /// The node proves it holds its own identity key (made at first start,
    /// <DATA_DIR>/identity.key; it never leaves the node) and the registry
    /// enrols it under an id derived from that key. The central team gives
    /// out tokens with `outpost-registry node token`; each enrols one node.
    Join {
        /// The registry: https://…, or http:// on this machine
        registry: String,
        /// The enrolment token (better: the OUTPOST_ENROLMENT_TOKEN variable)
        #[arg(long, env = "OUTPOST_ENROLMENT_TOKEN", hide_env_values = true)]
        token: String,
        /// A label for this node: key=value (site=market-hall); repeat for more
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// What to call this node (default: its host name)
        #[arg(long)]
        name: Option<String>,
    },
    /// Ask the fleet's registry what its rollouts want of this node
    ///
    /// The answer is signed by the director the node's root of trust
    /// delegates; the node refuses one signed by any other key, for another
    /// node, older than the last it accepted, or expired. Then it acts on
    /// it through its update machine: it installs a named release only if
    /// the vendor signed that very release (staged while the old version
    /// serves, held if it asks for more grants, on probation), and goes
    /// back from a release whose rollout was stopped. Every transition is
    /// reported to the rollout through the outbox. A running node does the
    /// same by itself every `updates.check-interval-minutes`.
    Check,
    /// Show this node's identity and the fleet it belongs to
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    outpost_registry::fleet::parse_label(text).map_err(|e| e.to_string())
}

fn labels_text(membership: &Membership) -> String {
    outpost_registry::fleet::labels_text(&membership.labels)
}

pub fn run(data_dir: &Path, config: Option<&Path>, command: FleetCommand) -> anyhow::Result<()> {
    let link = AdminLink::open(data_dir, config)?;
    match command {
        FleetCommand::Join {
            registry,
            token,
            labels,
            name,
        } => {
            let request = JoinRequest {
                registry,
                token,
                labels: labels.into_iter().collect(),
                name,
            };
            let membership: Membership = link.call(
                Method::POST,
                "/admin/v1/fleet/join",
                Some(&request),
                "joining the fleet",
            )?;
            println!(
                "joined the fleet of {} as node {} ({}); labels: {}",
                membership.registry,
                membership.node_id,
                membership.name,
                labels_text(&membership)
            );
        }
        FleetCommand::Check => {
            let checked: Checked = link.call(
                Method::POST,
                "/admin/v1/fleet/check",
                None::<&()>,
                "checking the fleet's desired state",
            )?;
            let Some(desired) = checked.desired else {
                println!(
                    "the registry has no desired state for node {}",
                    checked.node_id
                );
                return Ok(());
            };
            println!(
                "desired state version {} for node {} from {}{}, signed by the director",
                desired.version,
                checked.node_id,
                checked.registry,
                if checked.unchanged {
                    " (unchanged)"
                } else {
                    ""
                }
            );
            if desired.releases.is_empty() {
                println!("  no rollout asks anything of this node");
            }
            for release in &desired.releases {
                let action = match release.action {
                    Action::Install => "install",
                    Action::RollBack => "roll back from",
                };
                println!(
                    "  {action} {}@{} ({}, rollout {}, probation {} min)",
                    release.plugin,
                    release.version,
                    release.digest,
                    release.rollout,
                    release.probation_seconds / 60
                );
            }
            for acted in &checked.acted {
                println!(
                    "  rollout {} ({}): {}",
                    acted.rollout, acted.release, acted.outcome
                );
            }
        }
        FleetCommand::Status { json } => {
            let view: FleetView = link.call(
                Method::GET,
                "/admin/v1/fleet",
                None::<&()>,
                "reading the node's fleet",
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
                return Ok(());
            }
            println!("identity key: {}", view.key_id);
            match view.membership {
                Some(membership) => println!(
                    "fleet: {} as node {} ({}); labels: {}",
                    membership.registry,
                    membership.node_id,
                    membership.name,
                    labels_text(&membership)
                ),
                None => println!(
                    "fleet: none; join one with `outpost fleet join <registry-url> --token <token>`"
                ),
            }
        }
    }
    Ok(())
}
