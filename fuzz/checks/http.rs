//! The `http` fuzz target's harness and invariant, shared with its corpus replay test
//! (`tests/fuzz_http_corpus.rs`): any bytes become one HTTP request to the whole
//! router (`devicegraph::app`, every middleware layer included) and must get an
//! answer that
//!
//! - arrives within [`TIME_BOUND`] (wall clock, so a CPU-bound stall counts too),
//! - is not a server fault: no 500 (`INTERNAL`), no 5xx other than the upstream
//!   ones (502, 503, 504), and no `INTERNAL` code inside a JSON body,
//! - has a bounded body: at most [`BODY_BOUND`], and at most [`ERROR_BODY_BOUND`]
//!   for an error answer (a 4xx/5xx, or a GraphQL answer with errors and no data),
//! - is valid JSON whenever it says it is JSON (and is not compressed).
//!
//! The upstream is unreachable (`127.0.0.1:9`, one attempt, short deadline): the
//! point is the request path in front of it (routing, limits, auth, content
//! negotiation, GraphQL parsing and validation, path and query checks).
//!
//! # Input format
//!
//! The first byte picks what the rest means:
//!
//! - bits 0-2, the mode:
//!   0. `POST /graphql`, `Content-Type: application/json`, the rest is the body;
//!   1. `POST /graphql`, `Content-Type: application/graphql`, the rest is the body;
//!   2. `GET /graphql?<rest>` (the rest percent-encoded where a query cannot hold it);
//!   3. `POST /graphql` with `{"query": <rest as text>}` (the rest is a GraphQL document);
//!   4. `GET /v1/accounts/<a>/devices/<b>?<c>`, the rest split as `a\nb\nc`;
//!   5. `POST /v1/accounts/<a>/devices:batch`, the rest split as `a\n<body>`;
//!   6. `GET /v1/accounts/<a>/campaigns/<b>/devices?<c>`, the rest split as `a\nb\nc`;
//!   7. raw: `<METHOD> <URI>\n<name>: <value>\n...\n\n<body>` (lines that are not
//!      valid headers are skipped; an invalid method or URI ends the run);
//! - bits 3-4, `Accept` (modes 0-6): none, `application/json`,
//!   `application/graphql-response+json`, `text/html`;
//! - bit 5: the router with `auth.mode = "api_key"` (key [`API_KEY`], scoped to
//!   [`ACCOUNT`]) and the admin route (admin key `fuzz-admin`); else the open router;
//! - bit 6 (modes 0-6): send `X-API-Key: fuzz-key`;
//! - bit 7 (modes 0-6): send `Accept-Encoding: gzip`.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use devicegraph::config::{ApiKey, AuthMode, KeyAccounts, UpstreamMode};
use devicegraph::state::UpstreamTarget;
use devicegraph::{AppState, Config};
use devicegraph_upstream::AccountName;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use serde_json::Value;
use tower::ServiceExt;

/// Longest an answer may take, head and body.
pub(crate) const TIME_BOUND: Duration = Duration::from_secs(2);
/// Largest body of an error answer.
pub(crate) const ERROR_BODY_BOUND: usize = 64 * 1024;
/// Largest body of any answer (GraphiQL, `/openapi.json`, introspection).
pub(crate) const BODY_BOUND: usize = 4 << 20;
/// The API key of the keyed router, and the one account it may read.
pub(crate) const API_KEY: &str = "fuzz-key";
pub(crate) const ACCOUNT: &str = "0000123456-00001";
/// `printf %s fuzz-key | sha256sum`
const API_KEY_SHA256: &str = "231e9b2f757db8d48ecd0711b60135e1cc57a3a807be9dc12638856f17a7872c";
/// `printf %s fuzz-admin | sha256sum`
const ADMIN_KEY_SHA256: &str = "1c64ed42d0e14a2b1a137b7634c45cc09a6b67d48ea1767a8a30cdad14225918";

const ACCEPTS: [Option<&str>; 4] = [
    None,
    Some("application/json"),
    Some("application/graphql-response+json"),
    Some("text/html"),
];

/// `FUZZ_HTTP_TRACE=1`: print every exchange (for triage; slows fuzzing down).
static TRACE: LazyLock<bool> = LazyLock::new(|| std::env::var_os("FUZZ_HTTP_TRACE").is_some());

