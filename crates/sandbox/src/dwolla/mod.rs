//! A wire-faithful Dwolla v2 sandbox (PROVIDERS.md Part B).
//!
//! An axum app serving the Dwolla endpoints with the JSON of
//! [`donkies_dwolla::wire`]: the client-credentials token with expiry, the
//! master Account with its balance, customers of every type with the
//! `firstName` verification sentinels, funding sources with the routing
//! checksum, duplicates, removal and the R-code name sentinels,
//! micro-deposits, IAV, transfers under the permission matrix, idempotency
//! keys, signed webhooks with Dwolla's retry schedule, events, and
//! `POST /sandbox-simulations`. State lives in memory, and with
//! [`DwollaSimConfig::data`] also in `sandbox.db` in that directory, written
//! before each answer: a simulator started again on the same directory knows
//! the Account, customers, funding sources, transfers, subscriptions, events
//! and idempotency keys of the last one (issued tokens and webhook
//! deliveries still to retry are not kept).
//!
//! Control endpoints (no token, never subject to faults):
//! - `GET|POST /__sim/faults` — read or replace [`Faults`] (as the Atrium
//!   simulator's: `{"latency_ms", "error_rate", "rate_limit_rate", "outage"}`).
//! - `GET /__sim/stats` — the counters as [`DwollaSimStats`]: tokens issued,
//!   requests refused for their token, webhook deliveries attempted.
//! - `POST /__sim/iav/{token}` — finish the hosted IAV of an IAV token:
//!   optional body `{"routingNumber", "accountNumber", "bankAccountType",
//!   "name"}`; answers `{"_links": {"funding-source": {"href"}}}`.
//! - `POST /__sim/simulate` — the same as `POST /sandbox-simulations`.

mod bank;
mod error;
mod routes;
mod store;
mod webhooks;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use donkies_dwolla::Cents;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use url::Url;

use crate::atrium::FaultSwitch;
pub use crate::atrium::Faults;
use crate::journal::{Journal, Row};
use crate::social::Served;
use store::Db;

/// Application key the simulator accepts unless configured otherwise.
pub const SANDBOX_DWOLLA_KEY: &str = "donkies-sandbox-dwolla-key";
/// Application secret the simulator accepts unless configured otherwise.
pub const SANDBOX_DWOLLA_SECRET: &str = "donkies-sandbox-dwolla-secret";
/// Routing number of the sandbox test bank (B6.4).
pub const SANDBOX_ROUTING_NUMBER: &str = "222222226";

