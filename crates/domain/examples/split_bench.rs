//! Times splitting every user's held total by their debt shares, for a million users, against a
//! plain sum over the same data (the least any pass over it can cost) and against a walk that
//! visits each user's total and shares in turn without splitting (the least any per-user pass
//! costs: the varying number of shares makes each user's loop end unpredictable). Then the same
//! users laid out as a payout run reads them, grouped by their number of shares with each group
//! in columns: `split_batch` over every group against a plain sum over those columns. Run by
//! `bench/split.sh`:
//!
//!     cargo run --release -p donkies-domain --example split_bench [-- USERS]

use std::hint::black_box;
use std::time::{Duration, Instant};

use donkies_domain::{Cents, split_batch, split_by_shares, split_into};

const DEFAULT_USERS: usize = 1_000_000;
const RUNS: usize = 5;
const SEED: u64 = 0x5eed_d0e5_0000_0001;
/// The goal: splitting costs less than this many plain sums.
const GOAL_RATIO: f64 = 3.0;
/// The users per call in the chunked batch pass.
const CHUNK_USERS: usize = 4096;

/// The users laid out as the payout job would read them: one held total and a share count per
/// user, and everyone's shares back to back.
struct Users {
    totals: Vec<Cents>,
    share_counts: Vec<u8>,
    shares: Vec<u32>,
}

/// The users who have `K` debt accounts, in columns: their held totals, their shares, and room
/// for their parts (made once, outside the timing, as a payout run would keep it).
struct Group<const K: usize> {
    totals: Vec<Cents>,
    shares: Vec<[u32; K]>,
    parts: Vec<[Cents; K]>,
}

impl<const K: usize> Group<K> {
    fn of(users: &Users) -> Self {
        let mut group = Group { totals: Vec::new(), shares: Vec::new(), parts: Vec::new() };
        for_each_user(users, |total, shares| {
            if let Ok(shares) = <[u32; K]>::try_from(shares) {
                group.totals.push(total);
                group.shares.push(shares);
            }
        });
        group.parts = vec![[Cents::ZERO; K]; group.totals.len()];
        group
    }

    fn plain_sum(&self) -> u64 {
        let totals: i64 = self.totals.iter().map(|total| total.get()).sum();
        let shares: u64 = self.shares.as_flattened().iter().map(|&share| u64::from(share)).sum();
        totals.unsigned_abs() + shares
    }

    fn split(&mut self) {
        split_batch(&self.totals, &self.shares, &mut self.parts);
        // After the loop, not inside it: every part must be written, and the loop stays free to
        // vectorize.
        black_box(&mut self.parts);
    }

    /// Writes every user's total into all their parts: no split, only the stores a split makes.
    fn store(&mut self) {
        for (parts, &total) in self.parts.iter_mut().zip(&self.totals) {
            *parts = [total; K];
        }
        black_box(&mut self.parts);
    }

    /// The split a chunk of users at a time into one small buffer, as a payout run that turns
    /// each chunk's parts into transfers before the next would: the parts stay in the cache.
    fn split_in_chunks(&mut self) {
        let mut parts = [[Cents::ZERO; K]; CHUNK_USERS];
        for (totals, shares) in self.totals.chunks(CHUNK_USERS).zip(self.shares.chunks(CHUNK_USERS)) {
            let parts = &mut parts[..totals.len()];
            split_batch(totals, shares, parts);
            black_box(parts);
        }
    }

    /// Outside the timing: every user's parts are split_by_shares'.
    fn check(&mut self) {
        self.split();
        for ((&total, shares), parts) in self.totals.iter().zip(&self.shares).zip(&self.parts) {
            assert_eq!(parts.as_slice(), split_by_shares(total, shares), "batch split of {total} by {shares:?}");
        }
    }
}

/// The same users grouped by their number of shares (1 to 5), each group in columns.
struct Columns {
    one: Group<1>,
    two: Group<2>,
    three: Group<3>,
    four: Group<4>,
    five: Group<5>,
}

