//! The rules of the double-entry ledger that proves every cent of the money loop.
//!
//! Modelled on the guarantees of TigerBeetle: an [`Entry`] moves a positive amount from one
//! account (its *debit*) to another (its *credit*), so the sum over all accounts never changes;
//! each entry has a key derived from what caused it (`roundup:r<round-up id>`), so recording
//! the same movement twice is a no-op; a movement that waits on the bank is *pending* until it is
//! posted or voided, exactly once; and no user account ever goes below zero, counting what
//! pending entries have reserved.
//!
//! # Chart of accounts
//!
//! A balance is credits minus debits. Money flows from the debit account to the credit account.
//!
//! | code | account | may go below zero |
//! |---|---|---|
//! | `donkies:roundups` | the outside world's side of every round-up: minus all spare change ever rounded up | yes |
//! | `donkies:contributions` | the outside world's side of one-time extra contributions | yes |
//! | `user:<u>:pending` | round-ups (and contributions) computed, still in the user's bank | no |
//! | `user:<u>:in_collection` | a collection transfer to Donkies is in flight | no |
//! | `user:<u>:held` | collected, at Donkies, not yet paid out | no |
//! | `user:<u>:debt:<a>` | paid to the user's debt account `a` | no |
//! | `user:<u>:refunded` | paid back to the user's own bank | no |
//!
//! The legal entries, by [`EntryKind`] (each between accounts of one user):
//!
//! | kind | debit → credit | phases |
//! |---|---|---|
//! | `roundup` | `donkies:roundups` → `pending` | posted at once |
//! | `contribution` | `donkies:contributions` → `pending` | posted at once |
//! | `collect_start` | `pending` → `in_collection` | posted at once |
//! | `collect` | `in_collection` → `held` | two-phase: posted on `processed`, voided on failure |
//! | `collect_return` | `in_collection` → `pending` | posted at once, after a `collect` is voided |
//! | `payout` | `held` → `debt:<a>` | two-phase |
//! | `refund` | `held` → `refunded` | two-phase |
//!
//! So for every user, at every moment: round-ups + contributions = pending + in collection +
//! held + paid out + refunded, and the Donkies-wide accounts hold exactly minus that, in total.

use std::collections::BTreeMap;
use std::fmt;

use crate::Cents;

/// The largest amount one entry may move: ten billion dollars. Keeps every sum far from
/// overflowing 64-bit cents.
pub const MAX_ENTRY_AMOUNT: Cents = Cents::new(1_000_000_000_000);

/// A named account of the ledger; see the chart of accounts in the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LedgerAccount {
    /// The outside world's side of every round-up.
    RoundUpSource,
    /// The outside world's side of one-time extra contributions.
    ContributionSource,
    /// Round-ups computed, still in the user's bank.
    RoundUpsPending { user_id: i64 },
    /// A collection transfer to Donkies is in flight.
    InCollection { user_id: i64 },
    /// Collected, at Donkies.
    Held { user_id: i64 },
    /// Paid to the user's debt account `account_id`.
    PaidToDebt { user_id: i64, account_id: i64 },
    /// Paid back to the user's own bank.
    Refunded { user_id: i64 },
}

impl LedgerAccount {
    /// The user whose money this account holds; `None` for Donkies-wide accounts.
    pub const fn user_id(self) -> Option<i64> {
        match self {
            LedgerAccount::RoundUpSource | LedgerAccount::ContributionSource => None,
            LedgerAccount::RoundUpsPending { user_id }
            | LedgerAccount::InCollection { user_id }
            | LedgerAccount::Held { user_id }
            | LedgerAccount::PaidToDebt { user_id, .. }
            | LedgerAccount::Refunded { user_id } => Some(user_id),
        }
    }

    /// Donkies-wide accounts stand for the outside world and go negative by design; a user's
    /// account never does.
    pub const fn may_go_negative(self) -> bool {
        self.user_id().is_none()
    }

