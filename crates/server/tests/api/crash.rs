//! A use case commits whole or not at all: the store fails at each of its steps in turn (a
//! trigger refuses that write, as a crash or a full disk would), nothing it did before that
//! step is left behind, and trying again completes it once.

use std::time::Duration;

use donkies_domain::Cents;
use donkies_server::services::payments::Endpoint;
use donkies_store::testing::{Fault, INJECTED};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{Backend, TestApp};
use crate::payments::{
    add_bank, bank_through_iav, complete_profile, payments_user, put, services, verified_bank, verify, wait_for,
    wait_transfer,
};

both_databases!(
    completing_the_profile_commits_with_the_customer_and_its_job,
    closing_the_account_commits_with_its_final_payout,
    an_ach_return_commits_with_the_transfers_end_and_its_mail,
    an_iav_link_commits_with_its_account,
    verifying_micro_deposits_commits_the_bank_with_its_deposits,
);

const WAIT: Duration = Duration::from_secs(40);

fn fault<'a>(op: &'a str, table: &'a str, when: Option<&'a str>) -> Fault<'a> {
    Fault { op, table, when }
}

async fn completing_the_profile_commits_with_the_customer_and_its_job(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let steps =
        [fault("INSERT", "customers", None), fault("INSERT", "jobs", Some("NEW.kind = 'create_dwolla_customer'"))];
    for (i, step) in steps.into_iter().enumerate() {
        let token = app.signed_up_user(&format!("user{i}@example.com")).await;
        app.test_db.inject(step).await;
        let (status, body) = put(&app, "/v1/user", &token, complete_profile()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{step:?}: {body}");
        let (_, user) = app.get("/v1/user", Some(&token)).await;
        assert_eq!(
            (&user["is_profile_completed"], &user["phone"], &user["dwolla_customer"]),
            (&json!(false), &Value::Null, &Value::Null),
            "{step:?}: the profile is not frozen without its customer: {user}"
        );
        app.test_db.heal(step.table).await;
        // The retry is a profile completion like the first, not a 400 on a frozen profile.
        let (status, body) = put(&app, "/v1/user", &token, complete_profile()).await;
        assert_eq!((status, &body["is_profile_completed"]), (StatusCode::OK, &json!(true)), "{step:?}: {body}");
        wait_for(&app, "/v1/user", &token, "a verified customer", |u| u["dwolla_customer"]["status"] == "verified")
            .await;
    }
}

async fn closing_the_account_commits_with_its_final_payout(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.signed_up_user("ada@example.com").await;
    let step = fault("INSERT", "jobs", Some("NEW.kind = 'final_payout'"));
    app.test_db.inject(step).await;
    let (status, _) = app.call(Method::POST, "/v1/user_close_account", Some(&token), None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (_, user) = app.get("/v1/user", Some(&token)).await;
    let stored = donkies_store::users::find_by_id(app.db(), user["id"].as_i64().unwrap()).await.unwrap().unwrap();
    assert!(!stored.is_closed_account, "not closed without its final payout: {stored:?}");
    app.test_db.heal(step.table).await;
    let (status, _) = app.call(Method::POST, "/v1/user_close_account", Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, user) = app.get("/v1/user", Some(&token)).await;
    assert_eq!(user["is_closed_account"], true);
    let jobs = donkies_store::jobs::list(app.db(), false).await.unwrap();
    let payouts = jobs.iter().filter(|j| j.kind == "final_payout").count();
    app.wait_jobs_idle().await;
    assert!(payouts <= 1, "one final payout: {jobs:?}");
}

async fn an_ach_return_commits_with_the_transfers_end_and_its_mail(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, debit) = payments_user(&app, "ada@example.com").await;
    // R03 (no account) fails the transfer, removes the bank and mails the user.
    let steps = [
        fault("UPDATE", "funding_sources", Some("NEW.is_removed AND NOT OLD.is_removed")),
        fault("INSERT", "outbox", Some("NEW.template = 'transfer'")),
    ];
    for (account, step) in debit.iter().zip(steps) {
        let source = verified_bank(&app, &token, account, "R03").await;
        let id = source["id"].as_i64().unwrap();
        let reference = format!("test:{}", step.table);
        let t = services(&app)
            .payments
            .transfer(&reference, Endpoint::FundingSource(id), Endpoint::Donkies, Cents::new(250))
            .await
            .unwrap();
        wait_transfer(&app, t.id, "sent", |t| t.dwolla_id.is_some()).await;
        let mails_before = app.smtp.wait_for("ada@example.com", 0, Duration::ZERO).await.len();
        app.test_db.inject(step).await;
        app.dwolla.handle().simulate();
        app.wait_failed_attempt("apply_dwolla_event", INJECTED).await;
        let stored = donkies_store::payments::transfer_by_id(app.db(), t.id).await.unwrap().unwrap();
        assert_eq!(stored.status.as_str(), "pending", "{step:?}: {stored:?}");
        let bank = donkies_store::payments::funding_source_by_id(app.db(), id).await.unwrap().unwrap();
        // (Dwolla's own `funding_source_removed` event may remove it meanwhile; only the return
        // takes a verified bank back to unverified.)
        assert_eq!(bank.status.as_str(), "verified", "{step:?}: {bank:?}");

        app.test_db.heal(step.table).await;
        let failed = wait_transfer(&app, t.id, "failed", |t| t.status.as_str() == "failed").await;
        assert_eq!(failed.failure_code.as_deref(), Some("R03"), "{failed:?}");
        let bank = donkies_store::payments::funding_source_by_id(app.db(), id).await.unwrap().unwrap();
        assert!(bank.is_removed && bank.status.as_str() == "unverified", "{step:?}: {bank:?}");
        app.wait_jobs_idle().await;
        let mails = app.smtp.wait_for("ada@example.com", mails_before + 1, WAIT).await;
        let told: Vec<_> = mails[mails_before..].iter().filter(|m| m.data.contains("Your transfer failed")).collect();
        assert_eq!(told.len(), 1, "{step:?}: one mail about the failed transfer");
    }
}

async fn an_iav_link_commits_with_its_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, debit) = payments_user(&app, "ada@example.com").await;
    let dwolla_id = bank_through_iav(&app, &token).await;
    let link = json!({"account_id": debit[0]["id"], "dwolla_id": dwolla_id});

    let step = fault("UPDATE", "accounts", Some("NEW.is_dwolla_created AND NOT OLD.is_dwolla_created"));
    app.test_db.inject(step).await;
    let (status, body) = app.post("/v1/create_funding_source_by_iav", Some(&token), link.clone()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let (_, sources) = app.get("/v1/funding_sources", Some(&token)).await;
    assert_eq!(sources, json!([]), "no funding source without its account marked");
    app.test_db.heal(step.table).await;
    let (status, source) = app.post("/v1/create_funding_source_by_iav", Some(&token), link).await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    assert_eq!((&source["status"], &source["account"]["is_dwolla_created"]), (&json!("verified"), &json!(true)));
}

