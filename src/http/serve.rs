//! The accept loop: our own rather than `axum::serve`, which offers none of the
//! limits a server exposed to the Internet needs. Each is from `[server]`:
//!
//! - **`max_connections`**: a semaphore permit per open connection, taken *before*
//!   `accept`, so while all are taken the loop stops accepting and new connections
//!   wait in the kernel's backlog instead of costing a task, buffers and a file
//!   descriptor each.
//! - **`header_read_timeout`, `idle_timeout`**: the connection's clocks
//!   (`super::conn_clock`, which also says why hyper's own timer is not enough).
//! - **`max_header_bytes`**: HTTP/1's read buffer (`max_buf_size`: a head that does
//!   not fit gets 431) and HTTP/2's `SETTINGS_MAX_HEADER_LIST_SIZE` (431 and a
//!   reset stream).
//! - **`max_headers`**: header fields in one HTTP/1 request (431 beyond); HTTP/2
//!   header lists are bounded by their size.
//! - **`http2_max_concurrent_streams`**: streams one HTTP/2 connection may have open.
//!
//! HTTP/1 and HTTP/2 (prior knowledge) are told apart by hyper-util's `auto`
//! builder. Handlers still get `ConnectInfo<SocketAddr>` (identity uses it for the
//! per-address rate limit), inserted here as `into_make_service_with_connect_info`
//! would.
//!
//! Accept errors never end the server: a failed handshake (reset, aborted) is
//! skipped; anything else (out of file descriptors, `EMFILE`/`ENFILE`, or memory)
//! is logged, at most every few seconds, and retried after a short pause, by which
//! time closing connections may have freed what was missing.
//!
//! Shutdown: when `shutdown` completes the listener is closed at once; connections
//! with no request in progress are closed (after flushing a last response, within a
//! second; HTTP/2 ones get a GOAWAY first); the others finish their requests and
//! close. [`serve`] returns when every connection is closed; the caller bounds that
//! wait with `server.shutdown_grace`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use super::conn_clock::{ClockedIo, ConnClock, ConnTimeouts, Expiry, GuardedBody};
use crate::config::ServerConfig;

/// Pause after an accept error that is not about one connection.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(200);
/// Least time between two warnings of one kind (accept errors, limit reached).
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How long a connection with nothing in flight has, once asked to close, to finish
/// flushing its last response (or send HTTP/2's GOAWAY) before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// hyper's smallest HTTP/1 read buffer (it panics below it).
const MIN_HTTP1_BUFFER: usize = 8 * 1024;

/// The connection limits of `[server]`.
#[derive(Debug, Clone)]
pub(crate) struct ConnLimits {
    pub(crate) timeouts: ConnTimeouts,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    pub(crate) max_connections: usize,
    pub(crate) http2_max_concurrent_streams: u32,
}

impl ConnLimits {
    pub(crate) fn from_config(server: &ServerConfig) -> Self {
        Self {
            timeouts: ConnTimeouts {
                header_read: server.header_read_timeout,
                idle: server.idle_timeout,
            },
            max_header_bytes: usize::try_from(server.max_header_bytes).unwrap_or(usize::MAX),
            max_headers: server.max_headers,
            max_connections: server.max_connections,
            http2_max_concurrent_streams: server.http2_max_concurrent_streams,
        }
    }

    fn builder(&self) -> Builder<TokioExecutor> {
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            // The backstop (see `conn_clock`): idle, then a whole head.
            .header_read_timeout(self.timeouts.header_read.saturating_add(self.timeouts.idle))
            // Config validation keeps it within 8 KiB..1 MiB; the floor only keeps a
            // hand-built `Config` from panicking hyper.
            .max_buf_size(self.max_header_bytes.max(MIN_HTTP1_BUFFER))
            .max_headers(self.max_headers);
        builder
            .http2()
            .max_concurrent_streams(self.http2_max_concurrent_streams)
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX));
        builder
    }

    /// Permits of the connection semaphore (at least one; at most what a semaphore
    /// and `acquire_many` can count).
    fn slots(&self) -> u32 {
        let max = self.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        u32::try_from(max).unwrap_or(u32::MAX)
    }
}

