//! The double-entry ledger's storage: immutable entries, two-phase pending entries and the
//! balances they add up to, kept in the same transaction. The rules (the chart of accounts,
//! which entries are legal) live in [`donkies_domain::ledger`]; this module enforces them in SQL
//! so that concurrent transactions cannot break them:
//!
//! - an entry's key is `UNIQUE`: posting it again is [`Posted::AlreadyPosted`], a no-op;
//! - a pending entry resolves with `UPDATE … WHERE state = 'pending'`: exactly one of post or
//!   void wins, the other is [`LedgerRefusal::AlreadyResolved`];
//! - a user account is debited with `UPDATE … WHERE posted - pending_debits >= amount`, so it
//!   never goes below zero, counting what pending entries reserved;
//! - every write of one call runs inside a savepoint of the caller's transaction: a refusal
//!   leaves nothing behind, and the caller's own change can still commit;
//! - there is no function to change or delete an entry, and triggers refuse it in SQL.
//!
//! Every function takes the caller's [`Tx`], so a service records its movement in the same
//! transaction as its own change.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use donkies_domain::{
    Balance, Cents, Entry, EntryKind, LedgerAccount, LedgerRefusal, Movement, PendingState, Posted, Recorded, Step,
};

use crate::{Db, StoreError, Tx, new_id, now, on_db, on_tx};

/// Why a ledger write did not happen: the ledger's rules refused it, or the database failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Refused(#[from] LedgerRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for LedgerError {
    fn from(err: sqlx::Error) -> Self {
        LedgerError::Store(StoreError::Database(err))
    }
}

impl LedgerError {
    /// The rule that refused the write, if one did.
    pub fn refusal(&self) -> Option<&LedgerRefusal> {
        match self {
            LedgerError::Refused(refusal) => Some(refusal),
            LedgerError::Store(_) => None,
        }
    }
}

