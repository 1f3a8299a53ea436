//! A wire-faithful MX Atrium simulator (PROVIDERS.md Part A).
//!
//! An axum app serving the Atrium endpoints with the JSON of
//! [`donkies_atrium::wire`], the `mxbank` test institution and its password
//! triggers, MFA challenges, member statuses that advance one per
//! [`AtriumSimConfig::step`], deterministic accounts and transactions, and
//! fault knobs. State lives in memory, and with [`AtriumSimConfig::data`]
//! also in `sandbox.db` in that directory, written before each answer (see
//! `store`).
//!
//! Control endpoints (no API key, never subject to faults):
//! - `GET|POST /__sim/faults` — read or replace [`Faults`] (JSON below).
//! - `GET|POST /__sim/settings` — read or patch [`SimSettings`].
//! - `POST /__sim/reset` — forget all users and members (on disk too).
//! - `POST /__sim/members/{member_guid}/events` — steer a member's bank with
//!   a JSON array of [`SimEvent`]s, applied in order and all or none;
//!   answers a JSON array with the guid each event made, or `null`. The
//!   member's data shows them from its next completed aggregation on.
//!
//! `churnbank` behaves like mxbank but its history moves by itself: each
//! aggregation is a new simulated day of the login in which pending
//! purchases post (under new guids, some with a tip) or drop, a recent
//! purchase may be amended, refunded or removed, and new pending purchases
//! arrive (see `ledger`).
//!
//! `Faults` JSON: `{"latency_ms": 0, "error_rate": 0.0, "rate_limit_rate": 0.0,
//! "outage": null}`; missing fields take their defaults.

mod catalog;
mod data;
mod error;
mod guid;
mod ledger;
mod routes;
mod store;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

pub use catalog::{
    CHURNBANK_CODE, CHURNBANK_LOGIN_GUID, CHURNBANK_PASSWORD_GUID, MXBANK_CODE, MXBANK_LOGIN_GUID, MXBANK_PASSWORD_GUID,
};
pub use data::HISTORY_DAYS as ATRIUM_HISTORY_DAYS;
pub use ledger::SimEvent;
pub use store::{CORRECT_ANSWER, VALID_USERNAMES};

use crate::journal::Journal;
use catalog::CatalogEntry;
use error::ApiError;
use store::{Db, Now, Timing};

/// Client id the simulator accepts unless configured otherwise.
pub const SANDBOX_CLIENT_ID: &str = "donkies-sandbox-client";
/// API key the simulator accepts unless configured otherwise.
pub const SANDBOX_API_KEY: &str = "donkies-sandbox-key";
/// The mxbank username that logs in (A6.1).
pub const MXBANK_USERNAME: &str = "test_atrium";

/// Failures the simulator injects into Atrium requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay added before answering every request.
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// Share of requests (0.0–1.0) answered `500`.
    pub error_rate: f64,
    /// Share of requests (0.0–1.0) answered `429` with `Retry-After: 1`.
    pub rate_limit_rate: f64,
    /// When set, every request is answered with this 5xx status (an outage:
    /// 503 for maintenance, 500 for a broken server).
    pub outage: Option<u16>,
}

impl Faults {
    /// Every request answered with `status` (500–599).
    pub fn outage(status: u16) -> Self {
        Self { outage: Some(status), ..Self::default() }
    }

    /// Checks the rates are shares and the outage status a 5xx.
    pub fn validate(&self) -> Result<(), String> {
        let share = |rate: f64| (0.0..=1.0).contains(&rate);
        if !share(self.error_rate) || !share(self.rate_limit_rate) {
            return Err("error_rate and rate_limit_rate must be between 0 and 1".into());
        }
        if self.error_rate + self.rate_limit_rate > 1.0 {
            return Err("error_rate + rate_limit_rate must not exceed 1".into());
        }
        if self.outage.is_some_and(|status| !(500..=599).contains(&status)) {
            return Err("outage must be a 5xx status".into());
        }
        Ok(())
    }

    /// The status a request is answered with instead of being served (an
    /// outage, a drawn 429 or 500), or `None` to serve it.
    pub(crate) fn draw(&self, rng: &mut StdRng) -> Option<u16> {
        if self.outage.is_some() {
            return self.outage;
        }
        if self.rate_limit_rate <= 0.0 && self.error_rate <= 0.0 {
            return None;
        }
        let draw: f64 = rand::Rng::r#gen(rng);
        if draw < self.rate_limit_rate {
            Some(429)
        } else if draw < self.rate_limit_rate + self.error_rate {
            Some(500)
        } else {
            None
        }
    }

    /// The nearest valid faults: rates clamped, a bad outage status made 503.
    pub(crate) fn sanitized(mut self) -> Self {
        self.error_rate = clamp_share(self.error_rate);
        self.rate_limit_rate = clamp_share(self.rate_limit_rate).min(1.0 - self.error_rate);
        if self.outage.is_some_and(|status| !(500..=599).contains(&status)) {
            self.outage = Some(503);
        }
        self
    }
}

