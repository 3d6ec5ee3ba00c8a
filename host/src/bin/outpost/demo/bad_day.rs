//! Step 16 of the demo: the bad day, rehearsed. A snapshot to carry off the
//! box, the doctor's checks, and a short drill: the node cuts itself off,
//! keeps trading, and catches up when the network is back.

use super::step;
use crate::link::ApiClient;
use anyhow::bail;
use hyper::Method;
use outpost::node::Node;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn rehearse(node: &Arc<Node>, client: &ApiClient) -> anyhow::Result<()> {
    step(
        16,
        "A bad day, rehearsed: a backup to carry off the box, the doctor, an outage drill",
    );
    let worker = node.clone();
    let taken =
        tokio::task::spawn_blocking(move || outpost::backup::local::take_now(&worker)).await??;
    println!(
        "   outpost backup: {} ({} KiB, encrypted): {} plugin(s), {} key(s); the recovery code \
         was shown once (`outpost backup --recovery-code`)",
        taken.snapshot.path.display(),
        taken.snapshot.bytes >> 10,
        taken.manifest.plugins.len(),
        taken.manifest.keys
    );
    println!("   outpost doctor:");
    for finding in outpost::doctor::examine(node).await {
        let verdict = match finding.verdict {
            outpost::doctor::Verdict::Ok => "ok  ",
            outpost::doctor::Verdict::Warn => "WARN",
            outpost::doctor::Verdict::Fail => "FAIL",
        };
        println!("     {verdict} {}: {}", finding.check, finding.detail);
    }

    node.network().cut_for(Duration::from_secs(60));
    println!("   outpost drill: the node cuts itself off (the till and printers keep working)");
    let label = super::LABEL;
    let (status, printed) = client
        .request(Method::POST, "/v1/print/label", Some(label))
        .await?;
    println!(
        "     a label while offline -> {status} on {}",
        printed["job"]["printer"].as_str().unwrap_or_default()
    );
    let mut booking: serde_json::Value =
        serde_json::from_str(include_str!("../../../../../docs/examples/booking.json"))?;
    // Offline, the adapter quotes from its rate card; book that quote.
    let (_, quotes) = client
        .request(
            Method::POST,
            "/v1/shipping/quotes",
            Some(include_str!("../../../../../docs/examples/quote.json")),
        )
        .await?;
    booking["request"]["quote_id"] = quotes["quotes"][0]["quote_id"].clone();
    booking["request"]["reference"] = serde_json::json!("DRILL-1");
    let (status, booked) = client
        .request(
            Method::POST,
            "/v1/shipping/bookings",
            Some(&booking.to_string()),
        )
        .await?;
    let id = booked["booking"]["booking_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !status.is_success() {
        bail!("the drill's booking failed ({status}): {booked}");
    }
    println!(
        "     a booking while offline -> {status}: {id} is {}",
        booked["booking"]["state"].as_str().unwrap_or_default()
    );
    node.network().restore();
    node.outbox().wake();
    let back = Instant::now();
    loop {
        let (_, body) = client
            .request(Method::GET, &format!("/v1/shipping/bookings/{id}"), None)
            .await?;
        if body["booking"]["state"] == "confirmed" {
            println!(
                "     the network is back: {id} confirmed by the courier {:.1}s later",
                back.elapsed().as_secs_f64()
            );
            break;
        }
        if back.elapsed() > Duration::from_secs(20) {
            bail!("the drill's booking was not confirmed within 20 s: {body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("   (`outpost drill` runs this on a live node, and reports what kept working)");
    Ok(())
}
