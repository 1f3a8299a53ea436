//! Transfer shares: how a payout is divided among a user's debt accounts.

use crate::money::Cents;

/// The percentage of a payout that goes to one debt account, 0 through 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Share(u32);

/// Why a set of shares cannot divide a payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// A share below 0 or above 100.
    #[error("Each share must be an integer between 0 and 100.")]
    OutOfRange,
    /// The shares do not add up to 100 (an empty set adds up to 0).
    #[error("The shares must sum to 100.")]
    SumNot100,
}

impl Share {
    pub const MAX: u32 = 100;
    /// The whole payout.
    pub const FULL: Share = Share(Self::MAX);

    pub fn new(percent: i64) -> Result<Share, ShareError> {
        u32::try_from(percent).ok().filter(|&percent| percent <= Self::MAX).map(Share).ok_or(ShareError::OutOfRange)
    }

    pub const fn get(self) -> u32 {
        self.0
    }
}

/// Checks that every share is within 0..=100 and that together they make 100.
pub fn validate_shares(shares: &[i64]) -> Result<(), ShareError> {
    let mut sum: i64 = 0;
    for &percent in shares {
        let share = Share::new(percent)?;
        // At most 100 per share, so this only overflows for absurdly long input.
        sum = sum.checked_add(i64::from(share.get())).ok_or(ShareError::SumNot100)?;
    }
    if sum == 100 { Ok(()) } else { Err(ShareError::SumNot100) }
}

/// Splits `total` into one part per share, exact to the cent.
///
/// The shares are meant to be validated percentages that sum to 100; if they
/// sum to something else the split is proportional to their sum instead.
/// Every part gets the floor of its exact proportion, and the cents left over
/// go one each to the parts with the largest remainders (the earlier part wins
/// a tie), so the parts always add up to `total` and each is within one cent
/// of its exact proportion. A negative total is split like its magnitude, with
/// every part negative. When all shares are zero the whole total goes to the
/// first part; with no shares at all the result is empty.
pub fn split_by_shares(total: Cents, shares: &[u32]) -> Vec<Cents> {
    let mut parts = Vec::with_capacity(shares.len());
    split_into(total, shares, &mut parts);
    parts
}

/// [`split_by_shares`] into a buffer the caller keeps (cleared first), so that a
/// payout run over many users allocates once instead of once per user.
pub fn split_into(total: Cents, shares: &[u32], out: &mut Vec<Cents>) {
    out.clear();
    // A user has one to five debt accounts as a rule. A count known at compile
    // time lets every loop below unroll and hand out the leftover cents
    // without a branch, which matters when a payout run splits for millions.
    match shares.len() {
        1 => split_few::<1>(total, shares, out),
        2 => split_few::<2>(total, shares, out),
        3 => split_few::<3>(total, shares, out),
        4 => split_few::<4>(total, shares, out),
        5 => split_few::<5>(total, shares, out),
        _ => split_any(total, shares, out),
    }
}

