//! The money loop's reads and writes for many users at once: a collection or payout run works
//! through hundreds of users per transaction with a few statements each step, where the
//! per-user functions of [`crate::money_loop`] take several statements per user. Each function
//! means exactly what its per-user sibling means, for every user it is given.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use donkies_domain::{Cents, KnownBalance};

use crate::money_loop::{Collection, Correction, Payout, PayoutPart, Purchase, StaleRoundUp, Waiting, WaitingKind};
use crate::payments::{Customer, FundingSource, NewTransfer};
use crate::users::User;
use crate::{Conn, Db, StoreError, Tx, on_conn, on_db, on_tx};

/// Ids per `IN (…)` list, and rows per multi-row statement of up to 9 parameters: under
/// SQLite's oldest limit of 999 parameters a statement.
const IDS: usize = 500;
const ROWS: usize = 100;

/// `$from, $from+1, …` for `n` parameters.
fn params(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `($from, …), (…), …`: `rows` tuples of `width` parameters each.
fn tuples(from: usize, rows: usize, width: usize) -> String {
    (0..rows).map(|r| format!("({})", params(from + r * width, width))).collect::<Vec<_>>().join(", ")
}

/// Run `sql` (whose `{ids}` is replaced by the parameter list) for each chunk of `ids`, with
/// `extra` bound first as `$1…`, collecting the rows.
macro_rules! by_ids {
    ($conn:expr, $row:ty, $sql:expr, $ids:expr $(, $extra:expr)*) => {{
        let mut out: Vec<$row> = Vec::new();
        let extras = 0 $(+ { let _ = &$extra; 1 })*;
        for chunk in $ids.chunks(IDS) {
            let sql = $sql.replace("{ids}", &params(extras + 1, chunk.len()));
            let rows = on_conn!($conn.reborrow(), c => {
                let mut q = sqlx::query_as::<_, $row>(&sql) $(.bind($extra))*;
                for id in chunk {
                    q = q.bind(*id);
                }
                q.fetch_all(c).await
            })?;
            out.extend(rows);
        }
        out
    }};
}

/// The users of `ids` that exist.
pub async fn users(db: &Db, ids: &[i64]) -> Result<Vec<User>, StoreError> {
    let mut conn = Conn::Db(db);
    let sql = format!("SELECT {} FROM users WHERE id IN ({{ids}}) ORDER BY id", crate::users::COLUMNS);
    Ok(by_ids!(conn, User, sql, ids))
}

/// Plan every statement of this transaction for the sizes the tables have now. A batch run
/// writes many rows into tables that may have been small when a connection's cached, generic
/// plan for a batch statement was made (an index lookup then looks dearer than a scan); on
/// PostgreSQL the rest of the transaction plans each statement afresh. SQLite plans each run.
pub async fn plan_for_now(tx: &mut Tx) -> Result<(), StoreError> {
    if let Tx::Postgres(conn) = tx {
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan").execute(&mut **conn).await?;
    }
    Ok(())
}

/// Hold the rows of the users of `ids` until the transaction ends, in id order (see
/// [`crate::money_loop::lock_user`]).
pub async fn lock_users(tx: &mut Tx, ids: &[i64]) -> Result<(), StoreError> {
    if let Tx::Postgres(conn) = tx {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        for chunk in sorted.chunks(IDS) {
            let sql = format!("SELECT id FROM users WHERE id IN ({}) ORDER BY id FOR UPDATE", params(1, chunk.len()));
            let mut q = sqlx::query_scalar::<_, i64>(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.fetch_all(&mut **conn).await?;
        }
    }
    Ok(())
}

/// Each user's round-up source, as [`crate::payments`] finds it one user at a time: the
/// funding source (not removed) of the user's first account, by creation, that is the source
/// of transfers and is not hidden; no entry when that account has none.
pub async fn round_up_sources(db: &Db, user_ids: &[i64]) -> Result<BTreeMap<i64, FundingSource>, StoreError> {
    let mut conn = Conn::Db(db);
    let sql = "SELECT user_id, id FROM accounts \
         WHERE user_id IN ({ids}) AND is_funding_source_for_transfer = TRUE AND is_deleted = FALSE \
         ORDER BY created_at DESC, id DESC";
    // Newest first, so each user's first account is the one the map keeps.
    let accounts: BTreeMap<i64, i64> = by_ids!(conn, (i64, i64), sql, user_ids).into_iter().collect();
    let account_ids: Vec<i64> = accounts.values().copied().collect();
    let sql = format!("{} WHERE account_id IN ({{ids}}) AND is_removed = FALSE", crate::payments::FUNDING_SOURCE);
    Ok(by_ids!(conn, FundingSource, sql, account_ids)
        .into_iter()
        .filter(|s| accounts.get(&s.user_id) == Some(&s.account_id))
        .map(|s| (s.user_id, s))
        .collect())
}

/// The customers of `ids`.
pub async fn customers(db: &Db, ids: &[i64]) -> Result<BTreeMap<i64, Customer>, StoreError> {
    let mut conn = Conn::Db(db);
    let sql = format!("{} WHERE id IN ({{ids}})", crate::payments::CUSTOMER);
    Ok(by_ids!(conn, Customer, sql, ids).into_iter().map(|c| (c.id, c)).collect())
}

/// [`crate::money_loop::stale_roundups`] of every user of `user_ids`, by user.
///
/// A round-up is of its user's own purchase, so both sides are read by user (the active
/// round-ups by `roundups_user_active`, the purchases by `transactions_user_date`): the cost
/// follows the batch's users, not every round-up and purchase in the database.
pub async fn stale_roundups(tx: &mut Tx, user_ids: &[i64]) -> Result<BTreeMap<i64, Vec<StaleRoundUp>>, StoreError> {
    let mut conn = Conn::Tx(tx);
    let sql = "SELECT r.user_id, r.id, r.amount, r.collection_id, t.removed_at IS NOT NULL, \
           COALESCE(t.status, 'POSTED') = 'PENDING' \
         FROM roundups r JOIN transactions t ON t.id = r.transaction_id \
         WHERE r.user_id IN ({ids}) AND t.user_id IN ({ids}) AND r.retired_at IS NULL \
           AND (t.removed_at IS NOT NULL OR COALESCE(t.status, 'POSTED') = 'PENDING' \
                OR t.amount <> COALESCE(r.purchase_amount, t.amount)) \
         ORDER BY r.id";
    let rows = by_ids!(conn, (i64, i64, i64, Option<i64>, bool, bool), sql, user_ids);
    let mut out: BTreeMap<i64, Vec<StaleRoundUp>> = BTreeMap::new();
    for (user_id, id, amount, collection_id, removed, pending) in rows {
        out.entry(user_id).or_default().push(crate::money_loop::stale_of(id, amount, collection_id, removed, pending));
    }
    Ok(out)
}

/// [`crate::money_loop::ungathered_purchases`] of every user of `user_ids`, by user.
pub async fn ungathered_purchases(tx: &mut Tx, user_ids: &[i64]) -> Result<BTreeMap<i64, Vec<Purchase>>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        user_id: i64,
        #[sqlx(flatten)]
        purchase: Purchase,
    }
    let mut conn = Conn::Tx(tx);
    // The round-ups are read by user too (see `stale_roundups`): an anti-join the planner
    // makes a hash join would otherwise read every active round-up in the database.
    let sql = "SELECT t.user_id, t.id AS transaction_id, t.account_id, t.amount, t.kind, a.type_ds AS family \
         FROM transactions t JOIN accounts a ON a.id = t.account_id \
         LEFT JOIN roundups r ON r.transaction_id = t.id AND r.retired_at IS NULL AND r.user_id IN ({ids}) \
         WHERE t.user_id IN ({ids}) AND a.type_ds = 'debit' AND a.is_active = TRUE AND a.is_deleted = FALSE \
           AND t.removed_at IS NULL AND COALESCE(t.status, 'POSTED') <> 'PENDING' AND r.id IS NULL \
         ORDER BY t.date, t.id";
    let mut out: BTreeMap<i64, Vec<Purchase>> = BTreeMap::new();
    for row in by_ids!(conn, Row, sql, user_ids) {
        out.entry(row.user_id).or_default().push(row.purchase);
    }
    Ok(out)
}

