//! The `donkies` server: configuration, HTTP API, job worker.

pub mod banking;
pub mod cache;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod http;
pub mod mail;
pub mod social;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use config::{AtriumSettings, ConfigError, Settings};
use donkies_store::Db;

/// Open the database named in the settings and bring its schema up to date.
pub async fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    let db = Db::connect(settings.database_url.expose())
        .await
        .map_err(|e| ConfigError::new("DATABASE_URL (--database-url)", format!("cannot open the database: {e}")))?;
    db.migrate().await.context("applying database migrations")?;
    Ok(db)
}

/// The aggregator the settings point at; in sandbox mode, a simulator started here.
pub async fn connect_aggregator(
    settings: &Settings,
) -> anyhow::Result<(Arc<dyn donkies_atrium::Aggregator>, Option<donkies_sandbox::AtriumSim>)> {
    let (config, sim) = match &settings.atrium {
        AtriumSettings::Remote { url, client_id, key, timeout } => (
            donkies_atrium::AtriumConfig::new(url.clone(), client_id.clone(), key.expose().to_owned())
                .with_timeout(*timeout),
            None,
        ),
        AtriumSettings::Sandbox { step, timeout } => {
            let sim_config = donkies_sandbox::AtriumSimConfig { step: *step, ..Default::default() };
            let sim = donkies_sandbox::AtriumSim::start(SocketAddr::from(([127, 0, 0, 1], 0)), sim_config)
                .await
                .context("starting the in-process Atrium simulator")?;
            tracing::info!(url = %sim.base_url(), "no DONKIES_ATRIUM_URL: using the in-process Atrium simulator");
            let config = donkies_atrium::AtriumConfig::new(
                sim.base_url(),
                donkies_sandbox::SANDBOX_CLIENT_ID,
                donkies_sandbox::SANDBOX_API_KEY,
            )
            .with_timeout(*timeout);
            (config, Some(sim))
        }
    };
    let client = donkies_atrium::AtriumClient::new(config)
        .map_err(|e| ConfigError::new("DONKIES_ATRIUM_URL (--atrium-url)", e))?;
    Ok((Arc::new(client), sim))
}

/// Everything the API and the worker share in one process.
pub async fn build_context(
    settings: Arc<Settings>,
    db: Db,
) -> anyhow::Result<(worker::JobContext, Option<donkies_sandbox::AtriumSim>)> {
    let (aggregator, sim) = connect_aggregator(&settings).await?;
    let (member_events, _) = tokio::sync::broadcast::channel(1024);
    let banking = banking::Banking {
        db: db.clone(),
        aggregator,
        settings: settings.clone(),
        member_events,
        member_reads: Arc::new(cache::TtlCache::new(settings.cache_ttl)),
    };
    let ctx = worker::JobContext { db, mailer: mail::Mailer::from_settings(&settings)?, settings, banking };
    Ok((ctx, sim))
}

/// Jobs every process start asks for: the institution catalog and aggregator users.
/// They take this time slot of their periodic schedule, so a worker starting now does not run
/// them a second time; when an earlier start already took the slot, they run again anyway.
pub async fn enqueue_startup_jobs(ctx: &worker::JobContext) -> anyhow::Result<()> {
    let already =
        worker::schedule_periodic(ctx, &[banking::SYNC_INSTITUTIONS_JOB, banking::BACKFILL_AGGREGATOR_USERS_JOB])
            .await?;
    if !already.is_empty() {
        let mut tx = ctx.db.begin().await?;
        for kind in already {
            ctx.banking.enqueue(&mut tx, kind, serde_json::json!({}), Duration::ZERO).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// A running server: the HTTP API and, optionally, a job worker in the same process.
pub struct Server {
    pub addr: SocketAddr,
    pub db: Db,
    pub settings: Arc<Settings>,
    context: worker::JobContext,
    sandbox: Option<donkies_sandbox::AtriumSim>,
    social_sims: social::SocialSims,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Bind `settings.listen`, migrate, and start serving.
    pub async fn start(settings: Settings, with_worker: bool) -> anyhow::Result<Server> {
        let db = open_database(&settings).await?;
        Self::start_with_db(settings, db, with_worker).await
    }

    pub async fn start_with_db(settings: Settings, db: Db, with_worker: bool) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind(settings.listen).await.map_err(|e| {
            ConfigError::new("DONKIES_LISTEN (--listen)", format!("cannot listen on {}: {e}", settings.listen))
        })?;
        let addr = listener.local_addr()?;
        let settings = Arc::new(settings);
        let (context, sandbox) = build_context(settings.clone(), db.clone()).await?;
        enqueue_startup_jobs(&context).await?;
        let (social, social_sims) = social::connect(&settings).await?;
        let wake = Arc::new(Notify::new());
        let state = http::AppState::new(db.clone(), settings.clone(), wake.clone(), context.banking.clone(), social);
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();

        if with_worker {
            let w = worker::Worker::new(context.clone(), wake);
            tasks.push(tokio::spawn(w.run(shutdown.clone())));
        }

        let prune_state = state.clone();
        let prune_stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = prune_stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(60)) => prune_state.limits.prune(),
                }
            }
        }));

        let app = http::app(state).into_make_service_with_connect_info::<SocketAddr>();
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
            if let Err(err) = served {
                tracing::error!(error = %err, "HTTP server stopped with an error");
            }
        }));
        tracing::info!("donkies listening on http://{addr}");
        Ok(Server { addr, db, settings, context, sandbox, social_sims, shutdown, tasks })
    }

    /// What a job worker in this process would use (tests drive workers step by step with it).
    pub fn job_context(&self) -> worker::JobContext {
        self.context.clone()
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting, let in-flight requests and the running job finish, then return.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        self.social_sims.shutdown().await;
        if let Some(sim) = self.sandbox {
            let _ = sim.shutdown().await;
        }
    }

    /// Resolve when the process is asked to stop (SIGINT or SIGTERM), then shut down.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests and the running job");
        self.shutdown().await;
        tracing::info!("stopped");
    }
}

pub async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
