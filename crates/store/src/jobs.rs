//! The durable job queue: enqueue inside the caller's transaction, claim with a lease, retry
//! with backoff, park as failed after the last attempt (waits for an unavailable provider do not
//! count as attempts), and periodic slots run once.

use chrono::{DateTime, Utc};

use crate::{Backend, Db, StoreError, Tx, new_id, on_db, on_tx};

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const FAILED: &str = "failed";

/// Whom a job is for: what a person waits for (linking, polls, mail) is claimed before batch work
/// that is due, and a worker keeps a slot free of batch work for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Batch,
    Interactive,
}

impl Priority {
    /// As stored in `jobs.priority`: higher runs first.
    pub fn rank(self) -> i64 {
        match self {
            Priority::Batch => 0,
            Priority::Interactive => 1,
        }
    }
}

/// The PostgreSQL channel on which a committed job is announced (its payload is the schema the
/// job was written to), so that workers in any process start it at once.
pub const CHANNEL: &str = "donkies_jobs";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: DateTime<Utc>,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Since when the job has been waiting out an unavailable provider (see [`wait`]).
    pub waiting_since: Option<DateTime<Utc>>,
    /// [`Priority::rank`] of the job's kind.
    pub priority: i64,
}

const COLUMNS: &str = "id, kind, payload, status, attempts, max_attempts, run_at, locked_by, \
    locked_until, last_error, created_at, updated_at, waiting_since, priority";

pub struct NewJob<'a> {
    pub kind: &'a str,
    pub payload: &'a serde_json::Value,
    pub max_attempts: i64,
    pub run_at: DateTime<Utc>,
    /// At most one queued or running job has a given key; enqueuing a second is a no-op.
    pub dedupe_key: Option<&'a str>,
    pub priority: Priority,
}

/// Enqueue a job as part of `tx`, so it exists exactly when the change that needs it commits.
/// Returns the new job's id, or `None` when a live job with the same dedupe key exists. On
/// PostgreSQL the job is announced on [`CHANNEL`] when `tx` commits.
pub async fn enqueue(tx: &mut Tx, job: &NewJob<'_>, now: DateTime<Utc>) -> Result<Option<i64>, StoreError> {
    let id = new_id();
    let inserted = on_tx!(&mut *tx, conn => sqlx::query(
        "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at, \
         dedupe_key, priority) \
         VALUES ($1, $2, $3, 'queued', 0, $4, $5, $6, $6, $7, $8) \
         ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
    )
    .bind(id)
    .bind(job.kind)
    .bind(job.payload.to_string())
    .bind(job.max_attempts)
    .bind(job.run_at)
    .bind(now)
    .bind(job.dedupe_key)
    .bind(job.priority.rank())
    .execute(conn)
    .await
        .map(|r| r.rows_affected()))?;
    if inserted == 1 {
        announce(tx).await?;
    }
    Ok((inserted == 1).then_some(id))
}

/// Enqueue many jobs as part of `tx`, in multi-row statements (a collection run writes one
/// per transfer); how many were new (a live job with the same dedupe key skips one).
pub async fn enqueue_many(tx: &mut Tx, jobs: &[NewJob<'_>], now: DateTime<Utc>) -> Result<u64, StoreError> {
    let mut inserted = 0;
    // 8 parameters a row, under SQLite's oldest limit of 999 a statement.
    for chunk in jobs.chunks(100) {
        let mut sql = String::from(
            "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at, \
             dedupe_key, priority) VALUES ",
        );
        for i in 0..chunk.len() {
            let p = i * 7 + 1;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, 'queued', 0, ${}, ${}, $1, $1, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7
            ));
        }
        sql.push_str(" ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING");
        inserted += on_tx!(&mut *tx, conn => {
            let mut q = sqlx::query(&sql).bind(now);
            for job in chunk {
                q = q
                    .bind(new_id())
                    .bind(job.kind)
                    .bind(job.payload.to_string())
                    .bind(job.max_attempts)
                    .bind(job.run_at)
                    .bind(job.dedupe_key)
                    .bind(job.priority.rank());
            }
            q.execute(conn).await.map(|r| r.rows_affected())
        })?;
    }
    if inserted > 0 {
        announce(tx).await?;
    }
    Ok(inserted)
}

