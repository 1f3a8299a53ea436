//! Settings: command-line flags > environment variables > config file (`--config`) > defaults.
//!
//! clap reads each flag and its environment variable; a value from neither falls back to the
//! config file (TOML, or JSON in the shape of the original `settings/data.json`), then to the
//! built-in default. A bad value stops start-up with one line naming the setting.

use donkies_domain::ExposeSecret;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use donkies_domain::SecretString;
use lettre::message::Mailbox;
use serde_json::Value;
use url::Url;

/// A setting that could not be used; printed as one line at start-up.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, message: impl fmt::Display) -> Self {
        ConfigError { setting: setting.into(), message: message.to_string() }
    }
}

/// Settings shared by every subcommand that touches the database.
#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// Directory for the SQLite file and the generated secret key [default: ./donkies-data]
    #[arg(long, env = "DONKIES_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL, sqlite://PATH or postgres://USER:PASSWORD@HOST/DB
    /// [default: sqlite://<data dir>/donkies.db]
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// SecretString key for encrypting personal data at rest [default: generated once and kept in
    /// <data dir>/secret_key]
    #[arg(long, env = "DONKIES_SECRET_KEY", value_name = "KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// Front-end base URL used in emailed links [default: http://localhost:8080]
    #[arg(long, env = "DONKIES_FRONTEND_URL", value_name = "URL")]
    pub frontend_url: Option<String>,

    /// SMTP relay, e.g. smtp://127.0.0.1:2525 or smtps://user:pass@host [default: unset, mail is
    /// written to the log and the outbox only]
    #[arg(long, env = "DONKIES_SMTP_URL", value_name = "URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender of outgoing mail [default: Donkies <noreply@localhost>]
    #[arg(long, env = "DONKIES_MAIL_FROM", value_name = "MAILBOX")]
    pub mail_from: Option<String>,

    /// Lifetime of a session token in minutes [default: 1400]
    #[arg(long, env = "DONKIES_TOKEN_EXPIRE_MINUTES", value_name = "MINUTES")]
    pub token_expire_minutes: Option<String>,

    /// Lifetime of password-reset and email-change links in minutes [default: 60]
    #[arg(long, env = "DONKIES_LINK_EXPIRE_MINUTES", value_name = "MINUTES")]
    pub link_expire_minutes: Option<String>,

    /// Login attempts allowed per minute, per client address and per email [default: 10]
    #[arg(long, env = "DONKIES_LOGIN_RATE_PER_MINUTE", value_name = "N")]
    pub login_rate_per_minute: Option<String>,

    /// Password-reset requests allowed per hour, per client address and per email [default: 5]
    #[arg(long, env = "DONKIES_RESET_RATE_PER_HOUR", value_name = "N")]
    pub reset_rate_per_hour: Option<String>,

    /// Seconds a claimed job stays a worker's without word from it; a running job renews this
    /// every third of it, so a dead worker's job runs again within this time [default: 30]
    #[arg(long, env = "DONKIES_JOB_LEASE_SECONDS", value_name = "SECONDS")]
    pub job_lease_seconds: Option<String>,

    /// Attempts before a failing job is parked as failed [default: 12]
    #[arg(long, env = "DONKIES_JOB_MAX_ATTEMPTS", value_name = "N")]
    pub job_max_attempts: Option<String>,

    /// First retry delay of a failed job in milliseconds; doubles per attempt, capped at one
    /// hour [default: 2000]
    #[arg(long, env = "DONKIES_JOB_RETRY_BASE_MS", value_name = "MS")]
    pub job_retry_base_ms: Option<String>,

    /// How long a job keeps waiting out a provider that is down, rate-limiting or refusing our
    /// credentials (such waits use up no attempts) before it is parked, in seconds
    /// [default: 21600, six hours]
    #[arg(long, env = "DONKIES_JOB_WAIT_LIMIT_SECONDS", value_name = "SECONDS")]
    pub job_wait_limit_seconds: Option<String>,

    /// How often an idle worker looks for due jobs, in milliseconds [default: 1000]
    #[arg(long, env = "DONKIES_JOB_POLL_MS", value_name = "MS")]
    pub job_poll_ms: Option<String>,

    /// MX Atrium base URL, e.g. https://vestibule.mx.com [default: unset, an Atrium simulator
    /// is started in-process on a loopback port]
    #[arg(long, env = "DONKIES_ATRIUM_URL", value_name = "URL")]
    pub atrium_url: Option<String>,

    /// MX Atrium client id [default: from the config file's ATRIUM_CLIENT_ID_<MODE>]
    #[arg(long, env = "DONKIES_ATRIUM_CLIENT_ID", value_name = "ID")]
    pub atrium_client_id: Option<String>,

    /// MX Atrium API key [default: from the config file's ATRIUM_KEY_<MODE>]
    #[arg(long, env = "DONKIES_ATRIUM_KEY", value_name = "KEY", hide_env_values = true)]
    pub atrium_key: Option<String>,

    /// Which ATRIUM_*_DEV / ATRIUM_*_PROD keys of a data.json file to use: dev or prod
    /// [default: dev]
    #[arg(long, env = "DONKIES_ATRIUM_MODE", value_name = "MODE")]
    pub atrium_mode: Option<String>,

    /// Seconds before a call to Atrium times out [default: 20]
    #[arg(long, env = "DONKIES_ATRIUM_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub atrium_timeout_seconds: Option<String>,

    /// Interval between polls of a member being aggregated, in milliseconds [default: 2000]
    #[arg(long, env = "DONKIES_MEMBER_POLL_MS", value_name = "MS")]
    pub member_poll_ms: Option<String>,

    /// Polls of one aggregation before giving up on it (OTHER_ERROR) [default: 150]
    #[arg(long, env = "DONKIES_MEMBER_POLL_LIMIT", value_name = "N")]
    pub member_poll_limit: Option<String>,

    /// The smallest total of round-ups collected in one transfer, in dollars [default: 5.00]
    #[arg(long, env = "DONKIES_COLLECTION_MINIMUM", value_name = "DOLLARS")]
    pub collection_minimum: Option<String>,

    /// Day of the month (UTC, 1-28) on which held money is paid out to debts [default: 15]
    #[arg(long, env = "DONKIES_PAYOUT_DAY", value_name = "DAY")]
    pub payout_day: Option<String>,

    /// Facebook Graph API base URL [default: https://graph.facebook.com, or an in-process
    /// simulator in sandbox mode]
    #[arg(long, env = "DONKIES_FACEBOOK_URL", value_name = "URL")]
    pub facebook_url: Option<String>,
    /// Facebook app id [default: the config file's SOCIAL_AUTH_FACEBOOK_KEY]
    #[arg(long, env = "DONKIES_FACEBOOK_KEY", value_name = "ID")]
    pub facebook_key: Option<String>,
    /// Facebook app secret [default: the config file's SOCIAL_AUTH_FACEBOOK_SECRET]
    #[arg(long, env = "DONKIES_FACEBOOK_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub facebook_secret: Option<String>,

    /// Google OAuth base URL (authorize, token and certs endpoints under it) [default: Google's
    /// own endpoints, or an in-process simulator in sandbox mode]
    #[arg(long, env = "DONKIES_GOOGLE_URL", value_name = "URL")]
    pub google_url: Option<String>,
    /// Google OAuth client id [default: the config file's SOCIAL_AUTH_GOOGLE_OAUTH2_KEY]
    #[arg(long, env = "DONKIES_GOOGLE_KEY", value_name = "ID")]
    pub google_key: Option<String>,
    /// Google OAuth client secret [default: the config file's SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET]
    #[arg(long, env = "DONKIES_GOOGLE_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub google_secret: Option<String>,

    /// Twitter API base URL [default: https://api.twitter.com, or an in-process simulator in
    /// sandbox mode]
    #[arg(long, env = "DONKIES_TWITTER_URL", value_name = "URL")]
    pub twitter_url: Option<String>,
    /// Twitter consumer key [default: the config file's SOCIAL_AUTH_TWITTER_KEY]
    #[arg(long, env = "DONKIES_TWITTER_KEY", value_name = "KEY")]
    pub twitter_key: Option<String>,
    /// Twitter consumer secret [default: the config file's SOCIAL_AUTH_TWITTER_SECRET]
    #[arg(long, env = "DONKIES_TWITTER_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub twitter_secret: Option<String>,

    /// How long a checked session or a member read may be served from memory, in
    /// milliseconds; changes made by other processes show within this time (0 turns the cache
    /// off) [default: 1000]
    #[arg(long, env = "DONKIES_CACHE_MS", value_name = "MS")]
    pub cache_ms: Option<String>,

    /// Where /metrics is served: unset, on the main listener; `off`, nowhere; an address such
    /// as 127.0.0.1:9100, there only (not on the main listener) [default: the main listener]
    #[arg(long, env = "DONKIES_METRICS_LISTEN", value_name = "ADDR|off")]
    pub metrics_listen: Option<String>,

    /// Time the in-process Atrium simulator spends in each member status, in milliseconds
    /// [default: 500]
    #[arg(long, env = "DONKIES_SANDBOX_STEP_MS", value_name = "MS")]
    pub sandbox_step_ms: Option<String>,

    /// Dwolla API base URL, e.g. https://api-sandbox.dwolla.com [default: unset, the Dwolla
    /// simulator served by `serve` under /__sandbox/dwolla]
    #[arg(long, env = "DONKIES_DWOLLA_URL", value_name = "URL")]
    pub dwolla_url: Option<String>,
    /// Dwolla application key (required with DONKIES_DWOLLA_URL)
    #[arg(long, env = "DONKIES_DWOLLA_KEY", value_name = "KEY")]
    pub dwolla_key: Option<String>,
    /// Dwolla application secret (required with DONKIES_DWOLLA_URL)
    #[arg(long, env = "DONKIES_DWOLLA_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub dwolla_secret: Option<String>,
    /// Secret Dwolla signs webhooks with (X-Request-Signature-SHA-256) [default: derived from
    /// the secret key]
    #[arg(long, env = "DONKIES_DWOLLA_WEBHOOK_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub dwolla_webhook_secret: Option<String>,
    /// Dwolla funding source where collected round-ups land [default: the master Account's
    /// balance]
    #[arg(long, env = "DONKIES_DWOLLA_ACCOUNT_FUNDING_SOURCE", value_name = "ID")]
    pub dwolla_account_funding_source: Option<String>,
    /// Public base URL of this server, where Dwolla delivers webhooks
    /// (<url>/v1/dwolla/webhooks) [default: none with DONKIES_DWOLLA_URL, so no subscription
    /// is made; the server itself in sandbox mode]
    #[arg(long, env = "DONKIES_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// How often the in-process Dwolla simulator processes pending transfers and
    /// micro-deposits by itself, in milliseconds (0: only on `donkies payments simulate`)
    /// [default: 3000]
    #[arg(long, env = "DONKIES_DWOLLA_SANDBOX_PROCESSING_MS", value_name = "MS")]
    pub dwolla_sandbox_processing_ms: Option<String>,
    /// Seconds before a call to Dwolla times out [default: 20]
    #[arg(long, env = "DONKIES_DWOLLA_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub dwolla_timeout_seconds: Option<String>,
}

