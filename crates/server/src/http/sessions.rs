//! Checked sessions kept in memory briefly, so that the token check of every request does not
//! cost a database round trip (see [`crate::cache`] for the freshness rules).

use std::time::Duration;

use chrono::{DateTime, Utc};
use donkies_store::users::User;

use crate::cache::TtlCache;

pub struct SessionCache(TtlCache<(User, DateTime<Utc>)>);

impl SessionCache {
    pub fn new(ttl: Duration) -> SessionCache {
        SessionCache(TtlCache::new(ttl))
    }

    /// The user and token expiry behind a token hash, if recently checked.
    pub fn get(&self, token_hash: &str) -> Option<(User, DateTime<Utc>)> {
        self.0.get(token_hash)
    }

    pub fn put(&self, token_hash: &str, user: &User, token_expires_at: DateTime<Utc>) {
        self.0.put(token_hash, (user.clone(), token_expires_at));
    }

    /// Forget every session of a user (after a change to the user or their tokens).
    pub fn forget_user(&self, user_id: i64) {
        self.0.forget_where(|(user, _)| user.id == user_id);
    }
}
