//! Many processes that behave as one: two API processes and two workers on one PostgreSQL
//! database with the simulators, a money story told over both APIs, a worker killed in the
//! middle of a collection batch, and what must hold across them all — one collection and one
//! Dwolla transfer per user, a balanced ledger, one login budget, and a password change on one
//! process that ends the old session on the other at once.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{ApiProcess, Backend, Options, PASSWORD, TestApp, start_of_a_rate_window};
use crate::money::{assert_ledger_balanced, paused_user};
use crate::payments::{services, transfers_at_dwolla};

const USERS: usize = 4;

/// A `donkies worker` process beside the app, with a short lease so a dead worker's job comes
/// back soon.
async fn worker(app: &TestApp) -> ApiProcess {
    let smtp = app.smtp.url();
    let env = [("DONKIES_JOB_LEASE_SECONDS", "2"), ("DONKIES_JOB_POLL_MS", "50"), ("DONKIES_SMTP_URL", &smtp)];
    app.process_at(&["worker", "--metrics-listen", "127.0.0.1:0"], &env, "metrics at http://").await
}

/// The jobs of `kind` in the queue (queued or running).
async fn live_jobs(app: &TestApp, kind: &str) -> Vec<donkies_store::jobs::Job> {
    donkies_store::jobs::list(app.db(), false).await.unwrap().into_iter().filter(|j| j.kind == kind).collect()
}