/// Dwolla's address and the app's keys.
#[derive(Debug, Clone)]
pub struct DwollaRemote {
    pub url: Url,
    pub key: String,
    pub secret: SecretString,
}

/// Everything about the payment rail.
#[derive(Debug, Clone)]
pub struct DwollaSettings {
    pub rail: ProviderSetting<DwollaRemote>,
    pub webhook_secret: SecretString,
    /// Where collections land; `None`: the master Account's balance.
    pub account_funding_source: Option<String>,
    /// This server's public base URL, for the webhook subscription.
    pub public_url: Option<Url>,
    pub sandbox_processing: Option<Duration>,
    pub timeout: Duration,
}

/// Fully resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: SecretString,
    pub secret_key: SecretString,
    pub frontend_url: Url,
    pub smtp_url: Option<SecretString>,
    pub mail_from: Mailbox,
    pub token_ttl: chrono::Duration,
    pub link_ttl: chrono::Duration,
    pub login_rate_per_minute: u32,
    pub reset_rate_per_hour: u32,
    pub job_lease: Duration,
    pub job_max_attempts: i64,
    pub job_retry_base: Duration,
    pub job_wait_limit: Duration,
    pub job_poll: Duration,
    /// Keys of the original data.json kept for the integrations that use them.
    pub providers: ProviderKeys,
    pub atrium: ProviderSetting<AtriumRemote>,
    pub atrium_timeout: Duration,
    /// Time the in-process Atrium simulator spends in each member status.
    pub sandbox_step: Duration,
    pub member_poll: Duration,
    pub member_poll_limit: i64,
    /// The smallest collection.
    pub collection_minimum: donkies_domain::Cents,
    /// Day of the month (UTC) of the scheduled payout.
    pub payout_day: u32,
    pub cache_ttl: Duration,
    pub metrics: MetricsEndpoint,
    pub facebook: ProviderSetting<SocialRemote>,
    pub google: ProviderSetting<SocialRemote>,
    pub twitter: ProviderSetting<SocialRemote>,
    pub dwolla: DwollaSettings,
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsEndpoint {
    /// On the main listener, beside the API.
    Main,
    /// Nowhere.
    Off,
    /// On this address only, so that it need not be public.
    Listen(SocketAddr),
}