/// A posted entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: i64,
    pub entry: Entry,
    pub user_id: Option<i64>,
    /// The pending entry this entry posted, for two-phase movements.
    pub pending_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// A two-phase entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    pub id: i64,
    pub entry: Entry,
    pub user_id: Option<i64>,
    pub state: PendingState,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Something `check` found off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discrepancy {
    /// The stored balance is not what the entries add up to.
    BalanceMismatch { account: String, stored: Balance, from_entries: Balance },
    /// A user account is below zero, counting pending debits.
    BelowZero { account: LedgerAccount, balance: Balance },
    /// An account code the chart of accounts does not know.
    UnknownAccount { account: String },
    /// Entries (posted or pending) of a kind that does not allow their accounts.
    IllegalEntries { kind: String, debit: String, credit: String },
    /// A pending entry posted by other than exactly one matching entry, or an entry posting one
    /// that is not posted.
    ResolutionMismatch { pending_id: i64, state: String, entries: i64 },
    /// The stored posted balances do not sum to zero.
    TotalNotZero { total: i128 },
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Record an entry that does not wait on the bank. The same entry again is
/// [`Posted::AlreadyPosted`] and changes nothing; its key naming a different entry is
/// [`LedgerRefusal::KeyConflict`]; a user account it would take below zero is
/// [`LedgerRefusal::InsufficientBalance`].
pub async fn post(tx: &mut Tx, entry: &Entry) -> Result<Posted, LedgerError> {
    savepoint(tx).await?;
    let result = post_in(tx, entry).await;
    finish(tx, result).await
}

/// Reserve an entry that waits on the bank; its id. Idempotent by key: the same entry again
/// answers the same id, whatever became of it since.
pub async fn begin_pending(tx: &mut Tx, entry: &Entry) -> Result<i64, LedgerError> {
    savepoint(tx).await?;
    let result = begin_pending_in(tx, entry).await;
    finish(tx, result).await.map(|(id, _)| id)
}

/// Post the pending entry `pending_id`: what it reserved moves. A pending entry resolves once:
/// afterwards this is [`LedgerRefusal::AlreadyResolved`].
pub async fn post_pending(tx: &mut Tx, pending_id: i64) -> Result<PendingEntry, LedgerError> {
    resolve(tx, pending_id, PendingState::Posted).await
}

/// Void the pending entry `pending_id`: what it reserved is released. Exactly once, like
/// [`post_pending`]. This releases only; [`record`] of a [`Movement`] also gives a voided
/// collection back to the user's round-ups.
pub async fn void_pending(tx: &mut Tx, pending_id: i64) -> Result<PendingEntry, LedgerError> {
    resolve(tx, pending_id, PendingState::Voided).await
}

/// Record a whole movement of the money loop, all of its steps or none. A movement recorded
/// before (the same entries, or the same resolution) is [`Recorded::AlreadyRecorded`];
/// resolving a pending entry the other way is [`LedgerRefusal::AlreadyResolved`].
pub async fn record(tx: &mut Tx, movement: &Movement) -> Result<Recorded, LedgerError> {
    let steps = movement.steps()?;
    savepoint(tx).await?;
    let result = record_in(tx, &steps).await;
    finish(tx, result).await
}

/// Record many movements, all of them or none, with the guarantees of [`record`] for each: a
/// movement recorded before is a no-op, a key naming another entry is refused, and no user
/// account is left below zero. When every step posts or begins a pending entry (round-ups,
/// contributions, collections, payouts starting) the entries go in together — one insert per
/// table for all of them, one look for their keys in the other table, one write for every
/// balance they touch — where [`record`] of each takes several statements per entry; the
/// limits are then checked on the balances the batch leaves (its entries apply together, so no
/// one sees a state in between). Movements that resolve pending entries are recorded step by
/// step, in order. [`Recorded::New`] when anything was new.
pub async fn record_all(tx: &mut Tx, movements: &[Movement]) -> Result<Recorded, LedgerError> {
    let mut steps = Vec::new();
    for movement in movements {
        steps.extend(movement.steps()?);
    }
    if steps.is_empty() {
        return Ok(Recorded::AlreadyRecorded);
    }
    let opening = steps.iter().all(|step| matches!(step, Step::Post(_) | Step::BeginPending(_)));
    savepoint(tx).await?;
    let result = if opening { open_all_in(tx, &steps).await } else { record_in(tx, &steps).await };
    finish(tx, result).await
}

/// Rows per multi-row statement: 9 parameters each stays under SQLite's oldest limit of 999.
const BATCH_ROWS: usize = 100;

/// Insert entries into `table` (`ledger_entries` or `ledger_pending`) unless their key is
/// taken; the ids of those inserted.
async fn insert_entries(
    tx: &mut Tx,
    table: &str,
    entries: &[(&Entry, i64)],
    at: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    let mut inserted = Vec::with_capacity(entries.len());
    let extra = if table == "ledger_entries" { "pending_id" } else { "state" };
    let extra_value = if table == "ledger_entries" { "NULL" } else { "'pending'" };
    if let Tx::Postgres(conn) = tx {
        // One statement of arrays, however many entries.
        let sql = format!(
            "INSERT INTO {table} (id, key, kind, debit_account, credit_account, amount, user_id, {extra}, created_at) \
             SELECT id, key, kind, d, c, amount, user_id, {extra_value}, $1 \
             FROM UNNEST($2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[]) \
               AS v(id, key, kind, d, c, amount, user_id) \
             ON CONFLICT (key) DO NOTHING RETURNING id"
        );
        let column = |f: fn(&Entry) -> String| entries.iter().map(|(e, _)| f(e)).collect::<Vec<String>>();
        return Ok(sqlx::query_scalar::<_, i64>(&sql)
            .bind(at)
            .bind(entries.iter().map(|(_, id)| *id).collect::<Vec<i64>>())
            .bind(column(|e| e.key().to_owned()))
            .bind(column(|e| e.kind().as_str().to_owned()))
            .bind(column(|e| e.debit().code()))
            .bind(column(|e| e.credit().code()))
            .bind(entries.iter().map(|(e, _)| e.amount().get()).collect::<Vec<i64>>())
            .bind(entries.iter().map(|(e, _)| e.user_id()).collect::<Vec<Option<i64>>>())
            .fetch_all(&mut **conn)
            .await?);
    }
    for chunk in entries.chunks(BATCH_ROWS) {
        let mut sql = format!(
            "INSERT INTO {table} (id, key, kind, debit_account, credit_account, amount, user_id, {extra}, created_at) VALUES "
        );
        for i in 0..chunk.len() {
            let p = i * 7;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, {extra_value}, $1)",
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7,
                p + 8
            ));
        }
        sql.push_str(" ON CONFLICT (key) DO NOTHING RETURNING id");
        let got = on_tx!(tx, conn => {
            let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(at);
            for (entry, id) in chunk {
                q = q
                    .bind(*id)
                    .bind(entry.key())
                    .bind(entry.kind().as_str())
                    .bind(entry.debit().code())
                    .bind(entry.credit().code())
                    .bind(entry.amount().get())
                    .bind(entry.user_id());
            }
            q.fetch_all(conn).await
        })?;
        inserted.extend(got);
    }
    Ok(inserted)
}

