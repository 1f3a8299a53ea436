//! Rendered response bodies kept per user and query, for reads that are large, asked for often
//! and change rarely (the transaction list).
//!
//! A body is kept with the version of the data it was rendered from. A change committed in this
//! process drops the user's bodies at once (through the change hook); another process's change
//! shows within `ttl` (DONKIES_CACHE_MS): a body past half of it is checked against the data's
//! version in the background while it is still served, one past all of it before it is served,
//! and either is rendered again only when the version moved. Requests that arrive while a body
//! is being loaded wait for that one load instead of starting their own. A zero `ttl` renders
//! every request.
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
    /// The `ETag` header of the plain and of the gzip encoding, made once.
    etags: [HeaderValue; 2],
    json: Bytes,
    gzip: OnceCell<Bytes>,
}

impl Rendered {
    pub fn new(json: Vec<u8>) -> Rendered {
        let digest = Sha256::digest(&json);
        let tag = hex::encode(&digest[..16]);
        let etag = |tag: String| HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
        let etags = [etag(format!("\"{tag}\"")), etag(format!("\"{tag}.gz\""))];
        Rendered { tag, etags, json: Bytes::from(json), gzip: OnceCell::new() }
    }

    /// A number that differs between different bodies (but for a 2^-64 chance).
    pub fn version(&self) -> i64 {
        i64::from_str_radix(&self.tag[..15], 16).unwrap_or_default()
    }

    fn etag(&self, gzip: bool) -> HeaderValue {
        self.etags[usize::from(gzip)].clone()
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

/// What a load found: the kept body is still current, or a new rendering of `version`.
pub enum Loaded {
    Current,
    New { version: i64, body: Box<Rendered> },
}

/// A rendered body and the version of the data it was rendered from.
struct Kept {
    version: i64,
    body: Arc<Rendered>,
}

type Cell = Arc<OnceCell<Arc<Kept>>>;

struct Slot {
    user_id: i64,
    /// When the kept body was last known current (taken before its version was read).
    born: Instant,
    body: Cell,
    /// A check of the kept body's version is under way.
    checking: bool,
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

    /// The user's body under `key`: kept, being loaded by another request, or loaded now.
    ///
    /// `load(known)` reads the data's version and, unless it is `known` (the kept body's),
    /// renders the body anew. A kept body past half its life is checked that way in the
    /// background while it is still served; one past its whole life is checked before it is
    /// served. So readers wait only when there is nothing current to show, and a body is
    /// rendered again only when its data changed.
    pub async fn get_or_render<F, Fut>(&self, user_id: i64, key: String, load: F) -> ApiResult<Arc<Rendered>>
    where
        F: FnOnce(Option<i64>) -> Fut + Send + 'static,
        Fut: Future<Output = ApiResult<Loaded>> + Send + 'static,
    {
        let nothing_kept = || ApiError::Internal(anyhow::anyhow!("a kept body was current, but none is kept"));
        if self.ttl.is_zero() {
            return match load(None).await? {
                Loaded::New { body, .. } => Ok(Arc::from(body)),
                Loaded::Current => Err(nothing_kept()),
            };
        }
        let lock_failed = || ApiError::Internal(anyhow::anyhow!("cache lock"));
        let mut load = Some(load);
        let (cell, known) = {
            let mut slots = self.slots.lock().map_err(|_| lock_failed())?;
            match slots.get_mut(&key) {
                Some(slot) if slot.born.elapsed() < self.ttl => {
                    if let Some(kept) = slot.body.get()
                        && slot.born.elapsed() >= self.ttl / 2
                        && !slot.checking
                    {
                        slot.checking = true;
                        let load = load.take().ok_or_else(lock_failed)?;
                        tokio::spawn(check(self.slots.clone(), key, slot.body.clone(), kept.clone(), load));
                    }
                    (slot.body.clone(), None)
                }
                expired => {
                    let kept = expired.and_then(|slot| slot.body.get().cloned());
                    if slots.len() >= MAX_BODIES {
                        let ttl = self.ttl;
                        slots.retain(|_, s| s.born.elapsed() < ttl);
                        if slots.len() >= MAX_BODIES {
                            slots.clear();
                        }
                    }
                    let body: Cell = Arc::new(OnceCell::new());
                    slots.insert(key, Slot { user_id, born: Instant::now(), body: body.clone(), checking: false });
                    (body, kept)
                }
            }
        };
        // A change published meanwhile removed the slot, not this cell: whoever waits on it got
        // here before the change and may see the body as it was; later requests load anew.
        let kept = cell
            .get_or_try_init(|| async move {
                let load = load.ok_or_else(lock_failed)?;
                match load(known.as_ref().map(|k| k.version)).await? {
                    Loaded::Current => known.ok_or_else(nothing_kept),
                    Loaded::New { version, body } => Ok(Arc::new(Kept { version, body: Arc::from(body) })),
                }
            })
            .await?;
        Ok(kept.body.clone())
    }

    /// Drop every body (something changed, and whose is not known).
    pub fn forget_all(&self) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.clear();
        }
    }

