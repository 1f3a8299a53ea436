//! One budget of calls per provider and second, shared by every process on the database: each
//! process claims a tenth of a second's budget at a time (one statement, so together they
//! never claim more than the budget) and hands it out to its own callers. A `429` with
//! `Retry-After` holds the provider's calls in every process until then: this process at once,
//! the others at their next claim.
//!
//! Batch work (a job of batch priority, see [`as_batch`]) may spend all but a twentieth of each
//! second's budget (at least one call): what a person waits for (linking a bank, a poll, a
//! request) always finds a call left, however busy the hourly re-sync keeps the provider.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use donkies_outbound::{Gate, Open};
use donkies_store::Db;
use donkies_store::rate_limits::{self, Claimed};

/// A provider's calls at most `per_second`, counted in `db` (no limit when zero).
pub fn gate(provider: &str, per_second: u32, db: &Db) -> Arc<dyn Gate> {
    if per_second == 0 {
        return Arc::new(Open);
    }
    let unclaimed = || tokio::sync::Mutex::new(Budget { second: i64::MIN, left: 0 });
    Arc::new(SharedRate {
        key: format!("calls:{provider}"),
        per_second: i64::from(per_second),
        db: db.clone(),
        claimed: [unclaimed(), unclaimed()],
        held_until: Mutex::new(None),
    })
}

tokio::task_local! {
    static BATCH: ();
}

/// Run `work` as batch work: its calls leave each second's reserve to interactive work.
pub async fn as_batch<F: Future>(work: F) -> F::Output {
    BATCH.scope((), work).await
}

fn is_batch() -> bool {
    BATCH.try_with(|_| ()).is_ok()
}

struct SharedRate {
    key: String,
    per_second: i64,
    db: Db,
    /// What this process claimed for interactive (`[0]`) and for batch (`[1]`) callers.
    claimed: [tokio::sync::Mutex<Budget>; 2],
    /// The latest `Retry-After` heard, here or (at a claim) from another process.
    held_until: Mutex<Option<DateTime<Utc>>>,
}

/// What this process claimed of one second's budget and has not handed out yet.
struct Budget {
    second: i64,
    left: i64,
}

impl SharedRate {
    fn held_until(&self) -> Option<DateTime<Utc>> {
        *self.held_until.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn hold_until(&self, until: DateTime<Utc>) {
        let mut held = self.held_until.lock().unwrap_or_else(PoisonError::into_inner);
        if held.is_none_or(|h| h < until) {
            *held = Some(until);
        }
    }

    /// The calls a second may count when a caller of this kind claims: batch callers leave
    /// the reserve (a twentieth, at least one call, none when the budget is one call).
    fn limit(&self, batch: bool) -> i64 {
        let reserve = if self.per_second > 1 { (self.per_second / 20).max(1) } else { 0 };
        if batch { self.per_second - reserve } else { self.per_second }
    }

    async fn admit_one(&self) {
        let batch = is_batch();
        let limit = self.limit(batch);
        // Batch callers claim a tenth of a second's budget at a time; interactive ones one call,
        // so that what they claim is not handed to batch work.
        let want = if batch { (self.per_second + 9) / 10 } else { 1 };
        loop {
            let now = Utc::now();
            if let Some(until) = self.held_until().filter(|until| *until > now) {
                tokio::time::sleep((until - now).to_std().unwrap_or_default()).await;
                continue;
            }
            let mut budget = self.claimed[usize::from(batch)].lock().await;
            let now = Utc::now();
            let second = now.timestamp();
            if budget.second == second && budget.left > 0 {
                budget.left -= 1;
                return;
            }
            let start = DateTime::from_timestamp(second, 0).unwrap_or(now);
            let end = start + chrono::Duration::seconds(1);
            match rate_limits::claim_calls(&self.db, &self.key, (start, end), want, limit, now).await {
                Ok(Claimed::Granted(n)) => {
                    *budget = Budget { second, left: n - 1 };
                    return;
                }
                Ok(Claimed::Spent) => {
                    drop(budget);
                    tokio::time::sleep((end - Utc::now()).to_std().unwrap_or_default()).await;
                }
                Ok(Claimed::Held(until)) => self.hold_until(until),
                Err(err) => {
                    // The database is the budget: without it, calls go out unlimited rather than
                    // not at all, and the provider's own limit answers 429 if need be.
                    tracing::warn!(error = %err, key = %self.key, "could not claim from the shared call budget");
                    return;
                }
            }
        }
    }
}

impl Gate for SharedRate {
    fn admit(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.admit_one())
    }

    fn hold_off(&self, wait: Duration) {
        let until = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_else(|_| chrono::Duration::hours(1));
        self.hold_until(until);
        let (db, key) = (self.db.clone(), self.key.clone());
        tokio::spawn(async move {
            if let Err(err) = rate_limits::hold_calls(&db, &key, until).await {
                tracing::warn!(error = %err, %key, "could not share a provider's Retry-After");
            }
        });
    }
}
