//! The simulator's state.
//!
//! One [`Db`] holds users, members and the data generated for them. It sits
//! behind a `std::sync::Mutex` that no handler holds across an `.await`.
//! Users and members changed by a request are marked dirty and written to
//! the journal before the answer ([`Db::take_rows`]); a simulator started on
//! the same data directory loads them back ([`Db::load`]), each run going on
//! where the wall clock says it is. Generated data is not kept: it is drawn
//! again, the same, from the login (see `data`), with the member's log of
//! events and churnbank days replayed over it (see `ledger`); the log is
//! kept with the member. `POST /__sim/reset` forgets all.
//!
//! A member's status is not moved by timers. Each create, credential update,
//! aggregate or resume starts a [`Run`]: a fixed list of statuses and the
//! instant it began. Reading the member computes where the run is from the
//! time elapsed, one status per `step`, so a given step makes the sequence
//! deterministic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use donkies_atrium::wire::{
    Account, Challenge, ChallengeAnswer, ChallengeOption, ChallengeType, ConnectionStatus, Credential, CredentialType,
    CredentialValue, Member, MemberConnectionStatus, MemberStatus, MemberUpdate, NewMember, NewUser, Transaction, User,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::catalog::{CHURNBANK_CODE, CatalogEntry};
use super::data::{self, Owner, login_seed};
use super::error::ApiError;
use super::guid::random_guid;
use super::ledger::{Change, Entry, Ledger, SimEvent};
use crate::journal::{Dirty, Row, Stored};

const USER: &str = "user";
const MEMBER: &str = "member";
/// The simulated days a churnbank login has lived through, by login seed.
const LOGIN: &str = "login";

/// Usernames mxbank accepts (Decisions); any other ends DENIED.
pub const VALID_USERNAMES: &[&str] = &["test_atrium", "mxuser"];
/// The answer that passes every challenge.
pub const CORRECT_ANSWER: &str = "correct";
/// MX's limit of members per user; one more answers 405.
const MAX_MEMBERS_PER_USER: usize = 25;

/// A 1×1 PNG: the picture of an IMAGE_DATA challenge.
const CHALLENGE_IMAGE: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// The moment a request is served, read once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub instant: Instant,
    pub wall: DateTime<Utc>,
}

impl Now {
    pub fn read() -> Self {
        Self { instant: Instant::now(), wall: Utc::now() }
    }
}

/// Pace of the member runs, copied into each run when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Timing {
    pub step: Duration,
    pub challenge_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChallengeKind {
    Text,
    Options,
    Image,
}

/// How an aggregation with given credentials ends (A6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Success,
    Challenge(ChallengeKind),
    Denied(ConnectionStatus),
    Halted,
}

fn credential_value<'a>(entry: &CatalogEntry, credentials: &'a [CredentialValue], kind: CredentialType) -> &'a str {
    entry
        .credential_guid(&kind)
        .and_then(|guid| credentials.iter().find(|c| c.guid == guid))
        .map(|c| c.value.as_str())
        .unwrap_or("")
}

/// The seed of a member's data: its user, institution and username.
fn seed_of(entry: &CatalogEntry, user_guid: &str, credentials: &[CredentialValue]) -> u64 {
    login_seed(user_guid, &entry.institution.code, credential_value(entry, credentials, CredentialType::Login))
}

fn outcome(entry: &CatalogEntry, credentials: &[CredentialValue]) -> Outcome {
    let value_of = |kind: CredentialType| credential_value(entry, credentials, kind);
    if !VALID_USERNAMES.contains(&value_of(CredentialType::Login)) {
        return Outcome::Denied(ConnectionStatus::Denied);
    }
    match value_of(CredentialType::Password) {
        "challenge" => Outcome::Challenge(ChallengeKind::Text),
        "options" => Outcome::Challenge(ChallengeKind::Options),
        "image" => Outcome::Challenge(ChallengeKind::Image),
        "UNAUTHORIZED" | "INVALID" => Outcome::Denied(ConnectionStatus::Denied),
        "LOCKED" => Outcome::Denied(ConnectionStatus::Locked),
        "DISABLED" => Outcome::Denied(ConnectionStatus::Disabled),
        "BAD_REQUEST" | "SERVER_ERROR" | "UNAVAILABLE" => Outcome::Halted,
        _ => Outcome::Success,
    }
}

fn challenge(kind: ChallengeKind, guid: String) -> Challenge {
    let option = |label: &str, value: &str| ChallengeOption { label: label.to_owned(), value: value.to_owned() };
    let (label, challenge_type) = match kind {
        ChallengeKind::Text => ("What city were you born in?", ChallengeType::Text),
        ChallengeKind::Options => ("Which of these is correct?", ChallengeType::Options),
        ChallengeKind::Image => ("Enter the characters shown in the image", ChallengeType::ImageData),
    };
    Challenge {
        guid,
        label: label.to_owned(),
        challenge_type,
        field_name: None,
        options: match kind {
            ChallengeKind::Options => vec![
                option("Not this one", "wrong"),
                option("This one is correct", CORRECT_ANSWER),
                option("None of the above", "none"),
            ],
            _ => Vec::new(),
        },
        image_data: (kind == ChallengeKind::Image).then(|| CHALLENGE_IMAGE.to_owned()),
        image_options: Vec::new(),
    }
}

