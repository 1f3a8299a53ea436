//! Attempts counted against rate limits, per key and fixed time window, in the database: every
//! process on it counts into the same rows, so a limit holds for all of them together.

use chrono::{DateTime, Utc};

use crate::{Db, StoreError, Tx, on_tx};

/// Count one attempt of `key` in the window `[start, end)`; returns the attempts counted in that
/// window so far, this one included. One statement, so concurrent processes never lose a count.
pub async fn count_attempt(
    tx: &mut Tx,
    key: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<i64, StoreError> {
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "INSERT INTO rate_limit_windows (key, window_start, window_end, hits) VALUES ($1, $2, $3, 1) \
         ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limit_windows.hits + 1 \
         RETURNING hits",
    )
    .bind(key)
    .bind(start)
    .bind(end)
    .fetch_one(conn)
    .await)?)
}

/// Remove the windows that ended by `now`; how many.
pub async fn delete_ended(tx: &mut Tx, now: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(on_tx!(tx, conn => sqlx::query("DELETE FROM rate_limit_windows WHERE window_end <= $1")
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?)
}

/// What a claim of calls from a shared budget found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// This many calls may go out in the window.
    Granted(i64),
    /// The window's budget is spent.
    Spent,
    /// The provider asked everyone to wait until then.
    Held(DateTime<Utc>),
}

/// The key under which a hold on `key` is kept (its window ends when the hold does).
fn hold_key(key: &str) -> String {
    format!("hold:{key}")
}

/// Where a hold's row starts: every hold of a key is one row.
fn hold_start() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// Claim `want` calls (or, if that many are not left, one) of `key`'s budget of `limit` in the
/// window `[start, end)`, unless a hold on `key` lasts past `now`. One transaction; concurrent
/// processes never claim more than `limit` in all.
pub async fn claim_calls(
    db: &Db,
    key: &str,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    want: i64,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<Claimed, StoreError> {
    let mut tx = db.begin().await?;
    let held: Option<DateTime<Utc>> = on_tx!(&mut tx, conn => sqlx::query_scalar::<_, DateTime<Utc>>(
        "SELECT window_end FROM rate_limit_windows WHERE key = $1 AND window_start = $2 AND window_end > $3",
    )
    .bind(hold_key(key))
    .bind(hold_start())
    .bind(now)
    .fetch_optional(conn)
    .await)?;
    if let Some(until) = held {
        return Ok(Claimed::Held(until));
    }
    let mut sizes = vec![want.clamp(1, limit.max(1))];
    if sizes[0] > 1 {
        sizes.push(1);
    }
    for n in sizes {
        let granted: Option<i64> = on_tx!(&mut tx, conn => sqlx::query_scalar::<_, i64>(
            "INSERT INTO rate_limit_windows (key, window_start, window_end, hits) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limit_windows.hits + $4 \
             WHERE rate_limit_windows.hits + $4 <= $5 \
             RETURNING hits",
        )
        .bind(key)
        .bind(start)
        .bind(end)
        .bind(n)
        .bind(limit)
        .fetch_optional(conn)
        .await)?;
        if granted.is_some() {
            tx.commit().await?;
            return Ok(Claimed::Granted(n));
        }
    }
    tx.commit().await?;
    Ok(Claimed::Spent)
}

/// Hold every claim of `key` until `until` (or later, if a longer hold is already there).
pub async fn hold_calls(db: &Db, key: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, conn => sqlx::query(
        "INSERT INTO rate_limit_windows (key, window_start, window_end, hits) VALUES ($1, $2, $3, 0) \
         ON CONFLICT (key, window_start) DO UPDATE SET window_end = excluded.window_end \
         WHERE rate_limit_windows.window_end < excluded.window_end",
    )
    .bind(hold_key(key))
    .bind(hold_start())
    .bind(until)
    .execute(conn)
    .await
    .map(|_| ()))?;
    tx.commit().await?;
    Ok(())
}

/// The windows counted for `key`, oldest first: when each starts and how many it counted.
pub async fn windows(db: &Db, key: &str) -> Result<Vec<(DateTime<Utc>, i64)>, StoreError> {
    Ok(crate::on_db!(db, pool => sqlx::query_as::<_, (DateTime<Utc>, i64)>(
        "SELECT window_start, hits FROM rate_limit_windows WHERE key = $1 ORDER BY window_start",
    )
    .bind(key)
    .fetch_all(pool)
    .await)?)
}
