//! The one way work is deferred: a [`Task`] is enqueued inside the transaction of the change
//! that needs it, and the worker is woken once that transaction commits (see [`super::Work`]).
//! How each task runs lives in [`crate::jobs`].

use std::sync::Arc;
use std::time::Duration;

pub use donkies_store::jobs::Priority;
use donkies_store::{StoreError, Tx, jobs, now};
use serde::Serialize;
use tokio::sync::Notify;

/// A piece of deferred work: its kind names it in the queue, its fields are the payload.
pub trait Task: Serialize + Send + Sync {
    const KIND: &'static str;
    /// Whether a person waits for it (the default) or it is batch work, which never holds up
    /// what a person waits for.
    const PRIORITY: Priority = Priority::Interactive;

    /// While a job with this key is queued or running, enqueuing another one is a no-op.
    fn dedupe_key(&self) -> Option<String> {
        None
    }
}

#[derive(Clone)]
pub struct JobQueue {
    wake: Arc<Notify>,
    max_attempts: i64,
}

impl JobQueue {
    pub fn new(max_attempts: i64) -> JobQueue {
        JobQueue { wake: Arc::new(Notify::new()), max_attempts }
    }

    /// What a worker in this process waits on.
    pub fn wake_signal(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Enqueue `task` as part of `tx`. Prefer [`super::Work::enqueue`], which also wakes the
    /// worker after the commit.
    pub async fn push<T: Task>(&self, tx: &mut Tx, task: &T, delay: Duration) -> Result<(), StoreError> {
        let t = now();
        let run_at = t + chrono::Duration::from_std(delay).unwrap_or_default();
        let payload = serde_json::to_value(task).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let key = task.dedupe_key();
        let job = jobs::NewJob {
            kind: T::KIND,
            payload: &payload,
            max_attempts: self.max_attempts,
            run_at,
            dedupe_key: key.as_deref(),
            priority: T::PRIORITY,
        };
        if jobs::enqueue(tx, &job, t).await?.is_some() {
            metrics::counter!("donkies_jobs_enqueued_total", "kind" => T::KIND).increment(1);
        }
        Ok(())
    }

    /// Enqueue every task of `tasks` to run now, as part of `tx`, in a few statements.
    pub async fn push_all<T: Task>(&self, tx: &mut Tx, tasks: &[T]) -> Result<(), StoreError> {
        let t = now();
        let mut payloads = Vec::with_capacity(tasks.len());
        for task in tasks {
            let payload = serde_json::to_value(task).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            payloads.push((payload, task.dedupe_key()));
        }
        let new: Vec<jobs::NewJob<'_>> = payloads
            .iter()
            .map(|(payload, key)| jobs::NewJob {
                kind: T::KIND,
                payload,
                max_attempts: self.max_attempts,
                run_at: t,
                dedupe_key: key.as_deref(),
                priority: T::PRIORITY,
            })
            .collect();
        let inserted = jobs::enqueue_many(tx, &new, t).await?;
        metrics::counter!("donkies_jobs_enqueued_total", "kind" => T::KIND).increment(inserted);
        Ok(())
    }
}
