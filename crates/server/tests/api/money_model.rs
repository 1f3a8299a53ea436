//! "No cent is created or lost": a model test of the money loop over the real server and store.
//!
//! Random sequences of contributions, collections, failing and recovering round-up sources,
//! Dwolla processing, payouts, manual payments and account closings run against a real server
//! on SQLite (a fresh database per case). A small model kept here says where every cent of each
//! user must be — waiting, in collection, held, reserved for a payout, paid out, refunded — and
//! after every operation the ledger, its own check (`ledger_report`), and `/v1/stat` must agree
//! with it to the cent.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use donkies_domain::{Cents, EntryKind, LedgerAccount};
use donkies_server::services::money::{Collected, PaidOut};
use donkies_store::money_loop::PartMethod;
use proptest::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{Backend, TestApp};
use crate::payments::{payments_user, services, verified_bank};

both_databases!(a_fixed_sequence_accounts_for_every_cent);

/// The collection minimum of the server (`DONKIES_COLLECTION_MINIMUM`, 5.00 by default).
const COLLECTION_MINIMUM: i64 = 500;

#[derive(Debug, Clone, Copy)]
enum Op {
    /// `POST /v1/contributions`: stands in for new purchases giving round-ups.
    Contribute { user: usize, cents: i64 },
    /// The collection run.
    Collect,
    /// Dwolla processes every transfer that was sent; we wait until each has ended.
    Process,
    /// The user's round-up source becomes a bank whose transfers fail (ACH return R01).
    FailNext { user: usize },
    /// The round-up source goes back to the good bank.
    Recover { user: usize },
    /// The payout run of a day (one of three days, so a day may come again).
    Payout { day: u32 },
    /// An operator pays every manual payout part.
    PayManual,
    /// The user closes the account (back on the good bank first: see `close`).
    Close { user: usize },
    /// A new round-up multiplier (matters for round-ups not gathered yet).
    Multiplier { user: usize, multiplier: i64 },
}

/// Where the model says each of a user's cents is.
#[derive(Debug, Default)]
struct UserModel {
    id: i64,
    token: String,
    email: String,
    debit_ids: Vec<i64>,
    good_account: i64,
    bad_account: i64,
    on_bad: bool,
    closed: bool,
    /// Whether the purchases' round-ups were gathered (the first collection run does it).
    gathered: bool,
    /// Whether the user has active debt accounts with shares (else a final payout refunds).
    has_shares: bool,
    /// The user's payout minimum, in cents.
    minimum: i64,
    // Money in.
    roundups: i64,
    contributed: i64,
    // Where it is.
    waiting: i64,
    in_collection_good: i64,
    in_collection_bad: i64,
    /// Held at Donkies (posted), including what pending payouts and refunds reserved.
    held: i64,
    manual_pending: i64,
    refund_pending: i64,
    paid: i64,
    refunded: i64,
    // What the user is shown.
    to_donkies: i64,
    payouts: i64,
    paid_days: BTreeSet<NaiveDate>,
}

impl UserModel {
    fn reserved(&self) -> i64 {
        self.manual_pending + self.refund_pending
    }

    fn available(&self) -> i64 {
        self.held - self.reserved()
    }

    /// The final payout of a closed account: everything available, to the debts by share (by
    /// hand here: debt accounts have no bank at Dwolla) or back to the user's bank.
    fn final_payout(&mut self) {
        let amount = self.available();
        if amount <= 0 {
            return;
        }
        if self.has_shares {
            self.manual_pending += amount;
        } else {
            self.refund_pending += amount;
        }
        self.payouts += 1;
    }
}

struct Harness {
    app: TestApp,
    users: Vec<UserModel>,
    log: Vec<String>,
}

async fn spawn() -> TestApp {
    let app = TestApp::spawn(Backend::Sqlite).await;
    keep_the_clock_away(&app).await;
    app
}

