//! Real-time delivery over WebSocket (`GET /ws`) and Server-Sent Events
//! (`GET /api/v1/stream`), driven by the committed event log.
//!
//! Code map: [`hub`] (the node's reader of the log and the fan-out, written straight into
//! WebSocket sockets or queued for SSE connections), [`socket`] (a WebSocket's socket, written
//! from any thread, with its bounded pending queue), [`session`] (one connection: subscribe,
//! replay then live, heartbeats, slow-consumer close), [`protocol`] (messages, topics, the
//! `{type, id, ts, data}` envelope), [`ws`] and [`sse`] (the two transports), [`detections`]
//! (the per-second aggregates of the `detections` topic), [`videos`] (video processing:
//! `video.*` messages read from the videos' rows).
//!
//! Architecture invariant: messages are read from the event log (`incident_events`, and
//! `exam_events` for proctoring) after commit, never built
//! by the handler that made the change; who receives an event is decided by
//! [`vigia_domain::incidents::audience`] (incident events) and
//! [`vigia_domain::detections::AlertScope`] (alert events), the same rules the REST API
//! applies. The exceptions are the `detections` topic's per-second counts and the `video.*`
//! messages (read from the videos' processing rows, woken like events), which are not events
//! of the log.

pub mod detections;
pub mod hub;
pub mod metrics;
pub mod protocol;
pub mod session;
pub mod socket;
pub mod sse;
pub mod videos;
pub mod ws;

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use vigia_domain::auth::Principal;

pub use hub::Hub;

use crate::auth::{Authenticated, Standing};
use crate::error::ApiError;
use crate::routes::{Routes, op};
use crate::state::AppState;
use sse::{__path_stream, stream};
use ws::{__path_ws, ws};

/// Real-time settings, resolved from the `[realtime]` configuration section.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// How often the server sends `{"type":"heartbeat"}` to an idle connection.
    pub heartbeat: Duration,
    /// How far back a reconnecting client may resume; older gaps get `resync_required`.
    pub replay_window: Duration,
    /// Messages waiting per connection before it is closed as a slow consumer.
    pub queue_capacity: usize,
    /// Open connections per user or API key.
    pub max_connections_per_user: usize,
    /// Open connections per node.
    pub max_connections: usize,
    /// Largest message a client may send.
    pub max_message_bytes: usize,
    /// WebSocket read buffer size per connection: clients send small messages, and a larger
    /// one is read in more calls.
    pub ws_read_buffer_bytes: usize,
    /// Fallback poll of the event log when no commit wakes the reader.
    pub poll_interval: Duration,
    /// How often an open connection's credentials are checked again (besides at once when a
    /// change on any node asks, and at the token's expiry).
    pub auth_recheck: Duration,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(30),
            replay_window: Duration::from_secs(24 * 3600),
            queue_capacity: 256,
            max_connections_per_user: 16,
            max_connections: 20_000,
            max_message_bytes: 16 * 1024,
            ws_read_buffer_bytes: 512,
            poll_interval: Duration::from_secs(1),
            auth_recheck: Duration::from_secs(60),
        }
    }
}

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, ws);
    op!(routes, stream)
}

/// The caller of a real-time endpoint: like [`Auth`], and also accepting the access token or
/// API key offered as the WebSocket subprotocol `bearer.<token>` (browsers cannot set headers
/// on a WebSocket) or the session cookie. The secret is kept so the connection can check it
/// again while it is open. Tokens are never logged: this header is marked sensitive in
/// [`crate::app`].
pub struct StreamAuth(pub Credential);

impl FromRequestParts<AppState> for StreamAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let has_header = parts.headers.contains_key(header::AUTHORIZATION)
            || parts.headers.contains_key("x-api-key");
        if !has_header && let Some(token) = protocol_token(parts) {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                ApiError::Unauthorized {
                    detail: "the token offered as a WebSocket subprotocol is malformed",
                }
            })?;
            value.set_sensitive(true);
            parts.headers.insert(header::AUTHORIZATION, value);
        }
        // Taken before the check: a standing forgotten from now on may not be in its answer.
        let epoch = state.auth_cache.epoch();
        let (secret, authenticated) = crate::auth::authenticate_request(parts, state)
            .await?
            .ok_or(ApiError::Unauthorized {
                detail: "sign in: send Authorization: Bearer <token>, offer the subprotocols \
                         `vigia, bearer.<token>`, or sign in with a session cookie",
            })?;
        Ok(StreamAuth(Credential {
            state: state.clone(),
            secret: secret.to_owned(),
            authenticated,
            epoch,
        }))
    }
}

/// A real-time caller's credential, kept to check again while the connection is open.
pub struct Credential {
    state: AppState,
    secret: String,
    pub authenticated: Authenticated,
    /// The auth cache's epoch when the credential was last checked.
    epoch: u64,
}

impl Credential {
    pub fn principal(&self) -> &Principal {
        &self.authenticated.principal
    }

    /// Whether a standing was forgotten since the credential was last checked (it may be one
    /// of this caller's: check again).
    pub fn outdated(&self) -> bool {
        self.state.auth_cache.epoch() != self.epoch
    }

    /// Checks the credential again; a valid one refreshes who the caller is.
    pub async fn recheck(&mut self) -> Standing {
        self.epoch = self.state.auth_cache.epoch();
        let standing = crate::auth::recheck(&self.state, &self.secret).await;
        if let Standing::Valid(authenticated) = &standing {
            self.authenticated = authenticated.clone();
        }
        standing
    }

    /// Replaces the secret with a fresh one for the same caller (a client's `authenticate`).
    pub async fn replace(&mut self, secret: &str) -> Result<(), &'static str> {
        let epoch = self.state.auth_cache.epoch();
        let authenticated = crate::auth::authenticate(&self.state, secret)
            .await
            .map_err(|_| "the token is invalid, expired or revoked")?;
        if !same_caller(&authenticated.principal, &self.authenticated.principal) {
            return Err("the token belongs to another user or key: open a new connection");
        }
        self.secret = secret.to_owned();
        self.authenticated = authenticated;
        self.epoch = epoch;
        Ok(())
    }
}

fn same_caller(a: &Principal, b: &Principal) -> bool {
    match (a, b) {
        (Principal::User(a), Principal::User(b)) => a.user_id == b.user_id,
        (Principal::ApiKey(a), Principal::ApiKey(b)) => a.key_id == b.key_id,
        _ => false,
    }
}

fn protocol_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix("bearer."))
        .map(str::to_owned)
}

fn refused(reason: hub::Refused) -> ApiError {
    let _ = reason;
    ApiError::TooManyRequests {
        retry_after_secs: 5,
    }
}
