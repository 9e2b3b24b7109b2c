//! Token, login and lockout behaviour over real HTTP.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{ACCOUNT, Session, http, login, start, token};
use devicegraph_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn token_login_and_data_call() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    let base = sim.base_url();
    let r = token(&http, &base, "sim-client", "sim-secret").await;
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert!(t["scope"].is_string());
    let bearer = t["access_token"].as_str().unwrap().to_string();

    // Asking again within the token's life returns the same token.
    let again: Value = token(&http, &base, "sim-client", "sim-secret")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["access_token"].as_str(), Some(bearer.as_str()));

    let r = login(&http, &base, &bearer, "sim-user", "sim-password").await;
    assert_eq!(r.status(), StatusCode::OK);
    let session: Value = r.json().await.unwrap();
    let session = session["sessionToken"].as_str().unwrap();

    let imei = &sim.catalog().sample_imeis[ACCOUNT][0];
    let r = http
        .get(format!("{base}/fota/v3/reports/{ACCOUNT}/devices/{imei}"))
        .bearer_auth(&bearer)
        .header("VZ-M2M-Token", session)
        .header("X-Request-ID", "test-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.json::<Value>().await.unwrap().is_array());
}

#[tokio::test]
async fn refuses_bad_credentials_and_tokens() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    let base = sim.base_url();
    assert_eq!(
        token(&http, &base, "sim-client", "wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Credentials may also come in the form body.
    let r = http
        .post(format!("{base}/ts/v1/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sim-client"),
            ("client_secret", "sim-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .post(format!("{base}/ts/v1/oauth2/token"))
        .basic_auth("sim-client", Some("sim-secret"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Login needs a bearer token.
    let r = login(&http, &base, "not-a-token", "sim-user", "sim-password").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let fault: Value = r.json().await.unwrap();
    assert_eq!(fault["fault"]["code"], 900901);

    let s = Session::open(&sim).await;
    let imei = &sim.catalog().sample_imeis[ACCOUNT][0];
    let path = format!("{base}/fota/v3/reports/{ACCOUNT}/devices/{imei}");
    // No bearer: 900902.
    let r = http
        .get(&path)
        .header("VZ-M2M-Token", &s.session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["fault"]["code"], 900902);
    // Bad bearer: 900901.
    let r = http
        .get(&path)
        .bearer_auth("nope")
        .header("VZ-M2M-Token", &s.session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["fault"]["code"], 900901);
    assert_eq!(body["fault"]["message"], "Invalid Credentials");
    // Bad session.
    let r = http
        .get(&path)
        .bearer_auth(&s.bearer)
        .header("VZ-M2M-Token", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errorCode"],
        "REQUEST_FAILED.SessionToken.Expired"
    );
}

#[tokio::test]
async fn five_failed_logins_lock_the_account_until_reset() {
    let sim = start(SimConfig::default()).await;
    let http = http();
    let base = sim.base_url();
    let t: Value = token(&http, &base, "sim-client", "sim-secret")
        .await
        .json()
        .await
        .unwrap();
    let bearer = t["access_token"].as_str().unwrap();

    // Four failures, then a success: the count starts again.
    for _ in 0..4 {
        let r = login(&http, &base, bearer, "sim-user", "bad").await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errorCode"], "REQUEST_FAILED.UnexpectedError");
    }
    assert_eq!(
        login(&http, &base, bearer, "sim-user", "sim-password")
            .await
            .status(),
        StatusCode::OK
    );

    for _ in 0..5 {
        assert_eq!(
            login(&http, &base, bearer, "sim-user", "bad")
                .await
                .status(),
            StatusCode::BAD_REQUEST
        );
    }
    let r = login(&http, &base, bearer, "sim-user", "sim-password").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "REQUEST_FAILED.Account.Locked");
    let stats = sim.stats();
    assert_eq!(stats.locked_accounts, 1);
    assert_eq!(stats.failed_logins, 10);

    let r = http
        .post(format!("{}/_sim/reset", sim.root_url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(
        login(&http, &base, bearer, "sim-user", "sim-password")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(sim.stats().locked_accounts, 0);
}

#[tokio::test]
async fn expire_tokens_invalidates_both_tokens_once() {
    let sim = start(SimConfig::default()).await;
    let s = Session::open(&sim).await;
    let imei = sim.catalog().sample_imeis[ACCOUNT][0].clone();
    let path = format!("/fota/v2/logging/{ACCOUNT}/devices/{imei}/checkInHistory");
    assert_eq!(s.get_json(&path).await.0, StatusCode::OK);
    s.control("faults", Some(json!({ "expireTokens": true })))
        .await;
    let (status, body) = s.get_json(&path).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["fault"]["code"], 900901);

    // A fresh token is a new one; the old session is gone too.
    let fresh = Session::open(&sim).await;
    assert_ne!(fresh.bearer, s.bearer);
    let r = fresh
        .http
        .get(format!("{}{path}", fresh.base))
        .bearer_auth(&fresh.bearer)
        .header("VZ-M2M-Token", &s.session);
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errorCode"],
        "REQUEST_FAILED.SessionToken.Expired"
    );
    assert_eq!(
        fresh.get_json(&path).await.0,
        StatusCode::OK,
        "one shot: new tokens work"
    );
}

#[tokio::test]
async fn idle_session_expires() {
    // The 20-minute idle rule, shortened; "stays valid while used" is unit-tested on
    // a driven clock in src/auth.rs.
    let sim = start(SimConfig {
        session_idle_timeout: Duration::from_millis(150),
        ..SimConfig::default()
    })
    .await;
    let s = Session::open(&sim).await;
    let imei = sim.catalog().sample_imeis[ACCOUNT][0].clone();
    let path = format!("/fota/v3/reports/{ACCOUNT}/devices/{imei}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = s.get_json(&path).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errorCode"], "REQUEST_FAILED.SessionToken.Expired");
}
