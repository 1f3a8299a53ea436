//! Wire-faithful simulators of the sign-in providers (Facebook, Google,
//! Twitter), for tests, the zero-config server and front-end developers.
//!
//! Three separate simulators, each an axum app on its own port (or nested in
//! another router through its handle's `router()`), speaking the provider's
//! protocol with the wire types of `donkies-social`:
//!
//! - [`FacebookSim`]: `GET /v2.8/dialog/oauth`, `GET /v2.8/oauth/access_token`,
//!   `GET /v2.8/me`.
//! - [`GoogleSim`]: `GET /o/oauth2/v2/auth`, `POST /token`,
//!   `GET /oauth2/v3/certs`; ID tokens are RS256-signed with a key generated
//!   at start.
//! - [`TwitterSim`]: `POST /oauth/request_token`, `GET /oauth/authenticate`
//!   (and `/oauth/authorize`), `POST /oauth/access_token`,
//!   `GET /1.1/account/verify_credentials.json`, every request checked with
//!   OAuth 1.0a HMAC-SHA1.
//!
//! Tests mint a code for a [`TestUser`] in process (`issue_code`, or
//! `authorize` for Twitter). In a browser, the dialog routes approve at once
//! for the user named by `user=` (default `alice`, see [`TestUser::named`])
//! and redirect back with the code (or verifier) and `state`.
//!
//! Their state lives in memory only, unlike the Atrium and Dwolla
//! simulators': a [`TestUser`] is the same account on every run, codes and
//! tokens serve one sign-in (which a client simply begins again after a
//! restart), and the Google signing key is fetched anew by the server that
//! starts with the simulator.
//!
//! Each simulator also serves `POST /__sim/outage` with `{"status": 503}`
//! (or `null` to end it): every provider route then answers that status.

pub mod facebook;
pub mod google;
pub mod twitter;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

pub use facebook::{FacebookSim, FacebookSimConfig, FacebookSimHandle};
pub use google::{GoogleSim, GoogleSimConfig, GoogleSimHandle, TokenFault};
pub use twitter::{TwitterSim, TwitterSimConfig, TwitterSimHandle};

/// Facebook app id the simulator accepts unless configured otherwise.
pub const SANDBOX_FACEBOOK_APP_ID: &str = "100000000000001";
/// Facebook app secret the simulator accepts unless configured otherwise.
pub const SANDBOX_FACEBOOK_APP_SECRET: &str = "donkies-sandbox-facebook-secret";
/// Google OAuth client id the simulator accepts unless configured otherwise.
pub const SANDBOX_GOOGLE_CLIENT_ID: &str = "donkies-sandbox.apps.googleusercontent.com";
/// Google OAuth client secret the simulator accepts unless configured otherwise.
pub const SANDBOX_GOOGLE_CLIENT_SECRET: &str = "donkies-sandbox-google-secret";
/// Twitter consumer key the simulator accepts unless configured otherwise.
pub const SANDBOX_TWITTER_CONSUMER_KEY: &str = "donkies-sandbox-twitter-key";
/// Twitter consumer secret the simulator accepts unless configured otherwise.
pub const SANDBOX_TWITTER_CONSUMER_SECRET: &str = "donkies-sandbox-twitter-secret";

/// How long an authorization code (or an unused request token) lives.
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(5 * 60);

/// Whom a simulator signs in: the same person at every provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestUser {
    /// The provider's user id (Facebook id, Google `sub`, Twitter id);
    /// digits, like the real ones, so Twitter can also send it as a number.
    pub id: String,
    pub email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    /// Google's `email_verified`.
    pub email_verified: bool,
}

impl TestUser {
    /// A user made from a name: `named("alice")` is Alice Sandbox,
    /// `alice@example.com` (verified), with an id derived from the name, so
    /// the same name is the same user across runs and providers.
    pub fn named(name: &str) -> Self {
        let name = name.trim();
        let mut first_name: String = name.chars().take(1).flat_map(char::to_uppercase).collect();
        first_name.extend(name.chars().skip(1));
        Self {
            id: numeric_id(name),
            email: Some(format!("{}@example.com", name.to_lowercase())),
            first_name,
            last_name: "Sandbox".to_owned(),
            email_verified: true,
        }
    }

    /// `First Last`.
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name).trim().to_owned()
    }

    /// A Twitter handle: the letters and digits of the name, at most 15.
    pub fn screen_name(&self) -> String {
        let handle: String = format!("{}{}", self.first_name, self.last_name)
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(15)
            .collect();
        if handle.is_empty() { format!("user{}", self.id.chars().take(11).collect::<String>()) } else { handle }
    }
}

/// The name `user=` defaults to in the browser routes.
pub const DEFAULT_TEST_USER: &str = "alice";

/// A stable 12-digit id for a name (FNV-1a).
fn numeric_id(name: &str) -> String {
    let hash = name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    (100_000_000_000 + hash % 900_000_000_000).to_string()
}

