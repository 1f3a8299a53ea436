//! The money loop's records: round-ups gathered from purchases, one-time contributions,
//! collections to the Donkies account and the parts they gathered per debit account, payouts and
//! their parts per debt account. The ledger ([`crate::ledger`]) proves the money; these rows say
//! what caused each movement and are what the API shows.
//!
//! Every write takes the caller's [`Tx`], so a service changes these rows, records the ledger
//! movement and queues the transfer in one transaction.

use chrono::{DateTime, Utc};
use donkies_domain::{AccountFamily, Cents, Direction};

use crate::column::{Col, Stored};
use crate::{Conn, Db, StoreError, Tx, on_conn, on_db, on_tx};

// ---------------------------------------------------------------------------------------------
// Serialising one user's money work

/// Hold the user's row until the transaction ends, so two workers (or a worker and an operator
/// command) never collect or pay out for one user at once. SQLite has one writer at a time
/// already.
pub async fn lock_user(tx: &mut Tx, user_id: i64) -> Result<(), StoreError> {
    if let Tx::Postgres(conn) = tx {
        sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE").bind(user_id).fetch_optional(&mut **conn).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Round-ups

/// A purchase that has not been gathered yet.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Purchase {
    pub transaction_id: i64,
    pub account_id: i64,
    #[sqlx(try_from = "Col<Cents>")]
    pub amount: Cents,
    #[sqlx(try_from = "Col<Direction>")]
    pub kind: Direction,
    #[sqlx(try_from = "Col<AccountFamily>")]
    pub family: AccountFamily,
}

/// The user's posted, present transactions on active, visible debit accounts that have no
/// active round-up, oldest first. Only these can still give a round-up: a pending purchase
/// waits until it posts, and a purchase whose round-up was retired (amended, posted again)
/// is rounded up again from its amount now.
pub async fn ungathered_purchases(tx: &mut Tx, user_id: i64) -> Result<Vec<Purchase>, StoreError> {
    Ok(crate::money_batch::ungathered_purchases(tx, &[user_id]).await?.remove(&user_id).unwrap_or_default())
}

/// A round-up to record: the purchase and what it gave (zero when it gave nothing).
#[derive(Debug, Clone)]
pub struct NewRoundUp {
    pub id: i64,
    pub user_id: i64,
    pub account_id: i64,
    pub transaction_id: i64,
    pub amount: Cents,
    /// The purchase amount it was computed from.
    pub purchase_amount: Cents,
}

/// Record gathered round-ups (of one user or many). A purchase already gathered (by a
/// concurrent run) is skipped; the ids of the rows this call inserted.
pub async fn insert_roundups(tx: &mut Tx, rows: &[NewRoundUp], now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
    if let Tx::Postgres(conn) = tx {
        // One statement of arrays, however many rows.
        let column = |f: fn(&NewRoundUp) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
        return Ok(sqlx::query_scalar::<_, i64>(
            "INSERT INTO roundups (id, user_id, account_id, transaction_id, amount, purchase_amount, created_at) \
             SELECT id, user_id, account_id, transaction_id, amount, purchase_amount, $1 \
             FROM UNNEST($2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[]) \
               AS v(id, user_id, account_id, transaction_id, amount, purchase_amount) \
             ON CONFLICT (transaction_id) WHERE retired_at IS NULL DO NOTHING RETURNING id",
        )
        .bind(now)
        .bind(column(|r| r.id))
        .bind(column(|r| r.user_id))
        .bind(column(|r| r.account_id))
        .bind(column(|r| r.transaction_id))
        .bind(column(|r| r.amount.get()))
        .bind(column(|r| r.purchase_amount.get()))
        .fetch_all(&mut **conn)
        .await?);
    }
    let mut inserted = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(150) {
        let mut sql = String::from(
            "INSERT INTO roundups (id, user_id, account_id, transaction_id, amount, purchase_amount, created_at) VALUES ",
        );
        for i in 0..chunk.len() {
            let p = i * 6;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${}, ${}, ${}, ${}, ${}, ${}, $1)", p + 2, p + 3, p + 4, p + 5, p + 6, p + 7));
        }
        sql.push_str(" ON CONFLICT (transaction_id) WHERE retired_at IS NULL DO NOTHING RETURNING id");
        let ids = on_tx!(tx, conn => {
            let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(now);
            for r in chunk {
                q = q
                    .bind(r.id)
                    .bind(r.user_id)
                    .bind(r.account_id)
                    .bind(r.transaction_id)
                    .bind(r.amount.get())
                    .bind(r.purchase_amount.get());
            }
            q.fetch_all(conn).await
        })?;
        inserted.extend(ids);
    }
    Ok(inserted)
}

