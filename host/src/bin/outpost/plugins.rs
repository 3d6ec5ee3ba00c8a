//! `outpost plugin add | install | remove | info | list | follow | unfollow`:
//! changes to the node's plugins, through the admin channel (the running
//! node, or the node opened here when none runs).

use crate::commands::plugin_id;
use crate::link::AdminLink;
use anyhow::{Context, bail};
use hyper::Method;
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

fn confirm(question: &str) -> anyhow::Result<bool> {
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// A path the node can open whatever its working directory.
fn absolute(spec: &str) -> String {
    let path = Path::new(spec);
    if path.exists()
        && !path.is_absolute()
        && let Ok(absolute) = std::path::absolute(path)
    {
        return absolute.display().to_string();
    }
    spec.to_string()
}

/// Installs SPEC (a package folder, a bundle, `oci://…` or
/// `vendor/name@req`). The node checks and stages it; if it asks for more
/// than the operator agreed to (everything, for a new plugin), the operator
/// is asked here, then the node is told to approve or reject it.
pub fn install(
    data_dir: &Path,
    config: Option<&Path>,
    spec: &str,
    registry: Option<&str>,
    plugin: Option<&str>,
    yes: bool,
) -> anyhow::Result<()> {
    install_from(data_dir, config, spec, registry, plugin, yes, false)
}

/// `outpost plugin add PATH`: a package folder on this machine.
pub fn add(data_dir: &Path, config: Option<&Path>, path: &Path, yes: bool) -> anyhow::Result<()> {
    install_from(
        data_dir,
        config,
        &path.display().to_string(),
        None,
        None,
        yes,
        true,
    )
}

fn install_from(
    data_dir: &Path,
    config: Option<&Path>,
    spec: &str,
    registry: Option<&str>,
    plugin: Option<&str>,
    yes: bool,
    package: bool,
) -> anyhow::Result<()> {
    let link = AdminLink::open(data_dir, config)?;
    let body = json!({
        "spec": absolute(spec),
        "registry": registry,
        "plugin": plugin,
        "approve": yes,
        "package": package,
    });
    let reply = link
        .request(Method::POST, "/admin/v1/plugins", Some(&body))?
        .ok(&format!("installing {spec}"))?;
    if let Some(verified) = reply["verified"].as_str() {
        println!("{verified}");
    }
    let mut reply = reply;
    if reply["update"]["state"] == "held" {
        let update = &reply["update"];
        let id = update["plugin"].as_str().unwrap_or_default().to_string();
        println!(
            "{id} {} asks for:",
            update["to"].as_str().unwrap_or_default()
        );
        for ask in update["asks"].as_array().into_iter().flatten() {
            println!("  {}", ask.as_str().unwrap_or_default());
        }
        if !std::io::stdin().is_terminal() {
            // Left held: `outpost update approve` installs it later.
            bail!(
                "not approving what {id} asks for without asking; it is staged and held. \
                 Run `outpost update approve {id}` to install it, or run this again with --yes"
            );
        }
        let path = format!("/admin/v1/updates/{id}");
        let seen = update["to"].clone();
        if !confirm("Grant these capabilities and install?")? {
            link.request(
                Method::POST,
                &format!("{path}/reject"),
                Some(&json!({ "block": false, "version": seen })),
            )?
            .ok(&format!("dropping {id}"))?;
            bail!("not installed");
        }
        reply = link
            .request(
                Method::POST,
                &format!("{path}/approve"),
                Some(&json!({ "version": seen })),
            )?
            .ok(&format!("approving {id}"))?;
    }
    print_outcome(&reply);
    Ok(())
}

fn print_outcome(reply: &Value) {
    let update = &reply["update"];
    let id = update["plugin"].as_str().unwrap_or_default();
    let to = update["to"].as_str().unwrap_or_default();
    let from = update["from"].as_str().filter(|from| *from != to);
    let state = update["state"].as_str().unwrap_or_default();
    let reason = update["reason"].as_str().unwrap_or_default();
    match state {
        "confirmed" if reason == "already installed" => {
            println!("{id} {to} is already installed; nothing to do");
            return;
        }
        "confirmed" => println!("{id} installed {to}"),
        "probation" => println!(
            "{id} upgraded from {} to {to}; on probation (the previous version is kept until \
             it is confirmed; `outpost update status` shows it)",
            from.unwrap_or("?")
        ),
        "deferred" => println!("{id} {to} is staged and waits: {reason}"),
        other => println!("{id} {to}: {other} {reason}"),
    }
    let plugin = &reply["plugin"];
    print_limits(&plugin["limits"]);
    if let Some(grants) = plugin["grants"].as_str() {
        println!("  granted:  {grants}");
    }
    if matches!(state, "confirmed" | "probation") && !reason.is_empty() {
        println!("  health:   {reason}");
    }
}

/// "  limits:   500 ms per call, 32 MiB memory, 1000 fuel", if known.
fn print_limits(limits: &Value) {
    if let Some(limits) = limits.as_object() {
        println!(
            "  limits:   {} ms per call, {} MiB memory{}",
            limits["deadline_ms"],
            limits["memory_mib"],
            limits
                .get("fuel")
                .and_then(Value::as_u64)
                .map(|fuel| format!(", {fuel} fuel"))
                .unwrap_or_default()
        );
    }
}

pub fn remove(
    data_dir: &Path,
    config: Option<&Path>,
    plugin: &str,
    purge: bool,
) -> anyhow::Result<()> {
    let id = plugin_id(plugin)?;
    let link = AdminLink::open(data_dir, config)?;
    let path = format!(
        "/admin/v1/plugins/{id}{}",
        if purge { "?purge=true" } else { "" }
    );
    link.request(Method::DELETE, &path, None)?
        .ok(&format!("removing {id}"))?;
    if purge {
        println!("{id} removed, with everything it stored");
    } else {
        println!(
            "{id} removed; its stored data is kept for a reinstall (use --purge to delete it)"
        );
    }
    Ok(())
}

/// The version of `plugin` the node has active, if it has it.
pub fn installed_version(
    data_dir: &Path,
    config: Option<&Path>,
    plugin: &str,
) -> anyhow::Result<Option<String>> {
    let id = plugin_id(plugin)?;
    let link = AdminLink::open(data_dir, config)?;
    let reply = link.request(Method::GET, &format!("/admin/v1/plugins/{id}"), None)?;
    if reply.status == hyper::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let view = reply.ok(&format!("looking up {id}"))?;
    Ok(view["plugin"]["version"].as_str().map(str::to_string))
}

/// Removes `plugin`, keeping its data, without a word (`vendor watch`).
pub fn remove_quietly(data_dir: &Path, config: Option<&Path>, plugin: &str) -> anyhow::Result<()> {
    let id = plugin_id(plugin)?;
    let link = AdminLink::open(data_dir, config)?;
    link.request(Method::DELETE, &format!("/admin/v1/plugins/{id}"), None)?
        .ok(&format!("removing {id}"))?;
    Ok(())
}

pub fn follow(data_dir: &Path, config: Option<&Path>, spec: &str) -> anyhow::Result<()> {
    let (plugin, requirement) = spec.split_once('@').with_context(|| {
        format!("give a version requirement: `outpost plugin follow {spec}@^1`")
    })?;
    let id = plugin_id(plugin)?;
    let link = AdminLink::open(data_dir, config)?;
    link.request(
        Method::PUT,
        &format!("/admin/v1/plugins/{id}/follow"),
        Some(&json!({ "requirement": requirement })),
    )?
    .ok(&format!("following {spec}"))?;
    println!(
        "{id} follows {requirement}: newer signed releases are staged as they appear and \
         activated within updates.window{}",
        if link.node().is_some() {
            " (by the node when it runs)"
        } else {
            ""
        }
    );
    Ok(())
}

pub fn unfollow(data_dir: &Path, config: Option<&Path>, plugin: &str) -> anyhow::Result<()> {
    let id = plugin_id(plugin)?;
    let link = AdminLink::open(data_dir, config)?;
    let reply = link
        .request(
            Method::DELETE,
            &format!("/admin/v1/plugins/{id}/follow"),
            None,
        )?
        .ok(&format!("unfollowing {id}"))?;
    if reply["was_following"] == true {
        println!("{id} no longer follows the registry");
    } else {
        println!(
            "{id} was not following the registry (updates.follow in outpost.toml may still name it)"
        );
    }
    Ok(())
}

pub fn approve(data_dir: &Path, config: Option<&Path>, plugin: &str) -> anyhow::Result<()> {
    let id = plugin_id(plugin)?;
    let link = AdminLink::open(data_dir, config)?;
    let reply = link
        .request(
            Method::POST,
            &format!("/admin/v1/plugins/{id}/approve"),
            None,
        )?
        .ok(&format!("approving what {id}'s configuration names"))?;
    let added: Vec<&str> = reply["added"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if added.is_empty() {
        println!(
            "{id}: nothing new to approve; it runs with {}",
            reply["grants"].as_str().unwrap_or_default()
        );
    } else {
        println!("{id} may now reach {}", added.join(", "));
        println!("  grants: {}", reply["grants"].as_str().unwrap_or_default());
    }
    Ok(())
}

pub fn list(data_dir: &Path, config: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let link = AdminLink::open(data_dir, config)?;
    let reply = link
        .request(Method::GET, "/admin/v1/plugins", None)?
        .ok("listing plugins")?;
    let plugins = reply["plugins"].as_array().cloned().unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&plugins)?);
        return Ok(());
    }
    if plugins.is_empty() {
        println!("No plugins installed. Install one with `outpost plugin add <package>`.");
        return Ok(());
    }
    let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
    let id_width = plugins
        .iter()
        .map(|p| text(&p["id"]).len())
        .max()
        .unwrap_or(2)
        .max(2);
    let world_width = plugins
        .iter()
        .map(|p| text(&p["world"]).len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:id_width$}  {:9}  {:world_width$}  STATUS",
        "ID", "VERSION", "WORLD"
    );
    for plugin in &plugins {
        let default = if plugin["default"] == true {
            " (default)"
        } else {
            ""
        };
        println!(
            "{:id_width$}  {:9}  {:world_width$}  {}{default}",
            text(&plugin["id"]),
            text(&plugin["version"]),
            text(&plugin["world"]),
            text(&plugin["status"])
        );
        if let Some(reason) = plugin["reason"].as_str() {
            println!("{:id_width$}  why: {reason}", "");
        }
    }
    Ok(())
}

