//! Background jobs as types. Each job is a [`Task`] (its kind and payload) that also implements
//! [`Job`]: how it runs, calling the same services as the API, and how often the clock runs it
//! if it is periodic. Both live in one file per area below; the services import the tasks they
//! enqueue from there. Its error says whether to try again and when: a provider's failure is
//! carried as the one [`ProviderFailure`] model, and the worker decides from it alone.

pub mod banking;
pub mod cleanup;
pub mod mail;
pub mod money;
pub mod payments;
pub mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use donkies_outbound::ProviderFailure;
use donkies_store::StoreError;
use serde::de::DeserializeOwned;

use crate::config::Settings;
use crate::mail::Mailer;
use crate::services::{Priority, ServiceError, Services, Task};
pub use worker::{Outcome, Worker, backoff, schedule_periodic};

/// What a job runs with: the services, the mailer (only jobs deliver mail), and the settings
/// of the worker (its lease, retries and polling).
#[derive(Clone)]
pub struct JobContext {
    pub services: Services,
    pub mailer: Mailer,
    pub settings: Arc<Settings>,
}

/// Why a job did not finish, and what the worker should do about it.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A provider failed; the worker acts on `failure` (see `worker::Policy`): an outage, a
    /// rate limit or refused credentials are waited out without using up attempts, a refused
    /// request or a missing resource parks the job.
    #[error("{cause:#}")]
    Provider { failure: ProviderFailure, cause: anyhow::Error },
    /// Worth trying again (our own database, a mail relay): after the worker's exponential
    /// backoff, counting an attempt.
    #[error("{cause:#}")]
    Retry { cause: anyhow::Error },
    /// Trying again cannot help (a refused request, a payload that does not parse): the job is
    /// parked for an operator at once.
    #[error("{0:#}")]
    Permanent(anyhow::Error),
}

impl JobError {
    pub fn retry(cause: impl Into<anyhow::Error>) -> JobError {
        JobError::Retry { cause: cause.into() }
    }

    pub fn permanent(cause: impl Into<anyhow::Error>) -> JobError {
        JobError::Permanent(cause.into())
    }
}

impl From<StoreError> for JobError {
    fn from(err: StoreError) -> Self {
        // The database may be back in a moment; a stored value that does not parse will not.
        match err {
            StoreError::Corrupt(_) => JobError::Permanent(err.into()),
            other => JobError::retry(other),
        }
    }
}

impl From<anyhow::Error> for JobError {
    fn from(err: anyhow::Error) -> Self {
        JobError::retry(err)
    }
}

impl From<ServiceError> for JobError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Unavailable { failure, cause, .. } => {
                JobError::Provider { failure, cause: anyhow::Error::from_boxed(cause) }
            }
            ServiceError::Store(e) => e.into(),
            ServiceError::Internal(e) => JobError::retry(e),
            other @ (ServiceError::Fields(_) | ServiceError::Invalid(_) | ServiceError::NotFound) => {
                JobError::permanent(other)
            }
        }
    }
}

/// How a task runs.
pub trait Job: Task + DeserializeOwned + 'static {
    /// How often the clock enqueues this job (one run per slot of this length); `None` for a
    /// job that only runs when something enqueues it.
    const EVERY: Option<Duration> = None;

    fn run(self, ctx: &JobContext) -> impl Future<Output = Result<(), JobError>> + Send;

    /// The job will not run again (parked): record what that means for whoever waits on it.
    fn parked(self, ctx: &JobContext) -> impl Future<Output = Result<(), JobError>> + Send {
        let _ = (self, ctx);
        async { Ok(()) }
    }
}

type BoxFuture<'a> = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>>;
type Runner = for<'a> fn(&'a JobContext, &'a str) -> BoxFuture<'a>;

fn parked_runner<'a, J: Job>(ctx: &'a JobContext, payload: &'a str) -> BoxFuture<'a> {
    let parsed = serde_json::from_str::<J>(payload);
    Box::pin(async move {
        match parsed {
            Ok(job) => job.parked(ctx).await,
            Err(_) => Ok(()),
        }
    })
}

fn runner<'a, J: Job>(ctx: &'a JobContext, payload: &'a str) -> BoxFuture<'a> {
    let parsed = serde_json::from_str::<J>(payload);
    Box::pin(async move {
        let job =
            parsed.map_err(|e| JobError::permanent(anyhow::anyhow!("{} payload does not parse: {e}", J::KIND)))?;
        job.run(ctx).await
    })
}

/// How a registered kind runs, runs when parked, how often the clock enqueues it, and whether a
/// person waits for it.
struct Entry {
    run: Runner,
    parked: Runner,
    every: Option<Duration>,
    priority: Priority,
}

/// Every job kind this build runs, by kind.
pub struct Registry {
    runners: HashMap<&'static str, Entry>,
}

impl Registry {
    pub fn empty() -> Registry {
        Registry { runners: HashMap::new() }
    }

    /// Add `J`. Two jobs with one kind would run each other's payloads: that panics.
    pub fn register<J: Job>(&mut self) -> &mut Registry {
        let entry = Entry { run: runner::<J>, parked: parked_runner::<J>, every: J::EVERY, priority: J::PRIORITY };
        let previous = self.runners.insert(J::KIND, entry);
        assert!(previous.is_none(), "two jobs share the kind {:?}", J::KIND);
        self
    }

