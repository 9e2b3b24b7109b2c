//! Turns the overlaid TOML table into a typed [`Config`], collecting every problem.
//!
//! Each key is converted on its own, so one bad value never hides another; a key
//! that fails keeps its default and the problem is recorded under its dotted name.
//! Cross-field rules (secrets required in thingspace mode, keys required in api_key
//! mode) run last and stay quiet about keys that already have a problem.

use std::collections::{BTreeSet, HashSet};
use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::convert::{
    auth_mode, boolean, cors_origins, describe, duration, http_url, integer, key_accounts,
    log_format, log_level, redis_url, secret, sha256_hex, size, socket_addr, string, upstream_mode,
};
use super::raw::{
    Raw, RawApiKey, RawAuth, RawCache, RawGraphql, RawLimits, RawLog, RawServer, RawSimulator,
    RawTtl, RawUpstream, Unknown,
};
use super::{ApiKey, AuthMode, Config, ConfigError, KeyAccounts, Problem, UpstreamMode};

/// Bounds of `server.max_header_bytes`: hyper's HTTP/1 read buffer is at least 8 KiB.
const MIN_HEADER_BYTES: u64 = 8 * 1024;
const MAX_HEADER_BYTES: u64 = 1024 * 1024;
/// Smallest `limits.max_response_bytes`: room for an error answer.
const MIN_RESPONSE_BYTES: u64 = 4 * 1024;

pub(super) fn validate(table: Table, problems: Vec<Problem>) -> Result<Config, ConfigError> {
    let mut v = Validator { problems };
    let mut config = Config::default();
    for (section, value) in table {
        match section.as_str() {
            "server" => {
                if let Some(raw) = v.section::<RawServer>("server", value) {
                    v.server(raw, &mut config);
                }
            }
            "upstream" => {
                if let Some(raw) = v.section::<RawUpstream>("upstream", value) {
                    v.upstream(raw, &mut config);
                }
            }
            "simulator" => {
                if let Some(raw) = v.section::<RawSimulator>("simulator", value) {
                    v.simulator(raw, &mut config);
                }
            }
            "cache" => {
                if let Some(raw) = v.section::<RawCache>("cache", value) {
                    v.cache(raw, &mut config);
                }
            }
            "auth" => {
                if let Some(raw) = v.section::<RawAuth>("auth", value) {
                    v.auth(raw, &mut config);
                }
            }
            "limits" => {
                if let Some(raw) = v.section::<RawLimits>("limits", value) {
                    v.limits(raw, &mut config);
                }
            }
            "graphql" => {
                if let Some(raw) = v.section::<RawGraphql>("graphql", value) {
                    v.graphql(raw, &mut config);
                }
            }
            "log" => {
                if let Some(raw) = v.section::<RawLog>("log", value) {
                    v.log(raw, &mut config);
                }
            }
            other => v.problem(other, "unknown key"),
        }
    }
    v.cross_field(&config);
    if v.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(v.problems))
    }
}

struct Validator {
    problems: Vec<Problem>,
}

/// A converter from a TOML value to a typed setting, with a message on failure.
type Convert<T> = fn(&Value) -> Result<T, String>;

