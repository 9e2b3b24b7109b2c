//! The file's shape as serde structs: one struct per section, every key of the
//! contract by name, each value kept as an untyped TOML value.
//!
//! Why untyped values and a flattened `unknown` map rather than typed fields and
//! `#[serde(deny_unknown_fields)]`: serde stops at the first failure, so a config with
//! a typo *and* a bad duration would be reported one problem per restart. Here
//! deserialization only fails when a section is not a table; every key is still named
//! in one place (so nothing unknown slips through: it lands in `unknown` and is reported
//! as "unknown key"), and `validate` converts every value, collecting all problems.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Value;

/// A key's value as written (absent = use the default).
pub(crate) type Raw = Option<Value>;
/// Keys that are not part of the section.
pub(crate) type Unknown = BTreeMap<String, Value>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawServer {
    pub(crate) listen: Raw,
    pub(crate) request_timeout: Raw,
    pub(crate) shutdown_grace: Raw,
    pub(crate) header_read_timeout: Raw,
    pub(crate) idle_timeout: Raw,
    pub(crate) max_header_bytes: Raw,
    pub(crate) max_headers: Raw,
    pub(crate) max_connections: Raw,
    pub(crate) http2_max_concurrent_streams: Raw,
    pub(crate) cors_origins: Raw,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawUpstream {
    pub(crate) mode: Raw,
    pub(crate) base_url: Raw,
    pub(crate) client_id: Raw,
    pub(crate) client_secret: Raw,
    pub(crate) username: Raw,
    pub(crate) password: Raw,
    pub(crate) timeout: Raw,
    pub(crate) max_concurrency: Raw,
    pub(crate) rate_per_second: Raw,
    pub(crate) burst: Raw,
    pub(crate) max_attempts: Raw,
    pub(crate) retry_budget: Raw,
    pub(crate) retry_budget_min_per_second: Raw,
    pub(crate) abandon_after: Raw,
    pub(crate) max_queued: Raw,
    pub(crate) max_queue_wait: Raw,
    pub(crate) background_reserve: Raw,
    /// `[upstream.circuit_breaker]`, read as its own section by `validate`.
    pub(crate) circuit_breaker: Raw,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// `[upstream.circuit_breaker]`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawBreaker {
    pub(crate) enabled: Raw,
    pub(crate) window: Raw,
    pub(crate) min_calls: Raw,
    pub(crate) failure_ratio: Raw,
    pub(crate) open_for: Raw,
    pub(crate) max_open_for: Raw,
    pub(crate) half_open_probes: Raw,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawSimulator {
    pub(crate) seed: Raw,
    pub(crate) devices: Raw,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawCache {
    pub(crate) max_bytes: Raw,
    pub(crate) stale_while_revalidate: Raw,
    pub(crate) stale_if_error: Raw,
    pub(crate) redis_url: Raw,
    pub(crate) response_cache_max_bytes: Raw,
    /// `[cache.ttl]`, read as its own section by `validate`.
    pub(crate) ttl: Raw,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// `[cache.ttl]`: one key per cached resource (its name in the cache crate) plus
/// `not_found`; checked against the resources the cache knows.
pub(crate) type RawTtl = BTreeMap<String, Value>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawAuth {
    pub(crate) mode: Raw,
    pub(crate) admin_key_sha256: Raw,
    pub(crate) allow_unauthenticated_public: Raw,
    /// `[[auth.api_keys]]`, each element read as a [`RawApiKey`] by `validate`.
    pub(crate) api_keys: Raw,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawApiKey {
    pub(crate) name: Raw,
    pub(crate) sha256: Raw,
    pub(crate) accounts: Raw,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawLimits {
    pub(crate) per_client_rps: Raw,
    pub(crate) per_client_burst: Raw,
    pub(crate) max_depth: Raw,
    pub(crate) max_complexity: Raw,
    pub(crate) max_body_bytes: Raw,
    pub(crate) max_tokens: Raw,
    pub(crate) max_fields: Raw,
    pub(crate) max_aliases: Raw,
    pub(crate) max_root_fields: Raw,
    pub(crate) max_directives_per_field: Raw,
    pub(crate) max_list_length: Raw,
    pub(crate) max_response_bytes: Raw,
    pub(crate) max_upstream_calls: Raw,
    pub(crate) upstream_calls_per_minute: Raw,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawGraphql {
    pub(crate) introspection: Raw,
    pub(crate) graphiql: Raw,
    pub(crate) max_page_size: Raw,
    pub(crate) history_concurrency: Raw,
    pub(crate) reuse_validation: Raw,
    pub(crate) persisted_queries: Raw,
    pub(crate) trusted_documents: Raw,
    pub(crate) allow_list: Raw,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawLog {
    pub(crate) format: Raw,
    pub(crate) level: Raw,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}
