//! The sign-in clients against their simulators, in process, over real HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use donkies_sandbox::social::{FacebookSimConfig, GoogleSimConfig, TwitterSimConfig};
use donkies_sandbox::{FacebookSim, GoogleSim, TestUser, TokenFault, TwitterSim};
use donkies_social::oauth1::{self, Credentials};
use donkies_social::{
    ExposeSecret, FacebookClient, FacebookConfig, GoogleClient, GoogleConfig, SecretString, SocialError, TwitterClient,
    TwitterConfig,
};
use url::Url;

const REDIRECT_URI: &str = "http://localhost:3000/login_facebook";
const TIMEOUT: Duration = Duration::from_secs(5);

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn alice() -> TestUser {
    TestUser::named("alice")
}

/// An HTTP client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Where a redirect points, and its query.
fn location(response: &reqwest::Response) -> (Url, Vec<(String, String)>) {
    assert!(response.status().is_redirection(), "expected a redirect, got {}", response.status());
    let target = response.headers()[reqwest::header::LOCATION].to_str().unwrap();
    let url = Url::parse(target).unwrap();
    let query = url.query_pairs().into_owned().collect();
    (url, query)
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> &'a str {
    query
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .unwrap_or_else(|| panic!("no {name} in {query:?}"))
}

#[track_caller]
fn assert_rejected<T: std::fmt::Debug>(result: Result<T, SocialError>, needle: &str) {
    match result {
        Err(SocialError::Rejected { message }) => {
            assert!(message.contains(needle), "rejection {message:?} does not mention {needle:?}")
        }
        other => panic!("expected a rejection mentioning {needle:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, SocialError>) {
    assert!(matches!(result, Err(SocialError::Unavailable { .. })), "expected Unavailable, got {result:?}");
}

// ---------------------------------------------------------------- Facebook

async fn facebook() -> (FacebookSim, FacebookClient) {
    facebook_with(FacebookSimConfig::default()).await
}

async fn facebook_with(config: FacebookSimConfig) -> (FacebookSim, FacebookClient) {
    let sim = FacebookSim::start(any_port(), config).await.unwrap();
    let client = FacebookClient::new(sim.client_config().with_timeout(TIMEOUT)).unwrap();
    (sim, client)
}

#[tokio::test]
async fn facebook_code_becomes_a_token_and_then_the_profile() {
    let (sim, client) = facebook().await;
    let code = sim.issue_code(alice());

    let token = client.exchange_code(&code, REDIRECT_URI).await.unwrap();
    let profile = client.me(token.expose_secret()).await.unwrap();

    let alice = alice();
    assert_eq!(profile.id, alice.id);
    assert_eq!(profile.email, alice.email);
    assert_eq!(profile.first_name, "Alice");
    assert_eq!(profile.last_name, "Sandbox");
}

#[tokio::test]
async fn facebook_user_without_an_email_has_none() {
    let (sim, client) = facebook().await;
    let user = TestUser { email: None, ..TestUser::named("phoneonly") };
    let profile = client.sign_in(&sim.issue_code(user.clone()), REDIRECT_URI).await.unwrap();
    assert_eq!(profile.id, user.id);
    assert_eq!(profile.email, None);
}

#[tokio::test]
async fn facebook_rejects_an_unknown_code() {
    let (_sim, client) = facebook().await;
    assert_rejected(client.exchange_code("made-up-code", REDIRECT_URI).await, "Invalid verification code");
}

#[tokio::test]
async fn facebook_rejects_a_reused_code() {
    let (sim, client) = facebook().await;
    let code = sim.issue_code(alice());
    client.exchange_code(&code, REDIRECT_URI).await.unwrap();
    assert_rejected(client.exchange_code(&code, REDIRECT_URI).await, "has been used");
}

#[tokio::test]
async fn facebook_rejects_an_expired_code() {
    let (sim, client) =
        facebook_with(FacebookSimConfig { code_ttl: Duration::ZERO, ..FacebookSimConfig::default() }).await;
    let code = sim.issue_code(alice());
    assert_rejected(client.exchange_code(&code, REDIRECT_URI).await, "expired");
}

#[tokio::test]
async fn facebook_rejects_a_code_sent_with_another_redirect_uri() {
    let (sim, client) = facebook().await;
    let code = sim.issue_code_for(alice(), "https://donkies.example/login_facebook");
    assert_rejected(client.exchange_code(&code, REDIRECT_URI).await, "redirect_uri");
}

#[tokio::test]
async fn facebook_rejects_a_wrong_app_secret() {
    let (sim, _) = facebook().await;
    let mut config = sim.client_config();
    config.app_secret = SecretString::from("not-the-secret");
    let client = FacebookClient::new(config).unwrap();
    assert_rejected(client.exchange_code(&sim.issue_code(alice()), REDIRECT_URI).await, "client secret");
}

#[tokio::test]
async fn facebook_rejects_an_unknown_access_token() {
    let (_sim, client) = facebook().await;
    assert_rejected(client.me("EAAbogus").await, "Invalid OAuth access token");
}

#[tokio::test]
async fn facebook_outage_is_unavailable_and_passes() {
    let (sim, client) = facebook().await;
    let token = client.exchange_code(&sim.issue_code(alice()), REDIRECT_URI).await.unwrap();
    let code = sim.issue_code(alice());

    sim.set_outage(Some(503));
    assert_unavailable(client.exchange_code(&code, REDIRECT_URI).await);
    assert_unavailable(client.me(token.expose_secret()).await);

    sim.set_outage(None);
    client.exchange_code(&code, REDIRECT_URI).await.unwrap();
    client.me(token.expose_secret()).await.unwrap();
}

#[tokio::test]
async fn facebook_outage_can_be_switched_over_http() {
    let (sim, client) = facebook().await;
    let outage = sim.base_url().join("__sim/outage").unwrap();
    let http = reqwest::Client::new();
    http.post(outage.clone()).json(&serde_json::json!({"status": 500})).send().await.unwrap();
    let code = sim.issue_code(alice());
    assert_unavailable(client.exchange_code(&code, REDIRECT_URI).await);
    http.post(outage).json(&serde_json::json!({"status": null})).send().await.unwrap();
    client.exchange_code(&code, REDIRECT_URI).await.unwrap();
}

#[tokio::test]
async fn facebook_unreachable_is_unavailable() {
    let (sim, client) = facebook().await;
    sim.shutdown().await.unwrap();
    assert_unavailable(client.exchange_code("code", REDIRECT_URI).await);
}

#[tokio::test]
async fn facebook_dialog_redirects_back_with_a_code_and_the_state() {
    let (_sim, client) = facebook().await;
    let login = format!("{}&user=bob", client.login_url(REDIRECT_URI, "st4te"));

    let response = browser().get(&login).send().await.unwrap();
    let (back, query) = location(&response);
    assert!(back.as_str().starts_with(REDIRECT_URI));
    assert_eq!(param(&query, "state"), "st4te");

    let profile = client.sign_in(param(&query, "code"), REDIRECT_URI).await.unwrap();
    assert_eq!(profile.id, TestUser::named("bob").id);
    assert_eq!(profile.first_name, "Bob");
}

#[test]
fn facebook_login_url_points_at_the_configured_dialog() {
    let config = FacebookConfig::new("42", "s").with_base_url(Url::parse("http://127.0.0.1:9/facebook/").unwrap());
    let client = FacebookClient::new(config).unwrap();
    let url = client.login_url(REDIRECT_URI, "x");
    assert!(url.starts_with("http://127.0.0.1:9/facebook/v2.8/dialog/oauth?client_id=42&"), "{url}");
}

// ------------------------------------------------------------------ Google

async fn google() -> (GoogleSim, GoogleClient) {
    google_with(|config| config).await
}

async fn google_with(tune: impl FnOnce(GoogleConfig) -> GoogleConfig) -> (GoogleSim, GoogleClient) {
    let sim = GoogleSim::start(any_port(), GoogleSimConfig::default()).await.unwrap();
    let client = GoogleClient::new(tune(sim.client_config().with_timeout(TIMEOUT))).unwrap();
    (sim, client)
}

/// Exchanges a fresh code for `user` and returns the ID token.
async fn google_id_token(sim: &GoogleSim, client: &GoogleClient, user: TestUser) -> String {
    let tokens = client.exchange_code(&sim.issue_code(user), REDIRECT_URI).await.unwrap();
    tokens.id_token.expose_secret().to_owned()
}

#[tokio::test]
async fn google_code_becomes_a_verified_identity() {
    let (sim, client) = google().await;
    let identity = client.sign_in(&sim.issue_code(alice()), REDIRECT_URI).await.unwrap();
    let alice = alice();
    assert_eq!(identity.sub, alice.id);
    assert_eq!(identity.email, alice.email);
    assert!(identity.email_verified);
    assert_eq!(identity.given_name.as_deref(), Some("Alice"));
    assert_eq!(identity.family_name.as_deref(), Some("Sandbox"));
}

#[tokio::test]
async fn google_reports_an_unverified_email_as_such() {
    let (sim, client) = google().await;
    let user = TestUser { email_verified: false, ..TestUser::named("carol") };
    let identity = client.sign_in(&sim.issue_code(user), REDIRECT_URI).await.unwrap();
    assert!(!identity.email_verified);
}

#[tokio::test]
async fn google_rejects_unknown_and_reused_codes() {
    let (sim, client) = google().await;
    assert_rejected(client.exchange_code("4/made-up", REDIRECT_URI).await, "invalid_grant");
    let code = sim.issue_code(alice());
    client.exchange_code(&code, REDIRECT_URI).await.unwrap();
    assert_rejected(client.exchange_code(&code, REDIRECT_URI).await, "already redeemed");
}

#[tokio::test]
async fn google_rejects_a_wrong_client_secret() {
    let (sim, _) = google().await;
    let mut config = sim.client_config();
    config.client_secret = SecretString::from("not-the-secret");
    let client = GoogleClient::new(config).unwrap();
    assert_rejected(client.exchange_code(&sim.issue_code(alice()), REDIRECT_URI).await, "invalid_client");
}

/// Each spoiled token the simulator can make is refused, with the reason.
async fn google_refuses(fault: TokenFault, needle: &str) {
    let (sim, client) = google().await;
    sim.sign_next_token_with(fault);
    let id_token = google_id_token(&sim, &client, alice()).await;
    assert_rejected(client.verify_id_token(&id_token).await, needle);
    // The fault spoiled one token only.
    let id_token = google_id_token(&sim, &client, alice()).await;
    client.verify_id_token(&id_token).await.unwrap();
}

#[tokio::test]
async fn google_rejects_a_token_for_another_audience() {
    google_refuses(TokenFault::WrongAudience, "another client").await;
}

#[tokio::test]
async fn google_rejects_a_token_from_another_issuer() {
    google_refuses(TokenFault::WrongIssuer, "accounts.example.com").await;
}

#[tokio::test]
async fn google_rejects_an_expired_token() {
    google_refuses(TokenFault::Expired, "expired").await;
}

#[tokio::test]
async fn google_rejects_a_token_with_a_bad_signature() {
    google_refuses(TokenFault::WrongKey, "signature does not verify").await;
}

#[tokio::test]
async fn google_rejects_a_token_signed_by_an_unknown_key() {
    google_refuses(TokenFault::UnknownKey, "unknown key").await;
}

#[tokio::test]
async fn google_rejects_a_token_naming_another_algorithm() {
    google_refuses(TokenFault::UnsupportedAlgorithm, "only RS256").await;
}

#[tokio::test]
async fn google_rejects_a_tampered_token() {
    let (sim, client) = google().await;
    let id_token = google_id_token(&sim, &client, alice()).await;
    let mut parts: Vec<String> = id_token.split('.').map(str::to_owned).collect();
    let other = google_id_token(&sim, &client, TestUser::named("mallory")).await;
    // Mallory's claims under Alice's signature.
    parts[1] = other.split('.').nth(1).unwrap().to_owned();
    assert_rejected(client.verify_id_token(&parts.join(".")).await, "signature does not verify");
}

#[tokio::test]
async fn google_keys_are_fetched_once_and_cached() {
    let (sim, client) = google().await;
    for name in ["alice", "bob", "carol"] {
        client.sign_in(&sim.issue_code(TestUser::named(name)), REDIRECT_URI).await.unwrap();
    }
    assert_eq!(sim.jwks_hits(), 1);
}

#[tokio::test]
async fn google_unknown_key_ids_refresh_the_keys_at_most_once_a_minute() {
    let (sim, client) = google().await;
    client.sign_in(&sim.issue_code(alice()), REDIRECT_URI).await.unwrap();
    assert_eq!(sim.jwks_hits(), 1);

    for _ in 0..3 {
        sim.sign_next_token_with(TokenFault::UnknownKey);
        let id_token = google_id_token(&sim, &client, alice()).await;
        assert_rejected(client.verify_id_token(&id_token).await, "unknown key");
    }
    // The keys were fetched less than a minute ago: no new fetch.
    assert_eq!(sim.jwks_hits(), 1);
}

#[tokio::test]
async fn google_a_rotated_key_is_fetched_when_first_seen() {
    let (sim, client) = google_with(|mut config| {
        config.jwks_min_refresh = Duration::ZERO;
        config
    })
    .await;
    client.sign_in(&sim.issue_code(alice()), REDIRECT_URI).await.unwrap();
    let old_kid = sim.handle().current_kid();

    sim.rotate_key().await.unwrap();
    assert_ne!(sim.handle().current_kid(), old_kid);
    client.sign_in(&sim.issue_code(alice()), REDIRECT_URI).await.unwrap();
    assert_eq!(sim.jwks_hits(), 2);
    client.sign_in(&sim.issue_code(alice()), REDIRECT_URI).await.unwrap();
    assert_eq!(sim.jwks_hits(), 2);
}

#[tokio::test]
async fn google_outage_is_unavailable() {
    let (sim, client) = google().await;
    let id_token = google_id_token(&sim, &client, alice()).await;
    let code = sim.issue_code(alice());

    sim.set_outage(Some(503));
    assert_unavailable(client.exchange_code(&code, REDIRECT_URI).await);
    // The keys have not been fetched yet, and cannot be.
    assert_unavailable(client.verify_id_token(&id_token).await);

    sim.set_outage(None);
    client.verify_id_token(&id_token).await.unwrap();
    client.exchange_code(&code, REDIRECT_URI).await.unwrap();
}

#[tokio::test]
async fn google_consent_screen_redirects_back_with_a_code_and_the_state() {
    let (_sim, client) = google().await;
    let login = format!("{}&user=dave", client.login_url(REDIRECT_URI, "g-state"));
    let response = browser().get(&login).send().await.unwrap();
    let (back, query) = location(&response);
    assert!(back.as_str().starts_with(REDIRECT_URI));
    assert_eq!(param(&query, "state"), "g-state");
    let identity = client.sign_in(param(&query, "code"), REDIRECT_URI).await.unwrap();
    assert_eq!(identity.sub, TestUser::named("dave").id);
}

// ----------------------------------------------------------------- Twitter

const CALLBACK: &str = "http://localhost:3000/login_twitter";

async fn twitter() -> (TwitterSim, TwitterClient) {
    let sim = TwitterSim::start(any_port(), TwitterSimConfig::default()).await.unwrap();
    let client = TwitterClient::new(sim.client_config().with_timeout(TIMEOUT)).unwrap();
    (sim, client)
}

#[tokio::test]
async fn twitter_signed_flow_ends_with_the_profile() {
    let (sim, client) = twitter().await;
    let request = client.request_token(CALLBACK).await.unwrap();
    assert!(
        client
            .authorize_url(&request.oauth_token)
            .ends_with(&format!("/oauth/authenticate?oauth_token={}", request.oauth_token))
    );
    let verifier = sim.authorize(&request.oauth_token, alice()).unwrap();

    let access =
        client.access_token(&request.oauth_token, request.oauth_token_secret.expose_secret(), &verifier).await.unwrap();
    let alice = alice();
    assert_eq!(access.user_id, alice.id);
    assert_eq!(access.screen_name, "AliceSandbox");

    let profile =
        client.verify_credentials(&access.oauth_token, access.oauth_token_secret.expose_secret()).await.unwrap();
    assert_eq!(profile.id, alice.id);
    assert_eq!(profile.name, "Alice Sandbox");
    assert_eq!(profile.screen_name, "AliceSandbox");
    assert_eq!(profile.email, alice.email);
}

#[tokio::test]
async fn twitter_rejects_a_bad_consumer_secret() {
    let (sim, _) = twitter().await;
    let mut config = sim.client_config();
    config.consumer_secret = SecretString::from("not-the-secret");
    let client = TwitterClient::new(config).unwrap();
    assert_rejected(client.request_token(CALLBACK).await, "Could not authenticate you");
}

#[tokio::test]
async fn twitter_rejects_a_wrong_token_secret() {
    let (sim, client) = twitter().await;
    let request = client.request_token(CALLBACK).await.unwrap();
    let verifier = sim.authorize(&request.oauth_token, alice()).unwrap();
    assert_rejected(
        client.access_token(&request.oauth_token, "wrong-secret", &verifier).await,
        "Could not authenticate you",
    );

    let access =
        client.access_token(&request.oauth_token, request.oauth_token_secret.expose_secret(), &verifier).await.unwrap();
    assert_rejected(client.verify_credentials(&access.oauth_token, "wrong-secret").await, "Could not authenticate you");
}

#[tokio::test]
async fn twitter_rejects_a_wrong_verifier_and_a_reused_request_token() {
    let (sim, client) = twitter().await;
    let request = client.request_token(CALLBACK).await.unwrap();
    let secret = request.oauth_token_secret.expose_secret();
    let verifier = sim.authorize(&request.oauth_token, alice()).unwrap();

    assert_rejected(client.access_token(&request.oauth_token, secret, "not-the-verifier").await, "oauth_verifier");
    client.access_token(&request.oauth_token, secret, &verifier).await.unwrap();
    assert_rejected(client.access_token(&request.oauth_token, secret, &verifier).await, "Invalid or expired token");
}

#[tokio::test]
async fn twitter_unapproved_request_token_cannot_be_traded() {
    let (_sim, client) = twitter().await;
    let request = client.request_token(CALLBACK).await.unwrap();
    assert_rejected(
        client.access_token(&request.oauth_token, request.oauth_token_secret.expose_secret(), "guess").await,
        "oauth_verifier",
    );
}

#[tokio::test]
async fn twitter_simulator_refuses_replayed_and_stale_requests() {
    let (sim, _) = twitter().await;
    let url = sim.base_url().join("oauth/request_token").unwrap();
    let config = sim.client_config();
    let credentials = Credentials {
        consumer_key: &config.consumer_key,
        consumer_secret: config.consumer_secret.expose_secret(),
        token: None,
        token_secret: "",
    };
    let request = oauth1::Request { method: "POST", url: &url, form: &[] };
    let http = reqwest::Client::new();
    let send = |header: String| http.post(url.clone()).header(reqwest::header::AUTHORIZATION, header).send();

    let fresh =
        oauth1::authorize(&request, &credentials, &[("oauth_callback", CALLBACK)], "nonce-1", oauth1::timestamp());
    assert_eq!(send(fresh.to_header()).await.unwrap().status(), 200);
    let replay = send(fresh.to_header()).await.unwrap();
    assert_eq!(replay.status(), 401);
    assert!(replay.text().await.unwrap().contains("Could not authenticate you"));

    let stale = oauth1::authorize(
        &request,
        &credentials,
        &[("oauth_callback", CALLBACK)],
        "nonce-2",
        oauth1::timestamp() - 3600,
    );
    let response = send(stale.to_header()).await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.text().await.unwrap().contains("Timestamp out of bounds"));

    let not_oauth = send("Bearer nothing".to_owned()).await.unwrap();
    assert_eq!(not_oauth.status(), 401);
    let unsigned = http.post(url.clone()).send().await.unwrap();
    assert_eq!(unsigned.status(), 400);
    assert!(unsigned.text().await.unwrap().contains("Bad Authentication data"));
}

#[tokio::test]
async fn twitter_outage_is_unavailable() {
    let (sim, client) = twitter().await;
    sim.set_outage(Some(503));
    assert_unavailable(client.request_token(CALLBACK).await);
    sim.set_outage(None);
    client.request_token(CALLBACK).await.unwrap();
}

#[tokio::test]
async fn twitter_approval_page_redirects_to_the_callback_with_a_verifier() {
    let (_sim, client) = twitter().await;
    let request = client.request_token(CALLBACK).await.unwrap();
    let approve = format!("{}&user=erin", client.authorize_url(&request.oauth_token));

    let response = browser().get(&approve).send().await.unwrap();
    let (back, query) = location(&response);
    assert!(back.as_str().starts_with(CALLBACK));
    assert_eq!(param(&query, "oauth_token"), request.oauth_token);

    let access = client
        .access_token(&request.oauth_token, request.oauth_token_secret.expose_secret(), param(&query, "oauth_verifier"))
        .await
        .unwrap();
    assert_eq!(access.user_id, TestUser::named("erin").id);
}

#[test]
fn twitter_config_defaults_to_the_real_api() {
    let config = TwitterConfig::new("key", "secret");
    assert_eq!(config.api_url.as_str(), "https://api.twitter.com/");
    assert!(!format!("{config:?}").contains("secret\""));
}
