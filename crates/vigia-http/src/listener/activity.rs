//! A connection's timeouts: what it is doing (waiting for a request, receiving a request's
//! head, serving requests, upgraded) and so when a read that finds nothing must give up.
//! [`Connection`](super::Connection) reports bytes in and out; [`track_requests`] reports
//! requests starting and their responses ending.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::time::Instant;

use super::{ConnectionLimits, Peer};

/// Why a connection's deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// A request's head started and did not end in time: the read fails (`TimedOut`).
    Header,
    /// Nothing was asked for in time: the read ends the stream (a clean close).
    Idle,
}

#[derive(Debug)]
pub(super) struct Activity {
    state: Mutex<State>,
    header_read_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
}

#[derive(Debug)]
struct State {
    in_flight: u32,
    upgraded: bool,
    /// Accepted, or the last response's last byte.
    idle_since: Instant,
    /// The first byte of a request whose handler has not started yet.
    head_since: Option<Instant>,
    /// Set when the listener, out of room, closes this idle connection to make some.
    evicted: bool,
    /// The task of the read waiting on this connection, woken by an eviction.
    reader: Option<Waker>,
}

impl Activity {
    pub(super) fn new(limits: &ConnectionLimits) -> Self {
        Self {
            state: Mutex::new(State {
                in_flight: 0,
                upgraded: false,
                idle_since: Instant::now(),
                head_since: None,
                evicted: false,
                reader: None,
            }),
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes arrived: between requests, the next request's head has begun.
    pub(super) fn read(&self) {
        let mut state = self.state();
        if state.in_flight == 0 && state.head_since.is_none() {
            state.head_since = Some(Instant::now());
        }
    }

    /// Bytes left: a response's tail still being written is not idleness.
    pub(super) fn wrote(&self) {
        let mut state = self.state();
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
        }
    }

    /// When a read that finds nothing should end the connection, and why; `None` while a
    /// request is in flight and once upgraded. `waker` is the waiting read's, which an
    /// eviction wakes.
    pub(super) fn deadline(&self, waker: &Waker) -> Option<(Instant, Expiry)> {
        let mut state = self.state();
        if state.upgraded || state.in_flight > 0 {
            return None;
        }
        if state.evicted {
            return Some((Instant::now(), Expiry::Idle));
        }
        match &mut state.reader {
            Some(reader) if reader.will_wake(waker) => {}
            reader => *reader = Some(waker.clone()),
        }
        match state.head_since {
            Some(head) => self
                .header_read_timeout
                .map(|timeout| (head + timeout, Expiry::Header)),
            None => self
                .idle_timeout
                .map(|timeout| (state.idle_since + timeout, Expiry::Idle)),
        }
    }

    /// Since when the connection has waited for a request, if it is doing nothing else: no
    /// request in flight, none arriving, not upgraded.
    pub(super) fn idle_since(&self) -> Option<Instant> {
        let state = self.state();
        let idle = !state.upgraded && state.in_flight == 0 && state.head_since.is_none();
        (idle && !state.evicted).then_some(state.idle_since)
    }

    /// Ends the connection at its waiting read (a clean close), if it is still idle.
    pub(super) fn evict(&self) {
        let mut state = self.state();
        if state.upgraded || state.in_flight > 0 || state.head_since.is_some() {
            return;
        }
        state.evicted = true;
        if let Some(reader) = state.reader.take() {
            drop(state);
            reader.wake();
        }
    }

    fn start(&self) {
        let mut state = self.state();
        state.in_flight += 1;
        state.head_since = None;
    }

    fn finish(&self) {
        let mut state = self.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            state.head_since = None;
        }
    }

    fn upgrade(&self) {
        self.state().upgraded = true;
    }
}

/// Middleware: a request is in flight on its connection from here until its response body
/// has been sent (or dropped); a `101 Switching Protocols` exempts the connection from its
/// timeouts. Requests that did not come through [`super::Listener`] pass untouched.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<Peer>>() else {
        return next.run(request).await;
    };
    let in_flight = InFlight::start(peer.activity.clone());
    let response = next.run(request).await;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        in_flight.0.upgrade();
    }
    response.map(|body| {
        Body::new(Tracked {
            body,
            _in_flight: in_flight,
        })
    })
}

/// One request in flight; dropping it ends it.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.start();
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// A response body that keeps its request in flight until hyper is done with it.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
