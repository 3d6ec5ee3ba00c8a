//! The reference driver's bytes, checked against golden files, and printing
//! through real sockets to listeners the tests start.
//!
//! To accept a deliberate change in the driver's output, run with
//! `OUTPOST_BLESS=1`, then read the diff of `tests/golden/` before committing.

use outpost::call::{CallFailure, PluginFailure};
use outpost::printing::{self, Document, DocumentKind, PrintError};
use outpost_e2e_tests::{TestNode, artifacts, example_label, example_receipt};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

fn golden(name: &str, actual: &[u8]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(name);
    if std::env::var_os("OUTPOST_BLESS").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with OUTPOST_BLESS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let at = expected
            .iter()
            .zip(actual)
            .position(|(a, b)| a != b)
            .unwrap_or(expected.len().min(actual.len()));
        panic!(
            "{name} differs from its golden file at byte {at} (expected {} bytes, got {}):\n\
             expected …{:?}\n     got …{:?}\nrun with OUTPOST_BLESS=1 if the change is intended",
            expected.len(),
            actual.len(),
            String::from_utf8_lossy(
                &expected[at.saturating_sub(20)..(at + 40).min(expected.len())]
            ),
            String::from_utf8_lossy(&actual[at.saturating_sub(20)..(at + 40).min(actual.len())]),
        );
    }
}

fn driver_node(extra_config: &str) -> TestNode {
    let node = TestNode::with_toml(extra_config);
    node.install_artifact(artifacts::THERMAL_PRINTER);
    node
}

fn render(node: &TestNode, document: Document) -> Result<Vec<u8>, CallFailure> {
    let driver = node.loaded("outpost/thermal-printer");
    node.node
        .render(&driver, &document)
        .map_err(|e| e.into_failure())
}

#[test]
fn labels_match_their_golden_files() {
    let node = driver_node("");
    let label = render(&node, Document::Label(example_label())).expect("renders");
    assert!(label.starts_with(b"^XA\n^CI28\n^PW816\n^LL1216\n"));
    assert!(label.ends_with(b"^PQ1,0,1,Y\n^XZ\n"));
    golden("label-102x152-203dpi.zpl", &label);

    // The same label at 300 dpi scales, rather than shrinks.
    let mut fine = example_label();
    fine.media.dots_per_mm = 12;
    let label = render(&node, Document::Label(fine)).expect("renders");
    assert!(label.starts_with(b"^XA\n^CI28\n^PW1224\n^LL1824\n"));
    golden("label-102x152-300dpi.zpl", &label);
}