/// The periodic collection and payout runs (and the hourly resync) would move money behind
/// the model's back when a case crosses the hour: take their next slot now, before any user
/// exists, so the worker runs them at once, with nothing to do.
pub(crate) async fn keep_the_clock_away(app: &TestApp) {
    let now = donkies_store::now();
    for (kind, period) in donkies_server::jobs::periodic() {
        if ["collect_roundups", "run_payouts", "resync_members"].contains(kind) {
            let slot = now.timestamp() / period.as_secs() as i64;
            for s in [slot, slot + 1] {
                donkies_store::jobs::enqueue_periodic(app.db(), kind, s, 3, now).await.unwrap();
            }
        }
    }
    app.eventually("the periodic jobs run", async || {
        let jobs = donkies_store::jobs::list(app.db(), false).await.unwrap();
        let left: Vec<_> = jobs
            .into_iter()
            .filter(|j| ["collect_roundups", "run_payouts", "resync_members"].contains(&j.kind.as_str()))
            .collect();
        if left.is_empty() { Ok(()) } else { Err(left) }
    })
    .await;
}

/// A user with a linked bank, a verified good bank on the first debit account (the round-up
/// source) and a verified bank named `R01` on the second (every transfer from it fails).
/// Without `shares`, the user's debt accounts are made inactive: nothing to pay out to, so a
/// final payout refunds.
async fn add_user(app: &TestApp, email: &str, shares: bool) -> UserModel {
    let (token, debit) = payments_user(app, email).await;
    verified_bank(app, &token, &debit[0], "Checking").await;
    verified_bank(app, &token, &debit[1], "R01").await;
    let good_account = debit[0]["id"].as_i64().unwrap();
    let bad_account = debit[1]["id"].as_i64().unwrap();
    let path = format!("/v1/accounts/set_funding_source/{good_account}");
    let (status, body) = app.post(&path, Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, accounts) = app.get("/v1/accounts", Some(&token)).await;
    let debts: Vec<i64> = accounts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type_ds"] == "debt")
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert!(!debts.is_empty(), "{accounts}");
    if !shares {
        for id in &debts {
            let path = format!("/v1/accounts/set_active/{id}");
            let (status, body) = app.call(Method::PUT, &path, Some(&token), Some(json!({"is_active": false}))).await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        }
    }
    let (_, user) = app.get("/v1/user", Some(&token)).await;
    let (status, settings) = app.get("/v1/user_settings", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    UserModel {
        id: user["id"].as_i64().unwrap(),
        token,
        email: email.to_owned(),
        debit_ids: vec![good_account, bad_account],
        good_account,
        bad_account,
        has_shares: shares,
        minimum: settings["minimum_transfer_amount"].as_i64().unwrap() * 100,
        ..UserModel::default()
    }
}

fn cents_of(v: &Value) -> i64 {
    match v {
        Value::String(s) => Cents::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}")).get(),
        Value::Number(n) => (n.as_f64().unwrap() * 100.0).round() as i64,
        other => panic!("not an amount: {other}"),
    }
}

impl Harness {
    async fn new(app: TestApp, users: usize) -> Harness {
        let mut models = Vec::new();
        for i in 0..users {
            // The second user has no debt to pay: a final payout goes back to the bank.
            models.push(add_user(&app, &format!("user{i}@example.com"), i == 0).await);
        }
        app.wait_jobs_idle().await;
        let harness = Harness { app, users: models, log: Vec::new() };
        harness.check("setup").await;
        harness
    }

    fn user_index(&self, id: i64) -> usize {
        self.users.iter().position(|u| u.id == id).unwrap_or_else(|| panic!("unknown user {id}"))
    }

    /// The round-ups the user's purchases give now, by the transaction list.
    async fn roundups_shown(&self, user: usize) -> i64 {
        let u = &self.users[user];
        let (status, list) = self.app.get("/v1/transactions", Some(&u.token)).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list.as_array()
            .unwrap()
            .iter()
            .filter(|t| t["account_id"].as_i64().is_some_and(|a| u.debit_ids.contains(&a)))
            .map(|t| cents_of(&t["roundup"]))
            .sum()
    }

