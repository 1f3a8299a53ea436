//! Sign-in with Facebook, Google and Twitter against the provider simulators, and the login
//! URLs of `/v1/settings/login`.

use std::time::Duration;

use donkies_sandbox::{
    AtriumSim, FacebookSim, GoogleSim, SANDBOX_API_KEY, SANDBOX_CLIENT_ID, SANDBOX_FACEBOOK_APP_ID,
    SANDBOX_GOOGLE_CLIENT_ID, SANDBOX_GOOGLE_CLIENT_SECRET, SANDBOX_TWITTER_CONSUMER_KEY,
    SANDBOX_TWITTER_CONSUMER_SECRET, TestUser, TokenFault, TwitterSim,
};
use donkies_server::Server;
use donkies_server::config::{CommonArgs, FileValues, Settings};
use reqwest::StatusCode;
use serde_json::{Value, json};
use url::Url;

use crate::both_databases;
use crate::helpers::{Backend, Options, PASSWORD, TestApp, fresh_db, test_args};
use crate::smtp::{Mode, SmtpSink};

both_databases!(
    facebook_sign_in_creates_a_confirmed_user_and_signs_them_in,
    facebook_sign_in_links_an_existing_password_account_with_the_same_email,
    facebook_sign_in_again_reaches_the_same_user_by_facebook_id,
    facebook_bad_and_reused_codes_are_refused,
    facebook_outage_is_a_400_with_a_clear_message,
    facebook_user_without_email_is_asked_for_one,
    facebook_redirect_uri_defaults_to_the_front_end_login_page,
    google_sign_in_creates_a_user_with_the_verified_email,
    google_sign_in_links_an_existing_account,
    an_unconfirmed_sign_up_cannot_keep_a_foothold_in_the_owners_account,
    google_id_tokens_that_do_not_verify_are_refused,
    google_unverified_email_does_not_link_to_an_existing_account,
    google_outage_is_a_400_with_a_clear_message,
    twitter_sign_in_round_trip,
    twitter_unknown_token_wrong_verifier_and_outage_are_refused,
    twitter_with_a_wrong_consumer_secret_is_a_400,
    login_settings_give_dialog_urls_whose_state_is_accepted_back,
    login_settings_leave_out_a_provider_without_keys,
    sign_in_endpoints_validate_their_input,
    a_first_facebook_sign_in_gets_its_aggregator_user_as_promptly_as_an_email_sign_up,
);

const FRONT_FACEBOOK: &str = "http://front.test/login_facebook";
const FRONT_GOOGLE: &str = "http://front.test/login_google";

/// A user at the providers without an email address.
fn without_email(name: &str) -> TestUser {
    TestUser { email: None, ..TestUser::named(name) }
}

/// A 200 `{"token"}` with a 32-lowercase-hex token; returns the token.
fn expect_token(status: StatusCode, body: &Value) -> String {
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap_or_else(|| panic!("{body}"));
    assert_eq!(token.len(), 32, "{body}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{body}");
    token.to_owned()
}

/// A 400 whose body is `{"<field>": ["message", …], …}`: never a 500, never another shape.
fn expect_400_shape(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let fields = body.as_object().unwrap_or_else(|| panic!("{body}"));
    assert!(!fields.is_empty(), "{body}");
    for (field, messages) in fields {
        let messages = messages.as_array().unwrap_or_else(|| panic!("{field} is not a list: {body}"));
        assert!(!messages.is_empty(), "{body}");
        assert!(messages.iter().all(|m| m.as_str().is_some_and(|s| !s.is_empty())), "{body}");
    }
}

/// A 400 `{"non_field_errors": [...]}` whose message contains `needle`.
fn expect_non_field(status: StatusCode, body: &Value, needle: &str) {
    expect_400_shape(status, body);
    let messages = body["non_field_errors"].as_array().unwrap_or_else(|| panic!("no non_field_errors: {body}"));
    assert!(messages.iter().any(|m| m.as_str().unwrap().contains(needle)), "expected {needle:?} in {body}");
}

