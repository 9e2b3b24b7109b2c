//! Unit tests of the transport that need no network: URL building, base URL
//! checks, and bounded, redacted decode excerpts.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::gate::OpenGate;

fn resilience(max_attempts: u32, base: Duration, max: Duration) -> Resilience {
    Resilience {
        max_attempts,
        backoff: Backoff { base, max },
        breakers: Breakers::new(crate::breaker::BreakerConfig::default()),
        retry_budget: RetryBudget::new(crate::retry_budget::RetryBudgetConfig::default()),
        abandon_after: Duration::from_secs(30),
    }
}

fn transport(base: &str) -> Transport {
    Transport::new(
        base.parse().unwrap(),
        Arc::new(OpenGate),
        resilience(3, Duration::from_millis(1), Duration::from_millis(2)),
    )
    .unwrap()
}

#[test]
fn urls_are_relative_to_the_base_path() {
    let t = transport("http://127.0.0.1:9090/api");
    assert_eq!(
        t.url(&["ts", "v1", "oauth2", "token"]).as_str(),
        "http://127.0.0.1:9090/api/ts/v1/oauth2/token"
    );
    let t = transport("https://thingspace.verizon.com/api/");
    assert_eq!(
        t.url(&["fota", "v3", "devices", "0000123456-00001"])
            .as_str(),
        "https://thingspace.verizon.com/api/fota/v3/devices/0000123456-00001"
    );
    // A segment can never escape its place in the path.
    assert_eq!(
        t.url(&["a/../b"]).as_str(),
        "https://thingspace.verizon.com/api/a%2F..%2Fb"
    );
}

#[test]
fn refuses_non_http_base() {
    let r = Transport::new(
        "mailto:x@example.com".parse().unwrap(),
        Arc::new(OpenGate),
        resilience(1, Duration::ZERO, Duration::ZERO),
    );
    assert!(matches!(r, Err(UpstreamError::InvalidRequest { .. })));
}

#[test]
fn decode_excerpts_are_bounded_and_redacted_for_tokens() {
    let body = "x".repeat(1000);
    let e = || DecodeError {
        field: "access_token".into(),
        message: "missing".into(),
    };
    match decode_error(Endpoint::DeviceDetails, e(), body.as_bytes()) {
        UpstreamError::Decode { excerpt, .. } => assert_eq!(excerpt.chars().count(), 200),
        other => panic!("{other:?}"),
    }
    // Not UTF-8: each bad byte is one replacement character, still 200 of them.
    match decode_error(Endpoint::DeviceDetails, e(), &[0xff; 100_000]) {
        UpstreamError::Decode { excerpt, .. } => {
            assert_eq!(excerpt, "\u{fffd}".repeat(200));
        }
        other => panic!("{other:?}"),
    }
    let secret_body = br#"{"access_token":"tok-secret-123"}"#;
    for endpoint in [Endpoint::OAuthToken, Endpoint::SessionLogin] {
        match decode_error(endpoint, e(), secret_body) {
            UpstreamError::Decode { excerpt, .. } => assert_eq!(excerpt, "[redacted]"),
            other => panic!("{other:?}"),
        }
    }
}
