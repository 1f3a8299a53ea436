//! Bank linking: the aggregator user, the institution catalog, members and their polling,
//! accounts and transactions. Used by the HTTP handlers and by the job worker.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use chrono::Duration as ChronoDuration;
use donkies_atrium::wire::{self, MemberStatus};
use donkies_atrium::{Aggregator, AtriumError, DateRange};
use donkies_domain::{Cents, split_by_shares, type_ds};
use donkies_store::accounts::{self, AccountData};
use donkies_store::institutions::{self, CatalogEntry};
use donkies_store::members::{self, Member, StatusUpdate};
use donkies_store::transactions::{self, TransactionData};
use donkies_store::{Db, StoreError, Tx, jobs, now, users};
use tokio::sync::broadcast;

use crate::config::Settings;

pub const CREATE_AGGREGATOR_USER_JOB: &str = "create_aggregator_user";
pub const BACKFILL_AGGREGATOR_USERS_JOB: &str = "backfill_aggregator_users";
pub const SYNC_INSTITUTIONS_JOB: &str = "sync_institutions";
pub const POLL_MEMBER_JOB: &str = "poll_member";
pub const SYNC_TRANSACTIONS_JOB: &str = "sync_member_transactions";
pub const RESYNC_MEMBERS_JOB: &str = "resync_members";

/// HALTED aggregations are retried with `aggregate` this many times before giving up.
pub const HALTED_RETRIES: i64 = 2;

/// What bank linking needs, shared by handlers and jobs.
#[derive(Clone)]
pub struct Banking {
    pub db: Db,
    pub aggregator: Arc<dyn Aggregator>,
    pub settings: Arc<Settings>,
    /// Member ids whose stored status just changed (wakes `?wait=` requests in this process).
    pub member_events: broadcast::Sender<String>,
    /// Rendered member reads by `user id/identifier`, with the member id they show.
    pub member_reads: Arc<crate::cache::TtlCache<(String, bytes::Bytes)>>,
}

