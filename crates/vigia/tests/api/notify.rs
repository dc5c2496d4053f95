//! Notifications end to end: e-mail through a real SMTP server process (Python's aiosmtpd),
//! webhooks to a real HTTP receiver on loopback that verifies Standard Webhooks signatures,
//! retries, dead letters, replay, endpoint disabling and the SSRF guard.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::StatusCode;
use serde_json::{Value, json};
use vigia::config::Config;
use vigia_domain::users::Role;

use crate::helpers::{Backend, TestApp, TestUser, spawn_app_with};

// --- a real SMTP server ------------------------------------------------------------------------

/// Receives mail with aiosmtpd and writes each message, decoded, as JSON into a directory.
const SMTP_SERVER: &str = r#"
import email, email.policy, json, os, sys, time
from aiosmtpd.controller import Controller

port, out = int(sys.argv[1]), sys.argv[2]
# Optional: CERT KEY (STARTTLS required) and USER PASSWORD (AUTH required, after STARTTLS).
tls = sys.argv[3:5] if len(sys.argv) > 4 else None
login = sys.argv[5:7] if len(sys.argv) > 6 else None
# Optional: "implicit" for TLS from the first byte (SMTPS) instead of STARTTLS.
implicit = len(sys.argv) > 7 and sys.argv[7] == "implicit"

class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        text, html = msg.get_body(("plain",)), msg.get_body(("html",))
        doc = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "subject": str(msg["subject"]),
            "message_id": str(msg["message-id"]),
            "text": text.get_content() if text else None,
            "html": html.get_content() if html else None,
            "tls": bool(getattr(session, "ssl", None)) or implicit,
            "authenticated": bool(session.authenticated),
        }
        name = os.path.join(out, "%d.json" % time.time_ns())
        with open(name + ".tmp", "w") as f:
            json.dump(doc, f)
        os.rename(name + ".tmp", name)
        return "250 Message accepted"

options = {}
if tls:
    import ssl
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls[0], tls[1])
    if implicit:
        # The whole connection is TLS, so AUTH needs no STARTTLS first.
        options.update(ssl_context=context, auth_require_tls=False)
    else:
        options.update(tls_context=context, require_starttls=True)
if login:
    from aiosmtpd.smtp import AuthResult, LoginPassword
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and [auth_data.login.decode(), auth_data.password.decode()] == login
        return AuthResult(success=ok)
    options.update(authenticator=authenticator, auth_required=True)
controller = Controller(Handler(), hostname="127.0.0.1", port=port, **options)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

/// The Python with aiosmtpd: `VIGIA_TEST_PYTHON`, else the venv `scripts/test.sh` prepares.
/// Never skipped: without it the test fails and says how to get it.
fn python() -> PathBuf {
    let path = std::env::var("VIGIA_TEST_PYTHON").map_or_else(
        |_| {
            let home = std::env::var("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/vigia-venv/bin/python")
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no Python with aiosmtpd at {}: run scripts/test.sh (it prepares the venv) or set VIGIA_TEST_PYTHON",
        path.display()
    );
    path
}

pub(crate) struct SmtpServer {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    pub(crate) async fn start(port: u16) -> Self {
        Self::start_with(port, &[]).await
    }

    /// `extra`: `[cert, key]` for STARTTLS, then `[user, password]` for AUTH.
    async fn start_with(port: u16, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("smtpd.py");
        std::fs::write(&script, SMTP_SERVER).expect("write script");
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).expect("inbox");
        // Owned by `Self` at once: its Drop kills and reaps the process on every path.
        let server = Self {
            child: std::process::Command::new(python())
                .arg(&script)
                .arg(port.to_string())
                .arg(&inbox)
                .args(extra)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("start aiosmtpd"),
            dir,
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("aiosmtpd did not listen on port {port} within 10 s");
    }

    fn inbox(&self) -> PathBuf {
        self.dir.path().join("inbox")
    }

    pub(crate) fn messages(&self) -> Vec<Value> {
        read_inbox(&self.inbox())
    }

    /// Waits until at least `n` messages arrived.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..300 {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} messages, got {:?}", self.messages());
    }
}

fn read_inbox(dir: &Path) -> Vec<Value> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    names.retain(|p| p.extension().is_some_and(|e| e == "json"));
    names.sort();
    names
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect()
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