/// A 400 field error on `field` whose message contains `needle`.
fn expect_field(status: StatusCode, body: &Value, field: &str, needle: &str) {
    expect_400_shape(status, body);
    let messages = body[field].as_array().unwrap_or_else(|| panic!("no {field} error: {body}"));
    assert!(messages.iter().any(|m| m.as_str().unwrap().contains(needle)), "expected {needle:?} on {field} in {body}");
}

async fn current_user(app: &TestApp, token: &str) -> Value {
    let (status, user) = app.get("/v1/user", Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    user
}

async fn facebook(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.post("/v1/auth/facebook", None, body).await
}

async fn google(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.post("/v1/auth/google", None, body).await
}

async fn user_exists(app: &TestApp, email: &str) -> bool {
    donkies_store::users::find_by_email(app.db(), email).await.unwrap().is_some()
}

async fn identities_of(app: &TestApp, user_id: i64) -> i64 {
    donkies_store::social::count_for_user(app.db(), user_id).await.unwrap()
}

/// `GET /v1/auth/twitter`: the request token, after checking the authorize URL.
async fn twitter_start(app: &TestApp) -> String {
    let (status, body) = app.get("/v1/auth/twitter", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let oauth_token = body["oauth_token"].as_str().unwrap().to_owned();
    assert!(!oauth_token.is_empty());
    let url = Url::parse(body["authorize_url"].as_str().unwrap()).unwrap();
    let sim = app.twitter.base_url();
    assert_eq!(url.origin(), sim.origin(), "{body}");
    assert!(url.path().starts_with("/oauth/"), "{body}");
    let given: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert!(given.contains(&("oauth_token".into(), oauth_token.clone())), "{body}");
    oauth_token
}

async fn twitter_finish(app: &TestApp, oauth_token: &str, verifier: &str) -> (StatusCode, Value) {
    app.post("/v1/auth/twitter", None, json!({"oauth_token": oauth_token, "oauth_verifier": verifier})).await
}

async fn facebook_sign_in_creates_a_confirmed_user_and_signs_them_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let fiona = TestUser::named("fiona");
    let code = app.facebook.issue_code(fiona.clone());
    let (status, body) = facebook(&app, json!({"code": code})).await;
    let token = expect_token(status, &body);

    let user = current_user(&app, &token).await;
    assert_eq!(user["email"], "fiona@example.com");
    assert_eq!(user["first_name"], "Fiona");
    assert_eq!(user["last_name"], "Sandbox");
    assert_eq!(user["is_confirmed"], true);
    assert_eq!(identities_of(&app, user["id"].as_i64().unwrap()).await, 1);
    // A confirmed account needs no confirmation mail: the first mail she gets is one she asks
    // for after signing in (a confirmation would have been queued, and sent, before it).
    let (status, _) = app.post("/v1/password/reset/request", None, json!({"email": "fiona@example.com"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mails = app.smtp.wait_for("fiona@example.com", 1, Duration::from_secs(15)).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].data.contains("/reset?"), "the first mail is the reset, not a confirmation: {}", mails[0].data);
    // The account has no usable password.
    let (status, body) = app.login("fiona@example.com", PASSWORD).await;
    expect_non_field(status, &body, "Email or password is not correct.");
}

async fn facebook_sign_in_links_an_existing_password_account_with_the_same_email(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let password_token = app.signed_up_user("flora@example.com").await;
    let before = current_user(&app, &password_token).await;
    let user_id = before["id"].as_i64().unwrap();

    let flora = TestUser::named("flora");
    let code = app.facebook.issue_code(flora.clone());
    let (status, body) = facebook(&app, json!({"code": code})).await;
    let token = expect_token(status, &body);
    let after = current_user(&app, &token).await;
    assert_eq!(after["id"], before["id"], "linked, not duplicated");
    assert_eq!(after["email"], "flora@example.com");
    // The profile the user typed is kept.
    assert_eq!(after["first_name"], "Ada");
    assert_eq!(after["is_confirmed"], true);
    assert_eq!(identities_of(&app, user_id).await, 1);

    // The password still works and leads to the same user.
    let (status, body) = app.login("flora@example.com", PASSWORD).await;
    let token = expect_token(status, &body);
    assert_eq!(current_user(&app, &token).await["id"], before["id"]);

    // The Facebook id is linked: it finds this user even once the Facebook address changes.
    let moved = TestUser { email: Some("flora.new@example.com".into()), ..flora };
    let code = app.facebook.issue_code(moved);
    let (status, body) = facebook(&app, json!({"code": code})).await;
    let token = expect_token(status, &body);
    assert_eq!(current_user(&app, &token).await["id"], before["id"]);
    assert!(!user_exists(&app, "flora.new@example.com").await);
}

async fn facebook_sign_in_again_reaches_the_same_user_by_facebook_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let felix = TestUser::named("felix");
    let code = app.facebook.issue_code(felix.clone());
    let (status, body) = facebook(&app, json!({"code": code})).await;
    let first_token = expect_token(status, &body);
    let first = current_user(&app, &first_token).await;

    // The same person, with a new code.
    let code = app.facebook.issue_code(felix.clone());
    let (status, body) = facebook(&app, json!({"code": code})).await;
    let second_token = expect_token(status, &body);
    assert_eq!(current_user(&app, &second_token).await["id"], first["id"]);

    // Same Facebook id, another address at Facebook now: still the same user, no new account.
    let renamed = TestUser { email: Some("felix.other@example.com".into()), ..felix };
    let code = app.facebook.issue_code(renamed);
    let (status, body) = facebook(&app, json!({"code": code})).await;
    let third_token = expect_token(status, &body);
    let third = current_user(&app, &third_token).await;
    assert_eq!(third["id"], first["id"]);
    assert_eq!(third["email"], "felix@example.com");
    assert!(!user_exists(&app, "felix.other@example.com").await);

    // Another Facebook user is another account.
    let code = app.facebook.issue_code(TestUser::named("fern"));
    let (status, body) = facebook(&app, json!({"code": code})).await;
    let other = current_user(&app, &expect_token(status, &body)).await;
    assert_ne!(other["id"], first["id"]);
}

async fn facebook_bad_and_reused_codes_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = facebook(&app, json!({"code": "not-a-code-facebook-gave"})).await;
    expect_non_field(status, &body, "Facebook did not accept the sign-in");

    let code = app.facebook.issue_code(TestUser::named("fabian"));
    let (status, body) = facebook(&app, json!({"code": code})).await;
    expect_token(status, &body);
    let (status, body) = facebook(&app, json!({"code": code})).await;
    expect_non_field(status, &body, "Facebook did not accept the sign-in");
    assert!(body["non_field_errors"][0].as_str().unwrap().contains("used"), "{body}");
}

