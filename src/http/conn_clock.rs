//! The two clocks of one connection: `server.header_read_timeout` (a request head
//! must arrive whole within it, counted from its first byte) and
//! `server.idle_timeout` (a keep-alive connection with no request in progress is
//! closed after it). The accept loop (`super::serve`) races [`ConnClock::expired`]
//! against the connection and closes it when a clock runs out.
//!
//! A new connection starts on the header clock, counted from accept (as nginx's
//! `client_header_timeout` does): a client that connects and sends nothing holds a
//! connection slot for `header_read_timeout`, not `idle_timeout`, so keeping all of
//! `max_connections` busy with silent sockets costs an attacker six times the
//! connection rate with the defaults (10 s against 60 s). The idle clock is for
//! keep-alive connections, between requests.
//!
//! # Why not hyper's own timer alone
//!
//! hyper 1.12's `http1::Builder::header_read_timeout` (`proto/h1/conn.rs`,
//! `poll_read_head`) arms its timer whenever the connection starts *waiting* for a
//! request head: right after accept and again right after every response, not at the
//! first byte. With it alone, an idle keep-alive connection is closed after
//! `header_read_timeout` (10 s by default) and `idle_timeout` would mean nothing.
//! It also never covers hyper-util's protocol sniffing (the first 24 bytes are read
//! before either protocol's state machine runs, with no timer), and HTTP/2 has no
//! idle timer at all. So the clocks live here, fed by three events:
//!
//! - bytes read while no request is in progress start the header clock
//!   ([`ClockedIo`] sees every read);
//! - hyper dispatching a request stops it, and holds the idle clock
//!   ([`ConnClock::request_started`] in the service);
//! - the last response body being dropped (sent, or abandoned) restarts the idle
//!   clock ([`RequestGuard`], carried by [`GuardedBody`]).
//!
//! hyper's HTTP/1 timer stays on as a backstop, at `header_read_timeout +
//! idle_timeout`: the longest a client obeying both clocks can take between two
//! requests. It bounds what these clocks cannot see, such as a partial pipelined head
//! read while the previous request was still in progress.
//!
//! HTTP/2 connections (known from their first request) no longer start the header
//! clock on reads: their PINGs and WINDOW_UPDATEs between requests are not request
//! heads. Before its first request an HTTP/2 client must, like an HTTP/1 one, send a
//! request within `header_read_timeout` of connecting.
//!
//! State is a few atomics (read on every socket read, so no lock) and a [`Notify`]
//! that wakes the watcher only on transitions, not on every read.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use http::Version;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The two limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnTimeouts {
    pub(crate) header_read: Duration,
    pub(crate) idle: Duration,
}

/// Which clock ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// A request head was begun and not finished within `header_read_timeout`.
    HeaderRead,
    /// No request in progress for `idle_timeout`.
    Idle,
}

/// The shared clock state of one connection.
#[derive(Debug)]
pub(crate) struct ConnClock {
    timeouts: ConnTimeouts,
    /// Times below are milliseconds since this instant.
    epoch: Instant,
    /// Requests dispatched and not yet answered in full.
    active: AtomicUsize,
    /// When the first byte of a request head arrived (or the connection opened),
    /// plus one; 0 = no head begun.
    head_started: AtomicU64,
    /// When the connection last became idle (opened, or its last response ended).
    idle_since: AtomicU64,
    http2: AtomicBool,
    /// Wakes [`ConnClock::expired`] on transitions (`notify_one` keeps a permit, so a
    /// transition between computing a deadline and waiting is not lost).
    wake: Notify,
}

