//! Fresh databases for tests: a new SQLite file, or a new PostgreSQL schema on the server named
//! by `DONKIES_TEST_POSTGRES_URL`. Both are removed when the [`TestDb`] is dropped.
//!
//! Tests of the PostgreSQL half mark themselves
//! `#[cfg_attr(not(postgres_tests), ignore = "…")]`: the store's build script sets
//! `cfg(postgres_tests)` when the variable is set, so without it they show as ignored, never as
//! passed, and running them anyway (`--include-ignored`) fails loudly in [`TestDb::postgres`].

use std::path::PathBuf;

use crate::{Backend, Db, new_hex_id};

pub const POSTGRES_URL_ENV: &str = "DONKIES_TEST_POSTGRES_URL";

pub struct TestDb {
    pub db: Db,
    /// The URL a separate process would use to reach the same database.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Schema { admin_url: String, schema: String },
}

impl TestDb {
    /// A fresh, fully migrated SQLite database.
    pub async fn sqlite() -> TestDb {
        Self::sqlite_at(i64::MAX).await
    }

    /// A fresh SQLite database with the migrations up to and including `version` applied.
    pub async fn sqlite_at(version: i64) -> TestDb {
        let path = std::env::temp_dir().join(format!("donkies-test-{}.db", new_hex_id()));
        let url = format!("sqlite://{}", path.display());
        let db = Db::connect(&url).await.expect("open test SQLite database");
        db.migrate_to(version).await.expect("migrate test SQLite database");
        TestDb { db, url, cleanup: Cleanup::File(path) }
    }

    /// A fresh, fully migrated schema on the PostgreSQL server named by
    /// `DONKIES_TEST_POSTGRES_URL`.
    ///
    /// # Panics
    /// When the variable is not set: a PostgreSQL test that cannot run must not pass.
    pub async fn postgres() -> TestDb {
        Self::postgres_at(i64::MAX).await
    }

    /// Like [`TestDb::postgres`], with the migrations up to and including `version` applied.
    pub async fn postgres_at(version: i64) -> TestDb {
        let admin_url = std::env::var(POSTGRES_URL_ENV).ok().filter(|url| !url.is_empty()).unwrap_or_else(|| {
            panic!("this PostgreSQL test needs {POSTGRES_URL_ENV}=postgres://… (it is ignored without it)")
        });
        let schema = format!("t_{}", new_hex_id());
        let admin = Db::connect(&admin_url).await.expect("connect to DONKIES_TEST_POSTGRES_URL");
        crate::on_db!(&admin, pool => sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(pool).await.map(|_| ()))
            .expect("create test schema");
        admin.close().await;
        let db = Db::connect_with(&admin_url, Some(&schema)).await.expect("connect to test schema");
        db.migrate_to(version).await.expect("migrate test schema");
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
        TestDb { db, url, cleanup: Cleanup::Schema { admin_url, schema } }
    }
}

/// A write that fails as a crash or a full disk would fail that step of a use case: a trigger
/// that refuses `op` (`INSERT` or `UPDATE`) on `table`, for the rows `when` (an SQL condition
/// over `NEW` and `OLD`, the same text on both engines) or for every row.
#[derive(Debug, Clone, Copy)]
pub struct Fault<'a> {
    pub op: &'a str,
    pub table: &'a str,
    pub when: Option<&'a str>,
}

/// The message a [`Fault`] fails with.
pub const INJECTED: &str = "injected fault";

impl TestDb {
    /// Install `fault` until [`TestDb::heal`].
    pub async fn inject(&self, fault: Fault<'_>) {
        let Fault { op, table, when } = fault;
        let name = format!("fault_{table}");
        let statements = match self.db.backend() {
            Backend::Sqlite => vec![format!(
                "CREATE TRIGGER {name} BEFORE {op} ON {table} {} BEGIN SELECT RAISE(ABORT, '{INJECTED}'); END",
                when.map(|w| format!("WHEN {w}")).unwrap_or_default()
            )],
            Backend::Postgres => vec![
                format!(
                    "CREATE OR REPLACE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION '{INJECTED}'; END $$"
                ),
                format!(
                    "CREATE TRIGGER {name} BEFORE {op} ON {table} FOR EACH ROW {} EXECUTE FUNCTION injected_fault()",
                    when.map(|w| format!("WHEN ({w})")).unwrap_or_default()
                ),
            ],
        };
        for sql in statements {
            crate::on_db!(&self.db, pool => sqlx::query(&sql).execute(pool).await.map(|_| ())).expect("install fault");
        }
    }

    /// Remove the fault installed on `table`.
    pub async fn heal(&self, table: &str) {
        let sql = match self.db.backend() {
            Backend::Sqlite => format!("DROP TRIGGER fault_{table}"),
            Backend::Postgres => format!("DROP TRIGGER fault_{table} ON {table}"),
        };
        crate::on_db!(&self.db, pool => sqlx::query(&sql).execute(pool).await.map(|_| ())).expect("remove fault");
    }
}

/// Pretend the user's accounts were last synced at `seen_at`: what a bank that stopped
/// answering leaves behind.
pub async fn set_balances_seen_at(
    db: &Db,
    user_id: i64,
    seen_at: chrono::DateTime<chrono::Utc>,
) -> Result<(), crate::StoreError> {
    crate::on_db!(db, pool => sqlx::query("UPDATE accounts SET balance_at = $2 WHERE user_id = $1")
        .bind(user_id)
        .bind(seen_at)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Schema { admin_url, schema } => {
                let (admin_url, schema) = (admin_url.clone(), schema.clone());
                // The test's runtime may be single-threaded and busy dropping us: use a private one.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                    rt.block_on(async move {
                        let admin = Db::connect(&admin_url).await.ok()?;
                        // A transaction the test dropped may still be open on a pooled
                        // connection (its rollback waits for the connection's next use), and
                        // would hold the schema's locks: end those sessions first.
                        let _ = crate::on_db!(&admin, p => sqlx::query(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                        )
                        .bind(&schema)
                        .execute(p)
                        .await
                        .map(|_| ()));
                        let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                        let _ = crate::on_db!(&admin, p => sqlx::query(&sql).execute(p).await.map(|_| ()));
                        admin.close().await;
                        Some(())
                    })
                })
                .join();
            }
        }
    }
}
