//! Persisted queries and trusted documents on `/graphql`, against the real server
//! and the simulator: Apollo's APQ round trip (POST and GET), hash checks, the
//! allow-list (nothing unlisted reaches the upstream), manifest reload (directly and
//! by SIGHUP to the binary), and the manifest formats.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{ACCOUNT, TestApp, codes, spawn_app, spawn_app_configured, test_config};
use devicegraph::state::{AppState, Manifest, TrustedDocuments, UpstreamTarget};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
/// The shipped production manifest (Apollo's format).
const SHIPPED_MANIFEST: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/config/trusted-documents.json");
/// `DeviceCard` of the shipped manifest.
const DEVICE_CARD: &str = "query DeviceCard($account: String!, $imei: IMEI!) { device(account: $account, imei: $imei) { imei make model firmware lastConnectionTime lastCheckIn { result timeCompleted } upgradeHistory { firmwareTo status startDate } } }";

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

/// A manifest file of this test process, in Apollo's format.
fn manifest_file(name: &str, bodies: &[&str]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("trusted-{name}-{}.json", std::process::id()));
    write_manifest(&path, bodies);
    path
}

fn write_manifest(path: &Path, bodies: &[&str]) {
    let operations: Vec<Value> = bodies
        .iter()
        .map(|body| json!({ "id": sha(body), "name": "Op", "type": "query", "body": body }))
        .collect();
    let manifest = json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": operations,
    });
    std::fs::write(path, manifest.to_string()).unwrap();
}

/// POST /graphql with `body`, accepting `accept`; returns status, cache-control, body.
async fn post(base: &str, body: &Value, accept: &str) -> (u16, String, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .header("accept", accept)
        .json(body)
        .send()
        .await
        .unwrap();
    answer(response).await
}

/// GET /graphql with `params` in the query string.
async fn get(base: &str, params: &[(&str, String)]) -> (u16, String, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}/graphql"))
        .header("accept", "application/json")
        .query(params)
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn answer(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let cache_control = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, cache_control, response.json().await.unwrap())
}

