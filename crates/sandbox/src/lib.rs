//! Wire-faithful simulators of the providers Donkies talks to, for tests,
//! front-end developers and benchmarks. Each is an axum app speaking the
//! provider's real protocol with the client crate's own wire types, so the
//! production client code runs against it unchanged.
//!
//! - [`atrium`]: MX Atrium (aggregation).

pub mod atrium;

pub use atrium::{
    AtriumSim, AtriumSimConfig, AtriumSimHandle, Faults, SANDBOX_API_KEY, SANDBOX_CLIENT_ID,
    SimSettings, atrium_router,
};