/// A current-thread runtime and the two routers, built once per process.
struct Harness {
    runtime: tokio::runtime::Runtime,
    open: Router,
    keyed: Router,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let (open, keyed) = runtime.block_on(async { (router(false), router(true)) });
    Harness {
        runtime,
        open,
        keyed,
    }
});

fn sha256_of(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("a hex digest");
    }
    out
}

/// The router over an unreachable upstream; `keyed`: API keys and the admin route.
fn router(keyed: bool) -> Router {
    let mut config = Config::default();
    config.upstream.mode = UpstreamMode::Thingspace;
    // Nothing listens on the discard port: every upstream call fails at once.
    config.upstream.base_url = "http://127.0.0.1:9/api/".parse().expect("a URL");
    config.upstream.client_id = "fuzz".to_owned();
    config.upstream.username = "fuzz".to_owned();
    config.upstream.timeout = Duration::from_millis(500);
    config.upstream.max_attempts = 1;
    // Neither the outbound budget nor the per-client limit may slow the fuzzer down
    // (a refusal is a fine answer, but it hides the path behind it).
    config.upstream.rate_per_second = 1_000_000;
    config.upstream.burst = 1_000_000;
    config.limits.per_client_rps = 1_000_000;
    config.limits.per_client_burst = 1_000_000;
    config.limits.upstream_calls_per_minute = 0;
    if keyed {
        let account: AccountName = ACCOUNT.parse().expect("an account name");
        config.auth.mode = AuthMode::ApiKey;
        config.auth.api_keys = vec![ApiKey {
            name: "fuzz".to_owned(),
            sha256: sha256_of(API_KEY_SHA256),
            accounts: KeyAccounts::Only([account].into()),
        }];
        config.auth.admin_key_sha256 = Some(sha256_of(ADMIN_KEY_SHA256));
    }
    let target = UpstreamTarget::from_config(&config);
    devicegraph::app(AppState::connect(config, target).expect("the fuzz app state"))
}

/// Percent-encodes every byte but ASCII letters, digits, `-._~%` and `keep`. A `%`
/// stays as it is, so inputs can carry malformed or non-UTF-8 escapes.
fn encode(bytes: &[u8], keep: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~%".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn segment(bytes: &[u8]) -> String {
    encode(bytes, b"")
}

fn query(bytes: &[u8]) -> String {
    encode(bytes, b"!$&'()*+,;=:@/?")
}

/// `a\nb\nc` as at most three parts (missing ones empty).
fn split3(rest: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let mut parts = rest.splitn(3, |b| *b == b'\n');
    let a = parts.next().unwrap_or_default();
    let b = parts.next().unwrap_or_default();
    let c = parts.next().unwrap_or_default();
    (a, b, c)
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Mode 7: `<METHOD> <URI>\n<name>: <value>\n...\n\n<body>`.
fn raw(rest: &[u8]) -> Option<Request<Body>> {
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    let (method, uri) = match first.iter().position(|b| *b == b' ') {
        Some(i) => (&first[..i], &first[i + 1..]),
        None => (first, &b"/"[..]),
    };
    let method = Method::from_bytes(method).ok()?;
    let uri = Uri::try_from(uri).ok()?;
    let mut request = Request::builder().method(method).uri(uri);
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(trim(&line[..colon]));
        let value = HeaderValue::from_bytes(trim(&line[colon + 1..]));
        if let (Ok(name), Ok(value)) = (name, value) {
            request = request.header(name, value);
        }
    }
    request.body(Body::from(body.to_vec())).ok()
}

