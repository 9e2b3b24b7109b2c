//! Who is calling: resolves the presented API key (`Authorization: Bearer <key>` or
//! `X-API-Key: <key>`) to a [`Principal`], and sets the [`ClientKey`] the inbound rate
//! limit counts against: the key's name when it is a known key, else the client IP.
//!
//! It never refuses a request; the `auth` layer does, after the rate limit. That
//! order lets the limiter count a client hammering with wrong keys by its address
//! before any refusal is computed. Keys are compared by SHA-256 in constant time.
//!
//! Two different keys in one request (`Authorization: Bearer` and `X-API-Key`, or
//! either header repeated with different values) are [`Presented::Conflicting`]:
//! neither is looked up, and auth refuses the request. Which one a proxy, a log
//! or this server would pick is exactly the kind of ambiguity an attacker uses (one
//! key checked, another logged or billed), and answering differently depending on
//! which key is valid would tell a client whether a guessed key exists. The same key
//! in both headers is fine. With `auth.mode = "none"` keys are not read at all.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use devicegraph_graphql::AccountScope;
use http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};

use super::rate_limit::ClientKey;
use crate::config::{AuthConfig, AuthMode, KeyAccounts};

/// An identified caller and what it may read.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) name: Arc<str>,
    pub(crate) scope: AccountScope,
}

/// Why a request with auth on has no [`Principal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unidentified {
    Missing,
    Unknown,
    /// Two different keys; neither was looked up.
    Conflicting,
}

/// The credentials a request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presented<'a> {
    Nothing,
    Key(&'a str),
    /// Different keys in `Authorization` and `X-API-Key`, or a repeated one of them
    /// with different values.
    Conflicting,
}

struct KnownKey {
    name: Arc<str>,
    sha256: [u8; 32],
    scope: AccountScope,
}

/// The configured keys, ready for lookups.
pub(crate) struct KeyRing {
    mode: AuthMode,
    keys: Vec<KnownKey>,
    admin_sha256: Option<[u8; 32]>,
}

impl KeyRing {
    pub(crate) fn new(auth: &AuthConfig) -> Self {
        let keys = auth
            .api_keys
            .iter()
            .map(|k| KnownKey {
                name: Arc::from(k.name.as_str()),
                sha256: k.sha256,
                scope: match &k.accounts {
                    KeyAccounts::All => AccountScope::All,
                    KeyAccounts::Only(accounts) => {
                        AccountScope::Only(accounts.iter().cloned().collect::<HashSet<_>>())
                    }
                },
            })
            .collect();
        Self {
            mode: auth.mode,
            keys,
            admin_sha256: auth.admin_key_sha256,
        }
    }

    pub(crate) fn auth_required(&self) -> bool {
        self.mode == AuthMode::ApiKey
    }

    pub(crate) fn admin_enabled(&self) -> bool {
        self.admin_sha256.is_some()
    }

    /// Whether `headers` present the admin key (and no other).
    pub(crate) fn is_admin(&self, headers: &HeaderMap) -> bool {
        match (self.admin_sha256, presented_key(headers)) {
            (Some(expected), Presented::Key(key)) => ct_eq(&sha256(key), &expected),
            _ => false,
        }
    }

    fn find(&self, key: &str) -> Option<&KnownKey> {
        let hash = sha256(key);
        // Look at every key whatever matches, so timing says nothing about which did.
        let mut found = None;
        for known in &self.keys {
            if ct_eq(&hash, &known.sha256) {
                found = Some(known);
            }
        }
        found
    }
}

fn sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Constant-time equality of two digests.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const X_API_KEY: &str = "x-api-key";

/// The key a request presents, from `Authorization: Bearer` or `X-API-Key`.
pub(crate) fn presented_key(headers: &HeaderMap) -> Presented<'_> {
    let (Some(authorization), Some(api_key)) = (
        one_value(headers, header::AUTHORIZATION.as_str()),
        one_value(headers, X_API_KEY),
    ) else {
        return Presented::Conflicting;
    };
    let bearer = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|k| !k.is_empty());
    let api_key = api_key
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    match (bearer, api_key) {
        (Some(a), Some(b)) if a != b => Presented::Conflicting,
        (Some(key), _) | (None, Some(key)) => Presented::Key(key),
        (None, None) => Presented::Nothing,
    }
}

