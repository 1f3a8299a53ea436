//! The storage contract: every store operation, on SQLite always and on PostgreSQL when
//! `DONKIES_TEST_POSTGRES_URL` is set (without it the PostgreSQL cases show as ignored).

/// The ledger against its in-memory model (one test binary per crate).
#[path = "model/ledger.rs"]
mod ledger_model;
/// The two migration trees against each other, and released migrations against their checksums.
#[path = "schema/parity.rs"]
mod schema_parity;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use donkies_domain::{
    AccountFamily, BankAccountType, Cents, CustomerKind, CustomerStatus, DebtShares, Direction, FundingSourceStatus,
    FundingSourceType, MemberStatus, MicroDepositStatus, Share, TransferAmount, TransferStatus, VerificationType,
};
use donkies_store::accounts::AccountData;
use donkies_store::institutions::{CatalogEntry, Credential, Institution};
use donkies_store::members::{Challenge, NewMember, StatusUpdate};
use donkies_store::social::NewIdentity;
use donkies_store::tokens::{NewActionToken, Purpose};
use donkies_store::transactions::TransactionData;
use donkies_store::users::{NewUser, ProfileUpdate};
use donkies_store::{
    Db, StoreError, accounts, institutions, jobs, members, new_hex_id, new_id, now, outbox, payments, rate_limits,
    social, tokens, transactions, users,
};

/// Run one store write in a transaction of its own, committed when the write succeeds.
macro_rules! alone {
    ($db:expr, $write:path, $($arg:expr),* $(,)?) => {{
        let mut tx = $db.begin().await.unwrap();
        let result = $write(&mut tx, $($arg),*).await;
        if result.is_ok() {
            tx.commit().await.unwrap();
        }
        result
    }};
}

macro_rules! contract {
    (at migration $version:expr; $($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                let t = donkies_store::testing::TestDb::sqlite_at($version).await;
                super::$case(t.db.clone()).await;
            }
            #[tokio::test]
            #[cfg_attr(not(postgres_tests), ignore = "set DONKIES_TEST_POSTGRES_URL to run the PostgreSQL half")]
            async fn postgres() {
                let t = donkies_store::testing::TestDb::postgres_at($version).await;
                super::$case(t.db.clone()).await;
            }
        }
    )*};
    ($($case:ident),* $(,)?) => {
        contract!(at migration i64::MAX; $($case),*);
    };
}

contract!(
    rate_limit_attempts_count_per_key_and_window_until_the_window_ends,
    user_insert_and_lookups,
    taken_email_is_a_conflict,
    confirm_needs_the_right_token_once,
    profile_completes_and_then_freezes,
    settings_and_close,
    session_tokens_resolve_and_revoke,
    action_tokens_are_single_use_and_expire,
    email_change_conflicts_with_taken_address,
    outbox_keeps_mail_until_sent,
    jobs_enqueued_with_a_rolled_back_change_vanish,
    jobs_with_a_dedupe_key_are_queued_once_while_live,
    jobs_claim_complete_and_wait_for_run_at,
    jobs_fail_retry_then_park,
    jobs_expired_lease_is_claimed_again,
    jobs_interactive_run_before_batch_and_the_next_due_is_known,
    jobs_concurrent_claims_never_share_a_job,
    periodic_slot_enqueues_once,
    institutions_upsert_refreshes_by_code_keeping_the_id,
    institutions_list_searches_any_case_within_the_limit,
    institutions_credentials_are_replaced_and_ordered,
    members_one_live_member_per_user_and_institution,
    members_lookups_are_scoped_to_the_user_and_hide_deleted,
    members_restart_retires_older_poll_generations,
    members_challenges_round_trip_in_order,
    members_completed_list_and_status,
    members_deleting_hides_accounts_until_relinked,
    accounts_refresh_keeps_what_the_user_set,
    accounts_are_scoped_hidden_and_counted,
    accounts_shares_replace_each_other,
    transactions_upsert_in_batches_without_duplicates,
    transactions_drop_nul_characters_from_provider_text,
    transactions_belong_to_an_existing_account_of_their_user,
    transactions_list_version_follows_every_change_to_the_list,
    transactions_large_ingest_round_trips_every_field_and_reingest_updates_in_place,
    transactions_list_newest_first_scoped_and_visible,
    social_link_find_and_refresh,
    social_identity_of_another_user_is_a_conflict,
    social_request_tokens_are_taken_once_before_expiry,
    engines_agree_on_search_case_wildcards_and_missing_times,
    restarting_an_unknown_member_is_not_found,
    transactions_page_by_limit_and_offset,
    conflicts_name_the_same_constraint_on_both_engines,
    ids_are_program_chosen_integers,
    domain_values_round_trip_and_bad_stored_values_are_refused,
    debt_shares_are_the_active_debt_accounts_in_order,
);

// A database as release 0003 (text ids) left it, then the rest of the migrations.
contract!(at migration 3; integer_ids_migration_keeps_every_row_and_relation);

/// Run one statement with positional arguments on whichever engine `db` is.
macro_rules! raw {
    ($db:expr, $sql:expr $(, $arg:expr)* $(,)?) => {
        donkies_store::on_db!($db, pool => sqlx::query($sql)$(.bind($arg))*.execute(pool).await.map(|_| ())).unwrap()
    };
}

async fn make_user(db: &Db, email: &str) -> i64 {
    make_user_result(db, email).await.unwrap()
}

