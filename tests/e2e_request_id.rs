//! End to end over real HTTP: the request id a client sends reaches the upstream on
//! every call made for its request, DataLoader batches included.
//!
//! A test binary of its own: it reads the simulator's debug log through a thread-local
//! tracing subscriber, and tests running on other threads of the same binary race with
//! it over the callsites' cached interest, so its log lines can go missing.
#![allow(clippy::unwrap_used)]

mod common;

use common::{ACCOUNT, spawn_app};
use serde_json::{Value, json};

/// Collects everything the tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The client's `X-Request-ID` reaches the upstream on the details batch that the
/// DataLoader loads on a task of its own: the request-id middleware scopes the id for
/// the whole request, and the loader's spawner carries that scope to the batch. The
/// simulator logs (at debug) the `X-Request-ID` of every request it receives.
#[tokio::test]
async fn the_request_id_reaches_the_upstream_on_dataloader_batches() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("devicegraph_sim=debug"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded, so a thread default covers every task
    // (the simulator's and the gateway's).
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = spawn_app().await;
    let imeis: Vec<String> = (0..3).map(|n| app.sample_imei(ACCOUNT, n)).collect();
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("x-request-id", "dash-batch-77")
        .json(&json!({
            "query": "query($a: String!, $i: [IMEI!]!) { devices(account: $a, imeis: $i) { imei firmware } }",
            "variables": { "a": ACCOUNT, "i": imeis },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "dash-batch-77");
    let body: Value = response.json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        body["data"]["devices"].as_array().unwrap().len(),
        3,
        "{body}"
    );
    assert_eq!(app.calls("device_details").await, 1, "one batch");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let details: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains(r#"endpoint="device_details""#))
        .collect();
    assert!(!details.is_empty(), "the simulator logged the call: {logs}");
    for line in details {
        assert!(
            line.contains(r#"request_id="dash-batch-77""#),
            "details call without the request id: {line}"
        );
    }
}
