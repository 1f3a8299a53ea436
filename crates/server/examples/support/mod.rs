//! What the benchmark examples share: their log output and the operator's services, built the
//! way the operator commands build them (the same settings from the environment, the same
//! `build_context`, the same log lines).

use std::sync::Arc;

use donkies_server::config::{CommonArgs, FileValues, ServeArgs, Settings};
use donkies_server::providers::Simulators;
use donkies_server::services::Services;

/// Log lines as the operator commands write them (RUST_LOG overrides the filter).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(false).try_init();
}

/// The services of an operator command on the migrated database, and the simulators started
/// for them (keep them alive while the services run).
pub async fn operator_services(common: &CommonArgs) -> anyhow::Result<(Services, Simulators)> {
    let listen = ServeArgs::from_environment().listen;
    let settings = Arc::new(Settings::resolve(listen, common, &FileValues::default())?);
    let db = donkies_server::open_database(&settings).await?;
    let api = settings.listen;
    let (ctx, simulators) = donkies_server::build_context(settings, db, api, false).await?;
    Ok((ctx.services, simulators))
}
