//! Use cases: what the API and the job worker do, written once. Handlers parse a request, call
//! a service and render its answer; jobs call the same services. Nothing here knows about HTTP.

pub mod accounts;
pub mod banking;
pub mod changes;
pub mod identity;
pub mod money;
pub mod outbox;
pub mod password;
pub mod payments;
pub mod profile;
pub mod queue;
pub mod settings;
pub mod social;

use donkies_domain::ExposeSecret;
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use donkies_atrium::Aggregator;
use donkies_dwolla::PaymentRail;
use donkies_outbound::ProviderFailure;
use donkies_store::{Db, StoreError, Tx};

use crate::crypto::Sealer;
pub use changes::{Change, Changes};
pub use queue::{JobQueue, Priority, Task};
pub use settings::ServiceSettings;

/// The use cases, by area: each area's service holds only what it reaches (the payments service
/// cannot reach the aggregator, banking cannot reach the payment rail).
#[derive(Clone)]
pub struct Services(Arc<ServicesInner>);

pub struct ServicesInner {
    pub store: Storage,
    pub sealer: Sealer,
    /// Sign-up, sign-in, sessions, passwords and the profile.
    pub identity: identity::IdentityService,
    /// The user's accounts, debt shares and transactions.
    pub accounts: accounts::AccountsService,
    /// The aggregator user, institutions, members and their sync.
    pub banking: banking::BankingService,
    /// Customers, funding sources and transfers at the payment rail.
    pub payments: payments::PaymentsService,
    /// Round-ups, collections, payouts and the ledger.
    pub money: money::MoneyService,
}

impl Deref for Services {
    type Target = ServicesInner;
    fn deref(&self) -> &ServicesInner {
        &self.0
    }
}

impl Services {
    /// The services over `db`, with the clients of the aggregator, the payment rail and the
    /// sign-in providers.
    pub fn new(
        db: Db,
        settings: ServiceSettings,
        clients: (Arc<dyn Aggregator>, Arc<dyn PaymentRail>, social::SignInProviders),
        jobs: JobQueue,
    ) -> Services {
        let sealer = Sealer::from_secret(settings.identity.secret_key.expose_secret());
        let (aggregator, rail, social) = clients;
        let store = Storage { db, jobs, changes: Changes::default() };
        let accounts = accounts::AccountsService::new(store.clone(), sealer.clone());
        let banking = banking::BankingService::new(store.clone(), aggregator, settings.banking.clone());
        let payments = payments::PaymentsService::new(store.clone(), rail, sealer.clone(), settings.payments.clone());
        let money = money::MoneyService::new(store.clone(), payments.clone(), settings.money.clone());
        let identity =
            identity::IdentityService::new(store.clone(), sealer.clone(), social, payments.clone(), settings.identity);
        Services(Arc::new(ServicesInner { store, sealer, identity, accounts, banking, payments, money }))
    }

    /// The job queue at a glance (for `/metrics`).
    pub async fn queue_stats(&self) -> Result<donkies_store::jobs::QueueStats, StoreError> {
        donkies_store::jobs::stats(&self.store.db, donkies_store::now()).await
    }

    /// Open and idle connections of the database pool.
    pub fn pool_usage(&self) -> (u32, usize) {
        self.store.db.pool_usage()
    }

    /// Whether the database answers (readiness).
    pub async fn check_database(&self) -> Result<(), StoreError> {
        self.store.db.ping().await
    }

    /// Count one attempt of each key in the current fixed window of length `window`, into the
    /// count every process on the database shares. Returns the most attempts any of the keys has
    /// had in this window, and when the window ends.
    pub async fn count_attempts(
        &self,
        keys: &[String],
        window: std::time::Duration,
    ) -> Result<(i64, chrono::DateTime<chrono::Utc>), StoreError> {
        let seconds = i64::try_from(window.as_secs().max(1)).unwrap_or(i64::MAX);
        let now = donkies_store::now();
        let start =
            chrono::DateTime::from_timestamp(now.timestamp() - now.timestamp().rem_euclid(seconds), 0).unwrap_or(now);
        let end = start + chrono::Duration::seconds(seconds);
        let mut work = self.begin().await?;
        let mut most = 0;
        for key in keys {
            most = most.max(donkies_store::rate_limits::count_attempt(&mut work, key, start, end).await?);
        }
        work.commit().await?;
        Ok((most, end))
    }

    /// Start a unit of work: a transaction whose enqueued jobs wake the worker, and whose
    /// changes reach the listeners, once it commits.
    pub async fn begin(&self) -> Result<Work, StoreError> {
        self.store.begin().await
    }
}

/// What a use case needs to do a unit of work: the database, the job queue its jobs wake, and
/// the listeners its changes reach.
#[derive(Clone)]
pub struct Storage {
    pub db: Db,
    pub jobs: JobQueue,
    pub changes: Changes,
}

impl Storage {
    /// Start a unit of work: a transaction whose enqueued jobs wake the worker, and whose
    /// changes reach the listeners, once it commits.
    pub async fn begin(&self) -> Result<Work, StoreError> {
        Ok(Work {
            tx: self.db.begin().await?,
            db: self.db.clone(),
            jobs: self.jobs.clone(),
            changes: self.changes.clone(),
            woken: false,
            changed: Vec::new(),
        })
    }
}

