//! Connection hygiene over real sockets: what a client that holds connections open
//! without finishing requests (slowloris), sends oversized header blocks, or opens
//! more connections than allowed gets, and that everyone else is still served.
//!
//! Every test sets short timeouts and bounds each wait with a tokio timeout; the
//! timing windows are generous on the slow side (a loaded 2-core CI machine) and
//! tight on the fast side, where an early close would mean the wrong clock fired.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{TestApp, spawn_app_configured};
use devicegraph::Config;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// The short clocks most tests run with.
fn short_clocks(c: &mut Config) {
    c.server.header_read_timeout = Duration::from_secs(1);
    c.server.idle_timeout = Duration::from_secs(2);
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Waits until the server answers `/healthz`, so timings below measure the
/// connection clocks and not the server's start. Its connection is not kept.
async fn ready(app: &TestApp) {
    assert_eq!(healthz_fresh(app, Duration::from_secs(10)).await, Ok(200));
}

/// `/healthz` on a fresh connection (its own client), bounded by `within`.
async fn healthz_fresh(app: &TestApp, within: Duration) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .timeout(within)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    client
        .get(app.url("/healthz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

/// Reads (and discards) until the peer closes; returns how long after `since` the
/// close came, or `None` if the connection was still open at `since + within`.
async fn closed_after(
    read: &mut (impl AsyncRead + Unpin),
    since: Instant,
    within: Duration,
) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(since + within, read.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads one HTTP/1.1 response (status line, headers, `Content-Length` body) from a
/// keep-alive connection; returns the status and the raw head.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("no response within 5 s")
            .unwrap();
        assert!(n > 0, "connection closed before a response head");
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut have = data.len() - head_end;
    while have < length {
        let n = timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed inside a body");
        have += n;
    }
    (status, head)
}

/// Sends `request` on a fresh connection and returns the status answered, or `None`
/// when the server closed the connection without answering.
async fn one_shot(app: &TestApp, request: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(addr(app)).await.unwrap();
    // The server may close while a large request is still being written.
    let _ = stream.write_all(request).await;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Err(_) => panic!("the server neither answered nor closed within 5 s"),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => data.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&data);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";

#[tokio::test]
async fn a_trickled_request_head_is_cut_off_while_others_are_served() {
    let app = spawn_app_configured(|c| {
        short_clocks(c);
        c.server.idle_timeout = Duration::from_secs(30);
    })
    .await;
    ready(&app).await;

    let stream = TcpStream::connect(addr(&app)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        // Never finishes: one byte every 300 ms, far slower than any real client.
        for byte in b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if write.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });

    // Meanwhile another connection is answered at once.
    assert_eq!(
        healthz_fresh(&app, Duration::from_millis(900)).await,
        Ok(200)
    );

    let closed = closed_after(&mut read, started, Duration::from_secs(4)).await;
    trickle.abort();
    let closed = closed.expect("the trickling connection was still open after 4 s");
    eprintln!("slowloris connection closed after {closed:?} (header_read_timeout 1 s)");
    assert!(
        closed >= Duration::from_millis(900),
        "closed after {closed:?}, before header_read_timeout"
    );
    assert!(
        closed < Duration::from_millis(2500),
        "closed only after {closed:?}"
    );
    assert_eq!(
        healthz_fresh(&app, Duration::from_secs(2)).await,
        Ok(200),
        "still serving"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let app = spawn_app_configured(short_clocks).await;
    ready(&app).await;

    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    stream.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);

    // Idle for longer than header_read_timeout (1 s): the header clock starts at the
    // first byte of a request, so the connection is still usable...
    tokio::time::sleep(Duration::from_millis(1400)).await;
    stream.write_all(HEALTHZ).await.unwrap();
    let (status, head) = read_response(&mut stream).await;
    assert_eq!(status, 200, "a keep-alive request after 1.4 s idle: {head}");

    // ...and closed once idle for idle_timeout (2 s).
    let since = Instant::now();
    let closed = closed_after(&mut stream, since, Duration::from_secs(4))
        .await
        .expect("the idle connection was still open after 4 s");
    eprintln!("idle keep-alive connection closed after {closed:?} (idle_timeout 2 s)");
    assert!(
        closed >= Duration::from_millis(1800),
        "closed after {closed:?}, before idle_timeout"
    );
    assert!(
        closed < Duration::from_millis(3500),
        "closed only after {closed:?}"
    );
}

#[tokio::test]
async fn a_connection_that_never_sends_a_byte_is_closed_after_header_read_timeout() {
    // A new connection is on the header clock from accept, not on the (longer) idle
    // clock of keep-alive connections.
    let app = spawn_app_configured(|c| {
        short_clocks(c);
        c.server.idle_timeout = Duration::from_secs(30);
    })
    .await;
    ready(&app).await;
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    let closed = closed_after(&mut stream, Instant::now(), Duration::from_secs(4))
        .await
        .expect("a silent connection was still open after 4 s");
    eprintln!("silent connection closed after {closed:?} (header_read_timeout 1 s)");
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_millis(2500),
        "closed after {closed:?}, expected about header_read_timeout (1 s)"
    );
}

#[tokio::test]
async fn oversized_header_blocks_are_refused_and_the_server_keeps_serving() {
    let app = spawn_app_configured(|c| {
        c.server.max_header_bytes = 8 * 1024;
        c.server.max_headers = 16;
    })
    .await;
    ready(&app).await;

    // Under both limits: served.
    let fits = format!(
        "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(6 * 1024)
    );
    assert_eq!(one_shot(&app, fits.as_bytes()).await, Some(200));

    // One header of 10 KiB: over max_header_bytes.
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(10 * 1024)
    );
    let refused = one_shot(&app, big.as_bytes()).await;
    assert!(
        matches!(refused, Some(431) | None),
        "a 10 KiB header block got {refused:?}"
    );

    // 20 small headers: over max_headers.
    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for i in 0..20 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let refused = one_shot(&app, many.as_bytes()).await;
    assert!(
        matches!(refused, Some(431) | None),
        "22 headers got {refused:?}"
    );

    assert_eq!(healthz_fresh(&app, Duration::from_secs(2)).await, Ok(200));
}

