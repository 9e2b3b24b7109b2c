//! Persisted queries and trusted documents for `/graphql`: which document a request
//! runs, decided before execution ([`TrustedDocuments::resolve`]).
//!
//! A request names its document in one of three ways:
//! - **full text** in `query`: runs, except in allow-list mode, where its SHA-256 must
//!   be that of a manifest body (identical text, byte for byte);
//! - **Apollo's automatic persisted queries** (APQ), `extensions.persistedQuery =
//!   {"version": 1, "sha256Hash": "<hex>"}`, on POST or GET (`?extensions=<JSON>`):
//!   hash only looks the text up (manifest first, then the APQ store); hash and query
//!   registers the text after verifying the hash, then runs it;
//! - **`documentId`** (GraphQL-over-HTTP persisted documents, `sha256:<hex>` or a
//!   custom id), on POST or GET, looked up like a hash.
//!
//! Implemented here, in the HTTP layer, rather than with async-graphql's
//! `ApolloPersistedQueries` extension: its errors carry no `extensions.code`, and its
//! store is bounded in entries, not bytes (see `store`).
//!
//! # Answers, and why
//!
//! | case | code | status |
//! | --- | --- | --- |
//! | hash or id unknown | `PERSISTED_QUERY_NOT_FOUND`, message `PersistedQueryNotFound` | 200 |
//! | hash only, and no APQ store nor manifest | `PERSISTED_QUERY_NOT_SUPPORTED`, message `PersistedQueryNotSupported` | 200 |
//! | hash does not match the query, version not 1, malformed extension, id and query both, no query at all | `BAD_USER_INPUT` | 400 |
//! | allow-list mode, text not in the manifest (also an APQ registration) | `OPERATION_NOT_ALLOWED` | 400 (graphql-response+json), 200 (application/json) |
//!
//! - Apollo Client's persisted-query link retries with the full text when an error has
//!   the message `PersistedQueryNotFound` or the code `PERSISTED_QUERY_NOT_FOUND`, and
//!   stops hashing on `PERSISTED_QUERY_NOT_SUPPORTED`. Apollo Server answers both
//!   with 200 and `Cache-Control: private, no-cache, must-revalidate` whatever the
//!   media type ("to avoid any error handling that may mask the contents of an error
//!   response"), and older Apollo Clients (and other APQ links still in use) turn APQ
//!   off for good on a 400 or 500. So 200 in both media types, uncacheable, so that a
//!   GET "not found" is never replayed by a cache after the text was registered.
//! - An unknown hash is `PERSISTED_QUERY_NOT_FOUND` in allow-list mode too: the APQ
//!   link then sends the full text, which gets the definitive `OPERATION_NOT_ALLOWED`.
//! - A mismatched hash or a bad version is a malformed request: 400 in both media
//!   types, like a body that is not JSON (and as Apollo Server answers).
//! - `OPERATION_NOT_ALLOWED` is a well-formed request whose document is refused, like
//!   a validation failure: 400 with `application/graphql-response+json`, 200 with
//!   `application/json` (the GraphQL-over-HTTP spec's legacy behaviour). It is its own
//!   code, not `FORBIDDEN` (which means an account outside the caller's key) nor
//!   `BAD_USER_INPUT` (which tells a client to fix its input).
//!
//! # Modes
//!
//! - `graphql.persisted_queries` turns the APQ store on; off, hash-only requests get
//!   `PERSISTED_QUERY_NOT_SUPPORTED` unless a manifest is configured (its documents
//!   are persisted queries too, so an unknown hash is then just "not found").
//! - `graphql.trusted_documents` preloads a manifest (`manifest`): its documents run
//!   by id or hash for everyone.
//! - `graphql.allow_list`: only manifest documents run; the APQ store is neither read
//!   nor written. The `/v1` routes are unaffected: they call the executor directly.
//!
//! The manifest is swapped whole (arc-swap) on reload, so a request sees the old or
//! the new manifest, never a mix; a manifest that fails to load leaves the old one
//! serving. Reload runs on SIGHUP ([`TrustedDocuments::watch_sighup`]).
//!
//! Metrics: `devicegraph_trusted_documents` (gauge: operations in the manifest),
//! `devicegraph_trusted_documents_refused_total{reason}` (allow-list refusals:
//! `unknown_id`, `not_allowed`), `devicegraph_trusted_documents_reloads_total{result}`.

mod incoming;
mod manifest;
mod store;

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_graphql::Value;
use axum::response::Response;
use devicegraph_graphql::Code;
use http::{HeaderValue, StatusCode, header};

pub(crate) use incoming::Incoming;
pub use manifest::{Manifest, ManifestError};
use manifest::{is_sha256_hex, key, sha256};
use store::ApqStore;

use crate::config::Config;
use crate::http::negotiate::GraphqlMedia;
use crate::http::problem::{ApiError, ErrorContext};