/// Splits a whole payout run at once: user `i`'s `totals[i]` by their
/// `shares[i]`, into `out[i]`, for users who all have `K` debt accounts.
///
/// The result is exactly [`split_by_shares`]' for every user, whatever the
/// total and whatever the shares, but the batch is built for shares that are
/// validated percentages (each 0..=100, summing to 100). Those users are split
/// a chunk at a time by passes over columns with no branch on the amounts:
/// with `K` known every loop over the parts unrolls, and the narrow arithmetic
/// (the floors of the hundredths, the remainders and their ranking, all below
/// 10,000) runs in 16-bit vectors across users. A chunk whose totals all fit
/// in i32 (within ±$21 million) does the rest in 32-bit vectors too; any
/// other chunk takes one scalar 64-bit division per user and one multiply
/// per part (SSE2 has neither for 64 bits).
/// A payout run groups its users by their number of shares (one to five as
/// a rule) and calls this once per group. Users whose shares are not such
/// percentages are noticed on the way and split again afterwards the way
/// [`split_into`] does it, so they cost the batch time but not exactness.
///
/// ```
/// use donkies_domain::{Cents, split_batch};
///
/// let totals = [Cents::new(1001), Cents::new(-3)];
/// let shares = [[10, 45, 45], [50, 25, 25]];
/// let mut parts = [[Cents::ZERO; 3]; 2];
/// split_batch(&totals, &shares, &mut parts);
/// assert_eq!(parts[0], [Cents::new(100), Cents::new(451), Cents::new(450)]);
/// // 1.5, 0.75 and 0.75 cents: the leftover cent goes to the first 0.75.
/// assert_eq!(parts[1], [Cents::new(-1), Cents::new(-1), Cents::new(-1)]);
/// ```
///
/// # Panics
///
/// When `totals`, `shares` and `out` are not all the same length.
pub fn split_batch<const K: usize>(totals: &[Cents], shares: &[[u32; K]], out: &mut [[Cents; K]]) {
    assert!(
        totals.len() == shares.len() && shares.len() == out.len(),
        "split_batch: {} totals, {} share rows and {} output rows",
        totals.len(),
        shares.len(),
        out.len(),
    );
    let mut all_percentages = true;
    for ((totals, shares), out) in
        totals.chunks(BATCH_CHUNK).zip(shares.chunks(BATCH_CHUNK)).zip(out.chunks_mut(BATCH_CHUNK))
    {
        all_percentages &= split_chunk::<K>(totals, shares, out);
    }
    if !all_percentages {
        let mut parts = Vec::with_capacity(K);
        for ((&total, shares), out) in totals.iter().zip(shares).zip(out.iter_mut()) {
            if !are_percentages(shares) {
                split_into(total, shares, &mut parts);
                out.copy_from_slice(&parts);
            }
        }
    }
}

/// How many users [`split_chunk`] takes at a time: enough for long vector
/// loops, few enough that its scratch columns stay in the L1 cache.
const BATCH_CHUNK: usize = 128;

/// Whether `shares` are percentages that [`split_chunk`] splits right.
fn are_percentages<const K: usize>(shares: &[u32; K]) -> bool {
    shares.iter().all(|&share| share <= Share::MAX) && shares.iter().map(|&share| u64::from(share)).sum::<u64>() == 100
}

