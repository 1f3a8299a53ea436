//! Sign-up, sign-in and the user resource.

use donkies_domain::ExposeSecret;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_databases;
use crate::helpers::{Backend, Options, PASSWORD, TestApp, start_of_a_rate_window};

both_databases!(
    full_signup_story,
    signup_rejects_bad_input_field_by_field,
    signup_rejects_a_taken_email_in_any_case,
    confirmation_errors,
    login_is_vague_about_what_was_wrong,
    expired_token_is_refused,
    another_users_token_reads_only_its_own_user,
    password_reset_for_unknown_email_is_204_and_sends_nothing,
    password_reset_link_works_once,
    password_reset_link_expires,
    login_is_rate_limited,
    the_login_limit_counts_the_attempts_made_at_every_process,
    profile_validation_and_freeze,
    ssn_is_encrypted_at_rest_and_masked,
    user_settings_accept_only_the_choices,
    change_email_through_the_mailed_link,
    change_password_errors_and_other_sessions,
    resend_confirmation_link_replaces_the_old_one,
    close_account_keeps_sign_in,
    every_page_read_is_kept_with_its_tag_until_what_it_shows_changes,
);

async fn full_signup_story(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.signup("Ada@Example.com").await, StatusCode::NO_CONTENT);

    let mails = app.smtp.wait_for("ada@example.com", 1, std::time::Duration::from_secs(15)).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].data.contains("Subject: Confirm your Donkies registration"));
    assert_eq!(mails[0].from, "noreply@localhost");
    let (id, token) = app.mailed_link("ada@example.com", "confirm", 1).await;
    assert_eq!(token.len(), 32);

    let (status, body) = app.confirm(&id, &token).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let first_token = body["token"].as_str().unwrap().to_owned();

    let (status, body) = app.login("ADA@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));

    let (status, user) = app.get("/v1/user", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["encrypted_id"], id.as_str());
    assert_eq!(user["is_confirmed"], true);
    assert_eq!(user["is_profile_completed"], false);
    let guid = user["guid"].as_str().map(str::to_owned);
    assert!(guid.is_none() || guid.as_deref().is_some_and(|g| g.starts_with("USR-")), "{user}");
    assert_eq!(user["ssn"], json!(null));
    assert_eq!(user["minimum_transfer_amount"], 5);
    assert_eq!(user["is_signup_completed"], true);
    assert_eq!(user["total_debt"], json!(0.0));
    assert_eq!(user["identifier"].as_str().unwrap().len(), 32);
    for key in [
        "id",
        "first_name",
        "last_name",
        "address1",
        "address2",
        "city",
        "state",
        "postal_code",
        "date_of_birth",
        "phone",
        "dwolla_customer",
        "is_even_roundup",
        "is_closed_account",
        "signup_steps",
        "profile_image_url",
    ] {
        assert!(user.get(key).is_some(), "User lacks {key}");
    }

    let profile = json!({"first_name": "Ada", "last_name": "Lovelace", "phone": "(617) 555-0100", "address1": "1 Main St",
        "address2": "", "city": "Boston", "state": "ma", "postal_code": "02108", "date_of_birth": "1990-05-17",
        "ssn": "123-45-6789"});
    let (status, user) = app.call(Method::PUT, "/v1/user", Some(&token), Some(profile)).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["is_profile_completed"], true);
    assert_eq!(user["phone"], "6175550100");
    assert_eq!(user["state"], "MA");
    assert_eq!(user["ssn"], "***-**-6789");
    assert_eq!(user["date_of_birth"], "1990-05-17");

    let (status, settings) = app
        .call(
            Method::PATCH,
            "/v1/user_settings",
            Some(&token),
            Some(json!({"minimum_transfer_amount": 20, "is_even_roundup": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        settings,
        json!({"minimum_transfer_amount": 20, "is_even_roundup": true, "roundups_paused": false,
               "roundup_multiplier": 1, "daily_cap": null, "monthly_cap": null, "overdraft_floor": 100})
    );
    let (_, choices) = app.get("/v1/settings", Some(&token)).await;
    assert_eq!(choices, json!({"transfer_amounts": [5, 10, 20, 50, 100]}));

    let change = json!({"current_password": PASSWORD, "new_password1": "a brand new secret", "new_password2": "a brand new secret"});
    let (status, body) = app.post("/v1/user/change/password", Some(&token), change).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["message"].is_string());
    assert_eq!(app.get("/v1/user", Some(&token)).await.0, StatusCode::OK, "the session in use survives");
    assert_eq!(app.get("/v1/user", Some(&first_token)).await.0, StatusCode::UNAUTHORIZED, "other sessions end");
    assert_eq!(app.login("ada@example.com", PASSWORD).await.0, StatusCode::BAD_REQUEST);
    let (status, body) = app.login("ada@example.com", "a brand new secret").await;
    assert_eq!(status, StatusCode::OK);
    let second = body["token"].as_str().unwrap().to_owned();

    let (status, _) = app.call(Method::POST, "/v1/auth/logout", Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/v1/user", Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"detail": "Invalid token.", "error_code": "Bad Token"}));
    assert_eq!(app.get("/v1/user", Some(&second)).await.0, StatusCode::UNAUTHORIZED, "logout ends every session");
}

async fn signup_rejects_bad_input_field_by_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) =
        app.post("/v1/auth/signup", None, json!({"email": "not-an-email", "password": "1234567"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["email"], json!(["Enter a valid email address."]));
    assert_eq!(body["password"], json!(["Ensure this field has at least 8 characters."]));
    assert_eq!(body["first_name"], json!(["This field is required."]));
    assert_eq!(body["last_name"], json!(["This field is required."]));
    let (status, body) = app
        .post(
            "/v1/auth/signup",
            None,
            json!({"email": "a@example.com", "password": "12345678", "first_name": "  ", "last_name": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"first_name": ["This field may not be blank."]}),
        "8 characters is enough; numbers read as text"
    );
    let (status, body) = app
        .post(
            "/v1/auth/signup",
            None,
            json!({"email": ["a@example.com"], "password": "12345678", "first_name": "A", "last_name": "B"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"email": ["Not a valid string."]}));
    assert!(app.smtp.received().is_empty());
}

async fn signup_rejects_a_taken_email_in_any_case(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.signup("ada@example.com").await, StatusCode::NO_CONTENT);
    let body = json!({"email": "ADA@example.com", "password": PASSWORD, "first_name": "Eve", "last_name": "X"});
    let (status, body) = app.post("/v1/auth/signup", None, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"email": ["User with this email already exists."]}));
}

