//! Settings: command-line flags > environment variables > config file (`--config`) > defaults.
//!
//! Every setting is one row of the `settings!` table below: its name, the type its text is
//! parsed into, its default (or what its absence means) and its help. The name is the config
//! file's key; the flag (`--kebab-case`) and the environment variable (`DONKIES_UPPER_CASE`,
//! unless the row names another) follow from it. The table makes the flags, `--help`, the
//! environment, the file keys and the typed values that [`Settings::resolve`] checks and
//! assembles. The keys of the original `settings/data.json` are the one mapping [`DATA_JSON`].
//! An empty value counts as unset. A bad value stops start-up with one line naming the setting.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use donkies_domain::{Cents, ExposeSecret, SecretString};
use lettre::message::Mailbox;
use serde_json::Value as Json;
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

    fn of(setting: Setting, message: impl fmt::Display) -> Self {
        Self::new(setting.label(), message)
    }

    fn required_with(setting: Setting, with: Setting) -> Self {
        Self::of(setting, format!("required when {} is set", with.env()))
    }
}

/// What the table says of one setting, besides its name and type.
struct Row {
    name: &'static str,
    value_name: &'static str,
    help: &'static [&'static str],
    /// The value taken when no layer gives one.
    default: Option<&'static str>,
    /// What it means when no layer gives a value, for a setting without a default value.
    unset: Option<&'static str>,
    /// The environment variable, when it is not `DONKIES_<NAME>`.
    env: Option<&'static str>,
}

macro_rules! settings {
    (
        serve { $($(#[doc = $sdoc:literal])+ $sname:ident: $sty:ty [$svalue:literal]
            $(= $sdefault:literal)? $(, unset $sunset:literal)? $(, env $senv:literal)?;)+ }
        common { $($(#[doc = $cdoc:literal])+ $cname:ident: $cty:ty [$cvalue:literal]
            $(= $cdefault:literal)? $(, unset $cunset:literal)? $(, env $cenv:literal)?;)+ }
    ) => {
        /// Every setting, by its config-file name.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum Setting {
            $($sname,)+
            $($cname,)+
        }

        impl Setting {
            pub const ALL: &[Setting] = &[$(Setting::$sname,)+ $(Setting::$cname,)+];

            fn row(self) -> &'static Row {
                const ROWS: &[Row] = &[
                    $(settings!(@row $sname [$svalue] [$($sdoc),+] $(= $sdefault)? $(, unset $sunset)? $(, env $senv)?),)+
                    $(settings!(@row $cname [$cvalue] [$($cdoc),+] $(= $cdefault)? $(, unset $cunset)? $(, env $cenv)?),)+
                ];
                &ROWS[self as usize]
            }
        }

        settings!(@args ServeArgs "Settings whose flags only `serve` takes (the others read them from the environment)." $($sname)+);
        settings!(@args CommonArgs "Settings shared by every subcommand that touches the database." $($cname)+);

        /// Every setting parsed, after the layers: flags, environment, config file, default.
        struct Values {
            $($sname: settings!(@type $sty $(, $sdefault)?),)+
            $($cname: settings!(@type $cty $(, $cdefault)?),)+
        }

        impl Values {
            fn layer(serve: &ServeArgs, common: &CommonArgs, file: &FileValues) -> Result<Values, ConfigError> {
                Ok(Values {
                    $($sname: settings!(@value $sty, Setting::$sname, &serve.$sname, file $(, $sdefault)?)?,)+
                    $($cname: settings!(@value $cty, Setting::$cname, &common.$cname, file $(, $cdefault)?)?,)+
                })
            }
        }
    };
    (@row $name:ident [$value:literal] [$($doc:literal),+] $(= $default:literal)? $(, unset $unset:literal)?
        $(, env $env:literal)?) => {
        Row {
            name: stringify!($name),
            value_name: $value,
            help: &[$($doc),+],
            default: settings!(@opt $($default)?),
            unset: settings!(@opt $($unset)?),
            env: settings!(@opt $($env)?),
        }
    };
    (@opt) => { None };
    (@opt $text:literal) => { Some($text) };
    (@type $ty:ty) => { Option<$ty> };
    (@type $ty:ty, $default:literal) => { $ty };
    (@value $ty:ty, $setting:expr, $given:expr, $file:expr) => { optional::<$ty>($setting, $given, $file) };
    (@value $ty:ty, $setting:expr, $given:expr, $file:expr, $default:literal) => {
        defaulted::<$ty>($setting, $given, $file, $default)
    };
    (@args $args:ident $doc:literal $($name:ident)+) => {
        #[doc = $doc]
        /// Each field is what the command line, else the environment, gave.
        #[derive(Debug, Clone, Default)]
        pub struct $args {
            $(pub $name: Option<String>,)+
        }

        impl $args {
            const SETTINGS: &[Setting] = &[$(Setting::$name),+];

            /// The flags in `matches` (when there are any), else the variables `env` finds.
            pub fn from_sources(matches: Option<&clap::ArgMatches>, env: &dyn Fn(&str) -> Option<String>) -> Self {
                $args { $($name: Setting::$name.given(matches, env),)+ }
            }

            /// The settings of this kind that the environment gives.
            pub fn from_environment() -> Self {
                Self::from_sources(None, &process_env)
            }
        }

        impl clap::FromArgMatches for $args {
            fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
                Ok(Self::from_sources(Some(matches), &process_env))
            }

            fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
                *self = Self::from_arg_matches(matches)?;
                Ok(())
            }
        }

        impl clap::Args for $args {
            fn augment_args(cmd: clap::Command) -> clap::Command {
                cmd.args(Self::SETTINGS.iter().map(|setting| setting.arg()))
            }

            fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
                Self::augment_args(cmd)
            }
        }
    };
}