/// Faults with the dice they are drawn with, for a simulator that has no
/// other run-time knobs.
#[derive(Debug)]
pub(crate) struct FaultSwitch(Mutex<(Faults, StdRng)>);

impl FaultSwitch {
    pub(crate) fn new(faults: Faults, seed: u64) -> Self {
        Self(Mutex::new((faults.sanitized(), StdRng::seed_from_u64(seed ^ 0xfa17))))
    }

    pub(crate) fn current(&self) -> Faults {
        lock(&self.0).0.clone()
    }

    /// Replaces the faults; out-of-range values are clamped.
    pub(crate) fn replace(&self, faults: Faults) {
        lock(&self.0).0 = faults.sanitized();
    }

    /// The latency to add and the status to answer instead, for one request.
    pub(crate) fn roll(&self) -> (Duration, Option<u16>) {
        let mut guard = lock(&self.0);
        let (faults, rng) = &mut *guard;
        (faults.latency, faults.draw(rng))
    }
}

fn clamp_share(rate: f64) -> f64 {
    if rate.is_nan() { 0.0 } else { rate.clamp(0.0, 1.0) }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// How the simulator starts.
#[derive(Clone)]
pub struct AtriumSimConfig {
    /// Accepted `MX-Client-ID`.
    pub client_id: String,
    /// Accepted `MX-API-Key`.
    pub api_key: String,
    /// Time a member spends in each status of an aggregation.
    pub step: Duration,
    /// How long a CHALLENGED member waits for answers before it is HALTED.
    pub challenge_timeout: Duration,
    /// Transactions per member: `None` for 90 days of a few a day,
    /// `Some(n)` for exactly `n` over those 90 days.
    pub transactions_per_member: Option<u32>,
    /// Failures injected from the start.
    pub faults: Faults,
    /// Seed of the guids and of the fault draws.
    pub seed: u64,
    /// The directory whose `sandbox.db` keeps users and members across
    /// restarts; `None`: in memory only.
    pub data: Option<PathBuf>,
}

impl Default for AtriumSimConfig {
    fn default() -> Self {
        Self {
            client_id: SANDBOX_CLIENT_ID.to_owned(),
            api_key: SANDBOX_API_KEY.to_owned(),
            step: Duration::from_millis(500),
            challenge_timeout: Duration::from_secs(600),
            transactions_per_member: None,
            faults: Faults::default(),
            seed: 0x00d0_4b1e_5a4d_b0c5,
            data: None,
        }
    }
}

impl fmt::Debug for AtriumSimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtriumSimConfig")
            .field("client_id", &self.client_id)
            .field("api_key", &"***")
            .field("step", &self.step)
            .field("challenge_timeout", &self.challenge_timeout)
            .field("transactions_per_member", &self.transactions_per_member)
            .field("faults", &self.faults)
            .field("seed", &self.seed)
            .field("data", &self.data)
            .finish()
    }
}

/// Settings changeable at run time (`/__sim/settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimSettings {
    #[serde(rename = "step_ms", with = "millis")]
    pub step: Duration,
    #[serde(rename = "challenge_timeout_ms", with = "millis")]
    pub challenge_timeout: Duration,
    pub transactions_per_member: Option<u32>,
}

/// The parts of the settings that change at run time.
#[derive(Debug)]
pub(crate) struct Knobs {
    settings: SimSettings,
    faults: Faults,
    fault_rng: StdRng,
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct SimState {
    client_id: String,
    api_key: String,
    catalog: Arc<[CatalogEntry]>,
    knobs: Mutex<Knobs>,
    db: Mutex<Db>,
    journal: Journal,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in one handler must not take the simulator down.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimState {
    async fn open(config: AtriumSimConfig) -> std::io::Result<Self> {
        let catalog: Arc<[CatalogEntry]> = catalog::catalog().into();
        let journal = Journal::open("atrium", config.data.as_deref()).await?;
        let db = Db::load(catalog.clone(), config.seed, journal.load().await?, journal.keeps())?;
        Ok(Self {
            client_id: config.client_id,
            api_key: config.api_key,
            db: Mutex::new(db),
            journal,
            catalog,
            knobs: Mutex::new(Knobs {
                settings: SimSettings {
                    step: config.step,
                    challenge_timeout: config.challenge_timeout,
                    transactions_per_member: config.transactions_per_member,
                },
                faults: config.faults.sanitized(),
                fault_rng: StdRng::seed_from_u64(config.seed ^ 0xfa17),
            }),
        })
    }

    /// Writes the users and members changed so far.
    pub(crate) async fn flush(&self) -> std::io::Result<()> {
        self.journal.write(|| self.db().take_rows()).await
    }

    /// Forgets every user and member, in memory and on disk.
    pub(crate) async fn reset(&self) -> std::io::Result<()> {
        self.journal.clear(|| self.db().reset()).await
    }

    pub(crate) fn db(&self) -> MutexGuard<'_, Db> {
        lock(&self.db)
    }

    pub(crate) fn knobs(&self) -> MutexGuard<'_, Knobs> {
        lock(&self.knobs)
    }

