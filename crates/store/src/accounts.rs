//! Accounts at linked institutions, with what the user set on them (active, shares, number).

use chrono::{DateTime, NaiveDate, Utc};
use donkies_domain::{AccountFamily, Cents, DebtShares, Share};

use crate::column::Col;
use crate::{Conn, Db, StoreError, Tx, on_db, on_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub id: i64,
    pub user_id: i64,
    pub member_id: i64,
    pub guid: String,
    pub uid: String,
    pub name: String,
    pub kind: String,
    #[sqlx(try_from = "Col<AccountFamily>")]
    pub type_ds: AccountFamily,
    pub subtype: Option<String>,
    #[sqlx(try_from = "Col<Option<Cents>>")]
    pub balance: Option<Cents>,
    #[sqlx(try_from = "Col<Option<Cents>>")]
    pub available_balance: Option<Cents>,
    #[sqlx(try_from = "Col<Option<Cents>>")]
    pub available_credit: Option<Cents>,
    #[sqlx(try_from = "Col<Option<Cents>>")]
    pub credit_limit: Option<Cents>,
    pub apr: Option<f64>,
    pub apy: Option<f64>,
    pub interest_rate: Option<f64>,
    #[sqlx(try_from = "Col<Option<Cents>>")]
    pub minimum_balance: Option<Cents>,
    #[sqlx(try_from = "Col<Option<Cents>>")]
    pub minimum_payment: Option<Cents>,
    #[sqlx(try_from = "Col<Option<Cents>>")]
    pub original_balance: Option<Cents>,
    #[sqlx(try_from = "Col<Option<Cents>>")]
    pub payoff_balance: Option<Cents>,
    #[sqlx(try_from = "Col<Option<Cents>>")]
    pub last_payment: Option<Cents>,
    pub last_payment_at: Option<DateTime<Utc>>,
    pub payment_due_at: Option<DateTime<Utc>>,
    pub day_payment_is_due: Option<i64>,
    pub matures_on: Option<NaiveDate>,
    pub started_on: Option<NaiveDate>,
    #[sqlx(try_from = "Col<Option<Cents>>")]
    pub total_account_value: Option<Cents>,
    pub is_closed: bool,
    pub is_active: bool,
    #[sqlx(try_from = "Col<Share>")]
    pub transfer_share: Share,
    pub is_funding_source_for_transfer: bool,
    pub is_dwolla_created: bool,
    pub account_number_last4: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, user_id, member_id, guid, uid, name, kind, type_ds, subtype, balance, available_balance, \
    available_credit, credit_limit, apr, apy, interest_rate, minimum_balance, minimum_payment, original_balance, \
    payoff_balance, last_payment, last_payment_at, payment_due_at, day_payment_is_due, matures_on, started_on, \
    total_account_value, is_closed, is_active, transfer_share, is_funding_source_for_transfer, is_dwolla_created, \
    account_number_last4, created_at, updated_at";

/// What the aggregator says about an account.
#[derive(Debug, Clone)]
pub struct AccountData {
    pub guid: String,
    pub name: String,
    pub kind: String,
    pub type_ds: AccountFamily,
    pub subtype: Option<String>,
    pub balance: Option<Cents>,
    pub available_balance: Option<Cents>,
    pub available_credit: Option<Cents>,
    pub credit_limit: Option<Cents>,
    pub apr: Option<f64>,
    pub apy: Option<f64>,
    pub interest_rate: Option<f64>,
    pub minimum_balance: Option<Cents>,
    pub minimum_payment: Option<Cents>,
    pub original_balance: Option<Cents>,
    pub payoff_balance: Option<Cents>,
    pub last_payment: Option<Cents>,
    pub last_payment_at: Option<DateTime<Utc>>,
    pub payment_due_at: Option<DateTime<Utc>>,
    pub day_payment_is_due: Option<i64>,
    pub matures_on: Option<NaiveDate>,
    pub started_on: Option<NaiveDate>,
    pub total_account_value: Option<Cents>,
    pub is_closed: bool,
    /// A keyed digest of the account number, where the aggregator gives one.
    pub number_digest: Option<String>,
}

/// Insert or refresh accounts by (user, aggregator guid). What the user set — active flag,
/// share, account number — is never touched by a refresh. The balances are stamped with `now`
/// (`balance_at`), which tells the overdraft guard how fresh they are.
pub async fn upsert(
    tx: &mut Tx,
    user_id: i64,
    member_id: i64,
    accounts: &[AccountData],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for a in accounts {
        on_tx!(tx, conn => sqlx::query(
            "INSERT INTO accounts (id, user_id, member_id, guid, uid, name, kind, type_ds, subtype, balance, \
               available_balance, available_credit, credit_limit, apr, apy, interest_rate, minimum_balance, \
               minimum_payment, original_balance, payoff_balance, last_payment, last_payment_at, payment_due_at, \
               day_payment_is_due, matures_on, started_on, total_account_value, is_closed, created_at, updated_at, \
               balance_at, number_digest) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
               $21, $22, $23, $24, $25, $26, $27, $28, $29, $29, $29, $30) \
             ON CONFLICT (user_id, guid) DO UPDATE SET \
               is_deleted = CASE WHEN accounts.member_id = excluded.member_id THEN accounts.is_deleted ELSE FALSE END, \
               member_id = excluded.member_id, name = excluded.name, kind = excluded.kind, \
               type_ds = excluded.type_ds, subtype = excluded.subtype, balance = excluded.balance, \
               available_balance = excluded.available_balance, available_credit = excluded.available_credit, \
               credit_limit = excluded.credit_limit, apr = excluded.apr, apy = excluded.apy, \
               interest_rate = excluded.interest_rate, minimum_balance = excluded.minimum_balance, \
               minimum_payment = excluded.minimum_payment, original_balance = excluded.original_balance, \
               payoff_balance = excluded.payoff_balance, last_payment = excluded.last_payment, \
               last_payment_at = excluded.last_payment_at, payment_due_at = excluded.payment_due_at, \
               day_payment_is_due = excluded.day_payment_is_due, matures_on = excluded.matures_on, \
               started_on = excluded.started_on, total_account_value = excluded.total_account_value, \
               is_closed = excluded.is_closed, updated_at = excluded.updated_at, balance_at = excluded.balance_at, \
               number_digest = COALESCE(excluded.number_digest, accounts.number_digest)",
        )
        .bind(crate::new_id())
        .bind(user_id)
        .bind(member_id)
        .bind(&a.guid)
        .bind(crate::new_hex_id())
        .bind(&a.name)
        .bind(&a.kind)
        .bind(a.type_ds.as_str())
        .bind(&a.subtype)
        .bind(a.balance.map(Cents::get))
        .bind(a.available_balance.map(Cents::get))
        .bind(a.available_credit.map(Cents::get))
        .bind(a.credit_limit.map(Cents::get))
        .bind(a.apr)
        .bind(a.apy)
        .bind(a.interest_rate)
        .bind(a.minimum_balance.map(Cents::get))
        .bind(a.minimum_payment.map(Cents::get))
        .bind(a.original_balance.map(Cents::get))
        .bind(a.payoff_balance.map(Cents::get))
        .bind(a.last_payment.map(Cents::get))
        .bind(a.last_payment_at)
        .bind(a.payment_due_at)
        .bind(a.day_payment_is_due)
        .bind(a.matures_on)
        .bind(a.started_on)
        .bind(a.total_account_value.map(Cents::get))
        .bind(a.is_closed)
        .bind(now)
        .bind(a.number_digest.as_deref())
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    }
    crate::transactions::list_changed(tx, user_id).await
}

/// Give the user's first debt account the whole share when no active debt account has any.
pub async fn ensure_debt_share(tx: &mut Tx, user_id: i64) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "UPDATE accounts SET transfer_share = 100 WHERE id = ( \
           SELECT id FROM accounts WHERE user_id = $1 AND type_ds = 'debt' AND is_active = TRUE AND is_deleted = FALSE \
           ORDER BY created_at, id LIMIT 1) \
         AND NOT EXISTS (SELECT 1 FROM accounts WHERE user_id = $1 AND type_ds = 'debt' AND is_active = TRUE \
           AND is_deleted = FALSE AND transfer_share > 0)",
    )
    .bind(user_id)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The user's active debt accounts, oldest first, with their shares as stored.