async fn facebook_outage_is_a_400_with_a_clear_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let code = app.facebook.issue_code(TestUser::named("faye"));
    app.facebook.set_outage(Some(503));
    let (status, body) = facebook(&app, json!({"code": code})).await;
    expect_non_field(status, &body, "Facebook could not be reached. Please try again in a moment.");
    assert!(!user_exists(&app, "faye@example.com").await);

    app.facebook.set_outage(Some(500));
    let (status, body) = facebook(&app, json!({"code": code})).await;
    expect_non_field(status, &body, "Facebook could not be reached");

    // Once Facebook is back, the same (never redeemed) code works.
    app.facebook.set_outage(None);
    let (status, body) = facebook(&app, json!({"code": code})).await;
    let token = expect_token(status, &body);
    assert_eq!(current_user(&app, &token).await["email"], "faye@example.com");
}

async fn facebook_user_without_email_is_asked_for_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let nora = without_email("nora");

    let code = app.facebook.issue_code(nora.clone());
    let (status, body) = facebook(&app, json!({"code": code})).await;
    expect_field(status, &body, "email", "Facebook did not share a verified email address");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");

    // A typed address that is not one.
    let code = app.facebook.issue_code(nora.clone());
    let (status, body) = facebook(&app, json!({"code": code, "email": "not an email"})).await;
    expect_field(status, &body, "email", "valid email");

    // A typed address of an existing account: Facebook cannot vouch for it.
    let existing = app.signed_up_user("taken@example.com").await;
    let existing_id = current_user(&app, &existing).await["id"].clone();
    let code = app.facebook.issue_code(nora.clone());
    let (status, body) = facebook(&app, json!({"code": code, "email": "Taken@Example.com"})).await;
    expect_field(status, &body, "email", "already exists");
    assert_eq!(identities_of(&app, existing_id.as_i64().unwrap()).await, 0, "the existing account is not linked");

    // A new code with a free address creates the account, unconfirmed.
    let code = app.facebook.issue_code(nora.clone());
    let (status, body) = facebook(&app, json!({"code": code, "email": "nora@mail.test"})).await;
    let token = expect_token(status, &body);
    let user = current_user(&app, &token).await;
    assert_eq!(user["email"], "nora@mail.test");
    assert_eq!(user["first_name"], "Nora");
    assert_eq!(user["last_name"], "Sandbox");
    assert_eq!(user["is_confirmed"], false);

    // The usual confirmation mail arrives, and its link confirms the account.
    let mails = app.smtp.wait_for("nora@mail.test", 1, Duration::from_secs(15)).await;
    assert_eq!(mails.len(), 1);
    let (id, confirmation) = app.mailed_link("nora@mail.test", "confirm", 1).await;
    let (status, body) = app.confirm(&id, &confirmation).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(current_user(&app, &token).await["is_confirmed"], true);

    // Next time, the Facebook id alone finds the account.
    let code = app.facebook.issue_code(nora);
    let (status, body) = facebook(&app, json!({"code": code})).await;
    let again = expect_token(status, &body);
    assert_eq!(current_user(&app, &again).await["id"], user["id"]);
}

