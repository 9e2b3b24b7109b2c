//! Path-tracking, lenient accessors over a parsed `serde_json::Value`.
//!
//! Every accessor knows where it is (`deviceList[3].createTime`), so a failure names
//! the exact field without serde's positional messages. Paths are a borrowed chain
//! of segments on the stack and are rendered to a string only when an error is
//! built, so the happy path allocates nothing for them.
//!
//! The leniency rules live here, once, for every endpoint:
//! - a field may have several wire names; the first one present and not `null` wins
//!   (the documented name is listed first);
//! - absent, `null`, `""` and `"N/A"` are all "no value" for optional scalars;
//! - numbers may arrive as JSON numbers or as strings of digits;
//! - booleans may arrive as `true`/`false`, `"true"`/`"false"` or `0`/`1`;
//! - a `null` (or absent) list is empty.
//!
//! Error messages name the JSON *type* found, never the value, except for
//! timestamps (bounded excerpt): token bodies go through the same accessors and a
//! token must never end up in an error.

use std::fmt::Write as _;

use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::DecodeError;
use crate::time::{self, Timestamp};

/// Where a value sits in the body. The root renders as `""`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Path<'p> {
    parent: Option<&'p Path<'p>>,
    seg: Seg<'p>,
}

#[derive(Clone, Copy, Debug)]
enum Seg<'p> {
    Root,
    Key(&'p str),
    Index(usize),
}

impl<'p> Path<'p> {
    pub(crate) const ROOT: Path<'static> = Path {
        parent: None,
        seg: Seg::Root,
    };

    fn key<'q>(&'q self, key: &'q str) -> Path<'q> {
        Path {
            parent: Some(self),
            seg: Seg::Key(key),
        }
    }

    fn index(&self, index: usize) -> Path<'_> {
        Path {
            parent: Some(self),
            seg: Seg::Index(index),
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            segs.push(p.seg);
            cur = p.parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> DecodeError {
        DecodeError {
            field: self.render(),
            message: message.into(),
        }
    }
}

/// The JSON type of `v`, for messages (never its content).
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `""` and `"N/A"` (any case, surrounding blanks ignored) mean "no value".
pub(crate) fn is_absent_text(s: &str) -> bool {
    let t = s.trim();
    t.is_empty() || t.eq_ignore_ascii_case("n/a")
}

/// A located value that may be missing (absent or `null`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field<'a, 'p> {
    value: Option<&'a Value>,
    path: Path<'p>,
}

/// A located JSON object.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Obj<'a, 'p> {
    map: &'a Map<String, Value>,
    path: Path<'p>,
}

impl<'a> Field<'a, 'static> {
    /// The whole body (`null` counts as missing).
    pub(crate) fn root(value: &'a Value) -> Self {
        Field {
            value: (!value.is_null()).then_some(value),
            path: Path::ROOT,
        }
    }
}

impl<'a, 'p> Obj<'a, 'p> {
    /// The first of `names` that is present and not `null`; the path names the
    /// wire key actually used (or the documented first name when none is).
    pub(crate) fn field<'s>(&'s self, names: &[&'static str]) -> Field<'a, 's> {
        for name in names {
            if let Some(v) = self.map.get(*name).filter(|v| !v.is_null()) {
                return Field {
                    value: Some(v),
                    path: self.path.key(name),
                };
            }
        }
        Field {
            value: None,
            path: self.path.key(names.first().copied().unwrap_or("")),
        }
    }

    /// Every member of the object through `each(key, value)`, in the map's order
    /// (sorted by key unless serde_json's `preserve_order` is enabled).
    pub(crate) fn entries<T>(
        &self,
        mut each: impl FnMut(&'a str, Field<'a, '_>) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        self.map
            .iter()
            .map(|(k, v)| {
                let path = self.path.key(k);
                each(
                    k,
                    Field {
                        value: (!v.is_null()).then_some(v),
                        path,
                    },
                )
            })
            .collect()
    }
}

impl<'a, 'p> Field<'a, 'p> {
    pub(crate) fn value(&self) -> Option<&'a Value> {
        self.value
    }

    fn missing(&self) -> DecodeError {
        self.path.error("required field is missing")
    }

    fn wrong(&self, expected: &str, found: &Value) -> DecodeError {
        self.path
            .error(format!("expected {expected}, found {}", kind(found)))
    }

    pub(crate) fn object(&self) -> Result<Obj<'a, 'p>, DecodeError> {
        match self.value {
            Some(Value::Object(map)) => Ok(Obj {
                map,
                path: self.path,
            }),
            Some(other) => Err(self.wrong("an object", other)),
            None => Err(self.path.error("expected an object, found null or nothing")),
        }
    }

