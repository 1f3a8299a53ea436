//! The collection run of `donkies collect`, timed, for `bench/money.sh`: builds the services the
//! way the operator commands do (the same settings from the environment, the same
//! `build_context`, the same log lines) and runs `Services::collect_all(false, ..)` once. It does
//! not ask for a running worker nor follow the transfers to Dwolla as `donkies collect` does:
//! only the collection itself is timed. Prints one line for the script:
//!
//!   users=N sent=N below=N skipped=N amount_cents=N seconds=S
//!
//!   DATABASE_URL=postgres://... DONKIES_DWOLLA_URL=... DONKIES_DWOLLA_KEY=... \
//!     DONKIES_DWOLLA_SECRET=... cargo run --release -p donkies-server --example collect_run

mod support;

use std::time::Instant;

use clap::Parser;
use donkies_server::config::CommonArgs;
use donkies_server::services::money::Collected;

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

    let started = Instant::now();
    let outcomes = services.money.collect_all(false, |_, _| {}).await?;
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
        "users={} sent={sent} below={below} skipped={skipped} amount_cents={amount} seconds={seconds:.3}",
        outcomes.len()
    );
    Ok(())
}
