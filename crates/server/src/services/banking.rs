//! Bank linking: the aggregator user, the institution catalog and credentials, members (create,
//! resume, delete), their polling, and the sync of accounts and transactions.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use anyhow::Context;
use donkies_atrium::wire::{self, ChallengeAnswer, CredentialValue};
use donkies_atrium::{Aggregator, AtriumError, DateRange};
use donkies_domain::bank_sync::{self, FetchedRow, RowFacts, StoredRow, SyncCounts};
use donkies_domain::{AccountFamily, Cents, Direction, ExposeSecret, MemberStatus, SecretString};
use donkies_store::accounts::{self, AccountData};
use donkies_store::institutions::{self, CatalogEntry, Credential, Institution};
use donkies_store::members::{self, Challenge, Member, StatusUpdate};
use donkies_store::transactions::{self, TransactionData};
use donkies_store::{constraints, new_id, now, users};

use super::settings::BankingSettings;
use super::{Change, OnConstraint, ServiceError, ServiceResult, Storage, Work};
use crate::crypto::new_token;
use crate::jobs::banking::{PollMember, ResyncMember, SyncMemberTransactions};

/// Days back a member's first sync fetches (the aggregator keeps about 90).
pub const SYNC_DAYS_BACK: u64 = 90;

/// Days before the last posted purchase a later sync fetches again: a posted purchase is still
/// amended, reversed or removed within about two weeks.
pub const SYNC_LOOKBACK_DAYS: u64 = 14;

/// HALTED aggregations are retried with `aggregate` this many times before giving up.
pub const HALTED_RETRIES: i64 = 2;

/// An aggregator failure in the terms of a use case.
impl From<AtriumError> for ServiceError {
    fn from(err: AtriumError) -> Self {
        let refused = format!("The bank refused the request: {}", err.message());
        ServiceError::provider(
            err.failure(),
            "The bank aggregator is unavailable. Please try again later.",
            refused,
            err,
        )
    }
}

/// A credential or challenge answer as the user gave it: by name (label) or by guid.
#[derive(Debug, Clone)]
pub enum Keyed {
    Name(String),
    Guid(String),
}

impl Keyed {
    fn text(&self) -> &str {
        match self {
            Keyed::Name(s) | Keyed::Guid(s) => s,
        }
    }
}

/// The bank-linking use cases, with what they reach: storage and the aggregator, never the
/// payment rail or the sign-in providers.
#[derive(Clone)]
pub struct BankingService(Arc<BankingInner>);

pub struct BankingInner {
    pub store: Storage,
    pub aggregator: Arc<dyn Aggregator>,
    pub settings: BankingSettings,
}

impl Deref for BankingService {
    type Target = BankingInner;
    fn deref(&self) -> &BankingInner {
        &self.0
    }
}

impl BankingService {
    pub fn new(store: Storage, aggregator: Arc<dyn Aggregator>, settings: BankingSettings) -> Self {
        BankingService(Arc::new(BankingInner { store, aggregator, settings }))
    }

    /// The user's id at the aggregator, created (idempotently, by our identifier) if missing.
    pub async fn ensure_aggregator_user(&self, user_id: i64) -> ServiceResult<String> {
        let user = users::find_by_id(&self.store.db, user_id).await?.context("user vanished")?;
        if let Some(guid) = user.guid {
            return Ok(guid);
        }
        let new = wire::NewUser { identifier: Some(user.identifier.clone()), ..Default::default() };
        let guid = match self.aggregator.create_user(&new).await {
            Ok(created) => created.guid,
            Err(AtriumError::Conflict { .. }) => self.find_aggregator_user(&user.identifier).await?,
            Err(err) => return Err(err.into()),
        };
        let mut work = self.store.begin().await?;
        users::set_guid(&mut work, user_id, &guid, now()).await?;
        work.changed(Change::User(user_id));
        work.commit().await?;
        Ok(guid)
    }