    /// The stable text the database stores: `donkies:roundups`, `user:123:held`,
    /// `user:123:debt:456`.
    pub fn code(self) -> String {
        match self {
            LedgerAccount::RoundUpSource => "donkies:roundups".to_owned(),
            LedgerAccount::ContributionSource => "donkies:contributions".to_owned(),
            LedgerAccount::RoundUpsPending { user_id } => format!("user:{user_id}:pending"),
            LedgerAccount::InCollection { user_id } => format!("user:{user_id}:in_collection"),
            LedgerAccount::Held { user_id } => format!("user:{user_id}:held"),
            LedgerAccount::PaidToDebt { user_id, account_id } => format!("user:{user_id}:debt:{account_id}"),
            LedgerAccount::Refunded { user_id } => format!("user:{user_id}:refunded"),
        }
    }

    /// The account [`Self::code`] spells as `code`; `None` for any other text.
    pub fn parse(code: &str) -> Option<LedgerAccount> {
        match code {
            "donkies:roundups" => return Some(LedgerAccount::RoundUpSource),
            "donkies:contributions" => return Some(LedgerAccount::ContributionSource),
            _ => {}
        }
        let rest = code.strip_prefix("user:")?;
        let (user, account) = rest.split_once(':')?;
        let user_id = parse_id(user)?;
        match account {
            "pending" => Some(LedgerAccount::RoundUpsPending { user_id }),
            "in_collection" => Some(LedgerAccount::InCollection { user_id }),
            "held" => Some(LedgerAccount::Held { user_id }),
            "refunded" => Some(LedgerAccount::Refunded { user_id }),
            _ => {
                let account_id = parse_id(account.strip_prefix("debt:")?)?;
                Some(LedgerAccount::PaidToDebt { user_id, account_id })
            }
        }
    }
}

/// A canonical non-negative decimal id: digits only, no sign, no leading zeros.
fn parse_id(text: &str) -> Option<i64> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

impl fmt::Display for LedgerAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

/// What an entry records; it decides which accounts the entry may move money between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    RoundUp,
    Contribution,
    /// A waiting round-up whose purchase was removed, amended or went back to pending.
    RoundUpVoid,
    /// Round-ups a collection leaves in the user's bank to take back collected ones whose
    /// purchase was removed or amended (a correction).
    Offset,
    CollectStart,
    Collect,
    CollectReturn,
    Payout,
    Refund,
}

