//! Test an Outpost plugin crate from `cargo test`, in a real node's sandbox.
//!
//! [`Plugin::build`] packages the crate under test for `wasm32-wasip2`
//! (`outpost vendor package`), starts a throwaway node (`outpost vendor
//! sandbox`) and installs the package there, with its `plugin.toml`'s
//! limits and grants held to a default node's policy. [`Plugin::call`] then
//! calls any exported function through the node's own call path: the
//! deadline, the memory limit, the grants, what a panic or a trap becomes,
//! are the ones a stall's node applies, not a model of them.
//!
//! Arguments and answers are JSON in the shape of the node's API and of
//! `outpost call` (records as objects with snake_case field names, variants
//! as `"case"` or `{"case": payload}`, `list<u8>` as text or `"hex:…"`), so
//! the files in the crate's `examples/` serve the tests, `outpost call`
//! and the API alike.
//!
//! The node is the `outpost` binary itself (from `OUTPOST_BIN`, or `PATH`),
//! so this crate builds in seconds and tests against the node version the
//! vendor targets. Each [`Plugin`] has its own node, gone when it is
//! dropped.

use serde::de::DeserializeOwned;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use serde_json::{self, Value, json};

/// The `outpost vendor sandbox` protocol this test-kit speaks.
const PROTOCOL: u64 = 1;

/// Why a call did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The plugin returned `plugin-error::invalid-input`.
    InvalidInput,
    /// `plugin-error::unavailable`.
    Unavailable,
    /// `plugin-error::denied`.
    Denied,
    /// `plugin-error::internal`.
    Internal,
    /// The plugin panicked.
    Panicked,
    /// The plugin trapped (or exited).
    Trapped,
    /// It ran past its `limits.deadline-ms` and was stopped.
    DeadlineExceeded,
    /// It tried to grow past its `limits.memory-mib` and was stopped.
    MemoryLimit,
    /// It used all its fuel.
    FuelExhausted,
    /// The node did not run it (its share of the node was busy).
    Refused,
    /// The call itself was wrong: no such function, wrong arguments.
    BadCall,
    /// A node refused to install the package.
    InstallRefused,
    /// The crate did not build (or package) for `wasm32-wasip2`.
    Build,
    /// The node refused a `tokenize` call that put the card number
    /// somewhere (a log line, storage, the outbox): the vendor's bug.
    CardData,
    /// Anything else the node stopped the call for (see the message).
    Other,
}

impl Kind {
    fn parse(text: &str) -> Kind {
        match text {
            "invalid-input" => Kind::InvalidInput,
            "unavailable" => Kind::Unavailable,
            "denied" => Kind::Denied,
            "internal" => Kind::Internal,
            "panicked" => Kind::Panicked,
            "trapped" => Kind::Trapped,
            "deadline-exceeded" => Kind::DeadlineExceeded,
            "memory-limit" => Kind::MemoryLimit,
            "fuel-exhausted" => Kind::FuelExhausted,
            "refused" => Kind::Refused,
            "bad-call" | "bad-request" => Kind::BadCall,
            "install-refused" => Kind::InstallRefused,
            "card-data" => Kind::CardData,
            _ => Kind::Other,
        }
    }
}

/// A call that did not answer, or a sandbox that could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: Kind,
    /// The node's own message, as an operator would read it.
    pub message: String,
    /// How long the call ran, when it ran.
    pub elapsed: Option<Duration>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    fn setup(message: String) -> Failure {
        Failure {
            kind: Kind::Other,
            message,
            elapsed: None,
        }
    }
}

/// A call's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The value, in the API's JSON shape.
    pub value: Value,
    /// How long the node took for the call, instantiation included.
    pub elapsed: Duration,
}

impl Answer {
    /// The value as `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.value)
    }

    /// A `list<u8>` answer's bytes (the node gives them as text, or as
    /// `"hex:…"` when they are not printable).
    pub fn bytes(&self) -> Option<Vec<u8>> {
        bytes_of(&self.value)
    }

    /// A `list<u8>` answer as text.
    pub fn text(&self) -> Option<String> {
        self.bytes().and_then(|b| String::from_utf8(b).ok())
    }
}