async fn confirmation_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup("ada@example.com").await;
    let (id, token) = app.mailed_link("ada@example.com", "confirm", 1).await;
    let (status, body) = app.confirm("0123456789abcdef0123456789abcdef", &token).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"encrypted_id": ["Provided id is not correct"]})));
    let (status, body) = app.confirm(&id, "ffffffffffffffffffffffffffffffff").await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"non_field_errors": ["Provided confirmation token is not correct"]}))
    );
    assert_eq!(app.confirm(&id, &token).await.0, StatusCode::CREATED);
    let (status, body) = app.confirm(&id, &token).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"non_field_errors": ["Registration already has been confirmed."]}))
    );
    let (status, body) = app.post("/v1/auth/signup/confirm", None, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["encrypted_id"], json!(["This field is required."]));
    assert_eq!(body["confirmation_token"], json!(["This field is required."]));
}

async fn login_is_vague_about_what_was_wrong(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signed_up_user("ada@example.com").await;
    let wrong_password = app.login("ada@example.com", "not the password").await;
    let unknown_email = app.login("nobody@example.com", PASSWORD).await;
    let expected = (StatusCode::BAD_REQUEST, json!({"non_field_errors": ["Email or password is not correct."]}));
    assert_eq!(wrong_password, expected);
    assert_eq!(unknown_email, expected);
    let (status, body) = app.post("/v1/auth/login", None, json!({"email": "ada@example.com"})).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"password": ["This field is required."]})));
}

