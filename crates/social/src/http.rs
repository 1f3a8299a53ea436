//! What the three clients share: building the reqwest client, appending
//! paths to base URLs, sending with logging, and reading bodies.

use std::time::{Duration, Instant};

use reqwest::RequestBuilder;
use serde::de::DeserializeOwned;
use url::Url;

use crate::SocialError;

pub(crate) type Result<T> = std::result::Result<T, SocialError>;

pub(crate) fn client(provider: &str, timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // A redirect from a token endpoint is never part of these flows.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| SocialError::invalid(format!("{provider}: could not build the http client: {e}")))
}

/// Refuses a configured URL that cannot be requested.
pub(crate) fn check_url(provider: &str, what: &str, url: &Url) -> Result<()> {
    if matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base() {
        Ok(())
    } else {
        Err(SocialError::invalid(format!("{provider}: {what} must be an http(s) url, got {url}")))
    }
}

/// `base` with `segments` appended, each percent-encoded; a trailing slash
/// of `base` does not double up.
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// A response of any status, read to the end.
pub(crate) struct Reply {
    pub status: u16,
    pub body: bytes::Bytes,
    /// The answer's `Retry-After`, as a delay from when it came.
    pub retry_after: Option<std::time::Duration>,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json<T: DeserializeOwned>(&self, provider: &str) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| SocialError::invalid(format!("{provider}: unreadable response ({}): {e}", self.status)))
    }

    pub fn form<T: DeserializeOwned>(&self, provider: &str) -> Result<T> {
        serde_urlencoded::from_bytes(&self.body)
            .map_err(|e| SocialError::invalid(format!("{provider}: unreadable response ({}): {e}", self.status)))
    }

    /// The start of the body as text, for an error without a known shape.
    pub fn text_excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            reqwest::StatusCode::from_u16(self.status)
                .ok()
                .and_then(|status| status.canonical_reason())
                .unwrap_or("error")
                .to_owned()
        } else {
            trimmed.chars().take(200).collect()
        }
    }
}

/// Sends the request and reads the whole body. Only transport failures are
/// errors here; each client reads its provider's error bodies itself.
/// Logs the method, path and status, never the query (codes, tokens).
pub(crate) async fn send(provider: &str, http: &reqwest::Client, request: RequestBuilder) -> Result<Reply> {
    let request = request.build().map_err(|e| SocialError::from_transport(provider, &e))?;
    let method = request.method().clone();
    let path = request.url().path().to_owned();
    let operation = operation(&method, request.url());
    let started = Instant::now();
    let elapsed_ms = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let sent = http.execute(request).await;
    donkies_outbound::record(
        provider,
        operation,
        donkies_outbound::outcome(sent.as_ref().map(reqwest::Response::status)),
        started,
    );
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            let error = SocialError::from_transport(provider, &error);
            tracing::warn!(provider, %method, %path, elapsed_ms = elapsed_ms(), %error, "sign-in provider request failed");
            return Err(error);
        }
    };
    let status = response.status().as_u16();
    let retry_after = donkies_outbound::retry_after(response.headers());
    let body = response.bytes().await.map_err(|e| SocialError::from_transport(provider, &e))?;
    tracing::debug!(provider, %method, %path, status, elapsed_ms = elapsed_ms(), "sign-in provider request");
    Ok(Reply { status, body, retry_after })
}

/// `METHOD endpoint`, the endpoint being the last segment of the path: every URL these flows
/// call ends in a fixed name (`access_token`, `me`, `token`, `certs`, `request_token`,
/// `verify_credentials.json`), never an id.
fn operation(method: &reqwest::Method, url: &Url) -> String {
    let endpoint = url.path_segments().and_then(|mut segments| segments.rfind(|s| !s.is_empty())).unwrap_or("");
    format!("{method} {endpoint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_appended_to_the_base_path() {
        let base = Url::parse("http://127.0.0.1:9/facebook/").unwrap();
        assert_eq!(join(&base, &["v2.8", "me"]).as_str(), "http://127.0.0.1:9/facebook/v2.8/me");
        let base = Url::parse("https://graph.facebook.com").unwrap();
        assert_eq!(
            join(&base, &["v2.8", "oauth", "access_token"]).as_str(),
            "https://graph.facebook.com/v2.8/oauth/access_token"
        );
    }

    #[test]
    fn operations_are_the_endpoint_never_a_query() {
        let url = Url::parse("http://127.0.0.1:9/facebook/v2.8/oauth/access_token?code=secret").unwrap();
        assert_eq!(operation(&reqwest::Method::GET, &url), "GET access_token");
        let url = Url::parse("https://www.googleapis.com/oauth2/v3/certs/").unwrap();
        assert_eq!(operation(&reqwest::Method::GET, &url), "GET certs");
    }

    #[test]
    fn only_http_urls_are_accepted() {
        let url = Url::parse("mailto:a@b.c").unwrap();
        assert!(check_url("p", "graph_url", &url).is_err());
        let url = Url::parse("https://graph.facebook.com").unwrap();
        assert!(check_url("p", "graph_url", &url).is_ok());
    }
}
