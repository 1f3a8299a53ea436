//! The money loop, black-box: round-ups collected into the Donkies account once they reach the
//! minimum, failures that give them back, payouts split across debts exact to the cent, closing
//! the account, the figures users see, and the ledger proving every cent — on both engines, with
//! the Atrium and Dwolla simulators.

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use donkies_domain::{Cents, CollectionHold};
use donkies_server::services::money::{Collected, PaidOut};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{Backend, Options, TestApp};
use crate::payments::{payments_user, services, transfers_at_dwolla, verified_bank, wait_for};

both_databases!(
    roundups_below_the_minimum_wait_and_above_it_one_collection_is_sent_and_processed,
    an_r01_failure_gives_the_roundups_back_and_a_later_run_collects_them_once,
    payout_day_splits_57_12_31_exactly_and_manual_parts_are_marked_paid,
    below_the_users_minimum_there_is_no_payout,
    closing_the_account_pays_out_everything_held,
    closing_without_a_debt_account_refunds_to_the_users_bank,
    a_worker_killed_after_dwolla_created_the_transfer_leaves_one_transfer_and_a_balanced_ledger,
    two_collection_runs_at_once_make_one_transfer_per_user,
    the_daily_cap_limits_what_one_day_collects,
    settings_and_contributions_refuse_bad_input_with_field_errors,
    the_payoff_projection_is_for_the_users_own_debt_accounts,
    operator_commands_collect_pay_out_and_prove_the_ledger_beside_the_server,
    operator_commands_say_so_when_no_worker_runs,
    a_collection_that_fails_for_a_user_says_so_and_exits_non_zero,
    a_low_balance_holds_the_collection_until_the_floor_is_lowered,
    a_stale_balance_holds_the_collection_until_a_sync_refreshes_it,
    the_overdraft_floor_is_whole_dollars_from_0_to_10000,
    many_contributions_at_once_never_sum_above_the_daily_or_monthly_cap,
    amount_available_drops_when_the_payout_is_made_not_when_a_manual_part_is_paid,
    a_batch_collects_exactly_what_one_user_at_a_time_collects,
    a_batch_pays_out_exactly_what_one_user_at_a_time_pays_out,
);

const WAIT: Duration = Duration::from_secs(40);

pub(crate) fn options(minimum: &str) -> Options {
    let mut options = Options::default();
    options.args.collection_minimum = Some(minimum.to_owned());
    options
}

/// A user with a linked bank, a verified customer and a verified round-up source on the first
/// debit account; the token and the debit accounts.
pub(crate) async fn money_user(app: &TestApp, email: &str) -> (String, Vec<Value>) {
    let (token, debit) = payments_user(app, email).await;
    verified_bank(app, &token, &debit[0], "Checking").await;
    let path = format!("/v1/accounts/set_funding_source/{}", debit[0]["id"]);
    let (status, body) = app.post(&path, Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (token, debit)
}

pub(crate) async fn patch(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::PATCH, path, Some(token), Some(body)).await
}

