//! Transactions of linked accounts. Refreshes upsert by aggregator guid, so a re-sync never
//! duplicates a transaction; a row the aggregator stops returning is marked removed (kept for
//! the record, hidden from the list) and restored if it comes back.

use std::borrow::Cow;
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use donkies_domain::{AccountFamily, Cents, Direction};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};

use crate::column::Col;
use crate::{Db, StoreError, Tx, on_db, on_tx};

#[derive(Debug, Clone)]
pub struct TransactionData {
    pub guid: String,
    pub account_id: i64,
    pub amount: Cents,
    pub kind: Direction,
    pub status: Option<String>,
    pub category: Option<String>,
    pub top_level_category: Option<String>,
    pub description: Option<String>,
    pub original_description: Option<String>,
    pub memo: Option<String>,
    pub date: NaiveDate,
    pub transacted_at: Option<DateTime<Utc>>,
    pub posted_at: Option<DateTime<Utc>>,
    pub check_number: Option<i64>,
    pub merchant_category_code: Option<i64>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub is_bill_pay: bool,
    pub is_direct_deposit: bool,
    pub is_expense: bool,
    pub is_fee: bool,
    pub is_income: bool,
    pub is_overdraft_fee: bool,
    pub is_payroll_advance: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Transaction {
    pub id: i64,
    pub account_id: i64,
    pub account_name: String,
    #[sqlx(try_from = "Col<AccountFamily>")]
    pub account_type_ds: AccountFamily,
    pub guid: String,
    pub uid: String,
    #[sqlx(try_from = "Col<Cents>")]
    pub amount: Cents,
    #[sqlx(try_from = "Col<Direction>")]
    pub kind: Direction,
    pub status: Option<String>,
    pub category: Option<String>,
    pub top_level_category: Option<String>,
    pub description: Option<String>,
    pub original_description: Option<String>,
    pub memo: Option<String>,
    pub date: NaiveDate,
    pub transacted_at: Option<DateTime<Utc>>,
    pub posted_at: Option<DateTime<Utc>>,
    pub check_number: Option<i64>,
    pub merchant_category_code: Option<i64>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub is_bill_pay: bool,
    pub is_direct_deposit: bool,
    pub is_expense: bool,
    pub is_fee: bool,
    pub is_income: bool,
    pub is_overdraft_fee: bool,
    pub is_payroll_advance: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ROW_COLUMNS: &[&str] = &[
    "user_id",
    "created_at",
    "updated_at",
    "id",
    "account_id",
    "guid",
    "uid",
    "amount",
    "kind",
    "status",
    "category",
    "top_level_category",
    "description",
    "original_description",
    "memo",
    "date",
    "transacted_at",
    "posted_at",
    "check_number",
    "merchant_category_code",
    "latitude",
    "longitude",
    "is_bill_pay",
    "is_direct_deposit",
    "is_expense",
    "is_fee",
    "is_income",
    "is_overdraft_fee",
    "is_payroll_advance",
];

/// Rows per SQLite statement: SQLite looks bound parameters up one by one, so a statement with
/// tens of thousands of them costs more per row than several smaller ones; one prepared
/// statement of this many rows is reused for every full chunk of an ingest.
const SQLITE_BATCH: usize = 200;

/// The columns an upsert may change (everything but the row's identity and creation time), and
/// only when one of them differs: a re-sync of unchanged transactions writes nothing.
/// `distinct` is the engine's null-safe "differs": `IS NOT` on SQLite, `IS DISTINCT FROM` on
/// PostgreSQL.
fn on_conflict(distinct: &str) -> String {
    let changeable: Vec<&str> = ROW_COLUMNS
        .iter()
        .copied()
        .filter(|c| !matches!(*c, "user_id" | "created_at" | "updated_at" | "id" | "guid" | "uid"))
        .collect();
    let updates: Vec<String> =
        changeable.iter().chain(["updated_at"].iter()).map(|c| format!("{c} = excluded.{c}")).collect();
    let ours: Vec<String> = changeable.iter().map(|c| format!("transactions.{c}")).collect();
    let theirs: Vec<String> = changeable.iter().map(|c| format!("excluded.{c}")).collect();
    format!(
        " ON CONFLICT (user_id, guid) DO UPDATE SET {}, removed_at = NULL \
         WHERE ({}) {distinct} ({}) OR transactions.removed_at IS NOT NULL",
        updates.join(", "),
        ours.join(", "),
        theirs.join(", ")
    )
}

fn sqlite_sql(rows: usize) -> String {
    let row = format!("({})", vec!["?"; ROW_COLUMNS.len()].join(", "));
    format!(
        "INSERT INTO transactions ({}) VALUES {}{}",
        ROW_COLUMNS.join(", "),
        vec![row.as_str(); rows].join(", "),
        on_conflict("IS NOT")
    )
}

static SQLITE_FULL_CHUNK: LazyLock<String> = LazyLock::new(|| sqlite_sql(SQLITE_BATCH));

/// A staging table of this transaction, dropped again before it ends.
const PG_STAGING: &str = "CREATE TEMP TABLE transactions_staging (LIKE transactions) ON COMMIT DROP";

/// `COPY … FROM STDIN` in PostgreSQL's binary format into `table`, in [`ROW_COLUMNS`] order.
fn pg_copy(table: &str) -> String {
    format!("COPY {table} ({}) FROM STDIN WITH (FORMAT binary)", ROW_COLUMNS.join(", "))
}

static PG_COPY_NEW: LazyLock<String> = LazyLock::new(|| pg_copy("transactions"));
static PG_COPY_STAGING: LazyLock<String> = LazyLock::new(|| pg_copy("transactions_staging"));

static PG_MERGE: LazyLock<String> = LazyLock::new(|| {
    let columns = ROW_COLUMNS.join(", ");
    format!(
        "INSERT INTO transactions ({columns}) SELECT {columns} FROM transactions_staging{}",
        on_conflict("IS DISTINCT FROM")
    )
});

/// Ingests of one user wait for each other (PostgreSQL): the guids one of them found stored
/// stay the guids stored until it commits.
const PG_LOCK_USER: &str = "SELECT pg_advisory_xact_lock(hashtextextended('transactions ingest', $1))";

/// Bytes of COPY data sent to the server at a time.
const PG_COPY_CHUNK: usize = 1 << 20;

/// Insert or refresh transactions by (user, aggregator guid). On SQLite one prepared multi-row
/// statement is reused inside the caller's transaction. On PostgreSQL the rows travel by binary
/// `COPY`: those whose guid the user has no row for yet go straight into `transactions`, the
/// others into a staging table that one `INSERT … SELECT … ON CONFLICT` merges. Both apply the
/// same conflict rule.
pub async fn upsert(tx: &mut Tx, user_id: i64, rows: &[TransactionData], now: DateTime<Utc>) -> Result<(), StoreError> {
    // One statement cannot update the same row twice: keep the last of repeated guids.
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    let mut unique: Vec<&TransactionData> = rows.iter().rev().filter(|t| seen.insert(storable(&t.guid))).collect();
    unique.reverse();
    if unique.is_empty() {
        return Ok(());
    }
    match tx {
        Tx::Sqlite(conn, _) => {
            for chunk in unique.chunks(SQLITE_BATCH) {
                let remainder;
                let sql = if chunk.len() == SQLITE_BATCH {
                    SQLITE_FULL_CHUNK.as_str()
                } else {
                    remainder = sqlite_sql(chunk.len());
                    remainder.as_str()
                };
                let mut q = sqlx::query(sql);
                for t in chunk {
                    q = q
                        .bind(user_id)
                        .bind(now)
                        .bind(now)
                        .bind(crate::new_id())
                        .bind(t.account_id)
                        .bind(storable(&t.guid))
                        .bind(crate::new_hex_id())
                        .bind(t.amount.get())
                        .bind(t.kind.as_str())
                        .bind(t.status.as_deref().map(storable))
                        .bind(t.category.as_deref().map(storable))
                        .bind(t.top_level_category.as_deref().map(storable))
                        .bind(t.description.as_deref().map(storable))
                        .bind(t.original_description.as_deref().map(storable))
                        .bind(t.memo.as_deref().map(storable))
                        .bind(t.date)
                        .bind(t.transacted_at)
                        .bind(t.posted_at)
                        .bind(t.check_number)
                        .bind(t.merchant_category_code)
                        .bind(t.latitude)
                        .bind(t.longitude)
                        .bind(t.is_bill_pay)
                        .bind(t.is_direct_deposit)
                        .bind(t.is_expense)
                        .bind(t.is_fee)
                        .bind(t.is_income)
                        .bind(t.is_overdraft_fee)
                        .bind(t.is_payroll_advance);
                }
                q.execute(&mut **conn).await?;
            }
        }
        Tx::Postgres(conn) => {
            sqlx::query(PG_LOCK_USER).bind(user_id).execute(&mut **conn).await?;
            let stored: std::collections::HashSet<String> =
                sqlx::query_scalar("SELECT guid FROM transactions WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_all(&mut **conn)
                    .await?
                    .into_iter()
                    .collect();
            let (known, new): (Vec<&TransactionData>, Vec<&TransactionData>) =
                unique.into_iter().partition(|t| stored.contains(storable(&t.guid).as_ref()));
            if !new.is_empty() {
                copy_binary(conn, &PG_COPY_NEW, user_id, now, &new).await?;
            }
            if !known.is_empty() {
                sqlx::query(PG_STAGING).persistent(false).execute(&mut **conn).await?;
                copy_binary(conn, &PG_COPY_STAGING, user_id, now, &known).await?;
                sqlx::query(&PG_MERGE).persistent(false).execute(&mut **conn).await?;
                sqlx::query("DROP TABLE transactions_staging").persistent(false).execute(&mut **conn).await?;
            }
        }
    }
    list_changed(tx, user_id).await
}

/// Raise the version of what `user_id`'s transaction list shows, in the caller's transaction:
/// every change to the user's transactions or to the accounts they belong to calls this.
pub async fn list_changed(tx: &mut Tx, user_id: i64) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(
        "INSERT INTO transaction_list_versions (user_id, version) VALUES ($1, 1) \
         ON CONFLICT (user_id) DO UPDATE SET version = transaction_list_versions.version + 1",
    )
    .bind(user_id)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The version of what `user_id`'s transaction list shows: equal versions, equal lists (for
/// the same settings and query).
pub async fn list_version(db: &Db, user_id: i64) -> Result<i64, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT COALESCE((SELECT version FROM transaction_list_versions WHERE user_id = $1), 0)",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await)?)
}

/// A provider's text as stored: without NUL characters, which PostgreSQL text cannot hold (a
/// stray one is dropped on both engines rather than failing the whole sync).
fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') { Cow::Owned(text.replace('\0', "")) } else { Cow::Borrowed(text) }
}

/// Send `rows` through `statement` (a binary `COPY … FROM STDIN`), new ids and uids drawn here.
async fn copy_binary(
    conn: &mut sqlx::PgConnection,
    statement: &str,
    user_id: i64,
    now: DateTime<Utc>,
    rows: &[&TransactionData],
) -> Result<(), StoreError> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut buf = Vec::with_capacity(PG_COPY_CHUNK + 4096);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes()); // flags
    buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    let now = pg_micros(now);
    for (i, t) in rows.iter().enumerate() {
        binary_row(&mut buf, user_id, now, t);
        if i + 1 == rows.len() {
            buf.extend_from_slice(&(-1i16).to_be_bytes());
        }
        if buf.len() >= PG_COPY_CHUNK || i + 1 == rows.len() {
            if let Err(err) = copy.send(buf.as_slice()).await {
                let _ = copy.abort("send failed").await;
                return Err(err.into());
            }
            buf.clear();
        }
    }
    copy.finish().await?;
    Ok(())
}

