//! Restarting `serve` in sandbox mode on the same database and data directory: its in-process
//! Atrium and Dwolla simulators come back knowing what the database refers to.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_databases;
use crate::helpers::{Backend, Options, TestApp};
use crate::money::{collected, paused_user};
use crate::payments::{services, wait_for};

both_databases!(restarting_serve_keeps_its_simulated_bank_and_dwolla_agreeing_with_the_database);

async fn ledger_check(app: &TestApp) -> (bool, String) {
    app.wait_jobs_idle().await;
    let out = app.operator(&["ledger", "check"]).await;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success() && text.contains("ledger balanced"), text)
}

async fn restarting_serve_keeps_its_simulated_bank_and_dwolla_agreeing_with_the_database(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, Options { sandbox: true, ..Default::default() }).await;
    assert!(app.is_sandbox());
    // Signed up, mxbank linked, a verified customer and bank, a collection processed.
    let (token, _) = paused_user(&app, "ada@example.com").await;
    collected(&app, &token, "25.00").await;
    let (ok, out) = ledger_check(&app).await;
    assert!(ok, "{out}");
    let (_, members) = app.get("/v1/members", Some(&token)).await;
    let member = members[0].clone();
    assert_eq!(member["member_status"], "SUCCESS", "{member}");

    app.restart().await;

    let (ok, out) = ledger_check(&app).await;
    assert!(ok, "the ledger agrees with Dwolla after a restart: {out}");
    let (_, sources) = app.get("/v1/funding_sources", Some(&token)).await;
    assert_eq!(sources[0]["status"], "verified", "{sources}");
    // A new collection from the same bank goes through.
    collected(&app, &token, "30.00").await;
    let (ok, out) = ledger_check(&app).await;
    assert!(ok, "{out}");
    // The linked member syncs again: the periodic re-sync, and new credentials that aggregate
    // it again.
    services(&app).banking.resync_members().await.unwrap();
    app.wait_jobs_idle().await; // the re-sync of each member it queued
    let credentials = json!([{"field_name": "LOGIN", "value": "test_atrium"},
                             {"field_name": "PASSWORD", "value": "new password"}]);
    let body = json!({"institution_code": "mxbank", "credentials": credentials});
    let (status, again) = app.post("/v1/members", Some(&token), body).await;
    assert_eq!((status, &again["identifier"]), (StatusCode::CREATED, &member["identifier"]), "{again}");
    let path = format!("/v1/members/{}", member["identifier"].as_str().unwrap());
    wait_for(&app, &path, &token, "a new aggregation", |m| {
        m["member_status"] == "SUCCESS" && m["aggregated_at"] != member["aggregated_at"]
    })
    .await;
}
