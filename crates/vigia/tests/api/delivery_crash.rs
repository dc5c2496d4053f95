//! Nothing acknowledged is lost, for notifications too: the real binary is killed (`kill -9`)
//! while a webhook delivery is in flight, and after a restart the message arrives, with exactly
//! the effects expected — the same `webhook-id` again, one logged attempt, one delivery.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use vigia_store::jobs::{self, JobState};
use vigia_store::notifications::{self, DeliveryFilter, DeliveryStatus};
use vigia_store::{Db, DbOptions};

const BIN: &str = env!("CARGO_BIN_EXE_vigia");

/// A receiver that holds its first request forever (the sender dies waiting) and answers the
/// others 200; it records each request's `webhook-id`.
#[derive(Clone, Default)]
struct Hanging {
    count: Arc<AtomicUsize>,
    ids: Arc<Mutex<Vec<String>>>,
}

async fn hook(State(h): State<Hanging>, headers: HeaderMap) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    h.ids.lock().expect("lock").push(id);
    if h.count.fetch_add(1, Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    StatusCode::OK
}

fn serve(dir: &std::path::Path, url: &str, port: u16, demo: bool) -> Child {
    let mut command = Command::new(BIN);
    command
        .arg("--data-dir")
        .arg(dir)
        .arg("--database-url")
        .arg(url)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir)
        .env("VIGIA_LOG__LEVEL", "warn")
        .env("VIGIA_AUTH__JWT_SECRET", crate::helpers::JWT_SECRET)
        .env("VIGIA_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")
        .env("VIGIA_WEBHOOKS__TIMEOUT_SECS", "120")
        .env("VIGIA_JOBS__POLL_INTERVAL_MS", "50")
        .env("VIGIA_JOBS__RELAY_INTERVAL_MS", "50")
        .env("VIGIA_JOBS__LEASE_SECS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if demo {
        command.arg("--demo");
    }
    command.spawn().expect("spawn vigia serve")
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn login(client: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let reply: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    reply["access_token"].as_str().expect("token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_in_flight_when_the_process_is_killed_is_delivered_once_more_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("vigia.db").display());
    let receiver = Hanging::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook_addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let port = crate::cli::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = serve(dir.path(), &url, port, true);
    crate::cli::wait_ready(port);
    let client = reqwest::Client::new();
    let admin = login(&client, &base, "admin@demo.vigia.local", "faro-norte-2026").await;
    let reporter = login(
        &client,
        &base,
        "reporter@demo.vigia.local",
        "faro-este-2026",
    )
    .await;
    let endpoint = client
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(&admin)
        .json(&json!({ "url": format!("http://{hook_addr}/hook"), "event_types": ["incident.created"] }))
        .send()
        .await
        .expect("register");
    assert_eq!(endpoint.status(), reqwest::StatusCode::CREATED);
    let created = client
        .post(format!("{base}/api/v1/incidents"))
        .bearer_auth(&reporter)
        .json(&json!({ "category_id": 1, "title": "Tubería rota en el baño", "description": "Sale agua sin parar." }))
        .send()
        .await
        .expect("report");
    assert_eq!(
        created.status(),
        reqwest::StatusCode::CREATED,
        "the incident is acknowledged"
    );

    // The message is on the wire, unanswered: the process dies.
    wait_for(
        "the first delivery attempt to reach the receiver",
        async || receiver.count.load(Ordering::SeqCst) >= 1,
    )
    .await;
    first.kill().expect("kill -9");
    first.wait().expect("reaped");

    let db = Db::connect(&url, &DbOptions::default())
        .await
        .expect("connect");
    let all = DeliveryFilter::default();
    let log = notifications::list(&db, &all, None, 10)
        .await
        .expect("deliveries");
    assert_eq!(log.items.len(), 1, "{:?}", log.items);
    let delivery = log.items[0].clone();
    assert_eq!(
        (delivery.status, delivery.attempts),
        (DeliveryStatus::Pending, 0),
        "killed before the attempt was logged"
    );
    let attempt_jobs = async || {
        jobs::list(
            &db,
            &jobs::JobFilter {
                state: None,
                kind: Some("notification.deliver".into()),
            },
            None,
            10,
        )
        .await
        .expect("jobs")
        .items
    };
    let held = attempt_jobs().await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].state, JobState::Running, "its job was in flight");

    // After a restart the job's lease expires and the attempt is made again.
    let mut second = serve(dir.path(), &url, port, false);
    // The delivery is logged first, its job finished in a later step: wait
    // for both before the second process goes away.
    wait_for("the delivery after the restart", async || {
        notifications::find(&db, delivery.id)
            .await
            .expect("delivery")
            .status
            == DeliveryStatus::Delivered
            && attempt_jobs()
                .await
                .iter()
                .all(|job| job.state == JobState::Succeeded)
    })
    .await;
    second.kill().expect("kill");
    second.wait().expect("reaped");

    let ids = receiver.ids.lock().expect("lock").clone();
    assert_eq!(
        ids.len(),
        2,
        "sent once before the kill and once after: {ids:?}"
    );
    assert!(
        ids.iter().all(|id| *id == delivery.message_id),
        "the same webhook-id both times, so the receiver can tell: {ids:?}"
    );
    let done = notifications::find(&db, delivery.id)
        .await
        .expect("delivery");
    assert_eq!(done.attempts, 1, "one logged attempt");
    let attempts = notifications::attempts_of(&db, &[delivery.id])
        .await
        .expect("attempts");
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(
        (attempts[0].outcome.as_str(), attempts[0].status_code),
        ("delivered", Some(200))
    );
    let jobs_after = attempt_jobs().await;
    assert_eq!(jobs_after.len(), 1, "no other attempt was queued");
    assert_eq!(
        (jobs_after[0].state, jobs_after[0].attempts),
        (JobState::Succeeded, 2)
    );
    assert_eq!(
        notifications::list(&db, &all, None, 10)
            .await
            .expect("deliveries")
            .items
            .len(),
        1,
        "one delivery"
    );
    db.close().await;
}