/// Up to [`BATCH_CHUNK`] users of [`split_batch`]: the arithmetic of
/// [`split_exactly`] for a denominator of 100, turned into passes over
/// columns (user by user within each) so that they vectorize across users.
/// Answers whether every user's shares were percentages summing to 100; for
/// a user whose were not, `out` holds garbage (but nothing here panics: the
/// arithmetic wraps).
fn split_chunk<const K: usize>(totals: &[Cents], shares: &[[u32; K]], out: &mut [[Cents; K]]) -> bool {
    let users = totals.len();
    assert!(users <= BATCH_CHUNK && shares.len() == users && out.len() == users);

    // The 64-bit step, one division by the constant 100 per user: with
    // magnitude = whole × 100 + rest, each exact part is whole × share + rest
    // × share / 100, and everything about the second term is below 10,000.
    // The signs are kept as all ones for a negative total, else zero, so that
    // (x ^ sign) − sign is x or −x without a branch; `whole` is kept signed.
    let mut whole = [0_i64; BATCH_CHUNK];
    let mut hundreds = [0_i32; BATCH_CHUNK];
    let mut rest = [0_u16; BATCH_CHUNK];
    let mut signs = [0_i16; BATCH_CHUNK];
    // A total fits in i32 when adding 2^31 leaves the top half clear (no
    // compare: SSE2 has none for 64 bits).
    let high_bits = totals.iter().fold(0, |high, total| high | ((total.get() as u64).wrapping_add(1 << 31) >> 32));
    let all_fit_i32 = high_bits == 0;
    if all_fit_i32 {
        // Every total within ±$21 million, as a rule: a 32-bit division of the
        // magnitude by a constant, which vectorizes where the 64-bit one does
        // not. In short loops of one width each, over whole columns, which
        // the compiler vectorizes more readily than one loop of mixed widths.
        let mut narrow = [0_i32; BATCH_CHUNK];
        for (narrow, total) in narrow.iter_mut().zip(totals) {
            *narrow = total.get() as i32;
        }
        for ((hundreds, &total), (rest, sign)) in hundreds.iter_mut().zip(&narrow).zip(rest.iter_mut().zip(&mut signs))
        {
            let negative = total >> 31;
            let magnitude = total.unsigned_abs();
            let whole = magnitude / 100;
            *rest = (magnitude - whole * 100) as u16;
            // At most 2^31 / 100: it fits, and so does −it.
            *hundreds = (whole as i32 ^ negative).wrapping_sub(negative);
            *sign = negative as i16;
        }
    } else {
        for (((total, whole), rest), sign) in totals.iter().zip(&mut whole).zip(&mut rest).zip(&mut signs) {
            let total = total.get();
            let negative = total >> 63;
            let magnitude = total.unsigned_abs();
            let hundreds = magnitude / 100;
            *rest = (magnitude - hundreds * 100) as u16;
            // Below 2^63 / 100: it fits, and so does −it.
            *whole = (hundreds as i64 ^ negative).wrapping_sub(negative);
            *sign = negative as i16;
        }
    }

    // The shares as one column per account, in u16 (a percentage fits); the
    // check below catches any share that did not.
    let out_of_range = shares.as_flattened().iter().fold(false, |out, &share| out | (share > Share::MAX));
    let mut columns = [[0_u16; BATCH_CHUNK]; K];
    for (index, column) in columns.iter_mut().enumerate() {
        for (share, row) in column.iter_mut().zip(shares) {
            *share = row[index] as u16;
        }
    }
    let mut sums = [0_u32; BATCH_CHUNK];
    for column in &columns {
        for (sum, &share) in sums.iter_mut().zip(column) {
            *sum += u32::from(share);
        }
    }
    let all_percentages = !out_of_range & sums[..users].iter().fold(true, |all, &sum| all & (sum == 100));

    // The small term of every part: its floor and its remainder, and the
    // cents the floors leave over (fewer than the parts). The remainders and
    // the leftovers (below 100) are kept in i16, which SSE2 compares natively.
    let mut fractions = [[0_i16; BATCH_CHUNK]; K];
    let mut remainders = [[0_i16; BATCH_CHUNK]; K];
    let mut leftover = rest.map(|rest| rest as i16);
    for ((column, fractions), remainders) in columns.iter().zip(&mut fractions).zip(&mut remainders) {
        for user in 0..BATCH_CHUNK {
            let scaled = rest[user].wrapping_mul(column[user]);
            let fraction = scaled / 100;
            fractions[user] = fraction as i16;
            remainders[user] = (scaled - fraction * 100) as i16;
            leftover[user] = leftover[user].wrapping_sub(fraction as i16);
        }
    }

    // As in split_exactly: a part gets a leftover cent when fewer than
    // `leftover` parts come before it (a larger remainder, or an equal one at
    // an earlier index). With `K` known the comparisons unroll, and the index
    // order decides at compile time between `>` and `>=`. The small term
    // takes the total's sign here, where the vectors are eight wide.
    let mut small = [[0_i16; BATCH_CHUNK]; K];
    for (index, (fractions, small)) in fractions.iter().zip(&mut small).enumerate() {
        for user in 0..BATCH_CHUNK {
            let mine = remainders[index][user];
            let mut ahead = 0_i16;
            for (other, theirs) in remainders.iter().enumerate() {
                let theirs = theirs[user];
                ahead += i16::from((theirs > mine) | ((theirs == mine) & (other < index)));
            }
            let magnitude = fractions[user] + i16::from(ahead < leftover[user]);
            small[user] = (magnitude ^ signs[user]).wrapping_sub(signs[user]);
        }
    }

    // Whole × share plus the small term, both signed already. For
    // percentages nothing overflows, a part being at most the total's
    // magnitude (−2^63 included); only the users redone afterwards wrap.
    if all_fit_i32 {
        // Every part fits in i32 like its total: the sums in i32 over the
        // columns, which vectorize, and only the stores widen.
        let mut narrow_parts = [[0_i32; BATCH_CHUNK]; K];
        for ((narrow_parts, column), small) in narrow_parts.iter_mut().zip(&columns).zip(&small) {
            for user in 0..BATCH_CHUNK {
                narrow_parts[user] =
                    hundreds[user].wrapping_mul(i32::from(column[user])).wrapping_add(i32::from(small[user]));
            }
        }
        for (user, parts) in (0..BATCH_CHUNK).zip(out.iter_mut()) {
            for (part, narrow_parts) in parts.iter_mut().zip(&narrow_parts) {
                *part = Cents::new(i64::from(narrow_parts[user]));
            }
        }
    } else {
        for (user, parts) in (0..BATCH_CHUNK).zip(out.iter_mut()) {
            for ((part, column), small) in parts.iter_mut().zip(&columns).zip(&small) {
                *part =
                    Cents::new(whole[user].wrapping_mul(i64::from(column[user])).wrapping_add(i64::from(small[user])));
            }
        }
    }
    all_percentages
}