async fn expired_token_is_refused(backend: Backend) {
    let mut options = Options::default();
    options.args.token_expire_minutes = Some("0".into());
    let app = TestApp::spawn_with(backend, options).await;
    let token = app.signed_up_user("ada@example.com").await;
    let (status, body) = app.get("/v1/user", Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"detail": "Token expired.", "error_code": "Bad Token"}));
}

async fn another_users_token_reads_only_its_own_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.signed_up_user("ada@example.com").await;
    let bob = app.signed_up_user("bob@example.com").await;
    let (_, as_bob) = app.get("/v1/user", Some(&bob)).await;
    assert_eq!(as_bob["email"], "bob@example.com");
    app.call(Method::GET, "/v1/auth/logout", Some(&bob), None).await;
    assert_eq!(app.get("/v1/user", Some(&bob)).await.0, StatusCode::UNAUTHORIZED);
    let (status, as_ada) = app.get("/v1/user", Some(&ada)).await;
    assert_eq!(
        (status, as_ada["email"].as_str()),
        (StatusCode::OK, Some("ada@example.com")),
        "bob's logout leaves ada alone"
    );
}

async fn password_reset_for_unknown_email_is_204_and_sends_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signed_up_user("ada@example.com").await;
    let (status, body) = app.post("/v1/password/reset/request", None, json!({"email": "nobody@example.com"})).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, serde_json::Value::Null));
    let (status, _) = app.post("/v1/password/reset/require", None, json!({"email": "nobody@example.com"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // A reset asked for after them reaches its (known) address: mail queued before it would
    // have gone out first.
    let (status, _) = app.post("/v1/password/reset/request", None, json!({"email": "ada@example.com"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.mailed_link("ada@example.com", "reset", 2).await;
    let received = app.smtp.received();
    assert_eq!(received.len(), 2, "the confirmation and the one reset, nothing for the unknown address");
    assert!(received.iter().all(|m| m.to == ["ada@example.com"]), "only ada was mailed");
    assert!(donkies_store::outbox::list_to(app.db(), "nobody@example.com").await.unwrap().is_empty());
}

async fn password_reset_link_works_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.signed_up_user("ada@example.com").await;
    let (status, _) = app.post("/v1/password/reset/request", None, json!({"email": "ada@example.com"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (id, token) = app.mailed_link("ada@example.com", "reset", 2).await;
    let reset = json!({"encrypted_id": id, "reset_token": token, "new_password": "short"});
    let (status, body) = app.post("/v1/password/reset", None, reset).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"new_password": ["Ensure this field has at least 8 characters."]}))
    );
    let reset = json!({"encrypted_id": id, "reset_token": token, "new_password": "fresh password"});
    assert_eq!(app.post("/v1/password/reset", None, reset.clone()).await.0, StatusCode::NO_CONTENT);
    let (status, body) = app.post("/v1/password/reset", None, reset).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "single use");
    assert!(body["non_field_errors"].is_array());
    assert_eq!(app.get("/v1/user", Some(&session)).await.0, StatusCode::UNAUTHORIZED, "a reset signs out everywhere");
    assert_eq!(app.login("ada@example.com", "fresh password").await.0, StatusCode::OK);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.0, StatusCode::BAD_REQUEST);
}

async fn password_reset_link_expires(backend: Backend) {
    let mut options = Options::default();
    options.args.link_expire_minutes = Some("0".into());
    let app = TestApp::spawn_with(backend, options).await;
    app.signed_up_user("ada@example.com").await;
    app.post("/v1/password/reset/request", None, json!({"email": "ada@example.com"})).await;
    let (id, token) = app.mailed_link("ada@example.com", "reset", 2).await;
    let reset = json!({"encrypted_id": id, "reset_token": token, "new_password": "fresh password"});
    let (status, body) = app.post("/v1/password/reset", None, reset).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"non_field_errors": ["Provided reset token is not correct or has expired."]}))
    );
    assert_eq!(app.login("ada@example.com", PASSWORD).await.0, StatusCode::OK);
}

