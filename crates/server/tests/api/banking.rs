//! Bank linking seen from outside: the institution catalog, members and their MFA challenges,
//! accounts, transactions and round-ups, shares, re-syncs, aggregator outages, and the promise
//! that typed bank credentials are never stored or logged.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use donkies_sandbox::Faults;
use donkies_sandbox::atrium::{MXBANK_LOGIN_GUID, MXBANK_PASSWORD_GUID};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::both_databases;
use crate::helpers::{Backend, Driver, Options, PASSWORD, TestApp};

both_databases!(
    institutions_can_be_searched_suggested_and_their_credentials_read,
    a_good_password_links_four_accounts_with_correct_round_ups,
    each_special_password_ends_in_its_documented_status,
    a_wrong_challenge_answer_denies_and_a_new_attempt_can_succeed,
    options_and_image_challenges_complete_with_the_right_answer,
    resume_rejects_missing_unknown_and_unexpected_answers,
    wait_returns_on_a_status_change_or_after_the_given_seconds,
    a_resync_keeps_user_choices_and_never_duplicates_transactions,
    an_aggregator_outage_is_503_on_create_and_survived_while_polling,
    another_user_can_neither_see_nor_touch_a_member_or_its_accounts,
    typed_bank_credentials_never_reach_the_database,
    deleting_a_member_hides_its_accounts_and_transactions,
    member_creation_validates_institution_and_credentials,
    debt_shares_must_cover_exactly_the_active_debt_accounts,
    every_id_is_an_integer_the_2017_web_client_can_parse_and_compare,
    total_debt_is_the_sum_of_the_active_debt_balances,
    a_member_whose_polling_is_parked_shows_other_error,
    a_member_links_while_the_aggregator_rate_limits_half_the_calls,
    the_transaction_list_is_tagged_answers_304_and_gzip_and_follows_syncs_and_settings,
    transaction_pages_put_together_are_the_full_list,
    a_kept_list_follows_another_process_within_the_cache_setting,
);

const MXBANK: &str = "mxbank";
const LOGIN: &str = "test_atrium";
const POLL: Duration = Duration::from_millis(50);
const LINK_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The HTTP side of a running server (in process or a child process).
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    /// Runs the server's jobs while a helper waits; `None` for a server in another process.
    driver: Option<Driver>,
}

impl Api {
    fn of(app: &TestApp) -> Api {
        Api { client: app.client.clone(), base: app.base.clone(), driver: Some(app.driver()) }
    }

