//! `/metrics` in the Prometheus text format: requests by route pattern (never a concrete path),
//! method and status with latency histograms and the requests in flight; jobs by kind and
//! outcome, the queue's depth and the age of its oldest due job; sign-in failures and rate-limit
//! rejections; the database pool and the waits for it.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::error::ApiResult;
use crate::services::Services;

/// The process's one recorder (every server of a process shares it, as tests run several).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let seconds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let builder = PrometheusBuilder::new().set_buckets(&seconds).expect("the buckets are not empty");
        match builder.install_recorder() {
            Ok(handle) => {
                describe();
                let wait = |kind: &'static str| metrics::histogram!("donkies_db_wait_seconds", "wait" => kind);
                let _ = DB_WAITS.set([wait("pool"), wait("writer")]);
                handle
            }
            // Another recorder is the process's already: render an empty one of our own.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// `donkies_db_wait_seconds` for the pool and for SQLite's writer, registered with the recorder
/// once it is the process's (a wait is recorded on nearly every request: no lookup by name).
static DB_WAITS: OnceLock<[metrics::Histogram; 2]> = OnceLock::new();

/// The help text of every family (Prometheus' lint wants one for each).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("donkies_http_requests_total", "HTTP requests by route pattern, method and status.");
    describe_histogram!("donkies_http_request_duration_seconds", "HTTP request latency by route pattern and method.");
    describe_gauge!("donkies_http_requests_in_flight", "HTTP requests being answered.");
    describe_counter!("donkies_jobs_enqueued_total", "Jobs enqueued by kind.");
    describe_counter!("donkies_jobs_total", "Job runs by kind and outcome.");
    describe_gauge!("donkies_jobs_in_queue", "Jobs in the queue by status.");
    describe_gauge!("donkies_jobs_oldest_due_seconds", "Age of the oldest due job.");
    describe_counter!("donkies_sign_in_failures_total", "Failed sign-ins.");
    describe_counter!("donkies_rate_limited_total", "Requests refused by a rate limit.");
    describe_gauge!("donkies_db_pool_connections", "Database pool connections by state.");
    describe_histogram!(
        "donkies_db_wait_seconds",
        "Waits for the database: for a pool connection, and on SQLite for its one writer."
    );
    describe_counter!("donkies_outside_calls_total", "Calls to outside services by provider, operation and outcome.");
    describe_histogram!("donkies_outside_call_duration_seconds", "Latency of calls to outside services.");
}

/// Count and time every request by its route pattern.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or("<unmatched>", |p| p.as_str()).to_owned();
    let in_flight = metrics::gauge!("donkies_http_requests_in_flight");
    in_flight.increment(1.0);
    let response = next.run(req).await;
    in_flight.decrement(1.0);
    let status = response.status().as_u16().to_string();
    metrics::counter!("donkies_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("donkies_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The scrape: gauges read now (queue, pool), then everything recorded.
pub async fn render(State(services): State<Services>) -> ApiResult<Response> {
    let queue = services.queue_stats().await?;
    for (status, n) in [("queued", queue.queued), ("running", queue.running), ("parked", queue.failed)] {
        metrics::gauge!("donkies_jobs_in_queue", "status" => status).set(n as f64);
    }
    metrics::gauge!("donkies_jobs_oldest_due_seconds").set(queue.oldest_due_seconds);
    let (size, idle) = services.pool_usage();
    metrics::gauge!("donkies_db_pool_connections", "state" => "open").set(f64::from(size));
    metrics::gauge!("donkies_db_pool_connections", "state" => "idle").set(idle as f64);
    let body = handle().render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response())
}

/// A `tracing` layer that turns the store's wait events (see [`donkies_store::POOL_WAIT_TARGET`])
/// into `donkies_db_wait_seconds{wait="pool"|"writer"}`. Install it with [`DbWaits::layer`].
pub struct DbWaits;

impl DbWaits {
    /// The layer behind its own filter: only the wait events reach it, whatever the log filter
    /// lets through.
    pub fn layer<S>() -> tracing_subscriber::filter::Filtered<DbWaits, tracing_subscriber::filter::Targets, S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use tracing_subscriber::Layer;
        let targets = tracing_subscriber::filter::Targets::new()
            .with_target(donkies_store::POOL_WAIT_TARGET, tracing::Level::DEBUG)
            .with_target(donkies_store::WRITER_WAIT_TARGET, tracing::Level::DEBUG);
        DbWaits.with_filter(targets)
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for DbWaits {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let Some([pool, writer]) = DB_WAITS.get() else {
            return; // metrics are off
        };
        let (histogram, field) = match event.metadata().target() {
            donkies_store::POOL_WAIT_TARGET => (pool, donkies_store::POOL_WAIT_FIELD),
            donkies_store::WRITER_WAIT_TARGET => (writer, donkies_store::WRITER_WAIT_FIELD),
            _ => return,
        };
        let mut seconds = Seconds { field, value: None };
        event.record(&mut seconds);
        if let Some(value) = seconds.value {
            histogram.record(value);
        }
    }
}

/// The one `f64` field of a wait event.
struct Seconds {
    field: &'static str,
    value: Option<f64>,
}

impl tracing::field::Visit for Seconds {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if field.name() == self.field {
            self.value = Some(value);
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}