async fn make_user_result(db: &Db, email: &str) -> Result<i64, StoreError> {
    let id = new_id();
    let mut tx = db.begin().await?;
    users::insert(
        &mut tx,
        &NewUser {
            id,
            email,
            password_hash: "hash",
            first_name: "Ada",
            last_name: "Lovelace",
            identifier: &new_hex_id(),
            encrypted_id: &format!("enc-{id}"),
            confirmation_token_hash: "confirm-hash",
            now: now(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

async fn user_insert_and_lookups(db: Db) {
    let id = make_user(&db, "ada@example.com").await;
    let by_id = users::find_by_id(&db, id).await.unwrap().unwrap();
    assert_eq!(by_id.email, "ada@example.com");
    assert!(!by_id.is_confirmed);
    assert!(!by_id.is_profile_completed);
    assert_eq!(by_id.minimum_transfer_amount, TransferAmount::default());
    let by_email = users::find_by_email(&db, "ada@example.com").await.unwrap().unwrap();
    assert_eq!(by_email.id, id);
    let by_enc = users::find_by_encrypted_id(&db, &by_id.encrypted_id).await.unwrap().unwrap();
    assert_eq!(by_enc.id, id);
    assert!(users::find_by_email(&db, "nobody@example.com").await.unwrap().is_none());
    alone!(&db, users::set_guid, id, "USR-1", now()).unwrap();
    assert_eq!(users::find_by_id(&db, id).await.unwrap().unwrap().guid.as_deref(), Some("USR-1"));
}

async fn taken_email_is_a_conflict(db: Db) {
    make_user(&db, "ada@example.com").await;
    let mut tx = db.begin().await.unwrap();
    let err = users::insert(
        &mut tx,
        &NewUser {
            id: new_id(),
            email: "ada@example.com",
            password_hash: "h",
            first_name: "A",
            last_name: "B",
            identifier: &new_hex_id(),
            encrypted_id: &new_hex_id(),
            confirmation_token_hash: "c",
            now: now(),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn confirm_needs_the_right_token_once(db: Db) {
    let id = make_user(&db, "ada@example.com").await;
    assert!(!alone!(&db, users::confirm, id, "wrong", now()).unwrap());
    assert!(alone!(&db, users::confirm, id, "confirm-hash", now()).unwrap());
    assert!(!alone!(&db, users::confirm, id, "confirm-hash", now()).unwrap());
    assert!(users::find_by_id(&db, id).await.unwrap().unwrap().is_confirmed);
}

async fn profile_completes_and_then_freezes(db: Db) {
    let id = make_user(&db, "ada@example.com").await;
    let partial = ProfileUpdate { city: Some("Boston".into()), ..Default::default() };
    let user = alone!(&db, users::update_profile, id, &partial, now()).unwrap().unwrap();
    assert_eq!(user.city.as_deref(), Some("Boston"));
    assert!(!user.is_profile_completed);
    let rest = ProfileUpdate {
        phone: Some("6175550100".into()),
        address1: Some("1 Main St".into()),
        state: Some("MA".into()),
        postal_code: Some("02108".into()),
        date_of_birth: Some(NaiveDate::from_ymd_opt(1990, 5, 17).unwrap()),
        ssn_encrypted: Some("sealed".into()),
        ssn_last4: Some("6789".into()),
        ..Default::default()
    };
    let user = alone!(&db, users::update_profile, id, &rest, now()).unwrap().unwrap();
    assert!(user.is_profile_completed);
    assert_eq!(user.city.as_deref(), Some("Boston"), "earlier fields are kept");
    assert_eq!(user.date_of_birth, NaiveDate::from_ymd_opt(1990, 5, 17));
    let again = ProfileUpdate { city: Some("Paris".into()), ..Default::default() };
    assert!(alone!(&db, users::update_profile, id, &again, now()).unwrap().is_none());
    assert_eq!(users::find_by_id(&db, id).await.unwrap().unwrap().city.as_deref(), Some("Boston"));
}

async fn settings_and_close(db: Db) {
    let id = make_user(&db, "ada@example.com").await;
    let minimum = users::SettingsUpdate {
        minimum_transfer_amount: Some(TransferAmount::parse(50).unwrap()),
        daily_cap: Some(Some(20)),
        monthly_cap: Some(Some(200)),
        ..Default::default()
    };
    alone!(&db, users::update_settings, id, &minimum, now()).unwrap();
    let rules = users::SettingsUpdate {
        is_even_roundup: Some(true),
        roundups_paused: Some(true),
        roundup_multiplier: Some(5),
        daily_cap: Some(None),
        ..Default::default()
    };
    alone!(&db, users::update_settings, id, &rules, now()).unwrap();
    let user = users::find_by_id(&db, id).await.unwrap().unwrap();
    assert_eq!((user.minimum_transfer_amount.get(), user.is_even_roundup), (50, true));
    assert_eq!((user.roundups_paused, user.roundup_multiplier), (true, 5));
    assert_eq!((user.daily_cap, user.monthly_cap), (None, Some(200)), "a cap removed, the other kept");
    alone!(&db, users::close_account, id, now()).unwrap();
    let user = users::find_by_id(&db, id).await.unwrap().unwrap();
    assert!(user.is_closed_account);
    assert!(user.closed_at.is_some());
}

async fn session_tokens_resolve_and_revoke(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let t = now();
    alone!(&db, tokens::insert_session, "tok-a1", ada, t, t + Duration::minutes(10)).unwrap();
    alone!(&db, tokens::insert_session, "tok-a2", ada, t, t + Duration::minutes(10)).unwrap();
    alone!(&db, tokens::insert_session, "tok-b", bob, t, t + Duration::minutes(10)).unwrap();
    let (user, expires) = users::find_by_token_hash(&db, "tok-a2").await.unwrap().unwrap();
    assert_eq!(user.id, ada);
    assert_eq!(expires, t + Duration::minutes(10));
    assert!(users::find_by_token_hash(&db, "nope").await.unwrap().is_none());
    let mut tx = db.begin().await.unwrap();
    assert_eq!(tokens::delete_sessions(&mut tx, ada).await.unwrap(), 2);
    tx.commit().await.unwrap();
    assert!(users::find_by_token_hash(&db, "tok-a1").await.unwrap().is_none());
    assert_eq!(tokens::count_sessions(&db, bob).await.unwrap(), 1, "other users keep theirs");
}

async fn action_tokens_are_single_use_and_expire(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let t = now();
    let mut tx = db.begin().await.unwrap();
    for (hash, expires) in [("fresh", t + Duration::hours(1)), ("stale", t - Duration::seconds(1))] {
        tokens::insert_action(
            &mut tx,
            &NewActionToken {
                token_hash: hash,
                user_id: ada,
                purpose: Purpose::PasswordReset,
                new_email: None,
                now: t,
                expires_at: expires,
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    assert!(
        tokens::consume_action(&mut tx, "fresh", bob, Purpose::PasswordReset, t).await.unwrap().is_none(),
        "not bob's"
    );
    assert!(
        tokens::consume_action(&mut tx, "fresh", ada, Purpose::EmailChange, t).await.unwrap().is_none(),
        "wrong purpose"
    );
    assert!(
        tokens::consume_action(&mut tx, "stale", ada, Purpose::PasswordReset, t).await.unwrap().is_none(),
        "expired"
    );
    assert_eq!(tokens::consume_action(&mut tx, "fresh", ada, Purpose::PasswordReset, t).await.unwrap(), Some(None));
    assert!(
        tokens::consume_action(&mut tx, "fresh", ada, Purpose::PasswordReset, t).await.unwrap().is_none(),
        "used once"
    );
    tx.commit().await.unwrap();
}

async fn email_change_conflicts_with_taken_address(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    make_user(&db, "bob@example.com").await;
    let mut tx = db.begin().await.unwrap();
    let err = users::set_email(&mut tx, ada, "bob@example.com", now()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    drop(tx);
    let mut tx = db.begin().await.unwrap();
    users::set_email(&mut tx, ada, "ada@new.example.com", now()).await.unwrap();
    tx.commit().await.unwrap();
    assert!(users::find_by_email(&db, "ada@new.example.com").await.unwrap().is_some());
}

async fn outbox_keeps_mail_until_sent(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let mail = outbox::Mail {
        id: new_id(),
        user_id: Some(ada),
        template: "signup_confirmation".into(),
        to_address: "ada@example.com".into(),
        subject: "Confirm".into(),
        text_body: "text".into(),
        html_body: "<p>html</p>".into(),
        created_at: now(),
        sent_at: None,
    };
    let mut tx = db.begin().await.unwrap();
    outbox::insert(&mut tx, &mail).await.unwrap();
    tx.commit().await.unwrap();
    let stored = outbox::get(&db, mail.id).await.unwrap().unwrap();
    assert_eq!((stored.subject.as_str(), stored.sent_at), ("Confirm", None));
    alone!(&db, outbox::mark_sent, mail.id, now()).unwrap();
    assert!(outbox::get(&db, mail.id).await.unwrap().unwrap().sent_at.is_some());
    assert_eq!(outbox::list_to(&db, "ada@example.com").await.unwrap().len(), 1);
}

async fn enqueue_one(db: &Db, kind: &str, run_at: chrono::DateTime<chrono::Utc>, max_attempts: i64) -> i64 {
    enqueue_at(db, kind, run_at, max_attempts, jobs::Priority::Batch).await
}

async fn enqueue_at(
    db: &Db,
    kind: &str,
    run_at: chrono::DateTime<chrono::Utc>,
    max_attempts: i64,
    priority: jobs::Priority,
) -> i64 {
    let mut tx = db.begin().await.unwrap();
    let payload = serde_json::json!({"n": 1});
    let job = jobs::NewJob { kind, payload: &payload, max_attempts, run_at, dedupe_key: None, priority };
    let id = jobs::enqueue(&mut tx, &job, now()).await.unwrap().expect("no dedupe key: always enqueued");
    tx.commit().await.unwrap();
    id
}

async fn jobs_with_a_dedupe_key_are_queued_once_while_live(db: Db) {
    let payload = serde_json::json!({"member_id": "m1"});
    let job = jobs::NewJob {
        kind: "sync",
        payload: &payload,
        max_attempts: 1,
        run_at: now(),
        dedupe_key: Some("sync:m1"),
        priority: jobs::Priority::Batch,
    };
    let mut tx = db.begin().await.unwrap();
    let first = jobs::enqueue(&mut tx, &job, now()).await.unwrap();
    assert!(first.is_some());
    assert_eq!(jobs::enqueue(&mut tx, &job, now()).await.unwrap(), None, "same key in the same transaction");
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    assert_eq!(jobs::enqueue(&mut tx, &job, now()).await.unwrap(), None, "same key while queued");
    let other = jobs::NewJob { dedupe_key: Some("sync:m2"), ..job };
    assert!(jobs::enqueue(&mut tx, &other, now()).await.unwrap().is_some(), "another key is another job");
    tx.commit().await.unwrap();
    assert_eq!(jobs::list(&db, false).await.unwrap().len(), 2);

    // Running still holds the key; parking gives it up, so the work can be asked for again.
    let claimed = jobs::claim(&db, "w", now(), now() + Duration::seconds(30)).await.unwrap().unwrap();
    let mut tx = db.begin().await.unwrap();
    let held =
        jobs::NewJob { dedupe_key: if Some(claimed.id) == first { Some("sync:m1") } else { Some("sync:m2") }, ..job };
    assert_eq!(jobs::enqueue(&mut tx, &held, now()).await.unwrap(), None, "same key while running");
    drop(tx);
    jobs::fail(&db, claimed.id, "w", "boom", None, now()).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    assert!(jobs::enqueue(&mut tx, &held, now()).await.unwrap().is_some(), "a parked job frees its key");
    tx.commit().await.unwrap();
}

async fn jobs_enqueued_with_a_rolled_back_change_vanish(db: Db) {
    let mut tx = db.begin().await.unwrap();
    let payload = serde_json::json!({});
    let job = jobs::NewJob {
        kind: "k",
        payload: &payload,
        max_attempts: 3,
        run_at: now(),
        dedupe_key: None,
        priority: jobs::Priority::Batch,
    };
    let id = jobs::enqueue(&mut tx, &job, now()).await.unwrap().unwrap();
    drop(tx);
    assert!(jobs::get(&db, id).await.unwrap().is_none());
    assert!(jobs::claim(&db, "w", now(), now() + Duration::seconds(30)).await.unwrap().is_none());
}

async fn jobs_claim_complete_and_wait_for_run_at(db: Db) {
    let t = now();
    let later = enqueue_one(&db, "later", t + Duration::minutes(5), 3).await;
    let due = enqueue_one(&db, "due", t, 3).await;
    let job = jobs::claim(&db, "w1", t, t + Duration::seconds(30)).await.unwrap().unwrap();
    assert_eq!((job.id, job.kind.as_str(), job.attempts), (due, "due", 1));
    assert_eq!(job.payload, r#"{"n":1}"#);
    assert!(jobs::claim(&db, "w2", t, t + Duration::seconds(30)).await.unwrap().is_none(), "the other is not due");
    jobs::complete(&db, due, "w1").await.unwrap();
    assert!(jobs::get(&db, due).await.unwrap().is_none());
    let job = jobs::claim(&db, "w1", t + Duration::minutes(6), t + Duration::minutes(7)).await.unwrap().unwrap();
    assert_eq!(job.id, later);
}

async fn jobs_fail_retry_then_park(db: Db) {
    let t = now();
    let id = enqueue_one(&db, "k", t, 2).await;
    jobs::claim(&db, "w", t, t + Duration::seconds(30)).await.unwrap().unwrap();
    jobs::fail(&db, id, "w", "smtp down", Some(t + Duration::seconds(10)), t).await.unwrap();
    let job = jobs::get(&db, id).await.unwrap().unwrap();
    assert_eq!((job.status.as_str(), job.last_error.as_deref()), (jobs::QUEUED, Some("smtp down")));
    assert!(jobs::claim(&db, "w", t, t + Duration::seconds(30)).await.unwrap().is_none(), "backing off");
    let job = jobs::claim(&db, "w", t + Duration::seconds(11), t + Duration::seconds(40)).await.unwrap().unwrap();
    assert_eq!(job.attempts, 2);
    jobs::fail(&db, id, "w", "still down", None, t).await.unwrap();
    let failed = jobs::list(&db, true).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].last_error.as_deref(), Some("still down"));
    assert!(jobs::claim(&db, "w", t + Duration::days(1), t + Duration::days(2)).await.unwrap().is_none(), "parked");
    assert!(jobs::retry(&db, id, t).await.unwrap());
    assert!(!jobs::retry(&db, id, t).await.unwrap(), "only failed jobs are retried");
    let job = jobs::claim(&db, "w", t, t + Duration::seconds(30)).await.unwrap().unwrap();
    assert_eq!(job.attempts, 1);
}

async fn jobs_expired_lease_is_claimed_again(db: Db) {
    let t = now();
    let id = enqueue_one(&db, "k", t, 5).await;
    jobs::claim(&db, "dead-worker", t, t + Duration::seconds(30)).await.unwrap().unwrap();
    assert!(jobs::claim(&db, "w2", t + Duration::seconds(29), t + Duration::seconds(60)).await.unwrap().is_none());
    let job = jobs::claim(&db, "w2", t + Duration::seconds(31), t + Duration::seconds(60)).await.unwrap().unwrap();
    assert_eq!((job.id, job.locked_by.as_deref()), (id, Some("w2")));
    jobs::complete(&db, id, "dead-worker").await.unwrap();
    assert!(jobs::get(&db, id).await.unwrap().is_some(), "the old owner no longer completes it");
    jobs::complete(&db, id, "w2").await.unwrap();
    assert!(jobs::get(&db, id).await.unwrap().is_none());
}

async fn jobs_interactive_run_before_batch_and_the_next_due_is_known(db: Db) {
    use jobs::Priority::{Batch, Interactive};
    let t = now();
    assert_eq!(jobs::next_due(&db, Batch).await.unwrap(), None, "an empty queue is never due");
    let old_batch = enqueue_at(&db, "batch", t - Duration::minutes(10), 3, Batch).await;
    let interactive = enqueue_at(&db, "interactive", t - Duration::minutes(1), 3, Interactive).await;
    let later = enqueue_at(&db, "later", t + Duration::minutes(5), 3, Interactive).await;
    assert_eq!(jobs::next_due(&db, Batch).await.unwrap(), Some(t - Duration::minutes(10)));
    let lease = t + Duration::seconds(30);
    let first = jobs::claim(&db, "w", t, lease).await.unwrap().unwrap();
    assert_eq!((first.id, first.priority), (interactive, Interactive.rank()), "the person first, though newer");
    assert!(
        jobs::claim_at_least(&db, "w", t, lease, Interactive).await.unwrap().is_none(),
        "a slot kept for people takes no batch work"
    );
    assert_eq!(jobs::next_due(&db, Interactive).await.unwrap(), Some(lease), "the due batch job is not waited for");
    let second = jobs::claim(&db, "w", t, lease).await.unwrap().unwrap();
    assert_eq!((second.id, second.priority), (old_batch, Batch.rank()));
    // Both run now: the earliest lease end is next, and after them the later job.
    assert_eq!(jobs::next_due(&db, Batch).await.unwrap(), Some(lease));
    jobs::complete(&db, first.id, "w").await.unwrap();
    jobs::complete(&db, second.id, "w").await.unwrap();
    assert_eq!(jobs::next_due(&db, Batch).await.unwrap(), Some(t + Duration::minutes(5)));
    assert_eq!(jobs::claim(&db, "w", t + Duration::minutes(5), lease).await.unwrap().unwrap().id, later);
}

async fn jobs_concurrent_claims_never_share_a_job(db: Db) {
    let t = now();
    for _ in 0..20 {
        enqueue_one(&db, "k", t, 3).await;
    }
    let mut handles = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(job) = jobs::claim(&db, &format!("w{w}"), t, t + Duration::seconds(30)).await.unwrap() {
                got.push(job.id);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (20, 20));
}

async fn periodic_slot_enqueues_once(db: Db) {
    let t = now();
    let mut handles = Vec::new();
    for _ in 0..4 {
        let db = db.clone();
        handles.push(tokio::spawn(async move { jobs::enqueue_periodic(&db, "refresh", 42, 3, t).await.unwrap() }));
    }
    let mut enqueued = 0;
    for h in handles {
        enqueued += usize::from(h.await.unwrap());
    }
    assert_eq!(enqueued, 1);
    assert!(jobs::enqueue_periodic(&db, "refresh", 43, 3, t).await.unwrap(), "next slot runs again");
    let queued = jobs::list(&db, false).await.unwrap();
    assert_eq!(queued.iter().filter(|j| j.kind == "refresh").count(), 2);
}

// ---- Bank linking: institutions, members, accounts, transactions ----

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn catalog(code: &str, name: &str, url: Option<&str>) -> CatalogEntry {
    CatalogEntry { code: code.into(), name: name.into(), url: url.map(Into::into) }
}

async fn make_institution(db: &Db, code: &str, name: &str) -> i64 {
    alone!(db, institutions::upsert, &[catalog(code, name, None)], now()).unwrap();
    institutions::get_by_code(db, code).await.unwrap().unwrap().id
}

async fn try_member(db: &Db, user_id: i64, institution_id: i64, created: DateTime<Utc>) -> Result<i64, StoreError> {
    let id = new_id();
    let mut tx = db.begin().await?;
    members::insert(
        &mut tx,
        &NewMember {
            id,
            user_id,
            institution_id,
            identifier: &format!("ident-{id}"),
            guid: &format!("MBR-{id}"),
            name: "Online banking",
            status: MemberStatus::Initiated,
            now: created,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

async fn make_member(db: &Db, user_id: i64, institution_id: i64) -> i64 {
    try_member(db, user_id, institution_id, now()).await.unwrap()
}

async fn member(db: &Db, id: i64) -> members::Member {
    members::get(db, id).await.unwrap().unwrap()
}

fn status_update(status: &str) -> StatusUpdate {
    StatusUpdate {
        status: MemberStatus::parse(status),
        aggregated_at: None,
        successfully_aggregated_at: None,
        polls: 0,
        halted_retries: 0,
        gave_up: false,
    }
}

async fn save_status(db: &Db, member_id: i64, generation: i64, u: &StatusUpdate) -> bool {
    let mut tx = db.begin().await.unwrap();
    let saved = members::save_status(&mut tx, member_id, generation, u, now()).await.unwrap();
    tx.commit().await.unwrap();
    saved
}

fn challenge(guid: &str, field_name: Option<&str>, options: &str, image: Option<&str>) -> Challenge {
    Challenge {
        guid: guid.into(),
        field_name: field_name.map(Into::into),
        label: format!("Question {guid}"),
        kind: if image.is_some() { "IMAGE" } else { "OPTIONS" }.into(),
        options: options.into(),
        image_data: image.map(Into::into),
    }
}

type ChallengeRow = (String, Option<String>, String, String, String, Option<String>);

fn challenge_rows(challenges: &[Challenge]) -> Vec<ChallengeRow> {
    challenges
        .iter()
        .map(|c| {
            (
                c.guid.clone(),
                c.field_name.clone(),
                c.label.clone(),
                c.kind.clone(),
                c.options.clone(),
                c.image_data.clone(),
            )
        })
        .collect()
}

fn account_data(guid: &str, name: &str, type_ds: AccountFamily, balance: i64) -> AccountData {
    AccountData {
        guid: guid.into(),
        name: name.into(),
        kind: if type_ds == AccountFamily::Debt { "CREDIT_CARD" } else { "CHECKING" }.into(),
        type_ds,
        subtype: None,
        balance: Some(Cents::new(balance)),
        available_balance: None,
        available_credit: None,
        credit_limit: None,
        apr: None,
        apy: None,
        interest_rate: None,
        minimum_balance: None,
        minimum_payment: None,
        original_balance: None,
        payoff_balance: None,
        last_payment: None,
        last_payment_at: None,
        payment_due_at: None,
        day_payment_is_due: None,
        matures_on: None,
        started_on: None,
        total_account_value: None,
        is_closed: false,
        number_digest: None,
    }
}

async fn upsert_accounts(db: &Db, user_id: i64, member_id: i64, data: &[AccountData], refreshed: DateTime<Utc>) {
    let mut tx = db.begin().await.unwrap();
    accounts::upsert(&mut tx, user_id, member_id, data, refreshed).await.unwrap();
    tx.commit().await.unwrap();
}

/// The user's guid → account id map (hidden accounts included), sorted by guid.
async fn account_ids(db: &Db, user_id: i64) -> Vec<(String, i64)> {
    let mut tx = db.begin().await.unwrap();
    let mut ids = accounts::ids_by_guid(&mut tx, user_id).await.unwrap();
    drop(tx);
    ids.sort();
    ids
}

async fn account_id(db: &Db, user_id: i64, guid: &str) -> i64 {
    account_ids(db, user_id).await.into_iter().find(|(g, _)| g == guid).unwrap().1
}

/// Upsert one account and return its id.
async fn make_account(
    db: &Db,
    user_id: i64,
    member_id: i64,
    guid: &str,
    name: &str,
    type_ds: AccountFamily,
    created: DateTime<Utc>,
) -> i64 {
    upsert_accounts(db, user_id, member_id, &[account_data(guid, name, type_ds, 10_000)], created).await;
    account_id(db, user_id, guid).await
}

async fn account(db: &Db, user_id: i64, id: i64) -> accounts::Account {
    accounts::get(db, user_id, id).await.unwrap().unwrap()
}

async fn visible_account_ids(db: &Db, user_id: i64) -> Vec<i64> {
    accounts::list_for_user(db, user_id).await.unwrap().into_iter().map(|a| a.id).collect()
}

async fn count_active(db: &Db, member_id: i64) -> i64 {
    let mut tx = db.begin().await.unwrap();
    accounts::count_active_in_member(&mut tx, member_id).await.unwrap()
}

async fn set_active(db: &Db, user_id: i64, id: i64, active: bool) {
    let mut tx = db.begin().await.unwrap();
    accounts::set_active(&mut tx, user_id, id, active, now()).await.unwrap();
    tx.commit().await.unwrap();
}

async fn set_shares(db: &Db, user_id: i64, shares: &[(i64, i64)]) {
    let shares: DebtShares = shares.iter().map(|&(id, share)| (id, Share::new(share).unwrap())).collect();
    let mut tx = db.begin().await.unwrap();
    accounts::set_shares(&mut tx, user_id, &shares, now()).await.unwrap();
    tx.commit().await.unwrap();
}

async fn ensure_debt_share(db: &Db, user_id: i64) {
    let mut tx = db.begin().await.unwrap();
    accounts::ensure_debt_share(&mut tx, user_id).await.unwrap();
    tx.commit().await.unwrap();
}

/// (guid, transfer_share) of the user's visible accounts, oldest first.
async fn shares(db: &Db, user_id: i64) -> Vec<(String, i64)> {
    accounts::list_for_user(db, user_id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.guid, i64::from(a.transfer_share.get())))
        .collect()
}

fn txn(guid: &str, account_id: i64, amount: i64, date: NaiveDate) -> TransactionData {
    TransactionData {
        guid: guid.into(),
        account_id,
        amount: Cents::new(amount),
        kind: Direction::Debit,
        status: Some("POSTED".into()),
        category: None,
        top_level_category: None,
        description: None,
        original_description: None,
        memo: None,
        date,
        transacted_at: None,
        posted_at: None,
        check_number: None,
        merchant_category_code: None,
        latitude: None,
        longitude: None,
        is_bill_pay: false,
        is_direct_deposit: false,
        is_expense: false,
        is_fee: false,
        is_income: false,
        is_overdraft_fee: false,
        is_payroll_advance: false,
    }
}

async fn upsert_txns(db: &Db, user_id: i64, rows: &[TransactionData]) {
    let mut tx = db.begin().await.unwrap();
    transactions::upsert(&mut tx, user_id, rows, now()).await.unwrap();
    tx.commit().await.unwrap();
}

async fn txn_guids(db: &Db, user_id: i64, account_id: Option<i64>) -> Vec<String> {
    transactions::list_for_user(db, user_id, account_id, None, 0).await.unwrap().into_iter().map(|t| t.guid).collect()
}

async fn institutions_upsert_refreshes_by_code_keeping_the_id(db: Db) {
    assert_eq!(institutions::count(&db).await.unwrap(), 0);
    alone!(
        &db,
        institutions::upsert,
        &[catalog("chase", "Chase", Some("https://chase.example")), catalog("wells", "Wells Fargo", None)],
        now()
    )
    .unwrap();
    assert_eq!(institutions::count(&db).await.unwrap(), 2);
    let chase = institutions::get_by_code(&db, "chase").await.unwrap().unwrap();
    assert_eq!((chase.name.as_str(), chase.url.as_deref()), ("Chase", Some("https://chase.example")));
    assert_eq!(institutions::get(&db, chase.id).await.unwrap(), Some(chase.clone()));

    alone!(&db, institutions::upsert, &[catalog("chase", "Chase Bank", None)], now()).unwrap();
    let refreshed = Institution { id: chase.id, code: "chase".into(), name: "Chase Bank".into(), url: None };
    assert_eq!(
        institutions::get_by_code(&db, "chase").await.unwrap(),
        Some(refreshed.clone()),
        "refreshed in place, same id"
    );
    assert_eq!(institutions::get(&db, chase.id).await.unwrap(), Some(refreshed));
    assert_eq!(institutions::count(&db).await.unwrap(), 2, "no duplicate");
    assert_eq!(institutions::get_by_code(&db, "wells").await.unwrap().unwrap().name, "Wells Fargo", "others untouched");
    assert!(institutions::get(&db, -1).await.unwrap().is_none());
    assert!(institutions::get_by_code(&db, "missing").await.unwrap().is_none());
}

async fn institutions_list_searches_any_case_within_the_limit(db: Db) {
    alone!(
        &db,
        institutions::upsert,
        &[
            catalog("wells", "Wells Fargo", None),
            catalog("boa", "Bank of America", None),
            catalog("chase", "Chase", None),
            catalog("afcu", "America First Credit Union", None),
        ],
        now()
    )
    .unwrap();
    let names = |list: Vec<Institution>| list.into_iter().map(|i| i.name).collect::<Vec<_>>();
    assert_eq!(
        names(institutions::list(&db, None, 100).await.unwrap()),
        ["America First Credit Union", "Bank of America", "Chase", "Wells Fargo"]
    );
    assert_eq!(
        names(institutions::list(&db, Some("AMERICA"), 100).await.unwrap()),
        ["America First Credit Union", "Bank of America"]
    );
    assert_eq!(names(institutions::list(&db, Some("fArGo"), 100).await.unwrap()), ["Wells Fargo"]);
    assert_eq!(names(institutions::list(&db, Some("america"), 1).await.unwrap()), ["America First Credit Union"]);
    assert_eq!(
        names(institutions::list(&db, None, 2).await.unwrap()),
        ["America First Credit Union", "Bank of America"]
    );
    assert!(institutions::list(&db, Some("credit union of mars"), 100).await.unwrap().is_empty());
}

async fn institutions_credentials_are_replaced_and_ordered(db: Db) {
    let chase = make_institution(&db, "chase", "Chase").await;
    let wells = make_institution(&db, "wells", "Wells Fargo").await;
    let cred = |inst: i64, guid: &str, field: &str, order: i64| Credential {
        institution_id: inst,
        guid: guid.into(),
        field_name: field.into(),
        label: field.to_uppercase(),
        kind: if field == "password" { "PASSWORD" } else { "TEXT" }.into(),
        display_order: order,
    };
    alone!(
        &db,
        institutions::replace_credentials,
        chase,
        &[cred(chase, "CRD-a", "password", 2), cred(chase, "CRD-b", "username", 1)]
    )
    .unwrap();
    alone!(&db, institutions::replace_credentials, wells, &[cred(wells, "CRD-w", "pin", 1)]).unwrap();
    assert_eq!(
        institutions::credentials(&db, chase).await.unwrap(),
        [cred(chase, "CRD-b", "username", 1), cred(chase, "CRD-a", "password", 2)],
        "by display order"
    );

    alone!(&db, institutions::replace_credentials, chase, &[cred(chase, "CRD-c", "pin", 1)]).unwrap();
    assert_eq!(
        institutions::credentials(&db, chase).await.unwrap(),
        [cred(chase, "CRD-c", "pin", 1)],
        "the old ones are gone"
    );
    assert_eq!(
        institutions::credentials(&db, wells).await.unwrap(),
        [cred(wells, "CRD-w", "pin", 1)],
        "other institutions keep theirs"
    );
    alone!(&db, institutions::replace_credentials, chase, &[]).unwrap();
    assert!(institutions::credentials(&db, chase).await.unwrap().is_empty());
}

async fn members_one_live_member_per_user_and_institution(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let wells = make_institution(&db, "wells", "Wells Fargo").await;
    let first = make_member(&db, ada, chase).await;
    let err = try_member(&db, ada, chase, now()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(members::list_for_user(&db, ada).await.unwrap().len(), 1);
    make_member(&db, bob, chase).await;
    make_member(&db, ada, wells).await;

    alone!(&db, members::mark_deleted, first, now()).unwrap();
    let second = make_member(&db, ada, chase).await;
    assert_ne!(first, second);
    assert_eq!(members::find_for_institution(&db, ada, chase).await.unwrap().unwrap().id, second);
    let err = try_member(&db, ada, chase, now()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn members_lookups_are_scoped_to_the_user_and_hide_deleted(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let wells = make_institution(&db, "wells", "Wells Fargo").await;
    let t = now();
    let at_chase = try_member(&db, ada, chase, t).await.unwrap();
    let at_wells = try_member(&db, ada, wells, t + Duration::seconds(1)).await.unwrap();
    let bobs = try_member(&db, bob, chase, t).await.unwrap();

    let m = member(&db, at_chase).await;
    assert_eq!(
        (m.user_id, m.status.as_str(), m.name.as_str(), m.poll_generation, m.polls, m.gave_up),
        (ada, "INITIATED", "Online banking", 1, 0, false)
    );
    assert_eq!(m.guid, Some(format!("MBR-{at_chase}")));
    assert_eq!(m.created_at, t);
    assert_eq!(m.institution(), Institution { id: chase, code: "chase".into(), name: "Chase".into(), url: None });
    assert!(members::get(&db, -1).await.unwrap().is_none());

    let found = members::find_by_identifier(&db, ada, &m.identifier).await.unwrap().unwrap();
    assert_eq!((found.id, found.institution.inst_name.as_str()), (at_chase, "Chase"));
    assert!(members::find_by_identifier(&db, bob, &m.identifier).await.unwrap().is_none(), "another user's member");
    assert_eq!(members::find_for_institution(&db, ada, wells).await.unwrap().unwrap().id, at_wells);
    assert!(members::find_for_institution(&db, bob, wells).await.unwrap().is_none());
    let ids = |list: Vec<members::Member>| list.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(ids(members::list_for_user(&db, ada).await.unwrap()), [at_chase, at_wells]);
    assert_eq!(ids(members::list_for_user(&db, bob).await.unwrap()), [bobs]);

    alone!(&db, members::mark_deleted, at_chase, now()).unwrap();
    assert!(members::find_by_identifier(&db, ada, &m.identifier).await.unwrap().is_none());
    assert!(members::find_for_institution(&db, ada, chase).await.unwrap().is_none());
    assert_eq!(ids(members::list_for_user(&db, ada).await.unwrap()), [at_wells]);
    assert_eq!(ids(members::list_for_user(&db, bob).await.unwrap()), [bobs], "other users' members stay");
}

async fn members_restart_retires_older_poll_generations(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let id = make_member(&db, ada, chase).await;
    let t = at(2024, 3, 1, 12, 0);
    let challenged = StatusUpdate {
        aggregated_at: Some(t),
        polls: 3,
        halted_retries: 2,
        gave_up: true,
        ..status_update("CHALLENGED")
    };
    assert!(save_status(&db, id, 1, &challenged).await);
    let mut tx = db.begin().await.unwrap();
    members::replace_challenges(&mut tx, id, &[challenge("CRC-1", None, "[]", None)]).await.unwrap();
    tx.commit().await.unwrap();
    let m = member(&db, id).await;
    assert_eq!(
        (m.status.as_str(), m.polls, m.halted_retries, m.gave_up, m.aggregated_at),
        ("CHALLENGED", 3, 2, true, Some(t))
    );

    let mut tx = db.begin().await.unwrap();
    let generation = members::restart(&mut tx, id, &MemberStatus::Requested, now()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(generation, 2);
    let m = member(&db, id).await;
    assert_eq!(
        (m.poll_generation, m.status.as_str(), m.polls, m.halted_retries, m.gave_up),
        (2, "REQUESTED", 0, 0, false)
    );
    assert!(members::challenges(&db, id).await.unwrap().is_empty(), "challenges cleared");

    let stale = StatusUpdate { polls: 9, gave_up: true, ..status_update("COMPLETED") };
    assert!(!save_status(&db, id, 1, &stale).await, "stale generation");
    let m = member(&db, id).await;
    assert_eq!((m.status.as_str(), m.polls, m.gave_up), ("REQUESTED", 0, false), "nothing changed");

    let t2 = t + Duration::minutes(5);
    let done = StatusUpdate { successfully_aggregated_at: Some(t2), polls: 1, ..status_update("COMPLETED") };
    assert!(save_status(&db, id, generation, &done).await);
    let m = member(&db, id).await;
    assert_eq!(
        (m.status.as_str(), m.polls, m.aggregated_at, m.successfully_aggregated_at),
        ("COMPLETED", 1, Some(t), Some(t2)),
        "an absent time keeps the stored one"
    );

    alone!(&db, members::mark_deleted, id, now()).unwrap();
    assert!(!save_status(&db, id, generation, &status_update("FAILED")).await, "a deleted member is no longer polled");
    assert_eq!(member(&db, id).await.status, MemberStatus::Completed);
}

async fn members_challenges_round_trip_in_order(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let id = make_member(&db, ada, chase).await;
    let other = make_member(&db, bob, chase).await;
    let options = r#"[{"label":"Ford","value":"1"},{"label":"Tesla","value":"2"}]"#;
    let first = vec![
        challenge("CRC-z", Some("car"), options, None),
        challenge("CRC-a", None, "[]", Some("data:image/png;base64,iVBORw0KGgo=")),
    ];
    let mut tx = db.begin().await.unwrap();
    members::replace_challenges(&mut tx, id, &first).await.unwrap();
    members::replace_challenges(&mut tx, other, &[challenge("CRC-o", None, "[]", None)]).await.unwrap();
    tx.commit().await.unwrap();
    let stored = members::challenges(&db, id).await.unwrap();
    assert_eq!(challenge_rows(&stored), challenge_rows(&first), "in the given order");
    let parsed: serde_json::Value = serde_json::from_str(&stored[0].options).unwrap();
    assert_eq!(parsed[1]["label"], "Tesla");

    let second = vec![challenge("CRC-n", Some("pet"), "[]", None)];
    let mut tx = db.begin().await.unwrap();
    members::replace_challenges(&mut tx, id, &second).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(challenge_rows(&members::challenges(&db, id).await.unwrap()), challenge_rows(&second));

    let mut tx = db.begin().await.unwrap();
    members::clear_challenges(&mut tx, id).await.unwrap();
    tx.commit().await.unwrap();
    assert!(members::challenges(&db, id).await.unwrap().is_empty());
    assert_eq!(
        challenge_rows(&members::challenges(&db, other).await.unwrap()),
        challenge_rows(&[challenge("CRC-o", None, "[]", None)]),
        "other members keep theirs"
    );
}

async fn members_completed_list_and_status(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let wells = make_institution(&db, "wells", "Wells Fargo").await;
    let ada_chase = make_member(&db, ada, chase).await;
    let bob_chase = make_member(&db, bob, chase).await;
    let ada_wells = make_member(&db, ada, wells).await;
    assert!(members::list_completed(&db).await.unwrap().is_empty());
    assert_eq!(members::status_of(&db, ada_chase).await.unwrap(), Some((MemberStatus::Initiated, false)));

    assert!(save_status(&db, ada_chase, 1, &status_update("COMPLETED")).await);
    assert!(save_status(&db, bob_chase, 1, &status_update("COMPLETED")).await);
    let gave_up = StatusUpdate { gave_up: true, ..status_update("FAILED") };
    assert!(save_status(&db, ada_wells, 1, &gave_up).await);

    let mut expected = vec![ada_chase, bob_chase];
    expected.sort();
    let completed = members::list_completed(&db).await.unwrap();
    assert_eq!(completed.iter().map(|m| m.id).collect::<Vec<_>>(), expected);
    assert!(completed.iter().all(|m| m.institution().code == "chase"));
    assert_eq!(members::status_of(&db, ada_chase).await.unwrap(), Some((MemberStatus::Completed, false)));
    assert_eq!(members::status_of(&db, ada_wells).await.unwrap(), Some((MemberStatus::Failed, true)));
    assert!(members::status_of(&db, -1).await.unwrap().is_none());

    alone!(&db, members::mark_deleted, bob_chase, now()).unwrap();
    assert_eq!(members::list_completed(&db).await.unwrap().into_iter().map(|m| m.id).collect::<Vec<_>>(), [ada_chase]);
}

async fn members_deleting_hides_accounts_until_relinked(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let wells = make_institution(&db, "wells", "Wells Fargo").await;
    let m = make_member(&db, ada, chase).await;
    let other = make_member(&db, ada, wells).await;
    let t = now();
    let card = make_account(&db, ada, m, "ACT-card", "Visa", AccountFamily::Debt, t).await;
    make_account(&db, ada, m, "ACT-chk", "Checking", AccountFamily::Debit, t).await;
    let kept = make_account(&db, ada, other, "ACT-w", "Wells", AccountFamily::Debit, t).await;
    set_shares(&db, ada, &[(card, 100)]).await;
    upsert_txns(&db, ada, &[txn("TRN-1", card, -500, day(2024, 3, 1))]).await;
    assert_eq!(visible_account_ids(&db, ada).await.len(), 3);
    assert_eq!(txn_guids(&db, ada, None).await, ["TRN-1"]);

    alone!(&db, members::mark_deleted, m, now()).unwrap();
    assert_eq!(visible_account_ids(&db, ada).await, [kept]);
    assert!(accounts::get(&db, ada, card).await.unwrap().is_none());
    assert!(txn_guids(&db, ada, None).await.is_empty(), "their transactions are hidden too");

    // Linking the institution again brings the account back, under the new member.
    let relinked = make_member(&db, ada, chase).await;
    upsert_accounts(&db, ada, relinked, &[account_data("ACT-card", "Visa", AccountFamily::Debt, -700)], now()).await;
    let back = account(&db, ada, card).await;
    assert_eq!(
        (back.member_id, back.transfer_share),
        (relinked, Share::default()),
        "same account, share reset by the deletion"
    );
    assert_eq!(visible_account_ids(&db, ada).await.len(), 2);
}

async fn accounts_refresh_keeps_what_the_user_set(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let m = make_member(&db, ada, chase).await;
    let t = at(2024, 3, 1, 12, 0);
    let mut data = account_data("ACT-1", "Visa", AccountFamily::Debt, -50_000);
    data.apr = Some(19.99);
    data.credit_limit = Some(Cents::new(300_000));
    data.payment_due_at = Some(at(2024, 3, 25, 0, 0));
    data.matures_on = Some(day(2030, 1, 31));
    upsert_accounts(&db, ada, m, &[data], t).await;
    let id = account_id(&db, ada, "ACT-1").await;
    let a = account(&db, ada, id).await;
    assert_eq!(
        (a.name.as_str(), a.type_ds, a.balance, a.credit_limit, a.apr),
        ("Visa", AccountFamily::Debt, Some(Cents::new(-50_000)), Some(Cents::new(300_000)), Some(19.99))
    );
    assert_eq!((a.payment_due_at, a.matures_on), (Some(at(2024, 3, 25, 0, 0)), Some(day(2030, 1, 31))));
    assert_eq!(
        (a.member_id, a.is_active, a.transfer_share, a.account_number_last4.as_deref(), a.created_at),
        (m, true, Share::default(), None, t)
    );

    set_active(&db, ada, id, false).await;
    set_shares(&db, ada, &[(id, 100)]).await;
    assert!(!alone!(&db, accounts::set_account_number, bob, id, "sealed-bob", "0000", now()).unwrap(), "not bob's");
    assert!(alone!(&db, accounts::set_account_number, ada, id, "sealed-1", "4321", now()).unwrap());
    assert!(!alone!(&db, accounts::set_account_number, ada, id, "sealed-2", "9999", now()).unwrap(), "only once");
    assert_eq!(accounts::sealed_account_number(&db, ada, id).await.unwrap().as_deref(), Some("sealed-1"));
    assert!(accounts::sealed_account_number(&db, bob, id).await.unwrap().is_none());

    let t2 = t + Duration::hours(1);
    upsert_accounts(&db, ada, m, &[account_data("ACT-1", "Visa Signature", AccountFamily::Debt, -12_345)], t2).await;
    assert_eq!(visible_account_ids(&db, ada).await, [id], "no duplicate");
    let a = account(&db, ada, id).await;
    assert_eq!(
        (a.name.as_str(), a.balance, a.apr, a.updated_at),
        ("Visa Signature", Some(Cents::new(-12_345)), None, t2),
        "the aggregator's data is refreshed"
    );
    assert_eq!(
        (a.is_active, a.transfer_share, a.account_number_last4.as_deref(), a.created_at),
        (false, Share::FULL, Some("4321"), t),
        "what the user set stays"
    );
    assert_eq!(accounts::sealed_account_number(&db, ada, id).await.unwrap().as_deref(), Some("sealed-1"));
}

async fn accounts_are_scoped_hidden_and_counted(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let m = make_member(&db, ada, chase).await;
    let mb = make_member(&db, bob, chase).await;
    let t = now();
    upsert_accounts(
        &db,
        ada,
        m,
        &[
            account_data("ACT-1", "Checking", AccountFamily::Debit, 1_000),
            account_data("ACT-2", "Savings", AccountFamily::Debit, 2_000),
            account_data("ACT-3", "Visa", AccountFamily::Debt, -3_000),
        ],
        t,
    )
    .await;
    upsert_accounts(&db, bob, mb, &[account_data("ACT-1", "Bob's checking", AccountFamily::Debit, 5)], t).await;
    let ids = account_ids(&db, ada).await;
    assert_eq!(ids.iter().map(|(g, _)| g.as_str()).collect::<Vec<_>>(), ["ACT-1", "ACT-2", "ACT-3"]);
    let (a1, a2, a3) = (ids[0].1, ids[1].1, ids[2].1);
    let bobs = account_ids(&db, bob).await;
    assert_eq!(bobs.len(), 1);
    assert_ne!(bobs[0].1, a1, "the same guid at another user is another account");
    assert_eq!(account(&db, ada, a1).await.balance, Some(Cents::new(1_000)));
    assert!(accounts::get(&db, bob, a1).await.unwrap().is_none());

    assert_eq!(count_active(&db, m).await, 3);
    set_active(&db, ada, a2, false).await;
    assert_eq!(count_active(&db, m).await, 2);
    assert!(!account(&db, ada, a2).await.is_active);
    set_active(&db, bob, a1, false).await;
    assert!(account(&db, ada, a1).await.is_active, "bob cannot change ada's");

    set_shares(&db, ada, &[(a3, 100)]).await;
    assert!(!alone!(&db, accounts::hide, bob, a3, now()).unwrap(), "not bob's");
    assert!(alone!(&db, accounts::hide, ada, a3, now()).unwrap());
    assert!(!alone!(&db, accounts::hide, ada, a3, now()).unwrap(), "already hidden");
    assert!(accounts::get(&db, ada, a3).await.unwrap().is_none());
    assert_eq!(visible_account_ids(&db, ada).await, [a1, a2]);
    assert_eq!(count_active(&db, m).await, 1);
    assert_eq!(account_ids(&db, ada).await.len(), 3, "hidden accounts still map their guid");

    upsert_accounts(&db, ada, m, &[account_data("ACT-3", "Visa", AccountFamily::Debt, -4_000)], now()).await;
    assert_eq!(visible_account_ids(&db, ada).await, [a1, a2], "a refresh keeps it hidden");
    set_active(&db, ada, a2, true).await;
    assert_eq!(count_active(&db, m).await, 2);
    assert_eq!(count_active(&db, mb).await, 1);
}

async fn accounts_shares_replace_each_other(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let m = make_member(&db, ada, chase).await;
    let mb = make_member(&db, bob, chase).await;
    let t = now();
    make_account(&db, ada, m, "ACT-chk", "Checking", AccountFamily::Debit, t).await;
    let d1 = make_account(&db, ada, m, "ACT-d1", "Visa", AccountFamily::Debt, t + Duration::seconds(1)).await;
    let d2 = make_account(&db, ada, m, "ACT-d2", "Loan", AccountFamily::Debt, t + Duration::seconds(2)).await;
    let bob_debt = make_account(&db, bob, mb, "ACT-b", "Bob's card", AccountFamily::Debt, t).await;
    let share = |a: &str, s: i64| (a.to_owned(), s);

    ensure_debt_share(&db, ada).await;
    ensure_debt_share(&db, bob).await;
    assert_eq!(
        shares(&db, ada).await,
        [share("ACT-chk", 0), share("ACT-d1", 100), share("ACT-d2", 0)],
        "the oldest debt account gets the whole share"
    );
    set_shares(&db, ada, &[(d1, 60), (d2, 40)]).await;
    assert_eq!(shares(&db, ada).await, [share("ACT-chk", 0), share("ACT-d1", 60), share("ACT-d2", 40)]);
    set_shares(&db, ada, &[(d2, 100)]).await;
    assert_eq!(
        shares(&db, ada).await,
        [share("ACT-chk", 0), share("ACT-d1", 0), share("ACT-d2", 100)],
        "accounts left out drop to zero"
    );
    ensure_debt_share(&db, ada).await;
    assert_eq!(
        shares(&db, ada).await,
        [share("ACT-chk", 0), share("ACT-d1", 0), share("ACT-d2", 100)],
        "an existing share is left alone"
    );

    set_shares(&db, ada, &[(bob_debt, 50)]).await;
    assert_eq!(shares(&db, bob).await, [share("ACT-b", 100)], "another user's account is neither set nor zeroed");
    assert_eq!(shares(&db, ada).await, [share("ACT-chk", 0), share("ACT-d1", 0), share("ACT-d2", 0)]);
    set_active(&db, ada, d1, false).await;
    ensure_debt_share(&db, ada).await;
    assert_eq!(
        shares(&db, ada).await,
        [share("ACT-chk", 0), share("ACT-d1", 0), share("ACT-d2", 100)],
        "inactive debt accounts are skipped"
    );
}

async fn transactions_upsert_in_batches_without_duplicates(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let m = make_member(&db, ada, chase).await;
    let acct = make_account(&db, ada, m, "ACT-1", "Checking", AccountFamily::Debit, now()).await;
    // More rows than one statement takes on either engine (200 on SQLite, 10,000 on PostgreSQL).
    const N: i64 = 10_500;
    let rows = |amount: fn(i64) -> i64| -> Vec<TransactionData> {
        (0..N)
            .map(|i| txn(&format!("TRN-{i:05}"), acct, amount(i), day(2023, 1, 1) + Duration::days(i % 500)))
            .collect()
    };
    let index = |guid: &str| guid["TRN-".len()..].parse::<i64>().unwrap();

    upsert_txns(&db, ada, &rows(|i| -(i + 1))).await;
    assert_eq!(transactions::count_for_user(&db, ada).await.unwrap(), N);
    let before = transactions::list_for_user(&db, ada, None, None, 0).await.unwrap();
    assert_eq!(before.len() as i64, N);
    assert!(before.iter().all(|t| t.amount.get() == -(index(&t.guid) + 1)));
    assert!(before.windows(2).all(|w| w[0].date >= w[1].date), "newest first");

    upsert_txns(&db, ada, &rows(|i| (i + 1) * 100)).await;
    assert_eq!(transactions::count_for_user(&db, ada).await.unwrap(), N, "a re-sync does not duplicate");
    let after = transactions::list_for_user(&db, ada, None, None, 0).await.unwrap();
    assert_eq!(after.len() as i64, N);
    assert!(after.iter().all(|t| t.amount.get() == (index(&t.guid) + 1) * 100), "amounts are updated, in every batch");
    let mut ids_before: Vec<_> = before.iter().map(|t| (&t.guid, &t.id)).collect();
    let mut ids_after: Vec<_> = after.iter().map(|t| (&t.guid, &t.id)).collect();
    ids_before.sort();
    ids_after.sort();
    assert_eq!(ids_before, ids_after, "ids are kept");

    // A sync that lists a transaction twice keeps the later copy (and does not fail).
    let date = day(2024, 6, 1);
    upsert_txns(
        &db,
        ada,
        &[txn("TRN-dup", acct, -100, date), txn("TRN-00000", acct, -7, date), txn("TRN-dup", acct, -200, date)],
    )
    .await;
    assert_eq!(transactions::count_for_user(&db, ada).await.unwrap(), N + 1);
    let latest = transactions::list_for_user(&db, ada, None, None, 0).await.unwrap();
    let amount_of = |guid: &str| latest.iter().find(|t| t.guid == guid).unwrap().amount.get();
    assert_eq!((amount_of("TRN-dup"), amount_of("TRN-00000")), (-200, -7));
}

/// A transaction whose every field is set, with text that needs escaping on the way in.
fn full_txn(i: i64, account_id: i64, version: i64) -> TransactionData {
    let when = at(2024, 1, 1, 0, 0) + Duration::seconds(i * 37) + Duration::microseconds(i % 1000 * 1001);
    TransactionData {
        guid: format!("TRN-{i:06}"),
        account_id,
        amount: Cents::new(-(i * 7 + version)),
        kind: if i % 5 == 0 { Direction::Credit } else { Direction::Debit },
        status: (i % 4 != 0).then(|| "POSTED".into()),
        category: Some(format!("Café \\ {version}")),
        top_level_category: (i % 3 != 0).then(|| "Food\tDining".into()),
        description: Some(format!("line one\nline two\r{i} \"quoted\" ✓")),
        original_description: Some(format!("\\N is not null {i}")),
        memo: (i % 2 == 0).then(|| format!("v{version}")),
        date: day(2024, 1, 1) + Duration::days(i % 400),
        transacted_at: Some(when),
        posted_at: (i % 2 == 1).then(|| when + Duration::hours(30)),
        check_number: (i % 7 == 0).then_some(i),
        merchant_category_code: Some(5000 + i % 999),
        latitude: Some(42.360_1 + i as f64 / 1e6),
        longitude: (i % 3 == 0).then_some(-71.058_9),
        is_bill_pay: i % 2 == 0,
        is_direct_deposit: i % 3 == 0,
        is_expense: i % 5 == 0,
        is_fee: i % 7 == 0,
        is_income: i % 11 == 0,
        is_overdraft_fee: i % 13 == 0,
        is_payroll_advance: i % 17 == 0,
    }
}

/// Each named field of a stored transaction equals the one sent.
macro_rules! assert_fields_eq {
    ($stored:expr, $sent:expr; $($field:ident),* $(,)?) => {$(
        assert_eq!($stored.$field, $sent.$field, "{} of {}", stringify!($field), $sent.guid);
    )*};
}

/// A provider's stray NUL character (which PostgreSQL text cannot hold) is dropped, on both
/// engines alike, instead of failing the whole sync; a re-sync finds the same row.
async fn transactions_drop_nul_characters_from_provider_text(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let m = make_member(&db, ada, make_institution(&db, "chase", "Chase").await).await;
    let acct = make_account(&db, ada, m, "ACT-1", "Checking", AccountFamily::Debit, now()).await;
    let mut t = txn("TRN-\0nul", acct, -100, day(2024, 6, 1));
    t.description = Some("Coffee\0 shop".into());
    t.memo = Some("\0".into());
    upsert_txns(&db, ada, &[t.clone(), txn("TRN-plain", acct, -5, day(2024, 6, 2))]).await;
    t.amount = Cents::new(-250);
    upsert_txns(&db, ada, &[t]).await;
    let stored = transactions::list_for_user(&db, ada, None, None, 0).await.unwrap();
    assert_eq!(stored.len(), 2, "the re-sync updated the row in place");
    let t = stored.iter().find(|t| t.guid == "TRN-nul").expect("stored under its guid without the NUL");
    assert_eq!((t.description.as_deref(), t.memo.as_deref(), t.amount.get()), (Some("Coffee shop"), Some(""), -250));
}

/// A transaction names an existing account of its own user, whichever way it is written (a few
/// rows, a bulk ingest of new rows, a re-sync of stored ones); a refused write stores nothing;
/// deleting an account deletes its transactions; an account with transactions keeps its user.
async fn transactions_belong_to_an_existing_account_of_their_user(db: Db) {
    let chase = make_institution(&db, "chase", "Chase").await;
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let ada_m = make_member(&db, ada, chase).await;
    let bob_m = make_member(&db, bob, chase).await;
    let ada_checking = make_account(&db, ada, ada_m, "ACT-1", "Checking", AccountFamily::Debit, now()).await;
    let ada_savings = make_account(&db, ada, ada_m, "ACT-2", "Savings", AccountFamily::Debit, now()).await;
    let bob_checking = make_account(&db, bob, bob_m, "ACT-1", "Checking", AccountFamily::Debit, now()).await;
    let try_upsert = |rows: Vec<TransactionData>| {
        let db = db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            transactions::upsert(&mut tx, ada, &rows, now()).await?;
            tx.commit().await
        }
    };
    // Enough rows to take the bulk path on both engines, the bad one last.
    let bulk = |bad_account: i64| -> Vec<TransactionData> {
        let mut rows: Vec<_> =
            (0..10_500).map(|i| txn(&format!("TRN-{i:05}"), ada_checking, -(i + 1), day(2024, 1, 1))).collect();
        rows.last_mut().unwrap().account_id = bad_account;
        rows
    };
    for bad in [bob_checking, 999_999] {
        let err = try_upsert(vec![txn("TRN-one", bad, -100, day(2024, 1, 1))]).await.unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "account {bad} refused for one row: {err:?}");
        let err = try_upsert(bulk(bad)).await.unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "account {bad} refused in a bulk ingest: {err:?}");
        assert_eq!(transactions::count_for_user(&db, ada).await.unwrap(), 0, "a refused ingest stores nothing");
    }
    assert_eq!(transactions::count_for_user(&db, bob).await.unwrap(), 0);

    // A re-sync that moves stored rows to another user's account is refused the same way.
    let mut rows = bulk(ada_savings);
    upsert_txns(&db, ada, &rows).await;
    rows.last_mut().unwrap().account_id = bob_checking;
    let err = try_upsert(rows.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "re-sync onto bob's account refused: {err:?}");
    assert_eq!(txn_guids(&db, ada, Some(ada_savings)).await, ["TRN-10499"], "the stored row kept its account");

    let err = donkies_store::on_db!(&db, pool => sqlx::query("UPDATE accounts SET user_id = $1 WHERE id = $2")
        .bind(bob).bind(ada_savings).execute(pool).await.map(|_| ()))
    .unwrap_err();
    assert!(err.to_string().contains("FOREIGN KEY") || err.to_string().contains("transactions"), "{err}");
    assert_eq!(account(&db, ada, ada_savings).await.user_id, ada, "an account with transactions keeps its user");

    raw!(&db, "DELETE FROM accounts WHERE id = $1", ada_savings);
    assert_eq!(
        transactions::count_for_user(&db, ada).await.unwrap(),
        10_499,
        "the account's transactions went with it"
    );
    assert!(txn_guids(&db, ada, Some(ada_checking)).await.len() == 10_499);

    if let Db::Postgres(pool) = &db {
        // An account whose transactions are being written cannot be deleted until that write ends.
        let mut writing = db.begin().await.unwrap();
        transactions::upsert(&mut writing, ada, &[txn("TRN-late", ada_checking, -1, day(2024, 2, 1))], now())
            .await
            .unwrap();
        let mut other = pool.acquire().await.unwrap();
        sqlx::query("SET lock_timeout = '200ms'").execute(&mut *other).await.unwrap();
        let err = sqlx::query("DELETE FROM accounts WHERE id = $1").bind(ada_checking).execute(&mut *other).await;
        let err = err.unwrap_err().into_database_error().expect("a database error");
        assert_eq!(err.code().as_deref(), Some("55P03"), "the delete waits for the writer: {err}");
        writing.commit().await.unwrap();
        sqlx::query("DELETE FROM accounts WHERE id = $1").bind(ada_checking).execute(&mut *other).await.unwrap();
        other.detach();
        assert_eq!(transactions::count_for_user(&db, ada).await.unwrap(), 0, "then the delete takes them all");

        // Truncating accounts while transactions remain is refused.
        let bob_m2 = make_member(&db, bob, make_institution(&db, "wells", "Wells").await).await;
        let bob_savings = make_account(&db, bob, bob_m2, "ACT-9", "Savings", AccountFamily::Debit, now()).await;
        upsert_txns(&db, bob, &[txn("TRN-bob", bob_savings, -7, day(2024, 3, 1))]).await;
        let err = sqlx::query("TRUNCATE accounts CASCADE").execute(pool).await.unwrap_err();
        assert!(err.to_string().contains("transactions refer to the account"), "{err}");
        assert_eq!(transactions::count_for_user(&db, bob).await.unwrap(), 1);
    }
}

/// The list's version rises with every change to what the list shows, for that user only, and
/// only once the change commits.
async fn transactions_list_version_follows_every_change_to_the_list(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let m = make_member(&db, ada, chase).await;
    let version = |user| {
        let db = db.clone();
        async move { transactions::list_version(&db, user).await.unwrap() }
    };
    assert_eq!((version(ada).await, version(bob).await), (0, 0));
    let acct = make_account(&db, ada, m, "ACT-1", "Checking", AccountFamily::Debit, now()).await;
    let v1 = version(ada).await;
    assert!(v1 > 0, "accounts refreshed");
    let mut tx = db.begin().await.unwrap();
    transactions::upsert(&mut tx, ada, &[txn("TRN-1", acct, -100, day(2024, 6, 1))], now()).await.unwrap();
    drop(tx);
    assert_eq!(version(ada).await, v1, "a rolled-back ingest changes nothing");
    upsert_txns(&db, ada, &[txn("TRN-1", acct, -100, day(2024, 6, 1))]).await;
    let v2 = version(ada).await;
    assert!(v2 > v1, "transactions ingested");
    assert!(alone!(&db, accounts::hide, ada, acct, now()).unwrap());
    let v3 = version(ada).await;
    assert!(v3 > v2, "account hidden");
    let other = make_account(&db, ada, m, "ACT-2", "Card", AccountFamily::Debt, now()).await;
    let v4 = version(ada).await;
    assert!(v4 > v3 && other > 0);
    alone!(&db, members::mark_deleted, m, now()).unwrap();
    assert!(version(ada).await > v4, "member deleted");
    assert_eq!(version(bob).await, 0, "another user's list is untouched");
}

async fn transactions_large_ingest_round_trips_every_field_and_reingest_updates_in_place(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let m = make_member(&db, ada, chase).await;
    let checking = make_account(&db, ada, m, "ACT-1", "Checking", AccountFamily::Debit, now()).await;
    let card = make_account(&db, ada, m, "ACT-2", "Card", AccountFamily::Debt, now()).await;
    let bobs =
        make_account(&db, bob, make_member(&db, bob, chase).await, "ACT-1", "Bob", AccountFamily::Debit, now()).await;
    upsert_txns(&db, bob, &[txn("TRN-000001", bobs, -1, day(2024, 1, 1))]).await;
    const N: i64 = 25_000;
    let batch = |version: i64, account: fn(i64) -> bool| -> Vec<TransactionData> {
        (0..N).map(|i| full_txn(i, if account(i) { checking } else { card }, version)).collect()
    };
    let by_guid =
        |list: Vec<transactions::Transaction>| -> std::collections::BTreeMap<String, transactions::Transaction> {
            list.into_iter().map(|t| (t.guid.clone(), t)).collect()
        };
    let compare = |stored: &std::collections::BTreeMap<String, transactions::Transaction>, sent: &[TransactionData]| {
        assert_eq!(stored.len(), sent.len());
        for want in sent {
            let got = &stored[&want.guid];
            assert_fields_eq!(got, want; guid, account_id, amount, kind, status, category, top_level_category,
                description, original_description, memo, date, transacted_at, posted_at, check_number,
                merchant_category_code, latitude, longitude, is_bill_pay, is_direct_deposit, is_expense, is_fee,
                is_income, is_overdraft_fee, is_payroll_advance);
        }
    };

    let first = batch(1, |i| i % 2 == 0);
    let t1 = now();
    let mut tx = db.begin().await.unwrap();
    transactions::upsert(&mut tx, ada, &first, t1).await.unwrap();
    tx.commit().await.unwrap();
    let before = by_guid(transactions::list_for_user(&db, ada, None, None, 0).await.unwrap());
    compare(&before, &first);
    assert!(before.values().all(|t| t.created_at == t1 && t.updated_at == t1));

    // A re-sync of the same guids (some moved to the other account), in two upserts of one
    // transaction, with a few new ones: updated in place, nothing duplicated.
    let mut second = batch(2, |i| i % 3 == 0);
    second.push(full_txn(N, checking, 2));
    let t2 = t1 + Duration::seconds(5);
    let mut tx = db.begin().await.unwrap();
    let (head, tail) = second.split_at(N as usize / 2);
    transactions::upsert(&mut tx, ada, head, t2).await.unwrap();
    transactions::upsert(&mut tx, ada, tail, t2).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(transactions::count_for_user(&db, ada).await.unwrap(), N + 1, "a re-sync does not duplicate");
    let after = by_guid(transactions::list_for_user(&db, ada, None, None, 0).await.unwrap());
    compare(&after, &second);
    for (guid, old) in &before {
        let new = &after[guid];
        assert_eq!((new.id, &new.uid, new.created_at), (old.id, &old.uid, old.created_at), "identity is kept");
        assert_eq!(new.updated_at, t2);
    }
    assert_eq!(after[&format!("TRN-{N:06}")].created_at, t2);
    let bobs_list = transactions::list_for_user(&db, bob, None, None, 0).await.unwrap();
    assert_eq!(bobs_list.iter().map(|t| (t.guid.as_str(), t.amount.get())).collect::<Vec<_>>(), [("TRN-000001", -1)]);

    // The same sync again, one transaction changed: only that one is written.
    let mut third = second.clone();
    third[7].memo = Some("edited".into());
    let t3 = t2 + Duration::seconds(5);
    let mut tx = db.begin().await.unwrap();
    transactions::upsert(&mut tx, ada, &third, t3).await.unwrap();
    tx.commit().await.unwrap();
    let later = by_guid(transactions::list_for_user(&db, ada, None, None, 0).await.unwrap());
    compare(&later, &third);
    let touched: Vec<&str> = later.values().filter(|t| t.updated_at == t3).map(|t| t.guid.as_str()).collect();
    assert_eq!(touched, [third[7].guid.as_str()], "an unchanged transaction keeps its updated_at");

    // A failed ingest leaves nothing behind, and the next one works.
    let mut tx = db.begin().await.unwrap();
    let orphan = full_txn(N + 1, i64::MAX - 1, 3);
    assert!(transactions::upsert(&mut tx, ada, &[orphan], now()).await.is_err(), "unknown account");
    drop(tx);
    assert_eq!(transactions::count_for_user(&db, ada).await.unwrap(), N + 1);
    upsert_txns(&db, ada, &[full_txn(0, card, 9)]).await;
    assert_eq!(transactions::count_for_user(&db, ada).await.unwrap(), N + 1);
}

async fn transactions_list_newest_first_scoped_and_visible(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let m = make_member(&db, ada, chase).await;
    let mb = make_member(&db, bob, chase).await;
    let t = now();
    let chk = make_account(&db, ada, m, "ACT-chk", "Everyday Checking", AccountFamily::Debit, t).await;
    let card = make_account(&db, ada, m, "ACT-card", "Visa", AccountFamily::Debt, t).await;
    let bobs = make_account(&db, bob, mb, "ACT-chk", "Bob's checking", AccountFamily::Debit, t).await;

    let mut payroll = txn("TRN-3", chk, 250_000, day(2024, 3, 5));
    payroll.transacted_at = Some(at(2024, 3, 5, 18, 0));
    payroll.posted_at = Some(at(2024, 3, 6, 9, 30));
    payroll.kind = Direction::Credit;
    payroll.category = Some("Paycheck".into());
    payroll.top_level_category = Some("Income".into());
    payroll.description = Some("ACME Payroll".into());
    payroll.original_description = Some("ACME CORP PAYROLL 0305".into());
    payroll.memo = Some("March".into());
    payroll.check_number = Some(1042);
    payroll.merchant_category_code = Some(6011);
    payroll.latitude = Some(42.3601);
    payroll.longitude = Some(-71.0589);
    payroll.is_income = true;
    payroll.is_direct_deposit = true;
    let mut coffee = txn("TRN-2", card, -899, day(2024, 3, 5));
    coffee.transacted_at = Some(at(2024, 3, 5, 9, 0));
    coffee.is_expense = true;
    let mut first = txn("TRN-1", chk, -1_250, day(2024, 3, 1));
    first.transacted_at = Some(at(2024, 3, 1, 8, 0));
    let mut fee = txn("TRN-4", card, -4_500, day(2024, 3, 3));
    fee.transacted_at = Some(at(2024, 3, 3, 8, 0));
    fee.is_fee = true;
    upsert_txns(&db, ada, &[first, payroll.clone(), coffee, fee]).await;
    upsert_txns(&db, bob, &[txn("TRN-1", bobs, -1, day(2024, 3, 9))]).await;

    let list = transactions::list_for_user(&db, ada, None, None, 0).await.unwrap();
    assert_eq!(
        list.iter().map(|t| t.guid.as_str()).collect::<Vec<_>>(),
        ["TRN-3", "TRN-2", "TRN-4", "TRN-1"],
        "newest first"
    );
    let top = &list[0];
    assert_eq!(
        (top.account_id, top.account_name.as_str(), top.account_type_ds),
        (chk, "Everyday Checking", AccountFamily::Debit)
    );
    assert_eq!(
        (top.amount.get(), top.kind, top.status.as_deref(), top.date, top.transacted_at, top.posted_at),
        (250_000, Direction::Credit, Some("POSTED"), day(2024, 3, 5), payroll.transacted_at, payroll.posted_at)
    );
    assert_eq!(
        (
            top.category.as_deref(),
            top.top_level_category.as_deref(),
            top.description.as_deref(),
            top.original_description.as_deref(),
            top.memo.as_deref()
        ),
        (Some("Paycheck"), Some("Income"), Some("ACME Payroll"), Some("ACME CORP PAYROLL 0305"), Some("March"))
    );
    assert_eq!(
        (top.check_number, top.merchant_category_code, top.latitude, top.longitude),
        (Some(1042), Some(6011), Some(42.3601), Some(-71.0589))
    );
    assert_eq!(
        (
            top.is_income,
            top.is_direct_deposit,
            top.is_expense,
            top.is_fee,
            top.is_bill_pay,
            top.is_overdraft_fee,
            top.is_payroll_advance
        ),
        (true, true, false, false, false, false, false)
    );
    assert!(list[1].is_expense && list[2].is_fee);

    let on_card = transactions::list_for_user(&db, ada, Some(card), None, 0).await.unwrap();
    assert_eq!(
        on_card.iter().map(|t| (t.guid.as_str(), t.account_name.as_str(), t.account_type_ds)).collect::<Vec<_>>(),
        [("TRN-2", "Visa", AccountFamily::Debt), ("TRN-4", "Visa", AccountFamily::Debt)]
    );

    let bobs_list = transactions::list_for_user(&db, bob, None, None, 0).await.unwrap();
    assert_eq!(bobs_list.iter().map(|t| (t.guid.as_str(), t.amount.get())).collect::<Vec<_>>(), [("TRN-1", -1)]);
    assert_eq!(
        list.iter().find(|t| t.guid == "TRN-1").unwrap().amount,
        Cents::new(-1_250),
        "the same guid at another user is another transaction"
    );
    assert_eq!(transactions::count_for_user(&db, ada).await.unwrap(), 4);
    assert_eq!(transactions::count_for_user(&db, bob).await.unwrap(), 1);
    assert!(txn_guids(&db, ada, Some(bobs)).await.is_empty());
    assert!(txn_guids(&db, bob, Some(chk)).await.is_empty());

    assert!(alone!(&db, accounts::hide, ada, card, now()).unwrap());
    assert_eq!(txn_guids(&db, ada, None).await, ["TRN-3", "TRN-1"], "a hidden account's transactions are hidden");
    assert!(txn_guids(&db, ada, Some(card)).await.is_empty());
    assert_eq!(txn_guids(&db, ada, Some(chk)).await, ["TRN-3", "TRN-1"]);
}

// ---- Social sign-in ----

async fn link(
    db: &Db,
    provider: &str,
    provider_user_id: &str,
    user_id: i64,
    email: Option<&str>,
    profile: &str,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    social::link(&mut tx, &NewIdentity { provider, provider_user_id, user_id, email, profile, now: now() }).await?;
    tx.commit().await
}

async fn social_link_find_and_refresh(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    assert_eq!(social::count_for_user(&db, ada).await.unwrap(), 0);
    link(&db, "google", "g-1", ada, Some("ada@gmail.example"), r#"{"name":"Ada"}"#).await.unwrap();
    let found = social::find(&db, "google", "g-1").await.unwrap().unwrap();
    assert_eq!(
        (
            found.provider.as_str(),
            found.provider_user_id.as_str(),
            found.user_id,
            found.email.as_deref(),
            found.profile.as_str()
        ),
        ("google", "g-1", ada, Some("ada@gmail.example"), r#"{"name":"Ada"}"#)
    );

    link(&db, "google", "g-1", ada, None, r#"{"name":"Ada L."}"#).await.unwrap();
    let again = social::find(&db, "google", "g-1").await.unwrap().unwrap();
    assert_eq!(
        (again.id, again.email.as_deref(), again.profile.as_str()),
        (found.id, None, r#"{"name":"Ada L."}"#),
        "the profile is refreshed in place"
    );
    assert_eq!(social::count_for_user(&db, ada).await.unwrap(), 1);

    link(&db, "facebook", "g-1", ada, None, "{}").await.unwrap();
    assert_eq!(social::count_for_user(&db, ada).await.unwrap(), 2);
    assert_ne!(social::find(&db, "facebook", "g-1").await.unwrap().unwrap().id, found.id);
    assert!(social::find(&db, "twitter", "g-1").await.unwrap().is_none());
    assert!(social::find(&db, "google", "g-2").await.unwrap().is_none());
}

async fn social_identity_of_another_user_is_a_conflict(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    link(&db, "google", "g-1", ada, Some("ada@gmail.example"), r#"{"name":"Ada"}"#).await.unwrap();
    let err = link(&db, "google", "g-1", bob, Some("bob@gmail.example"), r#"{"name":"Bob"}"#).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let found = social::find(&db, "google", "g-1").await.unwrap().unwrap();
    assert_eq!((found.user_id, found.profile.as_str()), (ada, r#"{"name":"Ada"}"#), "still ada's, untouched");
    assert_eq!(social::count_for_user(&db, bob).await.unwrap(), 0);
    link(&db, "google", "g-2", bob, None, "{}").await.unwrap();
    assert_eq!(social::count_for_user(&db, bob).await.unwrap(), 1);
}

async fn social_request_tokens_are_taken_once_before_expiry(db: Db) {
    let t = now();
    let ten = t + Duration::minutes(10);
    alone!(&db, social::save_request, "rt-1", "twitter", "sealed-1", t, ten).unwrap();
    assert!(alone!(&db, social::take_request, "rt-1", "google", t).unwrap().is_none(), "another provider");
    assert!(alone!(&db, social::take_request, "rt-1", "twitter", ten).unwrap().is_none(), "expired");
    assert!(alone!(&db, social::take_request, "rt-9", "twitter", t).unwrap().is_none(), "unknown");
    assert_eq!(
        alone!(&db, social::take_request, "rt-1", "twitter", t + Duration::minutes(9)).unwrap().as_deref(),
        Some("sealed-1")
    );
    assert!(alone!(&db, social::take_request, "rt-1", "twitter", t).unwrap().is_none(), "taken once");

    alone!(&db, social::save_request, "rt-2", "twitter", "sealed-2", t, t + Duration::minutes(1)).unwrap();
    alone!(&db, social::save_request, "rt-3", "twitter", "sealed-3", t + Duration::minutes(2), ten).unwrap();
    assert!(alone!(&db, social::take_request, "rt-2", "twitter", t).unwrap().is_none(), "expired requests are purged");
    let err = alone!(&db, social::save_request, "rt-3", "twitter", "again", t, ten).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(alone!(&db, social::take_request, "rt-3", "twitter", t).unwrap().as_deref(), Some("sealed-3"));
}

async fn engines_agree_on_search_case_wildcards_and_missing_times(db: Db) {
    alone!(
        &db,
        institutions::upsert,
        &[
            catalog("ecole", "École Credit Union", None),
            catalog("ab", "A_B Bank", None),
            catalog("axb", "AXB Bank", None),
        ],
        now()
    )
    .unwrap();
    let names = |list: Vec<institutions::Institution>| list.into_iter().map(|i| i.name).collect::<Vec<_>>();
    assert_eq!(names(institutions::list(&db, Some("ÉCOLE"), 10).await.unwrap()), ["École Credit Union"]);
    assert_eq!(names(institutions::list(&db, Some("école"), 10).await.unwrap()), ["École Credit Union"]);
    assert_eq!(names(institutions::list(&db, Some("a_b"), 10).await.unwrap()), ["A_B Bank"], "_ is not a wildcard");
    assert_eq!(names(institutions::list(&db, Some("%"), 10).await.unwrap()), Vec::<String>::new());

    let user = make_user(&db, "ada@example.com").await;
    let inst = make_institution(&db, "mxbank", "MX Bank").await;
    let member = make_member(&db, user, inst).await;
    let acct = make_account(&db, user, member, "ACT-1", "Checking", AccountFamily::Debit, now()).await;
    let mut timed = txn("TRN-timed", acct, 100, day(2026, 3, 1));
    timed.transacted_at = Some(at(2026, 3, 1, 10, 0));
    let untimed = txn("TRN-untimed", acct, 200, day(2026, 3, 1));
    upsert_txns(&db, user, &[untimed, timed]).await;
    assert_eq!(txn_guids(&db, user, None).await, ["TRN-timed", "TRN-untimed"], "a missing time sorts last");
}

async fn restarting_an_unknown_member_is_not_found(db: Db) {
    let mut tx = db.begin().await.unwrap();
    let err = members::restart(&mut tx, -1, &MemberStatus::Initiated, now()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn transactions_page_by_limit_and_offset(db: Db) {
    let user = make_user(&db, "ada@example.com").await;
    let inst = make_institution(&db, "mxbank", "MX Bank").await;
    let member = make_member(&db, user, inst).await;
    let checking = make_account(&db, user, member, "ACT-1", "Checking", AccountFamily::Debit, now()).await;
    let savings = make_account(&db, user, member, "ACT-2", "Savings", AccountFamily::Debit, now()).await;
    let rows: Vec<_> = (1..=9)
        .map(|d| txn(&format!("TRN-{d}"), if d % 3 == 0 { savings } else { checking }, 100, day(2026, 3, d)))
        .collect();
    upsert_txns(&db, user, &rows).await;
    let guids = |list: Vec<transactions::Transaction>| list.into_iter().map(|t| t.guid).collect::<Vec<_>>();
    let page = transactions::list_for_user(&db, user, None, Some(4), 2).await.unwrap();
    assert_eq!(guids(page), ["TRN-7", "TRN-6", "TRN-5", "TRN-4"]);
    let tail = transactions::list_for_user(&db, user, None, Some(4), 8).await.unwrap();
    assert_eq!(guids(tail), ["TRN-1"]);
    assert_eq!(transactions::count_visible(&db, user, None).await.unwrap(), 9);
    assert_eq!(transactions::count_visible(&db, user, Some(savings)).await.unwrap(), 3);
    let saved = transactions::list_for_user(&db, user, Some(savings), Some(2), 1).await.unwrap();
    assert_eq!(guids(saved), ["TRN-6", "TRN-3"]);
    alone!(&db, accounts::hide, user, savings, now()).unwrap();
    assert_eq!(transactions::count_visible(&db, user, None).await.unwrap(), 6, "hidden accounts do not count");
}

async fn conflicts_name_the_same_constraint_on_both_engines(db: Db) {
    use donkies_store::constraints;
    let ada = make_user(&db, "ada@example.com").await;
    let mut tx = db.begin().await.unwrap();
    let err = users::set_email(&mut tx, ada, "ada@example.com", now()).await.map(|_| ());
    assert!(err.is_ok(), "keeping one's own address is no conflict");
    drop(tx);
    make_user(&db, "bob@example.com").await;
    let mut tx = db.begin().await.unwrap();
    let err = users::set_email(&mut tx, ada, "bob@example.com", now()).await.unwrap_err();
    assert!(err.on_constraint(constraints::USERS_EMAIL), "{err:?}");
    assert!(!err.on_constraint(constraints::USERS_IDENTIFIER), "{err:?}");
    drop(tx);

    let chase = make_institution(&db, "chase", "Chase").await;
    make_member(&db, ada, chase).await;
    let err = try_member(&db, ada, chase, now()).await.unwrap_err();
    assert!(err.on_constraint(constraints::MEMBERS_USER_INSTITUTION), "{err:?}");

    let t = now();
    alone!(&db, social::save_request, "rt-1", "twitter", "sealed", t, t + Duration::minutes(5)).unwrap();
    let err = alone!(&db, social::save_request, "rt-1", "twitter", "again", t, t + Duration::minutes(5)).unwrap_err();
    assert!(err.on_constraint(constraints::OAUTH_REQUESTS_TOKEN), "{err:?}");

    let bob = users::find_by_email(&db, "bob@example.com").await.unwrap().unwrap().id;
    link(&db, "google", "g-1", ada, None, "{}").await.unwrap();
    let err = link(&db, "google", "g-1", bob, None, "{}").await.unwrap_err();
    assert!(err.on_constraint(constraints::SOCIAL_IDENTITIES_PROVIDER_USER), "{err:?}");
    assert!(!StoreError::NotFound.on_constraint(constraints::USERS_EMAIL));
}

async fn ids_are_program_chosen_integers(db: Db) {
    let first = make_user(&db, "ada@example.com").await;
    let second = make_user(&db, "bob@example.com").await;
    assert!(0 < first && first < second && second < donkies_store::MAX_ID, "{first} {second}");
    let chase = make_institution(&db, "chase", "Chase").await;
    let member = make_member(&db, first, chase).await;
    let account = make_account(&db, first, member, "ACT-1", "Checking", AccountFamily::Debit, now()).await;
    for id in [chase, member, account] {
        assert!(0 < id && id < donkies_store::MAX_ID, "{id}");
    }
    let stored = account_ids(&db, first).await;
    assert_eq!(stored, [("ACT-1".to_owned(), account)]);
    let a = accounts::get(&db, first, account).await.unwrap().unwrap();
    assert!(a.uid.len() == 32 && a.uid.bytes().all(|b| b.is_ascii_hexdigit()), "uid stays 32 hex: {}", a.uid);
}

fn hex(n: u32) -> String {
    format!("{n:032x}")
}

async fn integer_ids_migration_keeps_every_row_and_relation(db: Db) {
    let t0 = at(2024, 1, 1, 9, 0);
    let later = |minutes: i64| t0 + Duration::minutes(minutes);
    // Hex ids in the reverse of their age: the new integers must follow time, not text.
    let (ada, bob) = (hex(0xfff), hex(0x001));
    for (id, email, made) in [(&ada, "ada@example.com", later(0)), (&bob, "bob@example.com", later(1))] {
        raw!(
            &db,
            "INSERT INTO users (id, email, password_hash, first_name, last_name, identifier, encrypted_id, \
             is_even_roundup, created_at, updated_at) VALUES ($1, $2, 'hash', 'F', 'L', $3, $4, TRUE, $5, $5)",
            id.clone(),
            email,
            format!("ident-{id}"),
            format!("enc-{id}"),
            made,
        );
    }
    raw!(
        &db,
        "INSERT INTO auth_tokens (token_hash, user_id, created_at, expires_at) VALUES ('tok-bob', $1, $2, $3)",
        bob.clone(),
        later(2),
        later(60 * 24 * 365 * 10)
    );
    raw!(
        &db,
        "INSERT INTO action_tokens (token_hash, user_id, purpose, created_at, expires_at) \
               VALUES ('reset-ada', $1, 'password_reset', $2, $3)",
        ada.clone(),
        later(2),
        later(60 * 24 * 365 * 10)
    );
    let (mail, orphan_mail) = (hex(0xa1), hex(0xa0));
    for (id, user, made) in [(&mail, Some(ada.clone()), later(3)), (&orphan_mail, None, later(4))] {
        raw!(
            &db,
            "INSERT INTO outbox (id, user_id, template, to_address, subject, text_body, html_body, created_at) \
                   VALUES ($1, $2, 'welcome', 'ada@example.com', 'Hi', 'text', 'html', $3)",
            id.clone(),
            user,
            made
        );
    }
    let (inst, member, checking, card) = (hex(0xb1), hex(0xc1), hex(0xd2), hex(0xd1));
    raw!(
        &db,
        "INSERT INTO institutions (id, code, name, created_at, updated_at) VALUES ($1, 'chase', 'Chase', $2, $2)",
        inst.clone(),
        later(5)
    );
    raw!(
        &db,
        "INSERT INTO institution_credentials (institution_id, guid, field_name, label, kind, display_order) \
               VALUES ($1, 'CRD-1', 'username', 'Username', 'LOGIN', 1)",
        inst.clone()
    );
    raw!(
        &db,
        "INSERT INTO members (id, user_id, institution_id, identifier, guid, name, status, poll_generation, \
               created_at, updated_at) VALUES ($1, $2, $3, 'mbr-ident', 'MBR-1', 'Chase', 'CHALLENGED', 3, $4, $4)",
        member.clone(),
        ada.clone(),
        inst.clone(),
        later(6)
    );
    raw!(
        &db,
        "INSERT INTO challenges (member_id, guid, position, label, kind, options) \
               VALUES ($1, 'CRC-1', 0, 'Pet?', 'TEXT', '[]')",
        member.clone()
    );
    for (id, guid, family, share, made) in [
        (&checking, "ACT-chk", AccountFamily::Debit, 0_i64, later(8)),
        (&card, "ACT-card", AccountFamily::Debt, 100, later(7)),
    ] {
        raw!(
            &db,
            "INSERT INTO accounts (id, user_id, member_id, guid, uid, name, kind, type_ds, balance, \
                   transfer_share, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $4, 'CHECKING', $6, 1234, $7, $8, $8)",
            id.clone(),
            ada.clone(),
            member.clone(),
            guid,
            format!("uid-{guid}"),
            family.as_str(),
            share,
            made
        );
    }
    for (id, guid, account, made) in [(hex(0xe2), "TRN-1", &checking, later(9)), (hex(0xe1), "TRN-2", &card, later(10))]
    {
        raw!(
            &db,
            "INSERT INTO transactions (id, user_id, account_id, guid, uid, amount, kind, date, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, 1250, 'DEBIT', $6, $7, $7)",
            id,
            ada.clone(),
            account.clone(),
            guid,
            format!("uid-{guid}"),
            day(2024, 1, 2),
            made
        );
    }
    raw!(
        &db,
        "INSERT INTO social_identities (id, provider, provider_user_id, user_id, profile, created_at, updated_at) \
               VALUES ($1, 'google', 'g-1', $2, '{}', $3, $3)",
        hex(0xf1),
        bob.clone(),
        later(11)
    );
    raw!(
        &db,
        "INSERT INTO oauth_requests (token, provider, secret_sealed, created_at, expires_at) \
               VALUES ('rt-1', 'twitter', 'sealed', $1, $2)",
        later(11),
        later(60 * 24 * 365 * 10)
    );
    let payloads = [
        serde_json::json!({ "member_id": member, "generation": 3 }),
        serde_json::json!({ "user_id": bob }),
        serde_json::json!({ "outbox_id": mail }),
        serde_json::json!({ "slot": 7 }),
    ];
    for (n, payload) in payloads.iter().enumerate() {
        raw!(
            &db,
            "INSERT INTO jobs (id, kind, payload, status, max_attempts, run_at, created_at, updated_at) \
                   VALUES ($1, 'k', $2, 'queued', 3, $3, $3, $3)",
            hex(0x900 - n as u32),
            payload.to_string(),
            later(12 + n as i64)
        );
    }
    raw!(&db, "INSERT INTO job_slots (name, slot, created_at) VALUES ('refresh', 7, $1)", later(12));

    db.migrate().await.unwrap();

    // Users, numbered in the order they were made, with what hangs off them.
    let ada_row = users::find_by_email(&db, "ada@example.com").await.unwrap().unwrap();
    let bob_row = users::find_by_email(&db, "bob@example.com").await.unwrap().unwrap();
    assert_eq!((ada_row.id, bob_row.id), (1, 2));
    assert_eq!(
        (ada_row.identifier.as_str(), ada_row.created_at, ada_row.is_even_roundup),
        (&*format!("ident-{ada}"), t0, true)
    );
    let (session_user, _) = users::find_by_token_hash(&db, "tok-bob").await.unwrap().unwrap();
    assert_eq!(session_user.id, bob_row.id);
    let mut tx = db.begin().await.unwrap();
    let reset =
        tokens::consume_action(&mut tx, "reset-ada", ada_row.id, Purpose::PasswordReset, later(3)).await.unwrap();
    assert_eq!(reset, Some(None), "the reset token still belongs to ada");
    drop(tx);
    let mails = outbox::list_to(&db, "ada@example.com").await.unwrap();
    assert_eq!(mails.iter().map(|m| (m.id, m.user_id)).collect::<Vec<_>>(), [(1, Some(ada_row.id)), (2, None)]);

    // Bank linking: institution, its credentials, the member, its challenge, accounts, transactions.
    let chase = institutions::get_by_code(&db, "chase").await.unwrap().unwrap();
    assert_eq!(chase.id, 1);
    assert_eq!(institutions::credentials(&db, chase.id).await.unwrap().len(), 1);
    let m = members::find_for_institution(&db, ada_row.id, chase.id).await.unwrap().unwrap();
    assert_eq!((m.id, m.user_id, m.identifier.as_str(), m.poll_generation), (1, ada_row.id, "mbr-ident", 3));
    assert_eq!(members::challenges(&db, m.id).await.unwrap().len(), 1);
    let accts = accounts::list_for_user(&db, ada_row.id).await.unwrap();
    assert_eq!(
        accts.iter().map(|a| (a.id, a.guid.as_str(), a.member_id, a.transfer_share.get())).collect::<Vec<_>>(),
        [(1, "ACT-card", m.id, 100), (2, "ACT-chk", m.id, 0)],
        "the card was linked first"
    );
    assert_eq!(accts[0].uid, "uid-ACT-card", "uids stay as they were");
    let txns = transactions::list_for_user(&db, ada_row.id, None, None, 0).await.unwrap();
    let mut by_guid: Vec<_> = txns.iter().map(|t| (t.guid.as_str(), t.id, t.account_id)).collect();
    by_guid.sort();
    assert_eq!(by_guid, [("TRN-1", 1, 2), ("TRN-2", 2, 1)]);
    assert_eq!(transactions::count_visible(&db, ada_row.id, Some(1)).await.unwrap(), 1);

    // Sign-in and the queue.
    let identity = social::find(&db, "google", "g-1").await.unwrap().unwrap();
    assert_eq!((identity.id, identity.user_id), (1, bob_row.id));
    assert_eq!(alone!(&db, social::take_request, "rt-1", "twitter", later(12)).unwrap().as_deref(), Some("sealed"));
    let queued = jobs::list(&db, false).await.unwrap();
    let payloads: Vec<serde_json::Value> = queued.iter().map(|j| serde_json::from_str(&j.payload).unwrap()).collect();
    assert_eq!(queued.iter().map(|j| j.id).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(
        payloads,
        [
            serde_json::json!({ "member_id": m.id, "generation": 3 }),
            serde_json::json!({ "user_id": bob_row.id }),
            serde_json::json!({ "outbox_id": 1 }),
            serde_json::json!({ "slot": 7 }),
        ],
        "payloads name the new ids"
    );
    assert!(!jobs::enqueue_periodic(&db, "refresh", 7, 3, later(13)).await.unwrap(), "slots survive");

    // The relations are enforced on the new columns, and new rows get program-chosen ids.
    let err = try_member(&db, 999_999, chase.id, now()).await.unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "a member of no user is refused: {err:?}");
    let err = try_member(&db, ada_row.id, chase.id, now()).await.unwrap_err();
    assert!(err.on_constraint(donkies_store::constraints::MEMBERS_USER_INSTITUTION), "{err:?}");
    let carol = make_user(&db, "carol@example.com").await;
    assert!(carol > bob_row.id);
    let err = make_user_result(&db, "ada@example.com").await.unwrap_err();
    assert!(err.on_constraint(donkies_store::constraints::USERS_EMAIL), "{err:?}");
    if db.backend() == donkies_store::Backend::Sqlite {
        let broken =
            donkies_store::on_db!(&db, pool => sqlx::query("PRAGMA foreign_key_check").fetch_all(pool).await.map(|rows| rows.len())).unwrap();
        assert_eq!(broken, 0, "no dangling reference after the rebuild");
    }
    // Deleting a user still cascades to everything that is theirs.
    raw!(&db, "DELETE FROM users WHERE id = $1", ada_row.id);
    assert!(accounts::list_for_user(&db, ada_row.id).await.unwrap().is_empty());
    assert_eq!(transactions::count_for_user(&db, ada_row.id).await.unwrap(), 0);
    let mails = outbox::list_to(&db, "ada@example.com").await.unwrap();
    assert_eq!(mails.iter().map(|m| m.user_id).collect::<Vec<_>>(), [None, None], "mail outlives its user");
}

async fn domain_values_round_trip_and_bad_stored_values_are_refused(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let m = make_member(&db, ada, chase).await;
    let unknown = MemberStatus::parse("RECONNECTED");
    assert!(save_status(&db, m, 1, &StatusUpdate { status: unknown.clone(), ..status_update("") }).await);
    assert_eq!(member(&db, m).await.status, unknown, "an unknown status keeps its text");
    assert_eq!(members::status_of(&db, m).await.unwrap(), Some((unknown, false)));

    let card = make_account(&db, ada, m, "ACT-card", "Visa", AccountFamily::Debt, now()).await;
    let a = account(&db, ada, card).await;
    assert_eq!(
        (a.type_ds, a.balance, a.transfer_share),
        (AccountFamily::Debt, Some(Cents::new(10_000)), Share::default())
    );
    raw!(&db, "UPDATE accounts SET type_ds = 'checking' WHERE id = $1", card);
    let err = accounts::get(&db, ada, card).await.unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert!(err.to_string().contains("not an account family"), "{err}");
    raw!(&db, "UPDATE accounts SET type_ds = 'debt', transfer_share = 101 WHERE id = $1", card);
    assert!(accounts::get(&db, ada, card).await.is_err(), "a share above 100 is refused");
}

async fn debt_shares_are_the_active_debt_accounts_in_order(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let chase = make_institution(&db, "chase", "Chase").await;
    let m = make_member(&db, ada, chase).await;
    let t = now();
    make_account(&db, ada, m, "ACT-chk", "Checking", AccountFamily::Debit, t).await;
    let d1 = make_account(&db, ada, m, "ACT-d1", "Visa", AccountFamily::Debt, t + Duration::seconds(1)).await;
    let d2 = make_account(&db, ada, m, "ACT-d2", "Loan", AccountFamily::Debt, t + Duration::seconds(2)).await;
    let d3 = make_account(&db, ada, m, "ACT-d3", "Mortgage", AccountFamily::Debt, t + Duration::seconds(3)).await;
    set_shares(&db, ada, &[(d1, 30), (d2, 30), (d3, 40)]).await;
    set_active(&db, ada, d3, false).await;
    let current = accounts::debt_shares(&db, ada).await.unwrap();
    let pct = |shares: &DebtShares| shares.iter().map(|(id, s)| (id, s.get())).collect::<Vec<_>>();
    assert_eq!(pct(&current), [(d1, 30), (d2, 30)], "inactive accounts are left out");
    let mut tx = db.begin().await.unwrap();
    accounts::set_shares(&mut tx, ada, &current.rebalanced(), now()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(pct(&accounts::debt_shares(&db, ada).await.unwrap()), [(d1, 50), (d2, 50)]);
    assert_eq!(account(&db, ada, d3).await.transfer_share, Share::default(), "accounts left out drop to zero");
}

// ---------------------------------------------------------------------------------------------
// Payments through Dwolla

contract!(
    payments_one_customer_per_user_found_by_user_id_and_dwolla_id,
    payments_customer_status_follows_dwolla_and_keeps_unknown_words,
    payments_one_live_funding_source_per_account,
    payments_funding_sources_are_scoped_to_their_user,
    payments_micro_deposits_wait_for_a_dwolla_id_and_are_initiated_once,
    payments_a_reference_moves_money_at_most_once,
    payments_a_transfer_resolves_at_most_once,
    payments_transfers_in_flight_and_listed_by_status,
    payments_webhook_events_are_recorded_once,
    payments_one_funding_account_per_user_and_dwolla_created_is_scoped,
    payments_bad_stored_words_are_refused,
);

fn new_customer(id: i64, user_id: i64) -> payments::NewCustomer<'static> {
    payments::NewCustomer {
        id,
        user_id,
        kind: CustomerKind::Personal,
        first_name: "Ada",
        last_name: "Lovelace",
        email: "ada@example.com",
        address1: Some("12 St James's Square"),
        address2: None,
        city: Some("New York"),
        state: Some("NY"),
        postal_code: Some("10001"),
        phone: Some("2125550100"),
        date_of_birth: Some(day(1985, 12, 10)),
        ssn_encrypted: Some("sealed:v1:c3NuLTAwMDE="),
        ssn_last4: Some("0001"),
        now: now(),
    }
}

async fn insert_customer(db: &Db, c: &payments::NewCustomer<'_>) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    payments::insert_customer(&mut tx, c).await?;
    tx.commit().await
}

async fn make_customer(db: &Db, user_id: i64) -> i64 {
    let id = new_id();
    insert_customer(db, &new_customer(id, user_id)).await.unwrap();
    id
}

async fn set_customer_dwolla(db: &Db, id: i64, dwolla_id: &str, status: &CustomerStatus) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    payments::set_customer_dwolla(&mut tx, id, dwolla_id, status, now()).await?;
    tx.commit().await
}

async fn customer(db: &Db, id: i64) -> payments::Customer {
    payments::customer_by_id(db, id).await.unwrap().unwrap()
}

/// A user with a customer and a checking account at a bank; (user, account, customer).
async fn banked_user(db: &Db, email: &str) -> (i64, i64, i64) {
    let user = make_user(db, email).await;
    let code = format!("bank-{user}");
    let bank = make_institution(db, &code, "Bank").await;
    let member = make_member(db, user, bank).await;
    let account = make_account(db, user, member, &format!("ACT-{user}"), "Checking", AccountFamily::Debit, now()).await;
    (user, account, make_customer(db, user).await)
}

fn new_funding_source(user_id: i64, account_id: i64, customer_id: i64) -> payments::NewFundingSource<'static> {
    payments::NewFundingSource {
        id: new_id(),
        user_id,
        account_id,
        customer_id,
        dwolla_id: None,
        account_number_encrypted: Some("sealed:v1:YWNjdC0xMjM0NQ=="),
        account_number_last4: Some("2345"),
        routing_number: Some("222222226"),
        status: FundingSourceStatus::Unverified,
        bank_account_type: BankAccountType::Checking,
        source_type: FundingSourceType::Bank,
        name: "Everyday checking",
        verification_type: VerificationType::MicroDeposits,
        now: now(),
    }
}

async fn insert_funding_source(db: &Db, f: &payments::NewFundingSource<'_>) -> Result<i64, StoreError> {
    let mut tx = db.begin().await?;
    payments::insert_funding_source(&mut tx, f).await?;
    tx.commit().await?;
    Ok(f.id)
}

async fn set_funding_source_dwolla(db: &Db, id: i64, dwolla_id: &str) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    payments::set_funding_source_dwolla(&mut tx, id, dwolla_id, FundingSourceStatus::Unverified, now()).await?;
    tx.commit().await
}

async fn funding_source(db: &Db, id: i64) -> payments::FundingSource {
    payments::funding_source_by_id(db, id).await.unwrap().unwrap()
}

fn new_transfer<'a>(user_id: Option<i64>, reference: &'a str, key: &'a str) -> payments::NewTransfer<'a> {
    payments::NewTransfer {
        id: new_id(),
        user_id,
        reference,
        idempotency_key: key,
        source_funding_source: "fs-source",
        destination: "fs-destination",
        amount: Cents::new(1_234),
        status: TransferStatus::Pending,
        now: now(),
    }
}

async fn insert_transfer(db: &Db, t: &payments::NewTransfer<'_>) -> Result<i64, StoreError> {
    let mut tx = db.begin().await?;
    payments::insert_transfer(&mut tx, t).await?;
    tx.commit().await?;
    Ok(t.id)
}

async fn make_transfer(db: &Db, reference: &str) -> i64 {
    insert_transfer(db, &new_transfer(None, reference, &format!("key-{reference}"))).await.unwrap()
}

async fn transfer(db: &Db, id: i64) -> payments::Transfer {
    payments::transfer_by_id(db, id).await.unwrap().unwrap()
}

async fn payments_one_customer_per_user_found_by_user_id_and_dwolla_id(db: Db) {
    use donkies_store::constraints;
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let id = make_customer(&db, ada).await;

    let err = insert_customer(&db, &new_customer(new_id(), ada)).await.unwrap_err();
    assert!(err.on_constraint(constraints::CUSTOMERS_USER_ID), "{err:?}");

    let c = payments::customer_of_user(&db, ada).await.unwrap().unwrap();
    assert_eq!((c.id, c.user_id, c.kind), (id, ada, CustomerKind::Personal));
    assert_eq!((c.dwolla_id.as_deref(), c.status.as_ref()), (None, None), "unknown to Dwolla until it answers");
    assert_eq!(c.ssn_encrypted.as_deref(), Some("sealed:v1:c3NuLTAwMDE="), "the sealed SSN is stored as given");
    assert_eq!(c.ssn_last4.as_deref(), Some("0001"));
    assert_eq!(c.date_of_birth, Some(day(1985, 12, 10)));
    assert_eq!((c.address1.as_deref(), c.address2.as_deref()), (Some("12 St James's Square"), None));
    assert_eq!(
        (c.city.as_deref(), c.state.as_deref(), c.postal_code.as_deref()),
        (Some("New York"), Some("NY"), Some("10001"))
    );
    assert_eq!(c.phone.as_deref(), Some("2125550100"));
    assert!(payments::customer_of_user(&db, bob).await.unwrap().is_none(), "another user has no customer");

    let ids = |customers: Vec<payments::Customer>| customers.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(ids(payments::customers_without_dwolla_id(&db).await.unwrap()), [id]);
    assert!(payments::customers_with_dwolla_id(&db).await.unwrap().is_empty());

    set_customer_dwolla(&db, id, "cus-ada", &CustomerStatus::Document).await.unwrap();
    let c = payments::customer_by_dwolla_id(&db, "cus-ada").await.unwrap().unwrap();
    assert_eq!((c.id, c.status), (id, Some(CustomerStatus::Document)));
    assert!(payments::customer_by_dwolla_id(&db, "cus-nobody").await.unwrap().is_none());
    assert!(payments::customers_without_dwolla_id(&db).await.unwrap().is_empty());
    assert_eq!(ids(payments::customers_with_dwolla_id(&db).await.unwrap()), [id]);

    let other = make_customer(&db, bob).await;
    let err = set_customer_dwolla(&db, other, "cus-ada", &CustomerStatus::Unverified).await.unwrap_err();
    assert!(err.on_constraint(constraints::CUSTOMERS_DWOLLA_ID), "{err:?}");
    let err = set_customer_dwolla(&db, new_id(), "cus-ghost", &CustomerStatus::Unverified).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(ids(payments::list_customers(&db).await.unwrap()), [id, other], "oldest first");
}

async fn payments_customer_status_follows_dwolla_and_keeps_unknown_words(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let id = make_customer(&db, ada).await;
    assert!(alone!(&db, payments::set_customer_status, id, &CustomerStatus::Retry, now()).unwrap(), "from null");
    assert!(!alone!(&db, payments::set_customer_status, id, &CustomerStatus::Retry, now()).unwrap(), "no change");
    assert!(alone!(&db, payments::set_customer_status, id, &CustomerStatus::Verified, now()).unwrap());
    assert_eq!(customer(&db, id).await.status, Some(CustomerStatus::Verified));
    let unknown = CustomerStatus::parse("under-review");
    assert!(alone!(&db, payments::set_customer_status, id, &unknown, now()).unwrap());
    assert_eq!(customer(&db, id).await.status, Some(unknown), "an unknown status keeps its text");
    assert!(!alone!(&db, payments::set_customer_status, new_id(), &CustomerStatus::Verified, now()).unwrap());
}

async fn payments_one_live_funding_source_per_account(db: Db) {
    use donkies_store::constraints;
    let (ada, account, customer_id) = banked_user(&db, "ada@example.com").await;
    let first = insert_funding_source(&db, &new_funding_source(ada, account, customer_id)).await.unwrap();
    let err = insert_funding_source(&db, &new_funding_source(ada, account, customer_id)).await.unwrap_err();
    assert!(err.on_constraint(constraints::FUNDING_SOURCES_ACCOUNT_ID), "{err:?}");

    let f = funding_source(&db, first).await;
    assert_eq!(f.account_number_encrypted.as_deref(), Some("sealed:v1:YWNjdC0xMjM0NQ=="), "stored as given");
    assert_eq!((f.account_number_last4.as_deref(), f.routing_number.as_deref()), (Some("2345"), Some("222222226")));
    assert_eq!(
        (f.status, f.bank_account_type, f.source_type),
        (FundingSourceStatus::Unverified, BankAccountType::Checking, FundingSourceType::Bank)
    );
    assert_eq!(
        (f.verification_type, f.md_status, f.md_attempts, f.is_removed),
        (VerificationType::MicroDeposits, None, 0, false)
    );
    assert_eq!(
        (f.user_id, f.account_id, f.customer_id, f.name.as_str()),
        (ada, account, customer_id, "Everyday checking")
    );

    set_funding_source_dwolla(&db, first, "fs-1").await.unwrap();
    assert_eq!(payments::funding_source_by_dwolla_id(&db, "fs-1").await.unwrap().unwrap().id, first);
    assert!(alone!(&db, payments::mark_funding_source_removed, first, now()).unwrap());
    assert!(!alone!(&db, payments::mark_funding_source_removed, first, now()).unwrap(), "removed once");
    assert!(payments::funding_source_of_account(&db, ada, account).await.unwrap().is_none());

    let second = insert_funding_source(
        &db,
        &payments::NewFundingSource {
            dwolla_id: Some("fs-2"),
            status: FundingSourceStatus::Verified,
            verification_type: VerificationType::Iav,
            now: now() + Duration::seconds(1),
            ..new_funding_source(ada, account, customer_id)
        },
    )
    .await
    .expect("a removed funding source leaves room for a new one");
    assert_eq!(payments::funding_source_of_account(&db, ada, account).await.unwrap().unwrap().id, second);
    let listed: Vec<_> = payments::funding_sources_of_user(&db, ada).await.unwrap().into_iter().map(|f| f.id).collect();
    assert_eq!(listed, [second, first], "not removed first");

    let (bob, bob_account, bob_customer) = banked_user(&db, "bob@example.com").await;
    let err = insert_funding_source(
        &db,
        &payments::NewFundingSource { dwolla_id: Some("fs-2"), ..new_funding_source(bob, bob_account, bob_customer) },
    )
    .await
    .unwrap_err();
    assert!(err.on_constraint(constraints::FUNDING_SOURCES_DWOLLA_ID), "{err:?}");
    alone!(&db, payments::mark_funding_source_removed, second, now()).unwrap();
    let third = insert_funding_source(&db, &new_funding_source(ada, account, customer_id)).await.unwrap();
    let err = set_funding_source_dwolla(&db, third, "fs-2").await.unwrap_err();
    assert!(err.on_constraint(constraints::FUNDING_SOURCES_DWOLLA_ID), "{err:?}");

    assert!(alone!(&db, payments::set_funding_source_status, third, FundingSourceStatus::Verified, now()).unwrap());
    assert!(!alone!(&db, payments::set_funding_source_status, third, FundingSourceStatus::Verified, now()).unwrap());
    assert_eq!(funding_source(&db, third).await.status, FundingSourceStatus::Verified);
}

async fn payments_funding_sources_are_scoped_to_their_user(db: Db) {
    let (ada, ada_account, ada_customer) = banked_user(&db, "ada@example.com").await;
    let (bob, bob_account, _) = banked_user(&db, "bob@example.com").await;
    let id = insert_funding_source(&db, &new_funding_source(ada, ada_account, ada_customer)).await.unwrap();
    assert_eq!(payments::funding_source(&db, ada, id).await.unwrap().unwrap().id, id);
    assert!(payments::funding_source(&db, bob, id).await.unwrap().is_none(), "another user's id finds nothing");
    assert!(payments::funding_source_of_account(&db, bob, ada_account).await.unwrap().is_none());
    assert!(payments::funding_source_of_account(&db, ada, bob_account).await.unwrap().is_none());
    assert!(payments::funding_sources_of_user(&db, bob).await.unwrap().is_empty());
    assert_eq!(payments::funding_sources_of_user(&db, ada).await.unwrap().len(), 1);
}

async fn payments_micro_deposits_wait_for_a_dwolla_id_and_are_initiated_once(db: Db) {
    let (ada, account, customer_id) = banked_user(&db, "ada@example.com").await;
    let id = insert_funding_source(&db, &new_funding_source(ada, account, customer_id)).await.unwrap();
    let needing = |db: Db| async move {
        payments::funding_sources_needing_micro_deposits(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.id)
            .collect::<Vec<_>>()
    };
    assert!(needing(db.clone()).await.is_empty(), "not yet known to Dwolla");
    set_funding_source_dwolla(&db, id, "fs-1").await.unwrap();
    assert_eq!(needing(db.clone()).await, [id]);

    alone!(&db, payments::set_micro_deposits, id, Some(&MicroDepositStatus::Pending), 0, now()).unwrap();
    assert!(needing(db.clone()).await.is_empty(), "initiated once");
    alone!(&db, payments::set_micro_deposits, id, Some(&MicroDepositStatus::MaxAttempts), 3, now()).unwrap();
    let f = funding_source(&db, id).await;
    assert_eq!((f.md_status, f.md_attempts), (Some(MicroDepositStatus::MaxAttempts), 3));
    alone!(&db, payments::set_micro_deposits, id, None, 0, now()).unwrap();
    assert_eq!(needing(db.clone()).await, [id], "cleared, they may be initiated again");

    let (bob, bob_account, bob_customer) = banked_user(&db, "bob@example.com").await;
    let iav = insert_funding_source(
        &db,
        &payments::NewFundingSource {
            dwolla_id: Some("fs-iav"),
            verification_type: VerificationType::Iav,
            ..new_funding_source(bob, bob_account, bob_customer)
        },
    )
    .await
    .unwrap();
    assert!(!needing(db.clone()).await.contains(&iav), "IAV sources need no micro-deposits");
    alone!(&db, payments::mark_funding_source_removed, id, now()).unwrap();
    assert!(needing(db.clone()).await.is_empty(), "removed sources need none");
}

async fn payments_a_reference_moves_money_at_most_once(db: Db) {
    use donkies_store::constraints;
    let ada = make_user(&db, "ada@example.com").await;
    let id = insert_transfer(&db, &new_transfer(Some(ada), "collection:1", "key-1")).await.unwrap();
    let err = insert_transfer(&db, &new_transfer(Some(ada), "collection:1", "key-2")).await.unwrap_err();
    assert!(err.on_constraint(constraints::TRANSFERS_REFERENCE), "{err:?}");
    let err = insert_transfer(&db, &new_transfer(Some(ada), "collection:2", "key-1")).await.unwrap_err();
    assert!(err.on_constraint(constraints::TRANSFERS_IDEMPOTENCY_KEY), "{err:?}");

    let t = payments::transfer_by_reference(&db, "collection:1").await.unwrap().unwrap();
    assert_eq!((t.id, t.user_id, t.idempotency_key.as_str()), (id, Some(ada), "key-1"));
    assert_eq!((t.source_funding_source.as_str(), t.destination.as_str()), ("fs-source", "fs-destination"));
    assert_eq!(
        (t.amount, t.status.clone(), t.dwolla_id.as_deref()),
        (Cents::new(1_234), TransferStatus::Pending, None)
    );
    assert_eq!((t.failure_code, t.failure_description, t.processed_at), (None, None, None));
    assert!(payments::transfer_by_reference(&db, "collection:2").await.unwrap().is_none());

    alone!(&db, payments::set_transfer_dwolla_id, id, "tr-1", &TransferStatus::Pending, now()).unwrap();
    assert_eq!(payments::transfer_by_dwolla_id(&db, "tr-1").await.unwrap().unwrap().id, id);
    assert!(payments::transfer_by_dwolla_id(&db, "tr-2").await.unwrap().is_none());
    let other = make_transfer(&db, "payout:1").await;
    let err =
        alone!(&db, payments::set_transfer_dwolla_id, other, "tr-1", &TransferStatus::Pending, now()).unwrap_err();
    assert!(err.on_constraint(constraints::TRANSFERS_DWOLLA_ID), "{err:?}");
    let err =
        alone!(&db, payments::set_transfer_dwolla_id, new_id(), "tr-9", &TransferStatus::Pending, now()).unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");

    raw!(&db, "DELETE FROM users WHERE id = $1", ada);
    assert_eq!(transfer(&db, id).await.user_id, None, "a transfer outlives its user");
}

async fn payments_a_transfer_resolves_at_most_once(db: Db) {
    let id = make_transfer(&db, "collection:1").await;
    let failed = TransferStatus::Failed;
    assert!(
        !alone!(&db, payments::set_transfer_status, id, &TransferStatus::Pending, None, now()).unwrap(),
        "no change"
    );
    let resolved = now();
    assert!(
        alone!(&db, payments::set_transfer_status, id, &failed, Some(("R01", "Insufficient Funds")), resolved).unwrap()
    );
    assert!(!alone!(&db, payments::set_transfer_status, id, &failed, Some(("R03", "No Account")), now()).unwrap());
    assert!(!alone!(&db, payments::set_transfer_status, id, &TransferStatus::Processed, None, now()).unwrap());
    assert!(!alone!(&db, payments::set_transfer_status, id, &TransferStatus::Pending, None, now()).unwrap());
    let t = transfer(&db, id).await;
    assert_eq!(
        (t.status, t.failure_code.as_deref(), t.failure_description.as_deref()),
        (failed, Some("R01"), Some("Insufficient Funds"))
    );
    assert_eq!((t.updated_at, t.processed_at), (resolved, None));

    alone!(&db, payments::set_transfer_dwolla_id, id, "tr-1", &TransferStatus::Pending, now()).unwrap();
    assert_eq!(transfer(&db, id).await.status, TransferStatus::Failed, "recording the Dwolla id keeps a resolution");

    let instant = make_transfer(&db, "collection:2").await;
    let at_dwolla = now();
    alone!(&db, payments::set_transfer_dwolla_id, instant, "tr-2", &TransferStatus::Processed, at_dwolla).unwrap();
    let t = transfer(&db, instant).await;
    assert_eq!(
        (t.status, t.processed_at),
        (TransferStatus::Processed, Some(at_dwolla)),
        "a balance transfer resolves at once"
    );
    assert!(!alone!(&db, payments::set_transfer_status, instant, &TransferStatus::Cancelled, None, now()).unwrap());

    let unknown = make_transfer(&db, "collection:3").await;
    assert!(
        alone!(&db, payments::set_transfer_status, unknown, &TransferStatus::parse("on-hold"), None, now()).unwrap()
    );
    assert_eq!(transfer(&db, unknown).await.status, TransferStatus::parse("on-hold"), "kept as Dwolla spelled it");
    let processed = now();
    assert!(
        alone!(&db, payments::set_transfer_status, unknown, &TransferStatus::Processed, None, processed).unwrap(),
        "an unknown status is not final"
    );
    assert_eq!(transfer(&db, unknown).await.processed_at, Some(processed));
}

async fn payments_transfers_in_flight_and_listed_by_status(db: Db) {
    let ids = |transfers: Vec<payments::Transfer>| transfers.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let t0 = now();
    let mut made = Vec::new();
    for (n, reference) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let t =
            payments::NewTransfer { now: t0 + Duration::seconds(n as i64), ..new_transfer(None, reference, reference) };
        made.push(insert_transfer(&db, &t).await.unwrap());
    }
    let [a, b, c, d] = made[..] else { unreachable!() };
    alone!(&db, payments::set_transfer_status, b, &TransferStatus::Processed, None, now()).unwrap();
    alone!(&db, payments::set_transfer_status, c, &TransferStatus::Cancelled, None, now()).unwrap();
    alone!(&db, payments::set_transfer_status, d, &TransferStatus::parse("reclaimed"), None, now()).unwrap();
    assert_eq!(ids(payments::transfers_in_flight(&db).await.unwrap()), [a], "reclaimed is final too");
    assert_eq!(ids(payments::list_transfers(&db, None).await.unwrap()), [d, c, b, a], "newest first");
    assert_eq!(ids(payments::list_transfers(&db, Some(&TransferStatus::Processed)).await.unwrap()), [b]);
    assert_eq!(ids(payments::list_transfers(&db, Some(&TransferStatus::Pending)).await.unwrap()), [a]);
    assert!(payments::list_transfers(&db, Some(&TransferStatus::Failed)).await.unwrap().is_empty());
}

async fn payments_webhook_events_are_recorded_once(db: Db) {
    let mut tx = db.begin().await.unwrap();
    assert!(payments::record_event(&mut tx, "evt-1", "customer_created", "cus-1", now()).await.unwrap());
    drop(tx);
    let mut tx = db.begin().await.unwrap();
    assert!(
        payments::record_event(&mut tx, "evt-1", "customer_created", "cus-1", now()).await.unwrap(),
        "a rolled-back event was never recorded"
    );
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    assert!(
        !payments::record_event(&mut tx, "evt-1", "customer_created", "cus-1", now()).await.unwrap(),
        "a repeated delivery"
    );
    assert!(payments::record_event(&mut tx, "evt-2", "customer_created", "cus-1", now()).await.unwrap());
    tx.commit().await.unwrap();
}

async fn payments_one_funding_account_per_user_and_dwolla_created_is_scoped(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let bank = make_institution(&db, "chase", "Chase").await;
    let (ada_member, bob_member) = (make_member(&db, ada, bank).await, make_member(&db, bob, bank).await);
    let checking = make_account(&db, ada, ada_member, "ACT-chk", "Checking", AccountFamily::Debit, now()).await;
    let savings = make_account(&db, ada, ada_member, "ACT-sav", "Savings", AccountFamily::Debit, now()).await;
    let bobs = make_account(&db, bob, bob_member, "ACT-bob", "Checking", AccountFamily::Debit, now()).await;
    let funding =
        |db: Db, user: i64, id: i64| async move { account(&db, user, id).await.is_funding_source_for_transfer };
    let choose = |db: Db, user: i64, id: i64| async move {
        let mut tx = db.begin().await.unwrap();
        accounts::set_funding_source_for_transfer(&mut tx, user, id, now()).await.unwrap();
        tx.commit().await.unwrap();
    };
    choose(db.clone(), bob, bobs).await;
    choose(db.clone(), ada, checking).await;
    assert!(funding(db.clone(), ada, checking).await && !funding(db.clone(), ada, savings).await);
    choose(db.clone(), ada, savings).await;
    assert!(!funding(db.clone(), ada, checking).await && funding(db.clone(), ada, savings).await);
    assert!(funding(db.clone(), bob, bobs).await, "another user's choice stands");
    choose(db.clone(), ada, bobs).await;
    assert!(funding(db.clone(), bob, bobs).await, "another user's account is not touched");

    alone!(&db, accounts::set_dwolla_created, ada, checking, true, now()).unwrap();
    alone!(&db, accounts::set_dwolla_created, ada, bobs, true, now()).unwrap();
    assert!(account(&db, ada, checking).await.is_dwolla_created);
    assert!(!account(&db, ada, savings).await.is_dwolla_created);
    assert!(!account(&db, bob, bobs).await.is_dwolla_created, "scoped to the user");
    alone!(&db, accounts::set_dwolla_created, ada, checking, false, now()).unwrap();
    assert!(!account(&db, ada, checking).await.is_dwolla_created);
}

async fn payments_bad_stored_words_are_refused(db: Db) {
    let (ada, account, customer_id) = banked_user(&db, "ada@example.com").await;
    let fs = insert_funding_source(&db, &new_funding_source(ada, account, customer_id)).await.unwrap();
    raw!(&db, "UPDATE customers SET kind = 'business' WHERE id = $1", customer_id);
    let err = payments::customer_by_id(&db, customer_id).await.unwrap_err();
    assert!(err.to_string().contains("not a customer kind"), "{err}");
    raw!(&db, "UPDATE funding_sources SET md_status = 'lost' WHERE id = $1", fs);
    let err = payments::funding_source_by_id(&db, fs).await.unwrap_err();
    assert!(err.to_string().contains("not a micro-deposit status"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The ledger

contract!(
    ledger_an_entry_posts_once_and_a_replay_is_a_no_op,
    ledger_a_key_naming_another_entry_is_refused,
    ledger_a_pending_entry_posts_or_voids_exactly_once,
    ledger_concurrent_resolutions_of_one_pending_entry_let_exactly_one_win,
    ledger_limits_are_refused_without_partial_writes,
    ledger_a_refusal_leaves_the_callers_own_change_to_commit,
    ledger_movements_of_the_money_loop_balance,
    ledger_check_finds_a_hand_corrupted_balance_row,
    ledger_entries_cannot_be_changed_or_deleted,
    ledger_record_all_posts_many_at_once_with_the_same_guarantees,
);

mod ledger_support {
    use donkies_domain::ledger::keys;
    use donkies_domain::{Cents, Entry, EntryKind, LedgerAccount, Movement, Recorded};
    use donkies_store::ledger::{self, LedgerError};
    use donkies_store::{Db, new_id};

    pub const USER: i64 = 41;

    pub fn pending() -> LedgerAccount {
        LedgerAccount::RoundUpsPending { user_id: USER }
    }

    pub fn held() -> LedgerAccount {
        LedgerAccount::Held { user_id: USER }
    }

    pub fn roundup_entry(transaction_id: i64, cents: i64) -> Entry {
        Entry::new(
            keys::roundup(transaction_id),
            EntryKind::RoundUp,
            LedgerAccount::RoundUpSource,
            pending(),
            Cents::new(cents),
        )
        .unwrap()
    }

    pub async fn record(db: &Db, movement: &Movement) -> Result<Recorded, LedgerError> {
        let mut tx = db.begin().await?;
        let recorded = ledger::record(&mut tx, movement).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    pub async fn record_all(db: &Db, movements: &[Movement]) -> Result<Recorded, LedgerError> {
        let mut tx = db.begin().await?;
        let recorded = ledger::record_all(&mut tx, movements).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    /// Round-ups of `cents`, collected into what the user holds at Donkies.
    pub async fn hold(db: &Db, cents: i64) {
        let amount = Cents::new(cents);
        let collection_id = new_id();
        record(db, &Movement::RoundUp { user_id: USER, roundup_id: new_id(), amount }).await.unwrap();
        record(db, &Movement::CollectStart { user_id: USER, collection_id, amount }).await.unwrap();
        record(db, &Movement::CollectPost { collection_id }).await.unwrap();
    }

    pub fn payout_entry(part_id: i64, cents: i64) -> Entry {
        let debt = LedgerAccount::PaidToDebt { user_id: USER, account_id: 9 };
        Entry::new(keys::payout(part_id), EntryKind::Payout, held(), debt, Cents::new(cents)).unwrap()
    }
}

async fn ledger_an_entry_posts_once_and_a_replay_is_a_no_op(db: Db) {
    use donkies_domain::{Balance, Cents, Posted};
    use donkies_store::ledger;
    use ledger_support::*;
    let entry = roundup_entry(1, 37);
    for expected in [Posted::New, Posted::AlreadyPosted, Posted::AlreadyPosted] {
        let mut tx = db.begin().await.unwrap();
        assert_eq!(ledger::post(&mut tx, &entry).await.unwrap(), expected);
        tx.commit().await.unwrap();
    }
    let posted = |cents| Balance { posted: Cents::new(cents), ..Balance::default() };
    assert_eq!(ledger::balance(&db, &pending()).await.unwrap(), posted(37));
    assert_eq!(ledger::balance(&db, &donkies_domain::LedgerAccount::RoundUpSource).await.unwrap(), posted(-37));
    let entries = ledger::entries_of_user(&db, USER).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!((&entries[0].entry, entries[0].user_id, entries[0].pending_id), (&entry, Some(USER), None));
    assert!(ledger::entries_of_user(&db, USER + 1).await.unwrap().is_empty(), "scoped to the user");
    assert_eq!(ledger::check(&db).await.unwrap(), vec![]);
}

async fn ledger_a_key_naming_another_entry_is_refused(db: Db) {
    use donkies_domain::LedgerRefusal;
    use donkies_store::ledger;
    use ledger_support::*;
    let mut tx = db.begin().await.unwrap();
    ledger::post(&mut tx, &roundup_entry(1, 37)).await.unwrap();
    let err = ledger::post(&mut tx, &roundup_entry(1, 38)).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(LedgerRefusal::KeyConflict { .. })), "{err:?}");
    // A two-phase kind is never posted at once, a one-phase kind never begun pending.
    let err = ledger::post(&mut tx, &payout_entry(1, 1)).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(LedgerRefusal::WrongPhase { .. })), "{err:?}");
    let err = ledger::begin_pending(&mut tx, &roundup_entry(2, 1)).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(LedgerRefusal::WrongPhase { .. })), "{err:?}");
    tx.commit().await.unwrap();
    assert_eq!(ledger::entries_of_user(&db, USER).await.unwrap().len(), 1);
    assert_eq!(ledger::check(&db).await.unwrap(), vec![]);
}

async fn ledger_a_pending_entry_posts_or_voids_exactly_once(db: Db) {
    use donkies_domain::{Balance, Cents, LedgerAccount, LedgerRefusal, PendingState};
    use donkies_store::ledger;
    use ledger_support::*;
    hold(&db, 1_000).await;
    let mut tx = db.begin().await.unwrap();
    let first = ledger::begin_pending(&mut tx, &payout_entry(1, 600)).await.unwrap();
    assert_eq!(ledger::begin_pending(&mut tx, &payout_entry(1, 600)).await.unwrap(), first, "idempotent by key");
    let second = ledger::begin_pending(&mut tx, &payout_entry(2, 400)).await.unwrap();
    tx.commit().await.unwrap();
    let reserved = Balance { posted: Cents::new(1_000), pending_debits: Cents::new(1_000), ..Balance::default() };
    assert_eq!(ledger::balance(&db, &held()).await.unwrap(), reserved);

    let mut tx = db.begin().await.unwrap();
    let posted = ledger::post_pending(&mut tx, first).await.unwrap();
    assert_eq!((posted.id, posted.state), (first, PendingState::Posted), "as resolved");
    assert!(posted.resolved_at.is_some());
    let voided = ledger::void_pending(&mut tx, second).await.unwrap();
    assert_eq!(voided.entry.amount(), Cents::new(400));
    for (id, state) in [(first, PendingState::Posted), (second, PendingState::Voided)] {
        for again in [ledger::post_pending(&mut tx, id).await, ledger::void_pending(&mut tx, id).await] {
            let err = again.unwrap_err();
            assert_eq!(err.refusal(), Some(&LedgerRefusal::AlreadyResolved { state }), "{err:?}");
        }
    }
    let err = ledger::post_pending(&mut tx, 12_345).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(LedgerRefusal::PendingNotFound(_))), "{err:?}");
    tx.commit().await.unwrap();

    assert_eq!(ledger::balance(&db, &held()).await.unwrap(), Balance { posted: Cents::new(400), ..Balance::default() });
    let debt = LedgerAccount::PaidToDebt { user_id: USER, account_id: 9 };
    assert_eq!(ledger::balance(&db, &debt).await.unwrap(), Balance { posted: Cents::new(600), ..Balance::default() });
    let pendings = ledger::pending_of_user(&db, USER).await.unwrap();
    let states: Vec<_> = pendings.iter().filter(|p| p.id == first || p.id == second).map(|p| p.state).collect();
    assert_eq!(states, [PendingState::Posted, PendingState::Voided]);
    assert!(pendings.iter().all(|p| p.resolved_at.is_some() == (p.state != PendingState::Pending)));
    let posting: Vec<_> =
        ledger::entries_of_user(&db, USER).await.unwrap().into_iter().filter(|e| e.pending_id == Some(first)).collect();
    assert_eq!(posting.len(), 1, "one entry posts the pending one");
    assert_eq!(ledger::check(&db).await.unwrap(), vec![]);
}

async fn ledger_concurrent_resolutions_of_one_pending_entry_let_exactly_one_win(db: Db) {
    use donkies_domain::{LedgerRefusal, PendingState};
    use donkies_store::ledger;
    use ledger_support::*;
    hold(&db, 500).await;
    for round in 0..5 {
        let mut tx = db.begin().await.unwrap();
        let id = ledger::begin_pending(&mut tx, &payout_entry(round, 100)).await.unwrap();
        tx.commit().await.unwrap();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let handles: Vec<_> = [PendingState::Posted, PendingState::Voided]
            .into_iter()
            .map(|to| {
                let (db, barrier) = (db.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let mut tx = db.begin().await.unwrap();
                    let result = match to {
                        PendingState::Posted => ledger::post_pending(&mut tx, id).await,
                        _ => ledger::void_pending(&mut tx, id).await,
                    };
                    // Hold the transaction a moment, so that the other one waits on it.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    tx.commit().await.unwrap();
                    result.map(|_| to)
                })
            })
            .collect();
        let mut won = Vec::new();
        for handle in handles {
            match handle.await.unwrap() {
                Ok(to) => won.push(to),
                Err(err) => assert!(matches!(err.refusal(), Some(LedgerRefusal::AlreadyResolved { .. })), "{err:?}"),
            }
        }
        assert_eq!(won.len(), 1, "exactly one resolution wins: {won:?}");
        let stored = ledger::pending_of_user(&db, USER).await.unwrap().into_iter().find(|p| p.id == id).unwrap();
        assert_eq!(stored.state, won[0]);
    }
    assert_eq!(ledger::check(&db).await.unwrap(), vec![]);
}

async fn ledger_limits_are_refused_without_partial_writes(db: Db) {
    use donkies_domain::{Balance, Cents, LedgerAccount, LedgerRefusal, Movement};
    use donkies_store::ledger;
    use ledger_support::*;
    hold(&db, 300).await;
    let before = (
        ledger::balances(&db).await.unwrap(),
        ledger::entries_of_user(&db, USER).await.unwrap(),
        ledger::pending_of_user(&db, USER).await.unwrap(),
    );
    let mut tx = db.begin().await.unwrap();
    let err = ledger::begin_pending(&mut tx, &payout_entry(1, 301)).await.unwrap_err();
    assert_eq!(
        err.refusal(),
        Some(&LedgerRefusal::InsufficientBalance {
            account: held(),
            available: Cents::new(300),
            amount: Cents::new(301)
        })
    );
    ledger::begin_pending(&mut tx, &payout_entry(2, 200)).await.unwrap();
    // What is reserved counts: only 100 is available now.
    let err = ledger::begin_pending(&mut tx, &payout_entry(3, 101)).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(LedgerRefusal::InsufficientBalance { .. })), "{err:?}");
    // A collection of more than the round-ups pending: its first step would pass alone.
    let collect = Movement::CollectStart { user_id: USER, collection_id: 77, amount: Cents::new(1) };
    let err = ledger::record(&mut tx, &collect).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(LedgerRefusal::InsufficientBalance { .. })), "{err:?}");
    // An account no entry has touched has nothing to give.
    let refunded = LedgerAccount::Refunded { user_id: USER + 1 };
    assert_eq!(ledger::balance(&db, &refunded).await.unwrap(), Balance::default());
    drop(tx);
    let after = (
        ledger::balances(&db).await.unwrap(),
        ledger::entries_of_user(&db, USER).await.unwrap(),
        ledger::pending_of_user(&db, USER).await.unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(ledger::check(&db).await.unwrap(), vec![]);
}

async fn ledger_a_refusal_leaves_the_callers_own_change_to_commit(db: Db) {
    use donkies_domain::LedgerRefusal;
    use donkies_store::ledger;
    use ledger_support::*;
    let mut tx = db.begin().await.unwrap();
    ledger::post(&mut tx, &roundup_entry(1, 50)).await.unwrap();
    let err = ledger::begin_pending(&mut tx, &payout_entry(1, 1)).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(LedgerRefusal::InsufficientBalance { .. })), "{err:?}");
    tx.commit().await.unwrap();
    assert_eq!(ledger::entries_of_user(&db, USER).await.unwrap().len(), 1);
    assert!(ledger::pending_of_user(&db, USER).await.unwrap().is_empty(), "the refused entry left nothing");
    assert!(!ledger::balances(&db).await.unwrap().contains_key(&held()), "no balance row either");
    assert_eq!(ledger::check(&db).await.unwrap(), vec![]);
}

async fn ledger_movements_of_the_money_loop_balance(db: Db) {
    use donkies_domain::{Balance, Cents, LedgerAccount, LedgerRefusal, Movement, Recorded};
    use donkies_store::ledger;
    use ledger_support::*;
    let amount = Cents::new(250);
    for transaction_id in [1, 2] {
        let roundup = Movement::RoundUp { user_id: USER, roundup_id: transaction_id, amount };
        assert_eq!(record(&db, &roundup).await.unwrap(), Recorded::New);
        assert_eq!(record(&db, &roundup).await.unwrap(), Recorded::AlreadyRecorded);
    }
    let start = Movement::CollectStart { user_id: USER, collection_id: 1, amount: Cents::new(500) };
    assert_eq!(record(&db, &start).await.unwrap(), Recorded::New);
    assert_eq!(record(&db, &start).await.unwrap(), Recorded::AlreadyRecorded);
    let collecting = LedgerAccount::InCollection { user_id: USER };
    assert_eq!(
        ledger::balance(&db, &collecting).await.unwrap(),
        Balance { posted: Cents::new(500), pending_debits: Cents::new(500), ..Balance::default() }
    );
    // The bank failed it: the round-ups are pending again, then collected once by a later run.
    assert_eq!(record(&db, &Movement::CollectVoid { collection_id: 1 }).await.unwrap(), Recorded::New);
    assert_eq!(record(&db, &Movement::CollectVoid { collection_id: 1 }).await.unwrap(), Recorded::AlreadyRecorded);
    let err = record(&db, &Movement::CollectPost { collection_id: 1 }).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(LedgerRefusal::AlreadyResolved { .. })), "{err:?}");
    assert_eq!(ledger::balance(&db, &pending()).await.unwrap().posted, Cents::new(500));
    record(&db, &Movement::CollectStart { user_id: USER, collection_id: 2, amount: Cents::new(500) }).await.unwrap();
    record(&db, &Movement::CollectPost { collection_id: 2 }).await.unwrap();
    for (part_id, cents) in [(1, 285), (2, 215)] {
        let part =
            Movement::PayoutStart { user_id: USER, part_id, debt_account_id: part_id, amount: Cents::new(cents) };
        record(&db, &part).await.unwrap();
        record(&db, &Movement::PayoutPost { part_id }).await.unwrap();
    }
    let balances = ledger::balances(&db).await.unwrap();
    let posted = |account: LedgerAccount| balances.get(&account).map_or(0, |b| b.posted.get());
    assert_eq!(posted(LedgerAccount::RoundUpSource), -500);
    assert_eq!(posted(pending()) + posted(collecting) + posted(held()), 0);
    assert_eq!(posted(LedgerAccount::PaidToDebt { user_id: USER, account_id: 1 }), 285);
    assert_eq!(posted(LedgerAccount::PaidToDebt { user_id: USER, account_id: 2 }), 215);
    assert_eq!(balances.values().map(|b| b.posted.get()).sum::<i64>(), 0);
    assert_eq!(ledger::check(&db).await.unwrap(), vec![]);
}

async fn ledger_check_finds_a_hand_corrupted_balance_row(db: Db) {
    use donkies_store::ledger::{self, Discrepancy};
    use ledger_support::*;
    hold(&db, 700).await;
    assert_eq!(ledger::check(&db).await.unwrap(), vec![]);
    raw!(&db, "UPDATE ledger_balances SET posted = posted - 800 WHERE account = $1", held().code());
    let found = ledger::check(&db).await.unwrap();
    assert!(
        found.iter().any(|d| matches!(d, Discrepancy::BalanceMismatch { account, .. } if *account == held().code())),
        "{found:?}"
    );
    assert!(
        found.iter().any(|d| matches!(d, Discrepancy::BelowZero { account, .. } if *account == held())),
        "{found:?}"
    );
    assert!(found.contains(&Discrepancy::TotalNotZero { total: -800 }), "{found:?}");
    raw!(&db, "INSERT INTO ledger_balances (account, posted) VALUES ('user:x:held', 800)");
    let found = ledger::check(&db).await.unwrap();
    assert!(found.contains(&Discrepancy::UnknownAccount { account: "user:x:held".into() }), "{found:?}");
}

async fn ledger_entries_cannot_be_changed_or_deleted(db: Db) {
    use donkies_store::ledger;
    use ledger_support::*;
    hold(&db, 100).await;
    let change = |sql: &'static str| {
        let db = db.clone();
        async move { donkies_store::on_db!(&db, pool => sqlx::query(sql).execute(pool).await.map(|_| ())) }
    };
    assert!(change("UPDATE ledger_entries SET amount = amount + 1").await.is_err());
    assert!(change("DELETE FROM ledger_entries").await.is_err());
    assert!(change("DELETE FROM ledger_pending").await.is_err());
    assert!(change("UPDATE ledger_pending SET state = 'voided'").await.is_err(), "a posted entry stays posted");
    assert!(change("UPDATE ledger_pending SET state = 'pending', resolved_at = NULL").await.is_err());
    assert_eq!(ledger::entries_of_user(&db, USER).await.unwrap().len(), 3);
    assert_eq!(ledger::check(&db).await.unwrap(), vec![]);
}

async fn ledger_record_all_posts_many_at_once_with_the_same_guarantees(db: Db) {
    use donkies_domain::{Balance, Cents, LedgerAccount, LedgerRefusal, Movement, Recorded};
    use donkies_store::ledger;
    use ledger_support::*;
    let roundup = |transaction_id, cents| Movement::RoundUp {
        user_id: USER,
        roundup_id: transaction_id,
        amount: Cents::new(cents),
    };
    let posted = |cents| Balance { posted: Cents::new(cents), ..Balance::default() };
    let entries = || async { ledger::entries_of_user(&db, USER).await.unwrap().len() };
    assert_eq!(record_all(&db, &[]).await.unwrap(), Recorded::AlreadyRecorded);

    let contribution = Movement::Contribution { user_id: USER, contribution_id: 1, amount: Cents::new(25) };
    let first = [roundup(1, 30), roundup(2, 45), contribution];
    assert_eq!(record_all(&db, &first).await.unwrap(), Recorded::New);
    assert_eq!(ledger::balance(&db, &pending()).await.unwrap(), posted(100));
    assert_eq!(ledger::balance(&db, &LedgerAccount::RoundUpSource).await.unwrap(), posted(-75));
    assert_eq!(ledger::balance(&db, &LedgerAccount::ContributionSource).await.unwrap(), posted(-25));
    assert_eq!(entries().await, 3);
    // A replay is a no-op; so is the part of a batch recorded before, and a repeat inside one.
    assert_eq!(record_all(&db, &first).await.unwrap(), Recorded::AlreadyRecorded);
    assert_eq!(record_all(&db, &[roundup(1, 30), roundup(3, 5)]).await.unwrap(), Recorded::New);
    assert_eq!(record_all(&db, &[roundup(4, 7), roundup(4, 7)]).await.unwrap(), Recorded::New);
    assert_eq!(ledger::balance(&db, &pending()).await.unwrap(), posted(112));
    assert_eq!(entries().await, 5);
    // A key naming another entry refuses the whole batch, and the caller's transaction goes on.
    let mut tx = db.begin().await.unwrap();
    let err = ledger::record_all(&mut tx, &[roundup(5, 9), roundup(1, 31)]).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(LedgerRefusal::KeyConflict { .. })), "{err:?}");
    ledger::record_all(&mut tx, &[roundup(6, 100)]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(entries().await, 6, "nothing of the refused batch");
    assert_eq!(ledger::balance(&db, &pending()).await.unwrap(), posted(212));

    // Other movements are recorded step by step, with their limits, all or none.
    let start =
        |collection_id, cents| Movement::CollectStart { user_id: USER, collection_id, amount: Cents::new(cents) };
    let err = record_all(&db, &[roundup(7, 1), start(1, 214)]).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(LedgerRefusal::InsufficientBalance { .. })), "{err:?}");
    assert_eq!(entries().await, 6, "the round-up of the refused batch is not kept");
    assert_eq!(record_all(&db, &[roundup(7, 1), start(1, 213)]).await.unwrap(), Recorded::New);
    assert_eq!(record_all(&db, &[roundup(7, 1), start(1, 213)]).await.unwrap(), Recorded::AlreadyRecorded);
    assert_eq!(ledger::balance(&db, &pending()).await.unwrap(), posted(0));
    let in_collection = LedgerAccount::InCollection { user_id: USER };
    let reserved = Balance { posted: Cents::new(213), pending_debits: Cents::new(213), ..Balance::default() };
    assert_eq!(ledger::balance(&db, &in_collection).await.unwrap(), reserved);
    assert_eq!(ledger::check(&db).await.unwrap(), vec![]);
}

async fn rate_limit_attempts_count_per_key_and_window_until_the_window_ends(db: Db) {
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let end = start + Duration::minutes(1);
    for expected in 1..=3 {
        assert_eq!(alone!(db, rate_limits::count_attempt, "login:ip:10.0.0.1", start, end).unwrap(), expected);
    }
    assert_eq!(alone!(db, rate_limits::count_attempt, "login:ip:10.0.0.2", start, end).unwrap(), 1, "its own key");
    let next = end + Duration::minutes(1);
    assert_eq!(alone!(db, rate_limits::count_attempt, "login:ip:10.0.0.1", end, next).unwrap(), 1, "a new window");
    assert_eq!(alone!(db, rate_limits::delete_ended, end - Duration::seconds(1)).unwrap(), 0, "none ended yet");
    assert_eq!(alone!(db, rate_limits::delete_ended, end).unwrap(), 2, "the first window's two keys");
    assert_eq!(alone!(db, rate_limits::count_attempt, "login:ip:10.0.0.1", end, next).unwrap(), 2, "kept");
}
