//! `outpost demo`: a node on its embedded defaults, shown working.
//!
//! Everything is the real thing: the reference driver is written out as a
//! package folder, published signed to a registry on 127.0.0.1 and
//! installed from there after verification, the printers are TCP listeners on
//! 127.0.0.1 that behave like port-9100 printers, and every step goes through
//! the node's local HTTP API with its bearer token.

mod bad_day;

use crate::commands::open;
use crate::link::ApiClient;
use anyhow::{Context, bail};
use hyper::{Method, StatusCode};
use outpost::api;
use outpost::printing::preview;
use outpost::printing::virtual_printer::VirtualPrinter;
use outpost::virtual_courier::{Behaviour, VirtualCourier};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MARKER: &str = ".outpost-demo";
const LABEL: &str = include_str!("../../../../../docs/examples/label.json");
const RECEIPT: &str = include_str!("../../../../../docs/examples/receipt.json");

/// Makes `dir` empty, but only if it is absent, empty, or a previous demo's.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty && !dir.join(MARKER).exists() {
            bail!(
                "{} is not empty and was not made by `outpost demo`; it was left alone. \
                 Choose another folder with --data-dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot clear the previous demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "made by `outpost demo`; it may delete this folder\n",
    )?;
    Ok(())
}

/// A registry on 127.0.0.1 holding the reference vendor's namespace,
/// `outpost`, with its root and keys under `<dir>/registry`.
struct DemoRegistry {
    url: url::Url,
    root: Vec<u8>,
    token: String,
    /// A one-time token that enrols the demo node in the fleet.
    enrolment: String,
    vendor: outpost_registry::keys::KeyPair,
    registry: Arc<outpost_registry::server::Registry>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl DemoRegistry {
    async fn start(dir: &Path) -> anyhow::Result<DemoRegistry> {
        use outpost_registry::keys::KeyPair;
        use outpost_registry::repository::{self, Lifetimes, OnlineKeys};
        use outpost_registry::server::{Registry, ServeConfig};
        use outpost_registry::store::RegistryStore;
        let folder = dir.join("registry");
        let store = RegistryStore::create(&folder)?;
        let root_key = KeyPair::generate()?;
        let online = OnlineKeys::generate()?;
        let root = repository::init(&store, &[root_key], 1, &online, Lifetimes::default())?;
        std::fs::write(folder.join("root.json"), &root)?;
        let vendor = KeyPair::generate()?;
        outpost_registry::admin::add_namespace(&store, "outpost", vec![vendor.public()], 1)?;
        let token = outpost_registry::admin::issue_token(&store, "outpost", "demo")?;
        let enrolment = outpost_registry::fleet::issue_enrolment_token(
            &store,
            [("region".to_string(), "demo".to_string())].into(),
            3600,
        )?
        .token;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot start the demo registry")?;
        let url = url::Url::parse(&format!("http://{}/", listener.local_addr()?))?;
        println!(
            "Registry:         {url} (the central team's; root of trust in {})",
            folder.join("root.json").display()
        );
        // Like `outpost-registry serve`, it runs a node's install checks on
        // every pushed release.
        let registry = Arc::new(
            Registry::new(store, online, ServeConfig::default())
                .with_release_check(Arc::new(outpost::release_check::ReleaseChecker::new())),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(registry.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(DemoRegistry {
            url,
            root,
            token,
            enrolment,
            vendor,
            registry,
            stop,
        })
    }

    /// The network goes away: the rest of the demo runs without it.
    fn stop(self) {
        let _ = self.stop.send(());
    }
}

/// The embedded reference plugins the demo installs, by package folder name.
#[cfg(feature = "embedded-plugins")]
fn embedded(name: &str) -> anyhow::Result<&'static [(&'static str, &'static [u8])]> {
    use outpost_plugin_artifacts as artifacts;
    Ok(match name {
        "thermal-printer" => artifacts::THERMAL_PRINTER_FILES,
        "card-tokenizer" => artifacts::CARD_TOKENIZER_FILES,
        "courier" => artifacts::COURIER_FILES,
        "forecaster" => artifacts::FORECASTER_FILES,
        other => bail!("no embedded plugin {other}"),
    })
}

/// Writes an embedded reference plugin out as a package folder, passing its
/// manifest through `edit_manifest`.
fn write_package(
    dir: &Path,
    name: &str,
    edit_manifest: impl Fn(&str) -> String,
) -> anyhow::Result<PathBuf> {
    #[cfg(feature = "embedded-plugins")]
    {
        let package = dir.join("packages").join(name);
        for (relative, bytes) in embedded(name)? {
            let path = package.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let edited;
            let bytes = if *relative == outpost::manifest::MANIFEST_FILE_NAME {
                edited = edit_manifest(std::str::from_utf8(bytes)?);
                edited.as_bytes()
            } else {
                bytes
            };
            std::fs::write(&path, bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(package)
    }
    #[cfg(not(feature = "embedded-plugins"))]
    {
        let _ = (dir, name, edit_manifest);
        bail!("this outpost was built without its reference plugins (feature `embedded-plugins`)")
    }
}

fn demo_config(
    label_printer: &VirtualPrinter,
    receipt_printer: &VirtualPrinter,
    courier: &VirtualCourier,
) -> String {
    format!(
        "# Written by `outpost demo`: the embedded defaults, with both printers pointed at\n\
         # virtual printers on 127.0.0.1, the courier adapter at a virtual courier, a\n\
         # free port for the API, the receipt logo on, and quick outbox retries.\n\
         [api]\nlisten = \"127.0.0.1:0\"\n\n\
         [printers.labels]\ntransport = \"tcp\"\naddress = \"{}\"\n\n\
         [printers.receipts]\ntransport = \"tcp\"\naddress = \"{}\"\n\n\
         [outbox]\ninitial-backoff-ms = 200\nmax-backoff-ms = 1000\n\n\
         [plugin-config.\"outpost/thermal-printer\"]\nlogo = \"true\"\n\n\
         [plugin-config.\"outpost/courier\"]\napi-url = \"{}\"\n",
        label_printer.address(),
        receipt_printer.address(),
        courier.url()
    )
}

/// Eight weeks of a bakery's daily loaf sales, for the forecast step: closed
/// on Tuesdays, busier on the fortnightly Saturday market.
fn bakery_history() -> String {
    // Monday first.
    let shape = [42.0, 0.0, 40.0, 45.0, 58.0, 75.0, 61.0];
    let first_day = 1_760_000_000 / 86_400;
    let weekday = |day: i64| ((day + 3) % 7) as usize;
    let market = |day: i64| weekday(day) == 5 && (day - first_day) / 7 % 2 == 0;
    let observations: Vec<Value> = (0..56)
        .map(|t: i64| first_day + t)
        .filter(|day| weekday(*day) != 1)
        .map(|day| {
            let t = day - first_day;
            let wobble = ((t * 37) % 11) as f64 - 5.0;
            let boost = if market(day) { 1.5 } else { 1.0 };
            serde_json::json!({
                "at": day * 86_400,
                "value": (shape[weekday(day)] + 0.15 * t as f64 + wobble) * boost,
            })
        })
        .collect();
    let events: Vec<Value> = (0..63)
        .map(|t: i64| first_day + t)
        .filter(|day| market(*day))
        .map(|day| serde_json::json!({ "name": "market day", "at": day * 86_400 }))
        .collect();
    serde_json::json!({
        "request": {
            "history": { "item": "sourdough-loaf", "unit": "loaves", "interval": "day",
                         "observations": observations },
            "horizon": 7,
            "coverage": 0.8,
            "calendar": { "open_weekdays": ["monday", "wednesday", "thursday", "friday",
                                            "saturday", "sunday"] },
            "events": events,
        }
    })
    .to_string()
}

pub(crate) fn step(number: u32, text: &str) {
    println!("\n{number}. {text}");
}

fn boxed(text: &str, min_width: usize) {
    let width = text
        .lines()
        .map(|line| line.chars().count())
        .max()
        .unwrap_or(0)
        .max(min_width);
    println!("   ┌{}┐", "─".repeat(width + 2));
    for line in text.lines() {
        let pad = width - line.chars().count();
        println!("   │ {line}{} │", " ".repeat(pad));
    }
    println!("   └{}┘", "─".repeat(width + 2));
}

pub fn run(data_dir: Option<PathBuf>, serve: bool) -> anyhow::Result<()> {
    let dir = data_dir.unwrap_or_else(|| PathBuf::from("outpost-demo"));
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(demo(&dir, serve))
}

async fn demo(dir: &Path, serve: bool) -> anyhow::Result<()> {
    println!("Outpost demo: a node on its embedded defaults");
    println!("==============================================");
    prepare_dir(dir)?;
    let label_printer = VirtualPrinter::start()
        .await
        .context("cannot start a virtual printer")?;
    let receipt_printer = VirtualPrinter::start()
        .await
        .context("cannot start a virtual printer")?;
    let courier = VirtualCourier::start(([127, 0, 0, 1], 0).into())
        .await
        .context("cannot start the virtual courier")?;
    std::fs::write(
        dir.join(outpost::config::CONFIG_FILE_NAME),
        demo_config(&label_printer, &receipt_printer, &courier),
    )?;
    println!("Data directory:   {}", dir.display());
    println!(
        "Virtual printers: labels (ZPL II) on {}, receipts (ESC/POS) on {}",
        label_printer.address(),
        receipt_printer.address()
    );
    println!("Virtual courier:  {}", courier.url());

    let registry = DemoRegistry::start(dir).await?;
    let package = write_package(dir, "thermal-printer", str::to_string)?;
    step(
        1,
        "A vendor publishes the reference printer driver to a registry on 127.0.0.1; \
         the node verifies it against its root of trust and installs it",
    );
    let (_, published) = outpost::releases::publish(
        &package,
        &registry.url,
        &outpost_registry::tls::ClientTls::system(),
        &registry.token,
        &[&registry.vendor],
        jiff::SignedDuration::from_hours(24),
    )
    .await
    .context("publishing the reference driver to the demo registry")?;
    println!(
        "   published {} as {} ({} bytes), signed with vendor key {}…",
        published.target,
        &published.digest[..19],
        published.bytes,
        &registry.vendor.key_id_hex()[..12]
    );
    let node = open(dir, None)?;
    outpost::releases::provision(
        node.store(),
        &dir.join("registry/root.json"),
        &registry.root,
        Some(&registry.url),
        None,
    )?;
    let joined = outpost::control::fleet::join(
        &node,
        &outpost::control::fleet::JoinRequest {
            registry: registry.url.to_string(),
            token: registry.enrolment.clone(),
            labels: [("site".to_string(), "demo-stall".to_string())].into(),
            name: None,
        },
    )
    .await
    .context("joining the demo fleet")?;
    println!(
        "   the node joined the fleet as node {} with its own key (labels: {})",
        joined.node_id,
        outpost_registry::fleet::labels_text(&joined.labels)
    );
    let started = Instant::now();
    let source = outpost::releases::Source::Registry {
        url: registry.url.clone(),
        wanted: outpost::releases::Wanted::parse("outpost/thermal-printer@^0.1")?,
    };
    let fetched = outpost::releases::fetch(node.store(), &dir.join("downloads"), &source, &|_| {})
        .await
        .context("fetching the reference driver from the demo registry")?;
    println!(
        "   verified: root v{}, timestamp v{}, outpost's signed release list, manifest and every blob",
        fetched.index.root_version, fetched.index.timestamp_version
    );
    // The same release through the standards, as any TUF or OCI client
    // sees it: the target path a TUF client derives holds the manifest
    // whose sha-256 the vendor signed.
    let hex = published
        .digest
        .strip_prefix("sha256:")
        .unwrap_or(&published.digest);
    let target = registry.url.join(&format!(
        "tuf/targets/outpost/{hex}.thermal-printer@{}",
        fetched.release.version
    ))?;
    let served = get_bytes(&target).await?;
    let matches = outpost_registry::artifact::digest_of(&served) == published.digest;
    println!(
        "   standard clients: TUF target {target} ({}), OCI docker://{}/outpost/thermal-printer:{}",
        if matches {
            "its sha-256 is the signed one"
        } else {
            "DIFFERENT from the signed one"
        },
        outpost_registry::vendor::registry_host(&registry.url),
        fetched.release.version
    );
    let report = outpost::updates::install(&node, &fetched.package)
        .context("installing the reference driver")?;
    println!("   {} {} ({})", report.id, report.version, report.world);
    println!("   grants: {}", report.grants);
    println!(
        "   limits: {} ms per call, {} MiB memory; checked, compiled and health-checked in {} ms",
        report.deadline_ms,
        report.memory_mib,
        started.elapsed().as_millis()
    );
    println!("   health: {}", report.health);
    let bundle = dir.join("usb/thermal-printer.bundle");
    std::fs::create_dir_all(dir.join("usb"))?;
    outpost::releases::export_bundle(
        node.store(),
        &dir.join("downloads"),
        &registry.url,
        &[outpost::releases::Wanted::parse("outpost/thermal-printer")?],
        &bundle,
        &|_| {},
    )
    .await
    .context("exporting the demo bundle")?;
    println!(
        "   the same release as a signed bundle for nodes offline: {} ({} KB)",
        bundle.display(),
        std::fs::metadata(&bundle)
            .map(|m| m.len() / 1024)
            .unwrap_or(0)
    );
    println!("   and the other reference plugins, from package folders:");
    let tokenizer =
        outpost::manifest::PluginId::parse("outpost/card-tokenizer").map_err(anyhow::Error::msg)?;
    node.keystore()
        .provision(&tokenizer, "card-token", None, false)
        .context("provisioning the tokenizer's key")?;
    for name in ["card-tokenizer", "courier", "forecaster"] {
        // The courier adapter reaches the courier its plugin-config api-url
        // names (the demo's, on a free port), approved here at install: no
        // repackaging.
        let package = write_package(dir, name, str::to_string)?;
        let report = outpost::updates::install(&node, &package)
            .with_context(|| format!("installing the reference {name}"))?;
        println!(
            "   {} {} ({}): grants {}; health: {}",
            report.id, report.version, report.world, report.grants, report.health
        );
    }

    let node = Arc::new(node);
    let (stop_delivery, delivery_stopped) = tokio::sync::oneshot::channel::<()>();
    let delivery = tokio::spawn(outpost::outbox::delivery::run(
        node.outbox().clone(),
        node.config().outbox.clone(),
        async {
            let _ = delivery_stopped.await;
        },
    ));
    let token = api::load_or_create_token(&node)?;
    let listener = tokio::net::TcpListener::bind(node.config().api.listen).await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(node.clone(), listener, token.clone(), async {
        let _ = stopped.await;
    }));
    let client = ApiClient::new(format!("http://{address}"), token);

    step(
        2,
        &format!(
            "Start the local API on http://{address} (bearer token in {})",
            dir.join("api-token").display()
        ),
    );
    let (status, health) = client.request(Method::GET, "/v1/health", None).await?;
    println!("   GET /v1/health -> {status}: {health}");

    step(
        3,
        "Print a shipping label: POST /v1/print/label with docs/examples/label.json",
    );
    let (status, body) = client
        .request(Method::POST, "/v1/print/label", Some(LABEL))
        .await?;
    show_job(status, &body)?;
    let jobs = label_printer.wait_for_jobs(1, Duration::from_secs(5)).await;
    let label = jobs.first().context("the label printer received nothing")?;
    std::fs::write(dir.join("received-label.zpl"), label)?;
    println!(
        "   The label printer received {} bytes of ZPL II (saved as received-label.zpl). Its text:",
        label.len()
    );
    boxed(&preview::zpl(label), 44);

    step(
        4,
        "Print a receipt: POST /v1/print/receipt with docs/examples/receipt.json",
    );
    let (status, body) = client
        .request(Method::POST, "/v1/print/receipt", Some(RECEIPT))
        .await?;
    show_job(status, &body)?;
    let jobs = receipt_printer
        .wait_for_jobs(1, Duration::from_secs(5))
        .await;
    let receipt = jobs
        .first()
        .context("the receipt printer received nothing")?;
    std::fs::write(dir.join("received-receipt.escpos"), receipt)?;
    println!(
        "   The receipt printer received {} bytes of ESC/POS (saved as received-receipt.escpos):",
        receipt.len()
    );
    boxed(&preview::escpos(receipt, 42), 42);

    step(5, "Ask both printers how they are, through the driver");
    for (printer, kind) in [("labels", "label"), ("receipts", "receipt")] {
        let path = format!("/v1/printers/{printer}/status?kind={kind}");
        let (status, body) = client.request(Method::GET, &path, None).await?;
        let report = &body["status"];
        println!(
            "   GET {path} -> {status}: ready={} ({})",
            report["ready"], report["detail"]
        );
    }

    step(6, "A bad request is refused, and says why");
    let bad = LABEL.replace(
        "\"country\": \"GB\",\n      \"phone\"",
        "\"country\": \"Wales\",\n      \"phone\"",
    );
    let (status, body) = client
        .request(Method::POST, "/v1/print/label", Some(&bad))
        .await?;
    println!(
        "   ship_to.country = \"Wales\" -> {status}: {}",
        body["error"]["message"].as_str().unwrap_or_default()
    );
    let typo = LABEL.replace("\"service\"", "\"servise\"");
    let (status, body) = client
        .request(Method::POST, "/v1/print/label", Some(&typo))
        .await?;
    println!(
        "   a misspelt field -> {status}: {}",
        body["error"]["message"].as_str().unwrap_or_default()
    );

    offline_story(&client, &courier, &label_printer, dir).await?;

    step(12, "What the node knows: GET /v1/plugins");
    let (_, body) = client.request(Method::GET, "/v1/plugins", None).await?;
    for plugin in body["plugins"].as_array().into_iter().flatten() {
        println!(
            "   {} {}: {}, {} calls: {} refused their input, {} stopped by the sandbox; \
             runs at most {} at once",
            plugin["id"].as_str().unwrap_or_default(),
            plugin["version"].as_str().unwrap_or_default(),
            plugin["status"].as_str().unwrap_or_default(),
            plugin["calls"],
            plugin["refused"],
            plugin["failed"],
            plugin["limits"]["concurrency"],
        );
    }

    step(
        13,
        "Updates while trading: the driver follows the registry; a till holds swaps during a sale",
    );
    let driver = outpost::manifest::PluginId::parse("outpost/thermal-printer")
        .map_err(anyhow::Error::msg)?;
    outpost::control::follow(&node, driver.clone(), Some("^0.1".into())).await?;
    for checked in outpost::control::check(&node).await? {
        println!("   follows {}: {}", checked.follows, checked.outcome);
    }
    let (status, lock) = client
        .request(
            Method::POST,
            "/v1/updates/lock",
            Some(r#"{"seconds": 120, "holder": "till 1"}"#),
        )
        .await?;
    println!("   POST /v1/updates/lock -> {status}: {lock}");
    let (_, health) = client.request(Method::GET, "/v1/health", None).await?;
    println!(
        "   /v1/health: update_lock {}; new releases are staged but not swapped in until it is released",
        health["update_lock"]
    );
    let (status, _) = client
        .request(Method::DELETE, "/v1/updates/lock", None)
        .await?;
    println!("   DELETE /v1/updates/lock -> {status}");
    println!("   every install took the update path (outpost update history):");
    for line in outpost::control::history(&node, Some(&driver), 20)? {
        println!(
            "     {} {} -> {}: {}",
            line.plugin,
            line.from
                .map(|v| v.to_string())
                .unwrap_or_else(|| "(new)".into()),
            line.to,
            line.state
        );
    }
    fleet_rollout(&node, &registry).await?;
    registry.stop();
    watch_the_node(&node, address).await?;
    bad_day::rehearse(&node, &client).await?;

    if serve {
        println!(
            "\nThe node is serving on http://{address} until Ctrl-C. Try:\n  \
             curl -H \"Authorization: Bearer $(cat {})\" http://{address}/v1/plugins",
            dir.join("api-token").display()
        );
        let mut stopping = crate::service::stop_on_signals()?;
        let _ = stopping.wait_for(|stop| *stop).await;
    }
    let _ = stop.send(());
    let _ = stop_delivery.send(());
    server.await.context("the API server task failed")??;
    delivery.await.context("the delivery worker failed")?;
    println!("\nDone. The node's state stays in {}; try:", dir.display());
    let shown = dir.display();
    println!("   outpost --data-dir {shown} plugin list");
    println!("   outpost --data-dir {shown} plugin info outpost/card-tokenizer");
    println!("   outpost --data-dir {shown} tokenize docs/examples/card.json");
    println!("   outpost --data-dir {shown} forecast docs/examples/forecast.json");
    println!("   outpost --data-dir {shown} outbox list");
    println!("   outpost --data-dir {shown} trust show");
    println!("   outpost --data-dir {shown} update status");
    println!("   outpost --data-dir {shown} update history");
    println!("   outpost --data-dir {shown} console password");
    println!("   outpost --data-dir {shown} telemetry status");
    println!("   outpost --data-dir {shown} doctor");
    println!("   outpost --data-dir {shown} backup --list");
    println!("and, as a node with no network, the bundle from step 1:");
    println!("   outpost --data-dir /tmp/offline-node trust init {shown}/registry/root.json");
    println!(
        "   outpost --data-dir /tmp/offline-node plugin install {shown}/usb/thermal-printer.bundle --yes"
    );
    Ok(())
}

/// Step 14: a rollout from the central team reaches the node, which checks
/// with the director and reports back through its outbox.
async fn fleet_rollout(
    node: &Arc<outpost::node::Node>,
    registry: &DemoRegistry,
) -> anyhow::Result<()> {
    use outpost_registry::rollout::{self, RolloutRequest, RolloutState};
    step(
        14,
        "Fleet: the central team rolls the driver out to region=demo; the node asks the \
         director, acts, and reports through its outbox",
    );
    let store = registry.registry.store();
    let created = rollout::create(
        store,
        &RolloutRequest {
            release: "outpost/thermal-printer@0.1.0".into(),
            select: "region=demo".into(),
            waves: vec![50, 100],
            probation_seconds: 600,
            abort_when: "failed > 10% after 1".into(),
            rollback: true,
            offline_after_seconds: 3600,
        },
    )
    .context("creating the demo rollout")?;
    println!(
        "   outpost-registry rollout create outpost/thermal-printer@0.1.0 --select region=demo \
         --waves 50,100 -> {} ({} node(s))",
        created.id,
        created.nodes.len()
    );
    let checked = outpost::control::fleet::check(node)
        .await
        .context("checking the demo fleet's desired state")?;
    if let Some(desired) = &checked.desired {
        println!(
            "   outpost fleet check: desired state v{} signed by the director",
            desired.version
        );
    }
    for acted in &checked.acted {
        println!(
            "     {} ({}): {}",
            acted.rollout, acted.release, acted.outcome
        );
    }
    let started = Instant::now();
    let state = loop {
        let state = rollout::status_of(store, &created.id)?.rollout.state;
        if !state.in_progress() || started.elapsed() > Duration::from_secs(10) {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status = rollout::status_of(store, &created.id)?;
    let counts: Vec<String> = status
        .waves
        .iter()
        .filter(|wave| wave.nodes > 0)
        .map(|wave| {
            let counts: Vec<String> = wave
                .counts
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            format!("{}%: {}", wave.percent, counts.join(", "))
        })
        .collect();
    println!(
        "   outpost-registry rollout status {}: {}{} ({})",
        created.id,
        state.name(),
        if matches!(state, RolloutState::Completed { .. }) {
            " (the node reported it runs the release; a signed report, numbered, through the outbox)"
        } else {
            ""
        },
        counts.join("; ")
    );
    Ok(())
}

/// Steps 7 to 11: a sale paid by card, a shipment booked while the courier
/// is down, delivered and printed when it is back, and tomorrow's forecast.
async fn offline_story(
    client: &ApiClient,
    courier: &VirtualCourier,
    label_printer: &VirtualPrinter,
    dir: &Path,
) -> anyhow::Result<()> {
    step(7, "An order is paid by card: POST /v1/payments/tokenize");
    let card = r#"{"card": {"pan": "4111111111111111", "expiry_month": 12, "expiry_year": 2030,
                  "cardholder": "A SHOPPER", "security_code": "123"}}"#;
    let (status, body) = client
        .request(Method::POST, "/v1/payments/tokenize", Some(card))
        .await?;
    if !status.is_success() {
        bail!("tokenizing the demo card failed ({status}): {body}");
    }
    let token = &body["token"];
    println!(
        "   -> {status}: {} card, token {} (same length, same last four, keyed: the card number \
         is not stored anywhere)",
        token["brand"].as_str().unwrap_or_default(),
        token["token"].as_str().unwrap_or_default()
    );

    step(8, "The mobile network drops: the courier is unreachable");
    courier.set(Behaviour::Down).await?;
    let shipment = serde_json::json!({
        "ship_from": { "name": "Harbour Street Bakery", "lines": ["3 Harbour Street"],
                       "city": "Whitby", "postal_code": "YO21 3PU", "country": "GB" },
        "ship_to": { "name": "Jo Bloggs", "lines": ["12 Station Road"], "city": "York",
                     "postal_code": "YO1 6HT", "country": "GB" },
        "parcels": [{ "weight_grams": 1200, "length_mm": 300, "width_mm": 200,
                      "height_mm": 100, "description": "Sourdough hamper" }],
    });
    let mut quote_request = shipment.clone();
    quote_request["ready_at"] = serde_json::json!(outpost::clock::now_seconds());
    quote_request["service_codes"] = serde_json::json!([]);
    let (status, body) = client
        .request(
            Method::POST,
            "/v1/shipping/quotes",
            Some(&serde_json::json!({ "request": quote_request }).to_string()),
        )
        .await?;
    let quote = body["quotes"][0].clone();
    println!(
        "   POST /v1/shipping/quotes -> {status}: {} for {} minor units ({})",
        quote["service_name"].as_str().unwrap_or_default(),
        quote["price"]["minor_units"],
        quote["price"]["currency"].as_str().unwrap_or_default()
    );
    let mut booking_request = shipment;
    booking_request["quote_id"] = quote["quote_id"].clone();
    booking_request["reference"] = serde_json::json!("ORDER-1042");
    let (status, body) = client
        .request(
            Method::POST,
            "/v1/shipping/bookings",
            Some(&serde_json::json!({ "request": booking_request }).to_string()),
        )
        .await?;
    if !status.is_success() {
        bail!("booking failed ({status}): {body}");
    }
    let booking_id = body["booking"]["booking_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    println!(
        "   POST /v1/shipping/bookings -> {status}: {booking_id} is {}: {}",
        body["booking"]["state"].as_str().unwrap_or_default(),
        body["booking"]["detail"].as_str().unwrap_or_default()
    );
    let (_, outbox) = client.request(Method::GET, "/v1/outbox", None).await?;
    println!(
        "   GET /v1/outbox -> pending: {}, delivered: {}",
        outbox["counts"]["pending"], outbox["counts"]["delivered"]
    );

    step(9, "The network is back: the outbox delivers the booking");
    courier.set(Behaviour::Up).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let booking = loop {
        let path = format!("/v1/shipping/bookings/{booking_id}");
        let (_, body) = client.request(Method::GET, &path, None).await?;
        if body["booking"]["state"] == "confirmed" {
            break body["booking"].clone();
        }
        if Instant::now() > deadline {
            bail!("the queued booking was not delivered within 20 s: {body}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "   GET /v1/shipping/bookings/{booking_id} -> confirmed, tracking {}",
        booking["tracking_numbers"]
    );
    println!(
        "   the courier recorded {} booking(s) for it, however often it was sent",
        courier.shipments().len()
    );

    step(
        10,
        "Its label prints: POST /v1/print/label with the booking's label",
    );
    let label = serde_json::json!({ "label": booking["labels"][0] }).to_string();
    let (status, body) = client
        .request(Method::POST, "/v1/print/label", Some(&label))
        .await?;
    show_job(status, &body)?;
    let jobs = label_printer.wait_for_jobs(2, Duration::from_secs(5)).await;
    let printed = jobs.get(1).context("the label printer received nothing")?;
    std::fs::write(dir.join("received-courier-label.zpl"), printed)?;
    boxed(&preview::zpl(printed), 44);

    step(
        11,
        "Next week's bake: POST /v1/forecasts with eight weeks of sales, the shop's \
         calendar (closed Tuesdays) and its market days",
    );
    let (status, body) = client
        .request(Method::POST, "/v1/forecasts", Some(&bakery_history()))
        .await?;
    if !status.is_success() {
        bail!("the forecast failed ({status}): {body}");
    }
    let forecast = &body["forecast"];
    println!(
        "   -> {status}: {}",
        forecast["method"].as_str().unwrap_or_default()
    );
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    for point in forecast["points"].as_array().into_iter().flatten() {
        let day = point["at"].as_i64().unwrap_or_default() / 86_400;
        let name = DAYS[((day + 3) % 7) as usize];
        let events = crate::trade::point_events(point);
        if point["open"] == false {
            println!("      {name}  closed");
            continue;
        }
        println!(
            "      {name}  {:>3.0} loaves (80% between {:.0} and {:.0}){}",
            point["expected"].as_f64().unwrap_or_default(),
            point["lower"].as_f64().unwrap_or_default(),
            point["upper"].as_f64().unwrap_or_default(),
            if events.is_empty() {
                String::new()
            } else {
                format!("  {events}")
            }
        );
    }
    if let Some(tried) = crate::trade::methods_tried(forecast) {
        println!("      tried on the history (MASE, below 1 beats last week): {tried}");
    }
    Ok(())
}

fn show_job(status: StatusCode, body: &Value) -> anyhow::Result<()> {
    if !status.is_success() {
        bail!("the node refused the demo's own request ({status}): {body}");
    }
    let job = &body["job"];
    println!(
        "   -> {status}: {} {} rendered {} bytes in {} ms; sent to printer `{}` ({}) in {} ms",
        job["driver"].as_str().unwrap_or_default(),
        job["driver_version"].as_str().unwrap_or_default(),
        job["bytes"],
        job["render_ms"],
        job["printer"].as_str().unwrap_or_default(),
        job["destination"].as_str().unwrap_or_default(),
        job["send_ms"],
    );
    Ok(())
}

/// Step 15: what the operator and the central team see of the node: its
/// `/metrics` through the scrape token, and the console's address.
async fn watch_the_node(
    node: &outpost::node::Node,
    address: std::net::SocketAddr,
) -> anyhow::Result<()> {
    use http_body_util::BodyExt;
    step(
        15,
        "Watch the node: Prometheus scrapes /metrics with its own token; the console is a page",
    );
    let token = api::tokens::load_or_create_metrics_token(node)?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let request = hyper::Request::get(format!("http://{address}/metrics"))
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Empty::new())?;
    let response = client
        .request(request)
        .await
        .context("cannot reach /metrics")?;
    let status = response.status();
    let text =
        String::from_utf8_lossy(&response.into_body().collect().await?.to_bytes()).into_owned();
    println!(
        "   GET /metrics -> {status}: {} series; among them:",
        text.lines().filter(|l| !l.starts_with('#')).count()
    );
    for line in text.lines().filter(|line| {
        [
            "outpost_documents_printed_total",
            "outpost_payments_tokenized_total",
            "outpost_bookings_total{state=\"queued\"}",
            "outpost_plugin_calls_total{plugin=\"outpost/thermal-printer\"}",
            "outpost_outbox_entries{destination",
        ]
        .iter()
        .any(|start| line.starts_with(start))
    }) {
        println!("     {line}");
    }
    println!(
        "   The operator's console: http://{address}/console/ (its password: \
         `outpost console password`); telemetry consent: {}",
        outpost::telemetry::consent(node).name()
    );
    Ok(())
}

/// The body of a GET, for the demo's look at the registry's standard routes.
async fn get_bytes(url: &url::Url) -> anyhow::Result<Vec<u8>> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri: hyper::Uri = url.as_str().parse()?;
    let response = client
        .get(uri)
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    Ok(response.into_body().collect().await?.to_bytes().to_vec())
}