/// The first of `keys` that `table` holds.
async fn first_key_in(tx: &mut Tx, table: &str, keys: &[&str]) -> Result<Option<String>, StoreError> {
    if let Tx::Postgres(conn) = tx {
        let sql = format!("SELECT key FROM {table} WHERE key = ANY($1) LIMIT 1");
        return Ok(sqlx::query_scalar::<_, String>(&sql).bind(keys).fetch_optional(&mut **conn).await?);
    }
    for chunk in keys.chunks(BATCH_ROWS * 5) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT key FROM {table} WHERE key IN ({}) LIMIT 1", placeholders.join(", "));
        let taken = on_tx!(tx, conn => {
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for key in chunk {
                q = q.bind(*key);
            }
            q.fetch_optional(conn).await
        })?;
        if taken.is_some() {
            return Ok(taken);
        }
    }
    Ok(None)
}

async fn open_all_in(tx: &mut Tx, steps: &[Step]) -> Result<Recorded, LedgerError> {
    let at = now();
    let mut posts: Vec<(&Entry, i64)> = Vec::new();
    let mut begins: Vec<(&Entry, i64)> = Vec::new();
    for step in steps {
        match step {
            Step::Post(entry) if !entry.kind().is_two_phase() => posts.push((entry, new_id())),
            Step::BeginPending(entry) if entry.kind().is_two_phase() => begins.push((entry, new_id())),
            Step::Post(entry) | Step::BeginPending(entry) => {
                return Err(LedgerRefusal::WrongPhase { kind: entry.kind() }.into());
            }
            Step::PostPending(_) | Step::VoidPending(_) => {
                return Err(StoreError::Corrupt("not an opening step".into()).into());
            }
        }
    }
    // (entry, posted) of what is new.
    let mut new: Vec<(&Entry, bool)> = Vec::with_capacity(steps.len());
    for (table, rows, posted) in [("ledger_entries", &posts, true), ("ledger_pending", &begins, false)] {
        let inserted: std::collections::BTreeSet<i64> =
            insert_entries(tx, table, rows, at).await?.into_iter().collect();
        for (entry, id) in rows {
            if inserted.contains(id) {
                new.push((entry, posted));
            } else {
                // Its key was taken (before, or earlier in this batch): fine when it names this entry.
                same_as_recorded(tx, entry).await?;
            }
        }
    }
    if new.is_empty() {
        return Ok(Recorded::AlreadyRecorded);
    }
    // A posted entry's key must not name a pending one, nor a pending one's a posted entry.
    for (table, posted) in [("ledger_pending", true), ("ledger_entries", false)] {
        let keys: Vec<&str> = new.iter().filter(|(_, p)| *p == posted).map(|(e, _)| e.key()).collect();
        if let Some(key) = first_key_in(tx, table, &keys).await? {
            return Err(LedgerRefusal::KeyConflict { key }.into());
        }
    }
    // What the entries change, per account, applied in account order (as `shift` does).
    struct Net {
        account: LedgerAccount,
        delta: Delta,
        /// A user account being debited: it must stay at or above zero available.
        limited: bool,
        debited: i64,
    }
    let mut nets: BTreeMap<String, Net> = BTreeMap::new();
    let overflow = || LedgerError::from(LedgerRefusal::Overflow);
    for (entry, posted) in &new {
        let amount = entry.amount().get();
        let net = |account: LedgerAccount| Net { account, delta: Delta::NONE, limited: false, debited: 0 };
        let debit = nets.entry(entry.debit().code()).or_insert_with(|| net(entry.debit()));
        if *posted {
            debit.delta.posted = debit.delta.posted.checked_sub(amount).ok_or_else(overflow)?;
        } else {
            debit.delta.pending_debits = debit.delta.pending_debits.checked_add(amount).ok_or_else(overflow)?;
        }
        debit.debited = debit.debited.checked_add(amount).ok_or_else(overflow)?;
        debit.limited |= !entry.debit().may_go_negative();
        let credit = nets.entry(entry.credit().code()).or_insert_with(|| net(entry.credit()));
        if *posted {
            credit.delta.posted = credit.delta.posted.checked_add(amount).ok_or_else(overflow)?;
        } else {
            credit.delta.pending_credits = credit.delta.pending_credits.checked_add(amount).ok_or_else(overflow)?;
        }
    }
    let rows: Vec<(&String, &Net)> = nets.iter().collect();
    for chunk in rows.chunks(BATCH_ROWS * 2) {
        let mut sql =
            String::from("INSERT INTO ledger_balances (account, posted, pending_debits, pending_credits) VALUES ");
        for i in 0..chunk.len() {
            let p = i * 4;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4));
        }
        sql.push_str(
            " ON CONFLICT (account) DO UPDATE SET posted = ledger_balances.posted + excluded.posted, \
               pending_debits = ledger_balances.pending_debits + excluded.pending_debits, \
               pending_credits = ledger_balances.pending_credits + excluded.pending_credits",
        );
        on_tx!(tx, conn => {
            let mut q = sqlx::query(&sql);
            for (code, net) in chunk {
                q = q.bind(*code).bind(net.delta.posted).bind(net.delta.pending_debits).bind(net.delta.pending_credits);
            }
            q.execute(conn).await.map(|_| ())
        })?;
    }
    let limited: Vec<&str> = nets.iter().filter(|(_, n)| n.limited).map(|(code, _)| code.as_str()).collect();
    for chunk in limited.chunks(BATCH_ROWS * 5) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT account FROM ledger_balances WHERE account IN ({}) AND posted - pending_debits < 0 LIMIT 1",
            placeholders.join(", ")
        );
        let short = on_tx!(tx, conn => {
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for code in chunk {
                q = q.bind(*code);
            }
            q.fetch_optional(conn).await
        })?;
        if let Some(net) = short.as_ref().and_then(|code| nets.get(code)) {
            let code = net.account.code();
            let balance = balance_in(tx, &code).await?;
            let available = balance.available().ok_or(LedgerRefusal::Overflow)?;
            // What was there before this batch.
            let before =
                available.get().checked_sub(net.delta.posted - net.delta.pending_debits).ok_or_else(overflow)?;
            return Err(LedgerRefusal::InsufficientBalance {
                account: net.account,
                available: Cents::new(before),
                amount: Cents::new(net.debited),
            }
            .into());
        }
    }
    Ok(Recorded::New)
}

