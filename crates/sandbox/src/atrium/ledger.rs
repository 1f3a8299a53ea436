//! A member's bank moving on after the data was generated: the events a test
//! or a front-end developer steers it with (`POST /__sim/members/{m}/events`)
//! and churnbank's own churn, one simulated day per aggregation.
//!
//! Neither is kept as data: a member keeps a log of [`Entry`]s (a day that
//! passed, an event as applied), and its accounts and transactions are the
//! generated ones with the log replayed over them. The churn of a day is
//! drawn from the login seed and the day number, so the same login always
//! churns the same way; the rows churn and events make get guids derived
//! from the member guid.

use std::collections::HashSet;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use donkies_atrium::wire::{Account, AccountType, Amount, Transaction, TransactionStatus, TransactionType};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::data::{Owner, Writer};
use super::guid::{stable_guid, stable_hash};

/// One change of a member's bank data, as posted to
/// `POST /__sim/members/{member_guid}/events`. Amounts are unsigned decimal
/// strings (`"12.34"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SimEvent {
    /// A new DEBIT on the account; answers its guid.
    Purchase {
        account_guid: String,
        amount: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// Default: today.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        date: Option<NaiveDate>,
        #[serde(default)]
        pending: bool,
    },
    /// A PENDING row disappears and a POSTED one with a new guid (answered)
    /// appears, with `amount` or the same amount.
    Post {
        guid: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<String>,
    },
    /// A PENDING row vanishes.
    Drop { guid: String },
    /// A POSTED row vanishes.
    Remove { guid: String },
    /// A POSTED row's amount changes; its guid stays.
    Amend { guid: String, amount: String },
    /// The account's `available_balance` and `balance` become `available`
    /// (which, unlike the other amounts, may be negative: an overdraft).
    Balance { account_guid: String, available: String },
}

impl SimEvent {
    /// The `kind` of the event, as in its JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            SimEvent::Purchase { .. } => "purchase",
            SimEvent::Post { .. } => "post",
            SimEvent::Drop { .. } => "drop",
            SimEvent::Remove { .. } => "remove",
            SimEvent::Amend { .. } => "amend",
            SimEvent::Balance { .. } => "balance",
        }
    }
}

/// An event as applied: amounts in cents, defaults filled in, the guid it
/// made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Change {
    Purchase { guid: String, account_guid: String, cents: i64, description: String, date: NaiveDate, pending: bool },
    Post { guid: String, new_guid: String, cents: Option<i64> },
    Drop { guid: String },
    Remove { guid: String },
    Amend { guid: String, cents: i64 },
    Balance { account_guid: String, cents: i64 },
}

impl Change {
    /// The guid the change made, answered to the caller.
    pub fn created(&self) -> Option<String> {
        match self {
            Change::Purchase { guid, .. } => Some(guid.clone()),
            Change::Post { new_guid, .. } => Some(new_guid.clone()),
            _ => None,
        }
    }
}

/// One step of a member's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub(crate) enum Entry {
    /// churnbank: simulated day `day` of the login passed, on `date`.
    Day { day: u32, date: NaiveDate },
    /// An event applied through the control surface.
    Event { change: Change },
}

/// Parses an unsigned decimal amount (`"12"`, `"12.3"`, `"12.34"`) to cents.
fn parse_cents(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 2 || text.ends_with('.') {
        return None;
    }
    let fraction: i64 = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<i64>().ok()? * 10,
        _ => fraction.parse().ok()?,
    };
    whole.parse::<i64>().ok()?.checked_mul(100)?.checked_add(fraction)
}

fn positive_amount(text: &str) -> Result<i64, String> {
    match parse_cents(text) {
        Some(cents) if cents > 0 => Ok(cents),
        _ => Err(format!("amount {text:?} is not a positive decimal amount like \"12.34\"")),
    }
}

fn balance_amount(text: &str) -> Result<i64, String> {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    parse_cents(digits)
        .map(|cents| sign * cents)
        .ok_or_else(|| format!("available {text:?} is not a decimal amount like \"20.00\""))
}

/// A transaction row and whether an event made or touched it (then churn
/// leaves it alone).
#[derive(Debug, Clone)]
struct Line {
    transaction: Transaction,
    steered: bool,
}

