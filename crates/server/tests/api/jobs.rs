//! Durable jobs seen from outside: mail survives a dead SMTP relay and a killed worker.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use donkies_server::jobs::{Job, JobContext, JobError, Outcome, Registry, Worker};
use donkies_server::services::{Priority, Task};
use donkies_store::jobs;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::both_databases;
use crate::helpers::{Backend, Options, TestApp, fresh_db, test_args};
use crate::smtp::{Mode, SmtpSink};

both_databases!(
    mail_is_retried_while_smtp_is_down_and_delivered_when_it_returns,
    a_job_out_of_attempts_is_parked_and_can_be_retried_from_the_cli,
    a_worker_killed_mid_job_leaves_the_job_to_run_again,
    a_job_that_cannot_succeed_is_parked_at_once_and_one_that_may_is_retried,
    a_rate_limited_job_waits_without_using_up_its_attempts,
    a_job_with_a_dedupe_key_is_queued_once_until_it_has_run,
    a_running_job_keeps_its_lease_so_no_second_worker_takes_it,
    mail_bodies_are_sealed_at_rest_and_dropped_once_delivered,
    a_worker_runs_as_many_jobs_at_once_as_it_has_slots_and_finishes_them_on_shutdown,
    a_job_a_person_waits_for_starts_while_batch_work_fills_the_other_slots,
);

#[test]
#[cfg_attr(not(postgres_tests), ignore = "set DONKIES_TEST_POSTGRES_URL to run it")]
fn a_job_written_by_another_process_wakes_an_idle_worker_on_postgres() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(a_job_written_elsewhere_wakes_an_idle_worker());
}

async fn mail_is_retried_while_smtp_is_down_and_delivered_when_it_returns(backend: Backend) {
    let app = TestApp::spawn_with(backend, Options { smtp_mode: Mode::Refuse, ..Default::default() }).await;
    assert_eq!(app.signup("ada@example.com").await, StatusCode::NO_CONTENT);
    // Wait for a couple of refused attempts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while app.smtp.connections() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(app.smtp.connections() >= 2, "the worker retried");
    // The clock's batch work may still be running beside it.
    let queued: Vec<_> =
        jobs::list(app.db(), false).await.unwrap().into_iter().filter(|j| j.kind == "send_mail").collect();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert!(queued[0].last_error.as_deref().unwrap_or("").contains("421"), "{queued:?}");
    let mail = &donkies_store::outbox::list_to(app.db(), "ada@example.com").await.unwrap()[0];
    assert!(mail.sent_at.is_none());

    app.smtp.set_mode(Mode::Accept);
    let delivered = app.smtp.wait_for("ada@example.com", 1, Duration::from_secs(20)).await;
    assert_eq!(delivered.len(), 1);
    let mail = &donkies_store::outbox::list_to(app.db(), "ada@example.com").await.unwrap()[0];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mail = donkies_store::outbox::get(app.db(), mail.id).await.unwrap().unwrap();
    assert!(mail.sent_at.is_some());
    assert!(jobs::list(app.db(), false).await.unwrap().iter().all(|j| j.kind != "send_mail"));
}

