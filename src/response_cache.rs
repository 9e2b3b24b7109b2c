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
//! - Answers with errors, stale parts, a per-request cost report or a
//!   `Freshness.ageSeconds` are never stored (`Executed::dependencies` is `None` for
//!   them): an age is true only when stated, and a replay (or a `304`) would state
//!   it to clients that do not add the `Age` header. `fetchedAt` is stored: it is a
//!   fact about the entries the answer is pinned to.
//! - **Conditional requests**: the strong `ETag` is a SHA-256 of the representation
//!   (media type and stored body bytes; the first answer, which built them, differs
//!   only in saying `extensions.cacheStatus: MISS`), so it names what the client holds. Two
//!   replicas that built the same answer give it the same tag, and a refresh that
//!   stored an unchanged value keeps it: a polling client alternating replicas, or
//!   polling across a TTL refresh, still gets `304`s. `If-None-Match` with a tag
//!   of a current stored answer is answered `304` without executing or serializing
//!   anything; a tag of an answer no longer current is checked against the answer
//!   built afresh.
//!
//! Bounded in bytes (`cache.response_cache_max_bytes`), with metrics: hits, misses,
//! bytes, evictions and invalidations (entries found no longer current).

use std::hash::BuildHasher;
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
    /// Requests seen before, by their exact bytes (caller, media types, body or
    /// query string): a repeat finds its key without parsing the request,
    /// canonicalising the operation or hashing it again, which were most of a stored
    /// answer's cost for a dashboard-sized operation. Keyed by a fast hash and
    /// checked byte for byte, so a collision is only a miss.
    aliases: Option<moka::sync::Cache<u64, Arc<Alias>>>,
    hasher: foldhash::fast::RandomState,
}

/// A request's exact bytes and the response-cache key they were found to have.
struct Alias {
    request: Box<[u8]>,
    key: [u8; 32],
}

/// A request as bytes (see [`ResponseCache::raw_request`]).
pub(crate) struct RawRequest {
    bytes: Vec<u8>,
    hash: u64,
}