    /// A user we created earlier whose answer was lost: find it by our identifier.
    async fn find_aggregator_user(&self, identifier: &str) -> ServiceResult<String> {
        let mut page = donkies_atrium::PageRequest::largest();
        loop {
            let users = self.aggregator.list_users(page).await?;
            if let Some(u) = users.items.iter().find(|u| u.identifier.as_deref() == Some(identifier)) {
                return Ok(u.guid.clone());
            }
            if !users.has_next() || page.page >= users.pagination.total_pages {
                return Err(anyhow::anyhow!("aggregator reports a conflict but has no user {identifier}").into());
            }
            page.page += 1;
        }
    }

    /// Create aggregator users for every user that has none yet.
    pub async fn backfill_aggregator_users(&self) -> ServiceResult<()> {
        for user_id in users::ids_without_guid(&self.store.db).await? {
            self.ensure_aggregator_user(user_id).await?;
        }
        Ok(())
    }

    /// Refresh the institution catalog and every institution's credentials (all pages).
    pub async fn sync_institutions(&self) -> ServiceResult<usize> {
        let catalog = self.aggregator.all_institutions(None).await?;
        let entries: Vec<CatalogEntry> = catalog
            .iter()
            .map(|i| CatalogEntry { code: i.code.clone(), name: i.name.clone(), url: i.url.clone() })
            .collect();
        let mut work = self.store.begin().await?;
        institutions::upsert(&mut work, &entries, now()).await?;
        work.commit().await?;
        for inst in &catalog {
            self.refresh_credentials(&inst.code).await?;
        }
        Ok(catalog.len())
    }

    /// Read an institution's credentials from the aggregator and store them.
    pub async fn refresh_credentials(&self, code: &str) -> ServiceResult<Vec<Credential>> {
        let Some(inst) = institutions::get_by_code(&self.store.db, code).await? else {
            return Ok(Vec::new());
        };
        let live = self.aggregator.list_institution_credentials(code).await?;
        let creds: Vec<Credential> = live
            .into_iter()
            .enumerate()
            .map(|(i, c)| Credential {
                institution_id: inst.id,
                field_name: c.field_name.clone().unwrap_or_else(|| c.label.to_uppercase().replace(' ', "_")),
                guid: c.guid,
                label: c.label,
                kind: c.credential_type.as_str().to_owned(),
                display_order: c.display_order.map_or(i as i64 + 1, i64::from),
            })
            .collect();
        let mut work = self.store.begin().await?;
        institutions::replace_credentials(&mut work, inst.id, &creds).await?;
        work.commit().await?;
        Ok(creds)
    }

    pub async fn list_institutions(&self, search: Option<&str>, limit: i64) -> ServiceResult<Vec<Institution>> {
        Ok(institutions::list(&self.store.db, search, limit).await?)
    }

    pub async fn institution(&self, id: i64) -> ServiceResult<Institution> {
        institutions::get(&self.store.db, id).await?.ok_or(ServiceError::NotFound)
    }

    pub async fn institution_by_code(&self, code: &str) -> ServiceResult<Institution> {
        institutions::get_by_code(&self.store.db, code).await?.ok_or(ServiceError::NotFound)
    }

    /// The credentials an institution asks for: from the aggregator now when `live`, else the
    /// stored catalog (read from the aggregator when nothing is stored yet).
    pub async fn institution_credentials(&self, inst: &Institution, live: bool) -> ServiceResult<Vec<Credential>> {
        if live {
            return self.refresh_credentials(&inst.code).await;
        }
        let stored = institutions::credentials(&self.store.db, inst.id).await?;
        if stored.is_empty() { self.refresh_credentials(&inst.code).await } else { Ok(stored) }
    }

    pub async fn members(&self, user_id: i64) -> ServiceResult<Vec<Member>> {
        Ok(members::list_for_user(&self.store.db, user_id).await?)
    }

    pub async fn member(&self, user_id: i64, identifier: &str) -> ServiceResult<Member> {
        members::find_by_identifier(&self.store.db, user_id, identifier).await?.ok_or(ServiceError::NotFound)
    }

    pub async fn member_by_id(&self, member_id: i64) -> ServiceResult<Member> {
        members::get(&self.store.db, member_id).await?.ok_or(ServiceError::NotFound)
    }

    /// The stored status of a member and whether polling gave up (a cheap read for waiting).
    pub async fn member_status(&self, member_id: i64) -> ServiceResult<Option<(MemberStatus, bool)>> {
        Ok(members::status_of(&self.store.db, member_id).await?)
    }

