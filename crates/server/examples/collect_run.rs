//! The collection run, timed, for `bench/money.sh`: builds the services the way the operator
//! commands do (the same settings from the environment, the same `build_context`, the same log
//! lines), splits the users to collect into the batches the hourly run enqueues, and has
//! `BENCH_MONEY_WORKERS` (default 2) claimers take batches from one queue and run
//! `MoneyService::collect_batch` on each, as that many workers claim the batch jobs. It does not
//! follow the transfers to Dwolla: only the collection itself is timed. Prints one line for the
//! script:
//!
//!   users=N sent=N below=N skipped=N amount_cents=N seconds=S workers=N
//!
//!   DATABASE_URL=postgres://... DONKIES_DWOLLA_URL=... DONKIES_DWOLLA_KEY=... \
//!     DONKIES_DWOLLA_SECRET=... cargo run --release -p donkies-server --example collect_run

mod support;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::Parser;
use donkies_server::config::CommonArgs;
use donkies_server::services::money::{COLLECTION_BATCH, Collected};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    support::init_logging();
    let (services, _simulators) = support::operator_services(&args.common).await?;

    let workers: usize = std::env::var("BENCH_MONEY_WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(2).max(1);
    let started = Instant::now();
    let users = donkies_store::money_loop::users_to_collect(&services.store.db).await?;
    let batches: Vec<Vec<i64>> = users.chunks(COLLECTION_BATCH).map(<[i64]>::to_vec).collect();
    let queue = Arc::new(Mutex::new(batches.into_iter()));
    let mut claimers = Vec::new();
    for _ in 0..workers {
        let (money, queue) = (services.money.clone(), queue.clone());
        claimers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let next = queue.lock().map_err(|_| anyhow::anyhow!("queue poisoned"))?.next();
                let Some(batch) = next else { break };
                outcomes.extend(money.collect_batch(&batch).await?);
            }
            anyhow::Ok(outcomes)
        }));
    }
    let mut outcomes = Vec::with_capacity(users.len());
    for claimer in claimers {
        outcomes.extend(claimer.await??);
    }
    let seconds = started.elapsed().as_secs_f64();

    let (mut sent, mut below, mut skipped, mut amount) = (0usize, 0usize, 0usize, 0i64);
    for (user, outcome) in &outcomes {
        match outcome {
            Collected::Sent { amount: a, .. } => {
                sent += 1;
                amount += a.get();
            }
            Collected::BelowMinimum { .. } | Collected::HeldByCap { .. } => below += 1,
            Collected::HeldByBalance { hold, .. } => {
                skipped += 1;
                if skipped <= 3 {
                    eprintln!("user {user}: held: {hold}");
                }
            }
            Collected::Would { .. } => {}
            Collected::Skipped(why) | Collected::Failed(why) => {
                skipped += 1;
                if skipped <= 3 {
                    eprintln!("user {user}: skipped: {why}");
                }
            }
        }
    }
    println!(
        "users={} sent={sent} below={below} skipped={skipped} amount_cents={amount} seconds={seconds:.3} workers={workers}",
        outcomes.len()
    );
    Ok(())
}
