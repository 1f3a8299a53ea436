//! `/metrics`: outside calls by provider, operation and outcome, and where the endpoint is
//! served (`DONKIES_METRICS_LISTEN`: the main listener, its own address, or nowhere).

use donkies_sandbox::TestUser;
use donkies_server::config::CommonArgs;
use reqwest::StatusCode;
use serde_json::json;

use crate::both_databases;
use crate::helpers::{Backend, Options, TestApp};

both_databases!(
    metrics_count_and_time_outside_calls_by_provider_operation_and_outcome,
    metrics_on_their_own_address_are_served_there_only,
    metrics_turned_off_are_served_nowhere,
    a_worker_serves_its_metrics_at_its_metrics_address,
);

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text")
}

fn spawn_options(metrics_listen: &str) -> Options {
    Options {
        args: CommonArgs { metrics_listen: Some(metrics_listen.into()), ..Default::default() },
        ..Default::default()
    }
}

async fn scrape(app: &TestApp, base: &str) -> (StatusCode, String) {
    let res = app.client.get(format!("{base}/metrics")).send().await.unwrap();
    let status = res.status();
    if status == StatusCode::OK {
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    }
    (status, res.text().await.unwrap())
}

/// Atrium (the aggregator user of a sign-up, a bank link), Facebook (a sign-in) and Dwolla (the
/// webhook subscription made at start) are each counted by operation and outcome, with a
/// latency histogram; an operation is a route, never an id.
async fn metrics_count_and_time_outside_calls_by_provider_operation_and_outcome(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.signed_up_user("ada@example.com").await;
    let code = app.facebook.issue_code(TestUser::named("fiona"));
    let (status, body) = app.post("/v1/auth/facebook", None, json!({"code": code})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.post("/v1/auth/facebook", None, json!({"code": "not-a-code-facebook-gave"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.wait_jobs_idle().await;
    let (status, body) = app.get("/v1/credentials/live/code/mxbank", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, text) = scrape(&app, &app.base).await;
    assert_eq!(status, StatusCode::OK);
    let scrape = parse(&text);
    let calls = |provider: &str, operation: &str, outcome: &str| {
        scrape.samples.iter().any(|s| {
            s.metric == "donkies_outside_calls_total"
                && s.labels.get("provider") == Some(provider)
                && s.labels.get("operation") == Some(operation)
                && s.labels.get("outcome") == Some(outcome)
        })
    };
    assert!(calls("atrium", "POST /users", "ok"), "{text}");
    assert!(calls("facebook", "GET me", "ok"), "{text}");
    assert!(calls("facebook", "GET access_token", "client_error"), "{text}");
    assert!(calls("dwolla", "POST /token", "ok"), "{text}");
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "donkies_outside_call_duration_seconds_count"
                && s.labels.get("provider") == Some("atrium")),
        "{text}"
    );
    // (The parser stops at the braces of an operation; the line itself is plain text.)
    assert!(
        text.contains(r#"provider="atrium",operation="GET /institutions/{id}/credentials",outcome="ok""#),
        "{text}"
    );
    for line in text.lines().filter(|l| l.starts_with("donkies_outside_call")) {
        assert!(!line.contains("mxbank"), "an id leaked into the labels: {line}");
    }
}

/// `DONKIES_METRICS_LISTEN=ADDR`: the scrape is on that address, with the main listener's
/// requests in it, and the main listener answers 404 for `/metrics`.
async fn metrics_on_their_own_address_are_served_there_only(backend: Backend) {
    let app = TestApp::spawn_with(backend, spawn_options("127.0.0.1:0")).await;
    let metrics_addr = app.server.as_ref().unwrap().metrics_addr.expect("a metrics listener");
    assert_ne!(metrics_addr.port(), app.server.as_ref().unwrap().addr.port());
    app.signed_up_user("ada@example.com").await;

    let (status, body) = scrape(&app, &app.base).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap(), json!({"detail": "Not found."}));

    let (status, text) = scrape(&app, &format!("http://{metrics_addr}")).await;
    assert_eq!(status, StatusCode::OK);
    let scrape = parse(&text);
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "donkies_http_requests_total" && s.labels.get("route") == Some("/v1/auth/signup")),
        "{text}"
    );
    assert!(scrape.samples.iter().any(|s| s.metric == "donkies_jobs_in_queue"), "{text}");
    // Only the scrape is there.
    let res = app.client.get(format!("http://{metrics_addr}/v1/user")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// `DONKIES_METRICS_LISTEN=off`: no listener of its own and 404 on the main one.
async fn metrics_turned_off_are_served_nowhere(backend: Backend) {
    let app = TestApp::spawn_with(backend, spawn_options("off")).await;
    assert_eq!(app.server.as_ref().unwrap().metrics_addr, None);
    let (status, body) = scrape(&app, &app.base).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // The API itself is unchanged.
    let (status, _) = app.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// `donkies worker --metrics-listen ADDR`: the worker, which has no main listener, serves the
/// jobs it ran and the outside calls they made there.
async fn a_worker_serves_its_metrics_at_its_metrics_address(backend: Backend) {
    let app = TestApp::spawn_with(backend, Options { with_worker: false, ..Default::default() }).await;
    let smtp = app.smtp.url();
    let args = ["worker", "--metrics-listen", "127.0.0.1:0"];
    let worker = app.process_at(&args, &[("DONKIES_SMTP_URL", &smtp)], "metrics at http://").await;
    // A sign-up queues jobs (the confirmation mail, the aggregator user) that only the worker runs.
    app.signed_up_user("ada@example.com").await;

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let text = loop {
        let (status, text) = scrape(&app, &worker.base).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let scrape = parse(&text);
        let ran = |metric: &str| scrape.samples.iter().any(|s| s.metric == metric);
        if ran("donkies_jobs_total") && ran("donkies_outside_calls_total") {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "the worker's metrics show no job run: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(text.contains(r#"donkies_jobs_total{kind="#), "{text}");
    assert!(text.contains(r#"provider="atrium""#), "{text}");
    let res = app.client.get(format!("{}/v1/user", worker.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "only the scrape is there");
}