/// Tell listening workers (PostgreSQL delivers it when `tx` commits, once however many jobs it
/// wrote); SQLite has no other process to tell.
async fn announce(tx: &mut Tx) -> Result<(), StoreError> {
    if let Tx::Postgres(t) = tx {
        sqlx::query("SELECT pg_notify($1, current_schema())").bind(CHANNEL).execute(&mut **t).await?;
    }
    Ok(())
}

/// Claim the next due job for `worker` until `lease_until` (see [`claim_at_least`]).
pub async fn claim(
    db: &Db,
    worker: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Option<Job>, StoreError> {
    claim_at_least(db, worker, now, lease_until, Priority::Batch).await
}

/// Claim the next due job of at least priority `least` for `worker` until `lease_until`: a
/// running job whose lease ran out (its worker died) first, else the queued job of the highest
/// priority that is due longest. Each half is its own index scan
/// (one `OR` over both made PostgreSQL read and sort the whole queue on every claim). On PostgreSQL concurrent workers skip
/// each other's rows; on SQLite the single writer makes the statement exclusive.
pub async fn claim_at_least(
    db: &Db,
    worker: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    least: Priority,
) -> Result<Option<Job>, StoreError> {
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1, \
         locked_until = $2, updated_at = $3 \
         WHERE id = COALESCE( \
            (SELECT id FROM jobs WHERE status = 'running' AND locked_until <= $3 AND priority >= $4 \
             ORDER BY locked_until, id LIMIT 1{lock}), \
            (SELECT id FROM jobs WHERE status = 'queued' AND run_at <= $3 AND priority >= $4 \
             ORDER BY priority DESC, run_at, id LIMIT 1{lock})) \
         RETURNING {COLUMNS}"
    );
    let mut tx = db.begin().await?;
    let job = on_tx!(&mut tx, conn => sqlx::query_as::<_, Job>(&sql)
        .bind(worker)
        .bind(lease_until)
        .bind(now)
        .bind(least.rank())
        .fetch_optional(conn)
        .await)?;
    tx.commit().await?;
    Ok(job)
}

/// The worker running `id` is still at it: its lease runs until `until`. False when the job
/// is no longer this worker's.
pub async fn extend_lease(db: &Db, id: i64, worker: &str, until: DateTime<Utc>) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, conn => sqlx::query(
        "UPDATE jobs SET locked_until = $3 WHERE id = $1 AND locked_by = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(worker)
    .bind(until)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(n == 1)
}

/// A finished job leaves the queue. Ignored when another worker has since taken it over.
pub async fn complete(db: &Db, id: i64, worker: &str) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, conn => sqlx::query("DELETE FROM jobs WHERE id = $1 AND locked_by = $2")
        .bind(id)
        .bind(worker)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    tx.commit().await
}

/// Record a failed attempt: back to the queue at `retry_at`, or parked as failed when
/// `retry_at` is `None`.
pub async fn fail(
    db: &Db,
    id: i64,
    worker: &str,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    match retry_at {
        Some(at) => release(db, id, worker, error, (QUEUED, at), false, now).await,
        None => release(db, id, worker, error, (FAILED, now), false, now).await,
    }
}

/// Record an attempt that met an unavailable provider (an outage, a rate limit): back to the
/// queue at `retry_at` without using up an attempt (the claim's count is given back), and the
/// time the job started waiting kept, so that the worker can give up by elapsed time.
pub async fn wait(
    db: &Db,
    id: i64,
    worker: &str,
    error: &str,
    retry_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    release(db, id, worker, error, (QUEUED, retry_at), true, now).await
}

/// The worker lets go of its job: `status` from `run_at` on; `waiting` gives the attempt back
/// and keeps when the wait began. A parked job gives its dedupe key up.
async fn release(
    db: &Db,
    id: i64,
    worker: &str,
    error: &str,
    (status, run_at): (&str, DateTime<Utc>),
    waiting: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, conn => sqlx::query(
        "UPDATE jobs SET status = $3, run_at = $4, last_error = $5, locked_by = NULL, \
         locked_until = NULL, updated_at = $6, \
         attempts = CASE WHEN $7 THEN attempts - 1 ELSE attempts END, \
         waiting_since = CASE WHEN $7 THEN COALESCE(waiting_since, $6) ELSE waiting_since END, \
         dedupe_key = CASE WHEN $3 = 'failed' THEN NULL ELSE dedupe_key END \
         WHERE id = $1 AND locked_by = $2",
    )
    .bind(id)
    .bind(worker)
    .bind(status)
    .bind(run_at)
    .bind(error)
    .bind(now)
    .bind(waiting)
    .execute(conn)
    .await
        .map(|r| r.rows_affected()))?;
    tx.commit().await
}

