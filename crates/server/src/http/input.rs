//! The typed edge: a request body (JSON, form or multipart) is deserialized into the request
//! struct the OpenAPI document shows, then parsed into domain types, with every wrong field
//! reported at once in the documented error shape.

use std::collections::BTreeMap;
use std::fmt::Display;

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::error::ApiError;
use super::extract::Body;

pub const REQUIRED: &str = "This field is required.";
pub const BLANK: &str = "This field may not be blank.";

/// One field of a request as sent: absent (or null), a value of the expected type, or a value
/// of another type. Deserializing a field never fails, so one response can name every problem.
#[derive(Debug, Default)]
pub enum Field<T> {
    #[default]
    Absent,
    Given(T),
    WrongType(&'static str),
}

/// How a field's value is read from JSON, leniently for form posts (where all is text).
pub trait FieldValue: Sized {
    const WRONG_TYPE: &'static str;
    fn from_json(value: Value) -> Option<Self>;
}

impl FieldValue for String {
    const WRONG_TYPE: &'static str = "Not a valid string.";
    fn from_json(value: Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

impl FieldValue for bool {
    const WRONG_TYPE: &'static str = "Must be a valid boolean.";
    fn from_json(value: Value) -> Option<Self> {
        match value {
            Value::Bool(b) => Some(b),
            Value::Number(n) if n.as_i64() == Some(1) => Some(true),
            Value::Number(n) if n.as_i64() == Some(0) => Some(false),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "on" | "yes" => Some(true),
                "false" | "0" | "off" | "no" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }
}

impl FieldValue for i64 {
    const WRONG_TYPE: &'static str = "A valid integer is required.";
    fn from_json(value: Value) -> Option<Self> {
        match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl<T: DeserializeOwned> FieldValue for Vec<T> {
    const WRONG_TYPE: &'static str = "Expected a list of items.";
    fn from_json(value: Value) -> Option<Self> {
        let list = match value {
            Value::Array(list) => list,
            // Form posts carry a list as JSON text.
            Value::String(text) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Array(list)) => list,
                _ => return None,
            },
            _ => return None,
        };
        serde_json::from_value(Value::Array(list)).ok()
    }
}

impl<'de, T: FieldValue> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Null => Field::Absent,
            // PostgreSQL cannot store a NUL in text; no field of ours needs one.
            Value::String(s) if s.contains('\0') => Field::WrongType(super::extract::NUL),
            value => match T::from_json(value) {
                Some(v) => Field::Given(v),
                None => Field::WrongType(T::WRONG_TYPE),
            },
        })
    }
}

/// Collects the problems of every field of one request.
#[derive(Default)]
pub struct Check {
    errors: BTreeMap<String, Vec<String>>,
}

impl Check {
    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.entry(field.to_owned()).or_default().push(message.into());
    }

    /// The value if given; a wrong type is an error, absence is not.
    pub fn optional<T>(&mut self, name: &str, field: Field<T>) -> Option<T> {
        match field {
            Field::Absent => None,
            Field::Given(v) => Some(v),
            Field::WrongType(message) => {
                self.error(name, message);
                None
            }
        }
    }

    /// The value; absence is an error too.
    pub fn required<T>(&mut self, name: &str, field: Field<T>) -> Option<T> {
        if matches!(field, Field::Absent) {
            self.error(name, REQUIRED);
            return None;
        }
        self.optional(name, field)
    }

    /// A required string that is not blank.
    pub fn text(&mut self, name: &str, field: Field<String>) -> Option<String> {
        let value = self.required(name, field)?;
        if value.trim().is_empty() {
            self.error(name, BLANK);
            return None;
        }
        Some(value)
    }

    /// A required secret (a password): used exactly as typed, but not empty.
    pub fn secret(&mut self, name: &str, field: Field<String>) -> Option<String> {
        let value = self.required(name, field)?;
        if value.is_empty() {
            self.error(name, BLANK);
            return None;
        }
        Some(value)
    }

    /// Turn a value into a domain type with its parser, recording the parser's complaint.
    pub fn parse<T, U, E: Display>(
        &mut self,
        name: &str,
        value: Option<T>,
        parse: impl FnOnce(T) -> Result<U, E>,
    ) -> Option<U> {
        match parse(value?) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(name, e.to_string());
                None
            }
        }
    }

    /// Fail with every collected field error, if any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() { Ok(()) } else { Err(ApiError::Fields(self.errors)) }
    }
}

/// A request body type: what the OpenAPI document shows (`Self`), and the domain value it
/// parses into.
pub trait RequestBody: DeserializeOwned + Default {
    type Parsed;
    /// Parse every field, recording problems in `check`; `None` when any field is wrong.
    fn parse(self, check: &mut Check) -> Option<Self::Parsed>;
}

/// The extractor: the body, deserialized as `R` and parsed into `R::Parsed`.
pub struct Valid<R: RequestBody>(pub R::Parsed);

impl<S: Send + Sync, R: RequestBody> FromRequest<S> for Valid<R> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Body(map) = Body::from_request(req, state).await?;
        let raw: R = serde_json::from_value(Value::Object(map))
            .map_err(|e| ApiError::non_field(format!("Invalid data. {e}")))?;
        let mut check = Check::default();
        let parsed = raw.parse(&mut check);
        check.finish()?;
        parsed.map(Valid).ok_or_else(|| ApiError::non_field("Invalid data."))
    }
}
