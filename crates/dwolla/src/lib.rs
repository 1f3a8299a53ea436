//! Dwolla v2 client for Donkies (PROVIDERS.md Part B).
//!
//! - [`wire`]: the HAL+JSON of the Dwolla API as serde structs, shared with
//!   the simulator in `donkies-sandbox` so the two cannot drift.
//! - [`PaymentRail`]: the operations services depend on (`Arc<dyn PaymentRail>`).
//! - [`DwollaClient`]: the reqwest implementation, configured by
//!   [`DwollaConfig`], with a cached application token renewed once at a
//!   time; its failures are [`DwollaError`]s, each one [`ProviderFailure`].
//! - [`WebhookVerifier`]: checks `X-Request-Signature-SHA-256` in constant time;
//!   [`Topic`]: an event's topic, parsed.

mod client;
mod error;
mod rail;
mod webhook;
pub mod wire;

pub use client::{DwollaClient, DwollaConfig};
pub use donkies_domain::{Cents, ExposeSecret, SecretString};
/// The one model every provider's failures are classified into.
pub use donkies_outbound::ProviderFailure;
pub use error::DwollaError;
pub use rail::{Page, PaymentRail, Result, TransferDestination, TransferRequest};
pub use webhook::{CustomerTopic, Topic, TransferEvent, TransferTopic, WebhookError, WebhookVerifier, sign_webhook};