/// Microseconds since PostgreSQL's epoch (2000-01-01 00:00 UTC), as binary `timestamptz`.
fn pg_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros() - PG_EPOCH_UNIX_MICROS
}

const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// Days since PostgreSQL's epoch, as binary `date`.
fn pg_days(d: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default();
    i32::try_from((d - epoch).num_days()).unwrap_or(i32::MAX)
}

/// One tuple of PostgreSQL's binary COPY format, in [`ROW_COLUMNS`] order.
fn binary_row(out: &mut Vec<u8>, user_id: i64, now: i64, t: &TransactionData) {
    /// One field: its length, then its bytes; `None` is NULL.
    fn field(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
        match bytes {
            Some(bytes) => {
                out.extend_from_slice(&i32::try_from(bytes.len()).unwrap_or(i32::MAX).to_be_bytes());
                out.extend_from_slice(bytes);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    let int8 = |out: &mut Vec<u8>, v: Option<i64>| field(out, v.map(i64::to_be_bytes).as_ref().map(|b| &b[..]));
    let text = |out: &mut Vec<u8>, v: Option<&str>| field(out, v.map(storable).as_deref().map(str::as_bytes));
    out.extend_from_slice(&(ROW_COLUMNS.len() as i16).to_be_bytes());
    for v in [user_id, now, now, crate::new_id(), t.account_id] {
        int8(out, Some(v));
    }
    text(out, Some(&t.guid));
    text(out, Some(&crate::new_hex_id()));
    int8(out, Some(t.amount.get()));
    text(out, Some(t.kind.as_str()));
    for v in [&t.status, &t.category, &t.top_level_category, &t.description, &t.original_description, &t.memo] {
        text(out, v.as_deref());
    }
    field(out, Some(&pg_days(t.date).to_be_bytes()));
    for v in [t.transacted_at.map(pg_micros), t.posted_at.map(pg_micros), t.check_number, t.merchant_category_code] {
        int8(out, v);
    }
    for v in [t.latitude, t.longitude] {
        field(out, v.map(|v| v.to_bits().to_be_bytes()).as_ref().map(|b| &b[..]));
    }
    for flag in [
        t.is_bill_pay,
        t.is_direct_deposit,
        t.is_expense,
        t.is_fee,
        t.is_income,
        t.is_overdraft_fee,
        t.is_payroll_advance,
    ] {
        field(out, Some(&[u8::from(flag)]));
    }
}

const SELECT: &str = "SELECT t.id, t.account_id, a.name AS account_name, a.type_ds AS account_type_ds, t.guid, t.uid, \
    t.amount, t.kind, t.status, t.category, t.top_level_category, t.description, t.original_description, t.memo, \
    t.date, t.transacted_at, t.posted_at, t.check_number, t.merchant_category_code, t.latitude, t.longitude, \
    t.is_bill_pay, t.is_direct_deposit, t.is_expense, t.is_fee, t.is_income, t.is_overdraft_fee, \
    t.is_payroll_advance, t.created_at, t.updated_at \
    FROM transactions t JOIN accounts a ON a.id = t.account_id";

const ORDER: &str = "ORDER BY t.date DESC, t.transacted_at DESC NULLS LAST, t.id DESC";

static LIST_ALL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{SELECT} WHERE t.user_id = $1 AND a.is_deleted = FALSE AND t.removed_at IS NULL {ORDER} LIMIT $2 OFFSET $3"
    )
});