    /// Drive the server (or, in another process, look again every [`POLL`]) until `check`
    /// finds what the test waits for, for at most `timeout`.
    async fn eventually<T, E: std::fmt::Debug>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl AsyncFnMut() -> Result<T, E>,
    ) -> T {
        if let Some(driver) = &self.driver {
            let wait = driver.eventually(what, check);
            return tokio::time::timeout(timeout, wait)
                .await
                .unwrap_or_else(|_| panic!("{what} never happened within {timeout:?}"));
        }
        let deadline = Instant::now() + timeout;
        loop {
            match check().await {
                Ok(found) => return found,
                Err(seen) => {
                    assert!(Instant::now() < deadline, "{what} never happened within {timeout:?}; last seen: {seen:?}")
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.header("Authorization", format!("Token {token}"));
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// A 200 JSON array from `path`.
    async fn list(&self, path: &str, token: &str) -> Vec<Value> {
        let (status, body) = self.get(path, token).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body.as_array().unwrap_or_else(|| panic!("GET {path} is not a list: {body}")).clone()
    }

    async fn accounts(&self, token: &str) -> Vec<Value> {
        self.list("/v1/accounts", token).await
    }

    async fn transactions(&self, token: &str) -> Vec<Value> {
        self.list("/v1/transactions", token).await
    }

    async fn member(&self, token: &str, identifier: &str) -> Value {
        let (status, member) = self.get(&format!("/v1/members/{identifier}"), token).await;
        assert_eq!(status, StatusCode::OK, "{member}");
        member
    }
}

/// An `id` as the text the API takes back in paths and keys. Ids must be positive JSON
/// integers below 2^53: the 2017 web client `parseInt()`s them and compares with `===`.
fn id_of(value: &Value) -> String {
    integer_id(&value["id"]).unwrap_or_else(|| panic!("no integer id in {value}")).to_string()
}

fn integer_id(value: &Value) -> Option<i64> {
    value.as_i64().filter(|id| *id > 0 && *id < (1 << 53))
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit())
}

fn not_found() -> Value {
    json!({"detail": "Not found."})
}

/// Money text with exactly two decimals, in cents.
fn cents(text: &str) -> i64 {
    let (whole, frac) = text.split_once('.').unwrap_or_else(|| panic!("{text:?} has no decimal point"));
    assert_eq!(frac.len(), 2, "{text:?} must have two decimals");
    let negative = whole.starts_with('-');
    let whole: i64 = whole.trim_start_matches('-').parse().unwrap();
    let frac: i64 = frac.parse().unwrap();
    let value = whole * 100 + frac;
    if negative { -value } else { value }
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn mxbank_credentials(login: &str, password: &str) -> Value {
    json!([
        {"field_name": "LOGIN", "value": login},
        {"field_name": "PASSWORD", "value": password},
    ])
}

/// Wait (up to 30 s) until the institution catalog synced at start-up is non-empty.
async fn wait_for_institutions(api: &Api, token: &str) -> Vec<Value> {
    api.eventually("the institution catalog fills", Duration::from_secs(30), async || {
        match api.get("/v1/institutions", token).await {
            (StatusCode::OK, Value::Array(list)) if !list.is_empty() => Ok(list),
            (status, body) => Err(format!("{status} {body}")),
        }
    })
    .await
}

/// A signed-up user whose institution catalog is ready.
async fn banking_user(app: &TestApp, email: &str) -> String {
    let token = app.signed_up_user(email).await;
    wait_for_institutions(&Api::of(app), &token).await;
    token
}

async fn create_member(api: &Api, token: &str, login: &str, password: &str) -> (StatusCode, Value) {
    api.post(
        "/v1/members",
        token,
        json!({"institution_code": MXBANK, "credentials": mxbank_credentials(login, password)}),
    )
    .await
}

/// Link mxbank as `test_atrium` with `password`; returns the member's identifier.
async fn link(api: &Api, token: &str, password: &str) -> String {
    let (status, member) = create_member(api, token, LOGIN, password).await;
    assert_eq!(status, StatusCode::CREATED, "{member}");
    let identifier = member["identifier"].as_str().unwrap().to_owned();
    assert!(is_hex32(&identifier), "{member}");
    identifier
}

/// Wait until the member satisfies `pred`; panics with the last state after `timeout`.
async fn wait_member(
    api: &Api,
    token: &str,
    identifier: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
    timeout: Duration,
) -> Value {
    api.eventually(&format!("the member becomes {what}"), timeout, async || {
        let member = api.member(token, identifier).await;
        if pred(&member) { Ok(member) } else { Err(member) }
    })
    .await
}

async fn wait_member_status(api: &Api, token: &str, identifier: &str, member_status: &str) -> Value {
    wait_member(api, token, identifier, member_status, |m| m["member_status"] == member_status, LINK_TIMEOUT).await
}

/// Link with a good password and wait for SUCCESS; returns the identifier.
async fn link_completed(api: &Api, token: &str) -> String {
    let identifier = link(api, token, "password").await;
    let member = wait_member_status(api, token, &identifier, "SUCCESS").await;
    assert_success(&member);
    identifier
}

/// Wait until transactions exist and the sync that brought them is over (in another process:
/// until their number stopped changing).
async fn wait_transactions(api: &Api, token: &str) -> Vec<Value> {
    let timeout = Duration::from_secs(30);
    if let Some(driver) = &api.driver {
        return api
            .eventually("transactions arrive and their sync ends", timeout, async || {
                let list = api.transactions(token).await;
                if !list.is_empty() && driver.pending_jobs().await.is_empty() { Ok(list) } else { Err(list.len()) }
            })
            .await;
    }
    let mut last: Option<usize> = None;
    api.eventually("transactions settle", timeout, async || {
        let list = api.transactions(token).await;
        if !list.is_empty() && last == Some(list.len()) {
            return Ok(list);
        }
        last = (!list.is_empty()).then_some(list.len());
        tokio::time::sleep(Duration::from_millis(350)).await;
        Err(last)
    })
    .await
}

fn assert_status_info(member: &Value, name: &str, message: &str, is_completed: bool) {
    let info = &member["status_info"];
    assert_eq!(info["name"], name, "{member}");
    assert_eq!(info["message"], message, "{member}");
    assert_eq!(info["is_completed"], is_completed, "{member}");
    assert!(info.get("status").is_some(), "status_info lacks status: {member}");
}

fn assert_success(member: &Value) {
    assert_eq!(member["status"], "COMPLETED", "{member}");
    assert_eq!(member["member_status"], "SUCCESS", "{member}");
    assert_status_info(member, "SUCCESS", "Bank account has been created!", true);
    assert_eq!(member["challenges"], json!([]), "{member}");
}

fn assert_wrong_credentials(member: &Value) {
    assert_eq!(member["status"], "DENIED", "{member}");
    assert_eq!(member["member_status"], "WRONG_CREDENTIALS", "{member}");
    assert_status_info(member, "ERROR", "Incorrect credentials.", true);
    assert_eq!(member["challenges"], json!([]), "{member}");
}

fn assert_challenged(member: &Value) {
    assert_eq!(member["status"], "CHALLENGED", "{member}");
    assert_eq!(member["member_status"], "CHALLENGED", "{member}");
    assert_status_info(member, "CHALLENGED", "Please provide additional info.", true);
    let challenges = member["challenges"].as_array().unwrap();
    assert_eq!(challenges.len(), 1, "{member}");
    for key in ["guid", "field_name", "label", "type", "options"] {
        assert!(challenges[0].get(key).is_some(), "challenge lacks {key}: {member}");
    }
    assert!(challenges[0]["guid"].as_str().unwrap().starts_with("CRD-"), "{member}");
    assert!(!challenges[0]["label"].as_str().unwrap().is_empty(), "{member}");
}

fn assert_member_shape(member: &Value, identifier: &str) {
    for key in [
        "id",
        "institution",
        "identifier",
        "name",
        "status",
        "aggregated_at",
        "successfully_aggregated_at",
        "metadata",
        "member_status",
        "status_info",
        "challenges",
    ] {
        assert!(member.get(key).is_some(), "Member lacks {key}: {member}");
    }
    assert_eq!(member["identifier"], identifier);
    let institution = &member["institution"];
    assert_eq!(institution["code"], MXBANK, "{member}");
    assert_eq!(institution["name"], "MX Bank", "{member}");
    for key in ["id", "url"] {
        assert!(institution.get(key).is_some(), "Institution lacks {key}: {member}");
    }
}

fn account_by_type<'a>(accounts: &'a [Value], kind: &str) -> &'a Value {
    accounts.iter().find(|a| a["type"] == kind).unwrap_or_else(|| panic!("no {kind} account in {accounts:?}"))
}

fn debt_accounts(accounts: &[Value]) -> Vec<&Value> {
    accounts.iter().filter(|a| a["type_ds"] == "debt").collect()
}

/// Round-up rule of API.md: DEBIT on a debit-type account → cents to the next dollar (or a
/// dollar for whole amounts when `even`); everything else 0.
fn expected_roundup(transaction: &Value, account: &Value, even: bool) -> String {
    let amount = cents(transaction["amount"].as_str().unwrap());
    let on_debit_account = matches!(account["type"].as_str(), Some("CHECKING" | "SAVINGS"));
    if transaction["type"] != "DEBIT" || !on_debit_account {
        return "0.00".into();
    }
    let up = (100 - amount % 100) % 100;
    if up == 0 && even { "1.00".into() } else { money(up) }
}

/// Each transaction's round-up follows the rule; returns how many whole-dollar debits on debit
/// accounts there were.
fn check_roundups(transactions: &[Value], accounts: &[Value], even: bool) -> usize {
    let by_id: HashMap<String, &Value> = accounts.iter().map(|a| (id_of(a), a)).collect();
    let mut whole_dollar_debits = 0;
    for t in transactions {
        let account_id = integer_id(&t["account_id"])
            .unwrap_or_else(|| panic!("account_id is not an integer id in {t}"))
            .to_string();
        let account = by_id.get(&account_id).unwrap_or_else(|| panic!("transaction of an unknown account: {t}"));
        assert_eq!(t["account"], account["name"], "{t}");
        let amount = cents(t["amount"].as_str().unwrap());
        assert!(amount > 0, "{t}");
        assert!(t["type"] == "DEBIT" || t["type"] == "CREDIT", "{t}");
        let roundup = t["roundup"].as_str().unwrap();
        cents(roundup);
        assert_eq!(
            roundup,
            expected_roundup(t, account, even),
            "round-up of {} {} on a {} account (even={even}): {t}",
            t["type"],
            t["amount"],
            account["type"]
        );
        if t["type"] == "DEBIT" && account["type_ds"] == "debit" && amount % 100 == 0 {
            whole_dollar_debits += 1;
        }
    }
    whole_dollar_debits
}

/// Put a `resync_members` job in the queue and wait until it is gone.
async fn resync(app: &TestApp) {
    let services = app.server.as_ref().unwrap().services();
    let mut work = services.begin().await.unwrap();
    work.enqueue(&donkies_server::jobs::banking::ResyncMembers {}, Duration::ZERO).await.unwrap();
    work.commit().await.unwrap();
    app.eventually("the re-sync ends", async || {
        let jobs = donkies_store::jobs::list(app.db(), false).await.unwrap();
        let left: Vec<_> = jobs.into_iter().filter(|j| j.kind == "resync_members").collect();
        if left.is_empty() { Ok(()) } else { Err(left) }
    })
    .await;
    // It queued one re-sync per member: those too.
    app.wait_jobs_idle().await;
}

fn sorted_uids(transactions: &[Value]) -> Vec<String> {
    let mut uids: Vec<String> = transactions.iter().map(|t| t["uid"].as_str().unwrap().to_owned()).collect();
    uids.sort();
    uids
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

async fn institutions_can_be_searched_suggested_and_their_credentials_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let token = app.signed_up_user("ada@example.com").await;
    let all = wait_for_institutions(&api, &token).await;
    assert!(all.len() >= 20, "{all:?}");
    for institution in &all {
        for key in ["id", "code", "name", "url"] {
            assert!(institution.get(key).is_some(), "Institution lacks {key}: {institution}");
        }
    }
    let mxbank = all.iter().find(|i| i["code"] == MXBANK).expect("mxbank is in the catalog");
    assert_eq!(mxbank["name"], "MX Bank");
    assert_eq!(mxbank["url"], "https://www.mx.com");
    let mx_id = id_of(mxbank);

    let (status, one) = api.get(&format!("/v1/institutions/{mx_id}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(&one, mxbank);
    let (status, body) = api.get("/v1/institutions/nonexistent-0000", &token).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found()));

    let found = api.list("/v1/institutions?search=mX%20bAnK", &token).await;
    assert!(found.iter().any(|i| i["code"] == MXBANK), "{found:?}");
    let found = api.list("/v1/institutions?search=BAN", &token).await;
    assert!(!found.is_empty());
    assert!(found.iter().all(|i| i["name"].as_str().unwrap().to_lowercase().contains("ban")), "{found:?}");
    assert!(found.len() < all.len() || all.iter().all(|i| i["name"].as_str().unwrap().to_lowercase().contains("ban")));
    let none = api.list("/v1/institutions?search=zzzz-no-such-bank", &token).await;
    assert!(none.is_empty(), "{none:?}");

    let suggested = api.list("/v1/institutions_suggest?value=ban", &token).await;
    assert!(!suggested.is_empty() && suggested.len() <= 10, "{suggested:?}");
    let names: HashMap<String, String> =
        all.iter().map(|i| (id_of(i), i["name"].as_str().unwrap().to_owned())).collect();
    for s in &suggested {
        let value = s["value"].as_str().unwrap();
        assert!(value.to_lowercase().contains("ban"), "{s}");
        assert_eq!(names.get(&id_of(s)).map(String::as_str), Some(value), "{s}");
    }
    assert_eq!(api.list("/v1/institutions_suggest", &token).await, Vec::<Value>::new());

    for path in [
        "/v1/credentials/mxbank".to_owned(),
        "/v1/credentials/code/mxbank".to_owned(),
        format!("/v1/credentials/id/{mx_id}"),
        "/v1/credentials/live/code/mxbank".to_owned(),
        format!("/v1/credentials/live/id/{mx_id}"),
    ] {
        let mut fields = api.list(&path, &token).await;
        assert_eq!(fields.len(), 2, "{path}: {fields:?}");
        fields.sort_by_key(|f| f["display_order"].as_i64());
        for f in &fields {
            for key in ["guid", "institution", "field_name", "label", "type", "display_order"] {
                assert!(f.get(key).is_some(), "{path}: credential lacks {key}: {f}");
            }
        }
        assert_eq!(fields[0]["guid"], MXBANK_LOGIN_GUID, "{path}");
        assert_eq!(fields[0]["field_name"], "LOGIN", "{path}");
        assert_eq!(fields[0]["type"], "LOGIN", "{path}");
        assert_eq!(fields[0]["label"], "Username", "{path}");
        assert_eq!(fields[1]["guid"], MXBANK_PASSWORD_GUID, "{path}");
        assert_eq!(fields[1]["field_name"], "PASSWORD", "{path}");
        assert_eq!(fields[1]["type"], "PASSWORD", "{path}");
        assert_eq!(fields[1]["label"], "Password", "{path}");
    }
    for path in [
        "/v1/credentials/nosuchbank",
        "/v1/credentials/code/nosuchbank",
        "/v1/credentials/id/nonexistent-0000",
        "/v1/credentials/live/code/nosuchbank",
        "/v1/credentials/live/id/nonexistent-0000",
    ] {
        let (status, body) = api.get(path, &token).await;
        assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found()), "{path}");
    }
    let (status, _) = api.call(Method::GET, "/v1/institutions", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn a_good_password_links_four_accounts_with_correct_round_ups(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;
    assert_eq!(api.list("/v1/members", &token).await, Vec::<Value>::new());

    let (status, created) = create_member(&api, &token, LOGIN, "password").await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let identifier = created["identifier"].as_str().unwrap().to_owned();
    assert!(is_hex32(&identifier), "{created}");
    assert_member_shape(&created, &identifier);

    let member =
        wait_member(&api, &token, &identifier, "completed", |m| m["status_info"]["is_completed"] == true, LINK_TIMEOUT)
            .await;
    assert_success(&member);
    assert_member_shape(&member, &identifier);
    assert!(member["aggregated_at"].is_string(), "{member}");
    assert!(member["successfully_aggregated_at"].is_string(), "{member}");
    // Accounts are there the moment the member shows SUCCESS.
    let accounts = api.accounts(&token).await;
    assert_eq!(accounts.len(), 4, "{accounts:?}");

    let members = api.list("/v1/members", &token).await;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["identifier"], identifier.as_str());

    let mut types: Vec<&str> = accounts.iter().map(|a| a["type"].as_str().unwrap()).collect();
    types.sort_unstable();
    assert_eq!(types, ["CHECKING", "CREDIT_CARD", "LOAN", "SAVINGS"]);
    for a in &accounts {
        for key in [
            "id",
            "uid",
            "member",
            "institution",
            "name",
            "type",
            "type_ds",
            "subtype",
            "balance",
            "available_balance",
            "available_credit",
            "credit_limit",
            "apr",
            "apy",
            "interest_rate",
            "minimum_balance",
            "minimum_payment",
            "original_balance",
            "payoff_balance",
            "last_payment",
            "last_payment_at",
            "payment_due_at",
            "day_payment_is_due",
            "matures_on",
            "started_on",
            "total_account_value",
            "created_at",
            "updated_at",
            "is_closed",
            "is_active",
            "transfer_share",
            "is_funding_source_for_transfer",
            "is_dwolla_created",
            "account_number",
        ] {
            assert!(a.get(key).is_some(), "Account lacks {key}: {a}");
        }
        let expected_ds = match a["type"].as_str().unwrap() {
            "CHECKING" | "SAVINGS" => "debit",
            _ => "debt",
        };
        assert_eq!(a["type_ds"], expected_ds, "{a}");
        assert_eq!(a["is_active"], true, "{a}");
        assert_eq!(a["is_closed"], false, "{a}");
        assert_eq!(a["account_number"], Value::Null, "{a}");
        assert!(is_hex32(a["uid"].as_str().unwrap()), "{a}");
        assert_eq!(a["member"]["identifier"], identifier.as_str(), "{a}");
        let (status, one) = api.get(&format!("/v1/accounts/{}", id_of(a)), &token).await;
        assert_eq!(status, StatusCode::OK, "{one}");
        assert_eq!(one["uid"], a["uid"]);
    }
    let mut debt_shares: Vec<i64> =
        debt_accounts(&accounts).iter().map(|a| a["transfer_share"].as_i64().unwrap()).collect();
    debt_shares.sort_unstable();
    assert_eq!(debt_shares, [0, 100], "{accounts:?}");

    let transactions = wait_transactions(&api, &token).await;
    assert!(transactions.len() > 50, "{}", transactions.len());
    for key in [
        "account",
        "account_id",
        "uid",
        "amount",
        "roundup",
        "category",
        "top_level_category",
        "description",
        "original_description",
        "memo",
        "type",
        "status",
        "date",
        "transacted_at",
        "posted_at",
        "created_at",
        "updated_at",
        "check_number",
        "merchant_category_code",
        "latitude",
        "longitude",
        "is_bill_pay",
        "is_direct_deposit",
        "is_expense",
        "is_fee",
        "is_income",
        "is_overdraft_fee",
        "is_payroll_advance",
    ] {
        assert!(transactions[0].get(key).is_some(), "Transaction lacks {key}: {}", transactions[0]);
    }
    let whole_dollar_debits = check_roundups(&transactions, &accounts, false);
    let by_id: HashMap<String, &Value> = accounts.iter().map(|a| (id_of(a), a)).collect();
    let account_of = |t: &Value| by_id[&id_of(&json!({"id": t["account_id"]}))];
    assert!(
        transactions
            .iter()
            .any(|t| t["type"] == "DEBIT" && account_of(t)["type_ds"] == "debit" && t["roundup"] != "0.00"),
        "some purchase has a round-up"
    );
    assert!(transactions.iter().any(|t| t["type"] == "CREDIT"));
    assert!(
        transactions.iter().any(|t| account_of(t)["type"] == "CREDIT_CARD" && t["type"] == "DEBIT"),
        "card purchases exist (and were checked to round up 0.00)"
    );
    let uids: HashSet<&str> = transactions.iter().map(|t| t["uid"].as_str().unwrap()).collect();
    assert_eq!(uids.len(), transactions.len(), "transaction uids are unique");

    // Newest first: by date, then transacted_at.
    for pair in transactions.windows(2) {
        let key =
            |t: &Value| (t["date"].as_str().unwrap().to_owned(), t["transacted_at"].as_str().unwrap_or("").to_owned());
        assert!(key(&pair[0]) >= key(&pair[1]), "not newest first: {} before {}", pair[0], pair[1]);
    }
    assert_eq!(transactions[0]["date"].as_str().unwrap().len(), 10);

    // ?account_id= filters to that account, in the same order.
    let mut filtered_total = 0;
    for a in &accounts {
        let id = id_of(a);
        let filtered = api.list(&format!("/v1/transactions?account_id={id}"), &token).await;
        let expected: Vec<&Value> =
            transactions.iter().filter(|t| id_of(&json!({"id": t["account_id"]})) == id).collect();
        assert_eq!(filtered.iter().collect::<Vec<_>>(), expected, "?account_id={id} ({})", a["type"]);
        filtered_total += filtered.len();
    }
    assert_eq!(filtered_total, transactions.len());

    // Even round-up: whole-dollar debits on debit accounts round up a full dollar.
    let (status, settings) =
        app.call(Method::PATCH, "/v1/user_settings", Some(&token), Some(json!({"is_even_roundup": true}))).await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    let even = api.transactions(&token).await;
    assert_eq!(sorted_uids(&even), sorted_uids(&transactions));
    let whole_after = check_roundups(&even, &accounts, true);
    assert_eq!(whole_after, whole_dollar_debits);
    // mxbank moves whole dollars from checking (savings transfers, loan payments).
    assert!(whole_dollar_debits > 0, "the data has whole-dollar debits");
    assert!(even.iter().any(|t| t["roundup"] == "1.00"));
}

