//! The outside services this process talks to, built from the settings: each provider is
//! remote (its real address, or one given), a simulator started here (sandbox mode), or off.

use donkies_domain::ExposeSecret;
use donkies_store::Db;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use donkies_atrium::{Aggregator, AtriumClient, AtriumConfig};
use donkies_dwolla::{DwollaClient, DwollaConfig, PaymentRail};
use donkies_sandbox::{
    AtriumSim, AtriumSimConfig, DwollaSimConfig, DwollaSimHandle, FacebookSim, GoogleSim, TwitterSim,
};
use donkies_social::{FacebookClient, FacebookConfig, GoogleClient, GoogleConfig, TwitterClient, TwitterConfig};
use url::Url;

use crate::config::{ConfigError, ProviderSetting, Settings};
use crate::services::social::SignInProviders;

const SOCIAL_TIMEOUT: Duration = Duration::from_secs(15);

/// A simulator started for sandbox mode.
pub trait Simulator: Send + 'static {
    fn stop(self) -> impl Future<Output = ()> + Send;
}

/// Build one provider's client configuration: from its remote settings, from a simulator
/// started now, or none when it is off.
async fn build<R, C, S, Fut>(
    setting: &ProviderSetting<R>,
    remote: impl FnOnce(&R) -> C,
    sandbox: impl FnOnce() -> Fut,
) -> anyhow::Result<(Option<C>, Option<S>)>
where
    S: Simulator,
    Fut: Future<Output = anyhow::Result<(C, S)>>,
{
    Ok(match setting {
        ProviderSetting::Remote(r) => (Some(remote(r)), None),
        ProviderSetting::Sandbox => {
            let (config, sim) = sandbox().await?;
            (Some(config), Some(sim))
        }
        ProviderSetting::Off => (None, None),
    })
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

macro_rules! simulator {
    ($($sim:ty),*) => {$(
        impl Simulator for $sim {
            async fn stop(self) {
                let _ = self.shutdown().await;
            }
        }
    )*};
}
simulator!(AtriumSim, FacebookSim, GoogleSim, TwitterSim);

/// Where `serve` mounts the Dwolla simulator in sandbox mode; other processes (workers,
/// operator commands) reach the same simulated Dwolla there.
pub const DWOLLA_SANDBOX_PATH: &str = "/__sandbox/dwolla";

/// The Dwolla simulator of sandbox mode, served by `serve` under [`DWOLLA_SANDBOX_PATH`].
pub struct DwollaSandbox {
    pub handle: DwollaSimHandle,
    processor: Option<tokio::task::JoinHandle<()>>,
}

impl DwollaSandbox {
    /// The simulator on the state it keeps in the data directory.
    async fn open(base: &Url, settings: &Settings) -> anyhow::Result<DwollaSandbox> {
        let config = DwollaSimConfig {
            public_url: Some(base.clone()),
            // Dwolla retries a failed delivery for days; the sandbox for a minute.
            webhook_retries: [1, 2, 4, 8, 15, 30].map(Duration::from_secs).to_vec(),
            data: Some(settings.data_dir.clone()),
            ..Default::default()
        };
        let handle = DwollaSimHandle::open(config).await.context("opening the in-process Dwolla simulator")?;
        let processor = settings.dwolla.sandbox_processing.map(|every| handle.spawn_processor(every));
        Ok(DwollaSandbox { handle, processor })
    }
}

/// The simulators this process started; stopped on shutdown.
#[derive(Default)]
pub struct Simulators {
    pub atrium: Option<AtriumSim>,
    /// Served by the HTTP API of this process (sandbox mode, `serve` only).
    pub dwolla: Option<DwollaSandbox>,
    facebook: Option<FacebookSim>,
    google: Option<GoogleSim>,
    twitter: Option<TwitterSim>,
}

impl Simulators {
    pub async fn shutdown(self) {
        if let Some(dwolla) = self.dwolla {
            if let Some(processor) = dwolla.processor {
                processor.abort();
            }
            dwolla.handle.close().await;
        }
        if let Some(s) = self.atrium {
            s.stop().await;
        }
        if let Some(s) = self.facebook {
            s.stop().await;
        }
        if let Some(s) = self.google {
            s.stop().await;
        }
        if let Some(s) = self.twitter {
            s.stop().await;
        }
    }
}

/// The clients of every provider, and the simulators started for them.
pub struct Providers {
    pub aggregator: Arc<dyn Aggregator>,
    pub rail: Arc<dyn PaymentRail>,
    pub social: SignInProviders,
    pub simulators: Simulators,
}

/// Where `serve` also serves its Atrium simulator in sandbox mode, for the other processes.
pub const ATRIUM_SANDBOX_PATH: &str = "/__sandbox/atrium";

/// The base URL of the sandbox Atrium that `serve` at `api` offers.
pub fn atrium_sandbox_url(api: SocketAddr) -> Url {
    let host = loopback_of(api);
    Url::parse(&format!("http://{host}{ATRIUM_SANDBOX_PATH}/")).expect("a socket address makes a valid URL")
}

/// The base URL of the sandbox Dwolla that `serve` at `api` offers.
pub fn dwolla_sandbox_url(api: SocketAddr) -> Url {
    let host = loopback_of(api);
    Url::parse(&format!("http://{host}{DWOLLA_SANDBOX_PATH}/")).expect("a socket address makes a valid URL")
}

/// `addr`, with an unspecified IP (listening everywhere) replaced by loopback: where another
/// process on this machine reaches a server listening on `addr`.
pub fn loopback_of(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr }
}