/// One aggregation attempt: the statuses it walks through, one per step.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Run {
    /// Kept as `started_at`; set again from it when loaded.
    #[serde(skip, default = "Instant::now")]
    started: Instant,
    started_at: DateTime<Utc>,
    timing: Timing,
    path: Vec<(MemberStatus, ConnectionStatus)>,
    /// From which path index the institution has accepted the login.
    authenticated_from: Option<usize>,
    /// Outstanding questions when the path ends CHALLENGED.
    challenges: Vec<Challenge>,
    /// How much of the member's log the data of this run shows.
    #[serde(default)]
    log_len: usize,
}

/// Where a run stands at one instant.
#[derive(Debug, Clone)]
struct Position {
    status: MemberStatus,
    connection: ConnectionStatus,
    at_end: bool,
    authenticated: bool,
    completed_at: Option<DateTime<Utc>>,
}

impl Run {
    fn aggregation(
        outcome: Outcome,
        opening: ConnectionStatus,
        timing: Timing,
        now: Now,
        challenge_guid: String,
    ) -> Self {
        use MemberStatus as S;
        let mut path = vec![(S::Initiated, opening.clone()), (S::Requested, opening.clone())];
        let mut authenticated_from = None;
        let mut challenges = Vec::new();
        match outcome {
            Outcome::Success => {
                authenticated_from = Some(path.len());
                for status in [S::Authenticated, S::Transferred, S::Processed] {
                    path.push((status, opening.clone()));
                }
                path.push((S::Completed, ConnectionStatus::Connected));
            }
            Outcome::Challenge(kind) => {
                path.push((S::Challenged, ConnectionStatus::Challenged));
                challenges.push(challenge(kind, challenge_guid));
            }
            Outcome::Denied(connection) => path.push((S::Denied, connection)),
            Outcome::Halted => path.push((S::Halted, ConnectionStatus::Failed)),
        }
        Self { started: now.instant, started_at: now.wall, timing, path, authenticated_from, challenges, log_len: 0 }
    }

    fn resumed(correct: bool, timing: Timing, now: Now) -> Self {
        use MemberStatus as S;
        let resumed = ConnectionStatus::Resumed;
        let path = if correct {
            vec![
                (S::Received, resumed.clone()),
                (S::Transferred, resumed.clone()),
                (S::Processed, resumed),
                (S::Completed, ConnectionStatus::Connected),
            ]
        } else {
            vec![(S::Received, resumed), (S::Denied, ConnectionStatus::Denied)]
        };
        Self {
            started: now.instant,
            started_at: now.wall,
            timing,
            path,
            authenticated_from: correct.then_some(0),
            challenges: Vec::new(),
            log_len: 0,
        }
    }

    fn position(&self, now: Instant) -> Position {
        let elapsed = now.saturating_duration_since(self.started);
        let last = self.path.len() - 1;
        let index = match elapsed.as_nanos().checked_div(self.timing.step.as_nanos()) {
            Some(steps) => usize::try_from(steps).unwrap_or(usize::MAX).min(last),
            None => last,
        };
        let end_offset = self.timing.step.saturating_mul(u32::try_from(last).unwrap_or(u32::MAX));
        let (mut status, mut connection) = self.path[index].clone();
        if status == MemberStatus::Challenged && elapsed >= end_offset.saturating_add(self.timing.challenge_timeout) {
            // Nobody answered in time (A6.2: the job halts; later EXPIRED).
            status = MemberStatus::Halted;
            connection = ConnectionStatus::Expired;
        }
        let completed_at = (status == MemberStatus::Completed)
            .then(|| self.started_at + chrono::Duration::from_std(end_offset).unwrap_or_default());
        Position {
            authenticated: self.authenticated_from.is_some_and(|from| index >= from),
            at_end: index == last,
            status,
            connection,
            completed_at,
        }
    }