async fn each_special_password_ends_in_its_documented_status(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let cases: &[(&str, &str, &str)] = &[
        (LOGIN, "UNAUTHORIZED", "WRONG_CREDENTIALS"),
        (LOGIN, "INVALID", "WRONG_CREDENTIALS"),
        (LOGIN, "LOCKED", "WRONG_CREDENTIALS"),
        (LOGIN, "DISABLED", "WRONG_CREDENTIALS"),
        ("not_a_test_user", "password", "WRONG_CREDENTIALS"),
        (LOGIN, "BAD_REQUEST", "OTHER_ERROR"),
    ];
    let mut started = Vec::new();
    for (n, (login, password, outcome)) in cases.iter().enumerate() {
        let token = banking_user(&app, &format!("user{n}@example.com")).await;
        let (status, member) = create_member(&api, &token, login, password).await;
        assert_eq!(status, StatusCode::CREATED, "{password}: {member}");
        let identifier = member["identifier"].as_str().unwrap().to_owned();
        started.push((token, identifier, *login, *password, *outcome));
    }
    for (token, identifier, login, password, outcome) in &started {
        let member = wait_member(
            &api,
            token,
            identifier,
            outcome,
            |m| m["status_info"]["is_completed"] == true,
            Duration::from_secs(25),
        )
        .await;
        assert_eq!(member["member_status"], *outcome, "{login}/{password}: {member}");
        if *outcome == "WRONG_CREDENTIALS" {
            assert_wrong_credentials(&member);
        } else {
            assert_status_info(&member, "ERROR", "Other error.", true);
            assert_eq!(member["challenges"], json!([]), "{member}");
        }
        assert_eq!(api.accounts(token).await, Vec::<Value>::new(), "{login}/{password} has no accounts");
    }
}

