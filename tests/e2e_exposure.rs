//! End to end over real HTTP: what makes the gateway safe to expose at the HTTP
//! layer: security headers on every answer, CORS per origin (off by default),
//! conflicting credentials refused, and error answers that do not grow with the
//! client's input. (Connection limits: `e2e_connections.rs`.)
#![allow(clippy::unwrap_used)]

mod common;

use common::{ACCOUNT, assert_problem, codes, spawn_app, spawn_app_configured};
use devicegraph::config::{ApiKey, AuthMode, KeyAccounts};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const DASHBOARD: &str = "https://dash.example.com";
const KEY: &str = "dashboard-key";

fn with_key(c: &mut devicegraph::Config) {
    c.auth.mode = AuthMode::ApiKey;
    c.auth.api_keys = vec![ApiKey {
        name: "dashboard".into(),
        sha256: Sha256::digest(KEY.as_bytes()).into(),
        accounts: KeyAccounts::All,
    }];
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = spawn_app().await;
    let imei = app.sample_imei(ACCOUNT, 0);
    let answers = [
        app.get("/healthz").await,
        app.get("/no/such/route").await,
        app.get(&format!("/v1/accounts/{ACCOUNT}/devices/{imei}"))
            .await,
        app.get(&format!("/v1/accounts/{ACCOUNT}/devices/123"))
            .await,
        app.post_graphql("{ device(", json!({})).await,
        app.client
            .request(Method::DELETE, app.url("/graphql"))
            .send()
            .await
            .unwrap(),
    ];
    for response in &answers {
        let what = format!("{} {}", response.url().path(), response.status());
        assert_eq!(
            header(response, "x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            header(response, "referrer-policy"),
            Some("no-referrer"),
            "{what}"
        );
        assert_eq!(header(response, "x-frame-options"), Some("DENY"), "{what}");
        assert_eq!(
            header(response, "content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'"),
            "{what}"
        );
    }
    // GraphiQL keeps the CSP it needs (its own scripts and styles).
    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = header(&page, "content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(
        page.headers()
            .get_all("content-security-policy")
            .iter()
            .count(),
        1
    );
    assert_eq!(header(&page, "x-frame-options"), Some("DENY"));
}

async fn preflight(client: &reqwest::Client, url: &str, origin: &str) -> Response {
    client
        .request(Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-api-key")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("origin", DASHBOARD)
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let preflight = preflight(&app.client, &app.url("/graphql"), DASHBOARD).await;
    assert_eq!(preflight.status(), 405);
    for response in [&response, &preflight] {
        assert!(
            !response
                .headers()
                .keys()
                .any(|name| name.as_str().starts_with("access-control-")),
            "{:?}",
            response.headers()
        );
    }
}

#[tokio::test]
async fn cors_answers_listed_origins_on_the_api_without_a_key_or_budget() {
    let app = spawn_app_configured(|c| {
        with_key(c);
        c.server.cors_origins = vec![DASHBOARD.to_owned()];
        // One request per client per second: preflights must not spend it.
        c.limits.per_client_rps = 1;
        c.limits.per_client_burst = 1;
    })
    .await;
    let batch = app.url(&format!("/v1/accounts/{ACCOUNT}/devices:batch"));
    for url in [app.url("/graphql"), batch.clone(), app.url("/graphql")] {
        let response = preflight(&app.client, &url, DASHBOARD).await;
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            Some(DASHBOARD)
        );
        let allowed = header(&response, "access-control-allow-headers").unwrap();
        assert!(allowed.contains("x-api-key"), "{allowed}");
        assert!(header(&response, "access-control-allow-credentials").is_none());
    }
    // A foreign origin's preflight gets no grant.
    let foreign = preflight(&app.client, &batch, "https://evil.example").await;
    assert!(header(&foreign, "access-control-allow-origin").is_none());

    // The real request: the client's one request of this second is still there.
    let cross_origin = || {
        app.client
            .post(app.url("/graphql"))
            .header("origin", DASHBOARD)
            .header("x-api-key", KEY)
            .json(&json!({ "query": "{ __typename }" }))
    };
    let response = cross_origin().send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        Some(DASHBOARD)
    );
    let exposed = header(&response, "access-control-expose-headers").unwrap();
    for name in ["x-request-id", "x-cache", "retry-after", "ratelimit"] {
        assert!(exposed.contains(name), "{name} not in {exposed}");
    }
    // A refusal is readable by the page too.
    let refused = cross_origin().send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(
        header(&refused, "access-control-allow-origin"),
        Some(DASHBOARD)
    );
    // Operational routes are not part of the API group.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("origin", DASHBOARD)
        .send()
        .await
        .unwrap();
    assert!(header(&response, "access-control-allow-origin").is_none());
}