fn bytes_of(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::String(text) => match text.strip_prefix("hex:") {
            Some(hex) => decode_hex(hex),
            None => Some(text.as_bytes().to_vec()),
        },
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect(),
        _ => None,
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The example input `examples/NAME.json` of the crate under test.
///
/// Panics, naming the file, when it is missing or not JSON: a test with a
/// broken example should fail saying so.
pub fn example(name: &str) -> Value {
    let path = crate_folder().join("examples").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the example {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the example {} is not JSON: {e}", path.display()))
}

fn crate_folder() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The `outpost` command: `OUTPOST_BIN`, else `outpost` on `PATH`.
fn outpost() -> PathBuf {
    std::env::var_os("OUTPOST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("outpost"))
}

/// The crate under test, packaged once per test binary: tests run in
/// parallel, and one build serves them all.
fn this_crate_package(binary: &Path) -> Result<PathBuf, Failure> {
    static PACKAGE: OnceLock<Result<PathBuf, Failure>> = OnceLock::new();
    PACKAGE
        .get_or_init(|| {
            let folder = crate_folder();
            // A target folder of its own: the `cargo test` that runs this
            // holds the crate's usual one.
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| folder.join("target"))
                .join("outpost-testkit");
            // One per process: test runners that start a process per test
            // (nextest) must not empty a package another is installing.
            let out = target.join(format!("package-{}", std::process::id()));
            let output = Command::new(binary)
                .args(["vendor", "package", "--quiet", "--target-dir"])
                .arg(&target)
                .arg("--out")
                .arg(&out)
                .arg(&folder)
                .output()
                .map_err(|e| Failure::setup(no_outpost(e)))?;
            if !output.status.success() {
                return Err(Failure {
                    kind: Kind::Build,
                    message: format!(
                        "`outpost vendor package` failed:\n{}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    ),
                    elapsed: None,
                });
            }
            Ok(out)
        })
        .clone()
}

fn no_outpost(error: std::io::Error) -> String {
    format!(
        "cannot run `{}` ({error}); the test-kit runs plugins with the Outpost CLI: install it \
         (the vendor guide says how) or set OUTPOST_BIN to its path",
        outpost().display()
    )
}

/// How to start a [`Plugin`]: what its operator would provision.
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct Builder {
    outpost: Option<PathBuf>,
    package: Option<PathBuf>,
    config: Vec<(String, String)>,
    keys: Vec<(String, Vec<u8>)>,
    virtual_courier: bool,
}

impl Builder {
    /// Install this package folder instead of the crate under test (an
    /// older release, to test `migrate` with [`Plugin::install_this_crate`]).
    pub fn package(mut self, folder: impl AsRef<Path>) -> Builder {
        self.package = Some(folder.as_ref().to_path_buf());
        self
    }

    /// The `outpost` binary to run, instead of `OUTPOST_BIN` or `PATH`'s.
    pub fn outpost(mut self, binary: impl AsRef<Path>) -> Builder {
        self.outpost = Some(binary.as_ref().to_path_buf());
        self
    }

    /// A plugin-config value, as the operator sets it in `outpost.toml`.
    pub fn config(mut self, key: &str, value: &str) -> Builder {
        self.config.push((key.to_string(), value.to_string()));
        self
    }

    /// A key provisioned for the plugin (32 bytes), as `outpost keys add`.
    pub fn key(mut self, name: &str, material: &[u8]) -> Builder {
        self.keys.push((name.to_string(), material.to_vec()));
        self
    }

    /// Runs the node's virtual courier API on 127.0.0.1 and sets the
    /// plugin's `api-url` to it (`outpost demo`'s courier: quotes,
    /// bookings deduplicated by `Idempotency-Key`, tracking).
    pub fn virtual_courier(mut self) -> Builder {
        self.virtual_courier = true;
        self
    }

    /// Starts the node and installs the package.
    pub fn build(self) -> Result<Plugin, Failure> {
        let binary = self.outpost.unwrap_or_else(outpost);
        let package = match self.package {
            Some(folder) => folder,
            None => this_crate_package(&binary)?,
        };
        let mut command = Command::new(&binary);
        command.args(["vendor", "sandbox"]).arg(&package);
        for (key, value) in &self.config {
            command.arg("--plugin-config").arg(format!("{key}={value}"));
        }
        if self.virtual_courier {
            command.arg("--virtual-courier");
        }
        for (name, material) in &self.keys {
            let hex: String = material.iter().map(|b| format!("{b:02x}")).collect();
            command.arg("--key").arg(format!("{name}={hex}"));
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env(
                "OUTPOST_LOG",
                std::env::var("OUTPOST_LOG").unwrap_or("info".into()),
            )
            .spawn()
            .map_err(|e| Failure::setup(no_outpost(e)))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(Failure::setup("the sandbox has no pipes".into()));
        };
        // Read on threads of their own: an answer is waited for with a
        // deadline, and the node's log (the plugin's lines among it) is
        // kept for `logs()` and for failures instead of filling the
        // terminal of every passing test.
        let (answers, replies) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if answers.send(line).is_err() {
                    break;
                }
            }
        });
        let logs = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                kept.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let mut plugin = Plugin {
            child,
            binary,
            link: Mutex::new(Link {
                stdin: Some(stdin),
                replies,
            }),
            logs,
            id: String::new(),
            version: String::new(),
        };
        let installed = plugin.read_installed().map_err(|mut failure| {
            // The node's last lines, once its log has been read to the end.
            std::thread::sleep(Duration::from_millis(100));
            let logs = plugin.logs();
            let tail = &logs[logs.len().saturating_sub(20)..];
            if !tail.is_empty() {
                failure.message =
                    format!("{}\nthe node said:\n{}", failure.message, tail.join("\n"));
            }
            failure
        })?;
        plugin.id = installed.id;
        plugin.version = installed.version;
        Ok(plugin)
    }
}

