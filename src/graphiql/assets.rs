//! GraphiQL's browser assets, vendored in `assets/graphiql/` (versions, licences and
//! checksums in its README) and embedded in the binary with `include_bytes!`, so the
//! page works where browsers cannot reach a CDN: internal networks, air-gapped
//! dashboards, CI.
//!
//! Served under `/graphql/assets/{file}`, outside auth and the rate limit (they hold
//! no data, and a page load must not spend a client's request budget). The page links
//! each one with `?v=<content hash>`, so the answers can be cached as immutable: a new
//! build that changes a file changes its URL.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use sha2::{Digest, Sha256};

use crate::http::problem::ApiError;

/// The route template of the assets.
pub(crate) const ROUTE: &str = "/graphql/assets/{file}";
/// Where the assets live (`ROUTE` without its parameter).
const PREFIX: &str = "/graphql/assets/";

/// A year: the URLs are content-addressed, so an answer never goes stale.
const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One embedded file.
pub(crate) struct Asset {
    pub(crate) name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../../assets/graphiql/", $name)),
        }
    };
}

pub(crate) const REACT: &str = "react-18.3.1.production.min.js";
pub(crate) const REACT_DOM: &str = "react-dom-18.3.1.production.min.js";
pub(crate) const GRAPHIQL_JS: &str = "graphiql-3.9.0.min.js";
pub(crate) const GRAPHIQL_CSS: &str = "graphiql-3.9.0.min.css";
pub(crate) const BOOTSTRAP_JS: &str = "devicegraph-graphiql.js";
pub(crate) const PAGE_CSS: &str = "devicegraph-graphiql.css";
pub(crate) const CSP_WATCH_JS: &str = "devicegraph-csp-watch.js";

/// Every servable file. The names above must match (a unit test checks).
static ASSETS: [Asset; 7] = [
    asset!("react-18.3.1.production.min.js", JS),
    asset!("react-dom-18.3.1.production.min.js", JS),
    asset!("graphiql-3.9.0.min.js", JS),
    asset!("graphiql-3.9.0.min.css", CSS),
    asset!("devicegraph-graphiql.js", JS),
    asset!("devicegraph-graphiql.css", CSS),
    asset!("devicegraph-csp-watch.js", JS),
];

/// The first 16 hex digits of each asset's SHA-256, in `ASSETS` order; computed once.
static FINGERPRINTS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| hex::encode(&Sha256::digest(asset.body)[..8]))
        .collect()
});

fn find(name: &str) -> Option<(usize, &'static Asset)> {
    ASSETS.iter().enumerate().find(|(_, a)| a.name == name)
}

/// The URL the page links `name` with: path plus content fingerprint. `None` for a
/// name that is not embedded (a bug the unit tests catch).
pub(crate) fn href(name: &str) -> Option<String> {
    let (index, asset) = find(name)?;
    let fingerprint = FINGERPRINTS.get(index)?;
    Some(format!("{PREFIX}{}?v={fingerprint}", asset.name))
}

/// `GET /graphql/assets/{file}`
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let Some((_, asset)) = find(&file) else {
        return ApiError::not_found(format!("no GraphiQL asset named {file:?}")).into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_FOREVER),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_linked_name_is_embedded_and_fingerprinted() {
        for name in [
            REACT,
            REACT_DOM,
            GRAPHIQL_JS,
            GRAPHIQL_CSS,
            BOOTSTRAP_JS,
            PAGE_CSS,
        ] {
            let href = href(name).unwrap_or_default();
            assert!(
                href.starts_with(&format!("{PREFIX}{name}?v=")),
                "{name}: {href}"
            );
            assert_eq!(href.len(), PREFIX.len() + name.len() + 3 + 16, "{href}");
        }
        assert_eq!(href("../Cargo.toml"), None);
    }

    #[test]
    fn the_vendored_bundles_are_the_production_builds() {
        // Guards against re-vendoring a development build by mistake (graphiql 3.5-3.8
        // shipped a 3.5 MB unminified `graphiql.min.js`).
        let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(total < 2_000_000, "assets grew to {total} bytes");
        for asset in &ASSETS {
            assert!(!asset.body.is_empty(), "{} is empty", asset.name);
        }
    }
}
