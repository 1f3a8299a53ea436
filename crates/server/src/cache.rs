//! A small time-bounded, in-process read cache.
//!
//! Entries live at most `ttl` (DONKIES_CACHE_MS, default 1 s). Whoever changes the data in this
//! process forgets the affected entries right after committing; other processes' changes show
//! within `ttl`. A zero `ttl` turns the cache off.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Entries beyond this are dropped wholesale rather than grow without bound.
const MAX_ENTRIES: usize = 100_000;

pub struct TtlCache<V> {
    ttl: Duration,
    entries: RwLock<HashMap<String, (V, Instant)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration) -> TtlCache<V> {
        TtlCache { ttl, entries: RwLock::new(HashMap::new()) }
    }

    /// The value under `key`, if fresh.
    pub fn get(&self, key: &str) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let (value, at) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    pub fn put(&self, key: &str, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_ENTRIES {
                let ttl = self.ttl;
                entries.retain(|_, (_, at)| at.elapsed() < ttl);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(key.to_owned(), (value, Instant::now()));
        }
    }

    /// Forget every entry whose value matches.
    pub fn forget_where(&self, matches: impl Fn(&V) -> bool) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, (value, _)| !matches(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_are_forgotten_by_value() {
        let cache: TtlCache<(&str, u32)> = TtlCache::new(Duration::from_millis(50));
        cache.put("t1", ("ada", 1));
        cache.put("t2", ("ada", 2));
        cache.put("t3", ("bob", 3));
        assert_eq!(cache.get("t1"), Some(("ada", 1)));
        cache.forget_where(|(user, _)| *user == "ada");
        assert_eq!((cache.get("t1"), cache.get("t2")), (None, None));
        assert_eq!(cache.get("t3"), Some(("bob", 3)));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("t3"), None, "stale after the ttl");
        let off: TtlCache<u32> = TtlCache::new(Duration::ZERO);
        off.put("t", 1);
        assert_eq!(off.get("t"), None, "a zero ttl turns the cache off");
    }
}
