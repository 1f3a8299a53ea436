//! The money runs, timed, for `bench/money.sh`: builds the services the way the operator
//! commands do (the same settings from the environment, the same `build_context`, the same log
//! lines), splits the users into the batches the periodic runs enqueue as jobs, and has
//! `BENCH_MONEY_WORKERS` (default 2) claimers take batches from one queue, as that many workers
//! claim the batch jobs. `money_run collect` runs `MoneyService::collect_batch` on each batch;
//! `money_run payout` runs `MoneyService::payout_run_batch` (the payout day, today). Neither
//! follows the transfers to Dwolla: only the run itself is timed. Prints one line for the
//! script:
//!
//!   users=N sent=N below=N skipped=N amount_cents=N seconds=S workers=N
//!
//!   DATABASE_URL=postgres://... DONKIES_DWOLLA_URL=... DONKIES_DWOLLA_KEY=... \
//!     DONKIES_DWOLLA_SECRET=... cargo run --release -p donkies-server --example money_run collect

mod support;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use donkies_server::config::CommonArgs;
use donkies_server::services::ServiceResult;
use donkies_server::services::money::{COLLECTION_BATCH, Collected, MoneyService, PaidOut};

#[derive(Clone, Copy, ValueEnum)]
enum Run {
    Collect,
    Payout,
}

#[derive(Parser)]
struct Args {
    run: Run,
    #[command(flatten)]
    common: CommonArgs,
}

/// How one user's run ended, for the counts.
enum Tally {
    Sent(i64),
    Below,
    Skipped(String),
}

/// Run `each` on every batch of `users` with `workers` claimers taking batches from one queue.
async fn claimed<T, F, Fut>(
    money: &MoneyService,
    users: Vec<i64>,
    workers: usize,
    each: F,
) -> anyhow::Result<Vec<(i64, T)>>
where
    T: Send + 'static,
    F: Fn(MoneyService, Vec<i64>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ServiceResult<Vec<(i64, T)>>> + Send,
{
    let queue =
        Arc::new(Mutex::new(users.chunks(COLLECTION_BATCH).map(<[i64]>::to_vec).collect::<Vec<_>>().into_iter()));
    let mut claimers = Vec::new();
    for _ in 0..workers {
        let (money, queue, each) = (money.clone(), queue.clone(), each.clone());
        claimers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let next = queue.lock().map_err(|_| anyhow::anyhow!("queue poisoned"))?.next();
                let Some(batch) = next else { break };
                outcomes.extend(each(money.clone(), batch).await?);
            }
            anyhow::Ok(outcomes)
        }));
    }
    let mut outcomes = Vec::with_capacity(users.len());
    for claimer in claimers {
        outcomes.extend(claimer.await??);
    }
    Ok(outcomes)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    support::init_logging();
    let (services, _simulators) = support::operator_services(&args.common).await?;
    let workers: usize = std::env::var("BENCH_MONEY_WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(2).max(1);
    let db = &services.store.db;

    let started = Instant::now();
    let tallies: Vec<(i64, Tally)> = match args.run {
        Run::Collect => {
            let users = donkies_store::money_loop::users_to_collect(db).await?;
            let outcomes =
                claimed(&services.money, users, workers, |money: MoneyService, batch: Vec<i64>| async move {
                    money.collect_batch(&batch).await
                })
                .await?;
            outcomes
                .into_iter()
                .map(|(user, outcome)| {
                    let tally = match outcome {
                        Collected::Sent { amount, .. } => Tally::Sent(amount.get()),
                        Collected::BelowMinimum { .. } | Collected::HeldByCap { .. } | Collected::Would { .. } => {
                            Tally::Below
                        }
                        Collected::HeldByBalance { hold, .. } => Tally::Skipped(format!("held: {hold}")),
                        Collected::Skipped(why) | Collected::Failed(why) => Tally::Skipped(why),
                    };
                    (user, tally)
                })
                .collect()
        }
        Run::Payout => {
            let users: Vec<i64> =
                donkies_store::money_loop::users_with_held_money(db).await?.into_iter().map(|(u, _)| u).collect();
            let day = chrono::Utc::now().date_naive();
            let outcomes =
                claimed(&services.money, users, workers, move |money: MoneyService, batch: Vec<i64>| async move {
                    money.payout_run_batch(&batch, day).await
                })
                .await?;
            outcomes
                .into_iter()
                .map(|(user, outcome)| {
                    let tally = match outcome {
                        PaidOut::Sent { amount, .. } => Tally::Sent(amount.get()),
                        PaidOut::BelowMinimum { .. } | PaidOut::Would { .. } => Tally::Below,
                        PaidOut::AlreadyPaid => Tally::Skipped("already paid".into()),
                        PaidOut::Nothing(why) => Tally::Skipped(why),
                    };
                    (user, tally)
                })
                .collect()
        }
    };
    let seconds = started.elapsed().as_secs_f64();

    let (mut sent, mut below, mut skipped, mut amount) = (0usize, 0usize, 0usize, 0i64);
    for (user, tally) in &tallies {
        match tally {
            Tally::Sent(cents) => {
                sent += 1;
                amount += cents;
            }
            Tally::Below => below += 1,
            Tally::Skipped(why) => {
                skipped += 1;
                if skipped <= 3 {
                    eprintln!("user {user}: skipped: {why}");
                }
            }
        }
    }
    println!(
        "users={} sent={sent} below={below} skipped={skipped} amount_cents={amount} seconds={seconds:.3} workers={workers}",
        tallies.len()
    );
    Ok(())
}