async fn login_is_rate_limited(backend: Backend) {
    let mut options = Options::default();
    options.args.login_rate_per_minute = Some("3".into());
    options.args.reset_rate_per_hour = Some("2".into());
    let app = TestApp::spawn_with(backend, options).await;
    start_of_a_rate_window().await;
    for _ in 0..3 {
        assert_eq!(app.login("ada@example.com", "wrong password").await.0, StatusCode::BAD_REQUEST);
    }
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "ada@example.com", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("throttled"));
    for _ in 0..2 {
        assert_eq!(
            app.post("/v1/password/reset/request", None, json!({"email": "x@example.com"})).await.0,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        app.post("/v1/password/reset/request", None, json!({"email": "x@example.com"})).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Two API processes on one database (on SQLite too, sharing its file) spend one budget of
/// sign-in attempts; each refuses once the total passes its own limit, as one process answers.
async fn the_login_limit_counts_the_attempts_made_at_every_process(backend: Backend) {
    let mut options = Options::default();
    options.args.login_rate_per_minute = Some("4".into());
    let app = TestApp::spawn_with(backend, options).await;
    let other = app.second_process_with(&[("DONKIES_LOGIN_RATE_PER_MINUTE", "6")]).await;
    let (a, b) = (app.base.clone(), other.base.clone());
    let attempt = |base: &str| {
        let wrong = json!({"email": "ada@example.com", "password": "wrong password"});
        app.client.post(format!("{base}/v1/auth/login")).json(&wrong).send()
    };
    start_of_a_rate_window().await;
    for base in [&a, &b, &a, &b] {
        assert_eq!(attempt(base).await.unwrap().status(), StatusCode::BAD_REQUEST, "at {base}");
    }
    // Two attempts here, but five in all: over this process's limit of four.
    let refused = attempt(&a).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body, json!({"detail": format!("Request was throttled. Expected available in {retry_after} seconds.")}));
    // The other process allows six: the sixth attempt is answered, the seventh is not.
    assert_eq!(attempt(&b).await.unwrap().status(), StatusCode::BAD_REQUEST);
    let refused = attempt(&b).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
}

async fn profile_validation_and_freeze(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.signed_up_user("ada@example.com").await;
    let minor = (chrono::Utc::now().date_naive() - chrono::Days::new(17 * 366)).format("%Y-%m-%d").to_string();
    let bad =
        json!({"phone": "12345", "state": "XX", "postal_code": "1234", "date_of_birth": minor, "ssn": "000-12-3456"});
    let (status, body) = app.call(Method::PUT, "/v1/user", Some(&token), Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["phone"], json!(["Enter a valid 10-digit phone number."]));
    assert_eq!(body["state"], json!(["Enter a valid US state code."]));
    assert_eq!(body["postal_code"], json!(["Enter a valid 5-digit postal code."]));
    assert_eq!(body["date_of_birth"], json!(["You must be at least 18 years old."]));
    assert_eq!(body["ssn"], json!(["Enter a valid SSN in the format XXX-XX-XXXX."]));
    let (status, body) =
        app.call(Method::PUT, "/v1/user", Some(&token), Some(json!({"date_of_birth": "17/05/1990"}))).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"date_of_birth": ["Enter a valid date in the format YYYY-MM-DD."]}))
    );
    let (status, user) = app.call(Method::PUT, "/v1/user", Some(&token), Some(json!({"city": "Boston"}))).await;
    assert_eq!(
        (status, user["city"].as_str(), user["is_profile_completed"].as_bool()),
        (StatusCode::OK, Some("Boston"), Some(false))
    );
    let rest = json!({"phone": "6175550100", "address1": "1 Main St", "state": "MA", "postal_code": "02108",
        "date_of_birth": "1990-05-17", "ssn": "123-45-6789"});
    let (_, user) = app.call(Method::PUT, "/v1/user", Some(&token), Some(rest)).await;
    assert_eq!(user["is_profile_completed"], true);
    let (status, body) = app.call(Method::PUT, "/v1/user", Some(&token), Some(json!({"city": "Paris"}))).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"non_field_errors": ["Profile is completed and can not be changed."]}))
    );
    assert_eq!(app.get("/v1/user", Some(&token)).await.1["city"], "Boston");
}

