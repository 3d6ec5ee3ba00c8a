//! `outpost demo`: a node on its embedded defaults, shown working.
//!
//! Everything is the real thing: the reference driver is written out as a
//! package folder and installed from there, the printers are TCP listeners on
//! 127.0.0.1 that behave like port-9100 printers, and every step goes through
//! the node's local HTTP API with its bearer token.

use crate::commands::{open, shutdown_signal};
use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use outpost::api;
use outpost::printing::preview;
use outpost::printing::virtual_printer::VirtualPrinter;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MARKER: &str = ".outpost-demo";
const LABEL: &str = include_str!("../../../../docs/examples/label.json");
const RECEIPT: &str = include_str!("../../../../docs/examples/receipt.json");

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

/// Writes the embedded reference driver out as a package folder.
fn write_package(dir: &Path) -> anyhow::Result<PathBuf> {
    #[cfg(feature = "embedded-plugins")]
    {
        let package = dir.join("packages").join("thermal-printer");
        for (relative, bytes) in outpost_plugin_artifacts::THERMAL_PRINTER_FILES {
            let path = package.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(package)
    }
    #[cfg(not(feature = "embedded-plugins"))]
    {
        let _ = dir;
        bail!("this outpost was built without its reference plugins (feature `embedded-plugins`)")
    }
}

fn demo_config(label_printer: &VirtualPrinter, receipt_printer: &VirtualPrinter) -> String {
    format!(
        "# Written by `outpost demo`: the embedded defaults, with both printers pointed at\n\
         # virtual printers on 127.0.0.1, a free port for the API, and the receipt logo on.\n\
         [api]\nlisten = \"127.0.0.1:0\"\n\n\
         [printers.labels]\ntransport = \"tcp\"\naddress = \"{}\"\n\n\
         [printers.receipts]\ntransport = \"tcp\"\naddress = \"{}\"\n\n\
         [plugin-config.\"outpost/thermal-printer\"]\nlogo = \"true\"\n",
        label_printer.address(),
        receipt_printer.address()
    )
}

struct ApiClient {
    base: String,
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl ApiClient {
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default().to_string())))?;
        let response = self
            .client
            .request(request)
            .await
            .with_context(|| format!("cannot reach the local API for {path}"))?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, json))
    }
}

fn step(number: u32, text: &str) {
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
    std::fs::write(
        dir.join(outpost::config::CONFIG_FILE_NAME),
        demo_config(&label_printer, &receipt_printer),
    )?;
    println!("Data directory:   {}", dir.display());
    println!(
        "Virtual printers: labels (ZPL II) on {}, receipts (ESC/POS) on {}",
        label_printer.address(),
        receipt_printer.address()
    );

    let package = write_package(dir)?;
    step(
        1,
        &format!(
            "Install the reference printer driver from {}",
            package.display()
        ),
    );
    let node = open(dir, None)?;
    let started = Instant::now();
    let report = node
        .install(&package)
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

    let node = Arc::new(node);
    let token = api::load_or_create_token(&node)?;
    let listener = tokio::net::TcpListener::bind(node.config().api.listen).await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(node.clone(), listener, token.clone(), async {
        let _ = stopped.await;
    }));
    let client = ApiClient {
        base: format!("http://{address}"),
        token,
        client: Client::builder(TokioExecutor::new()).build_http(),
    };

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

    step(7, "What the node knows: GET /v1/plugins");
    let (_, body) = client.request(Method::GET, "/v1/plugins", None).await?;
    for plugin in body["plugins"].as_array().into_iter().flatten() {
        println!(
            "   {} {}: {}, {} calls: {} refused their input, {} stopped by the sandbox",
            plugin["id"].as_str().unwrap_or_default(),
            plugin["version"].as_str().unwrap_or_default(),
            plugin["status"].as_str().unwrap_or_default(),
            plugin["calls"],
            plugin["refused"],
            plugin["failed"],
        );
    }

    if serve {
        println!(
            "\nThe node is serving on http://{address} until Ctrl-C. Try:\n  \
             curl -H \"Authorization: Bearer $(cat {})\" http://{address}/v1/plugins",
            dir.join("api-token").display()
        );
        shutdown_signal().await;
    }
    let _ = stop.send(());
    server.await.context("the API server task failed")??;
    println!("\nDone. The node's state stays in {}; try:", dir.display());
    let shown = dir.display();
    println!("   outpost --data-dir {shown} plugin list");
    println!("   outpost --data-dir {shown} plugin info outpost/thermal-printer");
    println!("   outpost --data-dir {shown} call outpost/thermal-printer lifecycle.health");
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
