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
}

impl SessionCache {
    pub fn new(store: &Storage, ttl: Duration) -> SessionCache {
        SessionCache { entries: ReadCache::new(ttl), store: store.clone() }
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
        let start = self.entries.read_start();
        let loaded = load.await?;
        if live && let Some(session) = &loaded {
            self.entries.put_read_since(start, token_hash, session.clone());
        }
        Ok(loaded)
    }

    /// Forget every session of a user (after a change to the user or their tokens).
    pub fn forget_user(&self, user_id: i64) {
        self.entries.forget_where(move |(user, _)| user.id == user_id);
    }

    /// Forget every session (changes may have been missed).
    pub fn forget_all(&self) {
        self.entries.forget_where(|_| true);
    }
}
