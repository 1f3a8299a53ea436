//! Dwolla v2 client for Donkies (PROVIDERS.md Part B).
//!
//! - [`wire`]: the HAL+JSON of the Dwolla API as serde structs, shared with
//!   the simulator in `donkies-sandbox` so the two cannot drift.
//! - [`PaymentRail`]: the operations services depend on (`Arc<dyn PaymentRail>`).
//! - [`DwollaClient`]: the reqwest implementation, configured by
//!   [`DwollaConfig`], with a cached application token renewed once at a
//!   time; its failures are [`DwollaError`]s classified for retry.
//! - [`WebhookVerifier`]: checks `X-Request-Signature-SHA-256` in constant time.

mod client;
mod error;
mod rail;
mod webhook;
pub mod wire;

pub use client::{DwollaClient, DwollaConfig};
pub use donkies_domain::{Cents, ExposeSecret, SecretString};
pub use error::DwollaError;
pub use rail::{Page, PaymentRail, Result, TransferDestination, TransferRequest};
pub use webhook::{WebhookError, WebhookVerifier, sign_webhook};