async fn facebook_redirect_uri_defaults_to_the_front_end_login_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let code = app.facebook.issue_code_for(TestUser::named("fritz"), FRONT_FACEBOOK);
    let (status, body) = facebook(&app, json!({"code": code})).await;
    expect_token(status, &body);

    let elsewhere = "https://other.test/facebook/done";
    let code = app.facebook.issue_code_for(TestUser::named("frida"), elsewhere);
    let (status, body) = facebook(&app, json!({"code": code})).await;
    expect_non_field(status, &body, "Facebook did not accept the sign-in");
    assert!(!user_exists(&app, "frida@example.com").await);
    let (status, body) = facebook(&app, json!({"code": code, "redirect_uri": FRONT_GOOGLE})).await;
    expect_non_field(status, &body, "Facebook did not accept the sign-in");
    let (status, body) = facebook(&app, json!({"code": code, "redirect_uri": elsewhere})).await;
    let token = expect_token(status, &body);
    assert_eq!(current_user(&app, &token).await["email"], "frida@example.com");
}

async fn google_sign_in_creates_a_user_with_the_verified_email(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let code = app.google.issue_code_for(TestUser::named("greta"), FRONT_GOOGLE);
    let (status, body) = google(&app, json!({"code": code})).await;
    let token = expect_token(status, &body);
    let user = current_user(&app, &token).await;
    assert_eq!(user["email"], "greta@example.com");
    assert_eq!(user["first_name"], "Greta");
    assert_eq!(user["last_name"], "Sandbox");
    assert_eq!(user["is_confirmed"], true);
    // The ID token was checked against Google's published keys.
    assert!(app.google.jwks_hits() >= 1);

    // Signing in again (new code) is the same user.
    let code = app.google.issue_code(TestUser::named("greta"));
    let (status, body) = google(&app, json!({"code": code})).await;
    let again = expect_token(status, &body);
    assert_eq!(current_user(&app, &again).await["id"], user["id"]);

    // A reused code is refused.
    let (status, body) = google(&app, json!({"code": code})).await;
    expect_non_field(status, &body, "Google did not accept the sign-in");
}