/// A random token of `len` letters and digits.
pub(crate) fn random_token(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in one handler must not take the simulator down.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `Some(status)` when the outage knob is on and holds a 5xx.
pub(crate) fn outage_status(outage: &Mutex<Option<u16>>) -> Option<StatusCode> {
    (*lock(outage)).and_then(|status| StatusCode::from_u16(status).ok()).filter(StatusCode::is_server_error)
}

/// Body of `POST /__sim/outage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutageBody {
    /// A 5xx status every provider route answers, or `null` for none.
    pub status: Option<u16>,
}

/// Authorization codes: single use, expiring, optionally bound to the
/// redirect URI they were issued for.
#[derive(Debug, Default)]
pub(crate) struct Codes {
    grants: HashMap<String, Grant>,
}

#[derive(Debug)]
struct Grant {
    user: TestUser,
    redirect_uri: Option<String>,
    expires_at: Instant,
    redeemed: bool,
}

/// Why a code could not be redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeError {
    Unknown,
    Redeemed,
    Expired,
    RedirectMismatch,
}

impl Codes {
    pub fn issue(&mut self, user: TestUser, redirect_uri: Option<String>, ttl: Duration) -> String {
        let now = Instant::now();
        // Forget codes long dead so the map does not grow without bound.
        self.grants.retain(|_, grant| grant.expires_at + Duration::from_secs(3600) > now);
        let code = random_token(40);
        self.grants.insert(code.clone(), Grant { user, redirect_uri, expires_at: now + ttl, redeemed: false });
        code
    }

    /// The code's user, once: a redeemed code stays known so its reuse can
    /// be told apart from a made-up code.
    pub fn redeem(&mut self, code: &str, redirect_uri: &str) -> Result<TestUser, CodeError> {
        let grant = self.grants.get_mut(code).ok_or(CodeError::Unknown)?;
        if grant.redeemed {
            return Err(CodeError::Redeemed);
        }
        if grant.expires_at <= Instant::now() {
            return Err(CodeError::Expired);
        }
        if grant.redirect_uri.as_deref().is_some_and(|bound| bound != redirect_uri) {
            return Err(CodeError::RedirectMismatch);
        }
        grant.redeemed = true;
        Ok(grant.user.clone())
    }
}

/// `redirect_uri` with `params` added to its query.
pub(crate) fn redirect_target(redirect_uri: &str, params: &[(&str, &str)]) -> Option<Url> {
    let mut url = Url::parse(redirect_uri).ok()?;
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
    }
    Some(url)
}

/// A router served on a TCP port until shut down or dropped.
#[derive(Debug)]
pub(crate) struct Served {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl Served {
    /// How long [`Served::shutdown`] waits for requests in flight.
    const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

    pub async fn start(addr: SocketAddr, app: Router, name: &'static str) -> io::Result<Self> {
        Self::serve(TcpListener::bind(addr).await?, app, name)
    }

    /// Serves `app` on a listener already bound, for a simulator that needs
    /// its address before it builds its app.
    pub fn serve(listener: TcpListener, app: Router, name: &'static str) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // A dropped sender stops the server too.
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%addr, "{name} simulator listening");
        Ok(Self { addr, stop: Some(stop), task: Some(task) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> Url {
        Url::parse(&format!("http://{}/", self.addr)).expect("a socket address makes a valid url")
    }

    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(Self::SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => Err(io::Error::other(join_error)),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_users_are_stable_and_plausible() {
        let alice = TestUser::named("alice");
        assert_eq!(alice, TestUser::named("alice"));
        assert_ne!(alice.id, TestUser::named("bob").id);
        assert_eq!(alice.id.len(), 12);
        assert!(alice.id.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(alice.first_name, "Alice");
        assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
        assert_eq!(alice.screen_name(), "AliceSandbox");
        assert_eq!(alice.full_name(), "Alice Sandbox");
    }

    #[test]
    fn codes_are_single_use_expiring_and_bound_to_their_redirect() {
        let mut codes = Codes::default();
        let alice = TestUser::named("alice");
        let code = codes.issue(alice.clone(), None, Duration::from_secs(60));
        assert_eq!(codes.redeem(&code, "https://x"), Ok(alice.clone()));
        assert_eq!(codes.redeem(&code, "https://x"), Err(CodeError::Redeemed));
        assert_eq!(codes.redeem("nope", "https://x"), Err(CodeError::Unknown));

        let expired = codes.issue(alice.clone(), None, Duration::ZERO);
        assert_eq!(codes.redeem(&expired, "https://x"), Err(CodeError::Expired));

        let bound = codes.issue(alice.clone(), Some("https://a".into()), Duration::from_secs(60));
        assert_eq!(codes.redeem(&bound, "https://b"), Err(CodeError::RedirectMismatch));
        assert_eq!(codes.redeem(&bound, "https://a"), Ok(alice));
    }
}
