//! The job worker: claims due jobs from the database, runs them through the [`Registry`],
//! retries what may succeed later with jittered exponential backoff (or the delay a provider
//! asked for), parks what cannot or ran out of attempts, and enqueues periodic work once per
//! slot. It runs up to `worker_concurrency` jobs at once and keeps one slot free of batch work,
//! so what a person waits for never queues behind it; on PostgreSQL it is woken by `LISTEN` when
//! any process commits a job, and otherwise sleeps until the next job is due. Waiting out a provider (an outage, a rate limit, refused credentials) never uses up a
//! job's attempts: such a job gives up by elapsed time instead (`job_wait_limit`).

use std::sync::Arc;
use std::time::Duration;

use donkies_outbound::ProviderFailure;
use donkies_store::jobs::{self, Priority};
use donkies_store::{Backend, now};
use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{JobContext, JobError, Registry, periodic};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done { id: i64, kind: String },
    Retrying { id: i64, kind: String, error: String },
    Parked { id: i64, kind: String, error: String },
}

impl Outcome {
    pub fn kind(&self) -> &str {
        match self {
            Outcome::Done { kind, .. } | Outcome::Retrying { kind, .. } | Outcome::Parked { kind, .. } => kind,
        }
    }
}

pub struct Worker {
    ctx: JobContext,
    registry: Arc<Registry>,
    name: String,
    wake: Arc<Notify>,
}

impl Worker {
    /// A worker running every registered kind, woken early by `wake` (pass the job queue's
    /// signal so that jobs enqueued in this process start at once).
    pub fn new(ctx: JobContext, wake: Arc<Notify>) -> Worker {
        Worker::with_registry(ctx, wake, Registry::all())
    }

