//! The Atrium client against the simulator, in process, over real HTTP.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use donkies_atrium::wire::{
    ChallengeAnswer, ChallengeType, ConnectionStatus, CredentialValue, MEDIA_TYPE, Member, MemberConnectionStatus,
    MemberStatus, MemberUpdate, NewMember, NewUser, TransactionType,
};
use donkies_atrium::{Aggregator, AtriumClient, AtriumConfig, AtriumError, DateRange, PageRequest, ProviderFailure};
use donkies_sandbox::atrium::{CORRECT_ANSWER, MXBANK_CODE, MXBANK_LOGIN_GUID, MXBANK_PASSWORD_GUID, MXBANK_USERNAME};
use donkies_sandbox::{AtriumSim, AtriumSimConfig, Faults, SANDBOX_API_KEY, SANDBOX_CLIENT_ID};
use serde_json::{Value, json};

const STEP: Duration = Duration::from_millis(50);

struct TestApp {
    sim: AtriumSim,
    atrium: AtriumClient,
}

impl TestApp {
    async fn start() -> Self {
        Self::start_with(AtriumSimConfig { step: STEP, ..AtriumSimConfig::default() }).await
    }

    async fn start_with(config: AtriumSimConfig) -> Self {
        let sim = AtriumSim::start("127.0.0.1:0".parse().unwrap(), config).await.expect("simulator starts");
        let atrium = client(&sim, SANDBOX_CLIENT_ID, SANDBOX_API_KEY, Duration::from_secs(5));
        Self { sim, atrium }
    }