#[tokio::test]
async fn conflicting_credentials_are_refused_without_revealing_either_key() {
    let app = spawn_app_configured(with_key).await;
    let imei = app.sample_imei(ACCOUNT, 0);
    let rest = app.url(&format!("/v1/accounts/{ACCOUNT}/devices/{imei}"));
    let send = |pairs: &[(&str, &str)]| {
        let mut request = app.client.get(&rest);
        for (name, value) in pairs {
            // reqwest appends: a name given twice is sent twice.
            request = request.header(*name, *value);
        }
        request.send()
    };
    let bearer = format!("Bearer {KEY}");

    // The same key twice is one key.
    let same = send(&[("authorization", &bearer), ("x-api-key", KEY)])
        .await
        .unwrap();
    assert_eq!(same.status(), 200);

    // Different keys, whichever (if either) is valid: one and the same refusal.
    let mut details = Vec::new();
    for pairs in [
        vec![("authorization", bearer.as_str()), ("x-api-key", "other")],
        vec![("authorization", "Bearer other"), ("x-api-key", KEY)],
        vec![("authorization", "Bearer one"), ("x-api-key", "two")],
        vec![("x-api-key", KEY), ("x-api-key", "other")],
        vec![
            ("authorization", "Bearer other"),
            ("authorization", bearer.as_str()),
        ],
    ] {
        let response = send(&pairs).await.unwrap();
        let body = assert_problem(response, 401, "UNAUTHENTICATED").await;
        details.push(body["detail"].as_str().unwrap().to_owned());
    }
    assert!(
        details[0].starts_with("conflicting credentials"),
        "{details:?}"
    );
    assert!(details.iter().all(|d| *d == details[0]), "{details:?}");

    // GraphQL-shaped on /graphql.
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", bearer.as_str())
        .header("x-api-key", "other")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), vec!["UNAUTHENTICATED"]);
    assert_eq!(body["errors"][0]["message"], details[0].as_str());
}

/// An error answer for a 300 KB bogus input stays small.
fn assert_small(body: &Value, message: &str) {
    assert!(
        message.len() <= 512,
        "{} bytes of message: {}…",
        message.len(),
        message.chars().take(200).collect::<String>()
    );
    let size = body.to_string().len();
    assert!(size < 2048, "{size} bytes of answer");
}

#[tokio::test]
async fn huge_bogus_bodies_get_bounded_errors() {
    let app = spawn_app().await;
    let junk = "x".repeat(300_000);

    // Not a GraphQL request at all: a 300 KB JSON string, which the JSON parser's
    // error quotes.
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .header("accept", "application/graphql-response+json")
        .body(format!("\"{junk}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), vec!["BAD_USER_INPUT"]);
    assert_small(&body, body["errors"][0]["message"].as_str().unwrap());

    // The batch route, with the junk where the list belongs and inside it.
    let batch = app.url(&format!("/v1/accounts/{ACCOUNT}/devices:batch"));
    for bogus in [json!({ "imeis": junk }), json!({ "imeis": [junk] })] {
        let response = app.client.post(&batch).json(&bogus).send().await.unwrap();
        let body = assert_problem(response, 400, "BAD_USER_INPUT").await;
        assert_small(&body, body["detail"].as_str().unwrap());
    }
}

#[tokio::test]
async fn made_up_methods_do_not_grow_the_metric_labels() {
    let app = spawn_app().await;
    for made_up in ["XMADEUP1", "XMADEUP2"] {
        let method = Method::from_bytes(made_up.as_bytes()).unwrap();
        let response = app
            .client
            .request(method, app.url("/graphql"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(!metrics.contains("XMADEUP"), "a client-chosen label value");
    assert!(
        metrics.lines().any(|line| {
            line.starts_with("devicegraph_http_requests_total{")
                && line.contains(r#"method="other""#)
                && line.contains(r#"route="/graphql""#)
                && line.contains(r#"status="405""#)
        }),
        "the API's 405s are counted under `other`"
    );
}