/// Why a request's document was not resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// The message is the protocol's: Apollo Client matches on it as well as the code.
    #[error("PersistedQueryNotFound")]
    NotFound,
    #[error("PersistedQueryNotSupported")]
    NotSupported,
    /// Apollo Server's wording.
    #[error("provided sha does not match query")]
    HashMismatch,
    #[error("{0}")]
    BadInput(String),
    #[error(
        "this operation is not one of the server's trusted documents; only those run here (allow-list mode)"
    )]
    NotAllowed,
}

impl Refusal {
    pub(crate) fn code(&self) -> Code {
        match self {
            Self::NotFound => Code::PersistedQueryNotFound,
            Self::NotSupported => Code::PersistedQueryNotSupported,
            Self::HashMismatch | Self::BadInput(_) => Code::BadUserInput,
            Self::NotAllowed => Code::OperationNotAllowed,
        }
    }

    /// The HTTP status (see the module docs for the reasons).
    pub(crate) fn status(&self, media: GraphqlMedia) -> StatusCode {
        match self {
            Self::NotFound | Self::NotSupported => StatusCode::OK,
            Self::HashMismatch | Self::BadInput(_) => StatusCode::BAD_REQUEST,
            Self::NotAllowed => match media {
                GraphqlMedia::GraphqlResponseJson => StatusCode::BAD_REQUEST,
                GraphqlMedia::Json => StatusCode::OK,
            },
        }
    }

    /// The GraphQL error answer, rendered by the rescue point (`http::problem`) with
    /// the status chosen here.
    pub(crate) fn respond(self, media: GraphqlMedia) -> Response {
        let status = self.status(media);
        let uncacheable = matches!(self, Self::NotFound | Self::NotSupported);
        let mut error = ApiError::new(self.code(), self.to_string()).with_status(status);
        if uncacheable {
            error = error.with_header(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-cache, must-revalidate"),
            );
        }
        error.respond(&ErrorContext::graphql(media))
    }
}

/// `extensions.persistedQuery`.
struct PersistedQuery {
    sha256_hash: String,
}

impl PersistedQuery {
    fn parse(value: Value) -> Result<Self, Refusal> {
        let malformed = || {
            Refusal::BadInput(
                "extensions.persistedQuery must be {\"version\": 1, \"sha256Hash\": \"<hex SHA-256 of the query>\"}"
                    .to_owned(),
            )
        };
        let Value::Object(mut fields) = value else {
            return Err(malformed());
        };
        match fields.get("version") {
            Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
            Some(other) => {
                return Err(Refusal::BadInput(format!(
                    "unsupported persistedQuery version {other}; only version 1 is supported"
                )));
            }
            None => return Err(malformed()),
        }
        match fields.swap_remove("sha256Hash") {
            Some(Value::String(hash)) if !hash.is_empty() => Ok(Self { sha256_hash: hash }),
            _ => Err(malformed()),
        }
    }
}

/// The documents a request may run by reference, and the allow-list. Shared by every
/// request (one per server).
pub struct TrustedDocuments {
    path: Option<PathBuf>,
    allow_list: bool,
    /// `None` when `graphql.persisted_queries` is off, and in allow-list mode (which
    /// never reads nor writes it).
    apq: Option<ApqStore>,
    manifest: ArcSwap<Manifest>,
}

impl TrustedDocuments {
    /// For `config`, serving `manifest`.
    pub fn new(config: &Config, manifest: Manifest) -> Self {
        let g = &config.graphql;
        metrics::gauge!("devicegraph_trusted_documents").set(manifest.len() as f64);
        Self {
            path: g.trusted_documents.clone(),
            allow_list: g.allow_list,
            apq: (g.persisted_queries && !g.allow_list)
                .then(|| ApqStore::new(config.limits.max_body_bytes)),
            manifest: ArcSwap::from_pointee(manifest),
        }
    }

    /// The manifest `graphql.trusted_documents` names, loaded and checked (empty
    /// when none is configured).
    pub fn manifest_of(config: &Config) -> Result<Manifest, ManifestError> {
        let Some(path) = &config.graphql.trusted_documents else {
            return Ok(Manifest::default());
        };
        let manifest = Manifest::load(path)?;
        tracing::info!(
            path = %path.display(),
            operations = manifest.len(),
            allow_list = config.graphql.allow_list,
            "trusted documents loaded"
        );
        Ok(manifest)
    }

    /// `check-config`: loads the configured manifest and returns how many operations
    /// it has (`None` when none is configured).
    pub fn check(config: &Config) -> Result<Option<usize>, ManifestError> {
        config
            .graphql
            .trusted_documents
            .as_deref()
            .map(|path| Manifest::load(path).map(|m| m.len()))
            .transpose()
    }