/// The value of header `name`: `Some(None)` when absent, `Some(Some(_))` when sent
/// once (or repeated with the same value), `None` when repeated with different ones.
fn one_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<Option<&'a HeaderValue>> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Some(None);
    };
    let trimmed = first.as_bytes().trim_ascii();
    values
        .all(|v| v.as_bytes().trim_ascii() == trimmed)
        .then_some(Some(first))
}

/// The middleware, over the configured keys.
pub(crate) async fn identify(
    State(keys): State<Arc<KeyRing>>,
    mut request: Request,
    next: Next,
) -> Response {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned());
    let by_address = ClientKey::new(format!("ip:{address}"));
    if !keys.auth_required() {
        request.extensions_mut().insert(Principal {
            name: Arc::from("anonymous"),
            scope: AccountScope::All,
        });
        request.extensions_mut().insert(by_address);
        return next.run(request).await;
    }
    let found = match presented_key(request.headers()) {
        Presented::Key(key) => Ok(keys.find(key)),
        Presented::Nothing => Err(Unidentified::Missing),
        Presented::Conflicting => Err(Unidentified::Conflicting),
    };
    match found {
        Ok(Some(known)) => {
            let principal = Principal {
                name: Arc::clone(&known.name),
                scope: known.scope.clone(),
            };
            request
                .extensions_mut()
                .insert(ClientKey::new(format!("key:{}", known.name)));
            request.extensions_mut().insert(principal);
        }
        Ok(None) => {
            request.extensions_mut().insert(Unidentified::Unknown);
            request.extensions_mut().insert(by_address);
        }
        Err(why) => {
            request.extensions_mut().insert(why);
            request.extensions_mut().insert(by_address);
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    fn many(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn keys_come_from_bearer_or_x_api_key() {
        use Presented::{Key, Nothing};
        assert_eq!(
            presented_key(&headers("authorization", "Bearer abc")),
            Key("abc")
        );
        assert_eq!(
            presented_key(&headers("authorization", "bearer  abc ")),
            Key("abc")
        );
        assert_eq!(presented_key(&headers("x-api-key", "xyz")), Key("xyz"));
        assert_eq!(
            presented_key(&headers("authorization", "Basic abc")),
            Nothing
        );
        assert_eq!(presented_key(&headers("x-api-key", "  ")), Nothing);
        assert_eq!(presented_key(&HeaderMap::new()), Nothing);
    }

    #[test]
    fn two_different_keys_conflict() {
        use Presented::{Conflicting, Key};
        let both = |bearer, key| many(&[("authorization", bearer), ("x-api-key", key)]);
        assert_eq!(presented_key(&both("Bearer a", "b")), Conflicting);
        assert_eq!(presented_key(&both("Bearer a", " a ")), Key("a"));
        assert_eq!(
            presented_key(&many(&[("x-api-key", "a"), ("x-api-key", "b")])),
            Conflicting
        );
        assert_eq!(
            presented_key(&many(&[
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b")
            ])),
            Conflicting
        );
        // A repeated header is judged on its raw values, whatever their scheme.
        assert_eq!(
            presented_key(&many(&[
                ("authorization", "Basic x"),
                ("authorization", "Bearer a")
            ])),
            Conflicting
        );
        assert_eq!(
            presented_key(&many(&[("x-api-key", "a"), ("x-api-key", "a ")])),
            Key("a")
        );
        // A non-bearer Authorization is not a key, so nothing conflicts with X-API-Key.
        assert_eq!(presented_key(&both("Basic a", "b")), Key("b"));
    }

    #[test]
    fn lookup_is_by_sha256() {
        let auth = AuthConfig {
            mode: AuthMode::ApiKey,
            admin_key_sha256: Some(sha256("admin-key")),
            api_keys: vec![crate::config::ApiKey {
                name: "dash".into(),
                sha256: sha256("dash-key"),
                accounts: KeyAccounts::All,
            }],
            allow_unauthenticated_public: false,
        };
        let ring = KeyRing::new(&auth);
        assert_eq!(ring.find("dash-key").map(|k| &*k.name), Some("dash"));
        assert!(ring.find("dash-key ").is_none());
        assert!(ring.find("admin-key").is_none());
        assert!(ring.is_admin(&headers("x-api-key", "admin-key")));
        assert!(!ring.is_admin(&headers("x-api-key", "dash-key")));
        assert!(!ring.is_admin(&many(&[
            ("x-api-key", "admin-key"),
            ("authorization", "Bearer dash-key"),
        ])));
    }
}