/// A member's accounts and transactions with its log replayed.
pub(crate) struct Ledger<'a> {
    owner: &'a Owner<'a>,
    accounts: Vec<Account>,
    lines: Vec<Line>,
}

fn at_noon(date: NaiveDate) -> DateTime<Utc> {
    date.and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap_or(NaiveTime::MIN)).and_utc()
}

impl<'a> Ledger<'a> {
    pub fn new(owner: &'a Owner<'a>, accounts: Vec<Account>, transactions: Vec<Transaction>) -> Self {
        let lines = transactions.into_iter().map(|transaction| Line { transaction, steered: false }).collect();
        Self { owner, accounts, lines }
    }

    /// Replays `entries`; a change that no longer fits (its row is gone
    /// from data generated differently) is skipped.
    pub fn replay(&mut self, entries: &[Entry]) {
        for entry in entries {
            match entry {
                Entry::Day { day, date } => self.churn(*day, *date),
                Entry::Event { change } => {
                    let _ = self.apply(change);
                }
            }
        }
    }

    /// The accounts, and the transactions oldest first.
    pub fn into_parts(self) -> (Vec<Account>, Vec<Transaction>) {
        let mut transactions: Vec<Transaction> = self.lines.into_iter().map(|line| line.transaction).collect();
        transactions.sort_by_key(|t| t.date);
        (self.accounts, transactions)
    }

    fn line(&self, guid: &str) -> Result<usize, String> {
        self.lines.iter().position(|line| line.transaction.guid == guid).ok_or_else(|| format!("no transaction {guid}"))
    }

    fn account(&self, guid: &str) -> Result<usize, String> {
        self.accounts.iter().position(|account| account.guid == guid).ok_or_else(|| format!("no account {guid}"))
    }

    fn expect_status(&self, index: usize, status: TransactionStatus, what: &str) -> Result<(), String> {
        let transaction = &self.lines[index].transaction;
        if transaction.status == status {
            Ok(())
        } else {
            Err(format!(
                "transaction {} is {}; only a {status} one can be {what}",
                transaction.guid, transaction.status
            ))
        }
    }

    /// `event` with its defaults filled in and amounts parsed; the guid it
    /// makes is drawn from the member guid and `position` (its place in the
    /// member's log).
    pub fn resolve(&self, event: SimEvent, position: usize, today: NaiveDate) -> Result<Change, String> {
        let new_guid = || stable_guid("TRN", &[self.owner.member_guid, "event", &position.to_string()]);
        Ok(match event {
            SimEvent::Purchase { account_guid, amount, description, date, pending } => Change::Purchase {
                guid: new_guid(),
                account_guid,
                cents: positive_amount(&amount)?,
                description: description.unwrap_or_else(|| "Sandbox Purchase".to_owned()),
                date: date.unwrap_or(today),
                pending,
            },
            SimEvent::Post { guid, amount } => {
                Change::Post { guid, new_guid: new_guid(), cents: amount.as_deref().map(positive_amount).transpose()? }
            }
            SimEvent::Drop { guid } => Change::Drop { guid },
            SimEvent::Remove { guid } => Change::Remove { guid },
            SimEvent::Amend { guid, amount } => Change::Amend { guid, cents: positive_amount(&amount)? },
            SimEvent::Balance { account_guid, available } => {
                Change::Balance { account_guid, cents: balance_amount(&available)? }
            }
        })
    }

