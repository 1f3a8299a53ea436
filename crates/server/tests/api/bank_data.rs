//! Real bank data moves: pending purchases post under new guids, holds vanish, posted rows are
//! removed or amended, a re-linked bank returns its history under new guids. The Atrium
//! simulator is steered through its control surface (`/__sim/members/{guid}/events`), the
//! server syncs through `POST /v1/members/{identifier}/refresh` or `donkies sync --user`, and
//! what the user sees and what is collected is checked to the cent.

use donkies_domain::Cents;
use donkies_server::services::money::Collected;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{Backend, Options, TestApp};
use crate::money::{
    assert_ledger_balanced, collect, dollars, donkies, money_user, only, options, process_at_dwolla, wait_collection,
};
use crate::payments::{payments_user, services, wait_for};

both_databases!(
    a_pending_purchase_is_listed_but_collected_only_once_posted_from_its_posted_amount,
    a_hold_that_vanishes_leaves_the_list_and_is_never_collected,
    a_removed_purchase_loses_its_roundup_before_collection_and_is_corrected_after,
    an_amended_amount_moves_the_roundup_before_and_after_collection,
    relinking_the_same_bank_keeps_the_accounts_and_never_rounds_up_a_purchase_twice,
    two_identical_purchases_on_one_day_are_both_rounded_up,
    one_sync_of_a_member_at_a_time,
    zero_configuration_processes_share_one_simulated_bank,
);

const EMAIL: &str = "ada@example.com";

/// A money user whose history was collected and processed, so that what waits is only what a
/// test adds; the member's and the round-up source account's guids at the aggregator.
struct Steered {
    token: String,
    identifier: String,
    member_guid: String,
    account_guid: String,
    user_id: i64,
}

