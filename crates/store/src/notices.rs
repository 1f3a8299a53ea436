//! Notices between the processes sharing one PostgreSQL database, over `LISTEN/NOTIFY`.
//!
//! A notice is a short text on a channel. Its payload starts with the schema it concerns and a
//! space, so that processes on other schemas of the same database (tests) ignore it. SQLite has
//! no other process to tell: there every function here does nothing.

use crate::db::{Db, StoreError, Tx};

/// What changed in stored data that processes keep views of (the body is the service layer's).
pub const CHANGES: &str = "donkies_changes";

/// The longest body PostgreSQL takes in a notice, less room for the schema.
pub const MAX_BODY: usize = 7_000;

/// Send `body` on `channel` when `tx` commits (and not at all if it rolls back).
pub async fn notify_on_commit(tx: &mut Tx, channel: &str, body: &str) -> Result<(), StoreError> {
    if let Tx::Postgres(t) = tx {
        sqlx::query("SELECT pg_notify($1, current_schema() || ' ' || $2)")
            .bind(channel)
            .bind(body)
            .execute(&mut **t)
            .await?;
    }
    Ok(())
}

/// Send `body` on `channel` now.
pub async fn notify(db: &Db, channel: &str, body: &str) -> Result<(), StoreError> {
    if let Db::Postgres(pool) = db {
        sqlx::query("SELECT pg_notify($1, current_schema() || ' ' || $2)")
            .bind(channel)
            .bind(body)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// How many processes listen for notices on this database's schema under `name` (see
/// [`Listener::connect`]), counted from the server's own list of connections.
pub async fn listeners(db: &Db, name: &str) -> Result<i64, StoreError> {
    let Db::Postgres(pool) = db else { return Ok(0) };
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = left($1 || ' ' || current_schema(), 63)",
    )
    .bind(name)
    .fetch_one(pool)
    .await?)
}

/// A dedicated connection (outside the pool) listening on channels for notices about this
/// database's schema.
pub struct Listener {
    listener: sqlx::postgres::PgListener,
    schema: String,
}

impl Listener {
    /// `None` on SQLite. The connection is named `name` and the schema, so that
    /// [`listeners`] counts it.
    pub async fn connect(db: &Db, name: &str, channels: &[&str]) -> Result<Option<Listener>, StoreError> {
        let Db::Postgres(pool) = db else { return Ok(None) };
        let schema: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(pool).await?;
        let mut app = format!("{name} {schema}");
        app.truncate(63);
        // A pool of one of its own, with the pool's options (its search path), which the
        // listener also uses to reconnect.
        let own = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with((*pool.connect_options()).clone().application_name(&app));
        let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
        listener.listen_all(channels.iter().copied()).await?;
        Ok(Some(Listener { listener, schema }))
    }

    /// The next notice about this schema, as its channel and body; `None` when the connection
    /// was lost and made again (notices may have been missed meanwhile).
    pub async fn recv(&mut self) -> Result<Option<(String, String)>, StoreError> {
        loop {
            let Some(note) = self.listener.try_recv().await? else { return Ok(None) };
            let payload = note.payload();
            let (schema, body) = payload.split_once(' ').unwrap_or((payload, ""));
            if schema == self.schema {
                return Ok(Some((note.channel().to_owned(), body.to_owned())));
            }
        }
    }
}