/// Something waiting in the user's bank to be collected: a round-up or a contribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub kind: WaitingKind,
    pub id: i64,
    /// The debit account a round-up came from; `None` for a contribution.
    pub account_id: Option<i64>,
    pub amount: Cents,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitingKind {
    RoundUp,
    Contribution,
}

/// What waits to be collected for the user, oldest first.
pub async fn waiting(db: impl Into<Conn<'_>>, user_id: i64) -> Result<Vec<Waiting>, StoreError> {
    Ok(crate::money_batch::waiting(db, &[user_id]).await?.remove(&user_id).unwrap_or_default())
}

/// Mark the waiting items as taken by `collection_id`; false (and nothing should be kept) when
/// any of them was taken by someone else first.
pub async fn take_waiting(tx: &mut Tx, collection_id: i64, items: &[Waiting]) -> Result<bool, StoreError> {
    for (table, kind) in [("roundups", WaitingKind::RoundUp), ("contributions", WaitingKind::Contribution)] {
        let ids: Vec<i64> = items.iter().filter(|w| w.kind == kind).map(|w| w.id).collect();
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "UPDATE {table} SET collection_id = $1 WHERE collection_id IS NULL AND id IN ({})",
                placeholders.join(", ")
            );
            let n = on_tx!(tx, conn => {
                let mut q = sqlx::query(&sql).bind(collection_id);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(conn).await.map(|r| r.rows_affected())
            })?;
            if n != chunk.len() as u64 {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Put what `collection_id` took back to waiting, and its corrections back to open (its
/// transfer failed).
pub async fn release_waiting(tx: &mut Tx, collection_id: i64) -> Result<(), StoreError> {
    for table in ["roundups", "contributions", "corrections"] {
        let sql = format!("UPDATE {table} SET collection_id = NULL WHERE collection_id = $1");
        on_tx!(tx, conn => sqlx::query(&sql).bind(collection_id).execute(conn).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Retired round-ups and corrections

/// Why a round-up no longer stands for its purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireReason {
    /// The aggregator no longer returns the purchase.
    Removed,
    /// Its posted amount changed.
    Amended,
    /// It is pending again.
    Pending,
}

impl RetireReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RetireReason::Removed => "removed",
            RetireReason::Amended => "amended",
            RetireReason::Pending => "pending",
        }
    }
}

/// An active round-up whose purchase moved under it.
#[derive(Debug, Clone)]
pub struct StaleRoundUp {
    pub id: i64,
    pub amount: Cents,
    /// The collection that took it; `None` while it waits.
    pub collection_id: Option<i64>,
    pub reason: RetireReason,
}

/// The user's active round-ups whose purchase was removed, went back to pending, or posts at
/// another amount than the one the round-up was computed from.
pub async fn stale_roundups(tx: &mut Tx, user_id: i64) -> Result<Vec<StaleRoundUp>, StoreError> {
    Ok(crate::money_batch::stale_roundups(tx, &[user_id]).await?.remove(&user_id).unwrap_or_default())
}

pub(crate) fn stale_of(id: i64, amount: i64, collection_id: Option<i64>, removed: bool, pending: bool) -> StaleRoundUp {
    StaleRoundUp {
        id,
        amount: Cents::new(amount),
        collection_id,
        reason: if removed {
            RetireReason::Removed
        } else if pending {
            RetireReason::Pending
        } else {
            RetireReason::Amended
        },
    }
}

/// Retire a round-up: voided when it still waits (`void`), otherwise kept as collected and
/// taken back by the correction `correction_id`. False when it was already retired.
pub async fn retire_roundup(
    tx: &mut Tx,
    user_id: i64,
    r: &StaleRoundUp,
    correction_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let void = r.collection_id.is_none();
    let changed = on_tx!(tx, conn => sqlx::query(
        "UPDATE roundups SET retired_at = $2, voided_at = CASE WHEN $3 THEN $2 ELSE NULL END \
         WHERE id = $1 AND retired_at IS NULL AND ((collection_id IS NULL) = $3)",
    )
    .bind(r.id)
    .bind(now)
    .bind(void)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    if changed == 0 {
        return Ok(false);
    }
    if !void && r.amount > Cents::ZERO {
        on_tx!(tx, conn => sqlx::query(
            "INSERT INTO corrections (id, user_id, roundup_id, amount, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(correction_id)
        .bind(user_id)
        .bind(r.id)
        .bind(r.amount.get())
        .bind(r.reason.as_str())
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(true)
}

/// A collected round-up taken back, and the collection that offset it (if one has).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Correction {
    pub id: i64,
    pub roundup_id: i64,
    #[sqlx(try_from = "Col<Cents>")]
    pub amount: Cents,
    pub reason: String,
    pub collection_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

const CORRECTION: &str = "SELECT id, roundup_id, amount, reason, collection_id, created_at FROM corrections";

/// The user's corrections no collection has offset yet, oldest first.
pub async fn open_corrections(db: impl Into<Conn<'_>>, user_id: i64) -> Result<Vec<Correction>, StoreError> {
    Ok(crate::money_batch::open_corrections(db, &[user_id]).await?.remove(&user_id).unwrap_or_default())
}

/// Every correction of the user, newest first.
pub async fn corrections_of_user(db: &Db, user_id: i64) -> Result<Vec<Correction>, StoreError> {
    let sql = format!("{CORRECTION} WHERE user_id = $1 ORDER BY created_at DESC, id DESC");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Correction>(&sql).bind(user_id).fetch_all(pool).await)?)
}

/// Mark open corrections as offset by `collection_id`; false when another run took one first.
pub async fn take_corrections(tx: &mut Tx, collection_id: i64, ids: &[i64]) -> Result<bool, StoreError> {
    for id in ids {
        let n = on_tx!(tx, conn => sqlx::query("UPDATE corrections SET collection_id = $1 WHERE id = $2 AND collection_id IS NULL")
            .bind(collection_id)
            .bind(*id)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
        if n != 1 {
            return Ok(false);
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Contributions

pub async fn insert_contribution(
    tx: &mut Tx,
    id: i64,
    user_id: i64,
    amount: Cents,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "INSERT INTO contributions (id, user_id, amount, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(user_id)
    .bind(amount.get())
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// What the user contributed since `since`, collected or not.
pub async fn contributed_since(tx: &mut Tx, user_id: i64, since: DateTime<Utc>) -> Result<Cents, StoreError> {
    let total = on_tx!(tx, conn => sqlx::query_scalar::<_, Option<i64>>(
        "SELECT CAST(SUM(amount) AS BIGINT) FROM contributions WHERE user_id = $1 AND created_at >= $2",
    )
    .bind(user_id)
    .bind(since)
    .fetch_one(conn)
    .await)?;
    Ok(Cents::new(total.unwrap_or(0)))
}

/// A one-time contribution and whether it was collected.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Contribution {
    pub id: i64,
    #[sqlx(try_from = "Col<Cents>")]
    pub amount: Cents,
    pub collection_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

pub async fn contributions_of_user(db: &Db, user_id: i64) -> Result<Vec<Contribution>, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, Contribution>(
        "SELECT id, amount, collection_id, created_at FROM contributions WHERE user_id = $1 \
         ORDER BY created_at DESC, id DESC",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await)?)
}

// ---------------------------------------------------------------------------------------------
// Collections

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectionStatus {
    Pending,
    Processed,
    Failed,
    Cancelled,
}

impl CollectionStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            CollectionStatus::Pending => "pending",
            CollectionStatus::Processed => "processed",
            CollectionStatus::Failed => "failed",
            CollectionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<CollectionStatus> {
        [CollectionStatus::Pending, CollectionStatus::Processed, CollectionStatus::Failed, CollectionStatus::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

impl Stored for CollectionStatus {
    type Raw = String;
    fn from_raw(raw: String) -> Result<Self, String> {
        CollectionStatus::parse(&raw).ok_or_else(|| format!("{raw:?} is not a collection status"))
    }
}

impl From<Col<CollectionStatus>> for CollectionStatus {
    fn from(column: Col<CollectionStatus>) -> Self {
        column.0
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Collection {
    pub id: i64,
    pub user_id: i64,
    /// The debit account whose funding source the money came from.
    pub account_id: i64,
    /// What the transfer takes from the user's bank: the round-ups it gathered minus `offset`.
    #[sqlx(try_from = "Col<Cents>")]
    pub amount: Cents,
    /// Round-ups it gathered but left in the bank, taking back corrections.
    #[sqlx(rename = "offset_amount", try_from = "Col<Cents>")]
    pub offset: Cents,
    #[sqlx(try_from = "Col<CollectionStatus>")]
    pub status: CollectionStatus,
    pub transfer_id: i64,
    pub failure_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

const COLLECTION: &str = "SELECT id, user_id, account_id, amount, offset_amount, status, transfer_id, failure_code, \
    created_at, sent_at, updated_at FROM collections";

/// Record a collection and the part it gathered from each account.
pub async fn insert_collection(
    tx: &mut Tx,
    c: &Collection,
    parts: &[(i64, Cents)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "INSERT INTO collections (id, user_id, account_id, amount, offset_amount, status, transfer_id, created_at, \
           updated_at) VALUES ($1, $2, $3, $4, $8, $5, $6, $7, $7)",
    )
    .bind(c.id)
    .bind(c.user_id)
    .bind(c.account_id)
    .bind(c.amount.get())
    .bind(c.status.as_str())
    .bind(c.transfer_id)
    .bind(now)
    .bind(c.offset.get())
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    for (account_id, amount) in parts {
        on_tx!(tx, conn => sqlx::query(
            "INSERT INTO collection_parts (id, collection_id, user_id, account_id, amount, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(crate::new_id())
        .bind(c.id)
        .bind(c.user_id)
        .bind(account_id)
        .bind(amount.get())
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

pub async fn collection_by_transfer(tx: &mut Tx, transfer_id: i64) -> Result<Option<Collection>, StoreError> {
    let sql = format!("{COLLECTION} WHERE transfer_id = $1");
    Ok(on_tx!(tx, conn => sqlx::query_as::<_, Collection>(&sql).bind(transfer_id).fetch_optional(conn).await)?)
}

/// Move a pending collection to how its transfer ended; false when it had already ended.
pub async fn settle_collection(
    tx: &mut Tx,
    id: i64,
    status: &CollectionStatus,
    failure_code: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = on_tx!(tx, conn => sqlx::query(
        "UPDATE collections SET status = $2, failure_code = $3, updated_at = $4, \
           sent_at = CASE WHEN $2 = 'processed' THEN $4 ELSE sent_at END \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(failure_code)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// What was collected from the user (collections not failed) since `since`.
pub async fn collected_since(db: impl Into<Conn<'_>>, user_id: i64, since: DateTime<Utc>) -> Result<Cents, StoreError> {
    let total = on_conn!(db.into(), conn => sqlx::query_scalar::<_, Option<i64>>(
        "SELECT CAST(SUM(amount) AS BIGINT) FROM collections \
         WHERE user_id = $1 AND created_at >= $2 AND status IN ('pending', 'processed')",
    )
    .bind(user_id)
    .bind(since)
    .fetch_one(conn)
    .await)?;
    Ok(Cents::new(total.unwrap_or(0)))
}

/// The user's collections, newest first (transfers_donkies).
pub async fn collections_of_user(db: &Db, user_id: i64) -> Result<Vec<Collection>, StoreError> {
    let sql = format!("{COLLECTION} WHERE user_id = $1 ORDER BY created_at DESC, id DESC");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Collection>(&sql).bind(user_id).fetch_all(pool).await)?)
}

/// What one collection gathered from one debit account (transfers_prepare).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CollectionPart {
    pub id: i64,
    pub collection_id: i64,
    pub account_id: i64,
    #[sqlx(try_from = "Col<Cents>")]
    pub amount: Cents,
    pub created_at: DateTime<Utc>,
}

/// The parts of the user's collections that did not fail, newest first: every round-up
/// gathered shows once, even when a failed collection had taken it before.
pub async fn collection_parts_of_user(db: &Db, user_id: i64) -> Result<Vec<CollectionPart>, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, CollectionPart>(
        "SELECT p.id, p.collection_id, p.account_id, p.amount, p.created_at FROM collection_parts p \
         JOIN collections c ON c.id = p.collection_id \
         WHERE p.user_id = $1 AND c.status IN ('pending', 'processed') ORDER BY p.created_at DESC, p.id DESC",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await)?)
}

// ---------------------------------------------------------------------------------------------
// Payouts

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Payout {
    pub id: i64,
    pub user_id: i64,
    #[sqlx(try_from = "Col<Cents>")]
    pub amount: Cents,
    /// `YYYY-MM-DD` for a payout day's payout, `close:<id>` for a final one.
    pub period: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartMethod {
    /// A transfer to the debt account's funding source.
    Dwolla,
    /// Paid by an operator, who records a reference.
    Manual,
    /// Held money sent back to the user's own bank.
    Refund,
}

impl PartMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PartMethod::Dwolla => "dwolla",
            PartMethod::Manual => "manual",
            PartMethod::Refund => "refund",
        }
    }
}

impl Stored for PartMethod {
    type Raw = String;
    fn from_raw(raw: String) -> Result<Self, String> {
        match raw.as_str() {
            "dwolla" => Ok(PartMethod::Dwolla),
            "manual" => Ok(PartMethod::Manual),
            "refund" => Ok(PartMethod::Refund),
            _ => Err(format!("{raw:?} is not a payout method")),
        }
    }
}

impl From<Col<PartMethod>> for PartMethod {
    fn from(column: Col<PartMethod>) -> Self {
        column.0
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PayoutPart {
    pub id: i64,
    pub payout_id: i64,
    pub user_id: i64,
    /// The debt account paid, or for a refund the debit account the money went back to.
    pub account_id: i64,
    #[sqlx(try_from = "Col<Cents>")]
    pub amount: Cents,
    pub share: i64,
    #[sqlx(try_from = "Col<PartMethod>")]
    pub method: PartMethod,
    /// `pending`, `processed` or `failed`.
    pub status: String,
    pub transfer_id: Option<i64>,
    pub manual_reference: Option<String>,
    pub created_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

const PART: &str = "SELECT id, payout_id, user_id, account_id, amount, share, method, status, transfer_id, \
    manual_reference, created_at, processed_at FROM payout_parts";

/// Record a payout; a second payout of the user for one period is a Conflict on
/// [`crate::constraints::PAYOUTS_USER_PERIOD`].
pub async fn insert_payout(tx: &mut Tx, p: &Payout) -> Result<(), StoreError> {
    crate::money_batch::insert_payouts(tx, std::slice::from_ref(p), &[]).await
}

pub async fn insert_part(tx: &mut Tx, p: &PayoutPart) -> Result<(), StoreError> {
    crate::money_batch::insert_payouts(tx, &[], std::slice::from_ref(p)).await
}

pub async fn part_by_transfer(tx: &mut Tx, transfer_id: i64) -> Result<Option<PayoutPart>, StoreError> {
    let sql = format!("{PART} WHERE transfer_id = $1");
    Ok(on_tx!(tx, conn => sqlx::query_as::<_, PayoutPart>(&sql).bind(transfer_id).fetch_optional(conn).await)?)
}

pub async fn part_by_id(db: &Db, id: i64) -> Result<Option<PayoutPart>, StoreError> {
    let sql = format!("{PART} WHERE id = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, PayoutPart>(&sql).bind(id).fetch_optional(pool).await)?)
}

/// Move a pending part to `processed` or `failed`; false when it had already ended.
pub async fn settle_part(
    tx: &mut Tx,
    id: i64,
    processed: bool,
    manual_reference: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = on_tx!(tx, conn => sqlx::query(
        "UPDATE payout_parts SET status = $2, manual_reference = COALESCE($3, manual_reference), \
           processed_at = CASE WHEN $2 = 'processed' THEN $4 ELSE processed_at END \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(if processed { "processed" } else { "failed" })
    .bind(manual_reference)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The user's payouts, newest first (transfers_user).
pub async fn payouts_of_user(db: &Db, user_id: i64) -> Result<Vec<Payout>, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, Payout>(
        "SELECT id, user_id, amount, period, created_at FROM payouts WHERE user_id = $1 \
         ORDER BY created_at DESC, id DESC",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await)?)
}

/// The parts of the user's payouts, newest first (transfers_debt).
pub async fn parts_of_user(db: &Db, user_id: i64) -> Result<Vec<PayoutPart>, StoreError> {
    let sql = format!("{PART} WHERE user_id = $1 ORDER BY created_at DESC, id DESC");
    Ok(on_db!(db, pool => sqlx::query_as::<_, PayoutPart>(&sql).bind(user_id).fetch_all(pool).await)?)
}

/// Parts waiting for an operator to pay them by hand, oldest first.
pub async fn manual_parts_waiting(db: &Db) -> Result<Vec<PayoutPart>, StoreError> {
    let sql = format!("{PART} WHERE method = 'manual' AND status = 'pending' ORDER BY created_at, id");
    Ok(on_db!(db, pool => sqlx::query_as::<_, PayoutPart>(&sql).fetch_all(pool).await)?)
}

// ---------------------------------------------------------------------------------------------
// Who takes part

/// Users the collection run looks at: not closed, with a round-up source chosen.
pub async fn users_to_collect(db: &Db) -> Result<Vec<i64>, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT u.id FROM users u WHERE u.is_closed_account = FALSE AND EXISTS ( \
           SELECT 1 FROM accounts a WHERE a.user_id = u.id AND a.is_funding_source_for_transfer = TRUE \
             AND a.is_deleted = FALSE) \
         ORDER BY u.id",
    )
    .fetch_all(pool)
    .await)?)
}

/// Users with money held at Donkies that is not already on its way out, by the ledger.
pub async fn users_with_held_money(db: &Db) -> Result<Vec<(i64, Cents)>, StoreError> {
    let rows = on_db!(db, pool => sqlx::query_as::<_, (String, i64)>(
        "SELECT account, posted - pending_debits FROM ledger_balances \
         WHERE account LIKE 'user:%:held' AND posted - pending_debits > 0 ORDER BY account",
    )
    .fetch_all(pool)
    .await)?;
    Ok(rows
        .into_iter()
        .filter_map(|(code, available)| {
            let user = code.strip_prefix("user:")?.strip_suffix(":held")?.parse().ok()?;
            Some((user, Cents::new(available)))
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Workers

/// A worker is alive: record that it was seen now.
pub async fn worker_seen(db: &Db, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, conn => sqlx::query(
        "INSERT INTO workers (id, started_at, seen_at) VALUES ($1, $2, $2) \
         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    tx.commit().await
}

/// A worker stopped cleanly.
pub async fn worker_gone(db: &Db, id: &str) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, conn => sqlx::query("DELETE FROM workers WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    tx.commit().await
}

/// How many workers were seen since `since`.
pub async fn workers_seen_since(db: &Db, since: DateTime<Utc>) -> Result<i64, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM workers WHERE seen_at >= $1")
        .bind(since)
        .fetch_one(pool)
        .await)?)
}

// ---------------------------------------------------------------------------------------------
// Checking

/// Every collection, oldest first.
pub async fn all_collections(db: &Db) -> Result<Vec<Collection>, StoreError> {
    let sql = format!("{COLLECTION} ORDER BY created_at, id");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Collection>(&sql).fetch_all(pool).await)?)
}

/// Every payout part, oldest first.
pub async fn all_parts(db: &Db) -> Result<Vec<PayoutPart>, StoreError> {
    let sql = format!("{PART} ORDER BY created_at, id");
    Ok(on_db!(db, pool => sqlx::query_as::<_, PayoutPart>(&sql).fetch_all(pool).await)?)
}

/// What waits to be collected, per user.
pub async fn waiting_totals(db: &Db) -> Result<Vec<(i64, Cents)>, StoreError> {
    let rows = on_db!(db, pool => sqlx::query_as::<_, (i64, i64)>(
        "SELECT user_id, CAST(SUM(amount) AS BIGINT) FROM ( \
           SELECT user_id, amount FROM roundups WHERE collection_id IS NULL AND voided_at IS NULL \
           UNION ALL SELECT user_id, amount FROM contributions WHERE collection_id IS NULL) AS w \
         GROUP BY user_id",
    )
    .fetch_all(pool)
    .await)?;
    Ok(rows.into_iter().map(|(u, c)| (u, Cents::new(c))).collect())
}
