//! `outpost outbox`: what waits for delivery, what died and why.

use crate::link::Link;
use crate::trade::utc;
use anyhow::bail;
use hyper::Method;
use serde_json::Value;

fn when(ms: &Value) -> String {
    ms.as_u64()
        .map(|ms| utc(i64::try_from(ms / 1000).unwrap_or(i64::MAX)))
        .unwrap_or_else(|| "-".into())
}

pub fn list(link: &Link, state: Option<&str>, limit: usize, json: bool) -> anyhow::Result<()> {
    let mut path = format!("/v1/outbox?limit={limit}");
    if let Some(state) = state {
        path.push_str(&format!("&state={state}"));
    }
    let result = link
        .request(Method::GET, &path, None)?
        .ok("listing the outbox")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    let counts = &result["counts"];
    println!(
        "pending {}, delivered {}, dead {}, dropped {}{}",
        counts["pending"],
        counts["delivered"],
        counts["dead"],
        counts["dropped"],
        if link.is_running() || counts["pending"] == 0 {
            ""
        } else {
            " (no node is running to deliver: start `outpost run`)"
        }
    );
    let entries = result["entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return Ok(());
    }
    println!(
        "\n{:>6}  {:9}  {:>8}  {:20}  {:24}  DESTINATION",
        "ID", "STATE", "ATTEMPTS", "ENQUEUED", "OWNER"
    );
    for entry in &entries {
        println!(
            "{:>6}  {:9}  {:>8}  {:20}  {:24}  {} {}",
            entry["id"].to_string(),
            entry["state"].as_str().unwrap_or(""),
            entry["attempts"].to_string(),
            when(&entry["enqueued_at_ms"]),
            entry["owner"].as_str().unwrap_or(""),
            entry["method"].as_str().unwrap_or("").to_uppercase(),
            entry["destination"].as_str().unwrap_or(""),
        );
        if let Some(error) = entry["last_error"].as_str() {
            println!("{:>6}  last error: {error}", "");
        }
    }
    Ok(())
}

pub fn show(link: &Link, id: u64, json: bool) -> anyhow::Result<()> {
    let result = link
        .request(Method::GET, &format!("/v1/outbox/{id}"), None)?
        .ok("showing the entry")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    let entry = &result["entry"];
    let text = |field: &str| entry[field].as_str().unwrap_or("").to_string();
    println!("entry {id}: {}", text("state"));
    println!("  owner:        {}", text("owner"));
    println!(
        "  destination:  {} {}",
        text("method").to_uppercase(),
        text("destination")
    );
    println!("  key:          {}", text("idempotency_key"));
    println!(
        "  payload:      {} bytes of {} (sha256 {})",
        entry["payload_bytes"],
        text("content_type"),
        text("fingerprint")
    );
    println!("  attempts:     {}", entry["attempts"]);
    println!("  enqueued:     {}", when(&entry["enqueued_at_ms"]));
    println!("  last attempt: {}", when(&entry["last_attempt_at_ms"]));
    if text("state") == "pending" {
        println!("  next attempt: {}", when(&entry["next_attempt_at_ms"]));
    }
    if let Some(status) = entry["response_status"].as_u64() {
        println!("  last answer:  HTTP {status}");
    }
    if let Some(error) = entry["last_error"].as_str() {
        println!("  last error:   {error}");
    }
    if let Some(payload) = result["payload"].as_str() {
        println!("  payload:\n{}", indent(payload));
    }
    if let Some(body) = result["response_body"].as_str() {
        println!("  answer body:\n{}", indent(body));
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn retry(link: &Link, id: u64) -> anyhow::Result<()> {
    let result = link
        .request(Method::POST, &format!("/v1/outbox/{id}/retry"), None)?
        .ok("retrying")?;
    if result["entry"]["state"] != "pending" {
        bail!("the node did not put entry {id} back in line: {result}");
    }
    println!(
        "entry {id} is pending again{}",
        if link.is_running() {
            "; the node delivers it now"
        } else {
            "; start `outpost run` to deliver it"
        }
    );
    Ok(())
}

pub fn drop(link: &Link, id: u64) -> anyhow::Result<()> {
    let result = link
        .request(Method::DELETE, &format!("/v1/outbox/{id}"), None)?
        .ok("dropping")?;
    println!(
        "entry {id} dropped (was {}); its payload is deleted and its idempotency key stays \
         used, so the same message cannot be queued again by mistake",
        result["entry"]["state"].as_str().unwrap_or("?")
    );
    Ok(())
}
