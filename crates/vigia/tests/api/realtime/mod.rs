//! Real-time end to end: WebSocket and SSE clients against the real server, on SQLite and
//! PostgreSQL; two server processes sharing one PostgreSQL database.
//!
//! This module holds the clients and helpers; the tests are in [`delivery`] (what arrives, to
//! whom, and after a reconnect), [`nodes`] (two server processes), [`limits`] (slow consumers,
//! the replay window, message size) and [`session`] (credential expiry, protocol frames).

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app_with};
use crate::incidents::{Campus, campus, report};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client of the real-time endpoint.
pub struct WsClient {
    pub socket: Socket,
}

/// How a client authenticates.
pub enum Credential<'a> {
    Bearer(&'a str),
    Subprotocol(&'a str),
    /// The browser session cookie, with the page's `Origin` if any.
    Cookie(&'a str, Option<&'a str>),
}

pub async fn connect_ws(base_url: &str, credential: Credential<'_>) -> WsClient {
    try_connect_ws(base_url, credential)
        .await
        .expect("WebSocket connects")
}

pub async fn try_connect_ws(
    base_url: &str,
    credential: Credential<'_>,
) -> Result<WsClient, tokio_tungstenite::tungstenite::Error> {
    let url = format!("{}/ws", base_url.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("request");
    match credential {
        Credential::Bearer(token) => {
            request.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
            );
        }
        Credential::Subprotocol(token) => {
            request.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(&format!("vigia, bearer.{token}")).expect("header"),
            );
        }
        Credential::Cookie(token, origin) => {
            request.headers_mut().insert(
                "cookie",
                HeaderValue::from_str(&format!("vigia_session={token}")).expect("header"),
            );
            if let Some(origin) = origin {
                request
                    .headers_mut()
                    .insert("origin", HeaderValue::from_str(origin).expect("header"));
            }
        }
    }
    let (socket, response) = tokio_tungstenite::connect_async(request).await?;
    if let Credential::Subprotocol(_) = credential {
        assert_eq!(response.headers()["sec-websocket-protocol"], "vigia");
    }
    Ok(WsClient { socket })
}

impl WsClient {
    /// The connection's TCP stream, to watch the server end it.
    pub fn into_tcp(self) -> TcpStream {
        match self.socket.into_inner() {
            MaybeTlsStream::Plain(tcp) => tcp,
            _ => panic!("the tests connect without TLS"),
        }
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    /// Subscribes and waits for the acknowledgement.
    pub async fn subscribe(&mut self, topics: &[&str], last_event_id: Option<&str>) -> Value {
        self.send(json!({ "type": "subscribe", "topics": topics, "last_event_id": last_event_id }))
            .await;
        let ack = self.next_within(Duration::from_secs(5)).await.expect("ack");
        assert_eq!(ack["type"], "subscribed", "{ack}");
        ack
    }

    /// The next message other than a heartbeat, or `None` when none arrives in time.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??;
            match message.expect("a message") {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).expect("JSON message");
                    if value["type"] != "heartbeat" {
                        return Some(value);
                    }
                }
                Message::Close(frame) => {
                    return Some(
                        json!({ "type": "_closed", "code": frame.map(|f| u16::from(f.code)) }),
                    );
                }
                _ => {}
            }
        }
    }

    /// The next event message; fails when none arrives within `wait`.
    pub async fn expect_event(&mut self, wait: Duration, what: &str) -> Value {
        let message = self
            .next_within(wait)
            .await
            .unwrap_or_else(|| panic!("no message within {wait:?}: expected {what}"));
        assert_eq!(message["type"], what, "{message}");
        message
    }

    /// Asserts nothing but heartbeats arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(message) = self.next_within(wait).await {
            panic!("expected no message, got {message}");
        }
    }
}

fn public_leak(c: &Campus, visibility: &str) -> Value {
    json!({
        "category_id": c.leak, "title": "Tubería rota en el baño del 3er piso",
        "description": "Sale agua sin parar desde la mañana.", "visibility": visibility
    })
}

async fn comment(app: &TestApp, who: &TestUser, id: i64, visibility: &str) {
    let reply = app
        .post(
            &format!("/api/v1/incidents/{id}/comments"),
            Some(&who.token),
            json!({ "body": "Vamos en camino", "visibility": visibility }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

/// A one-pixel PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn attach(app: &TestApp, who: &TestUser, id: i64) {
    let boundary = "vigia-realtime-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(PNG);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = app
        .client
        .post(format!("{}/api/v1/incidents/{id}/attachments", app.url))
        .bearer_auth(&who.token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::CREATED);
}

const SECOND: Duration = Duration::from_secs(1);

/// The next message that is not an incident event (those may still be in flight).
async fn next_control(client: &mut WsClient, wait: Duration) -> Value {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = client
            .next_within(left)
            .await
            .unwrap_or_else(|| panic!("no control message within {wait:?}"));
        if !message["type"]
            .as_str()
            .unwrap_or("")
            .starts_with("incident.")
        {
            return message;
        }
    }
}

fn expect_handshake_status(
    result: Result<WsClient, tokio_tungstenite::tungstenite::Error>,
    status: u16,
) {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), status);
        }
        Err(other) => panic!("expected {status}, got {other}"),
        Ok(_) => panic!("expected {status}, got a connection"),
    }
}

mod delivery;
mod limits;
mod nodes;
mod session;

/// Reads Server-Sent Events from a streaming response.
pub struct SseClient {
    response: reqwest::Response,
    buffer: String,
}

impl SseClient {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next SSE event: its `id:` field and its JSON `data:`.
    pub async fn next_event_within(&mut self, wait: Duration) -> Option<(Option<String>, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let value: Value = serde_json::from_str(&data).expect("JSON data");
                if value["type"] == "heartbeat" {
                    continue;
                }
                return Some((id, value));
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        self.next_event_within(wait).await.map(|(_, v)| v)
    }
}