    fn outstanding_challenges(&self, position: &Position) -> &[Challenge] {
        if position.status == MemberStatus::Challenged { &self.challenges } else { &[] }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct UserRecord {
    seq: u64,
    user: User,
    members: Vec<String>,
}

/// Data generated for a member, kept until its next success or a change of
/// the transaction-count setting.
#[derive(Debug)]
struct MemberData {
    success_at: DateTime<Utc>,
    count: Option<u32>,
    log_len: usize,
    accounts: Arc<Vec<Account>>,
    transactions: Arc<Vec<Transaction>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct MemberRecord {
    guid: String,
    user_guid: String,
    institution_code: String,
    institution_name: String,
    identifier: Option<String>,
    metadata: Option<String>,
    credentials: Vec<CredentialValue>,
    run: Run,
    earlier_success: Option<DateTime<Utc>>,
    earlier_authenticated: bool,
    /// Seed of the generated data (the login's); set again when loaded.
    #[serde(default)]
    seed: u64,
    /// Events applied and churnbank days passed, oldest first.
    #[serde(default)]
    log: Vec<Entry>,
    /// How much of the log the last success before the current run showed.
    #[serde(default)]
    earlier_log_len: usize,
    #[serde(skip)]
    data: Option<MemberData>,
}

/// Everything a member looks like at one instant.
struct Snapshot<'a> {
    position: Position,
    successfully_aggregated_at: Option<DateTime<Utc>>,
    is_authenticated: bool,
    challenges: &'a [Challenge],
}

impl MemberRecord {
    fn snapshot(&self, now: Instant) -> Snapshot<'_> {
        let position = self.run.position(now);
        Snapshot {
            successfully_aggregated_at: position.completed_at.or(self.earlier_success),
            is_authenticated: self.earlier_authenticated || position.authenticated,
            challenges: self.run.outstanding_challenges(&position),
            position,
        }
    }

    fn to_member(&self, now: Instant) -> Member {
        let snapshot = self.snapshot(now);
        Member {
            guid: self.guid.clone(),
            user_guid: self.user_guid.clone(),
            institution_code: self.institution_code.clone(),
            name: Some(self.institution_name.clone()),
            status: snapshot.position.status,
            connection_status: Some(snapshot.position.connection),
            is_being_aggregated: Some(!snapshot.position.at_end),
            aggregated_at: Some(self.run.started_at),
            successfully_aggregated_at: snapshot.successfully_aggregated_at,
            identifier: self.identifier.clone(),
            metadata: self.metadata.clone(),
        }
    }

    fn to_status(&self, now: Instant) -> MemberConnectionStatus {
        let snapshot = self.snapshot(now);
        let has_data = snapshot.successfully_aggregated_at.is_some();
        MemberConnectionStatus {
            guid: self.guid.clone(),
            status: snapshot.position.status,
            connection_status: Some(snapshot.position.connection),
            aggregated_at: Some(self.run.started_at),
            successfully_aggregated_at: snapshot.successfully_aggregated_at,
            is_authenticated: Some(snapshot.is_authenticated),
            is_being_aggregated: Some(!snapshot.position.at_end),
            has_processed_accounts: Some(has_data),
            has_processed_transactions: Some(has_data),
            challenges: snapshot.challenges.to_vec(),
        }
    }

    /// Replaces the current run, keeping what the old one achieved.
    fn start(&mut self, run: Run, now: Instant) {
        self.earlier_log_len = self.visible_log_len(now);
        let (success, authenticated) = {
            let snapshot = self.snapshot(now);
            (snapshot.successfully_aggregated_at, snapshot.is_authenticated)
        };
        self.earlier_success = success;
        self.earlier_authenticated = authenticated;
        self.run = run;
    }

    /// How much of the log the data shows: what the last completed
    /// aggregation took in.
    fn visible_log_len(&self, now: Instant) -> usize {
        let len = if self.run.position(now).completed_at.is_some() { self.run.log_len } else { self.earlier_log_len };
        len.min(self.log.len())
    }

    fn churns(&self) -> bool {
        self.institution_code == CHURNBANK_CODE
    }

    /// The days of the log, oldest first.
    fn days(&self) -> Vec<NaiveDate> {
        self.log
            .iter()
            .filter_map(|entry| match entry {
                Entry::Day { date, .. } => Some(*date),
                Entry::Event { .. } => None,
            })
            .collect()
    }

    fn owner(&self, aggregated_at: DateTime<Utc>) -> Owner<'_> {
        Owner {
            seed: self.seed,
            pending_tail: self.churns(),
            member_guid: &self.guid,
            user_guid: &self.user_guid,
            institution_code: &self.institution_code,
            institution_name: &self.institution_name,
            aggregated_at,
        }
    }

    /// The accounts and transactions of the login on `aggregated_at`'s day
    /// with the first `log_len` entries of the log replayed.
    fn ledger(
        &self,
        aggregated_at: DateTime<Utc>,
        count: Option<u32>,
        log_len: usize,
    ) -> (Vec<Account>, Vec<Transaction>) {
        let owner = self.owner(aggregated_at);
        let accounts = data::accounts(&owner);
        let transactions = data::transactions(&owner, &accounts, count);
        if log_len == 0 {
            return (accounts, transactions);
        }
        let mut ledger = Ledger::new(&owner, accounts, transactions);
        ledger.replay(&self.log[..log_len]);
        ledger.into_parts()
    }

