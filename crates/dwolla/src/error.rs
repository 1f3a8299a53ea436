//! Dwolla's failures, each classified into the one [`ProviderFailure`] model: a new variant
//! cannot compile until it is classified (no catch-all arms over enums here).
#![deny(clippy::wildcard_enum_match_arm)]

use std::time::Duration;

use donkies_outbound::ProviderFailure;

use crate::wire::{ErrorBody, FieldError, OAuthError};

/// What went wrong talking to Dwolla, classified so that callers know whether
/// to retry, fix the input, or give up (B8). Messages carry Dwolla's text,
/// never our secrets.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DwollaError {
    /// 400 `ValidationError`: the request body is wrong; `errors` say where.
    #[error("dwolla refused the request: {message}{}", describe(errors))]
    Validation { message: String, errors: Vec<FieldError> },
    /// The resource exists already (a duplicate email or bank); `existing`
    /// is its URL when Dwolla gave one.
    #[error("dwolla says the resource already exists: {message}")]
    Duplicate { message: String, existing: Option<String> },
    /// 403 `InvalidResourceState` (or `MaxNumberOfResources`): the resource
    /// cannot do that now, e.g. a removed bank or too many attempts.
    #[error("dwolla refused in the resource's state ({code}): {message}")]
    InvalidResourceState { code: String, message: String },
    /// 404.
    #[error("dwolla has no such resource: {message}")]
    NotFound { message: String },
    /// 401, 403 (other than a resource state), or the token endpoint's OAuth
    /// error: our key, secret or token is refused.
    #[error("dwolla refused our credentials ({status} {code}): {message}")]
    Auth { status: u16, code: String, message: String },
    /// 429: slow down; `retry_after` from the `Retry-After` header.
    #[error("dwolla rate-limited the request")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, 409 (an idempotent request still running), 202 `TryAgainLater`,
    /// a timeout or a connection failure: worth sending again later, after
    /// `retry_after` when a `Retry-After` header said.
    #[error("dwolla is unavailable{}: {message}", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Retryable { status: Option<u16>, message: String, retry_after: Option<Duration> },
    /// Anything else: 400 `BadRequest`, 405, 406, an unreadable body, a bad
    /// configuration.
    #[error("dwolla request failed{}: {message}", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Other { status: Option<u16>, code: Option<String>, message: String },
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|error| format!(" [{} at {}: {}]", error.code, error.path.as_deref().unwrap_or("?"), error.message))
        .collect()
}

impl DwollaError {
    /// What the failure means for the caller, in the model every provider shares.
    pub fn failure(&self) -> ProviderFailure {
        match self {
            Self::Validation { .. }
            | Self::Duplicate { .. }
            | Self::InvalidResourceState { .. }
            | Self::Other { .. } => ProviderFailure::Refused,
            Self::NotFound { .. } => ProviderFailure::NotFound,
            Self::Auth { .. } => ProviderFailure::Auth,
            Self::RateLimited { retry_after } => ProviderFailure::RateLimited { retry_after: *retry_after },
            Self::Retryable { retry_after, .. } => ProviderFailure::Transient { retry_after: *retry_after },
        }
    }

    /// Whether the same request (with the same idempotency key) may succeed
    /// if sent again later.
    pub fn is_retryable(&self) -> bool {
        self.failure().is_retryable()
    }

