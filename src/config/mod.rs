//! The gateway's configuration: typed settings, loaded from a TOML file and then
//! `DEVICEGRAPH_*` environment overrides, validated in one pass.
//!
//! Loading is `file text -> TOML table -> env overlay (env.rs) -> section structs
//! (raw.rs) -> validate (validate/) -> Config`. Every problem found on the way is
//! collected, named by its dotted key (`server.request_timeout: invalid duration "fast"`),
//! and returned together in [`ConfigError::Invalid`], so an operator fixes a config in
//! one round. Nothing here panics on input.

mod convert;
mod env;
mod raw;
mod redact;
mod units;
mod validate;

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use devicegraph_graphql::{DocumentLimits, GraphqlConfig};
use devicegraph_upstream::{AccountName, BreakerConfig, ClientConfig, RetryBudgetConfig};
use secrecy::SecretString;
use url::Url;

pub use redact::{redact_url, redact_urls};

/// `config/default.toml`, built in: used when no config is named and the file is not
/// where the default path says (an installed binary run from anywhere).
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// The config path used when none is given.
pub const DEFAULT_PATH: &str = "config/default.toml";

/// One thing wrong with a configuration, named by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `cache.max_bytes` or `auth.api_keys[0].sha256`.
    pub key: String,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{source_name}: not valid TOML: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    #[error("{} configuration problem(s):\n  {}", .0.len(), list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

impl ConfigError {
    /// Every problem as one line each (a syntax or read error is one line).
    pub fn problems(&self) -> Vec<String> {
        match self {
            Self::Invalid(problems) => problems.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub simulator: SimulatorConfig,
    pub cache: CacheConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub graphql: GraphqlSettings,
    pub log: LogConfig,
}

impl Config {
    /// Reads `path`, overlays `env` (pass `std::env::vars()` in production) and
    /// validates.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string(), env)
    }

    /// Like [`Config::load`] for text already in memory; `source_name` only labels
    /// syntax errors.
    pub fn from_toml_str(
        text: &str,
        source_name: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            source_name: source_name.to_owned(),
            message: syntax_message(&e, text),
        })?;
        let mut problems = Vec::new();
        env::apply(&mut table, env, &mut problems);
        validate::validate(table, problems)
    }
}

impl Config {
    /// One line saying what this config will do, for `check-config`. URLs are shown
    /// with their credentials masked ([`redact_url`]).
    pub fn summary(&self) -> String {
        let upstream = match self.upstream.mode {
            UpstreamMode::Simulator => format!(
                "embedded simulator (seed {}, {} devices)",
                self.simulator.seed, self.simulator.devices
            ),
            UpstreamMode::Thingspace => format!(
                "ThingSpace at {}",
                redact_url(self.upstream.base_url.as_str())
            ),
        };
        let auth = match self.auth.mode {
            AuthMode::None => "no auth".to_owned(),
            AuthMode::ApiKey => format!("{} API key(s)", self.auth.api_keys.len()),
        };
        format!(
            "listen {}, upstream {upstream}, cache {}{}, {auth}, admin routes {}",
            self.server.listen,
            units::format_size(self.cache.max_bytes),
            match &self.cache.redis_url {
                Some(url) => format!(" + Redis at {}", redact_url(url)),
                None => String::new(),
            },
            if self.auth.admin_key_sha256.is_some() {
                "on"
            } else {
                "off"
            },
        )
    }
}

fn syntax_message(error: &toml::de::Error, text: &str) -> String {
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", error.message())
        }
        None => error.message().to_owned(),
    }
}

/// `[server]`
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Whole-request deadline; past it the client gets 504.
    pub request_timeout: Duration,
    /// After a shutdown signal, how long in-flight requests may run before the
    /// process exits anyway.
    pub shutdown_grace: Duration,
    /// A connection must deliver a request's whole header block within this time
    /// (slowloris); counted from accept on a new connection, from the request's
    /// first byte on a keep-alive one.
    pub header_read_timeout: Duration,
    /// An idle keep-alive connection (no request in progress) is closed after this.
    pub idle_timeout: Duration,
    /// Largest request header block (request line and all headers), HTTP/1 and 2.
    pub max_header_bytes: u64,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// Connections served at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub http2_max_concurrent_streams: u32,
    /// Origins allowed to call the API from a browser (CORS); empty = no CORS
    /// headers at all (same-origin only). `["*"]` allows any origin.
    pub cors_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_connections: 4096,
            http2_max_concurrent_streams: 100,
            cors_origins: Vec::new(),
        }
    }
}

/// Where the upstream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamMode {
    /// Start the simulator in-process on a loopback port and use it.
    #[default]
    Simulator,
    /// The real ThingSpace at `upstream.base_url`.
    Thingspace,
}

/// `[upstream]`
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub mode: UpstreamMode,
    pub base_url: Url,
    pub client_id: String,
    pub client_secret: SecretString,
    pub username: String,
    pub password: SecretString,
    /// Deadline of one upstream call, retries included.
    pub timeout: Duration,
    pub max_concurrency: usize,
    pub rate_per_second: u32,
    pub burst: u32,
    pub max_attempts: u32,
    /// Retries across all callers as a share of first attempts, with a floor.
    pub retry_budget: RetryBudgetConfig,
    /// How long an attempt the caller gave up on may keep its concurrency slot.
    pub abandon_after: Duration,
    /// Calls that may wait for a concurrency slot or budget at once; beyond, shed.
    pub max_queued: usize,
    /// The longest a call waits for a slot or budget before it is shed.
    pub max_queue_wait: Duration,
    /// Share of concurrency and budget background refreshes leave to interactive calls.
    pub background_reserve: f64,
    /// `[upstream.circuit_breaker]`
    pub circuit_breaker: BreakerConfig,
}

