//! Payments through Dwolla, black-box: customers appear by themselves, funding sources by
//! micro-deposits and by IAV, the round-up source, transfers tracked to their end, webhooks.

use donkies_domain::ExposeSecret;
use std::time::Duration;

use donkies_server::services::payments::Endpoint;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{Backend, TestApp};

both_databases!(
    completing_the_profile_creates_a_verified_customer_by_itself,
    a_bank_added_by_numbers_verifies_with_its_micro_deposits_within_three_attempts,
    a_bank_added_by_iav_becomes_the_round_up_source,
    another_users_funding_source_or_customer_cannot_be_used,
    a_transfer_is_created_once_and_tracked_to_processed,
    the_operator_records_several_transfers_at_once,
    ach_returns_fail_the_transfer_and_act_on_the_bank,
    refused_pairs_never_reach_dwolla,
    a_transfer_survives_an_outage_and_a_crash_after_dwollas_answer_without_a_second_transfer,
    webhooks_are_verified_and_a_replay_has_one_effect,
    a_customer_dwolla_already_has_for_the_email_is_linked_not_duplicated,
);

pub(crate) async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::PUT, path, Some(token), Some(body)).await
}

/// Drive the server until `GET path` answers 200 with a body for which `pred` holds.
pub(crate) async fn wait_for(
    app: &TestApp,
    path: &str,
    token: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    app.eventually(what, async || match app.get(path, Some(token)).await {
        (StatusCode::OK, body) if pred(&body) => Ok(body),
        (status, body) => Err(format!("GET {path}: {status} {body}")),
    })
    .await
}

pub(crate) fn complete_profile() -> Value {
    json!({"phone": "6175550100", "address1": "1 Main St", "city": "Boston", "state": "MA",
           "postal_code": "02108", "date_of_birth": "1990-05-17", "ssn": "123-45-6789"})
}