/// A failed call to the aggregator, in terms a handler can answer with.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the bank aggregator is unavailable")]
    Unavailable(#[source] AtriumError),
    #[error("the bank aggregator refused the request: {0}")]
    Refused(#[source] AtriumError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<AtriumError> for LinkError {
    fn from(err: AtriumError) -> Self {
        match err {
            AtriumError::Retryable { .. } | AtriumError::RateLimited { .. } | AtriumError::Auth { .. } => {
                LinkError::Unavailable(err)
            }
            other => LinkError::Refused(other),
        }
    }
}

impl Banking {
    fn max_attempts(&self) -> i64 {
        self.settings.job_max_attempts
    }

    pub async fn enqueue(
        &self,
        tx: &mut Tx,
        kind: &str,
        payload: serde_json::Value,
        delay: std::time::Duration,
    ) -> Result<(), StoreError> {
        let t = now();
        let run_at = t + ChronoDuration::from_std(delay).unwrap_or_default();
        jobs::enqueue(tx, &jobs::NewJob { kind, payload: &payload, max_attempts: self.max_attempts(), run_at }, t)
            .await?;
        Ok(())
    }

    /// The user's id at the aggregator, created (idempotently, by our identifier) if missing.
    pub async fn ensure_aggregator_user(&self, user_id: &str) -> Result<String, LinkError> {
        let user = users::find_by_id(&self.db, user_id).await?.context("user vanished")?;
        if let Some(guid) = user.guid {
            return Ok(guid);
        }
        let new = wire::NewUser { identifier: Some(user.identifier.clone()), ..Default::default() };
        let guid = match self.aggregator.create_user(&new).await {
            Ok(created) => created.guid,
            Err(AtriumError::Conflict { .. }) => self.find_aggregator_user(&user.identifier).await?,
            Err(err) => return Err(err.into()),
        };
        users::set_guid(&self.db, user_id, &guid, now()).await?;
        Ok(guid)
    }

    /// A user we created earlier whose answer was lost: find it by our identifier.
    async fn find_aggregator_user(&self, identifier: &str) -> Result<String, LinkError> {
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
    pub async fn backfill_aggregator_users(&self) -> anyhow::Result<()> {
        for user_id in users::ids_without_guid(&self.db).await? {
            self.ensure_aggregator_user(&user_id).await.map_err(|e| anyhow::anyhow!("{e:#}"))?;
        }
        Ok(())
    }

    /// Refresh the institution catalog and every institution's credentials (all pages).
    pub async fn sync_institutions(&self) -> anyhow::Result<usize> {
        let catalog = self.aggregator.all_institutions(None).await?;
        let entries: Vec<CatalogEntry> = catalog
            .iter()
            .map(|i| CatalogEntry { code: i.code.clone(), name: i.name.clone(), url: i.url.clone() })
            .collect();
        institutions::upsert(&self.db, &entries, now()).await?;
        for inst in &catalog {
            self.refresh_credentials(&inst.code).await?;
        }
        Ok(catalog.len())
    }

    /// Read an institution's credentials from the aggregator and store them.
    pub async fn refresh_credentials(&self, code: &str) -> Result<Vec<institutions::Credential>, LinkError> {
        let Some(inst) = institutions::get_by_code(&self.db, code).await? else {
            return Ok(Vec::new());
        };
        let live = self.aggregator.list_institution_credentials(code).await?;
        let creds: Vec<institutions::Credential> = live
            .into_iter()
            .enumerate()
            .map(|(i, c)| institutions::Credential {
                institution_id: inst.id.clone(),
                field_name: c.field_name.clone().unwrap_or_else(|| c.label.to_uppercase().replace(' ', "_")),
                guid: c.guid,
                label: c.label,
                kind: c.credential_type.as_str().to_owned(),
                display_order: c.display_order.map_or(i as i64 + 1, i64::from),
            })
            .collect();
        institutions::replace_credentials(&self.db, &inst.id, &creds).await?;
        Ok(creds)
    }

    /// A member's stored state changed: forget its cached reads and wake `?wait=` requests.
    pub fn notify(&self, member_id: &str) {
        self.member_reads.forget_where(|(id, _)| id == member_id);
        let _ = self.member_events.send(member_id.to_owned());
    }

    /// Start (or restart) polling a member: a new generation retires older polling jobs.
    pub async fn restart_polling(&self, tx: &mut Tx, member_id: &str, status: &str) -> Result<(), StoreError> {
        let generation = members::restart(tx, member_id, status, now()).await?;
        self.enqueue(
            tx,
            POLL_MEMBER_JOB,
            serde_json::json!({ "member_id": member_id, "generation": generation }),
            self.settings.member_poll,
        )
        .await
    }

    /// One poll of a member's aggregation.
    pub async fn poll_member(&self, member_id: &str, generation: i64) -> anyhow::Result<()> {
        let Some(member) = members::get(&self.db, member_id).await? else {
            return Ok(());
        };
        if member.poll_generation != generation {
            return Ok(()); // a newer round took over, or the member was deleted
        }
        let user_guid = self.ensure_aggregator_user(&member.user_id).await.map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let member_guid = member.guid.clone().context("member without aggregator guid")?;
        let status = self.aggregator.read_member_status(&user_guid, &member_guid).await?;
        let polls = member.polls + 1;
        let mut update = StatusUpdate {
            status: status.status.as_str(),
            aggregated_at: status.aggregated_at,
            successfully_aggregated_at: status.successfully_aggregated_at,
            polls,
            halted_retries: member.halted_retries,
            gave_up: false,
        };
        match status.status {
            MemberStatus::Challenged => {
                let challenges = self.aggregator.list_member_challenges(&user_guid, &member_guid).await?;
                let stored: Vec<members::Challenge> = challenges.iter().map(stored_challenge).collect();
                let mut tx = self.db.begin().await?;
                if members::save_status(&mut tx, member_id, generation, &update, now()).await? {
                    members::replace_challenges(&mut tx, member_id, &stored).await?;
                }
                tx.commit().await?;
            }
            MemberStatus::Completed => {
                // Accounts first: front ends fetch them the moment they see SUCCESS.
                self.pull_accounts(&member, &user_guid).await?;
                let mut tx = self.db.begin().await?;
                let saved = members::save_status(&mut tx, member_id, generation, &update, now()).await?;
                if saved {
                    members::clear_challenges(&mut tx, member_id).await?;
                }
                tx.commit().await?;
                self.notify(member_id);
                if saved && let Err(err) = self.pull_transactions(&member, &user_guid).await {
                    tracing::warn!(member = %member_id, error = %format!("{err:#}"), "transactions not ready; retrying in a job");
                    let mut tx = self.db.begin().await?;
                    self.enqueue(
                        &mut tx,
                        SYNC_TRANSACTIONS_JOB,
                        serde_json::json!({ "member_id": member_id }),
                        self.settings.member_poll,
                    )
                    .await?;
                    tx.commit().await?;
                }
                return Ok(());
            }
            MemberStatus::Halted if member.halted_retries < HALTED_RETRIES => {
                self.aggregator.aggregate_member(&user_guid, &member_guid).await?;
                update.halted_retries += 1;
                self.save_and_poll_again(member_id, generation, &update).await?;
            }
            MemberStatus::Halted => {
                update.gave_up = true;
                self.save(member_id, generation, &update).await?;
            }
            ref s if s.is_settled() => {
                self.save(member_id, generation, &update).await?;
            }
            _ if polls >= self.settings.member_poll_limit => {
                tracing::warn!(member = %member_id, polls, "aggregation did not settle; giving up");
                update.gave_up = true;
                self.save(member_id, generation, &update).await?;
            }
            _ => self.save_and_poll_again(member_id, generation, &update).await?,
        }
        self.notify(member_id);
        Ok(())
    }

    async fn save(&self, member_id: &str, generation: i64, update: &StatusUpdate<'_>) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        members::save_status(&mut tx, member_id, generation, update, now()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn save_and_poll_again(
        &self,
        member_id: &str,
        generation: i64,
        update: &StatusUpdate<'_>,
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        if members::save_status(&mut tx, member_id, generation, update, now()).await? {
            let payload = serde_json::json!({ "member_id": member_id, "generation": generation });
            self.enqueue(&mut tx, POLL_MEMBER_JOB, payload, self.settings.member_poll).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Upsert the member's accounts and keep the debt shares summing to 100.
    pub async fn pull_accounts(&self, member: &Member, user_guid: &str) -> anyhow::Result<()> {
        let member_guid = member.guid.as_deref().context("member without aggregator guid")?;
        let live = self.aggregator.all_member_accounts(user_guid, member_guid).await?;
        let data: Vec<AccountData> = live.iter().map(account_data).collect();
        let mut tx = self.db.begin().await?;
        accounts::upsert(&mut tx, &member.user_id, &member.id, &data, now()).await?;
        tx.commit().await?;
        self.rebalance_debt_shares(&member.user_id).await?;
        Ok(())
    }

    /// Upsert the member's transactions (all pages).
    pub async fn pull_transactions(&self, member: &Member, user_guid: &str) -> anyhow::Result<usize> {
        let member_guid = member.guid.as_deref().context("member without aggregator guid")?;
        let today = now().date_naive();
        let range = DateRange::between(today - chrono::Days::new(90), today + chrono::Days::new(5));
        let started = std::time::Instant::now();
        let live = self.aggregator.all_member_transactions(user_guid, member_guid, range).await?;
        let fetched = started.elapsed();
        let mut tx = self.db.begin().await?;
        let ids: HashMap<String, String> = accounts::ids_by_guid(&mut tx, &member.user_id).await?.into_iter().collect();
        let rows: Vec<TransactionData> = live
            .iter()
            .filter_map(|t| {
                let account_id = ids.get(t.account_guid.as_deref()?)?.clone();
                Some(transaction_data(t, account_id))
            })
            .collect();
        transactions::upsert(&mut tx, &member.user_id, &rows, now()).await?;
        tx.commit().await?;
        tracing::info!(
            member = %member.id,
            rows = rows.len(),
            fetch_ms = fetched.as_millis() as u64,
            store_ms = (started.elapsed() - fetched).as_millis() as u64,
            "transactions synced"
        );
        Ok(rows.len())
    }

    /// The `sync_member_transactions` job.
    pub async fn sync_member_transactions(&self, member_id: &str) -> anyhow::Result<()> {
        let Some(member) = members::get(&self.db, member_id).await? else {
            return Ok(());
        };
        let user_guid = self.ensure_aggregator_user(&member.user_id).await.map_err(|e| anyhow::anyhow!("{e:#}"))?;
        self.pull_transactions(&member, &user_guid).await?;
        Ok(())
    }

    /// The hourly job: refresh accounts and transactions of every completed member.
    pub async fn resync_members(&self) -> anyhow::Result<()> {
        let completed = members::list_completed(&self.db).await?;
        let mut failures = 0;
        for member in &completed {
            let result = async {
                let user_guid =
                    self.ensure_aggregator_user(&member.user_id).await.map_err(|e| anyhow::anyhow!("{e:#}"))?;
                self.pull_accounts(member, &user_guid).await?;
                self.pull_transactions(member, &user_guid).await
            }
            .await;
            if let Err(err) = result {
                failures += 1;
                tracing::warn!(member = %member.id, error = %format!("{err:#}"), "re-sync failed");
            }
        }
        tracing::info!(members = completed.len(), failures, "members re-synced");
        anyhow::ensure!(failures == 0, "{failures} member(s) could not be re-synced");
        Ok(())
    }

    /// Keep the active debt accounts' shares summing to 100: proportional to what they have,
    /// or all to the first debt account when none has any.
    pub async fn rebalance_debt_shares(&self, user_id: &str) -> Result<(), StoreError> {
        let debts: Vec<_> = accounts::list_for_user(&self.db, user_id)
            .await?
            .into_iter()
            .filter(|a| a.type_ds == "debt" && a.is_active)
            .collect();
        let shares: Vec<u32> = debts.iter().map(|a| a.transfer_share.clamp(0, 100) as u32).collect();
        if debts.is_empty() || shares.iter().sum::<u32>() == 100 {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        if shares.iter().all(|s| *s == 0) {
            accounts::ensure_debt_share(&mut tx, user_id).await?;
        } else {
            let new = split_by_shares(Cents::new(100), &shares).into_iter().map(Cents::get);
            let pairs: Vec<(String, i64)> = debts.iter().map(|a| a.id.clone()).zip(new).collect();
            accounts::set_shares(&mut tx, user_id, &pairs, now()).await?;
        }
        tx.commit().await
    }
}

fn stored_challenge(c: &wire::Challenge) -> members::Challenge {
    let options: Vec<serde_json::Value> = c
        .options
        .iter()
        .map(|o| serde_json::json!({ "label": o.label, "value": o.value }))
        .chain(c.image_options.iter().map(|o| serde_json::json!({ "label": o.label, "value": o.value })))
        .collect();
    members::Challenge {
        guid: c.guid.clone(),
        field_name: c.field_name.clone(),
        label: c.label.clone(),
        kind: c.challenge_type.as_str().to_owned(),
        options: serde_json::Value::Array(options).to_string(),
        image_data: c.image_data.clone(),
    }
}

fn cents(a: Option<wire::Amount>) -> Option<i64> {
    a.map(|a| a.cents())
}

fn account_data(a: &wire::Account) -> AccountData {
    AccountData {
        guid: a.guid.clone(),
        name: a.name.clone(),
        kind: a.account_type.as_str().to_owned(),
        type_ds: type_ds(a.account_type.as_str()).to_owned(),
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

fn transaction_data(t: &wire::Transaction, account_id: String) -> TransactionData {
    TransactionData {
        guid: t.guid.clone(),
        account_id,
        amount: t.amount.cents().abs(),
        kind: t.transaction_type.as_str().to_owned(),
        status: Some(t.status.as_str().to_owned()),
        category: t.category.clone(),
        top_level_category: t.top_level_category.clone(),
        description: Some(t.description.clone()),
        original_description: t.original_description.clone(),
        memo: t.memo.clone(),
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
