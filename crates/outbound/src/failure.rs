//! One model of a provider's failure. Every client's error (Atrium, Dwolla, the sign-in
//! providers) classifies itself into a [`ProviderFailure`], variant by variant and without a
//! catch-all arm; services and the job worker decide what to do from this type alone.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// What a failed call to a provider means for whoever made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderFailure {
    /// The provider failed or could not be reached (a 5xx, a timeout, a refused connection, an
    /// answer that says "try again later"): the same request may succeed later, after
    /// `retry_after` when the provider said how long.
    Transient { retry_after: Option<Duration> },
    /// 429: we called too often; the same request succeeds once we slow down, after
    /// `retry_after` when the provider said how long.
    RateLimited { retry_after: Option<Duration> },
    /// The provider refused our credentials (key, secret or token): an operator has to fix the
    /// configuration, after which the same request succeeds.
    Auth,
    /// The provider has no such resource.
    NotFound,
    /// The provider refused the request itself (invalid, a conflict, the resource's state) or
    /// answered something we cannot read: sending it again cannot help.
    Refused,
}

impl ProviderFailure {
    /// The failure a bare HTTP status means, for answers whose body says nothing more.
    pub fn from_status(status: u16, retry_after: Option<Duration>) -> ProviderFailure {
        match status {
            401 | 403 => ProviderFailure::Auth,
            404 | 410 => ProviderFailure::NotFound,
            429 => ProviderFailure::RateLimited { retry_after },
            408 | 500..=599 => ProviderFailure::Transient { retry_after },
            _ => ProviderFailure::Refused,
        }
    }

    /// Whether the same request may succeed later with nobody changing anything: an outage or
    /// a rate limit passes by itself.
    #[deny(clippy::wildcard_enum_match_arm)]
    pub fn is_retryable(self) -> bool {
        match self {
            ProviderFailure::Transient { .. } | ProviderFailure::RateLimited { .. } => true,
            ProviderFailure::Auth | ProviderFailure::NotFound | ProviderFailure::Refused => false,
        }
    }

    /// How long the provider asked us to wait before trying again, when it said.
    #[deny(clippy::wildcard_enum_match_arm)]
    pub fn retry_after(self) -> Option<Duration> {
        match self {
            ProviderFailure::Transient { retry_after } | ProviderFailure::RateLimited { retry_after } => retry_after,
            ProviderFailure::Auth | ProviderFailure::NotFound | ProviderFailure::Refused => None,
        }
    }
}

/// The `Retry-After` of an answer, as a delay from now: delay-seconds or an HTTP-date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now())
}

/// `Retry-After` (RFC 9110 §10.2.3) read at `now`: `120`, or `Wed, 21 Oct 2015 07:28:00 GMT`
/// (a date already past is no delay at all).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_their_failures() {
        let wait = Some(Duration::from_secs(3));
        assert_eq!(ProviderFailure::from_status(401, wait), ProviderFailure::Auth);
        assert_eq!(ProviderFailure::from_status(403, wait), ProviderFailure::Auth);
        assert_eq!(ProviderFailure::from_status(404, wait), ProviderFailure::NotFound);
        assert_eq!(ProviderFailure::from_status(429, wait), ProviderFailure::RateLimited { retry_after: wait });
        assert_eq!(ProviderFailure::from_status(503, wait), ProviderFailure::Transient { retry_after: wait });
        assert_eq!(ProviderFailure::from_status(400, wait), ProviderFailure::Refused);
        assert_eq!(ProviderFailure::from_status(422, None), ProviderFailure::Refused);
        assert!(ProviderFailure::from_status(429, None).is_retryable());
        assert!(!ProviderFailure::Auth.is_retryable());
        assert_eq!(ProviderFailure::RateLimited { retry_after: wait }.retry_after(), wait);
        assert_eq!(ProviderFailure::Refused.retry_after(), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 1 ", now), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now), Some(Duration::from_secs(90)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    }
}