settings! {
    serve {
        /// Address to listen on
        listen: SocketAddr ["ADDR"] = "127.0.0.1:8000";
    }
    common {
        /// Directory for the SQLite file and the generated secret key
        data_dir: PathBuf ["DIR"] = "./donkies-data";
        /// Database URL, sqlite://PATH or postgres://USER:PASSWORD@HOST/DB
        database_url: SecretString ["URL"], unset "sqlite://<data dir>/donkies.db", env "DATABASE_URL";
        /// Database connections this process keeps open at most (at least 1)
        db_pool: u32 ["N"], unset "16 on PostgreSQL; on SQLite one per core, 2 to 8";
        /// On PostgreSQL, keep one connection LISTENing to the other processes' jobs and
        /// changes: on or off (behind a pooler that does not pass LISTEN/NOTIFY; then every
        /// request reads its session and page from the database, and idle workers and ?wait=
        /// requests poll)
        pg_listen: bool ["ON|OFF"] = "on";
        /// Secret key for encrypting personal data at rest
        secret_key: SecretString ["KEY"], unset "generated once and kept in <data dir>/secret_key";
        /// Front-end base URL used in emailed links
        frontend_url: Url ["URL"] = "http://localhost:8080";
        /// SMTP relay, e.g. smtp://127.0.0.1:2525 or smtps://user:pass@host
        smtp_url: SecretString ["URL"], unset "unset, mail is written to the log and the outbox only";
        /// Sender of outgoing mail
        mail_from: Mailbox ["MAILBOX"] = "Donkies <noreply@localhost>";
        /// Lifetime of a session token in minutes
        token_expire_minutes: i64 ["MINUTES"] = "1400";
        /// Lifetime of password-reset and email-change links in minutes
        link_expire_minutes: i64 ["MINUTES"] = "60";
        /// Login attempts allowed per minute, per client address and per email
        login_rate_per_minute: u32 ["N"] = "10";
        /// Password-reset requests allowed per hour, per client address and per email
        reset_rate_per_hour: u32 ["N"] = "5";
        /// Seconds a claimed job stays a worker's without word from it; a running job renews this
        /// every third of it, so a dead worker's job runs again within this time
        job_lease_seconds: u64 ["SECONDS"] = "30";
        /// Attempts before a failing job is parked as failed
        job_max_attempts: i64 ["N"] = "12";
        /// First retry delay of a failed job in milliseconds; doubles per attempt, capped at one
        /// hour
        job_retry_base_ms: u64 ["MS"] = "2000";
        /// How long a job keeps waiting out a provider that is down, rate-limiting or refusing our
        /// credentials (such waits use up no attempts) before it is parked, in seconds (six hours)
        job_wait_limit_seconds: u64 ["SECONDS"] = "21600";
        /// How often an idle worker looks for due jobs, in milliseconds (on SQLite; on PostgreSQL
        /// it is woken by LISTEN/NOTIFY and sleeps until the next job is due, at most the longer
        /// of this and 30 seconds)
        job_poll_ms: u64 ["MS"] = "1000";
        /// Jobs a worker runs at once; one slot is always kept free of batch work for what a person
        /// waits for (linking, polls, mail)
        worker_concurrency: u32 ["N"] = "4";
        /// MX Atrium base URL, e.g. https://vestibule.mx.com
        atrium_url: Url ["URL"], unset "unset, an Atrium simulator is started in-process on a loopback port";
        /// MX Atrium client id
        atrium_client_id: String ["ID"], unset "from the config file's ATRIUM_CLIENT_ID_<MODE>";
        /// MX Atrium API key
        atrium_key: SecretString ["KEY"], unset "from the config file's ATRIUM_KEY_<MODE>";
        /// Which ATRIUM_*_DEV / ATRIUM_*_PROD keys of a data.json file to use: dev or prod
        atrium_mode: AtriumMode ["MODE"] = "dev";
        /// Seconds before a call to Atrium times out
        atrium_timeout_seconds: u64 ["SECONDS"] = "20";
        /// Calls to Atrium per second at most, by every process on the database together
        /// (0: no limit); a 429's Retry-After holds them all
        atrium_calls_per_second: u32 ["N"] = "0";
        /// Interval between polls of a member being aggregated, in milliseconds
        member_poll_ms: u64 ["MS"] = "2000";
        /// Polls of one aggregation before giving up on it (OTHER_ERROR)
        member_poll_limit: i64 ["N"] = "150";
        /// The smallest total of round-ups collected in one transfer, in dollars
        collection_minimum: Cents ["DOLLARS"] = "5.00";
        /// Day of the month (UTC, 1-28) on which held money is paid out to debts
        payout_day: u32 ["DAY"] = "15";
        /// Facebook Graph API base URL
        facebook_url: Url ["URL"], unset "https://graph.facebook.com, or an in-process simulator in sandbox mode";
        /// Facebook app id
        facebook_key: String ["ID"], unset "unset";
        /// Facebook app secret
        facebook_secret: SecretString ["SECRET"], unset "unset";
        /// Google OAuth base URL (authorize, token and certs endpoints under it)
        google_url: Url ["URL"], unset "Google's own endpoints, or an in-process simulator in sandbox mode";
        /// Google OAuth client id
        google_key: String ["ID"], unset "unset";
        /// Google OAuth client secret
        google_secret: SecretString ["SECRET"], unset "unset";
        /// Twitter API base URL
        twitter_url: Url ["URL"], unset "https://api.twitter.com, or an in-process simulator in sandbox mode";
        /// Twitter consumer key
        twitter_key: String ["KEY"], unset "unset";
        /// Twitter consumer secret
        twitter_secret: SecretString ["SECRET"], unset "unset";
        /// How long a checked session or a member read may be served from memory, in
        /// milliseconds; changes made by other processes show within this time (0 turns the cache
        /// off)
        cache_ms: u64 ["MS"] = "1000";
        /// Where /metrics is served: unset, on the main listener; `off`, nowhere; an address such
        /// as 127.0.0.1:9100, there only (not on the main listener)
        metrics_listen: MetricsEndpoint ["ADDR|off"], unset "the main listener";
        /// Time the in-process Atrium simulator spends in each member status, in milliseconds
        sandbox_step_ms: u64 ["MS"] = "500";
        /// Dwolla API base URL, e.g. https://api-sandbox.dwolla.com
        dwolla_url: Url ["URL"], unset "unset, the Dwolla simulator served by `serve` under /__sandbox/dwolla";
        /// Dwolla application key
        dwolla_key: String ["KEY"], unset "none; required with DONKIES_DWOLLA_URL";
        /// Dwolla application secret
        dwolla_secret: SecretString ["SECRET"], unset "none; required with DONKIES_DWOLLA_URL";
        /// Secret Dwolla signs webhooks with (X-Request-Signature-SHA-256)
        dwolla_webhook_secret: SecretString ["SECRET"], unset "derived from the secret key";
        /// Dwolla funding source where collected round-ups land
        dwolla_account_funding_source: String ["ID"], unset "the master Account's balance";
        /// Public base URL of this server, where Dwolla delivers webhooks (<url>/v1/dwolla/webhooks)
        public_url: Url ["URL"], unset "none with DONKIES_DWOLLA_URL, so no subscription is made; the server itself in sandbox mode";
        /// How often the in-process Dwolla simulator processes pending transfers and
        /// micro-deposits by itself, in milliseconds (0: only on `donkies payments simulate`)
        dwolla_sandbox_processing_ms: u64 ["MS"] = "3000";
        /// Seconds before a call to Dwolla times out
        dwolla_timeout_seconds: u64 ["SECONDS"] = "20";
        /// Calls to Dwolla per second at most, by every process on the database together
        /// (0: no limit); a 429's Retry-After holds them all
        dwolla_calls_per_second: u32 ["N"] = "0";
    }
}