async fn record_in(tx: &mut Tx, steps: &[Step]) -> Result<Recorded, LedgerError> {
    let mut recorded = Recorded::AlreadyRecorded;
    for step in steps {
        let new = match step {
            Step::Post(entry) => post_in(tx, entry).await? == Posted::New,
            Step::BeginPending(entry) => begin_pending_in(tx, entry).await?.1 == Posted::New,
            Step::PostPending(key) | Step::VoidPending(key) => {
                let to = if matches!(step, Step::PostPending(_)) { PendingState::Posted } else { PendingState::Voided };
                let id =
                    pending_id_by_key(tx, key).await?.ok_or_else(|| LedgerRefusal::PendingNotFound(key.clone()))?;
                match resolve_in(tx, id, to).await {
                    Err(LedgerError::Refused(LedgerRefusal::AlreadyResolved { state })) if state == to => false,
                    Err(err) => return Err(err),
                    Ok(resolved) => {
                        if let Some(back) = resolved.entry.return_after_void().filter(|_| to == PendingState::Voided) {
                            post_in(tx, &back).await?;
                        }
                        true
                    }
                }
            }
        };
        if new {
            recorded = Recorded::New;
        }
    }
    Ok(recorded)
}

async fn post_in(tx: &mut Tx, entry: &Entry) -> Result<Posted, LedgerError> {
    if entry.kind().is_two_phase() {
        return Err(LedgerRefusal::WrongPhase { kind: entry.kind() }.into());
    }
    if !insert_entry(tx, new_id(), entry, None, now()).await? {
        same_as_recorded(tx, entry).await?;
        return Ok(Posted::AlreadyPosted);
    }
    if pending_id_by_key(tx, entry.key()).await?.is_some() {
        return Err(LedgerRefusal::KeyConflict { key: entry.key().to_owned() }.into());
    }
    let amount = entry.amount().get();
    shift(tx, entry, Delta { posted: -amount, ..Delta::NONE }, Delta { posted: amount, ..Delta::NONE }, true).await?;
    Ok(Posted::New)
}

async fn begin_pending_in(tx: &mut Tx, entry: &Entry) -> Result<(i64, Posted), LedgerError> {
    if !entry.kind().is_two_phase() {
        return Err(LedgerRefusal::WrongPhase { kind: entry.kind() }.into());
    }
    let id = new_id();
    let inserted = on_tx!(tx, conn => sqlx::query(
        "INSERT INTO ledger_pending (id, key, kind, debit_account, credit_account, amount, user_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (key) DO NOTHING",
    )
    .bind(id)
    .bind(entry.key())
    .bind(entry.kind().as_str())
    .bind(entry.debit().code())
    .bind(entry.credit().code())
    .bind(entry.amount().get())
    .bind(entry.user_id())
    .bind(now())
    .execute(conn)
    .await
    .map(|r| r.rows_affected() == 1))?;
    if !inserted {
        same_as_recorded(tx, entry).await?;
        let id = pending_id_by_key(tx, entry.key()).await?.ok_or(StoreError::NotFound)?;
        return Ok((id, Posted::AlreadyPosted));
    }
    let taken = on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM ledger_entries WHERE key = $1",
    )
    .bind(entry.key())
    .fetch_one(conn)
    .await)?;
    if taken > 0 {
        return Err(LedgerRefusal::KeyConflict { key: entry.key().to_owned() }.into());
    }
    let amount = entry.amount().get();
    let debit = Delta { pending_debits: amount, ..Delta::NONE };
    shift(tx, entry, debit, Delta { pending_credits: amount, ..Delta::NONE }, true).await?;
    Ok((id, Posted::New))
}