    /// Every kind of this crate.
    pub fn all() -> Registry {
        let mut r = Registry::empty();
        r.register::<mail::SendMail>()
            .register::<cleanup::Cleanup>()
            .register::<banking::CreateAggregatorUser>()
            .register::<banking::BackfillAggregatorUsers>()
            .register::<banking::SyncInstitutions>()
            .register::<banking::PollMember>()
            .register::<banking::SyncMemberTransactions>()
            .register::<banking::ResyncMembers>()
            .register::<banking::ResyncMember>()
            .register::<payments::CreateDwollaCustomer>()
            .register::<payments::CreateDwollaFundingSource>()
            .register::<payments::SendTransfer>()
            .register::<payments::ApplyDwollaEvent>()
            .register::<payments::EnsureWebhookSubscription>()
            .register::<payments::PollPayments>()
            .register::<money::CollectRoundUps>()
            .register::<money::CollectBatch>()
            .register::<money::RunPayouts>()
            .register::<money::PayoutBatch>()
            .register::<money::FinalPayout>();
        r
    }

    /// The registered kinds the clock enqueues, with their period, by kind.
    pub fn periodic(&self) -> Vec<(&'static str, Duration)> {
        let mut periodic: Vec<_> =
            self.runners.iter().filter_map(|(kind, entry)| entry.every.map(|every| (*kind, every))).collect();
        periodic.sort_unstable();
        periodic
    }

    /// The priority jobs of `kind` are enqueued with.
    pub fn priority(&self, kind: &str) -> Option<Priority> {
        self.runners.get(kind).map(|entry| entry.priority)
    }

    pub fn knows(&self, kind: &str) -> bool {
        self.runners.contains_key(kind)
    }

    pub(crate) async fn run(&self, ctx: &JobContext, kind: &str, payload: &str) -> Result<(), JobError> {
        match self.runners.get(kind) {
            Some(entry) => (entry.run)(ctx, payload).await,
            None => Err(JobError::permanent(anyhow::anyhow!("unknown job kind {kind:?}"))),
        }
    }

    pub(crate) async fn parked(&self, ctx: &JobContext, kind: &str, payload: &str) -> Result<(), JobError> {
        match self.runners.get(kind) {
            Some(entry) => (entry.parked)(ctx, payload).await,
            None => Ok(()),
        }
    }
}

/// Work scheduled by the clock: (job kind, period) of every registered periodic job, by kind.
pub fn periodic() -> &'static [(&'static str, Duration)] {
    static PERIODIC: LazyLock<Vec<(&'static str, Duration)>> = LazyLock::new(|| Registry::all().periodic());
    &PERIODIC
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn every_periodic_kind_is_registered_with_its_period() {
        let registry = Registry::all();
        for (kind, every) in periodic() {
            assert!(registry.knows(kind), "{kind} is periodic but not registered");
            assert!(!every.is_zero(), "{kind} has no period");
        }
        let expected = [
            ("backfill_aggregator_users", 6 * HOUR),
            ("cleanup", HOUR),
            ("collect_roundups", HOUR),
            ("poll_payments", Duration::from_secs(300)),
            ("resync_members", HOUR),
            ("run_payouts", HOUR),
            ("sync_institutions", 6 * HOUR),
        ];
        assert_eq!(periodic(), expected);
    }

    /// Kinds are stored with queued jobs: renaming one strands what is queued under it.
    #[test]
    fn registered_kinds_are_distinct_and_unchanged() {
        let registry = Registry::all();
        let mut kinds: Vec<&str> = registry.runners.keys().copied().collect();
        kinds.sort_unstable();
        let expected = [
            "apply_dwolla_event",
            "backfill_aggregator_users",
            "cleanup",
            "collect_batch",
            "collect_roundups",
            "create_aggregator_user",
            "create_dwolla_customer",
            "create_dwolla_funding_source",
            "ensure_dwolla_webhook",
            "final_payout",
            "payout_batch",
            "poll_member",
            "poll_payments",
            "resync_member",
            "resync_members",
            "run_payouts",
            "send_mail",
            "send_transfer",
            "sync_institutions",
            "sync_member_transactions",
        ];
        assert_eq!(kinds, expected);
        assert!(!registry.knows("no_such_kind"));
    }

    /// What a person waits for runs before batch work; the clock's work is batch work (the
    /// store enqueues periodic slots as such).
    #[test]
    fn batch_kinds_are_the_clock_s_and_the_money_runs() {
        let registry = Registry::all();
        let mut batch: Vec<&str> =
            registry.runners.keys().copied().filter(|kind| registry.priority(kind) == Some(Priority::Batch)).collect();
        batch.sort_unstable();
        let expected = [
            "backfill_aggregator_users",
            "cleanup",
            "collect_batch",
            "collect_roundups",
            "ensure_dwolla_webhook",
            "payout_batch",
            "poll_payments",
            "resync_member",
            "resync_members",
            "run_payouts",
            "send_transfer",
            "sync_institutions",
        ];
        assert_eq!(batch, expected);
        for (kind, _) in periodic() {
            assert_eq!(registry.priority(kind), Some(Priority::Batch), "{kind} is periodic");
        }
    }

    #[derive(Serialize, Deserialize)]
    struct AnotherCleanup {}

    impl Task for AnotherCleanup {
        const KIND: &'static str = cleanup::Cleanup::KIND;
    }

    impl Job for AnotherCleanup {
        async fn run(self, _: &JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }

    #[test]
    #[should_panic(expected = "two jobs share the kind \"cleanup\"")]
    fn two_jobs_with_one_kind_are_refused() {
        Registry::all().register::<AnotherCleanup>();
    }
}