    /// The member's data, generated on first read after a success; `None`
    /// until an aggregation has completed.
    fn data(&mut self, now: Instant, count: Option<u32>) -> Option<&MemberData> {
        let success_at = self.snapshot(now).successfully_aggregated_at?;
        let log_len = self.visible_log_len(now);
        let fresh =
            self.data.as_ref().is_some_and(|d| d.success_at == success_at && d.count == count && d.log_len == log_len);
        if !fresh {
            let (accounts, transactions) = self.ledger(success_at, count, log_len);
            self.data = Some(MemberData {
                success_at,
                count,
                log_len,
                accounts: Arc::new(accounts),
                transactions: Arc::new(transactions),
            });
        }
        self.data.as_ref()
    }
}

/// A member's accounts and transactions, shared with the cache.
#[derive(Debug, Clone, Default)]
pub(crate) struct Holdings {
    pub accounts: Arc<Vec<Account>>,
    pub transactions: Arc<Vec<Transaction>>,
}

/// The simulator's database.
#[derive(Debug)]
pub(crate) struct Db {
    catalog: Arc<[CatalogEntry]>,
    next_seq: u64,
    users: HashMap<String, UserRecord>,
    /// User identifiers, unique per client (A3.1), to user guids.
    identifiers: HashMap<String, String>,
    members: HashMap<String, MemberRecord>,
    /// churnbank: the dates of the simulated days each login has lived
    /// through (by login seed), so that a re-link sees the bank as it is.
    logins: HashMap<String, Vec<NaiveDate>>,
    rng: StdRng,
    /// Users and members changed since the journal last wrote.
    dirty: Dirty,
}

/// The instant that was `wall` by the wall clock.
fn instant_at(wall: DateTime<Utc>) -> Instant {
    let now = Instant::now();
    match (Utc::now() - wall).to_std() {
        Ok(ago) => now.checked_sub(ago).unwrap_or(now),
        Err(_) => now + (wall - Utc::now()).to_std().unwrap_or_default(),
    }
}

impl Db {
    pub fn new(catalog: Arc<[CatalogEntry]>, seed: u64) -> Self {
        Self {
            catalog,
            next_seq: 0,
            users: HashMap::new(),
            identifiers: HashMap::new(),
            members: HashMap::new(),
            logins: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
            dirty: Dirty::new(false),
        }
    }

    /// The users and members the journal kept; changes are marked for the
    /// journal when it `keeps` them.
    pub fn load(catalog: Arc<[CatalogEntry]>, seed: u64, stored: Vec<Stored>, keeps: bool) -> std::io::Result<Self> {
        let mut db = Self::new(catalog, seed);
        db.dirty = Dirty::new(keeps);
        for record in &stored {
            match record.kind.as_str() {
                USER => {
                    let user: UserRecord = record.parse()?;
                    if let Some(identifier) = &user.user.identifier {
                        db.identifiers.insert(identifier.clone(), record.id.clone());
                    }
                    db.next_seq = db.next_seq.max(user.seq);
                    db.users.insert(record.id.clone(), user);
                }
                MEMBER => {
                    let mut member: MemberRecord = record.parse()?;
                    member.run.started = instant_at(member.run.started_at);
                    if let Ok(entry) = db.institution(&member.institution_code) {
                        member.seed = seed_of(entry, &member.user_guid, &member.credentials);
                    }
                    db.members.insert(record.id.clone(), member);
                }
                LOGIN => {
                    db.logins.insert(record.id.clone(), record.parse()?);
                }
                _ => {}
            }
        }
        // Guids drawn after a restart must not repeat those drawn before it.
        if !stored.is_empty() {
            db.rng = StdRng::from_entropy();
        }
        Ok(db)
    }

    /// The rows of the users and members changed since the last call.
    pub fn take_rows(&mut self) -> Vec<Row> {
        let dirty = self.dirty.take();
        dirty
            .into_iter()
            .map(|(kind, id)| match kind {
                USER => Row::of(kind, id.clone(), self.users.get(&id)),
                LOGIN => Row::of(kind, id.clone(), self.logins.get(&id)),
                _ => Row::of(kind, id.clone(), self.members.get(&id)),
            })
            .collect()
    }

    /// Forgets every user and member.
    pub fn reset(&mut self) {
        self.users.clear();
        self.identifiers.clear();
        self.members.clear();
        self.logins.clear();
        self.dirty.take();
    }

    pub fn institution(&self, code: &str) -> Result<&CatalogEntry, ApiError> {
        self.catalog.iter().find(|e| e.institution.code == code).ok_or_else(|| ApiError::not_found("institution"))
    }

    // ---- users

