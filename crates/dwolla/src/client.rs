use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use donkies_domain::Cents;
use donkies_outbound::{Gate, Open};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use url::Url;

use crate::rail::{Page, PaymentRail, Result, TransferDestination, TransferRequest};
use crate::wire::{self, *};
use crate::{DwollaError, ExposeSecret, SecretString};

/// Where Dwolla is and the application key and secret we authenticate with.
#[derive(Clone, Debug)]
pub struct DwollaConfig {
    /// `https://api.dwolla.com`, `https://api-sandbox.dwolla.com`, or a simulator.
    pub base_url: Url,
    pub key: String,
    pub secret: SecretString,
    /// Limit for a whole request, from connecting to the last body byte.
    pub timeout: Duration,
}

impl DwollaConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    pub const SANDBOX_URL: &str = "https://api-sandbox.dwolla.com";
    pub const PRODUCTION_URL: &str = "https://api.dwolla.com";

    pub fn new(base_url: Url, key: impl Into<String>, secret: impl Into<SecretString>) -> Self {
        Self { base_url, key: key.into(), secret: secret.into(), timeout: Self::DEFAULT_TIMEOUT }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// An application token and when to replace it.
struct CachedToken {
    value: SecretString,
    renew_at: Instant,
}

/// The Dwolla HTTP client. Cheap to clone; clones share the connection pool
/// and the application token.
#[derive(Clone)]
pub struct DwollaClient {
    http: reqwest::Client,
    base_url: Url,
    /// `Basic base64(key:secret)` for the token endpoint.
    basic_auth: HeaderValue,
    /// One lock around the cached token: whoever finds it stale renews it
    /// while the others wait, so concurrent callers cause one renewal.
    token: Arc<Mutex<Option<CachedToken>>>,
    /// Every request waits here first.
    gate: Arc<dyn Gate>,
}

impl fmt::Debug for DwollaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DwollaClient").field("base_url", &self.base_url.as_str()).finish_non_exhaustive()
    }
}

/// The longest time before expiry at which a token is renewed; short-lived
/// tokens are renewed when a tenth of their life is left.
const RENEWAL_MARGIN: Duration = Duration::from_secs(60);

