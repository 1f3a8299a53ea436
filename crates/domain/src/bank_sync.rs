//! What one sync of a member changes: the aggregator's rows for a window of days against the
//! rows stored for that window. Real bank data moves (see DESIGN.md "Real bank data moves"):
//! a pending purchase posts under a new id, holds vanish, posted rows are amended or removed,
//! and a re-linked bank returns the same history under new ids. The plan says which stored
//! rows take a new id (the same purchase), which are gone, and what the user would call each
//! change.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;

use crate::Cents;

/// What identifies one purchase whatever guid the aggregator gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowFacts {
    pub account_id: i64,
    pub date: NaiveDate,
    pub amount: Cents,
    pub debit: bool,
    pub description: String,
    pub pending: bool,
}

/// A row as stored, within the window the sync fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    pub id: i64,
    pub guid: String,
    pub facts: RowFacts,
    /// Marked removed by an earlier sync.
    pub removed: bool,
}

/// A row as the aggregator returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRow {
    pub guid: String,
    pub facts: RowFacts,
}

/// What a sync did, as the user would say it. A pending row replaced by its posted row counts
/// once, as posted; a hold that vanished counts as removed; a row a re-linked bank returns under
/// a new id counts as nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    pub added: usize,
    pub posted: usize,
    pub removed: usize,
    pub amended: usize,
}

impl SyncCounts {
    pub fn add(&mut self, other: SyncCounts) {
        self.added += other.added;
        self.posted += other.posted;
        self.removed += other.removed;
        self.amended += other.amended;
    }
}

impl std::fmt::Display for SyncCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "added {}, posted {}, removed {}, amended {}", self.added, self.posted, self.removed, self.amended)
    }
}

/// The changes a sync makes to the stored rows besides storing what it fetched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Stored rows that are the same purchase as a fetched row under a new guid: (id, guid).
    pub adopt: Vec<(i64, String)>,
    /// Stored rows the aggregator no longer returns.
    pub remove: Vec<i64>,
    pub counts: SyncCounts,
}