impl Setting {
    /// The config file's key.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// The flag, `--kebab-case`.
    pub fn flag(self) -> String {
        format!("--{}", self.name().replace('_', "-"))
    }

    /// The environment variable.
    pub fn env(self) -> String {
        let row = self.row();
        row.env.map_or_else(|| format!("DONKIES_{}", row.name.to_ascii_uppercase()), str::to_owned)
    }

    /// How an error names the setting: `DONKIES_X (--x)`.
    pub fn label(self) -> String {
        format!("{} ({})", self.env(), self.flag())
    }

    fn from_name(name: &str) -> Option<Setting> {
        Setting::ALL.iter().copied().find(|setting| setting.name() == name)
    }

    /// The line of `--help`: what it is, its default, its keys in a data.json, its variable.
    fn help(self) -> String {
        let row = self.row();
        let mut help = row.help.iter().map(|line| line.trim()).collect::<Vec<_>>().join(" ");
        if let Some(default) = row.default.or(row.unset) {
            help.push_str(&format!(" [default: {default}]"));
        }
        let keys: Vec<&str> =
            DATA_JSON.iter().filter(|(_, feeds)| *feeds == Feeds::Setting(self)).map(|(key, _)| *key).collect();
        if !keys.is_empty() {
            help.push_str(&format!(" [data.json: {}]", keys.join(", ")));
        }
        help.push_str(&format!(" [env: {}]", self.env()));
        help
    }

    fn arg(self) -> clap::Arg {
        clap::Arg::new(self.name())
            .long(self.flag().trim_start_matches('-').to_owned())
            .value_name(self.row().value_name)
            .help(self.help())
            .action(clap::ArgAction::Set)
    }