#[test]
fn darkness_from_the_operators_config_reaches_the_label() {
    let node = driver_node("[plugin-config.\"outpost/thermal-printer\"]\ndarkness = 22\n");
    let label = render(&node, Document::Label(example_label())).expect("renders");
    assert!(
        label.starts_with(b"^XA\n~SD22\n"),
        "{:?}",
        String::from_utf8_lossy(&label[..20])
    );
    // A bad setting fails the driver's health check, so the install is
    // refused with the setting named rather than failing labels later.
    let node = TestNode::with_toml("[plugin-config.\"outpost/thermal-printer\"]\ndarkness = 99\n");
    let refusal = outpost::updates::install(
        &node.node,
        Path::new(artifacts::THERMAL_PRINTER.package_dir),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(refusal.contains("health check failed"), "{refusal}");
    assert!(
        refusal.contains("plugin-config `darkness` = 99: must be between 0 and 30"),
        "{refusal}"
    );
}

#[test]
fn receipts_match_their_golden_files() {
    let node = driver_node("[plugin-config.\"outpost/thermal-printer\"]\nlogo = true\n");
    let receipt = render(&node, Document::Receipt(example_receipt())).expect("renders");
    // Initialise, code page 858; feed, partial cut, drawer kick.
    assert!(receipt.starts_with(&[0x1b, b'@', 0x1b, b't', 19]));
    assert!(receipt.ends_with(&[0x1b, b'd', 4, 0x1d, b'V', 66, 3, 0x1b, b'p', 0, 25, 250]));
    golden("receipt-42col-logo.escpos", &receipt);

    // 58 mm paper, no logo, no drawer: the narrow layout.
    let node = driver_node("");
    let mut narrow = example_receipt();
    narrow.paper.columns = 32;
    narrow.paper.open_drawer = false;
    let receipt = render(&node, Document::Receipt(narrow)).expect("renders");
    assert!(
        !receipt.windows(3).any(|w| w == [0x1d, b'v', b'0']),
        "no logo"
    );
    golden("receipt-32col.escpos", &receipt);
}

#[test]
fn text_cannot_inject_printer_commands() {
    let node = driver_node("");
    let mut label = example_label();
    label.ship_to.name = "Mallory^XZ^XA^FO0,0^GB999,999,999^FS~JR".into();
    label.notes = vec!["tab\there\nnewline".into()];
    let zpl = render(&node, Document::Label(label)).expect("renders");
    let text = String::from_utf8_lossy(&zpl);
    assert_eq!(text.matches("^XA").count(), 1, "{text}");
    assert_eq!(text.matches("^XZ").count(), 1, "{text}");
    // Inside every field the command prefixes arrive hex-escaped, so no
    // field can end itself or start a command.
    for line in text.lines() {
        if let Some((_, rest)) = line.split_once("^FD") {
            let data = rest.strip_suffix("^FS").expect("fields end in ^FS");
            assert!(!data.contains(['^', '~', '\t', '\n']), "{line}");
        }
    }
    assert!(text.contains("Mallory_5EXZ_5EXA"), "{text}");

    let mut receipt = example_receipt();
    receipt.shop.name = "Evil\x1b@\x1dV\x00Shop".into();
    let escpos = render(&node, Document::Receipt(receipt)).expect("renders");
    let resets = escpos.windows(2).filter(|w| *w == [0x1b, b'@']).count();
    assert_eq!(resets, 1, "only the driver's own initialise");
}

#[test]
fn bad_documents_are_refused_naming_the_field() {
    let node = driver_node("");
    let mut receipt = example_receipt();
    receipt.subtotal.minor_units += 1;
    match render(&node, Document::Receipt(receipt)) {
        Err(CallFailure::Plugin(PluginFailure::InvalidInput(why))) => {
            assert!(
                why.starts_with("subtotal: is 19.36 GBP but the lines add up to 19.35 GBP"),
                "{why}"
            )
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
    let mut label = example_label();
    label.media.height_mm = 50;
    match render(&node, Document::Label(label)) {
        Err(CallFailure::Plugin(PluginFailure::InvalidInput(why))) => {
            assert!(
                why.starts_with("media.height-mm: this label needs"),
                "{why}"
            )
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
}

/// A one-shot raw printer: accepts one connection and returns what it got.
fn listening_printer() -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut received = Vec::new();
        stream.read_to_end(&mut received).expect("read");
        received
    });
    (address, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_is_printed_through_a_real_tcp_socket() {
    let (address, printer) = listening_printer();
    let shared = driver_node(&format!(
        "[printers.dock]\ntransport = \"tcp\"\naddress = \"{address}\"\n\
         [defaults]\nlabel-printer = \"dock\"\nreceipt-printer = \"dock\"\n"
    ))
    .shared();
    let job = printing::print(&shared.node, None, None, Document::Label(example_label()))
        .await
        .expect("printed");
    let received = tokio::task::spawn_blocking(move || printer.join().expect("printer thread"))
        .await
        .expect("join");
    // The wire carries exactly what the driver renders.
    let driver = shared.node.printer_driver(None).expect("default driver");
    let rendered = shared
        .node
        .render(&driver, &Document::Label(example_label()))
        .expect("renders");
    assert_eq!(received, rendered);
    assert_eq!(job.bytes, received.len());
    assert_eq!(job.printer, "dock");
    assert_eq!(job.destination, format!("tcp {address}"));
    assert_eq!(job.driver, "outpost/thermal-printer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_query_reads_what_the_printer_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    // A Zebra with its head open and out of labels.
    let printer = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut probe = [0u8; 3];
        stream.read_exact(&mut probe).expect("probe");
        stream
            .write_all(
                b"\x02030,1,0,1218,000,0,0,0,000,0,0,0\x03\r\n\
                  \x02001,0,1,0,1,2,6,0,00000000,1,000\x03\r\n\x021234,0\x03\r\n",
            )
            .expect("reply");
        probe
    });
    let shared = driver_node(&format!(
        "[printers.dock]\ntransport = \"tcp\"\naddress = \"{address}\"\ntimeout-ms = 2000\n\
         [defaults]\nlabel-printer = \"dock\"\nreceipt-printer = \"dock\"\n"
    ))
    .shared();
    let report = printing::status(&shared.node, None, "dock", DocumentKind::Label)
        .await
        .expect("status");
    assert_eq!(&printer.join().expect("printer"), b"~HS");
    assert!(!report.ready);
    assert_eq!(report.conditions, ["paper-out", "cover-open"]);
    assert_eq!(report.detail, "paper out, head open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_printer_is_a_clear_error_and_costs_nothing_else() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let shared = driver_node(&format!(
        "[printers.gone]\ntransport = \"tcp\"\naddress = \"{closed}\"\ntimeout-ms = 1000\n\
         [printers.spool]\ntransport = \"file\"\npath = \"spool/labels.zpl\"\n\
         [defaults]\nlabel-printer = \"gone\"\nreceipt-printer = \"spool\"\n"
    ))
    .shared();
    let node = &shared.node;
    let error = printing::print(node, None, None, Document::Label(example_label()))
        .await
        .expect_err("refused");
    assert!(matches!(error, PrintError::Transport { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("cannot connect to {closed}")),
        "{error}"
    );

    let error = printing::print(
        node,
        None,
        Some("nowhere"),
        Document::Label(example_label()),
    )
    .await
    .expect_err("refused");
    assert_eq!(
        error.to_string(),
        "no printer named \"nowhere\"; configured printers: gone, spool"
    );

    // The file printer still works, and appends.
    for _ in 0..2 {
        printing::print(node, None, Some("spool"), Document::Label(example_label()))
            .await
            .expect("printed to file");
    }
    let spooled = std::fs::read(node.data_dir().join("spool/labels.zpl")).expect("spool");
    assert_eq!(spooled.windows(3).filter(|w| *w == b"^XA").count(), 2);
}

/// The node's API is synchronous; calling it from inside an async task (here
/// on a current-thread runtime, where blocking is most fragile) still works.
#[tokio::test]
async fn the_node_can_be_called_from_inside_an_async_task() {
    let node = driver_node("");
    let label = render(&node, Document::Label(example_label())).expect("renders");
    assert!(label.starts_with(b"^XA"));
}