pub async fn debt_shares(db: impl Into<Conn<'_>>, user_id: i64) -> Result<DebtShares, StoreError> {
    let rows = crate::on_conn!(db.into(), pool => sqlx::query_as::<_, (i64, Col<Share>)>(
        "SELECT id, transfer_share FROM accounts \
         WHERE user_id = $1 AND type_ds = 'debt' AND is_active = TRUE AND is_deleted = FALSE ORDER BY created_at, id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await)?;
    Ok(rows.into_iter().map(|(id, share)| (id, share.0)).collect())
}

/// The user's visible accounts, oldest first.
pub async fn list_for_user(db: &Db, user_id: i64) -> Result<Vec<Account>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM accounts WHERE user_id = $1 AND is_deleted = FALSE ORDER BY created_at, id");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Account>(&sql).bind(user_id).fetch_all(pool).await)?)
}

/// Every account's name by id, hidden ones included.
pub async fn names_of_user(db: &Db, user_id: i64) -> Result<Vec<(i64, String)>, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, (i64, String)>("SELECT id, name FROM accounts WHERE user_id = $1")
        .bind(user_id)
        .fetch_all(pool)
        .await)?)
}

/// Recognise accounts of a re-linked bank as the user's earlier accounts there: an account the
/// user has no row for under its guid takes over the row of an account of a deleted member at
/// the same institution with the same type and name (and the same account number, where both
/// have one), so that it keeps its id, debt share, funding source and round-up source. The ids
/// re-attached.
pub async fn reattach(
    tx: &mut Tx,
    user_id: i64,
    institution_id: i64,
    accounts: &[AccountData],
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    let known: std::collections::HashSet<String> =
        ids_by_guid(tx, user_id).await?.into_iter().map(|(g, _)| g).collect();
    let mut reattached = Vec::new();
    for a in accounts.iter().filter(|a| !known.contains(&a.guid)) {
        let earlier = on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
            "SELECT a.id FROM accounts a JOIN members m ON m.id = a.member_id \
             WHERE a.user_id = $1 AND m.institution_id = $2 AND m.is_deleted = TRUE AND a.is_deleted = TRUE \
               AND a.kind = $3 AND a.name = $4 \
               AND (a.number_digest IS NULL OR $5 IS NULL OR a.number_digest = $5) \
             ORDER BY (a.number_digest = $5) DESC, a.updated_at DESC, a.id LIMIT 1",
        )
        .bind(user_id)
        .bind(institution_id)
        .bind(&a.kind)
        .bind(&a.name)
        .bind(a.number_digest.as_deref())
        .fetch_optional(conn)
        .await)?;
        let Some(id) = earlier.filter(|id| !reattached.contains(id)) else { continue };
        on_tx!(tx, conn => sqlx::query(
            "UPDATE accounts SET guid = $2, transfer_share = COALESCE(share_when_unlinked, 0), \
               share_when_unlinked = NULL, updated_at = $3 WHERE id = $1",
        )
            .bind(id)
            .bind(&a.guid)
            .bind(now)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
        reattached.push(id);
    }
    Ok(reattached)
}

