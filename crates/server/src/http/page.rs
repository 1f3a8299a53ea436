//! Lists are plain JSON arrays; with `?limit=N&offset=M` they become
//! `{"count", "next", "previous", "results"}` with absolute `next`/`previous` URLs.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::error::ApiError;

/// Largest page a client may ask for.
pub const MAX_LIMIT: usize = 1000;

pub struct Page {
    /// `None`: the whole list as a plain array.
    pub limit: Option<usize>,
    pub offset: usize,
    base: String,
    other_params: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default();
        let mut errors = std::collections::BTreeMap::new();
        let mut number = |name: &str, min: usize| -> Option<usize> {
            let raw = pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())?;
            match raw.parse::<usize>() {
                Ok(n) if n >= min => Some(n),
                _ => {
                    errors.insert(name.to_owned(), vec![format!("Ensure this value is an integer of at least {min}.")]);
                    None
                }
            }
        };
        let limit = number("limit", 1).map(|l| l.min(MAX_LIMIT));
        let offset = number("offset", 0).unwrap_or(0);
        if !errors.is_empty() {
            return Err(ApiError::Fields(errors));
        }
        let host = parts.headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        let scheme = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .filter(|p| *p == "https")
            .unwrap_or("http");
        let base = format!("{scheme}://{host}{}", parts.uri.path());
        let other_params = pairs.into_iter().filter(|(k, _)| k != "limit" && k != "offset").collect();
        Ok(Page { limit, offset, base, other_params })
    }
}

impl Page {
    fn link(&self, limit: usize, offset: usize) -> String {
        let mut params = self.other_params.clone();
        params.push(("limit".into(), limit.to_string()));
        if offset > 0 {
            params.push(("offset".into(), offset.to_string()));
        }
        format!("{}?{}", self.base, serde_urlencoded::to_string(&params).unwrap_or_default())
    }

    /// The page of a fully loaded list (or the whole list without `limit`).
    pub fn respond<T: Serialize>(&self, items: Vec<T>) -> Response {
        match self.limit {
            None => axum::Json(items).into_response(),
            Some(_) => {
                let count = items.len();
                let page: Vec<T> = items.into_iter().skip(self.offset).take(self.limit.unwrap_or(0)).collect();
                self.respond_counted(count, page)
            }
        }
    }

    /// The JSON of [`Page::respond`]'s answer.
    pub fn render<T: Serialize>(&self, items: Vec<T>) -> Result<Vec<u8>, ApiError> {
        let json = match self.limit {
            None => serde_json::to_vec(&items),
            Some(limit) => {
                let count = items.len();
                let page: Vec<T> = items.into_iter().skip(self.offset).take(limit).collect();
                match self.links(count) {
                    None => serde_json::to_vec(&page),
                    Some((next, previous)) => serde_json::to_vec(
                        &json!({ "count": count, "next": next, "previous": previous, "results": page }),
                    ),
                }
            }
        };
        json.map_err(|e| ApiError::Internal(e.into()))
    }

    /// A page the caller already cut (with `limit`/`offset`) out of `count` items.
    pub fn respond_counted<T: Serialize>(&self, count: usize, page: Vec<T>) -> Response {
        let Some((next, previous)) = self.links(count) else {
            return axum::Json(page).into_response();
        };
        axum::Json(json!({ "count": count, "next": next, "previous": previous, "results": page })).into_response()
    }

    /// The `next` and `previous` links of a page out of `count` items; `None` without `limit`.
    pub fn links(&self, count: usize) -> Option<(Option<String>, Option<String>)> {
        let limit = self.limit?;
        let next = (self.offset + limit < count).then(|| self.link(limit, self.offset + limit));
        let previous = (self.offset > 0).then(|| self.link(limit, self.offset.saturating_sub(limit)));
        Some((next, previous))
    }

    /// What a rendering of this page depends on besides the items: limit and offset and, for a
    /// page, the links' base and other query parameters.
    pub fn cache_key(&self) -> String {
        match self.limit {
            None => "all".to_owned(),
            Some(limit) => format!("{limit}/{}/{}?{:?}", self.offset, self.base, self.other_params),
        }
    }
}