    /// A worker running the kinds of `registry` (tests add kinds of their own).
    pub fn with_registry(ctx: JobContext, wake: Arc<Notify>, registry: Registry) -> Worker {
        let name = format!("{}-{}", hostname(), &crate::crypto::new_token()[..12]);
        Worker { ctx, registry: Arc::new(registry), name, wake }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Claim and run one due job, if there is one.
    pub async fn run_next(&self) -> anyhow::Result<Option<Outcome>> {
        match self.claim(Priority::Batch).await? {
            Some(job) => self.execute(job).await.map(Some),
            None => Ok(None),
        }
    }

    /// Claim the next due job of at least priority `least`, if there is one.
    async fn claim(&self, least: Priority) -> anyhow::Result<Option<jobs::Job>> {
        let t = now();
        let lease_until = t + chrono::Duration::from_std(self.ctx.settings.job_lease)?;
        Ok(jobs::claim_at_least(&self.ctx.services.store.db, &self.name, t, lease_until, least).await?)
    }

    /// Run a claimed job and record how it went.
    async fn execute(&self, job: jobs::Job) -> anyhow::Result<Outcome> {
        let settings = &self.ctx.settings;
        let db = &self.ctx.services.store.db;
        let span = tracing::info_span!("job", id = %job.id, kind = %job.kind, attempt = job.attempts);
        let heartbeat = self.heartbeat(job.id);
        let result = tracing::Instrument::instrument(self.registry.run(&self.ctx, &job.kind, &job.payload), span);
        let result = if job.priority < Priority::Interactive.rank() {
            crate::call_rate::as_batch(result).await
        } else {
            result.await
        };
        heartbeat.abort();
        let (id, kind) = (job.id, job.kind.clone());
        let error = match result {
            Ok(()) => {
                jobs::complete(db, job.id, &self.name).await?;
                metrics::counter!("donkies_jobs_total", "kind" => job.kind.clone(), "outcome" => "succeeded")
                    .increment(1);
                return Ok(Outcome::Done { id, kind });
            }
            Err(error) => error,
        };
        let policy = Policy::of(&error);
        let mut error = error.to_string();
        let retry = match policy {
            Policy::Park => None,
            Policy::Count if job.attempts >= job.max_attempts => None,
            Policy::Count => Some(jitter(backoff(settings.job_retry_base, job.attempts))),
            Policy::Wait { after } => {
                let waited =
                    job.waiting_since.map_or(Duration::ZERO, |since| (now() - since).to_std().unwrap_or_default());
                if waited >= settings.job_wait_limit {
                    error = format!("gave up after waiting {}s for the provider: {error}", waited.as_secs());
                    None
                } else {
                    // The provider's own Retry-After wins over the backoff.
                    let delay = after.map_or_else(|| jitter(wait_backoff(settings.job_retry_base, waited)), spread);
                    tracing::warn!(job = %job.id, kind = %job.kind, waited_s = waited.as_secs(), retry_in_ms = delay.as_millis() as u64, %error, "provider unavailable; the job waits without using an attempt");
                    jobs::wait(db, job.id, &self.name, &error, now() + chrono::Duration::from_std(delay)?, now())
                        .await?;
                    metrics::counter!("donkies_jobs_total", "kind" => job.kind.clone(), "outcome" => "waiting")
                        .increment(1);
                    return Ok(Outcome::Retrying { id, kind, error });
                }
            }
        };
        match retry {
            Some(delay) => {
                tracing::warn!(job = %job.id, kind = %job.kind, attempts = job.attempts, retry_in_ms = delay.as_millis() as u64, %error, "job failed; will retry");
                let retry_at = now() + chrono::Duration::from_std(delay)?;
                jobs::fail(db, job.id, &self.name, &error, Some(retry_at), now()).await?;
                metrics::counter!("donkies_jobs_total", "kind" => job.kind.clone(), "outcome" => "retried")
                    .increment(1);
                Ok(Outcome::Retrying { id, kind, error })
            }
            None => {
                tracing::error!(job = %job.id, kind = %job.kind, attempts = job.attempts, %error, "job failed and will not be retried; parked");
                jobs::fail(db, job.id, &self.name, &error, None, now()).await?;
                metrics::counter!("donkies_jobs_total", "kind" => job.kind.clone(), "outcome" => "parked").increment(1);
                // What the job was for ends in a state the user sees.
                if let Err(err) = self.registry.parked(&self.ctx, &job.kind, &job.payload).await {
                    tracing::error!(job = %job.id, error = %format!("{err:#}"), "could not record the parked job's outcome");
                }
                Ok(Outcome::Parked { id, kind, error })
            }
        }
    }

    /// Renew the lease of the running job every third of it, until aborted.
    fn heartbeat(&self, id: i64) -> tokio::task::JoinHandle<()> {
        let db = self.ctx.services.store.db.clone();
        let name = self.name.clone();
        let lease = self.ctx.settings.job_lease;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = now() + chrono::Duration::from_std(lease).unwrap_or_default();
                if !matches!(jobs::extend_lease(&db, id, &name, until).await, Ok(true)) {
                    break;
                }
            }
        })
    }

    /// Run due jobs until none is left (tests drive the queue with this); returns what ran.
    pub async fn run_until_idle(&self) -> anyhow::Result<Vec<Outcome>> {
        let mut outcomes = Vec::new();
        while let Some(outcome) = self.run_next().await? {
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Enqueue each periodic job for the current slot unless another worker already has.
    pub async fn schedule_periodic(&self) -> anyhow::Result<()> {
        let kinds: Vec<&'static str> = periodic().iter().map(|(kind, _)| *kind).collect();
        schedule_periodic(&self.ctx, &kinds).await.map(|_| ())
    }

    /// Run jobs, up to `worker_concurrency` at once, until `shutdown` fires; the jobs in progress
    /// are finished first. With two slots or more, batch work takes all but one of them, so a
    /// job a person waits for always finds a free slot.
    pub async fn run(self, shutdown: CancellationToken) {
        let worker = Arc::new(self);
        let slots = worker.ctx.settings.worker_concurrency.max(1);
        tracing::info!(worker = %worker.name, slots, "job worker started");
        let alive = worker.announce();
        let mut others_wrote = worker.ctx.services.store.changes.jobs_written();
        let batch_slots = Arc::new(Semaphore::new(if slots >= 2 { slots - 1 } else { 1 }));
        let mut running = JoinSet::new();
        let mut last_schedule: Option<tokio::time::Instant> = None;
        while !shutdown.is_cancelled() {
            if last_schedule.is_none_or(|at| at.elapsed() >= Duration::from_secs(30)) {
                if let Err(err) = worker.schedule_periodic().await {
                    tracing::warn!(error = %format!("{err:#}"), "could not schedule periodic jobs");
                }
                last_schedule = Some(tokio::time::Instant::now());
            }
            // Fill the free slots; a batch job holds one of the batch slots while it runs.
            let mut least = None;
            while running.len() < slots {
                let permit = batch_slots.clone().try_acquire_owned().ok();
                let floor = if permit.is_some() { Priority::Batch } else { Priority::Interactive };
                match worker.claim(floor).await {
                    Ok(Some(job)) => {
                        let permit = permit.filter(|_| job.priority < Priority::Interactive.rank());
                        let worker = worker.clone();
                        running.spawn(async move {
                            if let Err(err) = worker.execute(job).await {
                                tracing::warn!(error = %format!("{err:#}"), "job queue unavailable");
                            }
                            drop(permit);
                        });
                    }
                    Ok(None) => {
                        least = Some(floor);
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(error = %format!("{err:#}"), "job queue unavailable");
                        least = Some(floor);
                        break;
                    }
                }
            }
            // Nothing more to claim (or no free slot): sleep until a job is due, a job is
            // written, or a slot frees up.
            let idle = match least {
                Some(least) => worker.idle_for(least, worker.listening()).await,
                None => worker.fallback_poll(worker.listening()),
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = worker.wake.notified() => {}
                _ = others_wrote.changed() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = tokio::time::sleep(idle) => {}
            }
        }
        while running.join_next().await.is_some() {}
        alive.abort();
        if let Err(err) = donkies_store::money_loop::worker_gone(&worker.ctx.services.store.db, &worker.name).await {
            tracing::warn!(error = %err, "could not record that the worker stopped");
        }
        tracing::info!(worker = %worker.name, "job worker stopped");
    }

    /// How long an idle worker sleeps when nothing is woken it: until the next job of at least
    /// `least` falls due, at most the fallback poll. A job due already that could not be claimed
    /// (another worker is claiming it) is looked at again after the short poll.
    async fn idle_for(&self, least: Priority, listening: bool) -> Duration {
        let fallback = self.fallback_poll(listening);
        match jobs::next_due(&self.ctx.services.store.db, least).await {
            Ok(Some(at)) => match (at - now()).to_std() {
                Ok(wait) if !wait.is_zero() => wait.min(fallback),
                _ => self.ctx.settings.job_poll.min(fallback),
            },
            Ok(None) => fallback,
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "job queue unavailable");
                self.ctx.settings.job_poll
            }
        }
    }

    /// The longest an idle worker sleeps: on SQLite, whose other processes (operator commands)
    /// cannot wake it, `job_poll`; when PostgreSQL wakes it, a safety net of 30 seconds or more.
    fn fallback_poll(&self, listening: bool) -> Duration {
        let poll = self.ctx.settings.job_poll;
        if listening { poll.max(Duration::from_secs(30)) } else { poll }
    }

    /// Whether other processes wake this worker when they commit a job (on PostgreSQL, while
    /// this process listens to them).
    fn listening(&self) -> bool {
        let store = &self.ctx.services.store;
        store.db.backend() == Backend::Postgres && store.changes.is_live(&store.db)
    }

    /// Say every few seconds that this worker is alive, so operator commands know whether
    /// their work will run.
    fn announce(&self) -> tokio::task::JoinHandle<()> {
        let db = self.ctx.services.store.db.clone();
        let name = self.name.clone();
        tokio::spawn(async move {
            loop {
                if let Err(err) = donkies_store::money_loop::worker_seen(&db, &name, now()).await {
                    tracing::debug!(error = %err, "could not record that the worker is alive");
                }
                tokio::time::sleep(ALIVE_EVERY).await;
            }
        })
    }
}