    /// Each element of a list through `each`; absent or `null` is an empty list.
    pub(crate) fn list<T>(
        &self,
        mut each: impl FnMut(Field<'a, '_>) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        match self.value {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let path = self.path.index(i);
                    each(Field {
                        value: (!v.is_null()).then_some(v),
                        path,
                    })
                })
                .collect(),
            Some(other) => Err(self.wrong("a list", other)),
        }
    }

    /// A string kept exactly as sent (numbers and booleans as their JSON text);
    /// only absent/`null` is `None`.
    pub(crate) fn opt_raw_string(&self) -> Result<Option<String>, DecodeError> {
        match self.value {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(other) => Err(self.wrong("a string", other)),
        }
    }

    /// Like [`Self::opt_raw_string`], with `""` and `"N/A"` also `None`.
    pub(crate) fn opt_string(&self) -> Result<Option<String>, DecodeError> {
        Ok(self.opt_raw_string()?.filter(|s| !is_absent_text(s)))
    }

    /// Present and not `null`; kept as sent, even if empty.
    pub(crate) fn req_string(&self) -> Result<String, DecodeError> {
        self.opt_raw_string()?.ok_or_else(|| self.missing())
    }

    /// Present, not `null`, not `""` nor `"N/A"` (identifiers and tokens).
    pub(crate) fn req_nonempty_string(&self) -> Result<String, DecodeError> {
        self.opt_string()?.ok_or_else(|| self.missing())
    }

    /// A non-negative integer, as a JSON number or a string of digits.
    pub(crate) fn opt_u64(&self) -> Result<Option<u64>, DecodeError> {
        const EXPECTED: &str = "expected a non-negative integer";
        match self.value {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) => Ok(Some(v)),
                // `2689.0` is an integer in disguise; negatives and fractions are not.
                // `<`, not `<=`: `u64::MAX as f64` is 2^64, one past the largest u64, and
                // `as` would quietly saturate it (and anything above) to `u64::MAX`.
                None => match n.as_f64() {
                    Some(f) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => {
                        Ok(Some(f as u64))
                    }
                    _ => Err(self
                        .path
                        .error(format!("{EXPECTED}, found a negative or fractional number"))),
                },
            },
            Some(Value::String(s)) if is_absent_text(s) => Ok(None),
            Some(Value::String(s)) => s.trim().parse::<u64>().map(Some).map_err(|_| {
                self.path
                    .error(format!("{EXPECTED}, found a string that is not one"))
            }),
            Some(other) => Err(self.wrong("a non-negative integer", other)),
        }
    }

    pub(crate) fn opt_u32(&self) -> Result<Option<u32>, DecodeError> {
        match self.opt_u64()? {
            None => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| self.path.error("integer too large (more than 32 bits)")),
        }
    }

    /// `true`/`false`, also as strings (any case) or `0`/`1`.
    pub(crate) fn opt_bool(&self) -> Result<Option<bool>, DecodeError> {
        const EXPECTED: &str = "expected a boolean";
        match self.value {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if is_absent_text(s) => Ok(None),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" => Ok(Some(false)),
                _ => Err(self
                    .path
                    .error(format!("{EXPECTED}, found a string that is not one"))),
            },
            Some(Value::Number(n)) => match n.as_u64() {
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                _ => Err(self
                    .path
                    .error(format!("{EXPECTED}, found a number other than 0 or 1"))),
            },
            Some(other) => Err(self.wrong("a boolean", other)),
        }
    }

    /// `hasMoreData`: a missing flag means "no more".
    pub(crate) fn flag(&self) -> Result<bool, DecodeError> {
        Ok(self.opt_bool()?.unwrap_or(false))
    }

    /// Any of the timestamp shapes; absent, `null`, `""`, `"N/A"` are `None`, and
    /// anything else that does not parse is an error naming this field: dropping
    /// it silently would hide an upstream format change.
    pub(crate) fn opt_timestamp(&self) -> Result<Option<Timestamp>, DecodeError> {
        self.opt_temporal("timestamp", time::parse_timestamp)
    }

    pub(crate) fn req_timestamp(&self) -> Result<Timestamp, DecodeError> {
        self.opt_timestamp()?.ok_or_else(|| self.missing())
    }

    /// A `YYYY-MM-DD` date (or a full timestamp, taken as its UTC date).
    pub(crate) fn opt_date(&self) -> Result<Option<NaiveDate>, DecodeError> {
        self.opt_temporal("date", time::parse_date)
    }

    fn opt_temporal<T>(
        &self,
        what: &str,
        parse: fn(&str) -> Option<T>,
    ) -> Result<Option<T>, DecodeError> {
        match self.value {
            None => Ok(None),
            Some(Value::String(s)) if is_absent_text(s) => Ok(None),
            Some(Value::String(s)) => parse(s).map(Some).ok_or_else(|| {
                self.path
                    .error(format!("unparseable {what} {:?}", excerpt(s)))
            }),
            Some(other) => Err(self.wrong(&format!("a {what} string"), other)),
        }
    }

    /// A `lastSeenDeviceId` cursor, string or number: `0` (in any spelling), `""`,
    /// `"N/A"`, `null` or absent all mean "no further page".
    pub(crate) fn opt_cursor(&self) -> Result<Option<String>, DecodeError> {
        let raw = match self.value {
            None => return Ok(None),
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(v @ Value::Number(_)) => v.to_string(),
            Some(other) => return Err(self.wrong("a device id", other)),
        };
        let zero = !raw.is_empty() && raw.bytes().all(|b| b == b'0');
        Ok((!zero && !is_absent_text(&raw)).then_some(raw))
    }

    /// The raw text of a code that may be a string or a number; `None` when absent.
    pub(crate) fn opt_code(&self) -> Result<Option<String>, DecodeError> {
        match self.value {
            None => Ok(None),
            Some(Value::String(s)) if is_absent_text(s) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ Value::Number(_)) => Ok(Some(v.to_string())),
            Some(other) => Err(self.wrong("a code (string or number)", other)),
        }
    }
}