/// Pause (or resume) every webhook subscription at Dwolla, so that its own "verified" event
/// cannot record a verification the fault refused here.
async fn pause_webhooks(app: &TestApp, paused: bool) {
    let rail = &services(app).payments.rail;
    for subscription in rail.webhook_subscriptions().await.unwrap() {
        rail.pause_webhook_subscription(&subscription.id, paused).await.unwrap();
    }
}

async fn verifying_micro_deposits_commits_the_bank_with_its_deposits(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, debit) = payments_user(&app, "ada@example.com").await;
    let steps = [
        fault("UPDATE", "funding_sources", Some("NEW.status = 'verified' AND OLD.status <> 'verified'")),
        fault("UPDATE", "funding_sources", Some("NEW.md_status = 'processed'")),
    ];
    for (account, step) in debit.iter().zip(steps) {
        // Paused from before the bank is added: a webhook about it (Dwolla's "micro-deposits
        // added", say) is a hint on which the server reads the bank at Dwolla, and would find
        // it verified and record it while the test looks at what the fault left.
        pause_webhooks(&app, true).await;
        let source = add_bank(&app, &token, account, "Checking").await;
        app.test_db.inject(step).await;
        let (status, body) = verify(&app, &token, &source, "0.03", "0.07").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{step:?}: {body}");
        let (_, sources) = app.get("/v1/funding_sources", Some(&token)).await;
        let stored = sources.as_array().unwrap().iter().find(|f| f["id"] == source["id"]).unwrap();
        assert_eq!(
            (&stored["status"], &stored["md_status"]),
            (&json!("unverified"), &json!("pending")),
            "{step:?}: neither the bank nor its deposits recorded alone: {stored}"
        );
        app.test_db.heal(step.table).await;
        // Dwolla took the first verification: the retry records it, once (before Dwolla's
        // webhook about it, which would record it by itself, is let through).
        let (status, body) = verify(&app, &token, &source, "0.03", "0.07").await;
        assert_eq!(
            (status, &body["status"], &body["md_status"]),
            (StatusCode::OK, &json!("verified"), &json!("processed")),
            "{step:?}: {body}"
        );
        pause_webhooks(&app, false).await;
        let id = source["id"].as_i64().unwrap();
        let bank = donkies_store::payments::funding_source_by_id(app.db(), id).await.unwrap().unwrap();
        assert_eq!(bank.md_attempts, 1, "{step:?}: one attempt counted: {bank:?}");
        let (status, body) = verify(&app, &token, &source, "0.03", "0.07").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{step:?}: verified once: {body}");
    }
    app.wait_jobs_idle().await;
}
