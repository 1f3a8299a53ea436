//! The sign-in providers' failures, each classified into the one [`ProviderFailure`] model: a
//! new variant cannot compile until it is classified (no catch-all arms here).
#![deny(clippy::wildcard_enum_match_arm)]

use std::time::Duration;

use donkies_outbound::ProviderFailure;

use crate::http::Reply;

/// What went wrong signing someone in with a provider. Messages carry the
/// provider's own error text and never our secrets or the user's tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocialError {
    /// The provider said no: a bad, expired or reused code, a denied or
    /// unknown token, a bad signature, wrong credentials, an ID token for
    /// another audience or issuer, an expired ID token. Not worth retrying.
    #[error("sign-in rejected: {message}")]
    Rejected { message: String },
    /// The provider could not be reached or is failing (connection error,
    /// timeout, 5xx). The same request may work later.
    #[error("sign-in provider unavailable: {message}")]
    Unavailable { message: String },
    /// 429 (or the provider's own throttling code): slow down; `retry_after`
    /// from the `Retry-After` header.
    #[error("sign-in provider rate-limited the request: {message}")]
    RateLimited { message: String, retry_after: Option<Duration> },
    /// The provider answered something we cannot read, or our own
    /// configuration is unusable.
    #[error("sign-in provider answered something unexpected: {message}")]
    Invalid { message: String },
}

impl SocialError {
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::Rejected { message: message.into() }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable { message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid { message: message.into() }
    }

    /// What the failure means for the caller, in the model every provider
    /// shares. A rejection is the provider refusing this sign-in (the user's
    /// code or token), not our credentials, so it is `Refused`.
    pub fn failure(&self) -> ProviderFailure {
        match self {
            Self::Rejected { .. } | Self::Invalid { .. } => ProviderFailure::Refused,
            Self::Unavailable { .. } => ProviderFailure::Transient { retry_after: None },
            Self::RateLimited { retry_after, .. } => ProviderFailure::RateLimited { retry_after: *retry_after },
        }
    }

    /// Whether the same request may succeed if sent again later.
    pub fn is_retryable(&self) -> bool {
        self.failure().is_retryable()
    }

    /// Classifies an error response by its status: 429 is a rate limit, 5xx
    /// an outage, every other status the provider refusing.
    pub(crate) fn from_status(reply: &Reply, message: String) -> Self {
        match reply.status {
            429 => Self::RateLimited { message, retry_after: reply.retry_after },
            500..=599 => Self::Unavailable { message },
            _ => Self::Rejected { message },
        }
    }

    /// Classifies a failure to get (or read) a response at all.
    pub(crate) fn from_transport(provider: &str, error: &reqwest::Error) -> Self {
        if error.is_builder() {
            return Self::invalid(format!("{provider}: could not build the request"));
        }
        Self::unavailable(format!("{provider}: {}", transport_message(error)))
    }
}

/// The kind of a transport failure and its causes, without the URL that
/// `reqwest::Error`'s own `Display` shows: it may carry a code or a token.
fn transport_message(error: &reqwest::Error) -> String {
    let mut message = if error.is_timeout() {
        "request timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "could not read the response"
    } else {
        "request failed"
    }
    .to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_their_classes() {
        let wait = Some(Duration::from_secs(5));
        let class =
            |status| SocialError::from_status(&Reply { status, body: "".into(), retry_after: wait }, "m".into());
        assert!(matches!(class(400), SocialError::Rejected { .. }));
        assert!(matches!(class(401), SocialError::Rejected { .. }));
        assert!(matches!(class(429), SocialError::RateLimited { .. }));
        assert!(matches!(class(503), SocialError::Unavailable { .. }));
        assert!(class(500).is_retryable());
        assert!(class(429).is_retryable());
        assert!(!class(400).is_retryable());
        assert_eq!(class(400).failure(), ProviderFailure::Refused);
        assert_eq!(class(401).failure(), ProviderFailure::Refused);
        assert_eq!(class(429).failure(), ProviderFailure::RateLimited { retry_after: wait });
        assert_eq!(class(503).failure(), ProviderFailure::Transient { retry_after: None });
        assert_eq!(SocialError::invalid("m").failure(), ProviderFailure::Refused);
    }
}