impl MetricsEndpoint {
    fn parse(value: Option<String>) -> Result<MetricsEndpoint, ConfigError> {
        match value.as_deref().map(str::trim) {
            None | Some("") => Ok(MetricsEndpoint::Main),
            Some(off) if off.eq_ignore_ascii_case("off") => Ok(MetricsEndpoint::Off),
            Some(addr) => addr.parse().map(MetricsEndpoint::Listen).map_err(|e| {
                ConfigError::new(
                    "DONKIES_METRICS_LISTEN (--metrics-listen)",
                    format!("{addr:?} is neither `off` nor an address: {e}"),
                )
            }),
        }
    }
}

/// Where an outside service is.
#[derive(Debug, Clone)]
pub enum ProviderSetting<R> {
    /// Configured: the real service (or one given by URL).
    Remote(R),
    /// Zero-config sandbox mode: an in-process simulator.
    Sandbox,
    /// Not configured outside sandbox mode: not offered.
    Off,
}

impl<R> ProviderSetting<R> {
    pub fn is_sandbox(&self) -> bool {
        matches!(self, ProviderSetting::Sandbox)
    }
}

/// A sign-in provider's keys (and its address when not the public one).
#[derive(Debug, Clone)]
pub struct SocialRemote {
    pub url: Option<Url>,
    pub key: String,
    pub secret: SecretString,
}

/// The aggregator's address and keys.
#[derive(Debug, Clone)]
pub struct AtriumRemote {
    pub url: Url,
    pub client_id: String,
    pub key: SecretString,
}

fn resolve_social(
    name: &str,
    url: Option<String>,
    key: Option<String>,
    secret: Option<SecretString>,
    sandbox_mode: bool,
) -> Result<ProviderSetting<SocialRemote>, ConfigError> {
    let upper = name.to_ascii_uppercase();
    let url = match url.filter(|u| !u.is_empty()) {
        Some(u) => Some(Url::parse(&u).map_err(|e| {
            ConfigError::new(format!("DONKIES_{upper}_URL (--{name}-url)"), format!("invalid URL {u:?}: {e}"))
        })?),
        None => None,
    };
    match (key.filter(|k| !k.is_empty()), secret.filter(|s| !s.expose_secret().is_empty())) {
        (Some(key), Some(secret)) => Ok(ProviderSetting::Remote(SocialRemote { url, key, secret })),
        (Some(_), None) | (None, Some(_)) => Err(ConfigError::new(
            format!("DONKIES_{upper}_KEY / DONKIES_{upper}_SECRET"),
            "give both the key and the secret, or neither",
        )),
        (None, None) if url.is_some() => Err(ConfigError::new(
            format!("DONKIES_{upper}_KEY (--{name}-key)"),
            format!("required when DONKIES_{upper}_URL is set"),
        )),
        (None, None) if sandbox_mode => Ok(ProviderSetting::Sandbox),
        (None, None) => Ok(ProviderSetting::Off),
    }
}

