//! Latency between two processes on one PostgreSQL database, for `bench/cross_process.sh`: two
//! `serve` servers in this process (A without a worker, B with one), each with its own pool,
//! services and listening connection, as two processes have. Measured with `DONKIES_PG_LISTEN`
//! off (today's polling: idle workers look every `DONKIES_JOB_POLL_MS`, `?wait=` re-reads every
//! half second) and then on (`LISTEN/NOTIFY`):
//!
//! - job pick-up: a job committed on A until B's worker has run it;
//! - long-poll: a member's status committed on A until B answers a waiting
//!   `GET /v1/members/{identifier}?wait=30`;
//! - session revocation: how long a sign-out on A takes to answer, and whether B's very next
//!   request with that session was refused (it must be, every time).
//!
//! Prints `mode=polling|notify what=... median_ms=... p99_ms=... turns=N [stale=N]` lines.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use donkies_domain::MemberStatus;
use donkies_server::Server;
use donkies_server::config::CommonArgs;
use donkies_server::jobs::banking::BackfillAggregatorUsers;
use donkies_server::services::{Change, Services};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_logging();
    let turns: usize = std::env::var("BENCH_CROSS_TURNS").ok().and_then(|t| t.parse().ok()).unwrap_or(30);
    let args = Args::parse();
    let mut base = support::operator_settings(&args.common)?;
    base.listen = "127.0.0.1:0".parse()?;
    base.login_rate_per_minute = u32::MAX;
    for (mode, listen) in [("polling", false), ("notify", true)] {
        let mut settings = base.clone();
        settings.pg_listen = listen;
        let db = donkies_server::open_database(&settings).await?;
        let a = Server::start_with_db(settings.clone(), db.clone(), false).await?;
        let b = Server::start_with_db(settings, db, true).await?;
        // Let B's worker run the start-up jobs first.
        tokio::time::sleep(Duration::from_secs(3)).await;
        report(mode, "job_pickup", job_pickup(&a, &b, turns).await?, None);
        report(mode, "long_poll", long_poll(&a, &b, turns, mode).await?, None);
        let (latencies, stale) = revocation(&a, &b, turns, mode).await?;
        report(mode, "revocation", latencies, Some(stale));
        a.shutdown().await;
        b.shutdown().await;
    }
    Ok(())
}

fn report(mode: &str, what: &str, mut ms: Vec<f64>, stale: Option<usize>) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    let stale = stale.map(|n| format!(" stale={n}")).unwrap_or_default();
    println!("mode={mode} what={what} median_ms={:.2} p99_ms={:.2} turns={}{stale}", at(0.5), at(0.99), ms.len());
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A no-op job committed on A; until B's worker ran it (no such job left).
async fn job_pickup(a: &Server, b: &Server, turns: usize) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for _ in 0..turns {
        let mut work = a.services().begin().await?;
        work.enqueue(&BackfillAggregatorUsers {}, Duration::ZERO).await?;
        work.commit().await?;
        let committed = Instant::now();
        while donkies_store::jobs::unfinished(&b.db, "backfill_aggregator_users").await? > 0 {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        out.push(millis(committed.elapsed()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(out)
}

/// When a change of `member_id` first committed in (or reached) `services`' process since the
/// clock was reset to `None`.
fn commit_clock(services: &Services, member_id: i64) -> Arc<Mutex<Option<Instant>>> {
    let seen = Arc::new(Mutex::new(None));
    let clock = seen.clone();
    services.store.changes.listen(move |change| {
        // The first change after the clock was reset: the one the waiting client is told of.
        if matches!(change, Change::Member { id, .. } if *id == member_id)
            && let Ok(mut at) = clock.lock()
            && at.is_none()
        {
            *at = Some(Instant::now());
        }
    });
    seen
}

/// A member refreshed on A (its status moves) while a client waits on B.
async fn long_poll(a: &Server, b: &Server, turns: usize, mode: &str) -> anyhow::Result<Vec<f64>> {
    let services = a.services();
    let user_id = support::new_user(services, &format!("poll-{mode}-"), 0).await?;
    wait_for_institutions(services).await?;
    let member = support::link_mxbank_polled(services, user_id, Duration::from_millis(10)).await?;
    let token = services.identity.issue_token(user_id).await?;
    let committed = commit_clock(services, member.id);
    let url = format!("{}/v1/members/{}?wait=30", b.base_url(), member.identifier);
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for _ in 0..turns {
        settle(services, member.id).await?;
        let waiting = http.get(&url).header("Authorization", format!("Token {token}")).send();
        let answer = tokio::spawn(async move {
            let response = waiting.await;
            (Instant::now(), response.map(|r| r.status()))
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        *committed.lock().map_err(|_| anyhow::anyhow!("lock"))? = None;
        services.banking.refresh_member(user_id, &member.identifier).await?;
        let (answered, status) = answer.await?;
        anyhow::ensure!(status?.is_success(), "the long-poll failed");
        let at = committed.lock().map_err(|_| anyhow::anyhow!("lock"))?.ok_or_else(|| anyhow::anyhow!("no commit"))?;
        out.push(millis(answered.saturating_duration_since(at)));
    }
    Ok(out)
}

/// Wait until the member's aggregation completed again (B's worker polls it).
async fn settle(services: &Services, member_id: i64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let member = services.banking.member_by_id(member_id).await?;
        if member.status == MemberStatus::Completed
            && donkies_store::jobs::unfinished(&services.store.db, "poll_member").await? == 0
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "member {member_id} did not settle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_institutions(services: &Services) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while services.banking.list_institutions(None, 1).await?.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "no institutions after 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A session B has just used is ended on A; how long A took to answer, and how many of B's
/// next requests still took the session.
async fn revocation(a: &Server, b: &Server, turns: usize, mode: &str) -> anyhow::Result<(Vec<f64>, usize)> {
    let services = a.services();
    let user_id = support::new_user(services, &format!("revoke-{mode}-"), 0).await?;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/user", b.base_url());
    let (mut out, mut stale) = (Vec::new(), 0);
    for _ in 0..turns {
        let token = services.identity.issue_token(user_id).await?;
        for _ in 0..2 {
            let status = http.get(&url).header("Authorization", format!("Token {token}")).send().await?.status();
            anyhow::ensure!(status.is_success(), "B refused a fresh session: {status}");
        }
        let started = Instant::now();
        services.identity.log_out(user_id).await?;
        out.push(millis(started.elapsed()));
        let status = http.get(&url).header("Authorization", format!("Token {token}")).send().await?.status();
        if status.is_success() {
            stale += 1;
        }
    }
    Ok((out, stale))
}