impl EntryKind {
    pub const ALL: &'static [EntryKind] = &[
        EntryKind::RoundUp,
        EntryKind::Contribution,
        EntryKind::RoundUpVoid,
        EntryKind::Offset,
        EntryKind::CollectStart,
        EntryKind::Collect,
        EntryKind::CollectReturn,
        EntryKind::Payout,
        EntryKind::Refund,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::RoundUp => "roundup",
            EntryKind::Contribution => "contribution",
            EntryKind::RoundUpVoid => "roundup_void",
            EntryKind::Offset => "offset",
            EntryKind::CollectStart => "collect_start",
            EntryKind::Collect => "collect",
            EntryKind::CollectReturn => "collect_return",
            EntryKind::Payout => "payout",
            EntryKind::Refund => "refund",
        }
    }

    pub fn parse(text: &str) -> Option<EntryKind> {
        Self::ALL.iter().copied().find(|kind| kind.as_str() == text)
    }

    /// Whether entries of this kind wait on the bank: begun pending, then posted or voided.
    /// The others are posted at once.
    pub const fn is_two_phase(self) -> bool {
        matches!(self, EntryKind::Offset | EntryKind::Collect | EntryKind::Payout | EntryKind::Refund)
    }

    /// Whether an entry of this kind may move money from `debit` to `credit`.
    pub fn allows(self, debit: LedgerAccount, credit: LedgerAccount) -> bool {
        use LedgerAccount as A;
        match (self, debit, credit) {
            (EntryKind::RoundUp, A::RoundUpSource, A::RoundUpsPending { .. })
            | (EntryKind::Contribution, A::ContributionSource, A::RoundUpsPending { .. })
            | (EntryKind::RoundUpVoid | EntryKind::Offset, A::RoundUpsPending { .. }, A::RoundUpSource) => true,
            (EntryKind::CollectStart, A::RoundUpsPending { user_id: from }, A::InCollection { user_id: to })
            | (EntryKind::Collect, A::InCollection { user_id: from }, A::Held { user_id: to })
            | (EntryKind::CollectReturn, A::InCollection { user_id: from }, A::RoundUpsPending { user_id: to })
            | (EntryKind::Payout, A::Held { user_id: from }, A::PaidToDebt { user_id: to, .. })
            | (EntryKind::Refund, A::Held { user_id: from }, A::Refunded { user_id: to }) => from == to,
            _ => false,
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One legal movement of money: `amount` from `debit` to `credit`, named by `key`.
///
/// Only [`Entry::new`] builds one, so holding an entry is proof that its kind allows its
/// accounts and that its amount is positive and within [`MAX_ENTRY_AMOUNT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    key: String,
    kind: EntryKind,
    debit: LedgerAccount,
    credit: LedgerAccount,
    amount: Cents,
}

impl Entry {
    pub fn new(
        key: impl Into<String>,
        kind: EntryKind,
        debit: LedgerAccount,
        credit: LedgerAccount,
        amount: Cents,
    ) -> Result<Entry, LedgerRefusal> {
        let key = key.into();
        if key.is_empty() {
            return Err(LedgerRefusal::EmptyKey);
        }
        if amount <= Cents::ZERO || amount > MAX_ENTRY_AMOUNT {
            return Err(LedgerRefusal::AmountOutOfRange { amount });
        }
        if !kind.allows(debit, credit) {
            return Err(LedgerRefusal::IllegalEntry { kind, debit, credit });
        }
        Ok(Entry { key, kind, debit, credit, amount })
    }

    /// The id derived from what caused the entry (`roundup:r<round-up id>`).
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    pub fn debit(&self) -> LedgerAccount {
        self.debit
    }

    pub fn credit(&self) -> LedgerAccount {
        self.credit
    }

    pub fn amount(&self) -> Cents {
        self.amount
    }

    /// The user whose money moves. Every legal entry touches exactly one user.
    pub fn user_id(&self) -> Option<i64> {
        self.debit.user_id().or(self.credit.user_id())
    }

    /// The entry that gives a voided collection's money back to the user's round-ups pending
    /// (key `<collect key>:return`). `None` for entries of any other kind: voiding them only
    /// releases what they reserved.
    pub fn return_after_void(&self) -> Option<Entry> {
        if self.kind != EntryKind::Collect {
            return None;
        }
        let user_id = self.debit.user_id()?;
        let back = LedgerAccount::RoundUpsPending { user_id };
        Entry::new(format!("{}:return", self.key), EntryKind::CollectReturn, self.debit, back, self.amount).ok()
    }
}

/// Where a pending entry stands. It leaves `Pending` once, for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PendingState {
    Pending,
    Posted,
    Voided,
}

impl PendingState {
    pub const ALL: &'static [PendingState] = &[PendingState::Pending, PendingState::Posted, PendingState::Voided];

    pub const fn as_str(self) -> &'static str {
        match self {
            PendingState::Pending => "pending",
            PendingState::Posted => "posted",
            PendingState::Voided => "voided",
        }
    }

    pub fn parse(text: &str) -> Option<PendingState> {
        Self::ALL.iter().copied().find(|state| state.as_str() == text)
    }
}

impl fmt::Display for PendingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the ledger refuses an entry or a resolution. A refusal changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerRefusal {
    #[error("a ledger entry needs a key")]
    EmptyKey,
    #[error("amount {amount} is not between 0.01 and {}", MAX_ENTRY_AMOUNT)]
    AmountOutOfRange { amount: Cents },
    #[error("a {kind} entry may not move money from {debit} to {credit}")]
    IllegalEntry { kind: EntryKind, debit: LedgerAccount, credit: LedgerAccount },
    #[error("{account} has {available} available, less than {amount}")]
    InsufficientBalance { account: LedgerAccount, available: Cents, amount: Cents },
    /// The key names an entry already recorded with other accounts, amount or kind.
    #[error("key {key:?} already names a different entry")]
    KeyConflict { key: String },
    /// A two-phase kind posted at once, or a one-phase kind begun pending.
    #[error("a {kind} entry cannot be recorded that way")]
    WrongPhase { kind: EntryKind },
    #[error("no pending entry {0}")]
    PendingNotFound(String),
    #[error("the pending entry is already {state}")]
    AlreadyResolved { state: PendingState },
    #[error("a balance would overflow")]
    Overflow,
}

