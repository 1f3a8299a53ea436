//! The `donkies` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{CommonArgs, ConfigError, FileValues, MetricsEndpoint, ServeArgs, Settings};
use crate::{Server, jobs, open_database};

#[derive(Parser, Debug)]
#[command(name = "donkies", version, about = "Donkies: round-ups of card purchases, sent to the user's debts.")]
pub struct Cli {
    /// Config file: TOML (snake_case setting names), or JSON in the shape of the original
    /// settings/data.json. Flags and environment variables take precedence over it.
    #[arg(long, global = true, env = "DONKIES_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP API (and, unless --no-worker, the job worker in the same process).
    Serve {
        #[command(flatten)]
        serve: ServeArgs,
        /// Do not run the job worker in this process (run `donkies worker` separately).
        #[arg(long)]
        no_worker: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Run background jobs only (several may run against one PostgreSQL database).
    Worker {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Apply the database migrations and exit.
    Migrate {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Inspect and retry background jobs.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Payments at Dwolla, for operators: transfers, customers, sandbox processing.
    Payments {
        #[command(subcommand)]
        command: PaymentsCommand,
    },
    /// Collect round-ups now: every user whose waiting round-ups reach the minimum gets one
    /// transfer to Donkies, sent by the running worker (this command follows it).
    Collect {
        /// Show what would be collected; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Pay out held money as on the payout day DATE (the calendar, shortened).
    Payout {
        /// The payout day, YYYY-MM-DD (one payout per user and day).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: String,
        /// Show what would be paid out; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Payout parts paid by hand: list them, or record one as paid.
    Payouts {
        #[command(subcommand)]
        command: PayoutsCommand,
    },
    /// Refresh a user's linked banks now: the aggregator aggregates each again, then its
    /// accounts and transactions sync; one line per bank with what changed.
    Sync {
        /// The user's email.
        #[arg(long, value_name = "EMAIL")]
        user: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// The double-entry ledger: prove it balances, or show one user's accounts and entries.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Run a provider simulator on its own port (for front-end developers and tests).
    Sandbox {
        #[command(subcommand)]
        command: SandboxCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum SandboxCommand {
    /// The MX Atrium simulator (state in memory, or kept in DIR/sandbox.db with --data DIR).
    /// Point the server at it with
    /// DONKIES_ATRIUM_URL=http://ADDR, DONKIES_ATRIUM_CLIENT_ID=donkies-sandbox-client,
    /// DONKIES_ATRIUM_KEY=donkies-sandbox-key.
    Atrium {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090", value_name = "ADDR")]
        listen: String,
        /// Time a member spends in each aggregation status, in milliseconds.
        #[arg(long, default_value_t = 500, value_name = "MS")]
        step_ms: u64,
        /// Keep users and members in DIR/sandbox.db, to find them again after a restart
        /// [default: in memory only, forgotten on exit].
        #[arg(long, value_name = "DIR")]
        data: Option<std::path::PathBuf>,
    },
    /// The Dwolla simulator (state in memory, or kept in DIR/sandbox.db with --data DIR).
    /// Point the server at it with
    /// DONKIES_DWOLLA_URL=http://ADDR, DONKIES_DWOLLA_KEY=donkies-sandbox-dwolla-key,
    /// DONKIES_DWOLLA_SECRET=donkies-sandbox-dwolla-secret.
    Dwolla {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8091", value_name = "ADDR")]
        listen: String,
        /// Process pending transfers and micro-deposits by itself this often, in milliseconds
        /// (0: only on POST /sandbox-simulations).
        #[arg(long, default_value_t = 0, value_name = "MS")]
        processing_ms: u64,
        /// Keep the Account, customers, funding sources, transfers, subscriptions, events and
        /// idempotency keys in DIR/sandbox.db, to find them again after a restart [default: in
        /// memory only, forgotten on exit].
        #[arg(long, value_name = "DIR")]
        data: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PaymentsCommand {
    /// Transfers, newest first.
    Transfers {
        /// Only transfers with this status (pending, processed, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Customers and their status at Dwolla.
    Customers {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Move an amount from a user's round-up funding source to the Donkies account.
    Transfer {
        /// The user's email.
        #[arg(long)]
        user: String,
        /// Dollars and cents, e.g. 1.00.
        #[arg(long)]
        amount: String,
        /// How many such transfers to record, each its own (with its own reference).
        #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        count: u32,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Sandbox only: process pending transfers and micro-deposits now (on the simulator that
    /// `serve` runs, or the one DONKIES_DWOLLA_URL names).
    Simulate {
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum PayoutsCommand {
    /// Parts waiting to be paid by hand (debt accounts without a bank at the payment provider).
    Manual {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Record that a manual part was paid, with the payment's reference.
    MarkPaid {
        /// The part's id (as `payouts manual` and `/v1/transfers_debt` show it).
        part: i64,
        /// The payment's reference, e.g. the bank's confirmation number.
        #[arg(long)]
        reference: String,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// Prove the ledger balances, for every user and in total, and that every transfer at the
    /// payment provider is exactly one movement; prints what is off and exits 1 if anything is.
    Check {
        /// Do not ask the payment provider for its transfers.
        #[arg(long)]
        no_provider: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// One user's ledger accounts, balances and entries.
    User {
        email: String,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// List queued, running and failed jobs.
    List {
        /// Only jobs parked as failed.
        #[arg(long)]
        failed: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Put a failed job back in the queue.
    Retry {
        id: i64,
        #[command(flatten)]
        common: CommonArgs,
    },
}

/// Parse the command line, run the command, and turn failures into one line and an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The processes that run log what they do; an operator command prints its answer, and only
    // warnings and errors beside it (RUST_LOG overrides both).
    let runs = matches!(cli.command, Command::Serve { .. } | Command::Worker { .. } | Command::Sandbox { .. });
    init_tracing(if runs { "info" } else { "warn" });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            match err.downcast_ref::<ConfigError>() {
                Some(config) => eprintln!("error: {config}"),
                None => eprintln!("error: {err:#}"),
            }
            ExitCode::from(2)
        }
    }
}

/// Log lines for people (the default) or, with `DONKIES_LOG_FORMAT=json`, one JSON object per
/// line for a log shipper (the request and job spans, with their ids, on every line).
fn init_tracing(level: &str) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},sqlx=warn,hyper=warn")));
    let json = std::env::var("DONKIES_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let lines = tracing_subscriber::fmt::layer().with_target(false);
    let lines = if json {
        lines.json().with_current_span(true).with_span_list(true).boxed()
    } else {
        lines.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())).boxed()
    };
    let waits = crate::http::metrics::DbWaits::layer();
    let _ = tracing_subscriber::registry().with(lines.with_filter(filter)).with(waits).try_init();
}

fn settings(config: &Option<PathBuf>, listen: Option<String>, common: &CommonArgs) -> anyhow::Result<Settings> {
    let file = match config {
        Some(path) => FileValues::load(path)?,
        None => FileValues::default(),
    };
    for warning in &file.warnings {
        tracing::warn!("{warning}");
    }
    Ok(Settings::resolve(listen, common, &file)?)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { serve, no_worker, common } => {
            let settings = settings(&cli.config, serve.listen, &common)?;
            let server = Server::start(settings, !no_worker).await?;
            server.run_until_signal().await;
        }
        Command::Worker { common } => {
            let settings = Arc::new(settings(&cli.config, serve_listen(), &common)?);
            let db = open_database(&settings).await?;
            let api = settings.listen;
            let (ctx, simulators) = crate::build_context(settings, db, api, false).await?;
            if simulators.atrium.is_some() {
                tracing::warn!(
                    "no DONKIES_ATRIUM_URL: this worker talks to its own in-process simulator; \
                     point serve and workers at one `donkies sandbox atrium` to share it"
                );
            }
            let shutdown = CancellationToken::new();
            let mut tasks = Vec::new();
            // A worker has no main listener: its metrics are served only at an address of their own.
            if let MetricsEndpoint::Listen(at) = ctx.settings.metrics {
                crate::http::metrics::handle();
                crate::serve_metrics(at, &ctx.services, &shutdown, &mut tasks).await?;
            }
            let store = &ctx.services.store;
            let listening = if ctx.settings.pg_listen { store.changes.listen_to(&store.db) } else { None };
            let w = jobs::Worker::new(ctx.clone(), ctx.services.store.jobs.wake_signal());
            tasks.push(tokio::spawn(w.run(shutdown.clone())));
            crate::wait_for_signal().await;
            tracing::info!("shutting down: finishing the running job");
            shutdown.cancel();
            for task in tasks {
                let _ = task.await;
            }
            if let Some(listening) = listening {
                listening.abort();
            }
            simulators.shutdown().await;
        }
        Command::Migrate { common } => {
            let settings = settings(&cli.config, None, &common)?;
            open_database(&settings).await?;
            println!("migrations applied");
        }
        Command::Sandbox { command: SandboxCommand::Atrium { listen, step_ms, data } } => {
            let addr: std::net::SocketAddr =
                listen.parse().map_err(|e| ConfigError::new("--listen", format!("invalid address {listen:?}: {e}")))?;
            let config = donkies_sandbox::AtriumSimConfig {
                step: std::time::Duration::from_millis(step_ms),
                data,
                ..Default::default()
            };
            let sim = donkies_sandbox::AtriumSim::start(addr, config)
                .await
                .map_err(|e| ConfigError::new("--listen", format!("cannot start on {addr}: {e}")))?;
            tracing::info!(
                "Atrium simulator listening on {} (client id {}, API key {}; fault knobs at /__sim/faults)",
                sim.base_url(),
                donkies_sandbox::SANDBOX_CLIENT_ID,
                donkies_sandbox::SANDBOX_API_KEY
            );
            crate::wait_for_signal().await;
            let _ = sim.shutdown().await;
        }
        Command::Sandbox { command: SandboxCommand::Dwolla { listen, processing_ms, data } } => {
            let addr: std::net::SocketAddr =
                listen.parse().map_err(|e| ConfigError::new("--listen", format!("invalid address {listen:?}: {e}")))?;
            let config = donkies_sandbox::DwollaSimConfig {
                processing_interval: (processing_ms > 0).then(|| std::time::Duration::from_millis(processing_ms)),
                data,
                ..Default::default()
            };
            let sim = donkies_sandbox::DwollaSim::start(addr, config)
                .await
                .map_err(|e| ConfigError::new("--listen", format!("cannot start on {addr}: {e}")))?;
            tracing::info!(
                "Dwolla simulator listening on {} (key {}, secret {}; IAV at /__sim/iav/{{token}}, fault knobs at /__sim/faults)",
                sim.base_url(),
                donkies_sandbox::SANDBOX_DWOLLA_KEY,
                donkies_sandbox::SANDBOX_DWOLLA_SECRET
            );
            crate::wait_for_signal().await;
            let _ = sim.shutdown().await;
        }
        Command::Payments { command } => payments(&cli.config, command).await?,
        Command::Collect { dry_run, common } => {
            let services = operator_services(&cli.config, &common, Payments::Used).await?;
            crate::operator::collect(&services, dry_run).await?;
        }
        Command::Payout { date, dry_run, common } => {
            let day = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d")
                .map_err(|e| ConfigError::new("--date", format!("{date:?} is not YYYY-MM-DD: {e}")))?;
            let services = operator_services(&cli.config, &common, Payments::Used).await?;
            crate::operator::payout(&services, day, dry_run).await?;
        }
        Command::Payouts { command: PayoutsCommand::Manual { common } } => {
            let services = operator_services(&cli.config, &common, Payments::NotUsed).await?;
            crate::operator::manual_parts(&services).await?;
        }
        Command::Payouts { command: PayoutsCommand::MarkPaid { part, reference, common } } => {
            let services = operator_services(&cli.config, &common, Payments::NotUsed).await?;
            crate::operator::mark_paid(&services, part, &reference).await?;
        }
        Command::Ledger { command: LedgerCommand::Check { no_provider, common } } => {
            let payments = if no_provider { Payments::NotUsed } else { Payments::Used };
            let services = operator_services(&cli.config, &common, payments).await?;
            crate::operator::ledger_check(&services, !no_provider).await?;
        }
        Command::Sync { user, common } => {
            let services = operator_services(&cli.config, &common, Payments::NotUsed).await?;
            crate::operator::sync_user(&services, &user).await?;
        }
        Command::Ledger { command: LedgerCommand::User { email, common } } => {
            let services = operator_services(&cli.config, &common, Payments::NotUsed).await?;
            crate::operator::ledger_user(&services, &email).await?;
        }
        Command::Jobs { command: JobsCommand::List { failed, common } } => {
            let settings = settings(&cli.config, None, &common)?;
            let db = open_database(&settings).await?;
            let jobs = donkies_store::jobs::list(&db, failed).await?;
            println!("{:<16}  {:<24}  {:<8}  {:>8}  {:<20}  last error", "id", "kind", "status", "attempts", "run at");
            for j in &jobs {
                println!(
                    "{:<16}  {:<24}  {:<8}  {:>4}/{:<3}  {:<20}  {}",
                    j.id,
                    j.kind,
                    j.status,
                    j.attempts,
                    j.max_attempts,
                    j.run_at.format("%Y-%m-%dT%H:%M:%S"),
                    j.last_error.as_deref().unwrap_or("")
                );
            }
            println!("{} job(s)", jobs.len());
        }
        Command::Jobs { command: JobsCommand::Retry { id, common } } => {
            let settings = settings(&cli.config, None, &common)?;
            let db = open_database(&settings).await?;
            if donkies_store::jobs::retry(&db, id, donkies_store::now()).await? {
                println!("job {id} queued again");
            } else {
                anyhow::bail!("no failed job with id {id}");
            }
        }
    }
    Ok(())
}

/// The services of a process that runs beside `serve` (same database, same providers — in
/// sandbox mode, the simulators `serve` runs).
/// Whether an operator command reaches the payment service.
#[derive(PartialEq)]
enum Payments {
    Used,
    NotUsed,
}

async fn operator_services(
    config: &Option<PathBuf>,
    common: &CommonArgs,
    payments: Payments,
) -> anyhow::Result<crate::services::Services> {
    let settings = Arc::new(settings(config, serve_listen(), common)?);
    if payments == Payments::Used {
        serve_is_running_if_needed(&settings).await?;
    }
    let db = open_database(&settings).await?;
    let api = settings.listen;
    let (ctx, _simulators) = crate::build_context(settings, db, api, false).await?;
    Ok(ctx.services)
}

async fn payments(config: &Option<PathBuf>, command: PaymentsCommand) -> anyhow::Result<()> {
    use donkies_domain::{Cents, TransferStatus};
    match command {
        PaymentsCommand::Transfers { status, common } => {
            let services = operator_services(config, &common, Payments::NotUsed).await?;
            let status = status.as_deref().map(TransferStatus::parse);
            let transfers = services.payments.list_transfers(status.as_ref()).await?;
            println!(
                "{:<16}  {:<40}  {:>10}  {:<10}  {:<38}  failure",
                "id", "reference", "amount", "status", "dwolla id"
            );
            for t in &transfers {
                let failure = match (&t.failure_code, &t.failure_description) {
                    (Some(code), Some(text)) => format!("{code} {text}"),
                    (Some(code), None) => code.clone(),
                    _ => String::new(),
                };
                println!(
                    "{:<16}  {:<40}  {:>10}  {:<10}  {:<38}  {failure}",
                    t.id,
                    t.reference,
                    t.amount.to_string(),
                    t.status.as_str(),
                    t.dwolla_id.as_deref().unwrap_or("-")
                );
            }
            println!("{} transfer(s)", transfers.len());
        }
        PaymentsCommand::Customers { common } => {
            let services = operator_services(config, &common, Payments::NotUsed).await?;
            let customers = services.payments.list_customers().await?;
            println!("{:<16}  {:<16}  {:<12}  {:<12}  {:<38}  email", "id", "user", "type", "status", "dwolla id");
            for c in &customers {
                println!(
                    "{:<16}  {:<16}  {:<12}  {:<12}  {:<38}  {}",
                    c.id,
                    c.user_id,
                    c.kind.as_str(),
                    c.status.as_ref().map_or("-", |s| s.as_str()),
                    c.dwolla_id.as_deref().unwrap_or("-"),
                    c.email
                );
            }
            println!("{} customer(s)", customers.len());
        }
        PaymentsCommand::Transfer { user, amount, count, common } => {
            let amount =
                Cents::parse(amount.trim()).map_err(|e| ConfigError::new("--amount", format!("{amount:?}: {e}")))?;
            let services = operator_services(config, &common, Payments::Used).await?;
            for _ in 0..count {
                let transfer =
                    services.payments.collect_by_hand(&user, amount).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                println!(
                    "transfer {} of {} recorded ({}); a worker sends it to Dwolla",
                    transfer.id, transfer.amount, transfer.reference
                );
            }
        }
        PaymentsCommand::Simulate { common } => {
            let services = operator_services(config, &common, Payments::Used).await?;
            let processed = services.payments.simulate_processing().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{processed} transfer(s) processed");
        }
    }
    Ok(())
}

/// In sandbox mode (no DONKIES_DWOLLA_URL) the payment service is the simulator inside `serve`:
/// when no `serve` answers, say that, rather than that the payment service is unavailable.
async fn serve_is_running_if_needed(settings: &Settings) -> anyhow::Result<()> {
    if matches!(settings.dwolla.rail, crate::config::ProviderSetting::Remote(_)) {
        return Ok(());
    }
    let api = crate::providers::loopback_of(settings.listen);
    if tokio::net::TcpStream::connect(api).await.is_err() {
        anyhow::bail!(
            "`donkies serve` is not running at {api}: with no DONKIES_DWOLLA_URL, operator commands use the \
             simulated payment service it serves. Start `donkies serve` (with the same DONKIES_LISTEN), or set \
             DONKIES_DWOLLA_URL."
        );
    }
    Ok(())
}

/// Where `serve` listens, for processes beside it (their sandbox simulators are that serve's).
fn serve_listen() -> Option<String> {
    ServeArgs::from_environment().listen
}
