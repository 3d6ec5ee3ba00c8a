//! The bad-day commands: `outpost doctor` (can this node trade right now?),
//! `outpost print test` (a test page on each printer) and `outpost drill`
//! (the quarterly outage rehearsal).

use crate::link::{AdminLink, Link};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const LABEL: &str = include_str!("../../../../docs/examples/label.json");
const RECEIPT: &str = include_str!("../../../../docs/examples/receipt.json");
const CARD: &str = include_str!("../../../../docs/examples/card.json");
const SHIPMENT: &str = include_str!("../../../../docs/examples/quote.json");

#[derive(Debug, Subcommand)]
pub enum PrintCommand {
    /// Send a test page to each configured printer (or one)
    ///
    /// A label to label printers, a receipt to receipt printers, rendered
    /// by the installed driver as a sale's would be, each marked as a test.
    Test {
        /// Only this printer, by its name in outpost.toml
        #[arg(long, value_name = "NAME")]
        printer: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// How long the node stays cut off: long enough to try the till by hand
    #[arg(long = "for", value_name = "DURATION", default_value = "3m")]
    pub duration: jiff::SignedDuration,
    /// How long to wait, once the network is back, for what queued to go out
    #[arg(long, value_name = "DURATION", default_value = "2m")]
    pub settle: jiff::SignedDuration,
    /// Keep the drill's booking with the courier (by default it is
    /// cancelled once confirmed: it is a real booking)
    #[arg(long)]
    pub keep_booking: bool,
    /// End a drill now (one whose command was interrupted); nothing else
    #[arg(long, conflicts_with_all = ["keep_booking"])]
    pub stop: bool,
}

/// Brings the network back when the drill ends, however it ends.
struct Restore<'a> {
    admin: &'a AdminLink,
    done: bool,
}

impl Restore<'_> {
    fn now(&mut self) -> anyhow::Result<()> {
        self.done = true;
        self.admin.call::<Value>(
            Method::DELETE,
            "/admin/v1/drill",
            None::<&()>,
            "restoring the network",
        )?;
        Ok(())
    }
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.now();
        }
    }
}

/// `outpost doctor`: every check, and an error (exit 1) when one fails.
pub fn doctor(data_dir: &Path, config: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let link = AdminLink::open(data_dir, config)?;
    let reply: Value = link.call(
        Method::GET,
        "/admin/v1/doctor",
        None::<&()>,
        "examining the node",
    )?;
    let mut findings = reply["findings"].as_array().cloned().unwrap_or_default();
    if link.node().is_some() {
        findings.insert(
            0,
            json!({
                "check": "node",
                "verdict": "fail",
                "detail": "not running: nothing serves the till, and nothing delivers the outbox",
                "fix": "start it: sudo systemctl start outpost (`journalctl -u outpost` says why \
                        it stopped)",
            }),
        );
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        let width = findings
            .iter()
            .map(|f| f["check"].as_str().unwrap_or_default().len())
            .max()
            .unwrap_or(0);
        for finding in &findings {
            let verdict = match finding["verdict"].as_str() {
                Some("ok") => "ok  ",
                Some("warn") => "WARN",
                _ => "FAIL",
            };
            println!(
                "{verdict}  {:width$}  {}",
                finding["check"].as_str().unwrap_or_default(),
                finding["detail"].as_str().unwrap_or_default()
            );
            if let Some(fix) = finding["fix"].as_str() {
                println!("      {:width$}  fix: {fix}", "");
            }
        }
    }
    let failed = findings.iter().filter(|f| f["verdict"] == "fail").count();
    if failed > 0 {
        bail!("{failed} check(s) failed: the node cannot trade fully; each says what to do");
    }
    Ok(())
}

