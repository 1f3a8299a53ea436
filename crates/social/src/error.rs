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
    /// timeout, 5xx, rate limit). The same request may work later.
    #[error("sign-in provider unavailable: {message}")]
    Unavailable { message: String },
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

    /// Whether the same request may succeed if sent again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// Classifies an error response by its status: 5xx and 429 are
    /// outages, every other status is the provider refusing.
    pub(crate) fn from_status(status: u16, message: String) -> Self {
        match status {
            429 | 500..=599 => Self::Unavailable { message },
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
        let class = |status| SocialError::from_status(status, "m".into());
        assert!(matches!(class(400), SocialError::Rejected { .. }));
        assert!(matches!(class(401), SocialError::Rejected { .. }));
        assert!(matches!(class(429), SocialError::Unavailable { .. }));
        assert!(matches!(class(503), SocialError::Unavailable { .. }));
        assert!(class(500).is_retryable());
        assert!(!class(400).is_retryable());
    }
}
