//! What the benchmark examples share: their log output and the operator's services, built the
//! way the operator commands build them (the same settings from the environment, the same
//! `build_context`, the same log lines). Each example uses what it needs of it.
#![allow(dead_code)]

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
    let settings = Arc::new(operator_settings(common)?);
    let db = donkies_server::open_database(&settings).await?;
    let api = settings.listen;
    let (ctx, simulators) = donkies_server::build_context(settings, db, api, false).await?;
    Ok((ctx.services, simulators))
}

/// The settings an operator command resolves from its flags and the environment.
pub fn operator_settings(common: &CommonArgs) -> anyhow::Result<Settings> {
    Ok(Settings::resolve(ServeArgs::from_environment().listen, common, &FileValues::default())?)
}

/// A new confirmed user `{prefix}{i}@example.com` (the database must be fresh).
pub async fn new_user(services: &Services, prefix: &str, i: usize) -> anyhow::Result<i64> {
    use donkies_server::services::identity::{Created, NewAccount};
    let email =
        donkies_domain::Email::parse(&format!("{prefix}{i}@example.com")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut work = services.begin().await?;
    let account = NewAccount {
        email: &email,
        password_hash: "!".to_owned(),
        first_name: "Bench",
        last_name: "User",
        confirmed: true,
    };
    let Created::User(user_id) = services.identity.create_user(&mut work, account).await? else {
        anyhow::bail!("{email} is taken: the database is not fresh");
    };
    work.commit().await?;
    Ok(user_id)
}

/// The sandbox's mxbank login.
pub fn mxbank() -> Vec<(donkies_server::services::banking::Keyed, String)> {
    use donkies_server::services::banking::Keyed;
    vec![
        (Keyed::Name("LOGIN".to_owned()), "test_atrium".to_owned()),
        (Keyed::Name("PASSWORD".to_owned()), "password".to_owned()),
    ]
}

/// The user links mxbank, polled here (as no worker runs) every `step` until its aggregation
/// completed and its transactions synced.
pub async fn link_mxbank_polled(
    services: &Services,
    user_id: i64,
    step: std::time::Duration,
) -> anyhow::Result<donkies_store::members::Member> {
    let banking = &services.banking;
    let created = banking.create_member(user_id, "mxbank", mxbank()).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        banking.poll_member(created.id, created.poll_generation).await?;
        let member = banking.member_by_id(created.id).await?;
        if member.status == donkies_domain::MemberStatus::Completed {
            return Ok(member);
        }
        anyhow::ensure!(
            !member.gave_up && std::time::Instant::now() < deadline,
            "member {} did not complete",
            member.id
        );
        tokio::time::sleep(step).await;
    }
}
