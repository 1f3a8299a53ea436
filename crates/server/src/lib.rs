//! The `donkies` server: configuration, HTTP API, services, job worker.

pub mod cache;
pub mod call_rate;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod operator;
pub mod providers;
pub mod services;

use donkies_domain::ExposeSecret;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use config::{ConfigError, Settings};
use donkies_store::Db;
use jobs::JobContext;
use providers::Simulators;
use services::{JobQueue, ServiceSettings, Services};

/// Open the database named in the settings and bring its schema up to date.
pub async fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    let db = Db::connect_pooled(settings.database_url.expose_secret(), settings.db_pool)
        .await
        .map_err(|e| ConfigError::new("DATABASE_URL (--database-url)", format!("cannot open the database: {e}")))?;
    db.migrate().await.context("applying database migrations")?;
    Ok(db)
}

/// Everything the API and the worker share in one process, and the simulators started for it.
/// `api` is the address of the `serve` process whose sandbox simulators other processes share;
/// `serve_sandbox` when this process is that `serve`.
pub async fn build_context(
    settings: Arc<Settings>,
    db: Db,
    api: SocketAddr,
    serve_sandbox: bool,
) -> anyhow::Result<(JobContext, Simulators)> {
    let providers = providers::connect(&settings, &db, api, serve_sandbox).await?;
    let queue = JobQueue::new(settings.job_max_attempts);
    let clients = (providers.aggregator, providers.rail, providers.social);
    let services = Services::new(db, ServiceSettings::from_settings(&settings), clients, queue);
    let ctx = JobContext { services, mailer: mail::Mailer::from_settings(&settings)?, settings };
    Ok((ctx, providers.simulators))
}

/// Jobs every process start asks for: the institution catalog and aggregator users.
/// They take this time slot of their periodic schedule, so a worker starting now does not run
/// them a second time; when an earlier start already took the slot, they run again anyway.
pub async fn enqueue_startup_jobs(ctx: &JobContext) -> anyhow::Result<()> {
    use jobs::banking::{BackfillAggregatorUsers, SyncInstitutions};
    use services::Task;
    let kinds = [SyncInstitutions::KIND, BackfillAggregatorUsers::KIND];
    let already = jobs::schedule_periodic(ctx, &kinds).await?;
    if !already.is_empty() {
        let mut work = ctx.services.begin().await?;
        if already.contains(&SyncInstitutions::KIND) {
            work.enqueue(&SyncInstitutions {}, Duration::ZERO).await?;
        }
        if already.contains(&BackfillAggregatorUsers::KIND) {
            work.enqueue(&BackfillAggregatorUsers {}, Duration::ZERO).await?;
        }
        work.commit().await?;
    }
    Ok(())
}

/// A running server: the HTTP API and, optionally, a job worker in the same process.
pub struct Server {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when it has a listener of its own.
    pub metrics_addr: Option<SocketAddr>,
    pub db: Db,
    pub settings: Arc<Settings>,
    context: JobContext,
    simulators: Simulators,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Listening to the other processes on the database (PostgreSQL).
    listening: Option<tokio::task::JoinHandle<()>>,
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
        let (context, simulators) = build_context(settings.clone(), db.clone(), addr, true).await?;
        enqueue_startup_jobs(&context).await?;
        // Dwolla's webhooks come here: to this server itself in sandbox mode, else to the public
        // URL when one is configured.
        let public = match (&settings.dwolla.rail, &settings.dwolla.public_url) {
            (_, Some(url)) => Some(url.clone()),
            (config::ProviderSetting::Sandbox, None) => {
                url::Url::parse(&format!("http://{}/", providers::loopback_of(addr))).ok()
            }
            _ => None,
        };
        if let Some(base) = public.and_then(|b| b.join("v1/dwolla/webhooks").ok()) {
            let mut work = context.services.begin().await?;
            work.enqueue(&jobs::payments::EnsureWebhookSubscription { url: base.to_string() }, Duration::ZERO).await?;
            work.commit().await?;
        }
        let state = http::AppState::new(context.services.clone(), settings.clone());
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let store = &context.services.store;
        let listening = if settings.pg_listen { store.changes.listen_to(&store.db) } else { None };

        if with_worker {
            let w = jobs::Worker::new(context.clone(), context.services.store.jobs.wake_signal());
            tasks.push(tokio::spawn(w.run(shutdown.clone())));
        }

        let metrics_addr = match settings.metrics {
            config::MetricsEndpoint::Listen(at) => {
                Some(serve_metrics(at, &context.services, &shutdown, &mut tasks).await?)
            }
            _ => None,
        };

        let mut app = http::app(state);
        if let Some(dwolla) = &simulators.dwolla {
            app = app.nest_service(providers::DWOLLA_SANDBOX_PATH, dwolla.handle.router());
        }
        if let Some(atrium) = &simulators.atrium {
            app = app.nest_service(providers::ATRIUM_SANDBOX_PATH, atrium.handle().router());
        }
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        tasks.push(spawn_server("HTTP server", served));
        tracing::info!("donkies listening on http://{addr}");
        Ok(Server { addr, metrics_addr, db, settings, context, simulators, shutdown, tasks, listening })
    }

    /// What a job worker in this process would use (tests drive workers step by step with it).
    pub fn job_context(&self) -> JobContext {
        self.context.clone()
    }

    pub fn services(&self) -> &Services {
        &self.context.services
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
        if let Some(listening) = self.listening {
            listening.abort();
        }
        self.simulators.shutdown().await;
    }

    /// Resolve when the process is asked to stop (SIGINT or SIGTERM), then shut down.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests and the running job");
        self.shutdown().await;
        tracing::info!("stopped");
    }
}

/// Serve `/metrics` alone on `at` until `shutdown`; the address it listens on.
pub async fn serve_metrics(
    at: SocketAddr,
    services: &Services,
    shutdown: &CancellationToken,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(at).await.map_err(|e| {
        ConfigError::new("DONKIES_METRICS_LISTEN (--metrics-listen)", format!("cannot listen on {at}: {e}"))
    })?;
    let metrics_addr = listener.local_addr()?;
    let app = http::metrics_app(services.clone());
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    tasks.push(spawn_server("metrics server", served));
    tracing::info!("metrics at http://{metrics_addr}/metrics");
    Ok(metrics_addr)
}

/// Run a server until it stops; log it when it stops with an error.
fn spawn_server<S>(what: &'static str, served: S) -> tokio::task::JoinHandle<()>
where
    S: std::future::IntoFuture<Output = std::io::Result<()>>,
    S::IntoFuture: Send + 'static,
{
    let served = served.into_future();
    tokio::spawn(async move {
        if let Err(err) = served.await {
            tracing::error!(error = %err, "{what} stopped with an error");
        }
    })
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