    async fn apply(&mut self, op: Op) {
        self.log.push(format!("{op:?}"));
        match op {
            Op::Contribute { user, cents } => self.contribute(user % self.users.len(), cents).await,
            Op::Collect => self.collect().await,
            Op::Process => self.process().await,
            Op::FailNext { user } => self.switch(user % self.users.len(), true).await,
            Op::Recover { user } => self.switch(user % self.users.len(), false).await,
            Op::Payout { day } => self.payout(day).await,
            Op::PayManual => self.pay_manual().await,
            Op::Close { user } => self.close(user % self.users.len()).await,
            Op::Multiplier { user, multiplier } => {
                let u = &self.users[user % self.users.len()];
                let body = json!({"roundup_multiplier": multiplier});
                let (status, answer) =
                    self.app.call(Method::PATCH, "/v1/user_settings", Some(&u.token), Some(body)).await;
                assert_eq!(status, StatusCode::OK, "{answer}");
            }
        }
        self.app.wait_jobs_idle().await;
        self.check(&format!("{op:?}")).await;
    }

    async fn contribute(&mut self, user: usize, cents: i64) {
        let u = &mut self.users[user];
        let amount = Cents::new(cents).to_string();
        let (status, body) = self.app.post("/v1/contributions", Some(&u.token), json!({"amount": amount})).await;
        if u.closed {
            assert_eq!(status, StatusCode::BAD_REQUEST, "a closed account takes no contribution: {body}");
            return;
        }
        assert_eq!((status, cents_of(&body["amount"])), (StatusCode::CREATED, cents), "{body}");
        u.contributed += cents;
        u.waiting += cents;
    }

    async fn collect(&mut self) {
        // What the model expects to be gathered: the purchases' round-ups as shown now.
        let mut gathering = BTreeMap::new();
        for i in 0..self.users.len() {
            if !self.users[i].closed && !self.users[i].gathered {
                gathering.insert(i, self.roundups_shown(i).await);
            }
        }
        let outcomes = services(&self.app).money.collect_all(false, |_, _| {}).await.unwrap();
        let seen: BTreeSet<usize> = outcomes.iter().map(|(id, _)| self.user_index(*id)).collect();
        let open: BTreeSet<usize> = (0..self.users.len()).filter(|i| !self.users[*i].closed).collect();
        assert_eq!(seen, open, "the collection run looks at every open account and no other: {outcomes:?}");
        for (id, outcome) in outcomes {
            let i = self.user_index(id);
            let u = &mut self.users[i];
            if let Some(roundups) = gathering.get(&i) {
                u.gathered = true;
                u.roundups += roundups;
                u.waiting += roundups;
            }
            if u.waiting >= COLLECTION_MINIMUM {
                match outcome {
                    Collected::Sent { amount, .. } => assert_eq!(amount.get(), u.waiting, "user {i} collected"),
                    other => panic!("user {i}: {} waiting, expected a collection, got {other:?}", u.waiting),
                }
                if u.on_bad {
                    u.in_collection_bad += u.waiting;
                } else {
                    u.in_collection_good += u.waiting;
                }
                u.waiting = 0;
            } else {
                assert_eq!(
                    outcome,
                    Collected::BelowMinimum { waiting: Cents::new(u.waiting) },
                    "user {i} has too little waiting"
                );
            }
        }
    }

