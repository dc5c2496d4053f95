//! The server's TCP listener and what it bounds: how many connections are open, how long a
//! request's head may take to arrive, how long a connection may sit idle, and what happens
//! when the process runs out of file descriptors.
//!
//! - [`connection`]: each accepted socket is split; hyper reads HTTP through
//!   [`Connection`]'s read half, and its write half is shared with the request's [`Peer`], so
//!   that `GET /ws` can write frames into it directly once the connection is upgraded (hyper
//!   hands an upgraded connection back only behind its own buffering type, which cannot be
//!   taken apart).
//! - [`activity`]: the connection's timeouts. A read that would wait past the connection's
//!   deadline ends it instead: the header deadline once a request's first byte arrived, the
//!   idle deadline while no request is in flight. A request is in flight from its handler's
//!   start to the end of its response body (an SSE stream or a download never idles); an
//!   upgraded WebSocket has no deadline (its heartbeats watch it).
//! - [`Listener::accept`]: at `max_connections`, or when `accept` fails for lack of
//!   descriptors (EMFILE), the longest-idle connections (no request in flight or arriving, not
//!   upgraded) are closed to make room, as nginx drains its keep-alive connections; a
//!   connection for which no room can be made is answered 503 at once and closed. Without
//!   descriptors, accept backs off, 5 ms doubling to 200 ms, and accepts again as soon as any
//!   connection has closed.

mod activity;
mod connection;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use activity::Activity;

pub use activity::track_requests;
pub use connection::{Connection, Peer};

use crate::error::ApiError;

/// The bounds every accepted connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long a request's head may take, from its first byte to its blank line.
    pub header_read_timeout: Option<Duration>,
    /// How long a connection may stay open with no request in flight.
    pub idle_timeout: Option<Duration>,
    /// Connections open at once, HTTP and WebSocket alike.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(Duration::from_secs(10)),
            idle_timeout: Some(Duration::from_secs(60)),
            max_connections: 10_000,
        }
    }
}

/// Idle connections closed at once when there is no room for a new one.
const EVICT_AT_ONCE: usize = 16;
/// How long a new connection waits for an evicted one to give its place back.
const EVICTION_WAIT: Duration = Duration::from_millis(250);

const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const LAST_BACKOFF: Duration = Duration::from_millis(200);

/// A TCP listener whose connections [`Peer`] can reach, held to [`ConnectionLimits`].
pub struct Listener {
    inner: TcpListener,
    limits: ConnectionLimits,
    /// One permit per open connection; a connection gives its permit back when it closes.
    slots: Arc<Semaphore>,
    /// The open connections' activity, for closing idle ones when room runs out (entries of
    /// closed connections are dropped as the list grows).
    open: Mutex<Vec<Weak<Activity>>>,
}

impl Listener {
    pub fn new(inner: TcpListener, limits: ConnectionLimits) -> Self {
        let slots = Arc::new(Semaphore::new(
            limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
        ));
        Self {
            inner,
            limits,
            slots,
            open: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Activity>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connection(&self, stream: TcpStream, slot: OwnedSemaphorePermit) -> Connection {
        let activity = Arc::new(Activity::new(&self.limits));
        let mut open = self.open();
        if open.len() == open.capacity() {
            open.retain(|a| a.strong_count() > 0);
        }
        open.push(Arc::downgrade(&activity));
        drop(open);
        Connection::new(stream, slot, activity)
    }

    /// Closes up to [`EVICT_AT_ONCE`] of the longest-idle connections; how many.
    fn evict_idle(&self) -> usize {
        let mut open = self.open();
        open.retain(|a| a.strong_count() > 0);
        let mut idle: Vec<(tokio::time::Instant, Arc<Activity>)> = open
            .iter()
            .filter_map(Weak::upgrade)
            .filter_map(|a| a.idle_since().map(|since| (since, a)))
            .collect();
        drop(open);
        idle.sort_by_key(|(since, _)| *since);
        idle.truncate(EVICT_AT_ONCE);
        for (_, activity) in &idle {
            activity.evict();
        }
        idle.len()
    }

    /// A place for a new connection, closing idle ones to make room if need be.
    async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Some(slot);
        }
        if self.evict_idle() == 0 {
            return None;
        }
        tokio::time::timeout(EVICTION_WAIT, self.slots.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => match self.slot().await {
                    Some(slot) => return (self.connection(stream, slot), addr),
                    None => refuse(&stream, addr),
                },
                Err(error) if is_connection_error(&error) => {}
                Err(error) => {
                    // Out of descriptors, most likely: idle connections give theirs back.
                    self.evict_idle();
                    if backoff == FIRST_BACKOFF {
                        tracing::warn!(%error, "cannot accept connections; retrying as connections close");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(LAST_BACKOFF);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A client that went away before it was accepted: nothing to wait for.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Answers 503 (problem+json, `Retry-After: 1`) without reading the request, and closes.
fn refuse(stream: &TcpStream, addr: SocketAddr) {
    static REFUSAL: OnceLock<Vec<u8>> = OnceLock::new();
    let refusal = REFUSAL.get_or_init(|| {
        let problem = ApiError::Unavailable {
            detail: "too many open connections; retry shortly".into(),
        }
        .problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut out = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    });
    tracing::debug!(%addr, "refused a connection: max_connections reached");
    // A fresh socket's send buffer takes it whole; if not, the client only sees the close.
    let _ = stream.try_write(refusal);
}