/// Whether an entry was recorded by this call or had been before (a replay, a no-op).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    New,
    AlreadyPosted,
}

/// An account's balance, TigerBeetle-style: what is posted (credits minus debits), and what
/// pending entries are about to take out of it or bring into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balance {
    pub posted: Cents,
    pub pending_debits: Cents,
    pub pending_credits: Cents,
}

impl Balance {
    /// What may still be debited: posted minus what pending entries have reserved.
    pub fn available(&self) -> Option<Cents> {
        self.posted.checked_sub(self.pending_debits)
    }
}

/// A movement of the money loop, as services say it; [`Movement::steps`] turns it into ledger
/// operations. Keys come from the record that caused the movement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Movement {
    /// New spare change: the round-up `roundup_id` of a posted purchase.
    RoundUp {
        user_id: i64,
        roundup_id: i64,
        amount: Cents,
    },
    /// A waiting round-up is given up: its purchase was removed, amended or is pending again.
    RoundUpVoid {
        user_id: i64,
        roundup_id: i64,
        amount: Cents,
    },
    /// A collection leaves `amount` of the round-ups it gathers in the user's bank, taking back
    /// corrections; posted or voided with the collection.
    OffsetStart {
        user_id: i64,
        collection_id: i64,
        amount: Cents,
    },
    OffsetPost {
        collection_id: i64,
    },
    OffsetVoid {
        collection_id: i64,
    },
    /// A one-time extra contribution.
    Contribution {
        user_id: i64,
        contribution_id: i64,
        amount: Cents,
    },
    /// A collection transfer was created: the round-ups leave pending and wait on the bank.
    CollectStart {
        user_id: i64,
        collection_id: i64,
        amount: Cents,
    },
    /// The collection transfer was processed: the money is held at Donkies.
    CollectPost {
        collection_id: i64,
    },
    /// The collection transfer failed or was cancelled: the money goes back to pending.
    CollectVoid {
        collection_id: i64,
    },
    /// One part of a payout to a debt account was created.
    PayoutStart {
        user_id: i64,
        part_id: i64,
        debt_account_id: i64,
        amount: Cents,
    },
    PayoutPost {
        part_id: i64,
    },
    PayoutVoid {
        part_id: i64,
    },
    /// Held money is being sent back to the user's own bank.
    RefundStart {
        user_id: i64,
        refund_id: i64,
        amount: Cents,
    },
    RefundPost {
        refund_id: i64,
    },
    RefundVoid {
        refund_id: i64,
    },
}

/// One ledger operation. Pendings are named by key; voiding a `collect` entry is followed by
/// its [`Entry::return_after_void`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Post(Entry),
    BeginPending(Entry),
    PostPending(String),
    VoidPending(String),
}

/// Keys of the entries each movement records, derived from the record that caused it.
pub mod keys {
    /// Round-ups recorded before a purchase could have several were keyed by the transaction;
    /// since then by the round-up (`roundup:r<id>`).
    pub fn roundup(roundup_id: i64) -> String {
        format!("roundup:r{roundup_id}")
    }
    pub fn roundup_void(roundup_id: i64) -> String {
        format!("roundup:r{roundup_id}:void")
    }
    pub fn offset(collection_id: i64) -> String {
        format!("collect:{collection_id}:offset")
    }
    pub fn contribution(contribution_id: i64) -> String {
        format!("contribution:{contribution_id}")
    }
    pub fn collect_start(collection_id: i64) -> String {
        format!("collect:{collection_id}:start")
    }
    pub fn collect(collection_id: i64) -> String {
        format!("collect:{collection_id}")
    }
    pub fn payout(part_id: i64) -> String {
        format!("payout:{part_id}")
    }
    pub fn refund(refund_id: i64) -> String {
        format!("refund:{refund_id}")
    }
}