    async fn process(&mut self) {
        let db = self.app.db().clone();
        // Everything recorded is sent first (the worker does that), then Dwolla processes it.
        self.app.wait_jobs_idle().await;
        let in_flight = donkies_store::payments::transfers_in_flight(&db).await.unwrap();
        assert!(in_flight.iter().all(|t| t.dwolla_id.is_some()), "transfers not sent: {in_flight:?}");
        let ids: BTreeSet<i64> = in_flight.iter().map(|t| t.id).collect();
        self.app.dwolla.handle().simulate();
        self.app
            .eventually("the transfers end", async || {
                let still = donkies_store::payments::transfers_in_flight(&db).await.unwrap();
                let waiting: Vec<_> = still.into_iter().filter(|t| ids.contains(&t.id)).collect();
                if waiting.is_empty() { Ok(()) } else { Err(waiting) }
            })
            .await;
        for u in &mut self.users {
            // A failed collection gives its round-ups back to waiting.
            u.waiting += u.in_collection_bad;
            u.in_collection_bad = 0;
            let arrived = u.in_collection_good;
            u.held += arrived;
            u.to_donkies += arrived;
            u.in_collection_good = 0;
            // Refunds go to the good bank (see `close`): they arrive.
            u.held -= u.refund_pending;
            u.refunded += u.refund_pending;
            u.refund_pending = 0;
            // A closed account pays out what arrives after it closed.
            if u.closed && arrived > 0 {
                u.final_payout();
            }
        }
    }

