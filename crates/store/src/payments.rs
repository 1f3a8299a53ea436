//! Payments through Dwolla: each user's customer, the funding sources (banks) behind their
//! accounts, the transfers Donkies asks for, and the webhook events already handled.
//!
//! Sealed values (the SSN, account numbers) arrive sealed and are stored as given; this module
//! never sees them in the clear.

use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use donkies_domain::{
    BankAccountType, Cents, CustomerKind, CustomerStatus, FundingSourceStatus, FundingSourceType, MicroDepositStatus,
    TransferStatus, VerificationType,
};

use crate::column::Col;
use crate::{Conn, Db, StoreError, Tx, on_db, on_tx};

/// Run one write statement in the caller's transaction and answer how many rows it touched; a
/// unique-constraint violation becomes a [`StoreError::Conflict`].
macro_rules! write_in {
    ($tx:expr, $conn:ident => $body:expr) => {
        on_tx!($tx, $conn => $body).map_err(StoreError::from_write)
    };
}

// ---------------------------------------------------------------------------------------------
// Customers

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Customer {
    pub id: i64,
    pub user_id: i64,
    #[sqlx(try_from = "Col<CustomerKind>")]
    pub kind: CustomerKind,
    /// Null until the customer is created at Dwolla.
    pub dwolla_id: Option<String>,
    /// Null until Dwolla has answered.
    #[sqlx(try_from = "Col<Option<CustomerStatus>>")]
    pub status: Option<CustomerStatus>,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub ssn_encrypted: Option<String>,
    pub ssn_last4: Option<String>,
    pub phone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const CUSTOMER: &str = "SELECT id, user_id, kind, dwolla_id, status, first_name, last_name, email, address1, \
    address2, city, state, postal_code, date_of_birth, ssn_encrypted, ssn_last4, phone, created_at, updated_at \
    FROM customers";

pub struct NewCustomer<'a> {
    pub id: i64,
    pub user_id: i64,
    pub kind: CustomerKind,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
    pub address1: Option<&'a str>,
    pub address2: Option<&'a str>,
    pub city: Option<&'a str>,
    pub state: Option<&'a str>,
    pub postal_code: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub date_of_birth: Option<NaiveDate>,
    /// The SSN sealed by the caller, stored as given.
    pub ssn_encrypted: Option<&'a str>,
    pub ssn_last4: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Insert a customer not yet known to Dwolla; a second customer for the user is a Conflict on
/// [`crate::constraints::CUSTOMERS_USER_ID`].
pub async fn insert_customer(tx: &mut Tx, c: &NewCustomer<'_>) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "INSERT INTO customers (id, user_id, kind, first_name, last_name, email, address1, address2, city, state, \
           postal_code, date_of_birth, ssn_encrypted, ssn_last4, phone, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)",
    )
    .bind(c.id)
    .bind(c.user_id)
    .bind(c.kind.as_str())
    .bind(c.first_name)
    .bind(c.last_name)
    .bind(c.email)
    .bind(c.address1)
    .bind(c.address2)
    .bind(c.city)
    .bind(c.state)
    .bind(c.postal_code)
    .bind(c.date_of_birth)
    .bind(c.ssn_encrypted)
    .bind(c.ssn_last4)
    .bind(c.phone)
    .bind(c.now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn customer_of_user(db: impl Into<Conn<'_>>, user_id: i64) -> Result<Option<Customer>, StoreError> {
    let sql = format!("{CUSTOMER} WHERE user_id = $1");
    Ok(
        crate::on_conn!(db.into(), pool => sqlx::query_as::<_, Customer>(&sql).bind(user_id).fetch_optional(pool).await)?,
    )
}

pub async fn customer_by_id(db: impl Into<Conn<'_>>, id: i64) -> Result<Option<Customer>, StoreError> {
    let sql = format!("{CUSTOMER} WHERE id = $1");
    Ok(crate::on_conn!(db.into(), pool => sqlx::query_as::<_, Customer>(&sql).bind(id).fetch_optional(pool).await)?)
}

pub async fn customer_by_dwolla_id(db: &Db, dwolla_id: &str) -> Result<Option<Customer>, StoreError> {
    let sql = format!("{CUSTOMER} WHERE dwolla_id = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Customer>(&sql).bind(dwolla_id).fetch_optional(pool).await)?)
}

/// Record the customer Dwolla created, and the status it answered with. The Dwolla id of
/// another customer is a Conflict on [`crate::constraints::CUSTOMERS_DWOLLA_ID`].
pub async fn set_customer_dwolla(
    tx: &mut Tx,
    id: i64,
    dwolla_id: &str,
    status: &CustomerStatus,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    record_dwolla_id(tx, "customers", id, dwolla_id, status.as_str(), now).await
}

/// Follow Dwolla's status for the customer; whether it changed.
pub async fn set_customer_status(
    tx: &mut Tx,
    id: i64,
    status: &CustomerStatus,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    follow_status(tx, "customers", id, status.as_str(), now).await
}

/// Store the id Dwolla gave the row `id` of `table` (customers or funding sources), with the
/// status Dwolla answered.
async fn record_dwolla_id(
    tx: &mut Tx,
    table: &'static str,
    id: i64,
    dwolla_id: &str,
    status: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sql = format!("UPDATE {table} SET dwolla_id = $2, status = $3, updated_at = $4 WHERE id = $1");
    let n = on_tx!(tx, conn => sqlx::query(&sql)
        .bind(id)
        .bind(dwolla_id)
        .bind(status)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Set the status of the row `id` of `table` (customers or funding sources); whether it changed.
async fn follow_status(
    tx: &mut Tx,
    table: &'static str,
    id: i64,
    status: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let sql =
        format!("UPDATE {table} SET status = $2, updated_at = $3 WHERE id = $1 AND (status IS NULL OR status <> $2)");
    let n = write_in!(tx, conn => sqlx::query(&sql)
        .bind(id)
        .bind(status)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

async fn customers_where(db: &Db, condition: &str) -> Result<Vec<Customer>, StoreError> {
    let sql = format!("{CUSTOMER} WHERE {condition} ORDER BY created_at, id");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Customer>(&sql).fetch_all(pool).await)?)
}

/// Customers still to be created at Dwolla, oldest first.
pub async fn customers_without_dwolla_id(db: &Db) -> Result<Vec<Customer>, StoreError> {
    customers_where(db, "dwolla_id IS NULL").await
}

/// Customers known to Dwolla, oldest first (the backup poll of their statuses and transfers).
pub async fn customers_with_dwolla_id(db: &Db) -> Result<Vec<Customer>, StoreError> {
    customers_where(db, "dwolla_id IS NOT NULL").await
}

/// Every customer, oldest first (the operator's listing).
pub async fn list_customers(db: &Db) -> Result<Vec<Customer>, StoreError> {
    customers_where(db, "TRUE").await
}

// ---------------------------------------------------------------------------------------------
// Funding sources

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FundingSource {
    pub id: i64,
    pub user_id: i64,
    pub account_id: i64,
    pub customer_id: i64,
    /// Null until the funding source is created at Dwolla.
    pub dwolla_id: Option<String>,
    pub account_number_encrypted: Option<String>,
    pub account_number_last4: Option<String>,
    pub routing_number: Option<String>,
    #[sqlx(try_from = "Col<FundingSourceStatus>")]
    pub status: FundingSourceStatus,
    #[sqlx(try_from = "Col<BankAccountType>")]
    pub bank_account_type: BankAccountType,
    #[sqlx(try_from = "Col<FundingSourceType>")]
    pub source_type: FundingSourceType,
    pub name: String,
    #[sqlx(try_from = "Col<VerificationType>")]
    pub verification_type: VerificationType,
    /// Null until micro-deposits are initiated.
    #[sqlx(try_from = "Col<Option<MicroDepositStatus>>")]
    pub md_status: Option<MicroDepositStatus>,
    /// Failed attempts to verify the micro-deposits.
    pub md_attempts: i64,
    pub is_removed: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const FUNDING_SOURCE: &str = "SELECT id, user_id, account_id, customer_id, dwolla_id, account_number_encrypted, \
    account_number_last4, routing_number, status, bank_account_type, source_type, name, verification_type, \
    md_status, md_attempts, is_removed, created_at, updated_at FROM funding_sources";

pub struct NewFundingSource<'a> {
    pub id: i64,
    pub user_id: i64,
    pub account_id: i64,
    pub customer_id: i64,
    /// Known at once when Dwolla's IAV created the source; otherwise set later by
    /// [`set_funding_source_dwolla`].
    pub dwolla_id: Option<&'a str>,
    /// The account number sealed by the caller, stored as given.
    pub account_number_encrypted: Option<&'a str>,
    pub account_number_last4: Option<&'a str>,
    pub routing_number: Option<&'a str>,
    pub status: FundingSourceStatus,
    pub bank_account_type: BankAccountType,
    pub source_type: FundingSourceType,
    pub name: &'a str,
    pub verification_type: VerificationType,
    pub now: DateTime<Utc>,
}

/// Insert a funding source; an account that already has one (not removed) is a Conflict on
/// [`crate::constraints::FUNDING_SOURCES_ACCOUNT_ID`].
pub async fn insert_funding_source(tx: &mut Tx, f: &NewFundingSource<'_>) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "INSERT INTO funding_sources (id, user_id, account_id, customer_id, dwolla_id, account_number_encrypted, \
           account_number_last4, routing_number, status, bank_account_type, source_type, name, verification_type, \
           created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
    )
    .bind(f.id)
    .bind(f.user_id)
    .bind(f.account_id)
    .bind(f.customer_id)
    .bind(f.dwolla_id)
    .bind(f.account_number_encrypted)
    .bind(f.account_number_last4)
    .bind(f.routing_number)
    .bind(f.status.as_str())
    .bind(f.bank_account_type.as_str())
    .bind(f.source_type.as_str())
    .bind(f.name)
    .bind(f.verification_type.as_str())
    .bind(f.now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// The user's funding source `id` (removed ones too); another user's finds nothing.
pub async fn funding_source(
    db: impl Into<Conn<'_>>,
    user_id: i64,
    id: i64,
) -> Result<Option<FundingSource>, StoreError> {
    let sql = format!("{FUNDING_SOURCE} WHERE user_id = $1 AND id = $2");
    Ok(
        crate::on_conn!(db.into(), pool => sqlx::query_as::<_, FundingSource>(&sql).bind(user_id).bind(id).fetch_optional(pool).await)?,
    )
}

pub async fn funding_source_by_id(db: impl Into<Conn<'_>>, id: i64) -> Result<Option<FundingSource>, StoreError> {
    let sql = format!("{FUNDING_SOURCE} WHERE id = $1");
    Ok(
        crate::on_conn!(db.into(), pool => sqlx::query_as::<_, FundingSource>(&sql).bind(id).fetch_optional(pool).await)?,
    )
}

pub async fn funding_source_by_dwolla_id(
    db: impl Into<Conn<'_>>,
    dwolla_id: &str,
) -> Result<Option<FundingSource>, StoreError> {
    let sql = format!("{FUNDING_SOURCE} WHERE dwolla_id = $1");
    Ok(
        crate::on_conn!(db.into(), pool => sqlx::query_as::<_, FundingSource>(&sql).bind(dwolla_id).fetch_optional(pool).await)?,
    )
}

/// The user's funding sources: those not removed first, oldest first within each.
pub async fn funding_sources_of_user(db: &Db, user_id: i64) -> Result<Vec<FundingSource>, StoreError> {
    let sql = format!("{FUNDING_SOURCE} WHERE user_id = $1 ORDER BY is_removed, created_at, id");
    Ok(on_db!(db, pool => sqlx::query_as::<_, FundingSource>(&sql).bind(user_id).fetch_all(pool).await)?)
}

/// The funding source of the user's account that is not removed.
pub async fn funding_source_of_account(
    db: impl Into<Conn<'_>>,
    user_id: i64,
    account_id: i64,
) -> Result<Option<FundingSource>, StoreError> {
    let sql = format!("{FUNDING_SOURCE} WHERE user_id = $1 AND account_id = $2 AND is_removed = FALSE");
    Ok(
        crate::on_conn!(db.into(), pool => sqlx::query_as::<_, FundingSource>(&sql).bind(user_id).bind(account_id).fetch_optional(pool).await)?,
    )
}

/// Record the funding source Dwolla created and its status. The Dwolla id of another funding
/// source is a Conflict on [`crate::constraints::FUNDING_SOURCES_DWOLLA_ID`].
pub async fn set_funding_source_dwolla(
    tx: &mut Tx,
    id: i64,
    dwolla_id: &str,
    status: FundingSourceStatus,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    record_dwolla_id(tx, "funding_sources", id, dwolla_id, status.as_str(), now).await
}

/// Follow Dwolla's status for the funding source; whether it changed.
pub async fn set_funding_source_status(
    tx: &mut Tx,
    id: i64,
    status: FundingSourceStatus,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    follow_status(tx, "funding_sources", id, status.as_str(), now).await
}

/// Follow what Dwolla reported for a funding source, except that a read older than our own
/// verification never takes a verified source back to unverified (an ACH return does that,
/// through [`set_funding_source_status`]). Whether it changed.
pub async fn refresh_funding_source_status(
    tx: &mut Tx,
    id: i64,
    status: FundingSourceStatus,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = write_in!(tx, conn => sqlx::query(
        "UPDATE funding_sources SET status = $2, updated_at = $3 \
         WHERE id = $1 AND status <> $2 AND NOT (status = 'verified' AND $2 = 'unverified')",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Where the micro-deposits stand and how many verification attempts failed.
pub async fn set_micro_deposits(
    tx: &mut Tx,
    id: i64,
    md_status: Option<&MicroDepositStatus>,
    attempts: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    write_in!(tx, conn => sqlx::query(
        "UPDATE funding_sources SET md_status = $2, md_attempts = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(md_status.map(|s| s.as_str()))
    .bind(attempts)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Remove the funding source (kept for the record); its account may then get a new one.
/// Whether it was not removed before.
pub async fn mark_funding_source_removed(tx: &mut Tx, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let n = write_in!(tx, conn => sqlx::query(
        "UPDATE funding_sources SET is_removed = TRUE, updated_at = $2 WHERE id = $1 AND is_removed = FALSE",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Unverified banks known to Dwolla, to be verified by micro-deposits that were not yet
/// initiated, oldest first.
pub async fn funding_sources_needing_micro_deposits(db: &Db) -> Result<Vec<FundingSource>, StoreError> {
    let sql = format!(
        "{FUNDING_SOURCE} WHERE dwolla_id IS NOT NULL AND verification_type = 'micro-deposits' \
         AND md_status IS NULL AND status = 'unverified' AND is_removed = FALSE ORDER BY created_at, id"
    );
    Ok(on_db!(db, pool => sqlx::query_as::<_, FundingSource>(&sql).fetch_all(pool).await)?)
}

// ---------------------------------------------------------------------------------------------
// Transfers

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Transfer {
    pub id: i64,
    pub user_id: Option<i64>,
    /// The caller's own record of the movement, e.g. `collection:123`.
    pub reference: String,
    pub idempotency_key: String,
    /// The Dwolla id of the funding source the money leaves.
    pub source_funding_source: String,
    /// The Dwolla id of the funding source the money goes to.
    pub destination: String,
    #[sqlx(try_from = "Col<Cents>")]
    pub amount: Cents,
    #[sqlx(try_from = "Col<TransferStatus>")]
    pub status: TransferStatus,
    /// Null until the transfer is created at Dwolla.
    pub dwolla_id: Option<String>,
    pub failure_code: Option<String>,
    pub failure_description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the transfer became `processed`.
    pub processed_at: Option<DateTime<Utc>>,
}

const TRANSFER: &str = "SELECT id, user_id, reference, idempotency_key, source_funding_source, destination, amount, \
    status, dwolla_id, failure_code, failure_description, created_at, updated_at, processed_at FROM transfers";

/// `status NOT IN ('processed', …)`: the transfers that may still move.
static NOT_FINAL: LazyLock<String> = LazyLock::new(|| {
    let words: Vec<String> = TransferStatus::FINAL.iter().map(|word| format!("'{word}'")).collect();
    format!("status NOT IN ({})", words.join(", "))
});

pub struct NewTransfer<'a> {
    pub id: i64,
    pub user_id: Option<i64>,
    pub reference: &'a str,
    pub idempotency_key: &'a str,
    pub source_funding_source: &'a str,
    pub destination: &'a str,
    pub amount: Cents,
    pub status: TransferStatus,
    pub now: DateTime<Utc>,
}

/// Insert a transfer not yet sent to Dwolla. A reference that already has a transfer is a
/// Conflict on [`crate::constraints::TRANSFERS_REFERENCE`]: that is how a caller moves money for
/// one record at most once.
pub async fn insert_transfer(tx: &mut Tx, t: &NewTransfer<'_>) -> Result<(), StoreError> {
    crate::money_batch::insert_transfers(tx, std::slice::from_ref(t)).await
}

pub async fn transfer_by_reference(db: &Db, reference: &str) -> Result<Option<Transfer>, StoreError> {
    let sql = format!("{TRANSFER} WHERE reference = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Transfer>(&sql).bind(reference).fetch_optional(pool).await)?)
}

pub async fn transfer_by_id(db: impl Into<Conn<'_>>, id: i64) -> Result<Option<Transfer>, StoreError> {
    let sql = format!("{TRANSFER} WHERE id = $1");
    Ok(crate::on_conn!(db.into(), pool => sqlx::query_as::<_, Transfer>(&sql).bind(id).fetch_optional(pool).await)?)
}

pub async fn transfer_by_dwolla_id(db: &Db, dwolla_id: &str) -> Result<Option<Transfer>, StoreError> {
    let sql = format!("{TRANSFER} WHERE dwolla_id = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Transfer>(&sql).bind(dwolla_id).fetch_optional(pool).await)?)
}

/// Record the transfer Dwolla created and the status it answered with. A transfer that already
/// resolved keeps its status; the Dwolla id of another transfer is a Conflict on
/// [`crate::constraints::TRANSFERS_DWOLLA_ID`].
pub async fn set_transfer_dwolla_id(
    tx: &mut Tx,
    id: i64,
    dwolla_id: &str,
    status: &TransferStatus,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE transfers SET dwolla_id = $2, updated_at = $4, \
           status = CASE WHEN {not_final} THEN $3 ELSE status END, \
           processed_at = CASE WHEN {not_final} AND $3 = 'processed' THEN $4 ELSE processed_at END \
         WHERE id = $1",
        not_final = *NOT_FINAL
    );
    let n = write_in!(tx, conn => sqlx::query(&sql)
        .bind(id)
        .bind(dwolla_id)
        .bind(status.as_str())
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Move a transfer that is not final yet to `status`, with Dwolla's failure `(code,
/// description)` when it failed. Whether it moved: a transfer resolves at most once, so a
/// repeated webhook or poll changes nothing.
pub async fn set_transfer_status(
    tx: &mut Tx,
    id: i64,
    status: &TransferStatus,
    failure: Option<(&str, &str)>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let sql = format!(
        "UPDATE transfers SET status = $2, failure_code = $3, failure_description = $4, updated_at = $5, \
           processed_at = CASE WHEN $2 = 'processed' THEN $5 ELSE processed_at END \
         WHERE id = $1 AND status <> $2 AND {not_final}",
        not_final = *NOT_FINAL
    );
    let (code, description) = failure.unzip();
    let n = on_tx!(tx, conn => sqlx::query(&sql)
        .bind(id)
        .bind(status.as_str())
        .bind(code)
        .bind(description)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Transfers that are not final, oldest first (the backup poll).
pub async fn transfers_in_flight(db: &Db) -> Result<Vec<Transfer>, StoreError> {
    let sql = format!("{TRANSFER} WHERE {} ORDER BY created_at, id", *NOT_FINAL);
    Ok(on_db!(db, pool => sqlx::query_as::<_, Transfer>(&sql).fetch_all(pool).await)?)
}

/// Transfers, newest first, all or those in one status (the operator's listing).
pub async fn list_transfers(db: &Db, status: Option<&TransferStatus>) -> Result<Vec<Transfer>, StoreError> {
    let sql = format!("{TRANSFER} WHERE ($1 IS NULL OR status = $1) ORDER BY created_at DESC, id DESC");
    let status = status.map(TransferStatus::as_str);
    Ok(on_db!(db, pool => sqlx::query_as::<_, Transfer>(&sql).bind(status).fetch_all(pool).await)?)
}

// ---------------------------------------------------------------------------------------------
// Webhook events

/// Remember a webhook event; false when it was recorded before (a repeated delivery to ignore).
pub async fn record_event(
    tx: &mut Tx,
    event_id: &str,
    topic: &str,
    resource_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = on_tx!(tx, conn => sqlx::query(
        "INSERT INTO dwolla_events (event_id, topic, resource_id, received_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(topic)
    .bind(resource_id)
    .bind(now)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