/// Dwolla's webhook retry schedule (B7.2): 8 retries over 72 hours.
pub const DWOLLA_WEBHOOK_RETRIES: [Duration; 8] = [
    Duration::from_secs(15 * 60),
    Duration::from_secs(45 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(3 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(12 * 3600),
    Duration::from_secs(24 * 3600),
    Duration::from_secs(24 * 3600),
];

/// How idempotency keys are remembered (Decisions).
const IDEMPOTENCY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How the simulator starts.
#[derive(Clone)]
pub struct DwollaSimConfig {
    /// Accepted application key and secret.
    pub key: String,
    pub secret: String,
    /// Life of an application token (Dwolla: one hour).
    pub token_lifetime: Duration,
    /// Name of the master Account.
    pub account_name: String,
    /// Money in the Account's balance at start.
    pub account_balance: Cents,
    /// When set, pending bank transfers and micro-deposits are processed by
    /// themselves this often; `None`: only by `POST /sandbox-simulations`.
    pub processing_interval: Option<Duration>,
    /// Waits between delivery attempts of a webhook; Dwolla's by default,
    /// shorter in tests.
    pub webhook_retries: Vec<Duration>,
    /// How long a subscriber has to answer a delivery (Dwolla: 10 s).
    pub webhook_timeout: Duration,
    /// Failures injected from the start.
    pub faults: Faults,
    /// Seed of the fault draws.
    pub seed: u64,
    /// The URL links point at; [`DwollaSim::start`] uses its own address
    /// when unset.
    pub public_url: Option<Url>,
    /// The directory whose `sandbox.db` keeps the state across restarts;
    /// `None`: in memory only.
    pub data: Option<PathBuf>,
}

impl Default for DwollaSimConfig {
    fn default() -> Self {
        Self {
            key: SANDBOX_DWOLLA_KEY.to_owned(),
            secret: SANDBOX_DWOLLA_SECRET.to_owned(),
            token_lifetime: Duration::from_secs(3600),
            account_name: "Donkies".to_owned(),
            account_balance: Cents::new(500_000),
            processing_interval: None,
            webhook_retries: DWOLLA_WEBHOOK_RETRIES.to_vec(),
            webhook_timeout: Duration::from_secs(10),
            faults: Faults::default(),
            seed: 0x00d0_a11a,
            public_url: None,
            data: None,
        }
    }
}

impl fmt::Debug for DwollaSimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DwollaSimConfig")
            .field("key", &self.key)
            .field("secret", &"***")
            .field("token_lifetime", &self.token_lifetime)
            .field("account_balance", &self.account_balance)
            .field("processing_interval", &self.processing_interval)
            .field("webhook_retries", &self.webhook_retries)
            .field("faults", &self.faults)
            .field("public_url", &self.public_url.as_ref().map(Url::as_str))
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

/// A response remembered under an idempotency key.
#[derive(Debug, Clone)]
pub(crate) enum Remembered {
    InFlight,
    Done { at: Instant, status: StatusCode, location: Option<HeaderValue>, body: Bytes },
}

/// A remembered response as stored: when, by wall clock.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredAnswer {
    at: chrono::DateTime<chrono::Utc>,
    status: u16,
    location: Option<String>,
    body: String,
}

pub(crate) const IDEMPOTENCY: &str = "idempotency";

impl StoredAnswer {
    pub(crate) fn new(status: StatusCode, location: Option<&HeaderValue>, body: &Bytes) -> Self {
        Self {
            at: chrono::Utc::now(),
            status: status.as_u16(),
            location: location.and_then(|value| value.to_str().ok()).map(str::to_owned),
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }

    /// The answer again, unless it is older than the keys live.
    fn remembered(self) -> Option<Remembered> {
        let age = (chrono::Utc::now() - self.at).to_std().unwrap_or_default();
        Some(Remembered::Done {
            at: Instant::now().checked_sub(age)?,
            status: StatusCode::from_u16(self.status).ok()?,
            location: self.location.and_then(|location| HeaderValue::from_str(&location).ok()),
            body: Bytes::from(self.body),
        })
        .filter(|_| age < IDEMPOTENCY_LIFETIME)
    }
}

/// The simulator's counters since it started (`GET /__sim/stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DwollaSimStats {
    /// Tokens `POST /token` issued.
    pub token_requests: u64,
    /// Requests refused for an expired or unknown token.
    pub rejected_tokens: u64,
    /// Webhook deliveries attempted, retries included.
    pub webhook_attempts: u64,
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct SimState {
    key: String,
    secret: String,
    token_lifetime: Duration,
    webhook_retries: Vec<Duration>,
    webhook_timeout: Duration,
    faults: FaultSwitch,
    db: Mutex<Db>,
    tokens: Mutex<HashMap<String, Instant>>,
    idempotency: Mutex<HashMap<String, Remembered>>,
    /// Rows to write besides the records of `db` (remembered answers).
    staged: Mutex<Vec<Row>>,
    journal: Journal,
    token_requests: AtomicU64,
    rejected_tokens: AtomicU64,
    webhook_attempts: AtomicU64,
    /// Delivers webhooks; follows no redirects, as Dwolla.
    webhook_http: reqwest::Client,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in one handler must not take the simulator down.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimState {
    async fn open(config: DwollaSimConfig) -> std::io::Result<Self> {
        let base = config.public_url.as_ref().map_or("http://localhost".to_owned(), |url| url.to_string());
        let journal = Journal::open("dwolla", config.data.as_deref()).await?;
        let (answers, stored): (Vec<_>, Vec<_>) =
            journal.load().await?.into_iter().partition(|record| record.kind == IDEMPOTENCY);
        let mut idempotency = HashMap::new();
        let mut expired = Vec::new();
        for answer in answers {
            match answer.parse::<StoredAnswer>()?.remembered() {
                Some(remembered) => {
                    idempotency.insert(answer.id, remembered);
                }
                None => expired.push(Row::Delete { kind: IDEMPOTENCY, id: answer.id }),
            }
        }
        let db = Db::load(&base, &config.account_name, config.account_balance, stored, journal.keeps())?;
        let state = Self {
            key: config.key,
            secret: config.secret,
            token_lifetime: config.token_lifetime,
            webhook_retries: config.webhook_retries,
            webhook_timeout: config.webhook_timeout,
            faults: FaultSwitch::new(config.faults, config.seed),
            db: Mutex::new(db),
            tokens: Mutex::new(HashMap::new()),
            idempotency: Mutex::new(idempotency),
            staged: Mutex::new(expired),
            journal,
            token_requests: AtomicU64::new(0),
            rejected_tokens: AtomicU64::new(0),
            webhook_attempts: AtomicU64::new(0),
            webhook_http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
        };
        // A new Account is kept at once, and answers past their lifetime are forgotten.
        state.journal.write(|| state.take_rows(&mut Vec::new())).await?;
        Ok(state)
    }

    pub(crate) fn db(&self) -> MutexGuard<'_, Db> {
        lock(&self.db)
    }

    /// The rows of what changed since the last write, and the webhooks of
    /// the events it emitted (into `deliveries`).
    fn take_rows(&self, deliveries: &mut Vec<store::Delivery>) -> Vec<Row> {
        let mut db = self.db();
        *deliveries = db.take_outbox();
        let mut rows = db.take_rows();
        rows.append(&mut lock(&self.staged));
        rows
    }

    /// Keeps an answer given under an idempotency key with the next write.
    pub(crate) fn stage(&self, row: impl FnOnce() -> Row) {
        if self.journal.keeps() {
            lock(&self.staged).push(row());
        }
    }

    /// Writes what changed, then sends the webhooks of the events it
    /// emitted. Once this returns, what any earlier answer told is kept.
    pub(crate) async fn flush(self: &Arc<Self>) -> std::io::Result<()> {
        let mut deliveries = Vec::new();
        let written = self.journal.write(|| self.take_rows(&mut deliveries)).await;
        webhooks::dispatch(self, deliveries);
        written
    }

    async fn simulate(self: &Arc<Self>) -> std::io::Result<u64> {
        let total = self.db().simulate();
        self.flush().await?;
        Ok(total)
    }
}

/// A handle on a simulator's state, for its knobs and counters in process.
/// Clones control the same simulator.
#[derive(Clone, Debug)]
pub struct DwollaSimHandle {
    state: Arc<SimState>,
}

impl DwollaSimHandle {
    /// A simulator on the state kept in [`DwollaSimConfig::data`] (new when
    /// there is none), or in memory only.
    pub async fn open(config: DwollaSimConfig) -> std::io::Result<Self> {
        Ok(Self { state: Arc::new(SimState::open(config).await?) })
    }

    /// The Dwolla app of this simulator, to serve or to nest in a server.
    pub fn router(&self) -> Router {
        routes::router(self.state.clone())
    }

    /// The faults injected now; [`DwollaSimHandle::set_faults`] replaces
    /// them (out-of-range values clamped), as `POST /__sim/faults` does.
    pub fn faults(&self) -> Faults {
        self.state.faults.current()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state.faults.replace(faults);
    }

    /// Processes pending transfers and micro-deposits now, as
    /// `POST /sandbox-simulations` does (the changes are written in the
    /// background; [`DwollaSimHandle::close`] waits for them).
    pub fn simulate(&self) -> u64 {
        let total = self.state.db().simulate();
        let state = self.state.clone();
        tokio::spawn(async move { state.flush().await.inspect_err(|e| tracing::error!("dwolla simulator: {e}")) });
        total
    }

    /// Processes by itself every `interval` until the task is aborted.
    pub fn spawn_processor(&self, interval: Duration) -> JoinHandle<()> {
        let state = self.state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if let Err(e) = state.simulate().await {
                    tracing::error!("dwolla simulator: {e}");
                }
            }
        })
    }

    /// Waits for the last changes to be written and closes the state file.
    pub async fn close(&self) {
        if let Err(e) = self.state.flush().await {
            tracing::error!("dwolla simulator: {e}");
        }
        self.state.journal.close().await;
    }

    /// How many tokens `POST /token` has issued.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::Relaxed)
    }

    /// How many requests were refused for an expired or unknown token.
    pub fn rejected_tokens(&self) -> u64 {
        self.state.rejected_tokens.load(Ordering::Relaxed)
    }

    /// How many webhook deliveries were attempted, retries included.
    pub fn webhook_attempts(&self) -> u64 {
        self.state.webhook_attempts.load(Ordering::Relaxed)
    }

    /// Makes every issued token expired, as an hour passing would.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        lock(&self.state.tokens).values_mut().for_each(|expiry| *expiry = now);
    }

    /// Forgets every issued token: they become invalid.
    pub fn revoke_tokens(&self) {
        lock(&self.state.tokens).clear();
    }

    /// The id of the master Account.
    pub fn account_id(&self) -> String {
        self.state.db().account_id().to_owned()
    }
}

