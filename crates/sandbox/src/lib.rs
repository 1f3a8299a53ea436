//! Wire-faithful simulators of the providers Donkies talks to, for tests,
//! front-end developers and benchmarks. Each is an axum app speaking the
//! provider's real protocol with the client crate's own wire types, so the
//! production client code runs against it unchanged.
//!
//! - [`atrium`]: MX Atrium (aggregation).
//! - [`dwolla`]: Dwolla (ACH payments).
//! - [`social`]: the sign-in providers (Facebook, Google, Twitter).

pub mod atrium;
pub mod dwolla;
mod journal;
pub mod social;

pub use atrium::{
    AtriumSim, AtriumSimConfig, AtriumSimHandle, Faults, SANDBOX_API_KEY, SANDBOX_CLIENT_ID, SimEvent, SimEventError,
    SimSettings, atrium_router,
};
pub use dwolla::{
    DWOLLA_WEBHOOK_RETRIES, DwollaSim, DwollaSimConfig, DwollaSimHandle, DwollaSimStats, SANDBOX_DWOLLA_KEY,
    SANDBOX_DWOLLA_SECRET, SANDBOX_ROUTING_NUMBER,
};
pub use journal::SANDBOX_DB_FILE;
pub use social::{
    FacebookSim, FacebookSimConfig, GoogleSim, GoogleSimConfig, SANDBOX_FACEBOOK_APP_ID, SANDBOX_FACEBOOK_APP_SECRET,
    SANDBOX_GOOGLE_CLIENT_ID, SANDBOX_GOOGLE_CLIENT_SECRET, SANDBOX_TWITTER_CONSUMER_KEY,
    SANDBOX_TWITTER_CONSUMER_SECRET, TestUser, TokenFault, TwitterSim, TwitterSimConfig,
};