#[derive(Debug, Clone, Default)]
pub struct ProviderKeys {
    pub facebook_key: Option<String>,
    pub facebook_secret: Option<SecretString>,
    pub google_key: Option<String>,
    pub google_secret: Option<SecretString>,
    pub twitter_key: Option<String>,
    pub twitter_secret: Option<SecretString>,
    pub atrium_client_id_dev: Option<String>,
    pub atrium_key_dev: Option<SecretString>,
    pub atrium_client_id_prod: Option<String>,
    pub atrium_key_prod: Option<SecretString>,
}

/// Values read from a config file, by their snake_case setting name.
#[derive(Debug, Default)]
pub struct FileValues {
    values: BTreeMap<String, String>,
    pub warnings: Vec<String>,
}

const FILE_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "secret_key",
    "frontend_url",
    "smtp_url",
    "mail_from",
    "token_expire_minutes",
    "link_expire_minutes",
    "login_rate_per_minute",
    "reset_rate_per_hour",
    "job_lease_seconds",
    "job_max_attempts",
    "job_retry_base_ms",
    "job_wait_limit_seconds",
    "job_poll_ms",
    "atrium_url",
    "atrium_client_id",
    "atrium_key",
    "atrium_mode",
    "atrium_timeout_seconds",
    "member_poll_ms",
    "member_poll_limit",
    "collection_minimum",
    "payout_day",
    "sandbox_step_ms",
    "cache_ms",
    "metrics_listen",
    "facebook_url",
    "facebook_key",
    "facebook_secret",
    "google_url",
    "google_key",
    "google_secret",
    "twitter_url",
    "twitter_key",
    "twitter_secret",
    "dwolla_url",
    "dwolla_key",
    "dwolla_secret",
    "dwolla_webhook_secret",
    "dwolla_account_funding_source",
    "public_url",
    "dwolla_sandbox_processing_ms",
    "dwolla_timeout_seconds",
];

/// Keys of the original `settings/data.json` and the setting each one feeds.
const DATA_JSON_KEYS: &[(&str, &str)] = &[
    ("SECRET_KEY", "secret_key"),
    ("SOCIAL_AUTH_FACEBOOK_KEY", "facebook_key"),
    ("SOCIAL_AUTH_FACEBOOK_SECRET", "facebook_secret"),
    ("SOCIAL_AUTH_GOOGLE_OAUTH2_KEY", "google_key"),
    ("SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET", "google_secret"),
    ("SOCIAL_AUTH_TWITTER_KEY", "twitter_key"),
    ("SOCIAL_AUTH_TWITTER_SECRET", "twitter_secret"),
    ("ATRIUM_CLIENT_ID_DEV", "atrium_client_id_dev"),
    ("ATRIUM_KEY_DEV", "atrium_key_dev"),
    ("ATRIUM_CLIENT_ID_PROD", "atrium_client_id_prod"),
    ("ATRIUM_KEY_PROD", "atrium_key_prod"),
    // Known, but meaningless for this server (Django host checks, deployment address).
    ("ALLOWED_HOSTS", ""),
    ("SERVER_IP", ""),
];
const DB_KEYS: &[&str] = &["DB_NAME", "DB_USER", "DB_PASSWORD", "DB_HOST", "DB_PORT"];

impl FileValues {
    pub fn load(path: &Path) -> Result<FileValues, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("--config", format!("cannot read {}: {e}", path.display())))?;
        let is_json =
            path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) || text.trim_start().starts_with('{');
        let object: serde_json::Map<String, Value> = if is_json {
            serde_json::from_str(&text)
                .map_err(|e| ConfigError::new("--config", format!("{} is not valid JSON: {e}", path.display())))?
        } else {
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| ConfigError::new("--config", format!("{} is not valid TOML: {e}", path.display())))?;
            serde_json::to_value(table).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default()
        };
        Ok(Self::from_object(object))
    }

    fn from_object(object: serde_json::Map<String, Value>) -> FileValues {
        let mut out = FileValues::default();
        let mut db = BTreeMap::new();
        for (key, value) in object {
            let text = match &value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => value.to_string(),
            };
            if FILE_KEYS.contains(&key.as_str()) {
                out.values.insert(key, text);
            } else if let Some((_, setting)) = DATA_JSON_KEYS.iter().find(|(k, _)| *k == key) {
                if !setting.is_empty() {
                    out.values.insert((*setting).to_owned(), text);
                }
            } else if DB_KEYS.contains(&key.as_str()) {
                db.insert(key, text);
            } else {
                out.warnings.push(format!("config file: unknown key {key:?} ignored"));
            }
        }
        if let Some(name) = db.get("DB_NAME") {
            let mut url = Url::parse("postgres://localhost").expect("static URL parses");
            let _ = url.set_host(Some(db.get("DB_HOST").map_or("localhost", String::as_str)));
            if let Some(port) = db.get("DB_PORT").and_then(|p| p.parse().ok()) {
                let _ = url.set_port(Some(port));
            }
            if let Some(user) = db.get("DB_USER") {
                let _ = url.set_username(user);
            }
            if let Some(password) = db.get("DB_PASSWORD") {
                let _ = url.set_password(Some(password));
            }
            url.set_path(name);
            out.values.entry("database_url".into()).or_insert_with(|| url.to_string());
        }
        out
    }

    fn get(&self, key: &str) -> Option<String> {
        self.values.get(key).cloned()
    }
}