    /// The flag's value in `matches`, else the environment variable's.
    fn given(self, matches: Option<&clap::ArgMatches>, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        matches.and_then(|m| m.get_one::<String>(self.name()).cloned()).or_else(|| env(&self.env()))
    }
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A setting's text as the first layer that has it gives it: the command line or the
/// environment, else the config file. Empty text counts as unset.
fn layered(setting: Setting, given: &Option<String>, file: &FileValues) -> Option<String> {
    given.clone().or_else(|| file.get(setting)).filter(|text| !text.is_empty())
}

fn optional<T: SettingValue>(
    setting: Setting,
    given: &Option<String>,
    file: &FileValues,
) -> Result<Option<T>, ConfigError> {
    layered(setting, given, file).map(|text| T::parse(&text).map_err(|e| ConfigError::of(setting, e))).transpose()
}

fn defaulted<T: SettingValue>(
    setting: Setting,
    given: &Option<String>,
    file: &FileValues,
    default: &str,
) -> Result<T, ConfigError> {
    let text = layered(setting, given, file).unwrap_or_else(|| default.to_owned());
    T::parse(&text).map_err(|e| ConfigError::of(setting, e))
}

/// A type a setting's text is parsed into; the error is the message after the setting's name.
trait SettingValue: Sized {
    fn parse(text: &str) -> Result<Self, String>;
}

macro_rules! parsed_as {
    ($($ty:ty => $what:literal),+ $(,)?) => {$(
        impl SettingValue for $ty {
            fn parse(text: &str) -> Result<Self, String> {
                text.trim().parse().map_err(|e| format!("invalid {} {text:?}: {e}", $what))
            }
        }
    )+};
}

parsed_as!(SocketAddr => "address", Url => "URL", Mailbox => "mailbox", u32 => "number", u64 => "number", i64 => "number");

macro_rules! taken_as_is {
    ($($ty:ty),+) => {$(
        impl SettingValue for $ty {
            fn parse(text: &str) -> Result<Self, String> {
                Ok(<$ty>::from(text))
            }
        }
    )+};
}

taken_as_is!(String, SecretString, PathBuf);

impl SettingValue for bool {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Ok(true),
            "off" | "false" | "no" | "0" => Ok(false),
            _ => Err(format!("invalid switch {text:?}: on or off")),
        }
    }
}

impl SettingValue for Cents {
    fn parse(text: &str) -> Result<Self, String> {
        Cents::parse(text.trim())
            .ok()
            .filter(|cents| *cents > Cents::ZERO)
            .ok_or_else(|| format!("{text:?} is not a positive amount of dollars"))
    }
}

/// Which keys of a data.json the live Atrium uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AtriumMode {
    Dev,
    Prod,
}

impl SettingValue for AtriumMode {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "dev" => Ok(AtriumMode::Dev),
            "prod" => Ok(AtriumMode::Prod),
            _ => Err(format!("{text:?} is neither dev nor prod")),
        }
    }
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

impl SettingValue for MetricsEndpoint {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "" => Ok(MetricsEndpoint::Main),
            off if off.eq_ignore_ascii_case("off") => Ok(MetricsEndpoint::Off),
            addr => addr
                .parse()
                .map(MetricsEndpoint::Listen)
                .map_err(|e| format!("{addr:?} is neither `off` nor an address: {e}")),
        }
    }
}

/// What a key of the original `settings/data.json` feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feeds {
    Setting(Setting),
    /// A part of the PostgreSQL URL that `DB_NAME` asks for.
    Database(DbPart),
    /// Atrium's keys per mode, for `--atrium-mode`.
    AtriumClientId(AtriumMode),
    AtriumKey(AtriumMode),
    /// Known, but meaningless for this server (Django host checks, deployment address).
    Unused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum DbPart {
    Name,
    User,
    Password,
    Host,
    Port,
}

/// Every key of the original `settings/data.json` and what it feeds.
const DATA_JSON: &[(&str, Feeds)] = &[
    ("SECRET_KEY", Feeds::Setting(Setting::secret_key)),
    ("DB_NAME", Feeds::Database(DbPart::Name)),
    ("DB_USER", Feeds::Database(DbPart::User)),
    ("DB_PASSWORD", Feeds::Database(DbPart::Password)),
    ("DB_HOST", Feeds::Database(DbPart::Host)),
    ("DB_PORT", Feeds::Database(DbPart::Port)),
    ("SOCIAL_AUTH_FACEBOOK_KEY", Feeds::Setting(Setting::facebook_key)),
    ("SOCIAL_AUTH_FACEBOOK_SECRET", Feeds::Setting(Setting::facebook_secret)),
    ("SOCIAL_AUTH_GOOGLE_OAUTH2_KEY", Feeds::Setting(Setting::google_key)),
    ("SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET", Feeds::Setting(Setting::google_secret)),
    ("SOCIAL_AUTH_TWITTER_KEY", Feeds::Setting(Setting::twitter_key)),
    ("SOCIAL_AUTH_TWITTER_SECRET", Feeds::Setting(Setting::twitter_secret)),
    ("ATRIUM_CLIENT_ID_DEV", Feeds::AtriumClientId(AtriumMode::Dev)),
    ("ATRIUM_KEY_DEV", Feeds::AtriumKey(AtriumMode::Dev)),
    ("ATRIUM_CLIENT_ID_PROD", Feeds::AtriumClientId(AtriumMode::Prod)),
    ("ATRIUM_KEY_PROD", Feeds::AtriumKey(AtriumMode::Prod)),
    ("ALLOWED_HOSTS", Feeds::Unused),
    ("SERVER_IP", Feeds::Unused),
];

/// Values read from a config file: TOML keyed by setting name, or JSON, which may also use the
/// keys of [`DATA_JSON`].
#[derive(Debug, Default)]
pub struct FileValues {
    values: BTreeMap<Setting, String>,
    atrium_client_ids: BTreeMap<AtriumMode, String>,
    atrium_keys: BTreeMap<AtriumMode, String>,
    pub warnings: Vec<String>,
}