/// The request `data` describes, and whether it goes to the keyed router; `None` when
/// it describes no valid request (an empty input, a bad method or URI in raw mode).
pub(crate) fn request(data: &[u8]) -> Option<(bool, Request<Body>)> {
    let (&selector, rest) = data.split_first()?;
    let keyed = selector & 0x20 != 0;
    let (method, uri, content_type, body) = match selector & 0b111 {
        0 => (
            Method::POST,
            "/graphql".to_owned(),
            Some("application/json"),
            rest.to_vec(),
        ),
        1 => (
            Method::POST,
            "/graphql".to_owned(),
            Some("application/graphql"),
            rest.to_vec(),
        ),
        2 => (
            Method::GET,
            format!("/graphql?{}", query(rest)),
            None,
            Vec::new(),
        ),
        3 => {
            let document = String::from_utf8_lossy(rest);
            let body = serde_json::json!({ "query": document }).to_string();
            (
                Method::POST,
                "/graphql".to_owned(),
                Some("application/json"),
                body.into_bytes(),
            )
        }
        4 => {
            let (account, imei, q) = split3(rest);
            let uri = format!(
                "/v1/accounts/{}/devices/{}?{}",
                segment(account),
                segment(imei),
                query(q)
            );
            (Method::GET, uri, None, Vec::new())
        }
        5 => {
            let (account, body) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            let uri = format!("/v1/accounts/{}/devices:batch", segment(account));
            (Method::POST, uri, Some("application/json"), body.to_vec())
        }
        6 => {
            let (account, id, q) = split3(rest);
            let uri = format!(
                "/v1/accounts/{}/campaigns/{}/devices?{}",
                segment(account),
                segment(id),
                query(q)
            );
            (Method::GET, uri, None, Vec::new())
        }
        _ => return raw(rest).map(|request| (keyed, request)),
    };
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    if let Some(accept) = ACCEPTS[usize::from((selector >> 3) & 0b11)] {
        request = request.header(header::ACCEPT, accept);
    }
    if selector & 0x40 != 0 {
        request = request.header("x-api-key", API_KEY);
    }
    if selector & 0x80 != 0 {
        request = request.header(header::ACCEPT_ENCODING, "gzip");
    }
    request.body(Body::from(body)).ok().map(|r| (keyed, r))
}

/// An `INTERNAL` code in a problem (`code`) or a GraphQL answer (`errors[].extensions.code`).
fn has_internal_code(body: &Value) -> bool {
    body.get("code").and_then(Value::as_str) == Some("INTERNAL")
        || body
            .get("errors")
            .and_then(Value::as_array)
            .is_some_and(|errors| {
                errors
                    .iter()
                    .any(|e| e["extensions"]["code"].as_str() == Some("INTERNAL"))
            })
}

/// Sends the request `data` describes through the router; panics on a violation of
/// the invariant in the module documentation.
pub(crate) fn check(data: &[u8]) {
    let Some((keyed, request)) = request(data) else {
        return;
    };
    let what = format!(
        "{} {} ({} router)",
        request.method(),
        request.uri(),
        if keyed { "keyed" } else { "open" }
    );
    let harness = &*HARNESS;
    let router = if keyed {
        harness.keyed.clone()
    } else {
        harness.open.clone()
    };
    let started = Instant::now();
    let exchange = async move {
        let response = match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        (parts, axum::body::to_bytes(body, BODY_BOUND).await)
    };
    // The timer must be made inside the runtime.
    let answer = harness
        .runtime
        .block_on(async { tokio::time::timeout(TIME_BOUND, exchange).await });
    let elapsed = started.elapsed();
    let Ok((parts, body)) = answer else {
        panic!("{what}: no answer within {TIME_BOUND:?}");
    };
    assert!(elapsed <= TIME_BOUND, "{what}: answered after {elapsed:?}");
    let body =
        body.unwrap_or_else(|e| panic!("{what}: body unreadable or over {BODY_BOUND} bytes: {e}"));
    let status = parts.status;
    let text = || String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned();
    if *TRACE {
        eprintln!(
            "{what} -> {status} in {elapsed:?}, {} bytes: {}",
            body.len(),
            text()
        );
    }
    // 502, 503 and 504 say the (unreachable) upstream failed; any other 5xx, 500
    // `INTERNAL` first, is a fault of the gateway.
    let upstream_failure = matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    );
    assert!(
        !status.is_server_error() || upstream_failure,
        "{what}: server fault {status}: {}",
        text()
    );
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let compressed = parts.headers.contains_key(header::CONTENT_ENCODING);
    let json = if is_json && !compressed {
        let value: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{what}: {status} says JSON but is not ({e}): {}", text()));
        assert!(
            !has_internal_code(&value),
            "{what}: INTERNAL in a {status} answer: {}",
            text()
        );
        Some(value)
    } else {
        None
    };
    let error_answer = status.is_client_error()
        || status.is_server_error()
        || json
            .as_ref()
            .is_some_and(|v| v.get("errors").is_some() && v.get("data").is_none_or(Value::is_null));
    assert!(
        !error_answer || body.len() <= ERROR_BODY_BOUND,
        "{what}: {status} error answer of {} bytes: {}",
        body.len(),
        text()
    );
}
