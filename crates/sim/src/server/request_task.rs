//! Each request runs in a task of its own, which the connection awaits.
//!
//! Two reasons. First, a real ThingSpace keeps working on a request whose client
//! went away: if the handler ran inside the connection's future, hyper would drop it
//! (and its in-flight guard, and its injected latency) the moment the client
//! disconnected, and `/_sim/stats` would under-count what the upstream is busy with.
//! In a spawned task the handler runs to its end, so `inFlight` and
//! `peakConcurrency` count a request until the simulator is done with it. That is
//! what lets a test prove a client never has more than its limit in flight at the
//! upstream, even when it gives up on calls. Only a stall (no answer at all) ends
//! early, when its client goes away: nothing is being worked on.
//!
//! Second, the mid-body faults decide in the gate but act on the body the handler
//! builds afterwards; the task carries that decision from one to the other in a
//! task-local [`RequestContext`].

use std::cell::RefCell;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use tokio::sync::watch;
use tower::ServiceExt as _;

use crate::stats::InFlight;

/// Longest a stalled request waits before giving up itself (clients time out long
/// before; this only bounds a leak if one never does).
pub(super) const STALL_LIMIT: Duration = Duration::from_secs(3600);

/// How long a dropped-mid-body answer waits after its first part before closing:
/// long enough that the head and that part reach the socket first (hyper buffers
/// writes, and an error from the body would otherwise discard them).
const DROP_AFTER: Duration = Duration::from_millis(50);

/// What a mid-body fault does after the first part of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MidBody {
    /// Close the connection.
    Drop,
    /// Send nothing more until the client goes away (or shutdown, or [`STALL_LIMIT`]).
    Stall,
}

/// A mid-body fault decided for this request: what, the guard that keeps the
/// request in flight until its body ends, and the shutdown signal.
struct MidBodyFault {
    kind: MidBody,
    guard: InFlight,
    shutdown: watch::Receiver<bool>,
}

/// Per-request state shared by the gate and [`run`].
struct RequestContext {
    /// Changes never; fails `changed()` once the connection dropped its wait for
    /// the answer (the client went away).
    client: watch::Receiver<()>,
    mid_body: RefCell<Option<MidBodyFault>>,
}

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// The error that makes hyper abort a connection.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
pub(super) struct DroppedByFault;

/// Runs `request` through `router` in its own task and waits for the answer;
/// `Err` when the answer is "close the connection" ([`super::respond::DropConnection`]).
pub(super) async fn run(
    router: Router,
    request: axum::http::Request<Body>,
) -> Result<Response, DroppedByFault> {
    // Dropped with this future, i.e. when hyper gives up on the request.
    let (client_here, client) = watch::channel(());
    let context = RequestContext {
        client,
        mid_body: RefCell::new(None),
    };
    let task = tokio::spawn(REQUEST.scope(context, async move {
        let response = match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let fault = REQUEST
            .try_with(|ctx| ctx.mid_body.borrow_mut().take())
            .ok()
            .flatten();
        match fault {
            Some(fault) => cut_body(response, fault).await,
            None => response,
        }
    }));
    let response = match task.await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "request task failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    };
    drop(client_here);
    if response
        .extensions()
        .get::<super::respond::DropConnection>()
        .is_some()
    {
        Err(DroppedByFault)
    } else {
        Ok(response)
    }
}

/// Resolves when this request's client has gone away; never outside [`run`].
pub(super) async fn client_gone() {
    match REQUEST.try_with(|ctx| ctx.client.clone()) {
        Ok(mut client) => {
            // No value is ever sent: this returns once the sender is dropped.
            while client.changed().await.is_ok() {}
        }
        Err(_) => std::future::pending().await,
    }
}

/// Records a mid-body fault for [`run`] to apply to the handler's answer. `guard`
/// keeps the request in flight until the body ends. Outside [`run`] (no context)
/// the fault is not applied.
pub(super) fn cut_mid_body(kind: MidBody, guard: InFlight, shutdown: watch::Receiver<bool>) {
    let recorded = REQUEST.try_with(|ctx| {
        *ctx.mid_body.borrow_mut() = Some(MidBodyFault {
            kind,
            guard,
            shutdown,
        });
    });
    if recorded.is_err() {
        tracing::warn!("mid-body fault outside a request task: not applied");
    }
}

/// The same status and headers, with the full `Content-Length`, and a body that
/// stops after its first half.
async fn cut_body(response: Response, fault: MidBodyFault) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, "cannot read the body to cut");
            return super::respond::drop_connection();
        }
    };
    // At least one byte goes out, and at least one is withheld.
    let first = bytes.slice(..bytes.len().div_ceil(2).min(bytes.len().saturating_sub(1)));
    if let Ok(length) = HeaderValue::from_str(&bytes.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, length);
    }
    let MidBodyFault {
        kind,
        guard,
        mut shutdown,
    } = fault;
    let rest = async move {
        // Keeps the request in flight until the body ends or hyper drops it.
        let _guard = guard;
        match kind {
            MidBody::Drop => tokio::time::sleep(DROP_AFTER).await,
            MidBody::Stall => {
                tokio::select! {
                    _ = tokio::time::sleep(STALL_LIMIT) => {}
                    _ = shutdown.wait_for(|stop| *stop) => {}
                }
            }
        }
        Err::<Bytes, _>(std::io::Error::other("body cut by an injected fault"))
    };
    let stream =
        futures::stream::once(std::future::ready(Ok(first))).chain(futures::stream::once(rest));
    Response::from_parts(parts, Body::from_stream(stream))
}