impl FileValues {
    pub fn load(path: &Path) -> Result<FileValues, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("--config", format!("cannot read {}: {e}", path.display())))?;
        let is_json =
            path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) || text.trim_start().starts_with('{');
        let object: serde_json::Map<String, Json> = if is_json {
            serde_json::from_str(&text)
                .map_err(|e| ConfigError::new("--config", format!("{} is not valid JSON: {e}", path.display())))?
        } else {
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| ConfigError::new("--config", format!("{} is not valid TOML: {e}", path.display())))?;
            serde_json::to_value(table).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default()
        };
        Ok(Self::from_object(object))
    }

    fn from_object(object: serde_json::Map<String, Json>) -> FileValues {
        let mut out = FileValues::default();
        let mut db = BTreeMap::new();
        for (key, value) in object {
            let text = match value {
                Json::String(s) => s,
                other => other.to_string(),
            };
            let feeds = Setting::from_name(&key)
                .map(Feeds::Setting)
                .or_else(|| DATA_JSON.iter().find(|(k, _)| *k == key).map(|(_, feeds)| *feeds));
            match feeds {
                Some(Feeds::Setting(setting)) => {
                    out.values.insert(setting, text);
                }
                Some(Feeds::Database(part)) => {
                    db.insert(part, text);
                }
                Some(Feeds::AtriumClientId(mode)) => {
                    out.atrium_client_ids.insert(mode, text);
                }
                Some(Feeds::AtriumKey(mode)) => {
                    out.atrium_keys.insert(mode, text);
                }
                Some(Feeds::Unused) => {}
                None => out.warnings.push(format!("config file: unknown key {key:?} ignored")),
            }
        }
        if let Some(name) = db.get(&DbPart::Name) {
            let mut url = Url::parse("postgres://localhost").expect("static URL parses");
            let _ = url.set_host(Some(db.get(&DbPart::Host).map_or("localhost", String::as_str)));
            if let Some(port) = db.get(&DbPart::Port).and_then(|p| p.parse().ok()) {
                let _ = url.set_port(Some(port));
            }
            if let Some(user) = db.get(&DbPart::User) {
                let _ = url.set_username(user);
            }
            if let Some(password) = db.get(&DbPart::Password) {
                let _ = url.set_password(Some(password));
            }
            url.set_path(name);
            out.values.entry(Setting::database_url).or_insert_with(|| url.to_string());
        }
        out
    }

    fn get(&self, setting: Setting) -> Option<String> {
        self.values.get(&setting).cloned()
    }
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
    /// Most connections in the pool; `None`: the engine's default.
    pub db_pool: Option<u32>,
    /// Listen to the other processes on PostgreSQL.
    pub pg_listen: bool,
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
    pub worker_concurrency: usize,
    pub atrium: ProviderSetting<AtriumRemote>,
    pub atrium_timeout: Duration,
    /// Calls to Atrium per second, shared by every process (0: no limit).
    pub atrium_calls_per_second: u32,
    /// Calls to Dwolla per second, shared by every process (0: no limit).
    pub dwolla_calls_per_second: u32,
    /// Time the in-process Atrium simulator spends in each member status.
    pub sandbox_step: Duration,
    pub member_poll: Duration,
    pub member_poll_limit: i64,
    /// The smallest collection.
    pub collection_minimum: Cents,
    /// Day of the month (UTC) of the scheduled payout.
    pub payout_day: u32,
    pub cache_ttl: Duration,
    pub metrics: MetricsEndpoint,
    pub facebook: ProviderSetting<SocialRemote>,
    pub google: ProviderSetting<SocialRemote>,
    pub twitter: ProviderSetting<SocialRemote>,
    pub dwolla: DwollaSettings,
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

/// A sign-in provider from its three settings: `[url, key, secret]`.
fn social(
    [url_setting, key_setting, secret_setting]: [Setting; 3],
    url: Option<Url>,
    key: Option<String>,
    secret: Option<SecretString>,
    sandbox_mode: bool,
) -> Result<ProviderSetting<SocialRemote>, ConfigError> {
    match (key, secret) {
        (Some(key), Some(secret)) => Ok(ProviderSetting::Remote(SocialRemote { url, key, secret })),
        (Some(_), None) | (None, Some(_)) => Err(ConfigError::new(
            format!("{} / {}", key_setting.env(), secret_setting.env()),
            "give both the key and the secret, or neither",
        )),
        (None, None) if url.is_some() => Err(ConfigError::required_with(key_setting, url_setting)),
        (None, None) if sandbox_mode => Ok(ProviderSetting::Sandbox),
        (None, None) => Ok(ProviderSetting::Off),
    }
}

