//! Rendered response bodies kept per user and query, for reads that are large, asked for often
//! and change rarely (the transaction list).
//!
//! A body lives at most `ttl` (DONKIES_CACHE_MS): a change committed in this process drops the
//! user's bodies at once (through the change hook), another process's change shows within
//! `ttl`. Requests that arrive while a body is being rendered wait for that one rendering
//! instead of starting their own. A zero `ttl` renders every request.
//!
//! Each body carries a strong `ETag` (a digest of its bytes, so every process gives the same
//! tag to the same content) and, made once when a client first asks for it, its gzip form.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::error::{ApiError, ApiResult};

/// Bodies beyond this are dropped wholesale rather than grow without bound.
const MAX_BODIES: usize = 10_000;

/// A rendered JSON body, its entity tag and (once asked for) its gzip encoding.
pub struct Rendered {
    tag: String,
    json: Bytes,
    gzip: OnceCell<Bytes>,
}

impl Rendered {
    pub fn new(json: Vec<u8>) -> Rendered {
        let digest = Sha256::digest(&json);
        let tag = hex::encode(&digest[..16]);
        Rendered { tag, json: Bytes::from(json), gzip: OnceCell::new() }
    }

    fn etag(&self, gzip: bool) -> HeaderValue {
        let tag = if gzip { format!("\"{}.gz\"", self.tag) } else { format!("\"{}\"", self.tag) };
        HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
    }

    /// Whether `If-None-Match` names this body (in either encoding): the client has it.
    fn matches(&self, request: &HeaderMap) -> bool {
        request.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
            |tag| {
                let tag = tag.trim();
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                tag == "*" || tag.trim_matches('"').strip_suffix(".gz").unwrap_or(tag.trim_matches('"')) == self.tag
            },
        )
    }

    async fn gzip(&self) -> ApiResult<Bytes> {
        let json = self.json.clone();
        let compressed = self
            .gzip
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    let mut encoder =
                        flate2::write::GzEncoder::new(Vec::with_capacity(json.len() / 8), flate2::Compression::fast());
                    encoder.write_all(&json)?;
                    encoder.finish().map(Bytes::from)
                })
                .await
                .map_err(|e| ApiError::Internal(e.into()))?
                .map_err(|e| ApiError::Internal(e.into()))
            })
            .await?;
        Ok(compressed.clone())
    }

    /// The answer to a GET with `request`'s headers: 304 when the client has this body, else
    /// 200 with it, gzip-encoded when the client takes gzip.
    pub async fn respond(&self, request: &HeaderMap) -> ApiResult<Response> {
        let gzip = accepts_gzip(request);
        let mut response = if self.matches(request) {
            StatusCode::NOT_MODIFIED.into_response()
        } else if gzip {
            let mut r = self.gzip().await?.into_response();
            r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        } else {
            self.json.clone().into_response()
        };
        let ok = response.status() == StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(header::ETAG, self.etag(gzip));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if ok {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        Ok(response)
    }
}

/// Whether `Accept-Encoding` admits gzip (`gzip`, `x-gzip` or `*`, with a nonzero weight).
fn accepts_gzip(request: &HeaderMap) -> bool {
    request.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                .next()
                .unwrap_or(1.0);
            matches!(coding.as_str(), "gzip" | "x-gzip" | "*") && weight > 0.0
        },
    )
}

struct Slot {
    user_id: i64,
    born: Instant,
    body: Arc<OnceCell<Arc<Rendered>>>,
    /// A newer rendering of this body is under way.
    refreshing: bool,
}

type Slots = Arc<Mutex<HashMap<String, Slot>>>;

/// Rendered bodies by key, each owned by one user.
pub struct RenderedBodies {
    ttl: Duration,
    slots: Slots,
}

impl RenderedBodies {
    pub fn new(ttl: Duration) -> RenderedBodies {
        RenderedBodies { ttl, slots: Arc::default() }
    }

    /// The user's body under `key`: kept, being rendered by another request, or rendered now.
    /// A body past half its life is rendered again in the background while it is still
    /// served, so readers wait for a rendering only when there is none to show.
    pub async fn get_or_render<F, Fut>(&self, user_id: i64, key: String, render: F) -> ApiResult<Arc<Rendered>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ApiResult<Rendered>> + Send + 'static,
    {
        if self.ttl.is_zero() {
            return render().await.map(Arc::new);
        }
        let lock_failed = || ApiError::Internal(anyhow::anyhow!("cache lock"));
        let mut render = Some(render);
        let cell = {
            let mut slots = self.slots.lock().map_err(|_| lock_failed())?;
            match slots.get_mut(&key) {
                Some(slot) if slot.born.elapsed() < self.ttl => {
                    if slot.born.elapsed() >= self.ttl / 2 && !slot.refreshing && slot.body.initialized() {
                        slot.refreshing = true;
                        let job = render.take().ok_or_else(lock_failed)?;
                        tokio::spawn(refresh(self.slots.clone(), key, slot.body.clone(), job));
                    }
                    slot.body.clone()
                }
                _ => {
                    if slots.len() >= MAX_BODIES {
                        let ttl = self.ttl;
                        slots.retain(|_, s| s.born.elapsed() < ttl);
                        if slots.len() >= MAX_BODIES {
                            slots.clear();
                        }
                    }
                    let body = Arc::new(OnceCell::new());
                    slots.insert(key, Slot { user_id, born: Instant::now(), body: body.clone(), refreshing: false });
                    body
                }
            }
        };
        // A change published meanwhile removed the slot, not this cell: whoever waits on it got
        // here before the change and may see the body as it was; later requests render anew.
        cell.get_or_try_init(|| async move {
            match render {
                Some(render) => render().await.map(Arc::new),
                None => Err(ApiError::Internal(anyhow::anyhow!("a refreshed body was never rendered"))),
            }
        })
        .await
        .cloned()
    }