/// Where connections come from: the listener (a test double in unit tests).
pub(crate) trait Accept: Send {
    fn accept(&mut self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    fn accept(&mut self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }
}

/// Serves `app` on connections from `acceptor` until `shutdown` completes, then
/// until every connection has closed (see the module docs).
pub(crate) async fn serve<A: Accept>(
    mut acceptor: A,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(limits.builder());
    let slots = limits.slots();
    let semaphore = Arc::new(Semaphore::new(slots as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut full_warning = Throttle::new(WARN_EVERY);
    let mut accept_warning = Throttle::new(WARN_EVERY);
    loop {
        let permit = match Arc::clone(&semaphore).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => {
                if let Some(suppressed) = full_warning.ready() {
                    tracing::warn!(
                        max_connections = slots,
                        suppressed,
                        "connection limit reached; new connections wait in the listen backlog"
                    );
                }
                tokio::select! {
                    permit = Arc::clone(&semaphore).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_closed) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
            // Never closed; stop rather than spin if it were.
            Err(TryAcquireError::Closed) => break,
        };
        let accepted = tokio::select! {
            accepted = acceptor.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_connection_error(&e) => {
                tracing::debug!(error = %e, "a connection failed while being accepted");
                continue;
            }
            Err(e) => {
                if let Some(suppressed) = accept_warning.ready() {
                    tracing::warn!(error = %e, suppressed, "cannot accept connections; retrying shortly");
                }
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        // Answers are written whole; waiting to coalesce them only adds latency.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        tokio::spawn(serve_connection(
            Arc::clone(&builder),
            stream,
            remote,
            app.clone(),
            limits.timeouts,
            stop_rx.clone(),
            permit,
        ));
    }
    // Refuse new connections at once, then tell the open ones.
    drop(acceptor);
    stop_tx.send_replace(true);
    let open = slots as usize - semaphore.available_permits();
    tracing::info!(
        open_connections = open,
        "stopped accepting; waiting for open connections to finish"
    );
    // Each connection holds a permit until it has closed: all back, all closed.
    let _all = semaphore.acquire_many(slots).await;
}

/// One connection, from accept to close (see the module docs for when it closes).
async fn serve_connection(
    builder: Arc<Builder<TokioExecutor>>,
    stream: TcpStream,
    remote: SocketAddr,
    app: Router,
    timeouts: ConnTimeouts,
    mut stop: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) {
    let clock = ConnClock::new(timeouts);
    let io = TokioIo::new(ClockedIo::new(stream, Arc::clone(&clock)));
    let service = ConnService {
        app,
        remote,
        clock: Arc::clone(&clock),
    };
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut stopping = false;
    // Set once a connection with nothing in flight was asked to close: how long hyper
    // may take to do so (flush the last response, or send HTTP/2's GOAWAY).
    let mut close_by: Option<Instant> = None;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%remote, error = %e, "connection ended with an error");
                }
                break;
            }
            expiry = clock.expired(), if close_by.is_none() => match expiry {
                Expiry::HeaderRead => {
                    tracing::debug!(%remote, "closing a connection whose request head took longer than server.header_read_timeout");
                    break;
                }
                // Nothing in flight, but hyper may still be flushing the last
                // response (its body is done, not necessarily sent): closing through
                // hyper lets it finish. HTTP/1 then closes at once; HTTP/2 says
                // GOAWAY first, so a client racing a new request knows it was not
                // processed.
                Expiry::Idle => {
                    conn.as_mut().graceful_shutdown();
                    close_by = Some(Instant::now() + CLOSE_GRACE);
                }
            },
            () = stopped(&mut stop), if !stopping => {
                stopping = true;
                // HTTP/1: no keep-alive after the response in progress; HTTP/2: GOAWAY.
                conn.as_mut().graceful_shutdown();
                // With nothing in flight there is nothing to wait for but the flush of
                // a last response (a connection still reading its first head only
                // disables keep-alive, so it is dropped at `close_by`).
                if clock.is_idle() && close_by.is_none() {
                    close_by = Some(Instant::now() + CLOSE_GRACE);
                }
            }
            () = sleep_until_some(close_by), if close_by.is_some() => {
                if clock.is_idle() {
                    break;
                }
                // A request slipped in (a head that was already on its way): hyper
                // closes after answering it, as graceful shutdown says.
                close_by = None;
            }
        }
    }
    drop(permit);
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the accept loop is gone: stop as well.
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Errors about one connection that failed during its handshake, not about the
/// listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The router as hyper's per-connection service: adds `ConnectInfo`, and tells the
/// connection's clock when a request starts and (through the body) ends.
#[derive(Clone)]
struct ConnService {
    app: Router,
    remote: SocketAddr,
    clock: Arc<ConnClock>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<GuardedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let guard = self.clock.request_started(request.version());
        request.extensions_mut().insert(ConnectInfo(self.remote));
        let app = self.app.clone();
        Box::pin(async move {
            let response = app.oneshot(request).await?;
            Ok(response.map(|body| GuardedBody::new(body, guard)))
        })
    }
}