async fn ssn_is_encrypted_at_rest_and_masked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.signed_up_user("ada@example.com").await;
    let (_, user) = app.call(Method::PUT, "/v1/user", Some(&token), Some(json!({"ssn": "123456789"}))).await;
    assert_eq!(user["ssn"], "***-**-6789");
    let stored = donkies_store::users::find_by_email(app.db(), "ada@example.com").await.unwrap().unwrap();
    let sealed = stored.ssn_encrypted.unwrap();
    assert!(!sealed.contains("123456789") && !sealed.contains("123-45"), "{sealed}");
    let sealer = donkies_server::crypto::Sealer::from_secret(app.settings().secret_key.expose_secret());
    assert_eq!(sealer.open(&sealed).as_deref(), Some("123456789"));
    assert!(!stored.password_hash.contains(PASSWORD));
    assert!(stored.password_hash.starts_with("$argon2id$"));
}

async fn user_settings_accept_only_the_choices(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.signed_up_user("ada@example.com").await;
    let (status, body) =
        app.call(Method::PATCH, "/v1/user_settings", Some(&token), Some(json!({"minimum_transfer_amount": 7}))).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"minimum_transfer_amount": ["\"7\" is not a valid choice."]}))
    );
    let (status, body) =
        app.call(Method::PATCH, "/v1/user_settings", Some(&token), Some(json!({"is_even_roundup": "maybe"}))).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"is_even_roundup": ["Must be a valid boolean."]})));
    let res = app
        .client
        .patch(app.url("/v1/user_settings"))
        .header("Authorization", format!("Token {token}"))
        .form(&[("minimum_transfer_amount", "100"), ("is_even_roundup", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.json::<serde_json::Value>().await.unwrap();
    assert_eq!((&body["minimum_transfer_amount"], &body["is_even_roundup"]), (&json!(100), &json!(true)), "{body}");
    let (_, user) = app.get("/v1/user", Some(&token)).await;
    assert_eq!((user["minimum_transfer_amount"].as_i64(), user["is_even_roundup"].as_bool()), (Some(100), Some(true)));
}

async fn change_email_through_the_mailed_link(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.signed_up_user("ada@example.com").await;
    app.signup("bob@example.com").await;
    let (status, body) = app.post("/v1/user/change/email", Some(&token), json!({"new_email": "BOB@example.com"})).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"new_email": ["User with this email already exists."]}))
    );
    let (status, body) =
        app.post("/v1/user/change/email", Some(&token), json!({"new_email": "ada@new.example.com"})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["message"].is_string());
    let (id, link_token) = app.mailed_link("ada@new.example.com", "change_email_confirm", 1).await;
    let (status, _) = app
        .post(&format!("/v1/user/change/email/confirm/{id}/ffffffffffffffffffffffffffffffff"), None, json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = app.post(&format!("/v1/user/change/email/confirm/{id}/{link_token}"), None, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.get("/v1/user", Some(&token)).await.1["email"], "ada@new.example.com");
    let (status, body) = app.post(&format!("/v1/user/change/email/confirm/{id}/{link_token}"), None, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "single use");
    assert!(body["non_field_errors"].is_array());
    assert_eq!(app.login("ada@new.example.com", PASSWORD).await.0, StatusCode::OK);
}