/// The share of `response_cache_max_bytes` the aliases may take.
const ALIAS_SHARE: u64 = 8;

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
        let hasher = foldhash::fast::RandomState::default();
        if max_bytes == 0 {
            return Self {
                entries: None,
                aliases: None,
                hasher,
            };
        }
        let alias_bytes = max_bytes / ALIAS_SHARE;
        let aliases = moka::sync::Cache::builder()
            .max_capacity(alias_bytes)
            .weigher(|_hash: &u64, alias: &Arc<Alias>| {
                u32::try_from(alias.request.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(ENTRY_OVERHEAD)
            })
            .build();
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes - alias_bytes)
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
            aliases: Some(aliases),
            hasher,
        }
    }

    /// `parts` (who asks, how, and the request's bytes) as one byte string, when
    /// the cache is on.
    pub(crate) fn raw_request(&self, parts: &[&[u8]]) -> Option<RawRequest> {
        self.aliases.as_ref()?;
        let mut bytes = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
        for part in parts {
            // Length-prefixed, so two different splits are two different requests.
            bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
            bytes.extend_from_slice(part);
        }
        let hash = self.hasher.hash_one(&bytes);
        Some(RawRequest { bytes, hash })
    }

    /// The key found for these exact request bytes before.
    pub(crate) fn key_of(&self, raw: &RawRequest) -> Option<[u8; 32]> {
        let alias = self.aliases.as_ref()?.get(&raw.hash)?;
        (*alias.request == *raw.bytes).then_some(alias.key)
    }

    /// Remembers that `raw` has `key`.
    pub(crate) fn remember(&self, raw: RawRequest, key: [u8; 32]) {
        if let Some(aliases) = &self.aliases {
            let alias = Alias {
                request: raw.bytes.into_boxed_slice(),
                key,
            };
            aliases.insert(raw.hash, Arc::new(alias));
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
        content_type: &str,
        body: Bytes,
        deps: Dependencies,
        store: &Store,
    ) -> Option<(HeaderValue, Duration)> {
        let generation = store.generation();
        let fresh_for = deps.fresh_for(store)?;
        let etag = etag(content_type, &body)?;
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

/// A strong entity tag: the first 128 bits of a SHA-256 over the representation, its
/// media type and body bytes. (Not the entry versions it was built from: those are
/// per process, and move on a refresh that changed nothing.)
fn etag(content_type: &str, body: &[u8]) -> Option<HeaderValue> {
    let mut hasher = Sha256::new();
    hasher.update((content_type.len() as u64).to_be_bytes());
    hasher.update(content_type.as_bytes());
    hasher.update(body);
    let digest = hasher.finalize();
    let text = format!("\"{}\"", hex::encode(&digest[..16]));
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
    // Bytes, not chars: every byte that separates or ends a token is ASCII, so
    // multi-byte characters (only legal inside strings and comments) are copied
    // whole and the output stays UTF-8.
    const BOM: &[u8] = "\u{feff}".as_bytes();
    fn word(b: u8) -> bool {
        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$')
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    // A separator was skipped since the last byte written, and whether that byte
    // ended a word (a name or number): two words keep one space between them.
    let mut gap = false;
    let mut after_word = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                gap = true;
                i += 1;
            }
            _ if bytes[i..].starts_with(BOM) => {
                gap = true;
                i += BOM.len();
            }
            b'#' => {
                // A comment runs to the end of the line.
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                gap = true;
            }
            b'"' => {
                if gap && after_word {
                    out.push(b' ');
                }
                gap = false;
                after_word = false;
                let start = i;
                if bytes[i..].starts_with(b"\"\"\"") {
                    // A block string ends at an unescaped `"""` (`\"""` is an
                    // escaped delimiter).
                    i += 3;
                    loop {
                        if i >= bytes.len() {
                            break;
                        }
                        if bytes[i..].starts_with(b"\\\"\"\"") {
                            i += 4;
                        } else if bytes[i..].starts_with(b"\"\"\"") {
                            i += 3;
                            break;
                        } else {
                            i += 1;
                        }
                    }
                } else {
                    i += 1;
                    while i < bytes.len() {
                        match bytes[i] {
                            b'\\' => i += 2,
                            b'"' | b'\n' => {
                                i += 1;
                                break;
                            }
                            _ => i += 1,
                        }
                    }
                }
                out.extend_from_slice(&bytes[start..i.min(bytes.len())]);
            }
            _ => {
                let is_word = word(b);
                if gap && is_word && after_word {
                    out.push(b' ');
                }
                gap = false;
                after_word = is_word;
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
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
    #![allow(clippy::unwrap_used)]
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
        // Multi-byte text inside strings and comments, a byte-order mark, a string
        // left open at the end: copied whole, never split, still UTF-8.
        assert_eq!(
            canonical_query("\u{feff}{ f(a: \"é  ü\") # ünïcode\n g }"),
            "{f(a:\"é  ü\")g}"
        );
        assert_eq!(canonical_query("{ f(a: \"open"), "{f(a:\"open");
        assert_eq!(canonical_query("{ f(a: \"x\\"), "{f(a:\"x\\");
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
    fn request_bytes_find_their_key_only_when_identical() {
        let cache = ResponseCache::new(1 << 20);
        let raw = |body: &[u8]| cache.raw_request(&[b"anonymous", b"POST", body]).unwrap();
        let key = [7u8; 32];
        assert_eq!(cache.key_of(&raw(b"{}")), None);
        cache.remember(raw(b"{}"), key);
        assert_eq!(cache.key_of(&raw(b"{}")), Some(key));
        assert_eq!(cache.key_of(&raw(b"{ }")), None, "other bytes");
        // Another caller, or another split of the same bytes: another request.
        let other = cache.raw_request(&[b"someone", b"POST", b"{}"]).unwrap();
        assert_eq!(cache.key_of(&other), None);
        let split = cache.raw_request(&[b"anonymou", b"sPOST", b"{}"]).unwrap();
        assert_eq!(cache.key_of(&split), None);
        // Off: nothing is kept.
        assert!(ResponseCache::new(0).raw_request(&[b"x"]).is_none());
    }

    #[test]
    fn tags_name_the_bytes_and_their_media_type() {
        let json = "application/json";
        let tag = |media, body: &[u8]| etag(media, body).unwrap();
        assert_eq!(tag(json, b"{\"a\":1}"), tag(json, b"{\"a\":1}"));
        assert_ne!(tag(json, b"{\"a\":1}"), tag(json, b"{\"a\":2}"));
        assert_ne!(
            tag(json, b"{}"),
            tag("application/graphql-response+json", b"{}")
        );
        let text = tag(json, b"{}");
        let text = text.to_str().unwrap();
        assert!(text.len() == 34 && text.starts_with('"') && text.ends_with('"'));
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