/// Lets a warning through at most once per `every`, counting those held back.
struct Throttle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(warnings held back since the last one)` when one may be logged now.
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + self.every) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::VecDeque;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;
    use tokio::time::timeout;

    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits::from_config(&ServerConfig::default())
    }

    /// Answers with the peer address it was given.
    fn app() -> Router {
        Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
    }

    /// A listener whose first `accept`s fail as if the process were out of file
    /// descriptors.
    struct Exhausted {
        errors: VecDeque<io::Error>,
        inner: TcpListener,
    }

    impl Accept for Exhausted {
        async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
            match self.errors.pop_front() {
                Some(e) => Err(e),
                None => self.inner.accept().await,
            }
        }
    }

    async fn get_peer(addr: SocketAddr) -> (String, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let local = stream.local_addr().unwrap().to_string();
        stream
            .write_all(b"GET /peer HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        (local, answer)
    }

    #[tokio::test]
    async fn accept_errors_are_retried_and_handlers_see_the_peer() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let emfile = || io::Error::from_raw_os_error(24);
        let acceptor = Exhausted {
            errors: VecDeque::from([
                emfile(),
                io::Error::from(io::ErrorKind::ConnectionAborted),
                emfile(),
            ]),
            inner,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(acceptor, app(), limits(), async move {
            let _ = stopped.await;
        }));
        let (local, answer) = get_peer(addr).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.ends_with(&local),
            "ConnectInfo {answer:?} is not {local}"
        );
        stop.send(()).unwrap();
        timeout(Duration::from_secs(2), server)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_refuses_new_ones() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app(), limits(), async move {
            let _ = stopped.await;
        }));
        // A keep-alive connection that stays open, idle, after its request.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /peer HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = timeout(Duration::from_secs(5), idle.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

        stop.send(()).unwrap();
        // It does not hold the server up (idle_timeout is 60 s here)...
        timeout(Duration::from_secs(2), server)
            .await
            .expect("serve waited for an idle connection")
            .unwrap();
        // ...and was closed.
        let n = timeout(Duration::from_secs(2), idle.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0) | Err(_))), "{n:?}");
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    }

    #[test]
    fn slots_are_clamped_to_what_a_semaphore_counts() {
        let mut l = limits();
        l.max_connections = 0;
        assert_eq!(l.slots(), 1);
        l.max_connections = usize::MAX;
        assert_eq!(
            l.slots() as usize,
            Semaphore::MAX_PERMITS.min(u32::MAX as usize)
        );
        l.max_connections = 4096;
        assert_eq!(l.slots(), 4096);
    }

    #[tokio::test(start_paused = true)]
    async fn warnings_are_throttled() {
        let mut throttle = Throttle::new(Duration::from_secs(10));
        assert_eq!(throttle.ready(), Some(0));
        assert_eq!(throttle.ready(), None);
        assert_eq!(throttle.ready(), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(throttle.ready(), Some(2));
    }
}
