//! Transactions of linked accounts. Refreshes upsert by aggregator guid, so a re-sync never
//! duplicates a transaction.

use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use donkies_domain::{AccountFamily, Cents, Direction};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};

use crate::column::Col;
use crate::{Db, StoreError, Tx, on_db};

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

/// The columns an upsert may change: everything but the row's identity and creation time.
fn on_conflict() -> String {
    let updates: Vec<String> = ROW_COLUMNS
        .iter()
        .filter(|c| !matches!(**c, "user_id" | "created_at" | "id" | "guid" | "uid"))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(" ON CONFLICT (user_id, guid) DO UPDATE SET {}", updates.join(", "))
}

fn sqlite_sql(rows: usize) -> String {
    let row = format!("({})", vec!["?"; ROW_COLUMNS.len()].join(", "));
    format!(
        "INSERT INTO transactions ({}) VALUES {}{}",
        ROW_COLUMNS.join(", "),
        vec![row.as_str(); rows].join(", "),
        on_conflict()
    )
}

static SQLITE_FULL_CHUNK: LazyLock<String> = LazyLock::new(|| sqlite_sql(SQLITE_BATCH));

/// A staging table of this transaction, dropped again before it ends.
const PG_STAGING: &str = "CREATE TEMP TABLE transactions_staging (LIKE transactions) ON COMMIT DROP";

static PG_COPY: LazyLock<String> =
    LazyLock::new(|| format!("COPY transactions_staging ({}) FROM STDIN", ROW_COLUMNS.join(", ")));

static PG_MERGE: LazyLock<String> = LazyLock::new(|| {
    let columns = ROW_COLUMNS.join(", ");
    format!("INSERT INTO transactions ({columns}) SELECT {columns} FROM transactions_staging{}", on_conflict())
});

/// Bytes of COPY text sent to the server at a time.
const PG_COPY_CHUNK: usize = 1 << 20;

/// Insert or refresh transactions by (user, aggregator guid). On PostgreSQL the rows travel by
/// `COPY` into a staging table and one `INSERT … SELECT … ON CONFLICT` merges them; on SQLite
/// one prepared multi-row statement is reused inside the caller's transaction. Both apply the
/// same conflict rule.
pub async fn upsert(tx: &mut Tx, user_id: i64, rows: &[TransactionData], now: DateTime<Utc>) -> Result<(), StoreError> {
    // One statement cannot update the same row twice: keep the last of repeated guids.
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    let mut unique: Vec<&TransactionData> = rows.iter().rev().filter(|t| seen.insert(t.guid.as_str())).collect();
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
                        .bind(t.guid.as_str())
                        .bind(crate::new_hex_id())
                        .bind(t.amount.get())
                        .bind(t.kind.as_str())
                        .bind(t.status.as_deref())
                        .bind(t.category.as_deref())
                        .bind(t.top_level_category.as_deref())
                        .bind(t.description.as_deref())
                        .bind(t.original_description.as_deref())
                        .bind(t.memo.as_deref())
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
            sqlx::query(PG_STAGING).persistent(false).execute(&mut **conn).await?;
            let mut copy = conn.copy_in_raw(&PG_COPY).await?;
            let stamp = copy_timestamp(now);
            let mut buf = String::with_capacity(PG_COPY_CHUNK + 4096);
            for t in unique {
                copy_row(&mut buf, user_id, &stamp, t);
                if buf.len() >= PG_COPY_CHUNK {
                    if let Err(err) = copy.send(buf.as_bytes()).await {
                        let _ = copy.abort("send failed").await;
                        return Err(err.into());
                    }
                    buf.clear();
                }
            }
            if !buf.is_empty()
                && let Err(err) = copy.send(buf.as_bytes()).await
            {
                let _ = copy.abort("send failed").await;
                return Err(err.into());
            }
            copy.finish().await?;
            sqlx::query(&PG_MERGE).persistent(false).execute(&mut **conn).await?;
            sqlx::query("DROP TABLE transactions_staging").persistent(false).execute(&mut **conn).await?;
        }
    }
    Ok(())
}

fn copy_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// One line of PostgreSQL's COPY text format, in [`ROW_COLUMNS`] order.
fn copy_row(out: &mut String, user_id: i64, now: &str, t: &TransactionData) {
    use std::fmt::Write;
    let _ = write!(out, "{user_id}\t{now}\t{now}\t{}\t{}\t", crate::new_id(), t.account_id);
    copy_text(out, Some(&t.guid));
    let _ = write!(out, "\t{}\t{}\t{}\t", crate::new_hex_id(), t.amount.get(), t.kind.as_str());
    for text in [&t.status, &t.category, &t.top_level_category, &t.description, &t.original_description, &t.memo] {
        copy_text(out, text.as_deref());
        out.push('\t');
    }
    let _ = write!(out, "{}\t", t.date);
    for at in [t.transacted_at, t.posted_at] {
        match at {
            Some(at) => out.push_str(&copy_timestamp(at)),
            None => out.push_str("\\N"),
        }
        out.push('\t');
    }
    for n in [t.check_number, t.merchant_category_code] {
        copy_display(out, n);
    }
    for x in [t.latitude, t.longitude] {
        copy_display(out, x);
    }
    let flags = [
        t.is_bill_pay,
        t.is_direct_deposit,
        t.is_expense,
        t.is_fee,
        t.is_income,
        t.is_overdraft_fee,
        t.is_payroll_advance,
    ];
    for (i, flag) in flags.iter().enumerate() {
        out.push(if *flag { 't' } else { 'f' });
        out.push(if i + 1 == flags.len() { '\n' } else { '\t' });
    }
}

fn copy_display(out: &mut String, value: Option<impl std::fmt::Display>) {
    use std::fmt::Write;
    match value {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.push_str("\\N"),
    }
    out.push('\t');
}

/// A text value (or NULL) escaped for COPY's text format.
fn copy_text(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("\\N");
        return;
    };
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

const SELECT: &str = "SELECT t.id, t.account_id, a.name AS account_name, a.type_ds AS account_type_ds, t.guid, t.uid, \
    t.amount, t.kind, t.status, t.category, t.top_level_category, t.description, t.original_description, t.memo, \
    t.date, t.transacted_at, t.posted_at, t.check_number, t.merchant_category_code, t.latitude, t.longitude, \
    t.is_bill_pay, t.is_direct_deposit, t.is_expense, t.is_fee, t.is_income, t.is_overdraft_fee, \
    t.is_payroll_advance, t.created_at, t.updated_at \
    FROM transactions t JOIN accounts a ON a.id = t.account_id";

const ORDER: &str = "ORDER BY t.date DESC, t.transacted_at DESC NULLS LAST, t.id DESC";

static LIST_ALL: LazyLock<String> =
    LazyLock::new(|| format!("{SELECT} WHERE t.user_id = $1 AND a.is_deleted = FALSE {ORDER} LIMIT $2 OFFSET $3"));

static LIST_ACCOUNT: LazyLock<String> = LazyLock::new(|| {
    format!("{SELECT} WHERE t.user_id = $1 AND t.account_id = $2 AND a.is_deleted = FALSE {ORDER} LIMIT $3 OFFSET $4")
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
                WHERE t.user_id = $1 AND a.is_deleted = FALSE";
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
         WHERE t.user_id = $1 AND t.date >= $2 AND a.is_active = TRUE AND a.is_deleted = FALSE",
    )
    .bind(user_id)
    .bind(since)
    .fetch_all(pool)
    .await)?;
    Ok(rows.into_iter().map(|(kind, family, amount)| (kind.0, family.0, Cents::new(amount))).collect())
}
