//! Transactions of linked accounts. Refreshes upsert by aggregator guid, so a re-sync never
//! duplicates a transaction.

use chrono::{DateTime, NaiveDate, Utc};

use crate::{Db, StoreError, Tx, on_db, on_tx};

#[derive(Debug, Clone)]
pub struct TransactionData {
    pub guid: String,
    pub account_id: String,
    pub amount: i64,
    pub kind: String,
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
    pub id: String,
    pub account_id: String,
    pub account_name: String,
    pub account_type_ds: String,
    pub guid: String,
    pub uid: String,
    pub amount: i64,
    pub kind: String,
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

/// Rows per INSERT statement: well inside both engines' bound-parameter limits.
const BATCH: usize = 1000;

fn upsert_sql(rows: usize) -> String {
    let width = ROW_COLUMNS.len();
    let mut sql = format!(
        "INSERT INTO transactions (user_id, created_at, updated_at, {}) VALUES ",
        ROW_COLUMNS.join(", ")
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str("($1, $2, $2");
        for c in 0..width {
            sql.push_str(&format!(", ${}", 3 + r * width + c));
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (user_id, guid) DO UPDATE SET ");
    let updates: Vec<String> = ROW_COLUMNS
        .iter()
        .filter(|c| !matches!(**c, "id" | "guid" | "uid"))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    sql.push_str(&updates.join(", "));
    sql.push_str(", updated_at = excluded.updated_at");
    sql
}

/// Insert or refresh transactions by (user, aggregator guid), in batches.
pub async fn upsert(
    tx: &mut Tx,
    user_id: &str,
    rows: &[TransactionData],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(BATCH) {
        let sql = upsert_sql(chunk.len());
        on_tx!(tx, conn => {
            let mut q = sqlx::query(&sql).bind(user_id).bind(now);
            for t in chunk {
                q = q
                    .bind(crate::new_id())
                    .bind(&t.account_id)
                    .bind(&t.guid)
                    .bind(crate::new_id())
                    .bind(t.amount)
                    .bind(&t.kind)
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
            q.execute(conn).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

const SELECT: &str = "SELECT t.id, t.account_id, a.name AS account_name, a.type_ds AS account_type_ds, t.guid, t.uid, \
    t.amount, t.kind, t.status, t.category, t.top_level_category, t.description, t.original_description, t.memo, \
    t.date, t.transacted_at, t.posted_at, t.check_number, t.merchant_category_code, t.latitude, t.longitude, \
    t.is_bill_pay, t.is_direct_deposit, t.is_expense, t.is_fee, t.is_income, t.is_overdraft_fee, \
    t.is_payroll_advance, t.created_at, t.updated_at \
    FROM transactions t JOIN accounts a ON a.id = t.account_id";

/// The user's visible transactions, newest first, optionally of one account.
pub async fn list_for_user(
    db: &Db,
    user_id: &str,
    account_id: Option<&str>,
) -> Result<Vec<Transaction>, StoreError> {
    let order = "ORDER BY t.date DESC, t.transacted_at DESC, t.id DESC";
    Ok(match account_id {
        None => {
            let sql = format!("{SELECT} WHERE t.user_id = $1 AND a.is_deleted = FALSE {order}");
            on_db!(db, pool => sqlx::query_as::<_, Transaction>(&sql).bind(user_id).fetch_all(pool).await)?
        }
        Some(account) => {
            let sql = format!(
                "{SELECT} WHERE t.user_id = $1 AND t.account_id = $2 AND a.is_deleted = FALSE {order}"
            );
            on_db!(db, pool => sqlx::query_as::<_, Transaction>(&sql).bind(user_id).bind(account).fetch_all(pool).await)?
        }
    })
}

pub async fn count_for_user(db: &Db, user_id: &str) -> Result<i64, StoreError> {
    Ok(
        on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM transactions WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(pool)
        .await)?,
    )
}
