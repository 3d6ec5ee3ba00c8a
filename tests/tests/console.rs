//! The operator's console: its login and routes over real HTTP, and the page
//! in real headless Chromium approving a held update.

use fantoccini::Locator;
use hyper::{Method, StatusCode};
use outpost_e2e_tests::browser::{self, Browser};
use outpost_e2e_tests::registry::TestRegistry;
use outpost_e2e_tests::serving::Serving;
use outpost_e2e_tests::updates::{following_installed, plugin_id, release, serving};
use outpost_e2e_tests::{TestNode, artifacts, raw_request as request};
use outpost_registry::server::ServeConfig;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const QUICK_PROBATION: &str = "[updates]\nprobation-seconds = 1\nprobation-calls = 3\n";

fn password(data_dir: &std::path::Path) -> String {
    std::fs::read_to_string(data_dir.join("console-password"))
        .expect("the node made the console password")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_wants_its_own_login_and_its_header() {
    let node = TestNode::new();
    node.install_artifact(artifacts::THERMAL_PRINTER);
    let shared = node.shared();
    let served = Serving::start(shared.node.clone(), false).await;
    let base = served.client.base.clone();

    let (status, headers, page) = request(&base, Method::GET, "/console/", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<title>Outpost console</title>"), "{page}");
    let policy = headers["content-security-policy"].to_str().expect("text");
    assert!(policy.contains("default-src 'self'"), "{policy}");
    let (status, _, script) = request(&base, Method::GET, "/console/app.js", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(script.contains("textContent"), "the page's own script");

    let console = [("x-outpost-page", "1")];
    // Without a session, nothing; the apps' token is not a session.
    let bearer = format!("Bearer {}", served.client.token);
    for headers in [
        &console[..],
        &[("x-outpost-page", "1"), ("authorization", &bearer)],
    ] {
        let (status, _, body) =
            request(&base, Method::GET, "/console/api/overview", headers, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let json_type = ("content-type", "application/json");
    let (status, _, body) = request(
        &base,
        Method::POST,
        "/console/login",
        &[json_type],
        &json!({ "password": served.client.token }).to_string(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the app token logs in: {body}"
    );

    let (status, headers, body) = request(
        &base,
        Method::POST,
        "/console/login",
        &[json_type],
        &json!({ "password": password(shared.dir.path()) }).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let set_cookie = headers["set-cookie"].to_str().expect("text").to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().expect("pair").to_string();
    let logged_in: Value = serde_json::from_str(&body).expect("json");
    let page_token = logged_in["page_token"]
        .as_str()
        .expect("a page token")
        .to_string();

    // A session alone is not enough: a page served on another port of this
    // host gets the cookie too, but not the page token the console keeps.
    for header in [None, Some("1")] {
        let mut headers = vec![("cookie", cookie.as_str())];
        headers.extend(header.map(|value| ("x-outpost-page", value)));
        let (status, _, _) =
            request(&base, Method::GET, "/console/api/overview", &headers, "").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}");
    }
    let with_session = [
        ("cookie", cookie.as_str()),
        ("x-outpost-page", page_token.as_str()),
    ];
    let mut from_elsewhere = with_session.to_vec();
    from_elsewhere.push(("origin", "http://127.0.0.1:1"));
    let (status, _, _) = request(
        &base,
        Method::GET,
        "/console/api/overview",
        &from_elsewhere,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another origin");
    let (status, _, body) = request(
        &base,
        Method::GET,
        "/console/api/overview",
        &with_session,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let overview: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        overview["plugins"][0]["plugin"]["id"], "outpost/thermal-printer",
        "{overview}"
    );
    assert_eq!(overview["telemetry"]["consent"], "off");
    assert!(
        overview["measures"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    );

    // It speaks the node's own API, admin side included.
    let (status, _, body) = request(
        &base,
        Method::GET,
        "/console/api/v1/printers",
        &with_session,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut with_json = with_session.to_vec();
    with_json.push(json_type);
    let (status, _, body) = request(
        &base,
        Method::PUT,
        "/console/api/admin/v1/telemetry",
        &with_json,
        r#"{"consent": "aggregate"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        outpost::telemetry::consent(&shared.node),
        outpost::telemetry::Consent::Aggregate
    );

    // Logged out, the session is gone.
    let (status, _, _) = request(&base, Method::POST, "/console/logout", &with_session, "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = request(
        &base,
        Method::GET,
        "/console/api/overview",
        &with_session,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_approves_a_held_update_on_the_console_in_chromium() {
    if !browser::available() {
        return;
    }
    let registry = TestRegistry::start(ServeConfig::default()).await;
    let shared = following_installed(&registry, QUICK_PROBATION).await;
    let node = shared.node.clone();
    let greedy = release("1.1.0", |m| {
        m.replace("quota-bytes = 16384", "quota-bytes = 65536")
    });
    registry
        .publish(&registry.acme, greedy.path())
        .await
        .expect("publish");
    let checked = outpost::control::check(&node).await.expect("check");
    assert!(checked[0].outcome.contains("1.1.0 held"), "{checked:?}");
    let served = Serving::start(node.clone(), false).await;

    let browser = Browser::start().await;
    let page = &browser.client;
    page.goto(&format!("{}/console/", served.client.base))
        .await
        .expect("the console loads");
    let login = page
        .wait()
        .for_element(Locator::Css("#login:not([hidden]) #password"))
        .await
        .expect("the login form");
    login
        .send_keys(&password(shared.dir.path()))
        .await
        .expect("type");
    page.find(Locator::Css("#login button[type=submit]"))
        .await
        .expect("login button")
        .click()
        .await
        .expect("click");

    // The plugins, and the held update with what it asks for.
    let row = format!("#plugins tr[data-plugin=\"{}\"]", plugin_id());
    let held = page
        .wait()
        .for_element(Locator::Css(&format!("{row} td[data-update-state=held]")))
        .await
        .expect("the held update is shown");
    let text = held.text().await.expect("text");
    assert!(text.contains("1.1.0"), "{text}");
    assert!(
        text.contains("asks for more: kv quota bytes: 16384 -> 65536"),
        "{text}"
    );
    let version = page
        .find(Locator::Css(&format!("{row} td.version")))
        .await
        .expect("version cell")
        .text()
        .await
        .expect("text");
    assert_eq!(version, "1.0.0");
    browser.screenshot("console-held-update").await;

    page.find(Locator::Css(&format!("{row} button.approve")))
        .await
        .expect("the approve button")
        .click()
        .await
        .expect("click");
    // The page refreshes from the node: the new version serves.
    let started = Instant::now();
    loop {
        let shown = page
            .find(Locator::Css(&format!("{row} td.version")))
            .await
            .ok();
        let text = match shown {
            Some(cell) => cell.text().await.unwrap_or_default(),
            None => String::new(),
        };
        if text == "1.1.0" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the console still shows {text:?} after approving"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(serving(&node).as_deref(), Some("1.1.0"));
    let message = page
        .find(Locator::Css("#message"))
        .await
        .expect("message")
        .text()
        .await
        .expect("text");
    assert!(message.contains("Approved"), "{message}");
    let shot = browser.screenshot("console-approved").await;
    assert!(shot.exists());
    browser.close().await;
    served.stop().await;
}