async fn resolve(tx: &mut Tx, pending_id: i64, to: PendingState) -> Result<PendingEntry, LedgerError> {
    savepoint(tx).await?;
    let result = resolve_in(tx, pending_id, to).await;
    finish(tx, result).await
}

async fn resolve_in(tx: &mut Tx, pending_id: i64, to: PendingState) -> Result<PendingEntry, LedgerError> {
    let resolved_at = now();
    let row = on_tx!(tx, conn => sqlx::query_as::<_, PendingRow>(&format!(
        "UPDATE ledger_pending SET state = $2, resolved_at = $3 WHERE id = $1 AND state = 'pending' \
         RETURNING {PENDING_COLUMNS}",
    ))
    .bind(pending_id)
    .bind(to.as_str())
    .bind(resolved_at)
    .fetch_optional(conn)
    .await)?;
    let Some(row) = row else {
        let state = on_tx!(tx, conn => sqlx::query_scalar::<_, String>(
            "SELECT state FROM ledger_pending WHERE id = $1",
        )
        .bind(pending_id)
        .fetch_optional(conn)
        .await)?;
        return Err(match state {
            None => LedgerRefusal::PendingNotFound(pending_id.to_string()),
            Some(state) => LedgerRefusal::AlreadyResolved { state: parse_state(&state)? },
        }
        .into());
    };
    let pending = row.into_pending()?;
    let amount = pending.entry.amount().get();
    let (debit, credit) = match to {
        PendingState::Posted => {
            if !insert_entry(tx, new_id(), &pending.entry, Some(pending_id), resolved_at).await? {
                return Err(LedgerRefusal::KeyConflict { key: pending.entry.key().to_owned() }.into());
            }
            (
                Delta { posted: -amount, pending_debits: -amount, ..Delta::NONE },
                Delta { posted: amount, pending_credits: -amount, ..Delta::NONE },
            )
        }
        PendingState::Voided | PendingState::Pending => {
            (Delta { pending_debits: -amount, ..Delta::NONE }, Delta { pending_credits: -amount, ..Delta::NONE })
        }
    };
    shift(tx, &pending.entry, debit, credit, false).await?;
    Ok(pending)
}

/// Insert a posted entry unless its key is taken; whether it was inserted.
async fn insert_entry(
    tx: &mut Tx,
    id: i64,
    entry: &Entry,
    pending_id: Option<i64>,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    Ok(on_tx!(tx, conn => sqlx::query(
        "INSERT INTO ledger_entries (id, key, kind, debit_account, credit_account, amount, user_id, pending_id, \
           created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (key) DO NOTHING",
    )
    .bind(id)
    .bind(entry.key())
    .bind(entry.kind().as_str())
    .bind(entry.debit().code())
    .bind(entry.credit().code())
    .bind(entry.amount().get())
    .bind(entry.user_id())
    .bind(pending_id)
    .bind(at)
    .execute(conn)
    .await
    .map(|r| r.rows_affected() == 1))?)
}

/// The entry's key is taken: fine when it names this very entry, a conflict otherwise.
async fn same_as_recorded(tx: &mut Tx, entry: &Entry) -> Result<(), LedgerError> {
    let recorded = on_tx!(tx, conn => sqlx::query_as::<_, (String, String, String, i64)>(
        "SELECT kind, debit_account, credit_account, amount FROM ledger_entries WHERE key = $1 \
         UNION ALL SELECT kind, debit_account, credit_account, amount FROM ledger_pending WHERE key = $1",
    )
    .bind(entry.key())
    .fetch_all(conn)
    .await)?;
    let same = (entry.kind().as_str().to_owned(), entry.debit().code(), entry.credit().code(), entry.amount().get());
    if recorded.iter().all(|row| *row == same) {
        Ok(())
    } else {
        Err(LedgerRefusal::KeyConflict { key: entry.key().to_owned() }.into())
    }
}

async fn pending_id_by_key(tx: &mut Tx, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(on_tx!(tx, conn => sqlx::query_scalar::<_, i64>("SELECT id FROM ledger_pending WHERE key = $1")
        .bind(key)
        .fetch_optional(conn)
        .await)?)
}

/// A change to one account's balance.
#[derive(Debug, Clone, Copy)]
struct Delta {
    posted: i64,
    pending_debits: i64,
    pending_credits: i64,
}

impl Delta {
    const NONE: Delta = Delta { posted: 0, pending_debits: 0, pending_credits: 0 };
}

