//! The local HTTP API, over real HTTP on 127.0.0.1.

use hyper::{Method, StatusCode};
use outpost::api;
use outpost_e2e_tests::{ApiClient, LABEL_JSON, RECEIPT_JSON, SharedNode, TestNode, artifacts};
use serde_json::{Value, json};
use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A node with the driver, the hostile plugin and a forecaster installed,
/// labels going to a TCP printer the test reads, receipts to a file, and the
/// API serving on a free port.
struct Served {
    client: ApiClient,
    shared: SharedNode,
    label_printer: TcpListener,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Served {
    async fn start() -> Served {
        let label_printer = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = label_printer.local_addr().expect("address");
        let node = TestNode::with_toml(&format!(
            "[printers.labels]\ntransport = \"tcp\"\naddress = \"{address}\"\n\
             [printers.receipts]\ntransport = \"file\"\npath = \"printed/receipts.escpos\"\n"
        ));
        node.install_artifact(artifacts::THERMAL_PRINTER);
        node.install_artifact(artifacts::TEST_HOSTILE);
        node.install_artifact(artifacts::TEST_FORECASTER);
        let shared = node.shared();
        let token = api::load_or_create_token(&shared.node).expect("token");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(api::serve(
            shared.node.clone(),
            listener,
            token.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        Served {
            client: ApiClient::new(base, token),
            shared,
            label_printer,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// What the label printer receives from the next job.
    fn next_label(&self) -> Vec<u8> {
        let (mut stream, _) = self.label_printer.accept().expect("a print job arrives");
        let mut received = Vec::new();
        stream.read_to_end(&mut received).expect("read");
        received
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

/// Sends raw HTTP and returns the raw response, headers included.
async fn raw_request(base: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_health_wants_the_token() {
    let served = Served::start().await;
    let client = &served.client;
    let (status, body) = client.send(Method::GET, "/v1/health", "", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["plugins"]["active"], 3);

    let (status, body) = client.send(Method::GET, "/v1/plugins", "", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("api-token")
    );
    let (status, _) = client
        .send(Method::POST, "/v1/print/label", LABEL_JSON, Some("guess"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_are_listed_with_their_status() {
    let served = Served::start().await;
    let (status, body) = served.client.get("/v1/plugins").await;
    assert_eq!(status, StatusCode::OK);
    let plugins = body["plugins"].as_array().expect("a list");
    let ids: Vec<&str> = plugins.iter().filter_map(|p| p["id"].as_str()).collect();
    assert_eq!(
        ids,
        ["outpost/thermal-printer", "test/forecaster", "test/hostile"]
    );
    assert_eq!(plugins[0]["default"], true);
    assert_eq!(plugins[0]["limits"]["deadline_ms"], 250);

    let (status, body) = served
        .client
        .get("/v1/plugins/outpost/thermal-printer")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["health"]["status"], "ok");
    let (status, body) = served.client.get("/v1/plugins/nobody/here").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not-found")
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_goes_from_json_to_the_printer() {
    let served = Served::start().await;
    let (status, body) = served.client.post("/v1/print/label", LABEL_JSON).await;
    let received = served.next_label();
    assert_eq!(status, StatusCode::OK, "{body}");
    let job = &body["job"];
    assert_eq!(job["driver"], "outpost/thermal-printer");
    assert_eq!(job["printer"], "labels");
    assert_eq!(job["bytes"], received.len());
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("^XA") && text.contains("^FDPriya Natarajan^FS"),
        "{text}"
    );

    let (status, body) = served.client.post("/v1/print/receipt", RECEIPT_JSON).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let file = served
        .shared
        .node
        .data_dir()
        .join("printed/receipts.escpos");
    assert_eq!(
        std::fs::read(file).expect("receipt file").len(),
        body["job"]["bytes"]
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_say_what_is_wrong() {
    let served = Served::start().await;
    let client = &served.client;
    let cases: Vec<(String, StatusCode, &str, &str)> = vec![
        (
            "{\"label\": ".into(),
            StatusCode::BAD_REQUEST,
            "invalid-json",
            "not valid JSON",
        ),
        (
            LABEL_JSON.replace("\"service\": \"DPD Next Day\",", ""),
            StatusCode::BAD_REQUEST,
            "invalid-field",
            "missing field `service`",
        ),
        (
            LABEL_JSON.replace("\"weight_grams\": 2350", "\"weight_grams\": \"heavy\""),
            StatusCode::BAD_REQUEST,
            "invalid-field",
            "label.weight_grams: invalid type",
        ),
        (
            LABEL_JSON.replace("\"code128\"", "\"ean13\""),
            StatusCode::BAD_REQUEST,
            "invalid-field",
            "label.barcode.symbology: unknown variant `ean13`",
        ),
        (
            LABEL_JSON.replace(
                "\"postal_code\": \"CF10 4PA\"",
                "\"postcode\": \"CF10 4PA\"",
            ),
            StatusCode::BAD_REQUEST,
            "invalid-field",
            "label.ship_to.postcode: unknown field `postcode`, expected one of",
        ),
        (
            LABEL_JSON.replace(
                "\"country\": \"GB\",\n      \"phone\"",
                "\"country\": \"Wales\",\n      \"phone\"",
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-input",
            "ship-to.country: \"Wales\" is not an ISO 3166-1 alpha-2 code",
        ),
    ];
    for (body, expected_status, expected_code, expected_text) in cases {
        let (status, response) = client.post("/v1/print/label", &body).await;
        let message = response["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(status, expected_status, "{message}");
        assert_eq!(error_code(&response), expected_code, "{message}");
        assert!(
            message.contains(expected_text),
            "{message:?} lacks {expected_text:?}"
        );
    }
    let (_, response) = client
        .post(
            "/v1/print/label",
            &LABEL_JSON.replace("\"service\": \"DPD Next Day\",", ""),
        )
        .await;
    assert_eq!(response["error"]["field"], "label");

    let (status, response) = client
        .send(
            Method::POST,
            "/v1/print/label",
            LABEL_JSON,
            Some(&client.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{response}");
    served.next_label();

    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(300_000));
    let (status, response) = client.post("/v1/print/label", &huge).await;
    assert_eq!(
        (status, error_code(&response)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body-too-large")
    );
    let (status, _) = client.get("/v1/print/label").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let raw = raw_request(
        &client.base,
        "DELETE /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 405"), "{raw}");
    assert!(raw.to_lowercase().contains("\r\nallow: get\r\n"), "{raw}");
    let (status, _) = client.get("/v2/anything").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let with_driver = |driver: &str| {
        let mut request: Value = serde_json::from_str(LABEL_JSON).expect("json");
        request["driver"] = json!(driver);
        request.to_string()
    };
    let (status, response) = client
        .post("/v1/print/label", &with_driver("acme/missing"))
        .await;
    assert_eq!(
        (status, error_code(&response)),
        (StatusCode::NOT_FOUND, "unknown-driver")
    );
    let (status, response) = client
        .post("/v1/print/label", &with_driver("test/forecaster"))
        .await;
    assert_eq!(
        (status, error_code(&response)),
        (StatusCode::BAD_REQUEST, "not-a-printer-driver")
    );
    let (status, response) = client.get("/v1/printers/labels/status?kind=scale").await;
    assert_eq!(
        (status, error_code(&response)),
        (StatusCode::BAD_REQUEST, "invalid-query")
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_plugin_times_out_while_the_node_keeps_serving() {
    let served = Served::start().await;
    let mut request: Value = serde_json::from_str(LABEL_JSON).expect("json");
    request["driver"] = json!("test/hostile");
    request["label"]["reference"] = json!("spin");
    let spin = request.to_string();
    let client = ApiClient::new(served.client.base.clone(), served.client.token.clone());
    let started = Instant::now();
    let runaway = tokio::spawn(async move { client.post("/v1/print/label", &spin).await });

    // While it spins, other requests are answered.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, _) = served.client.get("/v1/health").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = served
        .client
        .get("/v1/plugins/outpost/thermal-printer")
        .await;
    assert_eq!(
        (status, &body["health"]["status"]),
        (StatusCode::OK, &json!("ok"))
    );

    let (status, body) = runaway.await.expect("request task");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::GATEWAY_TIMEOUT, "plugin-deadline")
    );
    assert_eq!(body["error"]["plugin"], "test/hostile");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("300ms deadline")
    );

    let (_, body) = served.client.get("/v1/plugins/test/hostile").await;
    assert_eq!(body["plugin"]["failed"], 1);
    assert!(
        body["plugin"]["last_failure"]
            .as_str()
            .unwrap_or_default()
            .contains("deadline")
    );

    let mut crash = request.clone();
    crash["label"]["reference"] = json!("panic");
    let (status, body) = served
        .client
        .post("/v1/print/label", &crash.to_string())
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::INTERNAL_SERVER_ERROR, "plugin-failed")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("panicked")
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printers_are_listed_and_an_unreachable_one_is_a_502() {
    let served = Served::start().await;
    let (status, body) = served.client.get("/v1/printers").await;
    assert_eq!(status, StatusCode::OK);
    let printers = body["printers"].as_array().expect("list");
    assert_eq!(printers.len(), 2);
    assert_eq!(printers[0]["name"], "labels");
    assert_eq!(printers[0]["default_for"], json!(["label"]));

    // The receipt printer is a file: it cannot answer a status query.
    let (status, body) = served.client.get("/v1/printers/receipts/status").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_GATEWAY, "printer-unreachable")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("only tcp printers")
    );
    served.stop().await;
}