    pub(crate) fn timing(&self) -> Timing {
        let knobs = self.knobs();
        Timing { step: knobs.settings.step, challenge_timeout: knobs.settings.challenge_timeout }
    }

    pub(crate) fn transactions_per_member(&self) -> Option<u32> {
        self.knobs().settings.transactions_per_member
    }

    /// Applies the events to the member and keeps them before answering.
    pub(crate) async fn apply_events(
        &self,
        member_guid: &str,
        events: Vec<SimEvent>,
    ) -> Result<Vec<Option<String>>, ApiError> {
        let count = self.transactions_per_member();
        let created = self.db().apply_events(member_guid, events, count, Now::read())?;
        self.flush().await.map_err(|e| {
            tracing::error!("atrium simulator: {e}");
            ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        })?;
        Ok(created)
    }
}

/// Why events were refused (nothing of them was applied): `status` 404 for
/// an unknown member, 400 for an event that does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEventError {
    pub status: u16,
    pub message: String,
}

impl fmt::Display for SimEventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for SimEventError {}

/// A handle on a simulator's state for changing its knobs in process.
/// Clones control the same simulator.
#[derive(Clone, Debug)]
pub struct AtriumSimHandle {
    state: Arc<SimState>,
}

impl AtriumSimHandle {
    /// A simulator on the users and members kept in
    /// [`AtriumSimConfig::data`], or in memory only.
    pub async fn open(config: AtriumSimConfig) -> std::io::Result<Self> {
        Ok(Self { state: Arc::new(SimState::open(config).await?) })
    }

    /// The app serving this simulator, to run or to nest in another router.
    pub fn router(&self) -> Router {
        routes::router(self.state.clone())
    }

    pub fn faults(&self) -> Faults {
        self.state.knobs().faults.clone()
    }

    /// Replaces the faults; out-of-range values are clamped.
    pub fn set_faults(&self, faults: Faults) {
        self.state.knobs().faults = faults.sanitized();
    }

    pub fn settings(&self) -> SimSettings {
        self.state.knobs().settings.clone()
    }

    /// Step of aggregations started from now on.
    pub fn set_step(&self, step: Duration) {
        self.state.knobs().settings.step = step;
    }

    /// Transactions per member for data generated from now on.
    pub fn set_transactions_per_member(&self, count: Option<u32>) {
        self.state.knobs().settings.transactions_per_member = count;
    }

    /// Forgets every user and member, in memory and on disk.
    pub async fn reset(&self) -> std::io::Result<()> {
        self.state.reset().await
    }

    /// Applies `events` to a member's bank as
    /// `POST /__sim/members/{member_guid}/events` does: in order, all or
    /// none; answers the guid each event made, or `None`.
    pub async fn apply_events(
        &self,
        member_guid: &str,
        events: Vec<SimEvent>,
    ) -> Result<Vec<Option<String>>, SimEventError> {
        self.state
            .apply_events(member_guid, events)
            .await
            .map_err(|e| SimEventError { status: e.status.as_u16(), message: e.message })
    }
}

/// The simulator's app with its own state, for embedding in another server.
pub async fn atrium_router(config: AtriumSimConfig) -> std::io::Result<Router> {
    Ok(AtriumSimHandle::open(config).await?.router())
}

/// A simulator serving on a TCP port until [`AtriumSim::shutdown`] or drop.
#[derive(Debug)]
pub struct AtriumSim {
    addr: SocketAddr,
    handle: AtriumSimHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl AtriumSim {
    /// How long [`AtriumSim::shutdown`] waits for requests in flight.
    const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub async fn start(addr: SocketAddr, config: AtriumSimConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let handle = AtriumSimHandle::open(config).await?;
        let app = handle.router();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // A dropped sender stops the server too.
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%addr, "atrium simulator listening");
        Ok(Self { addr, handle, stop: Some(stop), task: Some(task) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/`: the base URL to give the Atrium client.
    pub fn base_url(&self) -> Url {
        Url::parse(&format!("http://{}/", self.addr)).expect("a socket address makes a valid url")
    }

    pub fn handle(&self) -> &AtriumSimHandle {
        &self.handle
    }

    pub fn faults(&self) -> Faults {
        self.handle.faults()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.handle.set_faults(faults);
    }

    pub fn set_step(&self, step: Duration) {
        self.handle.set_step(step);
    }

    pub fn set_transactions_per_member(&self, count: Option<u32>) {
        self.handle.set_transactions_per_member(count);
    }

    /// See [`AtriumSimHandle::apply_events`].
    pub async fn apply_events(
        &self,
        member_guid: &str,
        events: Vec<SimEvent>,
    ) -> Result<Vec<Option<String>>, SimEventError> {
        self.handle.apply_events(member_guid, events).await
    }

    /// Stops accepting connections and waits (up to a few seconds) for the
    /// requests in flight to finish.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        let served = match tokio::time::timeout(Self::SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => Err(std::io::Error::other(join_error)),
            Err(_) => {
                task.abort();
                Ok(())
            }
        };
        self.handle.state.journal.close().await;
        served
    }
}

impl Drop for AtriumSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