impl Columns {
    fn of(users: &Users) -> Self {
        let columns = Columns {
            one: Group::of(users),
            two: Group::of(users),
            three: Group::of(users),
            four: Group::of(users),
            five: Group::of(users),
        };
        let grouped = columns.one.totals.len()
            + columns.two.totals.len()
            + columns.three.totals.len()
            + columns.four.totals.len()
            + columns.five.totals.len();
        assert_eq!(grouped, users.totals.len(), "every user has 1 to 5 shares");
        columns
    }

    /// Every total and every share, all added up.
    fn plain_sum(&self) -> u64 {
        self.one.plain_sum()
            + self.two.plain_sum()
            + self.three.plain_sum()
            + self.four.plain_sum()
            + self.five.plain_sum()
    }

    fn split(&mut self) -> u64 {
        self.one.split();
        self.two.split();
        self.three.split();
        self.four.split();
        self.five.split();
        0
    }

    fn store(&mut self) -> u64 {
        self.one.store();
        self.two.store();
        self.three.store();
        self.four.store();
        self.five.store();
        0
    }

    fn split_in_chunks(&mut self) -> u64 {
        self.one.split_in_chunks();
        self.two.split_in_chunks();
        self.three.split_in_chunks();
        self.four.split_in_chunks();
        self.five.split_in_chunks();
        0
    }

    fn check(&mut self) {
        self.one.check();
        self.two.check();
        self.three.check();
        self.four.check();
        self.five.check();
    }
}

/// SplitMix64: a seeded generator small enough to write here, so the data is the same on every
/// run without a dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `low..=high` (the slight modulo bias does not matter for test data).
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// Held totals of $5.00 to $500.00 and 1 to 5 debt accounts whose shares sum to 100 (cut points
/// drawn in 1..=99, so a share of 0 happens when two cuts meet, as it may in real data).
fn generate(count: usize) -> Users {
    let mut random = SplitMix64(SEED);
    let mut users = Users {
        totals: Vec::with_capacity(count),
        share_counts: Vec::with_capacity(count),
        shares: Vec::with_capacity(count * 3),
    };
    let mut cuts = Vec::with_capacity(4);
    for _ in 0..count {
        let total = i64::try_from(random.between(500, 50_000)).expect("small");
        let accounts = random.between(1, 5);
        cuts.clear();
        cuts.extend((1..accounts).map(|_| u32::try_from(random.between(1, 99)).expect("small")));
        cuts.sort_unstable();
        let mut previous = 0;
        for &cut in &cuts {
            users.shares.push(cut - previous);
            previous = cut;
        }
        users.shares.push(100 - previous);
        users.totals.push(Cents::new(total));
        users.share_counts.push(u8::try_from(accounts).expect("at most 5"));
    }
    users
}

/// Every user's total, their shares and their share count, all added up.
fn plain_sum(users: &Users) -> u64 {
    let totals: i64 = users.totals.iter().map(|total| total.get()).sum();
    let shares: u64 = users.shares.iter().map(|&share| u64::from(share)).sum();
    let counts: u64 = users.share_counts.iter().map(|&count| u64::from(count)).sum();
    totals.unsigned_abs() + shares + counts
}

/// Each user's total plus their shares, user by user, as a split has to visit them.
fn per_user_sum(users: &Users) -> u64 {
    let mut sum = 0_u64;
    for_each_user(users, |total, shares| {
        sum += total.get().unsigned_abs() + shares.iter().map(|&share| u64::from(share)).sum::<u64>();
    });
    sum
}

/// Calls `visit` with every user's total and shares.
fn for_each_user(users: &Users, mut visit: impl FnMut(Cents, &[u32])) {
    let mut start = 0;
    for (&total, &count) in users.totals.iter().zip(&users.share_counts) {
        let end = start + usize::from(count);
        visit(total, &users.shares[start..end]);
        start = end;
    }
}

fn split_reusing_a_buffer(users: &Users) -> u64 {
    let mut parts = Vec::with_capacity(8);
    for_each_user(users, |total, shares| {
        split_into(total, shares, &mut parts);
        black_box(&parts);
    });
    0
}

