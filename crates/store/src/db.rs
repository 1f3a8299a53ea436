use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The current time at the precision both engines store (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write. It carries the constraint's name as
    /// [`crate::constraints`] spells it, the same on both engines.
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("unsupported database URL {0:?}: expected sqlite:// or postgres://")]
    UnsupportedUrl(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored value is invalid: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Translate unique-constraint violations (raised by the insert itself, never pre-checked,
    /// so concurrent requests cannot race) into [`StoreError::Conflict`] with the constraint's
    /// engine-independent name.
    pub(crate) fn from_write(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err
            && db.is_unique_violation()
        {
            return StoreError::Conflict(crate::constraints::normalise(db.constraint(), db.message()));
        }
        StoreError::Database(err)
    }

    /// Whether this is a [`StoreError::Conflict`] on the unique constraint `name` (one of
    /// [`crate::constraints`]), e.g. `err.on_constraint(constraints::USERS_EMAIL)`.
    pub fn on_constraint(&self, name: &str) -> bool {
        matches!(self, StoreError::Conflict(constraint) if constraint == name)
    }
}

/// Waits for the database, reported as `tracing` events (DEBUG) that carry the seconds waited:
/// every pool checkout, by sqlx (target [`POOL_WAIT_TARGET`], field [`POOL_WAIT_FIELD`]), and on
/// SQLite the queue for its one writer (target [`WRITER_WAIT_TARGET`], field `waited_secs`).
pub const POOL_WAIT_TARGET: &str = "sqlx::pool::acquire";
/// sqlx's own spelling.
pub const POOL_WAIT_FIELD: &str = "aquired_after_secs";
pub const WRITER_WAIT_TARGET: &str = "donkies_store::writer";
pub const WRITER_WAIT_FIELD: &str = "waited_secs";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool on one of the two supported engines.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite allows one writer at a time; `writer` serialises this process's write
    /// transactions so they queue instead of failing with SQLITE_BUSY.
    Sqlite {
        pool: SqlitePool,
        writer: Arc<Mutex<()>>,
    },
    Postgres(PgPool),
}

/// An open transaction; dropped without [`Tx::commit`] it rolls back.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>, OwnedMutexGuard<()>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// Where a read runs: on the pool, or inside an open transaction (to see what it wrote). A read
/// takes `impl Into<Conn>`, so callers pass `&Db` or `&mut Tx` alike; writes take `&mut Tx` only,
/// so the use case that begins the transaction decides what commits together.
pub enum Conn<'a> {
    Db(&'a Db),
    Tx(&'a mut Tx),
}

impl<'a> From<&'a Db> for Conn<'a> {
    fn from(db: &'a Db) -> Self {
        Conn::Db(db)
    }
}

impl<'a> From<&'a mut Tx> for Conn<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        Conn::Tx(tx)
    }
}

impl Conn<'_> {
    /// The same pool or transaction again, for one more query.
    pub fn reborrow(&mut self) -> Conn<'_> {
        match self {
            Conn::Db(db) => Conn::Db(db),
            Conn::Tx(tx) => Conn::Tx(tx),
        }
    }
}

/// Run the same expression against whichever typed pool or connection a [`Conn`] holds.
#[macro_export]
macro_rules! on_conn {
    ($conn:expr, $executor:ident => $body:expr) => {
        match $conn {
            $crate::Conn::Db(db) => $crate::on_db!(db, $executor => $body),
            $crate::Conn::Tx(tx) => $crate::on_tx!(tx, $executor => $body),
        }
    };
}

/// Run the same expression against whichever typed pool `db` holds.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite { pool: $pool, .. } => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}

/// Run the same expression against whichever typed connection `tx` holds.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::Tx::Sqlite(t, _) => {
                let $conn = &mut **t;
                $body
            }
            $crate::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

