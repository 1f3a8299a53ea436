//! Atrium's failures, each classified into the one [`ProviderFailure`] model: a new variant
//! cannot compile until it is classified (no catch-all arms here).
#![deny(clippy::wildcard_enum_match_arm)]

use std::time::Duration;

use donkies_outbound::ProviderFailure;

/// What went wrong talking to Atrium, classified so callers know whether to
/// retry (A8). Messages carry the server's error text, never our secrets.
#[derive(Debug, thiserror::Error)]
pub enum AtriumError {
    /// 401 or 403: bad `MX-API-Key`/`MX-Client-ID`, or a refused caller.
    #[error("atrium refused our credentials ({status}): {message}")]
    Auth { status: u16, message: String },
    /// 404: unknown guid, code or path.
    #[error("atrium has no such resource: {message}")]
    NotFound { message: String },
    /// 409: the object already exists, or another job is running.
    #[error("atrium reported a conflict: {message}")]
    Conflict { message: String },
    /// 429: slow down; `retry_after` comes from the `Retry-After` header.
    #[error("atrium rate-limited the request")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, a timeout or a connection failure: worth trying again later, after `retry_after`
    /// when a `Retry-After` header said.
    #[error("atrium is unavailable{}: {message}", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Retryable { status: Option<u16>, message: String, retry_after: Option<Duration> },
    /// Anything else: 400, 405, 406, 422, an unreadable body, a bad config.
    #[error("atrium request failed{}: {message}", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Other { status: Option<u16>, message: String },
}

impl AtriumError {
    /// What the failure means for the caller, in the model every provider shares.
    pub fn failure(&self) -> ProviderFailure {
        match self {
            Self::Auth { .. } => ProviderFailure::Auth,
            Self::NotFound { .. } => ProviderFailure::NotFound,
            Self::Conflict { .. } | Self::Other { .. } => ProviderFailure::Refused,
            Self::RateLimited { retry_after } => ProviderFailure::RateLimited { retry_after: *retry_after },
            Self::Retryable { retry_after, .. } => ProviderFailure::Transient { retry_after: *retry_after },
        }
    }

    /// Whether the same request may succeed if sent again later.
    pub fn is_retryable(&self) -> bool {
        self.failure().is_retryable()
    }

    /// How long Atrium asked us to wait before trying again (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.failure().retry_after()
    }

    /// Atrium's own words for what went wrong (empty for a rate limit, which has none).
    pub fn message(&self) -> &str {
        match self {
            Self::Auth { message, .. }
            | Self::NotFound { message }
            | Self::Conflict { message }
            | Self::Retryable { message, .. }
            | Self::Other { message, .. } => message,
            Self::RateLimited { .. } => "",
        }
    }

    /// The HTTP status that caused the error, when there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Auth { status, .. } => Some(*status),
            Self::NotFound { .. } => Some(404),
            Self::Conflict { .. } => Some(409),
            Self::RateLimited { .. } => Some(429),
            Self::Retryable { status, .. } | Self::Other { status, .. } => *status,
        }
    }

    /// Classifies an error response by its status code.
    pub fn from_status(status: u16, message: String, retry_after: Option<Duration>) -> Self {
        match status {
            401 | 403 => Self::Auth { status, message },
            404 => Self::NotFound { message },
            409 => Self::Conflict { message },
            429 => Self::RateLimited { retry_after },
            500..=599 => Self::Retryable { status: Some(status), message, retry_after },
            _ => Self::Other { status: Some(status), message },
        }
    }

    /// Classifies a failure to get a response at all.
    pub(crate) fn from_transport(error: &reqwest::Error) -> Self {
        let message = error_chain(error);
        if error.is_timeout() || error.is_connect() || error.is_request() || error.is_body() {
            Self::Retryable { status: None, message, retry_after: None }
        } else {
            Self::Other { status: error.status().map(|s| s.as_u16()), message }
        }
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
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
        let class = |status| AtriumError::from_status(status, "m".into(), None);
        assert!(matches!(class(401), AtriumError::Auth { status: 401, .. }));
        assert!(matches!(class(403), AtriumError::Auth { status: 403, .. }));
        assert!(matches!(class(404), AtriumError::NotFound { .. }));
        assert!(matches!(class(409), AtriumError::Conflict { .. }));
        assert!(matches!(class(429), AtriumError::RateLimited { .. }));
        assert!(matches!(class(503), AtriumError::Retryable { .. }));
        assert!(matches!(class(422), AtriumError::Other { .. }));
        assert!(class(500).is_retryable());
        assert!(class(429).is_retryable());
        assert!(!class(400).is_retryable());
        assert!(!class(401).is_retryable());
        let limited = AtriumError::from_status(429, "m".into(), Some(Duration::from_secs(7)));
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(class(503).retry_after(), None);
    }

    #[test]
    fn every_class_is_one_provider_failure() {
        let wait = Some(Duration::from_secs(2));
        let failure = |status| AtriumError::from_status(status, "m".into(), wait).failure();
        assert_eq!(failure(401), ProviderFailure::Auth);
        assert_eq!(failure(403), ProviderFailure::Auth);
        assert_eq!(failure(404), ProviderFailure::NotFound);
        assert_eq!(failure(409), ProviderFailure::Refused);
        assert_eq!(failure(422), ProviderFailure::Refused);
        assert_eq!(failure(400), ProviderFailure::Refused);
        assert_eq!(failure(429), ProviderFailure::RateLimited { retry_after: wait });
        assert_eq!(failure(503), ProviderFailure::Transient { retry_after: wait });
        assert_eq!(failure(500), ProviderFailure::Transient { retry_after: wait });
    }
}