/// The split for exactly `N` shares.
fn split_few<const N: usize>(total: Cents, shares: &[u32], out: &mut Vec<Cents>) {
    let Ok(shares) = <&[u32; N]>::try_from(shares) else {
        return split_any(total, shares, out);
    };
    // At most five shares of at most u32::MAX: the sum fits in u64.
    let denominator: u64 = shares.iter().map(|&share| u64::from(share)).sum();
    match denominator {
        // Validated shares always sum to 100: dividing by a constant lets the
        // compiler turn every division into a multiplication.
        100 => split_exactly::<N>(total, shares, 100, |value| value / 100, out),
        1..=MAX_EXACT_DENOMINATOR => split_exactly::<N>(total, shares, denominator, |value| value / denominator, out),
        _ => split_any(total, shares, out),
    }
}

/// The largest sum of shares [`split_exactly`] takes: its products stay below
/// the square of it, which must fit in u64.
const MAX_EXACT_DENOMINATOR: u64 = u32::MAX as u64;

/// The split for `N` shares summing to `denominator` (1..=u32::MAX), where
/// `divide` divides by `denominator`, in u64 arithmetic and without branches
/// that depend on the amounts.
#[inline(always)]
fn split_exactly<const N: usize>(
    total: Cents,
    shares: &[u32; N],
    denominator: u64,
    divide: impl Fn(u64) -> u64,
    out: &mut Vec<Cents>,
) {
    let negative = total.get() < 0;
    let magnitude = total.get().unsigned_abs();
    // With magnitude = whole × denominator + rest, each exact part is
    // whole × share + rest × share / denominator. Nothing overflows: whole ×
    // share is at most the magnitude, and rest × share < denominator² ≤ 2^64.
    let whole = divide(magnitude);
    let rest = magnitude - whole * denominator;

    let mut parts = [0_u64; N];
    let mut remainders = [0_u64; N];
    // What the floors leave of `rest` is the number of cents left over, fewer
    // than the parts: each part leaves less than one cent behind.
    let mut leftover = rest;
    for (index, &share) in shares.iter().enumerate() {
        let scaled = rest * u64::from(share);
        let fraction = divide(scaled);
        remainders[index] = scaled - fraction * denominator;
        parts[index] = whole * u64::from(share) + fraction;
        leftover -= fraction;
    }

    // Part i gets one of the leftover cents when fewer than `leftover` parts
    // come before it in the order (largest remainder, then earliest index):
    // counting them is the sort's answer without sorting.
    for index in 0..N {
        let mine = remainders[index];
        let mut ahead = 0_u64;
        for (other, &theirs) in remainders.iter().enumerate() {
            // Bitwise, not short-circuit, so that no branch depends on the amounts.
            ahead += u64::from((theirs > mine) | ((theirs == mine) & (other < index)));
        }
        parts[index] += u64::from(ahead < leftover);
    }

    out.extend(parts.map(|part| signed(part, negative)));
}