#[tokio::test]
async fn two_hundred_slowloris_connections_do_not_starve_healthz() {
    let app = spawn_app_configured(|c| {
        c.server.header_read_timeout = Duration::from_secs(3);
    })
    .await;
    ready(&app).await;

    let started = Instant::now();
    let mut readers = Vec::new();
    let mut tricklers = Vec::new();
    for _ in 0..200 {
        let stream = TcpStream::connect(addr(&app)).await.unwrap();
        let (read, mut write) = stream.into_split();
        readers.push(read);
        tricklers.push(tokio::spawn(async move {
            for byte in b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ".iter().cycle() {
                if write.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }));
    }
    // While all 200 are open, probes are answered promptly.
    for _ in 0..5 {
        let probe = Instant::now();
        assert_eq!(healthz_fresh(&app, Duration::from_secs(1)).await, Ok(200));
        assert!(probe.elapsed() < Duration::from_secs(1));
    }
    let probed = started.elapsed();
    // And every one of them is closed about header_read_timeout (3 s) after it began.
    let (mut first, mut last) = (Duration::MAX, Duration::ZERO);
    for mut read in readers {
        let closed = closed_after(&mut read, started, Duration::from_secs(5))
            .await
            .expect("a slowloris connection was still open after 5 s");
        first = first.min(closed);
        last = last.max(closed);
    }
    for trickler in tricklers {
        trickler.abort();
    }
    eprintln!(
        "200 slowloris connections closed between {first:?} and {last:?}; probes done at {probed:?}"
    );
    assert!(probed < first, "the probes ran while all 200 were open");
    assert!(
        first >= Duration::from_millis(2700),
        "one closed after {first:?}"
    );
    assert_eq!(healthz_fresh(&app, Duration::from_secs(2)).await, Ok(200));
}

#[tokio::test]
async fn at_max_connections_new_connections_wait_until_one_closes() {
    let app = spawn_app_configured(|c| {
        c.server.max_connections = 3;
        c.server.idle_timeout = Duration::from_secs(30);
    })
    .await;
    ready(&app).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let opened = Instant::now();
        let mut stream = loop {
            let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
            stream.write_all(HEALTHZ).await.unwrap();
            let mut first = [0u8; 1];
            // The readiness probe's connection may hold a slot for a moment more.
            match timeout(Duration::from_millis(500), stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => break stream,
                _ => assert!(opened.elapsed() < Duration::from_secs(5), "no slot freed"),
            }
        };
        assert_eq!(read_response(&mut stream).await.0, 200);
        held.push(stream);
    }

    // All three slots taken: a fourth connection is not served...
    assert!(
        healthz_fresh(&app, Duration::from_millis(700))
            .await
            .is_err(),
        "served a connection beyond max_connections"
    );
    // ...until one closes.
    drop(held.pop());
    assert_eq!(healthz_fresh(&app, Duration::from_secs(3)).await, Ok(200));
}

