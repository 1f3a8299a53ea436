//! The storage contract: every store operation, on SQLite always and on PostgreSQL when
//! `DONKIES_TEST_POSTGRES_URL` is set.

use chrono::{Duration, NaiveDate};
use donkies_store::testing::TestDb;
use donkies_store::tokens::{NewActionToken, Purpose};
use donkies_store::users::{NewUser, ProfileUpdate};
use donkies_store::{Db, StoreError, jobs, new_id, now, outbox, tokens, users};

macro_rules! contract {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                let t = donkies_store::testing::TestDb::sqlite().await;
                super::$case(t.db.clone()).await;
            }
            #[tokio::test]
            async fn postgres() {
                let Some(t) = donkies_store::testing::TestDb::postgres().await else { return };
                super::$case(t.db.clone()).await;
            }
        }
    )*};
}

contract!(
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
    jobs_claim_complete_and_wait_for_run_at,
    jobs_fail_retry_then_park,
    jobs_expired_lease_is_claimed_again,
    jobs_concurrent_claims_never_share_a_job,
    periodic_slot_enqueues_once,
);

async fn make_user(db: &Db, email: &str) -> String {
    let id = new_id();
    let mut tx = db.begin().await.unwrap();
    users::insert(
        &mut tx,
        &NewUser {
            id: &id,
            email,
            password_hash: "hash",
            first_name: "Ada",
            last_name: "Lovelace",
            identifier: &new_id(),
            encrypted_id: &format!("enc-{id}"),
            confirmation_token_hash: "confirm-hash",
            now: now(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn user_insert_and_lookups(db: Db) {
    let id = make_user(&db, "ada@example.com").await;
    let by_id = users::find_by_id(&db, &id).await.unwrap().unwrap();
    assert_eq!(by_id.email, "ada@example.com");
    assert!(!by_id.is_confirmed);
    assert!(!by_id.is_profile_completed);
    assert_eq!(by_id.minimum_transfer_amount, 5);
    let by_email = users::find_by_email(&db, "ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_email.id, id);
    let by_enc = users::find_by_encrypted_id(&db, &by_id.encrypted_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_enc.id, id);
    assert!(
        users::find_by_email(&db, "nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    users::set_guid(&db, &id, "USR-1", now()).await.unwrap();
    assert_eq!(
        users::find_by_id(&db, &id)
            .await
            .unwrap()
            .unwrap()
            .guid
            .as_deref(),
        Some("USR-1")
    );
}

async fn taken_email_is_a_conflict(db: Db) {
    make_user(&db, "ada@example.com").await;
    let mut tx = db.begin().await.unwrap();
    let err = users::insert(
        &mut tx,
        &NewUser {
            id: &new_id(),
            email: "ada@example.com",
            password_hash: "h",
            first_name: "A",
            last_name: "B",
            identifier: &new_id(),
            encrypted_id: &new_id(),
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
    assert!(!users::confirm(&db, &id, "wrong", now()).await.unwrap());
    assert!(
        users::confirm(&db, &id, "confirm-hash", now())
            .await
            .unwrap()
    );
    assert!(
        !users::confirm(&db, &id, "confirm-hash", now())
            .await
            .unwrap()
    );
    assert!(
        users::find_by_id(&db, &id)
            .await
            .unwrap()
            .unwrap()
            .is_confirmed
    );
}

async fn profile_completes_and_then_freezes(db: Db) {
    let id = make_user(&db, "ada@example.com").await;
    let partial = ProfileUpdate {
        city: Some("Boston".into()),
        ..Default::default()
    };
    let user = users::update_profile(&db, &id, &partial, now())
        .await
        .unwrap()
        .unwrap();
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
    let user = users::update_profile(&db, &id, &rest, now())
        .await
        .unwrap()
        .unwrap();
    assert!(user.is_profile_completed);
    assert_eq!(
        user.city.as_deref(),
        Some("Boston"),
        "earlier fields are kept"
    );
    assert_eq!(user.date_of_birth, NaiveDate::from_ymd_opt(1990, 5, 17));
    let again = ProfileUpdate {
        city: Some("Paris".into()),
        ..Default::default()
    };
    assert!(
        users::update_profile(&db, &id, &again, now())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        users::find_by_id(&db, &id)
            .await
            .unwrap()
            .unwrap()
            .city
            .as_deref(),
        Some("Boston")
    );
}

async fn settings_and_close(db: Db) {
    let id = make_user(&db, "ada@example.com").await;
    users::update_settings(&db, &id, Some(50), None, now())
        .await
        .unwrap();
    users::update_settings(&db, &id, None, Some(true), now())
        .await
        .unwrap();
    let user = users::find_by_id(&db, &id).await.unwrap().unwrap();
    assert_eq!(
        (user.minimum_transfer_amount, user.is_even_roundup),
        (50, true)
    );
    users::close_account(&db, &id, now()).await.unwrap();
    let user = users::find_by_id(&db, &id).await.unwrap().unwrap();
    assert!(user.is_closed_account);
    assert!(user.closed_at.is_some());
}

async fn session_tokens_resolve_and_revoke(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let t = now();
    tokens::insert_session(&db, "tok-a1", &ada, t, t + Duration::minutes(10))
        .await
        .unwrap();
    tokens::insert_session(&db, "tok-a2", &ada, t, t + Duration::minutes(10))
        .await
        .unwrap();
    tokens::insert_session(&db, "tok-b", &bob, t, t + Duration::minutes(10))
        .await
        .unwrap();
    let (user, expires) = users::find_by_token_hash(&db, "tok-a2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.id, ada);
    assert_eq!(expires, t + Duration::minutes(10));
    assert!(
        users::find_by_token_hash(&db, "nope")
            .await
            .unwrap()
            .is_none()
    );
    let mut tx = db.begin().await.unwrap();
    assert_eq!(tokens::delete_sessions(&mut tx, &ada).await.unwrap(), 2);
    tx.commit().await.unwrap();
    assert!(
        users::find_by_token_hash(&db, "tok-a1")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        tokens::count_sessions(&db, &bob).await.unwrap(),
        1,
        "other users keep theirs"
    );
}

async fn action_tokens_are_single_use_and_expire(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    let bob = make_user(&db, "bob@example.com").await;
    let t = now();
    let mut tx = db.begin().await.unwrap();
    for (hash, expires) in [
        ("fresh", t + Duration::hours(1)),
        ("stale", t - Duration::seconds(1)),
    ] {
        tokens::insert_action(
            &mut tx,
            &NewActionToken {
                token_hash: hash,
                user_id: &ada,
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
        tokens::consume_action(&mut tx, "fresh", &bob, Purpose::PasswordReset, t)
            .await
            .unwrap()
            .is_none(),
        "not bob's"
    );
    assert!(
        tokens::consume_action(&mut tx, "fresh", &ada, Purpose::EmailChange, t)
            .await
            .unwrap()
            .is_none(),
        "wrong purpose"
    );
    assert!(
        tokens::consume_action(&mut tx, "stale", &ada, Purpose::PasswordReset, t)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert_eq!(
        tokens::consume_action(&mut tx, "fresh", &ada, Purpose::PasswordReset, t)
            .await
            .unwrap(),
        Some(None)
    );
    assert!(
        tokens::consume_action(&mut tx, "fresh", &ada, Purpose::PasswordReset, t)
            .await
            .unwrap()
            .is_none(),
        "used once"
    );
    tx.commit().await.unwrap();
}

async fn email_change_conflicts_with_taken_address(db: Db) {
    let ada = make_user(&db, "ada@example.com").await;
    make_user(&db, "bob@example.com").await;
    let mut tx = db.begin().await.unwrap();
    let err = users::set_email(&mut tx, &ada, "bob@example.com", now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    drop(tx);
    let mut tx = db.begin().await.unwrap();
    users::set_email(&mut tx, &ada, "ada@new.example.com", now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(
        users::find_by_email(&db, "ada@new.example.com")
            .await
            .unwrap()
            .is_some()
    );
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
    let stored = outbox::get(&db, &mail.id).await.unwrap().unwrap();
    assert_eq!((stored.subject.as_str(), stored.sent_at), ("Confirm", None));
    outbox::mark_sent(&db, &mail.id, now()).await.unwrap();
    assert!(
        outbox::get(&db, &mail.id)
            .await
            .unwrap()
            .unwrap()
            .sent_at
            .is_some()
    );
    assert_eq!(
        outbox::list_to(&db, "ada@example.com").await.unwrap().len(),
        1
    );
}

async fn enqueue_one(
    db: &Db,
    kind: &str,
    run_at: chrono::DateTime<chrono::Utc>,
    max_attempts: i64,
) -> String {
    let mut tx = db.begin().await.unwrap();
    let payload = serde_json::json!({"n": 1});
    let id = jobs::enqueue(
        &mut tx,
        &jobs::NewJob {
            kind,
            payload: &payload,
            max_attempts,
            run_at,
        },
        now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn jobs_enqueued_with_a_rolled_back_change_vanish(db: Db) {
    let mut tx = db.begin().await.unwrap();
    let payload = serde_json::json!({});
    let id = jobs::enqueue(
        &mut tx,
        &jobs::NewJob {
            kind: "k",
            payload: &payload,
            max_attempts: 3,
            run_at: now(),
        },
        now(),
    )
    .await
    .unwrap();
    drop(tx);
    assert!(jobs::get(&db, &id).await.unwrap().is_none());
    assert!(
        jobs::claim(&db, "w", now(), now() + Duration::seconds(30))
            .await
            .unwrap()
            .is_none()
    );
}

async fn jobs_claim_complete_and_wait_for_run_at(db: Db) {
    let t = now();
    let later = enqueue_one(&db, "later", t + Duration::minutes(5), 3).await;
    let due = enqueue_one(&db, "due", t, 3).await;
    let job = jobs::claim(&db, "w1", t, t + Duration::seconds(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.id.as_str(), job.kind.as_str(), job.attempts),
        (due.as_str(), "due", 1)
    );
    assert_eq!(job.payload, r#"{"n":1}"#);
    assert!(
        jobs::claim(&db, "w2", t, t + Duration::seconds(30))
            .await
            .unwrap()
            .is_none(),
        "the other is not due"
    );
    jobs::complete(&db, &due, "w1").await.unwrap();
    assert!(jobs::get(&db, &due).await.unwrap().is_none());
    let job = jobs::claim(
        &db,
        "w1",
        t + Duration::minutes(6),
        t + Duration::minutes(7),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(job.id, later);
}

async fn jobs_fail_retry_then_park(db: Db) {
    let t = now();
    let id = enqueue_one(&db, "k", t, 2).await;
    jobs::claim(&db, "w", t, t + Duration::seconds(30))
        .await
        .unwrap()
        .unwrap();
    jobs::fail(
        &db,
        &id,
        "w",
        "smtp down",
        Some(t + Duration::seconds(10)),
        t,
    )
    .await
    .unwrap();
    let job = jobs::get(&db, &id).await.unwrap().unwrap();
    assert_eq!(
        (job.status.as_str(), job.last_error.as_deref()),
        (jobs::QUEUED, Some("smtp down"))
    );
    assert!(
        jobs::claim(&db, "w", t, t + Duration::seconds(30))
            .await
            .unwrap()
            .is_none(),
        "backing off"
    );
    let job = jobs::claim(
        &db,
        "w",
        t + Duration::seconds(11),
        t + Duration::seconds(40),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(job.attempts, 2);
    jobs::fail(&db, &id, "w", "still down", None, t)
        .await
        .unwrap();
    let failed = jobs::list(&db, true).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].last_error.as_deref(), Some("still down"));
    assert!(
        jobs::claim(&db, "w", t + Duration::days(1), t + Duration::days(2))
            .await
            .unwrap()
            .is_none(),
        "parked"
    );
    assert!(jobs::retry(&db, &id, t).await.unwrap());
    assert!(
        !jobs::retry(&db, &id, t).await.unwrap(),
        "only failed jobs are retried"
    );
    let job = jobs::claim(&db, "w", t, t + Duration::seconds(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.attempts, 1);
}

async fn jobs_expired_lease_is_claimed_again(db: Db) {
    let t = now();
    let id = enqueue_one(&db, "k", t, 5).await;
    jobs::claim(&db, "dead-worker", t, t + Duration::seconds(30))
        .await
        .unwrap()
        .unwrap();
    assert!(
        jobs::claim(
            &db,
            "w2",
            t + Duration::seconds(29),
            t + Duration::seconds(60)
        )
        .await
        .unwrap()
        .is_none()
    );
    let job = jobs::claim(
        &db,
        "w2",
        t + Duration::seconds(31),
        t + Duration::seconds(60),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        (job.id.as_str(), job.locked_by.as_deref()),
        (id.as_str(), Some("w2"))
    );
    jobs::complete(&db, &id, "dead-worker").await.unwrap();
    assert!(
        jobs::get(&db, &id).await.unwrap().is_some(),
        "the old owner no longer completes it"
    );
    jobs::complete(&db, &id, "w2").await.unwrap();
    assert!(jobs::get(&db, &id).await.unwrap().is_none());
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
            while let Some(job) = jobs::claim(&db, &format!("w{w}"), t, t + Duration::seconds(30))
                .await
                .unwrap()
            {
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
        handles.push(tokio::spawn(async move {
            jobs::enqueue_periodic(&db, "refresh", 42, 3, t)
                .await
                .unwrap()
        }));
    }
    let mut enqueued = 0;
    for h in handles {
        enqueued += usize::from(h.await.unwrap());
    }
    assert_eq!(enqueued, 1);
    assert!(
        jobs::enqueue_periodic(&db, "refresh", 43, 3, t)
            .await
            .unwrap(),
        "next slot runs again"
    );
    let queued = jobs::list(&db, false).await.unwrap();
    assert_eq!(queued.iter().filter(|j| j.kind == "refresh").count(), 2);
}

#[tokio::test]
async fn postgres_half_runs_when_configured() {
    // Fails loudly if the variable is set but unusable, instead of silently skipping.
    if std::env::var(donkies_store::testing::POSTGRES_URL_ENV).is_ok() {
        let t = TestDb::postgres().await.unwrap();
        t.db.ping().await.unwrap();
    }
}
