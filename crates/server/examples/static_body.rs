//! The benchmarks' yardstick: serves one file's bytes as a JSON body to every GET, on the same
//! runtime, HTTP stack and serve loop as `donkies serve`, with nothing else to do — what this
//! machine can send of that body per second. Not part of the product.
//!
//!   cargo run --release -p donkies-server --example static_body -- FILE [ADDR]
//!
//! Prints `static body listening on http://ADDR` once it accepts connections.

use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use bytes::Bytes;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = args.next().ok_or_else(|| anyhow::anyhow!("usage: static_body FILE [ADDR]"))?;
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let body = Bytes::from(std::fs::read(&file)?);
    tokio::runtime::Runtime::new()?.block_on(async move {
        let app = axum::Router::new().fallback(move || {
            let body = body.clone();
            async move {
                let mut response = body.into_response();
                response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                response
            }
        });
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("static body listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok(())
    })
}