impl DwollaClient {
    pub fn new(config: DwollaConfig) -> Result<Self> {
        if !matches!(config.base_url.scheme(), "http" | "https") || config.base_url.cannot_be_a_base() {
            return Err(DwollaError::config(format!(
                "dwolla base url must be an http(s) url, got {}",
                config.base_url
            )));
        }
        let credentials = BASE64.encode(format!("{}:{}", config.key, config.secret.expose_secret()));
        let mut basic_auth = HeaderValue::from_str(&format!("Basic {credentials}"))
            .map_err(|_| DwollaError::config("dwolla key is not a valid header value"))?;
        basic_auth.set_sensitive(true);

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(wire::MEDIA_TYPE));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| DwollaError::config(format!("could not build the http client: {e}")))?;
        Ok(Self {
            http,
            base_url: config.base_url,
            basic_auth,
            token: Arc::new(Mutex::new(None)),
            gate: Arc::new(Open),
        })
    }

    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The base URL with `segments` appended, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        url.path_segments_mut().expect("new() checked the url can be a base").pop_if_empty().extend(segments);
        url
    }

    /// The URL Dwolla names a customer by, as transfers and links need it.
    pub fn customer_url(&self, customer_id: &str) -> Url {
        self.url(&["customers", customer_id])
    }

    pub fn funding_source_url(&self, funding_source_id: &str) -> Url {
        self.url(&["funding-sources", funding_source_id])
    }

    pub fn account_url(&self, account_id: &str) -> Url {
        self.url(&["accounts", account_id])
    }

    // -----------------------------------------------------------------------
    // Token

    /// The cached token, or a new one when it is missing or about to expire.
    async fn access_token(&self) -> Result<SecretString> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref()
            && Instant::now() < token.renew_at
        {
            return Ok(token.value.clone());
        }
        let fresh = self.request_token().await?;
        let value = fresh.value.clone();
        *slot = Some(fresh);
        Ok(value)
    }

    /// A token to replace `rejected`, which Dwolla answered 401. When another
    /// caller has renewed it meanwhile, that token is used as is.
    async fn renew_token(&self, rejected: &SecretString) -> Result<SecretString> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref()
            && token.value.expose_secret() != rejected.expose_secret()
        {
            return Ok(token.value.clone());
        }
        let fresh = self.request_token().await?;
        let value = fresh.value.clone();
        *slot = Some(fresh);
        Ok(value)
    }

    async fn request_token(&self) -> Result<CachedToken> {
        let form = TokenRequest { grant_type: "client_credentials".into(), ..TokenRequest::default() };
        let body = serde_urlencoded::to_string(&form).map_err(|e| DwollaError::config(e.to_string()))?;
        let request = self
            .http
            .post(self.url(&["token"]))
            .header(AUTHORIZATION, self.basic_auth.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        let started = Instant::now();
        let response = self.execute_metered(request).await.map_err(|e| DwollaError::from_transport(&e))?;
        let response = check(response).await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| DwollaError::from_transport(&e))?;
        let token: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| DwollaError::unreadable(status, e))?;
        let lifetime = Duration::from_secs(token.expires_in);
        tracing::debug!(
            expires_in = token.expires_in,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "dwolla token"
        );
        Ok(CachedToken { value: token.access_token, renew_at: started + lifetime - RENEWAL_MARGIN.min(lifetime / 10) })
    }

    // -----------------------------------------------------------------------
    // Requests

    /// Sends a request with the application token; a 401 for an expired or
    /// invalid token renews it once and sends the request once more.
    async fn execute(&self, method: Method, url: Url, body: Option<Vec<u8>>, key: Option<&str>) -> Result<Response> {
        let token = self.access_token().await?;
        match self.send_once(&method, &url, body.as_deref(), key, &token).await {
            Err(error) if error.is_stale_token() => {
                tracing::info!(%error, "dwolla refused our token; renewing it");
                let token = self.renew_token(&token).await?;
                self.send_once(&method, &url, body.as_deref(), key, &token).await
            }
            other => other,
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&[u8]>,
        key: Option<&str>,
        token: &SecretString,
    ) -> Result<Response> {
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| DwollaError::config("dwolla token is not a valid header value"))?;
        bearer.set_sensitive(true);
        let mut request = self.http.request(method.clone(), url.clone()).header(AUTHORIZATION, bearer);
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, wire::MEDIA_TYPE).body(body.to_vec());
        }
        if let Some(key) = key {
            request = request.header(wire::IDEMPOTENCY_KEY_HEADER, key);
        }
        let started = Instant::now();
        let response = match self.execute_metered(request).await {
            Ok(response) => response,
            Err(error) => {
                let error = DwollaError::from_transport(&error);
                tracing::warn!(%method, path = url.path(), %error, "dwolla request failed");
                return Err(error);
            }
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(%method, path = url.path(), status = response.status().as_u16(), elapsed_ms, "dwolla request");
        check(response).await.inspect_err(|error| tracing::warn!(%method, path = url.path(), %error, "dwolla error"))
    }

    /// Every request to Dwolla goes out here, counted and timed by operation and outcome.
    async fn execute_metered(&self, request: RequestBuilder) -> reqwest::Result<Response> {
        let request = request.build()?;
        let operation = donkies_outbound::rest_operation(request.method(), &self.base_url, request.url());
        self.gate.admit().await;
        let started = Instant::now();
        let sent = self.http.execute(request).await;
        donkies_outbound::record(
            "dwolla",
            operation,
            donkies_outbound::outcome(sent.as_ref().map(Response::status)),
            started,
        );
        if let Ok(response) = &sent
            && response.status() == StatusCode::TOO_MANY_REQUESTS
        {
            let wait = donkies_outbound::retry_after(response.headers()).unwrap_or(Duration::from_secs(1));
            self.gate.hold_off(wait);
        }
        sent
    }

    /// Send every request through `gate` (a rate limit), and tell it of each `Retry-After`.
    pub fn with_gate(mut self, gate: Arc<dyn Gate>) -> Self {
        self.gate = gate;
        self
    }

    async fn read<T: DeserializeOwned>(response: Response) -> Result<T> {
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| DwollaError::from_transport(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| DwollaError::unreadable(status, e))
    }

    async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T> {
        Self::read(self.execute(Method::GET, url, None, None).await?).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, url: Url, body: &B) -> Result<T> {
        Self::read(self.execute(Method::POST, url, Some(encode(body)?), None).await?).await
    }

    /// POSTs a create and answers the new resource's id from `Location`.
    async fn create<B: Serialize>(&self, url: Url, body: Option<&B>, key: &str) -> Result<String> {
        let body = body.map(encode).transpose()?;
        let response = self.execute(Method::POST, url, body, Some(key)).await?;
        let status = response.status().as_u16();
        let location = response.headers().get(LOCATION).and_then(|value| value.to_str().ok()).unwrap_or_default();
        wire::id_from_href(location)
            .map(str::to_owned)
            .ok_or_else(|| DwollaError::unreadable(status, format!("no resource id in Location {location:?}")))
    }

    async fn list<T: DeserializeOwned>(&self, url: Url) -> Result<Page<T>> {
        let collection: Collection<T> = self.get(url).await?;
        let total = collection.total;
        let items = collection.into_items();
        Ok(Page { total: total.unwrap_or(items.len() as u64), items })
    }

    fn with_query<Q: Serialize>(mut url: Url, query: &Q) -> Result<Url> {
        let text = serde_urlencoded::to_string(query).map_err(|e| DwollaError::config(e.to_string()))?;
        url.set_query((!text.is_empty()).then_some(text.as_str()));
        Ok(url)
    }

    fn destination_url(&self, destination: &TransferDestination) -> Url {
        match destination {
            TransferDestination::FundingSource(id) => self.funding_source_url(id),
            TransferDestination::Customer(id) => self.customer_url(id),
            TransferDestination::Account(id) => self.account_url(id),
        }
    }
}