    /// The challenges a member waits on (none unless it is CHALLENGED).
    pub async fn member_challenges(&self, member: &Member) -> ServiceResult<Vec<Challenge>> {
        if member.status != MemberStatus::Challenged || member.gave_up {
            return Ok(Vec::new());
        }
        Ok(members::challenges(&self.store.db, member.id).await?)
    }

    /// Link a bank: the member is created at the aggregator (or, when the user already has
    /// one at this institution, its credentials are updated), then polled by a job.
    pub async fn create_member(&self, user_id: i64, code: &str, given: Vec<(Keyed, String)>) -> ServiceResult<Member> {
        let inst = institutions::get_by_code(&self.store.db, code)
            .await?
            .ok_or_else(|| ServiceError::field("institution_code", "Institution not found."))?;
        let expected = self.institution_credentials(&inst, false).await?;
        let mut values: HashMap<String, String> = HashMap::new();
        let mut errors = Vec::new();
        for (key, value) in given {
            let found = expected.iter().find(|c| match &key {
                Keyed::Name(name) => c.field_name.eq_ignore_ascii_case(name),
                Keyed::Guid(guid) => c.guid == *guid,
            });
            match found {
                Some(c) => {
                    values.insert(c.guid.clone(), value);
                }
                None => errors.push(format!("Unknown credential: {}.", key.text())),
            }
        }
        for c in &expected {
            if values.get(&c.guid).is_none_or(|v| v.is_empty()) {
                errors.push(format!("Missing credential: {}.", c.field_name));
            }
        }
        if !errors.is_empty() {
            return Err(ServiceError::fields("credentials", errors));
        }
        let credentials: Vec<CredentialValue> =
            values.into_iter().map(|(guid, value)| CredentialValue::new(guid, value)).collect();
        let user_guid = self.ensure_aggregator_user(user_id).await?;

        if let Some(existing) = members::find_for_institution(&self.store.db, user_id, inst.id).await? {
            let member_guid = existing.guid.clone().unwrap_or_default();
            let update = wire::MemberUpdate::credentials(credentials);
            let updated = self.aggregator.update_member(&user_guid, &member_guid, &update).await?;
            let mut work = self.store.begin().await?;
            self.restart_polling(&mut work, user_id, existing.id, status_of(&updated.status)).await?;
            work.commit().await?;
            return self.member_by_id(existing.id).await;
        }

        let identifier = new_token();
        let request = wire::NewMember {
            institution_code: inst.code.clone(),
            credentials,
            identifier: Some(identifier.clone()),
            metadata: None,
        };
        let created = self.aggregator.create_member(&user_guid, &request).await?;
        let id = new_id();
        let mut work = self.store.begin().await?;
        let new = members::NewMember {
            id,
            user_id,
            institution_id: inst.id,
            identifier: &identifier,
            guid: &created.guid,
            name: created.name.as_deref().unwrap_or(&inst.name),
            status: status_of(&created.status),
            now: now(),
        };
        let linking = || ServiceError::invalid("This institution is already being linked; try again.");
        let inserted = members::insert(&mut work, &new).await;
        if let Err(err) = inserted.on_constraint(constraints::MEMBERS_USER_INSTITUTION, linking) {
            drop(work);
            // Nothing half-created: take the aggregator's member back.
            let _ = self.aggregator.delete_member(&user_guid, &created.guid).await;
            return Err(err);
        }
        self.restart_polling(&mut work, user_id, id, status_of(&created.status)).await?;
        work.commit().await?;
        tracing::info!(member = %id, institution = %inst.code, "member created");
        self.member_by_id(id).await
    }