#[tokio::test]
async fn http2_connections_get_the_same_limits() {
    let app = spawn_app_configured(|c| {
        short_clocks(c);
        c.server.max_header_bytes = 8 * 1024;
        c.server.http2_max_concurrent_streams = 7;
    })
    .await;
    ready(&app).await;

    // The server's SETTINGS advertise the stream and header-list limits.
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    stream.write_all(h2::PREFACE).await.unwrap();
    stream
        .write_all(&h2::frame(h2::SETTINGS, 0, 0, &[]))
        .await
        .unwrap();
    let settings = loop {
        let (kind, flags, _, payload) = h2::read_frame(&mut stream).await.unwrap();
        if kind == h2::SETTINGS && flags & h2::ACK == 0 {
            break h2::settings(&payload);
        }
    };
    assert_eq!(settings.get(&h2::MAX_CONCURRENT_STREAMS), Some(&7));
    assert_eq!(settings.get(&h2::MAX_HEADER_LIST_SIZE), Some(&(8 * 1024)));

    // A request, then the idle connection gets a GOAWAY after idle_timeout.
    stream
        .write_all(&h2::frame(h2::SETTINGS, h2::ACK, 0, &[]))
        .await
        .unwrap();
    stream
        .write_all(&h2::frame(
            h2::HEADERS,
            h2::END_STREAM | h2::END_HEADERS,
            1,
            &h2::get_healthz(),
        ))
        .await
        .unwrap();
    let since = loop {
        let (kind, flags, stream_id, payload) = h2::read_frame(&mut stream).await.unwrap();
        if kind == h2::HEADERS && stream_id == 1 {
            // `:status: 200` is entry 8 of HPACK's static table.
            assert_eq!(payload.first(), Some(&0x88), "not a 200");
        }
        if stream_id == 1 && flags & h2::END_STREAM != 0 {
            break Instant::now();
        }
    };
    let goaway = timeout(Duration::from_secs(4), async {
        loop {
            match h2::read_frame(&mut stream).await {
                Some((h2::GOAWAY, ..)) | None => return since.elapsed(),
                Some(_) => {}
            }
        }
    })
    .await
    .expect("an idle HTTP/2 connection got no GOAWAY within 4 s");
    eprintln!("idle HTTP/2 connection got GOAWAY after {goaway:?} (idle_timeout 2 s)");
    assert!(
        goaway >= Duration::from_millis(1800) && goaway < Duration::from_millis(3500),
        "GOAWAY after {goaway:?}"
    );

    // Over-size header lists are refused with 431; the server keeps serving.
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let response = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let refused = client
        .get(app.url("/healthz"))
        .header("x-big", "a".repeat(10 * 1024))
        .send()
        .await;
    assert!(
        refused.as_ref().map_or(true, |r| r.status() == 431),
        "a 10 KiB header list over HTTP/2 got {refused:?}"
    );
    let response = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

/// Just enough HTTP/2 framing to read a server's SETTINGS and send one GET.
mod h2 {
    use std::collections::HashMap;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub(super) const HEADERS: u8 = 0x1;
    pub(super) const SETTINGS: u8 = 0x4;
    pub(super) const GOAWAY: u8 = 0x7;
    pub(super) const ACK: u8 = 0x1;
    pub(super) const END_STREAM: u8 = 0x1;
    pub(super) const END_HEADERS: u8 = 0x4;
    pub(super) const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub(super) const MAX_HEADER_LIST_SIZE: u16 = 0x6;

    pub(super) fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream_id.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// `GET /healthz` over http, HPACK-encoded from the static table.
    pub(super) fn get_healthz() -> Vec<u8> {
        // :method GET (2), :scheme http (6), then :path (4) as a literal.
        let mut block = vec![0x82, 0x86, 0x04, 8];
        block.extend_from_slice(b"/healthz");
        block
    }

    /// The next frame: (type, flags, stream id, payload); `None` at EOF or error.
    pub(super) async fn read_frame(stream: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let stream_id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await.ok()?;
        Some((head[3], head[4], stream_id, payload))
    }

    pub(super) fn settings(payload: &[u8]) -> HashMap<u16, u32> {
        payload
            .chunks_exact(6)
            .map(|c| {
                (
                    u16::from_be_bytes([c[0], c[1]]),
                    u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                )
            })
            .collect()
    }
}