    pub fn create_user(&mut self, new: NewUser) -> Result<User, ApiError> {
        if new == NewUser::default() {
            return Err(ApiError::bad_request("user must not be empty"));
        }
        if let Some(identifier) = &new.identifier
            && self.identifiers.contains_key(identifier)
        {
            return Err(ApiError::conflict("object with given attributes already exists"));
        }
        let guid = random_guid("USR", &mut self.rng);
        let user = User {
            guid: guid.clone(),
            identifier: new.identifier,
            is_disabled: new.is_disabled.unwrap_or(false),
            metadata: new.metadata,
        };
        if let Some(identifier) = &user.identifier {
            self.identifiers.insert(identifier.clone(), guid.clone());
        }
        self.next_seq += 1;
        self.dirty.mark(USER, &guid);
        self.users.insert(guid, UserRecord { seq: self.next_seq, user: user.clone(), members: Vec::new() });
        Ok(user)
    }

    pub fn users(&self) -> Vec<User> {
        let mut records: Vec<_> = self.users.values().collect();
        records.sort_by_key(|r| r.seq);
        records.into_iter().map(|r| r.user.clone()).collect()
    }

    fn user_record(&self, user_guid: &str) -> Result<&UserRecord, ApiError> {
        self.users.get(user_guid).ok_or_else(|| ApiError::not_found("user"))
    }

    pub fn user(&self, user_guid: &str) -> Result<User, ApiError> {
        Ok(self.user_record(user_guid)?.user.clone())
    }

    pub fn update_user(&mut self, user_guid: &str, update: NewUser) -> Result<User, ApiError> {
        self.user_record(user_guid)?;
        if let Some(identifier) = &update.identifier
            && self.identifiers.get(identifier).is_some_and(|owner| owner != user_guid)
        {
            return Err(ApiError::conflict("object with given attributes already exists"));
        }
        self.dirty.mark(USER, user_guid);
        let record = self.users.get_mut(user_guid).ok_or_else(|| ApiError::not_found("user"))?;
        if let Some(identifier) = update.identifier {
            if let Some(old) = record.user.identifier.replace(identifier.clone()) {
                self.identifiers.remove(&old);
            }
            self.identifiers.insert(identifier, user_guid.to_owned());
        }
        if let Some(metadata) = update.metadata {
            record.user.metadata = Some(metadata);
        }
        if let Some(disabled) = update.is_disabled {
            record.user.is_disabled = disabled;
        }
        Ok(record.user.clone())
    }

    pub fn delete_user(&mut self, user_guid: &str) -> Result<(), ApiError> {
        let record = self.users.remove(user_guid).ok_or_else(|| ApiError::not_found("user"))?;
        self.dirty.mark(USER, user_guid);
        if let Some(identifier) = &record.user.identifier {
            self.identifiers.remove(identifier);
        }
        for member in &record.members {
            self.members.remove(member);
            self.dirty.mark(MEMBER, member);
        }
        Ok(())
    }

    // ---- members

    fn member_record(&self, user_guid: &str, member_guid: &str) -> Result<&MemberRecord, ApiError> {
        self.user_record(user_guid)?;
        self.members.get(member_guid).filter(|m| m.user_guid == user_guid).ok_or_else(|| ApiError::not_found("member"))
    }

    fn member_record_mut(&mut self, user_guid: &str, member_guid: &str) -> Result<&mut MemberRecord, ApiError> {
        self.user_record(user_guid)?;
        self.members
            .get_mut(member_guid)
            .filter(|m| m.user_guid == user_guid)
            .ok_or_else(|| ApiError::not_found("member"))
    }

    /// Checks credential guids against the institution's fields.
    fn check_credentials(entry: &CatalogEntry, values: &[CredentialValue]) -> Result<(), ApiError> {
        if let Some(unknown) = values.iter().find(|v| !entry.credentials.iter().any(|c| c.guid == v.guid)) {
            return Err(ApiError::bad_request(format!(
                "credential {} does not belong to institution {}",
                unknown.guid, entry.institution.code
            )));
        }
        Ok(())
    }