/// A user with a linked bank (four accounts) whose profile is complete and whose customer is
/// verified at Dwolla; returns the token and the user's debit accounts.
pub(crate) async fn payments_user(app: &TestApp, email: &str) -> (String, Vec<Value>) {
    let token = app.signed_up_user(email).await;
    wait_for(app, "/v1/institutions", &token, "the institution catalog", |b| {
        b.as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    let credentials =
        json!([{"field_name": "LOGIN", "value": "test_atrium"}, {"field_name": "PASSWORD", "value": "password"}]);
    let (status, member) =
        app.post("/v1/members", Some(&token), json!({"institution_code": "mxbank", "credentials": credentials})).await;
    assert_eq!(status, StatusCode::CREATED, "{member}");
    let path = format!("/v1/members/{}", member["identifier"].as_str().unwrap());
    wait_for(app, &path, &token, "SUCCESS", |m| m["member_status"] == "SUCCESS").await;
    let (status, user) = put(app, "/v1/user", &token, complete_profile()).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    wait_for(app, "/v1/user", &token, "a verified customer", |u| u["dwolla_customer"]["status"] == "verified").await;
    let (_, accounts) = app.get("/v1/accounts", Some(&token)).await;
    let debit: Vec<Value> = accounts.as_array().unwrap().iter().filter(|a| a["type_ds"] == "debit").cloned().collect();
    assert_eq!(debit.len(), 2, "{accounts}");
    // SUCCESS shows as soon as the accounts are in; the transactions follow in the same job.
    app.wait_jobs_idle().await;
    (token, debit)
}

/// Add a bank by numbers to `account` and wait until its micro-deposits were sent.
pub(crate) async fn add_bank(app: &TestApp, token: &str, account: &Value, name: &str) -> Value {
    // Dwolla refuses the same bank twice for one customer: a number of the account's own.
    let number = format!("{}", 100_000_000 + account["id"].as_i64().unwrap() % 900_000_000);
    let body = json!({"account_id": account["id"], "account_number": number, "routing_number": "222222226",
                      "name": name, "type": "checking"});
    let (status, source) = app.post("/v1/funding_sources", Some(token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    assert_eq!(
        (source["status"].as_str(), source["account_number"].as_str()),
        (Some("unverified"), Some(&number[number.len() - 4..])),
        "{source}"
    );
    assert_eq!(source["account"]["id"], account["id"]);
    let id = source["id"].as_i64().unwrap();
    let list = wait_for(app, "/v1/funding_sources", token, "micro-deposits sent", |l| {
        l.as_array().unwrap().iter().any(|f| f["id"] == id && f["md_status"] == "pending" && f["dwolla_id"].is_string())
    })
    .await;
    list.as_array().unwrap().iter().find(|f| f["id"] == id).unwrap().clone()
}

pub(crate) async fn verify(app: &TestApp, token: &str, source: &Value, a1: &str, a2: &str) -> (StatusCode, Value) {
    let path = format!("/v1/funding_sources/{}/verify", source["id"]);
    app.post(&path, Some(token), json!({"amount1": a1, "amount2": a2})).await
}

/// A verified funding source (by micro-deposits) on the user's first debit account.
pub(crate) async fn verified_bank(app: &TestApp, token: &str, account: &Value, name: &str) -> Value {
    let source = add_bank(app, token, account, name).await;
    let (status, body) = verify(app, token, &source, "0.03", "0.07").await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("verified")), "{body}");
    body
}

/// The stored transfer once `pred` holds for it, driving the server until then.
pub(crate) async fn wait_transfer(
    app: &TestApp,
    id: i64,
    what: &str,
    pred: impl Fn(&donkies_store::payments::Transfer) -> bool,
) -> donkies_store::payments::Transfer {
    app.eventually(&format!("the transfer {what}"), async || {
        let t = donkies_store::payments::transfer_by_id(app.db(), id).await.unwrap().unwrap();
        if pred(&t) { Ok(t) } else { Err(t) }
    })
    .await
}

pub(crate) fn services(app: &TestApp) -> &donkies_server::services::Services {
    app.server.as_ref().unwrap().services()
}

/// How many transfers the simulated Dwolla holds for the customer of `user`'s token.
pub(crate) async fn transfers_at_dwolla(app: &TestApp, token: &str) -> u64 {
    let (_, user) = app.get("/v1/user", Some(token)).await;
    let customer = user["dwolla_customer"]["dwolla_id"].as_str().unwrap().to_owned();
    let page = services(app).payments.rail.customer_transfers(&customer, Default::default()).await.unwrap();
    page.total
}

async fn completing_the_profile_creates_a_verified_customer_by_itself(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.signed_up_user("ada@example.com").await;
    let (status, user) = app.get("/v1/user", Some(&token)).await;
    assert_eq!((status, &user["dwolla_customer"]), (StatusCode::OK, &Value::Null), "no customer before the profile");
    assert_eq!(app.get("/v1/customer", Some(&token)).await.0, StatusCode::NOT_FOUND);

    let (status, _) = put(&app, "/v1/user", &token, complete_profile()).await;
    assert_eq!(status, StatusCode::OK);
    let user =
        wait_for(&app, "/v1/user", &token, "a verified customer", |u| u["dwolla_customer"]["status"] == "verified")
            .await;
    let customer = &user["dwolla_customer"];
    assert!(customer["id"].as_i64().is_some_and(|id| id > 0), "{customer}");
    assert_eq!((customer["type"].as_str(), customer["dwolla_type"].as_str()), (Some("personal"), Some("personal")));
    let dwolla_id = customer["dwolla_id"].as_str().unwrap();
    let at_dwolla = services(&app).payments.rail.customer(dwolla_id).await.unwrap();
    assert_eq!(at_dwolla.email, "ada@example.com");

    let (status, full) = app.get("/v1/customer", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{full}");
    assert_eq!(
        (full["ssn"].as_str(), full["city"].as_str(), full["status"].as_str()),
        (Some("***-**-6789"), Some("Boston"), Some("verified"))
    );
    // A second customer is refused; the SSN is stored sealed.
    let (status, body) = app.post("/v1/customer", Some(&token), json!({"type": "unverified"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let stored =
        donkies_store::payments::customer_of_user(app.db(), user["id"].as_i64().unwrap()).await.unwrap().unwrap();
    assert!(!stored.ssn_encrypted.unwrap().contains("123456789"));

    // Another type on request, for a user without a profile.
    let bob = app.signed_up_user("bob@example.com").await;
    let (status, body) = app.post("/v1/customer", Some(&bob), json!({"type": "receive-only"})).await;
    assert_eq!(
        (status, body["type"].as_str(), &body["dwolla_id"]),
        (StatusCode::CREATED, Some("receive-only"), &Value::Null),
        "{body}"
    );
    wait_for(&app, "/v1/customer", &bob, "the customer at Dwolla", |c| {
        c["status"] == "unverified" && c["dwolla_id"].is_string()
    })
    .await;
    let (status, body) = app.post("/v1/customer", Some(&bob), json!({"type": "business"})).await;
    assert_eq!((status, body["type"].is_array()), (StatusCode::BAD_REQUEST, true), "{body}");
}

async fn a_bank_added_by_numbers_verifies_with_its_micro_deposits_within_three_attempts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, debit) = payments_user(&app, "ada@example.com").await;
    let source = add_bank(&app, &token, &debit[0], "Checking").await;
    let (status, body) = verify(&app, &token, &source, "0.09", "0.09").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = verify(&app, &token, &source, "0.02", "0.04").await;
    assert_eq!(
        (status, body["status"].as_str(), body["md_status"].as_str()),
        (StatusCode::OK, Some("verified"), Some("processed")),
        "{body}"
    );

    // Wrong three times: out of attempts, and shown as such.
    let other = add_bank(&app, &token, &debit[1], "Savings").await;
    for attempt in 1..=3 {
        let (status, body) = verify(&app, &token, &other, "0.09", "0.09").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "attempt {attempt}: {body}");
    }
    let (status, body) = verify(&app, &token, &other, "0.02", "0.04").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, list) = app.get("/v1/funding_sources", Some(&token)).await;
    let shown = list.as_array().unwrap().iter().find(|f| f["id"] == other["id"]).unwrap();
    assert_eq!(
        (shown["status"].as_str(), shown["md_status"].as_str()),
        (Some("unverified"), Some("max_attempts")),
        "{shown}"
    );

    // Bad input never reaches Dwolla.
    let bad = json!({"account_id": debit[0]["id"], "account_number": "12", "routing_number": "222222227", "name": "", "type": "cash"});
    let (status, body) = app.post("/v1/funding_sources", Some(&token), bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for field in ["account_number", "routing_number", "name", "type"] {
        assert!(body[field].is_array(), "{field}: {body}");
    }
    let (status, body) = verify(&app, &token, &json!({"id": 999}), "0.01", "0.02").await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"detail": "Not found."})));
}

