//! The re-sync of every linked bank, timed, for `bench/resync.sh`: starts an Atrium simulator in
//! this process, builds the services the way the operator commands do (the same settings from
//! the environment, the same `build_context`), links one mxbank member of ROWS transactions for
//! each of MEMBERS new users (synced through `poll_member`, as after linking), then times rounds
//! of `BankingService::pull_transactions` over all members:
//!
//! - baseline: the aggregator returns exactly what is stored;
//! - churn: before it (untimed), events on about a tenth of each member's rows: new pending
//!   purchases, posts of pending rows with a new amount, drops of pending rows, removes and
//!   amends of posted rows.
//!
//! Every member is aggregated again (untimed) before each timed phase, so that the simulator
//! serves its data fresh in both. Each member starts with a pool of pending purchases the churn
//! posts and drops; the churn's purchases refill it. Prints one line per phase for the script:
//!
//!   setup members=N rows=N seconds=S
//!   phase=baseline|churn round=N members=N rows=N events=N seconds=S added=N posted=N removed=N amended=N
//!
//! and logs `bench phase started` (phase=, round=) before each, so that the script can add up
//! the syncs' own "transactions synced" lines per phase.
//!
//!   DATABASE_URL=postgres://... BENCH_RESYNC_MEMBERS=50 \
//!     cargo run --release -p donkies-server --example resync_run

mod support;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use donkies_atrium::DateRange;
use donkies_atrium::wire::{self, TransactionStatus};
use donkies_domain::bank_sync::SyncCounts;
use donkies_sandbox::{AtriumSim, AtriumSimConfig, SANDBOX_API_KEY, SANDBOX_CLIENT_ID, SimEvent};
use donkies_server::config::CommonArgs;
use donkies_server::services::Services;
use donkies_store::members::Member;
use futures::{StreamExt, TryStreamExt, stream};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

/// Time a simulated member spends in each status of an aggregation.
const SIM_STEP: Duration = Duration::from_millis(5);
/// Members linked at once during the setup (untimed).
const SETUP_CONCURRENCY: usize = 4;

/// What the run is asked for, from the environment.
struct Plan {
    members: usize,
    rows: u32,
    rounds: usize,
    /// Members synced at once in a timed phase (the hourly re-sync takes one at a time).
    concurrency: usize,
}

impl Plan {
    fn from_env() -> anyhow::Result<Plan> {
        let number = |name: &str, default: usize| -> anyhow::Result<usize> {
            match std::env::var(name) {
                Ok(text) => match text.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => anyhow::bail!("{name} must be a positive number, not {text:?}"),
                },
                Err(_) => Ok(default),
            }
        };
        Ok(Plan {
            members: number("BENCH_RESYNC_MEMBERS", 1000)?,
            rows: u32::try_from(number("BENCH_RESYNC_ROWS", 500)?).context("BENCH_RESYNC_ROWS")?,
            rounds: number("BENCH_RESYNC_ROUNDS", 3)?,
            concurrency: number("BENCH_RESYNC_CONCURRENCY", 1)?,
        })
    }

    /// A fifth of the churn of one sync (a tenth of the rows): the churn is two fifths pending
    /// purchases, a fifth posts, a fifth drops, a tenth removes and a tenth amends.
    fn churn_unit(&self) -> usize {
        (self.rows as usize / 50).max(1)
    }
}

/// One linked bank and what the simulator holds for it, as far as the churn needs to know.
struct Bank {
    member: Member,
    user_guid: String,
    member_guid: String,
    account_guid: String,
    posted: Vec<String>,
    pending: VecDeque<String>,
}