impl Db {
    /// Connect to `url` (`sqlite://path` — the file is created if missing and put in WAL
    /// mode — or `postgres://…`).
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        Self::open(url, None, None).await
    }

    /// Like [`Db::connect`], with at most `pool` connections open ([`Db::DEFAULT_POOL`] on
    /// PostgreSQL and one per core, two to eight, on SQLite when `None`).
    pub async fn connect_pooled(url: &str, pool: Option<u32>) -> Result<Db, StoreError> {
        Self::open(url, None, pool).await
    }

    /// Like [`Db::connect`], with PostgreSQL's `search_path` set to `schema` on every
    /// connection (tests use one schema per test).
    pub async fn connect_with(url: &str, pg_schema: Option<&str>) -> Result<Db, StoreError> {
        Self::open(url, pg_schema, None).await
    }

    /// Connections a PostgreSQL pool keeps at most unless told otherwise.
    pub const DEFAULT_POOL: u32 = 16;

    async fn open(url: &str, pg_schema: Option<&str>, pool: Option<u32>) -> Result<Db, StoreError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            // SQLite does its work on each connection's own thread: connections beyond one per
            // core only fight over the cores (eight 5,000-row reads at once ran at 40 % of the
            // rate they reach through two connections on two cores). Requests queue for a
            // connection instead.
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            let max = pool.unwrap_or_else(|| u32::try_from(cores).unwrap_or(8).clamp(2, 8)).max(1);
            let pool = SqlitePoolOptions::new()
                .max_connections(max)
                .min_connections(1)
                .acquire_time_level(log::LevelFilter::Debug)
                .connect_with(options)
                .await?;
            Ok(Db::Sqlite { pool, writer: Arc::new(Mutex::new(())) })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // No JIT: our statements are short index lookups, and an estimate past
            // `jit_above_cost` (stale statistics make one easily) compiled each of them for
            // ~18 ms to run it in 0.1 ms; a re-sync of 10,000 members spent most of its time so.
            let mut options = PgConnectOptions::from_str(url)?.options([("jit", "off")]);
            if let Some(schema) = pg_schema {
                options = options.options([("search_path", schema)]).application_name(schema);
            }
            let pool = PgPoolOptions::new()
                .max_connections(pool.unwrap_or(Self::DEFAULT_POOL).max(1))
                .acquire_timeout(Duration::from_secs(10))
                .acquire_time_level(log::LevelFilter::Debug)
                .connect_with(options)
                .await?;
            Ok(Db::Postgres(pool))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Apply the embedded migrations of this engine.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_to(i64::MAX).await
    }

    /// Apply the embedded migrations of this engine up to and including `version` (tests build
    /// a database as an older release left it, then migrate the rest).
    pub async fn migrate_to(&self, version: i64) -> Result<(), StoreError> {
        fn up_to(mut migrator: Migrator, version: i64) -> Migrator {
            migrator.migrations = migrator.migrations.iter().filter(|m| m.version <= version).cloned().collect();
            migrator
        }
        match self {
            Db::Sqlite { pool, .. } => up_to(sqlx::migrate!("./migrations/sqlite"), version).run(pool).await?,
            Db::Postgres(pool) => up_to(sqlx::migrate!("./migrations/postgres"), version).run(pool).await?,
        }
        Ok(())
    }

    /// Start a write transaction. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so a transaction never fails half-way on a lock upgrade.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        match self {
            Db::Sqlite { pool, writer } => {
                let queued = Instant::now();
                let guard = writer.clone().lock_owned().await;
                tracing::debug!(target: WRITER_WAIT_TARGET, waited_secs = queued.elapsed().as_secs_f64(), "took the write lock");
                let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                Ok(Tx::Sqlite(tx, guard))
            }
            Db::Postgres(pool) => Ok(Tx::Postgres(pool.begin().await?)),
        }
    }

    /// Connections open in the pool, and how many of them are idle.
    pub fn pool_usage(&self) -> (u32, usize) {
        on_db!(self, pool => (pool.size(), pool.num_idle()))
    }

    /// Cheap liveness query for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn close(&self) {
        on_db!(self, pool => pool.close().await)
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx, _guard) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_connections(db: &Db) -> u32 {
        on_db!(db, pool => pool.options().get_max_connections())
    }

    #[tokio::test]
    async fn a_sqlite_pool_takes_the_size_it_is_given() {
        let dir = std::env::temp_dir().join(format!("donkies-pool-{}", crate::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("pool.db").display());
        let db = Db::connect_pooled(&url, Some(3)).await.unwrap();
        assert_eq!(max_connections(&db), 3);
        db.close().await;
        let db = Db::connect_pooled(&url, None).await.unwrap();
        assert!((2..=8).contains(&max_connections(&db)), "one per core by default");
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    #[cfg_attr(not(postgres_tests), ignore = "set DONKIES_TEST_POSTGRES_URL to run the PostgreSQL half")]
    async fn a_postgres_pool_takes_the_size_it_is_given_else_sixteen() {
        let url = std::env::var("DONKIES_TEST_POSTGRES_URL").unwrap();
        let db = Db::connect_pooled(&url, Some(5)).await.unwrap();
        assert_eq!(max_connections(&db), 5);
        db.close().await;
        let db = Db::connect_pooled(&url, None).await.unwrap();
        assert_eq!(max_connections(&db), Db::DEFAULT_POOL);
        let Db::Postgres(pool) = &db else { unreachable!() };
        let jit: String = sqlx::query_scalar("SHOW jit").fetch_one(pool).await.unwrap();
        assert_eq!(jit, "off", "no statement of ours is worth compiling");
        db.close().await;
    }
}