/// A bank the user adds in Dwolla's IAV window (dwolla.js hands the page the JSON the
/// simulator answers); its Dwolla id.
pub(crate) async fn bank_through_iav(app: &TestApp, token: &str) -> String {
    let (_, user) = app.get("/v1/user", Some(token)).await;
    let customer = user["dwolla_customer"]["dwolla_id"].as_str().unwrap().to_owned();
    let (status, body) = app.post(&format!("/v1/get_iav_token/{customer}"), Some(token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let iav = body["token"].as_str().unwrap();
    let finished: Value = app
        .client
        .post(app.dwolla.base_url().join(&format!("__sim/iav/{iav}")).unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let href = finished["_links"]["funding-source"]["href"].as_str().unwrap();
    href.rsplit('/').next().unwrap().to_owned()
}

async fn a_bank_added_by_iav_becomes_the_round_up_source(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, debit) = payments_user(&app, "ada@example.com").await;
    let dwolla_id = &bank_through_iav(&app, &token).await;

    // Not the round-up source before it is verified and linked.
    let path = format!("/v1/accounts/set_funding_source/{}", debit[0]["id"]);
    assert_eq!(app.post(&path, Some(&token), json!({})).await.0, StatusCode::BAD_REQUEST);
    let (status, source) = app
        .post(
            "/v1/create_funding_source_by_iav",
            Some(&token),
            json!({"account_id": debit[0]["id"], "dwolla_id": dwolla_id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    assert_eq!(
        (source["status"].as_str(), source["verification_type"].as_str()),
        (Some("verified"), Some("iav")),
        "{source}"
    );
    assert_eq!(source["account"]["is_dwolla_created"], true);
    let (status, body) = app.post(&path, Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, accounts) = app.get("/v1/accounts", Some(&token)).await;
    let sources: Vec<bool> =
        accounts.as_array().unwrap().iter().map(|a| a["is_funding_source_for_transfer"] == true).collect();
    assert_eq!(sources.iter().filter(|s| **s).count(), 1, "{accounts}");
    // The token was single-use; a second account cannot take the same bank.
    let (status, body) = app
        .post(
            "/v1/create_funding_source_by_iav",
            Some(&token),
            json!({"account_id": debit[0]["id"], "dwolla_id": dwolla_id}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A customer that is not verified gets `{"message"}` for a token.
    let bob = app.signed_up_user("bob@example.com").await;
    app.post("/v1/customer", Some(&bob), json!({"type": "unverified"})).await;
    let c = wait_for(&app, "/v1/customer", &bob, "bob at Dwolla", |c| c["dwolla_id"].is_string()).await;
    let (status, body) =
        app.post(&format!("/v1/get_iav_token/{}", c["dwolla_id"].as_str().unwrap()), Some(&bob), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("not verified")), "{body}");
}

async fn another_users_funding_source_or_customer_cannot_be_used(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ada, ada_debit) = payments_user(&app, "ada@example.com").await;
    let (bob, bob_debit) = payments_user(&app, "bob@example.com").await;
    let ada_source = verified_bank(&app, &ada, &ada_debit[0], "Ada's").await;
    let (_, ada_user) = app.get("/v1/user", Some(&ada)).await;
    let ada_customer = ada_user["dwolla_customer"]["dwolla_id"].as_str().unwrap();

    // Bob may not take Ada's Dwolla funding source, her IAV token, or see her sources.
    let body = json!({"account_id": bob_debit[0]["id"], "dwolla_id": ada_source["dwolla_id"]});
    let (status, answer) = app.post("/v1/create_funding_source_by_iav", Some(&bob), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["dwolla_id"].is_array(), "{answer}");
    // The same answer as for an id that does not exist: nothing tells Bob that Ada's is in use.
    let unknown = json!({"account_id": bob_debit[0]["id"], "dwolla_id": "0b8e8b43-7a2b-4e8a-9d6e-000000000000"});
    assert_eq!(app.post("/v1/create_funding_source_by_iav", Some(&bob), unknown).await, (status, answer));
    let (status, _) = app.post(&format!("/v1/get_iav_token/{ada_customer}"), Some(&bob), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/v1/funding_sources", Some(&bob)).await;
    assert_eq!(list, json!([]));
    let (status, _) = verify(&app, &bob, &ada_source, "0.01", "0.02").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nor use Ada's account for his bank or as his round-up source.
    let body = json!({"account_id": ada_debit[1]["id"], "account_number": "123456789", "routing_number": "222222226", "name": "x", "type": "checking"});
    let (status, answer) = app.post("/v1/funding_sources", Some(&bob), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _) =
        app.post(&format!("/v1/accounts/set_funding_source/{}", ada_debit[0]["id"]), Some(&bob), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_transfer_is_created_once_and_tracked_to_processed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, debit) = payments_user(&app, "ada@example.com").await;
    let source = verified_bank(&app, &token, &debit[0], "Checking").await;
    let from = Endpoint::FundingSource(source["id"].as_i64().unwrap());
    let amount = donkies_domain::Cents::new(100);
    let transfer = services(&app).payments.transfer("test:one", from.clone(), Endpoint::Donkies, amount).await.unwrap();
    let again = services(&app).payments.transfer("test:one", from, Endpoint::Donkies, amount).await.unwrap();
    assert_eq!(again.id, transfer.id, "one reference, one transfer");
    let sent = wait_transfer(&app, transfer.id, "sent", |t| t.dwolla_id.is_some()).await;
    assert_eq!(sent.status.as_str(), "pending");
    assert_eq!(transfers_at_dwolla(&app, &token).await, 1);
    // Dwolla processes it; its webhook (or the backup poll) tells us.
    app.dwolla.handle().simulate();
    let done = wait_transfer(&app, transfer.id, "processed", |t| t.status.as_str() == "processed").await;
    assert!(done.processed_at.is_some());
    assert_eq!(transfers_at_dwolla(&app, &token).await, 1);
    app.eventually("the user hears of the transfer", async || {
        let heard = app.smtp.received().iter().any(|m| m.to == ["ada@example.com"] && m.data.contains("is complete"));
        if heard { Ok(()) } else { Err(()) }
    })
    .await;
}

async fn the_operator_records_several_transfers_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, debit) = payments_user(&app, "ada@example.com").await;
    verified_bank(&app, &token, &debit[0], "Checking").await;
    let path = format!("/v1/accounts/set_funding_source/{}", debit[0]["id"]);
    assert_eq!(app.post(&path, Some(&token), json!({})).await.0, StatusCode::CREATED);

    // `donkies payments transfer --count 3`, run beside the server as an operator would.
    let out =
        app.operator(&["payments", "transfer", "--user", "ada@example.com", "--amount", "1.25", "--count", "3"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().filter(|l| l.contains("of 1.25 recorded")).count(), 3, "{stdout}");

    let recorded = donkies_store::payments::list_transfers(app.db(), None).await.unwrap();
    let references: std::collections::HashSet<_> = recorded.iter().map(|t| t.reference.clone()).collect();
    assert_eq!((recorded.len(), references.len()), (3, 3), "three transfers, each its own: {recorded:?}");
    for t in &recorded {
        assert_eq!(t.amount, donkies_domain::Cents::new(125));
        wait_transfer(&app, t.id, "sent", |t| t.dwolla_id.is_some()).await;
    }
    assert_eq!(transfers_at_dwolla(&app, &token).await, 3);

    // Zero is refused before anything is recorded.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_donkies"))
        .args(["payments", "transfer", "--user", "ada@example.com", "--amount", "1.00", "--count", "0"])
        .env("DATABASE_URL", &app.test_db.url)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(donkies_store::payments::list_transfers(app.db(), None).await.unwrap().len(), 3);
}

async fn ach_returns_fail_the_transfer_and_act_on_the_bank(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, debit) = payments_user(&app, "ada@example.com").await;
    for (account, code, removed) in [(&debit[0], "R01", false), (&debit[1], "R03", true)] {
        let source = verified_bank(&app, &token, account, code).await;
        let id = source["id"].as_i64().unwrap();
        let reference = format!("test:{code}");
        let amount = donkies_domain::Cents::new(250);
        let t = services(&app)
            .payments
            .transfer(&reference, Endpoint::FundingSource(id), Endpoint::Donkies, amount)
            .await
            .unwrap();
        wait_transfer(&app, t.id, "sent", |t| t.dwolla_id.is_some()).await;
        app.dwolla.handle().simulate();
        let failed = wait_transfer(&app, t.id, "failed", |t| t.status.as_str() == "failed").await;
        assert_eq!(failed.failure_code.as_deref(), Some(code), "{failed:?}");
        let stored = donkies_store::payments::funding_source_by_id(app.db(), id).await.unwrap().unwrap();
        assert_eq!(stored.is_removed, removed, "{code}: {stored:?}");
        assert_eq!(stored.status.as_str(), if removed { "unverified" } else { "verified" }, "{code}");
    }
}

async fn refused_pairs_never_reach_dwolla(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ada, ada_debit) = payments_user(&app, "ada@example.com").await;
    let ada_source = verified_bank(&app, &ada, &ada_debit[0], "Ada").await;
    // Bob is an unverified customer with a verified bank (by IAV).
    let bob = app.signed_up_user("bob@example.com").await;
    let (_, member) = app
        .post(
            "/v1/members",
            Some(&bob),
            json!({"institution_code": "mxbank", "credentials": [
        {"field_name": "LOGIN", "value": "test_atrium"}, {"field_name": "PASSWORD", "value": "password"}]}),
        )
        .await;
    wait_for(&app, &format!("/v1/members/{}", member["identifier"].as_str().unwrap()), &bob, "SUCCESS", |m| {
        m["member_status"] == "SUCCESS"
    })
    .await;
    app.post("/v1/customer", Some(&bob), json!({"type": "unverified"})).await;
    wait_for(&app, "/v1/customer", &bob, "bob at Dwolla", |c| c["dwolla_id"].is_string()).await;
    let (_, accounts) = app.get("/v1/accounts", Some(&bob)).await;
    let bob_debit = accounts.as_array().unwrap().iter().find(|a| a["type_ds"] == "debit").unwrap().clone();
    let bob_source = verified_bank(&app, &bob, &bob_debit, "Bob").await;
    let carol = app.signed_up_user("carol@example.com").await;
    app.post("/v1/customer", Some(&carol), json!({"type": "unverified"})).await;
    let carol_user =
        wait_for(&app, "/v1/user", &carol, "carol at Dwolla", |u| u["dwolla_customer"]["dwolla_id"].is_string()).await;

    let s = &services(&app).payments;
    let id = |v: &Value| v["id"].as_i64().unwrap();
    let cents = donkies_domain::Cents::new(100);
    // Allowed: unverified → Account, verified → unverified, Account → verified.
    for (reference, from, to) in [
        ("pair:u-a", Endpoint::FundingSource(id(&bob_source)), Endpoint::Donkies),
        ("pair:v-u", Endpoint::FundingSource(id(&ada_source)), Endpoint::FundingSource(id(&bob_source))),
        ("pair:a-v", Endpoint::Donkies, Endpoint::FundingSource(id(&ada_source))),
    ] {
        let t = s.transfer(reference, from, to, cents).await.unwrap_or_else(|e| panic!("{reference}: {e}"));
        wait_transfer(&app, t.id, "sent", |t| t.dwolla_id.is_some()).await;
    }
    app.dwolla.handle().simulate();
    // Refused: unverified → unverified (Bob's bank to Bob's own is moot; a second unverified
    // user's bank is what matters), refused before any request to Dwolla.
    let before = app.dwolla.handle().token_requests();
    let _ = carol_user;
    let refused = s
        .transfer("pair:u-u", Endpoint::FundingSource(id(&bob_source)), Endpoint::FundingSource(id(&bob_source)), cents)
        .await;
    let err = refused.expect_err("unverified to unverified is refused");
    assert!(err.to_string().contains("refused"), "{err}");
    assert!(donkies_store::payments::transfer_by_reference(app.db(), "pair:u-u").await.unwrap().is_none());
    assert_eq!(app.dwolla.handle().token_requests(), before);
}

async fn a_transfer_survives_an_outage_and_a_crash_after_dwollas_answer_without_a_second_transfer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, debit) = payments_user(&app, "ada@example.com").await;
    let source = verified_bank(&app, &token, &debit[0], "Checking").await;
    let from = Endpoint::FundingSource(source["id"].as_i64().unwrap());
    // A worker that crashed after Dwolla's 201 and before our commit: Dwolla has the transfer
    // under our key, our row has no Dwolla id. The next run gets the same transfer back.
    let mut work = services(&app).begin().await.unwrap();
    let reference = "test:crash";
    let id = donkies_store::new_id();
    let key = format!("transfer-{id}");
    let (fs, _) = (source["dwolla_id"].as_str().unwrap(), ());
    let donkies = services(&app).payments.donkies_funding_source().await.unwrap();
    let request = donkies_dwolla::TransferRequest::between(fs, &donkies, donkies_domain::Cents::new(400));
    let first = services(&app)
        .payments
        .rail
        .create_transfer(&request.clone().with_metadata("reference", reference), &key)
        .await
        .unwrap();
    let new = donkies_store::payments::NewTransfer {
        id,
        user_id: None,
        reference,
        idempotency_key: &key,
        source_funding_source: fs,
        destination: &donkies,
        amount: donkies_domain::Cents::new(400),
        status: donkies_domain::TransferStatus::Pending,
        now: donkies_store::now(),
    };
    donkies_store::payments::insert_transfer(&mut work, &new).await.unwrap();
    work.enqueue(&donkies_server::jobs::payments::SendTransfer { transfer_id: id }, Duration::ZERO).await.unwrap();
    work.commit().await.unwrap();
    let sent = wait_transfer(&app, id, "sent after the crash", |t| t.dwolla_id.is_some()).await;
    assert_eq!(sent.dwolla_id.as_deref(), Some(first.as_str()), "the same transfer, not a second one");
    assert_eq!(transfers_at_dwolla(&app, &token).await, 1);

    // Dwolla down while the job runs: retried with the same key, one transfer in the end.
    app.dwolla.set_faults(donkies_sandbox::Faults::outage(503));
    let t = services(&app)
        .payments
        .transfer("test:outage", from.clone(), Endpoint::Donkies, donkies_domain::Cents::new(300))
        .await
        .unwrap();
    app.wait_failed_attempt("send_transfer", "").await;
    let waiting = donkies_store::payments::transfer_by_id(app.db(), t.id).await.unwrap().unwrap();
    assert!(waiting.dwolla_id.is_none());
    app.dwolla.set_faults(donkies_sandbox::Faults::default());
    wait_transfer(&app, t.id, "sent after the outage", |t| t.dwolla_id.is_some()).await;
    assert_eq!(transfers_at_dwolla(&app, &token).await, 2);
}

async fn webhooks_are_verified_and_a_replay_has_one_effect(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = app.settings().dwolla.webhook_secret.clone();
    let event = json!({"id": "evt-1", "topic": "customer_created", "resourceId": "nobody", "_links": {}});
    let body = serde_json::to_vec(&event).unwrap();
    let post = |body: Vec<u8>, signature: Option<String>| {
        let mut req =
            app.client.post(app.url("/v1/dwolla/webhooks")).body(body).header("Content-Type", "application/json");
        if let Some(s) = signature {
            req = req.header("X-Request-Signature-SHA-256", s);
        }
        req.send()
    };
    let forged = post(body.clone(), Some(donkies_dwolla::sign_webhook("wrong", &body))).await.unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(post(body.clone(), None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let signature = donkies_dwolla::sign_webhook(secret.expose_secret(), &body);
    assert_eq!(post(tampered, Some(signature.clone())).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // Correctly signed but not an event: a bad request, not a bad signature.
    let not_an_event = b"{\"hello\": 1}".to_vec();
    let signed = donkies_dwolla::sign_webhook(secret.expose_secret(), &not_an_event);
    let res = post(not_an_event, Some(signed)).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let answer: Value = res.json().await.unwrap();
    assert!(answer["non_field_errors"][0].as_str().is_some_and(|m| m.contains("not a Dwolla event")), "{answer}");
    let mut duplicates = Vec::new();
    for _ in 0..2 {
        let res = post(body.clone(), Some(signature.clone())).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let answer: Value = res.json().await.unwrap();
        duplicates.push(answer["duplicate"].clone());
    }
    assert_eq!(duplicates, [json!(false), json!(true)], "the replay is recognised and ignored");
    let mut tx = app.db().begin().await.unwrap();
    let recorded_again =
        donkies_store::payments::record_event(&mut tx, "evt-1", "x", "y", donkies_store::now()).await.unwrap();
    assert!(!recorded_again, "the event is on record once");
}

async fn a_customer_dwolla_already_has_for_the_email_is_linked_not_duplicated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A customer made for this address earlier (an earlier attempt whose answer was lost).
    let earlier = donkies_dwolla::wire::NewCustomer::unverified("Ada", "Lovelace", "ada@example.com");
    let existing = services(&app).payments.rail.create_customer(&earlier, "earlier-attempt").await.unwrap();
    let token = app.signed_up_user("ada@example.com").await;
    let (status, _) = put(&app, "/v1/user", &token, complete_profile()).await;
    assert_eq!(status, StatusCode::OK);
    let user =
        wait_for(&app, "/v1/user", &token, "the customer linked", |u| u["dwolla_customer"]["dwolla_id"].is_string())
            .await;
    assert_eq!(user["dwolla_customer"]["dwolla_id"].as_str(), Some(existing.as_str()));
    let query = donkies_dwolla::wire::CustomerQuery { email: Some("ada@example.com".into()), ..Default::default() };
    assert_eq!(
        services(&app).payments.rail.search_customers(&query).await.unwrap().total,
        1,
        "no second customer at Dwolla"
    );
}