static LIST_ACCOUNT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{SELECT} WHERE t.user_id = $1 AND t.account_id = $2 AND a.is_deleted = FALSE AND t.removed_at IS NULL \
         {ORDER} LIMIT $3 OFFSET $4"
    )
});

/// The user's visible transactions, newest first, optionally of one account, from `offset` on,
/// at most `limit` of them (all without a limit), one at a time as the database yields them.
pub fn stream_for_user(
    db: &Db,
    user_id: i64,
    account_id: Option<i64>,
    limit: Option<i64>,
    offset: i64,
) -> BoxStream<'_, Result<Transaction, StoreError>> {
    let (limit, offset) = (limit.unwrap_or(i64::MAX), offset.max(0));
    let rows = match account_id {
        None => on_db!(db, pool => sqlx::query_as::<_, Transaction>(&LIST_ALL)
            .bind(user_id)
            .bind(limit)
            .bind(offset)
            .fetch(pool)),
        Some(account) => on_db!(db, pool => sqlx::query_as::<_, Transaction>(&LIST_ACCOUNT)
            .bind(user_id)
            .bind(account)
            .bind(limit)
            .bind(offset)
            .fetch(pool)),
    };
    rows.map_err(StoreError::from).boxed()
}

/// [`stream_for_user`], collected.
pub async fn list_for_user(
    db: &Db,
    user_id: i64,
    account_id: Option<i64>,
    limit: Option<i64>,
    offset: i64,
) -> Result<Vec<Transaction>, StoreError> {
    stream_for_user(db, user_id, account_id, limit, offset).try_collect().await
}