    /// Drop every body of the user (something they see changed).
    pub fn forget_user(&self, user_id: i64) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.retain(|_, slot| slot.user_id != user_id);
        }
    }
}

/// Check whether `kept` (the body in `old`) is still current, rendering it anew if not, and
/// keep the answer unless a change dropped `old` meanwhile (then this answer may predate the
/// change and is thrown away).
async fn check<F, Fut>(slots: Slots, key: String, old: Cell, kept: Arc<Kept>, load: F)
where
    F: FnOnce(Option<i64>) -> Fut,
    Fut: Future<Output = ApiResult<Loaded>>,
{
    let started = Instant::now();
    let loaded = load(Some(kept.version)).await;
    let Ok(mut slots) = slots.lock() else { return };
    let Some(slot) = slots.get_mut(&key).filter(|slot| Arc::ptr_eq(&slot.body, &old)) else { return };
    slot.checking = false;
    match loaded {
        Ok(Loaded::Current) => slot.born = started,
        Ok(Loaded::New { version, body }) => {
            slot.body = Arc::new(OnceCell::new_with(Some(Arc::new(Kept { version, body: Arc::from(body) }))));
            slot.born = started;
        }
        Err(err) => tracing::warn!(error = %format!("{err:?}"), "a kept body could not be checked"),
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

    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

    /// Data whose version a test moves, and how often it was rendered and checked.
    #[derive(Default)]
    struct Source {
        version: AtomicI64,
        renders: AtomicUsize,
        checks: AtomicUsize,
    }

    impl Source {
        fn loader(self: &Arc<Self>, user: i64) -> impl FnOnce(Option<i64>) -> BoxLoad + Send + 'static {
            let source = self.clone();
            move |known| {
                Box::pin(async move {
                    source.checks.fetch_add(1, Ordering::SeqCst);
                    let version = source.version.load(Ordering::SeqCst);
                    if known == Some(version) {
                        return Ok(Loaded::Current);
                    }
                    source.renders.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(80)).await;
                    Ok(Loaded::New {
                        version,
                        body: Box::new(Rendered::new(format!("[{user},{version}]").into_bytes())),
                    })
                })
            }
        }
        fn renders(&self) -> usize {
            self.renders.load(Ordering::SeqCst)
        }
    }

    type BoxLoad = std::pin::Pin<Box<dyn Future<Output = ApiResult<Loaded>> + Send>>;

    async fn get(bodies: &RenderedBodies, source: &Arc<Source>, user: i64) -> Bytes {
        bodies.get_or_render(user, format!("{user}/all"), source.loader(user)).await.unwrap().json.clone()
    }

    #[tokio::test]
    async fn concurrent_misses_render_once_and_a_forgotten_user_renders_again() {
        let bodies = RenderedBodies::new(Duration::from_secs(60));
        let source = Arc::new(Source::default());
        let all = futures::future::join_all((0..8).map(|_| get(&bodies, &source, 1))).await;
        assert!(all.iter().all(|b| b == "[1,0]"));
        assert_eq!(source.renders(), 1);
        get(&bodies, &source, 2).await;
        bodies.forget_user(1);
        get(&bodies, &source, 1).await;
        get(&bodies, &source, 2).await;
        assert_eq!(source.renders(), 3, "user 2 kept, user 1 rendered again");
    }

    #[tokio::test]
    async fn a_kept_body_is_checked_and_rendered_again_only_when_its_data_changed() {
        let bodies = RenderedBodies::new(Duration::from_millis(400));
        let source = Arc::new(Source::default());
        assert_eq!(get(&bodies, &source, 1).await, "[1,0]");
        // Past half its life, unchanged: served at once, checked in the background, not rendered.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let started = Instant::now();
        assert_eq!(get(&bodies, &source, 1).await, "[1,0]", "the kept body, at once");
        assert!(started.elapsed() < Duration::from_millis(60));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!((source.renders(), source.checks.load(Ordering::SeqCst)), (1, 2), "checked, not rendered");
        // Past its whole life, unchanged: checked first, still not rendered.
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(get(&bodies, &source, 1).await, "[1,0]");
        assert_eq!(source.renders(), 1);
        // Changed (by another process: nothing forgot it here): past half its life the kept
        // body is served while the new one renders; then the new one is served.
        source.version.store(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(get(&bodies, &source, 1).await, "[1,0]");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(get(&bodies, &source, 1).await, "[1,1]", "rendered in the background");
        assert_eq!(source.renders(), 2);
        // Changed, and the kept body past its whole life: the request waits for the new one.
        source.version.store(2, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(get(&bodies, &source, 1).await, "[1,2]");
        assert_eq!(source.renders(), 3);
    }

    #[tokio::test]
    async fn a_zero_ttl_renders_every_request() {
        let bodies = RenderedBodies::new(Duration::ZERO);
        let source = Arc::new(Source::default());
        get(&bodies, &source, 1).await;
        get(&bodies, &source, 1).await;
        assert_eq!(source.renders(), 2);
    }
}
