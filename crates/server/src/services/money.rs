//! The money loop: round-ups gathered from purchases, collected into the Donkies account, paid
//! out to the user's debts by their shares, exact to the cent; closing an account pays out what
//! is held. Every movement is recorded in the ledger in the same transaction as the record that
//! caused it and the transfer that carries it, so a crash anywhere leaves either all or none.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use donkies_domain::{
    Cap, Cents, CollectionHold, FundingSourceStatus, LedgerAccount, Movement, Multiplier, OverdraftFloor, Projection,
    RoundUpRules, TransferStatus, project_payoff, split_by_shares,
};
use donkies_store::ledger::{self, LedgerError};
use donkies_store::money_loop::{
    self as ml, Collection, CollectionPart, CollectionStatus, Contribution, NewRoundUp, PartMethod, Payout, PayoutPart,
    Waiting,
};
use donkies_store::payments::{self, FundingSource, Transfer};
use donkies_store::users::{self, SettingsUpdate, User};
use donkies_store::{Conn, accounts, constraints, new_id, now, transactions};
use serde::Serialize;

use super::payments::{Endpoint, PaymentsService, PreparedTransfer};
use super::settings::MoneySettings;
use super::{Change, ServiceError, ServiceResult, Storage, Work};
use crate::jobs::money::{CollectBatch, FinalPayout, PayoutBatch};

mod batch;

/// Users per collection or payout batch: one transaction, a few statements per step for all
/// of them.
pub const COLLECTION_BATCH: usize = 250;

/// The round-up settings a user sees and changes.
#[derive(Debug, Clone, Serialize)]
pub struct RoundUpSettings {
    pub minimum_transfer_amount: i64,
    pub is_even_roundup: bool,
    pub roundups_paused: bool,
    pub roundup_multiplier: i64,
    pub daily_cap: Option<i64>,
    pub monthly_cap: Option<i64>,
    pub overdraft_floor: i64,
}

/// A change of settings, parsed; `None` leaves a setting as it is.
#[derive(Debug, Default)]
pub struct SettingsChange {
    pub minimum_transfer_amount: Option<donkies_domain::TransferAmount>,
    pub is_even_roundup: Option<bool>,
    pub roundups_paused: Option<bool>,
    pub roundup_multiplier: Option<Multiplier>,
    /// `Some(None)` removes the cap.
    pub daily_cap: Option<Option<Cap>>,
    pub monthly_cap: Option<Option<Cap>>,
    pub overdraft_floor: Option<OverdraftFloor>,
}

/// What one user's collection run did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collected {
    /// A collection transfer was recorded.
    Sent { collection_id: i64, transfer_id: i64, amount: Cents },
    /// A dry run: this much would be collected.
    Would { amount: Cents },
    /// What waits is below the collection minimum.
    BelowMinimum { waiting: Cents },
    /// Enough waits, but the daily or monthly cap leaves too little room for the minimum.
    HeldByCap { waiting: Cents },
    /// Enough waits, but the round-up source's balance is too low or too old to take it from:
    /// the round-ups stay gathered and waiting.
    HeldByBalance { waiting: Cents, hold: CollectionHold },
    /// Not collected, and why (closed, no round-up source, refused, busy).
    Skipped(String),
    /// Not collected because something failed (e.g. the payment service): try again.
    Failed(String),
}

/// What one user's payout did (or would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaidOut {
    Sent {
        payout_id: i64,
        amount: Cents,
        parts: Vec<(i64, Cents, PartMethod)>,
    },
    Would {
        amount: Cents,
        parts: Vec<(i64, Cents)>,
    },
    /// Already paid out for this period.
    AlreadyPaid,
    BelowMinimum {
        held: Cents,
    },
    Nothing(String),
}

/// The figures of `/v1/stat`.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub amount_to_donkies: Cents,
    pub amount_to_user: Cents,
    pub amount_available: Cents,
    pub payments: i64,
    /// Why the next collection waits on the round-up source's balance, if it does.
    pub collection_hold: Option<CollectionHold>,
}

fn ledger_error(err: LedgerError) -> ServiceError {
    match err {
        LedgerError::Store(e) => ServiceError::Store(e),
        LedgerError::Refused(refusal) => ServiceError::Internal(anyhow::anyhow!("ledger refused: {refusal}")),
    }
}

fn day_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&t.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default())
}