pub fn info(
    data_dir: &Path,
    config: Option<&Path>,
    plugin: &str,
    json: bool,
) -> anyhow::Result<()> {
    let id = plugin_id(plugin)?;
    let link = AdminLink::open(data_dir, config)?;
    let view = link
        .request(Method::GET, &format!("/admin/v1/plugins/{id}"), None)?
        .ok(&format!("looking up {id}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
    let status = &view["plugin"];
    println!("{} {}", text(&status["id"]), text(&status["version"]));
    if !text(&status["description"]).is_empty() {
        println!("  {}", text(&status["description"]));
    }
    println!("  world:    {}", text(&status["world"]));
    println!("  status:   {}", text(&status["status"]));
    if let Some(reason) = status["reason"].as_str() {
        println!("  why:      {reason}");
    }
    println!("  grants:   {}", text(&status["grants"]));
    print_limits(&status["limits"]);
    println!(
        "  stored:   {} keys, {} bytes",
        view["kv"]["keys"], view["kv"]["bytes"]
    );
    if let Some(health) = view["health"].as_object() {
        println!(
            "  health:   {}{}",
            text(&health["status"]),
            health["detail"]
                .as_str()
                .filter(|d| !d.is_empty())
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
    }
    println!("  versions:");
    println!("    active    {}", text(&view["active"]["version"]));
    let update = &view["update"];
    if update.is_object() {
        println!(
            "    staged    {} ({}{})",
            text(&update["to"]),
            text(&update["state"]),
            update["reason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    if view["previous"].is_object() {
        println!(
            "    previous  {} (kept until the active version is confirmed)",
            text(&view["previous"]["version"])
        );
    }
    if let Some(follows) = view["follows"].as_str() {
        println!("  follows:  {follows}");
    }
    for (version, why) in view["blocked"].as_object().into_iter().flatten() {
        println!(
            "  blocked:  {version}: {}",
            why.as_str().unwrap_or_default()
        );
    }
    if let Some(exports) = view["exports"].as_array().filter(|e| !e.is_empty()) {
        println!("  exports:");
        for export in exports {
            println!("    {}", export.as_str().unwrap_or_default());
        }
    }
    Ok(())
}