/// Plan a sync: `stored` are every row stored for the fetched window on the member's
/// accounts (removed ones included), `fetched` what the aggregator returned for it.
///
/// - A fetched guid already stored updates its row: a removed row comes back (counted as
///   added), a pending row now posted counts as posted, a posted row whose amount changed as
///   amended.
/// - A fetched row under an unknown guid that matches, exactly, a present stored row the
///   aggregator no longer returns (same account, day, amount, direction, description and
///   pending state) is that row under a new guid: it is adopted, not added. Two identical
///   purchases on one day pair off one to one.
/// - Any other new posted row that follows a vanished pending row of the same account (same
///   description or same amount, on or after its day) is that purchase posting: counted once,
///   as posted. Other new rows are added.
/// - Present stored rows not returned and not adopted are removed.
pub fn plan(stored: &[StoredRow], fetched: &[FetchedRow]) -> SyncPlan {
    let mut plan = SyncPlan::default();
    let by_guid: HashMap<&str, &StoredRow> = stored.iter().map(|r| (r.guid.as_str(), r)).collect();
    let fetched_guids: HashSet<&str> = fetched.iter().map(|r| r.guid.as_str()).collect();
    // Present rows the aggregator no longer returns, by identity, oldest id first.
    let mut orphans: HashMap<&RowFacts, Vec<&StoredRow>> = HashMap::new();
    for r in stored.iter().filter(|r| !r.removed && !fetched_guids.contains(r.guid.as_str())) {
        orphans.entry(&r.facts).or_default().push(r);
    }
    for list in orphans.values_mut() {
        list.sort_by_key(|r| std::cmp::Reverse(r.id));
    }
    let mut new_rows = Vec::new();
    let mut seen = HashSet::new();
    for f in fetched {
        if !seen.insert(f.guid.as_str()) {
            continue;
        }
        match by_guid.get(f.guid.as_str()) {
            Some(s) if s.removed => plan.counts.added += 1,
            Some(s) if s.facts.pending && !f.facts.pending => plan.counts.posted += 1,
            Some(s) if !s.facts.pending && !f.facts.pending && s.facts.amount != f.facts.amount => {
                plan.counts.amended += 1
            }
            Some(_) => {}
            None => match orphans.get_mut(&f.facts).and_then(Vec::pop) {
                Some(same) => plan.adopt.push((same.id, f.guid.clone())),
                None => new_rows.push(f),
            },
        }
    }
    let mut vanished: Vec<&StoredRow> = orphans.into_values().flatten().collect();
    vanished.sort_by_key(|r| (r.facts.date, r.id));
    let mut replaced: HashSet<i64> = HashSet::new();
    for f in new_rows {
        let (new, posting) = (&f.facts, !f.facts.pending);
        let posting = posting
            .then(|| {
                vanished.iter().find(|p| {
                    let old = &p.facts;
                    old.pending
                        && !replaced.contains(&p.id)
                        && old.account_id == new.account_id
                        && old.debit == new.debit
                        && old.date <= new.date
                        && (old.description == new.description || old.amount == new.amount)
                })
            })
            .flatten();
        match posting {
            Some(pending) => {
                replaced.insert(pending.id);
                plan.counts.posted += 1;
            }
            None => plan.counts.added += 1,
        }
    }
    for r in &vanished {
        plan.remove.push(r.id);
        if !replaced.contains(&r.id) {
            plan.counts.removed += 1;
        }
    }
    plan.remove.sort_unstable();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(d: u32, cents: i64, pending: bool) -> RowFacts {
        RowFacts {
            account_id: 1,
            date: NaiveDate::from_ymd_opt(2026, 11, d).unwrap(),
            amount: Cents::new(cents),
            debit: true,
            description: "Coffee".into(),
            pending,
        }
    }

    fn stored(id: i64, guid: &str, d: u32, cents: i64, pending: bool) -> StoredRow {
        StoredRow { id, guid: guid.into(), facts: facts(d, cents, pending), removed: false }
    }

    fn fetched(guid: &str, d: u32, cents: i64, pending: bool) -> FetchedRow {
        FetchedRow { guid: guid.into(), facts: facts(d, cents, pending) }
    }

    fn counts(added: usize, posted: usize, removed: usize, amended: usize) -> SyncCounts {
        SyncCounts { added, posted, removed, amended }
    }

    #[test]
    fn a_pending_row_posting_under_a_new_guid_counts_once_as_posted() {
        let plan = plan(&[stored(1, "p", 3, 1234, true)], &[fetched("q", 4, 1434, false)]);
        assert_eq!(plan.remove, vec![1]);
        assert!(plan.adopt.is_empty());
        assert_eq!(plan.counts, counts(0, 1, 0, 0));
    }

    #[test]
    fn a_vanished_hold_is_removed() {
        let plan =
            plan(&[stored(1, "p", 3, 5000, true), stored(2, "k", 2, 100, false)], &[fetched("k", 2, 100, false)]);
        assert_eq!(plan.remove, vec![1]);
        assert_eq!(plan.counts, counts(0, 0, 1, 0));
    }

    #[test]
    fn an_amended_posted_row_keeps_its_guid_and_counts_as_amended() {
        let plan = plan(&[stored(1, "a", 3, 1000, false)], &[fetched("a", 3, 1200, false)]);
        assert_eq!(plan, SyncPlan { adopt: vec![], remove: vec![], counts: counts(0, 0, 0, 1) });
    }

    #[test]
    fn a_relinked_history_is_adopted_and_identical_purchases_pair_off() {
        let old = [stored(1, "a", 3, 250, false), stored(2, "b", 3, 250, false), stored(3, "c", 4, 990, false)];
        let new = [fetched("x", 3, 250, false), fetched("y", 3, 250, false), fetched("z", 3, 250, false)];
        let plan = plan(&old, &new);
        // Two of the three identical purchases are the stored two; the third is new; the 9.90
        // purchase is gone.
        assert_eq!(plan.adopt.len(), 2);
        let adopted: HashSet<i64> = plan.adopt.iter().map(|(id, _)| *id).collect();
        assert_eq!(adopted, HashSet::from([1, 2]));
        assert_eq!(plan.remove, vec![3]);
        assert_eq!(plan.counts, counts(1, 0, 1, 0));
    }

    #[test]
    fn a_removed_row_that_comes_back_counts_as_added() {
        let mut gone = stored(1, "a", 3, 250, false);
        gone.removed = true;
        let plan = plan(&[gone], &[fetched("a", 3, 250, false)]);
        assert_eq!(plan, SyncPlan { adopt: vec![], remove: vec![], counts: counts(1, 0, 0, 0) });
    }

    #[test]
    fn nothing_moves_when_the_bank_returns_what_is_stored() {
        let plan = plan(
            &[stored(1, "a", 3, 250, false), stored(2, "b", 4, 300, true)],
            &[fetched("a", 3, 250, false), fetched("b", 4, 300, true)],
        );
        assert_eq!(plan, SyncPlan::default());
    }
}