/// The ids of the member's accounts.
pub async fn ids_of_member(tx: &mut Tx, member_id: i64) -> Result<Vec<i64>, StoreError> {
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>("SELECT id FROM accounts WHERE member_id = $1")
        .bind(member_id)
        .fetch_all(conn)
        .await)?)
}

/// The account's guid → id map of a user (including hidden ones), for attaching transactions.
pub async fn ids_by_guid(tx: &mut Tx, user_id: i64) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(on_tx!(tx, conn => sqlx::query_as::<_, (String, i64)>("SELECT guid, id FROM accounts WHERE user_id = $1")
        .bind(user_id)
        .fetch_all(conn)
        .await)?)
}

pub async fn get(db: impl Into<Conn<'_>>, user_id: i64, id: i64) -> Result<Option<Account>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM accounts WHERE user_id = $1 AND id = $2 AND is_deleted = FALSE");
    Ok(
        crate::on_conn!(db.into(), pool => sqlx::query_as::<_, Account>(&sql).bind(user_id).bind(id).fetch_optional(pool).await)?,
    )
}

/// The account's last synced available balance and when the sync stored it; the default
/// (nothing known) for an account that is gone.
pub async fn known_balance(
    db: impl Into<Conn<'_>>,
    user_id: i64,
    id: i64,
) -> Result<donkies_domain::KnownBalance, StoreError> {
    let row = crate::on_conn!(db.into(), pool => sqlx::query_as::<_, (Option<i64>, Option<DateTime<Utc>>)>(
        "SELECT available_balance, balance_at FROM accounts WHERE user_id = $1 AND id = $2 AND is_deleted = FALSE",
    )
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await)?;
    Ok(row.map_or_else(Default::default, |(available, seen_at)| donkies_domain::KnownBalance {
        available: available.map(Cents::new),
        seen_at,
    }))
}

