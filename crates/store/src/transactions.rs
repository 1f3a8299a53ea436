//! Transactions of linked accounts. Refreshes upsert by aggregator guid, so a re-sync never
//! duplicates a transaction.

use chrono::{DateTime, NaiveDate, Utc};
use donkies_domain::{AccountFamily, Cents, Direction};

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

/// Element types of the PostgreSQL arrays, one per column after `user_id, created_at, updated_at`.
const PG_ARRAY_TYPES: &[&str] = &[
    "int8",
    "int8",
    "text",
    "text",
    "int8",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "date",
    "timestamptz",
    "timestamptz",
    "int8",
    "int8",
    "float8",
    "float8",
    "bool",
    "bool",
    "bool",
    "bool",
    "bool",
    "bool",
    "bool",
];

/// Rows per SQLite statement: SQLite looks bound parameters up one by one, so a statement
/// with tens of thousands of them costs more per row than several smaller ones.
const SQLITE_BATCH: usize = 200;
/// Rows per PostgreSQL statement (one array per column, so the row count is free).
const POSTGRES_BATCH: usize = 10_000;

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

fn postgres_sql() -> String {
    let arrays: Vec<String> = PG_ARRAY_TYPES.iter().enumerate().map(|(i, t)| format!("${}::{t}[]", i + 3)).collect();
    format!(
        "INSERT INTO transactions ({}) SELECT $1, $2, $2, * FROM UNNEST({}){}",
        ROW_COLUMNS.join(", "),
        arrays.join(", "),
        on_conflict()
    )
}

/// Insert or refresh transactions by (user, aggregator guid), in batches. The statements
/// differ by engine only in how the rows travel: arrays on PostgreSQL, row values on SQLite.
pub async fn upsert(tx: &mut Tx, user_id: i64, rows: &[TransactionData], now: DateTime<Utc>) -> Result<(), StoreError> {
    // One statement cannot update the same row twice: keep the last of repeated guids.
    let mut seen = std::collections::HashSet::new();
    let mut unique: Vec<&TransactionData> = rows.iter().rev().filter(|t| seen.insert(t.guid.as_str())).collect();
    unique.reverse();
    match tx {
        Tx::Sqlite(conn, _) => {
            for chunk in unique.chunks(SQLITE_BATCH) {
                let sql = sqlite_sql(chunk.len());
                let mut q = sqlx::query(&sql);
                for t in chunk {
                    q = q
                        .bind(user_id)
                        .bind(now)
                        .bind(now)
                        .bind(crate::new_id())
                        .bind(t.account_id)
                        .bind(&t.guid)
                        .bind(crate::new_hex_id())
                        .bind(t.amount.get())
                        .bind(t.kind.as_str())
                        .bind(&t.status)
                        .bind(&t.category)
                        .bind(&t.top_level_category)
                        .bind(&t.description)
                        .bind(&t.original_description)
                        .bind(&t.memo)
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
            let sql = postgres_sql();
            for chunk in unique.chunks(POSTGRES_BATCH) {
                let col = |f: fn(&TransactionData) -> Option<String>| chunk.iter().map(|t| f(t)).collect::<Vec<_>>();
                let flag = |f: fn(&TransactionData) -> bool| chunk.iter().map(|t| f(t)).collect::<Vec<_>>();
                sqlx::query(&sql)
                    .bind(user_id)
                    .bind(now)
                    .bind(chunk.iter().map(|_| crate::new_id()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|t| t.account_id).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|t| t.guid.clone()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|_| crate::new_hex_id()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|t| t.amount.get()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|t| t.kind.as_str()).collect::<Vec<_>>())
                    .bind(col(|t| t.status.clone()))
                    .bind(col(|t| t.category.clone()))
                    .bind(col(|t| t.top_level_category.clone()))
                    .bind(col(|t| t.description.clone()))
                    .bind(col(|t| t.original_description.clone()))
                    .bind(col(|t| t.memo.clone()))
                    .bind(chunk.iter().map(|t| t.date).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|t| t.transacted_at).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|t| t.posted_at).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|t| t.check_number).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|t| t.merchant_category_code).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|t| t.latitude).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|t| t.longitude).collect::<Vec<_>>())
                    .bind(flag(|t| t.is_bill_pay))
                    .bind(flag(|t| t.is_direct_deposit))
                    .bind(flag(|t| t.is_expense))
                    .bind(flag(|t| t.is_fee))
                    .bind(flag(|t| t.is_income))
                    .bind(flag(|t| t.is_overdraft_fee))
                    .bind(flag(|t| t.is_payroll_advance))
                    .execute(&mut **conn)
                    .await?;
            }
        }
    }
    Ok(())
}

const SELECT: &str = "SELECT t.id, t.account_id, a.name AS account_name, a.type_ds AS account_type_ds, t.guid, t.uid, \
    t.amount, t.kind, t.status, t.category, t.top_level_category, t.description, t.original_description, t.memo, \
    t.date, t.transacted_at, t.posted_at, t.check_number, t.merchant_category_code, t.latitude, t.longitude, \
    t.is_bill_pay, t.is_direct_deposit, t.is_expense, t.is_fee, t.is_income, t.is_overdraft_fee, \
    t.is_payroll_advance, t.created_at, t.updated_at \
    FROM transactions t JOIN accounts a ON a.id = t.account_id";

/// The user's visible transactions, newest first, optionally of one account, from `offset` on,
/// at most `limit` of them (all without a limit).
pub async fn list_for_user(
    db: &Db,
    user_id: i64,
    account_id: Option<i64>,
    limit: Option<i64>,
    offset: i64,
) -> Result<Vec<Transaction>, StoreError> {
    let order = "ORDER BY t.date DESC, t.transacted_at DESC NULLS LAST, t.id DESC";
    let (limit, offset) = (limit.unwrap_or(i64::MAX), offset.max(0));
    Ok(match account_id {
        None => {
            let sql = format!("{SELECT} WHERE t.user_id = $1 AND a.is_deleted = FALSE {order} LIMIT $2 OFFSET $3");
            on_db!(db, pool => sqlx::query_as::<_, Transaction>(&sql).bind(user_id).bind(limit).bind(offset).fetch_all(pool).await)?
        }
        Some(account) => {
            let sql = format!(
                "{SELECT} WHERE t.user_id = $1 AND t.account_id = $2 AND a.is_deleted = FALSE {order} LIMIT $3 OFFSET $4"
            );
            on_db!(db, pool => sqlx::query_as::<_, Transaction>(&sql)
                .bind(user_id)
                .bind(account)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await)?
        }
    })
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
