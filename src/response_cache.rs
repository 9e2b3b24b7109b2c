//! The response cache: serialized answers in front of execution, current by
//! construction rather than by a TTL guess.
//!
//! - **Key**: a SHA-256 over the caller's account scope (callers whose scopes differ
//!   never share an entry), what the answer was asked with (route, media type,
//!   operation text, operation name) and the variables in canonical form (object keys
//!   sorted, so key order does not split entries).
//! - **Value**: the response bytes, and the cache entries (resource, key, entry
//!   version) the answer was built from (`devicegraph_graphql::Dependencies`).
//! - **Served only while current**: a lookup checks every entry the answer used is
//!   still the same version and fresh in the entity cache. An admin invalidation, a
//!   cross-replica invalidation, a TTL expiry or a refresh that stored a new value
//!   makes every answer that used the entry miss at once. Its remaining lifetime
//!   (`Cache-Control: max-age`) is the shortest remaining freshness among them.
//! - Answers with errors, stale parts or a per-request cost report are never stored
//!   (`Executed::dependencies` is `None` for them).
//! - **Conditional requests**: the strong `ETag` is derived from the key and the
//!   entry versions; `If-None-Match` with a current tag is answered `304` without
//!   executing or serializing anything.
//!
//! Bounded in bytes (`cache.response_cache_max_bytes`), with metrics: hits, misses,
//! bytes, evictions and invalidations (entries found no longer current).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use devicegraph_cache::Store;
use devicegraph_graphql::{AccountScope, Dependencies};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};

const HITS: &str = "devicegraph_response_cache_hits_total";
const MISSES: &str = "devicegraph_response_cache_misses_total";
const INVALIDATED: &str = "devicegraph_response_cache_invalidated_total";
const EVICTIONS: &str = "devicegraph_response_cache_evictions_total";
const BYTES: &str = "devicegraph_response_cache_bytes";

/// Bytes charged per entry beyond its body (the key, the dependency list, moka's
/// bookkeeping): keeps many tiny answers from escaping the bound.
const ENTRY_OVERHEAD: u32 = 512;

/// One stored answer.
pub(crate) struct Stored {
    pub(crate) body: Bytes,
    pub(crate) etag: HeaderValue,
    deps: Dependencies,
    stored_at: Instant,
    /// The last full check of `deps`: the store's generation then, and until when
    /// the answer was found fresh. While the generation has not moved, no entry it
    /// used changed, so a hit before that time needs no per-entry lookups.
    checked: Mutex<(u64, Instant)>,
}

impl Stored {
    /// Seconds since the answer was built (the `Age` header).
    pub(crate) fn age(&self) -> u64 {
        self.stored_at.elapsed().as_secs()
    }
}

/// A stored answer found current, and how long it stays so.
pub(crate) struct Hit {
    pub(crate) stored: Arc<Stored>,
    pub(crate) fresh_for: Duration,
}

/// The cache. Cheap to clone.
#[derive(Clone)]
pub struct ResponseCache {
    entries: Option<moka::sync::Cache<[u8; 32], Arc<Stored>>>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("enabled", &self.entries.is_some())
            .finish()
    }
}