fn pick(cli: &Option<String>, file: &FileValues, key: &str) -> Option<String> {
    cli.clone().or_else(|| file.get(key))
}

fn parse_num<T: std::str::FromStr>(value: Option<String>, setting: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    match value {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e| ConfigError::new(setting, format!("invalid number {v:?}: {e}"))),
    }
}

impl Settings {
    /// Resolve every setting. `listen` is the serve flag (with its env), if any.
    pub fn resolve(listen: Option<String>, args: &CommonArgs, file: &FileValues) -> Result<Settings, ConfigError> {
        let listen_text = listen.or_else(|| file.get("listen")).unwrap_or_else(|| "127.0.0.1:8000".into());
        let listen: SocketAddr = listen_text.parse().map_err(|e| {
            ConfigError::new("DONKIES_LISTEN (--listen)", format!("invalid address {listen_text:?}: {e}"))
        })?;

        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| file.get("data_dir").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("./donkies-data"));

        let database_url = match pick(&args.database_url, file, "database_url") {
            Some(url) => {
                let parsed = Url::parse(&url)
                    .map_err(|e| ConfigError::new("DATABASE_URL (--database-url)", format!("not a URL: {e}")))?;
                if !matches!(parsed.scheme(), "sqlite" | "postgres" | "postgresql") {
                    return Err(ConfigError::new(
                        "DATABASE_URL (--database-url)",
                        format!("unsupported scheme {:?}; use sqlite:// or postgres://", parsed.scheme()),
                    ));
                }
                url
            }
            None => {
                ensure_dir(&data_dir)?;
                format!("sqlite://{}", data_dir.join("donkies.db").display())
            }
        };

        let secret_key = match pick(&args.secret_key, file, "secret_key") {
            Some(key) if key.len() < 16 => {
                return Err(ConfigError::new(
                    "DONKIES_SECRET_KEY (--secret-key)",
                    "too short; use at least 16 characters (32 random bytes recommended)",
                ));
            }
            Some(key) => key,
            None => load_or_create_secret(&data_dir)?,
        };

        let frontend_text =
            pick(&args.frontend_url, file, "frontend_url").unwrap_or_else(|| "http://localhost:8080".into());
        let frontend_url = Url::parse(&frontend_text).map_err(|e| {
            ConfigError::new("DONKIES_FRONTEND_URL (--frontend-url)", format!("invalid URL {frontend_text:?}: {e}"))
        })?;

        let smtp_url = match pick(&args.smtp_url, file, "smtp_url").filter(|s| !s.is_empty()) {
            Some(url) => {
                let parsed = Url::parse(&url)
                    .map_err(|e| ConfigError::new("DONKIES_SMTP_URL (--smtp-url)", format!("not a URL: {e}")))?;
                if !matches!(parsed.scheme(), "smtp" | "smtps") || parsed.host_str().is_none() {
                    return Err(ConfigError::new(
                        "DONKIES_SMTP_URL (--smtp-url)",
                        "expected smtp://HOST[:PORT] or smtps://USER:PASSWORD@HOST[:PORT]",
                    ));
                }
                Some(SecretString::from(url))
            }
            None => None,
        };

        let from_text =
            pick(&args.mail_from, file, "mail_from").unwrap_or_else(|| "Donkies <noreply@localhost>".into());
        let mail_from: Mailbox = from_text.parse().map_err(|e| {
            ConfigError::new("DONKIES_MAIL_FROM (--mail-from)", format!("invalid mailbox {from_text:?}: {e}"))
        })?;

        let token_minutes: i64 = parse_num(
            pick(&args.token_expire_minutes, file, "token_expire_minutes"),
            "DONKIES_TOKEN_EXPIRE_MINUTES (--token-expire-minutes)",
            1400,
        )?;
        let link_minutes: i64 = parse_num(
            pick(&args.link_expire_minutes, file, "link_expire_minutes"),
            "DONKIES_LINK_EXPIRE_MINUTES (--link-expire-minutes)",
            60,
        )?;
        if token_minutes < 0 || link_minutes < 0 {
            return Err(ConfigError::new("DONKIES_TOKEN_EXPIRE_MINUTES", "must not be negative"));
        }
        let login_rate: u32 = parse_num(
            pick(&args.login_rate_per_minute, file, "login_rate_per_minute"),
            "DONKIES_LOGIN_RATE_PER_MINUTE (--login-rate-per-minute)",
            10,
        )?;
        let reset_rate: u32 = parse_num(
            pick(&args.reset_rate_per_hour, file, "reset_rate_per_hour"),
            "DONKIES_RESET_RATE_PER_HOUR (--reset-rate-per-hour)",
            5,
        )?;
        if login_rate == 0 || reset_rate == 0 {
            return Err(ConfigError::new(
                "DONKIES_LOGIN_RATE_PER_MINUTE / DONKIES_RESET_RATE_PER_HOUR",
                "must be at least 1",
            ));
        }
        let lease: u64 = parse_num(
            pick(&args.job_lease_seconds, file, "job_lease_seconds"),
            "DONKIES_JOB_LEASE_SECONDS (--job-lease-seconds)",
            30,
        )?;
        let max_attempts: i64 = parse_num(
            pick(&args.job_max_attempts, file, "job_max_attempts"),
            "DONKIES_JOB_MAX_ATTEMPTS (--job-max-attempts)",
            12,
        )?;
        if max_attempts < 1 {
            return Err(ConfigError::new("DONKIES_JOB_MAX_ATTEMPTS (--job-max-attempts)", "must be at least 1"));
        }
        let retry_ms: u64 = parse_num(
            pick(&args.job_retry_base_ms, file, "job_retry_base_ms"),
            "DONKIES_JOB_RETRY_BASE_MS (--job-retry-base-ms)",
            2000,
        )?;
        let wait_limit_seconds: u64 = parse_num(
            pick(&args.job_wait_limit_seconds, file, "job_wait_limit_seconds"),
            "DONKIES_JOB_WAIT_LIMIT_SECONDS (--job-wait-limit-seconds)",
            21_600,
        )?;
        let poll_ms: u64 =
            parse_num(pick(&args.job_poll_ms, file, "job_poll_ms"), "DONKIES_JOB_POLL_MS (--job-poll-ms)", 1000)?;