    /// Applies one change, or says why it does not fit (changing nothing).
    pub fn apply(&mut self, change: &Change) -> Result<(), String> {
        match change {
            Change::Purchase { guid, account_guid, cents, description, date, pending } => {
                let account = &self.accounts[self.account(account_guid)?];
                let transaction = self.purchase(account, guid, *cents, description, *date, *pending);
                self.lines.push(Line { transaction, steered: true });
            }
            Change::Post { guid, new_guid, cents } => {
                let index = self.line(guid)?;
                self.expect_status(index, TransactionStatus::Pending, "posted")?;
                let line = self.lines.remove(index);
                let transaction = self.posted(line.transaction, new_guid.clone(), *cents);
                self.lines.push(Line { transaction, steered: true });
            }
            Change::Drop { guid } => {
                let index = self.line(guid)?;
                self.expect_status(index, TransactionStatus::Pending, "dropped")?;
                self.lines.remove(index);
            }
            Change::Remove { guid } => {
                let index = self.line(guid)?;
                self.expect_status(index, TransactionStatus::Posted, "removed")?;
                self.lines.remove(index);
            }
            Change::Amend { guid, cents } => {
                let index = self.line(guid)?;
                self.expect_status(index, TransactionStatus::Posted, "amended")?;
                let line = &mut self.lines[index];
                line.transaction.amount = Amount::from_cents(*cents);
                line.transaction.updated_at = Some(self.owner.aggregated_at);
                line.steered = true;
            }
            Change::Balance { account_guid, cents } => {
                let index = self.account(account_guid)?;
                let account = &mut self.accounts[index];
                account.available_balance = Some(Amount::from_cents(*cents));
                account.balance = Some(Amount::from_cents(*cents));
            }
        }
        Ok(())
    }

    fn purchase(
        &self,
        account: &Account,
        guid: &str,
        cents: i64,
        description: &str,
        date: NaiveDate,
        pending: bool,
    ) -> Transaction {
        let at = at_noon(date);
        Transaction {
            guid: guid.to_owned(),
            account_guid: Some(account.guid.clone()),
            member_guid: Some(self.owner.member_guid.to_owned()),
            user_guid: Some(self.owner.user_guid.to_owned()),
            amount: Amount::from_cents(cents),
            transaction_type: TransactionType::Debit,
            status: if pending { TransactionStatus::Pending } else { TransactionStatus::Posted },
            date,
            transacted_at: Some(at),
            posted_at: (!pending).then_some(at),
            created_at: Some(self.owner.aggregated_at),
            updated_at: Some(self.owner.aggregated_at),
            description: description.to_owned(),
            original_description: Some(description.to_uppercase()),
            category: Some("Shopping".to_owned()),
            top_level_category: Some("Shopping".to_owned()),
            is_bill_pay: false,
            is_direct_deposit: false,
            is_expense: true,
            is_fee: false,
            is_income: false,
            is_overdraft_fee: false,
            is_payroll_advance: false,
            check_number: None,
            merchant_category_code: Some(5999),
            latitude: None,
            longitude: None,
            memo: None,
        }
    }

    /// The POSTED row a pending one becomes.
    fn posted(&self, pending: Transaction, guid: String, cents: Option<i64>) -> Transaction {
        Transaction {
            guid,
            status: TransactionStatus::Posted,
            amount: cents.map(Amount::from_cents).unwrap_or(pending.amount),
            posted_at: pending.transacted_at.or(Some(at_noon(pending.date))),
            created_at: Some(self.owner.aggregated_at),
            updated_at: Some(self.owner.aggregated_at),
            ..pending
        }
    }