async fn a_job_out_of_attempts_is_parked_and_can_be_retried_from_the_cli(backend: Backend) {
    let mut options = Options { smtp_mode: Mode::Refuse, with_worker: false, ..Default::default() };
    options.args.job_max_attempts = Some("2".into());
    options.args.job_retry_base_ms = Some("1".into());
    let app = TestApp::spawn_with(backend, options).await;
    app.signup("ada@example.com").await;
    let worker = Worker::new(app.server.as_ref().unwrap().job_context(), Default::default());
    let mut outcomes = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while outcomes.len() < 2 && tokio::time::Instant::now() < deadline {
        match worker.run_next().await.unwrap() {
            Some(outcome) if outcome.kind() != "send_mail" => {}
            Some(outcome) => outcomes.push(outcome),
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert!(matches!(outcomes[0], Outcome::Retrying { .. }), "{outcomes:?}");
    let Outcome::Parked { id, .. } = &outcomes[1] else { panic!("{outcomes:?}") };

    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_donkies"))
            .args(args)
            .env("DATABASE_URL", &app.test_db.url)
            .env("DONKIES_SECRET_KEY", "test secret key, not for production")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let listed = cli(&["jobs", "list", "--failed"]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{stdout}");
    let id = id.to_string();
    assert!(stdout.contains(id.as_str()) && stdout.contains("failed") && stdout.contains("421"), "{stdout}");
    assert!(stdout.contains("1 job(s)"), "{stdout}");

    let retried = cli(&["jobs", "retry", &id]);
    assert!(retried.status.success(), "{}", String::from_utf8_lossy(&retried.stderr));
    let again = cli(&["jobs", "retry", &id]);
    assert!(!again.status.success(), "only a failed job can be retried");
    assert!(String::from_utf8_lossy(&again.stderr).contains("no failed job"));

    app.smtp.set_mode(Mode::Accept);
    let outcome = loop {
        match worker.run_next().await.unwrap() {
            Some(outcome) if outcome.kind() != "send_mail" => continue,
            Some(outcome) => break outcome,
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    assert!(matches!(outcome, Outcome::Done { .. }), "{outcome:?}");
    assert_eq!(app.smtp.wait_for("ada@example.com", 1, Duration::from_secs(5)).await.len(), 1);
}

async fn a_worker_killed_mid_job_leaves_the_job_to_run_again(backend: Backend) {
    let test_db = fresh_db(backend).await;
    let smtp = SmtpSink::start(Mode::Hang).await;
    let mut args = test_args(&test_db.url, &smtp, Default::default());
    args.job_lease_seconds = Some("2".into());
    let settings =
        donkies_server::config::Settings::resolve(Some("127.0.0.1:0".into()), &args, &Default::default()).unwrap();
    let server = donkies_server::Server::start_with_db(settings.clone(), test_db.db.clone(), false).await.unwrap();
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{}/v1/auth/signup", server.base_url()))
        .json(&serde_json::json!({"email": "ada@example.com", "password": "correct horse", "first_name": "A", "last_name": "L"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_donkies"))
        .arg("worker")
        .env("DATABASE_URL", &test_db.url)
        .env("DONKIES_SECRET_KEY", "test secret key, not for production")
        .env("DONKIES_SMTP_URL", smtp.url())
        .env("DONKIES_JOB_LEASE_SECONDS", "2")
        .env("DONKIES_JOB_POLL_MS", "50")
        .env("DONKIES_DATA_DIR", &settings.data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while smtp.connections() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(smtp.connections(), 1, "the worker is mid-delivery");
    worker.kill().unwrap();
    worker.wait().unwrap();
    let stuck: Vec<_> =
        jobs::list(&test_db.db, false).await.unwrap().into_iter().filter(|j| j.kind == "send_mail").collect();
    assert_eq!(stuck.len(), 1);
    assert_eq!(stuck[0].status, "running", "claimed by the dead worker");

    smtp.set_mode(Mode::Accept);
    let rescuer = Worker::new(server.job_context(), Default::default());
    let started = tokio::time::Instant::now();
    let outcome = loop {
        assert!(started.elapsed() < Duration::from_secs(15), "the job never came back");
        match rescuer.run_next().await.unwrap() {
            Some(outcome) if outcome.kind() != "send_mail" => continue,
            Some(outcome) => break outcome,
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert!(matches!(&outcome, Outcome::Done { kind, .. } if kind == "send_mail"), "{outcome:?}");
    assert!(started.elapsed() >= Duration::from_millis(500), "not before the lease ran out");
    assert_eq!(smtp.wait_for("ada@example.com", 1, Duration::from_secs(5)).await.len(), 1);
    server.shutdown().await;
}

async fn a_job_that_cannot_succeed_is_parked_at_once_and_one_that_may_is_retried(backend: Backend) {
    let app = TestApp::spawn_with(backend, Options { with_worker: false, ..Default::default() }).await;
    let server = app.server.as_ref().unwrap();
    let worker = Worker::new(server.job_context(), Default::default());
    worker.run_until_idle().await.unwrap(); // the start-up jobs
    // A payload that does not parse will never parse: parked on its first attempt of 12.
    let mut tx = app.db().begin().await.unwrap();
    app.expect_parked("poll_member");
    let payload = serde_json::json!({"member_id": "not an id", "generation": 1});
    let job = jobs::NewJob {
        kind: "poll_member",
        payload: &payload,
        max_attempts: 12,
        run_at: donkies_store::now(),
        dedupe_key: None,
        priority: jobs::Priority::Interactive,
    };
    jobs::enqueue(&mut tx, &job, donkies_store::now()).await.unwrap();
    tx.commit().await.unwrap();
    let outcomes = worker.run_until_idle().await.unwrap();
    assert!(
        matches!(&outcomes[..], [Outcome::Parked { kind, error, .. }] if kind == "poll_member" && error.contains("does not parse")),
        "{outcomes:?}"
    );
    let parked = jobs::list(app.db(), true).await.unwrap();
    assert_eq!((parked.len(), parked[0].attempts), (1, 1), "{parked:?}");

    // The aggregator being down may pass: the job is retried later, not parked.
    app.atrium.set_faults(donkies_sandbox::Faults::outage(503));
    assert_eq!(app.signup("ada@example.com").await, StatusCode::NO_CONTENT);
    let outcomes = worker.run_until_idle().await.unwrap();
    let aggregator: Vec<_> = outcomes.iter().filter(|o| o.kind() == "create_aggregator_user").collect();
    assert!(matches!(aggregator.first(), Some(Outcome::Retrying { .. })), "{outcomes:?}");
    assert!(!aggregator.iter().any(|o| matches!(o, Outcome::Parked { .. })), "{outcomes:?}");
    app.atrium.set_faults(donkies_sandbox::Faults::default());
}

async fn a_rate_limited_job_waits_without_using_up_its_attempts(backend: Backend) {
    let mut options = Options { with_worker: false, ..Default::default() };
    options.args.job_max_attempts = Some("1".into());
    let app = TestApp::spawn_with(backend, options).await;
    let server = app.server.as_ref().unwrap();
    let worker = Worker::new(server.job_context(), Default::default());
    worker.run_until_idle().await.unwrap(); // the start-up jobs
    // Atrium answers every call 429 with `Retry-After: 1`.
    app.atrium.set_faults(donkies_sandbox::Faults { rate_limit_rate: 1.0, ..Default::default() });
    assert_eq!(app.signup("ada@example.com").await, StatusCode::NO_CONTENT);
    let aggregator_job = || async {
        let all = jobs::list(app.db(), false).await.unwrap();
        all.into_iter().find(|j| j.kind == "create_aggregator_user").expect("the job is still there")
    };
    let mut first_wait = None;
    for round in 0..3 {
        let started = std::time::Instant::now();
        let outcome = loop {
            match worker.run_next().await.unwrap() {
                Some(outcome) if outcome.kind() == "create_aggregator_user" => break outcome,
                Some(_) => {}
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
            assert!(started.elapsed() < Duration::from_secs(5), "the job never came back");
        };
        assert!(matches!(&outcome, Outcome::Retrying { error, .. } if error.contains("rate-limited")), "{outcome:?}");
        let job = aggregator_job().await;
        assert_eq!((job.status.as_str(), job.attempts, job.max_attempts), ("queued", 0, 1), "round {round}: {job:?}");
        // Atrium's Retry-After is honoured: the next try is a second or a little more away.
        let delay = job.run_at - donkies_store::now();
        assert!(
            delay > chrono::Duration::milliseconds(700) && delay <= chrono::Duration::milliseconds(1300),
            "{delay}"
        );
        let since = job.waiting_since.expect("the wait is timed");
        assert_eq!(*first_wait.get_or_insert(since), since, "waiting since the first refusal");
    }
    // Once Atrium answers again, the one attempt is still there and the job succeeds.
    app.atrium.set_faults(donkies_sandbox::Faults::default());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let outcomes = worker.run_until_idle().await.unwrap();
    assert!(
        outcomes.iter().any(|o| matches!(o, Outcome::Done { kind, .. } if kind == "create_aggregator_user")),
        "{outcomes:?}"
    );
    assert!(jobs::list(app.db(), true).await.unwrap().is_empty());
}

async fn a_job_with_a_dedupe_key_is_queued_once_until_it_has_run(backend: Backend) {
    use donkies_server::jobs::banking::CreateAggregatorUser;
    let app = TestApp::spawn_with(backend, Options { with_worker: false, ..Default::default() }).await;
    let server = app.server.as_ref().unwrap();
    assert_eq!(app.signup("ada@example.com").await, StatusCode::NO_CONTENT);
    let user_id = donkies_store::users::find_by_email(app.db(), "ada@example.com").await.unwrap().unwrap().id;
    let kind_count = |jobs: &[jobs::Job]| jobs.iter().filter(|j| j.kind == "create_aggregator_user").count();
    assert_eq!(kind_count(&jobs::list(app.db(), false).await.unwrap()), 1, "the sign-up asked for it");
    for _ in 0..2 {
        let mut work = server.services().begin().await.unwrap();
        work.enqueue(&CreateAggregatorUser { user_id }, Duration::ZERO).await.unwrap();
        work.commit().await.unwrap();
    }
    assert_eq!(kind_count(&jobs::list(app.db(), false).await.unwrap()), 1, "asking again while queued is a no-op");
    let worker = Worker::new(server.job_context(), Default::default());
    worker.run_until_idle().await.unwrap();
    assert_eq!(kind_count(&jobs::list(app.db(), false).await.unwrap()), 0);
    let mut work = server.services().begin().await.unwrap();
    work.enqueue(&CreateAggregatorUser { user_id }, Duration::ZERO).await.unwrap();
    work.commit().await.unwrap();
    assert_eq!(kind_count(&jobs::list(app.db(), false).await.unwrap()), 1, "after it ran, it can be asked again");
}

async fn a_running_job_keeps_its_lease_so_no_second_worker_takes_it(backend: Backend) {
    let mut options = Options { smtp_mode: Mode::Hang, with_worker: false, ..Default::default() };
    options.args.job_lease_seconds = Some("1".into());
    let app = TestApp::spawn_with(backend, options).await;
    let server = app.server.as_ref().unwrap();
    let first = Worker::new(server.job_context(), Default::default());
    first.run_until_idle().await.unwrap(); // the start-up jobs
    assert_eq!(app.signup("ada@example.com").await, StatusCode::NO_CONTENT);
    let second = Worker::new(server.job_context(), Default::default());
    // The first worker takes the mail; delivery hangs (the relay never answers).
    let running = tokio::spawn(async move {
        loop {
            match first.run_next().await.unwrap() {
                Some(outcome) if outcome.kind() == "send_mail" => return outcome,
                Some(_) => continue,
                None => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.smtp.connections() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the mail never reached the relay");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Three leases later the job is still the first worker's: nothing for the second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stolen = second.run_until_idle().await.unwrap();
    assert!(stolen.iter().all(|o| o.kind() != "send_mail"), "a second worker took the running job: {stolen:?}");
    let job = jobs::list(app.db(), false).await.unwrap().into_iter().find(|j| j.kind == "send_mail").unwrap();
    assert_eq!((job.status.as_str(), job.attempts), ("running", 1), "{job:?}");
    running.abort();
}

async fn mail_bodies_are_sealed_at_rest_and_dropped_once_delivered(backend: Backend) {
    let app = TestApp::spawn_with(backend, Options { with_worker: false, ..Default::default() }).await;
    assert_eq!(app.signup("ada@example.com").await, StatusCode::NO_CONTENT);
    let user = donkies_store::users::find_by_email(app.db(), "ada@example.com").await.unwrap().unwrap();
    let queued = &donkies_store::outbox::list_to(app.db(), "ada@example.com").await.unwrap()[0];
    for body in [&queued.text_body, &queued.html_body] {
        assert!(!body.is_empty());
        assert!(
            !body.contains(&user.encrypted_id) && !body.contains("confirm"),
            "the link is readable at rest: {body}"
        );
    }
    Worker::new(app.server.as_ref().unwrap().job_context(), Default::default()).run_until_idle().await.unwrap();
    let mails = app.smtp.wait_for("ada@example.com", 1, Duration::from_secs(10)).await;
    assert!(mails[0].data.contains(&user.encrypted_id), "the delivered mail carries the link");
    let sent = donkies_store::outbox::get(app.db(), queued.id).await.unwrap().unwrap();
    assert!(sent.sent_at.is_some());
    assert_eq!((sent.text_body.as_str(), sent.html_body.as_str()), ("", ""), "bodies dropped after delivery");
}

/// Test-only kinds around a [`Gate`]: a job holding its slot until the gate opens (batch work,
/// or one a person waits for), and a quick job a person waits for.
#[derive(Serialize, Deserialize)]
struct Hold<const BATCH: bool> {
    gate: u64,
}

#[derive(Serialize, Deserialize)]
struct Ping {
    gate: u64,
}

impl<const BATCH: bool> Task for Hold<BATCH> {
    const KIND: &'static str = if BATCH { "test_hold_batch" } else { "test_hold_interactive" };
    const PRIORITY: Priority = if BATCH { Priority::Batch } else { Priority::Interactive };
}

impl Task for Ping {
    const KIND: &'static str = "test_ping";
}

impl<const BATCH: bool> Job for Hold<BATCH> {
    async fn run(self, _: &JobContext) -> Result<(), JobError> {
        Gate::of(self.gate).hold().await;
        Ok(())
    }
}

impl Job for Ping {
    async fn run(self, _: &JobContext) -> Result<(), JobError> {
        Gate::of(self.gate).pinged.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// What the test jobs of one test saw: how many hold their slot now and at most, how many ran.
#[derive(Default)]
struct Gate {
    holding: AtomicUsize,
    most: AtomicUsize,
    held: AtomicUsize,
    pinged: AtomicUsize,
    open: CancellationToken,
}

static GATES: LazyLock<Mutex<HashMap<u64, Arc<Gate>>>> = LazyLock::new(Default::default);

impl Gate {
    fn new() -> (u64, Arc<Gate>) {
        let id = rand::random::<u64>() >> 12;
        let gate = Arc::new(Gate::default());
        GATES.lock().unwrap().insert(id, gate.clone());
        (id, gate)
    }

    fn of(id: u64) -> Arc<Gate> {
        GATES.lock().unwrap().get(&id).cloned().expect("a gate of this test")
    }

    async fn hold(&self) {
        let now = self.holding.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.open.cancelled().await;
        self.holding.fetch_sub(1, Ordering::SeqCst);
        self.held.fetch_add(1, Ordering::SeqCst);
    }

    /// Wait (at most ten seconds) until `what` holds.
    async fn until(&self, what: &str, check: impl Fn(&Gate) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !check(self) {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn test_registry() -> Registry {
    let mut registry = Registry::all();
    registry.register::<Hold<true>>().register::<Hold<false>>().register::<Ping>();
    registry
}

/// An app without its own worker, and a worker with `slots` slots and the test kinds, running
/// until the returned token is cancelled.
async fn app_with_worker(backend: Backend, slots: &str) -> (TestApp, CancellationToken, tokio::task::JoinHandle<()>) {
    let mut options = Options { with_worker: false, ..Default::default() };
    options.args.worker_concurrency = Some(slots.into());
    let app = TestApp::spawn_with(backend, options).await;
    let server = app.server.as_ref().unwrap();
    let wake = server.services().store.jobs.wake_signal();
    let worker = Worker::with_registry(server.job_context(), wake, test_registry());
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    (app, shutdown, running)
}

async fn enqueue<T: Task>(app: &TestApp, task: &T) {
    let mut work = app.server.as_ref().unwrap().services().begin().await.unwrap();
    work.enqueue(task, Duration::ZERO).await.unwrap();
    work.commit().await.unwrap();
}

/// Enqueue `count` jobs that hold their slot and see that `at_once` of them, no more, run.
async fn hold_slots<const BATCH: bool>(app: &TestApp, count: usize, at_once: usize) -> (u64, Arc<Gate>) {
    let (gate, seen) = Gate::new();
    for _ in 0..count {
        enqueue(app, &Hold::<BATCH> { gate }).await;
    }
    seen.until("the slots fill", |g| g.holding.load(Ordering::SeqCst) == at_once).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.most.load(Ordering::SeqCst), at_once, "more jobs ran at once than slots allow");
    (gate, seen)
}

async fn a_worker_runs_as_many_jobs_at_once_as_it_has_slots_and_finishes_them_on_shutdown(backend: Backend) {
    let (app, shutdown, running) = app_with_worker(backend, "3").await;
    let (_, seen) = hold_slots::<false>(&app, 4, 3).await;

    // Shutting down waits for the jobs in progress; the fourth is left queued.
    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!running.is_finished(), "the worker stopped before its jobs were done");
    seen.open.cancel();
    tokio::time::timeout(Duration::from_secs(10), running).await.expect("the worker stops").unwrap();
    assert_eq!(seen.held.load(Ordering::SeqCst), 3);
    let left: Vec<_> = jobs::list(app.db(), false).await.unwrap();
    let left: Vec<_> = left.iter().filter(|j| j.kind == Hold::<false>::KIND).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].status, jobs::QUEUED, "{left:?}");
}

async fn a_job_a_person_waits_for_starts_while_batch_work_fills_the_other_slots(backend: Backend) {
    let (app, shutdown, running) = app_with_worker(backend, "3").await;
    // Batch work takes two of the three slots; the third is kept for people.
    let (gate, seen) = hold_slots::<true>(&app, 4, 2).await;

    // Enqueued after four batch jobs, two of them still waiting: it runs first, at once.
    enqueue(&app, &Ping { gate }).await;
    seen.until("the interactive job ran", |g| g.pinged.load(Ordering::SeqCst) == 1).await;
    assert_eq!(seen.held.load(Ordering::SeqCst), 0, "no batch job had to finish first");

    seen.open.cancel();
    seen.until("the batch work ran", |g| g.held.load(Ordering::SeqCst) == 4).await;
    assert_eq!(seen.most.load(Ordering::SeqCst), 2);
    shutdown.cancel();
    running.await.unwrap();
}

/// A worker that only PostgreSQL can wake (its in-process signal is its own) starts a job that
/// another connection pool, as another process would, commits.
async fn a_job_written_elsewhere_wakes_an_idle_worker() {
    // Polling alone would take seconds.
    let mut options = Options { with_worker: false, ..Default::default() };
    options.args.job_poll_ms = Some("5000".into());
    let app = TestApp::spawn_with(Backend::Postgres, options).await;
    let server = app.server.as_ref().unwrap();
    let worker = Worker::with_registry(server.job_context(), Default::default(), test_registry());
    worker.run_until_idle().await.unwrap(); // the start-up jobs
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    // Let it claim what is due and fall asleep (for up to 30 s when nothing is due).
    tokio::time::sleep(Duration::from_millis(500)).await;

    let elsewhere = donkies_store::Db::connect(&app.test_db.url).await.unwrap();
    let (gate, seen) = Gate::new();
    let payload = serde_json::to_value(Ping { gate }).unwrap();
    let t = donkies_store::now();
    let job = jobs::NewJob {
        kind: Ping::KIND,
        payload: &payload,
        max_attempts: 3,
        run_at: t,
        dedupe_key: None,
        priority: Ping::PRIORITY,
    };
    let mut tx = elsewhere.begin().await.unwrap();
    jobs::enqueue(&mut tx, &job, t).await.unwrap();
    let written = tokio::time::Instant::now();
    tx.commit().await.unwrap();
    seen.until("the job written elsewhere ran", |g| g.pinged.load(Ordering::SeqCst) == 1).await;
    let waited = written.elapsed();
    assert!(waited < Duration::from_secs(1), "picked up after {waited:?}: not woken by NOTIFY");
    shutdown.cancel();
    running.await.unwrap();
}