async fn change_password_errors_and_other_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.signed_up_user("ada@example.com").await;
    let wrong =
        json!({"current_password": "not it at all", "new_password1": "new secret 1", "new_password2": "new secret 1"});
    let (status, body) = app.post("/v1/user/change/password", Some(&token), wrong).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"current_password": ["Current password is not correct."]}))
    );
    let mismatch =
        json!({"current_password": PASSWORD, "new_password1": "new secret 1", "new_password2": "new secret 2"});
    let (status, body) = app.post("/v1/user/change/password", Some(&token), mismatch).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"new_password2": ["The two password fields didn't match."]}))
    );
    let short = json!({"current_password": PASSWORD, "new_password1": "short", "new_password2": "short"});
    assert_eq!(app.post("/v1/user/change/password", Some(&token), short).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.0, StatusCode::OK, "nothing changed");
}

async fn resend_confirmation_link_replaces_the_old_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup("ada@example.com").await;
    let (id, old) = app.mailed_link("ada@example.com", "confirm", 1).await;
    let (_, body) = app.login("ada@example.com", PASSWORD).await;
    let token = body["token"].as_str().unwrap().to_owned();
    let (_, user) = app.get("/v1/user", Some(&token)).await;
    assert_eq!(user["is_confirmed"], false, "unconfirmed users may sign in and ask again");
    let (status, body) = app.get("/v1/user/resend_reg_confirmation_link", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["message"].is_string());
    let (id2, new) = app.mailed_link("ada@example.com", "confirm", 2).await;
    assert_eq!(id, id2);
    assert_ne!(old, new);
    assert_eq!(app.confirm(&id, &old).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.confirm(&id, &new).await.0, StatusCode::CREATED);
    let (status, body) = app.get("/v1/user/resend_reg_confirmation_link", Some(&token)).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"non_field_errors": ["Registration already has been confirmed."]}))
    );
}

async fn close_account_keeps_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.signed_up_user("ada@example.com").await;
    let (status, _) = app.call(Method::POST, "/v1/user_close_account", Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, user) = app.get("/v1/user", Some(&token)).await;
    assert_eq!(user["is_closed_account"], true);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.0, StatusCode::OK);
}

/// The reads every page of the web client makes are kept rendered: each answers with a tag, a
/// client that shows the tag gets `304 Not Modified`, and a change to what a read shows gives
/// the next read the new body at once.
async fn every_page_read_is_kept_with_its_tag_until_what_it_shows_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.signed_up_user("ada@example.com").await;
    let get = |path: &str, tag: Option<&str>| {
        let mut request = app.client.get(app.url(path)).header("Authorization", format!("Token {token}"));
        if let Some(tag) = tag {
            request = request.header("If-None-Match", tag);
        }
        request.send()
    };
    let mut tags = Vec::new();
    for path in [
        "/v1/user",
        "/v1/accounts",
        "/v1/members",
        "/v1/stat",
        "/v1/transfers_prepare",
        "/v1/transfers_donkies",
        "/v1/transfers_user",
        "/v1/transfers_debt",
        "/v1/accounts?limit=1",
    ] {
        let res = get(path, None).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let tag = res.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(res.headers()["content-type"], "application/json", "{path}");
        res.json::<serde_json::Value>().await.unwrap();
        let again = get(path, Some(&tag)).await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        tags.push((path, tag));
    }
    let (_, user_tag) = &tags[0];
    let (status, body) =
        app.call(Method::PATCH, "/v1/user_settings", Some(&token), Some(json!({"is_even_roundup": true}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let res = get("/v1/user", Some(user_tag)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "changed, so not 304");
    let user: serde_json::Value = res.json().await.unwrap();
    assert_eq!(user["is_even_roundup"], true, "{user}");
}
