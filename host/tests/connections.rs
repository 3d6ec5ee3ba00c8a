//! `outpost run` under connection pressure: at its open-file limit, with
//! clients that connect and say nothing, and with bodies that never finish.

mod common;

use common::{command, free_port, http_get};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Connections the test opens and holds: more than the node has files for.
const HELD: usize = 120;
/// The node's open-file limit in this test.
const FILE_LIMIT: u32 = 48;

#[test]
fn at_its_file_limit_the_node_backs_off_quietly_and_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let address = free_port();
    std::fs::write(
        dir.path().join("outpost.toml"),
        format!("[api]\nlisten = \"{address}\"\nread-timeout-ms = 1000\nmax-connections = 4096\n"),
    )
    .expect("config");
    let log_path = dir.path().join("node.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    // The binary under a low open-file limit, as a box with a small
    // `ulimit -n` would run it.
    let outpost = command(dir.path(), &["run"]);
    let mut node = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {FILE_LIMIT} && exec \"$0\" \"$@\""))
        .arg(outpost.get_program())
        .args(outpost.get_args())
        .env_remove("OUTPOST_CONFIG")
        .env_remove("OUTPOST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("outpost run starts");
    common::wait_until_answering(address);

    // Far more idle connections than the node has files: it runs out.
    let held: Vec<TcpStream> = (0..HELD)
        .filter_map(|_| TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok())
        .collect();
    assert!(
        held.len() > FILE_LIMIT as usize,
        "only {} connected",
        held.len()
    );
    std::thread::sleep(Duration::from_secs(3));
    let logged = std::fs::metadata(&log_path).expect("log").len();
    // Before: the accept loop spun and wrote ~150 MB of log in seconds.
    assert!(
        logged < 64 << 10,
        "{logged} bytes of log in 3 s at the file limit"
    );

    // Idle connections are closed after the read timeout, so the node serves
    // again while the clients still hold their ends.
    let recovered = Instant::now();
    loop {
        if let Some(answer) = http_get(address, "/v1/health")
            && answer.starts_with("HTTP/1.1 200")
        {
            break;
        }
        assert!(
            recovered.elapsed() < Duration::from_secs(30),
            "the node never served again at its file limit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(held);

    common::signal(&node, "-TERM");
    assert!(node.wait().expect("exits").success());
    let text = std::fs::read_to_string(&log_path).expect("log");
    assert!(text.contains("out of open files"), "{text}");
}

#[test]
fn a_body_that_never_finishes_is_answered_408_and_the_connection_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let address = free_port();
    std::fs::write(
        dir.path().join("outpost.toml"),
        format!("[api]\nlisten = \"{address}\"\nread-timeout-ms = 500\n"),
    )
    .expect("config");
    let mut node = common::start_node(dir.path(), address, false);
    let token = std::fs::read_to_string(dir.path().join("api-token")).expect("token");

    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "POST /v1/forecasts HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"request\":",
        token.trim()
    )
    .expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-timeout"), "{answer}");

    // A client that connects and never sends a request is let go too.
    let mut silent = TcpStream::connect(address).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut nothing = Vec::new();
    let closed = silent.read_to_end(&mut nothing);
    assert!(
        closed.is_ok(),
        "the node closed the idle connection: {closed:?}"
    );

    common::signal(&node, "-TERM");
    assert!(node.wait().expect("exits").success());
}
