//! The job worker: claims due jobs from the database, runs them through the [`Registry`],
//! retries what may succeed later with exponential backoff (or the delay the cause asked for),
//! parks what cannot or ran out of attempts, and enqueues periodic work once per slot.

use std::sync::Arc;
use std::time::Duration;

use donkies_store::{jobs, now};
use tokio::sync::Notify;
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
        let name = format!("{}-{}", hostname(), &crate::crypto::new_token()[..12]);
        Worker { ctx, registry: Arc::new(Registry::all()), name, wake }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Claim and run one due job, if there is one.
    pub async fn run_next(&self) -> anyhow::Result<Option<Outcome>> {
        let settings = &self.ctx.services.settings;
        let db = &self.ctx.services.db;
        let t = now();
        let lease_until = t + chrono::Duration::from_std(settings.job_lease)?;
        let Some(job) = jobs::claim(db, &self.name, t, lease_until).await? else {
            return Ok(None);
        };
        let span = tracing::info_span!("job", id = %job.id, kind = %job.kind, attempt = job.attempts);
        let heartbeat = self.heartbeat(job.id);
        let result = self.registry.run(&self.ctx, &job.kind, &job.payload);
        let result = tracing::Instrument::instrument(result, span).await;
        heartbeat.abort();
        let (id, kind) = (job.id, job.kind.clone());
        let (error, retry_after) = match result {
            Ok(()) => {
                jobs::complete(db, job.id, &self.name).await?;
                metrics::counter!("donkies_jobs_total", "kind" => job.kind.clone(), "outcome" => "succeeded")
                    .increment(1);
                return Ok(Some(Outcome::Done { id, kind }));
            }
            Err(JobError::Permanent(cause)) => (format!("{cause:#}"), None),
            Err(JobError::Retry { cause, .. }) if job.attempts >= job.max_attempts => (format!("{cause:#}"), None),
            Err(JobError::Retry { after, cause }) => {
                // The provider's own Retry-After wins over the backoff.
                let delay = after.unwrap_or_else(|| backoff(settings.job_retry_base, job.attempts));
                (format!("{cause:#}"), Some(delay))
            }
        };
        match retry_after {
            Some(delay) => {
                tracing::warn!(job = %job.id, kind = %job.kind, attempts = job.attempts, retry_in_ms = delay.as_millis() as u64, %error, "job failed; will retry");
                let retry_at = now() + chrono::Duration::from_std(delay)?;
                jobs::fail(db, job.id, &self.name, &error, Some(retry_at), now()).await?;
                metrics::counter!("donkies_jobs_total", "kind" => job.kind.clone(), "outcome" => "retried")
                    .increment(1);
                Ok(Some(Outcome::Retrying { id, kind, error }))
            }
            None => {
                tracing::error!(job = %job.id, kind = %job.kind, attempts = job.attempts, %error, "job failed and will not be retried; parked");
                jobs::fail(db, job.id, &self.name, &error, None, now()).await?;
                metrics::counter!("donkies_jobs_total", "kind" => job.kind.clone(), "outcome" => "parked").increment(1);
                // What the job was for ends in a state the user sees.
                if let Err(err) = self.registry.parked(&self.ctx, &job.kind, &job.payload).await {
                    tracing::error!(job = %job.id, error = %format!("{err:#}"), "could not record the parked job's outcome");
                }
                Ok(Some(Outcome::Parked { id, kind, error }))
            }
        }
    }

    /// Renew the lease of the running job every third of it, until aborted.
    fn heartbeat(&self, id: i64) -> tokio::task::JoinHandle<()> {
        let db = self.ctx.services.db.clone();
        let name = self.name.clone();
        let lease = self.ctx.services.settings.job_lease;
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

    /// Run jobs until `shutdown` fires; the job in progress is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(worker = %self.name, "job worker started");
        let alive = self.announce();
        let mut last_schedule: Option<tokio::time::Instant> = None;
        while !shutdown.is_cancelled() {
            if last_schedule.is_none_or(|at| at.elapsed() >= Duration::from_secs(30)) {
                if let Err(err) = self.schedule_periodic().await {
                    tracing::warn!(error = %format!("{err:#}"), "could not schedule periodic jobs");
                }
                last_schedule = Some(tokio::time::Instant::now());
            }
            match self.run_next().await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %format!("{err:#}"), "job queue unavailable"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.ctx.services.settings.job_poll) => {}
            }
        }
        alive.abort();
        if let Err(err) = donkies_store::money_loop::worker_gone(&self.ctx.services.db, &self.name).await {
            tracing::warn!(error = %err, "could not record that the worker stopped");
        }
        tracing::info!(worker = %self.name, "job worker stopped");
    }

    /// Say every few seconds that this worker is alive, so operator commands know whether
    /// their work will run.
    fn announce(&self) -> tokio::task::JoinHandle<()> {
        let db = self.ctx.services.db.clone();
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
        let max_attempts = ctx.services.settings.job_max_attempts;
        if !jobs::enqueue_periodic(&ctx.services.db, kind, slot, max_attempts, t).await? {
            taken.push(kind);
        }
    }
    Ok(taken)
}

/// Delay before retry number `attempts` (1-based): base · 2^(attempts−1), at most one hour.
pub fn backoff(base: Duration, attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    base.saturating_mul(2u32.saturating_pow(exp)).min(Duration::from_secs(3600))
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
}