/// The split for any number of shares, of any size: u128 arithmetic and a sort.
fn split_any(total: Cents, shares: &[u32], out: &mut Vec<Cents>) {
    let denominator: u128 = shares.iter().map(|&share| u128::from(share)).sum();
    if denominator == 0 {
        out.extend((0..shares.len()).map(|index| if index == 0 { total } else { Cents::ZERO }));
        return;
    }
    let negative = total.get() < 0;
    let magnitude = u128::from(total.get().unsigned_abs());
    let mut remainders = Vec::with_capacity(shares.len());
    let mut leftover = magnitude;
    for (index, &share) in shares.iter().enumerate() {
        let scaled = magnitude * u128::from(share);
        let floor = scaled / denominator;
        leftover -= floor;
        remainders.push((scaled % denominator, index));
        // A floor is at most the magnitude, which fits in u64.
        out.push(signed(u64::try_from(floor).unwrap_or(u64::MAX), negative));
    }
    // Largest remainder first; the sort is stable, so ties keep index order.
    remainders.sort_by_key(|&(remainder, _)| std::cmp::Reverse(remainder));
    let step = Cents::new(if negative { -1 } else { 1 });
    for &(_, index) in remainders.iter().take(usize::try_from(leftover).unwrap_or(usize::MAX)) {
        out[index] += step;
    }
}

