//! The client against a hostile or broken upstream and absurd configuration: huge
//! `expires_in`, oversized bodies, `Duration::MAX` settings. Each must end in a
//! typed error or a normal answer, never a panic or unbounded memory.
//!
//! The simulator cannot misbehave this way, so a few lines of raw HTTP/1.1 on
//! port 0 stand in for ThingSpace here: each path gets one canned answer.

#![allow(clippy::unwrap_used)]

mod client_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use client_support::*;
use devicegraph_sim::SimConfig;
use devicegraph_upstream::{AccountName, Client, ClientConfig, Endpoint, Imei, UpstreamError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN_PATH: &str = "/api/ts/v1/oauth2/token";
const LOGIN_PATH: &str = "/api/m2m/v1/session/login";
const IMEI: &str = "990013907835578";

fn check_in_path() -> String {
    format!("/api/fota/v2/logging/{ACCOUNT}/devices/{IMEI}/checkInHistory")
}

/// What the fake upstream sends for one path.
#[derive(Clone)]
enum Answer {
    /// `200 OK` with this JSON body.
    Json(String),
    /// `200 OK` whose body is `len` bytes of JSON-ish filler, announced with a
    /// `Content-Length` or (when `false`) delimited by closing the connection.
    Huge { len: usize, announced: bool },
}

/// Serves `routes` on port 0 until the test ends; the base URL to configure.
async fn fake_upstream(routes: HashMap<String, Answer>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream, Arc::clone(&routes)));
        }
    });
    format!("http://{addr}/api")
}

async fn answer(mut stream: TcpStream, routes: Arc<HashMap<String, Answer>>) {
    // Read the request head and body (enough to find the path, and to drain what the
    // client sends so closing the socket does not reset it).
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while request.len() < head_end + length {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let path = path.split('?').next().unwrap_or("/");
    match routes.get(path) {
        Some(Answer::Json(body)) => {
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
        }
        Some(Answer::Huge { len, announced }) => {
            let length = if *announced {
                format!("content-length: {len}\r\n")
            } else {
                String::new()
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{length}connection: close\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            // Stops as soon as the client hangs up, which is what a cap must do.
            let chunk = vec![b' '; 1 << 20];
            let mut sent = 0;
            while sent < *len {
                let n = chunk.len().min(len - sent);
                if stream.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                sent += n;
            }
        }
        None => {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
        }
    }
    let _ = stream.shutdown().await;
}

fn routes(token_body: &str, check_ins: Answer) -> HashMap<String, Answer> {
    HashMap::from([
        (TOKEN_PATH.to_owned(), Answer::Json(token_body.to_owned())),
        (
            LOGIN_PATH.to_owned(),
            Answer::Json(r#"{"sessionToken":"session-1"}"#.to_owned()),
        ),
        (check_in_path(), check_ins),
    ])
}

fn fast_config(base: &str) -> ClientConfig {
    let mut c = ClientConfig::new(
        base.parse().unwrap(),
        credentials("sim-secret", "sim-password"),
    );
    c.timeout = Duration::from_secs(20);
    c.max_attempts = 1;
    c
}

fn account() -> AccountName {
    ACCOUNT.parse().unwrap()
}

fn imei() -> Imei {
    IMEI.parse().unwrap()
}

#[tokio::test]
async fn an_absurd_expires_in_is_a_very_long_lived_token_not_a_panic() {
    for expires_in in [
        "18446744073709551615",
        "9223372036854775807",
        "\"18446744073709551615\"",
    ] {
        let body = format!(
            r#"{{"access_token":"tok-1","token_type":"Bearer","expires_in":{expires_in}}}"#
        );
        let base = fake_upstream(routes(&body, Answer::Json("[]".into()))).await;
        let client = Client::new(fast_config(&base)).unwrap();
        let history = client.check_in_history(&account(), &imei()).await;
        assert_eq!(history, Ok(Vec::new()), "expires_in {expires_in}");
    }
}

#[tokio::test]
async fn a_body_past_the_cap_is_refused_naming_the_limit() {
    let token = r#"{"access_token":"tok-1","expires_in":3600}"#;
    // Announced up front (refused before reading it), and close-delimited (refused
    // once 64 MiB have been read).
    for announced in [true, false] {
        let huge = Answer::Huge {
            len: (64 << 20) + 1,
            announced,
        };
        let base = fake_upstream(routes(token, huge)).await;
        let client = Client::new(fast_config(&base)).unwrap();
        match client.check_in_history(&account(), &imei()).await {
            Err(UpstreamError::Unavailable {
                endpoint: Endpoint::CheckInHistory,
                reason,
                ..
            }) => assert!(reason.contains("67108864 bytes"), "{reason}"),
            other => panic!("announced {announced}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn duration_max_settings_do_not_panic() {
    let sim = sim_with(SimConfig::default()).await;
    let mut config = config(&sim);
    config.timeout = Duration::MAX;
    config.backoff_base = Duration::MAX;
    config.backoff_max = Duration::MAX;
    config.token_refresh_margin = Duration::MAX;
    let client = Client::new(config).unwrap();
    let imei: Imei = sim.catalog().sample_imeis[ACCOUNT][0].parse().unwrap();
    assert!(client.check_in_history(&account(), &imei).await.is_ok());
}

#[tokio::test]
async fn a_login_backoff_of_duration_max_fails_fast_instead_of_panicking() {
    let sim = sim_with(SimConfig::default()).await;
    let mut config = config(&sim);
    config.credentials = credentials("sim-secret", "wrong-password");
    config.login_backoff = Duration::MAX;
    let client = Client::new(config).unwrap();
    let first = client.ensure_authenticated().await;
    assert!(
        matches!(first, Err(UpstreamError::Auth { .. })),
        "{first:?}"
    );
    // The second try would wait `login_backoff`: far past the deadline, so it fails
    // at once without another login.
    let second = client.ensure_authenticated().await;
    match second {
        Err(UpstreamError::Auth { reason, .. }) => {
            assert!(reason.contains("backing off"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.stats().failed_logins, 1);
}
