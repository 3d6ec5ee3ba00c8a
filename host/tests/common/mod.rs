//! Running the `outpost` binary as an operator would, for the tests in this
//! folder. Each test binary uses a different part of this.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn command(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_outpost"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("OUTPOST_CONFIG")
        .env_remove("OUTPOST_LOG");
    command
}

pub fn outpost(data_dir: &Path, args: &[&str]) -> Output {
    command(data_dir, args)
        .stdin(Stdio::null())
        .output()
        .expect("outpost runs")
}

/// Runs with `input` on standard input.
pub fn outpost_with_input(data_dir: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = command(data_dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("outpost runs");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("outpost finishes")
}

pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub fn expect_success(args: &[&str], output: &Output) -> String {
    let (stdout, stderr) = text(output);
    assert!(
        output.status.success(),
        "outpost {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

pub fn expect_failure(args: &[&str], output: &Output) -> String {
    let (stdout, stderr) = text(output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "outpost {args:?}:\n{stdout}\n{stderr}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

pub fn succeeds(data_dir: &Path, args: &[&str]) -> String {
    expect_success(args, &outpost(data_dir, args))
}

pub fn fails(data_dir: &Path, args: &[&str]) -> String {
    expect_failure(args, &outpost(data_dir, args))
}

pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

pub fn http_get(address: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Starts `outpost run` (listening where the data directory's config says,
/// or on `listen`) and waits until it answers on `address`.
pub fn start_node(data_dir: &Path, address: SocketAddr, listen: bool) -> Child {
    let listen_arg = address.to_string();
    let mut args = vec!["run"];
    if listen {
        args.extend(["--listen", &listen_arg]);
    }
    let node = command(data_dir, &args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("outpost run starts");
    wait_until_answering(address);
    node
}

/// Waits (up to 30 s) until a node answers `/v1/health` on `address`.
pub fn wait_until_answering(address: SocketAddr) {
    let started = Instant::now();
    while http_get(address, "/v1/health").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the node never answered on {address}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn signal(node: &Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &node.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

/// A fleet's own certificate authority and a server certificate it signed
/// for `localhost` and `127.0.0.1`, as the PEM files an operator is given.
pub struct FleetCa {
    pub ca: std::path::PathBuf,
    pub certificate: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl FleetCa {
    pub fn new(dir: &Path) -> FleetCa {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        std::fs::create_dir_all(dir).expect("mkdir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        let key = KeyPair::generate().expect("key");
        let server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("certificate");
        let files = FleetCa {
            ca: dir.join("ca.pem"),
            certificate: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        std::fs::write(&files.ca, ca.pem()).expect("write");
        std::fs::write(&files.certificate, server.pem()).expect("write");
        std::fs::write(&files.key, key.serialize_pem()).expect("write");
        files
    }
}