    /// Unlink a bank: deleted at the aggregator; its accounts stop showing.
    pub async fn delete_member(&self, user_id: i64, identifier: &str) -> ServiceResult<()> {
        let member = self.member(user_id, identifier).await?;
        if let Some(guid) = &member.guid {
            let user_guid = self.ensure_aggregator_user(user_id).await?;
            match self.aggregator.delete_member(&user_guid, guid).await {
                Ok(()) | Err(AtriumError::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        let mut work = self.store.begin().await?;
        members::mark_deleted(&mut work, member.id, now()).await?;
        super::accounts::rebalance_debt_shares(&mut work, user_id).await?;
        work.changed(Change::Member { id: member.id, user_id: member.user_id });
        work.changed(Change::Transactions(user_id));
        work.commit().await?;
        Ok(())
    }

    /// Answer a CHALLENGED member's questions; polling starts again.
    pub async fn resume_member(
        &self,
        user_id: i64,
        identifier: &str,
        answers: Vec<(Keyed, String)>,
    ) -> ServiceResult<()> {
        const NOT_CHALLENGED: &str = "The member is not waiting for answers to challenges.";
        let member = self.member(user_id, identifier).await?;
        if member.status != MemberStatus::Challenged || member.gave_up {
            return Err(ServiceError::invalid(NOT_CHALLENGED));
        }
        let challenges = members::challenges(&self.store.db, member.id).await?;
        let mut by_guid: HashMap<String, String> = HashMap::new();
        let mut errors = Vec::new();
        for (key, value) in answers {
            let found = challenges.iter().find(|c| match &key {
                Keyed::Name(label) => c.label == *label || c.label.trim().eq_ignore_ascii_case(label.trim()),
                Keyed::Guid(guid) => c.guid == *guid,
            });
            match found {
                Some(c) => {
                    by_guid.insert(c.guid.clone(), value);
                }
                None => errors.push(format!("Unknown challenge: {}.", key.text())),
            }
        }
        for c in &challenges {
            if by_guid.get(&c.guid).is_none_or(|v| v.is_empty()) {
                errors.push(format!("Challenge \"{}\" is not answered.", c.label));
            }
        }
        if challenges.is_empty() {
            errors.push("The member has no challenges to answer.".into());
        }
        if !errors.is_empty() {
            return Err(ServiceError::fields("challenges", errors));
        }
        let user_guid = self.ensure_aggregator_user(user_id).await?;
        let answers: Vec<ChallengeAnswer> = challenges
            .iter()
            .filter_map(|c| Some(ChallengeAnswer::new(c.guid.clone(), by_guid.get(&c.guid)?.clone())))
            .collect();
        let member_guid = member.guid.clone().unwrap_or_default();
        let resumed = match self.aggregator.resume_member(&user_guid, &member_guid, &answers).await {
            Ok(m) => m,
            Err(AtriumError::Conflict { .. }) => return Err(ServiceError::invalid(NOT_CHALLENGED)),
            Err(err) => return Err(err.into()),
        };
        let mut work = self.store.begin().await?;
        self.restart_polling(&mut work, user_id, member.id, status_of(&resumed.status)).await?;
        work.commit().await?;
        Ok(())
    }

    /// Start (or restart) polling a member: a new generation retires older polling jobs.
    async fn restart_polling(
        &self,
        work: &mut Work,
        user_id: i64,
        member_id: i64,
        status: MemberStatus,
    ) -> ServiceResult<()> {
        let generation = members::restart(work, member_id, &status, now()).await?;
        work.enqueue(&PollMember { member_id, generation }, self.settings.member_poll).await?;
        work.changed(Change::Member { id: member_id, user_id });
        Ok(())
    }

    /// One poll of a member's aggregation (the `poll_member` job).
    pub async fn poll_member(&self, member_id: i64, generation: i64) -> ServiceResult<()> {
        let Some(member) = members::get(&self.store.db, member_id).await? else {
            return Ok(());
        };
        if member.poll_generation != generation {
            return Ok(()); // a newer round took over, or the member was deleted
        }
        let user_guid = self.ensure_aggregator_user(member.user_id).await?;
        let member_guid = member.guid.clone().context("member without aggregator guid")?;
        let status = self.aggregator.read_member_status(&user_guid, &member_guid).await?;
        let polls = member.polls + 1;
        let mut update = StatusUpdate {
            status: status_of(&status.status),
            aggregated_at: status.aggregated_at,
            successfully_aggregated_at: status.successfully_aggregated_at,
            polls,
            halted_retries: member.halted_retries,
            gave_up: false,
        };
        match status.status {
            wire::MemberStatus::Challenged => {
                let challenges = self.aggregator.list_member_challenges(&user_guid, &member_guid).await?;
                let stored: Vec<Challenge> = challenges.iter().map(stored_challenge).collect();
                let mut work = self.store.begin().await?;
                if members::save_status(&mut work, member_id, generation, &update, now()).await? {
                    members::replace_challenges(&mut work, member_id, &stored).await?;
                }
                work.changed(Change::Member { id: member_id, user_id: member.user_id });
                work.commit().await?;
            }
            wire::MemberStatus::Completed => {
                // Accounts first: front ends fetch them the moment they see SUCCESS.
                self.pull_accounts(&member, &user_guid).await?;
                let mut work = self.store.begin().await?;
                let saved = members::save_status(&mut work, member_id, generation, &update, now()).await?;
                if saved {
                    members::clear_challenges(&mut work, member_id).await?;
                }
                work.changed(Change::Member { id: member_id, user_id: member.user_id });
                work.commit().await?;
                if saved && let Err(err) = self.pull_transactions(&member, &user_guid).await {
                    tracing::warn!(member = %member_id, error = %format!("{err:#}"), "transactions not ready; retrying in a job");
                    let mut work = self.store.begin().await?;
                    let task = SyncMemberTransactions { member_id };
                    work.enqueue(&task, self.settings.member_poll).await?;
                    work.commit().await?;
                }
            }
            wire::MemberStatus::Halted if member.halted_retries < HALTED_RETRIES => {
                self.aggregator.aggregate_member(&user_guid, &member_guid).await?;
                update.halted_retries += 1;
                self.save_status(member.user_id, member_id, generation, &update, true).await?;
            }
            wire::MemberStatus::Halted => {
                update.gave_up = true;
                self.save_status(member.user_id, member_id, generation, &update, false).await?;
            }
            ref s if s.is_settled() => self.save_status(member.user_id, member_id, generation, &update, false).await?,
            _ if polls >= self.settings.member_poll_limit => {
                tracing::warn!(member = %member_id, polls, "aggregation did not settle; giving up");
                update.gave_up = true;
                self.save_status(member.user_id, member_id, generation, &update, false).await?;
            }
            _ => self.save_status(member.user_id, member_id, generation, &update, true).await?,
        }
        Ok(())
    }

    /// Polling this round cannot go on (its job was parked): the member has given up.
    pub async fn give_up_polling(&self, member_id: i64, generation: i64) -> ServiceResult<()> {
        let Some(member) = members::get(&self.store.db, member_id).await? else {
            return Ok(());
        };
        let update = StatusUpdate {
            status: member.status.clone(),
            aggregated_at: member.aggregated_at,
            successfully_aggregated_at: member.successfully_aggregated_at,
            polls: member.polls,
            halted_retries: member.halted_retries,
            gave_up: true,
        };
        self.save_status(member.user_id, member_id, generation, &update, false).await
    }

    /// Save a polled status (unless a newer polling round took over), and poll again later
    /// when asked to.
    async fn save_status(
        &self,
        user_id: i64,
        member_id: i64,
        generation: i64,
        update: &StatusUpdate,
        poll_again: bool,
    ) -> ServiceResult<()> {
        let mut work = self.store.begin().await?;
        if members::save_status(&mut work, member_id, generation, update, now()).await? && poll_again {
            let poll = PollMember { member_id, generation };
            work.enqueue(&poll, self.settings.member_poll).await?;
        }
        work.changed(Change::Member { id: member_id, user_id });
        work.commit().await?;
        Ok(())
    }

    /// Upsert the member's accounts and keep the debt shares summing to 100. Accounts of a
    /// re-linked bank take over the rows of the user's earlier accounts there.
    pub async fn pull_accounts(&self, member: &Member, user_guid: &str) -> ServiceResult<()> {
        let member_guid = member.guid.as_deref().context("member without aggregator guid")?;
        let live = self.aggregator.all_member_accounts(user_guid, member_guid).await?;
        let data: Vec<AccountData> = live.iter().map(|a| account_data(a, &self.settings.number_key)).collect();
        let mut work = self.store.begin().await?;
        let reattached = accounts::reattach(&mut work, member.user_id, member.institution_id, &data, now()).await?;
        if !reattached.is_empty() {
            tracing::info!(member = %member.id, accounts = ?reattached, "re-linked accounts recognised");
        }
        accounts::upsert(&mut work, member.user_id, member.id, &data, now()).await?;
        super::accounts::rebalance_debt_shares(&mut work, member.user_id).await?;
        work.changed(Change::Member { id: member.id, user_id: member.user_id });
        work.changed(Change::Transactions(member.user_id));
        work.commit().await?;
        Ok(())
    }

    /// Sync the member's transactions for the window the aggregator keeps (all pages), one
    /// sync of a member at a time across processes: rows the aggregator no longer returns are
    /// marked removed, rows a re-linked bank returns under new guids keep their ids, and
    /// round-ups whose purchase moved are retired. What changed, as the user would say it.
    pub async fn pull_transactions(&self, member: &Member, user_guid: &str) -> ServiceResult<SyncCounts> {
        let token = new_token();
        self.claim_sync(member.id, &token).await?;
        let result = self.pull_transactions_holding(member, user_guid, &token).await;
        let mut work = self.store.begin().await?;
        members::release_sync(&mut work, member.id, &token).await?;
        work.commit().await?;
        result
    }

    /// Wait (a while) for the member's sync lease.
    async fn claim_sync(&self, member_id: i64, token: &str) -> ServiceResult<()> {
        let lease = self.settings.sync_lease;
        let deadline = tokio::time::Instant::now() + lease;
        loop {
            let mut work = self.store.begin().await?;
            let t = now();
            let until = t + chrono::Duration::from_std(lease).unwrap_or_default();
            if members::claim_sync(&mut work, member_id, token, until, t).await? {
                work.commit().await?;
                return Ok(());
            }
            drop(work);
            if tokio::time::Instant::now() >= deadline {
                return Err(anyhow::anyhow!("another sync of member {member_id} is still running").into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    async fn pull_transactions_holding(
        &self,
        member: &Member,
        user_guid: &str,
        token: &str,
    ) -> ServiceResult<SyncCounts> {
        let member_guid = member.guid.as_deref().context("member without aggregator guid")?;
        let today = now().date_naive();
        let (from, to) = (self.sync_from(member.id, today).await?, today + chrono::Days::new(5));
        let started = std::time::Instant::now();
        let live =
            self.aggregator.all_member_transactions(user_guid, member_guid, DateRange::between(from, to)).await?;
        let fetched = started.elapsed();
        let mut work = self.store.begin().await?;
        if !members::holds_sync(&mut work, member.id, token).await? {
            return Err(anyhow::anyhow!("the sync lease of member {} lapsed", member.id).into());
        }
        let ids: HashMap<String, i64> = accounts::ids_by_guid(&mut work, member.user_id).await?.into_iter().collect();
        let rows: Vec<TransactionData> = live
            .into_iter()
            .filter_map(|t| {
                let account_id = *ids.get(t.account_guid.as_deref()?)?;
                Some(transaction_data(t, account_id))
            })
            .filter(|t| t.date >= from && t.date <= to)
            .collect();
        let mine = accounts::ids_of_member(&mut work, member.id).await?;
        let stored = transactions::stored_in_window(&mut work, member.user_id, &mine, from, to).await?;
        let plan = bank_sync::plan(
            &stored.iter().map(stored_row).collect::<Vec<_>>(),
            &rows.iter().map(fetched_row).collect::<Vec<_>>(),
        );
        let t = now();
        transactions::adopt_guids(&mut work, member.user_id, &plan.adopt, t).await?;
        transactions::upsert(&mut work, member.user_id, &rows, t).await?;
        transactions::mark_removed(&mut work, member.user_id, &plan.remove, t).await?;
        super::money::retire_stale_roundups(&mut work, member.user_id).await?;
        work.changed(Change::Transactions(member.user_id));
        work.commit().await?;
        tracing::info!(
            member = %member.id,
            rows = rows.len(),
            counts = %plan.counts,
            fetch_ms = fetched.as_millis() as u64,
            store_ms = (started.elapsed() - fetched).as_millis() as u64,
            "transactions synced"
        );
        Ok(plan.counts)
    }

    /// The first day a sync of the member fetches: a little before the last posted purchase it
    /// has (what a bank still amends or removes), and no later than its oldest pending one (which
    /// may still post or vanish); the whole history the aggregator keeps for a member with none.
    async fn sync_from(&self, member_id: i64, today: chrono::NaiveDate) -> ServiceResult<chrono::NaiveDate> {
        let oldest = today - chrono::Days::new(SYNC_DAYS_BACK);
        let (last_posted, first_pending) = transactions::sync_marks(&self.store.db, member_id).await?;
        let Some(last_posted) = last_posted else {
            return Ok(oldest);
        };
        let from = (last_posted - chrono::Days::new(SYNC_LOOKBACK_DAYS)).min(first_pending.unwrap_or(last_posted));
        Ok(from.clamp(oldest, today))
    }

    /// The `sync_member_transactions` job.
    pub async fn sync_member_transactions(&self, member_id: i64) -> ServiceResult<()> {
        let Some(member) = members::get(&self.store.db, member_id).await? else {
            return Ok(());
        };
        let user_guid = self.ensure_aggregator_user(member.user_id).await?;
        self.pull_transactions(&member, &user_guid).await?;
        Ok(())
    }

    /// Ask the aggregator to aggregate the member again; its status moves as after linking,
    /// and its accounts and transactions sync when it completes.
    pub async fn refresh_member(&self, user_id: i64, identifier: &str) -> ServiceResult<Member> {
        let member = self.member(user_id, identifier).await?;
        let member_guid =
            member.guid.clone().ok_or_else(|| ServiceError::Invalid("The bank is not linked yet.".into()))?;
        let user_guid = self.ensure_aggregator_user(user_id).await?;
        let status = self.aggregator.aggregate_member(&user_guid, &member_guid).await?;
        let mut work = self.store.begin().await?;
        self.restart_polling(&mut work, user_id, member.id, status_of(&status.status)).await?;
        work.commit().await?;
        self.member_by_id(member.id).await
    }

    /// Refresh every linked bank of the user now and wait for it: aggregate at the aggregator,
    /// wait until that is over, then sync accounts and transactions. What each sync changed.
    pub async fn sync_user(&self, user_id: i64) -> ServiceResult<Vec<(Member, SyncCounts)>> {
        let user_guid = self.ensure_aggregator_user(user_id).await?;
        let mut done = Vec::new();
        for member in members::list_for_user(&self.store.db, user_id).await? {
            let Some(member_guid) = member.guid.clone() else { continue };
            self.aggregator.aggregate_member(&user_guid, &member_guid).await?;
            let deadline = tokio::time::Instant::now() + self.settings.sync_lease;
            loop {
                let status = self.aggregator.read_member_status(&user_guid, &member_guid).await?;
                if status.status.is_settled() {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(anyhow::anyhow!("{} did not finish aggregating", member.name).into());
                }
                tokio::time::sleep(self.settings.member_poll.max(std::time::Duration::from_millis(20))).await;
            }
            self.pull_accounts(&member, &user_guid).await?;
            let counts = self.pull_transactions(&member, &user_guid).await?;
            done.push((member, counts));
        }
        Ok(done)
    }

    /// The hourly job: one deduplicated re-sync job per completed member, so that the work
    /// spreads over every worker and a member already waiting for one is not queued twice.
    pub async fn resync_members(&self) -> ServiceResult<()> {
        let completed = members::list_completed(&self.store.db).await?;
        for chunk in completed.chunks(500) {
            let mut work = self.store.begin().await?;
            for member in chunk {
                work.enqueue(&ResyncMember { member_id: member.id }, std::time::Duration::ZERO).await?;
            }
            work.commit().await?;
        }
        tracing::info!(members = completed.len(), "member re-syncs queued");
        Ok(())
    }

    /// The `resync_member` job: refresh one member's accounts (and so its balances) and
    /// transactions. A member deleted or no longer linked since is left alone.
    pub async fn resync_member(&self, member_id: i64) -> ServiceResult<()> {
        let Some(member) = members::get(&self.store.db, member_id).await? else {
            return Ok(());
        };
        if member.guid.is_none() || member.status != MemberStatus::Completed {
            return Ok(());
        }
        let user_guid = self.ensure_aggregator_user(member.user_id).await?;
        self.pull_accounts(&member, &user_guid).await?;
        self.pull_transactions(&member, &user_guid).await?;
        Ok(())
    }
}

fn stored_challenge(c: &wire::Challenge) -> Challenge {
    let options: Vec<serde_json::Value> = c
        .options
        .iter()
        .map(|o| serde_json::json!({ "label": o.label, "value": o.value }))
        .chain(c.image_options.iter().map(|o| serde_json::json!({ "label": o.label, "value": o.value })))
        .collect();
    Challenge {
        guid: c.guid.clone(),
        field_name: c.field_name.clone(),
        label: c.label.clone(),
        kind: c.challenge_type.as_str().to_owned(),
        options: serde_json::Value::Array(options).to_string(),
        image_data: c.image_data.clone(),
    }
}

fn cents(a: Option<wire::Amount>) -> Option<Cents> {
    a.map(|a| Cents::new(a.cents()))
}

fn status_of(status: &wire::MemberStatus) -> MemberStatus {
    MemberStatus::parse(status.as_str())
}

fn stored_row(r: &transactions::StoredRow) -> StoredRow {
    StoredRow {
        id: r.id,
        guid: r.guid.clone(),
        facts: row_facts(r.account_id, r.date, r.amount, r.kind, r.description.as_deref(), r.status.as_deref()),
        removed: r.removed,
    }
}

fn fetched_row(t: &TransactionData) -> FetchedRow {
    FetchedRow {
        guid: t.guid.clone(),
        facts: row_facts(t.account_id, t.date, t.amount, t.kind, t.description.as_deref(), t.status.as_deref()),
    }
}

fn row_facts(
    account_id: i64,
    date: chrono::NaiveDate,
    amount: Cents,
    kind: Direction,
    description: Option<&str>,
    status: Option<&str>,
) -> RowFacts {
    RowFacts {
        account_id,
        date,
        amount,
        debit: kind == Direction::Debit,
        description: description.unwrap_or_default().to_owned(),
        pending: status == Some("PENDING"),
    }
}

fn account_data(a: &wire::Account, number_key: &SecretString) -> AccountData {
    AccountData {
        number_digest: a
            .account_number
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .map(|n| crate::crypto::account_number_digest(number_key.expose_secret(), n)),
        guid: a.guid.clone(),
        name: a.name.clone(),
        kind: a.account_type.as_str().to_owned(),
        type_ds: AccountFamily::of_account_type(a.account_type.as_str()),
        subtype: a.subtype.clone(),
        balance: cents(a.balance),
        available_balance: cents(a.available_balance),
        available_credit: cents(a.available_credit),
        credit_limit: cents(a.credit_limit),
        apr: a.apr,
        apy: a.apy,
        interest_rate: a.interest_rate,
        minimum_balance: cents(a.minimum_balance),
        minimum_payment: cents(a.minimum_payment),
        original_balance: cents(a.original_balance),
        payoff_balance: cents(a.payoff_balance),
        last_payment: cents(a.last_payment),
        last_payment_at: a.last_payment_at,
        payment_due_at: a.payment_due_at,
        day_payment_is_due: a.day_payment_is_due,
        matures_on: a.matures_on,
        started_on: a.started_on,
        total_account_value: cents(a.total_account_value),
        is_closed: a.is_closed,
    }
}

fn transaction_data(t: wire::Transaction, account_id: i64) -> TransactionData {
    TransactionData {
        guid: t.guid,
        account_id,
        amount: Cents::new(t.amount.cents().abs()),
        kind: Direction::parse(t.transaction_type.as_str()).unwrap_or(Direction::Credit),
        status: Some(t.status.as_str().to_owned()),
        category: t.category,
        top_level_category: t.top_level_category,
        description: Some(t.description),
        original_description: t.original_description,
        memo: t.memo,
        date: t.date,
        transacted_at: t.transacted_at,
        posted_at: t.posted_at,
        check_number: t.check_number,
        merchant_category_code: t.merchant_category_code,
        latitude: t.latitude,
        longitude: t.longitude,
        is_bill_pay: t.is_bill_pay,
        is_direct_deposit: t.is_direct_deposit,
        is_expense: t.is_expense,
        is_fee: t.is_fee,
        is_income: t.is_income,
        is_overdraft_fee: t.is_overdraft_fee,
        is_payroll_advance: t.is_payroll_advance,
    }
}
