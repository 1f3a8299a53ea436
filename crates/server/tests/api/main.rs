//! Black-box tests of the `donkies` server: the real server on port 0, a fresh database per
//! test (SQLite always, PostgreSQL when DONKIES_TEST_POSTGRES_URL is set), a real SMTP
//! listener, and HTTP.

mod bank_data;
mod bank_model;
mod banking;
mod call_rate;
mod cluster;
mod crash;
mod edge;
mod helpers;
mod jobs;
mod metrics;
mod money;
mod money_model;
mod openapi;
mod payments;
mod process;
mod restart;
mod sessions;
mod smtp;
mod social;
mod users;
