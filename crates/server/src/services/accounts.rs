//! Accounts, debt shares and transactions of a user.

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::sync::Arc;

use donkies_domain::{AccountFamily, Cents, DebtShares, Share};
use donkies_store::accounts::{self, Account};
use donkies_store::members::Member;
use donkies_store::transactions::{self, Transaction};
use donkies_store::{StoreError, members, now};
use futures::stream::BoxStream;

use super::{Change, ServiceError, ServiceResult, Storage, Work};
use crate::crypto::Sealer;

/// A user's transactions as the database yields them, and, for a page, how many there are in all.
pub struct TransactionPage<'a> {
    pub rows: BoxStream<'a, Result<Transaction, StoreError>>,
    pub count: Option<usize>,
}

/// The user's accounts, debt shares and transactions, with what they reach: storage and the
/// sealer for account numbers, never a provider.
#[derive(Clone)]
pub struct AccountsService(Arc<AccountsInner>);

pub struct AccountsInner {
    pub store: Storage,
    pub sealer: Sealer,
}

impl Deref for AccountsService {
    type Target = AccountsInner;
    fn deref(&self) -> &AccountsInner {
        &self.0
    }
}

impl AccountsService {
    pub fn new(store: Storage, sealer: Sealer) -> Self {
        AccountsService(Arc::new(AccountsInner { store, sealer }))
    }

    pub async fn accounts(&self, user_id: i64) -> ServiceResult<Vec<Account>> {
        Ok(accounts::list_for_user(&self.store.db, user_id).await?)
    }

    pub async fn account(&self, user_id: i64, id: i64) -> ServiceResult<Account> {
        accounts::get(&self.store.db, user_id, id).await?.ok_or(ServiceError::NotFound)
    }

    /// The members of `list`, each read once.
    pub async fn members_of(&self, list: &[Account]) -> ServiceResult<HashMap<i64, Member>> {
        let mut out: HashMap<i64, Member> = HashMap::new();
        for a in list {
            if let std::collections::hash_map::Entry::Vacant(slot) = out.entry(a.member_id) {
                slot.insert(members::get(&self.store.db, a.member_id).await?.ok_or(ServiceError::NotFound)?);
            }
        }
        Ok(out)
    }

    /// The sum of the balances of the user's active debt accounts.
    pub async fn total_debt(&self, user_id: i64) -> ServiceResult<Cents> {
        Ok(accounts::total_debt(&self.store.db, user_id).await?)
    }

    /// Remove an account from the user's view; the debt shares are rebalanced.
    pub async fn hide_account(&self, user_id: i64, id: i64) -> ServiceResult<()> {
        let mut work = self.store.begin().await?;
        if !accounts::hide(&mut work, user_id, id, now()).await? {
            return Err(ServiceError::NotFound);
        }
        rebalance_debt_shares(&mut work, user_id).await?;
        work.changed(Change::Transactions(user_id));
        work.commit().await?;
        Ok(())
    }

    /// Switch an account on or off; each institution keeps at least one active account.
    pub async fn set_account_active(&self, user_id: i64, id: i64, active: bool) -> ServiceResult<()> {
        let account = self.account(user_id, id).await?;
        let mut work = self.store.begin().await?;
        accounts::set_active(&mut work, user_id, account.id, active, now()).await?;
        if !active && accounts::count_active_in_member(&mut work, account.member_id).await? == 0 {
            return Err(ServiceError::invalid("At least one account at each institution must stay active."));
        }
        if !active && account.transfer_share > Share::default() {
            accounts::set_shares(&mut work, user_id, &DebtShares::default(), now()).await?;
            // Give the share back to the remaining debt accounts.
            rebalance_debt_shares(&mut work, user_id).await?;
        }
        work.commit().await?;
        Ok(())
    }

    /// Record the account's number once (stored encrypted, shown as its last four digits).
    pub async fn set_account_number(&self, user_id: i64, id: i64, digits: &str) -> ServiceResult<()> {
        let account = self.account(user_id, id).await?;
        let sealed = self.sealer.seal(digits);
        let last4 = &digits[digits.len().saturating_sub(4)..];
        let mut work = self.store.begin().await?;
        if !accounts::set_account_number(&mut work, user_id, account.id, &sealed, last4, now()).await? {
            return Err(ServiceError::invalid("The account number is already set."));
        }
        work.commit().await?;
        Ok(())
    }

    /// The user's active debt accounts, oldest first.
    pub async fn active_debts(&self, user_id: i64) -> ServiceResult<Vec<Account>> {
        let accounts = self.accounts(user_id).await?;
        Ok(accounts.into_iter().filter(|a| a.type_ds == AccountFamily::Debt && a.is_active).collect())
    }

    /// Set every active debt account's share (by account id); they must sum to 100.
    pub async fn edit_shares(&self, user_id: i64, requested: BTreeMap<i64, i64>) -> ServiceResult<DebtShares> {
        let current = accounts::debt_shares(&self.store.db, user_id).await?;
        let shares = current.edit(&requested).map_err(|e| ServiceError::invalid(e.to_string()))?;
        let mut work = self.store.begin().await?;
        accounts::set_shares(&mut work, user_id, &shares, now()).await?;
        work.commit().await?;
        Ok(shares)
    }

    /// Give one debt account `share` percent; the others are rescaled so the total stays 100.
    pub async fn link_debt(&self, user_id: i64, account_id: i64, share: Share) -> ServiceResult<()> {
        let current = accounts::debt_shares(&self.store.db, user_id).await?;
        let shares = current
            .carve(account_id, share)
            .map_err(|_| ServiceError::field("account", "Choose one of your active debt accounts."))?;
        let mut work = self.store.begin().await?;
        accounts::set_shares(&mut work, user_id, &shares, now()).await?;
        work.commit().await?;
        Ok(())
    }

    /// The version of what the user's transaction list shows: it rises with every change to
    /// the user's transactions or their accounts, in whichever process made it.
    pub async fn transaction_list_version(&self, user_id: i64) -> ServiceResult<i64> {
        Ok(transactions::list_version(&self.store.db, user_id).await?)
    }

    /// The user's visible transactions, newest first, optionally of one account; a page of
    /// them (with the count of all) when `limit` is given. Rows stream, so a caller can render
    /// them without holding the list.
    pub async fn transactions(
        &self,
        user_id: i64,
        account_id: Option<i64>,
        limit: Option<usize>,
        offset: usize,
    ) -> ServiceResult<TransactionPage<'_>> {
        let count = match limit {
            Some(_) => Some(transactions::count_visible(&self.store.db, user_id, account_id).await? as usize),
            None => None,
        };
        let rows =
            transactions::stream_for_user(&self.store.db, user_id, account_id, limit.map(|l| l as i64), offset as i64);
        Ok(TransactionPage { rows, count })
    }
}

/// Keep the active debt accounts' shares summing to 100 (see [`DebtShares::rebalanced`]),
/// as part of the change that unbalanced them.
pub(super) async fn rebalance_debt_shares(work: &mut Work, user_id: i64) -> ServiceResult<()> {
    let current = accounts::debt_shares(&mut **work, user_id).await?;
    if current.is_empty() || current.is_balanced() {
        return Ok(());
    }
    accounts::set_shares(work, user_id, &current.rebalanced(), now()).await?;
    Ok(())
}