/// At most 40 characters of a bad value, for messages about timestamps.
fn excerpt(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn paths_render_like_javascript() {
        let root = Path::ROOT;
        let list = root.key("deviceList");
        let item = list.index(3);
        let leaf = item.key("createTime");
        assert_eq!(leaf.render(), "deviceList[3].createTime");
        assert_eq!(root.index(0).key("x").render(), "[0].x");
        assert_eq!(root.render(), "");
    }

    #[test]
    fn first_non_null_alias_wins_and_names_the_path() {
        let v = json!({"updatedTime": null, "statusTime": "bad"});
        let obj = Field::root(&v).object().unwrap();
        let err = obj
            .field(&["updatedTime", "statusTime"])
            .opt_timestamp()
            .unwrap_err();
        assert_eq!(err.field, "statusTime");
        assert!(err.message.contains("\"bad\""), "{}", err.message);
        let f = obj.field(&["missing", "alsoMissing"]);
        assert_eq!(f.req_string().unwrap_err().field, "missing");
    }

    #[test]
    fn scalars_are_lenient() {
        let v = json!({
            "n": "2689", "m": 2689, "f": 2689.0, "neg": -1, "junk": "12a", "na": "N/A",
            "t": "TRUE", "z": 0, "c0": "0", "c00": "000", "cn": 0, "c": 990013907835578u64,
        });
        let o = Field::root(&v).object().unwrap();
        assert_eq!(o.field(&["n"]).opt_u64().unwrap(), Some(2689));
        assert_eq!(o.field(&["m"]).opt_u64().unwrap(), Some(2689));
        assert_eq!(o.field(&["f"]).opt_u64().unwrap(), Some(2689));
        assert_eq!(o.field(&["na"]).opt_u64().unwrap(), None);
        assert!(o.field(&["neg"]).opt_u64().is_err());
        // 2^64 and beyond do not fit: an error, not a silent u64::MAX.
        let huge = json!({ "a": 18_446_744_073_709_551_616.0_f64, "b": 1e300 });
        let h = Field::root(&huge).object().unwrap();
        assert!(h.field(&["a"]).opt_u64().is_err());
        assert!(h.field(&["b"]).opt_u64().is_err());
        let err = o.field(&["junk"]).opt_u64().unwrap_err();
        assert!(
            !err.message.contains("12a"),
            "values are not echoed: {}",
            err.message
        );
        assert_eq!(o.field(&["t"]).opt_bool().unwrap(), Some(true));
        assert_eq!(o.field(&["z"]).opt_bool().unwrap(), Some(false));
        assert!(!o.field(&["absent"]).flag().unwrap());
        for zero in ["c0", "c00", "cn", "na", "absent"] {
            assert_eq!(o.field(&[zero]).opt_cursor().unwrap(), None, "{zero}");
        }
        assert_eq!(
            o.field(&["c"]).opt_cursor().unwrap().as_deref(),
            Some("990013907835578")
        );
        assert_eq!(o.field(&["na"]).opt_string().unwrap(), None);
        assert_eq!(
            o.field(&["na"]).opt_raw_string().unwrap().as_deref(),
            Some("N/A")
        );
        assert_eq!(
            o.field(&["m"]).opt_string().unwrap().as_deref(),
            Some("2689")
        );
    }

    #[test]
    fn long_bad_timestamps_are_excerpted() {
        let v = json!({ "t": "x".repeat(500) });
        let o = Field::root(&v).object().unwrap();
        let err = o.field(&["t"]).opt_timestamp().unwrap_err();
        assert!(err.message.len() < 80, "{}", err.message);
    }
}
