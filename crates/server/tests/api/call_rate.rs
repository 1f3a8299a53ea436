//! The shared budget of calls to a provider: two processes' gates on one database never let
//! more than the rate out in any second together, and a `Retry-After` one of them heard holds
//! the other too.

use std::time::Duration;

use donkies_server::call_rate;

use crate::both_databases;
use crate::helpers::{Backend, Options, TestApp};

both_databases!(
    two_processes_share_one_call_budget_and_one_retry_after,
    interactive_calls_find_a_reserve_that_batch_work_leaves
);

/// A server whose worker does not run: its periodic cleanup would delete the ended seconds the
/// tests count.
async fn without_worker(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, Options { with_worker: false, ..Default::default() }).await
}

async fn two_processes_share_one_call_budget_and_one_retry_after(backend: Backend) {
    let app = without_worker(backend).await;
    // Each gate is what one process builds for the provider: budgets of 10 a second.
    let (a, b) = (call_rate::gate("sim", 10, app.db()), call_rate::gate("sim", 10, app.db()));
    let calls = futures::future::join_all((0..45).map(|i| {
        let gate = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { gate.admit().await }
    }));
    tokio::time::timeout(Duration::from_secs(60), calls).await.expect("45 calls at 10 a second within a minute");
    let windows = donkies_store::rate_limits::windows(app.db(), "calls:sim").await.unwrap();
    assert!(windows.iter().all(|(_, hits)| *hits <= 10), "never more than 10 in a second: {windows:?}");
    assert_eq!(windows.iter().map(|(_, hits)| hits).sum::<i64>(), 45, "{windows:?}");
    assert!(windows.len() >= 5, "spread over at least five seconds: {windows:?}");

    // The provider told A to wait 1.5 s: once A has shared it, B waits until then too.
    let until = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    a.hold_off(Duration::from_millis(1500));
    let shared = async {
        while donkies_store::rate_limits::windows(app.db(), "hold:calls:sim").await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), shared).await.expect("A shares the Retry-After");
    b.admit().await;
    let early = until - chrono::Utc::now();
    assert!(early < chrono::Duration::milliseconds(20), "B called {early} before the provider's time");
}

/// With 2 calls a second, batch work may spend one: four batch calls take four seconds, while a
/// call a person waits for goes out in the reserve at once instead of queueing behind them.
async fn interactive_calls_find_a_reserve_that_batch_work_leaves(backend: Backend) {
    let app = without_worker(backend).await;
    let gate = call_rate::gate("sim", 2, app.db());
    let started = tokio::time::Instant::now();
    // One call through the gate: how long after the start it went out.
    let call = || {
        let gate = gate.clone();
        async move {
            gate.admit().await;
            started.elapsed()
        }
    };
    let batch: Vec<_> = (0..4).map(|_| tokio::spawn(call_rate::as_batch(call()))).collect();
    let interactive = tokio::spawn(call()).await.unwrap();
    let mut batch: Vec<Duration> = futures::future::join_all(batch).await.into_iter().map(Result::unwrap).collect();
    batch.sort();
    assert!(interactive < batch[2], "the interactive call after {interactive:?}, batch calls after {batch:?}");
    assert!(batch[3] - batch[0] > Duration::from_secs(2), "batch work kept to one a second: {batch:?}");
    let windows = donkies_store::rate_limits::windows(app.db(), "calls:sim").await.unwrap();
    assert!(windows.iter().all(|(_, hits)| *hits <= 2), "{windows:?}");
    assert_eq!(windows.iter().map(|(_, hits)| hits).sum::<i64>(), 5, "{windows:?}");
}
