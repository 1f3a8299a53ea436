//! Every call a provider client makes (Atrium, Dwolla, the sign-in providers), counted and timed
//! in the process's metrics — the `metrics` facade: a no-op unless the process installed a
//! recorder, as `donkies serve` does. One place, so every client labels its calls alike.
//! And the one model of their failures, [`ProviderFailure`], with the `Retry-After` they send.

mod failure;

pub use failure::{ProviderFailure, parse_retry_after, retry_after};

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use url::Url;

/// What every call to a provider passes first: how fast calls may go out, shared by whoever
/// shares the gate (in `donkies serve` and `donkies worker`, every process on the database).
pub trait Gate: Send + Sync + 'static {
    /// Wait until a call may go out.
    fn admit(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// The provider answered `429` and asked for `wait` (its `Retry-After`) before the next call.
    fn hold_off(&self, wait: Duration);
}

/// No limit: every call goes out at once.
pub struct Open;

impl Gate for Open {
    fn admit(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::ready(()))
    }
    fn hold_off(&self, _wait: Duration) {}
}

/// `METHOD /users/{id}/members`: the path below the base URL with every second segment (the ids
/// of REST paths shaped `/collection/{id}/collection/{id}`) replaced, so that the label has a few
/// values and never an id.
pub fn rest_operation(method: &Method, base: &Url, url: &Url) -> String {
    let path = url.path().strip_prefix(base.path().trim_end_matches('/')).unwrap_or(url.path());
    let template: Vec<&str> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .enumerate()
        .map(|(i, segment)| if i % 2 == 1 { "{id}" } else { segment })
        .collect();
    format!("{method} /{}", template.join("/"))
}

/// What became of a call: `ok`, `rate_limited`, `client_error`, `server_error`, `timeout` or
/// `unreachable`.
pub fn outcome(result: Result<StatusCode, &reqwest::Error>) -> &'static str {
    match result {
        Ok(status) if status == StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        Ok(status) if status.is_client_error() => "client_error",
        Ok(status) if status.is_server_error() => "server_error",
        Ok(_) => "ok",
        Err(error) if error.is_timeout() => "timeout",
        Err(_) => "unreachable",
    }
}

/// Count and time one call of `provider`.
pub fn record(provider: &str, operation: String, outcome: &'static str, started: Instant) {
    let elapsed = started.elapsed().as_secs_f64();
    let provider = provider.to_owned();
    metrics::counter!("donkies_outside_calls_total",
        "provider" => provider.clone(), "operation" => operation.clone(), "outcome" => outcome)
    .increment(1);
    metrics::histogram!("donkies_outside_call_duration_seconds", "provider" => provider, "operation" => operation)
        .record(elapsed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_name_the_route_never_an_id() {
        let base = Url::parse("http://127.0.0.1:9/atrium/").unwrap();
        let url = Url::parse("http://127.0.0.1:9/atrium/users/USR-1/members/MBR-2/resume").unwrap();
        assert_eq!(rest_operation(&Method::PUT, &base, &url), "PUT /users/{id}/members/{id}/resume");
        let base = Url::parse("https://vestibule.mx.com").unwrap();
        let url = Url::parse("https://vestibule.mx.com/institutions?name=x").unwrap();
        assert_eq!(rest_operation(&Method::GET, &base, &url), "GET /institutions");
        let base = Url::parse("http://127.0.0.1:9/__sandbox/dwolla/").unwrap();
        let url = Url::parse("http://127.0.0.1:9/__sandbox/dwolla/funding-sources/fs-1/micro-deposits").unwrap();
        assert_eq!(rest_operation(&Method::POST, &base, &url), "POST /funding-sources/{id}/micro-deposits");
        let base = Url::parse("https://api-sandbox.dwolla.com").unwrap();
        assert_eq!(rest_operation(&Method::GET, &base, &base), "GET /");
    }

    #[test]
    fn outcomes_follow_the_status() {
        assert_eq!(outcome(Ok(StatusCode::OK)), "ok");
        assert_eq!(outcome(Ok(StatusCode::TOO_MANY_REQUESTS)), "rate_limited");
        assert_eq!(outcome(Ok(StatusCode::NOT_FOUND)), "client_error");
        assert_eq!(outcome(Ok(StatusCode::SERVICE_UNAVAILABLE)), "server_error");
    }
}
