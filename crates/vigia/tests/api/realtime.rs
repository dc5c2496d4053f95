//! Real-time end to end: WebSocket and SSE clients against the real server, on SQLite and
//! PostgreSQL; two server processes sharing one PostgreSQL database.

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

backend_tests! {
    async fn every_message_type_arrives_within_a_second_of_the_rest_call_that_causes_it(app: TestApp) {
        let c = campus(&app).await;
        let mut admin = connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
        admin.subscribe(&["incidents"], None).await;
        admin.send(json!({ "type": "ping" })).await;
        admin.expect_event(SECOND, "pong").await;

        let started = Instant::now();
        let id = report(&app, &c.reporter, public_leak(&c, "public")).await["id"].as_i64().expect("id");
        let created = admin.expect_event(SECOND - started.elapsed(), "incident.created").await;
        assert_eq!(created["data"]["incident_id"], id);
        assert_eq!(created["data"]["actor"], format!("user:{}", c.reporter.id));
        assert!(created["id"].as_str().is_some_and(|s| s.parse::<i64>().is_ok()), "{created}");
        assert!(created["ts"].is_string());
        // Auto-assignment may follow creation; drain it.
        while let Some(extra) = admin.next_within(Duration::from_millis(200)).await {
            assert_eq!(extra["data"]["incident_id"], id, "{extra}");
        }

        let kinds = [
            "incident.status_changed", "incident.comment_added", "incident.assignee_changed",
            "incident.attachment_added", "incident.voted", "incident.department_assigned",
        ];
        for kind in kinds {
            let started = Instant::now();
            match kind {
                "incident.status_changed" => {
                    let r = app.post(&format!("/api/v1/incidents/{id}/transitions"), Some(&c.staff_a.token), json!({ "to": "acknowledged" })).await;
                    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                }
                "incident.comment_added" => comment(&app, &c.staff_a, id, "public").await,
                "incident.assignee_changed" => {
                    let r = app.put(&format!("/api/v1/incidents/{id}/assignee"), Some(&c.staff_a.token), json!({ "assignee_id": c.staff_a.id })).await;
                    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                }
                "incident.attachment_added" => attach(&app, &c.reporter, id).await,
                "incident.voted" => {
                    let r = app.post(&format!("/api/v1/incidents/{id}/votes"), Some(&c.other.token), json!({})).await;
                    assert!(r.status.is_success(), "{:?}", r.body);
                }
                _ => {
                    let r = app.put(&format!("/api/v1/incidents/{id}/department"), Some(&c.admin.token), json!({ "department_id": c.dept_b })).await;
                    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                }
            }
            let message = admin.expect_event(SECOND.saturating_sub(started.elapsed()), kind).await;
            assert_eq!(message["data"]["incident_id"], id);
            // Moving departments may also unassign; drain what follows the same call.
            while let Some(extra) = admin.next_within(Duration::from_millis(100)).await {
                assert_eq!(extra["data"]["incident_id"], id, "{extra}");
            }
        }
    }

    async fn a_reporter_receives_neither_anothers_private_incident_nor_internal_comments(app: TestApp) {
        let c = campus(&app).await;
        let mut owner = connect_ws(&app.url, Credential::Subprotocol(&c.reporter.token)).await;
        owner.subscribe(&["incidents"], None).await;
        let mut stranger = connect_ws(&app.url, Credential::Bearer(&c.other.token)).await;
        stranger.subscribe(&["incidents"], None).await;
        let mut staff = connect_ws(&app.url, Credential::Bearer(&c.staff_a.token)).await;
        staff.subscribe(&[&format!("department:{}", c.dept_a)], None).await;

        let private = report(&app, &c.reporter, public_leak(&c, "private")).await["id"].as_i64().expect("id");
        owner.expect_event(SECOND, "incident.created").await;
        staff.expect_event(SECOND, "incident.created").await;
        comment(&app, &c.staff_a, private, "internal").await;
        staff.expect_event(SECOND, "incident.comment_added").await;
        comment(&app, &c.staff_a, private, "public").await;
        let seen = staff.expect_event(SECOND, "incident.comment_added").await;
        let public_comment = owner.expect_event(SECOND, "incident.comment_added").await;
        assert_eq!(public_comment["id"], seen["id"], "the owner gets the public comment, not the internal one");
        assert_eq!(public_comment["data"]["visibility"], "public");

        // A public incident is the sentinel: the stranger's first message must be about it.
        let public = report(&app, &c.reporter, public_leak(&c, "public")).await["id"].as_i64().expect("id");
        let first = stranger.expect_event(SECOND, "incident.created").await;
        assert_eq!(first["data"]["incident_id"], public, "{first}");
        assert!(first["data"].get("actor").is_none(), "strangers do not learn who reported: {first}");
        stranger.expect_silence(Duration::from_millis(300)).await;

        // Without credentials, or with a bad token, there is no connection.
        assert!(try_connect_ws(&app.url, Credential::Bearer("nope")).await.is_err());
        let plain = app.get("/ws", Some(&c.reporter.token)).await;
        assert_eq!(plain.status, StatusCode::BAD_REQUEST);
        assert!(plain.is_problem());
    }

    async fn credentials_stay_checked_while_a_connection_is_open(app: TestApp) {
        let c = campus(&app).await;
        let mut staff = connect_ws(&app.url, Credential::Bearer(&c.staff_a.token)).await;
        staff.subscribe(&["incidents"], None).await;
        let mut reporter = connect_ws(&app.url, Credential::Bearer(&c.reporter.token)).await;
        reporter.subscribe(&["incidents"], None).await;
        let mut other = connect_ws(&app.url, Credential::Subprotocol(&c.other.token)).await;
        other.subscribe(&["incidents"], None).await;

        report(&app, &c.reporter, public_leak(&c, "private")).await;
        staff.expect_event(SECOND, "incident.created").await;
        reporter.expect_event(SECOND, "incident.created").await;

        // The staff member moves to another department: from then on, department A's private
        // incidents no longer reach their open connection.
        let moved = app
            .patch(&format!("/api/v1/users/{}", c.staff_a.id), Some(&c.admin.token), json!({ "departments": [c.dept_b] }))
            .await;
        assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
        report(&app, &c.reporter, public_leak(&c, "private")).await;
        reporter.expect_event(SECOND, "incident.created").await;
        staff.expect_silence(Duration::from_millis(500)).await;

        // A fresh token of another user is refused; a garbage one too; the connection stays.
        reporter.send(json!({ "type": "authenticate", "token": c.other.token })).await;
        let refused = next_control(&mut reporter, SECOND).await;
        assert_eq!(refused["type"], "error", "{refused}");
        assert!(refused["data"]["detail"].as_str().expect("detail").contains("another user"), "{refused}");
        reporter.send(json!({ "type": "authenticate", "token": "not-a-token" })).await;
        assert_eq!(next_control(&mut reporter, SECOND).await["type"], "error");
        reporter.send(json!({ "type": "ping" })).await;
        assert_eq!(next_control(&mut reporter, SECOND).await["type"], "pong");

        // Signing out closes the reporter's connection with 4003.
        let logout = app.post("/api/v1/auth/logout", Some(&c.reporter.token), json!({})).await;
        assert_eq!(logout.status, StatusCode::NO_CONTENT);
        let closed = next_control(&mut reporter, SECOND).await;
        assert_eq!(closed, json!({ "type": "_closed", "code": 4003 }));

        // Disabling an account closes its connections with 4003 too.
        let disabled = app
            .patch(&format!("/api/v1/users/{}", c.other.id), Some(&c.admin.token), json!({ "disabled": true }))
            .await;
        assert_eq!(disabled.status, StatusCode::OK, "{:?}", disabled.body);
        let closed = next_control(&mut other, SECOND).await;
        assert_eq!(closed, json!({ "type": "_closed", "code": 4003 }));

        // A browser's session cookie opens a WebSocket only from this server's pages.
        let login = app
            .client
            .post(format!("{}/api/v1/auth/login", app.url))
            .json(&json!({ "email": c.admin.email, "password": c.admin.password, "cookie": true }))
            .send()
            .await
            .expect("login");
        let session = login
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("vigia_session="))
            .and_then(|v| v.split(';').next())
            .expect("session cookie")
            .to_owned();
        expect_handshake_status(try_connect_ws(&app.url, Credential::Cookie(&session, None)).await, 403);
        expect_handshake_status(
            try_connect_ws(&app.url, Credential::Cookie(&session, Some("https://evil.example"))).await,
            403,
        );
        let mut browser = connect_ws(&app.url, Credential::Cookie(&session, Some(&app.url))).await;
        browser.subscribe(&["incidents"], None).await;
        // EventSource on a same-origin page sends the cookie without an Origin: reading is allowed.
        let sse = app
            .client
            .get(format!("{}/api/v1/stream", app.url))
            .header("cookie", format!("vigia_session={session}"))
            .send()
            .await
            .expect("sse");
        assert_eq!(sse.status(), StatusCode::OK);
        let mut sse = SseClient::new(sse);
        assert_eq!(sse.next_within(SECOND).await.expect("subscribed")["type"], "subscribed");
        report(&app, &c.staff_b, public_leak(&c, "private")).await;
        browser.expect_event(SECOND, "incident.created").await;
        assert_eq!(sse.next_within(SECOND).await.expect("event")["type"], "incident.created");
    }

    async fn reconnecting_with_the_last_event_id_gets_exactly_the_missed_events(app: TestApp) {
        let c = campus(&app).await;
        let id = report(&app, &c.reporter, public_leak(&c, "public")).await["id"].as_i64().expect("id");
        let mut first = connect_ws(&app.url, Credential::Bearer(&c.staff_a.token)).await;
        first.subscribe(&[&format!("incident:{id}")], None).await;
        comment(&app, &c.staff_a, id, "public").await;
        let last = first.expect_event(SECOND, "incident.comment_added").await["id"].as_str().expect("id").to_owned();
        drop(first);

        // Missed while away: three changes, one of them internal (staff may see it).
        comment(&app, &c.staff_a, id, "internal").await;
        app.post(&format!("/api/v1/incidents/{id}/transitions"), Some(&c.staff_a.token), json!({ "to": "acknowledged" })).await;
        comment(&app, &c.reporter, id, "public").await;
        let history = app.get(&format!("/api/v1/incidents/{id}/events?limit=500"), Some(&c.staff_a.token)).await;
        let missed: Vec<String> = history.body["items"].as_array().expect("items").iter()
            .filter(|e| e["id"].as_i64().expect("id") > last.parse::<i64>().expect("id"))
            .map(|e| e["id"].as_i64().expect("id").to_string())
            .collect();
        assert_eq!(missed.len(), 3);

        let mut again = connect_ws(&app.url, Credential::Bearer(&c.staff_a.token)).await;
        again.subscribe(&[&format!("incident:{id}")], Some(&last)).await;
        let mut replayed = Vec::new();
        for _ in 0..3 {
            let message = again.next_within(SECOND).await.expect("a missed event");
            replayed.push(message["id"].as_str().expect("event id").to_owned());
        }
        assert_eq!(replayed, missed);
        // Then live, no duplicate.
        comment(&app, &c.staff_a, id, "public").await;
        let live = again.expect_event(SECOND, "incident.comment_added").await;
        assert!(live["id"].as_str().expect("id").parse::<i64>().expect("id") > missed[2].parse::<i64>().expect("id"));
        again.expect_silence(Duration::from_millis(300)).await;

        // The same over SSE with Last-Event-ID: the missed events, then nothing else.
        let response = app.client.get(format!("{}/api/v1/stream?topics=incident:{id}", app.url))
            .bearer_auth(&c.staff_a.token)
            .header("last-event-id", &last)
            .send().await.expect("stream");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut sse = SseClient::new(response);
        assert_eq!(sse.next_within(SECOND).await.expect("ack")["type"], "subscribed");
        let mut ids = Vec::new();
        for _ in 0..4 {
            let (event_id, message) = sse.next_event_within(SECOND).await.expect("event");
            assert_eq!(Some(message["id"].as_str().expect("id")), event_id.as_deref());
            ids.push(message["id"].as_str().expect("id").to_owned());
        }
        assert_eq!(&ids[..3], &missed[..]);
        assert_eq!(ids[3], live["id"].as_str().expect("id"));
    }
}

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