async fn google_sign_in_links_an_existing_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let password_token = app.signed_up_user("gwen@example.com").await;
    let before = current_user(&app, &password_token).await;

    let code = app.google.issue_code(TestUser::named("gwen"));
    let (status, body) = google(&app, json!({"code": code})).await;
    let token = expect_token(status, &body);
    let after = current_user(&app, &token).await;
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["first_name"], "Ada");
    assert_eq!(identities_of(&app, before["id"].as_i64().unwrap()).await, 1);

    let (status, body) = app.login("gwen@example.com", PASSWORD).await;
    let token = expect_token(status, &body);
    assert_eq!(current_user(&app, &token).await["id"], before["id"]);
}

/// Someone signs up with another person's address and never confirms it; when the owner later
/// proves the address through Google, the squatter's password and sessions stop working.
async fn an_unconfirmed_sign_up_cannot_keep_a_foothold_in_the_owners_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.signup("gwen@example.com").await, StatusCode::NO_CONTENT);
    let (status, body) = app.login("gwen@example.com", PASSWORD).await;
    let squatter = expect_token(status, &body);
    let squatted = current_user(&app, &squatter).await;
    assert_eq!(squatted["is_confirmed"], false);

    let code = app.google.issue_code(TestUser::named("gwen"));
    let (status, body) = google(&app, json!({"code": code})).await;
    let owner = expect_token(status, &body);
    let user = current_user(&app, &owner).await;
    assert_eq!((&user["id"], &user["is_confirmed"]), (&squatted["id"], &json!(true)));

    assert_eq!(app.get("/v1/user", Some(&squatter)).await.0, StatusCode::UNAUTHORIZED, "squatter's session ended");
    assert_eq!(app.login("gwen@example.com", PASSWORD).await.0, StatusCode::BAD_REQUEST, "squatter's password gone");
    assert_eq!(app.get("/v1/user", Some(&owner)).await.0, StatusCode::OK);
}

async fn google_id_tokens_that_do_not_verify_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let gary = TestUser::named("gary");
    for fault in [
        TokenFault::WrongAudience,
        TokenFault::WrongIssuer,
        TokenFault::Expired,
        TokenFault::WrongKey,
        TokenFault::UnknownKey,
        TokenFault::UnsupportedAlgorithm,
    ] {
        let code = app.google.issue_code(gary.clone());
        app.google.sign_next_token_with(fault);
        let (status, body) = google(&app, json!({"code": code})).await;
        expect_non_field(status, &body, "Google");
        assert!(!user_exists(&app, "gary@example.com").await, "{fault:?} created a user");
    }
    // Each of those was refused for its token alone: a sound one signs in.
    let code = app.google.issue_code(gary);
    let (status, body) = google(&app, json!({"code": code})).await;
    expect_token(status, &body);
    assert!(user_exists(&app, "gary@example.com").await);
}

async fn google_unverified_email_does_not_link_to_an_existing_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let password_token = app.signed_up_user("uma@example.com").await;
    let before = current_user(&app, &password_token).await;
    let user_id = before["id"].as_i64().unwrap();
    let uma = TestUser { email_verified: false, ..TestUser::named("uma") };

    let code = app.google.issue_code(uma.clone());
    let (status, body) = google(&app, json!({"code": code})).await;
    expect_field(status, &body, "email", "");
    assert_eq!(identities_of(&app, user_id).await, 0);

    // Typing the same address does not link either.
    let code = app.google.issue_code(uma.clone());
    let (status, body) = google(&app, json!({"code": code, "email": "uma@example.com"})).await;
    expect_field(status, &body, "email", "already exists");
    assert_eq!(identities_of(&app, user_id).await, 0);

    // The existing account is untouched.
    assert_eq!(current_user(&app, &password_token).await, before);
    let (status, body) = app.login("uma@example.com", PASSWORD).await;
    let token = expect_token(status, &body);
    assert_eq!(current_user(&app, &token).await["id"], before["id"]);

    // An unverified address is not used for a new account either.
    let code = app.google.issue_code(TestUser { email_verified: false, ..TestUser::named("ugo") });
    let (status, body) = google(&app, json!({"code": code})).await;
    expect_field(status, &body, "email", "");
    assert!(!user_exists(&app, "ugo@example.com").await);
}