/// Apply an entry's change to its two balances, in account order so that concurrent
/// transactions lock balance rows in the same order. With `limited`, a user account being
/// debited must stay at or above zero available, checked by the update itself.
async fn shift(tx: &mut Tx, entry: &Entry, debit: Delta, credit: Delta, limited: bool) -> Result<(), LedgerError> {
    let mut changes =
        [(entry.debit(), debit, limited && !entry.debit().may_go_negative()), (entry.credit(), credit, false)];
    changes.sort_by_key(|(account, _, _)| account.code());
    for (account, delta, limited) in changes {
        let code = account.code();
        let sql = if limited {
            "UPDATE ledger_balances SET posted = posted + $2, pending_debits = pending_debits + $3, \
               pending_credits = pending_credits + $4 \
             WHERE account = $1 AND (posted + $2) - (pending_debits + $3) >= 0"
        } else {
            on_tx!(tx, conn => sqlx::query(
                "INSERT INTO ledger_balances (account) VALUES ($1) ON CONFLICT (account) DO NOTHING",
            )
            .bind(&code)
            .execute(conn)
            .await
            .map(|_| ()))?;
            "UPDATE ledger_balances SET posted = posted + $2, pending_debits = pending_debits + $3, \
               pending_credits = pending_credits + $4 \
             WHERE account = $1"
        };
        let applied = on_tx!(tx, conn => sqlx::query(sql)
            .bind(&code)
            .bind(delta.posted)
            .bind(delta.pending_debits)
            .bind(delta.pending_credits)
            .execute(conn)
            .await
            .map(|r| r.rows_affected() == 1))?;
        if !applied {
            let balance = balance_in(tx, &code).await?;
            let available = balance.available().ok_or(LedgerRefusal::Overflow)?;
            return Err(LedgerRefusal::InsufficientBalance { account, available, amount: entry.amount() }.into());
        }
    }
    Ok(())
}

async fn balance_in(tx: &mut Tx, code: &str) -> Result<Balance, StoreError> {
    let row = on_tx!(tx, conn => sqlx::query_as::<_, (i64, i64, i64)>(
        "SELECT posted, pending_debits, pending_credits FROM ledger_balances WHERE account = $1",
    )
    .bind(code)
    .fetch_optional(conn)
    .await)?;
    Ok(row.map(balance_of).unwrap_or_default())
}

async fn savepoint(tx: &mut Tx) -> Result<(), StoreError> {
    execute(tx, "SAVEPOINT ledger").await
}

/// Keep the savepoint's writes when `result` is a success, undo them otherwise.
async fn finish<T>(tx: &mut Tx, result: Result<T, LedgerError>) -> Result<T, LedgerError> {
    if result.is_err() {
        execute(tx, "ROLLBACK TO SAVEPOINT ledger").await?;
    }
    execute(tx, "RELEASE SAVEPOINT ledger").await?;
    result
}

async fn execute(tx: &mut Tx, sql: &'static str) -> Result<(), StoreError> {
    on_tx!(tx, conn => sqlx::query(sql).execute(conn).await.map(|_| ()))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading

const ENTRY_COLUMNS: &str = "id, key, kind, debit_account, credit_account, amount, user_id, pending_id, created_at";
const PENDING_COLUMNS: &str =
    "id, key, kind, debit_account, credit_account, amount, user_id, state, created_at, resolved_at";

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: i64,
    key: String,
    kind: String,
    debit_account: String,
    credit_account: String,
    amount: i64,
    user_id: Option<i64>,
    pending_id: Option<i64>,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct PendingRow {
    id: i64,
    key: String,
    kind: String,
    debit_account: String,
    credit_account: String,
    amount: i64,
    user_id: Option<i64>,
    state: String,
    created_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
}

/// A stored entry as the domain's [`Entry`]; one the rules refuse is corrupt.
fn stored_entry(key: String, kind: &str, debit: &str, credit: &str, amount: i64) -> Result<Entry, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(format!("ledger entry {key:?}: {what}"));
    let kind = EntryKind::parse(kind).ok_or_else(|| corrupt(format!("{kind:?} is not an entry kind")))?;
    let debit = LedgerAccount::parse(debit).ok_or_else(|| corrupt(format!("{debit:?} is not an account")))?;
    let credit = LedgerAccount::parse(credit).ok_or_else(|| corrupt(format!("{credit:?} is not an account")))?;
    Entry::new(key.clone(), kind, debit, credit, Cents::new(amount)).map_err(|refusal| corrupt(refusal.to_string()))
}

fn parse_state(state: &str) -> Result<PendingState, StoreError> {
    PendingState::parse(state).ok_or_else(|| StoreError::Corrupt(format!("{state:?} is not a pending state")))
}

impl EntryRow {
    fn into_entry(self) -> Result<LedgerEntry, StoreError> {
        Ok(LedgerEntry {
            id: self.id,
            entry: stored_entry(self.key, &self.kind, &self.debit_account, &self.credit_account, self.amount)?,
            user_id: self.user_id,
            pending_id: self.pending_id,
            created_at: self.created_at,
        })
    }
}