/// The payment rail: Dwolla at its configured address, or in sandbox mode the simulator that
/// `serve` at `api` serves (started here when `serve_sandbox`).
async fn payment_rail(
    settings: &Settings,
    api: SocketAddr,
    serve_sandbox: bool,
    sims: &mut Simulators,
) -> anyhow::Result<DwollaClient> {
    let setting = "DONKIES_DWOLLA_URL (--dwolla-url)";
    let config = match &settings.dwolla.rail {
        ProviderSetting::Remote(r) => DwollaConfig::new(r.url.clone(), r.key.clone(), r.secret.clone()),
        ProviderSetting::Sandbox | ProviderSetting::Off => {
            let base = dwolla_sandbox_url(api);
            if serve_sandbox {
                tracing::info!(url = %base, "no DONKIES_DWOLLA_URL: serving a Dwolla simulator");
                sims.dwolla = Some(DwollaSandbox::open(&base, settings).await?);
            }
            DwollaConfig::new(base, donkies_sandbox::SANDBOX_DWOLLA_KEY, donkies_sandbox::SANDBOX_DWOLLA_SECRET)
        }
    };
    DwollaClient::new(config.with_timeout(settings.dwolla.timeout))
        .map_err(|e| ConfigError::new(setting, e.to_string()).into())
}

