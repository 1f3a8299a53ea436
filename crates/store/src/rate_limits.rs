//! Attempts counted against rate limits, per key and fixed time window, in the database: every
//! process on it counts into the same rows, so a limit holds for all of them together.

use chrono::{DateTime, Utc};

use crate::{StoreError, Tx, on_tx};

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