impl Movement {
    /// The ledger operations that record this movement, in order. Refused when an amount is
    /// out of range.
    pub fn steps(&self) -> Result<Vec<Step>, LedgerRefusal> {
        use LedgerAccount as A;
        let steps = match *self {
            Movement::RoundUp { user_id, roundup_id, amount } => vec![Step::Post(Entry::new(
                keys::roundup(roundup_id),
                EntryKind::RoundUp,
                A::RoundUpSource,
                A::RoundUpsPending { user_id },
                amount,
            )?)],
            Movement::RoundUpVoid { user_id, roundup_id, amount } => vec![Step::Post(Entry::new(
                keys::roundup_void(roundup_id),
                EntryKind::RoundUpVoid,
                A::RoundUpsPending { user_id },
                A::RoundUpSource,
                amount,
            )?)],
            Movement::OffsetStart { user_id, collection_id, amount } => vec![Step::BeginPending(Entry::new(
                keys::offset(collection_id),
                EntryKind::Offset,
                A::RoundUpsPending { user_id },
                A::RoundUpSource,
                amount,
            )?)],
            Movement::OffsetPost { collection_id } => vec![Step::PostPending(keys::offset(collection_id))],
            Movement::OffsetVoid { collection_id } => vec![Step::VoidPending(keys::offset(collection_id))],
            Movement::Contribution { user_id, contribution_id, amount } => vec![Step::Post(Entry::new(
                keys::contribution(contribution_id),
                EntryKind::Contribution,
                A::ContributionSource,
                A::RoundUpsPending { user_id },
                amount,
            )?)],
            Movement::CollectStart { user_id, collection_id, amount } => vec![
                Step::Post(Entry::new(
                    keys::collect_start(collection_id),
                    EntryKind::CollectStart,
                    A::RoundUpsPending { user_id },
                    A::InCollection { user_id },
                    amount,
                )?),
                Step::BeginPending(Entry::new(
                    keys::collect(collection_id),
                    EntryKind::Collect,
                    A::InCollection { user_id },
                    A::Held { user_id },
                    amount,
                )?),
            ],
            Movement::CollectPost { collection_id } => vec![Step::PostPending(keys::collect(collection_id))],
            Movement::CollectVoid { collection_id } => vec![Step::VoidPending(keys::collect(collection_id))],
            Movement::PayoutStart { user_id, part_id, debt_account_id, amount } => {
                vec![Step::BeginPending(Entry::new(
                    keys::payout(part_id),
                    EntryKind::Payout,
                    A::Held { user_id },
                    A::PaidToDebt { user_id, account_id: debt_account_id },
                    amount,
                )?)]
            }
            Movement::PayoutPost { part_id } => vec![Step::PostPending(keys::payout(part_id))],
            Movement::PayoutVoid { part_id } => vec![Step::VoidPending(keys::payout(part_id))],
            Movement::RefundStart { user_id, refund_id, amount } => vec![Step::BeginPending(Entry::new(
                keys::refund(refund_id),
                EntryKind::Refund,
                A::Held { user_id },
                A::Refunded { user_id },
                amount,
            )?)],
            Movement::RefundPost { refund_id } => vec![Step::PostPending(keys::refund(refund_id))],
            Movement::RefundVoid { refund_id } => vec![Step::VoidPending(keys::refund(refund_id))],
        };
        Ok(steps)
    }
}

/// Whether a whole movement was recorded by this call or had been before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    AlreadyRecorded,
}

/// The ledger in memory: every account's balance, the posted entries and the pending ones.
/// It applies an entry or refuses it, changing nothing when it refuses — the rules the store
/// enforces in SQL, and the model its tests compare it with.
#[derive(Debug, Clone, Default)]
pub struct Balances {
    accounts: BTreeMap<LedgerAccount, Balance>,
    posted: BTreeMap<String, Entry>,
    pending: BTreeMap<String, (Entry, PendingState)>,
}

impl Balances {
    pub fn new() -> Balances {
        Balances::default()
    }

    pub fn balance(&self, account: LedgerAccount) -> Balance {
        self.accounts.get(&account).copied().unwrap_or_default()
    }

