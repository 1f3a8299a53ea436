//! Collection in batches: hundreds of users per transaction, each step one statement (or a
//! few) for the whole batch, under exactly the rules of [`MoneyService::collect_user`]. A batch
//! commits whole or not at all, so a batch redone after a crash finds what it took already
//! taken and collects nothing twice. A batch that meets anything unusual (a concurrent run took
//! a round-up first, the ledger refuses) is rolled back and its users collected one by one.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use donkies_domain::{Cents, CollectionHold, FundingSourceStatus, Movement, split_by_shares};
use donkies_store::ledger;
use donkies_store::money_batch as mb;
use donkies_store::money_loop::{Collection, CollectionStatus, PartMethod, Payout, PayoutPart, Waiting};
use donkies_store::payments::FundingSource;
use donkies_store::users::User;
use donkies_store::{new_id, now};

use super::{
    Collected, MoneyService, PaidOut, collection_parts, day_start, floor_of, gather_purchases, ledger_error,
    month_start, retire_roundups, rules_of, usable,
};
use crate::services::payments::{PreparedTransfer, Route};
use crate::services::{Change, ServiceError, ServiceResult};

/// A user the batch works on: the user, the round-up source and where its money may go (or
/// why it may not).
struct Member<'a> {
    user: &'a User,
    source: &'a FundingSource,
    route: Result<Route, String>,
}

/// What the batch records for one user who is collected from.
struct Sending {
    collection: Collection,
    parts: Vec<(i64, Cents)>,
    taken: Vec<Waiting>,
    corrections: Vec<i64>,
    prepared: PreparedTransfer,
}

impl MoneyService {
    /// Collect the users of `user_ids` (as [`MoneyService::collect_user`] does each, with the
    /// same outcomes) in one transaction; users it cannot take together are collected one by
    /// one.
    pub async fn collect_batch(&self, user_ids: &[i64]) -> ServiceResult<Vec<(i64, Collected)>> {
        match self.collect_together(user_ids).await {
            Ok(outcomes) => Ok(outcomes),
            Err(e) => {
                tracing::warn!(users = user_ids.len(), error = %e, "batch collection fell back to one user at a time");
                let mut outcomes = Vec::with_capacity(user_ids.len());
                for user_id in user_ids {
                    let outcome = match self.collect_user(*user_id, false).await {
                        Ok(o) => o,
                        Err(ServiceError::Store(e)) => return Err(ServiceError::Store(e)),
                        Err(e) => Collected::Failed(e.to_string()),
                    };
                    outcomes.push((*user_id, outcome));
                }
                Ok(outcomes)
            }
        }
    }