    pub fn create_member(
        &mut self,
        user_guid: &str,
        new: NewMember,
        timing: Timing,
        now: Now,
    ) -> Result<Member, ApiError> {
        let user = self.user_record(user_guid)?;
        let member_count = user.members.len();
        let entry = self.institution(&new.institution_code)?.clone();
        Self::check_credentials(&entry, &new.credentials)?;
        for kind in [CredentialType::Login, CredentialType::Password] {
            let guid = entry.credential_guid(&kind).unwrap_or_default();
            if !new.credentials.iter().any(|c| c.guid == guid) {
                return Err(ApiError::bad_request(format!("missing the {kind} credential ({guid})")));
            }
        }
        let same_login = |m: &&MemberRecord| {
            m.user_guid == user_guid
                && m.institution_code == new.institution_code
                && same_values(&m.credentials, &new.credentials)
        };
        if self.members.values().any(|m| same_login(&m)) {
            return Err(ApiError::conflict("a member with these credentials already exists"));
        }
        if member_count >= MAX_MEMBERS_PER_USER {
            return Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "a user may have at most 25 members"));
        }

        let guid = random_guid("MBR", &mut self.rng);
        let challenge_guid = random_guid("CRD", &mut self.rng);
        let run =
            Run::aggregation(outcome(&entry, &new.credentials), ConnectionStatus::Created, timing, now, challenge_guid);
        let seed = seed_of(&entry, user_guid, &new.credentials);
        let mut record = MemberRecord {
            guid: guid.clone(),
            user_guid: user_guid.to_owned(),
            institution_code: entry.institution.code.clone(),
            institution_name: entry.institution.name.clone(),
            identifier: new.identifier,
            metadata: new.metadata,
            credentials: new.credentials,
            run,
            earlier_success: None,
            earlier_authenticated: false,
            seed,
            log: Vec::new(),
            earlier_log_len: 0,
            data: None,
        };
        if record.churns() {
            // A login that has lived through days already is linked as it
            // is; a new one lives through its first day.
            match self.logins.get(&login_key(seed)) {
                Some(dates) if !dates.is_empty() => {
                    record.log = days_of(dates);
                    record.run.log_len = record.log.len();
                }
                _ => self.advance_day(&mut record, now),
            }
        }
        let member = record.to_member(now.instant);
        self.dirty.mark(MEMBER, &guid);
        self.dirty.mark(USER, user_guid);
        self.members.insert(guid.clone(), record);
        if let Some(user) = self.users.get_mut(user_guid) {
            user.members.push(guid);
        }
        Ok(member)
    }

    /// Member guids of a user in creation order.
    fn member_guids(&self, user_guid: &str) -> Result<Vec<String>, ApiError> {
        Ok(self.user_record(user_guid)?.members.clone())
    }

    pub fn members(&self, user_guid: &str, now: Now) -> Result<Vec<Member>, ApiError> {
        let guids = self.member_guids(user_guid)?;
        Ok(guids.iter().filter_map(|guid| self.members.get(guid)).map(|m| m.to_member(now.instant)).collect())
    }

    pub fn member(&self, user_guid: &str, member_guid: &str, now: Now) -> Result<Member, ApiError> {
        Ok(self.member_record(user_guid, member_guid)?.to_member(now.instant))
    }

    pub fn member_status(
        &self,
        user_guid: &str,
        member_guid: &str,
        now: Now,
    ) -> Result<MemberConnectionStatus, ApiError> {
        Ok(self.member_record(user_guid, member_guid)?.to_status(now.instant))
    }

    pub fn member_credentials(&self, user_guid: &str, member_guid: &str) -> Result<Vec<Credential>, ApiError> {
        let member = self.member_record(user_guid, member_guid)?;
        Ok(self.institution(&member.institution_code)?.credentials.clone())
    }

    /// Updates a member; new credentials start an aggregation.
    pub fn update_member(
        &mut self,
        user_guid: &str,
        member_guid: &str,
        update: MemberUpdate,
        timing: Timing,
        now: Now,
    ) -> Result<Member, ApiError> {
        let code = self.member_record(user_guid, member_guid)?.institution_code.clone();
        let entry = self.institution(&code)?.clone();
        if let Some(values) = &update.credentials {
            Self::check_credentials(&entry, values)?;
        }
        let challenge_guid = random_guid("CRD", &mut self.rng);
        self.dirty.mark(MEMBER, member_guid);
        let member = self.member_record_mut(user_guid, member_guid)?;
        if let Some(identifier) = update.identifier {
            member.identifier = Some(identifier);
        }
        if let Some(metadata) = update.metadata {
            member.metadata = Some(metadata);
        }
        if let Some(values) = update.credentials {
            for value in values {
                match member.credentials.iter_mut().find(|c| c.guid == value.guid) {
                    Some(stored) => stored.value = value.value,
                    None => member.credentials.push(value),
                }
            }
            let run = Run::aggregation(
                outcome(&entry, &member.credentials),
                ConnectionStatus::Updated,
                timing,
                now,
                challenge_guid,
            );
            member.seed = seed_of(&entry, user_guid, &member.credentials);
            member.start(run, now.instant);
            self.aggregation_started(member_guid, now);
        }
        let member = self.member_record(user_guid, member_guid)?;
        Ok(member.to_member(now.instant))
    }

    /// A new simulated day for a churnbank member (and its login), taken
    /// in by the run that starts now.
    fn advance_day(&mut self, member: &mut MemberRecord, now: Now) {
        if member.churns() {
            let mut dates = member.days();
            let day = u32::try_from(dates.len() + 1).unwrap_or(u32::MAX);
            let today = now.wall.date_naive();
            member.log.push(Entry::Day { day, date: today });
            dates.push(today);
            let key = login_key(member.seed);
            let clock = self.logins.entry(key.clone()).or_default();
            if clock.len() < dates.len() {
                *clock = dates;
                self.dirty.mark(LOGIN, &key);
            }
        }
        member.run.log_len = member.log.len();
    }

    /// The run just started takes in the events applied so far and, for
    /// churnbank, a new simulated day.
    fn aggregation_started(&mut self, member_guid: &str, now: Now) {
        if let Some(mut member) = self.members.remove(member_guid) {
            self.advance_day(&mut member, now);
            self.members.insert(member_guid.to_owned(), member);
        }
    }

    /// Starts an aggregation with the stored credentials; 202 with the
    /// member as it is when one is already running.
    pub fn aggregate_member(
        &mut self,
        user_guid: &str,
        member_guid: &str,
        timing: Timing,
        now: Now,
    ) -> Result<(StatusCode, Member), ApiError> {
        let code = self.member_record(user_guid, member_guid)?.institution_code.clone();
        let entry = self.institution(&code)?.clone();
        let challenge_guid = random_guid("CRD", &mut self.rng);
        self.dirty.mark(MEMBER, member_guid);
        let member = self.member_record_mut(user_guid, member_guid)?;
        if !member.run.position(now.instant).at_end {
            return Ok((StatusCode::ACCEPTED, member.to_member(now.instant)));
        }
        let opening = if member.snapshot(now.instant).successfully_aggregated_at.is_some() {
            ConnectionStatus::Connected
        } else {
            ConnectionStatus::Created
        };
        let run = Run::aggregation(outcome(&entry, &member.credentials), opening, timing, now, challenge_guid);
        member.start(run, now.instant);
        self.aggregation_started(member_guid, now);
        Ok((StatusCode::OK, self.member_record(user_guid, member_guid)?.to_member(now.instant)))
    }

    /// The outstanding challenges (empty when the member is not challenged).
    pub fn challenges(&self, user_guid: &str, member_guid: &str, now: Now) -> Result<Vec<Challenge>, ApiError> {
        let member = self.member_record(user_guid, member_guid)?;
        Ok(member.snapshot(now.instant).challenges.to_vec())
    }

    /// Answers the challenges: all `correct` continues to COMPLETED,
    /// anything else ends DENIED.
    pub fn resume_member(
        &mut self,
        user_guid: &str,
        member_guid: &str,
        answers: Vec<ChallengeAnswer>,
        timing: Timing,
        now: Now,
    ) -> Result<Member, ApiError> {
        self.member_record(user_guid, member_guid)?;
        self.dirty.mark(MEMBER, member_guid);
        let member = self.member_record_mut(user_guid, member_guid)?;
        if answers.is_empty() {
            return Err(ApiError::bad_request("no challenge answers given"));
        }
        let outstanding = member.snapshot(now.instant).challenges.to_vec();
        if outstanding.is_empty() {
            return Err(ApiError::conflict("member is not waiting for challenge answers"));
        }
        if let Some(unknown) = answers.iter().find(|a| !outstanding.iter().any(|c| c.guid == a.guid)) {
            return Err(ApiError::bad_request(format!(
                "challenge {} is not outstanding for this member",
                unknown.guid
            )));
        }
        let correct = outstanding
            .iter()
            .all(|challenge| answers.iter().any(|a| a.guid == challenge.guid && a.value == CORRECT_ANSWER));
        // Resuming goes on with the aggregation the challenge interrupted.
        let mut run = Run::resumed(correct, timing, now);
        run.log_len = member.run.log_len;
        member.start(run, now.instant);
        Ok(member.to_member(now.instant))
    }

    pub fn delete_member(&mut self, user_guid: &str, member_guid: &str) -> Result<(), ApiError> {
        self.member_record(user_guid, member_guid)?;
        self.members.remove(member_guid);
        self.dirty.mark(MEMBER, member_guid);
        self.dirty.mark(USER, user_guid);
        if let Some(user) = self.users.get_mut(user_guid) {
            user.members.retain(|guid| guid != member_guid);
        }
        Ok(())
    }

    // ---- data

    pub fn member_data(
        &mut self,
        user_guid: &str,
        member_guid: &str,
        count: Option<u32>,
        now: Now,
    ) -> Result<Holdings, ApiError> {
        let member = self.member_record_mut(user_guid, member_guid)?;
        Ok(match member.data(now.instant, count) {
            Some(data) => Holdings { accounts: data.accounts.clone(), transactions: data.transactions.clone() },
            None => Holdings::default(),
        })
    }

    /// Applies `events` to the member's bank, in order and all or none,
    /// answering the guid each made (or `None`). The member's data shows
    /// them from its next completed aggregation on.
    pub fn apply_events(
        &mut self,
        member_guid: &str,
        events: Vec<SimEvent>,
        count: Option<u32>,
        now: Now,
    ) -> Result<Vec<Option<String>>, ApiError> {
        let member = self.members.get(member_guid).ok_or_else(|| ApiError::not_found("member"))?;
        let anchor = member.snapshot(now.instant).successfully_aggregated_at.unwrap_or(now.wall);
        let owner = member.owner(anchor);
        let accounts = data::accounts(&owner);
        let transactions = data::transactions(&owner, &accounts, count);
        let mut ledger = Ledger::new(&owner, accounts, transactions);
        ledger.replay(&member.log);
        let today = now.wall.date_naive();
        let mut changes = Vec::with_capacity(events.len());
        for (index, event) in events.into_iter().enumerate() {
            let kind = event.kind();
            let change = ledger
                .resolve(event, member.log.len() + index, today)
                .and_then(|change| ledger.apply(&change).map(|()| change))
                .map_err(|reason| {
                    ApiError::bad_request(format!("event {index} ({kind}): {reason}; no event was applied"))
                })?;
            changes.push(change);
        }
        let created = changes.iter().map(Change::created).collect();
        if let Some(member) = self.members.get_mut(member_guid) {
            member.log.extend(changes.into_iter().map(|change| Entry::Event { change }));
            self.dirty.mark(MEMBER, member_guid);
        }
        Ok(created)
    }

    /// Data of every member of the user, in member creation order.
    pub fn user_data(&mut self, user_guid: &str, count: Option<u32>, now: Now) -> Result<Vec<Holdings>, ApiError> {
        self.member_guids(user_guid)?
            .iter()
            .map(|member_guid| self.member_data(user_guid, member_guid, count, now))
            .collect()
    }
}