async fn a_wrong_challenge_answer_denies_and_a_new_attempt_can_succeed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;
    let identifier = link(&api, &token, "challenge").await;
    let member = wait_member_status(&api, &token, &identifier, "CHALLENGED").await;
    assert_challenged(&member);
    let challenge = member["challenges"][0].clone();
    assert_eq!(challenge["type"], "TEXT", "{member}");
    assert!(api.accounts(&token).await.is_empty());

    let (status, body) = api
        .post(
            &format!("/v1/members/resume/{identifier}"),
            &token,
            json!({"challenges": [{"label": challenge["label"], "value": "Springfield"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let member = wait_member_status(&api, &token, &identifier, "WRONG_CREDENTIALS").await;
    assert_wrong_credentials(&member);

    // A new attempt: same member, a fresh challenge, answered right this time.
    let (status, again) = create_member(&api, &token, LOGIN, "challenge").await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["identifier"], identifier.as_str(), "the same member");
    let old_guid = challenge["guid"].clone();
    let member = wait_member(
        &api,
        &token,
        &identifier,
        "CHALLENGED with a new challenge",
        |m| m["member_status"] == "CHALLENGED" && m["challenges"][0]["guid"] != old_guid,
        LINK_TIMEOUT,
    )
    .await;
    assert_challenged(&member);
    let fresh = &member["challenges"][0];
    assert_eq!(fresh["type"], "TEXT");
    let (status, body) = api
        .post(
            &format!("/v1/members/resume/{identifier}"),
            &token,
            json!({"challenges": [{"guid": fresh["guid"], "value": "correct"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let member = wait_member_status(&api, &token, &identifier, "SUCCESS").await;
    assert_success(&member);
    assert_eq!(api.accounts(&token).await.len(), 4);
    assert_eq!(api.list("/v1/members", &token).await.len(), 1);
    assert!(!wait_transactions(&api, &token).await.is_empty());
}

async fn options_and_image_challenges_complete_with_the_right_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);

    let token = banking_user(&app, "ada@example.com").await;
    let identifier = link(&api, &token, "options").await;
    let member = wait_member_status(&api, &token, &identifier, "CHALLENGED").await;
    assert_challenged(&member);
    let challenge = &member["challenges"][0];
    assert_eq!(challenge["type"], "OPTIONS", "{member}");
    let options = challenge["options"].as_array().unwrap();
    assert!(!options.is_empty(), "{member}");
    for option in options {
        assert!(option["label"].is_string() && option["value"].is_string(), "{option}");
    }
    assert!(options.iter().any(|o| o["value"] == "correct"), "{member}");
    let (status, body) = api
        .post(
            &format!("/v1/members/resume/{identifier}"),
            &token,
            json!({"challenges": [{"label": challenge["label"], "value": "correct"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_success(&wait_member_status(&api, &token, &identifier, "SUCCESS").await);
    assert_eq!(api.accounts(&token).await.len(), 4);

    // The image challenge, linked with credentials given by guid.
    let token = banking_user(&app, "bob@example.com").await;
    let (status, created) = api
        .post(
            "/v1/members",
            &token,
            json!({"institution_code": MXBANK, "credentials": [
                {"guid": MXBANK_LOGIN_GUID, "value": LOGIN},
                {"guid": MXBANK_PASSWORD_GUID, "value": "image"},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let identifier = created["identifier"].as_str().unwrap().to_owned();
    let member = wait_member_status(&api, &token, &identifier, "CHALLENGED").await;
    assert_challenged(&member);
    let challenge = &member["challenges"][0];
    assert_eq!(challenge["type"], "IMAGE_DATA", "{member}");
    let (status, body) = api
        .post(
            &format!("/v1/members/resume/{identifier}"),
            &token,
            json!({"challenges": [{"guid": challenge["guid"], "value": "correct"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_success(&wait_member_status(&api, &token, &identifier, "SUCCESS").await);
    assert_eq!(api.accounts(&token).await.len(), 4);
}

async fn resume_rejects_missing_unknown_and_unexpected_answers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;
    let identifier = link(&api, &token, "challenge").await;
    let member = wait_member_status(&api, &token, &identifier, "CHALLENGED").await;
    let label = member["challenges"][0]["label"].clone();
    let path = format!("/v1/members/resume/{identifier}");
    let generation = || async {
        let user_id = api.get("/v1/user", &token).await.1["id"].as_i64().unwrap();
        let member = donkies_store::members::find_by_identifier(app.db(), user_id, &identifier).await.unwrap();
        member.unwrap().poll_generation
    };
    let before = generation().await;

    let bad_bodies = [
        json!({"challenges": []}),
        json!({}),
        json!({"challenges": [{"label": "What is your favourite colour?", "value": "correct"}]}),
        json!({"challenges": [{"guid": "CRD-00000000-0000-0000-0000-000000000000", "value": "correct"}]}),
        json!({"challenges": [
            {"label": label, "value": "correct"},
            {"label": "What is your favourite colour?", "value": "blue"},
        ]}),
    ];
    for body in bad_bodies {
        let (status, answer) = api.post(&path, &token, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert!(answer.is_object(), "{body} → {answer}");
    }
    // None of that touched the member: a resume would have started a new polling round.
    assert_eq!(generation().await, before, "no polling round was started");
    let member = api.member(&token, &identifier).await;
    assert_challenged(&member);

    let (status, body) = api
        .post(
            "/v1/members/resume/0123456789abcdef0123456789abcdef",
            &token,
            json!({"challenges": [{"label": label, "value": "correct"}]}),
        )
        .await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found()));

    // Resuming a member that is not CHALLENGED.
    let token = banking_user(&app, "bob@example.com").await;
    let identifier = link_completed(&api, &token).await;
    let (status, body) = api
        .post(
            &format!("/v1/members/resume/{identifier}"),
            &token,
            json!({"challenges": [{"label": label, "value": "correct"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_success(&api.member(&token, &identifier).await);
}

async fn wait_returns_on_a_status_change_or_after_the_given_seconds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;
    // Slow statuses (each lasts 600 ms) so the member is still in progress when we ask.
    app.atrium.set_step(Duration::from_millis(600));
    let (status, created) = create_member(&api, &token, LOGIN, "password").await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let identifier = created["identifier"].as_str().unwrap().to_owned();
    let before = api.member(&token, &identifier).await;
    assert_eq!(before["status_info"]["is_completed"], false, "{before}");

    let started = Instant::now();
    let (status, after) = api.get(&format!("/v1/members/{identifier}?wait=5"), &token).await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_ne!(after["status"], before["status"], "the status changed: {after}");
    assert!(elapsed < Duration::from_millis(4000), "took {elapsed:?}");

    app.atrium.set_step(Duration::from_millis(40));
    let member = wait_member_status(&api, &token, &identifier, "SUCCESS").await;
    assert_success(&member);

    let started = Instant::now();
    let (status, same) = api.get(&format!("/v1/members/{identifier}?wait=1"), &token).await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same["status"], "COMPLETED");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(3500),
        "wait=1 on an unchanging member took {elapsed:?}"
    );
    let (status, body) = api.get("/v1/members/0123456789abcdef0123456789abcdef?wait=1", &token).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found()));
}

async fn a_resync_keeps_user_choices_and_never_duplicates_transactions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;
    let identifier = link_completed(&api, &token).await;
    let transactions = wait_transactions(&api, &token).await;
    let accounts = api.accounts(&token).await;

    let savings = id_of(account_by_type(&accounts, "SAVINGS"));
    let checking = id_of(account_by_type(&accounts, "CHECKING"));
    let card = id_of(account_by_type(&accounts, "CREDIT_CARD"));
    let loan = id_of(account_by_type(&accounts, "LOAN"));
    let (status, body) =
        api.put(&format!("/v1/accounts/set_active/{savings}"), &token, json!({"is_active": false})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = api
        .post(&format!("/v1/accounts/set_account_number/{checking}"), &token, json!({"account_number": "000123456789"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) =
        api.put("/v1/accounts/edit_share", &token, json!({format!("id{card}"): 60, format!("id{loan}"): 40})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let snapshot = |accounts: &[Value]| -> Vec<(String, Value, Value, Value)> {
        let mut rows: Vec<_> = accounts
            .iter()
            .map(|a| (id_of(a), a["is_active"].clone(), a["transfer_share"].clone(), a["account_number"].clone()))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    };
    let chosen = snapshot(&api.accounts(&token).await);

    resync(&app).await;
    let member = wait_member(
        &api,
        &token,
        &identifier,
        "completed after the resync",
        |m| m["status_info"]["is_completed"] == true,
        LINK_TIMEOUT,
    )
    .await;
    assert_success(&member);
    // Once any follow-up transaction import ran, look.
    app.wait_jobs_idle().await;
    let after = api.transactions(&token).await;
    let uids = sorted_uids(&after);
    let mut unique = uids.clone();
    unique.dedup();
    assert_eq!(uids, unique, "duplicated transactions after a resync");
    assert_eq!(after.len(), transactions.len(), "the resync changed the number of transactions");
    let accounts = api.accounts(&token).await;
    assert_eq!(accounts.len(), 4, "{accounts:?}");
    assert_eq!(snapshot(&accounts), chosen, "the resync kept the user's choices");
    let checking_now = api.get(&format!("/v1/accounts/{checking}"), &token).await.1;
    assert_eq!(checking_now["account_number"], "6789");
    assert_eq!(api.list("/v1/members", &token).await.len(), 1);
}

async fn an_aggregator_outage_is_503_on_create_and_survived_while_polling(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;

    app.atrium.set_faults(Faults::outage(503));
    let (status, body) = create_member(&api, &token, LOGIN, "password").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    assert_eq!(api.list("/v1/members", &token).await, Vec::<Value>::new());
    assert_eq!(api.accounts(&token).await, Vec::<Value>::new());

    app.atrium.set_faults(Faults::default());
    let identifier = link(&api, &token, "password").await;
    app.atrium.set_faults(Faults::outage(503));
    tokio::time::sleep(Duration::from_secs(1)).await;
    app.atrium.set_faults(Faults::default());
    let member = wait_member(
        &api,
        &token,
        &identifier,
        "completed after the outage",
        |m| m["status_info"]["is_completed"] == true,
        LINK_TIMEOUT,
    )
    .await;
    assert_success(&member);
    assert_eq!(api.accounts(&token).await.len(), 4);
    assert!(!wait_transactions(&api, &token).await.is_empty());
    assert_eq!(api.list("/v1/members", &token).await.len(), 1);
}

async fn another_user_can_neither_see_nor_touch_a_member_or_its_accounts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let ada = banking_user(&app, "ada@example.com").await;
    let identifier = link_completed(&api, &ada).await;
    let transactions = wait_transactions(&api, &ada).await;
    let accounts = api.accounts(&ada).await;
    let checking = id_of(account_by_type(&accounts, "CHECKING"));

    let eve = app.signed_up_user("eve@example.com").await;
    let member_path = format!("/v1/members/{identifier}");
    let attempts = [
        api.get(&member_path, &eve).await,
        api.get(&format!("{member_path}?wait=1"), &eve).await,
        api.post(
            &format!("/v1/members/resume/{identifier}"),
            &eve,
            json!({"challenges": [{"label": "What city were you born in?", "value": "correct"}]}),
        )
        .await,
        api.delete(&member_path, &eve).await,
        api.get(&format!("/v1/accounts/{checking}"), &eve).await,
        api.put(&format!("/v1/accounts/set_active/{checking}"), &eve, json!({"is_active": false})).await,
        api.post(
            &format!("/v1/accounts/set_account_number/{checking}"),
            &eve,
            json!({"account_number": "000123456789"}),
        )
        .await,
    ];
    for (n, (status, body)) in attempts.into_iter().enumerate() {
        assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found()), "attempt {n}");
    }
    assert_eq!(api.list("/v1/members", &eve).await, Vec::<Value>::new());
    assert_eq!(api.accounts(&eve).await, Vec::<Value>::new());
    assert_eq!(api.transactions(&eve).await, Vec::<Value>::new());
    assert_eq!(api.list("/v1/link_debts", &eve).await, Vec::<Value>::new());
    let (status, body) = api.get(&format!("/v1/transactions?account_id={checking}"), &eve).await;
    assert!(
        (status == StatusCode::OK && body == json!([])) || (status == StatusCode::NOT_FOUND && body == not_found()),
        "{status} {body}"
    );

    // Ada's things are untouched.
    assert_success(&api.member(&ada, &identifier).await);
    let accounts_after = api.accounts(&ada).await;
    assert_eq!(accounts_after.len(), 4);
    assert!(accounts_after.iter().all(|a| a["is_active"] == true));
    assert!(accounts_after.iter().all(|a| a["account_number"].is_null()));
    assert_eq!(api.transactions(&ada).await.len(), transactions.len());
}

/// Everything stored in the test database as text: the SQLite file and its WAL, or every row
/// of every table of the PostgreSQL test schema.
fn database_text(app: &TestApp) -> String {
    let url = &app.test_db.url;
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap();
        let mut bytes = std::fs::read(path).unwrap();
        if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
            bytes.extend(wal);
        }
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    let admin = std::env::var(donkies_store::testing::POSTGRES_URL_ENV).unwrap();
    let marker = "search_path%3D";
    let schema = &url[url.find(marker).expect("schema in the test URL") + marker.len()..];
    let schema = schema.split('&').next().unwrap();
    assert!(schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{schema}");
    let query = format!(
        "SELECT table_name || ': ' || query_to_xml(format('SELECT * FROM %I.%I', table_schema, table_name), true, false, '')::text \
         FROM information_schema.tables WHERE table_schema = '{schema}' AND table_type = 'BASE TABLE'"
    );
    let out = Command::new("psql")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", admin.as_str()])
        .args(["-c", "SET xmlbinary = hex", "-c", &query])
        .output()
        .expect("psql is needed to read the PostgreSQL test schema");
    assert!(out.status.success(), "psql failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hex_upper(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02X}")).collect()
}

const SECRET_BANK_PASSWORD: &str = "password-Zebra-4711";

async fn typed_bank_credentials_never_reach_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;
    let identifier = link(&api, &token, SECRET_BANK_PASSWORD).await;
    assert_success(&wait_member_status(&api, &token, &identifier, "SUCCESS").await);
    wait_transactions(&api, &token).await;
    // Update the credentials too (a second POST for the same institution).
    let (status, body) = create_member(&api, &token, LOGIN, "password-Zebra-4712").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    wait_member_status(&api, &token, &identifier, "SUCCESS").await;
    app.wait_jobs_idle().await;

    let text = database_text(&app);
    assert!(text.contains(&identifier), "the database dump is readable and holds the member ({} bytes)", text.len());
    for secret in [SECRET_BANK_PASSWORD, "password-Zebra-4712"] {
        assert!(!text.contains(secret), "{secret} is stored in the database");
        assert!(!text.to_uppercase().contains(&hex_upper(secret)), "{secret} is stored (hex) in the database");
    }
}

async fn deleting_a_member_hides_its_accounts_and_transactions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;
    let identifier = link_completed(&api, &token).await;
    wait_transactions(&api, &token).await;
    let accounts = api.accounts(&token).await;
    assert_eq!(accounts.len(), 4);

    let (status, body) = api.delete(&format!("/v1/members/{identifier}"), &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = api.get(&format!("/v1/members/{identifier}"), &token).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found()));
    assert_eq!(api.list("/v1/members", &token).await, Vec::<Value>::new());
    assert_eq!(api.accounts(&token).await, Vec::<Value>::new());
    assert_eq!(api.transactions(&token).await, Vec::<Value>::new());
    assert_eq!(api.list("/v1/link_debts", &token).await, Vec::<Value>::new());
    for a in &accounts {
        let (status, body) = api.get(&format!("/v1/accounts/{}", id_of(a)), &token).await;
        assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found()), "{a}");
    }
    let (status, body) = api.delete(&format!("/v1/members/{identifier}"), &token).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found()));
    // Nothing comes back later (a late transaction import must not resurrect them): every job
    // the linking queued has run by now.
    app.wait_jobs_idle().await;
    assert_eq!(api.accounts(&token).await, Vec::<Value>::new());
    assert_eq!(api.transactions(&token).await, Vec::<Value>::new());

    // The institution can be linked again afterwards.
    let again = link_completed(&api, &token).await;
    assert_ne!(again, identifier);
    assert_eq!(api.accounts(&token).await.len(), 4);
}

async fn member_creation_validates_institution_and_credentials(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;

    let bodies = [
        (
            "unknown institution",
            json!({"institution_code": "nosuchbank", "credentials": mxbank_credentials(LOGIN, "password")}),
        ),
        (
            "missing PASSWORD",
            json!({"institution_code": MXBANK, "credentials": [{"field_name": "LOGIN", "value": LOGIN}]}),
        ),
        (
            "unknown field_name",
            json!({"institution_code": MXBANK, "credentials": [
                {"field_name": "LOGIN", "value": LOGIN},
                {"field_name": "PASSWORD", "value": "password"},
                {"field_name": "PIN", "value": "1234"},
            ]}),
        ),
        (
            "unknown guid",
            json!({"institution_code": MXBANK, "credentials": [
                {"guid": MXBANK_LOGIN_GUID, "value": LOGIN},
                {"guid": "CRD-00000000-0000-0000-0000-000000000000", "value": "password"},
            ]}),
        ),
        ("no institution_code", json!({"credentials": mxbank_credentials(LOGIN, "password")})),
        ("no credentials", json!({"institution_code": MXBANK})),
    ];
    for (what, body) in bodies {
        let (status, answer) = api.post("/v1/members", &token, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        let fields = answer.as_object().unwrap_or_else(|| panic!("{what}: {answer}"));
        assert!(!fields.is_empty(), "{what}: {answer}");
        assert!(
            fields
                .values()
                .all(|v| v.as_array().is_some_and(|msgs| !msgs.is_empty() && msgs.iter().all(Value::is_string))),
            "{what}: not the field-error shape: {answer}"
        );
    }

    let res = app
        .client
        .post(app.url("/v1/members"))
        .header("Authorization", format!("Token {token}"))
        .header("Content-Type", "application/json")
        .body("{\"institution_code\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert!(body["non_field_errors"][0].is_string(), "{body}");

    let (status, _) = app
        .call(
            Method::POST,
            "/v1/members",
            None,
            Some(json!({"institution_code": MXBANK, "credentials": mxbank_credentials(LOGIN, "password")})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    assert_eq!(api.list("/v1/members", &token).await, Vec::<Value>::new());
    let (status, body) = api.get("/v1/members/0123456789abcdef0123456789abcdef", &token).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found()));
    let (status, body) = api.get("/v1/accounts/nonexistent-0000", &token).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found()));
}

async fn debt_shares_must_cover_exactly_the_active_debt_accounts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;
    link_completed(&api, &token).await;
    let accounts = api.accounts(&token).await;
    let card = account_by_type(&accounts, "CREDIT_CARD");
    let loan = account_by_type(&accounts, "LOAN");
    let checking = account_by_type(&accounts, "CHECKING");
    let (card_id, loan_id, checking_id) = (id_of(card), id_of(loan), id_of(checking));
    let shares_of = |accounts: &[Value]| -> (i64, i64) {
        let share = |id: &str| accounts.iter().find(|a| id_of(a) == id).unwrap()["transfer_share"].as_i64().unwrap();
        (share(&card_id), share(&loan_id))
    };

    let links = api.list("/v1/link_debts", &token).await;
    assert_eq!(links.len(), 2, "{links:?}");
    let total: i64 = links.iter().map(|l| l["share"].as_i64().unwrap()).sum();
    assert_eq!(total, 100, "{links:?}");

    let (status, body) = api
        .put("/v1/accounts/edit_share", &token, json!({format!("id{card_id}"): 60, format!("id{loan_id}"): 40}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(shares_of(&api.accounts(&token).await), (60, 40));

    let bad = [
        ("sum 90", json!({format!("id{card_id}"): 50, format!("id{loan_id}"): 40})),
        ("sum 110", json!({format!("id{card_id}"): 70, format!("id{loan_id}"): 40})),
        (
            "a debit account",
            json!({format!("id{card_id}"): 60, format!("id{loan_id}"): 40, format!("id{checking_id}"): 0}),
        ),
        ("a debt account missing", json!({format!("id{card_id}"): 100})),
        ("negative", json!({format!("id{card_id}"): 120, format!("id{loan_id}"): -20})),
        ("not an integer", json!({format!("id{card_id}"): 60.5, format!("id{loan_id}"): 39.5})),
        ("unknown id", json!({format!("id{card_id}"): 60, "idnonexistent-0000": 40})),
        ("empty", json!({})),
    ];
    for (what, body) in bad {
        let (status, answer) = api.put("/v1/accounts/edit_share", &token, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
    }
    assert_eq!(shares_of(&api.accounts(&token).await), (60, 40), "rejected edits change nothing");

    let links = api.list("/v1/link_debts", &token).await;
    let mut pairs: Vec<(String, i64)> =
        links.iter().map(|l| (id_of(&l["account"]), l["share"].as_i64().unwrap())).collect();
    pairs.sort();
    let mut expected = vec![(card_id.clone(), 60), (loan_id.clone(), 40)];
    expected.sort();
    assert_eq!(pairs, expected);

    let (status, body) = api.post("/v1/link_debts", &token, json!({"account": loan["id"], "share": 30})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let links = api.list("/v1/link_debts", &token).await;
    assert_eq!(links.len(), 2, "{links:?}");
    let total: i64 = links.iter().map(|l| l["share"].as_i64().unwrap()).sum();
    assert_eq!(total, 100, "{links:?}");
    let loan_link = links.iter().find(|l| id_of(&l["account"]) == loan_id).unwrap();
    assert_eq!(loan_link["share"], 30, "{links:?}");
    assert_eq!(shares_of(&api.accounts(&token).await), (70, 30));

    // Deactivating a debt account takes it out of the links; the last account of an
    // institution cannot be deactivated.
    let others: Vec<String> = accounts.iter().map(id_of).filter(|id| *id != checking_id).collect();
    for id in &others {
        let (status, body) =
            api.put(&format!("/v1/accounts/set_active/{id}"), &token, json!({"is_active": false})).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let (status, body) =
        api.put(&format!("/v1/accounts/set_active/{checking_id}"), &token, json!({"is_active": false})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let after = api.accounts(&token).await;
    assert_eq!(after.iter().filter(|a| a["is_active"] == true).count(), 1, "{after:?}");
    assert_eq!(api.list("/v1/link_debts", &token).await, Vec::<Value>::new());

    // An account number is set once and shown as its last four digits.
    let path = format!("/v1/accounts/set_account_number/{checking_id}");
    let (status, body) = api.post(&path, &token, json!({"account_number": "000123456789"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, shown) = api.get(&format!("/v1/accounts/{checking_id}"), &token).await;
    assert_eq!(shown["account_number"], "6789", "{shown}");
    let (status, body) = api.post(&path, &token, json!({"account_number": "000987654321"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let text = database_text(&app);
    assert!(!text.contains("000123456789"), "the account number is stored in the clear");
}

/// The real binary, linking a bank with a distinctive password at debug log level: neither its
/// stdout nor its stderr nor its database ever holds that password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_credentials_never_reach_the_log_of_the_real_binary() {
    let dir = std::env::temp_dir().join(format!("donkies-bank-{}", donkies_store::new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_donkies"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .env_remove("DONKIES_LISTEN")
        .env_remove("DONKIES_ATRIUM_URL")
        .env_remove("DONKIES_SMTP_URL")
        .env("RUST_LOG", "debug")
        .env("DONKIES_DATA_DIR", &dir)
        .env("DONKIES_SANDBOX_STEP_MS", "40")
        .env("DONKIES_MEMBER_POLL_MS", "40")
        .env("DONKIES_JOB_POLL_MS", "50")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Drain both pipes all along (a debug log fills a pipe quickly).
    let stdout_log = Arc::new(Mutex::new(String::new()));
    let stderr_log = Arc::new(Mutex::new(String::new()));
    let (addr_tx, addr_rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let out_log = stdout_log.clone();
    let out_reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(i) = line.find("listening on http://") {
                let addr = line[i + "listening on http://".len()..].trim().to_owned();
                let _ = addr_tx.send(addr);
            }
            out_log.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    let stderr = child.stderr.take().unwrap();
    let err_log = stderr_log.clone();
    let err_reader = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut all);
        err_log.lock().unwrap().push_str(&all);
    });

    let addr = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("no listening line:\n{}\n{}", stdout_log.lock().unwrap(), stderr_log.lock().unwrap())
    });
    let api = Api {
        client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        base: format!("http://{}", addr.trim_end_matches('/')),
        driver: None,
    };

    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(
                json!({"email": "ada@example.com", "password": PASSWORD, "first_name": "Ada", "last_name": "Lovelace"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = api
        .call(Method::POST, "/v1/auth/login", None, Some(json!({"email": "ada@example.com", "password": PASSWORD})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    wait_for_institutions(&api, &token).await;
    let identifier = link(&api, &token, SECRET_BANK_PASSWORD).await;
    assert_success(&wait_member_status(&api, &token, &identifier, "SUCCESS").await);
    wait_transactions(&api, &token).await;
    // A wrong password for good measure, which ends in an error path.
    let (status, body) = create_member(&api, &token, LOGIN, "INVALID").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    wait_member_status(&api, &token, &identifier, "WRONG_CREDENTIALS").await;

    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    out_reader.join().unwrap();
    err_reader.join().unwrap();
    let out = stdout_log.lock().unwrap().clone();
    let err = stderr_log.lock().unwrap().clone();
    assert_eq!(exit.code(), Some(0), "{out}\n{err}");
    assert!(!out.is_empty() || !err.is_empty(), "the debug log is not empty");
    assert!(!out.contains(SECRET_BANK_PASSWORD), "the bank password is on stdout:\n{out}");
    assert!(!err.contains(SECRET_BANK_PASSWORD), "the bank password is on stderr:\n{err}");
    let mut db = Vec::new();
    for name in ["donkies.db", "donkies.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            db.extend(bytes);
        }
    }
    let db = String::from_utf8_lossy(&db);
    assert!(db.contains(&identifier), "the database was found");
    assert!(!db.contains(SECRET_BANK_PASSWORD), "the bank password is in the database");
    std::fs::remove_dir_all(dir).unwrap();
}

/// What the 2017 web client does with an id: `parseInt()` it and compare with `===`; a value
/// that is not a JSON integer below 2^53 never compares equal.
fn parse_int(value: &Value) -> Option<i64> {
    integer_id(value)
}

async fn every_id_is_an_integer_the_2017_web_client_can_parse_and_compare(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;
    let identifier = link_completed(&api, &token).await;
    let transactions = wait_transactions(&api, &token).await;

    let (_, user) = api.get("/v1/user", &token).await;
    assert!(parse_int(&user["id"]).is_some(), "user id {}", user["id"]);
    let institutions = api.list("/v1/institutions", &token).await;
    assert!(!institutions.is_empty());
    for i in &institutions {
        assert!(parse_int(&i["id"]).is_some(), "institution {i}");
    }
    for s in api.list("/v1/institutions_suggest?value=mx", &token).await {
        assert!(parse_int(&s["id"]).is_some(), "suggestion {s}");
    }
    let credentials = api.list("/v1/credentials/mxbank", &token).await;
    let mxbank = institutions.iter().find(|i| i["code"] == MXBANK).unwrap();
    assert!(credentials.iter().all(|c| parse_int(&c["institution"]) == parse_int(&mxbank["id"])), "{credentials:?}");
    let members = api.list("/v1/members", &token).await;
    assert_eq!(members.len(), 1);
    assert!(parse_int(&members[0]["id"]).is_some() && parse_int(&members[0]["institution"]["id"]).is_some());
    assert_eq!(members[0]["identifier"], identifier.as_str(), "identifier stays a hex string");
    let accounts = api.accounts(&token).await;
    for a in &accounts {
        assert!(parse_int(&a["id"]).is_some() && parse_int(&a["member"]["id"]).is_some(), "account {a}");
        assert!(is_hex32(a["uid"].as_str().unwrap()), "uid stays a hex string: {a}");
    }

    // Configure accounts: the page matches each account to its member by id.
    for a in &accounts {
        assert_eq!(parse_int(&a["member"]["id"]), parse_int(&members[0]["id"]));
    }
    // The transaction filter: the select's value is parseInt(account.id); the table keeps the
    // rows whose account_id === it, and the server's ?account_id= filter agrees.
    for a in &accounts {
        let id = parse_int(&a["id"]).unwrap();
        let shown: Vec<&Value> = transactions.iter().filter(|t| parse_int(&t["account_id"]) == Some(id)).collect();
        let filtered = api.list(&format!("/v1/transactions?account_id={id}"), &token).await;
        assert_eq!(filtered.iter().collect::<Vec<_>>(), shown, "account {}", a["name"]);
        if a["type_ds"] == "debit" {
            assert!(!filtered.is_empty(), "the {} account has transactions", a["name"]);
        }
    }
    // The account's page by its integer id; anything else in the path is not an id.
    let first = parse_int(&accounts[0]["id"]).unwrap();
    let (status, one) = api.get(&format!("/v1/accounts/{first}"), &token).await;
    assert_eq!((status, parse_int(&one["id"])), (StatusCode::OK, Some(first)));
    let hex = "0192a8c4e5f67b8d9e0f1a2b3c4d5e6f";
    for bad in [hex, "abc", "1.5", "-1", "0", "9007199254740993", " 1", "1e3"] {
        let path = format!("/v1/accounts/{}", bad.replace(' ', "%20"));
        assert_eq!(api.get(&path, &token).await, (StatusCode::NOT_FOUND, not_found()), "{path}");
        let path = format!("/v1/institutions/{}", bad.replace(' ', "%20"));
        assert_eq!(api.get(&path, &token).await, (StatusCode::NOT_FOUND, not_found()), "{path}");
    }
    let (status, body) = api.get("/v1/transactions?account_id=abc", &token).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"account_id": ["A valid integer is required."]})));
}

async fn total_debt_is_the_sum_of_the_active_debt_balances(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;
    let (_, user) = api.get("/v1/user", &token).await;
    assert_eq!(user["total_debt"], json!(0.0), "no accounts yet");
    link_completed(&api, &token).await;
    let accounts = api.accounts(&token).await;
    let debts = debt_accounts(&accounts);
    assert_eq!(debts.len(), 2, "{accounts:?}");
    let balance = |a: &Value| cents(a["balance"].as_str().unwrap());
    let expected: i64 = debts.iter().map(|a| balance(a)).sum();
    assert!(expected > 0);
    let (_, user) = api.get("/v1/user", &token).await;
    assert!(user["total_debt"].is_number(), "a JSON number: {user}");
    assert_eq!(user["total_debt"].as_f64().unwrap(), expected as f64 / 100.0, "{user}");

    // Only active debt accounts count.
    let off = debts[0];
    let (status, body) =
        api.put(&format!("/v1/accounts/set_active/{}", id_of(off)), &token, json!({"is_active": false})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, user) = api.get("/v1/user", &token).await;
    assert_eq!(user["total_debt"].as_f64().unwrap(), (expected - balance(off)) as f64 / 100.0, "{user}");
}

async fn a_member_whose_polling_is_parked_shows_other_error(backend: Backend) {
    let mut options = crate::helpers::Options::default();
    options.args.job_wait_limit_seconds = Some("1".into());
    options.args.job_retry_base_ms = Some("1".into());
    let app = TestApp::spawn_with(backend, options).await;
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;
    let identifier = link(&api, &token, "password").await;
    // The aggregator goes down for good while the member is polled: the poll job waits it out
    // for as long as it may wait, then is parked.
    app.atrium.set_faults(Faults::outage(503));
    app.expect_parked("poll_member");
    // The clock's catalog sync may meet the same outage (batch work runs behind the polls).
    app.expect_parked("sync_institutions");
    let member = wait_member_status(&api, &token, &identifier, "OTHER_ERROR").await;
    assert_status_info(&member, "ERROR", "Other error.", true);
    let parked = donkies_store::jobs::list(app.db(), true).await.unwrap();
    assert!(parked.iter().any(|j| j.kind == "poll_member"), "{parked:?}");
    app.atrium.set_faults(Faults::default());
}

async fn a_member_links_while_the_aggregator_rate_limits_half_the_calls(backend: Backend) {
    // One attempt per job: a rate limit must not use it up.
    let mut options = crate::helpers::Options::default();
    options.args.job_max_attempts = Some("1".into());
    let app = TestApp::spawn_with(backend, options).await;
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;
    let identifier = link(&api, &token, "password").await;
    // Atrium answers half the calls 429 with `Retry-After: 1` while the member is polled.
    app.atrium.set_faults(Faults { rate_limit_rate: 0.5, ..Faults::default() });
    let member = wait_member(
        &api,
        &token,
        &identifier,
        "SUCCESS",
        |m| m["member_status"] != "PROCESSING",
        Duration::from_secs(90),
    )
    .await;
    app.atrium.set_faults(Faults::default());
    assert_eq!(member["member_status"], "SUCCESS", "{member}");
    assert_success(&member);
    let parked = donkies_store::jobs::list(app.db(), true).await.unwrap();
    assert!(parked.is_empty(), "{parked:?}");
}

// ---------------------------------------------------------------------------------------------
// The transaction list as a kept, tagged body
// ---------------------------------------------------------------------------------------------

/// A server that keeps rendered reads for a minute (so only a change can make them fresh),
/// with a user who linked mxbank holding `count` transactions per member: the app, the user's
/// token, their transactions and accounts.
async fn linked_with_long_cache(backend: Backend, count: u32) -> (TestApp, String, Vec<Value>, Vec<Value>) {
    let mut options = Options::default();
    options.args.cache_ms = Some("60000".into());
    let app = TestApp::spawn_with(backend, options).await;
    app.atrium.set_transactions_per_member(Some(count));
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;
    link_completed(&api, &token).await;
    let listed = wait_transactions(&api, &token).await;
    let accounts = api.accounts(&token).await;
    (app, token, listed, accounts)
}

/// A raw GET: status, headers and the body bytes as sent.
async fn get_raw(app: &TestApp, path: &str, token: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = app.client.get(app.url(path)).header("Authorization", format!("Token {token}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.bytes().await.unwrap().to_vec())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

/// The list's current tag and JSON, read without a cached copy.
async fn tagged_list(app: &TestApp, token: &str) -> (String, Value) {
    let (status, headers, body) = get_raw(app, "/v1/transactions", token, &[]).await;
    assert_eq!(status, StatusCode::OK);
    (header(&headers, "etag").to_owned(), serde_json::from_slice(&body).unwrap())
}

async fn the_transaction_list_is_tagged_answers_304_and_gzip_and_follows_syncs_and_settings(backend: Backend) {
    let (app, token, listed, accounts) = linked_with_long_cache(backend, 120).await;
    let api = Api::of(&app);

    let (status, headers, body) = get_raw(&app, "/v1/transactions", &token, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let etag = header(&headers, "etag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10, "a strong tag: {etag}");
    assert_eq!(header(&headers, "cache-control"), "private, no-cache");
    assert_eq!(header(&headers, "content-type"), "application/json");
    assert!(headers.get("content-encoding").is_none());
    let plain: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(plain.as_array().unwrap(), &listed);

    // A client that has it gets 304 with no body; another tag is a full answer.
    let (status, headers, body) = get_raw(&app, "/v1/transactions", &token, &[("If-None-Match", &etag)]).await;
    assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0));
    assert_eq!((header(&headers, "etag"), header(&headers, "cache-control")), (etag.as_str(), "private, no-cache"));
    let (status, _, body) = get_raw(&app, "/v1/transactions", &token, &[("If-None-Match", "\"stale\"")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), plain);

    // gzip for a client that takes it: the same JSON, under its own tag that also revalidates.
    let (status, headers, body) = get_raw(&app, "/v1/transactions", &token, &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-encoding"), "gzip");
    assert!(header(&headers, "vary").to_ascii_lowercase().contains("accept-encoding"));
    let gz_tag = header(&headers, "etag").to_owned();
    assert_ne!(gz_tag, etag, "each encoding has its own tag");
    assert!(body.len() * 4 < plain.to_string().len(), "compressed: {} bytes", body.len());
    assert_eq!(serde_json::from_slice::<Value>(&gunzip(&body)).unwrap(), plain);
    let gz_headers = [("Accept-Encoding", "gzip, deflate"), ("If-None-Match", gz_tag.as_str())];
    assert_eq!(get_raw(&app, "/v1/transactions", &token, &gz_headers).await.0, StatusCode::NOT_MODIFIED);

    // A settings change gives new round-ups at once: a new tag and a fresh body.
    let (status, body) =
        app.call(Method::PATCH, "/v1/user_settings", Some(&token), Some(json!({"is_even_roundup": true}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, headers, body) = get_raw(&app, "/v1/transactions", &token, &[("If-None-Match", &etag)]).await;
    assert_eq!(status, StatusCode::OK, "a settings change makes the kept copy stale");
    let even_tag = header(&headers, "etag").to_owned();
    assert_ne!(even_tag, etag);
    let even: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(check_roundups(&even, &accounts, true), check_roundups(&listed, &accounts, false));
    assert!(even.iter().any(|t| t["roundup"] == "1.00"), "whole-dollar debits now round up a dollar");
    let (status, body) =
        app.call(Method::PATCH, "/v1/user_settings", Some(&token), Some(json!({"is_even_roundup": false}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(tagged_list(&app, &token).await, (etag.clone(), plain.clone()), "the tag follows the content");

    // A sync that brings new transactions: a new tag and the new rows, without waiting.
    let member = donkies_store::members::list_completed(app.db()).await.unwrap().remove(0);
    let account = donkies_store::accounts::list_for_user(app.db(), member.user_id).await.unwrap().remove(0);
    let purchase = |amount: &str| donkies_sandbox::SimEvent::Purchase {
        account_guid: account.guid.clone(),
        amount: amount.into(),
        description: Some("New Shop".into()),
        date: None,
        pending: false,
    };
    let member_guid = member.guid.clone().unwrap();
    app.atrium.apply_events(&member_guid, vec![purchase("3.21"), purchase("4.32")]).await.unwrap();
    // The bank shows them once it aggregates again.
    let aggregator = app.server.as_ref().unwrap().services().banking.aggregator.clone();
    let user_guid = donkies_store::users::find_by_id(app.db(), member.user_id).await.unwrap().unwrap().guid.unwrap();
    aggregator.aggregate_member(&user_guid, &member_guid).await.unwrap();
    app.eventually("the bank aggregates", async || {
        let status = aggregator.read_member_status(&user_guid, &member_guid).await.unwrap();
        if status.status.is_settled() { Ok(()) } else { Err(status.status) }
    })
    .await;
    resync(&app).await;
    let (status, headers, body) = get_raw(&app, "/v1/transactions", &token, &[("If-None-Match", &etag)]).await;
    assert_eq!(status, StatusCode::OK, "a sync makes the kept copy stale");
    assert_ne!(header(&headers, "etag"), etag);
    let synced: Vec<Value> = serde_json::from_slice(&body).unwrap();
    assert!(synced.len() > listed.len(), "{} rows after the sync, {} before", synced.len(), listed.len());
    let uids: HashSet<&str> = synced.iter().map(|t| t["uid"].as_str().unwrap()).collect();
    assert_eq!(uids.len(), synced.len());
    assert!(listed.iter().all(|t| uids.contains(t["uid"].as_str().unwrap())), "the old rows stay");

    // Hiding an account takes its rows out of the kept list at once.
    let card = id_of(account_by_type(&accounts, "CREDIT_CARD"));
    let (status, body) = api.delete(&format!("/v1/accounts/{card}"), &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let shown = api.transactions(&token).await;
    assert!(!shown.is_empty() && shown.len() < synced.len());
    assert!(shown.iter().all(|t| id_of(&json!({"id": t["account_id"]})) != card));

    // Another user's list is theirs alone, tag included.
    let eve = banking_user(&app, "eve@example.com").await;
    let (status, _, body) = get_raw(&app, "/v1/transactions", &eve, &[("If-None-Match", &etag)]).await;
    assert_eq!((status, serde_json::from_slice::<Value>(&body).unwrap()), (StatusCode::OK, json!([])));
}

/// A change made by another process (here: straight through the store, so this server hears
/// nothing of it) reaches a kept list within the cache setting, though no request renders it
/// again until the data's version moves.
async fn a_kept_list_follows_another_process_within_the_cache_setting(backend: Backend) {
    let mut options = Options::default();
    options.args.cache_ms = Some("400".into());
    let app = TestApp::spawn_with(backend, options).await;
    app.atrium.set_transactions_per_member(Some(60));
    let api = Api::of(&app);
    let token = banking_user(&app, "ada@example.com").await;
    link_completed(&api, &token).await;
    let listed = wait_transactions(&api, &token).await;
    let accounts = api.accounts(&token).await;
    let user_id = api.get("/v1/user", &token).await.1["id"].as_i64().unwrap();
    let card: i64 = id_of(account_by_type(&accounts, "CREDIT_CARD")).parse().unwrap();
    let (etag, body) = tagged_list(&app, &token).await;
    assert_eq!(body.as_array().unwrap().len(), listed.len());
    let on_card =
        |list: &Value| list.as_array().unwrap().iter().filter(|t| integer_id(&t["account_id"]) == Some(card)).count();
    assert!(on_card(&body) > 0, "the card has transactions");

    // Past the cache setting, unchanged: the same tag.
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert_eq!(tagged_list(&app, &token).await.0, etag);

    assert!({
        let mut tx = app.db().begin().await.unwrap();
        let hidden = donkies_store::accounts::hide(&mut tx, user_id, card, donkies_store::now()).await.unwrap();
        tx.commit().await.unwrap();
        hidden
    });
    let started = std::time::Instant::now();
    let (new_tag, shown) = loop {
        let (tag, shown) = tagged_list(&app, &token).await;
        if tag != etag {
            break (tag, shown);
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(3), "the kept list never followed the change");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_ne!(new_tag, etag);
    assert_eq!(on_card(&shown), 0, "the hidden card's rows are gone");
    assert!(!shown.as_array().unwrap().is_empty());
}

async fn transaction_pages_put_together_are_the_full_list(backend: Backend) {
    let (app, token, full, accounts) = linked_with_long_cache(backend, 90).await;
    let api = Api::of(&app);
    let checking = id_of(account_by_type(&accounts, "CHECKING"));

    for (filter, expected) in [
        (String::new(), full.clone()),
        (
            format!("account_id={checking}&"),
            full.iter().filter(|t| id_of(&json!({"id": t["account_id"]})) == checking).cloned().collect::<Vec<_>>(),
        ),
    ] {
        assert!(expected.len() > 14, "enough rows for three pages: {}", expected.len());
        let mut gathered = Vec::new();
        let mut path = format!("/v1/transactions?{filter}limit=7");
        let mut previous: Option<String> = None;
        loop {
            let (status, headers, body) = get_raw(&app, &path, &token, &[]).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            let tag = header(&headers, "etag").to_owned();
            assert_eq!(
                get_raw(&app, &path, &token, &[("If-None-Match", &tag)]).await.0,
                StatusCode::NOT_MODIFIED,
                "{path}"
            );
            let page: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(page["count"], expected.len(), "{path}");
            assert_eq!(page["previous"].as_str().map(str::to_owned), previous, "{path}");
            gathered.extend(page["results"].as_array().unwrap().iter().cloned());
            let Some(next) = page["next"].as_str() else { break };
            assert!(next.starts_with(&app.base), "an absolute link: {next}");
            previous = Some(app.url(&path));
            path = next[app.base.len()..].to_owned();
        }
        assert_eq!(gathered, expected, "pages put together ({filter})");
    }
    let (status, body) = api.get("/v1/transactions?limit=7&offset=100000", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"], json!([]));
    assert_eq!(body["count"], full.len());
}
