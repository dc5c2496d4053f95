//! Devices, subjects, detections, alert rules, alerts and silences (issue 19), end to end.

use reqwest::StatusCode;
use serde_json::{Value, json};
use vigia_domain::Timestamp;

use crate::backend_tests;
use crate::helpers::{TestApp, TestUser};

/// An admin, a department, a subject with consent (`EMP001`), one without (`EMP002`) and a
/// device with its key.
pub struct Plant {
    pub admin: TestUser,
    pub department: i64,
    pub subject: i64,
    pub unconsented: i64,
    pub device: i64,
    pub device_code: String,
    pub key: String,
}

pub async fn plant(app: &TestApp) -> Plant {
    let admin = app.admin().await;
    let department = app.department(&admin, "Producción").await;
    let consented = subject(app, &admin, "EMP001", department, true).await;
    let unconsented = subject(app, &admin, "EMP002", department, false).await;
    let (device, key) = device(app, &admin, "cam-01").await;
    Plant {
        admin,
        department,
        subject: consented,
        unconsented,
        device,
        device_code: "cam-01".into(),
        key,
    }
}

pub async fn subject(
    app: &TestApp,
    admin: &TestUser,
    code: &str,
    department: i64,
    consent: bool,
) -> i64 {
    let reply = app
        .post("/api/v1/subjects", Some(&admin.token), json!({
            "code": code, "name": format!("Persona {code}"), "department_id": department, "consent": consent
        }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["id"].as_i64().expect("subject id")
}

pub async fn device(app: &TestApp, admin: &TestUser, code: &str) -> (i64, String) {
    let reply = app
        .post(
            "/api/v1/devices",
            Some(&admin.token),
            json!({ "code": code, "name": "Cámara línea 1" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let key = reply.body["key"]
        .as_str()
        .expect("key shown once")
        .to_owned();
    (reply.body["device"]["id"].as_i64().expect("device id"), key)
}

/// A detection `seconds` after `base` (ms).
pub fn detection(
    client_id: &str,
    subject: &str,
    label: &str,
    confidence: f64,
    at_ms: i64,
) -> Value {
    json!({
        "client_id": client_id, "subject": subject, "label": label, "confidence": confidence,
        "timestamp": Timestamp::from_millis(at_ms).to_rfc3339(),
    })
}

/// `n` stress detections of `subject` one second apart, ending now.
pub fn stress_run(prefix: &str, subject: &str, n: i64, confidence: f64) -> Vec<Value> {
    let now = Timestamp::now().millis();
    (0..n)
        .map(|i| {
            detection(
                &format!("{prefix}-{i}"),
                subject,
                "stress",
                confidence,
                now - (n - i) * 1000,
            )
        })
        .collect()
}

async fn batch(app: &TestApp, key: &str, items: Vec<Value>) -> crate::helpers::Reply {
    app.post(
        "/api/v1/detections/batch",
        Some(key),
        json!({ "detections": items }),
    )
    .await
}

backend_tests! {
    async fn a_batch_stores_the_valid_detections_and_names_each_bad_one(app: TestApp) {
        let p = plant(&app).await;
        let now = Timestamp::now().millis();
        let mut wrong_device = detection("x-7", "EMP001", "happy", 0.5, now);
        wrong_device["device"] = json!("cam-99");
        let items = vec![
            detection("x-0", "EMP001", "happy", 0.9, now),
            detection("x-1", "NOBODY", "happy", 0.9, now),
            detection("x-2", "EMP002", "happy", 0.9, now),
            detection("x-3", "EMP001", "happy", 1.5, now),
            detection("x-4", "EMP001", "happy", 0.5, now + 3_600_000),
            detection("x-5", "EMP001", "bored", 0.5, now),
            json!({ "client_id": "x-6", "subject": "EMP001" }),
            wrong_device,
            detection("x-8", "EMP001", "neutral", 0.0, now - 60_000),
        ];
        let reply = batch(&app, &p.key, items).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let b = &reply.body;
        assert_eq!((b["accepted"].as_i64(), b["refused"].as_i64(), b["invalid"].as_i64()), (Some(2), Some(1), Some(6)), "{b}");
        let items = b["items"].as_array().expect("items");
        let find = |index: i64| items.iter().find(|i| i["index"] == index).cloned().expect("listed");
        assert_eq!(find(1)["errors"][0]["field"], "subject");
        assert_eq!(find(2)["status"], "refused");
        assert_eq!(find(3)["errors"][0]["field"], "confidence");
        assert_eq!(find(4)["errors"][0]["field"], "timestamp");
        assert_eq!(find(5)["errors"][0]["field"], "label");
        assert_eq!(find(6)["status"], "invalid");
        assert_eq!(find(7)["errors"][0]["field"], "device");
        assert!(items.iter().all(|i| i["index"] != 0 && i["index"] != 8), "accepted ones are not listed");

        let subject = app.get(&format!("/api/v1/subjects/{}", p.unconsented), Some(&p.admin.token)).await;
        assert_eq!(subject.body["refused"], 1, "the refusal is counted on the subject");
        let device = app.get(&format!("/api/v1/devices/{}", p.device), Some(&p.admin.token)).await;
        assert_eq!(device.body["refused"], 1, "and on the device");
        assert!(device.body["last_seen_at"].is_string());
        let overview = app.get("/api/v1/detections/overview", Some(&p.admin.token)).await;
        assert_eq!(overview.body["detections_last_hour"], 2, "{:?}", overview.body);
    }

    async fn the_same_batch_sent_twice_is_counted_once(app: TestApp) {
        let p = plant(&app).await;
        let items = stress_run("dup", "EMP001", 5, 0.3);
        let first = batch(&app, &p.key, items.clone()).await;
        assert_eq!(first.body["accepted"], 5, "{:?}", first.body);
        let second = batch(&app, &p.key, items).await;
        assert_eq!(second.status, StatusCode::OK);
        assert_eq!((second.body["accepted"].as_i64(), second.body["duplicates"].as_i64()), (Some(0), Some(5)));
        let overview = app.get("/api/v1/detections/overview", Some(&p.admin.token)).await;
        assert_eq!(overview.body["detections_last_hour"], 5, "rollups count each detection once");
        let single = app.post("/api/v1/detections", Some(&p.key), stress_run("dup", "EMP001", 1, 0.3)[0].clone()).await;
        assert_eq!(single.status, StatusCode::OK);
        assert_eq!(single.body["status"], "duplicate");
    }

    async fn single_detections_answer_201_or_a_problem_naming_the_field(app: TestApp) {
        let p = plant(&app).await;
        let now = Timestamp::now().millis();
        let ok = app.post("/api/v1/detections", Some(&p.key), detection("s-1", "EMP001", "sad", 0.7, now)).await;
        assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);
        assert!(ok.body["id"].as_i64().is_some());
        for (body, field) in [
            (detection("s-2", "EMP001", "sad", -0.1, now), "confidence"),
            (detection("s-3", "EMP001", "meh", 0.5, now), "label"),
            (detection("s-4", "EMP001", "sad", 0.5, now + 120_000), "timestamp"),
            (detection("s-5", "GHOST", "sad", 0.5, now), "subject"),
            (detection("s-6", "EMP002", "sad", 0.5, now), "subject"),
        ] {
            let reply = app.post("/api/v1/detections", Some(&p.key), body).await;
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {:?}", reply.body);
            assert!(reply.is_problem());
            assert_eq!(reply.error_field(), Some(field));
        }
        let people = app.post("/api/v1/detections", Some(&p.admin.token), detection("s-7", "EMP001", "sad", 0.5, now)).await;
        assert_eq!(people.status, StatusCode::FORBIDDEN, "detections come from devices");
    }

    async fn a_revoked_device_key_gets_401(app: TestApp) {
        let p = plant(&app).await;
        let device = app.get(&format!("/api/v1/devices/{}", p.device), Some(&p.admin.token)).await;
        let key_id = device.body["api_key_id"].as_i64().expect("key id");
        let revoked = app.delete(&format!("/api/v1/api-keys/{key_id}"), Some(&p.admin.token)).await;
        assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
        let reply = batch(&app, &p.key, stress_run("r", "EMP001", 1, 0.5)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
        let heartbeat = app.post("/api/v1/devices/heartbeat", Some(&p.key), json!({})).await;
        assert_eq!(heartbeat.status, StatusCode::UNAUTHORIZED);
    }

    async fn withdrawing_consent_stops_ingestion_at_once(app: TestApp) {
        let p = plant(&app).await;
        let before = batch(&app, &p.key, stress_run("c1", "EMP001", 2, 0.5)).await;
        assert_eq!(before.body["accepted"], 2);
        let withdrawn = app.delete(&format!("/api/v1/subjects/{}/consent", p.subject), Some(&p.admin.token)).await;
        assert_eq!(withdrawn.status, StatusCode::OK);
        assert_eq!(withdrawn.body["consent"], false);
        let after = batch(&app, &p.key, stress_run("c2", "EMP001", 3, 0.5)).await;
        assert_eq!((after.body["accepted"].as_i64(), after.body["refused"].as_i64()), (Some(0), Some(3)), "{:?}", after.body);
        let audit = app.get(&format!("/api/v1/audit?entity=subject&entity_id={}", p.subject), Some(&p.admin.token)).await;
        assert_eq!(audit.body["items"][0]["action"], "subject.consent_withdrawn", "{:?}", audit.body);
    }

    async fn nine_stress_detections_raise_nothing_the_tenth_raises_one_alert_handled_to_resolution(app: TestApp) {
        let p = plant(&app).await;
        let run = stress_run("a", "EMP001", 10, 0.9);
        let nine = batch(&app, &p.key, run[..9].to_vec()).await;
        assert_eq!(nine.body["alerts_raised"], 0, "{:?}", nine.body);
        let tenth = batch(&app, &p.key, run[9..].to_vec()).await;
        assert_eq!(tenth.body["alerts_raised"], 1, "{:?}", tenth.body);
        let more = batch(&app, &p.key, stress_run("b", "EMP001", 3, 0.9)).await;
        assert_eq!(more.body["alerts_raised"], 0, "the cooldown holds the next one back");

        let staff = app.staff_in(&p.admin, p.department).await;
        let list = app.get("/api/v1/alerts?status=pending", Some(&staff.token)).await;
        assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
        let alerts = list.body["items"].as_array().expect("items");
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["severity"], "high");
        assert_eq!(alerts[0]["detection_count"], 10);
        let id = alerts[0]["id"].as_i64().expect("id");
        let overview = app.get("/api/v1/detections/overview", Some(&staff.token)).await;
        assert_eq!(overview.body["pending_alerts"]["high"], 1);

        let ack = app.post(&format!("/api/v1/alerts/{id}/acknowledge"), Some(&staff.token), json!({ "notes": "hablé con la persona" })).await;
        assert_eq!(ack.status, StatusCode::OK, "{:?}", ack.body);
        assert_eq!(ack.body["status"], "acknowledged");
        let again = app.post(&format!("/api/v1/alerts/{id}/acknowledge"), Some(&staff.token), json!({})).await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        let resolved = app.post(&format!("/api/v1/alerts/{id}/resolve"), Some(&staff.token), json!({ "notes": "pausa activa" })).await;
        assert_eq!(resolved.body["status"], "resolved");
        let history: Vec<&str> = resolved.body["history"].as_array().expect("history").iter()
            .map(|h| h["action"].as_str().unwrap_or_default()).collect();
        assert_eq!(history, ["raised", "acknowledged", "resolved"]);
        assert_eq!(resolved.body["history"][1]["notes"], "hablé con la persona");
        assert_eq!(resolved.body["acknowledged_by"], format!("user:{}", staff.id));

        let filtered = app.get("/api/v1/alerts?status=pending", Some(&staff.token)).await;
        assert_eq!(filtered.body["items"].as_array().map(Vec::len), Some(0));
        let bad = app.get("/api/v1/alerts?status=closed", Some(&staff.token)).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn a_silence_on_the_subject_keeps_the_alert_from_being_raised_and_counts_it(app: TestApp) {
        let p = plant(&app).await;
        let staff = app.staff_in(&p.admin, p.department).await;
        let now = Timestamp::now();
        let silence = app.post("/api/v1/silences", Some(&staff.token), json!({
            "subject_id": p.subject, "starts_at": Timestamp::from_millis(now.millis() - 60_000).to_rfc3339(),
            "ends_at": now.plus_seconds(3600).to_rfc3339(), "reason": "simulacro de evacuación"
        })).await;
        assert_eq!(silence.status, StatusCode::CREATED, "{:?}", silence.body);
        let reply = batch(&app, &p.key, stress_run("q", "EMP001", 10, 0.9)).await;
        assert_eq!(reply.body["accepted"], 10);
        assert_eq!(reply.body["alerts_raised"], 0, "muted");
        let listed = app.get("/api/v1/silences", Some(&staff.token)).await;
        assert_eq!(listed.body[0]["suppressed"], 1, "{:?}", listed.body);
        assert_eq!(listed.body[0]["kind"], "subject");

        let id = silence.body["id"].as_i64().expect("id");
        let ended = app.delete(&format!("/api/v1/silences/{id}"), Some(&staff.token)).await;
        assert_eq!(ended.status, StatusCode::OK);
        let next = batch(&app, &p.key, vec![detection("q-x", "EMP001", "stress", 0.9, Timestamp::now().millis())]).await;
        assert_eq!(next.body["alerts_raised"], 1, "once the silence is over the rule raises: {:?}", next.body);
    }

    async fn bad_silences_and_rules_are_422_and_change_nothing(app: TestApp) {
        let p = plant(&app).await;
        // A device key's `last_used_at` moves on every authenticated call, refused or not.
        let state = || async { app.snapshot().await.into_iter().filter(|t| t.table != "api_keys").collect::<Vec<_>>() };
        let before = state().await;
        let now = Timestamp::now();
        for body in [
            json!({ "subject_id": p.subject, "device_id": p.device, "ends_at": now.plus_seconds(60).to_rfc3339(), "reason": "x" }),
            json!({ "subject_id": p.subject, "starts_at": now.to_rfc3339(), "ends_at": now.to_rfc3339(), "reason": "x" }),
            json!({ "subject_id": p.subject, "ends_at": now.plus_seconds(60).to_rfc3339(), "reason": " " }),
        ] {
            let reply = app.post("/api/v1/silences", Some(&p.admin.token), body).await;
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", reply.body);
        }
        let rule = app.post("/api/v1/alert-rules", Some(&p.admin.token), json!({
            "name": "x", "labels": ["stress", "bored"], "min_count": 0, "window_secs": 900,
            "confidence_floor": 1.2, "cooldown_secs": 60, "open_incident": true
        })).await;
        assert_eq!(rule.status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<&str> = rule.body["errors"].as_array().expect("errors").iter()
            .map(|e| e["field"].as_str().unwrap_or_default()).collect();
        assert_eq!(fields, ["labels[1]", "min_count", "confidence_floor", "incident_category_id"]);
        let device = app.post("/api/v1/devices", Some(&p.admin.token), json!({ "code": "a/b", "name": "x" })).await;
        assert_eq!(device.error_field(), Some("code"));
        let huge: Vec<Value> = (0..10_001).map(|i| detection(&format!("h{i}"), "EMP001", "happy", 0.5, 0)).collect();
        let too_many = batch(&app, &p.key, huge).await;
        assert_eq!(too_many.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", too_many.body);
        assert_eq!(too_many.error_field(), Some("detections"));
        assert_eq!(state().await, before);
    }

    async fn a_high_alert_of_a_rule_that_says_so_opens_an_incident_linked_both_ways(app: TestApp) {
        let p = plant(&app).await;
        let category = app.post("/api/v1/categories", Some(&p.admin.token), json!({
            "name_es": "Bienestar", "default_department_id": p.department, "default_urgency": "medium"
        })).await;
        let category = category.body["id"].as_i64().expect("category");
        let rules = app.get("/api/v1/alert-rules", Some(&p.admin.token)).await;
        let seed = rules.body[0].clone();
        assert_eq!(seed["min_count"], 10, "the seed's rule is the default: {seed}");
        let id = seed["id"].as_i64().expect("id");
        let updated = app.put(&format!("/api/v1/alert-rules/{id}"), Some(&p.admin.token), json!({
            "name": seed["name"], "labels": ["stress", "sad"], "min_count": 10, "window_secs": 900,
            "confidence_floor": 0.5, "cooldown_secs": 3600, "open_incident": true, "incident_category_id": category
        })).await;
        assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
        let reply = batch(&app, &p.key, stress_run("i", "EMP001", 10, 0.95)).await;
        assert_eq!(reply.body["alerts_raised"], 1);
        let alerts = app.get("/api/v1/alerts", Some(&p.admin.token)).await;
        let incident = alerts.body["items"][0]["incident_id"].as_i64().expect("an incident was opened");
        let opened = app.get(&format!("/api/v1/incidents/{incident}"), Some(&p.admin.token)).await;
        assert_eq!(opened.body["source"], "rule", "{:?}", opened.body);
        assert_eq!(opened.body["department_id"], p.department);
        let alert_id = alerts.body["items"][0]["id"].as_i64().expect("alert id");
        let linked: Option<i64> = stored_alert_of(&app, incident).await;
        assert_eq!(linked, Some(alert_id), "the incident points back at its alert");
    }

    async fn staff_see_only_their_departments_alerts_and_dashboard(app: TestApp) {
        let p = plant(&app).await;
        let other = app.department(&p.admin, "Logística").await;
        subject(&app, &p.admin, "EMP900", other, true).await;
        batch(&app, &p.key, stress_run("d1", "EMP001", 10, 0.9)).await;
        batch(&app, &p.key, stress_run("d2", "EMP900", 4, 0.9)).await;
        let outsider = app.staff_in(&p.admin, other).await;
        let overview = app.get("/api/v1/detections/overview", Some(&outsider.token)).await;
        assert_eq!(overview.status, StatusCode::OK);
        assert_eq!(overview.body["detections_last_hour"], 4, "{:?}", overview.body);
        assert_eq!(overview.body["pending_alerts"]["high"], 0);
        let alerts = app.get("/api/v1/alerts", Some(&outsider.token)).await;
        assert_eq!(alerts.body["items"].as_array().map(Vec::len), Some(0));
        let stats = app.get("/api/v1/detections/stats", Some(&p.admin.token)).await;
        assert_eq!(stats.status, StatusCode::OK, "{:?}", stats.body);
        let stress: i64 = stats.body["labels"].as_array().expect("labels").iter()
            .filter(|l| l["label"] == "stress").map(|l| l["count"].as_i64().unwrap_or(0)).sum();
        assert_eq!(stress, 14);
        assert_eq!(stats.body["top_subjects"][0]["stress_share"], 1.0);
        let reporter = app.user(vigia_domain::users::Role::Reporter).await;
        let denied = app.get("/api/v1/detections/overview", Some(&reporter.token)).await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
    }

    async fn an_admin_exports_and_erases_a_subject_leaving_only_anonymous_counts(app: TestApp) {
        let p = plant(&app).await;
        batch(&app, &p.key, stress_run("e", "EMP001", 10, 0.9)).await;
        let export = app.get(&format!("/api/v1/subjects/{}/export", p.subject), Some(&p.admin.token)).await;
        assert_eq!(export.status, StatusCode::OK, "{:?}", export.body);
        assert_eq!(export.body["detections"].as_array().map(Vec::len), Some(10));
        assert_eq!(export.body["alerts"].as_array().map(Vec::len), Some(1));
        let erased = app.delete(&format!("/api/v1/subjects/{}", p.subject), Some(&p.admin.token)).await;
        assert_eq!(erased.status, StatusCode::OK, "{:?}", erased.body);
        assert_eq!(erased.body["detections_erased"], 10);
        let gone = app.get(&format!("/api/v1/subjects/{}", p.subject), Some(&p.admin.token)).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        let overview = app.get("/api/v1/detections/overview", Some(&p.admin.token)).await;
        assert_eq!(overview.body["detections_last_hour"], 10, "counts stay, anonymous");
        assert_eq!(overview.body["subjects_detected_last_hour"], 0);
        let stats = app.get("/api/v1/detections/stats", Some(&p.admin.token)).await;
        assert_eq!(stats.body["top_subjects"].as_array().map(Vec::len), Some(0));
        let audit = app.get(&format!("/api/v1/audit?entity=subject&entity_id={}", p.subject), Some(&p.admin.token)).await;
        let actions: Vec<&str> = audit.body["items"].as_array().expect("items").iter()
            .map(|i| i["action"].as_str().unwrap_or_default()).collect();
        assert_eq!(&actions[..2], ["subject.erased", "subject.exported"]);
    }

    async fn sessions_mark_detections_inside_them_and_heartbeats_record_the_firmware(app: TestApp) {
        let p = plant(&app).await;
        let staff = app.staff_in(&p.admin, p.department).await;
        let outside = batch(&app, &p.key, vec![detection("o-1", "EMP001", "happy", 0.5, Timestamp::now().millis() - 1000)]).await;
        assert_eq!(outside.body["accepted"], 1, "outside a session a detection is still stored");
        let session = app.post("/api/v1/monitoring-sessions", Some(&staff.token), json!({ "subject_id": p.subject, "device_id": p.device })).await;
        assert_eq!(session.status, StatusCode::CREATED, "{:?}", session.body);
        let twice = app.post("/api/v1/monitoring-sessions", Some(&staff.token), json!({ "subject_id": p.subject, "device_id": p.device })).await;
        assert_eq!(twice.status, StatusCode::CONFLICT);
        batch(&app, &p.key, vec![detection("o-2", "EMP001", "happy", 0.5, Timestamp::now().millis() + 500)]).await;
        let export = app.get(&format!("/api/v1/subjects/{}/export", p.subject), Some(&p.admin.token)).await;
        let flags: Vec<bool> = export.body["detections"].as_array().expect("detections").iter()
            .map(|d| d["in_session"].as_bool().unwrap_or(true)).collect();
        assert_eq!(flags, [false, true]);
        let id = session.body["id"].as_i64().expect("id");
        let ended = app.post(&format!("/api/v1/monitoring-sessions/{id}/end"), Some(&staff.token), json!({})).await;
        assert_eq!(ended.status, StatusCode::OK);
        let again = app.post(&format!("/api/v1/monitoring-sessions/{id}/end"), Some(&staff.token), json!({})).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "ending an ended session conflicts: {:?}", again.body);

        let beat = app.post("/api/v1/devices/heartbeat", Some(&p.key), json!({ "firmware": "edge-2.4.1" })).await;
        assert_eq!(beat.status, StatusCode::OK, "{:?}", beat.body);
        assert_eq!(beat.body["firmware"], "edge-2.4.1");
        assert_eq!(beat.body["code"], p.device_code);
    }

    async fn the_simulator_sends_detections_and_its_stress_episode_raises_an_alert(app: TestApp) {
        let admin = app.admin().await;
        app.department(&admin, "Operaciones").await;
        let options = vigia::simulate::Options {
            devices: 2,
            subjects: 4,
            rate: 20,
            duration: Some(std::time::Duration::from_secs(9)),
            url: app.url.clone(),
            mqtt: None,
            progress: false,
        };
        let summary = vigia::simulate::run(&app.db, options, tokio_util::sync::CancellationToken::new())
            .await
            .expect("the simulator ran");
        use std::sync::atomic::Ordering::Relaxed;
        let sent = summary.sent.load(Relaxed);
        assert!(sent >= 100, "sent {sent}");
        assert_eq!(summary.accepted.load(Relaxed), sent, "every simulated detection is valid and accepted");
        assert_eq!(summary.failed_requests.load(Relaxed), 0);
        assert!(summary.alerts.load(Relaxed) >= 1, "the stress episode raised an alert");
        let alerts = app.get("/api/v1/alerts", Some(&admin.token)).await;
        assert!(alerts.body["items"].as_array().is_some_and(|a| !a.is_empty()), "{:?}", alerts.body);
    }
}

/// `incidents.alert_id` of an incident, read from the database.
async fn stored_alert_of(app: &TestApp, incident: i64) -> Option<i64> {
    app.scalar("SELECT alert_id FROM incidents WHERE id = $1", &[incident])
        .await
}
