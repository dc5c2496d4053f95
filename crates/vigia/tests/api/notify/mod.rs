//! Notifications end to end: e-mail through a real SMTP server process (Python's aiosmtpd)
//! in `mail`, webhooks to a real HTTP receiver on loopback that verifies Standard Webhooks
//! signatures, retries, dead letters, replay, endpoint disabling and the SSRF guard in
//! `webhooks`. This module holds what both use: the SMTP server, the configurations and a
//! campus.

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
    config.http.public_url = "https://vigia.utec.pe".into();
    // One by one, however many: the digest has its own test (`digest.rs`).
    config.email.digest_after_per_minute = 0;
    queue_config(config);
}

/// Runs the job queue in the test app — every notification is planned and sent by its jobs —
/// polling fast, with no schedules (they would change incidents on their own).
pub(crate) fn queue_config(config: &mut Config) {
    config.jobs.enabled = true;
    config.jobs.poll_interval_ms = 20;
    config.jobs.relay_interval_ms = 20;
    config.jobs.backoff_base_ms = 50;
    config.jobs.backoff_max_secs = 1;
    config.schedules.clear();
}

pub(crate) fn hook_config(config: &mut Config) {
    config.webhooks.allow_private_targets = true;
    config.webhooks.timeout_secs = 5;
    config.webhooks.retry_base_ms = 50;
    config.webhooks.retry_max_secs = 1;
    config.webhooks.max_attempts = 6;
    queue_config(config);
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

macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::helpers::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::helpers::Backend::Postgres).await
                }
            )+
        }
    };
}

mod mail;
pub(crate) mod webhooks;

pub(crate) use webhooks::{receiver, register};
