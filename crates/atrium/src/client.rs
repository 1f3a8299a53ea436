use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use donkies_outbound::{Gate, Open};
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::aggregator::{Aggregator, DateRange, Page, PageRequest, Result};
use crate::wire::{self, *};
use crate::{AtriumError, ExposeSecret, SecretString};

/// Where Atrium is and how we identify ourselves to it.
#[derive(Clone, Debug)]
pub struct AtriumConfig {
    /// `https://atrium.mx.com`, `https://vestibule.mx.com`, or a simulator.
    pub base_url: Url,
    pub client_id: String,
    pub api_key: SecretString,
    /// Limit for a whole request, from connecting to the last body byte.
    pub timeout: Duration,
}

impl AtriumConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    pub fn new(base_url: Url, client_id: impl Into<String>, api_key: impl Into<SecretString>) -> Self {
        Self { base_url, client_id: client_id.into(), api_key: api_key.into(), timeout: Self::DEFAULT_TIMEOUT }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// The Atrium HTTP client. Cheap to clone; clones share a connection pool.
#[derive(Clone)]
pub struct AtriumClient {
    http: reqwest::Client,
    base_url: Url,
    client_id: String,
    timeout: Duration,
    /// Every call waits here first.
    gate: Arc<dyn Gate>,
}

impl fmt::Debug for AtriumClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtriumClient")
            .field("base_url", &self.base_url.as_str())
            .field("client_id", &self.client_id)
            .field("api_key", &"***")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl AtriumClient {
    pub fn new(config: AtriumConfig) -> Result<Self> {
        let invalid = |message: String| AtriumError::Other { status: None, message };
        if !matches!(config.base_url.scheme(), "http" | "https") || config.base_url.cannot_be_a_base() {
            return Err(invalid(format!("atrium base url must be an http(s) url, got {}", config.base_url)));
        }

        let mut api_key = HeaderValue::from_str(config.api_key.expose_secret())
            .map_err(|_| invalid("atrium api key is not a valid header value".into()))?;
        api_key.set_sensitive(true);
        let client_id = HeaderValue::from_str(&config.client_id)
            .map_err(|_| invalid("atrium client id is not a valid header value".into()))?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(wire::MEDIA_TYPE));
        headers.insert(HeaderName::from_static("mx-api-key"), api_key);
        headers.insert(HeaderName::from_static("mx-client-id"), client_id);

        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| invalid(format!("could not build the http client: {e}")))?;

        Ok(Self {
            http,
            base_url: config.base_url,
            client_id: config.client_id,
            timeout: config.timeout,
            gate: Arc::new(Open),
        })
    }

    /// Send every call through `gate` (a rate limit), and tell it of each `Retry-After`.
    pub fn with_gate(mut self, gate: Arc<dyn Gate>) -> Self {
        self.gate = gate;
        self
    }

    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The base URL with `segments` appended, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn get(&self, segments: &[&str]) -> RequestBuilder {
        self.http.get(self.url(segments))
    }

    /// Sends the request; a non-2xx answer becomes a classified error.
    async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let request = request.build().map_err(|e| AtriumError::from_transport(&e))?;
        let method = request.method().clone();
        let path = request.url().path().to_owned();
        let operation = donkies_outbound::rest_operation(&method, &self.base_url, request.url());
        self.gate.admit().await;
        let started = Instant::now();
        let sent = self.http.execute(request).await;
        donkies_outbound::record(
            "atrium",
            operation,
            donkies_outbound::outcome(sent.as_ref().map(Response::status)),
            started,
        );
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                let error = AtriumError::from_transport(&error);
                tracing::warn!(%method, %path, elapsed_ms = started.elapsed().as_millis() as u64, %error, "atrium request failed");
                return Err(error);
            }
        };
        let status = response.status();
        tracing::debug!(%method, %path, status = status.as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "atrium request");
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = donkies_outbound::retry_after(response.headers());
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.gate.hold_off(retry_after.unwrap_or(Duration::from_secs(1)));
        }
        let body = response.text().await.unwrap_or_default();
        let error = AtriumError::from_status(status.as_u16(), error_message(status, &body), retry_after);
        tracing::warn!(%method, %path, status = status.as_u16(), %error, "atrium answered with an error");
        Err(error)
    }

    async fn fetch<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let response = self.send(request).await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| AtriumError::from_transport(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| AtriumError::Other {
            status: Some(status),
            message: format!("unreadable atrium response: {e}"),
        })
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, segments: &[&str], body: &B) -> Result<T> {
        self.fetch(self.http.post(self.url(segments)).json(body)).await
    }

    async fn put<B: Serialize, T: DeserializeOwned>(&self, segments: &[&str], body: &B) -> Result<T> {
        self.fetch(self.http.put(self.url(segments)).json(body)).await
    }

    async fn delete(&self, segments: &[&str]) -> Result<()> {
        self.send(self.http.delete(self.url(segments))).await?;
        Ok(())
    }
}

