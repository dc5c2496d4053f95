//! Webhooks: Standard Webhooks signatures, retries, 410 Gone, dead letters and replay, the SSRF
//! guard and secret rotation.

use super::*;

// --- webhooks ------------------------------------------------------------------------------------

/// What the receiver saw.
#[derive(Default, Clone)]
pub(crate) struct Received {
    /// (webhook-id, verified, body) per request.
    pub(crate) requests: Vec<(String, bool, Value)>,
}

#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) secret: Arc<Mutex<String>>,
    /// The status to answer for each request in turn; the last one repeats.
    script: Arc<Vec<u16>>,
    received: Arc<Mutex<Received>>,
}

impl Receiver {
    pub(crate) fn seen(&self) -> Received {
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
pub(crate) async fn receiver(
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

pub(crate) async fn register(
    app: &TestApp,
    admin: &TestUser,
    url: &str,
    types: Value,
) -> (i64, String) {
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
    // No background work: this test drains the queue by hand, at times it chooses.
    let Some(app) = spawn_app_with(backend, |c| {
        hook_config(c);
        c.jobs.enabled = false;
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
    let worker = crate::jobs::worker(&app);
    // Each drain runs what is due a minute later than the last: the retries' time has come.
    let mut clock = vigia_domain::Timestamp::now();
    let mut drain = async || {
        clock = clock.plus_seconds(60);
        worker.drain(clock, 100).await.expect("drain")
    };
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

    // Nobody listens: three attempts, each a job of its own, then it is dead.
    for _ in 0..6 {
        drain().await;
    }
    let dead = deliveries(&app, &s.admin, "status=dead").await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let id = dead[0]["id"].as_i64().expect("id");
    assert_eq!(dead[0]["attempt_log"].as_array().map(Vec::len), Some(3));
    assert!(
        dead[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("gave up after 3 attempts")),
        "{dead:#?}"
    );
    let attempts = crate::jobs::jobs_of(&app.db, "notification.deliver").await;
    let mut numbers: Vec<i64> = attempts
        .iter()
        .map(|j| j.payload["attempt"].as_i64().expect("attempt"))
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3], "one job per attempt");
    assert!(
        attempts
            .iter()
            .all(|j| j.state == vigia_store::jobs::JobState::Succeeded)
    );

    // Planning again changes nothing; a dead delivery is not sent again.
    let events =
        vigia_store::incidents::events::list_after(&app.db, vigia_domain::ids::EventId(0), 100)
            .await
            .expect("events");
    let created = events
        .iter()
        .find(|e| e.message_type == "incident.created")
        .expect("created event");
    assert_eq!(
        vigia_notify::plan(&notifier, created)
            .await
            .expect("plan again"),
        vec![id],
        "planning is idempotent"
    );
    assert_eq!(
        vigia_notify::attempt(&notifier, id, 4)
            .await
            .expect("attempt"),
        vigia_notify::AttemptOutcome::AlreadyDone
    );
    assert_eq!(drain().await, 0, "no job was added");

    // The endpoint comes back; an admin replays the dead letter.
    let (r, _addr, _task) = receiver(SocketAddr::from(([127, 0, 0, 1], port)), vec![200]).await;
    *r.secret.lock().expect("lock") = secret;
    let replay = app
        .post(
            &format!("/api/v1/notifications/deliveries/{id}/replay"),
            Some(&s.admin.token),
            json!({}),
        )
        .await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{:?}", replay.body);
    assert_eq!(replay.body["status"], "pending");
    // While its attempt is queued, a second replay is refused.
    let again = app
        .post(
            &format!("/api/v1/notifications/deliveries/{id}/replay"),
            Some(&s.admin.token),
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
    assert_eq!(drain().await, 1);
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
            &format!("/api/v1/notifications/deliveries/{id}"),
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
        queue_config(c);
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

on_both_backends!(
    a_webhook_failing_three_times_is_delivered_once_on_the_fourth_attempt,
    a_410_gone_disables_the_endpoint,
    a_dead_lettered_delivery_is_replayed_after_the_endpoint_comes_back,
    the_ssrf_guard_refuses_loopback_targets_unless_allowed,
    secrets_rotate_with_a_grace_period_and_departments_validate_escalation_contacts,
);