    /// One simulated day of churnbank: pending rows post (under a new guid,
    /// now and then with a tip) or drop, a recent posted row may be amended,
    /// removed or refunded, and new pending purchases arrive. Rows made or
    /// touched by events are left alone.
    fn churn(&mut self, day: u32, date: NaiveDate) {
        let seed = self.owner.seed.to_string();
        let day_text = day.to_string();
        let mut rng = StdRng::seed_from_u64(stable_hash(&[&seed, "churn", &day_text]));
        let member_guid = self.owner.member_guid;
        let mut made = 0usize;
        let mut next_guid = || {
            made += 1;
            stable_guid("TRN", &[member_guid, "churn", &day_text, &made.to_string()])
        };

        // Pending rows settle: most post, some are dropped, the rest wait.
        let pending: Vec<String> = self
            .lines
            .iter()
            .filter(|line| !line.steered && line.transaction.status == TransactionStatus::Pending)
            .map(|line| line.transaction.guid.clone())
            .collect();
        let mut settled = Vec::new();
        let mut gone = HashSet::new();
        for guid in pending {
            let roll: f64 = rng.r#gen();
            if roll < 0.55 {
                let Some(line) = self.lines.iter().find(|line| line.transaction.guid == guid) else { continue };
                let cents = line.transaction.amount.cents();
                let tipped = rng.gen_bool(0.3).then(|| cents + (cents * rng.gen_range(10..=25) / 100).max(1));
                settled.push(self.posted(line.transaction.clone(), next_guid(), tipped));
                gone.insert(guid);
            } else if roll < 0.70 {
                gone.insert(guid);
            }
        }
        self.lines.retain(|line| !gone.contains(&line.transaction.guid));
        self.lines.extend(settled.into_iter().map(|transaction| Line { transaction, steered: false }));

        // Now and then a recent purchase is amended, removed or refunded.
        let recent = date.checked_sub_days(Days::new(14)).unwrap_or(date);
        let mut candidates: Vec<usize> = (0..self.lines.len())
            .filter(|&index| {
                let line = &self.lines[index];
                !line.steered
                    && line.transaction.status == TransactionStatus::Posted
                    && line.transaction.transaction_type == TransactionType::Debit
                    && line.transaction.merchant_category_code.is_some()
                    && line.transaction.date >= recent
            })
            .collect();
        candidates.shuffle(&mut rng);
        if rng.gen_bool(0.25)
            && let Some(&index) = candidates.first()
        {
            let transaction = &mut self.lines[index].transaction;
            let cents = transaction.amount.cents();
            let change = (cents * rng.gen_range(1..=15) / 100).max(1);
            let cents = if rng.gen_bool(0.5) || cents - change <= 0 { cents + change } else { cents - change };
            transaction.amount = Amount::from_cents(cents);
            transaction.updated_at = Some(self.owner.aggregated_at);
        }
        if rng.gen_bool(0.10)
            && let Some(&index) = candidates.get(1)
        {
            let mut refund = self.lines[index].transaction.clone();
            refund.guid = next_guid();
            refund.transaction_type = TransactionType::Credit;
            refund.description = format!("Refund: {}", refund.description);
            refund.date = date;
            refund.transacted_at = Some(at_noon(date));
            refund.posted_at = refund.transacted_at;
            refund.is_expense = false;
            self.lines.push(Line { transaction: refund, steered: false });
        }
        if rng.gen_bool(0.15)
            && let Some(&index) = candidates.get(2)
        {
            self.lines.remove(index);
        }

        // New card purchases arrive pending.
        let checking = self.accounts.iter().find(|a| a.account_type == AccountType::Checking).cloned();
        let card = self.accounts.iter().find(|a| a.account_type == AccountType::CreditCard).cloned();
        let mut writer = Writer {
            owner: self.owner,
            scope: vec!["churn".to_owned(), day_text.clone(), "new".to_owned()],
            rng: StdRng::seed_from_u64(rng.r#gen()),
            out: Vec::new(),
        };
        if let Some(checking) = &checking {
            for _ in 0..rng.gen_range(1..=3) {
                writer.purchase(checking, date);
            }
        }
        if let Some(card) = &card
            && rng.gen_bool(0.4)
        {
            writer.purchase(card, date);
        }
        for mut transaction in writer.out {
            transaction.status = TransactionStatus::Pending;
            transaction.posted_at = None;
            self.lines.push(Line { transaction, steered: false });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atrium::data::{self, login_seed};

    fn owner(member_guid: &str) -> Owner<'_> {
        Owner {
            seed: login_seed("USR-1", "churnbank", "test_atrium"),
            pending_tail: true,
            member_guid,
            user_guid: "USR-1",
            institution_code: "churnbank",
            institution_name: "Churn Bank",
            aggregated_at: DateTime::parse_from_rfc3339("2024-03-15T10:00:00Z").unwrap().with_timezone(&Utc),
        }
    }

    fn ledger<'a>(owner: &'a Owner<'a>) -> Ledger<'a> {
        let accounts = data::accounts(owner);
        let transactions = data::transactions(owner, &accounts, None);
        Ledger::new(owner, accounts, transactions)
    }

    #[test]
    fn a_month_of_churn_posts_tips_drops_amends_refunds_and_removes() {
        let owner = owner("MBR-1");
        let mut ledger = ledger(&owner);
        let start = owner.aggregated_at.date_naive();
        let (mut posted, mut tipped, mut dropped, mut amended, mut refunded, mut removed) = (0, 0, 0, 0, 0, 0);
        for day in 1..=30u32 {
            let before: Vec<Transaction> = ledger.lines.iter().map(|l| l.transaction.clone()).collect();
            ledger.churn(day, start + Days::new(u64::from(day)));
            let after: Vec<Transaction> = ledger.lines.iter().map(|l| l.transaction.clone()).collect();
            let new: Vec<&Transaction> = after.iter().filter(|t| !before.iter().any(|b| b.guid == t.guid)).collect();
            refunded += new.iter().filter(|t| t.description.starts_with("Refund: ")).count();
            for old in &before {
                match after.iter().find(|t| t.guid == old.guid) {
                    Some(now) if now.amount != old.amount => amended += 1,
                    Some(_) => {}
                    None if old.status == TransactionStatus::Pending => {
                        let settled = new.iter().find(|t| {
                            t.status == TransactionStatus::Posted
                                && t.description == old.description
                                && t.date == old.date
                                && t.account_guid == old.account_guid
                        });
                        match settled {
                            Some(t) => {
                                posted += 1;
                                tipped += usize::from(t.amount > old.amount);
                            }
                            None => dropped += 1,
                        }
                    }
                    None => removed += 1,
                }
            }
        }
        for (what, count) in [
            ("posted", posted),
            ("tipped", tipped),
            ("dropped", dropped),
            ("amended", amended),
            ("refunded", refunded),
            ("removed", removed),
        ] {
            assert!(count > 0, "no row {what} in a month");
        }
        assert!(posted > dropped, "most holds post: {posted} posted, {dropped} dropped");
    }

    #[test]
    fn churnbank_history_holds_only_the_newest_checking_purchases() {
        let owner = owner("MBR-1");
        let accounts = data::accounts(&owner);
        let transactions = data::transactions(&owner, &accounts, None);
        let held: Vec<_> = transactions.iter().filter(|t| t.status == TransactionStatus::Pending).collect();
        assert!(!held.is_empty());
        let newest = owner.aggregated_at.date_naive() - Days::new(1);
        assert!(held.iter().all(|t| t.date >= newest
            && t.transaction_type == TransactionType::Debit
            && t.posted_at.is_none()
            && t.account_guid.as_deref() == Some(accounts[0].guid.as_str())));
    }

    #[test]
    fn events_that_do_not_fit_change_nothing() {
        let owner = owner("MBR-1");
        let mut ledger = ledger(&owner);
        let posted = ledger.lines[0].transaction.guid.clone();
        let count = ledger.lines.len();
        assert!(ledger.apply(&Change::Drop { guid: posted.clone() }).is_err());
        assert!(ledger.apply(&Change::Post { guid: posted, new_guid: "TRN-x".into(), cents: None }).is_err());
        assert!(ledger.apply(&Change::Remove { guid: "TRN-none".into() }).is_err());
        assert_eq!(ledger.lines.len(), count);
    }

    #[test]
    fn amounts_parse_to_cents_and_reject_anything_else() {
        assert_eq!(parse_cents("12.34"), Some(1_234));
        assert_eq!(parse_cents("12.3"), Some(1_230));
        assert_eq!(parse_cents("12"), Some(1_200));
        for bad in ["", ".5", "12.", "1.234", "-1", "1e3", "abc", " 1"] {
            assert_eq!(parse_cents(bad), None, "{bad}");
        }
        assert!(positive_amount("0.00").is_err());
        assert_eq!(balance_amount("-5.00"), Ok(-500));
    }

    #[test]
    fn events_deserialize_from_their_json() {
        let events: Vec<SimEvent> = serde_json::from_str(
            r#"[{"kind": "purchase", "account_guid": "ACT-1", "amount": "12.34", "pending": true},
                {"kind": "post", "guid": "TRN-1"},
                {"kind": "balance", "account_guid": "ACT-1", "available": "20.00"}]"#,
        )
        .unwrap();
        assert_eq!(events.len(), 3);
        assert!(serde_json::from_str::<Vec<SimEvent>>(r#"[{"kind": "explode"}]"#).is_err());
        assert!(serde_json::from_str::<Vec<SimEvent>>(r#"[{"kind": "drop", "guid": "x", "extra": 1}]"#).is_err());
    }
}