    /// Every account an entry has touched, with its balance.
    pub fn accounts(&self) -> impl Iterator<Item = (LedgerAccount, Balance)> + '_ {
        self.accounts.iter().map(|(account, balance)| (*account, *balance))
    }

    /// The sum of every posted balance: zero, always, since every entry moves money.
    pub fn total_posted(&self) -> Option<Cents> {
        self.accounts.values().try_fold(Cents::ZERO, |sum, b| sum.checked_add(b.posted))
    }

    /// The state of the pending entry `key`, if one was begun.
    pub fn pending_state(&self, key: &str) -> Option<PendingState> {
        self.pending.get(key).map(|(_, state)| *state)
    }

    /// Record an entry that does not wait on the bank. A replay of the same entry is
    /// [`Posted::AlreadyPosted`] and changes nothing.
    pub fn post(&mut self, entry: &Entry) -> Result<Posted, LedgerRefusal> {
        if entry.kind.is_two_phase() {
            return Err(LedgerRefusal::WrongPhase { kind: entry.kind });
        }
        if let Some(seen) = self.seen(entry)? {
            return Ok(seen);
        }
        let (mut debit, mut credit) = (self.balance(entry.debit), self.balance(entry.credit));
        debit.posted = minus(debit.posted, entry.amount)?;
        credit.posted = plus(credit.posted, entry.amount)?;
        self.check_limit(entry, debit)?;
        self.set(entry, debit, credit);
        self.posted.insert(entry.key.clone(), entry.clone());
        Ok(Posted::New)
    }

    /// Reserve an entry that waits on the bank. A replay of the same entry is
    /// [`Posted::AlreadyPosted`] whatever became of it since.
    pub fn begin_pending(&mut self, entry: &Entry) -> Result<Posted, LedgerRefusal> {
        if !entry.kind.is_two_phase() {
            return Err(LedgerRefusal::WrongPhase { kind: entry.kind });
        }
        if let Some(seen) = self.seen(entry)? {
            return Ok(seen);
        }
        let (mut debit, mut credit) = (self.balance(entry.debit), self.balance(entry.credit));
        debit.pending_debits = plus(debit.pending_debits, entry.amount)?;
        credit.pending_credits = plus(credit.pending_credits, entry.amount)?;
        self.check_limit(entry, debit)?;
        self.set(entry, debit, credit);
        self.pending.insert(entry.key.clone(), (entry.clone(), PendingState::Pending));
        Ok(Posted::New)
    }

    /// Post the pending entry `key`: what it reserved becomes posted. Exactly once.
    pub fn post_pending(&mut self, key: &str) -> Result<Entry, LedgerRefusal> {
        let entry = self.unresolved(key)?;
        let (mut debit, mut credit) = (self.balance(entry.debit), self.balance(entry.credit));
        debit.posted = minus(debit.posted, entry.amount)?;
        debit.pending_debits = minus(debit.pending_debits, entry.amount)?;
        credit.posted = plus(credit.posted, entry.amount)?;
        credit.pending_credits = minus(credit.pending_credits, entry.amount)?;
        self.set(&entry, debit, credit);
        self.pending.insert(key.to_owned(), (entry.clone(), PendingState::Posted));
        self.posted.insert(key.to_owned(), entry.clone());
        Ok(entry)
    }

    /// Void the pending entry `key`: what it reserved is released. Exactly once.
    pub fn void_pending(&mut self, key: &str) -> Result<Entry, LedgerRefusal> {
        let entry = self.unresolved(key)?;
        let (mut debit, mut credit) = (self.balance(entry.debit), self.balance(entry.credit));
        debit.pending_debits = minus(debit.pending_debits, entry.amount)?;
        credit.pending_credits = minus(credit.pending_credits, entry.amount)?;
        self.set(&entry, debit, credit);
        self.pending.insert(key.to_owned(), (entry.clone(), PendingState::Voided));
        Ok(entry)
    }

    /// Record a whole movement, all its steps or none of them. A movement recorded before —
    /// the same entries, or the same resolution of its pending entry — is
    /// [`Recorded::AlreadyRecorded`]; resolving a pending entry the other way is
    /// [`LedgerRefusal::AlreadyResolved`].
    pub fn record(&mut self, movement: &Movement) -> Result<Recorded, LedgerRefusal> {
        let mut draft = self.clone();
        let mut recorded = Recorded::AlreadyRecorded;
        for step in movement.steps()? {
            if draft.apply(&step)? == Recorded::New {
                recorded = Recorded::New;
            }
        }
        *self = draft;
        Ok(recorded)
    }

    fn apply(&mut self, step: &Step) -> Result<Recorded, LedgerRefusal> {
        let posted = match step {
            Step::Post(entry) => self.post(entry)?,
            Step::BeginPending(entry) => self.begin_pending(entry)?,
            Step::PostPending(key) => match self.post_pending(key) {
                Err(LedgerRefusal::AlreadyResolved { state: PendingState::Posted }) => Posted::AlreadyPosted,
                other => other.map(|_| Posted::New)?,
            },
            Step::VoidPending(key) => match self.void_pending(key) {
                Err(LedgerRefusal::AlreadyResolved { state: PendingState::Voided }) => Posted::AlreadyPosted,
                Err(refusal) => return Err(refusal),
                Ok(voided) => {
                    if let Some(back) = voided.return_after_void() {
                        self.post(&back)?;
                    }
                    Posted::New
                }
            },
        };
        Ok(if posted == Posted::New { Recorded::New } else { Recorded::AlreadyRecorded })
    }

    /// `Some` when the key was used before: a replay of the same entry, or a conflict.
    fn seen(&self, entry: &Entry) -> Result<Option<Posted>, LedgerRefusal> {
        let earlier = self.posted.get(&entry.key).or_else(|| self.pending.get(&entry.key).map(|(e, _)| e));
        match earlier {
            None => Ok(None),
            Some(earlier) if earlier == entry => Ok(Some(Posted::AlreadyPosted)),
            Some(_) => Err(LedgerRefusal::KeyConflict { key: entry.key.clone() }),
        }
    }

    fn unresolved(&self, key: &str) -> Result<Entry, LedgerRefusal> {
        match self.pending.get(key) {
            None => Err(LedgerRefusal::PendingNotFound(key.to_owned())),
            Some((entry, PendingState::Pending)) => Ok(entry.clone()),
            Some((_, state)) => Err(LedgerRefusal::AlreadyResolved { state: *state }),
        }
    }

    fn set(&mut self, entry: &Entry, debit: Balance, credit: Balance) {
        self.accounts.insert(entry.debit, debit);
        self.accounts.insert(entry.credit, credit);
    }

    /// A user account's posted balance minus its pending debits must stay at zero or above.
    fn check_limit(&self, entry: &Entry, debit_after: Balance) -> Result<(), LedgerRefusal> {
        if entry.debit.may_go_negative() {
            return Ok(());
        }
        let after = debit_after.available().ok_or(LedgerRefusal::Overflow)?;
        if after < Cents::ZERO {
            let available = self.balance(entry.debit).available().ok_or(LedgerRefusal::Overflow)?;
            return Err(LedgerRefusal::InsufficientBalance { account: entry.debit, available, amount: entry.amount });
        }
        Ok(())
    }
}

