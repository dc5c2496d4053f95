//! `GET /ws`: the WebSocket transport.
//!
//! The server does the RFC 6455 opening handshake itself and keeps the connection's TCP socket
//! (from [`crate::listener::Peer`]): once hyper has sent the 101 response, the hub writes live
//! frames straight into it (see [`super::socket`]), and tungstenite reads what the client
//! sends through hyper's upgraded connection.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use futures::{Stream, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message};

use super::StreamAuth;
use super::hub::Outlet;
use super::protocol::Frame;
use super::session::{self, Incoming, Transport};
use super::socket::{Sent, Socket, SocketIo, close_frame};
use crate::error::{ApiError, ApiResult};
use crate::listener::Peer;
use crate::state::AppState;

/// The subprotocol the server selects; clients that authenticate through
/// `Sec-WebSocket-Protocol` offer it together with `bearer.<token>`.
pub const PROTOCOL: &str = "vigia";

/// Real-time messages over WebSocket.
///
/// Authenticate with `Authorization: Bearer <access token or API key>`, `X-Api-Key`, or — for
/// browsers, which cannot set headers on a WebSocket — by offering the subprotocols
/// `vigia, bearer.<token>` (the server selects `vigia`), or with the session cookie from a page
/// of this server's origin. Then send
/// `{"type":"subscribe","topics":["incidents"],"last_event_id":"123"}`. The credential is
/// checked again while the connection is open: send `{"type":"authenticate","token":"..."}`
/// with a fresh access token before the current one expires, or the connection closes with
/// 4001; signing out or a revoked key closes it with 4003.
#[utoipa::path(get, path = "/ws", tag = "realtime",
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; messages are JSON envelopes `{type, id, ts, data}`"),
        (status = 400, body = crate::error::Problem, description = "Not a WebSocket handshake"),
        (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem, description = "Session cookie sent from another origin"),
        (status = 429, body = crate::error::Problem, description = "Too many connections for this user"),
    ))]
pub async fn ws(
    State(state): State<AppState>,
    StreamAuth(credential): StreamAuth,
    handshake: Handshake,
) -> ApiResult<Response> {
    let hub = state.realtime.clone();
    let admission = hub
        .admit(credential.principal().clone())
        .map_err(super::refused)?;
    let response = handshake.response();
    tokio::spawn(async move {
        let Some(connection) = handshake.upgraded().await else {
            return;
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(hub.config.ws_read_buffer_bytes)
            .write_buffer_size(0)
            .max_message_size(Some(hub.config.max_message_bytes))
            .max_frame_size(Some(hub.config.max_message_bytes));
        let socket = Arc::new(Socket::new(connection.writer, hub.config.queue_capacity));
        let registration = admission.register(Outlet::Socket(socket.clone()));
        let io = SocketIo {
            read: connection.read,
            socket: socket.clone(),
        };
        let stream = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        session::run(
            hub,
            registration,
            WsTransport(socket.clone()),
            incoming(stream),
            None,
            credential,
        )
        .await;
        socket.shut();
    });
    Ok(response)
}

/// A valid WebSocket opening request (RFC 6455 §4.2.1), and hyper's handle on the connection.
pub struct Handshake {
    key: HeaderValue,
    /// The connection's write half, which the hub writes into.
    writer: Arc<OwnedWriteHalf>,
    /// Whether the client offered the `vigia` subprotocol.
    vigia_protocol: bool,
    on_upgrade: OnUpgrade,
}

/// The connection once the `101 Switching Protocols` response is sent.
struct Upgraded {
    writer: Arc<OwnedWriteHalf>,
    /// What the client sends, through hyper (which may hold bytes read past the handshake).
    read: TokioIo<hyper::upgrade::Upgraded>,
}

impl FromRequestParts<AppState> for Handshake {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let bad = |what: &str| ApiError::BadRequest {
            detail: format!("{what}: connect with a WebSocket client"),
        };
        if parts.method != Method::GET {
            return Err(bad("a WebSocket handshake is a GET request"));
        }
        if !header_has_token(&parts.headers, header::CONNECTION, "upgrade") {
            return Err(bad("the Connection header must include \"upgrade\""));
        }
        if !header_has_token(&parts.headers, header::UPGRADE, "websocket") {
            return Err(bad("the Upgrade header must be \"websocket\""));
        }
        if !header_has_token(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(bad("Sec-WebSocket-Version must be 13"));
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or_else(|| bad("the Sec-WebSocket-Key header is missing"))?;
        let writer = parts
            .extensions
            .get::<ConnectInfo<Peer>>()
            .map(|ConnectInfo(peer)| peer.writer())
            .ok_or_else(|| bad("this connection cannot be upgraded"))?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or_else(|| bad("this connection cannot be upgraded"))?;
        Ok(Self {
            key,
            writer,
            vigia_protocol: header_has_token(
                &parts.headers,
                header::SEC_WEBSOCKET_PROTOCOL,
                PROTOCOL,
            ),
            on_upgrade,
        })
    }
}

impl Handshake {
    fn response(&self) -> Response {
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(self.key.as_bytes())) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if self.vigia_protocol {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(PROTOCOL),
            );
        }
        response
    }

    /// Waits for hyper to hand the connection over after the 101 response.
    async fn upgraded(self) -> Option<Upgraded> {
        let upgraded = match self.on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "WebSocket upgrade failed");
                return None;
            }
        };
        Some(Upgraded {
            writer: self.writer,
            read: TokioIo::new(upgraded),
        })
    }
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

struct WsTransport(Arc<Socket>);

impl Transport for WsTransport {
    async fn backlog(&mut self) -> bool {
        self.0.backlog().await;
        true
    }

    async fn drain(&mut self) -> Result<u64, ()> {
        // The hub counted these frames when it handed them to the socket.
        self.0.flush().await.map(|_| 0).map_err(|_| ())
    }

    async fn write(&mut self, frames: Vec<Frame>) -> Result<(), ()> {
        for frame in &frames {
            loop {
                match self.0.send(&frame.wire) {
                    Sent::Written | Sent::Queued => break,
                    Sent::Full => {
                        self.0.flush().await.map_err(|_| ())?;
                    }
                    Sent::Broken => return Err(()),
                }
            }
        }
        self.0.flush().await.map(|_| ()).map_err(|_| ())
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        if self.0.send_last(&close_frame(code, reason)) != Sent::Broken {
            let _ = self.0.flush().await;
        }
    }
}

/// The client's messages; ends when it closes or the connection fails.
fn incoming(
    stream: WebSocketStream<SocketIo<TokioIo<hyper::upgrade::Upgraded>>>,
) -> impl Stream<Item = Incoming> + Unpin + Send {
    Box::pin(futures::stream::unfold(stream, |mut stream| async move {
        loop {
            let item = match stream.next().await? {
                Ok(Message::Text(text)) => Incoming::Text(text.as_str().to_owned()),
                Ok(Message::Binary(_)) => Incoming::Binary,
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Ok(Message::Close(_)) => {
                    // Reading on writes tungstenite's reply to the close.
                    let _ = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
                    return None;
                }
                Err(Error::Capacity(_)) => Incoming::TooBig,
                Err(_) => return None,
            };
            return Some((item, stream));
        }
    }))
}