/// The server's message from `{"error": {"message"}}` (or `{"error": "…"}`),
/// else the start of the raw body.
fn error_message(status: StatusCode, body: &str) -> String {
    if let Ok(parsed) = serde_json::from_str::<ErrorBody>(body) {
        return parsed.error.message;
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(body)
        && let Some(serde_json::Value::String(message)) = map.get("error")
    {
        return message.clone();
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return status.canonical_reason().unwrap_or("error").to_owned();
    }
    trimmed.chars().take(200).collect()
}

fn page_query(page: PageRequest) -> PageQuery {
    PageQuery { page: Some(page.page), records_per_page: Some(page.records_per_page) }
}

fn transaction_query(range: DateRange, page: PageRequest) -> TransactionQuery {
    TransactionQuery {
        from_date: range.from,
        to_date: range.to,
        page: Some(page.page),
        records_per_page: Some(page.records_per_page),
    }
}

#[async_trait]
impl Aggregator for AtriumClient {
    async fn create_user(&self, user: &NewUser) -> Result<User> {
        let body = NewUserBody { user: user.clone() };
        let reply: UserBody = self.post(&["users"], &body).await?;
        Ok(reply.user)
    }

    async fn read_user(&self, user_guid: &str) -> Result<User> {
        let reply: UserBody = self.fetch(self.get(&["users", user_guid])).await?;
        Ok(reply.user)
    }

    async fn update_user(&self, user_guid: &str, user: &NewUser) -> Result<User> {
        let body = NewUserBody { user: user.clone() };
        let reply: UserBody = self.put(&["users", user_guid], &body).await?;
        Ok(reply.user)
    }

    async fn delete_user(&self, user_guid: &str) -> Result<()> {
        self.delete(&["users", user_guid]).await
    }

    async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
        let reply: UsersBody = self.fetch(self.get(&["users"]).query(&page_query(page))).await?;
        Ok(Page { items: reply.users, pagination: reply.pagination })
    }

    async fn list_institutions(&self, name: Option<&str>, page: PageRequest) -> Result<Page<Institution>> {
        let query = InstitutionQuery {
            name: name.map(str::to_owned),
            page: Some(page.page),
            records_per_page: Some(page.records_per_page),
        };
        let reply: InstitutionsBody = self.fetch(self.get(&["institutions"]).query(&query)).await?;
        Ok(Page { items: reply.institutions, pagination: reply.pagination })
    }

    async fn read_institution(&self, code: &str) -> Result<Institution> {
        let reply: InstitutionBody = self.fetch(self.get(&["institutions", code])).await?;
        Ok(reply.institution)
    }

    async fn list_institution_credentials(&self, code: &str) -> Result<Vec<Credential>> {
        let reply: CredentialsBody = self.fetch(self.get(&["institutions", code, "credentials"])).await?;
        Ok(reply.credentials)
    }

    async fn create_member(&self, user_guid: &str, member: &NewMember) -> Result<Member> {
        let body = NewMemberBody { member: member.clone() };
        let reply: MemberBody = self.post(&["users", user_guid, "members"], &body).await?;
        Ok(reply.member)
    }

    async fn read_member(&self, user_guid: &str, member_guid: &str) -> Result<Member> {
        let reply: MemberBody = self.fetch(self.get(&["users", user_guid, "members", member_guid])).await?;
        Ok(reply.member)
    }

    async fn read_member_status(&self, user_guid: &str, member_guid: &str) -> Result<MemberConnectionStatus> {
        let reply: MemberStatusBody =
            self.fetch(self.get(&["users", user_guid, "members", member_guid, "status"])).await?;
        Ok(reply.member)
    }

    async fn update_member(&self, user_guid: &str, member_guid: &str, update: &MemberUpdate) -> Result<Member> {
        let body = MemberUpdateBody { member: update.clone() };
        let reply: MemberBody = self.put(&["users", user_guid, "members", member_guid], &body).await?;
        Ok(reply.member)
    }

    async fn aggregate_member(&self, user_guid: &str, member_guid: &str) -> Result<Member> {
        let url = self.url(&["users", user_guid, "members", member_guid, "aggregate"]);
        let reply: MemberBody = self.fetch(self.http.post(url)).await?;
        Ok(reply.member)
    }

    async fn resume_member(&self, user_guid: &str, member_guid: &str, answers: &[ChallengeAnswer]) -> Result<Member> {
        let body = ResumeMemberBody { member: ResumeMember { challenges: answers.to_vec() } };
        let reply: MemberBody = self.put(&["users", user_guid, "members", member_guid, "resume"], &body).await?;
        Ok(reply.member)
    }

    async fn list_member_challenges(&self, user_guid: &str, member_guid: &str) -> Result<Vec<Challenge>> {
        let request = self.get(&["users", user_guid, "members", member_guid, "challenges"]);
        let response = self.send(request).await?;
        // 204 No Content: the member is not challenged.
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(Vec::new());
        }
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| AtriumError::from_transport(&e))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let reply: ChallengesBody = serde_json::from_slice(&bytes).map_err(|e| AtriumError::Other {
            status: Some(status),
            message: format!("unreadable atrium response: {e}"),
        })?;
        Ok(reply.challenges)
    }

    async fn delete_member(&self, user_guid: &str, member_guid: &str) -> Result<()> {
        self.delete(&["users", user_guid, "members", member_guid]).await
    }

    async fn list_members(&self, user_guid: &str, page: PageRequest) -> Result<Page<Member>> {
        let reply: MembersBody =
            self.fetch(self.get(&["users", user_guid, "members"]).query(&page_query(page))).await?;
        Ok(Page { items: reply.members, pagination: reply.pagination })
    }

    async fn list_accounts(&self, user_guid: &str, page: PageRequest) -> Result<Page<Account>> {
        let reply: AccountsBody =
            self.fetch(self.get(&["users", user_guid, "accounts"]).query(&page_query(page))).await?;
        Ok(Page { items: reply.accounts, pagination: reply.pagination })
    }

    async fn list_member_accounts(
        &self,
        user_guid: &str,
        member_guid: &str,
        page: PageRequest,
    ) -> Result<Page<Account>> {
        let request = self.get(&["users", user_guid, "members", member_guid, "accounts"]).query(&page_query(page));
        let reply: AccountsBody = self.fetch(request).await?;
        Ok(Page { items: reply.accounts, pagination: reply.pagination })
    }

    async fn list_transactions(
        &self,
        user_guid: &str,
        range: DateRange,
        page: PageRequest,
    ) -> Result<Page<Transaction>> {
        let request = self.get(&["users", user_guid, "transactions"]).query(&transaction_query(range, page));
        let reply: TransactionsBody = self.fetch(request).await?;
        Ok(Page { items: reply.transactions, pagination: reply.pagination })
    }

    async fn list_member_transactions(
        &self,
        user_guid: &str,
        member_guid: &str,
        range: DateRange,
        page: PageRequest,
    ) -> Result<Page<Transaction>> {
        let request = self
            .get(&["users", user_guid, "members", member_guid, "transactions"])
            .query(&transaction_query(range, page));
        let reply: TransactionsBody = self.fetch(request).await?;
        Ok(Page { items: reply.transactions, pagination: reply.pagination })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> AtriumClient {
        AtriumClient::new(AtriumConfig::new(Url::parse(base).unwrap(), "client", "very-secret-key")).unwrap()
    }

    #[test]
    fn debug_output_never_shows_the_api_key() {
        let config = AtriumConfig::new(Url::parse("https://vestibule.mx.com").unwrap(), "client", "very-secret-key");
        assert!(!format!("{config:?}").contains("very-secret-key"));
        assert!(!format!("{:?}", client("https://vestibule.mx.com")).contains("very-secret-key"));
    }

    #[test]
    fn paths_are_appended_to_the_base_url_and_encoded() {
        let url = client("http://127.0.0.1:9/atrium/").url(&["users", "USR-1/x", "members"]);
        assert_eq!(url.as_str(), "http://127.0.0.1:9/atrium/users/USR-1%2Fx/members");
        let url = client("https://atrium.mx.com").url(&["institutions"]);
        assert_eq!(url.as_str(), "https://atrium.mx.com/institutions");
    }

    #[test]
    fn error_messages_come_from_the_atrium_body() {
        let status = StatusCode::CONFLICT;
        assert_eq!(error_message(status, r#"{"error":{"message":"already exists"}}"#), "already exists");
        assert_eq!(error_message(status, r#"{"error":"plain"}"#), "plain");
        assert_eq!(error_message(status, ""), "Conflict");
    }

    #[test]
    fn a_non_http_base_url_is_refused() {
        let config = AtriumConfig::new(Url::parse("mailto:x@y.z").unwrap(), "c", "k");
        assert!(AtriumClient::new(config).is_err());
    }
}