impl ResponseCache {
    /// A cache of at most `max_bytes`; `0` disables it.
    pub fn new(max_bytes: u64) -> Self {
        if max_bytes == 0 {
            return Self { entries: None };
        }
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &[u8; 32], stored: &Arc<Stored>| {
                u32::try_from(stored.body.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(ENTRY_OVERHEAD)
            })
            .eviction_listener(|_key, _value, cause| {
                if cause.was_evicted() {
                    metrics::counter!(EVICTIONS).increment(1);
                }
            })
            .build();
        Self {
            entries: Some(entries),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The stored answer for `key` if every entry it used is still current.
    pub(crate) fn get(&self, key: &[u8; 32], store: &Store) -> Option<Hit> {
        let entries = self.entries.as_ref()?;
        let Some(stored) = entries.get(key) else {
            metrics::counter!(MISSES).increment(1);
            return None;
        };
        let now = Instant::now();
        let generation = store.generation();
        {
            let checked = stored
                .checked
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if checked.0 == generation && now < checked.1 {
                let fresh_for = checked.1 - now;
                drop(checked);
                metrics::counter!(HITS).increment(1);
                return Some(Hit { stored, fresh_for });
            }
        }
        match stored.deps.fresh_for(store) {
            Some(fresh_for) => {
                *stored
                    .checked
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = (generation, now + fresh_for);
                metrics::counter!(HITS).increment(1);
                Some(Hit { stored, fresh_for })
            }
            None => {
                entries.invalidate(key);
                metrics::counter!(INVALIDATED).increment(1);
                metrics::counter!(MISSES).increment(1);
                None
            }
        }
    }

    /// Stores `body`, built from `deps`, when every entry it used is current now;
    /// answers its `ETag` and how long it stays current (also when not stored: the
    /// cache is disabled).
    pub(crate) fn put(
        &self,
        key: [u8; 32],
        body: Bytes,
        deps: Dependencies,
        store: &Store,
    ) -> Option<(HeaderValue, Duration)> {
        let generation = store.generation();
        let fresh_for = deps.fresh_for(store)?;
        let etag = etag(&key, &deps)?;
        if let Some(entries) = &self.entries {
            let now = Instant::now();
            let stored = Stored {
                body,
                etag: etag.clone(),
                deps,
                stored_at: now,
                checked: Mutex::new((generation, now + fresh_for)),
            };
            entries.insert(key, Arc::new(stored));
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!(BYTES).set(entries.weighted_size() as f64);
        }
        Some((etag, fresh_for))
    }
}

/// Response header saying whether the answer came from the response cache (`HIT`)
/// or was executed and stored (`MISS`); absent when it may not be stored.
pub(crate) const RESPONSE_CACHE_HEADER: &str = "x-response-cache";

/// A stored answer: `200` with its bytes (as `content_type`), or `304` when the
/// caller holds its tag.
pub(crate) fn stored_answer(
    hit: &Hit,
    content_type: &'static str,
    request: &HeaderMap,
) -> Response {
    let stored = &hit.stored;
    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tags| matches(tags, &stored.etag));
    let mut answer = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut answer = (StatusCode::OK, stored.body.clone()).into_response();
        answer
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        answer
    };
    let headers = answer.headers_mut();
    headers.insert("x-cache", HeaderValue::from_static("HIT"));
    headers.insert(RESPONSE_CACHE_HEADER, HeaderValue::from_static("HIT"));
    set_validators(headers, stored.etag.clone(), hit.fresh_for, stored.age());
    answer
}

/// `ETag`, `Cache-Control: private, max-age=<freshness left>` and `Age`.
pub(crate) fn set_validators(
    headers: &mut HeaderMap,
    etag: HeaderValue,
    fresh_for: Duration,
    age: u64,
) {
    headers.insert(header::ETAG, etag);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("private, max-age={}", fresh_for.as_secs()))
            .unwrap_or(HeaderValue::from_static("private, no-cache")),
    );
    headers.insert(header::AGE, HeaderValue::from(age));
}

/// Whether the request holds `etag` in its `If-None-Match`.
pub(crate) fn holds(request: &HeaderMap, etag: &HeaderValue) -> bool {
    request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tags| matches(tags, etag))
}

/// A strong entity tag: the answer's key and the versions of the entries it used.
fn etag(key: &[u8; 32], deps: &Dependencies) -> Option<HeaderValue> {
    let text = format!("\"{}-{:016x}\"", hex::encode(&key[..8]), deps.fingerprint());
    HeaderValue::from_str(&text).ok()
}

