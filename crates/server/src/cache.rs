//! A time-bounded, in-process read cache over `moka`.
//!
//! Entries live at most `ttl` (DONKIES_CACHE_MS, default 1 s). Whoever changes the data in this
//! process forgets the affected entries right after committing; other processes' changes show
//! within `ttl`. A zero `ttl` turns the cache off.

use std::time::Duration;

/// Entries beyond this are evicted, least recently used first.
const MAX_ENTRIES: u64 = 100_000;

pub struct ReadCache<V>(Option<moka::sync::Cache<String, V>>);

impl<V: Clone + Send + Sync + 'static> ReadCache<V> {
    pub fn new(ttl: Duration) -> ReadCache<V> {
        ReadCache((!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build()
        }))
    }

    /// The value under `key`, if fresh.
    pub fn get(&self, key: &str) -> Option<V> {
        self.0.as_ref()?.get(key)
    }

    pub fn put(&self, key: &str, value: V) {
        if let Some(cache) = &self.0 {
            cache.insert(key.to_owned(), value);
        }
    }

    /// Forget every entry whose value matches: no later `get` answers one of them.
    pub fn forget_where(&self, matches: impl Fn(&V) -> bool + Send + Sync + 'static) {
        if let Some(cache) = &self.0 {
            // Only fails when the cache was built without invalidation closures, which it is not.
            let _ = cache.invalidate_entries_if(move |_, value| matches(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_are_forgotten_by_value() {
        let cache: ReadCache<(&str, u32)> = ReadCache::new(Duration::from_millis(50));
        cache.put("t1", ("ada", 1));
        cache.put("t2", ("ada", 2));
        cache.put("t3", ("bob", 3));
        assert_eq!(cache.get("t1"), Some(("ada", 1)));
        cache.forget_where(|(user, _)| *user == "ada");
        assert_eq!((cache.get("t1"), cache.get("t2")), (None, None));
        assert_eq!(cache.get("t3"), Some(("bob", 3)));
        cache.put("t1", ("ada", 4));
        assert_eq!(cache.get("t1"), Some(("ada", 4)), "an entry put after the forgetting stays");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("t3"), None, "stale after the ttl");
        let off: ReadCache<u32> = ReadCache::new(Duration::ZERO);
        off.put("t", 1);
        assert_eq!(off.get("t"), None, "a zero ttl turns the cache off");
    }
}