/// What the virtual printer received for one print.
#[derive(Debug, Clone, PartialEq)]
pub struct Printed {
    /// The bytes the printer got: what the driver rendered.
    pub bytes: Vec<u8>,
    /// Rendering and sending.
    pub elapsed: Duration,
}

/// A printer's state as the driver read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterStatus {
    pub ready: bool,
    pub conditions: Vec<String>,
    pub detail: String,
}

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub id: String,
    pub version: String,
    /// The version it replaced (its data migrated by `migrate`).
    pub previous: Option<String>,
}

struct Link {
    /// Closed on drop: the sandbox then ends and removes its node.
    stdin: Option<ChildStdin>,
    /// The sandbox's answers, one line each.
    replies: std::sync::mpsc::Receiver<String>,
}

/// A plugin installed in a throwaway node of its own.
pub struct Plugin {
    child: Child,
    /// The `outpost` it runs, which packages the crate too.
    binary: PathBuf,
    /// One lock over both ends, held from a request to its answer, so
    /// threads sharing a `Plugin` never read each other's answers.
    link: Mutex<Link>,
    /// What the node logged, oldest first.
    logs: Arc<Mutex<Vec<String>>>,
    id: String,
    version: String,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.id)
            .field("version", &self.version)
            .finish()
    }
}

impl Plugin {
    /// The crate under test, built and installed with nothing provisioned.
    pub fn build() -> Result<Plugin, Failure> {
        Plugin::builder().build()
    }

    pub fn builder() -> Builder {
        Builder::default()
    }

    /// What the node has logged so far, oldest first: the plugin's own
    /// lines (`outpost_sdk::info!`, target `plugin`) among the node's.
    /// `OUTPOST_LOG` sets the filter (default `info`).
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The plugin id, `vendor/name`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The version installed now.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Calls `function` (`render-label` or `printer.render-label`) with
    /// `args`: an object keyed by parameter name (an `examples/` file), an
    /// array of the arguments in order, or the one argument.
    pub fn call(&self, function: &str, args: Value) -> Result<Answer, Failure> {
        let reply = self.request(&json!({"call": function, "args": args}))?;
        let elapsed = reply["micros"].as_u64().map(Duration::from_micros);
        match (reply.get("ok"), elapsed) {
            (Some(value), Some(elapsed)) => Ok(Answer {
                value: value.clone(),
                elapsed,
            }),
            (Some(_), None) => Err(Failure::setup(format!(
                "the sandbox node answered without the call's time: {reply}"
            ))),
            (None, _) => Err(failure_of(&reply, elapsed)),
        }
    }

    /// Like [`call`](Plugin::call), deserializing the answer.
    pub fn call_as<T: DeserializeOwned>(&self, function: &str, args: Value) -> Result<T, Failure> {
        let answer = self.call(function, args)?;
        answer.parse().map_err(|e| Failure {
            kind: Kind::Other,
            message: format!("the answer of {function} is not the type asked for: {e}"),
            elapsed: Some(answer.elapsed),
        })
    }

    /// Prints `document`: the driver renders it and the node sends the
    /// bytes over its printer transport to a virtual printer (a printer
    /// driver's sandbox has one). `document` is `{"label": {...}}` or
    /// `{"receipt": {...}}`, the `render-label`/`render-receipt` examples.
    pub fn print(&self, document: Value) -> Result<Printed, Failure> {
        let reply = self.request(&json!({ "print": document }))?;
        let elapsed = reply["micros"].as_u64().map(Duration::from_micros);
        match reply.get("ok") {
            Some(ok) => Ok(Printed {
                bytes: bytes_of(&ok["printed"]).unwrap_or_default(),
                elapsed: elapsed.unwrap_or_default(),
            }),
            None => Err(failure_of(&reply, elapsed)),
        }
    }