/// How many transactions [`list_for_user`] would show without a limit.
pub async fn count_visible(db: &Db, user_id: i64, account_id: Option<i64>) -> Result<i64, StoreError> {
    let base = "SELECT COUNT(*) FROM transactions t JOIN accounts a ON a.id = t.account_id \
                WHERE t.user_id = $1 AND a.is_deleted = FALSE AND t.removed_at IS NULL";
    Ok(match account_id {
        None => on_db!(db, pool => sqlx::query_scalar::<_, i64>(base).bind(user_id).fetch_one(pool).await)?,
        Some(account) => {
            let sql = format!("{base} AND t.account_id = $2");
            on_db!(db, pool => sqlx::query_scalar::<_, i64>(&sql).bind(user_id).bind(account).fetch_one(pool).await)?
        }
    })
}

pub async fn count_for_user(db: &Db, user_id: i64) -> Result<i64, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM transactions WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(pool)
        .await)?)
}

/// The user's transactions on active, visible accounts dated `since` or later, as what decides
/// their round-up: (direction, account family, amount).
pub async fn purchases_since(
    db: &Db,
    user_id: i64,
    since: NaiveDate,
) -> Result<Vec<(Direction, AccountFamily, Cents)>, StoreError> {
    let rows = on_db!(db, pool => sqlx::query_as::<_, (Col<Direction>, Col<AccountFamily>, i64)>(
        "SELECT t.kind, a.type_ds, t.amount FROM transactions t JOIN accounts a ON a.id = t.account_id \
         WHERE t.user_id = $1 AND t.date >= $2 AND a.is_active = TRUE AND a.is_deleted = FALSE \
           AND t.removed_at IS NULL AND COALESCE(t.status, 'POSTED') <> 'PENDING'",
    )
    .bind(user_id)
    .bind(since)
    .fetch_all(pool)
    .await)?;
    Ok(rows.into_iter().map(|(kind, family, amount)| (kind.0, family.0, Cents::new(amount))).collect())
}

