//! The sections of the configuration but `[auth]`, one method each: every key
//! converted on its own, with its own bounds.

use devicegraph_upstream::BreakerConfig;

use super::Validator;
use crate::config::Config;
use crate::config::convert::{
    boolean, cors_origins, duration, fraction, http_url, integer, log_format, log_level, redis_url,
    secret, size, socket_addr, string, upstream_mode,
};
use crate::config::raw::{
    RawBreaker, RawCache, RawGraphql, RawLimits, RawLog, RawServer, RawSimulator, RawTtl,
    RawUpstream,
};

/// Bounds of `server.max_header_bytes`: hyper's HTTP/1 read buffer is at least 8 KiB.
const MIN_HEADER_BYTES: u64 = 8 * 1024;
const MAX_HEADER_BYTES: u64 = 1024 * 1024;
/// Smallest `limits.max_response_bytes`: room for an error answer.
const MIN_RESPONSE_BYTES: u64 = 4 * 1024;

impl Validator {
    pub(super) fn server(&mut self, raw: RawServer, config: &mut Config) {
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

    pub(super) fn upstream(&mut self, raw: RawUpstream, config: &mut Config) {
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
        u.retry_budget.ratio = self.get(
            "upstream.retry_budget",
            raw.retry_budget,
            u.retry_budget.ratio,
            fraction,
        );
        u.retry_budget.min_per_second = self.get(
            "upstream.retry_budget_min_per_second",
            raw.retry_budget_min_per_second,
            u.retry_budget.min_per_second,
            integer::<u32>,
        );
        u.abandon_after = self.get(
            "upstream.abandon_after",
            raw.abandon_after,
            u.abandon_after,
            duration,
        );
        u.max_queued = self.positive("upstream.max_queued", raw.max_queued, u.max_queued);
        u.max_queue_wait = self.positive_duration(
            "upstream.max_queue_wait",
            raw.max_queue_wait,
            u.max_queue_wait,
        );
        u.background_reserve = self.get(
            "upstream.background_reserve",
            raw.background_reserve,
            u.background_reserve,
            fraction,
        );
        if let Some(table) = raw.circuit_breaker
            && let Some(raw) = self.section::<RawBreaker>("upstream.circuit_breaker", table)
        {
            self.circuit_breaker(raw, &mut u.circuit_breaker);
        }
        self.unknown("upstream", raw.unknown);
    }

    fn circuit_breaker(&mut self, raw: RawBreaker, b: &mut BreakerConfig) {
        const AT: &str = "upstream.circuit_breaker";
        b.enabled = self.get(&format!("{AT}.enabled"), raw.enabled, b.enabled, boolean);
        b.window = self.positive_duration(&format!("{AT}.window"), raw.window, b.window);
        b.min_calls = self.positive(&format!("{AT}.min_calls"), raw.min_calls, b.min_calls);
        b.failure_ratio = self.get(
            &format!("{AT}.failure_ratio"),
            raw.failure_ratio,
            b.failure_ratio,
            fraction,
        );
        if b.failure_ratio <= 0.0 {
            self.problem(
                &format!("{AT}.failure_ratio"),
                "must be above 0 (0 would open the circuit on any call)",
            );
        }
        b.open_for = self.positive_duration(&format!("{AT}.open_for"), raw.open_for, b.open_for);
        b.max_open_for = self.positive_duration(
            &format!("{AT}.max_open_for"),
            raw.max_open_for,
            b.max_open_for,
        );
        if b.max_open_for < b.open_for {
            self.problem(
                &format!("{AT}.max_open_for"),
                "must be at least upstream.circuit_breaker.open_for",
            );
        }
        b.half_open_probes = self.positive(
            &format!("{AT}.half_open_probes"),
            raw.half_open_probes,
            b.half_open_probes,
        );
        self.unknown(AT, raw.unknown);
    }

    pub(super) fn simulator(&mut self, raw: RawSimulator, config: &mut Config) {
        let s = &mut config.simulator;
        s.seed = self.get("simulator.seed", raw.seed, s.seed, integer::<u64>);
        s.devices = self.positive("simulator.devices", raw.devices, s.devices);
        self.unknown("simulator", raw.unknown);
    }

    pub(super) fn cache(&mut self, raw: RawCache, config: &mut Config) {
        let c = &mut config.cache;
        c.max_bytes = self.get("cache.max_bytes", raw.max_bytes, c.max_bytes, size);
        c.response_cache_max_bytes = self.get(
            "cache.response_cache_max_bytes",
            raw.response_cache_max_bytes,
            c.response_cache_max_bytes,
            size,
        );
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
            for (name, value) in raw_ttl {
                let key = format!("cache.ttl.{name}");
                if name == "not_found" {
                    c.ttl.not_found = self.positive_duration(&key, Some(value), c.ttl.not_found);
                    continue;
                }
                match c.ttl.get(&name) {
                    Some(current) => {
                        let ttl = self.positive_duration(&key, Some(value), current);
                        c.ttl.set(&name, ttl);
                    }
                    None => self.problem(&key, "unknown key"),
                }
            }
        }
        self.unknown("cache", raw.unknown);
    }

    pub(super) fn limits(&mut self, raw: RawLimits, config: &mut Config) {
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
        l.documents.max_tokens =
            self.positive("limits.max_tokens", raw.max_tokens, l.documents.max_tokens);
        l.documents.max_fields =
            self.positive("limits.max_fields", raw.max_fields, l.documents.max_fields);
        l.documents.max_aliases = self.get(
            "limits.max_aliases",
            raw.max_aliases,
            l.documents.max_aliases,
            integer::<usize>,
        );
        l.documents.max_root_fields = self.positive(
            "limits.max_root_fields",
            raw.max_root_fields,
            l.documents.max_root_fields,
        );
        l.documents.max_directives_per_field = self.get(
            "limits.max_directives_per_field",
            raw.max_directives_per_field,
            l.documents.max_directives_per_field,
            integer::<usize>,
        );
        l.documents.max_list_length = self.positive(
            "limits.max_list_length",
            raw.max_list_length,
            l.documents.max_list_length,
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
        l.documents.max_upstream_calls = self.get(
            "limits.max_upstream_calls",
            raw.max_upstream_calls,
            l.documents.max_upstream_calls,
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

    pub(super) fn graphql(&mut self, raw: RawGraphql, config: &mut Config) {
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
        g.history_concurrency = self.get(
            "graphql.history_concurrency",
            raw.history_concurrency,
            g.history_concurrency,
            integer::<usize>,
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

    pub(super) fn log(&mut self, raw: RawLog, config: &mut Config) {
        let l = &mut config.log;
        l.format = self.get("log.format", raw.format, l.format, log_format);
        l.level = self.get("log.level", raw.level, l.level.clone(), log_level);
        self.unknown("log", raw.unknown);
    }
}