    async fn switch(&mut self, user: usize, bad: bool) {
        let u = &mut self.users[user];
        if u.closed {
            return;
        }
        let account = if bad { u.bad_account } else { u.good_account };
        let path = format!("/v1/accounts/set_funding_source/{account}");
        let (status, body) = self.app.post(&path, Some(&u.token), json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        u.on_bad = bad;
    }

    async fn payout(&mut self, day: u32) {
        let day = NaiveDate::from_ymd_opt(2030, 1, day).unwrap();
        let outcomes = services(&self.app).money.payout_all(day, false, |_, _| {}).await.unwrap();
        let seen: BTreeSet<usize> = outcomes.iter().map(|(id, _)| self.user_index(*id)).collect();
        let holding: BTreeSet<usize> = (0..self.users.len()).filter(|i| self.users[*i].available() > 0).collect();
        assert_eq!(seen, holding, "the payout run looks at every user with money available: {outcomes:?}");
        for (id, outcome) in outcomes {
            let i = self.user_index(id);
            let u = &mut self.users[i];
            let available = u.available();
            if !u.closed && available < u.minimum {
                assert_eq!(outcome, PaidOut::BelowMinimum { held: Cents::new(available) }, "user {i}");
                continue;
            }
            if !u.closed && !u.has_shares {
                assert!(matches!(outcome, PaidOut::Nothing(_)), "user {i} has no debt to pay: {outcome:?}");
                continue;
            }
            if !u.closed && u.paid_days.contains(&day) {
                assert_eq!(outcome, PaidOut::AlreadyPaid, "user {i}, {day}");
                continue;
            }
            let PaidOut::Sent { amount, parts, .. } = &outcome else {
                panic!("user {i}: {available} available, expected a payout, got {outcome:?}");
            };
            assert_eq!(amount.get(), available, "user {i} pays out all that is available");
            assert_eq!(parts.iter().map(|p| p.1.get()).sum::<i64>(), available, "the parts add up: {parts:?}");
            let method = if u.has_shares { PartMethod::Manual } else { PartMethod::Refund };
            assert!(parts.iter().all(|p| p.2 == method && p.1.get() > 0), "user {i}: {parts:?}");
            if !u.closed {
                u.paid_days.insert(day);
            }
            u.final_payout();
        }
    }

    async fn pay_manual(&mut self) {
        let s = &services(&self.app).money;
        let parts = s.manual_parts_waiting().await.unwrap();
        let mut by_user: BTreeMap<usize, i64> = BTreeMap::new();
        for part in &parts {
            *by_user.entry(self.user_index(part.user_id)).or_default() += part.amount.get();
        }
        for (i, u) in self.users.iter().enumerate() {
            let waiting = by_user.get(&i).copied().unwrap_or_default();
            assert_eq!(waiting, u.manual_pending, "user {i}: manual parts waiting {parts:?}");
        }
        for part in parts {
            let paid = s.mark_part_paid(part.id, &format!("bank ref {}", part.id)).await.unwrap();
            assert_eq!(paid.status, "processed");
            // Paying it twice is refused.
            assert!(s.mark_part_paid(part.id, "again").await.is_err());
        }
        for u in &mut self.users {
            u.held -= u.manual_pending;
            u.paid += u.manual_pending;
            u.manual_pending = 0;
        }
    }

    /// Close the account. A refund goes to the round-up source; the model sends it to the good
    /// bank (whether a failed refund's money is in a final payout that a collection arriving
    /// at the same time starts depends on the order of Dwolla's webhooks).
    async fn close(&mut self, user: usize) {
        if self.users[user].closed {
            return;
        }
        self.switch(user, false).await;
        let u = &mut self.users[user];
        let (status, body) = self.app.post("/v1/user_close_account", Some(&u.token), json!({})).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        u.closed = true;
        u.final_payout();
    }

    /// The ledger, its own check, the records and the dashboard agree with the model.
    async fn check(&self, after: &str) {
        let s = &services(&self.app).money;
        let log = self.log.join(", ");
        let report = s.ledger_report(true).await.unwrap();
        assert!(report.problems.is_empty(), "after {after} ({log}): the ledger check found {:#?}", report.problems);
        let balances = donkies_store::ledger::balances(self.app.db()).await.unwrap();
        let posted = donkies_store::ledger::posted_by_user_and_kind(self.app.db()).await.unwrap();
        for (i, u) in self.users.iter().enumerate() {
            let balance = |account: LedgerAccount| balances.get(&account).copied().unwrap_or_default();
            let id = u.id;
            let pending = balance(LedgerAccount::RoundUpsPending { user_id: id });
            let collecting = balance(LedgerAccount::InCollection { user_id: id });
            let held = balance(LedgerAccount::Held { user_id: id });
            let refunded = balance(LedgerAccount::Refunded { user_id: id });
            let paid: i64 = balances
                .iter()
                .filter(|(a, _)| matches!(a, LedgerAccount::PaidToDebt { user_id, .. } if *user_id == id))
                .map(|(_, b)| b.posted.get())
                .sum();
            let kind_sum = |kind: EntryKind| -> i64 {
                posted.iter().filter(|(user, k, _)| *user == id && *k == kind).map(|(_, _, c)| c.get()).sum()
            };
            let (roundups, contributions) = (kind_sum(EntryKind::RoundUp), kind_sum(EntryKind::Contribution));
            let ctx = format!("user {i} ({}) after {after}; ops: {log}", u.email);
            // Money in: what the model saw come in, no more, no less.
            assert_eq!((roundups, contributions), (u.roundups, u.contributed), "money in, {ctx}");
            // Every cent in is somewhere.
            let somewhere =
                pending.posted.get() + collecting.posted.get() + held.posted.get() + paid + refunded.posted.get();
            assert_eq!(roundups + contributions, somewhere, "no cent created or lost, {ctx}");
            // And where the model says.
            let actual = [
                ("waiting", pending.posted.get()),
                ("in collection", collecting.posted.get()),
                ("held", held.posted.get()),
                ("reserved for payouts", held.pending_debits.get()),
                ("paid to debts", paid),
                ("refunded", refunded.posted.get()),
            ];
            let expected = [
                ("waiting", u.waiting),
                ("in collection", u.in_collection_good + u.in_collection_bad),
                ("held", u.held),
                ("reserved for payouts", u.reserved()),
                ("paid to debts", u.paid),
                ("refunded", u.refunded),
            ];
            assert_eq!(actual, expected, "{ctx}");
            // The dashboard.
            let (status, stat) = self.app.get("/v1/stat", Some(&u.token)).await;
            assert_eq!(status, StatusCode::OK, "{stat}");
            let shown = [
                ("amount_to_donkies", cents_of(&stat["amount_to_donkies"])),
                ("amount_to_user", cents_of(&stat["amount_to_user"])),
                ("amount_available", cents_of(&stat["amount_available"])),
            ];
            let model = [
                ("amount_to_donkies", u.to_donkies),
                ("amount_to_user", u.paid + u.refunded),
                // Collected and not yet given to a payout: what payouts reserved is not available.
                ("amount_available", u.available()),
            ];
            assert_eq!(shown, model, "/v1/stat {stat}, {ctx}");
            // A final payout started by a collection arriving after the close may be split in
            // two by the order of Dwolla's webhooks; before closing the count is exact.
            if !u.closed {
                assert_eq!(stat["payments"].as_i64(), Some(u.payouts), "payouts, {ctx}");
            }
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 100..=4000i64).prop_map(|(user, cents)| Op::Contribute { user, cents }),
        4 => Just(Op::Collect),
        4 => Just(Op::Process),
        2 => (0..2usize).prop_map(|user| Op::FailNext { user }),
        2 => (0..2usize).prop_map(|user| Op::Recover { user }),
        3 => (1..=3u32).prop_map(|day| Op::Payout { day }),
        2 => Just(Op::PayManual),
        1 => (0..2usize).prop_map(|user| Op::Close { user }),
        1 => (0..2usize, prop::sample::select(vec![1i64, 2, 3])).prop_map(|(user, multiplier)| Op::Multiplier { user, multiplier }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        failure_persistence: None,
        max_shrink_iters: 24,
        ..ProptestConfig::default()
    })]

