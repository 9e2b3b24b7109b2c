//! End to end over real HTTP: the protocol around the data: GraphQL over HTTP (media
//! types, statuses, GET, GraphiQL), OpenAPI, health and readiness, metrics, request
//! ids, compression, and the admin invalidation route.
#![allow(clippy::unwrap_used)]

mod common;

use common::{ACCOUNT, assert_problem, codes, spawn_app, spawn_app_configured};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn graphql_over_http_negotiates_media_types_and_statuses() {
    let app = spawn_app().await;
    let url = app.url("/graphql");
    let imei = app.sample_imei(ACCOUNT, 0);
    let query = json!({ "query": "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { imei firmware } }", "variables": { "a": ACCOUNT, "i": imei } });

    // New media type: a request error is 400 and has no `data`.
    let response = app
        .client
        .post(&url)
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": "{ device(" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/graphql-response+json")
    );
    let body: Value = response.json().await.unwrap();
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(codes(&body), vec!["BAD_USER_INPUT"]);

    // Legacy application/json: 200 with the errors.
    let response = app
        .client
        .post(&url)
        .header("accept", "application/json")
        .json(&json!({ "query": "{ device(" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );

    // A successful query: MISS first, HIT the second time, in the header and the body.
    let first = app
        .client
        .post(&url)
        .header("accept", "application/graphql-response+json")
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-cache"], "MISS");
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["data"]["device"]["imei"], imei.as_str());
    assert_eq!(first["extensions"]["cacheStatus"], "MISS");
    let second = app.client.post(&url).json(&query).send().await.unwrap();
    assert_eq!(second.headers()["x-cache"], "HIT");

    // GET with the query in the URL.
    let response = app
        .client
        .get(&url)
        .query(&[(
            "query",
            format!("{{ device(account: \"{ACCOUNT}\", imei: \"{imei}\") {{ imei }} }}"),
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["device"]["imei"], imei.as_str());

    // application/graphql body, and an unsupported content type.
    let response = app
        .client
        .post(&url)
        .header("content-type", "application/graphql")
        .body(format!(
            "{{ device(account: \"{ACCOUNT}\", imei: \"{imei}\") {{ imei }} }}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body("{ x }")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), vec!["BAD_USER_INPUT"]);

    // Accepting neither JSON type: 406.
    let response = app
        .client
        .post(&url)
        .header("accept", "text/csv")
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 406);
}

/// The request errors a client meets most (no query, a syntax error, an unknown
/// field, a mutation): one clear error each, no `data` member in either media type,
/// and no cache status (`X-Cache`, `extensions.cacheStatus`), since nothing was read.
/// A body without a query is not a GraphQL request at all: 400 in both media types;
/// the others are 400 in the new one and 200 in legacy `application/json`. None
/// reaches the upstream.
#[tokio::test]
async fn request_errors_are_one_clear_error_without_data_or_cache_status() {
    let app = spawn_app().await;
    app.sim_reset().await;
    let url = app.url("/graphql");
    let cases: [(&str, Value, &str, u16); 6] = [
        (
            "no query",
            json!({ "variables": {} }),
            "has no `query`",
            400,
        ),
        (
            "empty query",
            json!({ "query": "  " }),
            "has no `query`",
            400,
        ),
        (
            "null query",
            json!({ "query": null, "operationName": "A" }),
            "has no `query`",
            400,
        ),
        (
            "syntax",
            json!({ "query": "{ device(" }),
            "syntax error at line 1, column 10",
            200,
        ),
        (
            "unknown field",
            json!({ "query": "{ nope }" }),
            "Unknown field",
            200,
        ),
        (
            "mutation",
            json!({ "query": "mutation { rename }" }),
            "no mutations",
            200,
        ),
    ];
    for (case, body, says, legacy_status) in cases {
        for (accept, status) in [
            ("application/graphql-response+json", 400),
            ("application/json", legacy_status),
        ] {
            let response = app
                .client
                .post(&url)
                .header("accept", accept)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), status, "{case}, {accept}");
            assert!(
                response.headers().get("x-cache").is_none(),
                "{case}, {accept}: a request error has no X-Cache"
            );
            let answer: Value = response.json().await.unwrap();
            assert!(answer.get("data").is_none(), "{case}, {accept}: {answer}");
            assert_eq!(
                codes(&answer),
                ["BAD_USER_INPUT"],
                "{case}, {accept}: {answer}"
            );
            let message = answer["errors"][0]["message"].as_str().unwrap();
            assert!(message.contains(says), "{case}: {message}");
            assert!(
                !message.contains("-->"),
                "{case}: a raw parser dump: {message}"
            );
            assert!(
                answer["extensions"].get("cacheStatus").is_none(),
                "{case}, {accept}: {answer}"
            );
        }
    }
    // A GET without a query (and not a browser asking for GraphiQL) is the same 400.
    let response = app
        .client
        .get(&url)
        .header("accept", "application/graphql-response+json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.unwrap();
    let message = answer["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("has no `query`"), "{message}");
    // `application/graphql` with an empty body, too.
    let response = app
        .client
        .post(&url)
        .header("content-type", "application/graphql")
        .header("accept", "application/graphql-response+json")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(app.sim_stats().await["totalCalls"], 0);
}

#[tokio::test]
async fn graphiql_is_served_to_browsers_when_enabled() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/graphql"))
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("connect-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(html.to_lowercase().contains("graphiql"), "not GraphiQL");

    // Everything the page loads comes from the gateway itself (no CDN), is served
    // with its type and an immutable cache lifetime, and needs no key.
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "{html}"
    );
    let assets: Vec<&str> = html
        .split('"')
        .filter(|piece| piece.starts_with("/graphql/assets/"))
        .collect();
    assert_eq!(assets.len(), 7, "{html}");
    for asset in assets {
        let response = app.get(asset).await;
        assert_eq!(response.status(), 200, "{asset}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        let path = asset.split('?').next().unwrap();
        let expected = if path.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(
            content_type.starts_with(expected),
            "{asset}: {content_type}"
        );
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{asset}"
        );
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }
    assert_problem(
        app.get("/graphql/assets/..%2F..%2FCargo.toml").await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(app.get("/graphql/assets/nope.js").await, 404, "NOT_FOUND").await;

    let closed = spawn_app_configured(|c| c.graphql.graphiql = false).await;
    let response = closed
        .client
        .get(closed.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(
        !response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn openapi_health_metrics_and_request_ids() {
    let app = spawn_app().await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/accounts/{account}/devices/{imei}",
        "/v1/accounts/{account}/devices:batch",
        "/v1/accounts/{account}/campaigns/{id}/devices",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }

    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);

    let imei = app.sample_imei(ACCOUNT, 1);
    let response = app
        .client
        .get(app.url(&format!("/v1/accounts/{ACCOUNT}/devices/{imei}")))
        .header("x-request-id", "dashboard-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "dashboard-1234");
    assert!(response.headers().contains_key("ratelimit"));
    let generated = app.get("/healthz").await;
    assert_eq!(generated.headers()["x-request-id"].len(), 36);

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("devicegraph_http_requests_total{route=\"/v1/accounts/{account}/devices/{imei}\",method=\"GET\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("devicegraph_http_request_duration_seconds_bucket{route=\"/v1/accounts/{account}/devices/{imei}\""));
    assert!(!metrics.contains(&imei), "a raw path leaked into a label");

    // gzip for clients that accept it.
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let response = raw
        .get(app.url("/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    // ...but not for bodies under 4 KiB, where gzip costs more CPU than it saves bytes.
    let small = raw
        .get(app.url("/healthz"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(small.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn readiness_fails_with_a_reason_when_the_upstream_refuses_us() {
    let app = spawn_app_configured(|c| c.upstream.client_secret = "wrong".to_owned().into()).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["reason"].as_str().unwrap().starts_with("upstream"),
        "{body}"
    );
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "liveness does not depend on the upstream"
    );
}

#[tokio::test]
async fn admin_invalidation_needs_the_admin_key() {
    let key = "correct horse battery staple";
    let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    let app = spawn_app_configured(|c| c.auth.admin_key_sha256 = Some(digest)).await;
    let imei = app.sample_imei(ACCOUNT, 0);
    let url = app.url("/admin/cache/invalidate");
    let scope = json!({ "account": ACCOUNT, "imei": imei });

    let response = app.client.post(&url).json(&scope).send().await.unwrap();
    assert_problem(response, 401, "UNAUTHENTICATED").await;
    let response = app
        .client
        .post(&url)
        .bearer_auth("guess")
        .json(&scope)
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "UNAUTHENTICATED").await;

    // Cache the device, invalidate it, and the next read goes upstream again.
    let device = format!("/v1/accounts/{ACCOUNT}/devices/{imei}");
    app.get(&device).await;
    let warm = app.calls("device_details").await;
    let cached = app.get(&device).await;
    assert_eq!(cached.headers()["x-cache"], "HIT");
    assert_eq!(
        app.calls("device_details").await,
        warm,
        "a cached read makes no upstream call"
    );
    let response = app
        .client
        .post(&url)
        .header("x-api-key", key)
        .json(&scope)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let dropped = body["dropped"].as_u64();
    assert!(dropped.is_some_and(|n| n >= 1), "the cached device: {body}");
    let again = app.get(&device).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["x-cache"], "MISS");
    assert_eq!(
        app.calls("device_details").await,
        warm + 1,
        "exactly one more details call after the invalidation"
    );

    let response = app
        .client
        .post(&url)
        .bearer_auth(key)
        .json(&json!({ "account": "no way" }))
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "BAD_USER_INPUT").await;

    // Without an admin key configured the route does not exist.
    let closed = spawn_app().await;
    let response = closed
        .client
        .post(closed.url("/admin/cache/invalidate"))
        .bearer_auth(key)
        .json(&scope)
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "NOT_FOUND").await;
}