fn encode<B: Serialize>(body: &B) -> Result<Vec<u8>> {
    serde_json::to_vec(body).map_err(|e| DwollaError::config(format!("could not encode the request: {e}")))
}

/// The response when it is a success; a classified error otherwise.
async fn check(response: Response) -> Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = donkies_outbound::retry_after(response.headers());
    let body = response.bytes().await.unwrap_or_default();
    Err(DwollaError::from_response(status.as_u16(), &body, retry_after))
}

#[async_trait]
impl PaymentRail for DwollaClient {
    async fn root(&self) -> Result<Root> {
        self.get(self.base_url.clone()).await
    }

    async fn account_id(&self) -> Result<String> {
        let root = self.root().await?;
        root.links
            .get("account")
            .and_then(Link::id)
            .map(str::to_owned)
            .ok_or_else(|| DwollaError::unreadable(200, "the root has no account link"))
    }

    async fn account_funding_sources(&self, account_id: &str) -> Result<Vec<FundingSource>> {
        Ok(self.list(self.url(&["accounts", account_id, "funding-sources"])).await?.items)
    }

    async fn create_customer(&self, customer: &NewCustomer, idempotency_key: &str) -> Result<String> {
        self.create(self.url(&["customers"]), Some(customer), idempotency_key).await
    }

    async fn customer(&self, customer_id: &str) -> Result<Customer> {
        self.get(self.customer_url(customer_id)).await
    }

    async fn update_customer(&self, customer_id: &str, update: &CustomerUpdate) -> Result<Customer> {
        self.post(self.customer_url(customer_id), update).await
    }

    async fn search_customers(&self, query: &CustomerQuery) -> Result<Page<Customer>> {
        self.list(Self::with_query(self.url(&["customers"]), query)?).await
    }

    async fn create_funding_source(
        &self,
        customer_id: &str,
        source: &NewFundingSource,
        idempotency_key: &str,
    ) -> Result<String> {
        self.create(self.url(&["customers", customer_id, "funding-sources"]), Some(source), idempotency_key).await
    }

    async fn funding_source(&self, funding_source_id: &str) -> Result<FundingSource> {
        self.get(self.funding_source_url(funding_source_id)).await
    }

    async fn customer_funding_sources(&self, customer_id: &str, include_removed: bool) -> Result<Vec<FundingSource>> {
        let query = FundingSourceQuery { removed: (!include_removed).then_some(false) };
        let url = Self::with_query(self.url(&["customers", customer_id, "funding-sources"]), &query)?;
        Ok(self.list(url).await?.items)
    }

    async fn rename_funding_source(&self, funding_source_id: &str, name: &str) -> Result<FundingSource> {
        let update = FundingSourceUpdate { name: Some(name.to_owned()), removed: None };
        self.post(self.funding_source_url(funding_source_id), &update).await
    }

    async fn remove_funding_source(&self, funding_source_id: &str) -> Result<FundingSource> {
        let update = FundingSourceUpdate { name: None, removed: Some(true) };
        self.post(self.funding_source_url(funding_source_id), &update).await
    }

    async fn funding_source_balance(&self, funding_source_id: &str) -> Result<Balance> {
        self.get(self.url(&["funding-sources", funding_source_id, "balance"])).await
    }

    async fn initiate_micro_deposits(&self, funding_source_id: &str, idempotency_key: &str) -> Result<()> {
        let url = self.url(&["funding-sources", funding_source_id, "micro-deposits"]);
        self.execute(Method::POST, url, None, Some(idempotency_key)).await?;
        Ok(())
    }

    async fn micro_deposits(&self, funding_source_id: &str) -> Result<MicroDeposits> {
        self.get(self.url(&["funding-sources", funding_source_id, "micro-deposits"])).await
    }