impl Validator {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(key, message));
    }

    fn has_problem(&self, key: &str) -> bool {
        self.problems.iter().any(|p| p.key == key)
    }

    fn section<T: DeserializeOwned>(&mut self, key: &str, value: Value) -> Option<T> {
        if !value.is_table() {
            self.problem(
                key,
                format!("expected a table of settings, found {}", describe(&value)),
            );
            return None;
        }
        match value.try_into::<T>() {
            Ok(raw) => Some(raw),
            Err(e) => {
                self.problem(key, e.message().to_owned());
                None
            }
        }
    }

    fn unknown(&mut self, prefix: &str, unknown: Unknown) {
        for key in unknown.into_keys() {
            self.problem(&format!("{prefix}.{key}"), "unknown key");
        }
    }

    /// Converts `raw` if present; on failure records the problem and keeps `current`.
    fn get<T>(&mut self, key: &str, raw: Raw, current: T, convert: Convert<T>) -> T {
        match raw {
            None => current,
            Some(value) => match convert(&value) {
                Ok(converted) => converted,
                Err(message) => {
                    self.problem(key, message);
                    current
                }
            },
        }
    }

    /// Like `get` for a count that must be at least 1.
    fn positive<T>(&mut self, key: &str, raw: Raw, current: T) -> T
    where
        T: TryFrom<i64> + FromStr + PartialOrd + From<u8> + Copy,
    {
        let value = self.get(key, raw, current, integer::<T>);
        if value < T::from(1) {
            self.problem(key, "must be at least 1");
        }
        value
    }

    fn positive_duration(&mut self, key: &str, raw: Raw, current: Duration) -> Duration {
        let value = self.get(key, raw, current, duration);
        if value.is_zero() {
            self.problem(key, "must be longer than 0s");
        }
        value
    }

    fn server(&mut self, raw: RawServer, config: &mut Config) {
        let s = &mut config.server;
        s.listen = self.get("server.listen", raw.listen, s.listen, socket_addr);
        s.request_timeout = self.positive_duration(
            "server.request_timeout",
            raw.request_timeout,
            s.request_timeout,
        );
        s.shutdown_grace = self.get(
            "server.shutdown_grace",
            raw.shutdown_grace,
            s.shutdown_grace,
            duration,
        );
        s.header_read_timeout = self.positive_duration(
            "server.header_read_timeout",
            raw.header_read_timeout,
            s.header_read_timeout,
        );
        s.idle_timeout =
            self.positive_duration("server.idle_timeout", raw.idle_timeout, s.idle_timeout);
        s.max_header_bytes = self.get(
            "server.max_header_bytes",
            raw.max_header_bytes,
            s.max_header_bytes,
            size,
        );
        // hyper's read buffer (which bounds an HTTP/1 header block) cannot be smaller.
        if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&s.max_header_bytes) {
            self.problem(
                "server.max_header_bytes",
                format!("must be between {MIN_HEADER_BYTES} and {MAX_HEADER_BYTES} bytes"),
            );
        }
        s.max_headers = self.positive("server.max_headers", raw.max_headers, s.max_headers);
        s.max_connections = self.positive(
            "server.max_connections",
            raw.max_connections,
            s.max_connections,
        );
        s.http2_max_concurrent_streams = self.positive(
            "server.http2_max_concurrent_streams",
            raw.http2_max_concurrent_streams,
            s.http2_max_concurrent_streams,
        );
        s.cors_origins = self.get(
            "server.cors_origins",
            raw.cors_origins,
            s.cors_origins.clone(),
            cors_origins,
        );
        self.unknown("server", raw.unknown);
    }

    fn upstream(&mut self, raw: RawUpstream, config: &mut Config) {
        let u = &mut config.upstream;
        u.mode = self.get("upstream.mode", raw.mode, u.mode, upstream_mode);
        u.base_url = self.get(
            "upstream.base_url",
            raw.base_url,
            u.base_url.clone(),
            http_url,
        );
        u.client_id = self.get(
            "upstream.client_id",
            raw.client_id,
            u.client_id.clone(),
            string,
        );
        u.client_secret = self.get(
            "upstream.client_secret",
            raw.client_secret,
            u.client_secret.clone(),
            secret,
        );
        u.username = self.get(
            "upstream.username",
            raw.username,
            u.username.clone(),
            string,
        );
        u.password = self.get(
            "upstream.password",
            raw.password,
            u.password.clone(),
            secret,
        );
        u.timeout = self.positive_duration("upstream.timeout", raw.timeout, u.timeout);
        u.max_concurrency = self.positive(
            "upstream.max_concurrency",
            raw.max_concurrency,
            u.max_concurrency,
        );
        u.rate_per_second = self.positive(
            "upstream.rate_per_second",
            raw.rate_per_second,
            u.rate_per_second,
        );
        // The burst follows the rate unless set, so raising the rate alone does what
        // an operator expects.
        u.burst = match raw.burst {
            None => u.rate_per_second,
            some => self.positive("upstream.burst", some, u.rate_per_second),
        };
        u.max_attempts = self.positive("upstream.max_attempts", raw.max_attempts, u.max_attempts);
        self.unknown("upstream", raw.unknown);
    }

    fn simulator(&mut self, raw: RawSimulator, config: &mut Config) {
        let s = &mut config.simulator;
        s.seed = self.get("simulator.seed", raw.seed, s.seed, integer::<u64>);
        s.devices = self.positive("simulator.devices", raw.devices, s.devices);
        self.unknown("simulator", raw.unknown);
    }

    fn cache(&mut self, raw: RawCache, config: &mut Config) {
        let c = &mut config.cache;
        c.max_bytes = self.get("cache.max_bytes", raw.max_bytes, c.max_bytes, size);
        if c.max_bytes == 0 {
            self.problem("cache.max_bytes", "must be more than 0 bytes");
        }
        c.stale_while_revalidate = self.get(
            "cache.stale_while_revalidate",
            raw.stale_while_revalidate,
            c.stale_while_revalidate,
            duration,
        );
        c.stale_if_error = self.get(
            "cache.stale_if_error",
            raw.stale_if_error,
            c.stale_if_error,
            duration,
        );
        c.redis_url = self.get(
            "cache.redis_url",
            raw.redis_url,
            c.redis_url.clone(),
            redis_url,
        );
        if let Some(ttl) = raw.ttl
            && let Some(raw_ttl) = self.section::<RawTtl>("cache.ttl", ttl)
        {
            let t = &mut c.ttl;
            t.device_details = self.positive_duration(
                "cache.ttl.device_details",
                raw_ttl.device_details,
                t.device_details,
            );
            t.upgrade_history = self.positive_duration(
                "cache.ttl.upgrade_history",
                raw_ttl.upgrade_history,
                t.upgrade_history,
            );
            t.check_ins =
                self.positive_duration("cache.ttl.check_ins", raw_ttl.check_ins, t.check_ins);
            t.campaign_devices = self.positive_duration(
                "cache.ttl.campaign_devices",
                raw_ttl.campaign_devices,
                t.campaign_devices,
            );
            t.provisioning = self.positive_duration(
                "cache.ttl.provisioning",
                raw_ttl.provisioning,
                t.provisioning,
            );
            t.not_found =
                self.positive_duration("cache.ttl.not_found", raw_ttl.not_found, t.not_found);
            self.unknown("cache.ttl", raw_ttl.unknown);
        }
        self.unknown("cache", raw.unknown);
    }

    fn auth(&mut self, raw: RawAuth, config: &mut Config) {
        let a = &mut config.auth;
        a.mode = self.get("auth.mode", raw.mode, a.mode, auth_mode);
        a.admin_key_sha256 =
            self.get(
                "auth.admin_key_sha256",
                raw.admin_key_sha256,
                None,
                |v| match v {
                    Value::String(s) if s.trim().is_empty() => Ok(None),
                    other => sha256_hex(other).map(Some),
                },
            );
        a.allow_unauthenticated_public = self.get(
            "auth.allow_unauthenticated_public",
            raw.allow_unauthenticated_public,
            a.allow_unauthenticated_public,
            boolean,
        );
        if let Some(keys) = raw.api_keys {
            a.api_keys = self.api_keys(keys);
        }
        self.unknown("auth", raw.unknown);
    }

    fn api_keys(&mut self, value: Value) -> Vec<ApiKey> {
        let Value::Array(items) = value else {
            self.problem(
                "auth.api_keys",
                format!(
                    "expected a list of [[auth.api_keys]] tables, found {}",
                    describe(&value)
                ),
            );
            return Vec::new();
        };
        let mut keys = Vec::new();
        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        for (i, item) in items.into_iter().enumerate() {
            let prefix = format!("auth.api_keys[{i}]");
            let Some(raw) = self.section::<RawApiKey>(&prefix, item) else {
                continue;
            };
            let before = self.problems.len();
            let name = self.get(&format!("{prefix}.name"), raw.name, String::new(), string);
            if name.trim().is_empty() && !self.has_problem(&format!("{prefix}.name")) {
                self.problem(
                    &format!("{prefix}.name"),
                    "required (a label for logs and rate limits)",
                );
            } else if !names.insert(name.clone()) {
                self.problem(
                    &format!("{prefix}.name"),
                    format!("duplicate key name {name:?}"),
                );
            }
            let sha_key = format!("{prefix}.sha256");
            let sha256 = match raw.sha256 {
                None => {
                    self.problem(&sha_key, "required (hex SHA-256 of the key)");
                    [0; 32]
                }
                some => self.get(&sha_key, some, [0; 32], sha256_hex),
            };
            if !self.has_problem(&sha_key) && !hashes.insert(sha256) {
                self.problem(&sha_key, "the same key hash is listed twice");
            }
            let accounts_key = format!("{prefix}.accounts");
            let accounts = match raw.accounts {
                None => {
                    self.problem(&accounts_key, "required: account names, or [\"*\"] for all");
                    KeyAccounts::Only(BTreeSet::new())
                }
                some => self.get(
                    &accounts_key,
                    some,
                    KeyAccounts::Only(BTreeSet::new()),
                    key_accounts,
                ),
            };
            self.unknown(&prefix, raw.unknown);
            if self.problems.len() == before {
                keys.push(ApiKey {
                    name,
                    sha256,
                    accounts,
                });
            }
        }
        keys
    }

    fn limits(&mut self, raw: RawLimits, config: &mut Config) {
        let l = &mut config.limits;
        l.per_client_rps = self.positive(
            "limits.per_client_rps",
            raw.per_client_rps,
            l.per_client_rps,
        );
        l.per_client_burst = match raw.per_client_burst {
            None => l.per_client_rps,
            some => self.positive("limits.per_client_burst", some, l.per_client_rps),
        };
        l.max_depth = self.positive("limits.max_depth", raw.max_depth, l.max_depth);
        l.max_complexity = self.positive(
            "limits.max_complexity",
            raw.max_complexity,
            l.max_complexity,
        );
        l.max_body_bytes = self.get(
            "limits.max_body_bytes",
            raw.max_body_bytes,
            l.max_body_bytes,
            size,
        );
        if l.max_body_bytes == 0 {
            self.problem("limits.max_body_bytes", "must be more than 0 bytes");
        }
        l.max_tokens = self.positive("limits.max_tokens", raw.max_tokens, l.max_tokens);
        l.max_fields = self.positive("limits.max_fields", raw.max_fields, l.max_fields);
        l.max_aliases = self.get(
            "limits.max_aliases",
            raw.max_aliases,
            l.max_aliases,
            integer::<usize>,
        );
        l.max_root_fields = self.positive(
            "limits.max_root_fields",
            raw.max_root_fields,
            l.max_root_fields,
        );
        l.max_directives_per_field = self.get(
            "limits.max_directives_per_field",
            raw.max_directives_per_field,
            l.max_directives_per_field,
            integer::<usize>,
        );
        l.max_list_length = self.positive(
            "limits.max_list_length",
            raw.max_list_length,
            l.max_list_length,
        );
        l.max_response_bytes = self.get(
            "limits.max_response_bytes",
            raw.max_response_bytes,
            l.max_response_bytes,
            size,
        );
        if l.max_response_bytes < MIN_RESPONSE_BYTES {
            self.problem(
                "limits.max_response_bytes",
                format!("must be at least {MIN_RESPONSE_BYTES} bytes"),
            );
        }
        l.max_upstream_calls = self.get(
            "limits.max_upstream_calls",
            raw.max_upstream_calls,
            l.max_upstream_calls,
            integer::<u64>,
        );
        l.upstream_calls_per_minute = self.get(
            "limits.upstream_calls_per_minute",
            raw.upstream_calls_per_minute,
            l.upstream_calls_per_minute,
            integer::<u64>,
        );
        self.unknown("limits", raw.unknown);
    }

    fn graphql(&mut self, raw: RawGraphql, config: &mut Config) {
        let g = &mut config.graphql;
        g.introspection = self.get(
            "graphql.introspection",
            raw.introspection,
            g.introspection,
            boolean,
        );
        g.graphiql = self.get("graphql.graphiql", raw.graphiql, g.graphiql, boolean);
        g.reuse_validation = self.get(
            "graphql.reuse_validation",
            raw.reuse_validation,
            g.reuse_validation,
            boolean,
        );
        g.max_page_size =
            self.positive("graphql.max_page_size", raw.max_page_size, g.max_page_size);
        g.history_concurrency = self.positive(
            "graphql.history_concurrency",
            raw.history_concurrency,
            g.history_concurrency,
        );
        g.persisted_queries = self.get(
            "graphql.persisted_queries",
            raw.persisted_queries,
            g.persisted_queries,
            boolean,
        );
        g.trusted_documents = self.get(
            "graphql.trusted_documents",
            raw.trusted_documents,
            g.trusted_documents.clone(),
            |v| {
                let path = string(v)?;
                let path = path.trim();
                Ok((!path.is_empty()).then(|| std::path::PathBuf::from(path)))
            },
        );
        g.allow_list = self.get("graphql.allow_list", raw.allow_list, g.allow_list, boolean);
        self.unknown("graphql", raw.unknown);
    }

    fn log(&mut self, raw: RawLog, config: &mut Config) {
        let l = &mut config.log;
        l.format = self.get("log.format", raw.format, l.format, log_format);
        l.level = self.get("log.level", raw.level, l.level.clone(), log_level);
        self.unknown("log", raw.unknown);
    }

    fn cross_field(&mut self, config: &Config) {
        let u = &config.upstream;
        if u.mode == UpstreamMode::Thingspace {
            let required: [(&str, bool); 4] = [
                ("client_id", u.client_id.trim().is_empty()),
                // Blank or whitespace-only secrets are as missing as empty ones.
                (
                    "client_secret",
                    u.client_secret.expose_secret().trim().is_empty(),
                ),
                ("username", u.username.trim().is_empty()),
                ("password", u.password.expose_secret().trim().is_empty()),
            ];
            for (name, missing) in required {
                let key = format!("upstream.{name}");
                if missing && !self.has_problem(&key) {
                    self.problem(
                        &key,
                        format!(
                            "required in thingspace mode (set DEVICEGRAPH_UPSTREAM__{})",
                            name.to_ascii_uppercase()
                        ),
                    );
                }
            }
        }
        if config.auth.mode == AuthMode::ApiKey
            && config.auth.api_keys.is_empty()
            && !self
                .problems
                .iter()
                .any(|p| p.key.starts_with("auth.api_keys"))
        {
            self.problem(
                "auth.api_keys",
                "at least one [[auth.api_keys]] entry is required when auth.mode = \"api_key\"",
            );
        }
        // An open gateway reachable from other machines is a mistake unless said
        // out loud: anyone who reaches the port spends the ThingSpace budget.
        if config.auth.mode == AuthMode::None
            && !config.server.listen.ip().is_loopback()
            && !config.auth.allow_unauthenticated_public
            && !self.has_problem("auth.mode")
            && !self.has_problem("server.listen")
        {
            self.problem(
                "auth.mode",
                format!(
                    "\"none\" on the non-loopback address {} lets anyone use the gateway; \
                     use auth.mode = \"api_key\", listen on loopback, or set \
                     auth.allow_unauthenticated_public = true",
                    config.server.listen
                ),
            );
        }
        if config.graphql.allow_list
            && config.graphql.trusted_documents.is_none()
            && !self.has_problem("graphql.trusted_documents")
        {
            self.problem(
                "graphql.allow_list",
                "needs graphql.trusted_documents (the manifest of the operations allowed)",
            );
        }
    }
}
