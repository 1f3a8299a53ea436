//! Where a simulator keeps its state between runs: a SQLite file
//! (`sandbox.db` in the data directory) with one row per record, written as
//! records change.
//!
//! A simulator keeps working on its in-memory state and marks what a request
//! changed in a [`Dirty`] list; before the request is answered,
//! [`Journal::write`] turns the list into rows and commits them in one
//! transaction, so an answer never tells of something the file does not
//! hold. One writer at a time: a request whose changes another request's
//! write took along waits for that write to commit before it answers.
//! Without a data directory the journal keeps nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

/// The file simulators keep their state in, inside the data directory.
pub const SANDBOX_DB_FILE: &str = "sandbox.db";

/// One change to write: a record's new body, or its removal.
#[derive(Debug)]
pub(crate) enum Row {
    Put { kind: &'static str, id: String, body: String },
    Delete { kind: &'static str, id: String },
}

impl Row {
    /// `record` as JSON under `kind`/`id`.
    pub fn put(kind: &'static str, id: impl Into<String>, record: &impl Serialize) -> Self {
        let body = serde_json::to_string(record).expect("simulator records serialize");
        Row::Put { kind, id: id.into(), body }
    }

    /// `record` under `kind`/`id`, or its removal when it is gone.
    pub fn of(kind: &'static str, id: String, record: Option<&impl Serialize>) -> Self {
        match record {
            Some(record) => Self::put(kind, id, record),
            None => Row::Delete { kind, id },
        }
    }
}

/// Records changed since the last write, in the order first changed (so
/// records load back in the order they were created). Off (marking nothing)
/// for a simulator that keeps nothing.
#[derive(Debug, Default)]
pub(crate) struct Dirty {
    on: bool,
    seen: HashSet<(&'static str, String)>,
    order: Vec<(&'static str, String)>,
}

impl Dirty {
    pub fn new(on: bool) -> Self {
        Self { on, ..Self::default() }
    }

    pub fn mark(&mut self, kind: &'static str, id: &str) {
        if self.on && self.seen.insert((kind, id.to_owned())) {
            self.order.push((kind, id.to_owned()));
        }
    }

    pub fn take(&mut self) -> Vec<(&'static str, String)> {
        self.seen.clear();
        std::mem::take(&mut self.order)
    }
}

/// A stored record as loaded: its kind, id and JSON body.
#[derive(Debug)]
pub(crate) struct Stored {
    pub kind: String,
    pub id: String,
    pub body: String,
}

impl Stored {
    pub fn parse<T: DeserializeOwned>(&self) -> std::io::Result<T> {
        serde_json::from_str(&self.body).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} {} in {SANDBOX_DB_FILE}: {e}", self.kind, self.id),
            )
        })
    }
}

/// The state file of one simulator (several simulators share the file, each
/// under its own name).
#[derive(Debug)]
pub(crate) struct Journal {
    sim: &'static str,
    pool: Option<SqlitePool>,
    writer: tokio::sync::Mutex<()>,
}

fn io(error: sqlx::Error) -> std::io::Error {
    std::io::Error::other(format!("the simulator state file: {error}"))
}

impl Journal {
    /// A journal that keeps nothing.
    pub fn memory(sim: &'static str) -> Self {
        Self { sim, pool: None, writer: tokio::sync::Mutex::new(()) }
    }

    /// Opens (creating it and `dir` when missing) the state file in `dir`,
    /// or keeps nothing without a directory.
    pub async fn open(sim: &'static str, dir: Option<&Path>) -> std::io::Result<Self> {
        let Some(dir) = dir else {
            return Ok(Self::memory(sim));
        };
        std::fs::create_dir_all(dir)?;
        let path: PathBuf = dir.join(SANDBOX_DB_FILE);
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(io)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode a commit survives the process crashing (not the
            // machine losing power), which is what a simulator needs.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        // One connection: writes are serialised anyway, and the simulators
        // sharing the file each have their own.
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(io)?;
        sqlx::query(
            "create table if not exists sim_records (
                sim text not null,
                kind text not null,
                id text not null,
                body text not null,
                unique (sim, kind, id)
            )",
        )
        .execute(&pool)
        .await
        .map_err(io)?;
        Ok(Self { sim, pool: Some(pool), writer: tokio::sync::Mutex::new(()) })
    }

    /// Whether this journal keeps anything.
    pub fn keeps(&self) -> bool {
        self.pool.is_some()
    }

    /// Every record of this simulator, in the order first written.
    pub async fn load(&self) -> std::io::Result<Vec<Stored>> {
        let Some(pool) = &self.pool else {
            return Ok(Vec::new());
        };
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("select kind, id, body from sim_records where sim = $1 order by rowid")
                .bind(self.sim)
                .fetch_all(pool)
                .await
                .map_err(io)?;
        Ok(rows.into_iter().map(|(kind, id, body)| Stored { kind, id, body }).collect())
    }

    /// Commits the rows `take` gives (called once this writer's turn has
    /// come, so that later writes always carry later state).
    pub async fn write(&self, take: impl FnOnce() -> Vec<Row>) -> std::io::Result<()> {
        let _turn = self.writer.lock().await;
        let rows = take();
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = pool.begin().await.map_err(io)?;
        for row in rows {
            match row {
                Row::Put { kind, id, body } => {
                    sqlx::query(
                        "insert into sim_records (sim, kind, id, body) values ($1, $2, $3, $4)
                         on conflict (sim, kind, id) do update set body = excluded.body",
                    )
                    .bind(self.sim)
                    .bind(kind)
                    .bind(id)
                    .bind(body)
                    .execute(&mut *tx)
                    .await
                    .map_err(io)?;
                }
                Row::Delete { kind, id } => {
                    sqlx::query("delete from sim_records where sim = $1 and kind = $2 and id = $3")
                        .bind(self.sim)
                        .bind(kind)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(io)?;
                }
            }
        }
        tx.commit().await.map_err(io)
    }

    /// Forgets every record of this simulator; `then` runs in the writer's
    /// turn (to clear the in-memory state with it).
    pub async fn clear(&self, then: impl FnOnce()) -> std::io::Result<()> {
        let _turn = self.writer.lock().await;
        then();
        if let Some(pool) = &self.pool {
            sqlx::query("delete from sim_records where sim = $1").bind(self.sim).execute(pool).await.map_err(io)?;
        }
        Ok(())
    }

    /// Closes the file.
    pub async fn close(&self) {
        if let Some(pool) = &self.pool {
            pool.close().await;
        }
    }
}
