//! `outpost console …` and `outpost telemetry …`: the operator's window on
//! the node, and what of it the centre may see.

use crate::link::AdminLink;
use anyhow::Context;
use clap::Subcommand;
use hyper::Method;
use outpost::node::NodeOptions;
use serde_json::{Value, json};
use std::path::Path;

#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Show where the console is and the password it asks for
    ///
    /// The console is a page the running node serves at
    /// http://<api.listen>/console/ for a phone or the till's browser. Its
    /// password is <DATA_DIR>/console-password (made on first start); it is
    /// not the apps' token, and whoever has it can install and approve.
    Password,
    /// Show where Prometheus scrapes the node, with which token file
    Scrape,
}

#[derive(Debug, Subcommand)]
pub enum TelemetryCommand {
    /// Show what may leave the box, where it goes, and what waits to
    Status,
    /// Choose what may leave the box: off, aggregate or with-plugin-detail
    ///
    /// `aggregate` ships the node's totals (calls, errors by cause, labels
    /// printed, payments, bookings, outbox, storage) with no plugin named;
    /// `with-plugin-detail` adds each plugin's figures. Nothing about a
    /// customer or a card is ever shipped. Changing it empties the backlog,
    /// so nothing rolled up under the old choice leaves under the new one.
    Consent {
        /// off, aggregate or with-plugin-detail
        choice: String,
    },
}

pub fn console(
    data_dir: &Path,
    config: Option<&Path>,
    command: ConsoleCommand,
) -> anyhow::Result<()> {
    let options = NodeOptions::resolve(data_dir, config)?;
    let api = &options.config.api;
    match command {
        ConsoleCommand::Password => {
            // It may be made here: as the node's user, not root.
            crate::commands::before_opening(data_dir)?;
            let password = outpost::api::tokens::console_password(api, data_dir)
                .context("reading the console's password")?;
            println!("console:  http://{}/console/", api.listen);
            println!("password: {password}");
            if api.listen.ip().is_loopback() {
                println!(
                    "(the node listens on loopback only: to open the console from a phone, set \
                     api.listen to the box's address on the shop's network)"
                );
            }
        }
        ConsoleCommand::Scrape => {
            let token = outpost::api::tokens::metrics_token_path(api, data_dir);
            println!("scrape:     http://{}/metrics", api.listen);
            println!("token file: {}", token.display());
            println!(
                "prometheus.yml:\n  - job_name: outpost\n    static_configs: [{{ targets: ['{}'] }}]\n    \
                 authorization: {{ credentials_file: {} }}",
                api.listen,
                token.display()
            );
            if !token.exists() {
                println!("(the token file is made when the node first starts: `outpost run`)");
            }
        }
    }
    Ok(())
}

pub fn telemetry(
    data_dir: &Path,
    config: Option<&Path>,
    command: TelemetryCommand,
) -> anyhow::Result<()> {
    let link = AdminLink::open(data_dir, config)?;
    let view: Value = match command {
        TelemetryCommand::Status => link.call(
            Method::GET,
            "/admin/v1/telemetry",
            None::<&()>,
            "reading the telemetry settings",
        )?,
        TelemetryCommand::Consent { choice } => link.call(
            Method::PUT,
            "/admin/v1/telemetry",
            Some(&json!({ "consent": choice })),
            "setting the telemetry consent",
        )?,
    };
    let consent = view["consent"].as_str().unwrap_or("off");
    let chosen = if view["chosen_by_operator"].as_bool() == Some(true) {
        "chosen by the operator"
    } else {
        "from the configuration; choose with `outpost telemetry consent`"
    };
    println!("consent: {consent} ({chosen})");
    match view["remote_write_url"].as_str() {
        Some(url) => println!(
            "ships to: {url}, a rollup every {} s",
            view["rollup_seconds"]
        ),
        None => println!("ships to: nowhere (telemetry.remote-write-url is not set)"),
    }
    let backlog = &view["backlog"];
    println!(
        "waiting:  {} rollups, {} of at most {} bytes",
        backlog["rollups"].as_u64().unwrap_or(0),
        backlog["bytes"].as_u64().unwrap_or(0),
        view["max_backlog_bytes"]
    );
    Ok(())
}
