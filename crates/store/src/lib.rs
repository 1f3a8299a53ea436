//! Donkies storage: one code path over SQLite (default) and PostgreSQL (production).
//!
//! Every query text runs on both engines; the [`on_db!`] and [`on_tx!`] macros expand the same
//! expression once per typed pool, so booleans and timestamps keep their native types.

pub mod accounts;
mod column;
pub mod constraints;
mod db;
mod ids;
pub mod institutions;
pub mod jobs;
pub mod ledger;
pub mod members;
pub mod money_batch;
pub mod money_loop;
pub mod notices;
pub mod outbox;
pub mod payments;
pub mod rate_limits;
pub mod social;
pub mod testing;
pub mod tokens;
pub mod transactions;
pub mod users;

pub use db::{
    Backend, Conn, Db, POOL_WAIT_FIELD, POOL_WAIT_TARGET, StoreError, Tx, WRITER_WAIT_FIELD, WRITER_WAIT_TARGET, now,
};
pub use ids::{MAX_ID, id_time_ms, new_hex_id, new_id};