/// [`crate::money_loop::waiting`] of every user of `user_ids`, by user, oldest first.
pub async fn waiting(db: impl Into<Conn<'_>>, user_ids: &[i64]) -> Result<BTreeMap<i64, Vec<Waiting>>, StoreError> {
    let mut conn = db.into();
    let sql = "SELECT user_id, 'roundup', id, account_id, amount, created_at FROM roundups \
           WHERE user_id IN ({ids}) AND collection_id IS NULL AND amount > 0 AND voided_at IS NULL \
         UNION ALL SELECT user_id, 'contribution', id, NULL, amount, created_at FROM contributions \
           WHERE user_id IN ({ids}) AND collection_id IS NULL \
         ORDER BY 6, 3";
    // Both lists name the same parameters.
    let rows = by_ids!(conn, (i64, String, i64, Option<i64>, i64, DateTime<Utc>), sql, user_ids);
    let mut out: BTreeMap<i64, Vec<Waiting>> = BTreeMap::new();
    for (user_id, kind, id, account_id, amount, created_at) in rows {
        out.entry(user_id).or_default().push(Waiting {
            kind: if kind == "roundup" { WaitingKind::RoundUp } else { WaitingKind::Contribution },
            id,
            account_id,
            amount: Cents::new(amount),
            created_at,
        });
    }
    Ok(out)
}