/// Build every provider the settings ask for, starting simulators in sandbox mode. `api` is
/// the address of the `serve` process (this one when `serve_sandbox`), whose Dwolla simulator
/// sandbox mode uses.
///
/// Calls to Atrium and to Dwolla each go through a budget shared by every process on `db`
/// (`DONKIES_ATRIUM_CALLS_PER_SECOND`, `DONKIES_DWOLLA_CALLS_PER_SECOND`).
pub async fn connect(settings: &Settings, db: &Db, api: SocketAddr, serve_sandbox: bool) -> anyhow::Result<Providers> {
    let mut sims = Simulators::default();
    let rail = payment_rail(settings, api, serve_sandbox, &mut sims).await?;
    let rail = rail.with_gate(crate::call_rate::gate("dwolla", settings.dwolla_calls_per_second, db));
    let timeout = settings.atrium_timeout;
    let step = settings.sandbox_step;
    // `serve` runs the simulator, keeping its members in the data directory, and serves it
    // under ATRIUM_SANDBOX_PATH too; a worker or an operator command beside it reaches that one,
    // so that every process sees the same simulated banks.
    let data = settings.data_dir.clone();
    let sandbox =
        |base: Url| AtriumConfig::new(base, donkies_sandbox::SANDBOX_CLIENT_ID, donkies_sandbox::SANDBOX_API_KEY);
    let atrium = match &settings.atrium {
        ProviderSetting::Remote(r) => {
            Some(AtriumConfig::new(r.url.clone(), r.client_id.clone(), r.key.expose_secret().to_owned()))
        }
        ProviderSetting::Sandbox if serve_sandbox => {
            let sim = AtriumSim::start(loopback(), AtriumSimConfig { step, data: Some(data), ..Default::default() })
                .await
                .context("starting the in-process Atrium simulator")?;
            tracing::info!(url = %sim.base_url(), "no DONKIES_ATRIUM_URL: using the in-process Atrium simulator");
            let config = sandbox(sim.base_url());
            sims.atrium = Some(sim);
            Some(config)
        }
        ProviderSetting::Sandbox => Some(sandbox(atrium_sandbox_url(api))),
        ProviderSetting::Off => None,
    };
    let atrium = atrium.ok_or_else(|| ConfigError::new("DONKIES_ATRIUM_URL (--atrium-url)", "required"))?;
    let aggregator = AtriumClient::new(atrium.with_timeout(timeout))
        .map_err(|e| ConfigError::new("DONKIES_ATRIUM_URL (--atrium-url)", e))?
        .with_gate(crate::call_rate::gate("atrium", settings.atrium_calls_per_second, db));

    let mut social = SignInProviders::default();
    let invalid = |name: &str, e: donkies_social::SocialError| anyhow::anyhow!("{name} sign-in: {e}");
    let (facebook, sim) = build(
        &settings.facebook,
        |r| {
            let cfg = FacebookConfig::new(r.key.clone(), r.secret.expose_secret().to_owned());
            match &r.url {
                Some(url) => cfg.with_base_url(url.clone()),
                None => cfg,
            }
        },
        || async {
            let sim =
                FacebookSim::start(loopback(), Default::default()).await.context("starting the Facebook simulator")?;
            Ok((sim.client_config(), sim))
        },
    )
    .await?;
    sims.facebook = sim;
    if let Some(cfg) = facebook {
        social.facebook =
            Some(FacebookClient::new(cfg.with_timeout(SOCIAL_TIMEOUT)).map_err(|e| invalid("Facebook", e))?);
    }
    let (google, sim) = build(
        &settings.google,
        |r| {
            let cfg = GoogleConfig::new(r.key.clone(), r.secret.expose_secret().to_owned());
            match &r.url {
                Some(url) => cfg.with_base_url(url),
                None => cfg,
            }
        },
        || async {
            let sim =
                GoogleSim::start(loopback(), Default::default()).await.context("starting the Google simulator")?;
            Ok((sim.client_config(), sim))
        },
    )
    .await?;
    sims.google = sim;
    if let Some(cfg) = google {
        social.google = Some(GoogleClient::new(cfg.with_timeout(SOCIAL_TIMEOUT)).map_err(|e| invalid("Google", e))?);
    }
    let (twitter, sim) = build(
        &settings.twitter,
        |r| {
            let cfg = TwitterConfig::new(r.key.clone(), r.secret.expose_secret().to_owned());
            match &r.url {
                Some(url) => cfg.with_base_url(url.clone()),
                None => cfg,
            }
        },
        || async {
            let sim =
                TwitterSim::start(loopback(), Default::default()).await.context("starting the Twitter simulator")?;
            Ok((sim.client_config(), sim))
        },
    )
    .await?;
    sims.twitter = sim;
    if let Some(cfg) = twitter {
        social.twitter = Some(TwitterClient::new(cfg.with_timeout(SOCIAL_TIMEOUT)).map_err(|e| invalid("Twitter", e))?);
    }
    if sims.facebook.is_some() || sims.google.is_some() || sims.twitter.is_some() {
        tracing::info!("sign-in providers without keys are served by in-process simulators");
    }
    Ok(Providers { aggregator: Arc::new(aggregator), rail: Arc::new(rail), social, simulators: sims })
}