async fn google_outage_is_a_400_with_a_clear_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let code = app.google.issue_code(TestUser::named("gil"));
    app.google.set_outage(Some(503));
    let (status, body) = google(&app, json!({"code": code})).await;
    expect_non_field(status, &body, "Google could not be reached. Please try again in a moment.");
    assert!(!user_exists(&app, "gil@example.com").await);
    app.google.set_outage(None);
    let (status, body) = google(&app, json!({"code": code})).await;
    expect_token(status, &body);
}

async fn twitter_sign_in_round_trip(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tess = TestUser::named("tess");

    // A successful flow proves every leg was signed correctly: the simulator checks each
    // HMAC-SHA1 signature and answers 401 otherwise.
    let oauth_token = twitter_start(&app).await;
    let verifier = app.twitter.authorize(&oauth_token, tess.clone()).unwrap();
    let (status, body) = twitter_finish(&app, &oauth_token, &verifier).await;
    let token = expect_token(status, &body);
    let user = current_user(&app, &token).await;
    assert_eq!(user["email"], "tess@example.com");
    assert_eq!(user["first_name"], "Tess");
    assert_eq!(user["last_name"], "Sandbox");
    assert_eq!(user["is_confirmed"], true);

    // The request token works once.
    let (status, body) = twitter_finish(&app, &oauth_token, &verifier).await;
    expect_non_field(status, &body, "expired or was already used");

    // A second sign-in is the same user.
    let oauth_token = twitter_start(&app).await;
    let verifier = app.twitter.authorize(&oauth_token, tess).unwrap();
    let (status, body) = twitter_finish(&app, &oauth_token, &verifier).await;
    let again = expect_token(status, &body);
    assert_eq!(current_user(&app, &again).await["id"], user["id"]);
}

async fn twitter_unknown_token_wrong_verifier_and_outage_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = twitter_finish(&app, "no-such-request-token", "whatever").await;
    expect_non_field(status, &body, "expired or was already used");

    let oauth_token = twitter_start(&app).await;
    let verifier = app.twitter.authorize(&oauth_token, TestUser::named("theo")).unwrap();
    let (status, body) = twitter_finish(&app, &oauth_token, &format!("{verifier}x")).await;
    expect_non_field(status, &body, "Twitter");
    assert!(!user_exists(&app, "theo@example.com").await);

    // Not yet approved at Twitter.
    let oauth_token = twitter_start(&app).await;
    let (status, body) = twitter_finish(&app, &oauth_token, "guess").await;
    expect_non_field(status, &body, "Twitter");

    app.twitter.set_outage(Some(503));
    let (status, body) = app.get("/v1/auth/twitter", None).await;
    expect_non_field(status, &body, "Twitter could not be reached. Please try again in a moment.");
}

async fn twitter_with_a_wrong_consumer_secret_is_a_400(backend: Backend) {
    let options = Options {
        args: CommonArgs { twitter_secret: Some("wrong".into()), ..Default::default() },
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, options).await;
    let (status, body) = app.get("/v1/auth/twitter", None).await;
    expect_non_field(status, &body, "Twitter did not accept the sign-in");
}

/// The code and state a provider dialog sends the browser back with, after checking that
/// it goes back to `front`.
async fn follow_dialog(login_url: &str, front: &str) -> (String, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = client.get(login_url).send().await.unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let back = Url::parse(&location).unwrap();
    assert_eq!(back.as_str().split('?').next().unwrap(), front);
    let param = |name: &str| {
        back.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no {name} in {location}"))
    };
    (param("code"), param("state"))
}

fn query_of(url: &Url) -> std::collections::HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