    async fn verify_micro_deposits(&self, funding_source_id: &str, amount1: Cents, amount2: Cents) -> Result<()> {
        let url = self.url(&["funding-sources", funding_source_id, "micro-deposits"]);
        let body = VerifyMicroDeposits { amount1: Amount::usd(amount1), amount2: Amount::usd(amount2) };
        let response = self.execute(Method::POST, url, Some(encode(&body)?), None).await?;
        // 202 TryAgainLater: the deposits have not arrived yet.
        if response.status() == StatusCode::ACCEPTED {
            let body = response.bytes().await.unwrap_or_default();
            return Err(DwollaError::from_response(202, &body, None));
        }
        Ok(())
    }

    async fn iav_token(&self, customer_id: &str) -> Result<SecretString> {
        let url = self.url(&["customers", customer_id, "iav-token"]);
        let token: IavToken = Self::read(self.execute(Method::POST, url, None, None).await?).await?;
        Ok(token.token)
    }

    async fn create_transfer(&self, transfer: &TransferRequest, idempotency_key: &str) -> Result<String> {
        let links = Links::from([
            ("source".to_owned(), Link::new(self.funding_source_url(&transfer.source))),
            ("destination".to_owned(), Link::new(self.destination_url(&transfer.destination))),
        ]);
        let body = NewTransfer {
            links,
            amount: Amount::usd(transfer.amount),
            metadata: (!transfer.metadata.is_empty()).then(|| transfer.metadata.clone()),
            correlation_id: transfer.correlation_id.clone(),
        };
        self.create(self.url(&["transfers"]), Some(&body), idempotency_key).await
    }

    async fn transfer(&self, transfer_id: &str) -> Result<Transfer> {
        self.get(self.url(&["transfers", transfer_id])).await
    }

    async fn cancel_transfer(&self, transfer_id: &str) -> Result<Transfer> {
        self.post(self.url(&["transfers", transfer_id]), &TransferUpdate { status: "cancelled".into() }).await
    }

    async fn transfer_failure(&self, transfer_id: &str) -> Result<TransferFailure> {
        self.get(self.url(&["transfers", transfer_id, "failure"])).await
    }

    async fn customer_transfers(&self, customer_id: &str, page: PageQuery) -> Result<Page<Transfer>> {
        self.list(Self::with_query(self.url(&["customers", customer_id, "transfers"]), &page)?).await
    }

    async fn create_webhook_subscription(
        &self,
        url: &str,
        secret: &SecretString,
        idempotency_key: &str,
    ) -> Result<String> {
        let body = NewWebhookSubscription { url: url.to_owned(), secret: secret.clone() };
        self.create(self.url(&["webhook-subscriptions"]), Some(&body), idempotency_key).await
    }

    async fn webhook_subscriptions(&self) -> Result<Vec<WebhookSubscription>> {
        Ok(self.list(self.url(&["webhook-subscriptions"])).await?.items)
    }

    async fn pause_webhook_subscription(&self, subscription_id: &str, paused: bool) -> Result<WebhookSubscription> {
        let url = self.url(&["webhook-subscriptions", subscription_id]);
        self.post(url, &WebhookSubscriptionUpdate { paused }).await
    }

    async fn delete_webhook_subscription(&self, subscription_id: &str) -> Result<WebhookSubscription> {
        let url = self.url(&["webhook-subscriptions", subscription_id]);
        Self::read(self.execute(Method::DELETE, url, None, None).await?).await
    }

    async fn events(&self, page: PageQuery) -> Result<Page<Event>> {
        self.list(Self::with_query(self.url(&["events"]), &page)?).await
    }

    async fn event(&self, event_id: &str) -> Result<Event> {
        self.get(self.url(&["events", event_id])).await
    }

    async fn simulate_processing(&self) -> Result<u64> {
        let url = self.url(&["sandbox-simulations"]);
        let reply: SandboxSimulation =
            Self::read(self.execute(Method::POST, url, Some(b"{}".to_vec()), None).await?).await?;
        Ok(reply.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret() {
        let config = DwollaConfig::new(Url::parse(DwollaConfig::SANDBOX_URL).unwrap(), "key", "very-secret");
        assert!(!format!("{config:?}").contains("very-secret"));
        assert!(!format!("{:?}", DwollaClient::new(config).unwrap()).contains("very-secret"));
    }

    #[test]
    fn resource_urls_are_appended_to_the_base_url() {
        let config = DwollaConfig::new(Url::parse("http://127.0.0.1:9/dwolla/").unwrap(), "k", "s");
        let client = DwollaClient::new(config).unwrap();
        assert_eq!(client.customer_url("c/1").as_str(), "http://127.0.0.1:9/dwolla/customers/c%2F1");
    }
}