fn month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let first = t.date_naive().with_day(1).unwrap_or(t.date_naive());
    Utc.from_utc_datetime(&first.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// An aggregator's APR in basis points. Banks report it as a fraction (`0.1999`) or as a
/// percent (`19.99`): a value at or below 1 is read as a fraction — no card charges 1 % a year.
fn apr_basis_points(apr: f64) -> u32 {
    let percent = if apr <= 1.0 { apr * 100.0 } else { apr };
    (percent * 100.0).round().clamp(0.0, 100_000.0) as u32
}

/// The user's round-up rules, from their settings.
pub fn rules_of(user: &User) -> RoundUpRules {
    RoundUpRules {
        even_roundup: user.is_even_roundup,
        paused: user.roundups_paused,
        multiplier: Multiplier::parse(user.roundup_multiplier).unwrap_or_default(),
        daily_cap: user.daily_cap.and_then(|d| Cap::parse_dollars(d).ok()),
        monthly_cap: user.monthly_cap.and_then(|d| Cap::parse_dollars(d).ok()),
    }
}

pub fn settings_of(user: &User) -> RoundUpSettings {
    RoundUpSettings {
        minimum_transfer_amount: user.minimum_transfer_amount.get(),
        is_even_roundup: user.is_even_roundup,
        roundups_paused: user.roundups_paused,
        roundup_multiplier: user.roundup_multiplier,
        daily_cap: user.daily_cap,
        monthly_cap: user.monthly_cap,
        overdraft_floor: user.overdraft_floor,
    }
}

/// The user's overdraft floor; a stored value out of range (never written by us) is read as
/// the highest floor, the safe side.
fn floor_of(user: &User) -> OverdraftFloor {
    OverdraftFloor::parse_dollars(user.overdraft_floor).unwrap_or(OverdraftFloor::HIGHEST)
}

/// A round-up source that may be collected from: verified and not removed.
fn usable(source: &FundingSource) -> bool {
    !source.is_removed && source.status == FundingSourceStatus::Verified
}

/// The money loop's use cases: round-ups, collections, payouts and the ledger. They reach the
/// payment rail only through the payments service, and never the aggregator.
#[derive(Clone)]
pub struct MoneyService(Arc<MoneyInner>);

pub struct MoneyInner {
    pub store: Storage,
    pub payments: PaymentsService,
    pub settings: MoneySettings,
}

impl Deref for MoneyService {
    type Target = MoneyInner;
    fn deref(&self) -> &MoneyInner {
        &self.0
    }
}

impl MoneyService {
    pub fn new(store: Storage, payments: PaymentsService, settings: MoneySettings) -> Self {
        MoneyService(Arc::new(MoneyInner { store, payments, settings }))
    }
}

impl MoneyService {
    // -----------------------------------------------------------------------------------------
    // Settings and contributions

    /// Change the round-up settings; answers them as they are now.
    pub async fn update_settings(&self, user: &User, change: SettingsChange) -> ServiceResult<RoundUpSettings> {
        let update = SettingsUpdate {
            minimum_transfer_amount: change.minimum_transfer_amount,
            is_even_roundup: change.is_even_roundup,
            roundups_paused: change.roundups_paused,
            roundup_multiplier: change.roundup_multiplier.map(Multiplier::get),
            daily_cap: change.daily_cap.map(|c| c.map(Cap::dollars)),
            monthly_cap: change.monthly_cap.map(|c| c.map(Cap::dollars)),
            overdraft_floor: change.overdraft_floor.map(OverdraftFloor::dollars),
        };
        let mut work = self.store.begin().await?;
        users::update_settings(&mut work, user.id, &update, now()).await?;
        let user = users::find_by_id(&mut *work, user.id).await?.ok_or(ServiceError::NotFound)?;
        work.changed(Change::User(user.id));
        work.changed(Change::Transactions(user.id));
        work.commit().await?;
        Ok(settings_of(&user))
    }

    /// A one-time extra contribution, collected with the next collection. The contributions
    /// of one UTC day (month), this one included, stay within the daily (monthly) cap; the
    /// user's lock makes many at once count one after the other.
    pub async fn contribute(&self, user: &User, amount: Cents) -> ServiceResult<Contribution> {
        if user.is_closed_account {
            return Err(ServiceError::invalid("The account is closed."));
        }
        let rules = rules_of(user);
        let id = new_id();
        let mut work = self.store.begin().await?;
        ml::lock_user(&mut work, user.id).await?;
        let created_at = now();
        for (cap, since, period) in
            [(rules.daily_cap, day_start(created_at), "daily"), (rules.monthly_cap, month_start(created_at), "monthly")]
        {
            let Some(cap) = cap else { continue };
            let before = ml::contributed_since(&mut work, user.id, since).await?;
            if before.checked_add(amount).is_none_or(|total| total > cap.cents()) {
                return Err(ServiceError::field(
                    "amount",
                    format!(
                        "Ensure your contributions stay within your {period} cap of {}: {before} is contributed already.",
                        cap.cents()
                    ),
                ));
            }
        }
        ml::insert_contribution(&mut work, id, user.id, amount, created_at).await?;
        let movement = Movement::Contribution { user_id: user.id, contribution_id: id, amount };
        ledger::record(&mut work, &movement).await.map_err(ledger_error)?;
        work.commit().await?;
        tracing::info!(user = user.id, contribution = id, %amount, "contribution recorded");
        Ok(Contribution { id, amount, collection_id: None, created_at })
    }

    pub async fn contributions(&self, user_id: i64) -> ServiceResult<Vec<Contribution>> {
        Ok(ml::contributions_of_user(&self.store.db, user_id).await?)
    }

    // -----------------------------------------------------------------------------------------
    // Collection

    /// Record the round-ups of the user's purchases that were not gathered yet, under the
    /// user's rules now; how many gave money.
    async fn gather_roundups(&self, work: &mut Work, user: &User) -> ServiceResult<usize> {
        gather_roundups(work, user).await
    }

    /// Collect one user's round-ups: gather new ones, and when what waits (within the caps)
    /// reaches the collection minimum, record one transfer from the round-up source to Donkies.
    /// A dry run changes nothing.
    pub async fn collect_user(&self, user_id: i64, dry_run: bool) -> ServiceResult<Collected> {
        let user = users::find_by_id(&self.store.db, user_id).await?.ok_or(ServiceError::NotFound)?;
        if user.is_closed_account {
            return Ok(Collected::Skipped("the account is closed".into()));
        }
        let Some(source) = self.payments.round_up_source(user.id).await? else {
            return Ok(Collected::Skipped("no round-up source".into()));
        };
        if !usable(&source) {
            return Ok(Collected::Skipped("the round-up source is not verified".into()));
        }
        // Where the money goes is asked of Dwolla before the transaction opens: no provider call
        // while it holds the user's lock (and on SQLite the writer). A dry run asks nothing.
        let route = if dry_run {
            None
        } else {
            Some(self.payments.route(Endpoint::FundingSource(source.id), Endpoint::Donkies).await)
        };
        let mut work = self.store.begin().await?;
        ml::lock_user(&mut work, user.id).await?;
        retire_stale_roundups(&mut work, user.id).await?;
        self.gather_roundups(&mut work, &user).await?;
        let t = now();
        let NextCollection { waiting, taken, corrections, offset } = self.next_collection(&mut *work, &user, t).await?;
        let gathered: Cents = taken.iter().map(|w| w.amount).sum();
        let amount = gathered - offset;
        let amounts: Vec<Cents> = waiting.iter().map(|w| w.amount).collect();
        if taken.is_empty() {
            let waiting: Cents = amounts.iter().sum::<Cents>() - offset;
            let collectable: Cents = amounts.iter().map(|a| (*a).max(Cents::ZERO)).sum::<Cents>() - offset;
            if !dry_run {
                work.commit().await?;
            }
            return Ok(if collectable >= self.settings.collection_minimum {
                Collected::HeldByCap { waiting }
            } else {
                Collected::BelowMinimum { waiting }
            });
        }
        // The bank balance is judged once we know what to take and before anything is recorded:
        // what was gathered stays, waiting for a balance that allows it.
        let balance = accounts::known_balance(&mut *work, user.id, source.account_id).await?;
        if let Some(hold) = CollectionHold::of(balance, amount, floor_of(&user), t) {
            if !dry_run {
                work.commit().await?;
            }
            tracing::info!(user = user.id, %amount, %hold, "collection held by the bank balance");
            return Ok(Collected::HeldByBalance { waiting: amounts.iter().sum::<Cents>() - offset, hold });
        }
        let Some(route) = route else {
            return Ok(Collected::Would { amount });
        };
        let prepared = match route {
            Ok(route) => route.carrying(amount),
            Err(ServiceError::Invalid(why)) => {
                // Keep what was gathered; the money waits for a source that may send.
                work.commit().await?;
                return Ok(Collected::Skipped(why));
            }
            Err(e) => return Err(e),
        };
        let collection_id = new_id();
        let transfer_id =
            self.payments.record_transfer(&mut work, &format!("collection:{collection_id}"), &prepared).await?;
        let parts = collection_parts(&taken, source.account_id, offset);
        let collection = Collection {
            id: collection_id,
            user_id: user.id,
            account_id: source.account_id,
            amount,
            offset,
            status: CollectionStatus::Pending,
            transfer_id,
            failure_code: None,
            created_at: t,
            sent_at: None,
            updated_at: t,
        };
        ml::insert_collection(&mut work, &collection, &parts, t).await?;
        let correction_ids: Vec<i64> = corrections.iter().map(|c| c.id).collect();
        if !ml::take_waiting(&mut work, collection_id, &taken).await?
            || !ml::take_corrections(&mut work, collection_id, &correction_ids).await?
        {
            return Ok(Collected::Skipped("another run is collecting for this user".into()));
        }
        let mut movements = Vec::with_capacity(2);
        if offset > Cents::ZERO {
            movements.push(Movement::OffsetStart { user_id: user.id, collection_id, amount: offset });
        }
        movements.push(Movement::CollectStart { user_id: user.id, collection_id, amount });
        ledger::record_all(&mut work, &movements).await.map_err(ledger_error)?;
        work.changed(Change::User(user.id));
        work.commit().await?;
        tracing::info!(user = user.id, collection = collection_id, transfer = transfer_id, %amount, "round-ups collected");
        Ok(Collected::Sent { collection_id, transfer_id, amount })
    }

    /// What waits for the user, and what of it the next collection takes at `t` under the
    /// user's caps and the collection minimum (nothing when that is too little), offsetting
    /// the user's open corrections.
    async fn next_collection(
        &self,
        db: impl Into<Conn<'_>>,
        user: &User,
        t: DateTime<Utc>,
    ) -> ServiceResult<NextCollection> {
        let mut conn = db.into();
        let waiting = ml::waiting(conn.reborrow(), user.id).await?;
        // Collected round-ups whose purchase was removed or amended since: taken back by leaving
        // as much of what this collection gathers in the user's bank.
        let corrections = ml::open_corrections(conn.reborrow(), user.id).await?;
        let offset: Cents = corrections.iter().map(|c| c.amount).sum();
        let today = ml::collected_since(conn.reborrow(), user.id, day_start(t)).await?;
        let this_month = ml::collected_since(conn, user.id, month_start(t)).await?;
        let amounts: Vec<Cents> = waiting.iter().map(|w| w.amount).collect();
        let minimum = self.settings.collection_minimum;
        let chosen = rules_of(user).select_offsetting(&amounts, today, this_month, minimum, offset);
        let taken = chosen.iter().filter_map(|&i| waiting.get(i).cloned()).collect();
        Ok(NextCollection { waiting, taken, corrections, offset })
    }

    /// The periodic collection run: every user who has a round-up source, split into batch jobs
    /// that as many workers as run claim; how many batches.
    pub async fn plan_collection(&self) -> ServiceResult<usize> {
        let users = ml::users_to_collect(&self.store.db).await?;
        let batches: Vec<CollectBatch> =
            users.chunks(COLLECTION_BATCH).map(|c| CollectBatch { user_ids: c.to_vec() }).collect();
        let mut work = self.store.begin().await?;
        work.enqueue_all(&batches).await?;
        work.commit().await?;
        Ok(batches.len())
    }

    /// The collection run over every user who has a round-up source, in batches of
    /// [`COLLECTION_BATCH`] users (one by one in a dry run); what it did per user.
    pub async fn collect_all(
        &self,
        dry_run: bool,
        mut progress: impl FnMut(usize, usize),
    ) -> ServiceResult<Vec<(i64, Collected)>> {
        let users = ml::users_to_collect(&self.store.db).await?;
        let mut outcomes = Vec::with_capacity(users.len());
        if !dry_run {
            for batch in users.chunks(COLLECTION_BATCH) {
                outcomes.extend(self.collect_batch(batch).await?);
                progress(outcomes.len(), users.len());
            }
            return Ok(outcomes);
        }
        for (i, user_id) in users.iter().enumerate() {
            let outcome = match self.collect_user(*user_id, dry_run).await {
                Ok(o) => o,
                Err(ServiceError::Store(e)) => return Err(ServiceError::Store(e)),
                Err(e) => {
                    tracing::warn!(user = user_id, error = %e, "collection failed");
                    Collected::Failed(e.to_string())
                }
            };
            outcomes.push((*user_id, outcome));
            progress(i + 1, users.len());
        }
        Ok(outcomes)
    }

    // -----------------------------------------------------------------------------------------
    // Payout

    /// Pay out what the user holds at Donkies, split across the active debt accounts by their
    /// shares, exact to the cent. A scheduled payout (`period` = the payout day) needs the
    /// user's minimum and happens once per day; a final one (`period` = None, closing the
    /// account) pays everything, back to the user's own bank when there is no debt account.
    pub async fn payout_user(&self, user_id: i64, period: Option<NaiveDate>, dry_run: bool) -> ServiceResult<PaidOut> {
        let user = users::find_by_id(&self.store.db, user_id).await?.ok_or(ServiceError::NotFound)?;
        let held =
            ledger::balance(&self.store.db, &LedgerAccount::Held { user_id }).await?.available().unwrap_or_default();
        if held <= Cents::ZERO {
            return Ok(PaidOut::Nothing("nothing held".into()));
        }
        if period.is_some() && held.get() < user.minimum_transfer_amount.get() * 100 {
            return Ok(PaidOut::BelowMinimum { held });
        }
        let shares: Vec<(i64, u32)> = accounts::debt_shares(&self.store.db, user_id)
            .await?
            .iter()
            .map(|(id, share)| (id, share.get()))
            .filter(|(_, share)| *share > 0)
            .collect();
        // (account, share, amount, method, prepared transfer)
        let mut plan: Vec<(i64, u32, Cents, PartMethod, Option<PreparedTransfer>)> = Vec::new();
        if shares.is_empty() {
            if period.is_some() {
                return Ok(PaidOut::Nothing("no active debt account".into()));
            }
            let Some(source) = self.payments.round_up_source(user_id).await? else {
                return Ok(PaidOut::Nothing("no debt account and no bank to refund to".into()));
            };
            let prepared = if dry_run {
                None
            } else {
                Some(self.payments.prepare_transfer(Endpoint::Donkies, Endpoint::FundingSource(source.id), held).await?)
            };
            plan.push((source.account_id, 100, held, PartMethod::Refund, prepared));
        } else {
            let percents: Vec<u32> = shares.iter().map(|(_, s)| *s).collect();
            for ((account_id, share), amount) in shares.iter().zip(split_by_shares(held, &percents)) {
                if amount <= Cents::ZERO {
                    continue;
                }
                let source = payments::funding_source_of_account(&self.store.db, user_id, *account_id).await?;
                let rail = source
                    .filter(|s| !s.is_removed && s.status == FundingSourceStatus::Verified && s.dwolla_id.is_some());
                let prepared = match (rail, dry_run) {
                    (Some(s), false) => Some(
                        self.payments
                            .prepare_transfer(Endpoint::Donkies, Endpoint::FundingSource(s.id), amount)
                            .await?,
                    ),
                    _ => None,
                };
                let method = if prepared.is_some() { PartMethod::Dwolla } else { PartMethod::Manual };
                plan.push((*account_id, *share, amount, method, prepared));
            }
        }
        if dry_run {
            return Ok(PaidOut::Would { amount: held, parts: plan.iter().map(|p| (p.0, p.2)).collect() });
        }
        let payout_id = new_id();
        let t = now();
        let period_text = match period {
            Some(day) => day.to_string(),
            None => format!("close:{payout_id}"),
        };
        let mut work = self.store.begin().await?;
        ml::lock_user(&mut work, user_id).await?;
        let payout = Payout { id: payout_id, user_id, amount: held, period: period_text, created_at: t };
        match ml::insert_payout(&mut work, &payout).await {
            Err(e) if e.on_constraint(constraints::PAYOUTS_USER_PERIOD) => return Ok(PaidOut::AlreadyPaid),
            other => other?,
        }
        let mut parts = Vec::new();
        for (account_id, share, amount, method, prepared) in plan {
            let part_id = new_id();
            let transfer_id = match &prepared {
                Some(p) => {
                    let reference = if method == PartMethod::Refund {
                        format!("refund:{part_id}")
                    } else {
                        format!("payout:{part_id}")
                    };
                    Some(self.payments.record_transfer(&mut work, &reference, p).await?)
                }
                None => None,
            };
            let part = PayoutPart {
                id: part_id,
                payout_id,
                user_id,
                account_id,
                amount,
                share: i64::from(share),
                method,
                status: "pending".into(),
                transfer_id,
                manual_reference: None,
                created_at: t,
                processed_at: None,
            };
            ml::insert_part(&mut work, &part).await?;
            let movement = if method == PartMethod::Refund {
                Movement::RefundStart { user_id, refund_id: part_id, amount }
            } else {
                Movement::PayoutStart { user_id, part_id, debt_account_id: account_id, amount }
            };
            match ledger::record(&mut work, &movement).await {
                // Someone else reserved this money first: nothing of this payout is kept.
                Err(LedgerError::Refused(refusal)) => {
                    return Ok(PaidOut::Nothing(format!("held money changed meanwhile ({refusal})")));
                }
                other => other.map_err(ledger_error)?,
            };
            parts.push((account_id, amount, method));
        }
        work.changed(Change::User(user_id));
        work.commit().await?;
        tracing::info!(user = user_id, payout = payout_id, amount = %held, parts = parts.len(), "payout made");
        Ok(PaidOut::Sent { payout_id, amount: held, parts })
    }

    /// The payout of `day` for every user who holds money; closed accounts get their final
    /// payout instead.
    pub async fn payout_all(
        &self,
        day: NaiveDate,
        dry_run: bool,
        mut progress: impl FnMut(usize, usize),
    ) -> ServiceResult<Vec<(i64, PaidOut)>> {
        let users = ml::users_with_held_money(&self.store.db).await?;
        let mut outcomes = Vec::with_capacity(users.len());
        if !dry_run {
            let ids: Vec<i64> = users.iter().map(|(id, _)| *id).collect();
            for batch in ids.chunks(COLLECTION_BATCH) {
                outcomes.extend(self.payout_run_batch(batch, day).await?);
                progress(outcomes.len(), users.len());
            }
            return Ok(outcomes);
        }
        for (i, (user_id, _)) in users.iter().enumerate() {
            let closed = users::find_by_id(&self.store.db, *user_id).await?.is_some_and(|u| u.is_closed_account);
            let period = if closed { None } else { Some(day) };
            let outcome = match self.payout_user(*user_id, period, dry_run).await {
                Ok(o) => o,
                Err(ServiceError::Store(e)) => return Err(ServiceError::Store(e)),
                Err(e) => {
                    tracing::warn!(user = user_id, error = %e, "payout skipped");
                    PaidOut::Nothing(e.to_string())
                }
            };
            outcomes.push((*user_id, outcome));
            progress(i + 1, users.len());
        }
        Ok(outcomes)
    }

    /// One batch of the payout run of `day`: open accounts paid out together, closed ones given
    /// their final payout; the outcomes in the order of `user_ids`.
    pub async fn payout_run_batch(&self, user_ids: &[i64], day: NaiveDate) -> ServiceResult<Vec<(i64, PaidOut)>> {
        let closed: BTreeSet<i64> = donkies_store::money_batch::users(&self.store.db, user_ids)
            .await?
            .into_iter()
            .filter(|u| u.is_closed_account)
            .map(|u| u.id)
            .collect();
        let open: Vec<i64> = user_ids.iter().copied().filter(|id| !closed.contains(id)).collect();
        let mut outcomes: BTreeMap<i64, PaidOut> = self.payout_batch(&open, day).await?.into_iter().collect();
        for user_id in &closed {
            let outcome = match self.payout_user(*user_id, None, false).await {
                Ok(o) => o,
                Err(ServiceError::Store(e)) => return Err(ServiceError::Store(e)),
                Err(e) => {
                    tracing::warn!(user = user_id, error = %e, "payout skipped");
                    PaidOut::Nothing(e.to_string())
                }
            };
            outcomes.insert(*user_id, outcome);
        }
        Ok(user_ids.iter().filter_map(|id| outcomes.remove(id).map(|o| (*id, o))).collect())
    }

    /// The payout run of `day` split into batch jobs that as many workers as run claim; how many
    /// batches.
    pub async fn plan_payouts(&self, day: NaiveDate) -> ServiceResult<usize> {
        let users = ml::users_with_held_money(&self.store.db).await?;
        let ids: Vec<i64> = users.iter().map(|(id, _)| *id).collect();
        let batches: Vec<PayoutBatch> =
            ids.chunks(COLLECTION_BATCH).map(|c| PayoutBatch { user_ids: c.to_vec(), day }).collect();
        let mut work = self.store.begin().await?;
        work.enqueue_all(&batches).await?;
        work.commit().await?;
        Ok(batches.len())
    }

    /// The periodic check: on the payout day (UTC), the day's payouts; on any day, what a
    /// closed account still holds (money a collection brought in after the close).
    pub async fn scheduled_payouts(&self) -> ServiceResult<()> {
        let today = now().date_naive();
        if today.day() != self.settings.payout_day {
            for (user_id, _) in ml::users_with_held_money(&self.store.db).await? {
                if users::find_by_id(&self.store.db, user_id).await?.is_some_and(|u| u.is_closed_account) {
                    self.final_payout(user_id).await?;
                }
            }
            return Ok(());
        }
        let batches = self.plan_payouts(today).await?;
        tracing::info!(day = %today, batches, "payout day");
        Ok(())
    }

    /// An operator paid a manual part by hand, with `reference` (e.g. the bank's confirmation).
    pub async fn mark_part_paid(&self, part_id: i64, reference: &str) -> ServiceResult<PayoutPart> {
        let part = ml::part_by_id(&self.store.db, part_id).await?.ok_or(ServiceError::NotFound)?;
        if part.method != PartMethod::Manual {
            return Err(ServiceError::invalid("This part is paid through the payment provider, not by hand."));
        }
        let mut work = self.store.begin().await?;
        if !settle_part(&mut work, &part, true, Some(reference)).await? {
            return Err(ServiceError::invalid("This part is not waiting to be paid."));
        }
        work.commit().await?;
        ml::part_by_id(&self.store.db, part_id).await?.ok_or(ServiceError::NotFound)
    }

    pub async fn manual_parts_waiting(&self) -> ServiceResult<Vec<PayoutPart>> {
        Ok(ml::manual_parts_waiting(&self.store.db).await?)
    }

    // -----------------------------------------------------------------------------------------
    // Closing the account

    /// Close the account: round-ups stop, nothing more is collected, what is held is paid out
    /// (ignoring the minimum) by a job; the user can still sign in and read.
    pub async fn close_account(&self, user_id: i64) -> ServiceResult<()> {
        let mut work = self.store.begin().await?;
        users::close_account(&mut work, user_id, now()).await?;
        work.enqueue(&FinalPayout { user_id }, Duration::ZERO).await?;
        work.changed(Change::User(user_id));
        work.commit().await?;
        tracing::info!(user = %user_id, "account closed");
        Ok(())
    }

    /// The `final_payout` job.
    pub async fn final_payout(&self, user_id: i64) -> ServiceResult<()> {
        let outcome = self.payout_user(user_id, None, false).await?;
        tracing::info!(user = user_id, ?outcome, "final payout");
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Reading

    /// The dashboard's figures. `amount_available` is what was collected and not yet given to a
    /// payout: the held money the ledger has not reserved for a payout part.
    pub async fn stat(&self, user: &User) -> ServiceResult<Stat> {
        let user_id = user.id;
        let collections = ml::collections_of_user(&self.store.db, user_id).await?;
        let parts = ml::parts_of_user(&self.store.db, user_id).await?;
        let payouts = ml::payouts_of_user(&self.store.db, user_id).await?;
        let held = ledger::balance(&self.store.db, &LedgerAccount::Held { user_id }).await?;
        let sum = |amounts: &mut dyn Iterator<Item = Cents>| Cents::new(amounts.map(Cents::get).sum());
        Ok(Stat {
            amount_to_donkies: sum(&mut collections
                .iter()
                .filter(|c| c.status == CollectionStatus::Processed)
                .map(|c| c.amount)),
            amount_to_user: sum(&mut parts.iter().filter(|p| p.status == "processed").map(|p| p.amount)),
            amount_available: held.available().unwrap_or_default(),
            payments: payouts.len() as i64,
            collection_hold: self.collection_hold(user).await?,
        })
    }

    /// Why the next collection would wait on the round-up source's balance: judged on what it
    /// would take now (nothing while too little waits, so only a stale balance or one already
    /// below the floor holds it). `None` without a usable source or for a closed account.
    async fn collection_hold(&self, user: &User) -> ServiceResult<Option<CollectionHold>> {
        if user.is_closed_account {
            return Ok(None);
        }
        let Some(source) = self.payments.round_up_source(user.id).await?.filter(usable) else {
            return Ok(None);
        };
        let t = now();
        let next = self.next_collection(&self.store.db, user, t).await?;
        let amount: Cents = next.taken.iter().map(|w| w.amount).sum::<Cents>() - next.offset;
        let balance = accounts::known_balance(&self.store.db, user.id, source.account_id).await?;
        Ok(CollectionHold::of(balance, amount, floor_of(user), t))
    }

    pub async fn collection_parts(&self, user_id: i64) -> ServiceResult<Vec<CollectionPart>> {
        Ok(ml::collection_parts_of_user(&self.store.db, user_id).await?)
    }

    /// The user's corrections: collected round-ups taken back, and the collection that did.
    pub async fn corrections(&self, user_id: i64) -> ServiceResult<Vec<ml::Correction>> {
        Ok(ml::corrections_of_user(&self.store.db, user_id).await?)
    }

    pub async fn collections(&self, user_id: i64) -> ServiceResult<Vec<Collection>> {
        Ok(ml::collections_of_user(&self.store.db, user_id).await?)
    }

    pub async fn payouts(&self, user_id: i64) -> ServiceResult<Vec<Payout>> {
        Ok(ml::payouts_of_user(&self.store.db, user_id).await?)
    }

    pub async fn payout_parts(&self, user_id: i64) -> ServiceResult<Vec<PayoutPart>> {
        Ok(ml::parts_of_user(&self.store.db, user_id).await?)
    }

    /// Names of the user's accounts by id, hidden ones included (records outlive a hidden
    /// account).
    pub async fn account_names(&self, user_id: i64) -> ServiceResult<BTreeMap<i64, String>> {
        Ok(accounts::names_of_user(&self.store.db, user_id).await?.into_iter().collect())
    }

    /// How the debt account is paid off with and without the user's round-ups: the average
    /// monthly round-up of the last 90 days, times the account's share.
    pub async fn projection(&self, user: &User, account_id: i64) -> ServiceResult<(Cents, Projection)> {
        let account = accounts::get(&self.store.db, user.id, account_id).await?.ok_or(ServiceError::NotFound)?;
        if account.type_ds != donkies_domain::AccountFamily::Debt {
            return Err(ServiceError::invalid("Only a debt account has a payoff projection."));
        }
        let rules = rules_of(user);
        let since = (now() - chrono::Duration::days(90)).date_naive();
        let recent = transactions::purchases_since(&self.store.db, user.id, since).await?;
        let total: Cents = recent.iter().map(|(kind, family, amount)| rules.roundup(*kind, *family, *amount)).sum();
        let monthly = Cents::new(total.get() / 3 * i64::from(account.transfer_share.get()) / 100);
        let balance = account.balance.unwrap_or_default();
        let apr_bp = account.apr.map_or(0, apr_basis_points);
        let minimum = account.minimum_payment.unwrap_or_default();
        Ok((monthly, project_payoff(balance, apr_bp, minimum, monthly)))
    }
}

/// What `donkies ledger check` found.
#[derive(Debug, Default)]
pub struct LedgerReport {
    pub users: usize,
    pub entries_checked: usize,
    pub transfers_checked: usize,
    pub provider_transfers_checked: usize,
    /// Everything that is off; empty when the ledger balances.
    pub problems: Vec<String>,
    /// Transfers made outside the money loop (an operator's test transfers): reported, not
    /// counted as problems.
    pub outside_loop: Vec<String>,
    /// Totals over all users: round-ups and contributions, pending, in collection, held, paid
    /// out, refunded.
    pub totals: [Cents; 6],
}

impl MoneyService {
    /// Prove the ledger: the store's own check (balances equal their entries, nobody below
    /// zero, every pending entry resolved at most once); for every user, round-ups = pending +
    /// in collection + collected and collected = held + paid out + refunded; the records agree
    /// with the ledger (what waits, each collection and payout part); every transfer matches
    /// exactly one movement, and — when `at_provider` — every transfer Dwolla holds for our
    /// customers is one of ours with the same amount.
    pub async fn ledger_report(&self, at_provider: bool) -> ServiceResult<LedgerReport> {
        use donkies_domain::EntryKind;
        let mut report = LedgerReport::default();
        for d in ledger::check(&self.store.db).await? {
            report.problems.push(format!("{d:?}"));
        }
        let balances = ledger::balances(&self.store.db).await?;
        let posted = ledger::posted_by_user_and_kind(&self.store.db).await?;
        report.entries_checked = posted.len();
        let mut per_user: BTreeMap<i64, [Cents; 7]> = BTreeMap::new();
        // What pending offsets reserve of a user's round-ups pending: no longer waiting.
        let mut reserved: BTreeMap<i64, Cents> = BTreeMap::new();
        for (account, balance) in &balances {
            if let LedgerAccount::RoundUpsPending { user_id } = account {
                reserved.insert(*user_id, balance.pending_debits);
            }
            let slot = match account {
                LedgerAccount::RoundUpsPending { .. } => 1,
                LedgerAccount::InCollection { .. } => 2,
                LedgerAccount::Held { .. } => 3,
                LedgerAccount::PaidToDebt { .. } => 4,
                LedgerAccount::Refunded { .. } => 5,
                _ => continue,
            };
            if let Some(user) = account.user_id() {
                per_user.entry(user).or_default()[slot] += balance.posted;
            }
        }
        for (user, kind, sum) in &posted {
            let row = per_user.entry(*user).or_default();
            match kind {
                EntryKind::RoundUp | EntryKind::Contribution => row[0] += *sum,
                // Given up or taken back: no longer gathered.
                EntryKind::RoundUpVoid | EntryKind::Offset => row[0] -= *sum,
                EntryKind::Collect => row[6] += *sum,
                _ => {}
            }
        }
        for (user, [gathered, pending, in_collection, held, paid, refunded, collected]) in &per_user {
            if *gathered != *pending + *in_collection + *collected {
                report.problems.push(format!(
                    "user {user}: round-ups {gathered} != pending {pending} + in collection {in_collection} + collected {collected}"
                ));
            }
            if *collected != *held + *paid + *refunded {
                report.problems.push(format!(
                    "user {user}: collected {collected} != held {held} + paid out {paid} + refunded {refunded}"
                ));
            }
            for (i, v) in [gathered, pending, in_collection, held, paid, refunded].into_iter().enumerate() {
                report.totals[i] += *v;
            }
        }
        report.users = per_user.len();
        // What waits is what the ledger holds as pending.
        let waiting: BTreeMap<i64, Cents> = ml::waiting_totals(&self.store.db).await?.into_iter().collect();
        for (user, row) in &per_user {
            let records = waiting.get(user).copied().unwrap_or_default();
            let ledger_waiting = row[1] - reserved.get(user).copied().unwrap_or_default();
            if records != ledger_waiting {
                report.problems.push(format!(
                    "user {user}: waiting round-ups and contributions {records} != ledger pending {ledger_waiting}"
                ));
            }
        }
        // Each collection and payout part is one two-phase movement in the matching state.
        let pending = ledger::all_pending(&self.store.db).await?;
        let mut by_transfer: BTreeMap<i64, (String, Cents, &'static str)> = BTreeMap::new();
        let state_of = |key: &str, amount: Cents, expected: donkies_domain::PendingState| -> Option<String> {
            match pending.get(key) {
                None => Some(format!("{key}: no ledger movement")),
                Some(p) if p.entry.amount() != amount => {
                    Some(format!("{key}: ledger moves {} but the record says {amount}", p.entry.amount()))
                }
                Some(p) if p.state != expected => {
                    Some(format!("{key}: ledger is {} but the record is {}", p.state, expected))
                }
                Some(_) => None,
            }
        };
        use donkies_domain::PendingState as S;
        for c in ml::all_collections(&self.store.db).await? {
            let expected = match c.status {
                CollectionStatus::Pending => S::Pending,
                CollectionStatus::Processed => S::Posted,
                CollectionStatus::Failed | CollectionStatus::Cancelled => S::Voided,
            };
            let key = donkies_domain::ledger::keys::collect(c.id);
            report.problems.extend(state_of(&key, c.amount, expected));
            if c.offset > Cents::ZERO {
                report.problems.extend(state_of(&donkies_domain::ledger::keys::offset(c.id), c.offset, expected));
            }
            by_transfer.insert(c.transfer_id, (key, c.amount, c.status.as_str()));
        }
        for p in ml::all_parts(&self.store.db).await? {
            let expected = match p.status.as_str() {
                "processed" => S::Posted,
                "failed" => S::Voided,
                _ => S::Pending,
            };
            let key = if p.method == PartMethod::Refund {
                donkies_domain::ledger::keys::refund(p.id)
            } else {
                donkies_domain::ledger::keys::payout(p.id)
            };
            report.problems.extend(state_of(&key, p.amount, expected));
            if let Some(t) = p.transfer_id {
                let status = if p.status == "failed" { "failed" } else { "pending" };
                by_transfer.insert(t, (key, p.amount, if p.status == "processed" { "processed" } else { status }));
            }
        }
        // Every transfer is exactly one movement, and every movement that needs one has it.
        let transfers = payments::list_transfers(&self.store.db, None).await?;
        report.transfers_checked = transfers.len();
        let mut ours: BTreeMap<String, Cents> = BTreeMap::new();
        for t in &transfers {
            if let Some(id) = &t.dwolla_id {
                ours.insert(id.clone(), t.amount);
            }
            match by_transfer.remove(&t.id) {
                Some((key, amount, status)) => {
                    if amount != t.amount {
                        report.problems.push(format!("transfer {} moves {} but {key} says {amount}", t.id, t.amount));
                    }
                    let agrees = match t.status {
                        TransferStatus::Processed => status == "processed",
                        TransferStatus::Failed | TransferStatus::Cancelled => {
                            matches!(status, "failed" | "cancelled")
                        }
                        _ => status == "pending",
                    };
                    if !agrees {
                        report.problems.push(format!(
                            "transfer {} is {} but {key} is {status}",
                            t.id,
                            t.status.as_str()
                        ));
                    }
                }
                None if t.reference.starts_with("collection:")
                    || t.reference.starts_with("payout:")
                    || t.reference.starts_with("refund:") =>
                {
                    report.problems.push(format!("transfer {} ({}) has no record", t.id, t.reference));
                }
                None => report.outside_loop.push(format!("transfer {} ({}) of {}", t.id, t.reference, t.amount)),
            }
        }
        for (transfer_id, (key, _, _)) in by_transfer {
            report.problems.push(format!("{key}: its transfer {transfer_id} does not exist"));
        }
        if at_provider {
            for customer in payments::customers_with_dwolla_id(&self.store.db).await? {
                let Some(dwolla_id) = &customer.dwolla_id else { continue };
                let mut offset = 0u32;
                loop {
                    let query = donkies_dwolla::wire::PageQuery { limit: Some(200), offset: Some(offset) };
                    let page = self.payments.rail.customer_transfers(dwolla_id, query).await?;
                    let n = page.items.len() as u32;
                    for t in page.items {
                        report.provider_transfers_checked += 1;
                        let amount = t.amount.value;
                        match ours.get(&t.id) {
                            None => report
                                .problems
                                .push(format!("transfer {} of {amount} at Dwolla is not one of ours", t.id)),
                            Some(mine) if *mine != amount => {
                                report.problems.push(format!("transfer {} is {amount} at Dwolla but {mine} here", t.id))
                            }
                            Some(_) => {}
                        }
                    }
                    offset += n;
                    if n == 0 || u64::from(offset) >= page.total {
                        break;
                    }
                }
            }
        }
        Ok(report)
    }

    /// The user's ledger accounts and entries, for the operator.
    pub async fn ledger_of_user(
        &self,
        email: &str,
    ) -> ServiceResult<(
        User,
        Vec<(LedgerAccount, donkies_domain::Balance)>,
        Vec<ledger::LedgerEntry>,
        Vec<ledger::PendingEntry>,
    )> {
        let user = users::find_by_email(&self.store.db, email).await?.ok_or(ServiceError::NotFound)?;
        let balances = ledger::balances(&self.store.db)
            .await?
            .into_iter()
            .filter(|(account, _)| account.user_id() == Some(user.id))
            .collect();
        let entries = ledger::entries_of_user(&self.store.db, user.id).await?;
        let pending = ledger::pending_of_user(&self.store.db, user.id).await?;
        Ok((user, balances, entries, pending))
    }
}

/// What the next collection of a user would take.
struct NextCollection {
    /// Everything that waits, oldest first.
    waiting: Vec<Waiting>,
    /// What of it the collection takes (empty when it would take nothing).
    taken: Vec<Waiting>,
    /// The corrections it offsets, and their sum: what it leaves in the user's bank.
    corrections: Vec<ml::Correction>,
    offset: Cents,
}

/// Record the round-ups of the user's posted purchases that have none, under the user's rules
/// now; how many gave money.
pub(super) async fn gather_roundups(work: &mut Work, user: &User) -> ServiceResult<usize> {
    let purchases = ml::ungathered_purchases(work, user.id).await?;
    gather_purchases(work, &[(user, purchases)]).await
}

/// Record the round-ups of these users' ungathered purchases, each under its user's rules
/// now, in one batch of rows and one of ledger entries; how many gave money.
pub(super) async fn gather_purchases(
    work: &mut Work,
    purchases: &[(&User, Vec<ml::Purchase>)],
) -> ServiceResult<usize> {
    let mut rows: Vec<NewRoundUp> = Vec::new();
    for (user, list) in purchases {
        let rules = rules_of(user);
        rows.extend(list.iter().map(|p| NewRoundUp {
            id: new_id(),
            user_id: user.id,
            account_id: p.account_id,
            transaction_id: p.transaction_id,
            amount: rules.roundup(p.kind, p.family, p.amount),
            purchase_amount: p.amount,
        }));
    }
    if rows.is_empty() {
        return Ok(0);
    }
    let inserted = ml::insert_roundups(work, &rows, now()).await?;
    let by_id: BTreeMap<i64, &NewRoundUp> = rows.iter().map(|r| (r.id, r)).collect();
    // One batch of ledger entries for all of them, not a round trip each.
    let movements: Vec<Movement> = inserted
        .iter()
        .filter_map(|id| by_id.get(id))
        .filter(|row| row.amount > Cents::ZERO)
        .map(|row| Movement::RoundUp { user_id: row.user_id, roundup_id: row.id, amount: row.amount })
        .collect();
    ledger::record_all(work, &movements).await.map_err(ledger_error)?;
    Ok(movements.len())
}

/// Retire the user's round-ups whose purchase was removed, went back to pending or posts at
/// another amount: one that waits is voided (it leaves what waits); one already collected is
/// taken back by a correction that the next collection offsets. The purchase, if it is still
/// posted and present, is rounded up again from its amount now by the next gathering. How
/// many were retired.
pub(super) async fn retire_stale_roundups(work: &mut Work, user_id: i64) -> ServiceResult<usize> {
    let stale = ml::stale_roundups(work, user_id).await?;
    retire_roundups(work, user_id, &stale).await
}

/// Retire these stale round-ups of the user (see [`retire_stale_roundups`]).
pub(super) async fn retire_roundups(work: &mut Work, user_id: i64, stale: &[ml::StaleRoundUp]) -> ServiceResult<usize> {
    let t = now();
    let mut voids = Vec::new();
    let mut retired = 0;
    for r in stale {
        if !ml::retire_roundup(work, user_id, r, new_id(), t).await? {
            continue;
        }
        retired += 1;
        if r.collection_id.is_none() && r.amount > Cents::ZERO {
            voids.push(Movement::RoundUpVoid { user_id, roundup_id: r.id, amount: r.amount });
        }
    }
    ledger::record_all(work, &voids).await.map_err(ledger_error)?;
    if retired > 0 {
        work.changed(Change::User(user_id));
        tracing::info!(user = user_id, retired, "round-ups retired after their purchases moved");
    }
    Ok(retired)
}

/// What a collection gathered from each debit account, less what it leaves in the bank
/// (`offset`), taken from the round-up source's part first, then from the others in turn.
fn collection_parts(taken: &[Waiting], source_account: i64, offset: Cents) -> Vec<(i64, Cents)> {
    let mut parts: BTreeMap<i64, Cents> = BTreeMap::new();
    for item in taken {
        *parts.entry(item.account_id.unwrap_or(source_account)).or_default() += item.amount;
    }
    let mut left = offset;
    let mut order: Vec<i64> = parts.keys().copied().collect();
    order.sort_by_key(|account| *account != source_account);
    for account in order {
        if left <= Cents::ZERO {
            break;
        }
        if let Some(part) = parts.get_mut(&account) {
            let cut = left.min(*part);
            *part -= cut;
            left -= cut;
        }
    }
    parts.into_iter().filter(|(_, amount)| *amount > Cents::ZERO).collect()
}

/// What a transfer's end means for the money loop, inside the transaction that records it.
pub(super) async fn settle_money(
    work: &mut Work,
    transfer: &Transfer,
    status: &TransferStatus,
    failure_code: Option<&str>,
) -> ServiceResult<()> {
    let processed = *status == TransferStatus::Processed;
    let failed = matches!(status, TransferStatus::Failed | TransferStatus::Cancelled);
    if !processed && !failed {
        return Ok(());
    }
    if let Some(c) = ml::collection_by_transfer(work, transfer.id).await? {
        let to = match status {
            TransferStatus::Processed => CollectionStatus::Processed,
            TransferStatus::Cancelled => CollectionStatus::Cancelled,
            _ => CollectionStatus::Failed,
        };
        if !ml::settle_collection(work, c.id, &to, failure_code, now()).await? {
            return Ok(());
        }
        let mut movements = Vec::with_capacity(2);
        if processed {
            movements.push(Movement::CollectPost { collection_id: c.id });
            if c.offset > Cents::ZERO {
                movements.push(Movement::OffsetPost { collection_id: c.id });
            }
        } else {
            // The round-ups go back to waiting and the corrections to open; a later run collects
            // and offsets them once.
            ml::release_waiting(work, c.id).await?;
            movements.push(Movement::CollectVoid { collection_id: c.id });
            if c.offset > Cents::ZERO {
                movements.push(Movement::OffsetVoid { collection_id: c.id });
            }
        }
        ledger::record_all(work, &movements).await.map_err(ledger_error)?;
        work.changed(Change::User(c.user_id));
        if processed && users::find_by_id(&mut **work, c.user_id).await?.is_some_and(|u| u.is_closed_account) {
            work.enqueue(&FinalPayout { user_id: c.user_id }, Duration::ZERO).await?;
        }
        return Ok(());
    }
    if let Some(part) = ml::part_by_transfer(work, transfer.id).await? {
        settle_part(work, &part, processed, None).await?;
    }
    Ok(())
}

async fn settle_part(
    work: &mut Work,
    part: &PayoutPart,
    processed: bool,
    reference: Option<&str>,
) -> ServiceResult<bool> {
    if !ml::settle_part(work, part.id, processed, reference, now()).await? {
        return Ok(false);
    }
    let movement = match (part.method, processed) {
        (PartMethod::Refund, true) => Movement::RefundPost { refund_id: part.id },
        (PartMethod::Refund, false) => Movement::RefundVoid { refund_id: part.id },
        (_, true) => Movement::PayoutPost { part_id: part.id },
        (_, false) => Movement::PayoutVoid { part_id: part.id },
    };
    ledger::record(work, &movement).await.map_err(ledger_error)?;
    work.changed(Change::User(part.user_id));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::apr_basis_points;

    #[test]
    fn an_apr_is_read_as_a_fraction_or_a_percent() {
        assert_eq!(apr_basis_points(0.1999), 1999);
        assert_eq!(apr_basis_points(19.99), 1999);
        assert_eq!(apr_basis_points(0.0), 0);
        assert_eq!(apr_basis_points(-3.0), 0);
        assert_eq!(apr_basis_points(f64::NAN), 0);
    }
}