/// A `vigia serve` process, killed when dropped.
struct Node {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(database_url: &str, demo: bool) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vigia"));
    command
        .current_dir(dir.path())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--database-url", database_url, "serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("VIGIA_AUTH__JWT_SECRET", crate::helpers::JWT_SECRET)
        .env("VIGIA_LOG__LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if demo {
        command.arg("--demo");
    }
    let child = command.spawn().expect("spawn vigia serve");
    let node = Node {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "node on port {port} never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    node
}

async fn login(client: &reqwest::Client, url: &str, email: &str, password: &str) -> String {
    let reply: Value = client
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login JSON");
    reply["access_token"].as_str().expect("token").to_owned()
}

/// Two server processes on one PostgreSQL database: an event committed through node A reaches
/// a WebSocket client of node B (LISTEN/NOTIFY), and the other way round over SSE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_through_one_node_reaches_clients_of_another() {
    let Some(admin_url) = crate::helpers::postgres_admin_url() else {
        return;
    };
    let (name, database_url) = crate::helpers::create_postgres_database(&admin_url).await;
    let a = start_node(&database_url, true);
    let client = reqwest::Client::new();
    // Node A loads the demo data; wait until it answers logins.
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin = loop {
        let reply = client
            .post(format!("{}/api/v1/auth/login", a.url))
            .json(&json!({ "email": "admin@demo.vigia.local", "password": "faro-norte-2026" }))
            .send()
            .await;
        if let Ok(reply) = reply
            && reply.status() == StatusCode::OK
        {
            let body: Value = reply.json().await.expect("JSON");
            break body["access_token"].as_str().expect("token").to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "node A never accepted the demo login"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let b = start_node(&database_url, false);
    let reporter = login(
        &client,
        &b.url,
        "reporter@demo.vigia.local",
        "faro-este-2026",
    )
    .await;
    let categories: Value = client
        .get(format!("{}/api/v1/categories", a.url))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("categories")
        .json()
        .await
        .expect("JSON");
    let category = categories["items"][0]["id"]
        .as_i64()
        .or_else(|| categories[0]["id"].as_i64())
        .expect("a demo category");

    let mut on_b = connect_ws(&b.url, Credential::Bearer(&admin)).await;
    on_b.subscribe(&["incidents"], None).await;
    let sse_on_a = client
        .get(format!("{}/api/v1/stream", a.url))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("stream");
    let mut on_a = SseClient::new(sse_on_a);
    assert_eq!(
        on_a.next_within(SECOND * 5).await.expect("ack")["type"],
        "subscribed"
    );

    let started = Instant::now();
    let created: Value = client
        .post(format!("{}/api/v1/incidents", a.url))
        .bearer_auth(&reporter)
        .json(
            &json!({ "category_id": category, "title": "Fuga en el laboratorio",
                       "description": "Gotea desde el techo del laboratorio 2." }),
        )
        .send()
        .await
        .expect("create on A")
        .json()
        .await
        .expect("JSON");
    let id = created["id"].as_i64().expect("incident id");
    let message = on_b
        .expect_event(SECOND.saturating_sub(started.elapsed()), "incident.created")
        .await;
    assert_eq!(message["data"]["incident_id"], id);

    let started = Instant::now();
    let comment = client
        .post(format!("{}/api/v1/incidents/{id}/comments", b.url))
        .bearer_auth(&admin)
        .json(&json!({ "body": "En camino" }))
        .send()
        .await
        .expect("comment on B");
    assert_eq!(comment.status(), StatusCode::CREATED);
    let mut seen = Vec::new();
    while let Some(message) = on_a
        .next_within(SECOND.saturating_sub(started.elapsed()))
        .await
    {
        seen.push(message["type"].as_str().unwrap_or_default().to_owned());
        if seen.last().is_some_and(|t| t == "incident.comment_added") {
            break;
        }
    }
    assert!(
        seen.contains(&"incident.comment_added".to_owned()),
        "node A's SSE client saw {seen:?}"
    );

    drop((on_b, on_a, a, b));
    if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await {
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await;
    }
}

/// A client with a tiny receive buffer that stops reading.
async fn stalled_client(app: &TestApp, token: &str) -> Socket {
    let addr = app.url.trim_start_matches("http://").to_owned();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket
        .connect(addr.parse().expect("addr"))
        .await
        .expect("connect");
    let mut request = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .expect("handshake");
    socket
        .send(Message::Text(
            json!({ "type": "subscribe", "topics": ["incidents"] })
                .to_string()
                .into(),
        ))
        .await
        .expect("subscribe");
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_while_others_keep_receiving() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.realtime.queue_capacity = 32;
        config.realtime.socket_send_buffer_bytes = 8192;
    })
    .await
    .expect("app");
    let c = campus(&app).await;
    let id = report(&app, &c.reporter, public_leak(&c, "public")).await["id"]
        .as_i64()
        .expect("id");
    let mut reader = connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
    reader.subscribe(&["incidents"], None).await;
    let mut stalled = stalled_client(&app, &c.admin.token).await;

