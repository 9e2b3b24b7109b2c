//! Unit tests of the auth bookkeeping that need no network: renewal timing,
//! reading refusals (gateway faults, session codes) and token secrecy in `Debug`.

use super::*;

#[test]
fn renewal_is_margin_before_expiry_but_not_too_early() {
    let m = Duration::from_secs(60);
    assert_eq!(
        renew_after(Duration::from_secs(3600), m),
        Duration::from_secs(3540)
    );
    assert_eq!(
        renew_after(Duration::from_secs(100), m),
        Duration::from_secs(50)
    );
    assert_eq!(renew_after(Duration::ZERO, m), Duration::ZERO);
}

#[test]
fn gateway_fault_codes() {
    let body = br#"{"fault":{"code":900901,"message":"Invalid Credentials","description":"x"}}"#;
    assert_eq!(gateway_fault(body), Some(900_901));
    assert_eq!(
        gateway_fault(br#"{"fault":{"code":"900902"}}"#),
        Some(900_902)
    );
    assert_eq!(gateway_fault(br#"{"errorCode":"X"}"#), None);
    assert_eq!(gateway_fault(b"not json"), None);
}

#[test]
fn session_expiry_is_read_from_the_error_code_only() {
    let expired =
        br#"{"errorCode":"REQUEST_FAILED.SessionToken.Expired","errorMessage":"Session expired"}"#;
    assert_eq!(
        rejection(StatusCode::BAD_REQUEST, expired),
        Some(Rejection::Session)
    );
    assert_eq!(
        rejection(StatusCode::UNAUTHORIZED, expired),
        Some(Rejection::Session)
    );
    // Only 400/401 carry it; a 500 with that body is not a token problem.
    assert_eq!(rejection(StatusCode::INTERNAL_SERVER_ERROR, expired), None);
    // The message is never read.
    let other = br#"{"errorCode":"FOTA.DEVICE.NotFound","errorMessage":"SessionToken fine"}"#;
    assert_eq!(rejection(StatusCode::BAD_REQUEST, other), None);
}

#[test]
fn tokens_debug_shows_no_token() {
    let tokens = Tokens {
        bearer: SecretString::from("bearer-abc123"),
        session: SecretString::from("session-xyz789"),
        bearer_generation: 3,
        session_generation: 4,
    };
    let shown = format!("{tokens:?}");
    assert!(
        !shown.contains("abc123") && !shown.contains("xyz789"),
        "{shown}"
    );
    assert!(shown.contains("bearer_generation: 3"));
}

#[test]
fn unauthorized_without_session_code_is_a_bearer_problem() {
    let fault = br#"{"fault":{"code":900901,"message":"Invalid Credentials"}}"#;
    assert_eq!(
        rejection(StatusCode::UNAUTHORIZED, fault),
        Some(Rejection::Bearer)
    );
    assert_eq!(
        rejection(StatusCode::UNAUTHORIZED, b""),
        Some(Rejection::Bearer)
    );
    assert_eq!(rejection(StatusCode::BAD_REQUEST, fault), None);
    assert_eq!(rejection(StatusCode::OK, b""), None);
    assert_eq!(rejection(StatusCode::NOT_FOUND, b""), None);
}
