//! `cfg(postgres_tests)` is set when `DONKIES_TEST_POSTGRES_URL` names a PostgreSQL server, so
//! the PostgreSQL half of the contract tests runs; without it those tests show as ignored.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo::rerun-if-env-changed=DONKIES_TEST_POSTGRES_URL");
    // The migrations are embedded by `sqlx::migrate!`: a new one must rebuild the crate.
    println!("cargo::rerun-if-changed=migrations");
    if std::env::var_os("DONKIES_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=postgres_tests");
    }
}
