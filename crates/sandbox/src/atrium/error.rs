use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use donkies_atrium::wire::{ErrorBody, MEDIA_TYPE};
use serde::Serialize;

/// An error answered with Atrium's body: `{"error": {"message": "…"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = atrium_json(self.status, &ErrorBody::new(self.message));
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A JSON response with Atrium's vendor media type.
pub(crate) fn atrium_json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE))], bytes).into_response(),
        Err(error) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("could not encode the response: {error}")).into_response()
        }
    }
}