/// A transaction with the after-commit effects of what it did: the worker is woken when a job
/// was enqueued, and listeners learn of the changes. Dropped without `commit`, nothing happens.
pub struct Work {
    tx: Tx,
    db: Db,
    jobs: JobQueue,
    changes: Changes,
    woken: bool,
    changed: Vec<Change>,
}

impl Work {
    /// Enqueue `task` to run after `delay`, as part of this transaction.
    pub async fn enqueue<T: Task>(&mut self, task: &T, delay: std::time::Duration) -> Result<(), StoreError> {
        self.jobs.push(&mut self.tx, task, delay).await?;
        self.woken = true;
        Ok(())
    }

    /// Enqueue every task of `tasks` to run now, as part of this transaction.
    pub async fn enqueue_all<T: Task>(&mut self, tasks: &[T]) -> Result<(), StoreError> {
        if tasks.is_empty() {
            return Ok(());
        }
        self.jobs.push_all(&mut self.tx, tasks).await?;
        self.woken = true;
        Ok(())
    }

    /// Tell listeners about `change` once this transaction commits.
    pub fn changed(&mut self, change: Change) {
        self.changed.push(change);
    }

    /// Commit; then wake the worker, tell this process's listeners, and (on PostgreSQL) wait
    /// until the other processes heard of the changes too.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let sent = self.changes.send(&mut self.tx, &self.changed).await?;
        self.tx.commit().await?;
        if self.woken {
            self.jobs.wake();
        }
        if self.changed.is_empty() {
            self.changes.publish(&Change::Any);
        }
        for change in &self.changed {
            self.changes.publish(change);
        }
        if let Some(sent) = sent {
            self.changes.settled(&self.db, sent).await;
        }
        Ok(())
    }
}

impl Deref for Work {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl DerefMut for Work {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

/// Why a use case could not do what was asked, in terms the edge (HTTP or a job) can act on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Field errors: `{"field": ["message", …]}`.
    #[error("invalid fields: {0:?}")]
    Fields(BTreeMap<String, Vec<String>>),
    /// Not valid for another reason.
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    /// An outside service is unavailable to us for now (down, rate-limiting, or refusing our
    /// credentials): try again later. `failure` says which, and how long it asked us to wait.
    #[error("{message}")]
    Unavailable {
        message: String,
        failure: ProviderFailure,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Insert, then translate the unique constraint that refused it (never check first: that
/// races). `name` is one of [`donkies_store::constraints`]. Calls chain, one per constraint
/// a write may meet: `.on_constraint(A, || …).on_constraint(B, || …)?`.
pub trait OnConstraint<T> {
    fn on_constraint(self, name: &str, error: impl FnOnce() -> ServiceError) -> ServiceResult<T>;
}

impl<T> OnConstraint<T> for Result<T, StoreError> {
    fn on_constraint(self, name: &str, error: impl FnOnce() -> ServiceError) -> ServiceResult<T> {
        self.map_err(|e| if e.on_constraint(name) { error() } else { e.into() })
    }
}

impl<T> OnConstraint<T> for ServiceResult<T> {
    fn on_constraint(self, name: &str, error: impl FnOnce() -> ServiceError) -> ServiceResult<T> {
        self.map_err(|e| match e {
            ServiceError::Store(store) if store.on_constraint(name) => error(),
            other => other,
        })
    }
}

impl ServiceError {
    pub fn field(name: &str, message: impl Into<String>) -> ServiceError {
        ServiceError::Fields(BTreeMap::from([(name.to_owned(), vec![message.into()])]))
    }

    pub fn fields(name: &str, messages: Vec<String>) -> ServiceError {
        ServiceError::Fields(BTreeMap::from([(name.to_owned(), messages)]))
    }

    pub fn invalid(message: impl Into<String>) -> ServiceError {
        ServiceError::Invalid(message.into())
    }

    /// A provider's failure in the terms of a use case, the one place that decides it for every
    /// provider: no such resource is not found, a refused request is invalid (`refused` says
    /// why, in the user's terms), and the rest (an outage, a rate limit, our credentials
    /// refused) make the service unavailable for now (`unavailable` says which service).
    #[deny(clippy::wildcard_enum_match_arm)]
    pub fn provider(
        failure: ProviderFailure,
        unavailable: &str,
        refused: String,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> ServiceError {
        let unavailable = |cause| ServiceError::Unavailable { message: unavailable.to_owned(), failure, cause };
        match failure {
            ProviderFailure::NotFound => ServiceError::NotFound,
            ProviderFailure::Refused => ServiceError::Invalid(refused),
            ProviderFailure::Auth => {
                // Only an operator can fix this; say it where they look, every time.
                tracing::error!(error = %cause, "a provider refused our credentials; check its keys");
                unavailable(Box::new(cause))
            }
            ProviderFailure::Transient { .. } | ProviderFailure::RateLimited { .. } => unavailable(Box::new(cause)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_translations_chain() {
        let translate = |refused: &str| {
            Err::<(), _>(StoreError::Conflict(refused.to_owned()))
                .on_constraint("first", || ServiceError::invalid("first"))
                .on_constraint("second", || ServiceError::invalid("second"))
        };
        assert!(matches!(translate("first"), Err(ServiceError::Invalid(m)) if m == "first"));
        assert!(matches!(translate("second"), Err(ServiceError::Invalid(m)) if m == "second"));
        assert!(matches!(translate("third"), Err(ServiceError::Store(StoreError::Conflict(c))) if c == "third"));
    }
}