    /// Any sequence of the money loop's operations keeps every cent where the model says.
    #[test]
    fn no_cent_is_created_or_lost(ops in prop::collection::vec(op(), 4..=12)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let mut harness = Harness::new(spawn().await, 2).await;
            for op in ops {
                harness.apply(op).await;
            }
            // In the end Dwolla processes what is left and the operator pays what waits.
            harness.apply(Op::Process).await;
            harness.apply(Op::PayManual).await;
            if let Some(server) = harness.app.server.take() {
                server.shutdown().await;
            }
        });
    }
}

/// One fixed sequence, readable when it fails: contribute, collect, fail, recover, collect,
/// process, payout, close.
async fn a_fixed_sequence_accounts_for_every_cent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    keep_the_clock_away(&app).await;
    let mut h = Harness::new(app, 1).await;
    let u = 0;
    h.apply(Op::Contribute { user: u, cents: 1234 }).await;
    h.apply(Op::Collect).await;
    assert!(h.users[u].in_collection_good >= 1234, "the purchases and the contribution are collected");
    h.apply(Op::Process).await;
    let first = h.users[u].held;
    assert!(first >= 1234, "{first}");
    // A collection from a bank that returns R01 fails and gives everything back to waiting.
    h.apply(Op::FailNext { user: u }).await;
    h.apply(Op::Contribute { user: u, cents: 700 }).await;
    h.apply(Op::Collect).await;
    assert_eq!(h.users[u].in_collection_bad, 700);
    h.apply(Op::Process).await;
    assert_eq!((h.users[u].waiting, h.users[u].held), (700, first));
    // Back on the good bank, the same 7.00 is collected once.
    h.apply(Op::Recover { user: u }).await;
    h.apply(Op::Collect).await;
    h.apply(Op::Process).await;
    assert_eq!((h.users[u].waiting, h.users[u].held), (0, first + 700));
    // The payout day pays everything held, once.
    h.apply(Op::Payout { day: 1 }).await;
    assert_eq!(h.users[u].manual_pending, first + 700);
    h.apply(Op::Payout { day: 1 }).await;
    h.apply(Op::PayManual).await;
    assert_eq!((h.users[u].held, h.users[u].paid), (0, first + 700));
    // Closing with money in flight: it is paid out when it arrives.
    h.apply(Op::Contribute { user: u, cents: 600 }).await;
    h.apply(Op::Collect).await;
    h.apply(Op::Close { user: u }).await;
    h.apply(Op::Contribute { user: u, cents: 100 }).await;
    h.apply(Op::Process).await;
    assert_eq!(h.users[u].manual_pending, 600);
    h.apply(Op::PayManual).await;
    assert_eq!((h.users[u].held, h.users[u].paid), (0, first + 1300));
    if let Some(server) = h.app.server.take() {
        server.shutdown().await;
    }
}
