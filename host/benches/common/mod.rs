//! What more than one bench needs: a client for the node's app API.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A node's app API, as an app with its token calls it.
pub struct Target {
    client: HttpClient,
    base: String,
    token: String,
}

impl Target {
    /// A client for `base`; call from inside the runtime that will drive it.
    pub fn new(base: &str, token: &str) -> Target {
        Target {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.to_string(),
            token: token.to_string(),
        }
    }

    /// The status and the body of the answer.
    pub async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: &Bytes,
    ) -> (hyper::StatusCode, Bytes) {
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.token))
            .body(Full::new(body.clone()))
            .expect("request");
        let response = self.client.request(request).await.expect("API reachable");
        let status = response.status();
        let body = response.into_body().collect().await.expect("body");
        (status, body.to_bytes())
    }
}