/// A simulator serving on a TCP port until [`DwollaSim::shutdown`] or drop.
#[derive(Debug)]
pub struct DwollaSim {
    served: Served,
    base_url: Url,
    handle: DwollaSimHandle,
    processor: Option<Processor>,
}

impl DwollaSim {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub async fn start(addr: SocketAddr, mut config: DwollaSimConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let base_url = config
            .public_url
            .get_or_insert_with(|| Url::parse(&format!("http://{addr}/")).expect("a socket address makes a valid url"))
            .clone();
        let interval = config.processing_interval;
        let handle = DwollaSimHandle::open(config).await?;
        let served = Served::serve(listener, handle.router(), "dwolla")?;
        let processor = interval.map(|interval| Processor(handle.spawn_processor(interval)));
        Ok(Self { served, base_url, handle, processor })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.served.local_addr()
    }

    /// The base URL to give the Dwolla client.
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    pub fn handle(&self) -> &DwollaSimHandle {
        &self.handle
    }

    pub fn set_faults(&self, faults: Faults) {
        self.handle.set_faults(faults);
    }

    /// Stops processing and accepting connections, and waits (up to a few
    /// seconds) for the requests in flight to finish.
    pub async fn shutdown(self) -> std::io::Result<()> {
        drop(self.processor);
        let served = self.served.shutdown().await;
        self.handle.close().await;
        served
    }
}

/// The automatic processing task, stopped with its simulator.
#[derive(Debug)]
struct Processor(JoinHandle<()>);

impl Drop for Processor {
    fn drop(&mut self) {
        self.0.abort();
    }
}