/// Upstream calls of every endpoint since the last reset.
async fn upstream_calls(app: &TestApp) -> u64 {
    app.sim_stats().await["calls"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum()
}

fn device_query(imei: &str) -> String {
    format!("{{ device(account: \"{ACCOUNT}\", imei: \"{imei}\") {{ imei firmware }} }}")
}

fn assert_not_found(status: u16, cache_control: &str, body: &Value) {
    assert_eq!(status, 200, "{body}");
    assert_eq!(codes(body), ["PERSISTED_QUERY_NOT_FOUND"], "{body}");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    assert!(cache_control.contains("no-cache"), "{cache_control}");
}

/// Hash only, unknown → PERSISTED_QUERY_NOT_FOUND (200 in both media types, never
/// cached); hash and query → registered and run; hash only → runs. Over POST and
/// over GET (`?extensions=`), and by `documentId` once registered.
#[tokio::test]
async fn apq_round_trip_over_post_and_get() {
    let app = spawn_app().await;
    let imei = app.sample_imei(ACCOUNT, 0);
    let query = device_query(&imei);
    let hash = sha(&query);
    app.sim_reset().await;

    for accept in ["application/json", GRAPHQL_RESPONSE_JSON] {
        let (status, cache, body) = post(
            &app.base,
            &json!({ "extensions": persisted(&hash) }),
            accept,
        )
        .await;
        assert_not_found(status, &cache, &body);
    }
    assert_eq!(
        upstream_calls(&app).await,
        0,
        "an unknown hash runs nothing"
    );

    let (status, _, registered) = post(
        &app.base,
        &json!({ "query": query, "extensions": persisted(&hash) }),
        "application/json",
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    assert_eq!(
        registered["data"]["device"]["imei"],
        imei.as_str(),
        "{registered}"
    );

    let (status, _, by_hash) = post(
        &app.base,
        &json!({ "extensions": persisted(&hash) }),
        GRAPHQL_RESPONSE_JSON,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_hash["data"], registered["data"]);
    // Upper-case hex names the same query.
    let (_, _, upper) = post(
        &app.base,
        &json!({ "extensions": persisted(&hash.to_uppercase()) }),
        "application/json",
    )
    .await;
    assert_eq!(upper["data"], registered["data"], "{upper}");

    // GET, Apollo Client's `useGETForHashedQueries`: extensions as URL-encoded JSON.
    let (status, _, over_get) =
        get(&app.base, &[("extensions", persisted(&hash).to_string())]).await;
    assert_eq!(status, 200, "{over_get}");
    assert_eq!(over_get["data"], registered["data"]);
    // The GraphQL-over-HTTP spelling reaches the same store.
    let (_, _, by_id) = post(
        &app.base,
        &json!({ "documentId": format!("sha256:{hash}") }),
        "application/json",
    )
    .await;
    assert_eq!(by_id["data"], registered["data"], "{by_id}");

    // A whole round trip over GET: not found, registered, then found.
    let other = format!("{{ device(account: \"{ACCOUNT}\", imei: \"{imei}\") {{ imei model }} }}");
    let other_hash = sha(&other);
    let (status, cache, body) = get(
        &app.base,
        &[("extensions", persisted(&other_hash).to_string())],
    )
    .await;
    assert_not_found(status, &cache, &body);
    let (_, _, body) = get(
        &app.base,
        &[
            ("query", other.clone()),
            ("extensions", persisted(&other_hash).to_string()),
        ],
    )
    .await;
    assert!(body["data"]["device"]["model"].is_string(), "{body}");
    let (_, _, body) = get(
        &app.base,
        &[("extensions", persisted(&other_hash).to_string())],
    )
    .await;
    assert!(body["data"]["device"]["model"].is_string(), "{body}");
}

/// A hash that is not the query's is refused (400, BAD_USER_INPUT, Apollo Server's
/// message) and nothing is kept under either hash; so are versions other than 1.
#[tokio::test]
async fn a_mismatched_hash_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let query = device_query(&app.sample_imei(ACCOUNT, 0));
    let wrong = sha("{ something else }");
    app.sim_reset().await;

    for accept in ["application/json", GRAPHQL_RESPONSE_JSON] {
        let (status, _, body) = post(
            &app.base,
            &json!({ "query": query, "extensions": persisted(&wrong) }),
            accept,
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(codes(&body), ["BAD_USER_INPUT"], "{body}");
        assert_eq!(
            body["errors"][0]["message"],
            "provided sha does not match query"
        );
    }
    for hash in [&wrong, &sha(&query)] {
        let (status, cache, body) = post(
            &app.base,
            &json!({ "extensions": persisted(hash) }),
            "application/json",
        )
        .await;
        assert_not_found(status, &cache, &body);
    }

    let (status, _, body) = post(
        &app.base,
        &json!({ "query": query, "extensions": { "persistedQuery": { "version": 2, "sha256Hash": sha(&query) } } }),
        "application/json",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("version 2"),
        "{body}"
    );
    let (status, _, body) = post(
        &app.base,
        &json!({ "extensions": { "persistedQuery": "abc" } }),
        "application/json",
    )
    .await;
    assert_eq!(
        (status, codes(&body)),
        (400, vec!["BAD_USER_INPUT".to_owned()]),
        "{body}"
    );
    let (status, _, body) = post(
        &app.base,
        &json!({ "query": query, "documentId": format!("sha256:{}", sha(&query)) }),
        "application/json",
    )
    .await;
    assert_eq!(
        (status, codes(&body)),
        (400, vec!["BAD_USER_INPUT".to_owned()]),
        "{body}"
    );
    assert_eq!(upstream_calls(&app).await, 0);
}

/// `graphql.persisted_queries = false` and no manifest: hash-only requests get
/// PERSISTED_QUERY_NOT_SUPPORTED (Apollo Client then stops hashing); full text runs.
#[tokio::test]
async fn without_persisted_queries_hash_only_is_not_supported() {
    let app = spawn_app_configured(|c| c.graphql.persisted_queries = false).await;
    let query = device_query(&app.sample_imei(ACCOUNT, 0));
    let hash = sha(&query);
    let only_hash = json!({ "extensions": persisted(&hash) });

    let (status, cache, body) = post(&app.base, &only_hash, GRAPHQL_RESPONSE_JSON).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(codes(&body), ["PERSISTED_QUERY_NOT_SUPPORTED"]);
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotSupported");
    assert!(cache.contains("no-cache"));

    let with_text = json!({ "query": query, "extensions": persisted(&hash) });
    let (status, _, body) = post(&app.base, &with_text, "application/json").await;
    assert_eq!(status, 200);
    assert!(body["data"]["device"]["imei"].is_string(), "{body}");
    let (_, _, body) = post(&app.base, &only_hash, "application/json").await;
    assert_eq!(
        codes(&body),
        ["PERSISTED_QUERY_NOT_SUPPORTED"],
        "nothing was stored"
    );
}

/// Allow-list mode with the shipped manifest: unlisted text is refused before
/// anything reaches the upstream; listed operations run by hash, by `documentId`
/// (POST and GET) and as identical text; APQ cannot register new texts; `/v1` is
/// untouched.
#[tokio::test]
async fn allow_list_runs_only_the_manifest_operations() {
    let app = spawn_app_configured(|c| {
        c.graphql.trusted_documents = Some(PathBuf::from(SHIPPED_MANIFEST));
        c.graphql.allow_list = true;
    })
    .await;
    let imei = app.sample_imei(ACCOUNT, 0);
    app.sim_reset().await;

    // Unlisted text: OPERATION_NOT_ALLOWED, 400 in the new media type, 200 in the old.
    let unlisted = device_query(&imei);
    for (accept, expected_status) in [(GRAPHQL_RESPONSE_JSON, 400), ("application/json", 200)] {
        let (status, _, body) = post(&app.base, &json!({ "query": unlisted }), accept).await;
        assert_eq!(status, expected_status, "{body}");
        assert_eq!(codes(&body), ["OPERATION_NOT_ALLOWED"], "{body}");
        assert!(body.get("data").is_none(), "{body}");
    }
    // One character off the listed text is another document.
    let almost = DEVICE_CARD.replacen("{ device", "{  device", 1);
    let (_, _, body) = post(
        &app.base,
        &json!({ "query": almost, "variables": { "account": ACCOUNT, "imei": imei } }),
        "application/json",
    )
    .await;
    assert_eq!(codes(&body), ["OPERATION_NOT_ALLOWED"], "{body}");
    // APQ may not register a new text, and an unknown hash is not found.
    let (status, _, body) = post(
        &app.base,
        &json!({ "query": unlisted, "extensions": persisted(&sha(&unlisted)) }),
        GRAPHQL_RESPONSE_JSON,
    )
    .await;
    assert_eq!(
        (status, codes(&body)),
        (400, vec!["OPERATION_NOT_ALLOWED".to_owned()]),
        "{body}"
    );
    let (status, cache, body) = post(
        &app.base,
        &json!({ "extensions": persisted(&sha(&unlisted)) }),
        GRAPHQL_RESPONSE_JSON,
    )
    .await;
    assert_not_found(status, &cache, &body);
    let (status, cache, body) = post(&app.base, &json!({ "documentId": "sha256:0000000000000000000000000000000000000000000000000000000000000000" }), "application/json").await;
    assert_not_found(status, &cache, &body);
    assert_eq!(
        upstream_calls(&app).await,
        0,
        "nothing refused reached ThingSpace"
    );

    // The listed operation, four ways.
    let variables = json!({ "account": ACCOUNT, "imei": imei });
    let card = sha(DEVICE_CARD);
    let mut answers = Vec::new();
    for request in [
        json!({ "extensions": persisted(&card), "variables": variables }),
        json!({ "documentId": format!("sha256:{card}"), "variables": variables }),
        json!({ "query": DEVICE_CARD, "variables": variables }),
        json!({ "query": DEVICE_CARD, "extensions": persisted(&card), "variables": variables }),
    ] {
        let (status, _, body) = post(&app.base, &request, GRAPHQL_RESPONSE_JSON).await;
        assert_eq!(status, 200, "{request}: {body}");
        assert!(body["errors"].is_null(), "{request}: {body}");
        assert_eq!(body["data"]["device"]["imei"], imei.as_str());
        answers.push(body["data"].clone());
    }
    let (status, _, body) = get(
        &app.base,
        &[
            ("documentId", format!("sha256:{card}")),
            ("variables", variables.to_string()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    answers.push(body["data"].clone());
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");

    // Every shipped operation runs against the schema.
    let catalog = app.catalog();
    let campaign = catalog
        .campaigns
        .iter()
        .find(|c| c.account == ACCOUNT)
        .unwrap();
    let window = &catalog.provisioning_window;
    let shipped: Value =
        serde_json::from_str(&std::fs::read_to_string(SHIPPED_MANIFEST).unwrap()).unwrap();
    for operation in shipped["operations"].as_array().unwrap() {
        let variables = match operation["name"].as_str().unwrap() {
            "DeviceCard" => json!({ "account": ACCOUNT, "imei": imei }),
            "CampaignPage" => json!({ "account": ACCOUNT, "id": campaign.id }),
            "DevicesBatch" => {
                json!({ "account": ACCOUNT, "imeis": [imei, app.sample_imei(ACCOUNT, 1)] })
            }
            "ProvisioningHistory" => json!({
                "device": { "kind": "IMEI", "id": imei },
                "earliest": window.earliest, "latest": window.latest,
            }),
            other => panic!("an operation this test does not know: {other}"),
        };
        let request = json!({ "extensions": persisted(operation["id"].as_str().unwrap()), "variables": variables });
        let (status, _, body) = post(&app.base, &request, GRAPHQL_RESPONSE_JSON).await;
        assert_eq!(status, 200, "{}: {body}", operation["name"]);
        assert!(body["errors"].is_null(), "{}: {body}", operation["name"]);
    }

    // The REST routes run their own documents, outside the allow-list.
    let response = app
        .get(&format!("/v1/accounts/{ACCOUNT}/devices/{imei}"))
        .await;
    assert_eq!(response.status(), 200);

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("devicegraph_trusted_documents_refused_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("devicegraph_trusted_documents "),
        "{metrics}"
    );
}

/// GET parameters go by the spec's names (`operationName` picks the operation) and a
/// repeated one is refused.
#[tokio::test]
async fn get_reads_operation_name_and_refuses_repeated_parameters() {
    let app = spawn_app().await;
    let document = "query A { __typename } query B { b: __typename }";
    let (status, _, body) = get(
        &app.base,
        &[
            ("query", document.to_owned()),
            ("operationName", "B".to_owned()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!({ "b": "Query" }));
    let (status, _, body) = get(
        &app.base,
        &[
            ("query", "{ a: __typename }".to_owned()),
            ("query", "{ b: __typename }".to_owned()),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(codes(&body), ["BAD_USER_INPUT"]);
}

/// The reload SIGHUP triggers, called directly on a server serving `app(state)`: a
/// new manifest is picked up; a broken or missing file keeps the old one serving.
#[tokio::test]
async fn reload_picks_up_a_new_manifest_and_keeps_the_old_one_on_a_broken_file() {
    const ONE: &str = "query One { one: __typename }";
    const TWO: &str = "query Two { two: __typename }";
    let sim = devicegraph_sim::spawn_on(devicegraph_sim::SimConfig::default(), "127.0.0.1:0")
        .await
        .unwrap();
    let path = manifest_file("reload", &[ONE]);
    let mut config = test_config(&sim);
    config.graphql.trusted_documents = Some(path.clone());
    config.graphql.allow_list = true;
    let target = UpstreamTarget::from_config(&config);
    let state = AppState::connect(config, target).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = devicegraph::app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let trusted: &TrustedDocuments = state.trusted_documents();
    let run = |body: &'static str| {
        let base = base.clone();
        async move {
            post(
                &base,
                &json!({ "extensions": persisted(&sha(body)) }),
                "application/json",
            )
            .await
            .2
        }
    };

    assert_eq!(run(ONE).await["data"], json!({ "one": "Query" }));
    assert_eq!(codes(&run(TWO).await), ["PERSISTED_QUERY_NOT_FOUND"]);

    write_manifest(&path, &[ONE, TWO]);
    assert_eq!(trusted.reload().unwrap(), 2);
    assert_eq!(run(TWO).await["data"], json!({ "two": "Query" }));

    // A wrong id: refused, naming the file and the entry; the old manifest serves on.
    let broken = json!({
        "format": "apollo-persisted-query-manifest", "version": 1,
        "operations": [{ "id": sha(ONE), "name": "Two", "type": "query", "body": TWO }],
    });
    std::fs::write(&path, broken.to_string()).unwrap();
    let err = trusted.reload().unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(
        err.contains("operations[0] (Two)") && err.contains("not the SHA-256"),
        "{err}"
    );
    assert_eq!(trusted.len(), 2);
    assert_eq!(run(TWO).await["data"], json!({ "two": "Query" }));

    std::fs::remove_file(&path).unwrap();
    assert!(
        trusted
            .reload()
            .unwrap_err()
            .to_string()
            .starts_with("cannot read")
    );
    assert_eq!(run(ONE).await["data"], json!({ "one": "Query" }));
    server.abort();
}

/// A bad manifest is a startup error naming the file and the first bad entry, from
/// `run` and from `check-config`; the shipped production example checks clean.
#[tokio::test]
async fn a_bad_manifest_stops_startup_naming_the_file_and_entry() {
    let sim = devicegraph_sim::spawn_on(devicegraph_sim::SimConfig::default(), "127.0.0.1:0")
        .await
        .unwrap();
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("trusted-bad-{}.json", std::process::id()));
    std::fs::write(&path, json!({ sha("{ a }"): "{ b }" }).to_string()).unwrap();
    let mut config = test_config(&sim);
    config.graphql.trusted_documents = Some(path.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = devicegraph::run(listener, config, std::future::pending::<()>())
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.starts_with("graphql.trusted_documents: "),
        "{message}"
    );
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("entry {:?}", sha("{ a }"))),
        "{message}"
    );

    let toml = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("trusted-bad-{}.toml", std::process::id()));
    std::fs::write(
        &toml,
        format!(
            "[graphql]\ntrusted_documents = {:?}\n",
            path.display().to_string()
        ),
    )
    .unwrap();
    let out = devicegraph_command()
        .args(["check-config", "--config", toml.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("graphql.trusted_documents: ") && stderr.contains("not the SHA-256"),
        "{stderr}"
    );

    let out = devicegraph_command()
        .args(["check-config", "--config", "config/production.example.toml"])
        .envs([
            ("DEVICEGRAPH_UPSTREAM__CLIENT_ID", "id"),
            ("DEVICEGRAPH_UPSTREAM__CLIENT_SECRET", "secret"),
            ("DEVICEGRAPH_UPSTREAM__USERNAME", "user"),
            ("DEVICEGRAPH_UPSTREAM__PASSWORD", "password"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("4 trusted document(s)"), "{stdout}");
}

/// The binary, from the repository root, without the test process's `DEVICEGRAPH_*`.
fn devicegraph_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_devicegraph"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("DEVICEGRAPH_")) {
        command.env_remove(name);
    }
    command
}

/// Both formats and the shipped file load through the public API; a wrong id does
/// not. (The parser's own cases are unit tests in `src/trusted/manifest.rs`.)
#[test]
fn manifest_formats_load_and_wrong_ids_do_not() {
    let shipped = Manifest::load(Path::new(SHIPPED_MANIFEST)).unwrap();
    assert_eq!(shipped.len(), 4);

    let codegen = json!({
        sha("query A { a: __typename }"): "query A { a: __typename }",
        format!("sha256:{}", sha("query B { b: __typename }")): "query B { b: __typename }",
        "custom-id": "query C { c: __typename }",
    });
    assert_eq!(
        Manifest::parse(codegen.to_string().as_bytes(), "codegen.json")
            .unwrap()
            .len(),
        3
    );

    let wrong = json!({ sha("query A { a: __typename }"): "query B { b: __typename }" });
    let err = Manifest::parse(wrong.to_string().as_bytes(), "codegen.json")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("codegen.json: entry "), "{err}");
    assert!(
        err.contains(&sha("query B { b: __typename }")),
        "names the body's real hash: {err}"
    );
}

/// SIGHUP to the running binary reloads its manifest; a broken file is logged and
/// counted, and the previous manifest keeps serving.
#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_manifest_of_the_running_binary() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    const ONE: &str = "query One { one: __typename }";
    const TWO: &str = "query Two { two: __typename }";
    let path = manifest_file("sighup", &[ONE]);
    let toml = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("trusted-sighup-{}.toml", std::process::id()));
    std::fs::write(
        &toml,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[simulator]\ndevices = 2000\n\
             [graphql]\ntrusted_documents = {:?}\nallow_list = true\n",
            path.display().to_string()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::from(devicegraph_command())
        .args(["serve", "--config", toml.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The banner names the port; the SIGHUP handler is installed before it prints.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the banner within a minute")
            .unwrap()
            .expect("the banner before stdout closes");
        if let Some(url) = line.split_whitespace().find(|w| w.ends_with("/graphql")) {
            break url.trim_end_matches("/graphql").to_owned();
        }
    };
    let pid = child.id().unwrap().to_string();
    let hangup = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let run = |body: &'static str| {
        let base = base.clone();
        async move {
            post(
                &base,
                &json!({ "extensions": persisted(&sha(body)) }),
                "application/json",
            )
            .await
            .2
        }
    };
    assert_eq!(codes(&run(TWO).await), ["PERSISTED_QUERY_NOT_FOUND"]);

    write_manifest(&path, &[ONE, TWO]);
    hangup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while run(TWO).await["data"] != json!({ "two": "Query" }) {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload the manifest"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    std::fs::write(&path, "{ not json").unwrap();
    hangup();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("devicegraph_trusted_documents_reloads_total{result=\"error\"} 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed reload counted:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        run(TWO).await["data"],
        json!({ "two": "Query" }),
        "the old manifest serves on"
    );
    assert!(child.try_wait().unwrap().is_none(), "still running");
}