// ---------------------------------------------------------------------------------------------
// What a sync compares: the rows stored for the window it fetched

/// A stored row as a sync compares it with what the aggregator returned.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredRow {
    pub id: i64,
    pub account_id: i64,
    pub guid: String,
    #[sqlx(try_from = "Col<Cents>")]
    pub amount: Cents,
    #[sqlx(try_from = "Col<Direction>")]
    pub kind: Direction,
    pub status: Option<String>,
    pub description: Option<String>,
    pub date: NaiveDate,
    pub removed: bool,
}

impl StoredRow {
    pub fn is_pending(&self) -> bool {
        self.status.as_deref() == Some("PENDING")
    }
}

/// Every row stored on `account_ids` dated within `from..=to`, removed ones included.
pub async fn stored_in_window(
    tx: &mut Tx,
    user_id: i64,
    account_ids: &[i64],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<StoredRow>, StoreError> {
    let mut rows = Vec::new();
    for chunk in account_ids.chunks(200) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "SELECT id, account_id, guid, amount, kind, status, description, date, removed_at IS NOT NULL AS removed \
             FROM transactions WHERE user_id = $1 AND date >= $2 AND date <= $3 AND account_id IN ({})",
            placeholders.join(", ")
        );
        let found = on_tx!(tx, conn => {
            let mut q = sqlx::query_as::<_, StoredRow>(&sql).bind(user_id).bind(from).bind(to);
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(conn).await
        })?;
        rows.extend(found);
    }
    Ok(rows)
}

