//! The Atrium simulator's bank moving on: events steered through
//! `/__sim/members/{m}/events`, churnbank's own churn, re-links of the same
//! login, all over real HTTP with the JSON on the wire.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{Days, Utc};
use donkies_sandbox::atrium::{
    CHURNBANK_CODE, CHURNBANK_LOGIN_GUID, CHURNBANK_PASSWORD_GUID, MXBANK_CODE, MXBANK_LOGIN_GUID,
    MXBANK_PASSWORD_GUID, MXBANK_USERNAME,
};
use donkies_sandbox::{AtriumSim, AtriumSimConfig, SANDBOX_API_KEY, SANDBOX_CLIENT_ID, SimEvent};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{DataDir, loopback};

/// A simulator with a client speaking its JSON.
struct Bank {
    sim: AtriumSim,
    http: reqwest::Client,
}

/// A transaction as the bank tells it, without its guids.
type Purchase = (String, String, String, String, String, String);

impl Bank {
    async fn start(data: Option<&DataDir>) -> Self {
        let config = AtriumSimConfig {
            step: Duration::from_millis(5),
            data: data.map(|dir| dir.0.clone()),
            ..Default::default()
        };
        Self { sim: AtriumSim::start(loopback(), config).await.unwrap(), http: reqwest::Client::new() }
    }