async fn login_settings_give_dialog_urls_whose_state_is_accepted_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.get("/v1/settings/login", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let fb_raw = body["facebook_login_url"].as_str().unwrap();
    assert!(fb_raw.contains("redirect_uri=http%3A%2F%2Ffront.test%2Flogin_facebook"), "{fb_raw}");
    let fb = Url::parse(fb_raw).unwrap();
    assert_eq!(fb.origin(), app.facebook.base_url().origin());
    assert!(fb.path().ends_with("/dialog/oauth"), "{fb}");
    let q = query_of(&fb);
    assert_eq!(q["client_id"], SANDBOX_FACEBOOK_APP_ID);
    assert_eq!(q["redirect_uri"], FRONT_FACEBOOK);
    assert!(!q["state"].is_empty());

    let g_raw = body["google_login_url"].as_str().unwrap();
    assert!(g_raw.contains("redirect_uri=http%3A%2F%2Ffront.test%2Flogin_google"), "{g_raw}");
    let g = Url::parse(g_raw).unwrap();
    assert_eq!(g.origin(), app.google.base_url().origin());
    assert_eq!(g.path(), "/o/oauth2/v2/auth");
    let q = query_of(&g);
    assert_eq!(q["client_id"], SANDBOX_GOOGLE_CLIENT_ID);
    assert_eq!(q["redirect_uri"], FRONT_GOOGLE);
    assert_eq!(q["response_type"], "code");
    assert!(!q["state"].is_empty());

    // The browser flow: the dialog sends the user back with a code and the state; the front
    // end posts both.
    let (code, state) = follow_dialog(fb_raw, FRONT_FACEBOOK).await;
    assert_eq!(state, query_of(&fb)["state"]);
    let (status, body) = facebook(&app, json!({"code": code, "state": state})).await;
    let token = expect_token(status, &body);
    assert_eq!(current_user(&app, &token).await["email"], "alice@example.com");

    let (code, state) = follow_dialog(g_raw, FRONT_GOOGLE).await;
    let (status, body) = google(&app, json!({"code": code, "state": state})).await;
    expect_token(status, &body);

    // A forged state is refused before the code is spent.
    let (code, state) = follow_dialog(fb_raw, FRONT_FACEBOOK).await;
    for forged in ["123.abc", "not-a-state", &format!("{state}0")] {
        let (status, body) = facebook(&app, json!({"code": code, "state": forged})).await;
        expect_field(status, &body, "state", "");
    }
    let (code_g, _) = follow_dialog(g_raw, FRONT_GOOGLE).await;
    let (status, body) = google(&app, json!({"code": code_g, "state": "123.abc"})).await;
    expect_field(status, &body, "state", "");
    let (status, body) = facebook(&app, json!({"code": code, "state": state})).await;
    expect_token(status, &body);
}

/// A server like `TestApp::spawn`'s, but without Facebook keys: outside sandbox mode (the
/// Atrium URL is set) a provider without keys is off.
async fn spawn_without_facebook(backend: Backend) -> TestApp {
    let test_db = fresh_db(backend).await;
    let smtp = SmtpSink::start(Mode::Accept).await;
    let loopback = || "127.0.0.1:0".parse().unwrap();
    let atrium = AtriumSim::start(loopback(), Default::default()).await.unwrap();
    let facebook = FacebookSim::start(loopback(), Default::default()).await.unwrap();
    let google = GoogleSim::start(loopback(), Default::default()).await.unwrap();
    let twitter = TwitterSim::start(loopback(), Default::default()).await.unwrap();
    let args = CommonArgs {
        google_url: Some(google.base_url().to_string()),
        google_key: Some(SANDBOX_GOOGLE_CLIENT_ID.into()),
        google_secret: Some(SANDBOX_GOOGLE_CLIENT_SECRET.into()),
        twitter_url: Some(twitter.base_url().to_string()),
        twitter_key: Some(SANDBOX_TWITTER_CONSUMER_KEY.into()),
        twitter_secret: Some(SANDBOX_TWITTER_CONSUMER_SECRET.into()),
        atrium_url: Some(atrium.base_url().to_string()),
        atrium_client_id: Some(SANDBOX_CLIENT_ID.into()),
        atrium_key: Some(SANDBOX_API_KEY.into()),
        ..Default::default()
    };
    let args = test_args(&test_db.url, &smtp, args);
    let settings = Settings::resolve(Some("127.0.0.1:0".into()), &args, &FileValues::default()).unwrap();
    let server = Server::start_with_db(settings, test_db.db.clone(), false).await.unwrap();
    TestApp {
        stirred: TestApp::stir_on_changes(&server),
        base: server.base_url(),
        server: Some(server),
        client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        smtp,
        test_db,
        atrium,
        facebook,
        google,
        twitter,
        dwolla: donkies_sandbox::DwollaSim::start(loopback(), Default::default()).await.unwrap(),
        parked_ok: Default::default(),
    }
}

