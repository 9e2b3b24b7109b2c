//! The lenient JSON decoding every parser of this crate is built on: [`DecodeError`],
//! the top-level body checks ([`json`], [`object_body`], [`list_body`]), the
//! path-tracking accessors of [`walk`], and the bodies that are no endpoint's data
//! (OAuth token, M2M session, error bodies) in [`bodies`]. Each endpoint's own parser
//! lives with its endpoint in `endpoints/`; the public entry points are re-exported
//! by `wire`, whose documentation states the leniency rules and what is an error.
//!
//! How: the body is parsed once into a `serde_json::Value`, then walked by small
//! typed accessors ([`walk`]) that carry the path to the value they read. That
//! gives errors an exact path (`deviceList[3].createTime`) and a message of our
//! own, keeps every leniency rule in one place instead of a custom deserializer
//! per field, and needs no extra dependency. serde derive with aliases would
//! reject a body on the first surprise with a positional message; the extra
//! `Value` allocation is small next to the network round trip.
//!
//! This module depends on no endpoint, on neither `client` nor `model`, so that
//! `auth`, `transport` and every endpoint can use it without an import cycle.

pub(crate) mod bodies;
pub(crate) mod walk;

use serde_json::Value;

use walk::{Field, kind};

/// A body that does not have the documented shape: `field` is a path such as
/// `deviceList[3].createTime` (empty for the top level).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct DecodeError {
    pub field: String,
    pub message: String,
}

impl DecodeError {
    fn top_level(message: impl Into<String>) -> Self {
        Self {
            field: String::new(),
            message: message.into(),
        }
    }
}

/// The body as JSON. serde_json's syntax errors give a position, never content.
pub(crate) fn json(body: &[u8]) -> Result<Value, DecodeError> {
    // Tolerate a UTF-8 byte-order mark; some gateways prepend one.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match body.trim_ascii_start().first() {
        None => return Err(DecodeError::top_level("empty body, expected JSON")),
        Some(b'<') => {
            return Err(DecodeError::top_level(
                "body is not JSON (it looks like HTML or XML)",
            ));
        }
        Some(_) => {}
    }
    serde_json::from_slice(body)
        .map_err(|e| DecodeError::top_level(format!("body is not valid JSON: {e}")))
}

/// The top level must be a JSON object (named by `what` in the message).
pub(crate) fn object_body(value: &Value, what: &str) -> Result<(), DecodeError> {
    match value {
        Value::Object(_) => Ok(()),
        other => Err(DecodeError::top_level(format!(
            "expected {what} (a JSON object), found {}",
            kind(other)
        ))),
    }
}

/// The top level must be a JSON list; `null` is accepted as an empty one.
pub(crate) fn list_body(value: &Value, what: &str) -> Result<(), DecodeError> {
    match value {
        Value::Array(_) | Value::Null => Ok(()),
        other => Err(DecodeError::top_level(format!(
            "expected {what} (a JSON list), found {}",
            kind(other)
        ))),
    }
}

/// Parses `body` with `read` once `shape` (`object_body` or `list_body`) accepted
/// its top level (named by `what` in the message).
pub(crate) fn body_with<T>(
    body: &[u8],
    shape: fn(&Value, &str) -> Result<(), DecodeError>,
    what: &str,
    read: impl FnOnce(Field<'_, '_>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let v = json(body)?;
    shape(&v, what)?;
    read(Field::root(&v))
}
