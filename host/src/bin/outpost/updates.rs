//! `outpost update status | check | apply | approve | reject | rollback |
//! history`: seeing and steering the node's updates, over the admin channel.

use crate::cli::UpdateCommand;
use crate::commands::plugin_id;
use crate::link::AdminLink;
use hyper::Method;
use serde_json::{Value, json};
use std::path::Path;

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

fn when(ms: &Value) -> String {
    ms.as_u64()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms as i64).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

pub fn run(data_dir: &Path, config: Option<&Path>, command: UpdateCommand) -> anyhow::Result<()> {
    let link = AdminLink::open(data_dir, config)?;
    match command {
        UpdateCommand::Status { json } => status(&link, json),
        UpdateCommand::Check { json } => {
            let reply = link
                .request(Method::POST, "/admin/v1/updates/check", None)?
                .ok("checking for updates")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reply)?);
                return Ok(());
            }
            let checked = reply["checked"].as_array().cloned().unwrap_or_default();
            if checked.is_empty() {
                println!(
                    "No plugin follows the registry. Follow one with `outpost plugin follow \
                     vendor/name@^1`."
                );
            }
            for line in checked {
                println!(
                    "{} ({}): {}",
                    text(&line["plugin"]),
                    text(&line["follows"]),
                    text(&line["outcome"])
                );
            }
            Ok(())
        }
        UpdateCommand::History {
            plugin,
            limit,
            json,
        } => {
            let mut path = format!("/admin/v1/updates/history?limit={limit}");
            if let Some(plugin) = &plugin {
                path.push_str(&format!("&plugin={}", plugin_id(plugin)?));
            }
            let reply = link
                .request(Method::GET, &path, None)?
                .ok("reading the history")?;
            let lines = reply["history"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&lines)?);
                return Ok(());
            }
            if lines.is_empty() {
                println!("No updates yet.");
            }
            for line in lines {
                println!(
                    "{}  {}  {} -> {}  {}{}",
                    when(&line["at_ms"]),
                    text(&line["plugin"]),
                    line["from"].as_str().unwrap_or("(new)"),
                    text(&line["to"]),
                    text(&line["state"]),
                    line["reason"]
                        .as_str()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        UpdateCommand::Apply { plugin } => steer(&link, &plugin, "apply", None),
        UpdateCommand::Approve { plugin } => steer(&link, &plugin, "approve", None),
        UpdateCommand::Reject { plugin, again } => {
            steer(&link, &plugin, "reject", Some(json!({ "block": !again })))
        }
        UpdateCommand::Rollback { plugin } => steer(&link, &plugin, "rollback", None),
    }
}

fn steer(link: &AdminLink, plugin: &str, verb: &str, body: Option<Value>) -> anyhow::Result<()> {
    let id = plugin_id(plugin)?;
    let reply = link
        .request(
            Method::POST,
            &format!("/admin/v1/updates/{id}/{verb}"),
            body.as_ref(),
        )?
        .ok(&format!("{verb} for {id}"))?;
    let update = &reply["update"];
    println!(
        "{id} {} -> {}: {}{}",
        update["from"].as_str().unwrap_or("(new)"),
        text(&update["to"]),
        text(&update["state"]),
        update["reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    if let Some(version) = reply["plugin"]["version"].as_str() {
        println!("{id} serves {version}");
    }
    Ok(())
}

fn status(link: &AdminLink, json: bool) -> anyhow::Result<()> {
    let reply = link
        .request(Method::GET, "/admin/v1/updates", None)?
        .ok("reading update status")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    let updates = reply["updates"].as_array().cloned().unwrap_or_default();
    if updates.is_empty() {
        println!("No updates in flight.");
    }
    for update in &updates {
        println!(
            "{}  {} -> {}  {}",
            text(&update["plugin"]),
            update["from"].as_str().unwrap_or("(new)"),
            text(&update["to"]),
            text(&update["state"])
        );
        if let Some(reason) = update["reason"].as_str() {
            println!("    {reason}");
        }
        for ask in update["asks"].as_array().into_iter().flatten() {
            println!("    asks: {}", ask.as_str().unwrap_or_default());
        }
        if update["state"] == "held" {
            println!(
                "    `outpost update approve {}` grants it; `outpost update reject {}` drops it",
                text(&update["plugin"]),
                text(&update["plugin"])
            );
        }
        let probation = &update["probation"];
        if update["state"] == "probation" && probation.is_object() {
            println!(
                "    on probation since {}: {} calls, {} failed; confirmed after {} with {} calls",
                when(&probation["started_at_ms"]),
                probation["calls"],
                probation["bad"],
                when(&probation["until_ms"]),
                probation["min_calls"]
            );
        }
    }
    let follows = reply["follows"].as_object().cloned().unwrap_or_default();
    if !follows.is_empty() {
        println!("Following:");
        for (plugin, requirement) in follows {
            println!("  {plugin} {}", requirement.as_str().unwrap_or_default());
        }
    }
    if let Some(window) = reply["window"].as_str() {
        println!("Swaps happen in the window {window} (local time).");
    }
    if let Some(lock) = reply["lock"].as_object() {
        println!(
            "Update lock held by {} for {} s more.",
            text(&lock["holder"]),
            lock["remaining_seconds"]
        );
    }
    if link.node().is_some() {
        println!("(No node is running: nothing moves until `outpost run`.)");
    }
    Ok(())
}