/// The response-cache key of an answer: `parts` (route, media type, operation
/// text, operation name, canonical variables) asked by a caller with `scope`.
pub(crate) fn key(scope: &AccountScope, parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    match scope {
        AccountScope::All => hasher.update(b"scope:*"),
        AccountScope::Only(accounts) => {
            let mut names: Vec<&str> = accounts.iter().map(|a| a.as_str()).collect();
            names.sort_unstable();
            hasher.update(b"scope:");
            for name in names {
                hasher.update((name.len() as u64).to_be_bytes());
                hasher.update(name.as_bytes());
            }
        }
    }
    for part in parts {
        // Length-prefixed, so two different splits never hash alike.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The operation text with its insignificant parts removed: whitespace, commas and
/// comments between tokens, so that two formattings of one operation are one entry.
/// String values are kept exactly; a separation between two word characters (names,
/// numbers) stays one space, so no two different token sequences can end up alike.
pub(crate) fn canonical_query(text: &str) -> String {
    fn word(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$')
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut gap = false;
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => gap = true,
            '#' => {
                // A comment runs to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' || c == '\r' {
                        break;
                    }
                }
                gap = true;
            }
            '"' => {
                if gap && out.ends_with(word) {
                    out.push(' ');
                }
                gap = false;
                out.push('"');
                let block = chars.peek() == Some(&'"') && {
                    let rest: String = chars.clone().take(2).collect();
                    rest == "\"\""
                };
                if block {
                    out.push_str("\"\"");
                    chars.next();
                    chars.next();
                    // A block string ends at an unescaped `"""`.
                    let mut quotes = 0;
                    while let Some(c) = chars.next() {
                        out.push(c);
                        if c == '\\' && chars.clone().take(3).eq("\"\"\"".chars()) {
                            // `\"""` is an escaped delimiter: keep it, go on.
                            out.push_str("\"\"\"");
                            chars.nth(2);
                            quotes = 0;
                            continue;
                        }
                        quotes = if c == '"' { quotes + 1 } else { 0 };
                        if quotes == 3 {
                            break;
                        }
                    }
                } else {
                    while let Some(c) = chars.next() {
                        out.push(c);
                        match c {
                            '\\' => {
                                if let Some(escaped) = chars.next() {
                                    out.push(escaped);
                                }
                            }
                            '"' | '\n' => break,
                            _ => {}
                        }
                    }
                }
            }
            c => {
                if gap && word(c) && out.ends_with(word) {
                    out.push(' ');
                }
                gap = false;
                out.push(c);
            }
        }
    }
    out
}

/// `value` as JSON with every object's keys sorted (so `{"a":1,"b":2}` and
/// `{"b":2,"a":1}` are one variables set).
pub(crate) fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serde_json::Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    serde_json::to_vec(&sorted(value)).unwrap_or_default()
}

/// Whether an `If-None-Match` header value names `etag` (a list, or `*`).
pub(crate) fn matches(if_none_match: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(list) = if_none_match.to_str() else {
        return false;
    };
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    list.split(',').map(str::trim).any(|tag| {
        // A weak comparison (RFC 9110 §13.1.2): `W/"x"` matches `"x"`.
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_in_any_key_order_are_one_entry() {
        let a = serde_json::json!({"b": [1, {"y": 2, "x": 1}], "a": "s"});
        let b = serde_json::json!({"a": "s", "b": [1, {"x": 1, "y": 2}]});
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_ne!(
            canonical_json(&a),
            canonical_json(&serde_json::json!({"a": "t"}))
        );
    }

    #[test]
    fn formattings_of_one_operation_are_one_text() {
        let a = "query Q($i: IMEI!) {\n  device(account: \"0000123456-00001\", imei: $i) {\n    imei # the id\n    firmware\n  }\n}\n";
        let b = "query Q($i:IMEI!){device(account:\"0000123456-00001\" imei:$i){imei,firmware}}";
        assert_eq!(canonical_query(a), canonical_query(b));
        assert_eq!(
            canonical_query(b),
            "query Q($i:IMEI!){device(account:\"0000123456-00001\"imei:$i){imei firmware}}"
        );
        // Spaces inside strings are kept; separated words stay separated.
        assert_ne!(
            canonical_query(r#"{ f(a: "x  y") }"#),
            canonical_query(r#"{ f(a: "x y") }"#)
        );
        assert_ne!(canonical_query("{ a b }"), canonical_query("{ ab }"));
        assert_eq!(
            canonical_query("{ f(a: \"\"\"  x \\\"\"\" # y \"\"\")  }"),
            "{f(a:\"\"\"  x \\\"\"\" # y \"\"\")}"
        );
    }

    #[test]
    fn scopes_and_splits_give_different_keys() {
        let all = AccountScope::All;
        let none = AccountScope::Only(Default::default());
        assert_ne!(key(&all, &[b"q"]), key(&none, &[b"q"]));
        assert_ne!(key(&all, &[b"ab", b"c"]), key(&all, &[b"a", b"bc"]));
        assert_eq!(key(&all, &[b"q"]), key(&all, &[b"q"]));
    }

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        let etag = HeaderValue::from_static("\"abc\"");
        let m = |s: &'static str| matches(&HeaderValue::from_static(s), &etag);
        assert!(m("\"abc\""));
        assert!(m("\"x\", \"abc\""));
        assert!(m("W/\"abc\""));
        assert!(m("*"));
        assert!(!m("\"abcd\""));
    }
}