    /// Collect the users of `user_ids` in one transaction, or fail and change nothing (where
    /// [`MoneyService::collect_batch`] would fall back to one user at a time).
    pub async fn collect_together(&self, user_ids: &[i64]) -> ServiceResult<Vec<(i64, Collected)>> {
        let db = &self.store.db;
        let users = mb::users(db, user_ids).await?;
        let mut outcomes: BTreeMap<i64, Collected> = BTreeMap::new();
        for id in user_ids {
            outcomes.insert(*id, Collected::Failed(ServiceError::NotFound.to_string()));
        }
        let open: Vec<&User> = users.iter().filter(|u| !u.is_closed_account).collect();
        for user in users.iter().filter(|u| u.is_closed_account) {
            outcomes.insert(user.id, Collected::Skipped("the account is closed".into()));
        }
        let open_ids: Vec<i64> = open.iter().map(|u| u.id).collect();
        let sources = mb::round_up_sources(db, &open_ids).await?;
        let mut candidates: Vec<(&User, &FundingSource)> = Vec::with_capacity(open.len());
        for user in open {
            match sources.get(&user.id) {
                None => {
                    outcomes.insert(user.id, Collected::Skipped("no round-up source".into()));
                }
                Some(source) if !usable(source) => {
                    outcomes.insert(user.id, Collected::Skipped("the round-up source is not verified".into()));
                }
                Some(source) => candidates.push((user, source)),
            }
        }
        let customer_ids: Vec<i64> = candidates.iter().map(|(_, s)| s.customer_id).collect();
        let customers = mb::customers(db, &customer_ids).await?;
        let source_list: Vec<&FundingSource> = candidates.iter().map(|(_, s)| *s).collect();
        let routes = self.payments.routes_with_donkies(&source_list, &customers, true).await?;
        let mut members: Vec<Member<'_>> = Vec::with_capacity(candidates.len());
        for ((user, source), route) in candidates.into_iter().zip(routes) {
            match route {
                Ok(route) => members.push(Member { user, source, route: Ok(route) }),
                Err(ServiceError::Invalid(why)) => members.push(Member { user, source, route: Err(why) }),
                // As one user's run would fail before its transaction opens.
                Err(e) => {
                    outcomes.insert(user.id, Collected::Failed(e.to_string()));
                }
            }
        }
        let ids: Vec<i64> = members.iter().map(|m| m.user.id).collect();
        if ids.is_empty() {
            return Ok(in_order(user_ids, outcomes));
        }

        let mut work = self.store.begin().await?;
        mb::plan_for_now(&mut work).await?;
        mb::lock_users(&mut work, &ids).await?;
        for (user_id, stale) in mb::stale_roundups(&mut work, &ids).await? {
            retire_roundups(&mut work, user_id, &stale).await?;
        }
        let mut purchases = mb::ungathered_purchases(&mut work, &ids).await?;
        let gathering: Vec<(&User, Vec<_>)> =
            members.iter().filter_map(|m| purchases.remove(&m.user.id).map(|p| (m.user, p))).collect();
        gather_purchases(&mut work, &gathering).await?;
        let t = now();
        let mut waiting = mb::waiting(&mut *work, &ids).await?;
        let mut corrections = mb::open_corrections(&mut *work, &ids).await?;
        let collected = mb::collected_since(&mut work, &ids, day_start(t), month_start(t)).await?;
        let source_accounts: Vec<i64> = members.iter().map(|m| m.source.account_id).collect();
        let balances = mb::known_balances(&mut work, &source_accounts).await?;

        let minimum = self.settings.collection_minimum;
        let mut sending: Vec<Sending> = Vec::new();
        for member in members {
            let user = member.user;
            let waiting = waiting.remove(&user.id).unwrap_or_default();
            let corrections = corrections.remove(&user.id).unwrap_or_default();
            let offset: Cents = corrections.iter().map(|c| c.amount).sum();
            let (today, this_month) = collected.get(&user.id).copied().unwrap_or_default();
            let amounts: Vec<Cents> = waiting.iter().map(|w| w.amount).collect();
            let chosen = rules_of(user).select_offsetting(&amounts, today, this_month, minimum, offset);
            let taken: Vec<Waiting> = chosen.iter().filter_map(|&i| waiting.get(i).cloned()).collect();
            let amount = taken.iter().map(|w| w.amount).sum::<Cents>() - offset;
            let outcome = if taken.is_empty() {
                let waiting: Cents = amounts.iter().sum::<Cents>() - offset;
                let collectable: Cents = amounts.iter().map(|a| (*a).max(Cents::ZERO)).sum::<Cents>() - offset;
                if collectable >= minimum {
                    Collected::HeldByCap { waiting }
                } else {
                    Collected::BelowMinimum { waiting }
                }
            } else if let Some(hold) = CollectionHold::of(
                balances.get(&member.source.account_id).cloned().unwrap_or_default(),
                amount,
                floor_of(user),
                t,
            ) {
                tracing::info!(user = user.id, %amount, %hold, "collection held by the bank balance");
                Collected::HeldByBalance { waiting: amounts.iter().sum::<Cents>() - offset, hold }
            } else {
                match member.route {
                    Err(why) => Collected::Skipped(why),
                    Ok(route) => {
                        let collection_id = new_id();
                        let collection = Collection {
                            id: collection_id,
                            user_id: user.id,
                            account_id: member.source.account_id,
                            amount,
                            offset,
                            status: CollectionStatus::Pending,
                            transfer_id: 0,
                            failure_code: None,
                            created_at: t,
                            sent_at: None,
                            updated_at: t,
                        };
                        sending.push(Sending {
                            collection,
                            parts: collection_parts(&taken, member.source.account_id, offset),
                            taken,
                            corrections: corrections.iter().map(|c| c.id).collect(),
                            prepared: route.carrying(amount),
                        });
                        continue;
                    }
                }
            };
            outcomes.insert(user.id, outcome);
        }

        if !sending.is_empty() {
            let transfers: Vec<(String, PreparedTransfer)> =
                sending.iter().map(|s| (format!("collection:{}", s.collection.id), s.prepared.clone())).collect();
            let transfer_ids = self.payments.record_transfers(&mut work, &transfers).await?;
            for (s, transfer_id) in sending.iter_mut().zip(transfer_ids) {
                s.collection.transfer_id = transfer_id;
            }
            let rows: Vec<(Collection, Vec<(i64, Cents)>)> =
                sending.iter().map(|s| (s.collection.clone(), s.parts.clone())).collect();
            mb::insert_collections(&mut work, &rows, t).await?;
            let taken: Vec<(i64, &Waiting)> =
                sending.iter().flat_map(|s| s.taken.iter().map(move |w| (s.collection.id, w))).collect();
            let corrections: Vec<(i64, i64)> =
                sending.iter().flat_map(|s| s.corrections.iter().map(move |c| (s.collection.id, *c))).collect();
            if !mb::take(&mut work, &taken, &corrections).await? {
                return Err(ServiceError::invalid("another run took some of what waits"));
            }
            let mut movements = Vec::with_capacity(sending.len() * 2);
            for s in &sending {
                let (user_id, collection_id) = (s.collection.user_id, s.collection.id);
                if s.collection.offset > Cents::ZERO {
                    movements.push(Movement::OffsetStart { user_id, collection_id, amount: s.collection.offset });
                }
                movements.push(Movement::CollectStart { user_id, collection_id, amount: s.collection.amount });
            }
            ledger::record_all(&mut work, &movements).await.map_err(ledger_error)?;
        }
        for s in &sending {
            let c = &s.collection;
            work.changed(Change::User(c.user_id));
            outcomes.insert(
                c.user_id,
                Collected::Sent { collection_id: c.id, transfer_id: c.transfer_id, amount: c.amount },
            );
        }
        work.commit().await?;
        tracing::info!(users = user_ids.len(), collected = sending.len(), "batch collected");
        Ok(in_order(user_ids, outcomes))
    }
}