        let provider = |k: &str| file.get(k);
        let providers = ProviderKeys {
            facebook_key: provider("facebook_key"),
            facebook_secret: provider("facebook_secret").map(SecretString::from),
            google_key: provider("google_key"),
            google_secret: provider("google_secret").map(SecretString::from),
            twitter_key: provider("twitter_key"),
            twitter_secret: provider("twitter_secret").map(SecretString::from),
            atrium_client_id_dev: provider("atrium_client_id_dev"),
            atrium_key_dev: provider("atrium_key_dev").map(SecretString::from),
            atrium_client_id_prod: provider("atrium_client_id_prod"),
            atrium_key_prod: provider("atrium_key_prod").map(SecretString::from),
        };

        let atrium_setting = "DONKIES_ATRIUM_URL (--atrium-url)";
        let atrium_timeout = Duration::from_secs(parse_num(
            pick(&args.atrium_timeout_seconds, file, "atrium_timeout_seconds"),
            "DONKIES_ATRIUM_TIMEOUT_SECONDS (--atrium-timeout-seconds)",
            20u64,
        )?);
        let mode = pick(&args.atrium_mode, file, "atrium_mode").unwrap_or_else(|| "dev".into()).to_ascii_lowercase();
        let (mode_id, mode_key) = match mode.as_str() {
            "dev" => (providers.atrium_client_id_dev.clone(), providers.atrium_key_dev.clone()),
            "prod" => (providers.atrium_client_id_prod.clone(), providers.atrium_key_prod.clone()),
            other => {
                return Err(ConfigError::new(
                    "DONKIES_ATRIUM_MODE (--atrium-mode)",
                    format!("{other:?} is neither dev nor prod"),
                ));
            }
        };
        let atrium = match pick(&args.atrium_url, file, "atrium_url").filter(|u| !u.is_empty()) {
            Some(url) => {
                let url = Url::parse(&url)
                    .map_err(|e| ConfigError::new(atrium_setting, format!("invalid URL {url:?}: {e}")))?;
                let client_id =
                    pick(&args.atrium_client_id, file, "atrium_client_id").or(mode_id).ok_or_else(|| {
                        ConfigError::new(
                            "DONKIES_ATRIUM_CLIENT_ID (--atrium-client-id)",
                            "required when DONKIES_ATRIUM_URL is set",
                        )
                    })?;
                let key = pick(&args.atrium_key, file, "atrium_key").map(SecretString::from).or(mode_key).ok_or_else(
                    || ConfigError::new("DONKIES_ATRIUM_KEY (--atrium-key)", "required when DONKIES_ATRIUM_URL is set"),
                )?;
                ProviderSetting::Remote(AtriumRemote { url, client_id, key })
            }
            None => ProviderSetting::Sandbox,
        };
        let sandbox_step_ms: u64 = parse_num(
            pick(&args.sandbox_step_ms, file, "sandbox_step_ms"),
            "DONKIES_SANDBOX_STEP_MS (--sandbox-step-ms)",
            500,
        )?;
        let member_poll_ms: u64 = parse_num(
            pick(&args.member_poll_ms, file, "member_poll_ms"),
            "DONKIES_MEMBER_POLL_MS (--member-poll-ms)",
            2000,
        )?;
        let member_poll_limit: i64 = parse_num(
            pick(&args.member_poll_limit, file, "member_poll_limit"),
            "DONKIES_MEMBER_POLL_LIMIT (--member-poll-limit)",
            150,
        )?;

        let cache_ms: u64 = parse_num(pick(&args.cache_ms, file, "cache_ms"), "DONKIES_CACHE_MS (--cache-ms)", 1000)?;
        let collection_minimum = match pick(&args.collection_minimum, file, "collection_minimum") {
            None => donkies_domain::Cents::new(500),
            Some(text) => donkies_domain::Cents::parse(text.trim())
                .ok()
                .filter(|c| *c > donkies_domain::Cents::ZERO)
                .ok_or_else(|| {
                ConfigError::new(
                    "DONKIES_COLLECTION_MINIMUM (--collection-minimum)",
                    format!("{text:?} is not a positive amount of dollars"),
                )
            })?,
        };
        let payout_day: u32 =
            parse_num(pick(&args.payout_day, file, "payout_day"), "DONKIES_PAYOUT_DAY (--payout-day)", 15)?;
        if !(1..=28).contains(&payout_day) {
            return Err(ConfigError::new("DONKIES_PAYOUT_DAY (--payout-day)", "must be a day from 1 to 28"));
        }
        let metrics = MetricsEndpoint::parse(pick(&args.metrics_listen, file, "metrics_listen"))?;

