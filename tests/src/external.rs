//! Independent clients and servers nobody here wrote (python-tuf, skopeo,
//! Debian's docker-registry): the tests that use them prove Outpost speaks
//! the standards, not just to itself.
//!
//! `.ci/run` installs each one and sets its `OUTPOST_REQUIRE_*` variable,
//! so in CI a missing tool fails its test; elsewhere the test says it
//! skipped and how to install the tool.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// An external tool a test needs.
pub struct Tool {
    /// What it is, for messages.
    pub name: &'static str,
    /// Set by `.ci/run`: a missing tool is then a failure, not a skip.
    pub required_by: &'static str,
    /// How to install it.
    pub install: &'static str,
}

pub const PYTHON_TUF: Tool = Tool {
    name: "python-tuf",
    required_by: "OUTPOST_REQUIRE_PYTHON_TUF",
    install: "python3 -m pip install tuf (or name a Python that has it in OUTPOST_PYTHON), or run .ci/run",
};

pub const SKOPEO: Tool = Tool {
    name: "skopeo",
    required_by: "OUTPOST_REQUIRE_SKOPEO",
    install: "apt-get install skopeo, or run .ci/run",
};

pub const SYSTEMD_ANALYZE: Tool = Tool {
    name: "systemd-analyze",
    required_by: "OUTPOST_REQUIRE_SYSTEMD_ANALYZE",
    install: "apt-get install systemd, or run .ci/run",
};

impl Tool {
    /// True when `probe` (a command that succeeds only if the tool works)
    /// succeeds. Otherwise panics under CI, or prints a skip line and
    /// returns false.
    pub fn available(&self, probe: &mut Command) -> bool {
        let works = probe
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            return true;
        }
        assert!(
            std::env::var_os(self.required_by).is_none(),
            "{} is missing and {} is set; install it ({})",
            self.name,
            self.required_by,
            self.install
        );
        eprintln!("skipped: {} is not installed ({})", self.name, self.install);
        false
    }
}

const SERVER: &str = "/usr/bin/docker-registry";

/// Debian's docker-registry (the CNCF distribution server) on 127.0.0.1,
/// stopped when dropped.
pub struct DockerRegistry {
    child: Child,
    pub url: url::Url,
    _dir: tempfile::TempDir,
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts one, or `None` (a skip) when it is not installed outside CI.
pub fn start_docker_registry() -> Option<DockerRegistry> {
    if !Path::new(SERVER).exists() {
        assert!(
            std::env::var_os("OUTPOST_REQUIRE_DOCKER_REGISTRY").is_none(),
            "{SERVER} is missing; .ci/run installs Debian's docker-registry package"
        );
        eprintln!(
            "skipped: {SERVER} is not installed (apt-get install docker-registry, or run .ci/run)"
        );
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    let child = Command::new(SERVER)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry");
    let server = DockerRegistry {
        child,
        url: url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url"),
        _dir: dir,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(server);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("docker-registry did not start listening on 127.0.0.1:{port}");
}