/// The outcomes in the order the users were asked for.
fn in_order<T>(user_ids: &[i64], mut outcomes: BTreeMap<i64, T>) -> Vec<(i64, T)> {
    user_ids.iter().filter_map(|id| outcomes.remove(id).map(|o| (*id, o))).collect()
}

/// A debt account's part of a payout: the account, its share and the amount.
type Share = (i64, u32, Cents);

/// One user's payout as the batch plans it, before anything is written.
struct Paying {
    payout: Payout,
    /// (part, prepared transfer for a part paid through Dwolla)
    parts: Vec<(PayoutPart, Option<PreparedTransfer>)>,
}

impl MoneyService {
    /// The payout of `day` for the users of `user_ids` (as [`MoneyService::payout_user`] does
    /// each for an open account, with the same outcomes) in one transaction; users it cannot
    /// take together are paid out one by one.
    pub async fn payout_batch(&self, user_ids: &[i64], day: NaiveDate) -> ServiceResult<Vec<(i64, PaidOut)>> {
        match self.payout_together(user_ids, day).await {
            Ok(outcomes) => Ok(outcomes),
            Err(e) => {
                tracing::warn!(users = user_ids.len(), error = %e, "batch payout fell back to one user at a time");
                let mut outcomes = Vec::with_capacity(user_ids.len());
                for user_id in user_ids {
                    let outcome = match self.payout_user(*user_id, Some(day), false).await {
                        Ok(o) => o,
                        Err(ServiceError::Store(e)) => return Err(ServiceError::Store(e)),
                        Err(e) => PaidOut::Nothing(e.to_string()),
                    };
                    outcomes.push((*user_id, outcome));
                }
                Ok(outcomes)
            }
        }
    }

