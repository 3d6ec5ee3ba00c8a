//! Debian's Prometheus on 127.0.0.1, scraping a node or receiving its
//! remote writes, and `promtool` to lint what the node serves.

use crate::external::Tool;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const PROMETHEUS: Tool = Tool {
    name: "prometheus",
    required_by: "OUTPOST_REQUIRE_PROMETHEUS",
    install: "apt-get install prometheus, or run .ci/run",
};

const SERVER: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

/// True when Prometheus and promtool are here (a failure under CI).
pub fn available() -> bool {
    PROMETHEUS.available(Command::new(PROMTOOL).arg("--version"))
        && PROMETHEUS.available(Command::new(SERVER).arg("--version"))
}

/// A Prometheus server, stopped when dropped.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    probe.local_addr().expect("addr").port()
}

impl Prometheus {
    /// Starts Prometheus on `port` with `config` (YAML) and the remote-write
    /// receiver on, storing in a fresh directory; waits until it is ready.
    pub fn start(port: u16, config: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("config");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new(SERVER)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let server = Prometheus { child, port, dir };
        for _ in 0..200 {
            if ready(port) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "prometheus did not become ready on 127.0.0.1:{port}; its log:\n{}",
            server.log()
        );
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

/// `promtool check metrics` on `text`: its verdict and what it said.
pub fn promtool_check(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

/// A scrape configuration for one target with a bearer token file.
pub fn scrape_config(target: &str, token_file: &Path) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: outpost\n    \
         static_configs:\n      - targets: ['{target}']\n    authorization:\n      credentials_file: {}\n",
        token_file.display()
    )
}

/// A configuration with nothing to scrape, taking samples up to a week old
/// (a node back from offline sends old ones).
pub fn receiver_config() -> String {
    "global:\n  scrape_interval: 1m\nstorage:\n  tsdb:\n    out_of_order_time_window: 1w\n"
        .to_string()
}