/// [`crate::money_loop::open_corrections`] of every user of `user_ids`, by user.
pub async fn open_corrections(
    db: impl Into<Conn<'_>>,
    user_ids: &[i64],
) -> Result<BTreeMap<i64, Vec<Correction>>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        user_id: i64,
        #[sqlx(flatten)]
        correction: Correction,
    }
    let mut conn = db.into();
    let sql = "SELECT user_id, id, roundup_id, amount, reason, collection_id, created_at FROM corrections \
         WHERE user_id IN ({ids}) AND collection_id IS NULL ORDER BY created_at, id";
    let mut out: BTreeMap<i64, Vec<Correction>> = BTreeMap::new();
    for row in by_ids!(conn, Row, sql, user_ids) {
        out.entry(row.user_id).or_default().push(row.correction);
    }
    Ok(out)
}

/// What was collected from each user of `user_ids` (collections not failed) since `day` and
/// since `month`, as [`crate::money_loop::collected_since`] counts it.
pub async fn collected_since(
    tx: &mut Tx,
    user_ids: &[i64],
    day: DateTime<Utc>,
    month: DateTime<Utc>,
) -> Result<BTreeMap<i64, (Cents, Cents)>, StoreError> {
    let mut conn = Conn::Tx(tx);
    let sql = "SELECT user_id, CAST(SUM(CASE WHEN created_at >= $1 THEN amount ELSE 0 END) AS BIGINT), \
           CAST(SUM(amount) AS BIGINT) FROM collections \
         WHERE user_id IN ({ids}) AND created_at >= $2 AND status IN ('pending', 'processed') GROUP BY user_id";
    let rows = by_ids!(conn, (i64, i64, i64), sql, user_ids, day, month);
    Ok(rows.into_iter().map(|(user, d, m)| (user, (Cents::new(d), Cents::new(m)))).collect())
}

/// [`crate::accounts::known_balance`] of each account of `account_ids`, by account.
pub async fn known_balances(tx: &mut Tx, account_ids: &[i64]) -> Result<BTreeMap<i64, KnownBalance>, StoreError> {
    let mut conn = Conn::Tx(tx);
    let sql = "SELECT id, available_balance, balance_at FROM accounts WHERE id IN ({ids}) AND is_deleted = FALSE";
    let rows = by_ids!(conn, (i64, Option<i64>, Option<DateTime<Utc>>), sql, account_ids);
    Ok(rows
        .into_iter()
        .map(|(id, available, seen_at)| (id, KnownBalance { available: available.map(Cents::new), seen_at }))
        .collect())
}