/// A part with the total's sign. A part is at most the total's magnitude, so
/// it fits once the sign is back (the magnitude of `i64::MIN` included).
fn signed(magnitude: u64, negative: bool) -> Cents {
    Cents::new(if negative { 0_i64.wrapping_sub_unsigned(magnitude) } else { 0_i64.wrapping_add_unsigned(magnitude) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cents(values: &[i64]) -> Vec<Cents> {
        values.iter().copied().map(Cents::new).collect()
    }

    #[test]
    fn split_gives_leftover_cents_to_largest_remainders() {
        // 100 cents at 33/33/34: exact 33, 33, 34 — no leftovers.
        assert_eq!(split_by_shares(Cents::new(100), &[33, 33, 34]), cents(&[33, 33, 34]));
        // 1001 cents at 10/45/45: exact 100.1, 450.45, 450.45 -> floors 100, 450, 450,
        // one cent left, and the 0.45 remainders beat 0.1; the earlier one wins the tie.
        assert_eq!(split_by_shares(Cents::new(1001), &[10, 45, 45]), cents(&[100, 451, 450]));
        // An odd cent at 50/50 goes to the first part.
        assert_eq!(split_by_shares(Cents::new(1), &[50, 50]), cents(&[1, 0]));
        assert_eq!(split_by_shares(Cents::new(3), &[50, 50]), cents(&[2, 1]));
    }

    #[test]
    fn split_breaks_ties_toward_the_earlier_index() {
        assert_eq!(split_by_shares(Cents::new(2), &[34, 33, 33]), cents(&[1, 1, 0]));
        assert_eq!(split_by_shares(Cents::new(1), &[20, 40, 40]), cents(&[0, 1, 0]));
    }

    #[test]
    fn split_of_a_negative_total_mirrors_the_positive_split() {
        assert_eq!(split_by_shares(Cents::new(-1001), &[10, 45, 45]), cents(&[-100, -451, -450]));
    }

    #[test]
    fn split_handles_the_extremes_of_i64() {
        let parts = split_by_shares(Cents::new(i64::MIN), &[100]);
        assert_eq!(parts, cents(&[i64::MIN]));
        let parts = split_by_shares(Cents::new(i64::MAX), &[1, 99]);
        let sum: i128 = parts.iter().map(|part| i128::from(part.get())).sum();
        assert_eq!(sum, i128::from(i64::MAX));
    }

    #[test]
    fn split_with_all_zero_shares_keeps_the_money_in_the_first_part() {
        assert_eq!(split_by_shares(Cents::new(500), &[0, 0]), cents(&[500, 0]));
        assert_eq!(split_by_shares(Cents::new(500), &[]), Vec::<Cents>::new());
    }

    #[test]
    fn split_with_shares_not_summing_to_100_is_proportional_to_their_sum() {
        assert_eq!(split_by_shares(Cents::new(300), &[1, 2]), cents(&[100, 200]));
    }

    #[test]
    fn split_into_replaces_what_the_buffer_held() {
        let mut buffer = cents(&[7, 7, 7, 7, 7, 7, 7]);
        split_into(Cents::new(1001), &[10, 45, 45], &mut buffer);
        assert_eq!(buffer, cents(&[100, 451, 450]));
        // Six parts take the general path; the answer follows the same rule.
        split_into(Cents::new(5), &[10, 10, 20, 20, 20, 20], &mut buffer);
        // 0.5, 0.5, 1, 1, 1, 1: the one leftover cent goes to the first half-cent.
        assert_eq!(buffer, cents(&[1, 0, 1, 1, 1, 1]));
        split_into(Cents::new(5), &[], &mut buffer);
        assert!(buffer.is_empty());
    }

    #[test]
    fn split_batch_gives_each_user_their_split() {
        let totals = cents(&[1001, -1001, 2, 0, i64::MIN, i64::MAX]);
        let shares = [[10, 45, 45], [10, 45, 45], [34, 33, 33], [0, 0, 100], [0, 100, 0], [1, 1, 98]];
        let mut out = [[Cents::ZERO; 3]; 6];
        split_batch(&totals, &shares, &mut out);
        for ((&total, shares), parts) in totals.iter().zip(&shares).zip(&out) {
            assert_eq!(parts.to_vec(), split_by_shares(total, shares), "{total} by {shares:?}");
        }
        assert_eq!(out[0], [Cents::new(100), Cents::new(451), Cents::new(450)]);
        // At and just past the ends of i32, alone (the narrow path) and beside a larger total.
        let edges = [i64::from(i32::MIN), i64::from(i32::MAX), i64::from(i32::MIN) - 1, i64::from(i32::MAX) + 1];
        for total in edges {
            for totals in [cents(&[total]), cents(&[total, i64::MAX])] {
                let shares = vec![[1, 33, 66]; totals.len()];
                let mut out = vec![[Cents::ZERO; 3]; totals.len()];
                split_batch(&totals, &shares, &mut out);
                for ((&total, shares), parts) in totals.iter().zip(&shares).zip(&out) {
                    assert_eq!(parts.to_vec(), split_by_shares(total, shares), "{total} by {shares:?}");
                }
            }
        }
    }

    #[test]
    fn split_batch_splits_shares_that_are_not_percentages_like_split_by_shares() {
        let totals = cents(&[300, 500, 1001, 7]);
        let shares = [[1, 2], [0, 0], [10, 90], [u32::MAX, 101]];
        let mut out = [[Cents::new(7); 2]; 4];
        split_batch(&totals, &shares, &mut out);
        for ((&total, shares), parts) in totals.iter().zip(&shares).zip(&out) {
            assert_eq!(parts.to_vec(), split_by_shares(total, shares), "{total} by {shares:?}");
        }
        let mut none: [[Cents; 0]; 2] = [[], []];
        split_batch(&cents(&[5, 6]), &[[], []], &mut none);
    }

    #[test]
    #[should_panic(expected = "split_batch")]
    fn split_batch_refuses_columns_of_different_lengths() {
        split_batch(&cents(&[1, 2]), &[[100]], &mut [[Cents::ZERO]]);
    }

    #[test]
    fn validate_accepts_shares_summing_to_100() {
        assert_eq!(validate_shares(&[100]), Ok(()));
        assert_eq!(validate_shares(&[0, 40, 60]), Ok(()));
    }

    #[test]
    fn validate_rejects_out_of_range_shares() {
        assert_eq!(validate_shares(&[-10, 110]), Err(ShareError::OutOfRange));
        assert_eq!(validate_shares(&[101]), Err(ShareError::OutOfRange));
        assert_eq!(validate_shares(&[i64::MAX]), Err(ShareError::OutOfRange));
    }

    #[test]
    fn validate_rejects_a_sum_other_than_100() {
        assert_eq!(validate_shares(&[]), Err(ShareError::SumNot100));
        assert_eq!(validate_shares(&[50, 49]), Err(ShareError::SumNot100));
        assert_eq!(validate_shares(&[60, 60]), Err(ShareError::SumNot100));
    }

    #[test]
    fn share_new_accepts_only_0_to_100() {
        assert_eq!(Share::new(0).map(Share::get), Ok(0));
        assert_eq!(Share::new(100).map(Share::get), Ok(100));
        assert_eq!(Share::new(101), Err(ShareError::OutOfRange));
        assert_eq!(Share::new(-1), Err(ShareError::OutOfRange));
    }
}