    /// Operations in the manifest now serving.
    pub fn len(&self) -> usize {
        self.manifest.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the manifest again and swaps it in; on failure the old one keeps serving.
    /// Returns the number of operations now served. Without a configured manifest,
    /// nothing to do.
    pub fn reload(&self) -> Result<usize, ManifestError> {
        let Some(path) = &self.path else {
            return Ok(0);
        };
        match Manifest::load(path) {
            Ok(manifest) => {
                let operations = manifest.len();
                self.manifest.store(Arc::new(manifest));
                metrics::gauge!("devicegraph_trusted_documents").set(operations as f64);
                metrics::counter!("devicegraph_trusted_documents_reloads_total", "result" => "ok")
                    .increment(1);
                tracing::info!(path = %path.display(), operations, "trusted documents reloaded");
                Ok(operations)
            }
            Err(e) => {
                metrics::counter!("devicegraph_trusted_documents_reloads_total", "result" => "error")
                    .increment(1);
                tracing::error!(
                    error = %e,
                    operations = self.len(),
                    "trusted documents not reloaded; the previous manifest stays in use"
                );
                Err(e)
            }
        }
    }

    /// Reloads the manifest on every SIGHUP until the returned guard is dropped.
    /// Does nothing without a configured manifest (SIGHUP then keeps its default
    /// action). The handler is installed before this returns, so a SIGHUP sent once
    /// the server is up can never take the default action and kill the process.
    pub(crate) fn watch_sighup(self: &Arc<Self>) -> Option<AbortOnDrop> {
        self.path.as_ref()?;
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hangups = match signal(SignalKind::hangup()) {
                Ok(hangups) => hangups,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP; trusted documents will not reload");
                    return None;
                }
            };
            let trusted = Arc::clone(self);
            let task = tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    // The error is logged by `reload`; the old manifest keeps serving.
                    let _ = trusted.reload();
                }
            });
            Some(AbortOnDrop(task))
        }
        #[cfg(not(unix))]
        None
    }

    /// Turns `incoming` into the request to execute, or refuses it.
    pub(crate) fn resolve(&self, incoming: Incoming) -> Result<async_graphql::Request, Refusal> {
        let Incoming {
            mut request,
            document_id,
        } = incoming;
        let persisted = request
            .extensions
            .remove("persistedQuery")
            .map(PersistedQuery::parse)
            .transpose()?;
        let has_text = !request.query.is_empty();
        match (document_id, persisted) {
            (Some(_), Some(_)) => Err(Refusal::BadInput(
                "send either documentId or extensions.persistedQuery, not both".to_owned(),
            )),
            (Some(_), None) if has_text => Err(Refusal::BadInput(
                "send either documentId or query, not both".to_owned(),
            )),
            (Some(id), None) => self.by_reference(&id, request),
            (None, Some(pq)) if has_text => self.register(&pq.sha256_hash, request),
            (None, Some(pq)) => self.by_reference(&pq.sha256_hash, request),
            (None, None) if request.query.trim().is_empty() => Err(Refusal::BadInput(
                "the request has no `query`: send the operation's text in `query` \
                 (or a persisted query's hash in `extensions.persistedQuery`, or a \
                 `documentId`)"
                    .to_owned(),
            )),
            (None, None) => self.check_text(request),
        }
    }

    /// A hash-only or `documentId` request.
    fn by_reference(
        &self,
        id: &str,
        mut request: async_graphql::Request,
    ) -> Result<async_graphql::Request, Refusal> {
        if let Some(document) = self.manifest.load().by_id(id) {
            tracing::debug!(id = %document.id, name = ?document.name, "trusted document");
            request.query = document.body.to_string();
            return Ok(request);
        }
        if self.allow_list {
            refused("unknown_id");
            return Err(Refusal::NotFound);
        }
        match &self.apq {
            Some(store) => match store.get(&key(id)) {
                Some(text) => {
                    request.query = text.to_string();
                    Ok(request)
                }
                None => Err(Refusal::NotFound),
            },
            None if self.path.is_some() => Err(Refusal::NotFound),
            None => Err(Refusal::NotSupported),
        }
    }

    /// Hash and query: an APQ registration.
    fn register(
        &self,
        hash: &str,
        request: async_graphql::Request,
    ) -> Result<async_graphql::Request, Refusal> {
        let manifest = self.manifest.load();
        // A manifest id (possibly an opaque one) must come with its own body.
        if let Some(document) = manifest.by_id(hash) {
            return if *document.body == request.query {
                Ok(request)
            } else {
                Err(Refusal::HashMismatch)
            };
        }
        let digest = sha256(&request.query);
        let hex = hex::encode(digest);
        if !is_sha256_hex(hash) || !hash.eq_ignore_ascii_case(&hex) {
            return Err(Refusal::HashMismatch);
        }
        if self.allow_list {
            return match manifest.by_text(&digest) {
                Some(_) => Ok(request),
                None => {
                    refused("not_allowed");
                    Err(Refusal::NotAllowed)
                }
            };
        }
        if let Some(store) = &self.apq {
            store.insert(hex, &request.query);
        }
        Ok(request)
    }

    /// A full-text request.
    fn check_text(
        &self,
        request: async_graphql::Request,
    ) -> Result<async_graphql::Request, Refusal> {
        if !self.allow_list
            || self
                .manifest
                .load()
                .by_text(&sha256(&request.query))
                .is_some()
        {
            return Ok(request);
        }
        refused("not_allowed");
        Err(Refusal::NotAllowed)
    }
}

fn refused(reason: &'static str) {
    metrics::counter!("devicegraph_trusted_documents_refused_total", "reason" => reason)
        .increment(1);
}

/// Aborts the task when dropped (the SIGHUP watcher ends with the server).
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
