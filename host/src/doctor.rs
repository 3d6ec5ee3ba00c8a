//! `outpost doctor`: can this node trade right now? Each check says what it
//! found and, when something is wrong, the one thing to do about it. It
//! runs inside the node (over the admin channel when one runs), so it sees
//! what the node sees: its plugins as loaded, its printers through its own
//! drivers, its outbox as the delivery worker leaves it.

use crate::backup;
use crate::config::PrinterConfig;
use crate::node::Node;
use crate::origin::Origin;
use crate::plugins::{LoadedPlugin, PluginSlot};
use crate::printing::{self, DocumentKind};
use crate::worlds::PluginKind;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    /// Trading goes on, but look at it soon.
    Warn,
    /// Something the node cannot trade without, or that loses work.
    Fail,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What was checked: `plugin outpost/courier`, `printer labels`, `disk`.
    pub check: String,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do, when it is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            verdict: Verdict::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn not_ok(
        verdict: Verdict,
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            check: check.into(),
            verdict,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// How long a plugin's health check or a printer's answer may take here.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Deliveries waiting longer than this are worth a look.
const STUCK_AFTER: Duration = Duration::from_secs(3600);

/// Every check, in the order an operator would fix them.
pub async fn examine(node: &Arc<Node>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let worker = node.clone();
    let first = tokio::task::spawn_blocking(move || {
        let mut first = storage(&worker);
        first.push(disk(&worker));
        first
    })
    .await
    .unwrap_or_default();
    findings.extend(first);
    findings.extend(plugins(node).await);
    findings.extend(printers(node).await);
    findings.extend(couriers(node).await);
    let worker = node.clone();
    let rest = tokio::task::spawn_blocking(move || {
        let mut rest = outbox(&worker);
        rest.push(token(&worker));
        rest.push(snapshots(&worker));
        rest
    })
    .await
    .unwrap_or_default();
    findings.extend(rest);
    findings
}

/// Writes to the database, and the clock.
fn storage(node: &Node) -> Vec<Finding> {
    let problems = crate::health::problems(node);
    let mut findings = Vec::new();
    for what in ["storage", "clock"] {
        match problems.iter().find(|p| p.what == what) {
            Some(problem) => {
                let (detail, fix) = split_fix(&problem.detail);
                findings.push(Finding::not_ok(Verdict::Fail, what, detail, fix));
            }
            None if what == "storage" => findings.push(Finding::ok(what, "writes work")),
            None => findings.push(Finding::ok(
                what,
                format!(
                    "reads {}, after this build and the last registry check",
                    crate::clock::date(crate::clock::now_seconds())
                ),
            )),
        }
    }
    findings
}

/// A problem's text is "what is wrong: what to do"; the doctor shows them
/// apart.
fn split_fix(text: &str) -> (String, String) {
    match text.split_once(". ") {
        Some((detail, fix)) => (detail.to_string(), fix.to_string()),
        None => (
            text.to_string(),
            "see docs/operator-guide.md, the bad-day runbook".into(),
        ),
    }
}

fn disk(node: &Node) -> Finding {
    let reserve = node.store().disk_reserve();
    let Some(free) = crate::store::free_bytes(node.data_dir()) else {
        return Finding::not_ok(
            Verdict::Warn,
            "disk",
            "the free space cannot be read",
            "check the disk with `df -h`",
        );
    };
    let free_mib = free >> 20;
    let fix = format!(
        "free space on the disk holding {} (old logs: `journalctl --vacuum-size=100M`; old \
         snapshots: lower backup.max-local-mib)",
        node.data_dir().display()
    );
    if free < reserve {
        Finding::not_ok(
            Verdict::Fail,
            "disk",
            format!(
                "{free_mib} MiB free, under the {} MiB kept for sales: plugins' writes are refused",
                reserve >> 20
            ),
            fix,
        )
    } else if free < reserve.saturating_mul(2).max(256 << 20) {
        Finding::not_ok(
            Verdict::Warn,
            "disk",
            format!("only {free_mib} MiB free"),
            fix,
        )
    } else {
        Finding::ok("disk", format!("{free_mib} MiB free"))
    }
}

async fn health(node: &Arc<Node>, plugin: &Arc<LoadedPlugin>) -> Result<(String, String), String> {
    let admission = node
        .invoker()
        .admit(plugin, "health")
        .await
        .map_err(|e| e.to_string())?;
    let (worker, plugin) = (node.clone(), plugin.clone());
    let checked =
        tokio::time::timeout(PROBE_TIMEOUT, admission.run(move || worker.health(&plugin)))
            .await
            .map_err(|_| format!("its health check took over {PROBE_TIMEOUT:?}"))?
            .map_err(|_| "the node is stopping".to_string())?
            .map_err(|e| e.to_string())?;
    Ok((
        crate::health::health_name(checked.status).to_string(),
        checked.detail,
    ))
}

async fn plugins(node: &Arc<Node>) -> Vec<Finding> {
    let slots = node.table.all();
    if slots.is_empty() {
        return vec![Finding::not_ok(
            Verdict::Warn,
            "plugins",
            "none installed",
            "install the ones the stall needs: `outpost plugin install vendor/name`",
        )];
    }
    let mut findings = Vec::new();
    for slot in slots {
        let id = slot.id().clone();
        let check = format!("plugin {id}");
        match slot {
            PluginSlot::Unavailable { reason, .. } => findings.push(Finding::not_ok(
                Verdict::Fail,
                check,
                format!("unavailable: {reason}"),
                format!(
                    "`outpost plugin info {id}` shows why; install a version that loads, or \
                     `outpost plugin remove {id}`"
                ),
            )),
            PluginSlot::Loaded(plugin) => {
                let version = plugin.version.to_string();
                let unapproved = plugin.spec.unapproved_origins.clone();
                let finding = match health(node, &plugin).await {
                    Ok((status, detail)) if status == "ok" => {
                        Finding::ok(check.clone(), format!("{version}, healthy: {detail}"))
                    }
                    Ok((status, detail)) => Finding::not_ok(
                        if status == "degraded" {
                            Verdict::Warn
                        } else {
                            Verdict::Fail
                        },
                        check.clone(),
                        format!("{version}, {status}: {detail}"),
                        format!(
                            "`outpost plugin info {}`; its vendor's guide says what this means",
                            plugin.id()
                        ),
                    ),
                    Err(error) => Finding::not_ok(
                        Verdict::Fail,
                        check.clone(),
                        format!("{version}, its health check failed: {error}"),
                        format!("`outpost plugin info {}`", plugin.id()),
                    ),
                };
                findings.push(finding);
                if !unapproved.is_empty() {
                    findings.push(Finding::not_ok(
                        Verdict::Fail,
                        check,
                        format!(
                            "its configuration names {} which you have not approved: its \
                             requests there are refused",
                            list(&unapproved)
                        ),
                        format!(
                            "if that is the right address, `outpost plugin approve {}`",
                            plugin.id()
                        ),
                    ));
                }
            }
        }
    }
    findings
}

fn list(origins: &[Origin]) -> String {
    origins
        .iter()
        .map(Origin::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

async fn printers(node: &Arc<Node>) -> Vec<Finding> {
    let config = node.config();
    let has_driver = node.printer_driver(None).is_ok();
    let mut findings = Vec::new();
    for (name, printer) in &config.printers {
        let check = format!("printer {name}");
        let destination = printing::transport::describe(printer, node.data_dir());
        let kind = if config.defaults.receipt_printer.as_deref() == Some(name.as_str())
            && config.defaults.label_printer.as_deref() != Some(name.as_str())
        {
            DocumentKind::Receipt
        } else {
            DocumentKind::Label
        };
        let finding = match printer {
            PrinterConfig::Tcp { .. } if has_driver => {
                match tokio::time::timeout(
                    PROBE_TIMEOUT * 2,
                    printing::status(node, None, name, kind),
                )
                .await
                {
                    Ok(Ok(report)) if report.ready => {
                        Finding::ok(check, format!("{destination}: ready"))
                    }
                    Ok(Ok(report)) => Finding::not_ok(
                        Verdict::Fail,
                        check,
                        format!(
                            "{destination}: not ready ({}{})",
                            report.conditions.join(", "),
                            if report.detail.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", report.detail)
                            }
                        ),
                        "see to the printer (paper, head, cover), then `outpost print test`",
                    ),
                    Ok(Err(error)) => Finding::not_ok(
                        Verdict::Fail,
                        check,
                        format!("{destination}: {error}"),
                        "is it switched on and on the network? Then `outpost print test`",
                    ),
                    Err(_) => Finding::not_ok(
                        Verdict::Fail,
                        check,
                        format!("{destination}: no answer"),
                        "is it switched on and on the network? Then `outpost print test`",
                    ),
                }
            }
            PrinterConfig::Tcp { .. } => Finding::not_ok(
                Verdict::Fail,
                check,
                format!("{destination}: no printer driver is installed to talk to it"),
                "install one: `outpost plugin install vendor/driver`",
            ),
            PrinterConfig::File { path } => {
                file_printer(check, &destination, &node.data_dir().join(path))
            }
            PrinterConfig::Stdout {} => Finding::ok(check, "prints to the node's standard output"),
        };
        findings.push(finding);
    }
    findings
}

/// A device (`/dev/usb/lp0`) must be there and writable; a plain file's
/// folder must be there or makeable.
fn file_printer(check: String, destination: &str, path: &Path) -> Finding {
    if path.starts_with("/dev") {
        return match std::fs::OpenOptions::new().append(true).open(path) {
            Ok(_) => Finding::ok(check, format!("{destination}: connected")),
            Err(error) => Finding::not_ok(
                Verdict::Fail,
                check,
                format!("{destination}: {error}"),
                "is the printer plugged in and on? The node's user must be in the group `lp` \
                 (the systemd unit adds it)",
            ),
        };
    }
    let folder = path.parent().unwrap_or(path);
    let mut existing = folder;
    while !existing.exists() {
        match existing.parent() {
            Some(parent) => existing = parent,
            None => break,
        }
    }
    let writable = can_write(existing);
    if writable {
        Finding::ok(check, format!("{destination}: writes to a file"))
    } else {
        Finding::not_ok(
            Verdict::Fail,
            check,
            format!("{destination}: {} cannot be written", existing.display()),
            "point the printer's path somewhere the node's user can write",
        )
    }
}

/// Whether this process may write `path` (its owner, mode and a read-only
/// mount all count, as the kernel judges them).
fn can_write(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: a valid C string; access only reads it.
        unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
    }
    #[cfg(not(unix))]
    std::fs::metadata(path).is_ok_and(|m| !m.permissions().readonly())
}

/// Whether each courier's origins answer a TCP connection; if not, whether
/// bookings can wait in the outbox.
async fn couriers(node: &Arc<Node>) -> Vec<Finding> {
    let mut findings = Vec::new();
    for slot in node.table.all() {
        let PluginSlot::Loaded(plugin) = slot else {
            continue;
        };
        if plugin.kind() != PluginKind::CourierAdapter {
            continue;
        }
        let check = format!("courier {}", plugin.id());
        // An adapter may hold several origins (its default and the one its
        // configuration names); one that answers is one it can use.
        let mut answering = Vec::new();
        let mut unreachable = Vec::new();
        for origin in plugin.spec.http_allowed.iter() {
            if reachable(node, origin).await {
                answering.push(origin.clone());
            } else {
                unreachable.push(origin.clone());
            }
        }
        let queues = plugin.spec.outbox_grant.is_some();
        findings.push(if !answering.is_empty() {
            Finding::ok(check, format!("reachable: {}", list(&answering)))
        } else if queues {
            Finding::not_ok(
                Verdict::Warn,
                check,
                format!(
                    "{} cannot be reached: quotes fail, bookings queue in the outbox and go out \
                     when it answers",
                    list(&unreachable)
                ),
                "check the shop's internet; `outpost outbox list` shows what waits",
            )
        } else {
            Finding::not_ok(
                Verdict::Fail,
                check,
                format!(
                    "{} cannot be reached, and it cannot queue bookings",
                    list(&unreachable)
                ),
                "check the shop's internet",
            )
        });
    }
    findings
}

/// A TCP connection to the origin within a few seconds (not a request: a
/// courier's API may want credentials for anything more).
async fn reachable(node: &Node, origin: &Origin) -> bool {
    if node.is_offline() {
        return false;
    }
    let Some(authority) = origin.as_str().split_once("://").map(|(_, rest)| rest) else {
        return false;
    };
    let authority = authority.trim_start_matches('[').replace("]:", ":");
    tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(authority))
        .await
        .is_ok_and(|connected| connected.is_ok())
}