impl Bank {
    fn rows(&self) -> usize {
        self.posted.len() + self.pending.len()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_logging();
    let plan = Plan::from_env()?;

    let sim_config =
        AtriumSimConfig { step: SIM_STEP, transactions_per_member: Some(plan.rows), data: None, ..Default::default() };
    let sim = AtriumSim::start(SocketAddr::from(([127, 0, 0, 1], 0)), sim_config).await?;
    let mut argv: Vec<String> = std::env::args().collect();
    argv.extend([
        "--atrium-url".to_owned(),
        sim.base_url().to_string(),
        "--atrium-client-id".to_owned(),
        SANDBOX_CLIENT_ID.to_owned(),
        "--atrium-key".to_owned(),
        SANDBOX_API_KEY.to_owned(),
    ]);
    let args = Args::parse_from(argv);
    let (services, _simulators) = support::operator_services(&args.common).await?;

    let started = Instant::now();
    services.banking.sync_institutions().await?;
    let mut banks: Vec<Bank> = stream::iter(0..plan.members)
        .map(|i| link_bank(&services, &sim, i, plan.churn_unit()))
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    // The pending purchases of the pool, taken in by one sync of every member.
    aggregate_all(&services, &banks).await?;
    sync_all(&services, &banks, SETUP_CONCURRENCY).await?;
    let rows: usize = banks.iter().map(Bank::rows).sum();
    println!("setup members={} rows={rows} seconds={:.3}", banks.len(), started.elapsed().as_secs_f64());

    for round in 1..=plan.rounds {
        aggregate_all(&services, &banks).await?;
        run_phase(&services, &banks, &plan, "baseline", round, 0).await?;

        let mut events = 0;
        for (i, bank) in banks.iter_mut().enumerate() {
            events += churn(&sim, bank, plan.churn_unit(), round, round * plan.members + i).await?;
        }
        aggregate_all(&services, &banks).await?;
        run_phase(&services, &banks, &plan, "churn", round, events).await?;
    }
    sim.shutdown().await?;
    Ok(())
}

/// A new user with one mxbank member, polled until its aggregation completed and synced (its
/// first ingest), then given `2 * unit` pending purchases (seen from its next aggregation).
async fn link_bank(services: &Services, sim: &AtriumSim, i: usize, unit: usize) -> anyhow::Result<Bank> {
    let user_id = support::new_user(services, "resync", i).await?;
    let member = support::link_mxbank_polled(services, user_id, SIM_STEP).await?;
    let banking = &services.banking;
    let user_guid = banking.ensure_aggregator_user(user_id).await?;
    let member_guid = member.guid.clone().context("a completed member has a guid")?;
    let live = banking.aggregator.all_member_transactions(&user_guid, &member_guid, DateRange::default()).await?;
    let account_guid = live
        .iter()
        .find(|t| t.transaction_type == wire::TransactionType::Debit)
        .and_then(|t| t.account_guid.clone())
        .context("no purchase to take an account from")?;
    let posted = live.iter().filter(|t| t.status == TransactionStatus::Posted).map(|t| t.guid.clone()).collect();
    let mut bank = Bank { member, user_guid, member_guid, account_guid, posted, pending: VecDeque::new() };
    let purchases = (0..2 * unit).map(|k| purchase(&bank, k, 0)).collect();
    let made = sim.apply_events(&bank.member_guid, purchases).await?;
    bank.pending.extend(made.into_iter().flatten());
    Ok(bank)
}

/// A pending purchase of churn round `round` (0: the setup's pool). Its description names the
/// round, so that a new purchase never looks like one dropped in the same sync (which the sync
/// rightly takes for the same purchase under a new guid).
fn purchase(bank: &Bank, k: usize, round: usize) -> SimEvent {
    SimEvent::Purchase {
        account_guid: bank.account_guid.clone(),
        amount: amount(k, 3),
        description: Some(format!("Bench purchase {round}")),
        date: None,
        pending: true,
    }
}

/// A non-whole amount of a few dollars, different for neighbouring `k` and for each `salt`.
fn amount(k: usize, salt: usize) -> String {
    format!("{}.{:02}", 2 + (k + salt) % 40, 1 + (k * 37 + salt * 11) % 98)
}

/// The churn of one sync: pending purchases, posts (new amount) and drops of pending rows,
/// removes and amends of posted rows. Answers the number of events.
async fn churn(sim: &AtriumSim, bank: &mut Bank, unit: usize, round: usize, salt: usize) -> anyhow::Result<usize> {
    anyhow::ensure!(bank.pending.len() >= 2 * unit, "member {}: pending pool ran dry", bank.member.id);
    anyhow::ensure!(bank.posted.len() > 2 * unit, "member {}: too few posted rows", bank.member.id);
    let mut events = Vec::with_capacity(5 * unit);
    let posts: Vec<String> = bank.pending.drain(..unit).collect();
    let drops: Vec<String> = bank.pending.drain(..unit).collect();
    let removes = unit / 2;
    let amends = unit - removes;
    let start = salt % (bank.posted.len() - removes);
    let removed: Vec<String> = bank.posted.drain(start..start + removes).collect();
    let amended: Vec<String> = (0..amends).map(|k| bank.posted[(start + k * 7) % bank.posted.len()].clone()).collect();
    events.extend((0..2 * unit).map(|k| purchase(bank, salt + k, round)));
    events.extend(
        posts
            .iter()
            .enumerate()
            .map(|(k, guid)| SimEvent::Post { guid: guid.clone(), amount: Some(amount(k, salt + 5)) }),
    );
    events.extend(drops.into_iter().map(|guid| SimEvent::Drop { guid }));
    events.extend(removed.into_iter().map(|guid| SimEvent::Remove { guid }));
    events
        .extend(amended.into_iter().enumerate().map(|(k, guid)| SimEvent::Amend { guid, amount: amount(k, salt + 9) }));
    let count = events.len();
    let made = sim.apply_events(&bank.member_guid, events).await?;
    let mut made = made.into_iter();
    bank.pending.extend(made.by_ref().take(2 * unit).flatten());
    bank.posted.extend(made.take(unit).flatten());
    Ok(count)
}

/// Starts an aggregation of every member and waits until all have settled: the events applied
/// so far show from then on.
async fn aggregate_all(services: &Services, banks: &[Bank]) -> anyhow::Result<()> {
    let aggregator = &services.banking.aggregator;
    for bank in banks {
        aggregator.aggregate_member(&bank.user_guid, &bank.member_guid).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for bank in banks {
        loop {
            let status = aggregator.read_member_status(&bank.user_guid, &bank.member_guid).await?;
            if status.status == wire::MemberStatus::Completed && status.is_being_aggregated != Some(true) {
                break;
            }
            anyhow::ensure!(status.status != wire::MemberStatus::Failed, "member {} failed", bank.member.id);
            anyhow::ensure!(Instant::now() < deadline, "member {} is still aggregating", bank.member.id);
            tokio::time::sleep(SIM_STEP).await;
        }
    }
    Ok(())
}

/// `pull_transactions` of every member, `concurrency` at a time: the counts added up.
async fn sync_all(services: &Services, banks: &[Bank], concurrency: usize) -> anyhow::Result<SyncCounts> {
    let banking = &services.banking;
    stream::iter(banks)
        .map(|bank| async move {
            banking.pull_transactions(&bank.member, &bank.user_guid).await.map_err(anyhow::Error::from)
        })
        .buffer_unordered(concurrency)
        .try_fold(SyncCounts::default(), |mut total, counts| async move {
            total.add(counts);
            Ok(total)
        })
        .await
}

/// One timed sync of every member, printed as a line for the script.
async fn run_phase(
    services: &Services,
    banks: &[Bank],
    plan: &Plan,
    phase: &str,
    round: usize,
    events: usize,
) -> anyhow::Result<()> {
    tracing::info!(phase, round, "bench phase started");
    let started = Instant::now();
    let counts = sync_all(services, banks, plan.concurrency).await?;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(phase, round, "bench phase ended");
    let rows: usize = banks.iter().map(Bank::rows).sum();
    println!(
        "phase={phase} round={round} members={} rows={rows} events={events} seconds={seconds:.3} added={} \
         posted={} removed={} amended={}",
        banks.len(),
        counts.added,
        counts.posted,
        counts.removed,
        counts.amended
    );
    Ok(())
}