pub(crate) fn mail_config(config: &mut Config, port: u16) {
    config.email.enabled = true;
    config.email.smtp_host = "127.0.0.1".into();
    config.email.smtp_port = port;
    config.email.smtp_mode = "none".into();
    config.email.from = "Vigía <vigia@utec.pe>".into();
    config.email.emergency_recipients = vec!["guardia@utec.pe".into()];
    config.email.timeout_secs = 5;
    config.email.retry_base_ms = 200;
    config.email.retry_max_secs = 1;
    config.email.max_attempts = 30;
    config.notifications.poll_interval_ms = 50;
    config.http.public_url = "https://vigia.utec.pe".into();
}

fn hook_config(config: &mut Config) {
    config.webhooks.allow_private_targets = true;
    config.webhooks.timeout_secs = 5;
    config.webhooks.retry_base_ms = 50;
    config.webhooks.retry_max_secs = 1;
    config.webhooks.max_attempts = 6;
    config.notifications.poll_interval_ms = 50;
}

// --- the campus ----------------------------------------------------------------------------------

pub(crate) struct Setup {
    pub admin: TestUser,
    pub category: i64,
    pub staff: TestUser,
}

/// A department with two contacts (one of them an English-speaking account) and an escalation
/// contact, a high-urgency category routed to it, and a staff member.
pub(crate) async fn setup(app: &TestApp) -> Setup {
    let admin = app.admin().await;
    let boss = app.user(Role::Staff).await;
    let reply = app
        .patch(
            &format!("/api/v1/users/{}", boss.id),
            Some(&admin.token),
            json!({ "locale": "en" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply = app
        .post(
            "/api/v1/departments",
            Some(&admin.token),
            json!({
                "name": "Mantenimiento",
                "contact_emails": ["mantenimiento@utec.pe", boss.email],
                "escalation_emails": ["jefatura@utec.pe"],
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["escalation_emails"], json!(["jefatura@utec.pe"]));
    let department = reply.body["id"].as_i64().expect("id");
    let category = app
        .post(
            "/api/v1/categories",
            Some(&admin.token),
            json!({ "name_es": "Fuga de agua", "name_en": "Water leak", "default_department_id": department, "default_urgency": "high" }),
        )
        .await
        .body["id"]
        .as_i64()
        .expect("category id");
    let staff = app.staff_in(&admin, department).await;
    Setup {
        admin,
        category,
        staff,
    }
}

async fn report(app: &TestApp, who: &TestUser, category: i64) -> Value {
    let reply = app
        .post(
            "/api/v1/incidents",
            Some(&who.token),
            json!({
                "category_id": category, "title": "Tubería rota en el baño",
                "description": "Sale agua sin parar desde la mañana.",
                "location_text": "Pabellón A, 3er piso", "visibility": "public",
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body
}

async fn deliveries(app: &TestApp, admin: &TestUser, query: &str) -> Vec<Value> {
    let reply = app
        .get(
            &format!("/api/v1/notifications/deliveries?{query}"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["items"].as_array().cloned().unwrap_or_default()
}

/// Polls the delivery log until `done` holds for the deliveries matching `query`.
async fn wait_deliveries(
    app: &TestApp,
    admin: &TestUser,
    query: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..400 {
        let items = deliveries(app, admin, query).await;
        if done(&items) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "deliveries never got there: {:#?}",
        deliveries(app, admin, query).await
    );
}

pub(crate) fn to(message: &Value) -> String {
    message["rcpt_tos"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

// --- e-mail ----------------------------------------------------------------------------------------

async fn urgent_incidents_mail_the_guard_and_the_department_in_each_readers_language(
    backend: Backend,
) {
    let port = free_port();
    let smtp = SmtpServer::start(port).await;
    let Some(app) = spawn_app_with(backend, |c| mail_config(c, port)).await else {
        return;
    };
    let s = setup(&app).await;
    let reporter = app.user(Role::Reporter).await;
    let incident = report(&app, &reporter, s.category).await;
    let (id, code) = (
        incident["id"].as_i64().expect("id"),
        incident["code"].as_str().expect("code").to_owned(),
    );

    // The guard (emergency recipient) and both department contacts, one message each.
    let messages = smtp.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages = if smtp.messages().len() > messages.len() {
        smtp.messages()
    } else {
        messages
    };
    assert_eq!(messages.len(), 3, "{messages:#?}");
    let find = |address: &str| {
        messages
            .iter()
            .find(|m| to(m) == address.to_lowercase())
            .unwrap_or_else(|| panic!("no message to {address}: {messages:#?}"))
            .clone()
    };
    let guard = find("guardia@utec.pe");
    assert_eq!(guard["mail_from"], "vigia@utec.pe");
    assert!(
        guard["subject"]
            .as_str()
            .expect("subject")
            .starts_with("[ALTA]"),
        "{guard:#?}"
    );
    let link = format!("https://vigia.utec.pe/incidents/{code}");
    assert!(guard["text"].as_str().expect("text").contains(&link));

    let spanish = find("mantenimiento@utec.pe");
    assert_eq!(
        spanish["subject"],
        format!("[{code}] Nuevo incidente para Mantenimiento: Tubería rota en el baño")
    );
    let text = spanish["text"].as_str().expect("text");
    assert!(
        text.contains("Urgencia: alta") && text.contains("Pabellón A, 3er piso"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Ver el incidente: {link}")),
        "{text}"
    );
    let report_link = "https://vigia.utec.pe/reports/incidents/";
    assert!(
        text.contains(report_link) && text.contains(&format!("/incident_{id}.json?key=")),
        "{text}"
    );
    let html = spanish["html"]
        .as_str()
        .expect("html")
        .replace("&#x2f;", "/");
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");

    let boss = app
        .get("/api/v1/users?role=staff&limit=200", Some(&s.admin.token))
        .await;
    let boss_email = boss.body["items"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["locale"] == "en")
        .and_then(|u| u["email"].as_str())
        .expect("english user")
        .to_owned();
    let english = find(&boss_email);
    assert!(
        english["subject"]
            .as_str()
            .expect("subject")
            .contains("New incident for Mantenimiento")
    );
    assert!(
        english["text"]
            .as_str()
            .expect("text")
            .contains("Urgency: high")
    );

    // The log says who was notified and that it arrived.
    let log = wait_deliveries(
        &app,
        &s.admin,
        &format!("incident={id}&channel=email"),
        |d| d.len() == 3 && d.iter().all(|d| d["status"] == "delivered"),
    )
    .await;
    for d in &log {
        assert_eq!(d["attempt_log"][0]["outcome"], "delivered");
        assert_eq!(d["attempt_log"][0]["status_code"], 250);
        assert_eq!(d["message_type"], "incident.created");
    }
    assert!(guard["message_id"].as_str().expect("id").contains("msg_"));

    // The reporter opted in (in English) and hears about the status change; the staff member
    // making the change is not the reporter.
    let reply = app
        .patch(
            "/api/v1/me",
            Some(&reporter.token),
            json!({ "notify_status_changes": true, "locale": "en" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["notify_status_changes"], true);
    let reply = app
        .post(
            &format!("/api/v1/incidents/{id}/transitions"),
            Some(&s.staff.token),
            json!({ "to": "acknowledged" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let messages = smtp.wait_for(4).await;
    let notice = messages
        .iter()
        .find(|m| to(m) == reporter.email.to_lowercase())
        .expect("status mail to the reporter");
    assert!(
        notice["subject"]
            .as_str()
            .expect("subject")
            .contains("Your report is now: acknowledged")
    );
    assert!(
        notice["text"]
            .as_str()
            .expect("text")
            .contains("went from \"new\" to \"acknowledged\"")
    );
}

async fn mail_waits_for_a_smtp_server_that_is_down_and_arrives_when_it_is_back(backend: Backend) {
    let port = free_port();
    let Some(app) = spawn_app_with(backend, |c| {
        mail_config(c, port);
        c.email.emergency_recipients = vec![];
    })
    .await
    else {
        return;
    };
    let s = setup(&app).await;
    let reporter = app.user(Role::Reporter).await;
    let incident = report(&app, &reporter, s.category).await;
    let id = incident["id"].as_i64().expect("id");
    let query = format!("incident={id}&channel=email");
    // Nobody listens: attempts fail and are scheduled again.
    let failed = wait_deliveries(&app, &s.admin, &query, |d| {
        d.len() == 2
            && d.iter()
                .all(|d| d["status"] == "failed" && d["attempts"].as_i64() >= Some(2))
    })
    .await;
    for d in &failed {
        assert_eq!(d["attempt_log"][0]["outcome"], "retry");
        assert!(
            d["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{d:#?}"
        );
        assert!(d["next_attempt_at"].is_string());
    }
    // The server comes up; the retries get through.
    let smtp = SmtpServer::start(port).await;
    let delivered = wait_deliveries(&app, &s.admin, &query, |d| {
        d.len() == 2 && d.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    for d in &delivered {
        let log = d["attempt_log"].as_array().expect("log");
        assert!(log.len() >= 3, "{d:#?}");
        assert_eq!(log.last().expect("last")["outcome"], "delivered");
        assert!(
            log[..log.len() - 1]
                .iter()
                .all(|a| a["outcome"] == "retry" && a["status_code"].is_null())
        );
    }
    let messages = smtp.wait_for(2).await;
    assert_eq!(
        messages.len(),
        2,
        "each message exactly once: {messages:#?}"
    );
    let mut recipients: Vec<String> = messages.iter().map(to).collect();
    recipients.sort();
    assert!(recipients.contains(&"mantenimiento@utec.pe".to_owned()));
}

// --- webhooks ------------------------------------------------------------------------------------

/// What the receiver saw.
#[derive(Default, Clone)]
struct Received {
    /// (webhook-id, verified, body) per request.
    requests: Vec<(String, bool, Value)>,
}

#[derive(Clone)]
struct Receiver {
    secret: Arc<Mutex<String>>,
    /// The status to answer for each request in turn; the last one repeats.
    script: Arc<Vec<u16>>,
    received: Arc<Mutex<Received>>,
}

impl Receiver {
    fn seen(&self) -> Received {
        self.received.lock().expect("lock").clone()
    }
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> AxumStatus {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let secret = r.secret.lock().expect("lock").clone();
    let verified = vigia_notify::signature::verify(
        &[&secret],
        &header("webhook-id"),
        &header("webhook-timestamp"),
        &header("webhook-signature"),
        &body,
        time::OffsetDateTime::now_utc().unix_timestamp(),
        vigia_notify::signature::DEFAULT_TOLERANCE_SECS,
    )
    .is_ok();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut received = r.received.lock().expect("lock");
    received
        .requests
        .push((header("webhook-id"), verified, json));
    let n = received.requests.len();
    let status = r
        .script
        .get(n - 1)
        .or(r.script.last())
        .copied()
        .unwrap_or(200);
    AxumStatus::from_u16(status).unwrap_or(AxumStatus::OK)
}

/// Starts a receiver on `addr` (port 0 for any) answering `script`.
async fn receiver(
    addr: SocketAddr,
    script: Vec<u16>,
) -> (Receiver, SocketAddr, tokio::task::JoinHandle<()>) {
    let r = Receiver {
        secret: Arc::default(),
        script: Arc::new(script),
        received: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (r, addr, task)
}

async fn register(app: &TestApp, admin: &TestUser, url: &str, types: Value) -> (i64, String) {
    let reply = app
        .post(
            "/api/v1/webhooks",
            Some(&admin.token),
            json!({ "url": url, "event_types": types, "description": "test" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let secret = reply.body["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    (reply.body["endpoint"]["id"].as_i64().expect("id"), secret)
}

async fn a_webhook_failing_three_times_is_delivered_once_on_the_fourth_attempt(backend: Backend) {
    let Some(app) = spawn_app_with(backend, hook_config).await else {
        return;
    };
    let s = setup(&app).await;
    let (r, addr, _task) = receiver(
        "127.0.0.1:0".parse().expect("addr"),
        vec![500, 500, 500, 200],
    )
    .await;
    let (endpoint, secret) = register(
        &app,
        &s.admin,
        &format!("http://{addr}/hook"),
        json!(["incident.created"]),
    )
    .await;
    *r.secret.lock().expect("lock") = secret;
    let reporter = app.user(Role::Reporter).await;
    let incident = report(&app, &reporter, s.category).await;
    let query = format!("endpoint={endpoint}");
    let items = wait_deliveries(&app, &s.admin, &query, |d| {
        d.len() == 1 && d[0]["status"] == "delivered"
    })
    .await;
    let d = &items[0];
    assert_eq!(d["attempts"], 4);
    let log = d["attempt_log"].as_array().expect("log");
    let codes: Vec<i64> = log
        .iter()
        .filter_map(|a| a["status_code"].as_i64())
        .collect();
    assert_eq!(codes, vec![500, 500, 500, 200]);
    let outcomes: Vec<&str> = log.iter().filter_map(|a| a["outcome"].as_str()).collect();
    assert_eq!(outcomes, vec!["retry", "retry", "retry", "delivered"]);
    assert!(log.iter().all(|a| a["latency_ms"].as_i64().is_some()));

    let received = r.seen();
    assert_eq!(received.requests.len(), 4);
    let ids: Vec<&str> = received
        .requests
        .iter()
        .map(|(id, ..)| id.as_str())
        .collect();
    assert!(
        ids.iter()
            .all(|id| *id == d["message_id"].as_str().expect("id")),
        "webhook-id is stable: {ids:?}"
    );
    assert!(
        received.requests.iter().all(|(_, verified, _)| *verified),
        "every attempt is signed"
    );
    let body = &received.requests[3].2;
    assert_eq!(body["type"], "incident.created");
    assert!(body["timestamp"].is_string());
    assert_eq!(body["data"]["code"], incident["code"]);
    assert_eq!(body["data"]["change"]["urgency"], "high");
    let hook = app
        .get(
            &format!("/api/v1/webhooks/{endpoint}"),
            Some(&s.admin.token),
        )
        .await;
    assert_eq!(hook.body["failure_streak"], 0);
    assert_eq!(hook.body["enabled"], true);
}

async fn a_410_gone_disables_the_endpoint(backend: Backend) {
    let Some(app) = spawn_app_with(backend, hook_config).await else {
        return;
    };
    let admin = app.admin().await;
    let (r, addr, _task) = receiver("127.0.0.1:0".parse().expect("addr"), vec![410]).await;
    let (endpoint, secret) =
        register(&app, &admin, &format!("http://{addr}/hook"), json!(["*"])).await;
    *r.secret.lock().expect("lock") = secret;
    let reply = app
        .post(
            &format!("/api/v1/webhooks/{endpoint}/test"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    assert_eq!(reply.body["message_type"], "webhook.test");
    let items = wait_deliveries(&app, &admin, &format!("endpoint={endpoint}"), |d| {
        d.len() == 1 && d[0]["status"] == "dead"
    })
    .await;
    assert_eq!(items[0]["attempts"], 1);
    assert_eq!(items[0]["attempt_log"][0]["status_code"], 410);
    let hook = app
        .get(&format!("/api/v1/webhooks/{endpoint}"), Some(&admin.token))
        .await;
    assert_eq!(hook.body["enabled"], false);
    assert!(
        hook.body["disabled_reason"]
            .as_str()
            .expect("reason")
            .contains("410")
    );
    // Nothing more goes to a disabled endpoint, and a replay is refused until it is enabled.
    let replay = app
        .post(
            &format!("/api/v1/notifications/deliveries/{}/replay", items[0]["id"]),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(replay.status, StatusCode::CONFLICT);
    assert_eq!(r.seen().requests.len(), 1);
    // Re-enabled by an admin: the streak and the reason are cleared and the replay is sent.
    let hook = app
        .patch(
            &format!("/api/v1/webhooks/{endpoint}"),
            Some(&admin.token),
            json!({ "enabled": true }),
        )
        .await;
    assert_eq!(hook.status, StatusCode::OK, "{:?}", hook.body);
    assert_eq!(hook.body["enabled"], true);
    assert_eq!(hook.body["failure_streak"], 0);
    assert!(hook.body["disabled_reason"].is_null());
    let replay = app
        .post(
            &format!("/api/v1/notifications/deliveries/{}/replay", items[0]["id"]),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{:?}", replay.body);
    wait_deliveries(&app, &admin, &format!("endpoint={endpoint}"), |d| {
        d.len() == 1 && d[0]["attempt_log"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    assert_eq!(r.seen().requests.len(), 2);
}

async fn a_dead_lettered_delivery_is_replayed_after_the_endpoint_comes_back(backend: Backend) {
    // No dispatcher: this test drives `plan`, `attempt` and `deliver_with_retries` the way a
    // job queue would.
    let Some(app) = spawn_app_with(backend, |c| {
        hook_config(c);
        c.notifications.dispatcher = false;
        c.webhooks.max_attempts = 3;
    })
    .await
    else {
        return;
    };
    let notifier = vigia_notify::Notifier::new(
        app.db.clone(),
        app.config.notify_config(&app.url).expect("config"),
    )
    .expect("notifier");
    let s = setup(&app).await;
    let port = free_port();
    let (endpoint, secret) = register(
        &app,
        &s.admin,
        &format!("http://127.0.0.1:{port}/hook"),
        json!(["incident.created"]),
    )
    .await;
    let reporter = app.user(Role::Reporter).await;
    report(&app, &reporter, s.category).await;
    let events =
        vigia_store::incidents::events::list_after(&app.db, vigia_domain::ids::EventId(0), 100)
            .await
            .expect("events");
    let created = events
        .iter()
        .find(|e| e.message_type == "incident.created")
        .expect("created event");
    let ids = vigia_notify::plan(&notifier, created).await.expect("plan");
    assert_eq!(ids.len(), 1, "one webhook (e-mail is off)");
    assert_eq!(
        vigia_notify::plan(&notifier, created)
            .await
            .expect("plan again"),
        ids,
        "planning is idempotent"
    );

    // Nobody listens: three attempts, then it is dead.
    let outcome = vigia_notify::deliver_with_retries(&notifier, ids[0])
        .await
        .expect("driver");
    assert!(
        matches!(outcome, vigia_notify::AttemptOutcome::GiveUp(ref reason) if reason.contains("gave up after 3 attempts")),
        "{outcome:?}"
    );
    let dead = deliveries(&app, &s.admin, "status=dead").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempt_log"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        vigia_notify::attempt(&notifier, ids[0])
            .await
            .expect("attempt"),
        outcome,
        "a dead delivery is not sent again"
    );

    // The endpoint comes back; an admin replays the dead letter.
    let (r, _addr, _task) = receiver(SocketAddr::from(([127, 0, 0, 1], port)), vec![200]).await;
    *r.secret.lock().expect("lock") = secret;
    let replay = app
        .post(
            &format!("/api/v1/notifications/deliveries/{}/replay", ids[0]),
            Some(&s.admin.token),
            json!({}),
        )
        .await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{:?}", replay.body);
    assert_eq!(replay.body["status"], "pending");
    let outcome = vigia_notify::deliver_with_retries(&notifier, ids[0])
        .await
        .expect("driver");
    assert_eq!(outcome, vigia_notify::AttemptOutcome::Delivered);
    let received = r.seen();
    assert_eq!(received.requests.len(), 1);
    assert!(received.requests[0].1, "signed with the endpoint's secret");
    assert_eq!(
        received.requests[0].0,
        dead[0]["message_id"].as_str().expect("id"),
        "same webhook-id after replay"
    );
    let one = app
        .get(
            &format!("/api/v1/notifications/deliveries/{}", ids[0]),
            Some(&s.admin.token),
        )
        .await;
    assert_eq!(one.body["status"], "delivered");
    assert_eq!(one.body["attempt_log"].as_array().map(Vec::len), Some(4));
    let hook = app
        .get(
            &format!("/api/v1/webhooks/{endpoint}"),
            Some(&s.admin.token),
        )
        .await;
    assert_eq!(hook.body["failure_streak"], 0);
}

async fn the_ssrf_guard_refuses_loopback_targets_unless_allowed(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.notifications.poll_interval_ms = 50;
        c.webhooks.retry_base_ms = 50;
    })
    .await
    else {
        return;
    };
    let admin = app.admin().await;
    let before = app.snapshot().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "ftp://example.com/",
    ] {
        let reply = app
            .post(
                "/api/v1/webhooks",
                Some(&admin.token),
                json!({ "url": url, "event_types": ["*"] }),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {:?}",
            reply.body
        );
        assert_eq!(reply.error_field(), Some("url"));
    }
    let reply = app
        .post(
            "/api/v1/webhooks",
            Some(&admin.token),
            json!({ "url": "https://hooks.example.com/x", "event_types": ["incident.nope"] }),
        )
        .await;
    assert_eq!(reply.error_field(), Some("event_types[0]"));
    assert_eq!(
        app.snapshot().await,
        before,
        "rejected requests change nothing"
    );

    // A host name is checked when it is resolved: localhost is refused at delivery time.
    let (r, addr, _task) = receiver("127.0.0.1:0".parse().expect("addr"), vec![200]).await;
    let (endpoint, _) = register(
        &app,
        &admin,
        &format!("http://localhost:{}/hook", addr.port()),
        json!(["*"]),
    )
    .await;
    app.post(
        &format!("/api/v1/webhooks/{endpoint}/test"),
        Some(&admin.token),
        json!({}),
    )
    .await;
    let items = wait_deliveries(&app, &admin, &format!("endpoint={endpoint}"), |d| {
        d.len() == 1 && d[0]["status"] == "dead"
    })
    .await;
    let error = items[0]["last_error"].as_str().expect("error");
    assert!(error.contains("refused"), "{error}");
    assert!(
        r.received.lock().expect("lock").requests.is_empty(),
        "nothing reached the loopback receiver"
    );
}

async fn secrets_rotate_with_a_grace_period_and_departments_validate_escalation_contacts(
    backend: Backend,
) {
    let Some(app) = spawn_app_with(backend, hook_config).await else {
        return;
    };
    let admin = app.admin().await;
    let (r, addr, _task) = receiver("127.0.0.1:0".parse().expect("addr"), vec![200]).await;
    let (endpoint, old) =
        register(&app, &admin, &format!("http://{addr}/hook"), json!(["*"])).await;
    let reply = app
        .post(
            &format!("/api/v1/webhooks/{endpoint}/rotate-secret"),
            Some(&admin.token),
            json!({ "grace_hours": 1 }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let new = reply.body["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, old);
    assert_eq!(reply.body["endpoint"]["active_secrets"], 2);
    // A receiver still on the old secret verifies the message during the grace period.
    *r.secret.lock().expect("lock") = old;
    app.post(
        &format!("/api/v1/webhooks/{endpoint}/test"),
        Some(&admin.token),
        json!({}),
    )
    .await;
    wait_deliveries(&app, &admin, &format!("endpoint={endpoint}"), |d| {
        d.len() == 1 && d[0]["status"] == "delivered"
    })
    .await;
    *r.secret.lock().expect("lock") = new;
    app.post(
        &format!("/api/v1/webhooks/{endpoint}/test"),
        Some(&admin.token),
        json!({}),
    )
    .await;
    wait_deliveries(&app, &admin, &format!("endpoint={endpoint}"), |d| {
        d.len() == 2 && d.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    let received = r.seen();
    assert!(
        received
            .requests
            .iter()
            .all(|(_, verified, body)| *verified && body["type"] == "webhook.test")
    );
    let audit = app
        .get("/api/v1/audit?entity=webhook_endpoint", Some(&admin.token))
        .await;
    assert!(
        !audit.body.to_string().contains("whsec_"),
        "secrets never reach the audit log"
    );

    let reply = app
        .post(
            "/api/v1/departments",
            Some(&admin.token),
            json!({ "name": "Seguridad", "escalation_emails": ["jefe@utec.pe", "no-es-correo"] }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_field(), Some("escalation_emails[1]"));
}

macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await
                }
            )+
        }
    };
}

async fn an_sla_breach_mails_the_escalation_contacts_once_per_breach(backend: Backend) {
    let port = free_port();
    let smtp = SmtpServer::start(port).await;
    let Some(app) = spawn_app_with(backend, |c| mail_config(c, port)).await else {
        return;
    };
    let s = setup(&app).await;
    let reporter = app.user(Role::Reporter).await;
    let incident = report(&app, &reporter, s.category).await;
    let code = incident["code"].as_str().expect("code").to_owned();
    let before = smtp.wait_for(3).await.len();
    // A month later nobody acknowledged or resolved it: both targets are breached.
    let later = vigia_domain::Timestamp::now().plus_seconds(30 * 86_400);
    let escalated = vigia_store::incidents::escalation::escalate_breaches(&app.db, later, 500)
        .await
        .expect("escalate");
    assert!(!escalated.is_empty(), "the breach is escalated");
    let expected = before + escalated.len();
    let messages = smtp.wait_for(expected).await;
    let to_boss: Vec<&Value> = messages
        .iter()
        .filter(|m| to(m) == "jefatura@utec.pe")
        .collect();
    assert_eq!(to_boss.len(), escalated.len(), "{messages:#?}");
    assert!(
        to_boss
            .iter()
            .all(|m| m["subject"].as_str().expect("subject").contains(&code)),
        "{to_boss:#?}"
    );
    // The next sweep finds nothing new, so nobody is mailed twice.
    let again = vigia_store::incidents::escalation::escalate_breaches(&app.db, later, 500)
        .await
        .expect("escalate again");
    assert!(again.is_empty());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        smtp.messages().len(),
        expected,
        "no second e-mail for the same breach"
    );
}

/// A test CA and a certificate it signed for `localhost`, made with the `openssl` command:
/// `(dir, ca.pem, server.pem, server.key)`.
fn test_certificates() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name);
    std::fs::write(
        path("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl (Debian package openssl)");
        assert!(status.success(), "openssl {args:?} failed");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Vigia Test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let (ca, cert, key) = (path("ca.pem"), path("server.pem"), path("server.key"));
    (dir, ca, cert, key)
}

async fn mail_goes_over_starttls_to_a_relay_that_requires_a_login(backend: Backend) {
    secure_mail(backend, "starttls").await;
}

async fn mail_goes_over_implicit_tls_to_a_relay_that_requires_a_login(backend: Backend) {
    secure_mail(backend, "tls").await;
}

/// Mail through a relay that speaks TLS (`mode`: `starttls` or `tls`), presents a certificate
/// from a private CA and requires a login.
async fn secure_mail(backend: Backend, mode: &'static str) {
    let (_certs, ca, cert, key) = test_certificates();
    let port = free_port();
    let tls_kind = if mode == "tls" {
        "implicit"
    } else {
        "starttls"
    };
    let smtp = SmtpServer::start_with(
        port,
        &[
            cert.to_str().expect("path"),
            key.to_str().expect("path"),
            "vigia",
            "s3creto-smtp",
            tls_kind,
        ],
    )
    .await;
    let Some(app) = spawn_app_with(backend, |c| {
        mail_config(c, port);
        c.email.smtp_host = "localhost".into();
        c.email.smtp_mode = mode.into();
        c.email.smtp_user = "vigia".into();
        c.email.smtp_password = "s3creto-smtp".into();
        c.email.smtp_ca_file = ca.to_string_lossy().into_owned();
    })
    .await
    else {
        return;
    };
    let s = setup(&app).await;
    let reporter = app.user(Role::Reporter).await;
    report(&app, &reporter, s.category).await;
    let messages = smtp.wait_for(3).await;
    for message in &messages {
        assert_eq!(message["tls"], true, "sent over TLS ({mode}): {message:#?}");
        assert_eq!(
            message["authenticated"], true,
            "sent after AUTH: {message:#?}"
        );
    }
}

async fn the_scheduled_global_report_is_mailed_to_its_recipients(backend: Backend) {
    let port = free_port();
    let smtp = SmtpServer::start(port).await;
    let Some(app) = spawn_app_with(backend, |c| {
        mail_config(c, port);
        c.email.report_recipients = vec!["direccion@utec.pe".into()];
    })
    .await
    else {
        return;
    };
    // What the `report_global` schedule enqueues, run by a worker with the application's
    // handlers; the application's dispatcher sends the e-mail it plans.
    let worker = vigia_jobs::Worker::new(
        app.db.clone(),
        Arc::new(crate::jobs::registry(&app, &app.config)),
        vigia::jobs::worker_config(&app.config),
        vigia_jobs::JobMetrics::new(),
    );
    let now = vigia_domain::Timestamp::now();
    let job = vigia_store::jobs::NewJob::new("report.global", json!({}));
    vigia_store::jobs::enqueue(&app.db, &job, now)
        .await
        .expect("enqueue");
    worker.drain(now, 100).await.expect("drain");
    let messages = smtp.wait_for(1).await;
    assert_eq!(to(&messages[0]), "direccion@utec.pe", "{messages:#?}");
    let text = messages[0]["text"].as_str().expect("text");
    assert!(
        text.contains("https://vigia.utec.pe/api/v1/reports/")
            && text.contains("download?format=json"),
        "the e-mail links the report: {text}"
    );
}

on_both_backends!(
    urgent_incidents_mail_the_guard_and_the_department_in_each_readers_language,
    the_scheduled_global_report_is_mailed_to_its_recipients,
    mail_goes_over_starttls_to_a_relay_that_requires_a_login,
    mail_goes_over_implicit_tls_to_a_relay_that_requires_a_login,
    an_sla_breach_mails_the_escalation_contacts_once_per_breach,
    mail_waits_for_a_smtp_server_that_is_down_and_arrives_when_it_is_back,
    a_webhook_failing_three_times_is_delivered_once_on_the_fourth_attempt,
    a_410_gone_disables_the_endpoint,
    a_dead_lettered_delivery_is_replayed_after_the_endpoint_comes_back,
    the_ssrf_guard_refuses_loopback_targets_unless_allowed,
    secrets_rotate_with_a_grace_period_and_departments_validate_escalation_contacts,
);