async fn contribute(app: &TestApp, token: &str, amount: &str) {
    let (status, body) = app.post("/v1/contributions", Some(token), json!({"amount": amount})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

pub(crate) async fn collect(app: &TestApp) -> Vec<(i64, Collected)> {
    services(app).money.collect_all(false, |_, _| {}).await.unwrap()
}

pub(crate) fn only(outcomes: &[(i64, Collected)]) -> &Collected {
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    &outcomes[0].1
}

pub(crate) fn dollars(value: &Value) -> Cents {
    Cents::parse(value.as_str().unwrap_or_else(|| panic!("not a decimal string: {value}"))).unwrap()
}

fn stat_cents(stat: &Value, field: &str) -> i64 {
    (stat[field].as_f64().unwrap_or_else(|| panic!("{field} is not a number: {stat}")) * 100.0).round() as i64
}

/// Wait until the collection with `id` has `status` in `/v1/transfers_donkies`.
pub(crate) async fn wait_collection(app: &TestApp, token: &str, id: i64, status: &str) -> Value {
    let list = wait_for(app, "/v1/transfers_donkies", token, status, |l| {
        l.as_array().unwrap().iter().any(|c| c["id"] == id && c["status"] == status)
    })
    .await;
    list.as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone()
}

/// Process every transfer Dwolla holds once the worker has sent what was recorded.
pub(crate) async fn process_at_dwolla(app: &TestApp) {
    app.eventually("the worker sends every transfer", async || {
        let waiting = donkies_store::payments::transfers_in_flight(app.db()).await.unwrap();
        if waiting.iter().all(|t| t.dwolla_id.is_some()) { Ok(()) } else { Err(waiting) }
    })
    .await;
    app.simulate_dwolla().await;
}

pub(crate) async fn assert_ledger_balanced(app: &TestApp) {
    app.wait_jobs_idle().await;
    let report = services(app).money.ledger_report(true).await.unwrap();
    assert!(report.problems.is_empty(), "ledger off: {:#?}", report.problems);
    assert!(report.users > 0);
}

/// A user whose purchases give nothing (round-ups paused before the first gathering), so that
/// only contributions move money: exact figures.
pub(crate) async fn paused_user(app: &TestApp, email: &str) -> (String, Vec<Value>) {
    let (token, debit) = money_user(app, email).await;
    let (status, body) = patch(app, "/v1/user_settings", &token, json!({"roundups_paused": true})).await;
    assert_eq!((status, body["roundups_paused"].as_bool()), (StatusCode::OK, Some(true)), "{body}");
    (token, debit)
}

/// Collect `amount` of contributions for the user and see it processed; the collection's id.
pub(crate) async fn collected(app: &TestApp, token: &str, amount: &str) -> i64 {
    contribute(app, token, amount).await;
    let outcomes = collect(app).await;
    let Collected::Sent { collection_id, amount: sent, .. } = only(&outcomes).clone() else {
        panic!("nothing collected: {outcomes:?}")
    };
    assert_eq!(sent, Cents::parse(amount).unwrap());
    process_at_dwolla(app).await;
    wait_collection(app, token, collection_id, "processed").await;
    collection_id
}

async fn roundups_below_the_minimum_wait_and_above_it_one_collection_is_sent_and_processed(backend: Backend) {
    // A minimum above anything the simulated bank's purchases round up to.
    let app = TestApp::spawn_with(backend, options("1000.00")).await;
    let (token, _) = money_user(&app, "ada@example.com").await;
    let (_, transactions) = app.get("/v1/transactions", Some(&token)).await;
    let roundups: i64 = transactions.as_array().unwrap().iter().map(|t| dollars(&t["roundup"]).get()).sum();
    assert!(roundups > 0, "the simulated purchases round up: {transactions}");

    let Collected::BelowMinimum { waiting } = only(&collect(&app).await).clone() else { panic!("collected") };
    assert_eq!(waiting.get(), roundups, "every purchase's round-up waits, as the transaction list shows");
    let (_, list) = app.get("/v1/transfers_donkies", Some(&token)).await;
    assert_eq!(list, json!([]), "nothing collected below the minimum");
    assert_eq!(transfers_at_dwolla(&app, &token).await, 0);
    let (_, stat) = app.get("/v1/stat", Some(&token)).await;
    assert_eq!(
        stat,
        json!({"amount_to_donkies": 0.0, "amount_to_user": 0.0, "amount_available": 0.0, "payments": 0,
               "collection_hold": null})
    );

    // A contribution takes the total over the minimum: one transfer of everything that waits.
    contribute(&app, &token, "1000.00").await;
    let Collected::Sent { collection_id, amount, .. } = only(&collect(&app).await).clone() else {
        panic!("no collection")
    };
    assert_eq!(amount.get(), roundups + 100_000);
    let again = collect(&app).await;
    assert_eq!(only(&again), &Collected::BelowMinimum { waiting: Cents::ZERO }, "collected once");
    let sent = wait_collection(&app, &token, collection_id, "pending").await;
    assert_eq!((sent["is_sent"].as_bool(), &sent["sent_at"]), (Some(false), &Value::Null));
    process_at_dwolla(&app).await;
    let done = wait_collection(&app, &token, collection_id, "processed").await;
    assert_eq!(dollars(&done["amount"]), amount);
    assert_eq!(done["is_sent"], true);
    assert!(done["sent_at"].as_str().is_some_and(|t| t.len() == 19), "{done}");
    assert_eq!(transfers_at_dwolla(&app, &token).await, 1, "one transfer at the provider");

    let (_, prepare) = app.get("/v1/transfers_prepare", Some(&token)).await;
    let parts = prepare.as_array().unwrap();
    assert!(!parts.is_empty());
    assert_eq!(parts.iter().map(|p| dollars(&p["roundup"]).get()).sum::<i64>(), amount.get(), "{prepare}");
    assert!(parts.iter().all(|p| p["account"].as_str().is_some_and(|a| !a.is_empty()) && p["id"].is_i64()));
    let (_, stat) = app.get("/v1/stat", Some(&token)).await;
    assert_eq!(stat_cents(&stat, "amount_to_donkies"), amount.get(), "{stat}");
    assert_eq!(stat_cents(&stat, "amount_available"), amount.get(), "{stat}");
    assert_eq!((stat_cents(&stat, "amount_to_user"), &stat["payments"]), (0, &json!(0)));
    assert_ledger_balanced(&app).await;
}

async fn an_r01_failure_gives_the_roundups_back_and_a_later_run_collects_them_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, debit) = payments_user(&app, "ada@example.com").await;
    // The first round-up source's bank returns every debit with R01 (insufficient funds).
    verified_bank(&app, &token, &debit[0], "R01").await;
    let path = format!("/v1/accounts/set_funding_source/{}", debit[0]["id"]);
    assert_eq!(app.post(&path, Some(&token), json!({})).await.0, StatusCode::CREATED);
    contribute(&app, &token, "10.00").await;
    let Collected::Sent { collection_id: first, amount, .. } = only(&collect(&app).await).clone() else { panic!() };
    process_at_dwolla(&app).await;
    let failed = wait_collection(&app, &token, first, "failed").await;
    assert_eq!(failed["failure_code"], "R01");
    assert_eq!(failed["is_sent"], false);
    let (_, stat) = app.get("/v1/stat", Some(&token)).await;
    assert_eq!(stat_cents(&stat, "amount_to_donkies"), 0, "{stat}");
    assert_ledger_balanced(&app).await;

    // A good bank becomes the round-up source; the next run collects what failed, once.
    verified_bank(&app, &token, &debit[1], "Savings").await;
    let path = format!("/v1/accounts/set_funding_source/{}", debit[1]["id"]);
    assert_eq!(app.post(&path, Some(&token), json!({})).await.0, StatusCode::CREATED);
    let Collected::Sent { collection_id: second, amount: again, .. } = only(&collect(&app).await).clone() else {
        panic!("the failed round-ups were not collected again")
    };
    assert_eq!(again, amount, "exactly what failed");
    assert_ne!(second, first);
    assert_eq!(only(&collect(&app).await), &Collected::BelowMinimum { waiting: Cents::ZERO });
    process_at_dwolla(&app).await;
    wait_collection(&app, &token, second, "processed").await;
    assert_eq!(transfers_at_dwolla(&app, &token).await, 2, "the failed one and the one that worked");
    let (_, stat) = app.get("/v1/stat", Some(&token)).await;
    assert_eq!(stat_cents(&stat, "amount_to_donkies"), amount.get(), "{stat}");
    let (_, prepare) = app.get("/v1/transfers_prepare", Some(&token)).await;
    let shown: i64 = prepare.as_array().unwrap().iter().map(|p| dollars(&p["roundup"]).get()).sum();
    assert_eq!(shown, amount.get(), "each round-up shows once: {prepare}");
    assert_ledger_balanced(&app).await;
}