    async fn user(&self) -> String {
        self.atrium
            .create_user(&NewUser {
                identifier: Some(format!("donkies-{}", Utc::now().timestamp_nanos_opt().unwrap())),
                metadata: Some(r#"{"first_name": "Steven"}"#.into()),
                is_disabled: None,
            })
            .await
            .unwrap()
            .guid
    }

    async fn member(&self, user: &str, password: &str) -> Member {
        self.member_as(user, MXBANK_USERNAME, password).await
    }

    async fn member_as(&self, user: &str, username: &str, password: &str) -> Member {
        self.atrium.create_member(user, &mxbank(username, password)).await.unwrap()
    }

    /// Polls the status until the aggregation ends or waits for answers.
    async fn settle(&self, user: &str, member: &str) -> MemberConnectionStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.atrium.read_member_status(user, member).await.unwrap();
            if status.status.is_settled() {
                return status;
            }
            assert!(Instant::now() < deadline, "member never settled: {status:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn completed_member(&self, user: &str) -> String {
        let member = self.member(user, "password").await;
        let status = self.settle(user, &member.guid).await;
        assert_eq!(status.status, MemberStatus::Completed);
        member.guid
    }

    /// A raw request with the sandbox keys, for checking the JSON itself.
    async fn raw_get(&self, path: &str) -> (u16, Value) {
        let url = self.sim.base_url().join(path).unwrap();
        let response = reqwest::Client::new()
            .get(url)
            .header("MX-API-Key", SANDBOX_API_KEY)
            .header("MX-Client-ID", SANDBOX_CLIENT_ID)
            .header("Accept", MEDIA_TYPE)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        (status, body)
    }
}

fn client(sim: &AtriumSim, client_id: &str, api_key: &str, timeout: Duration) -> AtriumClient {
    AtriumClient::new(AtriumConfig::new(sim.base_url(), client_id, api_key).with_timeout(timeout)).unwrap()
}

fn mxbank(username: &str, password: &str) -> NewMember {
    NewMember {
        institution_code: MXBANK_CODE.into(),
        credentials: vec![
            CredentialValue::new(MXBANK_LOGIN_GUID, username),
            CredentialValue::new(MXBANK_PASSWORD_GUID, password),
        ],
        identifier: None,
        metadata: None,
    }
}

fn answer_all(status: &MemberConnectionStatus, value: &str) -> Vec<ChallengeAnswer> {
    status.challenges.iter().map(|c| ChallengeAnswer::new(&c.guid, value)).collect()
}

// ---------------------------------------------------------------------------
// Users

#[tokio::test]
async fn users_are_created_read_listed_and_deleted() {
    let app = TestApp::start().await;
    let created = app
        .atrium
        .create_user(&NewUser {
            identifier: Some("donkies-user-1".into()),
            metadata: Some(r#"{"first_name": "Steven"}"#.into()),
            is_disabled: None,
        })
        .await
        .unwrap();
    assert!(created.guid.starts_with("USR-"));
    assert_eq!(created.identifier.as_deref(), Some("donkies-user-1"));
    assert!(!created.is_disabled);

    let read = app.atrium.read_user(&created.guid).await.unwrap();
    assert_eq!(read, created);

    let updated = app
        .atrium
        .update_user(&created.guid, &NewUser { metadata: Some("{}".into()), ..NewUser::default() })
        .await
        .unwrap();
    assert_eq!(updated.metadata.as_deref(), Some("{}"));

    let listed = app.atrium.list_users(PageRequest::default()).await.unwrap();
    assert_eq!(listed.items, vec![updated]);
    assert_eq!(listed.pagination.total_entries, 1);

    app.atrium.delete_user(&created.guid).await.unwrap();
    let gone = app.atrium.read_user(&created.guid).await.unwrap_err();
    assert!(matches!(gone, AtriumError::NotFound { .. }), "{gone:?}");
}

#[tokio::test]
async fn a_duplicate_user_identifier_is_a_conflict() {
    let app = TestApp::start().await;
    let user = NewUser { identifier: Some("same".into()), ..NewUser::default() };
    app.atrium.create_user(&user).await.unwrap();
    let error = app.atrium.create_user(&user).await.unwrap_err();
    assert!(matches!(error, AtriumError::Conflict { .. }), "{error:?}");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_wrong_key_or_client_id_is_an_auth_error() {
    let app = TestApp::start().await;
    let timeout = Duration::from_secs(5);
    for wrong in [
        client(&app.sim, SANDBOX_CLIENT_ID, "not-the-key", timeout),
        client(&app.sim, "someone-else", SANDBOX_API_KEY, timeout),
    ] {
        let error = wrong.list_institutions(None, PageRequest::default()).await.unwrap_err();
        assert!(matches!(error, AtriumError::Auth { status: 401, .. }), "{error:?}");
        assert!(!error.is_retryable());
    }
}

#[tokio::test]
async fn unknown_guids_and_codes_are_not_found() {
    let app = TestApp::start().await;
    let user = app.user().await;
    let missing_user = app.atrium.read_user("USR-nope").await.unwrap_err();
    let missing_member = app.atrium.read_member(&user, "MBR-nope").await.unwrap_err();
    let missing_institution = app.atrium.read_institution("no_such_bank").await.unwrap_err();
    let missing_credentials = app.atrium.list_institution_credentials("no_such_bank").await.unwrap_err();
    let other_users_member = {
        let owner = app.user().await;
        let member = app.member(&owner, "password").await;
        app.atrium.read_member(&user, &member.guid).await.unwrap_err()
    };
    for error in [missing_user, missing_member, missing_institution, missing_credentials, other_users_member] {
        assert!(matches!(error, AtriumError::NotFound { .. }), "{error:?}");
        assert_eq!(error.status(), Some(404));
    }
}

// ---------------------------------------------------------------------------
// Institutions

#[tokio::test]
async fn institutions_are_paged_and_searched_by_name() {
    let app = TestApp::start().await;
    let first = app.atrium.list_institutions(None, PageRequest::new(1, 5)).await.unwrap();
    assert_eq!(first.items.len(), 5);
    assert_eq!(first.items[0].code, MXBANK_CODE);
    let total = first.pagination.total_entries;
    assert!(total >= 20, "{total}");
    assert_eq!(u64::from(first.pagination.total_pages), total.div_ceil(5));

    let mut walked = Vec::new();
    for page in 1..=first.pagination.total_pages {
        let current = app.atrium.list_institutions(None, PageRequest::new(page, 5)).await.unwrap();
        assert_eq!(current.pagination.current_page, page);
        walked.extend(current.items);
    }
    let all = app.atrium.all_institutions(None).await.unwrap();
    assert_eq!(walked, all);
    assert_eq!(all.len() as u64, total);
    let codes: HashSet<_> = all.iter().map(|i| i.code.as_str()).collect();
    assert_eq!(codes.len(), all.len());
    assert!(codes.contains("chase") && codes.contains("wells_fargo"));

    let found = app.atrium.all_institutions(Some("mx")).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "MX Bank");
    let read = app.atrium.read_institution("chase").await.unwrap();
    assert_eq!(read.url.as_deref(), Some("https://www.chase.com"));
}

#[tokio::test]
async fn every_institution_asks_for_login_and_password() {
    let app = TestApp::start().await;
    let credentials = app.atrium.list_institution_credentials(MXBANK_CODE).await.unwrap();
    let guids: Vec<_> = credentials.iter().map(|c| c.guid.as_str()).collect();
    assert_eq!(guids, [MXBANK_LOGIN_GUID, MXBANK_PASSWORD_GUID]);
    assert_eq!(credentials[0].label, "Username");

    let mut third_fields = 0;
    for institution in app.atrium.all_institutions(None).await.unwrap() {
        let credentials = app.atrium.list_institution_credentials(&institution.code).await.unwrap();
        assert!(credentials.len() >= 2, "{}", institution.code);
        third_fields += usize::from(credentials.len() > 2);
    }
    assert!(third_fields > 0);
}

// ---------------------------------------------------------------------------
// Members

#[tokio::test]
async fn a_good_password_walks_the_statuses_to_completed() {
    let app = TestApp::start().await;
    let user = app.user().await;
    let member = app.member(&user, "password").await;
    assert!(member.guid.starts_with("MBR-"));
    assert_eq!(member.status, MemberStatus::Initiated);
    assert_eq!(member.connection_status, Some(ConnectionStatus::Created));
    assert_eq!(member.is_being_aggregated, Some(true));
    assert_eq!(member.name.as_deref(), Some("MX Bank"));

    let mut seen = vec![member.status.clone()];
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = loop {
        let status = app.atrium.read_member_status(&user, &member.guid).await.unwrap();
        if seen.last() != Some(&status.status) {
            seen.push(status.status.clone());
        }
        if status.status.is_settled() {
            break status;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(last.status, MemberStatus::Completed);
    assert_eq!(last.connection_status, Some(ConnectionStatus::Connected));
    assert_eq!(last.is_being_aggregated, Some(false));
    assert_eq!(last.has_processed_transactions, Some(true));
    assert!(last.successfully_aggregated_at.is_some());
    let order = [
        MemberStatus::Initiated,
        MemberStatus::Requested,
        MemberStatus::Authenticated,
        MemberStatus::Transferred,
        MemberStatus::Processed,
        MemberStatus::Completed,
    ];
    assert!(
        seen.iter().all(|s| order.contains(s)) && seen.is_sorted_by_key(|s| order.iter().position(|o| o == s)),
        "{seen:?}"
    );

    let read = app.atrium.read_member(&user, &member.guid).await.unwrap();
    assert_eq!(read.status, MemberStatus::Completed);
    let listed = app.atrium.all_members(&user).await.unwrap();
    assert_eq!(listed, vec![read]);
}

#[tokio::test]
async fn password_triggers_end_in_their_statuses() {
    let app = TestApp::start().await;
    let user = app.user().await;
    let cases = [
        (MXBANK_USERNAME, "UNAUTHORIZED", MemberStatus::Denied, ConnectionStatus::Denied),
        (MXBANK_USERNAME, "INVALID", MemberStatus::Denied, ConnectionStatus::Denied),
        (MXBANK_USERNAME, "LOCKED", MemberStatus::Denied, ConnectionStatus::Locked),
        (MXBANK_USERNAME, "DISABLED", MemberStatus::Denied, ConnectionStatus::Disabled),
        (MXBANK_USERNAME, "BAD_REQUEST", MemberStatus::Halted, ConnectionStatus::Failed),
        (MXBANK_USERNAME, "SERVER_ERROR", MemberStatus::Halted, ConnectionStatus::Failed),
        (MXBANK_USERNAME, "UNAVAILABLE", MemberStatus::Halted, ConnectionStatus::Failed),
        ("someone_else", "password", MemberStatus::Denied, ConnectionStatus::Denied),
        ("mxuser", "can_be_any", MemberStatus::Completed, ConnectionStatus::Connected),
    ];
    let mut members = Vec::new();
    for (username, password, _, _) in &cases {
        members.push(app.member_as(&user, username, password).await.guid);
    }
    for (member, (username, password, status, connection)) in members.iter().zip(cases) {
        let settled = app.settle(&user, member).await;
        assert_eq!(settled.status, status, "{username}/{password}");
        assert_eq!(settled.connection_status, Some(connection), "{username}/{password}");
        if status != MemberStatus::Completed {
            let accounts = app.atrium.all_member_accounts(&user, member).await.unwrap();
            assert!(accounts.is_empty(), "{username}/{password}");
        }
    }
}

#[tokio::test]
async fn a_text_challenge_answered_correct_completes() {
    let app = TestApp::start().await;
    let user = app.user().await;
    let member = app.member(&user, "challenge").await;
    assert!(app.atrium.list_member_challenges(&user, &member.guid).await.unwrap().is_empty());

    let challenged = app.settle(&user, &member.guid).await;
    assert_eq!(challenged.status, MemberStatus::Challenged);
    assert_eq!(challenged.connection_status, Some(ConnectionStatus::Challenged));
    assert_eq!(challenged.challenges.len(), 1);
    let challenge = &challenged.challenges[0];
    assert!(challenge.guid.starts_with("CRD-"));
    assert_eq!(challenge.challenge_type, ChallengeType::Text);
    assert!(!challenge.label.is_empty());
    let listed = app.atrium.list_member_challenges(&user, &member.guid).await.unwrap();
    assert_eq!(listed, challenged.challenges);

    let resumed =
        app.atrium.resume_member(&user, &member.guid, &answer_all(&challenged, CORRECT_ANSWER)).await.unwrap();
    assert_eq!(resumed.status, MemberStatus::Received);
    assert_eq!(resumed.connection_status, Some(ConnectionStatus::Resumed));
    assert_eq!(resumed.is_being_aggregated, Some(true));
    let done = app.settle(&user, &member.guid).await;
    assert_eq!(done.status, MemberStatus::Completed);
    assert!(done.challenges.is_empty());
    assert!(app.atrium.list_member_challenges(&user, &member.guid).await.unwrap().is_empty());
    assert_eq!(app.atrium.all_member_accounts(&user, &member.guid).await.unwrap().len(), 4);
}

#[tokio::test]
async fn options_and_image_challenges_take_the_correct_value() {
    let app = TestApp::start().await;
    let user = app.user().await;
    for (password, kind) in [("options", ChallengeType::Options), ("image", ChallengeType::ImageData)] {
        let member = app.member(&user, password).await;
        let challenged = app.settle(&user, &member.guid).await;
        assert_eq!(challenged.status, MemberStatus::Challenged);
        let challenge = &challenged.challenges[0];
        assert_eq!(challenge.challenge_type, kind);
        let value = match kind {
            ChallengeType::Options => {
                assert!(challenge.options.len() > 1);
                challenge.options.iter().find(|o| o.value == CORRECT_ANSWER).expect("a correct option").value.clone()
            }
            _ => {
                let image = challenge.image_data.as_deref().unwrap_or_default();
                assert!(image.starts_with("data:image/png;base64,"), "{image}");
                CORRECT_ANSWER.to_owned()
            }
        };
        app.atrium.resume_member(&user, &member.guid, &answer_all(&challenged, &value)).await.unwrap();
        assert_eq!(app.settle(&user, &member.guid).await.status, MemberStatus::Completed);
    }
}

#[tokio::test]
async fn a_wrong_answer_denies_and_a_fresh_challenge_can_then_be_answered() {
    let app = TestApp::start().await;
    let user = app.user().await;
    let member = app.member(&user, "challenge").await;
    let first = app.settle(&user, &member.guid).await;
    app.atrium.resume_member(&user, &member.guid, &answer_all(&first, "Paris")).await.unwrap();
    let denied = app.settle(&user, &member.guid).await;
    assert_eq!(denied.status, MemberStatus::Denied);
    assert!(denied.successfully_aggregated_at.is_none());

    // Re-entering the credentials brings a new question.
    let updated = app
        .atrium
        .update_member(
            &user,
            &member.guid,
            &MemberUpdate::credentials(vec![CredentialValue::new(MXBANK_PASSWORD_GUID, "challenge")]),
        )
        .await
        .unwrap();
    assert_eq!(updated.status, MemberStatus::Initiated);
    assert_eq!(updated.connection_status, Some(ConnectionStatus::Updated));
    let second = app.settle(&user, &member.guid).await;
    assert_eq!(second.status, MemberStatus::Challenged);
    assert_ne!(second.challenges[0].guid, first.challenges[0].guid);

    // An old challenge guid is not accepted any more.
    let stale = app.atrium.resume_member(&user, &member.guid, &answer_all(&first, CORRECT_ANSWER)).await.unwrap_err();
    assert!(matches!(stale, AtriumError::Other { status: Some(400), .. }), "{stale:?}");

    app.atrium.resume_member(&user, &member.guid, &answer_all(&second, CORRECT_ANSWER)).await.unwrap();
    assert_eq!(app.settle(&user, &member.guid).await.status, MemberStatus::Completed);

    // Aggregating again with the stored `challenge` password asks once more.
    let again = app.atrium.aggregate_member(&user, &member.guid).await.unwrap();
    assert_eq!(again.status, MemberStatus::Initiated);
    let third = app.settle(&user, &member.guid).await;
    assert_eq!(third.status, MemberStatus::Challenged);
    assert_ne!(third.challenges[0].guid, second.challenges[0].guid);
    assert!(third.successfully_aggregated_at.is_some());
}

#[tokio::test]
async fn resume_needs_answers_and_a_challenged_member() {
    let app = TestApp::start().await;
    let user = app.user().await;
    let member = app.member(&user, "challenge").await;
    app.settle(&user, &member.guid).await;
    let empty = app.atrium.resume_member(&user, &member.guid, &[]).await.unwrap_err();
    assert!(
        matches!(empty, AtriumError::Other { status: Some(400), ref message } if message.contains("no challenge")),
        "{empty:?}"
    );

    let plain = app.completed_member(&user).await;
    let not_challenged =
        app.atrium.resume_member(&user, &plain, &[ChallengeAnswer::new("CRD-x", "correct")]).await.unwrap_err();
    assert!(matches!(not_challenged, AtriumError::Conflict { .. }), "{not_challenged:?}");
}

#[tokio::test]
async fn aggregate_reruns_a_member_and_accepts_while_running() {
    let app = TestApp::start().await;
    let user = app.user().await;
    let member = app.completed_member(&user).await;
    let first = app.atrium.read_member(&user, &member).await.unwrap();

    let rerun = app.atrium.aggregate_member(&user, &member).await.unwrap();
    assert_eq!(rerun.status, MemberStatus::Initiated);
    assert_eq!(rerun.connection_status, Some(ConnectionStatus::Connected));
    assert_eq!(rerun.is_being_aggregated, Some(true));
    assert_eq!(rerun.successfully_aggregated_at, first.successfully_aggregated_at);
    // A second aggregate while the first runs answers 202 with the member.
    let running = app.atrium.aggregate_member(&user, &member).await.unwrap();
    assert_eq!(running.is_being_aggregated, Some(true));

    let done = app.settle(&user, &member).await;
    assert_eq!(done.status, MemberStatus::Completed);
    // Atrium times have whole seconds, so the rerun may share the first's.
    assert!(done.successfully_aggregated_at >= first.successfully_aggregated_at);
}

#[tokio::test]
async fn a_member_with_the_same_credentials_twice_is_a_conflict() {
    let app = TestApp::start().await;
    let user = app.user().await;
    app.member(&user, "password").await;
    let error = app.atrium.create_member(&user, &mxbank(MXBANK_USERNAME, "password")).await.unwrap_err();
    assert!(matches!(error, AtriumError::Conflict { .. }), "{error:?}");
}

#[tokio::test]
async fn deleted_members_and_their_data_are_gone() {
    let app = TestApp::start().await;
    let user = app.user().await;
    let member = app.completed_member(&user).await;
    assert_eq!(app.atrium.all_accounts(&user).await.unwrap().len(), 4);
    app.atrium.delete_member(&user, &member).await.unwrap();
    let error = app.atrium.read_member_status(&user, &member).await.unwrap_err();
    assert!(matches!(error, AtriumError::NotFound { .. }));
    assert!(app.atrium.all_accounts(&user).await.unwrap().is_empty());
    assert!(app.atrium.all_members(&user).await.unwrap().is_empty());
    let twice = app.atrium.delete_member(&user, &member).await.unwrap_err();
    assert!(matches!(twice, AtriumError::NotFound { .. }));
}

// ---------------------------------------------------------------------------
// Accounts and transactions

#[tokio::test]
async fn accounts_and_transactions_appear_once_the_member_completes() {
    let app = TestApp::start().await;
    let user = app.user().await;
    let member = app.member(&user, "password").await;
    let early = app.atrium.list_member_accounts(&user, &member.guid, PageRequest::default()).await.unwrap();
    assert!(early.items.is_empty());
    assert_eq!(early.pagination.total_entries, 0);
    assert_eq!(early.pagination.total_pages, 1);
    app.settle(&user, &member.guid).await;

    let accounts = app.atrium.all_member_accounts(&user, &member.guid).await.unwrap();
    assert_eq!(accounts.len(), 4);
    assert!(accounts.iter().all(|a| a.guid.starts_with("ACT-")
        && a.member_guid.as_deref() == Some(member.guid.as_str())
        && a.balance.is_some()));
    assert_eq!(app.atrium.all_accounts(&user).await.unwrap(), accounts);

    let transactions = app.atrium.all_member_transactions(&user, &member.guid, DateRange::default()).await.unwrap();
    assert!(transactions.len() > 100, "{}", transactions.len());
    let account_guids: HashSet<_> = accounts.iter().map(|a| a.guid.as_str()).collect();
    assert!(transactions.iter().all(|t| {
        t.guid.starts_with("TRN-")
            && t.amount.cents() > 0
            && account_guids.contains(t.account_guid.as_deref().unwrap_or_default())
    }));
    assert!(transactions.iter().any(|t| t.transaction_type == TransactionType::Credit));
    assert!(transactions.iter().any(|t| t.amount.cents() % 100 != 0));
    let today = Utc::now().date_naive();
    assert!(transactions.iter().all(|t| t.date <= today && t.date > today - Days::new(90)));

    // The same member reads the same data again (deterministic from its guid).
    let again = app.atrium.all_member_transactions(&user, &member.guid, DateRange::default()).await.unwrap();
    assert_eq!(again, transactions);

    // Paging by hand through small pages gives the same list.
    let mut walked = Vec::new();
    let mut page = 1;
    loop {
        let current = app
            .atrium
            .list_member_transactions(&user, &member.guid, DateRange::default(), PageRequest::new(page, 25))
            .await
            .unwrap();
        assert_eq!(current.pagination.per_page, 25);
        assert_eq!(current.pagination.total_entries, transactions.len() as u64);
        walked.extend(current.items);
        if page >= current.pagination.total_pages {
            break;
        }
        page += 1;
    }
    assert_eq!(walked, transactions);

    // The date window filters on `date`, inclusively.
    let from = today - Days::new(9);
    let window = app.atrium.all_transactions(&user, DateRange::between(from, today)).await.unwrap();
    let expected: Vec<_> = transactions.iter().filter(|t| t.date >= from).cloned().collect();
    assert_eq!(window, expected);
    assert!(!window.is_empty());
}

#[tokio::test]
async fn user_wide_lists_combine_every_member() {
    let app = TestApp::start().await;
    let user = app.user().await;
    let first = app.completed_member(&user).await;
    let second = app.member_as(&user, "mxuser", "other").await.guid;
    app.settle(&user, &second).await;

    let accounts = app.atrium.all_accounts(&user).await.unwrap();
    assert_eq!(accounts.len(), 8);
    let all = app.atrium.all_transactions(&user, DateRange::default()).await.unwrap();
    let of_first = app.atrium.all_member_transactions(&user, &first, DateRange::default()).await.unwrap();
    let of_second = app.atrium.all_member_transactions(&user, &second, DateRange::default()).await.unwrap();
    assert_eq!(all.len(), of_first.len() + of_second.len());
    assert!(all.is_sorted_by_key(|t| t.date));
    assert_ne!(of_first[0].guid, of_second[0].guid);
}

#[tokio::test]
async fn the_transaction_count_knob_sets_how_many_a_member_gets() {
    let app = TestApp::start().await;
    let user = app.user().await;
    let member = app.completed_member(&user).await;

    let settings = reqwest::Client::new()
        .post(app.sim.base_url().join("__sim/settings").unwrap())
        .json(&json!({"transactions_per_member": 2_500}))
        .send()
        .await
        .unwrap();
    assert_eq!(settings.status(), 200);
    let settings: Value = settings.json().await.unwrap();
    assert_eq!(settings["transactions_per_member"], json!(2_500));

    let first_page = app.atrium.list_transactions(&user, DateRange::default(), PageRequest::largest()).await.unwrap();
    assert_eq!(first_page.items.len(), 1_000);
    assert_eq!(first_page.pagination.total_entries, 2_500);
    assert_eq!(first_page.pagination.total_pages, 3);
    let all = app.atrium.all_member_transactions(&user, &member, DateRange::default()).await.unwrap();
    assert_eq!(all.len(), 2_500);
    assert_eq!(all.iter().map(|t| &t.guid).collect::<HashSet<_>>().len(), 2_500);

    app.sim.set_transactions_per_member(None);
    let default = app.atrium.all_member_transactions(&user, &member, DateRange::default()).await.unwrap();
    assert!(default.len() < 1_000);
}

#[tokio::test]
async fn services_can_hold_the_client_as_a_shared_aggregator() {
    let app = TestApp::start().await;
    let user = app.user().await;
    let member = app.completed_member(&user).await;
    let aggregator: std::sync::Arc<dyn Aggregator> = std::sync::Arc::new(app.atrium.clone());
    let accounts = aggregator.all_member_accounts(&user, &member).await.unwrap();
    assert_eq!(accounts.len(), 4);
    let worker = {
        let aggregator = aggregator.clone();
        let user = user.clone();
        tokio::spawn(async move { aggregator.all_transactions(&user, DateRange::default()).await })
    };
    assert!(!worker.await.unwrap().unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// The wire itself

#[tokio::test]
async fn responses_use_atrium_envelopes_and_error_bodies() {
    let app = TestApp::start().await;
    let user = app.user().await;
    let member = app.completed_member(&user).await;

    let (status, body) = app.raw_get(&format!("users/{user}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["user"]["guid"], json!(user));
    assert!(body["user"].get("is_disabled").is_some());

    let (_, body) = app.raw_get("institutions?records_per_page=2&page=2").await;
    assert_eq!(body["institutions"].as_array().unwrap().len(), 2);
    assert_eq!(body["pagination"]["current_page"], json!(2));
    assert_eq!(body["pagination"]["per_page"], json!(2));

    let (_, body) = app.raw_get(&format!("users/{user}/members")).await;
    assert_eq!(body["members"][0]["status"], json!("COMPLETED"));
    assert_eq!(body["members"][0]["connection_status"], json!("CONNECTED"));
    assert_eq!(body["pagination"]["total_entries"], json!(1));

    let (_, body) = app.raw_get(&format!("users/{user}/members/{member}/status")).await;
    assert_eq!(body["member"]["status"], json!("COMPLETED"));
    assert!(body["member"].get("challenges").is_none());

    let (status, body) = app.raw_get(&format!("users/{user}/members/{member}/challenges")).await;
    assert_eq!((status, body), (204, Value::Null));

    let (_, body) = app.raw_get(&format!("users/{user}/transactions?records_per_page=1")).await;
    let transaction = &body["transactions"][0];
    assert!(transaction["amount"].is_f64() || transaction["amount"].is_u64());
    assert!(["DEBIT", "CREDIT"].contains(&transaction["type"].as_str().unwrap()));
    assert_eq!(transaction["status"], json!("POSTED"));
    assert!(transaction["transacted_at"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(transaction["date"].as_str().unwrap().len(), 10);

    let (_, body) = app.raw_get(&format!("users/{user}/accounts/{}", "ACT-missing")).await;
    assert!(body["error"]["message"].is_string());

    let (status, body) = app.raw_get("no/such/path").await;
    assert_eq!(status, 404);
    assert!(body["error"]["message"].is_string());

    let (status, body) = app.raw_get(&format!("users/{user}/transactions?from_date=yesterday")).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn the_accept_header_is_checked_for_another_vendor_type_only() {
    let app = TestApp::start().await;
    let url = app.sim.base_url().join("institutions").unwrap();
    let send = |accept: Option<&'static str>| {
        let mut request = reqwest::Client::new()
            .get(url.clone())
            .header("MX-API-Key", SANDBOX_API_KEY)
            .header("MX-Client-ID", SANDBOX_CLIENT_ID);
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(send(None).await, 200);
    assert_eq!(send(Some(MEDIA_TYPE)).await, 200);
    assert_eq!(send(Some("application/vnd.mx.atrium.v2+json")).await, 406);
    assert_eq!(send(Some("application/vnd.github+json")).await, 406);

    let unauthenticated = reqwest::get(url.clone()).await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let body: Value = unauthenticated.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("MX-API-Key"));
}

// ---------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn rate_limited_requests_carry_retry_after() {
    let app = TestApp::start().await;
    app.sim.set_faults(Faults { rate_limit_rate: 1.0, ..Faults::default() });
    let error = app.atrium.read_institution(MXBANK_CODE).await.unwrap_err();
    assert!(
        matches!(error, AtriumError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(1)),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(error.failure(), ProviderFailure::RateLimited { retry_after: Some(Duration::from_secs(1)) });
}

#[tokio::test]
async fn server_errors_and_outages_are_retryable() {
    let app = TestApp::start().await;
    app.sim.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let error = app.atrium.read_institution(MXBANK_CODE).await.unwrap_err();
    assert!(matches!(error, AtriumError::Retryable { status: Some(500), .. }), "{error:?}");
    assert!(error.is_retryable());

    for status in [503, 500] {
        app.sim.set_faults(Faults::outage(status));
        let error = app.atrium.list_users(PageRequest::default()).await.unwrap_err();
        assert_eq!(error.status(), Some(status));
        assert!(error.is_retryable(), "{error:?}");
        assert_eq!(error.failure(), ProviderFailure::Transient { retry_after: None });
    }

    app.sim.set_faults(Faults::default());
    app.atrium.read_institution(MXBANK_CODE).await.unwrap();
}

#[tokio::test]
async fn a_failure_rate_fails_only_some_requests() {
    let app = TestApp::start_with(AtriumSimConfig {
        faults: Faults { error_rate: 0.3, rate_limit_rate: 0.2, ..Faults::default() },
        ..AtriumSimConfig::default()
    })
    .await;
    let mut failures = 0;
    for _ in 0..60 {
        if let Err(error) = app.atrium.read_institution(MXBANK_CODE).await {
            assert!(error.is_retryable(), "{error:?}");
            failures += 1;
        }
    }
    assert!((10..=50).contains(&failures), "{failures} of 60 failed");
}

#[tokio::test]
async fn a_slow_atrium_times_out_as_retryable() {
    let app = TestApp::start().await;
    app.sim.set_faults(Faults { latency: Duration::from_secs(1), ..Faults::default() });
    let impatient = client(&app.sim, SANDBOX_CLIENT_ID, SANDBOX_API_KEY, Duration::from_millis(100));
    let started = Instant::now();
    let error = impatient.read_institution(MXBANK_CODE).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(800));
    assert!(matches!(error, AtriumError::Retryable { status: None, .. }), "{error:?}");
    assert!(error.is_retryable());

    // The patient client still gets an answer.
    app.atrium.read_institution(MXBANK_CODE).await.unwrap();
    app.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn faults_can_be_set_over_the_control_endpoint() {
    let app = TestApp::start().await;
    let url = app.sim.base_url().join("__sim/faults").unwrap();
    let http = reqwest::Client::new();

    let set = http.post(url.clone()).json(&json!({"outage": 503})).send().await.unwrap();
    assert_eq!(set.status(), 200);
    let error = app.atrium.read_institution(MXBANK_CODE).await.unwrap_err();
    assert!(matches!(error, AtriumError::Retryable { status: Some(503), .. }), "{error:?}");

    let current: Value = http.get(url.clone()).send().await.unwrap().json().await.unwrap();
    assert_eq!(current, json!({"latency_ms": 0, "error_rate": 0.0, "rate_limit_rate": 0.0, "outage": 503}));
    assert_eq!(app.sim.faults(), Faults::outage(503));

    let invalid = http.post(url.clone()).json(&json!({"error_rate": 2.0})).send().await.unwrap();
    assert_eq!(invalid.status(), 400);

    http.post(url).json(&json!({})).send().await.unwrap();
    app.atrium.read_institution(MXBANK_CODE).await.unwrap();
}

#[tokio::test]
async fn the_simulator_shuts_down_and_stops_answering() {
    let app = TestApp::start().await;
    app.atrium.read_institution(MXBANK_CODE).await.unwrap();
    let atrium = app.atrium.clone();
    app.sim.shutdown().await.unwrap();
    let error = atrium.read_institution(MXBANK_CODE).await.unwrap_err();
    assert!(matches!(error, AtriumError::Retryable { status: None, .. }), "{error:?}");
}
