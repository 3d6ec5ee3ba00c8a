//! `outpost-registry node …`: the fleet's nodes, as the central team
//! manages them.

use crate::admin_link::{AdminLink, segment as encode};
use clap::Subcommand;
use hyper::Method;
use outpost_registry::fleet::{self, IssuedToken, LabelChange, NodeView, labels_text};
use outpost_registry::server::control::TokenRequest;
use std::path::Path;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Print a one-time token that enrols one node (shown once; only its hash is kept)
    ///
    /// On the node: `outpost fleet join <registry-url> --token <token>`.
    /// Nodes it enrols get these labels, over the ones they ask for.
    Token {
        /// A label for the node it enrols: key=value; repeat for more
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// How long it can be used: 72h, 30m (at most 90 days)
        #[arg(long, default_value = "72h")]
        valid_for: jiff::SignedDuration,
    },
    /// List enrolled nodes: id, name, labels, when enrolled
    List {
        /// Only nodes with all these labels: region=north,site=market-hall
        #[arg(long)]
        select: Option<String>,
        /// Include retired nodes
        #[arg(long)]
        retired: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Set or remove a node's labels (ID: its id from `node list`, or a unique prefix)
    Label {
        id: String,
        /// key=value to set; repeat for more
        #[arg(value_parser = parse_label, value_name = "KEY=VALUE")]
        set: Vec<(String, String)>,
        /// A label key to remove; repeat for more
        #[arg(long = "remove", value_name = "KEY")]
        remove: Vec<String>,
    },
    /// Retire a node: it gets nothing from now on, and its key cannot enrol again
    Retire { id: String },
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    fleet::parse_label(text).map_err(|e| e.to_string())
}

/// A time for people: `2026-12-02 14:10 UTC`.
pub fn when(seconds: u64) -> String {
    jiff::Timestamp::from_second(seconds as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

fn print_node(node: &NodeView) {
    let state = match node.retired_at {
        Some(at) => format!("retired {}", when(at)),
        None => "active".into(),
    };
    println!(
        "{}\t{}\t{}\tenrolled {}\t{state}",
        node.id,
        node.name,
        labels_text(&node.labels),
        when(node.enrolled_at)
    );
}

pub fn run(data_dir: &Path, command: NodeCommand) -> anyhow::Result<()> {
    let link = AdminLink::open(data_dir)?;
    match command {
        NodeCommand::Token { labels, valid_for } => {
            let valid_for_seconds = u64::try_from(valid_for.as_secs()).unwrap_or(0);
            let request = TokenRequest {
                labels: labels.into_iter().collect(),
                valid_for_seconds,
            };
            let issued: IssuedToken = link.call(
                Method::POST,
                "/admin/v1/enrolment-tokens",
                Some(&request),
                "making an enrolment token",
            )?;
            println!("{}", issued.token);
            eprintln!(
                "one node can use it until {}; on the node: outpost fleet join <registry-url> --token <token>",
                when(issued.expires_at)
            );
        }
        NodeCommand::List {
            select,
            retired,
            json,
        } => {
            let mut path = String::from("/admin/v1/nodes?");
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            if let Some(select) = &select {
                fleet::Selector::parse(select)?;
                query.append_pair("select", select);
            }
            if retired {
                query.append_pair("retired", "true");
            }
            path.push_str(&query.finish());
            let nodes: Vec<NodeView> =
                link.call(Method::GET, &path, None::<&()>, "listing the nodes")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&nodes)?);
            } else if nodes.is_empty() {
                println!(
                    "No nodes{}. Enrol one: `outpost-registry node token`, then `outpost fleet join` on the node.",
                    select.map(|s| format!(" match {s}")).unwrap_or_default()
                );
            } else {
                nodes.iter().for_each(print_node);
            }
        }
        NodeCommand::Label { id, set, remove } => {
            if set.is_empty() && remove.is_empty() {
                anyhow::bail!("give labels to set (key=value) or --remove <key>");
            }
            let change = LabelChange {
                set: set.into_iter().collect(),
                remove,
            };
            let node: NodeView = link.call(
                Method::POST,
                &format!("/admin/v1/nodes/{}/labels", encode(&id)),
                Some(&change),
                "labelling the node",
            )?;
            print_node(&node);
        }
        NodeCommand::Retire { id } => {
            let node: NodeView = link.call(
                Method::POST,
                &format!("/admin/v1/nodes/{}/retire", encode(&id)),
                None::<&()>,
                "retiring the node",
            )?;
            print_node(&node);
        }
    }
    Ok(())
}