/// Link a second bank so the user has four debt accounts; the active debt accounts' ids.
async fn four_debts(app: &TestApp, token: &str) -> Vec<i64> {
    let credentials =
        json!([{"field_name": "LOGIN", "value": "test_atrium"}, {"field_name": "PASSWORD", "value": "password"}]);
    let (status, member) = app
        .post("/v1/members", Some(token), json!({"institution_code": "wells_fargo", "credentials": credentials}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{member}");
    let path = format!("/v1/members/{}", member["identifier"].as_str().unwrap());
    wait_for(app, &path, token, "SUCCESS", |m| m["member_status"] == "SUCCESS").await;
    let (_, links) = app.get("/v1/link_debts", Some(token)).await;
    let ids: Vec<i64> = links.as_array().unwrap().iter().map(|l| l["account"]["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 4, "{links}");
    ids
}

/// The largest-remainder split, written out plainly.
fn expected_split(total: i64, shares: &[i64]) -> Vec<i64> {
    let mut parts: Vec<i64> = shares.iter().map(|s| total * s / 100).collect();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(total * shares[i] % 100), i));
    let left = total - parts.iter().sum::<i64>();
    for &i in order.iter().take(left as usize) {
        parts[i] += 1;
    }
    parts
}

async fn payout_day_splits_57_12_31_exactly_and_manual_parts_are_marked_paid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, _) = paused_user(&app, "ada@example.com").await;
    let debts = four_debts(&app, &token).await;
    let shares = json!({format!("id{}", debts[0]): 57, format!("id{}", debts[1]): 12,
                        format!("id{}", debts[2]): 31, format!("id{}", debts[3]): 0});
    let (status, body) = app.call(Method::PUT, "/v1/accounts/edit_share", Some(&token), Some(shares)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // 13.37 twice: 26.74, which no share divides evenly.
    collected(&app, &token, "13.37").await;
    collected(&app, &token, "13.37").await;
    let held = 2674;

    let day = NaiveDate::from_ymd_opt(2026, 12, 15).unwrap();
    let outcomes = services(&app).money.payout_all(day, false, |_, _| {}).await.unwrap();
    let PaidOut::Sent { amount, parts, .. } = &outcomes[0].1 else { panic!("{outcomes:?}") };
    assert_eq!(amount.get(), held);
    let again = services(&app).money.payout_all(day, false, |_, _| {}).await.unwrap();
    assert!(again.is_empty() || matches!(again[0].1, PaidOut::AlreadyPaid | PaidOut::Nothing(_)), "{again:?}");
    assert_eq!(parts.len(), 3, "no part for a 0 share: {parts:?}");

    let (_, debt) = app.get("/v1/transfers_debt", Some(&token)).await;
    let rows = debt.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{debt}");
    let expected = expected_split(held, &[57, 12, 31]);
    for (account, share, cents) in
        [(debts[0], 57, expected[0]), (debts[1], 12, expected[1]), (debts[2], 31, expected[2])]
    {
        let row = rows.iter().find(|r| r["account_id"] == account).unwrap_or_else(|| panic!("no part for {account}"));
        assert_eq!((dollars(&row["amount"]).get(), row["share"].as_i64()), (cents, Some(share)), "{row}");
        assert_eq!((row["is_processed"].as_bool(), row["method"].as_str()), (Some(false), Some("manual")));
    }
    assert_eq!(rows.iter().map(|r| dollars(&r["amount"]).get()).sum::<i64>(), held, "exact to the cent");
    let (_, user_transfers) = app.get("/v1/transfers_user", Some(&token)).await;
    assert_eq!(user_transfers.as_array().unwrap().len(), 1);
    assert_eq!(dollars(&user_transfers[0]["amount"]).get(), held);
    let (_, stat) = app.get("/v1/stat", Some(&token)).await;
    assert_eq!((stat_cents(&stat, "amount_to_user"), &stat["payments"]), (0, &json!(1)), "not paid yet: {stat}");

    // The operator pays the manual parts and records the references.
    let waiting = services(&app).money.manual_parts_waiting().await.unwrap();
    assert_eq!(waiting.len(), 3);
    for part in &waiting {
        services(&app).money.mark_part_paid(part.id, "BANK-REF-1").await.unwrap();
    }
    assert!(services(&app).money.mark_part_paid(waiting[0].id, "BANK-REF-2").await.is_err(), "paid once");
    let (_, debt) = app.get("/v1/transfers_debt", Some(&token)).await;
    assert!(debt.as_array().unwrap().iter().all(|r| r["is_processed"] == true && r["processed_at"].is_string()));
    let (_, stat) = app.get("/v1/stat", Some(&token)).await;
    assert_eq!(stat_cents(&stat, "amount_to_user"), held, "{stat}");
    assert_eq!(stat_cents(&stat, "amount_available"), 0, "{stat}");
    assert_ledger_balanced(&app).await;
}

async fn below_the_users_minimum_there_is_no_payout(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, _) = paused_user(&app, "ada@example.com").await;
    let (status, _) = patch(&app, "/v1/user_settings", &token, json!({"minimum_transfer_amount": 20})).await;
    assert_eq!(status, StatusCode::OK);
    collected(&app, &token, "19.99").await;
    let day = NaiveDate::from_ymd_opt(2026, 12, 15).unwrap();
    let outcomes = services(&app).money.payout_all(day, false, |_, _| {}).await.unwrap();
    assert_eq!(outcomes[0].1, PaidOut::BelowMinimum { held: Cents::new(1999) });
    let (_, user_transfers) = app.get("/v1/transfers_user", Some(&token)).await;
    assert_eq!(user_transfers, json!([]));
    // More collected reaches the minimum on a later payout day.
    collected(&app, &token, "5.01").await;
    let next = NaiveDate::from_ymd_opt(2027, 1, 15).unwrap();
    let outcomes = services(&app).money.payout_all(next, false, |_, _| {}).await.unwrap();
    assert!(matches!(&outcomes[0].1, PaidOut::Sent { amount, .. } if amount.get() == 2500), "{outcomes:?}");
    assert_ledger_balanced(&app).await;
}