/// Put a parked (failed) job back in the queue with a fresh set of attempts.
pub async fn retry(db: &Db, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, conn => sqlx::query(
        "UPDATE jobs SET status = 'queued', attempts = 0, run_at = $2, updated_at = $2, waiting_since = NULL \
         WHERE id = $1 AND status = 'failed'",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await
        .map(|r| r.rows_affected()))?;
    if n == 1 {
        announce(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}

pub async fn get(db: &Db, id: i64) -> Result<Option<Job>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Job>(&sql).bind(id).fetch_optional(pool).await)?)
}

/// Jobs in the queue (all, or only the parked failures), oldest first.
pub async fn list(db: &Db, failed_only: bool) -> Result<Vec<Job>, StoreError> {
    let filter = if failed_only { "WHERE status = 'failed'" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM jobs {filter} ORDER BY created_at, id");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Job>(&sql).fetch_all(pool).await)?)
}

/// Drop every queued job (not the running ones); how many.
pub async fn discard_queued(db: &Db) -> Result<u64, StoreError> {
    Ok(on_db!(db, pool => sqlx::query("DELETE FROM jobs WHERE status = 'queued'")
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?)
}

/// How many jobs of `kind` are queued or running.
pub async fn unfinished(db: &Db, kind: &str) -> Result<i64, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM jobs WHERE kind = $1 AND status IN ('queued', 'running')",
    )
    .bind(kind)
    .fetch_one(pool)
    .await)?)
}

/// Enqueue the periodic job `kind` for time slot `slot` unless some worker already did. The
/// clock's work is batch work: nobody waits for it.
/// Returns whether this call enqueued it.
pub async fn enqueue_periodic(
    db: &Db,
    kind: &str,
    slot: i64,
    max_attempts: i64,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let inserted = on_tx!(&mut tx, conn => sqlx::query(
        "INSERT INTO job_slots (name, slot, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(kind)
    .bind(slot)
    .bind(now)
    .execute(conn)
    .await
        .map(|r| r.rows_affected()))?
        == 1;
    if inserted {
        let payload = serde_json::json!({ "slot": slot });
        enqueue(
            &mut tx,
            &NewJob { kind, payload: &payload, max_attempts, run_at: now, dedupe_key: None, priority: Priority::Batch },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

/// When a job of at least priority `least` next falls due: the earliest queued job's `run_at` or
/// running job's lease end (its worker may die), `None` for an empty queue. An idle worker
/// sleeps until then.
pub async fn next_due(db: &Db, least: Priority) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
        "SELECT MIN(due) FROM ( \
            SELECT MIN(run_at) AS due FROM jobs WHERE status = 'queued' AND priority >= $1 \
            UNION ALL \
            SELECT MIN(locked_until) AS due FROM jobs WHERE status = 'running' AND priority >= $1) AS d",
    )
    .bind(least.rank())
    .fetch_one(pool)
    .await)?)
}

/// The queue at a glance: jobs by status, and how long the oldest due job has waited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueStats {
    pub queued: i64,
    pub running: i64,
    pub failed: i64,
    /// Seconds since the oldest queued job became due (0 when none is due).
    pub oldest_due_seconds: f64,
}

pub async fn stats(db: &Db, now: DateTime<Utc>) -> Result<QueueStats, StoreError> {
    let counts: Vec<(String, i64)> = on_db!(db, pool => sqlx::query_as::<_, (String, i64)>(
        "SELECT status, COUNT(*) FROM jobs GROUP BY status",
    )
    .fetch_all(pool)
    .await)?;
    let oldest: Option<DateTime<Utc>> = on_db!(db, pool => sqlx::query_scalar::<_, DateTime<Utc>>(
        "SELECT run_at FROM jobs WHERE status = 'queued' AND run_at <= $1 ORDER BY run_at LIMIT 1",
    )
    .bind(now)
    .fetch_optional(pool)
    .await)?;
    let count = |status: &str| counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
    Ok(QueueStats {
        queued: count(QUEUED),
        running: count(RUNNING),
        failed: count(FAILED),
        oldest_due_seconds: oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0),
    })
}