/// [`crate::payments::insert_transfer`] of many; a reference or key already taken is a
/// Conflict, as there.
pub async fn insert_transfers(tx: &mut Tx, rows: &[NewTransfer<'_>]) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO transfers (id, user_id, reference, idempotency_key, source_funding_source, destination, \
               amount, status, created_at, updated_at) VALUES {}",
            (0..chunk.len())
                .map(|i| {
                    let p = i * 9 + 1;
                    format!("({}, ${})", params(p, 9), p + 8)
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        on_tx!(tx, conn => {
            let mut q = sqlx::query(&sql);
            for t in chunk {
                q = q
                    .bind(t.id)
                    .bind(t.user_id)
                    .bind(t.reference)
                    .bind(t.idempotency_key)
                    .bind(t.source_funding_source)
                    .bind(t.destination)
                    .bind(t.amount.get())
                    .bind(t.status.as_str())
                    .bind(t.now);
            }
            q.execute(conn).await.map(|_| ())
        })
        .map_err(StoreError::from_write)?;
    }
    Ok(())
}

/// [`crate::money_loop::insert_collection`] of many: each collection with the part it
/// gathered from each account.
pub async fn insert_collections(
    tx: &mut Tx,
    collections: &[(Collection, Vec<(i64, Cents)>)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for chunk in collections.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO collections (id, user_id, account_id, amount, offset_amount, status, transfer_id, created_at, \
               updated_at) VALUES {}",
            (0..chunk.len())
                .map(|i| {
                    let p = i * 7 + 2;
                    format!("(${}, ${}, ${}, ${}, ${}, ${}, ${}, $1, $1)", p, p + 1, p + 2, p + 3, p + 4, p + 5, p + 6)
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        on_tx!(tx, conn => {
            let mut q = sqlx::query(&sql).bind(now);
            for (c, _) in chunk {
                q = q
                    .bind(c.id)
                    .bind(c.user_id)
                    .bind(c.account_id)
                    .bind(c.amount.get())
                    .bind(c.offset.get())
                    .bind(c.status.as_str())
                    .bind(c.transfer_id);
            }
            q.execute(conn).await.map(|_| ())
        })
        .map_err(StoreError::from_write)?;
    }
    let parts: Vec<(i64, i64, i64, Cents)> = collections
        .iter()
        .flat_map(|(c, parts)| parts.iter().map(move |(account, amount)| (c.id, c.user_id, *account, *amount)))
        .collect();
    for chunk in parts.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO collection_parts (id, collection_id, user_id, account_id, amount, created_at) VALUES {}",
            (0..chunk.len())
                .map(|i| {
                    let p = i * 5 + 2;
                    format!("(${}, ${}, ${}, ${}, ${}, $1)", p, p + 1, p + 2, p + 3, p + 4)
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        on_tx!(tx, conn => {
            let mut q = sqlx::query(&sql).bind(now);
            for (collection_id, user_id, account_id, amount) in chunk {
                q = q.bind(crate::new_id()).bind(*collection_id).bind(*user_id).bind(*account_id).bind(amount.get());
            }
            q.execute(conn).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Mark waiting items and open corrections as taken by their collection: `(collection_id,
/// item)` pairs. False (and nothing should be kept) when any of them was taken first.
pub async fn take(tx: &mut Tx, waiting: &[(i64, &Waiting)], corrections: &[(i64, i64)]) -> Result<bool, StoreError> {
    let roundups: Vec<(i64, i64)> =
        waiting.iter().filter(|(_, w)| w.kind == WaitingKind::RoundUp).map(|(c, w)| (w.id, *c)).collect();
    let contributions: Vec<(i64, i64)> =
        waiting.iter().filter(|(_, w)| w.kind == WaitingKind::Contribution).map(|(c, w)| (w.id, *c)).collect();
    let corrections: Vec<(i64, i64)> = corrections.iter().map(|(c, id)| (*id, *c)).collect();
    for (table, pairs) in [("roundups", roundups), ("contributions", contributions), ("corrections", corrections)] {
        if pairs.is_empty() {
            continue;
        }
        if let Tx::Postgres(conn) = tx {
            // One statement of arrays; the row estimate of UNNEST keeps the plan on the index.
            let sql = format!(
                "UPDATE {table} SET collection_id = v.cid FROM UNNEST($1::int8[], $2::int8[]) AS v(id, cid) \
                 WHERE {table}.id = v.id AND {table}.collection_id IS NULL"
            );
            let (ids, cids): (Vec<i64>, Vec<i64>) = pairs.iter().copied().unzip();
            let n = sqlx::query(&sql).bind(ids).bind(cids).execute(&mut **conn).await?.rows_affected();
            if n != pairs.len() as u64 {
                return Ok(false);
            }
            continue;
        }
        for chunk in pairs.chunks(IDS / 2) {
            let sql = format!(
                "WITH v(id, cid) AS (VALUES {}) \
                 UPDATE {table} SET collection_id = v.cid FROM v WHERE {table}.id = v.id AND {table}.collection_id IS NULL",
                tuples(1, chunk.len(), 2)
            );
            let n = on_tx!(tx, conn => {
                let mut q = sqlx::query(&sql);
                for (id, collection_id) in chunk {
                    q = q.bind(*id).bind(*collection_id);
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

/// Users to collect from, in id order, after `after` (a run pages through them).
pub async fn users_to_collect_after(db: &Db, after: i64, limit: i64) -> Result<Vec<i64>, StoreError> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT u.id FROM users u WHERE u.id > $1 AND u.is_closed_account = FALSE AND EXISTS ( \
           SELECT 1 FROM accounts a WHERE a.user_id = u.id AND a.is_funding_source_for_transfer = TRUE \
             AND a.is_deleted = FALSE) \
         ORDER BY u.id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await)?)
}

// ---------------------------------------------------------------------------------------------
// Payouts

/// What each user of `user_ids` holds at Donkies that no payout has reserved (the ledger's
/// available balance of the user's held account); users holding nothing are left out.
pub async fn held(db: &Db, user_ids: &[i64]) -> Result<BTreeMap<i64, Cents>, StoreError> {
    let mut conn = Conn::Db(db);
    let codes: Vec<String> =
        user_ids.iter().map(|id| donkies_domain::LedgerAccount::Held { user_id: *id }.code()).collect();
    let sql = "SELECT account, posted - pending_debits FROM ledger_balances WHERE account IN ({ids})";
    let mut out = BTreeMap::new();
    for chunk in codes.chunks(IDS) {
        let sql = sql.replace("{ids}", &params(1, chunk.len()));
        let rows = on_conn!(conn.reborrow(), c => {
            let mut q = sqlx::query_as::<_, (String, i64)>(&sql);
            for code in chunk {
                q = q.bind(code);
            }
            q.fetch_all(c).await
        })?;
        for (code, available) in rows {
            if let Some(user) =
                code.strip_prefix("user:").and_then(|c| c.strip_suffix(":held")).and_then(|u| u.parse().ok())
            {
                out.insert(user, Cents::new(available));
            }
        }
    }
    Ok(out)
}

/// [`crate::accounts::debt_shares`] of every user of `user_ids`, by user, oldest account first.
pub async fn debt_shares(db: &Db, user_ids: &[i64]) -> Result<BTreeMap<i64, Vec<(i64, i64)>>, StoreError> {
    let mut conn = Conn::Db(db);
    let sql = "SELECT user_id, id, transfer_share FROM accounts \
         WHERE user_id IN ({ids}) AND type_ds = 'debt' AND is_active = TRUE AND is_deleted = FALSE \
         ORDER BY created_at, id";
    let mut out: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for (user, account, share) in by_ids!(conn, (i64, i64, i64), sql, user_ids) {
        out.entry(user).or_default().push((account, share));
    }
    Ok(out)
}

/// The funding source (not removed) of each account of `account_ids` that has one, by account.
pub async fn funding_sources_of_accounts(
    db: &Db,
    account_ids: &[i64],
) -> Result<BTreeMap<i64, FundingSource>, StoreError> {
    let mut conn = Conn::Db(db);
    let sql = format!("{} WHERE account_id IN ({{ids}}) AND is_removed = FALSE", crate::payments::FUNDING_SOURCE);
    Ok(by_ids!(conn, FundingSource, sql, account_ids).into_iter().map(|s| (s.account_id, s)).collect())
}

/// The users of `user_ids` who have a payout for `period` already.
pub async fn paid_for_period(tx: &mut Tx, user_ids: &[i64], period: &str) -> Result<Vec<i64>, StoreError> {
    let mut conn = Conn::Tx(tx);
    let sql = "SELECT user_id FROM payouts WHERE period = $1 AND user_id IN ({ids})";
    Ok(by_ids!(conn, (i64,), sql, user_ids, period).into_iter().map(|(u,)| u).collect())
}

/// [`crate::money_loop::insert_payout`] and [`crate::money_loop::insert_part`] of many.
pub async fn insert_payouts(tx: &mut Tx, payouts: &[Payout], parts: &[PayoutPart]) -> Result<(), StoreError> {
    for chunk in payouts.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO payouts (id, user_id, amount, period, created_at) VALUES {}",
            tuples(1, chunk.len(), 5)
        );
        on_tx!(tx, conn => {
            let mut q = sqlx::query(&sql);
            for p in chunk {
                q = q.bind(p.id).bind(p.user_id).bind(p.amount.get()).bind(&p.period).bind(p.created_at);
            }
            q.execute(conn).await.map(|_| ())
        })
        .map_err(StoreError::from_write)?;
    }
    for chunk in parts.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO payout_parts (id, payout_id, user_id, account_id, amount, share, method, status, transfer_id, \
               created_at) VALUES {}",
            (0..chunk.len())
                .map(|i| {
                    let p = i * 9 + 1;
                    format!("({}, 'pending', {})", params(p, 7), params(p + 7, 2))
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        on_tx!(tx, conn => {
            let mut q = sqlx::query(&sql);
            for p in chunk {
                q = q
                    .bind(p.id)
                    .bind(p.payout_id)
                    .bind(p.user_id)
                    .bind(p.account_id)
                    .bind(p.amount.get())
                    .bind(p.share)
                    .bind(p.method.as_str())
                    .bind(p.transfer_id)
                    .bind(p.created_at);
            }
            q.execute(conn).await.map(|_| ())
        })?;
    }
    Ok(())
}