fn outbox(node: &Node) -> Vec<Finding> {
    let backlog = match node.store().outbox_by_destination() {
        Ok(backlog) => backlog,
        Err(error) => {
            return vec![Finding::not_ok(
                Verdict::Fail,
                "outbox",
                format!("cannot be read: {error}"),
                "see the storage check",
            )];
        }
    };
    let now_ms = crate::clock::now_millis();
    let mut findings = Vec::new();
    for (destination, counts) in &backlog {
        let check = format!("outbox to {destination}");
        if counts.dead > 0 {
            findings.push(Finding::not_ok(
                Verdict::Fail,
                check,
                format!("{} delivery(ies) failed for good", counts.dead),
                "`outpost outbox list --state dead` shows why; then `outpost outbox retry ID` or \
                 `drop ID`",
            ));
        } else if let Some(oldest) = counts.oldest_pending_ms
            && now_ms.saturating_sub(oldest) > STUCK_AFTER.as_millis() as u64
        {
            findings.push(Finding::not_ok(
                Verdict::Warn,
                check,
                format!(
                    "{} waiting, the oldest for {} min: not moving",
                    counts.pending,
                    now_ms.saturating_sub(oldest) / 60_000
                ),
                "check the shop's internet; they go out by themselves when it is back",
            ));
        } else if counts.pending > 0 {
            findings.push(Finding::ok(
                check,
                format!("{} waiting, moving", counts.pending),
            ));
        }
    }
    if findings.is_empty() {
        let settled: u64 = backlog.values().map(|c| c.delivered).sum();
        findings.push(Finding::ok(
            "outbox",
            format!("nothing waiting ({settled} delivered and kept)"),
        ));
    }
    findings
}