    /// How long Dwolla asked us to wait (`Retry-After`), when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.failure().retry_after()
    }

    /// Dwolla's own words for what went wrong: the first field error of a validation error,
    /// else the message (empty for a rate limit, which has none).
    pub fn message(&self) -> &str {
        match self {
            Self::Validation { errors, message } => errors.first().map_or(message, |error| &error.message),
            Self::Duplicate { message, .. }
            | Self::InvalidResourceState { message, .. }
            | Self::NotFound { message }
            | Self::Auth { message, .. }
            | Self::Retryable { message, .. }
            | Self::Other { message, .. } => message,
            Self::RateLimited { .. } => "",
        }
    }

    /// The embedded field errors of a validation error; empty otherwise.
    pub fn field_errors(&self) -> &[FieldError] {
        if let Self::Validation { errors, .. } = self { errors } else { &[] }
    }

    /// Whether the error names `path` (a JSON pointer such as `/email`).
    pub fn has_error_at(&self, path: &str) -> bool {
        self.field_errors().iter().any(|error| error.path.as_deref() == Some(path))
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::Other { status: None, code: None, message: message.into() }
    }

    pub(crate) fn unreadable(status: u16, error: impl std::fmt::Display) -> Self {
        Self::Other { status: Some(status), code: None, message: format!("unreadable dwolla response: {error}") }
    }

    /// Classifies an error answer by its status and the `code` of its body.
    pub fn from_response(status: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
            if let Ok(oauth) = serde_json::from_slice::<OAuthError>(body) {
                return Self::from_oauth(status, oauth, retry_after);
            }
            let text = String::from_utf8_lossy(body).trim().chars().take(200).collect::<String>();
            return Self::from_status(status, None, text, retry_after);
        };
        let code = parsed.code.to_ascii_lowercase();
        let about = |links: &crate::wire::Links| links.get("about").map(|link| link.href.clone());
        match code.as_str() {
            "duplicateresource" => Self::Duplicate { existing: about(&parsed.links), message: parsed.message },
            "validationerror" => {
                let errors = parsed.embedded.map(|embedded| embedded.errors).unwrap_or_default();
                if let Some(duplicate) = errors.iter().find(|error| error.code.eq_ignore_ascii_case("duplicate")) {
                    return Self::Duplicate { message: duplicate.message.clone(), existing: about(&duplicate.links) };
                }
                Self::Validation { message: parsed.message, errors }
            }
            "invalidresourcestate" | "maxnumberofresources" => {
                Self::InvalidResourceState { code: parsed.code, message: parsed.message }
            }
            "tryagainlater" => Self::Retryable { status: Some(status), message: parsed.message, retry_after },
            _ => Self::from_status(status, Some(parsed.code), parsed.message, retry_after),
        }
    }

    fn from_oauth(status: u16, oauth: OAuthError, retry_after: Option<Duration>) -> Self {
        let message = oauth.error_description.unwrap_or_else(|| oauth.error.clone());
        match (status, oauth.error.as_str()) {
            (500..=599, _) | (_, "temporarily_unavailable") => {
                Self::Retryable { status: Some(status), message, retry_after }
            }
            (429, _) => Self::RateLimited { retry_after },
            (400 | 401 | 403, _) => Self::Auth { status, code: oauth.error, message },
            _ => Self::Other { status: Some(status), code: Some(oauth.error), message },
        }
    }

    fn from_status(status: u16, code: Option<String>, message: String, retry_after: Option<Duration>) -> Self {
        match status {
            401 | 403 => Self::Auth { status, code: code.unwrap_or_default(), message },
            404 => Self::NotFound { message },
            429 => Self::RateLimited { retry_after },
            202 | 409 | 500..=599 => Self::Retryable { status: Some(status), message, retry_after },
            _ => Self::Other { status: Some(status), code, message },
        }
    }

    /// Classifies a failure to get an answer at all.
    pub(crate) fn from_transport(error: &reqwest::Error) -> Self {
        let message = error_chain(error);
        if error.is_timeout() || error.is_connect() || error.is_request() || error.is_body() {
            Self::Retryable { status: None, message, retry_after: None }
        } else {
            Self::Other { status: error.status().map(|s| s.as_u16()), code: None, message }
        }
    }

    /// Whether this is the 401 that a fresh token cures.
    pub(crate) fn is_stale_token(&self) -> bool {
        matches!(self, Self::Auth { status: 401, code, .. }
            if code.eq_ignore_ascii_case("ExpiredAccessToken") || code.eq_ignore_ascii_case("InvalidAccessToken"))
    }
}