async fn login_settings_leave_out_a_provider_without_keys(backend: Backend) {
    let app = spawn_without_facebook(backend).await;
    let (status, body) = app.get("/v1/settings/login", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let settings = body.as_object().unwrap();
    assert!(!settings.contains_key("facebook_login_url"), "{body}");
    let g = Url::parse(body["google_login_url"].as_str().unwrap()).unwrap();
    assert_eq!(g.origin(), app.google.base_url().origin());

    let code = app.facebook.issue_code(TestUser::named("fay"));
    let (status, body) = facebook(&app, json!({"code": code})).await;
    expect_non_field(status, &body, "Sign-in with Facebook is not available.");

    // The providers that are configured still work.
    let code = app.google.issue_code(TestUser::named("gus"));
    let (status, body) = google(&app, json!({"code": code})).await;
    expect_token(status, &body);
}

async fn sign_in_endpoints_validate_their_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/v1/auth/facebook", "/v1/auth/google"] {
        let (status, body) = app.post(path, None, json!({})).await;
        expect_field(status, &body, "code", "");
        let (status, body) = app.post(path, None, json!({"code": "  "})).await;
        expect_field(status, &body, "code", "blank");
        let (status, body) = app.post(path, None, json!({"code": {"a": 1}})).await;
        expect_field(status, &body, "code", "");
        let (status, body) = app.post(path, None, json!({"code": "x", "email": 5})).await;
        expect_400_shape(status, &body);

        let res = app
            .client
            .post(app.url(path))
            .header("Content-Type", "application/json")
            .body("{\"code\": ")
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        expect_400_shape(status, &body);
        assert!(body["non_field_errors"].is_array(), "{body}");
    }
    let (status, body) = app.post("/v1/auth/twitter", None, json!({})).await;
    expect_field(status, &body, "oauth_token", "");
    expect_field(status, &body, "oauth_verifier", "");

    // Form bodies work like JSON ones.
    let code = app.facebook.issue_code(TestUser::named("form"));
    let res = app.client.post(app.url("/v1/auth/facebook")).form(&[("code", code.as_str())]).send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    expect_token(status, &body);
}

/// Wait until the user has an aggregator `guid`; how long that took.
async fn time_to_guid(app: &TestApp, token: &str) -> Duration {
    let started = tokio::time::Instant::now();
    loop {
        let user = current_user(app, token).await;
        if user["guid"].as_str().is_some_and(|g| !g.is_empty()) {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no aggregator user after 10 s: {user}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The 2017 web client refuses "Add bank" while `guid` is null, so a new Facebook user must get
/// an aggregator user as promptly as an email sign-up does (the same service and job).
async fn a_first_facebook_sign_in_gets_its_aggregator_user_as_promptly_as_an_email_sign_up(backend: Backend) {
    // An idle worker looks for work only every 5 s here: only a wake-up makes it prompt.
    let mut options = Options::default();
    options.args.job_poll_ms = Some("5000".into());
    let app = TestApp::spawn_with(backend, options).await;
    let email_token = app.signed_up_user("ada@example.com").await;
    let email_wait = time_to_guid(&app, &email_token).await;

    let code = app.facebook.issue_code(TestUser::named("fiona"));
    let (status, body) = facebook(&app, json!({"code": code})).await;
    let token = expect_token(status, &body);
    let social_wait = time_to_guid(&app, &token).await;
    // The job runs as soon as the sign-in commits (the worker is woken, not polled).
    assert!(social_wait < Duration::from_secs(2), "guid after {social_wait:?} (email sign-up: {email_wait:?})");
    // The job commits the user's guid before it marks itself done: give that a moment.
    let started = tokio::time::Instant::now();
    loop {
        let jobs = donkies_store::jobs::list(app.db(), false).await.unwrap();
        if jobs.iter().all(|j| j.kind != "create_aggregator_user") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "no aggregator user job left: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
