//! The hourly re-sync under a provider's rate limit, timed, for `bench/resync_fanout.sh`.
//!
//! Against the Atrium simulator at `BENCH_FANOUT_ATRIUM_URL` (a standalone `donkies sandbox
//! atrium`), with the settings from the environment (`DONKIES_ATRIUM_CALLS_PER_SECOND`,
//! `DONKIES_WORKER_CONCURRENCY`, `DATABASE_URL`):
//!
//! 1. setup (untimed, no rate limit): MEMBERS new users each link one mxbank member, polled to
//!    COMPLETED and synced;
//! 2. what the setup left queued is dropped (this hour's periodic jobs too, their slots taken),
//!    the simulator gets its latency (`BENCH_FANOUT_LATENCY_MS`), and a job worker with the
//!    rate limit starts; one more member is linked on the idle worker and timed, from
//!    `create_member` until the worker's polls saw it COMPLETED;
//! 3. the hourly re-sync (`resync_members`, one `resync_member` job per member) runs on that
//!    worker while another member is linked and timed the same way; the phase ends when no
//!    re-sync job is left. Its calls to Atrium are what the shared budget counted.
//!
//! Prints one line: `members=N calls=N rate=N seconds=S bound=S idle_link_ms=N busy_link_ms=N`.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use donkies_domain::MemberStatus;
use donkies_server::config::CommonArgs;
use donkies_server::services::Services;
use futures::{StreamExt, TryStreamExt, stream};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

/// Members linked at once during the setup (untimed): the simulator's aggregation takes a
/// while per member, so many wait at once.
const SETUP_CONCURRENCY: usize = 64;

fn number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(text) => text.parse::<u64>().with_context(|| format!("{name} must be a number, not {text:?}")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_logging();
    let members = number("BENCH_FANOUT_MEMBERS", 10_000)? as usize;
    let latency_ms = number("BENCH_FANOUT_LATENCY_MS", 50)?;
    let sim_url = std::env::var("BENCH_FANOUT_ATRIUM_URL").context("BENCH_FANOUT_ATRIUM_URL")?;
    let args = Args::parse();
    let settings = support::operator_settings(&args.common)?;
    let rate = settings.atrium_calls_per_second;
    anyhow::ensure!(rate > 0, "set DONKIES_ATRIUM_CALLS_PER_SECOND");
    let db = donkies_server::open_database(&settings).await?;
    let api = settings.listen;
    let mut unlimited = settings.clone();
    unlimited.atrium_calls_per_second = 0;
    let (setup, _setup_sims) = donkies_server::build_context(Arc::new(unlimited), db.clone(), api, false).await?;
    let (ctx, _sims) = donkies_server::build_context(Arc::new(settings), db.clone(), api, false).await?;

    let started = Instant::now();
    setup.services.banking.sync_institutions().await?;
    stream::iter(0..members)
        .map(|i| link_and_poll(&setup.services, i))
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    tracing::info!(members, seconds = started.elapsed().as_secs_f64(), "setup done");

    // What the setup left for a worker (polls of members already polled here, aggregator users
    // already made), and this hour's periodic jobs (their slots taken), are dropped: the worker
    // below starts idle.
    let kinds: Vec<&'static str> = donkies_server::jobs::periodic().iter().map(|(kind, _)| *kind).collect();
    donkies_server::jobs::schedule_periodic(&ctx, &kinds).await?;
    let dropped = donkies_store::jobs::discard_queued(&db).await?;
    tracing::info!(dropped, "setup jobs dropped");

    let http = reqwest::Client::new();
    http.post(format!("{}/__sim/faults", sim_url.trim_end_matches('/')))
        .json(&serde_json::json!({ "latency_ms": latency_ms }))
        .send()
        .await?
        .error_for_status()?;
    let shutdown = CancellationToken::new();
    let worker = donkies_server::jobs::Worker::new(ctx.clone(), ctx.services.store.jobs.wake_signal());
    let running = tokio::spawn(worker.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_link = link_through_worker(&ctx.services, members).await?;

    let counted_before = calls_counted(&db).await?;
    let phase = Instant::now();
    ctx.services.banking.resync_members().await?;
    let (busy_link, ()) = tokio::try_join!(
        async {
            // Once the fan-out is under way.
            tokio::time::sleep(Duration::from_millis(500)).await;
            link_through_worker(&ctx.services, members + 1).await
        },
        wait_for_no(&db, "resync_member"),
    )?;
    let seconds = phase.elapsed().as_secs_f64();
    let calls = calls_counted(&db).await? - counted_before;
    shutdown.cancel();
    running.await?;
    println!(
        "members={members} calls={calls} rate={rate} seconds={seconds:.3} bound={:.3} idle_link_ms={} busy_link_ms={}",
        calls as f64 / f64::from(rate),
        idle_link.as_millis(),
        busy_link.as_millis()
    );
    Ok(())
}

/// The calls the shared budget let out so far.
async fn calls_counted(db: &donkies_store::Db) -> anyhow::Result<i64> {
    let windows = donkies_store::rate_limits::windows(db, "calls:atrium").await?;
    Ok(windows.iter().map(|(_, hits)| hits).sum())
}

/// Wait until no job of `kind` is queued or running.
async fn wait_for_no(db: &donkies_store::Db, kind: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    while donkies_store::jobs::unfinished(db, kind).await? > 0 {
        anyhow::ensure!(Instant::now() < deadline, "{kind} jobs left after an hour");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// User `i` links mxbank; polled here (no worker runs yet) until COMPLETED and synced.
async fn link_and_poll(services: &Services, i: usize) -> anyhow::Result<()> {
    let user_id = support::new_user(services, "fanout", i).await?;
    support::link_mxbank_polled(services, user_id, Duration::from_millis(20)).await.map(|_| ())
}

/// User `i` links mxbank as through the API: the worker polls it; how long until COMPLETED.
async fn link_through_worker(services: &Services, i: usize) -> anyhow::Result<Duration> {
    let user_id = support::new_user(services, "fanout", i).await?;
    let started = Instant::now();
    let created = services.banking.create_member(user_id, "mxbank", support::mxbank()).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let member = services.banking.member_by_id(created.id).await?;
        if member.status == MemberStatus::Completed {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(!member.gave_up && Instant::now() < deadline, "member {} did not complete", member.id);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
