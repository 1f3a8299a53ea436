//! One error type for every failure the API reports, rendered in the documented shapes.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::services::ServiceError;

#[derive(Debug)]
pub enum ApiError {
    /// 400 `{"field": ["message", …], …}`
    Fields(BTreeMap<String, Vec<String>>),
    /// 400 `{"non_field_errors": ["message"]}`
    NonField(String),
    /// 400 `{"message": "…"}` (the shape a few payment endpoints of the original answered).
    Message(String),
    /// 401 without credentials.
    Unauthenticated,
    /// 401 with a token that is unknown, malformed or expired.
    BadToken(&'static str),
    /// 401: a webhook without a valid signature.
    BadSignature,
    NotFound,
    MethodNotAllowed(Method),
    PayloadTooLarge,
    TooManyRequests {
        retry_after_secs: u64,
    },
    Unavailable(String),
    /// 500; the cause goes to the log only.
    Internal(anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn field(name: &str, message: impl Into<String>) -> ApiError {
        ApiError::Fields(BTreeMap::from([(name.to_owned(), vec![message.into()])]))
    }

    pub fn non_field(message: impl Into<String>) -> ApiError {
        ApiError::NonField(message.into())
    }
}

impl From<donkies_store::StoreError> for ApiError {
    fn from(err: donkies_store::StoreError) -> Self {
        ApiError::Internal(err.into())
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Fields(fields) => ApiError::Fields(fields),
            ServiceError::Invalid(message) => ApiError::NonField(message),
            ServiceError::NotFound => ApiError::NotFound,
            ServiceError::Unavailable { message, cause, .. } => {
                tracing::warn!(error = %cause, "outside service unavailable");
                ApiError::Unavailable(message)
            }
            ServiceError::Store(e) => ApiError::Internal(e.into()),
            ServiceError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError::Internal(err)
    }
}

fn detail(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "detail": message }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Fields(fields) => (StatusCode::BAD_REQUEST, axum::Json(fields)).into_response(),
            ApiError::Message(message) => {
                (StatusCode::BAD_REQUEST, axum::Json(json!({ "message": message }))).into_response()
            }
            ApiError::NonField(message) => {
                (StatusCode::BAD_REQUEST, axum::Json(json!({ "non_field_errors": [message] }))).into_response()
            }
            ApiError::Unauthenticated => {
                let mut r = detail(StatusCode::UNAUTHORIZED, "Authentication credentials were not provided.");
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
                r
            }
            ApiError::BadToken(message) => {
                let mut r =
                    (StatusCode::UNAUTHORIZED, axum::Json(json!({ "detail": message, "error_code": "Bad Token" })))
                        .into_response();
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
                r
            }
            ApiError::BadSignature => detail(StatusCode::UNAUTHORIZED, "Invalid webhook signature."),
            ApiError::NotFound => detail(StatusCode::NOT_FOUND, "Not found."),
            ApiError::MethodNotAllowed(method) => {
                detail(StatusCode::METHOD_NOT_ALLOWED, &format!("Method \"{method}\" not allowed."))
            }
            ApiError::PayloadTooLarge => {
                detail(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large (limit 1 MiB).")
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                let secs = retry_after_secs.max(1);
                let mut r = detail(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("Request was throttled. Expected available in {secs} seconds."),
                );
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
                r
            }
            ApiError::Unavailable(message) => detail(StatusCode::SERVICE_UNAVAILABLE, &message),
            ApiError::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "request failed");
                detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error.")
            }
        }
    }
}