impl Settings {
    /// Resolve every setting. `listen` is the serve flag (with its env), if any.
    pub fn resolve(listen: Option<String>, args: &CommonArgs, file: &FileValues) -> Result<Settings, ConfigError> {
        let v = Values::layer(&ServeArgs { listen }, args, file)?;

        let database_url = match v.database_url {
            Some(url) => {
                let parsed = Url::parse(url.expose_secret())
                    .map_err(|e| ConfigError::of(Setting::database_url, format!("not a URL: {e}")))?;
                if !matches!(parsed.scheme(), "sqlite" | "postgres" | "postgresql") {
                    return Err(ConfigError::of(
                        Setting::database_url,
                        format!("unsupported scheme {:?}; use sqlite:// or postgres://", parsed.scheme()),
                    ));
                }
                url
            }
            None => {
                ensure_dir(&v.data_dir)?;
                SecretString::from(format!("sqlite://{}", v.data_dir.join("donkies.db").display()))
            }
        };
        let secret_key = match v.secret_key {
            Some(key) if key.expose_secret().len() < 16 => {
                return Err(ConfigError::of(
                    Setting::secret_key,
                    "too short; use at least 16 characters (32 random bytes recommended)",
                ));
            }
            Some(key) => key,
            None => SecretString::from(load_or_create_secret(&v.data_dir)?),
        };
        if let Some(url) = &v.smtp_url {
            let parsed = Url::parse(url.expose_secret())
                .map_err(|e| ConfigError::of(Setting::smtp_url, format!("not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "smtp" | "smtps") || parsed.host_str().is_none() {
                return Err(ConfigError::of(
                    Setting::smtp_url,
                    "expected smtp://HOST[:PORT] or smtps://USER:PASSWORD@HOST[:PORT]",
                ));
            }
        }
        for (setting, minutes) in [
            (Setting::token_expire_minutes, v.token_expire_minutes),
            (Setting::link_expire_minutes, v.link_expire_minutes),
        ] {
            if minutes < 0 {
                return Err(ConfigError::of(setting, "must not be negative"));
            }
        }
        for (setting, rate) in [
            (Setting::login_rate_per_minute, v.login_rate_per_minute),
            (Setting::reset_rate_per_hour, v.reset_rate_per_hour),
        ] {
            if rate == 0 {
                return Err(ConfigError::of(setting, "must be at least 1"));
            }
        }
        if v.db_pool == Some(0) {
            return Err(ConfigError::of(Setting::db_pool, "must be at least 1"));
        }
        if v.job_max_attempts < 1 {
            return Err(ConfigError::of(Setting::job_max_attempts, "must be at least 1"));
        }
        if v.worker_concurrency < 1 {
            return Err(ConfigError::of(Setting::worker_concurrency, "must be at least 1"));
        }
        if !(1..=28).contains(&v.payout_day) {
            return Err(ConfigError::of(Setting::payout_day, "must be a day from 1 to 28"));
        }

        let atrium = match v.atrium_url {
            Some(url) => {
                let client_id = v
                    .atrium_client_id
                    .or_else(|| file.atrium_client_ids.get(&v.atrium_mode).cloned())
                    .ok_or_else(|| ConfigError::required_with(Setting::atrium_client_id, Setting::atrium_url))?;
                let key = v
                    .atrium_key
                    .or_else(|| file.atrium_keys.get(&v.atrium_mode).map(|key| SecretString::from(key.as_str())))
                    .ok_or_else(|| ConfigError::required_with(Setting::atrium_key, Setting::atrium_url))?;
                ProviderSetting::Remote(AtriumRemote { url, client_id, key })
            }
            None => ProviderSetting::Sandbox,
        };

        // Simulated sign-in providers only when the whole server runs on simulators.
        let sandbox_mode = atrium.is_sandbox();
        use Setting::{facebook_key, facebook_secret, facebook_url, google_key, google_secret, google_url};
        use Setting::{twitter_key, twitter_secret, twitter_url};
        let facebook = [facebook_url, facebook_key, facebook_secret];
        let facebook = social(facebook, v.facebook_url, v.facebook_key, v.facebook_secret, sandbox_mode)?;
        let google = [google_url, google_key, google_secret];
        let google = social(google, v.google_url, v.google_key, v.google_secret, sandbox_mode)?;
        let twitter = [twitter_url, twitter_key, twitter_secret];
        let twitter = social(twitter, v.twitter_url, v.twitter_key, v.twitter_secret, sandbox_mode)?;

        let rail = match v.dwolla_url {
            Some(url) => {
                let key =
                    v.dwolla_key.ok_or_else(|| ConfigError::required_with(Setting::dwolla_key, Setting::dwolla_url))?;
                let secret = v
                    .dwolla_secret
                    .ok_or_else(|| ConfigError::required_with(Setting::dwolla_secret, Setting::dwolla_url))?;
                ProviderSetting::Remote(DwollaRemote { url, key, secret })
            }
            None => ProviderSetting::Sandbox,
        };
        let webhook_secret = v.dwolla_webhook_secret.unwrap_or_else(|| {
            SecretString::from(crate::crypto::derive_secret(secret_key.expose_secret(), "dwolla webhooks"))
        });
        let dwolla = DwollaSettings {
            rail,
            webhook_secret,
            account_funding_source: v.dwolla_account_funding_source,
            public_url: v.public_url,
            sandbox_processing: (v.dwolla_sandbox_processing_ms > 0)
                .then(|| Duration::from_millis(v.dwolla_sandbox_processing_ms)),
            timeout: Duration::from_secs(v.dwolla_timeout_seconds.max(1)),
        };

        Ok(Settings {
            listen: v.listen,
            data_dir: v.data_dir,
            database_url,
            db_pool: v.db_pool,
            pg_listen: v.pg_listen,
            secret_key,
            frontend_url: v.frontend_url,
            smtp_url: v.smtp_url,
            mail_from: v.mail_from,
            token_ttl: chrono::Duration::minutes(v.token_expire_minutes),
            link_ttl: chrono::Duration::minutes(v.link_expire_minutes),
            login_rate_per_minute: v.login_rate_per_minute,
            reset_rate_per_hour: v.reset_rate_per_hour,
            job_lease: Duration::from_secs(v.job_lease_seconds.max(1)),
            job_max_attempts: v.job_max_attempts,
            job_retry_base: Duration::from_millis(v.job_retry_base_ms),
            job_wait_limit: Duration::from_secs(v.job_wait_limit_seconds),
            job_poll: Duration::from_millis(v.job_poll_ms.max(10)),
            worker_concurrency: usize::try_from(v.worker_concurrency).unwrap_or(usize::MAX),
            atrium,
            atrium_timeout: Duration::from_secs(v.atrium_timeout_seconds),
            atrium_calls_per_second: v.atrium_calls_per_second,
            dwolla_calls_per_second: v.dwolla_calls_per_second,
            sandbox_step: Duration::from_millis(v.sandbox_step_ms),
            member_poll: Duration::from_millis(v.member_poll_ms.max(10)),
            member_poll_limit: v.member_poll_limit.max(1),
            collection_minimum: v.collection_minimum,
            payout_day: v.payout_day,
            cache_ttl: Duration::from_millis(v.cache_ms),
            metrics: v.metrics_listen.unwrap_or(MetricsEndpoint::Main),
            facebook,
            google,
            twitter,
            dwolla,
        })
    }
}

fn ensure_dir(dir: &Path) -> Result<(), ConfigError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ConfigError::of(Setting::data_dir, format!("cannot create {}: {e}", dir.display())))
}

