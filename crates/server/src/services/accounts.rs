//! Accounts, debt shares and transactions of a user.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use donkies_domain::{Cents, carve_share, split_by_shares, validate_shares};
use donkies_store::accounts::{self, Account};
use donkies_store::members::Member;
use donkies_store::transactions::{self, Transaction};
use donkies_store::{members, now};

use super::{ServiceError, ServiceResult, Services};

/// A page of a user's transactions and how many there are in all.
pub struct TransactionPage {
    pub rows: Vec<Transaction>,
    pub count: usize,
}

impl Services {
    pub async fn accounts(&self, user_id: &str) -> ServiceResult<Vec<Account>> {
        Ok(accounts::list_for_user(&self.db, user_id).await?)
    }

    pub async fn account(&self, user_id: &str, id: &str) -> ServiceResult<Account> {
        accounts::get(&self.db, user_id, id).await?.ok_or(ServiceError::NotFound)
    }

    /// The members of `list`, each read once.
    pub async fn members_of(&self, list: &[Account]) -> ServiceResult<HashMap<String, Member>> {
        let mut out: HashMap<String, Member> = HashMap::new();
        for a in list {
            if !out.contains_key(&a.member_id) {
                let m = members::get(&self.db, &a.member_id).await?.ok_or(ServiceError::NotFound)?;
                out.insert(a.member_id.clone(), m);
            }
        }
        Ok(out)
    }

    /// The sum of the balances of the user's active debt accounts.
    pub async fn total_debt(&self, user_id: &str) -> ServiceResult<Cents> {
        Ok(Cents::new(accounts::total_debt(&self.db, user_id).await?))
    }

    /// Remove an account from the user's view; the debt shares are rebalanced.
    pub async fn hide_account(&self, user_id: &str, id: &str) -> ServiceResult<()> {
        if !accounts::hide(&self.db, user_id, id, now()).await? {
            return Err(ServiceError::NotFound);
        }
        self.rebalance_debt_shares(user_id).await
    }

    /// Switch an account on or off; each institution keeps at least one active account.
    pub async fn set_account_active(&self, user_id: &str, id: &str, active: bool) -> ServiceResult<()> {
        let account = self.account(user_id, id).await?;
        let mut work = self.begin().await?;
        accounts::set_active(&mut work, user_id, &account.id, active, now()).await?;
        if !active && accounts::count_active_in_member(&mut work, &account.member_id).await? == 0 {
            return Err(ServiceError::invalid("At least one account at each institution must stay active."));
        }
        if !active && account.transfer_share > 0 {
            accounts::set_shares(&mut work, user_id, &[], now()).await?;
        }
        work.commit().await?;
        if !active && account.transfer_share > 0 {
            // Give the share back to the remaining debt accounts.
            self.rebalance_debt_shares(user_id).await?;
        }
        Ok(())
    }

    /// Record the account's number once (stored encrypted, shown as its last four digits).
    pub async fn set_account_number(&self, user_id: &str, id: &str, digits: &str) -> ServiceResult<()> {
        let account = self.account(user_id, id).await?;
        let sealed = self.sealer.seal(digits);
        let last4 = &digits[digits.len().saturating_sub(4)..];
        if !accounts::set_account_number(&self.db, user_id, &account.id, &sealed, last4, now()).await? {
            return Err(ServiceError::invalid("The account number is already set."));
        }
        Ok(())
    }

    /// The user's active debt accounts, oldest first.
    pub async fn active_debts(&self, user_id: &str) -> ServiceResult<Vec<Account>> {
        Ok(self.accounts(user_id).await?.into_iter().filter(|a| a.type_ds == "debt" && a.is_active).collect())
    }

    /// Set every active debt account's share (by account id); they must sum to 100.
    pub async fn edit_shares(&self, user_id: &str, shares: BTreeMap<String, i64>) -> ServiceResult<Vec<(String, i64)>> {
        let debts = self.active_debts(user_id).await?;
        let expected: BTreeSet<&str> = debts.iter().map(|a| a.id.as_str()).collect();
        let given: BTreeSet<&str> = shares.keys().map(String::as_str).collect();
        if expected != given {
            return Err(ServiceError::invalid("Give a share for exactly each of your active debt accounts."));
        }
        let values: Vec<i64> = shares.values().copied().collect();
        validate_shares(&values).map_err(|e| ServiceError::invalid(e.to_string()))?;
        let pairs: Vec<(String, i64)> = shares.into_iter().collect();
        let mut work = self.begin().await?;
        accounts::set_shares(&mut work, user_id, &pairs, now()).await?;
        work.commit().await?;
        Ok(pairs)
    }

    /// Give one debt account `share` percent; the others are rescaled so the total stays 100.
    pub async fn link_debt(&self, user_id: &str, account_id: &str, share: u32) -> ServiceResult<()> {
        let debts = self.active_debts(user_id).await?;
        let Some(index) = debts.iter().position(|a| a.id == account_id) else {
            return Err(ServiceError::field("account", "Choose one of your active debt accounts."));
        };
        let current: Vec<u32> = debts.iter().map(|a| a.transfer_share.clamp(0, 100) as u32).collect();
        let carved = carve_share(&current, index, share);
        let pairs: Vec<(String, i64)> =
            debts.iter().map(|a| a.id.clone()).zip(carved.into_iter().map(i64::from)).collect();
        let mut work = self.begin().await?;
        accounts::set_shares(&mut work, user_id, &pairs, now()).await?;
        work.commit().await?;
        Ok(())
    }

    /// Keep the active debt accounts' shares summing to 100: proportional to what they have,
    /// or all to the first debt account when none has any.
    pub async fn rebalance_debt_shares(&self, user_id: &str) -> ServiceResult<()> {
        let debts = self.active_debts(user_id).await?;
        let shares: Vec<u32> = debts.iter().map(|a| a.transfer_share.clamp(0, 100) as u32).collect();
        if debts.is_empty() || shares.iter().sum::<u32>() == 100 {
            return Ok(());
        }
        let mut work = self.begin().await?;
        if shares.iter().all(|s| *s == 0) {
            accounts::ensure_debt_share(&mut work, user_id).await?;
        } else {
            let new = split_by_shares(Cents::new(100), &shares).into_iter().map(Cents::get);
            let pairs: Vec<(String, i64)> = debts.iter().map(|a| a.id.clone()).zip(new).collect();
            accounts::set_shares(&mut work, user_id, &pairs, now()).await?;
        }
        work.commit().await?;
        Ok(())
    }

    /// The user's visible transactions, newest first, optionally of one account; a page of
    /// them when `limit` is given.
    pub async fn transactions(
        &self,
        user_id: &str,
        account_id: Option<&str>,
        limit: Option<usize>,
        offset: usize,
    ) -> ServiceResult<TransactionPage> {
        let rows =
            transactions::list_for_user(&self.db, user_id, account_id, limit.map(|l| l as i64), offset as i64).await?;
        let count = match limit {
            Some(_) => transactions::count_visible(&self.db, user_id, account_id).await? as usize,
            None => rows.len(),
        };
        Ok(TransactionPage { rows, count })
    }
}
