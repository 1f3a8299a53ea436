//! The OpenAPI document describes every implemented endpoint.

use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp};

/// Every (method, path) the server implements; a route added without its OpenAPI entry (or an
/// entry removed) fails here.
const ENDPOINTS: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
    ("get", "/docs"),
    ("get", "/docs/"),
    ("post", "/v1/auth/signup"),
    ("post", "/v1/auth/signup/confirm"),
    ("post", "/v1/auth/login"),
    ("get", "/v1/auth/logout"),
    ("post", "/v1/auth/logout"),
    ("post", "/v1/password/reset/request"),
    ("post", "/v1/password/reset/require"),
    ("post", "/v1/password/reset"),
    ("get", "/v1/user"),
    ("put", "/v1/user"),
    ("get", "/v1/user_settings"),
    ("patch", "/v1/user_settings"),
    ("get", "/v1/settings"),
    ("post", "/v1/user/change/email"),
    ("post", "/v1/user/change/email/confirm/{encrypted_id}/{token}"),
    ("post", "/v1/user/change/password"),
    ("get", "/v1/user/resend_reg_confirmation_link"),
    ("post", "/v1/user_close_account"),
    ("get", "/v1/institutions"),
    ("get", "/v1/institutions/{id}"),
    ("get", "/v1/institutions_suggest"),
    ("get", "/v1/credentials/{institution_code}"),
    ("get", "/v1/credentials/code/{code}"),
    ("get", "/v1/credentials/id/{institution_id}"),
    ("get", "/v1/credentials/live/code/{code}"),
    ("get", "/v1/credentials/live/id/{institution_id}"),
    ("get", "/v1/members"),
    ("post", "/v1/members"),
    ("get", "/v1/members/{identifier}"),
    ("delete", "/v1/members/{identifier}"),
    ("post", "/v1/members/resume/{identifier}"),
    ("post", "/v1/members/{identifier}/refresh"),
    ("get", "/v1/accounts"),
    ("get", "/v1/accounts/{id}"),
    ("delete", "/v1/accounts/{id}"),
    ("put", "/v1/accounts/set_active/{id}"),
    ("post", "/v1/accounts/set_account_number/{id}"),
    ("put", "/v1/accounts/edit_share"),
    ("get", "/v1/link_debts"),
    ("post", "/v1/link_debts"),
    ("get", "/v1/transactions"),
    ("post", "/v1/auth/facebook"),
    ("post", "/v1/auth/google"),
    ("get", "/v1/auth/twitter"),
    ("post", "/v1/auth/twitter"),
    ("get", "/v1/settings/login"),
    ("get", "/v1/customer"),
    ("post", "/v1/customer"),
    ("get", "/v1/funding_sources"),
    ("post", "/v1/funding_sources"),
    ("post", "/v1/funding_sources/{id}/verify"),
    ("post", "/v1/get_iav_token/{dwolla_customer_id}"),
    ("post", "/v1/create_funding_source_by_iav"),
    ("post", "/v1/accounts/set_funding_source/{id}"),
    ("post", "/v1/dwolla/webhooks"),
    ("get", "/v1/stat"),
    ("get", "/v1/transfers_prepare"),
    ("get", "/v1/transfers_donkies"),
    ("get", "/v1/transfers_user"),
    ("get", "/v1/transfers_debt"),
    ("get", "/v1/contributions"),
    ("post", "/v1/contributions"),
    ("get", "/v1/accounts/{id}/projection"),
];

#[tokio::test]
async fn openapi_document_lists_every_endpoint() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, doc) = app.get("/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.push((method.to_owned(), path.clone()));
            }
        }
    }
    for (method, path) in ENDPOINTS {
        assert!(
            documented.contains(&(method.to_string(), path.to_string())),
            "{method} {path} missing from openapi.json"
        );
    }
    for (method, path) in &documented {
        assert!(
            ENDPOINTS.contains(&(method.as_str(), path.as_str())),
            "{method} {path} documented but not listed in this test"
        );
        // Documented routes are really served (not 404 / 405).
        let concrete =
            path.split('/').map(|seg| if seg.starts_with('{') { "x" } else { seg }).collect::<Vec<_>>().join("/");
        let url = app.url(&concrete);
        let res = app.client.request(method.to_uppercase().parse().unwrap(), url).send().await.unwrap();
        assert!(
            ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&res.status()) || path.contains('{'),
            "{method} {path} -> {}",
            res.status()
        );
    }
}

/// `/docs` is Swagger UI over `/v1/openapi.json`, served from the binary: the page and every
/// file it loads answer 200 with their content types, and it points at the document.
#[tokio::test]
async fn docs_page_and_its_assets_load_from_the_binary() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let res = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.url().path(), "/docs/", "/docs leads to the page");
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = res.text().await.unwrap();
    assert!(page.contains("swagger-ui"), "{page}");
    let assets: Vec<&str> = page
        .split(['"', '\''])
        .filter(|part| part.starts_with("./") && (part.ends_with(".js") || part.ends_with(".css")))
        .collect();
    assert!(assets.iter().any(|a| a.ends_with(".js")) && assets.iter().any(|a| a.ends_with(".css")), "{page}");
    let mut initializer = String::new();
    for asset in &assets {
        let res = app.client.get(app.url(&format!("/docs/{}", &asset[2..]))).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{asset}");
        let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
        let expected = if asset.ends_with(".css") { "text/css" } else { "javascript" };
        assert!(content_type.contains(expected), "{asset}: {content_type}");
        let body = res.text().await.unwrap();
        assert!(!body.is_empty(), "{asset}");
        if asset.contains("initializer") {
            initializer = body;
        }
    }
    assert!(initializer.contains("/v1/openapi.json"), "the page loads this API's document: {initializer}");
    let res = app.client.get(app.url("/docs/no-such-file.js")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// The document is part of the contract: any change to it shows up in review as a change of
/// `openapi.snapshot.json`. Run with `DONKIES_UPDATE_SNAPSHOTS=1` to accept a change.
#[tokio::test]
async fn openapi_document_matches_its_snapshot() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, doc) = app.get("/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let rendered = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/openapi.snapshot.json");
    if std::env::var_os("DONKIES_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let snapshot = std::fs::read_to_string(&path).unwrap_or_default();
    if snapshot != rendered {
        let first = snapshot.lines().zip(rendered.lines()).position(|(a, b)| a != b).unwrap_or(0);
        let context = |text: &str| text.lines().skip(first.saturating_sub(3)).take(8).collect::<Vec<_>>().join("\n");
        panic!(
            "openapi.json differs from {} at line {}:\n--- snapshot\n{}\n--- served\n{}\n(DONKIES_UPDATE_SNAPSHOTS=1 accepts it)",
            path.display(),
            first + 1,
            context(&snapshot),
            context(&rendered)
        );
    }
}
