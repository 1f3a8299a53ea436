//! Which user a session token belongs to, checked on every request.
//!
//! A session ends the moment the change that ends it (sign-out, password change or reset) is
//! answered, in every process: the first request after that answer, to any process, is refused.
//! So a checked session is kept in memory (for at most `ttl`) only while this process hears of
//! every change to it: always on SQLite, whose database one `serve` process answers for; on
//! PostgreSQL while this process listens to the others, which acknowledge each change before it
//! is answered (see [`crate::services::changes`]). A kept session is forgotten the moment a
//! change to its user commits in any process; while not listening, every request checks the
//! token in the database (one indexed lookup).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use donkies_store::users::User;

use crate::cache::ReadCache;
use crate::services::Storage;

/// A checked session: its user and when the token expires.
pub type Session = (User, DateTime<Utc>);

pub struct SessionCache {
    entries: ReadCache<Session>,
    store: Storage,
    /// Counts the users forgotten so far: a session read from the database before a user was
    /// forgotten may be stale, so it is not kept.
    forgotten: Mutex<u64>,
}

impl SessionCache {
    pub fn new(store: &Storage, ttl: Duration) -> SessionCache {
        SessionCache { entries: ReadCache::new(ttl), store: store.clone(), forgotten: Mutex::new(0) }
    }

    /// The session behind a token hash: from memory, or else from `load`, kept unless a user was
    /// forgotten while it loaded.
    pub async fn check<E>(
        &self,
        token_hash: &str,
        load: impl Future<Output = Result<Option<Session>, E>>,
    ) -> Result<Option<Session>, E> {
        let live = self.store.changes.is_live(&self.store.db);
        if live && let Some(hit) = self.entries.get(token_hash) {
            return Ok(Some(hit));
        }
        let before = *self.forgotten();
        let loaded = load.await?;
        if live && let Some(session) = &loaded {
            // Under the lock, so that no forgetting slips in between the check and the put.
            let forgotten = self.forgotten();
            if *forgotten == before {
                self.entries.put(token_hash, session.clone());
            }
        }
        Ok(loaded)
    }

    /// Forget every session of a user (after a change to the user or their tokens).
    pub fn forget_user(&self, user_id: i64) {
        let mut forgotten = self.forgotten();
        *forgotten = forgotten.wrapping_add(1);
        self.entries.forget_where(move |(user, _)| user.id == user_id);
    }

    /// Forget every session (changes may have been missed).
    pub fn forget_all(&self) {
        let mut forgotten = self.forgotten();
        *forgotten = forgotten.wrapping_add(1);
        self.entries.forget_where(|_| true);
    }

    fn forgotten(&self) -> MutexGuard<'_, u64> {
        // The count stays meaningful whatever panicked while holding it.
        self.forgotten.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