    // Comments until the stalled client's buffers and queue overflow (the metric says so),
    // checked after each one so the stalled client starts reading right after it was cut off.
    let mut sent = 0;
    let mut seen_ids: Vec<i64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        comment(&app, &c.staff_a, id, "internal").await;
        sent += 1;
        let event = reader
            .expect_event(SECOND * 5, "incident.comment_added")
            .await;
        seen_ids.push(
            event["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("event id"),
        );
        let text = app
            .client
            .get(format!("{}/metrics", app.url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if text.contains("vigia_realtime_slow_consumer_disconnects_total 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled client was never disconnected after {sent} events"
        );
    }
    eprintln!("the stalled client was disconnected after {sent} events");
    // The stalled client, once it reads, finds what was buffered for it, then a 4008 close: it
    // is cut off, not merely late.
    let mut stalled_events = 0;
    let mut close_code = None;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = stalled.next().await {
            match message {
                Ok(Message::Close(frame)) => {
                    close_code = Some(frame.map(|f| u16::from(f.code)));
                    break;
                }
                Ok(Message::Text(text)) if text.as_str().contains("incident.comment_added") => {
                    stalled_events += 1
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "no close within 10 s after reading resumed");
    assert!(
        stalled_events < sent,
        "the stalled client got {stalled_events} of {sent} events: it was not cut off"
    );
    eprintln!("it got {stalled_events} events, then the close {close_code:?}");
    // The close frame follows what was queued, and says why.
    assert_eq!(
        close_code,
        Some(Some(4008)),
        "the stalled client is told it was too slow"
    );
    // The healthy client got every event once, in order, and nothing more.
    assert!(
        seen_ids.windows(2).all(|w| w[0] < w[1]),
        "events arrive once each and in order: {seen_ids:?}"
    );
    reader.expect_silence(SECOND / 2).await;
    comment(&app, &c.staff_a, id, "public").await;
    reader.expect_event(SECOND, "incident.comment_added").await;
}

/// A connection closes with 4001 when its access token expires, unless the client sends a
/// fresh token first; an SSE stream ends with a `closed` message saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closes_when_its_token_expires_unless_renewed_in_band() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.http.access_token_ttl_secs = 3;
    })
    .await
    .expect("app");
    let admin = app.admin().await;
    let refresh = |token: String| {
        let app = &app;
        async move {
            let reply = app
                .post(
                    "/api/v1/auth/refresh",
                    None,
                    json!({ "refresh_token": token }),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            (
                reply.body["access_token"]
                    .as_str()
                    .expect("access")
                    .to_owned(),
                reply.body["refresh_token"]
                    .as_str()
                    .expect("refresh")
                    .to_owned(),
            )
        }
    };
    let (first, next) = refresh(admin.refresh_token.clone()).await;
    let issued = Instant::now();
    let mut kept = connect_ws(&app.url, Credential::Bearer(&first)).await;
    kept.subscribe(&["incidents"], None).await;
    let mut lapsed = connect_ws(&app.url, Credential::Bearer(&first)).await;
    lapsed.subscribe(&["incidents"], None).await;
    let sse = app
        .client
        .get(format!("{}/api/v1/stream", app.url))
        .bearer_auth(&first)
        .send()
        .await
        .expect("sse");
    let mut sse = SseClient::new(sse);
    assert_eq!(
        sse.next_within(SECOND).await.expect("subscribed")["type"],
        "subscribed"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (second, _) = refresh(next).await;
    kept.send(json!({ "type": "authenticate", "token": second }))
        .await;
    let renewed = kept.expect_event(SECOND, "authenticated").await;
    assert!(renewed["data"]["expires_at"].is_string(), "{renewed}");

    let closed = lapsed
        .next_within(Duration::from_secs(4))
        .await
        .expect("close");
    assert_eq!(closed, json!({ "type": "_closed", "code": 4001 }));
    assert!(
        issued.elapsed() >= Duration::from_secs(2),
        "closed at expiry, not before"
    );
    let ended = sse.next_within(SECOND).await.expect("closed message");
    assert_eq!(ended["type"], "closed", "{ended}");
    assert_eq!(ended["data"]["code"], 4001);

    // The renewed connection is still live, and lapses at its own token's expiry.
    kept.send(json!({ "type": "ping" })).await;
    assert_eq!(kept.expect_event(SECOND, "pong").await["type"], "pong");
    let closed = kept
        .next_within(Duration::from_secs(4))
        .await
        .expect("close");
    assert_eq!(closed, json!({ "type": "_closed", "code": 4001 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_beyond_the_replay_window_asks_for_a_resync_and_limits_hold() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.realtime.replay_window_secs = 1;
        config.realtime.max_connections_per_user = 2;
        config.realtime.max_message_bytes = 1024;
    })
    .await
    .expect("app");
    let c = campus(&app).await;
    let id = report(&app, &c.reporter, public_leak(&c, "public")).await["id"]
        .as_i64()
        .expect("id");
    let mut client = connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
    client.subscribe(&["incidents"], None).await;
    comment(&app, &c.staff_a, id, "public").await;
    let last = client.expect_event(SECOND, "incident.comment_added").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    drop(client);
    comment(&app, &c.staff_a, id, "public").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut late = connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
    late.send(json!({ "type": "subscribe", "topics": ["incidents"], "last_event_id": last }))
        .await;
    let resync = late.expect_event(SECOND, "resync_required").await;
    assert_eq!(resync["data"]["last_event_id"], last);
    late.expect_event(SECOND, "subscribed").await;
    comment(&app, &c.staff_a, id, "public").await;
    late.expect_event(SECOND, "incident.comment_added").await;

    // Bad input is answered, not fatal.
    late.send(json!({ "type": "subscribe", "topics": ["everything"] }))
        .await;
    assert!(
        late.expect_event(SECOND, "error").await["data"]["detail"]
            .as_str()
            .expect("detail")
            .contains("unknown topic")
    );

    // Two connections per user here: the third is refused with 429.
    let _second = connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
    let third = try_connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
        }
        other => panic!("expected 429, got {:?}", other.map(|_| "a connection")),
    }
    let sse = app
        .client
        .get(format!("{}/api/v1/stream", app.url))
        .bearer_auth(&c.admin.token)
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), StatusCode::TOO_MANY_REQUESTS);