    /// Drop every body of the user (their transactions or round-up settings changed).
    pub fn forget_user(&self, user_id: i64) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.retain(|_, slot| slot.user_id != user_id);
        }
    }
}

/// Render `key` again and put it in place of `old`, unless a change dropped `old` meanwhile
/// (then this rendering may predate the change and is thrown away).
async fn refresh<F, Fut>(slots: Slots, key: String, old: Arc<OnceCell<Arc<Rendered>>>, render: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ApiResult<Rendered>>,
{
    let started = Instant::now();
    let rendered = render().await;
    let Ok(mut slots) = slots.lock() else { return };
    let Some(slot) = slots.get_mut(&key).filter(|slot| Arc::ptr_eq(&slot.body, &old)) else { return };
    slot.refreshing = false;
    match rendered {
        Ok(body) => {
            slot.body = Arc::new(OnceCell::new_with(Some(Arc::new(body))));
            slot.born = started;
        }
        Err(err) => tracing::warn!(error = %format!("{err:?}"), "a kept body could not be rendered again"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn gzip_is_taken_unless_weighted_zero() {
        assert!(accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "gzip, deflate, br")])));
        assert!(accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "br;q=1.0, GZIP;q=0.5")])));
        assert!(accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "*")])));
        assert!(!accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "gzip;q=0, br")])));
        assert!(!accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "identity")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn if_none_match_names_the_body_in_either_encoding() {
        let body = Rendered::new(b"[1,2,3]".to_vec());
        let tag = body.etag(false).to_str().unwrap().to_owned();
        let gz = body.etag(true).to_str().unwrap().to_owned();
        assert_ne!(tag, gz);
        for given in [tag.as_str(), gz.as_str(), "*", &format!("\"other\", W/{tag}")] {
            assert!(body.matches(&headers(&[(header::IF_NONE_MATCH, given)])), "{given}");
        }
        assert!(!body.matches(&headers(&[(header::IF_NONE_MATCH, "\"other\"")])));
        assert!(!body.matches(&HeaderMap::new()));
        assert_eq!(Rendered::new(b"[1,2,3]".to_vec()).tag, body.tag, "the same bytes get the same tag");
    }

    #[tokio::test]
    async fn concurrent_misses_render_once_and_a_forgotten_user_renders_again() {
        let bodies = Arc::new(RenderedBodies::new(Duration::from_secs(60)));
        let renders = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let get = |user: i64| {
            let (bodies, renders) = (bodies.clone(), renders.clone());
            async move {
                bodies
                    .get_or_render(user, format!("{user}/all"), move || async move {
                        renders.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(Rendered::new(format!("[{user}]").into_bytes()))
                    })
                    .await
                    .unwrap()
            }
        };
        let all = futures::future::join_all((0..8).map(|_| get(1))).await;
        assert!(all.iter().all(|b| b.json == "[1]"));
        assert_eq!(renders.load(std::sync::atomic::Ordering::SeqCst), 1);
        get(2).await;
        bodies.forget_user(1);
        get(1).await;
        get(2).await;
        assert_eq!(renders.load(std::sync::atomic::Ordering::SeqCst), 3, "user 2 kept, user 1 rendered again");
    }

    #[tokio::test]
    async fn a_body_past_half_its_life_is_served_while_rendered_again() {
        let bodies = RenderedBodies::new(Duration::from_millis(400));
        let version = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let get = || {
            let version = version.clone();
            bodies.get_or_render(1, "1/all".into(), move || async move {
                let v = version.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(Rendered::new(format!("[{v}]").into_bytes()))
            })
        };
        assert_eq!(get().await.unwrap().json, "[0]");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let started = Instant::now();
        assert_eq!(get().await.unwrap().json, "[0]", "the kept body, at once");
        assert!(started.elapsed() < Duration::from_millis(40));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(get().await.unwrap().json, "[1]", "the body rendered in the background");
        bodies.forget_user(1);
        assert_eq!(get().await.unwrap().json, "[2]");
    }
}