pub fn print(data_dir: &Path, config: Option<&Path>, command: PrintCommand) -> anyhow::Result<()> {
    let PrintCommand::Test { printer } = command;
    let link = Link::open(data_dir, config)?;
    let printers = link
        .request(Method::GET, "/v1/printers", None)?
        .ok("listing printers")?;
    let printers = printers["printers"].as_array().cloned().unwrap_or_default();
    if let Some(wanted) = &printer
        && !printers.iter().any(|p| p["name"] == wanted.as_str())
    {
        let names: Vec<&str> = printers.iter().filter_map(|p| p["name"].as_str()).collect();
        bail!(
            "no printer named {wanted:?}; configured: {}",
            names.join(", ")
        );
    }
    let mut failed = 0;
    for entry in &printers {
        let name = entry["name"].as_str().unwrap_or_default();
        if printer.as_deref().is_some_and(|wanted| wanted != name) {
            continue;
        }
        let receipts_only = entry["default_for"].as_array().is_some_and(|kinds| {
            kinds.iter().any(|k| k == "receipt") && !kinds.iter().any(|k| k == "label")
        });
        let (path, body) = if receipts_only {
            ("/v1/print/receipt", test_receipt(name)?)
        } else {
            ("/v1/print/label", test_label(name)?)
        };
        let kind = if receipts_only { "receipt" } else { "label" };
        match link
            .request(Method::POST, path, Some(&body))?
            .ok("printing")
        {
            Ok(printed) => println!(
                "{name}: test {kind} printed ({} bytes to {})",
                printed["job"]["bytes"],
                printed["job"]["destination"].as_str().unwrap_or_default()
            ),
            Err(error) => {
                failed += 1;
                println!("{name}: {error:#}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} printer(s) printed nothing; `outpost doctor` checks them");
    }
    Ok(())
}

fn stamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

fn test_label(printer: &str) -> anyhow::Result<Value> {
    let mut body: Value = serde_json::from_str(LABEL).context("the example label")?;
    let label = &mut body["label"];
    label["reference"] = json!(format!("TEST {}", stamp()));
    label["service"] = json!("Outpost test page");
    label["notes"] = json!([format!("Test page for printer {printer}"), "Not a shipment"]);
    body["printer"] = json!(printer);
    Ok(body)
}

fn test_receipt(printer: &str) -> anyhow::Result<Value> {
    let mut body: Value = serde_json::from_str(RECEIPT).context("the example receipt")?;
    body["receipt"]["reference"] = json!(format!("TEST {}", stamp()));
    body["receipt"]["cashier"] = json!(format!("test page: {printer}"));
    body["printer"] = json!(printer);
    Ok(body)
}

/// One scripted step of the drill and how it went.
struct Step {
    what: &'static str,
    outcome: Result<String, String>,
}

/// `outpost drill`: cut the node off, trade, bring it back, report.
pub fn drill(data_dir: &Path, config: Option<&Path>, args: DrillArgs) -> anyhow::Result<()> {
    let duration = Duration::try_from(args.duration)
        .ok()
        .filter(|d| (1..=3600).contains(&d.as_secs()))
        .context("--for must be between 1s and 1h")?;
    let settle = Duration::try_from(args.settle).unwrap_or(Duration::from_secs(120));
    let admin = AdminLink::open(data_dir, config)?;
    if args.stop {
        admin.call::<Value>(
            Method::DELETE,
            "/admin/v1/drill",
            None::<&()>,
            "ending the drill",
        )?;
        println!("The drill is over: the node reaches the outside again.");
        return Ok(());
    }
    if admin.node().is_some() {
        bail!(
            "the drill rehearses the running node, and none runs on {}: start it (sudo \
             systemctl start outpost)",
            data_dir.display()
        );
    }
    let link = Link::open(data_dir, config)?;
    let plugins = link
        .request(Method::GET, "/v1/plugins", None)?
        .ok("listing plugins")?;
    let worlds: Vec<String> = plugins["plugins"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| p["world"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let has = |world: &str| worlds.iter().any(|w| w.contains(world));
    let before = outbox_pending(&link)?;

    admin.call::<Value>(
        Method::POST,
        "/admin/v1/drill",
        Some(&json!({ "seconds": duration.as_secs() })),
        "cutting the network",
    )?;
    let mut restore = Restore {
        admin: &admin,
        done: false,
    };
    let started = Instant::now();
    println!(
        "The node is cut off from everything outside the box for {}s (the till and printers \
         keep working; if this command is killed, the cut still ends by itself, or at once with \
         `outpost drill --stop`). A sale, a label and a booking now:",
        duration.as_secs()
    );
    let mut steps = Vec::new();
    if has("payment-tokenizer") {
        steps.push(Step {
            what: "sale (card tokenized)",
            outcome: timed(|| {
                let body: Value = serde_json::from_str(CARD)?;
                let token = link
                    .request(Method::POST, "/v1/payments/tokenize", Some(&body))?
                    .ok("tokenizing")?;
                Ok(format!(
                    "ok, card ending {}",
                    token["token"]["last_four"].as_str().unwrap_or("?")
                ))
            }),
        });
    }
    if has("printer-driver") {
        steps.push(Step {
            what: "label printed",
            outcome: timed(|| {
                let body: Value = serde_json::from_str(LABEL)?;
                let printed = link
                    .request(Method::POST, "/v1/print/label", Some(&body))?
                    .ok("printing")?;
                Ok(format!(
                    "ok, on {}",
                    printed["job"]["printer"].as_str().unwrap_or("?")
                ))
            }),
        });
    }
    let mut booking_id = None;
    if has("courier-adapter") {
        let reference = format!("DRILL-{}", jiff::Timestamp::now().as_second());
        let outcome = timed(|| {
            let shipment: Value = serde_json::from_str(SHIPMENT)?;
            let quotes = link
                .request(Method::POST, "/v1/shipping/quotes", Some(&shipment))?
                .ok("quoting")?;
            let quote = quotes["quotes"][0]["quote_id"]
                .as_str()
                .context("the courier offered no quote offline (no rate card?)")?
                .to_string();
            let request = &shipment["request"];
            let body = json!({ "request": {
                "quote_id": quote,
                "reference": reference,
                "ship_from": request["ship_from"],
                "ship_to": request["ship_to"],
                "parcels": request["parcels"],
            }});
            let booked = link
                .request(Method::POST, "/v1/shipping/bookings", Some(&body))?
                .ok("booking")?;
            let booking = &booked["booking"];
            let id = booking["booking_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let state = booking["state"].as_str().unwrap_or_default().to_string();
            Ok(format!("{state}: {id}"))
        });
        if let Ok(said) = &outcome {
            booking_id = said
                .split_once(": ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .map(str::to_string);
        }
        steps.push(Step {
            what: "booking",
            outcome,
        });
    }
    for step in &steps {
        match &step.outcome {
            Ok(said) => println!("  ok    {}: {said}", step.what),
            Err(why) => println!("  FAIL  {}: {why}", step.what),
        }
    }
    let queued = outbox_pending(&link)?.saturating_sub(before);
    println!("  {queued} delivery(ies) queued in the outbox while offline");

    if let Some(left) = duration.checked_sub(started.elapsed()) {
        println!(
            "Offline for {}s more: try the till by hand now (Ctrl-C ends the drill early).",
            left.as_secs()
        );
        wait_or_interrupt(left);
    }
    restore.now()?;
    println!(
        "The network is back. Waiting up to {}s for the queue to go out:",
        settle.as_secs()
    );
    let back = Instant::now();
    let mut confirmed = booking_id.is_none();
    let mut pending = outbox_pending(&link)?;
    // A hiccup while watching is not the drill failing: keep watching.
    while back.elapsed() < settle && (pending > before || !confirmed) {
        std::thread::sleep(Duration::from_millis(500));
        pending = outbox_pending(&link).unwrap_or(pending);
        if let Some(id) = &booking_id
            && !confirmed
        {
            let path = format!("/v1/shipping/bookings/{id}");
            confirmed = link
                .request(Method::GET, &path, None)
                .and_then(|reply| reply.ok("asking for the booking"))
                .is_ok_and(|status| status["booking"]["state"] != "queued");
        }
    }
    let delivered = queued.saturating_sub(pending.saturating_sub(before));
    println!(
        "  {delivered} of {queued} queued delivery(ies) went out in {:.1}s",
        back.elapsed().as_secs_f64()
    );
    if let Some(id) = &booking_id {
        println!(
            "  booking {id}: {}",
            if confirmed {
                "confirmed by the courier"
            } else {
                "still queued"
            }
        );
        if !args.keep_booking {
            let path = format!("/v1/shipping/bookings/{id}");
            let cancelled = if confirmed {
                link.request(Method::DELETE, &path, None)
                    .and_then(|reply| reply.ok("cancelling"))
                    .map(|_| ())
            } else {
                Err(anyhow::anyhow!(
                    "it is still queued, and reaches the courier when it can"
                ))
            };
            match cancelled {
                Ok(()) => {
                    println!("  booking {id}: cancelled with the courier (a drill's booking)")
                }
                Err(error) => println!(
                    "  booking {id}: not cancelled ({error:#}); cancel it once confirmed: \
                     outpost booking {id} --cancel"
                ),
            }
        }
    }
    let failed: Vec<&str> = steps
        .iter()
        .filter(|step| step.outcome.is_err())
        .map(|step| step.what)
        .collect();
    if !failed.is_empty() {
        bail!(
            "the drill failed: {} did not work offline; `outpost doctor` and the plugin's \
             guide say why",
            failed.join(", ")
        );
    }
    if !confirmed || pending > before {
        bail!(
            "the drill failed: what queued offline did not go out within {}s of the network \
             coming back; `outpost outbox list` shows why",
            settle.as_secs()
        );
    }
    println!("Drill passed: the stall kept trading offline, and caught up once back.");
    Ok(())
}

/// What `work` said, with how long it took.
fn timed(work: impl FnOnce() -> anyhow::Result<String>) -> Result<String, String> {
    let started = Instant::now();
    work()
        .map(|said| format!("{said} ({} ms)", started.elapsed().as_millis()))
        .map_err(|error| format!("{error:#}"))
}

fn outbox_pending(link: &Link) -> anyhow::Result<u64> {
    let listed = link
        .request(Method::GET, "/v1/outbox?state=pending&limit=1", None)?
        .ok("reading the outbox")?;
    Ok(listed["counts"]["pending"].as_u64().unwrap_or(0))
}

/// Sleeps `left`, or less if the operator presses Ctrl-C.
fn wait_or_interrupt(left: Duration) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        std::thread::sleep(left);
        return;
    };
    runtime.block_on(async {
        tokio::select! {
            () = tokio::time::sleep(left) => {}
            _ = tokio::signal::ctrl_c() => println!("\nEnding the drill early."),
        }
    });
}