async fn steered_user(app: &TestApp) -> Steered {
    let (token, debit) = money_user(app, EMAIL).await;
    // Enough to reach any minimum the tests use.
    let (status, body) = app.post("/v1/contributions", Some(&token), json!({"amount": "100.00"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let Collected::Sent { collection_id, .. } = only(&collect(app).await).clone() else {
        panic!("the history was not collected")
    };
    process_at_dwolla(app).await;
    wait_collection(app, &token, collection_id, "processed").await;
    let (_, user) = app.get("/v1/user", Some(&token)).await;
    let user_id = user["id"].as_i64().unwrap();
    let member = donkies_store::members::list_for_user(app.db(), user_id).await.unwrap().remove(0);
    let source_id = debit[0]["id"].as_i64().unwrap();
    let accounts = donkies_store::accounts::list_for_user(app.db(), user_id).await.unwrap();
    let account_guid = accounts.iter().find(|a| a.id == source_id).unwrap().guid.clone();
    Steered { token, identifier: member.identifier, member_guid: member.guid.unwrap(), account_guid, user_id }
}

/// Apply `events` at the simulated bank; the guid each created.
async fn events(app: &TestApp, member_guid: &str, events: Value) -> Vec<Option<String>> {
    let url = app.atrium.base_url().join(&format!("__sim/members/{member_guid}/events")).unwrap();
    let response = app.client.post(url).json(&events).send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().iter().map(|g| g.as_str().map(str::to_owned)).collect()
}

fn purchase(s: &Steered, amount: &str, description: &str, pending: bool) -> Value {
    json!({"kind": "purchase", "account_guid": s.account_guid, "amount": amount, "description": description,
           "pending": pending})
}

/// Refresh the member through the API and wait until it aggregated and synced.
async fn refresh(app: &TestApp, s: &Steered) {
    let path = format!("/v1/members/{}/refresh", s.identifier);
    let (status, member) = app.call(Method::POST, &path, Some(&s.token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{member}");
    assert_eq!(member["identifier"], s.identifier.as_str(), "{member}");
    app.wait_jobs_idle().await;
    let path = format!("/v1/members/{}", s.identifier);
    wait_for(app, &path, &s.token, "SUCCESS", |m| m["member_status"] == "SUCCESS").await;
}

/// Have the simulated bank aggregate the member (so that it shows the events applied), without
/// the server hearing of it.
async fn aggregate_at_bank(app: &TestApp, s: &Steered) {
    let aggregator = services(app).banking.aggregator.clone();
    let user = donkies_store::users::find_by_id(app.db(), s.user_id).await.unwrap().unwrap();
    let user_guid = user.guid.unwrap();
    aggregator.aggregate_member(&user_guid, &s.member_guid).await.unwrap();
    app.eventually("the bank aggregates", async || {
        let status = aggregator.read_member_status(&user_guid, &s.member_guid).await.unwrap();
        if status.status.is_settled() { Ok(()) } else { Err(status.status) }
    })
    .await;
}

/// `donkies sync --user`: its one line for the member.
async fn sync(app: &TestApp) -> String {
    let (ok, out) = donkies(app, &["sync", "--user", EMAIL]).await;
    assert!(ok, "{out}");
    let line = out.lines().find(|l| l.contains(": added ")).unwrap_or_else(|| panic!("no counts: {out}"));
    line.split(": ").nth(1).unwrap().to_owned()
}

/// What waits to be collected, as a collection run finds it (nothing is collected below the
/// minimum the tests use).
async fn waiting(app: &TestApp) -> Cents {
    match only(&collect(app).await).clone() {
        Collected::BelowMinimum { waiting } | Collected::HeldByCap { waiting } => waiting,
        other => panic!("collected: {other:?}"),
    }
}

/// The user's listed transactions with `description`.
async fn listed(app: &TestApp, s: &Steered, description: &str) -> Vec<Value> {
    let (_, list) = app.get("/v1/transactions", Some(&s.token)).await;
    list.as_array().unwrap().iter().filter(|t| t["description"] == description).cloned().collect()
}

async fn a_pending_purchase_is_listed_but_collected_only_once_posted_from_its_posted_amount(backend: Backend) {
    let app = TestApp::spawn_with(backend, options("100.00")).await;
    let s = steered_user(&app).await;
    let created = events(&app, &s.member_guid, json!([purchase(&s, "12.34", "Corner Cafe", true)])).await;
    let pending_guid = created[0].clone().unwrap();
    refresh(&app, &s).await;
    let shown = listed(&app, &s, "Corner Cafe").await;
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!((shown[0]["status"].as_str(), dollars(&shown[0]["roundup"])), (Some("PENDING"), Cents::new(66)));
    assert_eq!(waiting(&app).await, Cents::ZERO, "a pending purchase is never collected");

    // It posts under a new guid, with a tip: only the posted row shows, rounded up from 14.10.
    events(&app, &s.member_guid, json!([{"kind": "post", "guid": pending_guid, "amount": "14.10"}])).await;
    assert_eq!(sync(&app).await, "added 0, posted 1, removed 0, amended 0");
    let shown = listed(&app, &s, "Corner Cafe").await;
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!((shown[0]["status"].as_str(), dollars(&shown[0]["amount"])), (Some("POSTED"), Cents::new(1410)));
    assert_eq!(waiting(&app).await, Cents::new(90));
    assert_eq!(sync(&app).await, "added 0, posted 0, removed 0, amended 0", "a sync of nothing new changes nothing");
    assert_eq!(waiting(&app).await, Cents::new(90), "rounded up once");
    assert_ledger_balanced(&app).await;
}

async fn a_hold_that_vanishes_leaves_the_list_and_is_never_collected(backend: Backend) {
    let app = TestApp::spawn_with(backend, options("100.00")).await;
    let s = steered_user(&app).await;
    let created = events(&app, &s.member_guid, json!([purchase(&s, "60.01", "Fuel Hold", true)])).await;
    refresh(&app, &s).await;
    assert_eq!(listed(&app, &s, "Fuel Hold").await.len(), 1);
    events(&app, &s.member_guid, json!([{"kind": "drop", "guid": created[0]}])).await;
    assert_eq!(sync(&app).await, "added 0, posted 0, removed 1, amended 0");
    assert!(listed(&app, &s, "Fuel Hold").await.is_empty(), "the vanished hold leaves the list");
    assert_eq!(waiting(&app).await, Cents::ZERO);
    assert_ledger_balanced(&app).await;
}

async fn a_removed_purchase_loses_its_roundup_before_collection_and_is_corrected_after(backend: Backend) {
    let app = TestApp::spawn_with(backend, options("1.00")).await;
    let s = steered_user(&app).await;
    // Before collection: the round-up simply goes.
    let created = events(&app, &s.member_guid, json!([purchase(&s, "7.30", "Book Shop", false)])).await;
    refresh(&app, &s).await;
    assert_eq!(waiting(&app).await, Cents::new(70));
    events(&app, &s.member_guid, json!([{"kind": "remove", "guid": created[0]}])).await;
    assert_eq!(sync(&app).await, "added 0, posted 0, removed 1, amended 0");
    assert_eq!(waiting(&app).await, Cents::ZERO, "the removed purchase's round-up is given up");
    assert!(listed(&app, &s, "Book Shop").await.is_empty());

    // After collection: a correction, offset against the next collection.
    let created = events(
        &app,
        &s.member_guid,
        json!([purchase(&s, "10.25", "Hardware", false), purchase(&s, "20.40", "Grocer", false),]),
    )
    .await;
    refresh(&app, &s).await;
    let Collected::Sent { collection_id, amount, .. } = only(&collect(&app).await).clone() else { panic!() };
    assert_eq!(amount, Cents::new(135));
    process_at_dwolla(&app).await;
    wait_collection(&app, &s.token, collection_id, "processed").await;
    events(&app, &s.member_guid, json!([{"kind": "remove", "guid": created[0]}])).await;
    refresh(&app, &s).await;
    let (ok, ledger) = donkies(&app, &["ledger", "user", EMAIL]).await;
    assert!(ok, "{ledger}");
    assert!(ledger.contains("0.75  round-up") && ledger.contains("removed  open"), "{ledger}");
    assert_ledger_balanced(&app).await;

    // 0.99 waits, less the 0.75 correction: below the minimum, nothing is collected.
    events(&app, &s.member_guid, json!([purchase(&s, "5.01", "Bakery", false)])).await;
    refresh(&app, &s).await;
    assert_eq!(waiting(&app).await, Cents::new(24));
    // 0.99 + 0.90 - 0.75: the correction is used up by the next collection.
    events(&app, &s.member_guid, json!([purchase(&s, "3.10", "Kiosk", false)])).await;
    refresh(&app, &s).await;
    let Collected::Sent { collection_id, amount, .. } = only(&collect(&app).await).clone() else { panic!() };
    assert_eq!(amount, Cents::new(114));
    process_at_dwolla(&app).await;
    let done = wait_collection(&app, &s.token, collection_id, "processed").await;
    assert_eq!(dollars(&done["amount"]), Cents::new(114));
    let (_, ledger) = donkies(&app, &["ledger", "user", EMAIL]).await;
    assert!(ledger.contains(&format!("offset by collection {collection_id}")), "{ledger}");
    assert_eq!(waiting(&app).await, Cents::ZERO);
    assert_ledger_balanced(&app).await;
}

async fn an_amended_amount_moves_the_roundup_before_and_after_collection(backend: Backend) {
    let app = TestApp::spawn_with(backend, options("1.00")).await;
    let s = steered_user(&app).await;
    let created = events(&app, &s.member_guid, json!([purchase(&s, "8.40", "Diner", false)])).await;
    refresh(&app, &s).await;
    assert_eq!(waiting(&app).await, Cents::new(60));
    // Before collection: the new round-up replaces the old one.
    events(&app, &s.member_guid, json!([{"kind": "amend", "guid": created[0], "amount": "8.10"}])).await;
    assert_eq!(sync(&app).await, "added 0, posted 0, removed 0, amended 1");
    assert_eq!(waiting(&app).await, Cents::new(90));
    let Collected::Sent { collection_id, amount, .. } = only(&{
        events(&app, &s.member_guid, json!([purchase(&s, "4.50", "Snacks", false)])).await;
        refresh(&app, &s).await;
        collect(&app).await
    })
    .clone() else {
        panic!()
    };
    assert_eq!(amount, Cents::new(140));
    process_at_dwolla(&app).await;
    wait_collection(&app, &s.token, collection_id, "processed").await;
    // After collection: 0.90 was collected, 0.30 is right; the difference is offset.
    events(
        &app,
        &s.member_guid,
        json!([
            {"kind": "amend", "guid": created[0], "amount": "8.70"},
            purchase(&s, "2.01", "Parking", false),
        ]),
    )
    .await;
    refresh(&app, &s).await;
    // 0.99 (parking) + 0.30 (the diner again) - 0.90 (taken back).
    assert_eq!(waiting(&app).await, Cents::new(39));
    assert_ledger_balanced(&app).await;
}

async fn relinking_the_same_bank_keeps_the_accounts_and_never_rounds_up_a_purchase_twice(backend: Backend) {
    let app = TestApp::spawn_with(backend, options("0.01")).await;
    let s = steered_user(&app).await;
    // The user's own split of the debts, not the even one.
    let (_, accounts) = app.get("/v1/accounts", Some(&s.token)).await;
    let debts: Vec<i64> = accounts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type_ds"] == "debt")
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(debts.len(), 2, "{accounts}");
    let shares = json!({format!("id{}", debts[0]): 70, format!("id{}", debts[1]): 30});
    let (status, body) = app.call(Method::PUT, "/v1/accounts/edit_share", Some(&s.token), Some(shares)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, before) = app.get("/v1/accounts", Some(&s.token)).await;
    let (_, listed_before) = app.get("/v1/transactions", Some(&s.token)).await;
    let (status, _) = app.call(Method::DELETE, &format!("/v1/members/{}", s.identifier), Some(&s.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let credentials =
        json!([{"field_name": "LOGIN", "value": "test_atrium"}, {"field_name": "PASSWORD", "value": "password"}]);
    let (status, member) = app
        .post("/v1/members", Some(&s.token), json!({"institution_code": "mxbank", "credentials": credentials}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{member}");
    let path = format!("/v1/members/{}", member["identifier"].as_str().unwrap());
    wait_for(&app, &path, &s.token, "SUCCESS", |m| m["member_status"] == "SUCCESS").await;
    app.wait_jobs_idle().await;

    let (_, after) = app.get("/v1/accounts", Some(&s.token)).await;
    let ids = |list: &Value| {
        let mut ids: Vec<i64> = list.as_array().unwrap().iter().map(|a| a["id"].as_i64().unwrap()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&after), ids(&before), "the re-linked accounts keep their ids");
    let shares = |list: &Value| -> Vec<(i64, i64)> {
        let mut shares: Vec<(i64, i64)> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["id"].as_i64().unwrap(), a["transfer_share"].as_i64().unwrap()))
            .collect();
        shares.sort();
        shares
    };
    assert_eq!(shares(&after), shares(&before), "and their debt shares");
    let source = after.as_array().unwrap().iter().find(|a| a["id"] == before[0]["id"]).unwrap();
    assert_eq!(source["is_funding_source_for_transfer"], true, "{source}");
    let (_, listed_after) = app.get("/v1/transactions", Some(&s.token)).await;
    assert_eq!(listed_after.as_array().unwrap().len(), listed_before.as_array().unwrap().len());
    // A minimum of one cent: any purchase rounded up again would be collected.
    assert_eq!(waiting(&app).await, Cents::ZERO, "no purchase is rounded up twice");
    let stored = donkies_store::transactions::count_for_user(app.db(), s.user_id).await.unwrap();
    assert_eq!(stored as usize, listed_after.as_array().unwrap().len(), "no duplicate rows, removed or not");
    assert_ledger_balanced(&app).await;
}

async fn two_identical_purchases_on_one_day_are_both_rounded_up(backend: Backend) {
    let app = TestApp::spawn_with(backend, options("100.00")).await;
    let s = steered_user(&app).await;
    events(
        &app,
        &s.member_guid,
        json!([purchase(&s, "3.25", "Vending", false), purchase(&s, "3.25", "Vending", false)]),
    )
    .await;
    assert_eq!(sync(&app).await, "added 2, posted 0, removed 0, amended 0");
    assert_eq!(listed(&app, &s, "Vending").await.len(), 2);
    assert_eq!(waiting(&app).await, Cents::new(150));
}

async fn one_sync_of_a_member_at_a_time(backend: Backend) {
    let app = TestApp::spawn_with(backend, options("100.00")).await;
    let s = steered_user(&app).await;
    let member = donkies_store::members::list_for_user(app.db(), s.user_id).await.unwrap().remove(0);
    // Another process holds the member's sync: a sync here waits for it.
    let mut tx = app.db().begin().await.unwrap();
    let until = donkies_store::now() + chrono::Duration::seconds(60);
    assert!(
        donkies_store::members::claim_sync(&mut tx, member.id, "elsewhere", until, donkies_store::now()).await.unwrap()
    );
    tx.commit().await.unwrap();
    events(&app, &s.member_guid, json!([purchase(&s, "9.99", "Late Night", false)])).await;
    aggregate_at_bank(&app, &s).await;
    let banking = services(&app).banking.clone();
    let sync = tokio::spawn(async move { banking.sync_member_transactions(member.id).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!sync.is_finished(), "the sync waits while another holds the member");
    assert!(listed(&app, &s, "Late Night").await.is_empty());
    let mut tx = app.db().begin().await.unwrap();
    donkies_store::members::release_sync(&mut tx, member.id, "elsewhere").await.unwrap();
    tx.commit().await.unwrap();
    sync.await.unwrap().unwrap();
    assert_eq!(listed(&app, &s, "Late Night").await.len(), 1);

    // Many at once: one after another, each row stored once.
    let runs = (0..4).map(|_| {
        let banking = services(&app).banking.clone();
        tokio::spawn(async move { banking.sync_member_transactions(member.id).await })
    });
    for run in futures::future::join_all(runs).await {
        run.unwrap().unwrap();
    }
    assert_eq!(listed(&app, &s, "Late Night").await.len(), 1);
    assert_eq!(waiting(&app).await, Cents::new(1));
}

/// Under zero configuration `serve` serves its Atrium simulator under `/__sandbox/atrium`:
/// events steered there are what an operator command in another process syncs.
async fn zero_configuration_processes_share_one_simulated_bank(backend: Backend) {
    let app = TestApp::spawn_with(backend, Options { sandbox: true, ..Options::default() }).await;
    let (token, debit) = payments_user(&app, EMAIL).await;
    let (_, user) = app.get("/v1/user", Some(&token)).await;
    let user_id = user["id"].as_i64().unwrap();
    let member = donkies_store::members::list_for_user(app.db(), user_id).await.unwrap().remove(0);
    let accounts = donkies_store::accounts::list_for_user(app.db(), user_id).await.unwrap();
    let account = accounts.iter().find(|a| Some(a.id) == debit[0]["id"].as_i64()).unwrap();
    let url = app.url(&format!("/__sandbox/atrium/__sim/members/{}/events", member.guid.unwrap()));
    let event = json!([{"kind": "purchase", "account_guid": account.guid, "amount": "4.20", "description": "Tea"}]);
    let response = app.client.post(url).json(&event).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sync(&app).await, "added 1, posted 0, removed 0, amended 0");
    let (_, list) = app.get("/v1/transactions", Some(&token)).await;
    assert!(list.as_array().unwrap().iter().any(|t| t["description"] == "Tea"), "{list}");
}
