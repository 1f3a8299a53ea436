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
    let denominator: u128 = shares.iter().map(|&share| u128::from(share)).sum();
    if denominator == 0 {
        return shares.iter().enumerate().map(|(index, _)| if index == 0 { total } else { Cents::ZERO }).collect();
    }

    let magnitude = u128::from(total.get().unsigned_abs());
    let mut floors = Vec::with_capacity(shares.len());
    let mut remainders = Vec::with_capacity(shares.len());
    for &share in shares {
        let scaled = magnitude * u128::from(share);
        floors.push(scaled / denominator);
        remainders.push((scaled % denominator, floors.len() - 1));
    }

    // Fewer leftover cents than parts: each fractional part is below one cent.
    let handed_out: u128 = floors.iter().sum();
    let leftover = magnitude - handed_out;
    // Largest remainder first; the sort is stable, so ties keep index order.
    remainders.sort_by_key(|&(remainder, _)| std::cmp::Reverse(remainder));
    for &(_, index) in remainders.iter().take(usize::try_from(leftover).unwrap_or(usize::MAX)) {
        floors[index] += 1;
    }

    let negative = total.get() < 0;
    floors.into_iter().map(|part| Cents::new(signed_cents(part, negative))).collect()
}

/// A part never exceeds the magnitude of the total, so it always fits.
fn signed_cents(part: u128, negative: bool) -> i64 {
    let part = i128::try_from(part).unwrap_or(i128::MAX);
    let signed = if negative { -part } else { part };
    i64::try_from(signed).unwrap_or(if negative { i64::MIN } else { i64::MAX })
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
