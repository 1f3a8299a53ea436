//! Sign-in provider clients for Donkies: Facebook Login (OAuth 2), Google
//! Sign-In (OAuth 2 + OpenID Connect) and Sign in with Twitter (OAuth 1.0a).
//!
//! Each provider module holds its client, its config (base URLs, app
//! credentials, timeout) and a `wire` module with the provider's JSON and
//! forms as serde types, shared with the simulators in `donkies-sandbox` so
//! the two cannot drift. Failures are [`SocialError`]s: `Rejected` (the
//! provider said no), `Unavailable` (try again later) or `Invalid`.
//! [`oauth1`] signs and verifies OAuth 1.0a requests.

pub mod facebook;
pub mod google;
mod http;
pub mod oauth1;
pub mod twitter;

mod error;

pub use donkies_domain::{ExposeSecret, SecretString};
/// The one model every provider's failures are classified into.
pub use donkies_outbound::ProviderFailure;
pub use error::SocialError;
pub use facebook::wire::FacebookProfile;
pub use facebook::{FacebookClient, FacebookConfig};
pub use google::{GoogleClient, GoogleConfig, GoogleIdentity, GoogleTokens};
pub use twitter::{RequestToken, TwitterAccessToken, TwitterClient, TwitterConfig, TwitterProfile};

/// The result of every client call.
pub type Result<T> = std::result::Result<T, SocialError>;
