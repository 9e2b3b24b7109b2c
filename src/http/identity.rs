//! Who is calling: resolves the presented API key (`Authorization: Bearer <key>` or
//! `X-API-Key: <key>`) to a [`Principal`], and sets the [`ClientKey`] the inbound rate
//! limit counts against: the key's name when it is a known key, else the client IP.
//!
//! It never refuses a request; the `auth` layer does, after the rate limit. That
//! order lets the limiter count a client hammering with wrong keys by its address
//! before any refusal is computed. Keys are compared by SHA-256 in constant time.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use devicegraph_cache::inbound::ClientKey;
use devicegraph_graphql::AccountScope;
use http::{HeaderMap, header};
use sha2::{Digest, Sha256};

use crate::config::{AuthConfig, AuthMode, KeyAccounts};
use crate::state::AppState;

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

    /// Whether `headers` present the admin key.
    pub(crate) fn is_admin(&self, headers: &HeaderMap) -> bool {
        match (self.admin_sha256, presented_key(headers)) {
            (Some(expected), Some(key)) => ct_eq(&sha256(key), &expected),
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

/// The key a request presents, from `Authorization: Bearer` or `X-API-Key`.
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    bearer
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|k| !k.is_empty())
}

/// The middleware.
pub(crate) async fn identify(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned());
    let by_address = ClientKey::new(format!("ip:{address}"));
    let keys = &state.keys;
    if !keys.auth_required() {
        request.extensions_mut().insert(Principal {
            name: Arc::from("anonymous"),
            scope: AccountScope::All,
        });
        request.extensions_mut().insert(by_address);
        return next.run(request).await;
    }
    let found = presented_key(request.headers()).map(|key| keys.find(key));
    match found {
        Some(Some(known)) => {
            let principal = Principal {
                name: Arc::clone(&known.name),
                scope: known.scope.clone(),
            };
            request
                .extensions_mut()
                .insert(ClientKey::new(format!("key:{}", known.name)));
            request.extensions_mut().insert(principal);
        }
        Some(None) => {
            request.extensions_mut().insert(Unidentified::Unknown);
            request.extensions_mut().insert(by_address);
        }
        None => {
            request.extensions_mut().insert(Unidentified::Missing);
            request.extensions_mut().insert(by_address);
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn keys_come_from_bearer_or_x_api_key() {
        assert_eq!(
            presented_key(&headers("authorization", "Bearer abc")),
            Some("abc")
        );
        assert_eq!(
            presented_key(&headers("authorization", "bearer  abc ")),
            Some("abc")
        );
        assert_eq!(presented_key(&headers("x-api-key", "xyz")), Some("xyz"));
        assert_eq!(presented_key(&headers("authorization", "Basic abc")), None);
        assert_eq!(presented_key(&headers("x-api-key", "  ")), None);
        assert_eq!(presented_key(&HeaderMap::new()), None);
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
        };
        let ring = KeyRing::new(&auth);
        assert_eq!(ring.find("dash-key").map(|k| &*k.name), Some("dash"));
        assert!(ring.find("dash-key ").is_none());
        assert!(ring.find("admin-key").is_none());
        assert!(ring.is_admin(&headers("x-api-key", "admin-key")));
        assert!(!ring.is_admin(&headers("x-api-key", "dash-key")));
    }
}
