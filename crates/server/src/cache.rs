//! A time-bounded, in-process read cache over `moka`.
//!
//! Entries live at most `ttl` (DONKIES_CACHE_MS, default 1 s). Whoever changes the data in this
//! process forgets the affected entries right after committing; other processes' changes show
//! within `ttl`. A zero `ttl` turns the cache off.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Entries beyond this are evicted, least recently used first.
const MAX_ENTRIES: u64 = 100_000;

pub struct ReadCache<V> {
    entries: Option<moka::sync::Cache<String, V>>,
    /// Counts the forgettings so far: a value read before one may be stale, so it is not kept.
    forgotten: Mutex<u64>,
}

/// Where the cache stood when a value began to be read: see [`ReadCache::put_read_since`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReadStart(u64);

impl<V: Clone + Send + Sync + 'static> ReadCache<V> {
    pub fn new(ttl: Duration) -> ReadCache<V> {
        let entries = (!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build()
        });
        ReadCache { entries, forgotten: Mutex::new(0) }
    }

    /// The value under `key`, if fresh.
    pub fn get(&self, key: &str) -> Option<V> {
        self.entries.as_ref()?.get(key)
    }

    /// Taken before reading a value to keep: a change forgotten while it is read (which the
    /// read may predate) keeps the value out.
    pub fn read_start(&self) -> ReadStart {
        ReadStart(*self.forgotten())
    }

    /// Keep `value`, read since `start`, unless something was forgotten meanwhile.
    pub fn put_read_since(&self, start: ReadStart, key: &str, value: V) {
        let Some(cache) = &self.entries else { return };
        // Under the lock, so that no forgetting slips in between the check and the insert.
        let forgotten = self.forgotten();
        if *forgotten == start.0 {
            cache.insert(key.to_owned(), value);
        }
    }

    /// Forget every entry whose value matches: no later `get` answers one of them, and no
    /// value read before this is kept.
    pub fn forget_where(&self, matches: impl Fn(&V) -> bool + Send + Sync + 'static) {
        let mut forgotten = self.forgotten();
        *forgotten = forgotten.wrapping_add(1);
        if let Some(cache) = &self.entries {
            // Only fails when the cache was built without invalidation closures, which it is not.
            let _ = cache.invalidate_entries_if(move |_, value| matches(value));
        }
    }

    fn forgotten(&self) -> MutexGuard<'_, u64> {
        // The count stays meaningful whatever panicked while holding it.
        self.forgotten.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_are_forgotten_by_value() {
        let cache: ReadCache<(&str, u32)> = ReadCache::new(Duration::from_millis(50));
        let start = cache.read_start();
        cache.put_read_since(start, "t1", ("ada", 1));
        cache.put_read_since(start, "t2", ("ada", 2));
        cache.put_read_since(start, "t3", ("bob", 3));
        assert_eq!(cache.get("t1"), Some(("ada", 1)));
        cache.forget_where(|(user, _)| *user == "ada");
        assert_eq!((cache.get("t1"), cache.get("t2")), (None, None));
        assert_eq!(cache.get("t3"), Some(("bob", 3)));
        cache.put_read_since(cache.read_start(), "t1", ("ada", 4));
        assert_eq!(cache.get("t1"), Some(("ada", 4)), "an entry read after the forgetting stays");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("t3"), None, "stale after the ttl");
        let off: ReadCache<u32> = ReadCache::new(Duration::ZERO);
        off.put_read_since(off.read_start(), "t", 1);
        assert_eq!(off.get("t"), None, "a zero ttl turns the cache off");
    }

    #[test]
    fn a_value_read_before_a_forgetting_is_not_kept() {
        let cache: ReadCache<u32> = ReadCache::new(Duration::from_secs(60));
        let start = cache.read_start();
        // The value is read; then a change to something else entirely is forgotten…
        cache.forget_where(|_| false);
        // …so the value, which may predate that change, is answered but not kept.
        cache.put_read_since(start, "member", 1);
        assert_eq!(cache.get("member"), None);
        cache.put_read_since(cache.read_start(), "member", 2);
        assert_eq!(cache.get("member"), Some(2));
    }
}