impl PendingRow {
    fn into_pending(self) -> Result<PendingEntry, StoreError> {
        Ok(PendingEntry {
            id: self.id,
            state: parse_state(&self.state)?,
            entry: stored_entry(self.key, &self.kind, &self.debit_account, &self.credit_account, self.amount)?,
            user_id: self.user_id,
            created_at: self.created_at,
            resolved_at: self.resolved_at,
        })
    }
}

fn balance_of((posted, pending_debits, pending_credits): (i64, i64, i64)) -> Balance {
    Balance {
        posted: Cents::new(posted),
        pending_debits: Cents::new(pending_debits),
        pending_credits: Cents::new(pending_credits),
    }
}

/// The account's balance as stored; zero for an account no entry has touched.
pub async fn balance(db: &Db, account: &LedgerAccount) -> Result<Balance, StoreError> {
    let row = on_db!(db, pool => sqlx::query_as::<_, (i64, i64, i64)>(
        "SELECT posted, pending_debits, pending_credits FROM ledger_balances WHERE account = $1",
    )
    .bind(account.code())
    .fetch_optional(pool)
    .await)?;
    Ok(row.map(balance_of).unwrap_or_default())
}

/// Every stored balance, by account.
pub async fn balances(db: &Db) -> Result<BTreeMap<LedgerAccount, Balance>, StoreError> {
    let rows = on_db!(db, pool => sqlx::query_as::<_, (String, i64, i64, i64)>(
        "SELECT account, posted, pending_debits, pending_credits FROM ledger_balances",
    )
    .fetch_all(pool)
    .await)?;
    rows.into_iter()
        .map(|(code, posted, debits, credits)| {
            let account = LedgerAccount::parse(&code)
                .ok_or_else(|| StoreError::Corrupt(format!("{code:?} is not a ledger account")))?;
            Ok((account, balance_of((posted, debits, credits))))
        })
        .collect()
}

/// The user's posted entries, oldest first.
pub async fn entries_of_user(db: &Db, user_id: i64) -> Result<Vec<LedgerEntry>, StoreError> {
    let sql = format!("SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE user_id = $1 ORDER BY created_at, id");
    let rows = on_db!(db, pool => sqlx::query_as::<_, EntryRow>(&sql).bind(user_id).fetch_all(pool).await)?;
    rows.into_iter().map(EntryRow::into_entry).collect()
}

/// The user's two-phase entries, whatever their state, oldest first.
pub async fn pending_of_user(db: &Db, user_id: i64) -> Result<Vec<PendingEntry>, StoreError> {
    let sql = format!("SELECT {PENDING_COLUMNS} FROM ledger_pending WHERE user_id = $1 ORDER BY created_at, id");
    let rows = on_db!(db, pool => sqlx::query_as::<_, PendingRow>(&sql).bind(user_id).fetch_all(pool).await)?;
    rows.into_iter().map(PendingRow::into_pending).collect()
}

/// The pending entry named `key` (`collect:<collection id>`).
pub async fn pending_by_key(db: &Db, key: &str) -> Result<Option<PendingEntry>, StoreError> {
    let sql = format!("SELECT {PENDING_COLUMNS} FROM ledger_pending WHERE key = $1");
    let row = on_db!(db, pool => sqlx::query_as::<_, PendingRow>(&sql).bind(key).fetch_optional(pool).await)?;
    row.map(PendingRow::into_pending).transpose()
}

// ---------------------------------------------------------------------------------------------
// Checking