fn split_allocating(users: &Users) -> u64 {
    for_each_user(users, |total, shares| {
        black_box(split_by_shares(total, shares));
    });
    0
}

/// The fastest of [`RUNS`] runs: the one least disturbed by whatever else shares the machine.
fn best_of(users: &Users, pass: fn(&Users) -> u64) -> Duration {
    best_of_runs(|| pass(black_box(users)))
}

fn best_of_runs(mut pass: impl FnMut() -> u64) -> Duration {
    (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            black_box(pass());
            started.elapsed()
        })
        .min()
        .expect("at least one run")
}

/// Outside the timing: the splits lose no cent.
fn check_splits(users: &Users) {
    let mut parts = Vec::new();
    for_each_user(users, |total, shares| {
        split_into(total, shares, &mut parts);
        let sum: i64 = parts.iter().map(|part| part.get()).sum();
        assert_eq!(sum, total.get(), "split of {total} by {shares:?} gave {parts:?}");
        assert_eq!(parts, split_by_shares(total, shares));
    });
}

fn main() {
    let count = std::env::args().nth(1).map_or(DEFAULT_USERS, |arg| arg.parse().expect("USERS is a number"));
    let users = generate(count);
    check_splits(&users);
    let average_shares = users.shares.len() as f64 / count as f64;

    let plain = best_of(&users, plain_sum);
    let walk = best_of(&users, per_user_sum);
    let rows = [
        ("plain sum (baseline)", plain),
        ("per-user walk, no split", walk),
        ("split_into (reused buffer)", best_of(&users, split_reusing_a_buffer)),
        ("split_by_shares (new Vec)", best_of(&users, split_allocating)),
    ];

    println!("donkies split benchmark  ({count} users, {average_shares:.2} shares each on average, best of {RUNS})");
    println!("{:<28} {:>9} {:>13} {:>9} {:>9}", "pass", "ms", "users/s", "vs plain", "vs walk");
    for (name, time) in rows {
        let seconds = time.as_secs_f64();
        println!(
            "{:<28} {:>9.2} {:>13.0} {:>8.2}x {:>8.2}x",
            name,
            seconds * 1e3,
            count as f64 / seconds,
            seconds / plain.as_secs_f64(),
            seconds / walk.as_secs_f64(),
        );
    }
    let ratio = rows[2].1.as_secs_f64() / plain.as_secs_f64();
    let verdict = if ratio < GOAL_RATIO { "met" } else { "NOT met" };
    println!("goal: split_into / plain sum < {GOAL_RATIO}x: {verdict} ({ratio:.2}x)");

    // The layout is built outside the timing: a payout run reads its users grouped this way.
    let mut columns = Columns::of(&users);
    columns.check();
    let columnar_plain = best_of_runs(|| black_box(&columns).plain_sum());
    let batch = best_of_runs(|| black_box(&mut columns).split());
    let rows = [
        ("plain sum, columnar (base)", columnar_plain),
        ("store parts only, no split", best_of_runs(|| black_box(&mut columns).store())),
        ("split_batch, columnar", batch),
        ("split_batch, 4096-user chunks", best_of_runs(|| black_box(&mut columns).split_in_chunks())),
    ];
    println!();
    println!("columnar layout: users grouped by share count (1 to 5), each group in columns");
    println!("{:<30} {:>7} {:>13} {:>9}", "pass", "ms", "users/s", "vs plain");
    for (name, time) in rows {
        let seconds = time.as_secs_f64();
        println!(
            "{:<30} {:>7.2} {:>13.0} {:>8.2}x",
            name,
            seconds * 1e3,
            count as f64 / seconds,
            seconds / columnar_plain.as_secs_f64(),
        );
    }
    let ratio = batch.as_secs_f64() / columnar_plain.as_secs_f64();
    let verdict = if ratio < GOAL_RATIO { "met" } else { "NOT met" };
    println!("goal: split_batch / columnar plain sum < {GOAL_RATIO}x: {verdict} ({ratio:.2}x)");
}