/// Hide one account (the user removed it); a refresh keeps it hidden.
pub async fn hide(tx: &mut Tx, user_id: i64, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let n = on_tx!(tx, conn => sqlx::query(
        "UPDATE accounts SET is_deleted = TRUE, transfer_share = 0, updated_at = $3 WHERE user_id = $1 AND id = $2 AND is_deleted = FALSE",
    )
    .bind(user_id)
    .bind(id)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    if n == 1 {
        crate::transactions::list_changed(tx, user_id).await?;
    }
    Ok(n == 1)
}

pub async fn set_active(
    tx: &mut Tx,
    user_id: i64,
    id: i64,
    active: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query("UPDATE accounts SET is_active = $3, updated_at = $4 WHERE user_id = $1 AND id = $2")
        .bind(user_id)
        .bind(id)
        .bind(active)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Active visible accounts of a member.
pub async fn count_active_in_member(tx: &mut Tx, member_id: i64) -> Result<i64, StoreError> {
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM accounts WHERE member_id = $1 AND is_active = TRUE AND is_deleted = FALSE",
    )
    .bind(member_id)
    .fetch_one(conn)
    .await)?)
}

/// Store the (sealed) account number once; false when one is already set.
pub async fn set_account_number(
    tx: &mut Tx,
    user_id: i64,
    id: i64,
    sealed: &str,
    last4: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = on_tx!(tx, conn => sqlx::query(
        "UPDATE accounts SET account_number_encrypted = $3, account_number_last4 = $4, updated_at = $5 \
         WHERE user_id = $1 AND id = $2 AND account_number_encrypted IS NULL",
    )
    .bind(user_id)
    .bind(id)
    .bind(sealed)
    .bind(last4)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

pub async fn sealed_account_number(db: &Db, user_id: i64, id: i64) -> Result<Option<String>, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, Option<String>>(
        "SELECT account_number_encrypted FROM accounts WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await)?
    .flatten())
}

/// Set the shares of the given accounts and zero every other account of the user.
pub async fn set_shares(tx: &mut Tx, user_id: i64, shares: &DebtShares, now: DateTime<Utc>) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query("UPDATE accounts SET transfer_share = 0, updated_at = $2 WHERE user_id = $1 AND transfer_share <> 0")
        .bind(user_id)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    for (id, share) in shares.iter() {
        on_tx!(tx, conn => sqlx::query("UPDATE accounts SET transfer_share = $3, updated_at = $4 WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .bind(i64::from(share.get()))
            .bind(now)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// The sum of the balances of the user's active, visible debt accounts, in cents.
pub async fn total_debt(db: &Db, user_id: i64) -> Result<Cents, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, Option<i64>>(
        "SELECT CAST(SUM(balance) AS BIGINT) FROM accounts \
         WHERE user_id = $1 AND type_ds = 'debt' AND is_active = TRUE AND is_deleted = FALSE",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await)?
    .map_or(Cents::ZERO, Cents::new))
}

/// Make this account the one the user's transfers are funded from, and no other of theirs.
pub async fn set_funding_source_for_transfer(
    tx: &mut Tx,
    user_id: i64,
    account_id: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "UPDATE accounts SET is_funding_source_for_transfer = (id = $2), updated_at = $3 \
         WHERE user_id = $1 AND is_funding_source_for_transfer <> (id = $2)",
    )
    .bind(user_id)
    .bind(account_id)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Whether the account's bank is known to Dwolla as a funding source.
pub async fn set_dwolla_created(
    tx: &mut Tx,
    user_id: i64,
    account_id: i64,
    created: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "UPDATE accounts SET is_dwolla_created = $3, updated_at = $4 WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(account_id)
    .bind(created)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}
