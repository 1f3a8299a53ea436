//! Request extractors: bodies as JSON, form or multipart; the authenticated user; the client
//! address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Multipart, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::AppState;
use super::error::ApiError;
use crate::crypto::token_hash;
use donkies_store::users::User;

/// A request body as a map of field names to values, whatever its encoding. Form fields
/// arrive as strings; [`super::input::Field`] accepts both spellings.
#[derive(Debug, Default)]
pub struct Body(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type =
            req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        let mime = content_type.split(';').next().unwrap_or("").trim().to_owned();
        if mime == "multipart/form-data" {
            let mut multipart = Multipart::from_request(req, state)
                .await
                .map_err(|e| ApiError::non_field(format!("Multipart form parse error - {}", e.body_text())))?;
            let mut map = Map::new();
            loop {
                match multipart.next_field().await {
                    Ok(Some(field)) => {
                        let name = field.name().unwrap_or_default().to_owned();
                        let text = field.text().await.map_err(multipart_error)?;
                        map.insert(name, Value::String(text));
                    }
                    Ok(None) => break,
                    Err(e) => return Err(multipart_error(e)),
                }
            }
            return Ok(Body(map));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::non_field(format!("Could not read the request body: {}", rejection.body_text()))
            }
        })?;
        match mime.as_str() {
            "application/json" | "" if !bytes.iter().all(u8::is_ascii_whitespace) => {
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(Value::Object(map)) => Ok(Body(map)),
                    Ok(other) => Err(ApiError::non_field(format!(
                        "Invalid data. Expected a dictionary, but got {}.",
                        json_kind(&other)
                    ))),
                    Err(e) => Err(ApiError::non_field(format!("JSON parse error - {e}"))),
                }
            }
            "application/json" | "" => Ok(Body::default()),
            "application/x-www-form-urlencoded" => form(&bytes).map(Body),
            other => Err(ApiError::non_field(format!("Unsupported media type \"{other}\" in request. {ACCEPTED}"))),
        }
    }
}

/// What a body may be sent as, said wherever one is refused for its type.
const ACCEPTED: &str =
    "Send application/json, application/x-www-form-urlencoded or multipart/form-data (Content-Type header).";

/// A form body, every pair of which must decode: `name=value` with a name, valid `%XX` escapes
/// and UTF-8 text. Empty pieces (`a=1&&b=2`) are skipped, as browsers do.
fn form(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"{") || trimmed.starts_with(b"[") {
        // `curl -d '{...}'` without a Content-Type header sends JSON labelled as a form.
        return Err(ApiError::non_field(format!(
            "The body is JSON but its Content-Type is application/x-www-form-urlencoded. {ACCEPTED}"
        )));
    }
    let bad = |piece: &[u8]| {
        ApiError::non_field(format!(
            "Form parse error - \"{}\" is not a name=value pair.",
            String::from_utf8_lossy(piece)
        ))
    };
    let mut map = Map::new();
    for piece in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let Some(eq) = piece.iter().position(|b| *b == b'=') else { return Err(bad(piece)) };
        let (name, value) =
            (decode(&piece[..eq]).ok_or_else(|| bad(piece))?, decode(&piece[eq + 1..]).ok_or_else(|| bad(piece))?);
        if name.is_empty() {
            return Err(bad(piece));
        }
        map.insert(name, Value::String(value));
    }
    Ok(map)
}

/// One form-encoded name or value; `None` for a bad `%` escape or text that is not UTF-8.
fn decode(raw: &[u8]) -> Option<String> {
    let escapes_ok = raw
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'%')
        .all(|(i, _)| raw.get(i + 1..i + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)));
    if !escapes_ok {
        return None;
    }
    let spaced: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    percent_encoding::percent_decode(&spaced).decode_utf8().ok().map(|text| text.into_owned())
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::non_field(format!("Multipart form parse error - {}", e.body_text()))
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// The user behind a valid `Authorization: Token <key>` (or `Bearer <key>`) header.
pub struct AuthUser {
    pub user: User,
    pub token_hash: String,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            return Err(ApiError::Unauthenticated);
        };
        let header = header.to_str().map_err(|_| ApiError::BadToken("Invalid token."))?;
        let mut words = header.split_whitespace();
        // `Token <key>` as the original API spelt it, or the usual `Bearer <key>`.
        let ours = |scheme: &str| scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer");
        let key = match (words.next(), words.next(), words.next()) {
            (Some(scheme), Some(key), None) if ours(scheme) => key,
            (Some(scheme), _, _) if !ours(scheme) => return Err(ApiError::Unauthenticated),
            _ => return Err(ApiError::BadToken("Invalid token.")),
        };
        if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::BadToken("Invalid token."));
        }
        let hash = token_hash(&key.to_ascii_lowercase());
        let Some((user, expires_at)) = state.sessions.check(&hash, state.services.identity.session(&hash)).await?
        else {
            return Err(ApiError::BadToken("Invalid token."));
        };
        if expires_at <= donkies_store::now() {
            return Err(ApiError::BadToken("Token expired."));
        }
        Ok(AuthUser { user, token_hash: hash })
    }
}

/// The peer address of the connection.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientIp(addr))
    }
}

/// Parse an id as clients send it: a positive integer below 2^53, in plain digits.
pub fn parse_id(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok().filter(|id| *id > 0 && *id < donkies_store::MAX_ID)
}

/// An `{id}` path segment; anything but an id answers 404, as an unknown id does.
pub struct IdPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::NotFound)?;
        parse_id(&raw).map(IdPath).ok_or(ApiError::NotFound)
    }
}

/// A text segment of a path (a code, an identifier); one that cannot be text in the database
/// (bad UTF-8, a NUL) names nothing, so it is 404 like an unknown one.
pub struct TextPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for TextPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::NotFound)?;
        if raw.contains('\0') {
            return Err(ApiError::NotFound);
        }
        Ok(TextPath(raw))
    }
}

/// Two text segments of a path, as [`TextPath`].
pub struct TextPaths(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for TextPaths {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path((a, b)) = axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        if a.contains('\0') || b.contains('\0') {
            return Err(ApiError::NotFound);
        }
        Ok(TextPaths(a, b))
    }
}

/// Query parameters as `T`; a query that does not decode, or holds a NUL, is a 400 in the
/// API's shape rather than the framework's text.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|e| ApiError::non_field(format!("Invalid query string: {e}")))?;
        if let Some((name, _)) = pairs.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
            return Err(ApiError::field(name, NUL));
        }
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|e| ApiError::non_field(format!("Invalid query string: {e}")))
    }
}

/// Text with a NUL cannot be stored (PostgreSQL refuses it): refused at the edge.
pub const NUL: &str = "Null characters are not allowed.";
