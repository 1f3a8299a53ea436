use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use donkies_dwolla::wire::{EmbeddedErrors, ErrorBody, FieldError, Link, Links, MEDIA_TYPE, OAuthError};
use serde::Serialize;

/// An error answered with Dwolla's body (B8.1).
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

pub(crate) const VALIDATION_MESSAGE: &str = "Validation error(s) present. See embedded errors list for more details.";

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody { code: code.to_owned(), message: message.into(), embedded: None, links: Links::new() },
        }
    }

    /// 400 `ValidationError` with these embedded errors.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut error = Self::new(StatusCode::BAD_REQUEST, "ValidationError", VALIDATION_MESSAGE);
        error.body.embedded = Some(EmbeddedErrors { errors });
        error
    }

    /// 400 `ValidationError` with one embedded error.
    pub fn field(code: &str, message: &str, path: &str) -> Self {
        Self::validation(vec![field_error(code, message, path)])
    }

    pub fn bad_request() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", "The request body contains bad syntax or is incomplete.")
    }

    pub fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// 403 `InvalidResourceState`.
    pub fn invalid_state(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "InvalidResourceState", message)
    }

    pub fn unauthorized(code: &str, message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// Adds an `about` link to the existing resource.
    pub fn about(mut self, href: String) -> Self {
        self.body.links.insert("about".into(), Link::new(href));
        self
    }
}

pub(crate) fn field_error(code: &str, message: &str, path: &str) -> FieldError {
    FieldError { code: code.to_owned(), message: message.to_owned(), path: Some(path.to_owned()), links: Links::new() }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = hal(self.status, &self.body);
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The token endpoint's OAuth error.
pub(crate) fn oauth_error(status: StatusCode, error: &str) -> Response {
    let body = OAuthError { error: error.to_owned(), error_description: None };
    (status, axum::Json(body)).into_response()
}

/// A JSON response with Dwolla's HAL media type.
pub(crate) fn hal<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE))], bytes).into_response(),
        Err(error) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("could not encode the response: {error}")).into_response()
        }
    }
}