    /// The payout of `day` for the users of `user_ids` in one transaction, or fail and change
    /// nothing (where [`MoneyService::payout_batch`] falls back to one user at a time).
    pub async fn payout_together(&self, user_ids: &[i64], day: NaiveDate) -> ServiceResult<Vec<(i64, PaidOut)>> {
        let db = &self.store.db;
        let mut outcomes: BTreeMap<i64, PaidOut> = BTreeMap::new();
        for id in user_ids {
            outcomes.insert(*id, PaidOut::Nothing(ServiceError::NotFound.to_string()));
        }
        let users = mb::users(db, user_ids).await?;
        let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
        let held = mb::held(db, &ids).await?;
        let mut shares = mb::debt_shares(db, &ids).await?;
        // (user, held, [(account, share, amount)])
        let mut planned: Vec<(&User, Cents, Vec<Share>)> = Vec::new();
        for user in &users {
            let held = held.get(&user.id).copied().unwrap_or_default();
            let shares: Vec<(i64, u32)> = shares
                .remove(&user.id)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(account, share)| u32::try_from(share).ok().filter(|s| *s > 0).map(|s| (account, s)))
                .collect();
            let outcome = if held <= Cents::ZERO {
                PaidOut::Nothing("nothing held".into())
            } else if held.get() < user.minimum_transfer_amount.get() * 100 {
                PaidOut::BelowMinimum { held }
            } else if shares.is_empty() {
                PaidOut::Nothing("no active debt account".into())
            } else {
                let percents: Vec<u32> = shares.iter().map(|(_, s)| *s).collect();
                let split = split_by_shares(held, &percents);
                let parts = shares
                    .iter()
                    .zip(split)
                    .filter(|(_, amount)| *amount > Cents::ZERO)
                    .map(|((account, share), amount)| (*account, *share, amount))
                    .collect();
                planned.push((user, held, parts));
                continue;
            };
            outcomes.insert(user.id, outcome);
        }
        let accounts: Vec<i64> = planned.iter().flat_map(|(_, _, parts)| parts.iter().map(|p| p.0)).collect();
        let sources = mb::funding_sources_of_accounts(db, &accounts).await?;
        let rails: Vec<&FundingSource> = planned
            .iter()
            .flat_map(|(user, _, parts)| {
                parts.iter().filter_map(|p| sources.get(&p.0).filter(|s| s.user_id == user.id))
            })
            .filter(|s| !s.is_removed && s.status == FundingSourceStatus::Verified && s.dwolla_id.is_some())
            .collect();
        let customer_ids: Vec<i64> = rails.iter().map(|s| s.customer_id).collect();
        let customers = mb::customers(db, &customer_ids).await?;
        let routes: BTreeMap<i64, ServiceResult<Route>> = if rails.is_empty() {
            BTreeMap::new()
        } else {
            let found = self.payments.routes_with_donkies(&rails, &customers, false).await?;
            rails.iter().map(|s| s.account_id).zip(found).collect()
        };
        let (t, period) = (now(), day.to_string());
        let mut paying: Vec<Paying> = Vec::new();
        'users: for (user, held, parts) in planned {
            let payout = Payout { id: new_id(), user_id: user.id, amount: held, period: period.clone(), created_at: t };
            let mut planned_parts = Vec::with_capacity(parts.len());
            for (account_id, share, amount) in parts {
                let prepared = match routes.get(&account_id) {
                    None => None,
                    Some(Ok(route)) => Some(route.clone().carrying(amount)),
                    // As one user's payout stops at a route it may not take.
                    Some(Err(e)) => {
                        outcomes.insert(user.id, PaidOut::Nothing(e.to_string()));
                        continue 'users;
                    }
                };
                let part = PayoutPart {
                    id: new_id(),
                    payout_id: payout.id,
                    user_id: user.id,
                    account_id,
                    amount,
                    share: i64::from(share),
                    method: if prepared.is_some() { PartMethod::Dwolla } else { PartMethod::Manual },
                    status: "pending".into(),
                    transfer_id: None,
                    manual_reference: None,
                    created_at: t,
                    processed_at: None,
                };
                planned_parts.push((part, prepared));
            }
            paying.push(Paying { payout, parts: planned_parts });
        }
        if paying.is_empty() {
            return Ok(in_order(user_ids, outcomes));
        }

        let mut work = self.store.begin().await?;
        mb::plan_for_now(&mut work).await?;
        let paying_ids: Vec<i64> = paying.iter().map(|p| p.payout.user_id).collect();
        mb::lock_users(&mut work, &paying_ids).await?;
        for user_id in mb::paid_for_period(&mut work, &paying_ids, &period).await? {
            outcomes.insert(user_id, PaidOut::AlreadyPaid);
            paying.retain(|p| p.payout.user_id != user_id);
        }
        let transfers: Vec<(String, PreparedTransfer)> = paying
            .iter()
            .flat_map(|p| {
                p.parts.iter().filter_map(|(part, prepared)| Some((format!("payout:{}", part.id), prepared.clone()?)))
            })
            .collect();
        let mut transfer_ids = self.payments.record_transfers(&mut work, &transfers).await?.into_iter();
        for (part, prepared) in paying.iter_mut().flat_map(|p| p.parts.iter_mut()) {
            if prepared.is_some() {
                part.transfer_id = transfer_ids.next();
            }
        }
        let payouts: Vec<Payout> = paying.iter().map(|p| p.payout.clone()).collect();
        let parts: Vec<PayoutPart> = paying.iter().flat_map(|p| p.parts.iter().map(|(part, _)| part.clone())).collect();
        mb::insert_payouts(&mut work, &payouts, &parts).await?;
        let movements: Vec<Movement> = parts
            .iter()
            .map(|p| Movement::PayoutStart {
                user_id: p.user_id,
                part_id: p.id,
                debt_account_id: p.account_id,
                amount: p.amount,
            })
            .collect();
        ledger::record_all(&mut work, &movements).await.map_err(ledger_error)?;
        for p in &paying {
            work.changed(Change::User(p.payout.user_id));
            let parts = p.parts.iter().map(|(part, _)| (part.account_id, part.amount, part.method)).collect();
            outcomes.insert(p.payout.user_id, PaidOut::Sent { payout_id: p.payout.id, amount: p.payout.amount, parts });
        }
        work.commit().await?;
        tracing::info!(users = user_ids.len(), paid = paying.len(), "batch paid out");
        Ok(in_order(user_ids, outcomes))
    }
}