async fn wait_until<T>(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(postgres_tests), ignore = "set DONKIES_TEST_POSTGRES_URL to run the PostgreSQL half")]
async fn two_apis_and_two_workers_on_one_database_behave_as_one() {
    let mut options = Options { with_worker: false, ..Default::default() };
    // No worker in the test's own server: the two below are the only ones.
    options.args.login_rate_per_minute = Some("6".into());
    let app = TestApp::spawn_with(Backend::Postgres, options).await;
    crate::money_model::keep_the_clock_away(&app).await;
    let b = app.second_process_with(&[("DONKIES_LOGIN_RATE_PER_MINUTE", "6")]).await;
    let (a, b_base) = (app.base.clone(), b.base.clone());
    let steady = worker(&app).await;

    // The story over both APIs: users linked and verified on A, money put in on B.
    let mut users = Vec::new();
    for i in 0..USERS {
        let (token, _) = paused_user(&app, &format!("user{i}@example.com")).await;
        let body = json!({"amount": format!("{}.25", 6 + i)});
        let (status, answer) = app.call_on(&b_base, Method::POST, "/v1/contributions", Some(&token), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let (_, user) = app.call_on(&b_base, Method::GET, "/v1/user", Some(&token), None).await;
        users.push((token, user["id"].as_i64().unwrap()));
    }

    // The collection run's batch is claimed by the second worker (the steady one is paused
    // meanwhile), which is killed while the batch waits on a user's row (held here), inside
    // its transaction.
    app.wait_jobs_idle().await;
    let doomed = worker(&app).await;
    steady.signal("STOP");
    let mut hold = app.db().begin().await.unwrap();
    let last = users.last().unwrap().1;
    donkies_store::money_batch::lock_users(&mut hold, &[last]).await.unwrap();
    assert_eq!(services(&app).money.plan_collection().await.unwrap(), 1);
    let claimed = wait_until("the first worker claims the batch", Duration::from_secs(20), async || {
        live_jobs(&app, "collect_batch").await.into_iter().find(|j| j.status == "running")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    doomed.signal("KILL"); // mid-batch
    hold.commit().await.unwrap();
    assert_eq!(donkies_store::money_loop::all_collections(app.db()).await.unwrap().len(), 0, "nothing half-done");

    // The steady worker takes the batch over once the dead worker's lease runs out, and sends
    // the transfers.
    steady.signal("CONT");
    wait_until("the batch is done by the other worker", Duration::from_secs(30), async || {
        live_jobs(&app, "collect_batch").await.is_empty().then_some(())
    })
    .await;
    wait_until("every transfer reaches Dwolla", Duration::from_secs(30), async || {
        let flying = donkies_store::payments::transfers_in_flight(app.db()).await.unwrap();
        flying.iter().all(|t| t.dwolla_id.is_some()).then_some(())
    })
    .await;
    for (i, (token, _)) in users.iter().enumerate() {
        let base = if i % 2 == 0 { &a } else { &b_base };
        let (_, collections) = app.call_on(base, Method::GET, "/v1/transfers_donkies", Some(token), None).await;
        let collections = collections.as_array().unwrap();
        assert_eq!(collections.len(), 1, "one collection for user {i}: {collections:?}");
        assert_eq!(collections[0]["amount"], format!("{}.25", 6 + i));
        assert_eq!(transfers_at_dwolla(&app, token).await, 1, "one transfer at Dwolla for user {i}");
    }
    assert!(claimed.locked_by.is_some());
    assert_ledger_balanced(&app).await;

    // B keeps what it read; a change made on A is in B's very next read all the same.
    let (token, _) = &users[0];
    for _ in 0..2 {
        let (_, user) = app.call_on(&b_base, Method::GET, "/v1/user", Some(token), None).await;
        assert_eq!(user["is_even_roundup"], false, "{user}");
    }
    let (_, settings) = app.call_on(&b_base, Method::GET, "/v1/user_settings", Some(token), None).await;
    assert_eq!(settings["is_even_roundup"], false, "{settings}");
    let even = json!({"is_even_roundup": true});
    let (status, answer) = app.call_on(&a, Method::PATCH, "/v1/user_settings", Some(token), Some(even)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, user) = app.call_on(&b_base, Method::GET, "/v1/user", Some(token), None).await;
    assert_eq!(user["is_even_roundup"], true, "the kept /v1/user on B: {user}");
    let (_, settings) = app.call_on(&b_base, Method::GET, "/v1/user_settings", Some(token), None).await;
    assert_eq!(settings["is_even_roundup"], true, "the kept session on B: {settings}");

    // A password change on A ends the session on B at once, and keeps A's.
    start_of_a_rate_window().await;
    let (token, _) = &users[1];
    let on_b = {
        let body = json!({"email": "user1@example.com", "password": PASSWORD});
        let (status, answer) = app.call_on(&b_base, Method::POST, "/v1/auth/login", None, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["token"].as_str().unwrap().to_owned()
    };
    assert_eq!(app.call_on(&b_base, Method::GET, "/v1/user", Some(&on_b), None).await.0, StatusCode::OK);
    let new = "a new horse battery";
    let change = json!({"current_password": PASSWORD, "new_password1": new, "new_password2": new});
    let path = "/v1/user/change/password";
    let (status, answer) = app.call_on(&a, Method::POST, path, Some(token), Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(app.call_on(&b_base, Method::GET, "/v1/user", Some(&on_b), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.call_on(&a, Method::GET, "/v1/user", Some(token), None).await.0, StatusCode::OK);
    assert_eq!(app.call_on(&b_base, Method::GET, "/v1/user", Some(token), None).await.0, StatusCode::OK);

    // One login budget for both processes (six a minute each): attempts alternating between
    // them are refused once six were made in all (the sign-in above was one), not twelve; then
    // both refuse.
    let attempt = |base: &str| {
        let wrong = json!({"email": "user0@example.com", "password": "wrong password"});
        app.client.post(format!("{base}/v1/auth/login")).json(&wrong).send()
    };
    let mut made = 1;
    let mut refused_at = None;
    for base in [&a, &b_base].into_iter().cycle().take(12) {
        match attempt(base).await.unwrap().status() {
            StatusCode::BAD_REQUEST => made += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused_at = Some(base.clone());
                break;
            }
            other => panic!("{other} at {base}"),
        }
    }
    assert_eq!((made, refused_at.is_some()), (6, true), "the processes share one budget");
    for base in [&a, &b_base] {
        assert_eq!(attempt(base).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS, "at {base}");
    }
}
