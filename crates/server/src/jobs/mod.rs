//! Background jobs as types. Each job is a [`Task`] (its kind and payload, defined beside the
//! service that enqueues it) that also implements [`Job`]: how it runs, calling the same
//! services as the API. Its error says whether to try again and when: a provider's failure is
//! carried as the one [`ProviderFailure`] model, and the worker decides from it alone.

mod kinds;
pub mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use donkies_outbound::ProviderFailure;
use donkies_store::StoreError;
use serde::de::DeserializeOwned;

use crate::mail::Mailer;
use crate::services::{ServiceError, Services, Task};
pub use kinds::PERIODIC;
pub use worker::{Outcome, Worker, backoff, schedule_periodic};

/// What a job runs with: the services, and the mailer (only jobs deliver mail).
#[derive(Clone)]
pub struct JobContext {
    pub services: Services,
    pub mailer: Mailer,
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

/// Every job kind this build runs, by kind.
pub struct Registry {
    runners: HashMap<&'static str, (Runner, Runner)>,
}

impl Registry {
    pub fn empty() -> Registry {
        Registry { runners: HashMap::new() }
    }

    pub fn register<J: Job>(&mut self) -> &mut Registry {
        self.runners.insert(J::KIND, (runner::<J>, parked_runner::<J>));
        self
    }

    /// Every kind of this crate.
    pub fn all() -> Registry {
        let mut r = Registry::empty();
        kinds::register_all(&mut r);
        r
    }

    pub fn knows(&self, kind: &str) -> bool {
        self.runners.contains_key(kind)
    }

    pub(crate) async fn run(&self, ctx: &JobContext, kind: &str, payload: &str) -> Result<(), JobError> {
        match self.runners.get(kind) {
            Some((run, _)) => run(ctx, payload).await,
            None => Err(JobError::permanent(anyhow::anyhow!("unknown job kind {kind:?}"))),
        }
    }

    pub(crate) async fn parked(&self, ctx: &JobContext, kind: &str, payload: &str) -> Result<(), JobError> {
        match self.runners.get(kind) {
            Some((_, parked)) => parked(ctx, payload).await,
            None => Ok(()),
        }
    }
}
