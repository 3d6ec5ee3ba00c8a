//! A node serving its API on a free port of 127.0.0.1, optionally with its
//! outbox delivery worker, and the log of a test process to search.

use crate::ApiClient;
use outpost::api;
use outpost::node::Node;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The API (and delivery) running until [`Serving::stop`].
pub struct Serving {
    pub client: ApiClient,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Serving {
    /// Serves `node`'s API; with `deliver`, runs its outbox worker too.
    pub async fn start(node: Arc<Node>, deliver: bool) -> Serving {
        let token = api::load_or_create_token(&node).expect("token");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = watch::channel(false);
        let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        };
        let mut tasks = vec![tokio::spawn({
            let (node, token) = (node.clone(), token.clone());
            let stopped = until_stopped(stopped.clone());
            async move {
                let _ = api::serve(node, listener, token, stopped).await;
            }
        })];
        if deliver {
            tasks.push(tokio::spawn(outpost::outbox::delivery::run(
                node.outbox().clone(),
                node.config().outbox.clone(),
                until_stopped(stopped),
            )));
        }
        Serving {
            client: ApiClient::new(base, token),
            stop,
            tasks,
        }
    }

    /// Stops serving and waits (up to 15 s a task) for requests to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }
}

/// Everything the process logs from the first call on, to look in.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    pub fn bytes(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|logged| logged.clone())
            .unwrap_or_default()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

/// Starts capturing this process's log at `trace` (the first call does; the
/// rest share the buffer).
pub fn capture_logs() -> LogBuffer {
    static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("trace,wasmtime=info,cranelift=info,hyper=info,h2=info")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init();
        buffer
    })
    .clone()
}
