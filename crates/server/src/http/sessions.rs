//! A short-lived, in-process cache of authenticated sessions, so that the token check of every
//! request does not cost a database round trip.
//!
//! An entry lives at most `ttl` (DONKIES_AUTH_CACHE_MS, default 1 s). Whatever changes a user
//! or revokes their tokens in this process forgets the user's entries at once, after its
//! transaction commits; other processes see the change within `ttl`.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use donkies_store::users::User;

/// Entries beyond this are dropped wholesale rather than grow without bound.
const MAX_ENTRIES: usize = 100_000;

pub struct SessionCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, Entry>>,
}

#[derive(Clone)]
struct Entry {
    user: User,
    token_expires_at: DateTime<Utc>,
    cached_at: Instant,
}

impl SessionCache {
    pub fn new(ttl: Duration) -> SessionCache {
        SessionCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The cached user and token expiry for a token hash, if fresh.
    pub fn get(&self, token_hash: &str) -> Option<(User, DateTime<Utc>)> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let entry = entries.get(token_hash)?;
        (entry.cached_at.elapsed() < self.ttl).then(|| (entry.user.clone(), entry.token_expires_at))
    }

    pub fn put(&self, token_hash: &str, user: &User, token_expires_at: DateTime<Utc>) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_ENTRIES {
                let ttl = self.ttl;
                entries.retain(|_, e| e.cached_at.elapsed() < ttl);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(
                token_hash.to_owned(),
                Entry {
                    user: user.clone(),
                    token_expires_at,
                    cached_at: Instant::now(),
                },
            );
        }
    }

    /// Forget every session of a user (after a change to the user or their tokens).
    pub fn forget_user(&self, user_id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, e| e.user.id != user_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> User {
        let t = Utc::now();
        User {
            id: id.into(),
            email: format!("{id}@example.com"),
            password_hash: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            identifier: String::new(),
            encrypted_id: String::new(),
            is_confirmed: true,
            confirmation_token_hash: None,
            guid: None,
            address1: None,
            address2: None,
            city: None,
            state: None,
            postal_code: None,
            date_of_birth: None,
            ssn_encrypted: None,
            ssn_last4: None,
            phone: None,
            is_profile_completed: false,
            minimum_transfer_amount: 5,
            is_even_roundup: false,
            is_closed_account: false,
            closed_at: None,
            profile_image_url: None,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn entries_expire_and_are_forgotten_per_user() {
        let cache = SessionCache::new(Duration::from_millis(50));
        let exp = Utc::now();
        cache.put("t1", &user("ada"), exp);
        cache.put("t2", &user("ada"), exp);
        cache.put("t3", &user("bob"), exp);
        assert_eq!(cache.get("t1").unwrap().0.id, "ada");
        cache.forget_user("ada");
        assert!(cache.get("t1").is_none() && cache.get("t2").is_none());
        assert_eq!(cache.get("t3").unwrap().0.id, "bob");
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get("t3").is_none(), "stale after the ttl");
        let off = SessionCache::new(Duration::ZERO);
        off.put("t", &user("ada"), exp);
        assert!(off.get("t").is_none(), "a zero ttl disables the cache");
    }
}