/// The day of the member's last posted purchase and of its oldest pending one still present: a
/// sync fetches from a little before the first, and no later than the second. Read per account,
/// so that each comes from the end of its `(account_id, date)` index whatever the planner
/// believes of the table's size (a join, on a bulk-loaded table without fresh statistics, read
/// every transaction).
pub async fn sync_marks(db: &Db, member_id: i64) -> Result<(Option<NaiveDate>, Option<NaiveDate>), StoreError> {
    let posted = on_db!(db, pool => sqlx::query_scalar::<_, Option<NaiveDate>>(
        "SELECT MAX((SELECT MAX(t.date) FROM transactions t WHERE t.account_id = a.id \
             AND t.removed_at IS NULL AND COALESCE(t.status, 'POSTED') <> 'PENDING')) \
         FROM accounts a WHERE a.member_id = $1",
    )
    .bind(member_id)
    .fetch_one(pool)
    .await)?;
    let pending = on_db!(db, pool => sqlx::query_scalar::<_, Option<NaiveDate>>(
        "SELECT MIN((SELECT MIN(t.date) FROM transactions t WHERE t.account_id = a.id \
             AND t.removed_at IS NULL AND t.status = 'PENDING')) \
         FROM accounts a WHERE a.member_id = $1",
    )
    .bind(member_id)
    .fetch_one(pool)
    .await)?;
    Ok((posted, pending))
}

/// Give stored rows the guids the aggregator now knows them by (a re-linked bank returns the
/// same purchases under new guids): each keeps its id, and so its round-up.
pub async fn adopt_guids(
    tx: &mut Tx,
    user_id: i64,
    pairs: &[(i64, String)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for (id, guid) in pairs {
        on_tx!(tx, conn => sqlx::query("UPDATE transactions SET guid = $3, updated_at = $4 WHERE id = $1 AND user_id = $2")
            .bind(*id)
            .bind(user_id)
            .bind(storable(guid))
            .bind(now)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// Mark rows the aggregator no longer returns as removed (kept, hidden from the list).
pub async fn mark_removed(tx: &mut Tx, user_id: i64, ids: &[i64], now: DateTime<Utc>) -> Result<(), StoreError> {
    for chunk in ids.chunks(500) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "UPDATE transactions SET removed_at = $2, updated_at = $2 \
             WHERE user_id = $1 AND removed_at IS NULL AND id IN ({})",
            placeholders.join(", ")
        );
        on_tx!(tx, conn => {
            let mut q = sqlx::query(&sql).bind(user_id).bind(now);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(conn).await.map(|r| r.rows_affected())
        })?;
    }
    if !ids.is_empty() {
        list_changed(tx, user_id).await?;
    }
    Ok(())
}