    /// Asks the virtual printer how it is, through the driver's
    /// `status-request` and `parse-status` (`kind`: "label" or "receipt").
    /// It answers ZPL `~HS` and ESC/POS `DLE EOT n` probes as a ready
    /// printer; other probes get no answer.
    pub fn printer_status(&self, kind: &str) -> Result<PrinterStatus, Failure> {
        let reply = self.request(&json!({ "printer-status": kind }))?;
        match reply.get("ok") {
            Some(ok) => Ok(PrinterStatus {
                ready: ok["ready"].as_bool().unwrap_or(false),
                conditions: ok["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect(),
                detail: ok["detail"].as_str().unwrap_or_default().to_string(),
            }),
            None => Err(failure_of(&reply, None)),
        }
    }

    /// What the virtual courier booked ([`Builder::virtual_courier`]):
    /// each shipment's idempotency key, id, request body and tracking
    /// numbers, as JSON.
    pub fn courier_shipments(&self) -> Result<Vec<Value>, Failure> {
        let reply = self.request(&json!({ "courier-shipments": null }))?;
        match reply.get("ok") {
            Some(Value::Array(shipments)) => Ok(shipments.clone()),
            _ => Err(failure_of(&reply, None)),
        }
    }

    /// Updates to the package in `folder` through a node's update path:
    /// the new version's `migrate` runs with the old version's data.
    pub fn install(&mut self, folder: impl AsRef<Path>) -> Result<Installed, Failure> {
        let folder = folder.as_ref();
        let absolute = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
        let reply = self.request(&json!({"install": absolute}))?;
        let installed = installed_of(&reply)?;
        self.version = installed.version.clone();
        Ok(installed)
    }

    /// Updates to the crate under test (after a [`Builder::package`] of an
    /// older release).
    pub fn install_this_crate(&mut self) -> Result<Installed, Failure> {
        let package = this_crate_package(&self.binary)?;
        self.install(package)
    }

    fn read_installed(&mut self) -> Result<Installed, Failure> {
        let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        let reply = read_reply(&mut link)?;
        if reply["protocol"].as_u64() != Some(PROTOCOL) {
            return Err(Failure::setup(format!(
                "`{}` speaks sandbox protocol {} and this test-kit {PROTOCOL}: use the outpost \
                 and outpost-testkit of one release",
                self.binary.display(),
                reply["protocol"]
            )));
        }
        installed_of(&reply)
    }

    fn request(&self, request: &Value) -> Result<Value, Failure> {
        let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        let stdin = link
            .stdin
            .as_mut()
            .ok_or_else(|| Failure::setup("the sandbox node was closed".into()))?;
        writeln!(stdin, "{request}")
            .and_then(|()| stdin.flush())
            .map_err(|e| Failure::setup(format!("the sandbox node has gone: {e}")))?;
        read_reply(&mut link)
    }
}

/// The longest the test-kit waits for one answer: an install compiles the
/// component, and a call has at most a node's largest deadline.
const ANSWER_WITHIN: Duration = Duration::from_secs(120);

fn read_reply(link: &mut Link) -> Result<Value, Failure> {
    let line = match link.replies.recv_timeout(ANSWER_WITHIN) {
        Ok(line) => line,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            return Err(Failure::setup(format!(
                "the sandbox node did not answer within {} s",
                ANSWER_WITHIN.as_secs()
            )));
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            return Err(Failure::setup("the sandbox node stopped".into()));
        }
    };
    serde_json::from_str(&line)
        .map_err(|e| Failure::setup(format!("the sandbox node answered {line:?}: {e}")))
}

fn failure_of(reply: &Value, elapsed: Option<Duration>) -> Failure {
    let error = &reply["error"];
    Failure {
        kind: Kind::parse(error["kind"].as_str().unwrap_or_default()),
        message: error["message"].as_str().unwrap_or_default().to_string(),
        elapsed,
    }
}

fn installed_of(reply: &Value) -> Result<Installed, Failure> {
    let Some(ok) = reply.get("ok") else {
        return Err(failure_of(reply, None));
    };
    let text = |key: &str| ok[key].as_str().map(str::to_string);
    Ok(Installed {
        id: text("id").unwrap_or_default(),
        version: text("version").unwrap_or_default(),
        previous: text("previous"),
    })
}

impl Drop for Plugin {
    fn drop(&mut self) {
        // Closing its input ends the sandbox, which removes its node; one
        // that does not end (a call still running) is killed.
        drop(
            self.link
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .stdin
                .take(),
        );
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
