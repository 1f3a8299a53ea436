//! MX Atrium client for Donkies.
//!
//! - [`wire`]: the JSON of the Atrium API as serde structs, shared with the
//!   simulator in `donkies-sandbox` so the two cannot drift.
//! - [`Aggregator`]: the operations services depend on (`Arc<dyn Aggregator>`).
//! - [`AtriumClient`]: the reqwest implementation, configured by
//!   [`AtriumConfig`]; its failures are [`AtriumError`]s, each one [`ProviderFailure`].

mod aggregator;
mod client;
mod error;
pub mod wire;

pub use aggregator::{Aggregator, DateRange, Page, PageRequest, Result, collect_pages};
pub use client::{AtriumClient, AtriumConfig};
pub use donkies_domain::{ExposeSecret, SecretString};
/// The one model every provider's failures are classified into.
pub use donkies_outbound::ProviderFailure;
pub use error::AtriumError;