/// How often a worker says it is alive; operator commands count a worker seen within three
/// times this as running.
pub const ALIVE_EVERY: Duration = Duration::from_secs(5);

/// Enqueue each of `kinds` (periodic job kinds) for the current time slot unless some worker
/// already did; returns the kinds whose slot was already taken.
pub async fn schedule_periodic(ctx: &JobContext, kinds: &[&'static str]) -> anyhow::Result<Vec<&'static str>> {
    let t = now();
    let mut taken = Vec::new();
    for &kind in kinds {
        let Some((_, period)) = periodic().iter().find(|(k, _)| *k == kind) else {
            anyhow::bail!("{kind} is not a periodic job");
        };
        let slot = t.timestamp() / period.as_secs() as i64;
        let max_attempts = ctx.settings.job_max_attempts;
        if !jobs::enqueue_periodic(&ctx.services.store.db, kind, slot, max_attempts, t).await? {
            taken.push(kind);
        }
    }
    Ok(taken)
}

/// What the worker does with a job that failed, decided from its error alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// A provider is unavailable to us for now: try again after `after` (its `Retry-After`)
    /// or a backoff, without using up an attempt, until the job has waited `job_wait_limit`.
    Wait { after: Option<Duration> },
    /// Try again after the backoff, using up an attempt; parked after the last one.
    Count,
    /// Trying again cannot help: park the job now.
    Park,
}

impl Policy {
    /// Refused credentials are waited out like an outage (an operator fixes the keys, and the
    /// work then goes on by itself); the services log them as errors each time.
    #[deny(clippy::wildcard_enum_match_arm)]
    fn of(error: &JobError) -> Policy {
        match error {
            JobError::Provider { failure, .. } => match *failure {
                ProviderFailure::Transient { retry_after } | ProviderFailure::RateLimited { retry_after } => {
                    Policy::Wait { after: retry_after }
                }
                ProviderFailure::Auth => Policy::Wait { after: None },
                ProviderFailure::NotFound | ProviderFailure::Refused => Policy::Park,
            },
            JobError::Retry { .. } => Policy::Count,
            JobError::Permanent(_) => Policy::Park,
        }
    }
}

/// Delay before retry number `attempts` (1-based): base · 2^(attempts−1), at most one hour.
pub fn backoff(base: Duration, attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    base.saturating_mul(2u32.saturating_pow(exp)).min(MAX_BACKOFF)
}

/// Delay before the next try of a job that has been waiting out a provider for `waited`: as long
/// again as it has waited (so the delays double), at least `base`, at most one hour.
pub fn wait_backoff(base: Duration, waited: Duration) -> Duration {
    waited.max(base).min(MAX_BACKOFF)
}

const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A backoff delay with "equal jitter": between half of it and all of it, so that jobs that
/// failed together (an outage) do not all come back together.
fn jitter(delay: Duration) -> Duration {
    delay / 2 + delay.mul_f64(rand::thread_rng().gen_range(0.0..=0.5))
}

/// A delay a provider asked for, at least a second (`Retry-After`'s unit: a `0` or a date
/// already past must not make a busy loop), spread by up to a quarter more (never less: it
/// said when).
fn spread(delay: Duration) -> Duration {
    let delay = delay.max(Duration::from_secs(1));
    delay + delay.mul_f64(rand::thread_rng().gen_range(0.0..=0.25))
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), Duration::from_secs(2));
        assert_eq!(backoff(base, 2), Duration::from_secs(4));
        assert_eq!(backoff(base, 4), Duration::from_secs(16));
        assert_eq!(backoff(base, 40), Duration::from_secs(3600));
    }

    #[test]
    fn waits_double_with_the_time_waited_and_cap() {
        let base = Duration::from_secs(2);
        assert_eq!(wait_backoff(base, Duration::ZERO), base);
        assert_eq!(wait_backoff(base, Duration::from_secs(30)), Duration::from_secs(30));
        assert_eq!(wait_backoff(base, Duration::from_secs(9000)), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_stays_between_half_and_all_and_a_retry_after_is_never_shortened() {
        let delay = Duration::from_secs(8);
        let jittered: Vec<Duration> = (0..200).map(|_| jitter(delay)).collect();
        assert!(jittered.iter().all(|d| *d >= delay / 2 && *d <= delay), "{jittered:?}");
        assert!(jittered.iter().any(|d| *d != jittered[0]), "jitter varies");
        assert!((0..200).map(|_| spread(delay)).all(|d| d >= delay && d <= delay + delay / 4));
        assert!(spread(Duration::ZERO) >= Duration::from_secs(1));
    }

    #[test]
    fn outages_rate_limits_and_refused_keys_wait_refusals_park_and_the_rest_count() {
        let provider = |failure| JobError::Provider { failure, cause: anyhow::anyhow!("x") };
        let after = Some(Duration::from_secs(1));
        assert_eq!(Policy::of(&provider(ProviderFailure::RateLimited { retry_after: after })), Policy::Wait { after });
        assert_eq!(
            Policy::of(&provider(ProviderFailure::Transient { retry_after: None })),
            Policy::Wait { after: None }
        );
        assert_eq!(Policy::of(&provider(ProviderFailure::Auth)), Policy::Wait { after: None });
        assert_eq!(Policy::of(&provider(ProviderFailure::NotFound)), Policy::Park);
        assert_eq!(Policy::of(&provider(ProviderFailure::Refused)), Policy::Park);
        assert_eq!(Policy::of(&JobError::retry(anyhow::anyhow!("db"))), Policy::Count);
        assert_eq!(Policy::of(&JobError::permanent(anyhow::anyhow!("bad"))), Policy::Park);
    }
}