/// The error and its sources, outermost first.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let causes: Vec<String> =
        std::iter::successors(Some(error), |cause| cause.source()).map(|e| e.to_string()).collect();
    causes.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> DwollaError {
        DwollaError::from_response(status, body.as_bytes(), None)
    }

    #[test]
    fn codes_and_statuses_map_to_their_classes() {
        assert!(matches!(
            classify(403, r#"{"code":"InvalidResourceState","message":"m"}"#),
            DwollaError::InvalidResourceState { .. }
        ));
        assert!(matches!(
            classify(403, r#"{"code":"Forbidden","message":"m"}"#),
            DwollaError::Auth { status: 403, .. }
        ));
        assert!(classify(401, r#"{"code":"ExpiredAccessToken","message":"m"}"#).is_stale_token());
        assert!(matches!(classify(401, r#"{"error":"invalid_client"}"#), DwollaError::Auth { .. }));
        assert!(matches!(classify(404, r#"{"code":"NotFound","message":"m"}"#), DwollaError::NotFound { .. }));
        assert!(classify(503, "<html>down</html>").is_retryable());
        assert!(classify(409, r#"{"code":"Conflict","message":"m"}"#).is_retryable());
        assert!(!classify(406, r#"{"code":"InvalidVersion","message":"m"}"#).is_retryable());
    }

    #[test]
    fn every_class_is_one_provider_failure() {
        let wait = Some(Duration::from_secs(4));
        let failure = |status: u16, body: &str| DwollaError::from_response(status, body.as_bytes(), wait).failure();
        let refused = [
            (400, r#"{"code":"ValidationError","message":"m","_embedded":{"errors":[]}}"#),
            (400, r#"{"code":"DuplicateResource","message":"m"}"#),
            (403, r#"{"code":"InvalidResourceState","message":"m"}"#),
            (400, r#"{"code":"BadRequest","message":"m"}"#),
            (406, r#"{"code":"InvalidVersion","message":"m"}"#),
        ];
        for (status, body) in refused {
            assert_eq!(failure(status, body), ProviderFailure::Refused, "{status} {body}");
        }
        assert_eq!(failure(404, r#"{"code":"NotFound","message":"m"}"#), ProviderFailure::NotFound);
        assert_eq!(failure(401, r#"{"code":"InvalidAccessToken","message":"m"}"#), ProviderFailure::Auth);
        assert_eq!(failure(403, r#"{"code":"Forbidden","message":"m"}"#), ProviderFailure::Auth);
        assert_eq!(failure(401, r#"{"error":"invalid_client"}"#), ProviderFailure::Auth);
        assert_eq!(
            failure(429, r#"{"code":"TooManyRequests","message":"m"}"#),
            ProviderFailure::RateLimited { retry_after: wait }
        );
        assert_eq!(failure(429, r#"{"error":"slow_down"}"#), ProviderFailure::RateLimited { retry_after: wait });
        assert_eq!(failure(503, "<html>down</html>"), ProviderFailure::Transient { retry_after: wait });
        assert_eq!(
            failure(409, r#"{"code":"Conflict","message":"m"}"#),
            ProviderFailure::Transient { retry_after: wait }
        );
        assert_eq!(
            failure(202, r#"{"code":"TryAgainLater","message":"m"}"#),
            ProviderFailure::Transient { retry_after: wait }
        );
    }

    #[test]
    fn an_embedded_duplicate_is_a_duplicate_with_the_existing_link() {
        let body = r#"{"code":"ValidationError","message":"Validation error(s) present.","_embedded":{"errors":[
            {"code":"Duplicate","message":"A customer with the specified email already exists.","path":"/email",
             "_links":{"about":{"href":"https://api.dwolla.com/customers/c1"}}}]}}"#;
        let DwollaError::Duplicate { existing, .. } = classify(400, body) else { panic!("not a duplicate") };
        assert_eq!(existing.as_deref(), Some("https://api.dwolla.com/customers/c1"));
    }
}