async fn closing_the_account_pays_out_everything_held(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, _) = paused_user(&app, "ada@example.com").await;
    let (status, _) = patch(&app, "/v1/user_settings", &token, json!({"minimum_transfer_amount": 100})).await;
    assert_eq!(status, StatusCode::OK);
    collected(&app, &token, "7.45").await;
    contribute(&app, &token, "3.00").await; // waits in the bank: never collected after closing

    let (status, _) = app.post("/v1/user_close_account", Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let debt = wait_for(&app, "/v1/transfers_debt", &token, "the final payout", |l| {
        l.as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    let total: i64 = debt.as_array().unwrap().iter().map(|r| dollars(&r["amount"]).get()).sum();
    assert_eq!(total, 745, "everything held, below the user's minimum of 100: {debt}");
    let (status, user) = app.get("/v1/user", Some(&token)).await;
    assert_eq!((status, &user["is_closed_account"]), (StatusCode::OK, &json!(true)), "still readable");
    assert_eq!(collect(&app).await, vec![], "a closed account is not collected from");
    let (_, contributions) = app.get("/v1/contributions", Some(&token)).await;
    assert_eq!(contributions[0]["is_collected"], false, "{contributions}");
    let (status, body) = app.post("/v1/contributions", Some(&token), json!({"amount": "1.00"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_ledger_balanced(&app).await;
}

async fn closing_without_a_debt_account_refunds_to_the_users_bank(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, _) = paused_user(&app, "ada@example.com").await;
    let (_, links) = app.get("/v1/link_debts", Some(&token)).await;
    for link in links.as_array().unwrap() {
        let path = format!("/v1/accounts/set_active/{}", link["account"]["id"]);
        let (status, body) = app.call(Method::PUT, &path, Some(&token), Some(json!({"is_active": false}))).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    collected(&app, &token, "12.00").await;
    assert_eq!(app.post("/v1/user_close_account", Some(&token), json!({})).await.0, StatusCode::NO_CONTENT);
    let debt =
        wait_for(&app, "/v1/transfers_debt", &token, "the refund", |l| l.as_array().is_some_and(|l| l.len() == 1))
            .await;
    assert_eq!((debt[0]["method"].as_str(), dollars(&debt[0]["amount"]).get()), (Some("refund"), 1200), "{debt}");
    process_at_dwolla(&app).await;
    wait_for(&app, "/v1/transfers_debt", &token, "the refund processed", |l| l[0]["is_processed"] == true).await;
    let (_, stat) = app.get("/v1/stat", Some(&token)).await;
    assert_eq!((stat_cents(&stat, "amount_to_user"), stat_cents(&stat, "amount_available")), (1200, 0), "{stat}");
    assert_eq!(transfers_at_dwolla(&app, &token).await, 2, "the collection and the refund");
    assert_ledger_balanced(&app).await;
}

async fn a_worker_killed_after_dwolla_created_the_transfer_leaves_one_transfer_and_a_balanced_ledger(backend: Backend) {
    use donkies_server::jobs::Worker;
    let app = TestApp::spawn_with(backend, Options { with_worker: false, ..Default::default() }).await;
    let server = app.server.as_ref().unwrap();
    // A worker for the set-up, stopped before the collection.
    let stop = tokio_util::sync::CancellationToken::new();
    let setup = tokio::spawn(Worker::new(server.job_context(), Default::default()).run(stop.clone()));
    let (token, _) = paused_user(&app, "ada@example.com").await;
    contribute(&app, &token, "6.00").await;
    app.wait_jobs_idle().await;
    stop.cancel();
    setup.await.unwrap();

    let Collected::Sent { transfer_id, .. } = only(&collect(&app).await).clone() else { panic!() };
    // A worker claims the send job, Dwolla creates the transfer, and the worker dies before
    // recording Dwolla's answer.
    let db = app.db();
    let t = donkies_store::now();
    let job = donkies_store::jobs::claim(db, "killed-worker", t, t + chrono::Duration::milliseconds(500))
        .await
        .unwrap()
        .expect("the send job");
    assert_eq!(job.kind, "send_transfer");
    let transfer = donkies_store::payments::transfer_by_id(db, transfer_id).await.unwrap().unwrap();
    let request = donkies_dwolla::TransferRequest::between(
        &transfer.source_funding_source,
        &transfer.destination,
        transfer.amount,
    )
    .with_metadata("reference", &transfer.reference);
    let at_dwolla = services(&app).payments.rail.create_transfer(&request, &transfer.idempotency_key).await.unwrap();
    assert_eq!(transfers_at_dwolla(&app, &token).await, 1);

    // A new worker takes the job over once its lease lapses and finishes it.
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(Worker::new(server.job_context(), Default::default()).run(stop.clone()));
    let deadline = Instant::now() + WAIT;
    loop {
        let t = donkies_store::payments::transfer_by_id(db, transfer_id).await.unwrap().unwrap();
        if t.dwolla_id.is_some() {
            assert_eq!(t.dwolla_id.as_deref(), Some(at_dwolla.as_str()), "the same transfer, not a second");
            break;
        }
        assert!(Instant::now() < deadline, "the job was never finished: {t:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.dwolla.handle().simulate();
    let (_, list) = app.get("/v1/transfers_donkies", Some(&token)).await;
    let id = list[0]["id"].as_i64().unwrap();
    wait_collection(&app, &token, id, "processed").await;
    assert_eq!(transfers_at_dwolla(&app, &token).await, 1, "exactly one transfer at the provider");
    assert_ledger_balanced(&app).await;
    stop.cancel();
    worker.await.unwrap();
}

async fn two_collection_runs_at_once_make_one_transfer_per_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ada, _) = paused_user(&app, "ada@example.com").await;
    let (bob, _) = paused_user(&app, "bob@example.com").await;
    contribute(&app, &ada, "8.00").await;
    contribute(&app, &bob, "9.00").await;
    let (a, b) = tokio::join!(collect(&app), collect(&app));
    let sent = a.iter().chain(b.iter()).filter(|(_, o)| matches!(o, Collected::Sent { .. })).count();
    assert_eq!(sent, 2, "one collection per user: {a:?} {b:?}");
    for token in [&ada, &bob] {
        let (_, list) = app.get("/v1/transfers_donkies", Some(token)).await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    }
    process_at_dwolla(&app).await;
    assert_eq!(transfers_at_dwolla(&app, &ada).await, 1);
    assert_eq!(transfers_at_dwolla(&app, &bob).await, 1);
    assert_ledger_balanced(&app).await;
}

async fn the_daily_cap_limits_what_one_day_collects(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, _) = paused_user(&app, "ada@example.com").await;
    // Contributed before the cap was set: today's contributions alone now stay within it.
    for _ in 0..3 {
        contribute(&app, &token, "6.00").await;
    }
    let (status, body) = patch(&app, "/v1/user_settings", &token, json!({"daily_cap": 10})).await;
    assert_eq!((status, &body["daily_cap"]), (StatusCode::OK, &json!(10)), "{body}");
    let Collected::Sent { amount, .. } = only(&collect(&app).await).clone() else { panic!() };
    assert_eq!(amount.get(), 600, "only what fits under $10 today");
    assert!(matches!(only(&collect(&app).await), Collected::HeldByCap { waiting } if waiting.get() == 1200));
    // Lifting the cap lets the rest go.
    let (status, body) = patch(&app, "/v1/user_settings", &token, json!({"daily_cap": 0})).await;
    assert_eq!((status, &body["daily_cap"]), (StatusCode::OK, &Value::Null), "{body}");
    let Collected::Sent { amount, .. } = only(&collect(&app).await).clone() else { panic!() };
    assert_eq!(amount.get(), 1200);
    assert_ledger_balanced(&app).await;
}

async fn settings_and_contributions_refuse_bad_input_with_field_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.signed_up_user("ada@example.com").await;
    let (status, settings) = app.get("/v1/user_settings", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        settings,
        json!({"minimum_transfer_amount": 5, "is_even_roundup": false, "roundups_paused": false,
               "roundup_multiplier": 1, "daily_cap": null, "monthly_cap": null, "overdraft_floor": 100})
    );
    let bad = json!({"roundup_multiplier": 4, "daily_cap": 5, "monthly_cap": "lots", "roundups_paused": "maybe"});
    let (status, body) = patch(&app, "/v1/user_settings", &token, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for field in ["roundup_multiplier", "daily_cap", "monthly_cap", "roundups_paused"] {
        assert!(body[field].is_array(), "{field}: {body}");
    }
    let (_, unchanged) = app.get("/v1/user_settings", Some(&token)).await;
    assert_eq!(unchanged, settings, "a refused change changes nothing");
    let (status, body) =
        patch(&app, "/v1/user_settings", &token, json!({"roundup_multiplier": 3, "monthly_cap": 50})).await;
    assert_eq!((status, &body["roundup_multiplier"], &body["monthly_cap"]), (StatusCode::OK, &json!(3), &json!(50)));

    for amount in [json!("abc"), json!("0"), json!("-1.00"), json!("10000.01"), json!(null), json!([1])] {
        let (status, body) = app.post("/v1/contributions", Some(&token), json!({"amount": amount})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{amount}: {body}");
        assert!(body["amount"].is_array(), "{amount}: {body}");
    }
    let (status, body) = app.post("/v1/contributions", Some(&token), json!({"amount": "60.00"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "above the monthly cap: {body}");
    let (status, body) = app.post("/v1/contributions", Some(&token), json!({"amount": "12.5"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!((body["amount"].as_str(), body["is_collected"].as_bool()), (Some("12.50"), Some(false)));
    let (_, list) = app.get("/v1/contributions", Some(&token)).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    for path in
        ["/v1/stat", "/v1/transfers_prepare", "/v1/transfers_donkies", "/v1/transfers_user", "/v1/transfers_debt"]
    {
        assert_eq!(app.get(path, None).await.0, StatusCode::UNAUTHORIZED, "{path}");
    }
}

async fn the_payoff_projection_is_for_the_users_own_debt_accounts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, debit) = payments_user(&app, "ada@example.com").await;
    let (_, links) = app.get("/v1/link_debts", Some(&token)).await;
    let debt = &links[0]["account"];
    let path = format!("/v1/accounts/{}/projection", debt["id"]);
    let (status, p) = app.get(&path, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["account_id"], debt["id"]);
    assert!(dollars(&p["monthly_roundup"]).get() > 0, "the simulated purchases round up: {p}");
    if let (Some(without), Some(with)) = (p["months_to_payoff"].as_u64(), p["months_to_payoff_with_roundups"].as_u64())
    {
        assert!(with <= without, "{p}");
        assert!(dollars(&p["interest_saved"]).get() >= 0, "{p}");
    }
    // Tripling the round-ups pays off no later.
    patch(&app, "/v1/user_settings", &token, json!({"roundup_multiplier": 3})).await;
    let (_, tripled) = app.get(&path, Some(&token)).await;
    assert_eq!(dollars(&tripled["monthly_roundup"]).get() / 3, dollars(&p["monthly_roundup"]).get(), "{tripled}");

    let debit_path = format!("/v1/accounts/{}/projection", debit[0]["id"]);
    let (status, body) = app.get(&debit_path, Some(&token)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not a debt account: {body}");
    let bob = app.signed_up_user("bob@example.com").await;
    assert_eq!(app.get(&path, Some(&bob)).await, (StatusCode::NOT_FOUND, json!({"detail": "Not found."})));
    assert_eq!(app.get("/v1/accounts/999999/projection", Some(&token)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/v1/accounts/abc/projection", Some(&token)).await.0, StatusCode::NOT_FOUND);
}

/// Run `donkies ARGS` beside the test's server, as an operator would in a second terminal.
pub(crate) async fn donkies(app: &TestApp, args: &[&str]) -> (bool, String) {
    let out = app.operator(args).await;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn operator_commands_collect_pay_out_and_prove_the_ledger_beside_the_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, _) = paused_user(&app, "ada@example.com").await;
    contribute(&app, &token, "25.00").await;
    let (ok, dry) = donkies(&app, &["collect", "--dry-run"]).await;
    assert!(ok && dry.contains("would collect 25.00"), "{dry}");
    let (_, list) = app.get("/v1/transfers_donkies", Some(&token)).await;
    assert_eq!(list, json!([]), "a dry run changes nothing");
    let (ok, out) = donkies(&app, &["collect"]).await;
    assert!(ok && out.contains("of 25.00"), "{out}");
    let (_, list) = app.get("/v1/transfers_donkies", Some(&token)).await;
    let id = list[0]["id"].as_i64().unwrap();
    app.dwolla.handle().simulate();
    wait_collection(&app, &token, id, "processed").await;
    let (ok, out) = donkies(&app, &["payout", "--date", "2026-12-15"]).await;
    assert!(ok && out.contains("payout") && out.contains("25.00"), "{out}");
    app.wait_jobs_idle().await;
    let (ok, out) = donkies(&app, &["ledger", "check"]).await;
    assert!(ok && out.contains("ledger balanced"), "{out}");
    let (ok, out) = donkies(&app, &["ledger", "user", "ada@example.com"]).await;
    assert!(ok && out.contains(":held") && out.contains("contribution:"), "{out}");
    let (ok, out) = donkies(&app, &["payout", "--date", "15-12-2026"]).await;
    assert!(!ok && out.contains("--date"), "{out}");
}

async fn operator_commands_say_so_when_no_worker_runs(backend: Backend) {
    let app = TestApp::spawn_with(backend, Options { with_worker: false, ..Default::default() }).await;
    for args in [&["collect"][..], &["payout", "--date", "2026-12-15"][..]] {
        let (ok, out) = donkies(&app, args).await;
        assert!(!ok && out.contains("no worker is running"), "{args:?}: {out}");
    }
    let (ok, out) = donkies(&app, &["collect", "--dry-run"]).await;
    assert!(ok, "a dry run needs no worker: {out}");
}

async fn a_collection_that_fails_for_a_user_says_so_and_exits_non_zero(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, _) = paused_user(&app, "ada@example.com").await;
    contribute(&app, &token, "25.00").await;
    app.dwolla.set_faults(donkies_sandbox::Faults::outage(503));
    let (ok, out) = donkies(&app, &["collect"]).await;
    app.dwolla.set_faults(donkies_sandbox::Faults::default());
    assert!(!ok, "a failed user fails the command: {out}");
    assert!(out.contains(": failed: ") && out.contains("; 0 skipped; 1 failed"), "{out}");
    let (ok, out) = donkies(&app, &["collect"]).await;
    assert!(ok && out.contains("of 25.00") && out.contains("; 0 failed"), "run again, it collects: {out}");
}

async fn stat(app: &TestApp, token: &str) -> Value {
    let (status, stat) = app.get("/v1/stat", Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{stat}");
    stat
}

async fn a_low_balance_holds_the_collection_until_the_floor_is_lowered(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, _) = paused_user(&app, "ada@example.com").await;
    contribute(&app, &token, "25.00").await;
    assert_eq!(stat(&app, &token).await["collection_hold"], Value::Null, "the simulated checking account has plenty");
    // No simulated checking account holds $10,000 more than a collection.
    let (status, body) = patch(&app, "/v1/user_settings", &token, json!({"overdraft_floor": 10000})).await;
    assert_eq!((status, &body["overdraft_floor"]), (StatusCode::OK, &json!(10000)), "{body}");

    let outcome = only(&collect(&app).await).clone();
    let Collected::HeldByBalance { waiting, hold: CollectionHold::LowBalance { available, floor } } = outcome else {
        panic!("not held for a low balance: {outcome:?}")
    };
    assert_eq!((waiting, floor), (Cents::new(2_500), Cents::new(1_000_000)));
    assert!(available.get() - 2_500 < 1_000_000, "{available}");
    assert_eq!(stat(&app, &token).await["collection_hold"], "low_balance");
    let (_, list) = app.get("/v1/transfers_donkies", Some(&token)).await;
    assert_eq!(list, json!([]), "nothing collected");
    assert_eq!(transfers_at_dwolla(&app, &token).await, 0);
    let (_, contributions) = app.get("/v1/contributions", Some(&token)).await;
    assert_eq!(contributions[0]["is_collected"], false, "the money waits: {contributions}");
    let (ok, out) = donkies(&app, &["collect"]).await;
    assert!(
        ok && out.contains("25.00 waits, held: low balance: ") && out.contains(" available, floor 10000.00"),
        "{out}"
    );
    assert!(out.contains("; 1 held by the bank balance; "), "{out}");

    // A lower floor lets the same money go, once.
    let (status, body) = patch(&app, "/v1/user_settings", &token, json!({"overdraft_floor": 0})).await;
    assert_eq!((status, &body["overdraft_floor"]), (StatusCode::OK, &json!(0)), "{body}");
    assert_eq!(stat(&app, &token).await["collection_hold"], Value::Null);
    let Collected::Sent { collection_id, amount, .. } = only(&collect(&app).await).clone() else {
        panic!("not collected once the floor was lowered")
    };
    assert_eq!(amount, Cents::new(2_500));
    process_at_dwolla(&app).await;
    wait_collection(&app, &token, collection_id, "processed").await;
    assert_eq!(stat_cents(&stat(&app, &token).await, "amount_to_donkies"), 2_500);
    assert_ledger_balanced(&app).await;
}

async fn a_stale_balance_holds_the_collection_until_a_sync_refreshes_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, _) = paused_user(&app, "ada@example.com").await;
    contribute(&app, &token, "25.00").await;
    app.wait_jobs_idle().await;
    let (_, user) = app.get("/v1/user", Some(&token)).await;
    let user_id = user["id"].as_i64().unwrap();
    // The bank has not answered for three days and a bit.
    let seen_at = donkies_store::now() - chrono::Duration::hours(73);
    donkies_store::testing::set_balances_seen_at(app.db(), user_id, seen_at).await.unwrap();

    assert_eq!(stat(&app, &token).await["collection_hold"], "stale_balance");
    let outcome = only(&collect(&app).await).clone();
    let Collected::HeldByBalance { waiting, hold: CollectionHold::StaleBalance { seen_at: Some(seen) } } = outcome
    else {
        panic!("not held for a stale balance: {outcome:?}")
    };
    assert_eq!(waiting, Cents::new(2_500));
    assert!((seen - seen_at).num_seconds().abs() < 1, "{seen} {seen_at}");
    // Low as well as stale: stale wins.
    patch(&app, "/v1/user_settings", &token, json!({"overdraft_floor": 10000})).await;
    assert_eq!(stat(&app, &token).await["collection_hold"], "stale_balance");
    let (ok, out) = donkies(&app, &["collect"]).await;
    assert!(ok && out.contains("25.00 waits, held: stale balance: last seen "), "{out}");
    let (_, list) = app.get("/v1/transfers_donkies", Some(&token)).await;
    assert_eq!(list, json!([]), "nothing collected");

    // A sync stores a fresh balance: now only the floor holds it, and without it the money goes.
    services(&app).banking.resync_members().await.unwrap();
    app.wait_jobs_idle().await; // the re-sync of each member it queued
    assert_eq!(stat(&app, &token).await["collection_hold"], "low_balance");
    patch(&app, "/v1/user_settings", &token, json!({"overdraft_floor": 100})).await;
    assert_eq!(stat(&app, &token).await["collection_hold"], Value::Null);
    let Collected::Sent { amount, .. } = only(&collect(&app).await).clone() else { panic!("not collected") };
    assert_eq!(amount, Cents::new(2_500));
    assert_ledger_balanced(&app).await;
}

async fn the_overdraft_floor_is_whole_dollars_from_0_to_10000(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.signed_up_user("ada@example.com").await;
    let (_, settings) = app.get("/v1/user_settings", Some(&token)).await;
    assert_eq!(settings["overdraft_floor"], 100, "the default: {settings}");
    for bad in [json!(-1), json!(10001), json!(12.5), json!("lots"), json!(true), json!([100]), json!({"a": 1})] {
        let (status, body) = patch(&app, "/v1/user_settings", &token, json!({"overdraft_floor": bad})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let errors = body["overdraft_floor"].as_array().unwrap_or_else(|| panic!("{bad}: {body}"));
        assert!(errors.len() == 1 && errors[0].is_string(), "{bad}: {body}");
        assert_eq!(body.as_object().unwrap().len(), 1, "only the floor is wrong: {body}");
    }
    let (_, body) = patch(&app, "/v1/user_settings", &token, json!({"overdraft_floor": 10001})).await;
    assert_eq!(body, json!({"overdraft_floor": ["Ensure this value is between 0 and 10000."]}));
    let (_, unchanged) = app.get("/v1/user_settings", Some(&token)).await;
    assert_eq!(unchanged, settings, "a refused change changes nothing");
    for good in [0, 10000, 250] {
        let (status, body) = patch(&app, "/v1/user_settings", &token, json!({"overdraft_floor": good})).await;
        assert_eq!((status, &body["overdraft_floor"]), (StatusCode::OK, &json!(good)), "{body}");
    }
    // Other settings leave it alone.
    let (_, body) = patch(&app, "/v1/user_settings", &token, json!({"daily_cap": 50})).await;
    assert_eq!(body["overdraft_floor"], 250, "{body}");
}

/// `count` contributions of `amount` at once; how many were accepted. Every refusal is a field
/// error on `amount`.
async fn contribute_at_once(app: &TestApp, token: &str, count: usize, amount: &str) -> usize {
    let posts = (0..count).map(|_| app.post("/v1/contributions", Some(token), json!({"amount": amount})));
    let answers = futures::future::join_all(posts).await;
    let mut accepted = 0;
    for (status, body) in answers {
        match status {
            StatusCode::CREATED => accepted += 1,
            StatusCode::BAD_REQUEST => assert!(body["amount"].is_array(), "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    accepted
}

async fn contributed(app: &TestApp, token: &str) -> i64 {
    let (_, list) = app.get("/v1/contributions", Some(token)).await;
    list.as_array().unwrap().iter().map(|c| dollars(&c["amount"]).get()).sum()
}

async fn many_contributions_at_once_never_sum_above_the_daily_or_monthly_cap(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.signed_up_user("ada@example.com").await;
    let (status, _) = patch(&app, "/v1/user_settings", &token, json!({"daily_cap": 20})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(contribute_at_once(&app, &token, 30, "1.50").await, 13, "13 × 1.50 = 19.50 fits under $20");
    assert_eq!(contributed(&app, &token).await, 1_950);
    let (status, body) = app.post("/v1/contributions", Some(&token), json!({"amount": "0.51"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["amount"][0].as_str().is_some_and(|m| m.contains("daily cap")), "{body}");
    contribute(&app, &token, "0.50").await;

    // The month counts the day's contributions too.
    let (status, _) = patch(&app, "/v1/user_settings", &token, json!({"daily_cap": 0, "monthly_cap": 30})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(contribute_at_once(&app, &token, 30, "1.00").await, 10, "$20 already, $30 a month");
    assert_eq!(contributed(&app, &token).await, 3_000);
    let (status, body) = app.post("/v1/contributions", Some(&token), json!({"amount": "0.01"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["amount"][0].as_str().is_some_and(|m| m.contains("monthly cap")), "{body}");
}

async fn amount_available_drops_when_the_payout_is_made_not_when_a_manual_part_is_paid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, _) = paused_user(&app, "ada@example.com").await;
    collected(&app, &token, "30.00").await;
    let figures = |stat: &Value| {
        (stat_cents(stat, "amount_available"), stat_cents(stat, "amount_to_user"), stat["payments"].as_i64())
    };
    assert_eq!(figures(&stat(&app, &token).await), (3_000, 0, Some(0)), "collected, held");

    let day = NaiveDate::from_ymd_opt(2026, 12, 15).unwrap();
    let outcomes = services(&app).money.payout_all(day, false, |_, _| {}).await.unwrap();
    let PaidOut::Sent { parts, .. } = &outcomes[0].1 else { panic!("{outcomes:?}") };
    assert!(parts.iter().all(|(_, _, method)| *method == donkies_store::money_loop::PartMethod::Manual), "{parts:?}");
    assert_eq!(figures(&stat(&app, &token).await), (0, 0, Some(1)), "given to a payout, not paid yet");

    // A collection after the payout is available again, apart from what the payout took.
    collected(&app, &token, "7.00").await;
    assert_eq!(figures(&stat(&app, &token).await), (700, 0, Some(1)));
    for part in services(&app).money.manual_parts_waiting().await.unwrap() {
        services(&app).money.mark_part_paid(part.id, "BANK-REF-1").await.unwrap();
    }
    assert_eq!(figures(&stat(&app, &token).await), (700, 3_000, Some(1)), "paid: to the user, not available");
    assert_ledger_balanced(&app).await;
}

/// The situations a collection run meets, one user each.
const SITUATIONS: [&str; 5] = ["sent", "below", "capped", "floor", "closed"];

/// A user in `situation` (see [`SITUATIONS`]); the token and the user's id.
async fn user_in(app: &TestApp, situation: &str, email: &str) -> (String, i64) {
    // Purchases differ from user to user at the simulated bank: only contributions move money.
    let (token, _) = paused_user(app, email).await;
    let (amount, settings) = match situation {
        "sent" => ("12.00", json!({})),
        "below" => ("3.00", json!({})),
        "capped" => ("20.00", json!({"daily_cap": 10})),
        "floor" => ("25.00", json!({"overdraft_floor": 10000})),
        _ => ("7.00", json!({})),
    };
    contribute(app, &token, amount).await;
    let (status, body) = patch(app, "/v1/user_settings", &token, settings).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    if situation == "closed" {
        let (status, _) = app.post("/v1/user_close_account", Some(&token), json!({})).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (_, user) = app.get("/v1/user", Some(&token)).await;
    (token, user["id"].as_i64().unwrap())
}

/// What a user sees of their money: the figures, the collections and the contributions.
async fn money_seen(app: &TestApp, token: &str) -> Value {
    let stat = stat(app, token).await;
    let (_, collections) = app.get("/v1/transfers_donkies", Some(token)).await;
    let (_, contributions) = app.get("/v1/contributions", Some(token)).await;
    let collections: Vec<Value> =
        collections.as_array().unwrap().iter().map(|c| json!([c["amount"], c["status"]])).collect();
    let contributions: Vec<Value> =
        contributions.as_array().unwrap().iter().map(|c| json!([c["amount"], c["is_collected"]])).collect();
    json!({"stat": stat, "collections": collections, "contributions": contributions})
}

/// An outcome with its ids (and the bank balance, which the simulated bank draws per user)
/// left out, to compare runs over different users.
fn without_ids(outcome: &Collected) -> Collected {
    match outcome {
        Collected::Sent { amount, .. } => Collected::Sent { collection_id: 0, transfer_id: 0, amount: *amount },
        Collected::HeldByBalance { waiting, hold: CollectionHold::LowBalance { floor, .. } } => {
            Collected::HeldByBalance {
                waiting: *waiting,
                hold: CollectionHold::LowBalance { available: Cents::ZERO, floor: *floor },
            }
        }
        other => other.clone(),
    }
}

async fn a_batch_collects_exactly_what_one_user_at_a_time_collects(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    crate::money_model::keep_the_clock_away(&app).await;
    let mut one = Vec::new();
    let mut batch = Vec::new();
    for situation in SITUATIONS {
        one.push(user_in(&app, situation, &format!("one-{situation}@example.com")).await);
        batch.push(user_in(&app, situation, &format!("batch-{situation}@example.com")).await);
    }
    let money = &services(&app).money;
    let batch_ids: Vec<i64> = batch.iter().map(|(_, id)| *id).collect();
    for round in ["first", "second"] {
        let mut singly = Vec::new();
        for (_, id) in &one {
            singly.push(without_ids(&money.collect_user(*id, false).await.unwrap()));
        }
        // Together, not by falling back to one at a time.
        let together = money.collect_together(&batch_ids).await.unwrap();
        assert_eq!(together.iter().map(|(id, _)| *id).collect::<Vec<_>>(), batch_ids, "in the order asked");
        let together: Vec<Collected> = together.iter().map(|(_, o)| without_ids(o)).collect();
        assert_eq!(together, singly, "the {round} run");
        for (((token_one, _), (token_batch, _)), situation) in one.iter().zip(&batch).zip(SITUATIONS) {
            assert_eq!(
                money_seen(&app, token_batch).await,
                money_seen(&app, token_one).await,
                "{situation} after the {round} run"
            );
        }
    }
    assert!(matches!(money.collect_batch(&batch_ids).await.unwrap()[0].1, Collected::BelowMinimum { .. }));
    let (sent_one, sent_batch) = (&one[0], &batch[0]);
    for token in [&sent_one.0, &sent_batch.0] {
        contribute(&app, token, "6.00").await;
    }
    // The periodic run: batch jobs, claimed by the worker.
    assert_eq!(money.plan_collection().await.unwrap(), 1, "a few users make one batch");
    app.wait_jobs_idle().await;
    for (token, _) in [sent_one, sent_batch] {
        let (_, collections) = app.get("/v1/transfers_donkies", Some(token)).await;
        assert_eq!(collections.as_array().unwrap().len(), 2, "{collections}");
        assert_eq!(collections[0]["amount"], "6.00", "{collections}");
    }
    assert_ledger_balanced(&app).await;
}

/// A payout with its ids left out, to compare runs over different users.
fn payout_without_ids(outcome: &PaidOut) -> PaidOut {
    match outcome {
        PaidOut::Sent { amount, parts, .. } => PaidOut::Sent {
            payout_id: 0,
            amount: *amount,
            parts: parts.iter().map(|(_, amount, method)| (0, *amount, *method)).collect(),
        },
        other => other.clone(),
    }
}

/// What a user sees of their payouts.
async fn payouts_seen(app: &TestApp, token: &str) -> Value {
    let stat = stat(app, token).await;
    let (_, parts) = app.get("/v1/transfers_debt", Some(token)).await;
    let parts: Vec<Value> = parts.as_array().unwrap().iter().map(|p| json!([p["amount"], p["status"]])).collect();
    json!({"stat": stat, "parts": parts})
}

/// Collect what waits for every user and see Dwolla process it all.
async fn collect_and_process(app: &TestApp, users: usize) {
    let sent = collect(app).await.iter().filter(|(_, o)| matches!(o, Collected::Sent { .. })).count();
    assert_eq!(sent, users);
    process_at_dwolla(app).await;
    app.eventually("every collection processed", async || {
        let all = donkies_store::money_loop::all_collections(app.db()).await.unwrap();
        let pending: Vec<_> = all.iter().filter(|c| c.status.as_str() == "pending").map(|c| c.id).collect();
        if pending.is_empty() { Ok(()) } else { Err(pending) }
    })
    .await;
}

async fn a_batch_pays_out_exactly_what_one_user_at_a_time_pays_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    crate::money_model::keep_the_clock_away(&app).await;
    let situations = ["paid", "below", "nothing"];
    let (mut one, mut batch) = (Vec::new(), Vec::new());
    for situation in situations {
        for (group, list) in [("one", &mut one), ("batch", &mut batch)] {
            let (token, _) = paused_user(&app, &format!("{group}-{situation}@example.com")).await;
            match situation {
                "paid" => contribute(&app, &token, "12.34").await,
                "below" => contribute(&app, &token, "7.00").await,
                _ => {}
            }
            let (_, user) = app.get("/v1/user", Some(&token)).await;
            list.push((token, user["id"].as_i64().unwrap()));
        }
    }
    collect_and_process(&app, 4).await;
    for (token, _) in [&one[1], &batch[1]] {
        let (status, _) = patch(&app, "/v1/user_settings", token, json!({"minimum_transfer_amount": 100})).await;
        assert_eq!(status, StatusCode::OK);
    }
    let money = &services(&app).money;
    let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let batch_ids: Vec<i64> = batch.iter().map(|(_, id)| *id).collect();
    for round in ["first", "second"] {
        let mut singly = Vec::new();
        for (_, id) in &one {
            singly.push(payout_without_ids(&money.payout_user(*id, Some(day), false).await.unwrap()));
        }
        // Together, not by falling back to one at a time.
        let together = money.payout_together(&batch_ids, day).await.unwrap();
        assert_eq!(together.iter().map(|(id, _)| *id).collect::<Vec<_>>(), batch_ids, "in the order asked");
        let together: Vec<PaidOut> = together.iter().map(|(_, o)| payout_without_ids(o)).collect();
        assert_eq!(together, singly, "the {round} run");
        assert!(matches!(&together[0], PaidOut::Sent { amount, .. } if amount.get() == 1_234) || round == "second");
        for (((token_one, _), (token_batch, _)), situation) in one.iter().zip(&batch).zip(situations) {
            assert_eq!(
                payouts_seen(&app, token_batch).await,
                payouts_seen(&app, token_one).await,
                "{situation} after the {round} run"
            );
        }
    }
    assert_ledger_balanced(&app).await;

    // The payout day as batch jobs, claimed by the worker.
    for (token, _) in [&one[0], &batch[0]] {
        contribute(&app, token, "5.00").await;
    }
    collect_and_process(&app, 2).await;
    let next = day.succ_opt().unwrap();
    assert_eq!(money.plan_payouts(next).await.unwrap(), 1, "a few users make one batch");
    app.wait_jobs_idle().await;
    for (token, _) in [&one[0], &batch[0]] {
        let (_, parts) = app.get("/v1/transfers_debt", Some(token)).await;
        let total: i64 = parts.as_array().unwrap().iter().map(|p| dollars(&p["amount"]).get()).sum();
        assert_eq!(total, 1_234 + 500, "{parts}");
    }
    assert_ledger_balanced(&app).await;
}