/// ThingSpace's production base URL.
pub const THINGSPACE_BASE_URL: &str = "https://thingspace.verizon.com/api";

impl Default for UpstreamConfig {
    fn default() -> Self {
        let store = devicegraph_cache::StoreConfig::default();
        Self {
            mode: UpstreamMode::Simulator,
            base_url: Url::parse(THINGSPACE_BASE_URL).expect("the built-in base URL parses"),
            client_id: String::new(),
            client_secret: SecretString::from(""),
            username: String::new(),
            password: SecretString::from(""),
            // The client's and the store's defaults.
            timeout: ClientConfig::DEFAULT_TIMEOUT,
            max_concurrency: store.max_concurrency,
            rate_per_second: store.rate_per_second,
            burst: store.burst,
            max_attempts: ClientConfig::DEFAULT_MAX_ATTEMPTS,
            retry_budget: RetryBudgetConfig::default(),
            abandon_after: ClientConfig::DEFAULT_ABANDON_AFTER,
            max_queued: store.max_queued,
            max_queue_wait: store.max_queue_wait,
            background_reserve: store.background_reserve,
            circuit_breaker: BreakerConfig::default(),
        }
    }
}

/// `[simulator]`, used in simulator mode.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    pub seed: u64,
    pub devices: u64,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            devices: 10_000,
        }
    }
}

/// `[cache.ttl]`: the store's own type, so its defaults are stated once.
pub type TtlConfig = devicegraph_cache::Ttls;

/// `[cache]`
#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub max_bytes: u64,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    /// `None` when `redis_url` is empty.
    pub redis_url: Option<String>,
    /// Upper bound of the response cache (serialized answers in front of
    /// execution); 0 = no response cache.
    pub response_cache_max_bytes: u64,
    pub ttl: TtlConfig,
}

impl Default for CacheConfig {
    /// The store's defaults.
    fn default() -> Self {
        let store = devicegraph_cache::StoreConfig::default();
        Self {
            max_bytes: store.max_bytes,
            stale_while_revalidate: store.stale_while_revalidate,
            stale_if_error: store.stale_if_error,
            redis_url: None,
            response_cache_max_bytes: 64 << 20,
            ttl: store.ttl,
        }
    }
}

/// `auth.mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    #[default]
    None,
    ApiKey,
}

/// Which accounts a key may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAccounts {
    /// `accounts = ["*"]`
    All,
    Only(BTreeSet<AccountName>),
}

/// One `[[auth.api_keys]]` entry. Only the key's SHA-256 is ever configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub name: String,
    pub sha256: [u8; 32],
    pub accounts: KeyAccounts,
}

/// `[auth]`
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// `None` when empty: the admin routes are then not served at all.
    pub admin_key_sha256: Option<[u8; 32]>,
    pub api_keys: Vec<ApiKey>,
    /// Lets `mode = "none"` listen on a non-loopback address (refused otherwise).
    pub allow_unauthenticated_public: bool,
}

/// `[limits]`
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub per_client_rps: u32,
    /// Requests a client may send at once above the steady rate; defaults to
    /// `per_client_rps`.
    pub per_client_burst: u32,
    /// Largest request body.
    pub max_body_bytes: u64,
    /// Largest serialized response body.
    pub max_response_bytes: u64,
    /// Upstream calls per minute one client (API key, or IP without auth) may cause
    /// (0 = no limit).
    pub upstream_calls_per_minute: u64,
    pub max_depth: usize,
    pub max_complexity: usize,
    /// The limits on one operation's document (`max_tokens`, `max_fields`, ...,
    /// `max_upstream_calls`), as the GraphQL crate applies them.
    pub documents: DocumentLimits,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let schema = GraphqlConfig::default();
        Self {
            per_client_rps: 100,
            per_client_burst: 100,
            max_depth: schema.max_depth,
            max_complexity: schema.max_complexity,
            max_body_bytes: 1 << 20,
            documents: schema.documents,
            max_response_bytes: 32 << 20,
            upstream_calls_per_minute: 1200,
        }
    }
}

/// `[graphql]`
#[derive(Debug, Clone)]
pub struct GraphqlSettings {
    pub introspection: bool,
    pub graphiql: bool,
    /// Largest `first` a campaign connection accepts (and the REST `limit`).
    pub max_page_size: usize,
    /// Per-device history reads in flight for one operation.
    pub history_concurrency: usize,
    /// Skip full validation for an exact repeat of an operation that already passed
    /// it (same text, name and variables).
    pub reuse_validation: bool,
    /// Automatic persisted queries (Apollo's protocol): a client may send only the
    /// SHA-256 of a query it registered before.
    pub persisted_queries: bool,
    /// A trusted-documents manifest (Apollo's persisted query manifest, or GraphQL
    /// Codegen's `{hash: body}`), loaded at startup and on SIGHUP; `None` = none.
    pub trusted_documents: Option<PathBuf>,
    /// Only operations in the manifest run (by hash or by identical text).
    pub allow_list: bool,
}

impl Default for GraphqlSettings {
    fn default() -> Self {
        let schema = GraphqlConfig::default();
        Self {
            introspection: schema.introspection,
            graphiql: true,
            max_page_size: schema.max_page_size,
            history_concurrency: schema.history_concurrency,
            reuse_validation: schema.reuse_validation,
            persisted_queries: true,
            trusted_documents: None,
            allow_list: false,
        }
    }
}

/// `log.format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// `[log]`
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests;