/// Read the secret key kept in the data directory, creating it (mode 0600) on first start.
fn load_or_create_secret(data_dir: &Path) -> Result<String, ConfigError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let setting = Setting::secret_key;
    let path = data_dir.join("secret_key");
    match std::fs::read_to_string(&path) {
        Ok(key) if key.trim().len() >= 16 => return Ok(key.trim().to_owned()),
        Ok(_) => {
            return Err(ConfigError::of(setting, format!("{} is too short", path.display())));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ConfigError::of(setting, format!("cannot read {}: {e}", path.display())));
        }
    }
    ensure_dir(data_dir)?;
    let key = hex::encode(rand::random::<[u8; 32]>());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ConfigError::of(setting, format!("cannot create {}: {e}", path.display())))?;
    file.write_all(key.as_bytes())
        .map_err(|e| ConfigError::of(setting, format!("cannot write {}: {e}", path.display())))?;
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
        assert_eq!(f.get(Setting::database_url).as_deref(), Some("postgres://udonkies:p%40ss@10.0.0.5/donkies"));
        assert_eq!(f.get(Setting::secret_key).as_deref(), Some("0123456789abcdef0123"));
        assert_eq!(f.warnings, vec![r#"config file: unknown key "SURPRISE" ignored"#.to_owned()]);
    }

    #[test]
    fn flags_beat_file_values_which_beat_defaults() {
        let dir = std::env::temp_dir().join(format!("donkies-config-{}", donkies_store::new_id()));
        let f = file(r#"{"frontend_url": "https://file.example", "token_expire_minutes": 30, "data_dir": "x"}"#);
        let args = CommonArgs {
            data_dir: Some(dir.display().to_string()),
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
    fn a_setting_given_in_every_layer_takes_the_flag_then_the_environment_then_the_file() {
        use clap::{Args, Command};
        let flags = CommonArgs::augment_args(Command::new("donkies"))
            .try_get_matches_from(["donkies", "--job-max-attempts", "4"])
            .unwrap();
        let env = |name: &str| match name {
            "DONKIES_JOB_MAX_ATTEMPTS" => Some("3".to_owned()),
            "DONKIES_JOB_POLL_MS" => Some("30".to_owned()),
            "DATABASE_URL" => Some("sqlite://x.db".to_owned()),
            "DONKIES_SECRET_KEY" => Some("k".repeat(20)),
            _ => None,
        };
        let args = CommonArgs::from_sources(Some(&flags), &env);
        let f = file(r#"{"job_max_attempts": 2, "job_poll_ms": 20, "job_retry_base_ms": 10}"#);
        let s = Settings::resolve(None, &args, &f).unwrap();
        assert_eq!(s.job_max_attempts, 4, "the flag beats the environment");
        assert_eq!(s.job_poll, Duration::from_millis(30), "the environment beats the file");
        assert_eq!(s.job_retry_base, Duration::from_millis(10), "the file beats the default");
        assert_eq!(s.job_lease, Duration::from_secs(30), "the default when no layer gives one");
        assert_eq!(s.listen.to_string(), "127.0.0.1:8000");
    }

    #[test]
    fn a_worker_runs_four_jobs_at_once_unless_told_and_never_none() {
        let env = |concurrency: Option<&'static str>| {
            move |name: &str| match name {
                "DONKIES_WORKER_CONCURRENCY" => concurrency.map(str::to_owned),
                "DATABASE_URL" => Some("sqlite://x.db".to_owned()),
                "DONKIES_SECRET_KEY" => Some("k".repeat(20)),
                _ => None,
            }
        };
        let resolve = |concurrency| {
            Settings::resolve(None, &CommonArgs::from_sources(None, &env(concurrency)), &FileValues::default())
        };
        assert_eq!(resolve(None).unwrap().worker_concurrency, 4);
        assert_eq!(resolve(Some("1")).unwrap().worker_concurrency, 1);
        let err = resolve(Some("0")).unwrap_err().to_string();
        assert!(err.contains("DONKIES_WORKER_CONCURRENCY") && err.contains("at least 1"), "{err}");
    }

    #[test]
    fn every_setting_has_one_flag_one_variable_and_its_help() {
        let mut envs: Vec<String> = Setting::ALL.iter().map(|s| s.env()).collect();
        envs.sort();
        envs.dedup();
        assert_eq!(envs.len(), Setting::ALL.len(), "two settings share a variable");
        for setting in Setting::ALL {
            let env = setting.env();
            assert!(env == "DATABASE_URL" || env.starts_with("DONKIES_"), "{env}");
            let help = setting.help();
            assert!(help.contains(&format!("[env: {env}]")), "{help}");
            assert!(help.contains("[default: "), "{setting:?} documents no default: {help}");
            assert!(!help.contains("SecretString"), "{help}");
        }
        assert_eq!(Setting::database_url.label(), "DATABASE_URL (--database-url)");
        assert_eq!(Setting::job_poll_ms.label(), "DONKIES_JOB_POLL_MS (--job-poll-ms)");
    }

    #[test]
    fn the_data_json_keys_are_one_table_and_each_is_understood() {
        let original = [
            "SECRET_KEY",
            "DB_NAME",
            "DB_USER",
            "DB_PASSWORD",
            "DB_HOST",
            "DB_PORT",
            "SOCIAL_AUTH_FACEBOOK_KEY",
            "SOCIAL_AUTH_FACEBOOK_SECRET",
            "SOCIAL_AUTH_GOOGLE_OAUTH2_KEY",
            "SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET",
            "SOCIAL_AUTH_TWITTER_KEY",
            "SOCIAL_AUTH_TWITTER_SECRET",
            "ATRIUM_CLIENT_ID_DEV",
            "ATRIUM_KEY_DEV",
            "ATRIUM_CLIENT_ID_PROD",
            "ATRIUM_KEY_PROD",
            "ALLOWED_HOSTS",
            "SERVER_IP",
        ];
        let keys: Vec<&str> = DATA_JSON.iter().map(|(key, _)| *key).collect();
        assert_eq!(keys, original, "the mapping is the one table of the original keys, each once");
        for (key, _) in DATA_JSON {
            assert!(Setting::from_name(key).is_none(), "{key} is also a setting name");
        }
        let object =
            DATA_JSON.iter().map(|(key, _)| ((*key).to_owned(), Json::String(format!("{key} value")))).collect();
        let f = FileValues::from_object(object);
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
        assert_eq!(f.get(Setting::secret_key).as_deref(), Some("SECRET_KEY value"));
        assert_eq!(f.get(Setting::twitter_secret).as_deref(), Some("SOCIAL_AUTH_TWITTER_SECRET value"));
        assert_eq!(f.atrium_keys.get(&AtriumMode::Prod).map(String::as_str), Some("ATRIUM_KEY_PROD value"));
        assert!(f.get(Setting::database_url).is_some_and(|url| url.starts_with("postgres://DB_USER%20value:")));
    }

    #[test]
    fn the_atrium_mode_picks_the_data_json_keys() {
        let f = file(
            r#"{"ATRIUM_CLIENT_ID_DEV": "dev-id", "ATRIUM_KEY_DEV": "dev-key", "ATRIUM_CLIENT_ID_PROD": "prod-id",
                "ATRIUM_KEY_PROD": "prod-key", "atrium_url": "https://atrium.example"}"#,
        );
        let args = CommonArgs {
            database_url: Some("sqlite://x.db".into()),
            secret_key: Some("k".repeat(20)),
            atrium_mode: Some("PROD".into()),
            ..Default::default()
        };
        let s = Settings::resolve(None, &args, &f).unwrap();
        let ProviderSetting::Remote(atrium) = s.atrium else { panic!("the live Atrium is configured") };
        assert_eq!(atrium.client_id, "prod-id");
        assert_eq!(atrium.key.expose_secret(), "prod-key");
        let args = CommonArgs { atrium_mode: Some("staging".into()), ..args };
        let err = Settings::resolve(None, &args, &f).unwrap_err();
        assert!(err.to_string().starts_with("DONKIES_ATRIUM_MODE (--atrium-mode): "), "{err}");
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
    fn the_pool_size_is_at_least_one_connection() {
        let args = |pool: &str| CommonArgs {
            database_url: Some("sqlite://x.db".into()),
            secret_key: Some("k".repeat(20)),
            db_pool: Some(pool.into()),
            ..Default::default()
        };
        let s = Settings::resolve(None, &args("4"), &FileValues::default()).unwrap();
        assert_eq!(s.db_pool, Some(4));
        for bad in ["0", "-1", "many"] {
            let err = Settings::resolve(None, &args(bad), &FileValues::default()).unwrap_err();
            assert!(err.to_string().starts_with("DONKIES_DB_POOL (--db-pool): "), "{err}");
        }
        let unset = CommonArgs { db_pool: None, ..args("1") };
        assert_eq!(Settings::resolve(None, &unset, &FileValues::default()).unwrap().db_pool, None);
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
        let printed = format!("{s:?}");
        assert!(printed.contains("atrium.example"), "the settings print: {printed}");
        assert!(!printed.contains("4711"), "a secret printed: {printed}");
    }
}
