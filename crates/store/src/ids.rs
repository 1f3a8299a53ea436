//! Program-chosen row ids: 53-bit integers, the same scheme on both engines.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// 2025-01-01T00:00:00Z in milliseconds since the Unix epoch.
const EPOCH_MS: i64 = 1_735_689_600_000;
/// Bits below the millisecond count: a per-process random start plus a sequence.
const LOW_BITS: u32 = 13;
/// The random start stays in the lower half of the low bits, so at least 4,096 ids fit in a
/// millisecond before the sequence borrows from the next one.
const START_MASK: i64 = (1 << (LOW_BITS - 1)) - 1;
/// Ids stay below this: JavaScript clients `parseInt()` them into a double.
pub const MAX_ID: i64 = 1 << 53;

static LAST: AtomicI64 = AtomicI64::new(0);
/// Keyed at random once per process (std's hasher keys come from the OS).
static PROCESS_KEY: LazyLock<RandomState> = LazyLock::new(RandomState::new);

/// A fresh row id, chosen by the program so that both engines agree and no sequence is needed.
///
/// Layout (53 bits, always positive and below 2^53 so a JavaScript `parseInt()` keeps it exact):
/// the high 40 bits count milliseconds since 2025-01-01 UTC (room until November 2059), the low
/// 13 bits start each millisecond at a per-process random offset below 4,096 — a keyed hash of
/// the millisecond, so two processes rarely pick the same low bits in the same millisecond and
/// never keep colliding — and count up from there. Within a process ids strictly increase
/// (an atomic keeps the last one): a burst of more ids than a millisecond holds, or a clock that
/// steps back, continues from the last id instead of repeating one.
pub fn new_id() -> i64 {
    let floor = id_floor(now_ms());
    let previous = LAST
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| Some(last.saturating_add(1).max(floor)))
        .unwrap_or_else(|last| last);
    previous.saturating_add(1).max(floor)
}

/// A fresh 32-hex-character public identifier (`identifier`, `uid` and the like).
pub fn new_hex_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

fn now_ms() -> i64 {
    let since_unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_unix.as_millis()).unwrap_or(i64::MAX)
}

/// The smallest id this process hands out in millisecond `unix_ms`.
fn id_floor(unix_ms: i64) -> i64 {
    let ms = unix_ms.saturating_sub(EPOCH_MS).clamp(0, (MAX_ID >> LOW_BITS) - 1);
    let start = (PROCESS_KEY.hash_one(ms) as i64) & START_MASK;
    (ms << LOW_BITS) | start
}

/// The millisecond (since the Unix epoch) an id was made in, give or take a burst's borrowing.
pub fn id_time_ms(id: i64) -> i64 {
    (id >> LOW_BITS) + EPOCH_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_below_2_pow_53_and_strictly_increasing() {
        let mut last = 0;
        for _ in 0..100_000 {
            let id = new_id();
            assert!(id > last, "{id} after {last}");
            assert!(id < MAX_ID);
            last = id;
        }
    }

    #[test]
    fn ids_from_many_threads_never_repeat() {
        let handles: Vec<_> =
            (0..4).map(|_| std::thread::spawn(|| (0..20_000).map(|_| new_id()).collect::<Vec<_>>())).collect();
        let mut all: Vec<i64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn ids_carry_the_time_they_were_made() {
        let before = now_ms();
        let id = new_id();
        // A burst elsewhere in this process may have borrowed a few milliseconds ahead.
        assert!((id_time_ms(id) - before).abs() < 1_000, "{} vs {before}", id_time_ms(id));
    }

    #[test]
    fn floor_stays_in_range_at_both_ends_of_time() {
        assert!(id_floor(0) >= 0);
        assert!(id_floor(EPOCH_MS) <= START_MASK);
        assert!(id_floor(i64::MAX) < MAX_ID);
        assert!(id_floor(EPOCH_MS + 1) > id_floor(EPOCH_MS));
    }
}