    fn url(&self, path: &str) -> reqwest::Url {
        self.sim.base_url().join(path.trim_start_matches('/')).unwrap()
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("MX-API-Key", SANDBOX_API_KEY)
            .header("MX-Client-ID", SANDBOX_CLIENT_ID)
            .header("Accept", "application/vnd.mx.atrium.v1+json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    async fn create_user(&self, identifier: &str) -> String {
        let (status, body) =
            self.send(reqwest::Method::POST, "/users", Some(json!({"user": {"identifier": identifier}}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["user"]["guid"].as_str().unwrap().to_owned()
    }

    /// Links `username` at `code` (mxbank or churnbank) and waits for the
    /// first aggregation.
    async fn link(&self, user: &str, code: &str, username: &str) -> String {
        let (login, password) = match code {
            MXBANK_CODE => (MXBANK_LOGIN_GUID, MXBANK_PASSWORD_GUID),
            _ => (CHURNBANK_LOGIN_GUID, CHURNBANK_PASSWORD_GUID),
        };
        let body = json!({"member": {"institution_code": code, "credentials": [
            {"guid": login, "value": username}, {"guid": password, "value": "password"}]}});
        let (status, body) = self.send(reqwest::Method::POST, &format!("/users/{user}/members"), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let member = body["member"]["guid"].as_str().unwrap().to_owned();
        self.wait_completed(user, &member).await;
        member
    }

    async fn wait_completed(&self, user: &str, member: &str) {
        for _ in 0..400 {
            let status = self.get(&format!("/users/{user}/members/{member}/status")).await;
            if status["member"]["status"] == "COMPLETED" && status["member"]["is_being_aggregated"] == false {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("member {member} did not complete");
    }

    async fn aggregate(&self, user: &str, member: &str) {
        let (status, body) =
            self.send(reqwest::Method::POST, &format!("/users/{user}/members/{member}/aggregate"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        self.wait_completed(user, member).await;
    }

    async fn delete_member(&self, user: &str, member: &str) {
        let (status, _) = self.send(reqwest::Method::DELETE, &format!("/users/{user}/members/{member}"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    async fn accounts(&self, user: &str, member: &str) -> Vec<Value> {
        let body = self.get(&format!("/users/{user}/members/{member}/accounts?records_per_page=1000")).await;
        body["accounts"].as_array().unwrap().clone()
    }

    async fn account(&self, user: &str, account: &str) -> Value {
        self.get(&format!("/users/{user}/accounts/{account}")).await["account"].clone()
    }

    /// Every transaction of the member (a window wide enough for all).
    async fn transactions(&self, user: &str, member: &str) -> Vec<Value> {
        let from = Utc::now().date_naive() - Days::new(400);
        let path = format!("/users/{user}/members/{member}/transactions?records_per_page=1000&from_date={from}");
        self.get(&path).await["transactions"].as_array().unwrap().clone()
    }

    async fn events(&self, member: &str, events: Value) -> (StatusCode, Value) {
        let response = self.http.post(self.url(&format!("/__sim/members/{member}/events"))).json(&events);
        let response = response.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn checking(&self, user: &str, member: &str) -> String {
        let accounts = self.accounts(user, member).await;
        let checking = accounts.iter().find(|a| a["type"] == "CHECKING").unwrap();
        checking["guid"].as_str().unwrap().to_owned()
    }

    /// The member's transactions told without guids (the account by its
    /// number), sorted.
    async fn purchases(&self, user: &str, member: &str) -> Vec<Purchase> {
        let numbers: BTreeMap<String, String> = self
            .accounts(user, member)
            .await
            .iter()
            .map(|a| (a["guid"].as_str().unwrap().to_owned(), a["account_number"].as_str().unwrap().to_owned()))
            .collect();
        let mut purchases: Vec<Purchase> = self
            .transactions(user, member)
            .await
            .iter()
            .map(|t| {
                (
                    numbers[t["account_guid"].as_str().unwrap()].clone(),
                    t["date"].as_str().unwrap().to_owned(),
                    t["amount"].to_string(),
                    t["description"].as_str().unwrap().to_owned(),
                    t["type"].as_str().unwrap().to_owned(),
                    t["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        purchases.sort();
        purchases
    }
}

fn find<'a>(transactions: &'a [Value], guid: &str) -> Option<&'a Value> {
    transactions.iter().find(|t| t["guid"] == guid)
}

fn guids(values: &[Value]) -> HashSet<String> {
    values.iter().map(|v| v["guid"].as_str().unwrap().to_owned()).collect()
}

fn pending(transactions: &[Value]) -> Vec<Value> {
    transactions.iter().filter(|t| t["status"] == "PENDING").cloned().collect()
}

#[tokio::test]
async fn each_event_shows_on_the_next_aggregation() {
    let bank = Bank::start(None).await;
    let user = bank.create_user("events").await;
    let member = bank.link(&user, MXBANK_CODE, MXBANK_USERNAME).await;
    let checking = bank.checking(&user, &member).await;
    let before = bank.transactions(&user, &member).await;
    assert!(pending(&before).is_empty(), "mxbank history is all posted");
    let today = Utc::now().date_naive();
    let two_days_ago = today - Days::new(2);

    let (status, created) = bank
        .events(
            &member,
            json!([
                {"kind": "purchase", "account_guid": checking, "amount": "12.34", "description": "Corner Cafe", "pending": true},
                {"kind": "purchase", "account_guid": checking, "amount": "5.00", "date": two_days_ago.to_string()},
                {"kind": "balance", "account_guid": checking, "available": "20.00"}
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let created = created.as_array().unwrap().clone();
    assert_eq!(created.len(), 3);
    assert!(created[2].is_null());
    let held = created[0].as_str().unwrap().to_owned();
    let bought = created[1].as_str().unwrap().to_owned();

    // Not before the member aggregates again.
    assert_eq!(bank.transactions(&user, &member).await, before);
    assert_ne!(bank.account(&user, &checking).await["available_balance"], json!(20.0));

    bank.aggregate(&user, &member).await;
    let after = bank.transactions(&user, &member).await;
    let held_row = find(&after, &held).expect("the pending purchase shows");
    assert_eq!(held_row["status"], "PENDING");
    assert_eq!(held_row["type"], "DEBIT");
    assert_eq!(held_row["amount"], json!(12.34));
    assert_eq!(held_row["description"], "Corner Cafe");
    assert_eq!(held_row["date"], today.to_string());
    let bought_row = find(&after, &bought).expect("the posted purchase shows");
    assert_eq!(bought_row["status"], "POSTED");
    assert_eq!(bought_row["date"], two_days_ago.to_string());
    assert_eq!(after.len(), before.len() + 2);
    let account = bank.account(&user, &checking).await;
    assert_eq!(account["available_balance"], json!(20.0));
    assert_eq!(account["balance"], json!(20.0));
    // The date filters apply by date.
    let since_today =
        bank.get(&format!("/users/{user}/members/{member}/transactions?records_per_page=1000&from_date={today}")).await;
    let since_today = since_today["transactions"].as_array().unwrap();
    assert!(find(since_today, &held).is_some());
    assert!(find(since_today, &bought).is_none());

    // Post with a tip, amend a posted row.
    let (status, created) = bank
        .events(
            &member,
            json!([
                {"kind": "post", "guid": held, "amount": "14.34"},
                {"kind": "amend", "guid": bought, "amount": "6.00"}
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let posted = created[0].as_str().unwrap().to_owned();
    assert!(created[1].is_null());
    assert_ne!(posted, held);
    bank.aggregate(&user, &member).await;
    let after = bank.transactions(&user, &member).await;
    assert!(find(&after, &held).is_none(), "the pending row is gone");
    let posted_row = find(&after, &posted).unwrap();
    assert_eq!(posted_row["status"], "POSTED");
    assert_eq!(posted_row["amount"], json!(14.34));
    assert_eq!(posted_row["description"], "Corner Cafe");
    assert_eq!(find(&after, &bought).unwrap()["amount"], json!(6.0));

    // Post unchanged, drop a hold, remove a posted row.
    let (status, created) = bank
        .events(
            &member,
            json!([
                {"kind": "purchase", "account_guid": checking, "amount": "3.10", "pending": true},
                {"kind": "purchase", "account_guid": checking, "amount": "7.25", "pending": true}
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let (kept, dropped) = (created[0].as_str().unwrap().to_owned(), created[1].as_str().unwrap().to_owned());
    let (status, created) = bank
        .events(
            &member,
            json!([
                {"kind": "post", "guid": kept},
                {"kind": "drop", "guid": dropped},
                {"kind": "remove", "guid": bought}
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert!(created[1].is_null() && created[2].is_null());
    bank.aggregate(&user, &member).await;
    let after = bank.transactions(&user, &member).await;
    for gone in [&kept, &dropped, &bought] {
        assert!(find(&after, gone).is_none(), "{gone} is gone");
    }
    assert_eq!(find(&after, created[0].as_str().unwrap()).unwrap()["amount"], json!(3.1));
    // One purchase then another: the first posted, the others gone.
    assert_eq!(after.len(), before.len() + 2);
    bank.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn refused_events_apply_nothing() {
    let bank = Bank::start(None).await;
    let user = bank.create_user("refused").await;
    let member = bank.link(&user, MXBANK_CODE, MXBANK_USERNAME).await;
    let checking = bank.checking(&user, &member).await;
    let before = bank.transactions(&user, &member).await;
    let posted = before[0]["guid"].as_str().unwrap().to_owned();
    let (_, created) = bank
        .events(&member, json!([{"kind": "purchase", "account_guid": checking, "amount": "1.00", "pending": true}]))
        .await;
    let held = created[0].as_str().unwrap().to_owned();
    let purchase = json!({"kind": "purchase", "account_guid": checking, "amount": "9.99"});

    let refused = [
        json!({"kind": "explode", "guid": posted}),
        json!({"kind": "post", "guid": "TRN-nope"}),
        json!({"kind": "post", "guid": posted}),
        json!({"kind": "drop", "guid": posted}),
        json!({"kind": "remove", "guid": held}),
        json!({"kind": "amend", "guid": held, "amount": "2.00"}),
        json!({"kind": "amend", "guid": posted, "amount": "abc"}),
        json!({"kind": "purchase", "account_guid": checking, "amount": "-1.00"}),
        json!({"kind": "purchase", "account_guid": checking, "amount": 12}),
        json!({"kind": "purchase", "account_guid": "ACT-nope", "amount": "1.00"}),
        json!({"kind": "balance", "account_guid": checking, "available": "lots"}),
        json!({"kind": "purchase", "account_guid": checking}),
    ];
    for event in refused {
        let (status, body) = bank.events(&member, json!([purchase, event])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{event}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    }
    let (status, body) = bank.events(&member, json!({"kind": "purchase"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let malformed = bank.http.post(bank.url(&format!("/__sim/members/{member}/events"))).body("[{").send();
    assert_eq!(malformed.await.unwrap().status(), StatusCode::BAD_REQUEST);

    bank.aggregate(&user, &member).await;
    let after = bank.transactions(&user, &member).await;
    assert_eq!(after.len(), before.len() + 1, "only the first, accepted, purchase");
    assert!(find(&after, &held).is_some());
    assert!(!after.iter().any(|t| t["amount"] == json!(9.99) && t["description"] == "Sandbox Purchase"));
    bank.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn events_for_an_unknown_member_are_not_found() {
    let bank = Bank::start(None).await;
    let (status, body) = bank.events("MBR-nope", json!([{"kind": "drop", "guid": "TRN-1"}])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"]["message"].is_string(), "{body}");
    let error = bank.sim.apply_events("MBR-nope", Vec::new()).await.unwrap_err();
    assert_eq!(error.status, 404);
    bank.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn events_applied_in_process_show_like_posted_ones() {
    let bank = Bank::start(None).await;
    let user = bank.create_user("in-process").await;
    let member = bank.link(&user, CHURNBANK_CODE, MXBANK_USERNAME).await;
    let checking = bank.checking(&user, &member).await;
    let events = vec![
        SimEvent::Purchase {
            account_guid: checking.clone(),
            amount: "42.00".into(),
            description: Some("Bike Shop".into()),
            date: None,
            pending: true,
        },
        SimEvent::Balance { account_guid: checking.clone(), available: "0.50".into() },
    ];
    let created = bank.sim.apply_events(&member, events).await.unwrap();
    let held = created[0].clone().unwrap();
    assert_eq!(created[1], None);
    let refused = bank.sim.apply_events(&member, vec![SimEvent::Remove { guid: held.clone() }]).await.unwrap_err();
    assert_eq!(refused.status, 400, "{refused}");

    // Rows made by events are never moved by churnbank's churn.
    for _ in 0..4 {
        bank.aggregate(&user, &member).await;
        let row = find(&bank.transactions(&user, &member).await, &held).cloned().unwrap();
        assert_eq!(row["status"], "PENDING");
        assert_eq!(row["amount"], json!(42.0));
        assert_eq!(bank.account(&user, &checking).await["available_balance"], json!(0.5));
    }
    bank.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_relink_returns_the_same_history_under_new_guids() {
    let bank = Bank::start(None).await;
    let user = bank.create_user("relink").await;
    for code in [MXBANK_CODE, CHURNBANK_CODE] {
        let first = bank.link(&user, code, MXBANK_USERNAME).await;
        if code == CHURNBANK_CODE {
            bank.aggregate(&user, &first).await;
            bank.aggregate(&user, &first).await;
        }
        let accounts = bank.accounts(&user, &first).await;
        let transactions = bank.transactions(&user, &first).await;
        let purchases = bank.purchases(&user, &first).await;
        bank.delete_member(&user, &first).await;

        let second = bank.link(&user, code, MXBANK_USERNAME).await;
        assert_ne!(second, first);
        let again = bank.accounts(&user, &second).await;
        let told = |a: &Value| (a["name"].clone(), a["type"].clone(), a["account_number"].clone());
        assert_eq!(again.iter().map(told).collect::<Vec<_>>(), accounts.iter().map(told).collect::<Vec<_>>());
        assert!(accounts.iter().all(|a| a["account_number"].as_str().is_some_and(|n| n.len() >= 8)));
        assert!(guids(&again).is_disjoint(&guids(&accounts)), "{code}: new account guids");
        assert_eq!(bank.purchases(&user, &second).await, purchases, "{code}: the same purchases");
        let new_transactions = bank.transactions(&user, &second).await;
        assert!(guids(&new_transactions).is_disjoint(&guids(&transactions)), "{code}: new transaction guids");
        if code == CHURNBANK_CODE {
            assert!(!pending(&new_transactions).is_empty(), "churnbank holds pending purchases");
        }
    }
    // Another login of the same user has other data.
    let other = bank.link(&user, MXBANK_CODE, "mxuser").await;
    let numbers: Vec<_> = bank.accounts(&user, &other).await.iter().map(|a| a["account_number"].clone()).collect();
    let first = bank.accounts(&user, &bank.link(&user, CHURNBANK_CODE, "mxuser").await).await;
    assert_ne!(numbers, first.iter().map(|a| a["account_number"].clone()).collect::<Vec<_>>());
    bank.sim.shutdown().await.unwrap();
}

/// What a churnbank login looks like after its first aggregation and each
/// of `aggregations` more.
async fn churn_sequence(aggregations: usize) -> Vec<Vec<Purchase>> {
    let bank = Bank::start(None).await;
    let user = bank.create_user("churner").await;
    let member = bank.link(&user, CHURNBANK_CODE, MXBANK_USERNAME).await;
    let mut sequence = vec![bank.purchases(&user, &member).await];
    for _ in 0..aggregations {
        bank.aggregate(&user, &member).await;
        sequence.push(bank.purchases(&user, &member).await);
    }
    bank.sim.shutdown().await.unwrap();
    sequence
}

#[tokio::test]
async fn churnbank_churns_the_same_way_for_the_same_login() {
    let first = churn_sequence(4).await;
    let second = churn_sequence(4).await;
    assert_eq!(first, second);
    assert!(first.windows(2).all(|pair| pair[0] != pair[1]), "every aggregation changes something");
}

#[tokio::test]
async fn churnbank_posts_and_drops_pending_rows_while_mxbank_stays_still() {
    let bank = Bank::start(None).await;
    let user = bank.create_user("churn").await;
    let member = bank.link(&user, CHURNBANK_CODE, MXBANK_USERNAME).await;
    let still = bank.link(&user, MXBANK_CODE, MXBANK_USERNAME).await;
    let still_before = (guids(&bank.transactions(&user, &still).await), bank.purchases(&user, &still).await);
    let mut before = bank.transactions(&user, &member).await;
    assert!(!pending(&before).is_empty(), "a fresh churnbank login holds pending purchases");
    let (mut posted, mut dropped) = (0, 0);
    for _ in 0..15 {
        bank.aggregate(&user, &member).await;
        let after = bank.transactions(&user, &member).await;
        let new: Vec<&Value> = after.iter().filter(|t| find(&before, t["guid"].as_str().unwrap()).is_none()).collect();
        for hold in pending(&before) {
            if find(&after, hold["guid"].as_str().unwrap()).is_some() {
                continue;
            }
            let same = |t: &&&Value| {
                t["status"] == "POSTED"
                    && t["account_guid"] == hold["account_guid"]
                    && t["date"] == hold["date"]
                    && t["description"] == hold["description"]
            };
            if new.iter().any(|t| same(&t)) { posted += 1 } else { dropped += 1 }
        }
        before = after;
        if posted > 0 && dropped > 0 {
            break;
        }
    }
    assert!(posted > 0, "some pending rows posted under new guids");
    assert!(dropped > 0, "some pending rows were dropped");
    bank.aggregate(&user, &still).await;
    let still_after = (guids(&bank.transactions(&user, &still).await), bank.purchases(&user, &still).await);
    assert_eq!(still_after, still_before, "mxbank stays still");
    bank.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn events_and_churn_survive_a_restart() {
    let dir = DataDir::new();
    let bank = Bank::start(Some(&dir)).await;
    let user = bank.create_user("restart").await;
    let member = bank.link(&user, CHURNBANK_CODE, MXBANK_USERNAME).await;
    bank.aggregate(&user, &member).await;
    let checking = bank.checking(&user, &member).await;
    let (status, created) = bank
        .events(
            &member,
            json!([
                {"kind": "purchase", "account_guid": checking, "amount": "8.88", "pending": true},
                {"kind": "balance", "account_guid": checking, "available": "15.00"}
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let held = created[0].as_str().unwrap().to_owned();
    bank.aggregate(&user, &member).await;
    // Applied but not yet aggregated when the simulator stops.
    let (status, created) = bank.events(&member, json!([{"kind": "post", "guid": held}])).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let posted = created[0].as_str().unwrap().to_owned();
    let transactions = bank.transactions(&user, &member).await;
    let accounts = bank.accounts(&user, &member).await;
    bank.sim.shutdown().await.unwrap();

    let bank = Bank::start(Some(&dir)).await;
    assert_eq!(bank.transactions(&user, &member).await, transactions);
    assert_eq!(bank.accounts(&user, &member).await, accounts);
    assert_eq!(bank.account(&user, &checking).await["available_balance"], json!(15.0));
    bank.aggregate(&user, &member).await;
    let after = bank.transactions(&user, &member).await;
    assert!(find(&after, &held).is_none());
    assert_eq!(find(&after, &posted).unwrap()["status"], "POSTED");
    let churned = bank.purchases(&user, &member).await;
    bank.sim.shutdown().await.unwrap();

    // The same churn on the next start; a reset forgets it all.
    let bank = Bank::start(Some(&dir)).await;
    assert_eq!(bank.purchases(&user, &member).await, churned);
    let (status, _) = bank.send(reqwest::Method::POST, "/__sim/reset", None).await;
    assert!(status.is_success());
    let (status, _) = bank.events(&member, json!([])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    bank.sim.shutdown().await.unwrap();
}