impl ConnClock {
    pub(crate) fn new(timeouts: ConnTimeouts) -> Arc<Self> {
        Arc::new(Self {
            timeouts,
            epoch: Instant::now(),
            active: AtomicUsize::new(0),
            // A new connection is on the header clock from accept (see the module docs).
            head_started: AtomicU64::new(1),
            idle_since: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Bytes arrived. The first ones while idle begin a request head.
    pub(crate) fn bytes_read(&self) {
        if self.active.load(Ordering::Acquire) == 0
            && !self.http2.load(Ordering::Relaxed)
            && self.head_started.load(Ordering::Relaxed) == 0
            && self
                .head_started
                .compare_exchange(
                    0,
                    self.now_ms().saturating_add(1),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.wake.notify_one();
        }
    }

    /// hyper dispatched a request: its head is complete, and the connection is busy
    /// until the returned guard is dropped.
    pub(crate) fn request_started(self: &Arc<Self>, version: Version) -> RequestGuard {
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.active.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Release);
        self.wake.notify_one();
        RequestGuard {
            clock: Arc::clone(self),
        }
    }

    /// No request in progress.
    pub(crate) fn is_idle(&self) -> bool {
        self.active.load(Ordering::Acquire) == 0
    }

    /// When the running clock, if any, runs out.
    fn deadline(&self) -> Option<(Instant, Expiry)> {
        if !self.is_idle() {
            return None;
        }
        match self.head_started.load(Ordering::Acquire) {
            0 => {
                let since = self.at(self.idle_since.load(Ordering::Acquire));
                Some((since + self.timeouts.idle, Expiry::Idle))
            }
            started => Some((
                self.at(started - 1) + self.timeouts.header_read,
                Expiry::HeaderRead,
            )),
        }
    }

    /// Completes when a clock runs out; pending forever while requests are in
    /// progress and nothing changes.
    pub(crate) async fn expired(&self) -> Expiry {
        loop {
            match self.deadline() {
                None => self.wake.notified().await,
                Some((at, expiry)) => {
                    if Instant::now() >= at {
                        return expiry;
                    }
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
            }
        }
    }
}

/// Held while a request is in progress: from dispatch until its response body is
/// dropped (fully sent, or abandoned with the connection).
#[derive(Debug)]
pub(crate) struct RequestGuard {
    clock: Arc<ConnClock>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let clock = &self.clock;
        // Stamp first, so whoever sees `active == 0` sees the new idle start.
        clock.idle_since.store(clock.now_ms(), Ordering::Release);
        if clock.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            clock.wake.notify_one();
        }
    }
}

/// A response body that holds its request's [`RequestGuard`] until hyper drops it.
#[derive(Debug)]
pub(crate) struct GuardedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl GuardedBody {
    pub(crate) fn new(inner: Body, guard: RequestGuard) -> Self {
        Self {
            inner,
            _guard: guard,
        }
    }
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket, reporting reads to its [`ConnClock`].
#[derive(Debug)]
pub(crate) struct ClockedIo<T> {
    inner: T,
    clock: Arc<ConnClock>,
}

impl<T> ClockedIo<T> {
    pub(crate) fn new(inner: T, clock: Arc<ConnClock>) -> Self {
        Self { inner, clock }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ClockedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.bytes_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ClockedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::{advance, timeout};

    use super::*;

    const TIMEOUTS: ConnTimeouts = ConnTimeouts {
        header_read: Duration::from_secs(1),
        idle: Duration::from_secs(5),
    };

    /// Whether the clock runs out within `within` (of paused, auto-advanced time).
    async fn expires_within(clock: &ConnClock, within: Duration) -> Option<Expiry> {
        timeout(within, clock.expired()).await.ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_is_on_the_header_clock_from_accept() {
        let clock = ConnClock::new(TIMEOUTS);
        assert_eq!(
            expires_within(&clock, Duration::from_millis(900)).await,
            None
        );
        clock.bytes_read(); // its first bytes do not restart it
        assert_eq!(
            expires_within(&clock, Duration::from_millis(200)).await,
            Some(Expiry::HeaderRead)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn on_keep_alive_the_header_clock_starts_at_the_first_byte() {
        let clock = ConnClock::new(TIMEOUTS);
        drop(clock.request_started(Version::HTTP_11));
        advance(Duration::from_secs(3)).await;
        clock.bytes_read();
        advance(Duration::from_millis(500)).await;
        clock.bytes_read(); // later bytes do not restart it
        assert_eq!(
            expires_within(&clock, Duration::from_millis(400)).await,
            None
        );
        assert_eq!(
            expires_within(&clock, Duration::from_millis(200)).await,
            Some(Expiry::HeaderRead)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_progress_stops_both_clocks() {
        let clock = ConnClock::new(TIMEOUTS);
        clock.bytes_read();
        let guard = clock.request_started(Version::HTTP_11);
        assert!(!clock.is_idle());
        // Body bytes of the request in progress start nothing.
        clock.bytes_read();
        assert_eq!(expires_within(&clock, Duration::from_secs(60)).await, None);
        drop(guard);
        assert!(clock.is_idle());
        // Idle from the end of the response, not from the connection's start.
        assert_eq!(
            expires_within(&clock, Duration::from_millis(4900)).await,
            None
        );
        assert_eq!(
            expires_within(&clock, Duration::from_millis(200)).await,
            Some(Expiry::Idle)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_watcher_wakes_on_transitions() {
        let clock = ConnClock::new(TIMEOUTS);
        let guard = clock.request_started(Version::HTTP_11);
        let watcher = tokio::spawn({
            let clock = Arc::clone(&clock);
            async move { clock.expired().await }
        });
        advance(Duration::from_secs(30)).await;
        assert!(!watcher.is_finished());
        drop(guard);
        clock.bytes_read();
        let expiry = timeout(Duration::from_millis(1100), watcher).await;
        assert_eq!(expiry.unwrap().unwrap(), Expiry::HeaderRead);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_reads_between_requests_are_not_heads() {
        let clock = ConnClock::new(TIMEOUTS);
        drop(clock.request_started(Version::HTTP_2));
        assert!(clock.http2.load(Ordering::Relaxed));
        clock.bytes_read(); // a PING, a WINDOW_UPDATE
        assert_eq!(
            expires_within(&clock, Duration::from_millis(4900)).await,
            None
        );
        assert_eq!(
            expires_within(&clock, Duration::from_millis(200)).await,
            Some(Expiry::Idle)
        );
    }

    #[tokio::test]
    async fn clocked_io_reports_reads_and_passes_bytes_through() {
        let clock = ConnClock::new(TIMEOUTS);
        // Between two requests of a keep-alive connection: no head begun.
        drop(clock.request_started(Version::HTTP_11));
        assert_eq!(clock.head_started.load(Ordering::Relaxed), 0);
        let (client, server) = tokio::io::duplex(64);
        let mut io = ClockedIo::new(server, Arc::clone(&clock));
        let mut client = client;
        client.write_all(b"GET").await.unwrap();
        let mut buf = [0u8; 3];
        io.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"GET");
        assert_ne!(clock.head_started.load(Ordering::Relaxed), 0);
        io.write_all(b"ok").await.unwrap();
        let mut back = [0u8; 2];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ok");
    }

    #[tokio::test]
    async fn a_guarded_body_holds_the_request_until_dropped() {
        let clock = ConnClock::new(TIMEOUTS);
        let body = GuardedBody::new(Body::from("hello"), clock.request_started(Version::HTTP_11));
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!clock.is_idle());
        let bytes = axum::body::to_bytes(Body::new(body), 64).await.unwrap();
        assert_eq!(&bytes[..], b"hello");
        assert!(clock.is_idle());
    }
}
