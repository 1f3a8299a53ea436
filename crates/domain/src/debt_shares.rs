//! The shares of a user's active debt accounts, and the rules that keep them summing to 100.

use std::collections::BTreeMap;

use crate::money::Cents;
use crate::share::{Share, ShareError, split_by_shares};

/// The active debt accounts of one user, in their order (oldest first), each with its share of
/// the payouts. Built from what is stored, which may not sum to 100 (an account just left or
/// arrived); [`DebtShares::rebalanced`], [`DebtShares::carve`] and [`DebtShares::edit`] return
/// shares that do (or no accounts at all).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DebtShares(Vec<(i64, Share)>);

/// Why a change of shares is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DebtSharesError {
    /// A requested share is not an integer from 0 to 100.
    #[error("The share of \"id{account_id}\" must be an integer from 0 to 100.")]
    OutOfRange { account_id: i64 },
    /// The request does not name exactly the active debt accounts.
    #[error("Give a share for exactly each of your active debt accounts.")]
    NotTheActiveDebtAccounts,
    /// The requested shares do not add up to 100.
    #[error("{}", ShareError::SumNot100)]
    SumNot100,
    /// The account is not one of the active debt accounts.
    #[error("Choose one of your active debt accounts.")]
    UnknownAccount { account_id: i64 },
}

impl DebtShares {
    /// The accounts in order with their current shares; a repeated account id keeps its first place.
    pub fn new(accounts: impl IntoIterator<Item = (i64, Share)>) -> DebtShares {
        let mut list: Vec<(i64, Share)> = Vec::new();
        for (id, share) in accounts {
            if !list.iter().any(|(seen, _)| *seen == id) {
                list.push((id, share));
            }
        }
        DebtShares(list)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Account ids and shares, in order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, Share)> + '_ {
        self.0.iter().copied()
    }

    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().map(|(id, _)| *id)
    }

    pub fn get(&self, account_id: i64) -> Option<Share> {
        self.0.iter().find(|(id, _)| *id == account_id).map(|(_, share)| *share)
    }

    /// The shares by account id.
    pub fn to_map(&self) -> BTreeMap<i64, Share> {
        self.0.iter().copied().collect()
    }

    /// The sum of the shares.
    pub fn total(&self) -> u32 {
        self.0.iter().map(|(_, share)| share.get()).sum()
    }

    /// Whether the shares can divide a payout: they sum to 100, or there are no accounts.
    pub fn is_balanced(&self) -> bool {
        self.is_empty() || self.total() == Share::MAX
    }

    /// The shares an `edit_share` request asks for (account id → integer percent), if they are
    /// valid: every share from 0 to 100, exactly this set of accounts, summing to 100.
    pub fn edit(&self, requested: &BTreeMap<i64, i64>) -> Result<DebtShares, DebtSharesError> {
        let mut shares = BTreeMap::new();
        for (&account_id, &percent) in requested {
            let share = Share::new(percent).map_err(|_| DebtSharesError::OutOfRange { account_id })?;
            shares.insert(account_id, share);
        }
        if shares.len() != self.len() || !self.ids().all(|id| shares.contains_key(&id)) {
            return Err(DebtSharesError::NotTheActiveDebtAccounts);
        }
        let edited = DebtShares(self.ids().map(|id| (id, shares[&id])).collect());
        if edited.total() == Share::MAX { Ok(edited) } else { Err(DebtSharesError::SumNot100) }
    }

    /// Give `account_id` the share `share` and rescale the others in proportion to their
    /// current shares (equally when they have none), so the total is exactly 100. A single
    /// account gets 100 whatever was asked.
    pub fn carve(&self, account_id: i64, share: Share) -> Result<DebtShares, DebtSharesError> {
        if self.get(account_id).is_none() {
            return Err(DebtSharesError::UnknownAccount { account_id });
        }
        if self.len() == 1 {
            return Ok(DebtShares(vec![(account_id, Share::FULL)]));
        }
        let others: Vec<u32> = self.iter().filter(|(id, _)| *id != account_id).map(|(_, s)| s.get()).collect();
        let weights = if others.iter().all(|s| *s == 0) { vec![1; others.len()] } else { others };
        let mut rest = split_percent(Share::MAX - share.get(), &weights).into_iter();
        let carved = self.ids().map(|id| (id, if id == account_id { share } else { rest.next().unwrap_or_default() }));
        Ok(DebtShares(carved.collect()))
    }

    /// Shares that sum to 100 again after an account left or arrived: unchanged when they
    /// already do; otherwise proportional to what the accounts have, or all to the first account
    /// when none has any. No accounts stay no accounts.
    pub fn rebalanced(&self) -> DebtShares {
        if self.is_balanced() {
            return self.clone();
        }
        // split_by_shares gives everything to the first part when all weights are zero.
        let weights: Vec<u32> = self.iter().map(|(_, share)| share.get()).collect();
        DebtShares(self.ids().zip(split_percent(Share::MAX, &weights)).collect())
    }
}