/// Whether the apps can read their token, as configured.
fn token(node: &Node) -> Finding {
    let api = &node.config().api;
    let origins = if api.allowed_origins.is_empty() {
        "no web pages allowed (api.allowed-origins)".to_string()
    } else {
        format!("web pages allowed: {}", list(&api.allowed_origins))
    };
    if api.token.is_some() {
        return Finding::ok(
            "token",
            format!("set inline in the configuration; {origins}"),
        );
    }
    let path = crate::api::tokens::token_path(api, node.data_dir());
    match crate::api::read_token(api, node.data_dir()) {
        Ok(_) => {
            let readers = if api.share_token_with_group {
                "the node's user and its group"
            } else {
                "only the node's user (an app on this box in the node's group needs \
                 api.share-token-with-group)"
            };
            Finding::ok(
                "token",
                format!("{} readable by {readers}; {origins}", path.display()),
            )
        }
        Err(error) => Finding::not_ok(
            Verdict::Fail,
            "token",
            error.to_string(),
            "fix the file as the message says, or `outpost token rotate` and give the apps the \
             new token",
        ),
    }
}

fn snapshots(node: &Node) -> Finding {
    let settings = &node.config().backup;
    let newest = backup::local::list(node.data_dir()).into_iter().next();
    let has_key = node.data_dir().join(backup::BACKUP_KEY_FILE).exists();
    let fix_no_key =
        "make one and write the recovery code down: `outpost backup -o /media/usb/...`";
    if settings.every_minutes == 0 {
        return Finding::not_ok(
            Verdict::Warn,
            "backups",
            "local snapshots are off (backup.every-minutes = 0)",
            "turn them on, or back up by hand: `outpost backup -o FILE`",
        );
    }
    let due = Duration::from_secs(settings.every_minutes * 60);
    match newest {
        Some(snapshot) => {
            let age = crate::clock::now_seconds().saturating_sub(snapshot.made_at);
            if age > 2 * due.as_secs() + 60 {
                Finding::not_ok(
                    Verdict::Warn,
                    "backups",
                    format!("the newest local snapshot is {} min old", age / 60),
                    "the log says why (`journalctl -u outpost | grep snapshot`); the disk may be \
                     too full",
                )
            } else {
                Finding::ok(
                    "backups",
                    format!(
                        "newest local snapshot {} min old: {}",
                        age / 60,
                        snapshot.path.display()
                    ),
                )
            }
        }
        None if !has_key => {
            Finding::not_ok(Verdict::Warn, "backups", "no backup made yet", fix_no_key)
        }
        None if node.uptime() < due => Finding::ok(
            "backups",
            "no local snapshot yet: the first one comes an interval after start",
        ),
        None => Finding::not_ok(
            Verdict::Warn,
            "backups",
            "no local snapshot, though the node has run longer than backup.every-minutes",
            "the log says why (`journalctl -u outpost | grep snapshot`)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_splits_into_what_and_what_to_do() {
        let (detail, fix) = split_fix("the clock is behind. Set it with date -s");
        assert_eq!(detail, "the clock is behind");
        assert_eq!(fix, "Set it with date -s");
    }
}