/// The journal id of a login's simulated days.
fn login_key(seed: u64) -> String {
    format!("{seed:016x}")
}

fn days_of(dates: &[NaiveDate]) -> Vec<Entry> {
    (1..).zip(dates).map(|(day, date)| Entry::Day { day, date: *date }).collect()
}

fn same_values(a: &[CredentialValue], b: &[CredentialValue]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| y.guid == x.guid && y.value == x.value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atrium::catalog::{MXBANK_CODE, MXBANK_LOGIN_GUID, MXBANK_PASSWORD_GUID, catalog};

    const STEP: Duration = Duration::from_millis(100);
    const TIMING: Timing = Timing { step: STEP, challenge_timeout: Duration::from_secs(60) };

    fn db_with_user() -> (Db, String) {
        let mut db = Db::new(catalog().into(), 7);
        let user = db.create_user(NewUser { identifier: Some("u1".into()), ..NewUser::default() }).unwrap();
        (db, user.guid)
    }

    fn mxbank(password: &str) -> NewMember {
        NewMember {
            institution_code: MXBANK_CODE.into(),
            credentials: vec![
                CredentialValue::new(MXBANK_LOGIN_GUID, "test_atrium"),
                CredentialValue::new(MXBANK_PASSWORD_GUID, password),
            ],
            identifier: None,
            metadata: None,
        }
    }

    fn at(start: Now, offset: Duration) -> Now {
        Now { instant: start.instant + offset, wall: start.wall + chrono::Duration::from_std(offset).unwrap() }
    }

    #[test]
    fn a_good_password_walks_one_status_per_step_to_completed() {
        let (mut db, user) = db_with_user();
        let start = Now::read();
        let member = db.create_member(&user, mxbank("password"), TIMING, start).unwrap();
        let statuses: Vec<_> =
            (0..7).map(|i| db.member(&user, &member.guid, at(start, STEP * i + STEP / 2)).unwrap().status).collect();
        use MemberStatus as S;
        assert_eq!(
            statuses,
            [S::Initiated, S::Requested, S::Authenticated, S::Transferred, S::Processed, S::Completed, S::Completed]
        );
        let done = db.member(&user, &member.guid, at(start, STEP * 6)).unwrap();
        assert_eq!(done.connection_status, Some(ConnectionStatus::Connected));
        assert_eq!(done.is_being_aggregated, Some(false));
        assert!(done.successfully_aggregated_at.is_some());
    }

    #[test]
    fn an_unanswered_challenge_halts_after_the_timeout() {
        let (mut db, user) = db_with_user();
        let start = Now::read();
        let member = db.create_member(&user, mxbank("challenge"), TIMING, start).unwrap();
        let challenged = db.member_status(&user, &member.guid, at(start, STEP * 3)).unwrap();
        assert_eq!(challenged.status, MemberStatus::Challenged);
        assert_eq!(challenged.challenges.len(), 1);
        let late = at(start, STEP * 2 + TIMING.challenge_timeout);
        let halted = db.member_status(&user, &member.guid, late).unwrap();
        assert_eq!(halted.status, MemberStatus::Halted);
        assert_eq!(halted.connection_status, Some(ConnectionStatus::Expired));
        assert!(halted.challenges.is_empty());
    }

    #[test]
    fn data_appears_only_after_completion() {
        let (mut db, user) = db_with_user();
        let start = Now::read();
        let member = db.create_member(&user, mxbank("password"), TIMING, start).unwrap();
        let empty = db.member_data(&user, &member.guid, None, start).unwrap();
        assert!(empty.accounts.is_empty());
        let later = at(start, STEP * 10);
        let holdings = db.member_data(&user, &member.guid, None, later).unwrap();
        assert_eq!(holdings.accounts.len(), 4);
        assert!(!holdings.transactions.is_empty());
    }
}