    // A message over the size limit closes the socket with 1009.
    late.send(json!({ "type": "subscribe", "topics": ["x".repeat(2048)] }))
        .await;
    let closed = late.next_within(SECOND).await.expect("close");
    assert_eq!(closed["type"], "_closed");
    assert_eq!(closed["code"], 1009);
}

/// The server writes frames into the socket itself; tungstenite's own replies (a pong, the
/// echo of a client's close) take the same path, in order with the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_pings_are_answered_and_a_clients_close_is_echoed() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await.expect("app");
    let c = campus(&app).await;
    let mut client = connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
    client.subscribe(&["incidents"], None).await;

    client
        .socket
        .send(Message::Ping(b"faro".to_vec().into()))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(SECOND, async {
        loop {
            match client.socket.next().await.expect("open").expect("frame") {
                Message::Pong(payload) => return payload,
                Message::Text(_) => {}
                other => panic!("expected a pong, got {other:?}"),
            }
        }
    })
    .await
    .expect("a pong within a second");
    assert_eq!(&pong[..], b"faro");

    // Events still arrive after the pong, whole.
    let id = report(&app, &c.reporter, public_leak(&c, "public")).await["id"]
        .as_i64()
        .expect("id");
    let created = client.expect_event(SECOND, "incident.created").await;
    assert_eq!(created["data"]["incident_id"], id);

    client
        .socket
        .send(Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: 1000.into(),
                reason: "bye".into(),
            },
        )))
        .await
        .expect("close");
    let echo = tokio::time::timeout(SECOND, async {
        loop {
            match client.socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("expected the close echoed, got {other:?}"),
            }
        }
    })
    .await
    .expect("the close echoed within a second");
    assert_eq!(echo.map(|f| u16::from(f.code)), Some(1000));
}