fn plus(a: Cents, b: Cents) -> Result<Cents, LedgerRefusal> {
    a.checked_add(b).ok_or(LedgerRefusal::Overflow)
}

fn minus(a: Cents, b: Cents) -> Result<Cents, LedgerRefusal> {
    a.checked_sub(b).ok_or(LedgerRefusal::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: i64 = 7;

    fn roundup(transaction_id: i64, cents: i64) -> Movement {
        Movement::RoundUp { user_id: USER, roundup_id: transaction_id, amount: Cents::new(cents) }
    }

    #[test]
    fn account_codes_parse_back_and_odd_text_is_refused() {
        let accounts = [
            LedgerAccount::RoundUpSource,
            LedgerAccount::ContributionSource,
            LedgerAccount::RoundUpsPending { user_id: 123 },
            LedgerAccount::InCollection { user_id: 123 },
            LedgerAccount::Held { user_id: 123 },
            LedgerAccount::PaidToDebt { user_id: 123, account_id: 456 },
            LedgerAccount::Refunded { user_id: 0 },
        ];
        for account in accounts {
            assert_eq!(LedgerAccount::parse(&account.code()), Some(account), "{account}");
        }
        assert_eq!(LedgerAccount::Held { user_id: 123 }.code(), "user:123:held");
        assert_eq!(LedgerAccount::PaidToDebt { user_id: 123, account_id: 456 }.code(), "user:123:debt:456");
        for bad in [
            "",
            "user:",
            "user:1",
            "user:1:",
            "user:01:held",
            "user:-1:held",
            "user:1:debt:",
            "user:1:debt:x",
            "donkies:cash",
            "user:1:held:x",
            "user:+1:held",
        ] {
            assert_eq!(LedgerAccount::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn entries_move_only_between_the_accounts_their_kind_allows() {
        let pending = LedgerAccount::RoundUpsPending { user_id: USER };
        let held = LedgerAccount::Held { user_id: USER };
        let other_held = LedgerAccount::Held { user_id: USER + 1 };
        let collecting = LedgerAccount::InCollection { user_id: USER };
        let one = Cents::new(1);
        assert!(Entry::new("k", EntryKind::Collect, collecting, held, one).is_ok());
        assert!(matches!(
            Entry::new("k", EntryKind::Collect, collecting, other_held, one),
            Err(LedgerRefusal::IllegalEntry { .. })
        ));
        assert!(matches!(
            Entry::new("k", EntryKind::RoundUp, held, pending, one),
            Err(LedgerRefusal::IllegalEntry { .. })
        ));
        assert!(matches!(
            Entry::new("k", EntryKind::RoundUp, LedgerAccount::RoundUpSource, pending, Cents::ZERO),
            Err(LedgerRefusal::AmountOutOfRange { .. })
        ));
        assert_eq!(
            Entry::new("", EntryKind::RoundUp, LedgerAccount::RoundUpSource, pending, one),
            Err(LedgerRefusal::EmptyKey)
        );
    }

    #[test]
    fn a_replayed_round_up_is_recorded_once() {
        let mut ledger = Balances::new();
        assert_eq!(ledger.record(&roundup(1, 42)), Ok(Recorded::New));
        assert_eq!(ledger.record(&roundup(1, 42)), Ok(Recorded::AlreadyRecorded));
        assert_eq!(ledger.balance(LedgerAccount::RoundUpsPending { user_id: USER }).posted, Cents::new(42));
        assert!(matches!(ledger.record(&roundup(1, 43)), Err(LedgerRefusal::KeyConflict { .. })));
    }

    #[test]
    fn a_voided_collection_gives_the_round_ups_back_and_resolves_once() {
        let mut ledger = Balances::new();
        ledger.record(&roundup(1, 500)).unwrap();
        let start = Movement::CollectStart { user_id: USER, collection_id: 9, amount: Cents::new(500) };
        ledger.record(&start).unwrap();
        let pending = LedgerAccount::RoundUpsPending { user_id: USER };
        assert_eq!(ledger.balance(pending).posted, Cents::ZERO);
        ledger.record(&Movement::CollectVoid { collection_id: 9 }).unwrap();
        assert_eq!(ledger.balance(pending).posted, Cents::new(500));
        assert_eq!(ledger.record(&Movement::CollectVoid { collection_id: 9 }), Ok(Recorded::AlreadyRecorded));
        assert_eq!(
            ledger.record(&Movement::CollectPost { collection_id: 9 }),
            Err(LedgerRefusal::AlreadyResolved { state: PendingState::Voided })
        );
        assert_eq!(ledger.balance(LedgerAccount::Held { user_id: USER }), Balance::default());
    }

    #[test]
    fn a_payout_beyond_what_is_held_is_refused_and_changes_nothing() {
        let mut ledger = Balances::new();
        ledger.record(&roundup(1, 500)).unwrap();
        ledger.record(&Movement::CollectStart { user_id: USER, collection_id: 9, amount: Cents::new(500) }).unwrap();
        ledger.record(&Movement::CollectPost { collection_id: 9 }).unwrap();
        let part = |part_id, cents| Movement::PayoutStart {
            user_id: USER,
            part_id,
            debt_account_id: 3,
            amount: Cents::new(cents),
        };
        ledger.record(&part(1, 300)).unwrap();
        let before = ledger.clone();
        let held = LedgerAccount::Held { user_id: USER };
        assert_eq!(
            ledger.record(&part(2, 201)),
            Err(LedgerRefusal::InsufficientBalance {
                account: held,
                available: Cents::new(200),
                amount: Cents::new(201)
            })
        );
        assert_eq!(ledger.balance(held), before.balance(held));
        assert_eq!(ledger.pending_state("payout:2"), None);
    }
}