/// Prove the ledger: recompute every balance from the entries and compare it with the stored
/// one, and report user accounts below zero, unknown accounts, entries their kind does not
/// allow, pending entries not resolved by exactly one entry, and a total that is not zero.
/// Empty when all is well.
pub async fn check(db: &Db) -> Result<Vec<Discrepancy>, StoreError> {
    let mut found = Vec::new();
    let from_entries: BTreeMap<String, Balance> = on_db!(db, pool => sqlx::query_as::<_, (String, i64, i64, i64)>(
        "SELECT account, CAST(SUM(posted) AS BIGINT), CAST(SUM(pending_debits) AS BIGINT), \
           CAST(SUM(pending_credits) AS BIGINT) \
         FROM ( \
           SELECT credit_account AS account, amount AS posted, 0 AS pending_debits, 0 AS pending_credits \
             FROM ledger_entries \
           UNION ALL SELECT debit_account, -amount, 0, 0 FROM ledger_entries \
           UNION ALL SELECT debit_account, 0, amount, 0 FROM ledger_pending WHERE state = 'pending' \
           UNION ALL SELECT credit_account, 0, 0, amount FROM ledger_pending WHERE state = 'pending' \
         ) AS movements GROUP BY account",
    )
    .fetch_all(pool)
    .await)?
    .into_iter()
    .map(|(account, posted, debits, credits)| (account, balance_of((posted, debits, credits))))
    .collect();
    let stored: BTreeMap<String, Balance> = on_db!(db, pool => sqlx::query_as::<_, (String, i64, i64, i64)>(
        "SELECT account, posted, pending_debits, pending_credits FROM ledger_balances",
    )
    .fetch_all(pool)
    .await)?
    .into_iter()
    .map(|(account, posted, debits, credits)| (account, balance_of((posted, debits, credits))))
    .collect();

    let mut codes: Vec<&String> = from_entries.keys().chain(stored.keys()).collect();
    codes.sort();
    codes.dedup();
    for code in codes {
        let stored_balance = stored.get(code).copied().unwrap_or_default();
        let entries_balance = from_entries.get(code).copied().unwrap_or_default();
        if stored_balance != entries_balance {
            found.push(Discrepancy::BalanceMismatch {
                account: code.clone(),
                stored: stored_balance,
                from_entries: entries_balance,
            });
        }
        let Some(account) = LedgerAccount::parse(code) else {
            found.push(Discrepancy::UnknownAccount { account: code.clone() });
            continue;
        };
        let below_zero = |b: &Balance| b.available().is_none_or(|available| available < Cents::ZERO);
        if !account.may_go_negative()
            && let Some(balance) = [entries_balance, stored_balance].into_iter().find(below_zero)
        {
            found.push(Discrepancy::BelowZero { account, balance });
        }
    }
    let total: i128 = stored.values().map(|b| i128::from(b.posted.get())).sum();
    if total != 0 {
        found.push(Discrepancy::TotalNotZero { total });
    }

    let kinds = on_db!(db, pool => sqlx::query_as::<_, (String, String, String)>(
        "SELECT kind, debit_account, credit_account FROM ledger_entries \
         UNION SELECT kind, debit_account, credit_account FROM ledger_pending",
    )
    .fetch_all(pool)
    .await)?;
    for (kind, debit, credit) in kinds {
        let legal = match (EntryKind::parse(&kind), LedgerAccount::parse(&debit), LedgerAccount::parse(&credit)) {
            (Some(k), Some(d), Some(c)) => k.allows(d, c),
            _ => false,
        };
        if !legal {
            found.push(Discrepancy::IllegalEntries { kind, debit, credit });
        }
    }

    let resolutions = on_db!(db, pool => sqlx::query_as::<_, (i64, String, i64, i64)>(
        "SELECT p.id, p.state, CAST(COUNT(e.id) AS BIGINT), \
           CAST(SUM(CASE WHEN e.id IS NOT NULL AND (e.key <> p.key OR e.kind <> p.kind \
             OR e.debit_account <> p.debit_account OR e.credit_account <> p.credit_account \
             OR e.amount <> p.amount) THEN 1 ELSE 0 END) AS BIGINT) \
         FROM ledger_pending p LEFT JOIN ledger_entries e ON e.pending_id = p.id \
         GROUP BY p.id, p.state ORDER BY p.id",
    )
    .fetch_all(pool)
    .await)?;
    for (pending_id, state, entries, differing) in resolutions {
        let posted = state == PendingState::Posted.as_str();
        if posted != (entries == 1) || differing > 0 {
            found.push(Discrepancy::ResolutionMismatch { pending_id, state, entries });
        }
    }
    Ok(found)
}

/// Every two-phase entry, by key.
pub async fn all_pending(db: &Db) -> Result<BTreeMap<String, PendingEntry>, StoreError> {
    let sql = format!("SELECT {PENDING_COLUMNS} FROM ledger_pending");
    let rows = on_db!(db, pool => sqlx::query_as::<_, PendingRow>(&sql).fetch_all(pool).await)?;
    rows.into_iter().map(|r| r.into_pending().map(|p| (p.entry.key().to_owned(), p))).collect()
}

/// The sum of the posted entries of each kind, per user.
pub async fn posted_by_user_and_kind(db: &Db) -> Result<Vec<(i64, EntryKind, Cents)>, StoreError> {
    let rows = on_db!(db, pool => sqlx::query_as::<_, (i64, String, i64)>(
        "SELECT user_id, kind, CAST(SUM(amount) AS BIGINT) FROM ledger_entries WHERE user_id IS NOT NULL \
         GROUP BY user_id, kind",
    )
    .fetch_all(pool)
    .await)?;
    rows.into_iter()
        .map(|(user, kind, sum)| {
            let kind =
                EntryKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("{kind:?} is not an entry kind")))?;
            Ok((user, kind, Cents::new(sum)))
        })
        .collect()
}