        // Simulated sign-in providers only when the whole server runs on simulators.
        let sandbox_mode = atrium.is_sandbox();
        let facebook = resolve_social(
            "facebook",
            pick(&args.facebook_url, file, "facebook_url"),
            pick(&args.facebook_key, file, "facebook_key").or(providers.facebook_key.clone()),
            pick(&args.facebook_secret, file, "facebook_secret")
                .map(SecretString::from)
                .or(providers.facebook_secret.clone()),
            sandbox_mode,
        )?;
        let google = resolve_social(
            "google",
            pick(&args.google_url, file, "google_url"),
            pick(&args.google_key, file, "google_key").or(providers.google_key.clone()),
            pick(&args.google_secret, file, "google_secret")
                .map(SecretString::from)
                .or(providers.google_secret.clone()),
            sandbox_mode,
        )?;
        let twitter = resolve_social(
            "twitter",
            pick(&args.twitter_url, file, "twitter_url"),
            pick(&args.twitter_key, file, "twitter_key").or(providers.twitter_key.clone()),
            pick(&args.twitter_secret, file, "twitter_secret")
                .map(SecretString::from)
                .or(providers.twitter_secret.clone()),
            sandbox_mode,
        )?;

        let dwolla = resolve_dwolla(args, file, &secret_key)?;

        Ok(Settings {
            dwolla,
            facebook,
            google,
            twitter,
            cache_ttl: Duration::from_millis(cache_ms),
            metrics,
            atrium,
            atrium_timeout,
            sandbox_step: Duration::from_millis(sandbox_step_ms),
            member_poll: Duration::from_millis(member_poll_ms.max(10)),
            member_poll_limit: member_poll_limit.max(1),
            collection_minimum,
            payout_day,
            listen,
            data_dir,
            database_url: SecretString::from(database_url),
            secret_key: SecretString::from(secret_key),
            frontend_url,
            smtp_url,
            mail_from,
            token_ttl: chrono::Duration::minutes(token_minutes),
            link_ttl: chrono::Duration::minutes(link_minutes),
            login_rate_per_minute: login_rate,
            reset_rate_per_hour: reset_rate,
            job_lease: Duration::from_secs(lease.max(1)),
            job_max_attempts: max_attempts,
            job_retry_base: Duration::from_millis(retry_ms),
            job_wait_limit: Duration::from_secs(wait_limit_seconds),
            job_poll: Duration::from_millis(poll_ms.max(10)),
            providers,
        })
    }

    /// A front-end link: `<frontend>/<page>?id=…&token=…`.
    pub fn frontend_link(&self, page: &str, query: &[(&str, &str)]) -> String {
        let mut url = self.frontend_url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/{page}"));
        url.query_pairs_mut().clear().extend_pairs(query);
        url.to_string()
    }
}

fn resolve_dwolla(args: &CommonArgs, file: &FileValues, secret_key: &str) -> Result<DwollaSettings, ConfigError> {
    let url_setting = "DONKIES_DWOLLA_URL (--dwolla-url)";
    let parse_url = |setting: &'static str, raw: String| {
        Url::parse(&raw).map_err(|e| ConfigError::new(setting, format!("invalid URL {raw:?}: {e}")))
    };
    let rail = match pick(&args.dwolla_url, file, "dwolla_url").filter(|u| !u.is_empty()) {
        Some(url) => {
            let url = parse_url(url_setting, url)?;
            let key = pick(&args.dwolla_key, file, "dwolla_key").filter(|k| !k.is_empty()).ok_or_else(|| {
                ConfigError::new("DONKIES_DWOLLA_KEY (--dwolla-key)", "required when DONKIES_DWOLLA_URL is set")
            })?;
            let secret =
                pick(&args.dwolla_secret, file, "dwolla_secret").filter(|k| !k.is_empty()).ok_or_else(|| {
                    ConfigError::new(
                        "DONKIES_DWOLLA_SECRET (--dwolla-secret)",
                        "required when DONKIES_DWOLLA_URL is set",
                    )
                })?;
            ProviderSetting::Remote(DwollaRemote { url, key, secret: SecretString::from(secret) })
        }
        None => ProviderSetting::Sandbox,
    };
    let webhook_secret =
        match pick(&args.dwolla_webhook_secret, file, "dwolla_webhook_secret").filter(|s| !s.is_empty()) {
            Some(secret) => SecretString::from(secret),
            None => SecretString::from(crate::crypto::derive_secret(secret_key, "dwolla webhooks")),
        };
    let public_url = match pick(&args.public_url, file, "public_url").filter(|u| !u.is_empty()) {
        Some(url) => Some(parse_url("DONKIES_PUBLIC_URL (--public-url)", url)?),
        None => None,
    };
    let processing_ms: u64 = parse_num(
        pick(&args.dwolla_sandbox_processing_ms, file, "dwolla_sandbox_processing_ms"),
        "DONKIES_DWOLLA_SANDBOX_PROCESSING_MS (--dwolla-sandbox-processing-ms)",
        3000,
    )?;
    let timeout: u64 = parse_num(
        pick(&args.dwolla_timeout_seconds, file, "dwolla_timeout_seconds"),
        "DONKIES_DWOLLA_TIMEOUT_SECONDS (--dwolla-timeout-seconds)",
        20,
    )?;
    Ok(DwollaSettings {
        rail,
        webhook_secret,
        account_funding_source: pick(&args.dwolla_account_funding_source, file, "dwolla_account_funding_source")
            .filter(|s| !s.is_empty()),
        public_url,
        sandbox_processing: (processing_ms > 0).then(|| Duration::from_millis(processing_ms)),
        timeout: Duration::from_secs(timeout.max(1)),
    })
}

