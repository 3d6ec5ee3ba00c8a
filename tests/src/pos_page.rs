//! A point-of-sale web page served from its own origin on 127.0.0.1, as a
//! till's browser would load it from the internet: it calls a node's API
//! across origins to print a label.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const PAGE: &str = include_str!("pos_page.html");
const LABEL: &str = include_str!("../../docs/examples/label.json");

/// The page, served until dropped.
pub struct PosPage {
    /// Where the page is: its origin is `http://127.0.0.1:<port>`.
    pub origin: String,
    accept: tokio::task::JoinHandle<()>,
}

impl PosPage {
    pub async fn start() -> PosPage {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("address"));
        let page = Bytes::from(PAGE.replace("LABEL_JSON", LABEL));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let page = page.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_: Request<hyper::body::Incoming>| {
                        let mut response = Response::new(Full::new(page.clone()));
                        response.headers_mut().insert(
                            CONTENT_TYPE,
                            HeaderValue::from_static("text/html; charset=utf-8"),
                        );
                        async move { Ok::<_, std::convert::Infallible>(response) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        PosPage { origin, accept }
    }

    /// The page's address, with the node and token in its fragment (never
    /// sent to the page's server), as the till's settings would hold them.
    pub fn url(&self, node: &str, token: &str) -> String {
        format!("{}/#node={node}&token={token}", self.origin)
    }
}

impl Drop for PosPage {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
