//! `GET /ws`: the WebSocket transport.

use axum::extract::State;
use axum::extract::ws::{
    CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade,
    rejection::WebSocketUpgradeRejection,
};
use axum::response::Response;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, Stream, StreamExt};

use super::StreamAuth;
use super::protocol::Frame;
use super::session::{self, Incoming, Transport};
use crate::error::{ApiError, ApiResult};
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
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let upgrade = upgrade.map_err(|e| ApiError::BadRequest {
        detail: format!("{e}: connect with a WebSocket client"),
    })?;
    let hub = state.realtime.clone();
    let (registration, rx) = hub
        .register(credential.principal().clone())
        .map_err(super::refused)?;
    let (read_buffer, write_buffer) = (hub.config.ws_read_buffer_bytes, hub.config.ws_buffer_bytes);
    let max_message = hub.config.max_message_bytes;
    Ok(upgrade
        .protocols([PROTOCOL])
        .read_buffer_size(read_buffer)
        .write_buffer_size(write_buffer)
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
            session::run(
                hub,
                registration,
                rx,
                WsTransport(sink),
                incoming(stream),
                None,
                credential,
            )
            .await;
        }))
}

struct WsTransport(SplitSink<WebSocket, Message>);

impl Transport for WsTransport {
    async fn feed(&mut self, frame: Frame) -> Result<(), ()> {
        self.0.feed(Message::Text(frame.text)).await.map_err(|_| ())
    }

    async fn flush(&mut self) -> Result<(), ()> {
        self.0.flush().await.map_err(|_| ())
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = self.0.send(Message::Close(Some(frame))).await;
    }
}

/// The client's messages; ends when it closes or the connection fails.
fn incoming(stream: SplitStream<WebSocket>) -> impl Stream<Item = Incoming> + Unpin + Send {
    Box::pin(futures::stream::unfold(stream, |mut stream| async move {
        loop {
            let item = match stream.next().await? {
                Ok(Message::Text(text)) => Incoming::Text(text.as_str().to_owned()),
                Ok(Message::Binary(_)) => Incoming::Binary,
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(Message::Close(_)) => return None,
                // tungstenite's capacity error: "Space limit exceeded" / "Message too long".
                Err(error) if is_capacity(&error.to_string()) => Incoming::TooBig,
                Err(_) => return None,
            };
            return Some((item, stream));
        }
    }))
}

fn is_capacity(message: &str) -> bool {
    message.contains("too long") || message.contains("Space limit") || message.contains("capacity")
}