fn ensure_dir(dir: &Path) -> Result<(), ConfigError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ConfigError::new("DONKIES_DATA_DIR (--data-dir)", format!("cannot create {}: {e}", dir.display())))
}

/// Read the secret key kept in the data directory, creating it (mode 0600) on first start.
fn load_or_create_secret(data_dir: &Path) -> Result<String, ConfigError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let setting = "DONKIES_SECRET_KEY (--secret-key)";
    let path = data_dir.join("secret_key");
    match std::fs::read_to_string(&path) {
        Ok(key) if key.trim().len() >= 16 => return Ok(key.trim().to_owned()),
        Ok(_) => {
            return Err(ConfigError::new(setting, format!("{} is too short", path.display())));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ConfigError::new(setting, format!("cannot read {}: {e}", path.display())));
        }
    }
    ensure_dir(data_dir)?;
    let key = hex::encode(rand::random::<[u8; 32]>());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ConfigError::new(setting, format!("cannot create {}: {e}", path.display())))?;
    file.write_all(key.as_bytes())
        .map_err(|e| ConfigError::new(setting, format!("cannot write {}: {e}", path.display())))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: &str) -> FileValues {
        FileValues::from_object(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn data_json_db_keys_build_a_postgres_url() {
        let f = file(
            r#"{"DB_NAME": "donkies", "DB_USER": "udonkies", "DB_PASSWORD": "p@ss", "DB_HOST": "10.0.0.5",
                "SECRET_KEY": "0123456789abcdef0123", "ALLOWED_HOSTS": ["*"], "SURPRISE": 1}"#,
        );
        assert_eq!(f.get("database_url").as_deref(), Some("postgres://udonkies:p%40ss@10.0.0.5/donkies"));
        assert_eq!(f.get("secret_key").as_deref(), Some("0123456789abcdef0123"));
        assert_eq!(f.warnings, vec![r#"config file: unknown key "SURPRISE" ignored"#.to_owned()]);
    }

    #[test]
    fn flags_beat_file_values_which_beat_defaults() {
        let dir = std::env::temp_dir().join(format!("donkies-config-{}", donkies_store::new_id()));
        let f = file(r#"{"frontend_url": "https://file.example", "token_expire_minutes": 30, "data_dir": "x"}"#);
        let args = CommonArgs {
            data_dir: Some(dir.clone()),
            frontend_url: Some("https://flag.example".into()),
            ..Default::default()
        };
        let s = Settings::resolve(None, &args, &f).unwrap();
        assert_eq!(s.frontend_url.as_str(), "https://flag.example/");
        assert_eq!(s.token_ttl, chrono::Duration::minutes(30));
        assert_eq!(s.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(s.data_dir, dir);
        let key_file = dir.join("secret_key");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let again = Settings::resolve(None, &args, &f).unwrap();
        assert_eq!(again.secret_key.expose_secret(), s.secret_key.expose_secret(), "the generated key is kept");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_values_name_their_setting() {
        let err =
            Settings::resolve(Some("nonsense".into()), &CommonArgs::default(), &FileValues::default()).unwrap_err();
        assert!(err.to_string().starts_with("DONKIES_LISTEN (--listen): invalid address"), "{err}");
        let args = CommonArgs { database_url: Some("mysql://x".into()), ..Default::default() };
        let err = Settings::resolve(None, &args, &FileValues::default()).unwrap_err();
        assert!(err.to_string().starts_with("DATABASE_URL"), "{err}");
        let args = CommonArgs {
            database_url: Some("sqlite://x.db".into()),
            smtp_url: Some("http://x".into()),
            secret_key: Some("k".repeat(20)),
            ..Default::default()
        };
        let err = Settings::resolve(None, &args, &FileValues::default()).unwrap_err();
        assert!(err.to_string().starts_with("DONKIES_SMTP_URL"), "{err}");
    }

    #[test]
    fn frontend_links_carry_id_and_token() {
        let args = CommonArgs {
            database_url: Some("sqlite://x.db".into()),
            secret_key: Some("k".repeat(20)),
            frontend_url: Some("https://app.example/base/".into()),
            ..Default::default()
        };
        let s = Settings::resolve(None, &args, &FileValues::default()).unwrap();
        assert_eq!(
            s.frontend_link("confirm", &[("id", "a b"), ("token", "t")]),
            "https://app.example/base/confirm?id=a+b&token=t"
        );
    }

    #[test]
    fn debug_of_the_settings_shows_no_secret() {
        let args = CommonArgs {
            database_url: Some("postgres://donkies:db-pass-4711@db.example/donkies".into()),
            secret_key: Some("secret-key-4711-abcdefgh".into()),
            smtp_url: Some("smtps://mailer:smtp-pass-4711@smtp.example".into()),
            atrium_url: Some("https://atrium.example".into()),
            atrium_client_id: Some("client".into()),
            atrium_key: Some("atrium-key-4711".into()),
            facebook_key: Some("fb".into()),
            facebook_secret: Some("fb-secret-4711".into()),
            google_key: Some("g".into()),
            google_secret: Some("google-secret-4711".into()),
            twitter_key: Some("t".into()),
            twitter_secret: Some("twitter-secret-4711".into()),
            ..Default::default()
        };
        let s = Settings::resolve(None, &args, &FileValues::default()).unwrap();
        let printed = format!("{s:?} {:?}", s.providers);
        assert!(printed.contains("atrium.example"), "the settings print: {printed}");
        assert!(!printed.contains("4711"), "a secret printed: {printed}");
    }
}