impl FromIterator<(i64, Share)> for DebtShares {
    fn from_iter<I: IntoIterator<Item = (i64, Share)>>(accounts: I) -> Self {
        DebtShares::new(accounts)
    }
}

/// `percent` split by `weights`, each part a whole percent, the parts summing to `percent`.
fn split_percent(percent: u32, weights: &[u32]) -> Vec<Share> {
    split_by_shares(Cents::new(i64::from(percent)), weights)
        .into_iter()
        .map(|part| Share::new(part.get()).unwrap_or_default())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(list: &[(i64, i64)]) -> DebtShares {
        list.iter().map(|&(id, s)| (id, Share::new(s).unwrap())).collect()
    }

    #[test]
    fn carving_keeps_the_total() {
        assert_eq!(shares(&[(1, 100), (2, 0)]).carve(2, Share::new(30).unwrap()), Ok(shares(&[(1, 70), (2, 30)])));
        let three = shares(&[(1, 50), (2, 50), (3, 0)]);
        assert_eq!(three.carve(3, Share::new(40).unwrap()), Ok(shares(&[(1, 30), (2, 30), (3, 40)])));
        assert_eq!(shares(&[(1, 100)]).carve(1, Share::new(30).unwrap()), Ok(shares(&[(1, 100)])));
        let last = shares(&[(1, 0), (2, 0), (3, 100)]);
        assert_eq!(last.carve(3, Share::new(0).unwrap()), Ok(shares(&[(1, 50), (2, 50), (3, 0)])));
        assert_eq!(last.carve(9, Share::new(0).unwrap()), Err(DebtSharesError::UnknownAccount { account_id: 9 }));
    }

    #[test]
    fn rebalancing_after_accounts_come_and_go() {
        assert_eq!(shares(&[(1, 60), (2, 40)]).rebalanced(), shares(&[(1, 60), (2, 40)]), "balanced stays");
        assert_eq!(shares(&[(1, 30), (2, 30)]).rebalanced(), shares(&[(1, 50), (2, 50)]), "one left");
        assert_eq!(shares(&[(1, 100), (2, 0)]).rebalanced(), shares(&[(1, 100), (2, 0)]), "one arrived");
        assert_eq!(shares(&[(1, 0), (2, 0)]).rebalanced(), shares(&[(1, 100), (2, 0)]), "none had any");
        assert_eq!(shares(&[(7, 20)]).rebalanced(), shares(&[(7, 100)]));
        assert!(DebtShares::default().rebalanced().is_empty());
    }

    #[test]
    fn edits_name_exactly_the_accounts_and_sum_to_100() {
        let current = shares(&[(1, 100), (2, 0)]);
        let edit = |list: &[(i64, i64)]| current.edit(&list.iter().copied().collect());
        assert_eq!(edit(&[(2, 40), (1, 60)]), Ok(shares(&[(1, 60), (2, 40)])));
        assert_eq!(edit(&[(1, 100)]), Err(DebtSharesError::NotTheActiveDebtAccounts));
        assert_eq!(edit(&[(1, 50), (2, 25), (3, 25)]), Err(DebtSharesError::NotTheActiveDebtAccounts));
        assert_eq!(edit(&[(1, 50), (2, 49)]), Err(DebtSharesError::SumNot100));
        assert_eq!(edit(&[(1, 101), (2, -1)]), Err(DebtSharesError::OutOfRange { account_id: 1 }));
        assert_eq!(
            DebtSharesError::OutOfRange { account_id: 5 }.to_string(),
            "The share of \"id5\" must be an integer from 0 to 100."
        );
    }
}
