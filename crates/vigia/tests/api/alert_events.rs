//! Alert events end to end (issue 19): an alert raised by detections reaches the `alerts`
//! real-time topic of its department's staff only, e-mails the departments its rule names
//! through the real SMTP test server, and is delivered as a signed `alert.raised` webhook;
//! the `detections` topic carries per-second counts, scoped the same way.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vigia_domain::users::Role;

use crate::backend_tests;
use crate::devices::{device, plant, stress_run, subject};
use crate::helpers::{Backend, TestApp, TestUser, spawn_app_with};
use crate::notify::{SmtpServer, free_port, hook_config, mail_config, receiver, register, to};
use crate::realtime::{Credential, WsClient, connect_ws};
use crate::ui_console::Browser;

async fn batch(app: &TestApp, key: &str, items: Vec<Value>) -> Value {
    let reply = app
        .post(
            "/api/v1/detections/batch",
            Some(key),
            json!({ "detections": items }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

async fn listening(app: &TestApp, who: &TestUser, topics: &[&str]) -> WsClient {
    let mut ws = connect_ws(&app.url, Credential::Bearer(&who.token)).await;
    ws.subscribe(topics, None).await;
    ws
}

backend_tests! {
    async fn an_alert_reaches_the_alerts_topic_of_its_departments_staff_and_nobody_elses(app: TestApp) {
        let p = plant(&app).await;
        let own = app.staff_in(&p.admin, p.department).await;
        let elsewhere = app.department(&p.admin, "Logística").await;
        let other = app.staff_in(&p.admin, elsewhere).await;
        let reporter = app.user(Role::Reporter).await;
        let mut own_ws = listening(&app, &own, &["alerts"]).await;
        let mut other_ws = listening(&app, &other, &["alerts"]).await;
        let mut reporter_ws = listening(&app, &reporter, &["alerts"]).await;
        let mut admin_ws = listening(&app, &p.admin, &["alerts"]).await;
        // Incident subscribers of the department receive no alert events.
        let mut incidents_ws = listening(&app, &own, &["incidents", &format!("department:{}", p.department)]).await;

        let answer = batch(&app, &p.key, stress_run("ws", "EMP001", 10, 0.9)).await;
        assert_eq!(answer["alerts_raised"], 1, "{answer}");

        let raised = own_ws.expect_event(Duration::from_secs(5), "alert.raised").await;
        let data = &raised["data"];
        assert_eq!(data["subject_code"], "EMP001", "{raised}");
        assert_eq!(data["department_id"], p.department);
        assert_eq!(data["severity"], "high");
        assert_eq!(data["status"], "pending");
        assert_eq!(data["detection_count"], 10);
        assert!(raised["id"].as_str().is_some_and(|id| !id.is_empty()), "an event of the log: {raised}");
        let alert = data["alert_id"].as_i64().expect("alert id");
        let for_admin = admin_ws.expect_event(Duration::from_secs(5), "alert.raised").await;
        assert_eq!(for_admin["data"]["alert_id"], alert);
        other_ws.expect_silence(Duration::from_millis(800)).await;
        reporter_ws.expect_silence(Duration::from_millis(200)).await;
        incidents_ws.expect_silence(Duration::from_millis(200)).await;

        let reply = app
            .post(&format!("/api/v1/alerts/{alert}/acknowledge"), Some(&own.token), json!({ "notes": "Voy para allá" }))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let acknowledged = own_ws.expect_event(Duration::from_secs(5), "alert.acknowledged").await;
        assert_eq!(acknowledged["data"]["notes"], "Voy para allá");
        assert_eq!(acknowledged["data"]["status"], "acknowledged");
        assert_eq!(acknowledged["data"]["actor"], format!("user:{}", own.id));
        let reply = app
            .post(&format!("/api/v1/alerts/{alert}/resolve"), Some(&own.token), json!({}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let resolved = own_ws.expect_event(Duration::from_secs(5), "alert.resolved").await;
        assert_eq!(resolved["data"]["status"], "resolved");
        other_ws.expect_silence(Duration::from_millis(300)).await;

        // A client that reconnects with the last id it saw misses nothing and sees nothing twice.
        let mut again = connect_ws(&app.url, Credential::Bearer(&own.token)).await;
        again.subscribe(&["alerts"], raised["id"].as_str()).await;
        again.expect_event(Duration::from_secs(5), "alert.acknowledged").await;
        again.expect_event(Duration::from_secs(5), "alert.resolved").await;
        again.expect_silence(Duration::from_millis(300)).await;
    }

    async fn erasing_a_subject_takes_its_alert_events_off_the_log(app: TestApp) {
        let p = plant(&app).await;
        let answer = batch(&app, &p.key, stress_run("erase", "EMP001", 10, 0.9)).await;
        assert_eq!(answer["alerts_raised"], 1, "{answer}");
        let mut before = connect_ws(&app.url, Credential::Bearer(&p.admin.token)).await;
        before.subscribe(&["alerts"], Some("0")).await;
        let raised = before.expect_event(Duration::from_secs(5), "alert.raised").await;
        assert_eq!(raised["data"]["subject_name"], "Persona EMP001");
        let reply = app.delete(&format!("/api/v1/subjects/{}", p.subject), Some(&p.admin.token)).await;
        assert!(reply.status.is_success(), "{:?}", reply.body);
        // Replaying the whole log finds nothing that names the erased subject.
        let mut after = connect_ws(&app.url, Credential::Bearer(&p.admin.token)).await;
        after.subscribe(&["alerts"], Some("0")).await;
        after.expect_silence(Duration::from_millis(800)).await;
    }

    async fn the_alert_page_live_parts_show_status_and_history_to_its_departments_staff_only(app: TestApp) {
        let p = plant(&app).await;
        let own = app.staff_in(&p.admin, p.department).await;
        let elsewhere = app.department(&p.admin, "Logística").await;
        let other = app.staff_in(&p.admin, elsewhere).await;
        let answer = batch(&app, &p.key, stress_run("live", "EMP001", 10, 0.9)).await;
        assert_eq!(answer["alerts_raised"], 1, "{answer}");
        let list = app.get("/api/v1/alerts", Some(&own.token)).await;
        let alert = list.body["items"][0]["id"].as_i64().expect("alert id");
        let reply = app
            .post(&format!("/api/v1/alerts/{alert}/acknowledge"), Some(&p.admin.token), json!({ "notes": "Lo vi desde la central" }))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);

        let mut browser = Browser::signed_in(&app, &own).await;
        let facts = browser.get(&format!("/alerts/{alert}/live?part=facts")).await;
        assert_eq!(facts.status, StatusCode::OK, "{}", facts.html);
        assert!(facts.html.contains("alert-status-acknowledged"), "{}", facts.html);
        assert!(!facts.html.contains("<form") && !facts.html.contains("<html"), "{}", facts.html);
        let history = browser.get(&format!("/alerts/{alert}/live")).await;
        assert_eq!(history.status, StatusCode::OK, "{}", history.html);
        assert!(history.html.contains("id=\"history\"") && history.html.contains("Lo vi desde la central"), "{}", history.html);
        assert!(!history.html.contains("<form") && !history.html.contains("<html"), "{}", history.html);

        // Staff of another department get "not found" for both parts, as for the page.
        let mut outsider = Browser::signed_in(&app, &other).await;
        for path in [format!("/alerts/{alert}"), format!("/alerts/{alert}/live?part=facts"), format!("/alerts/{alert}/live")] {
            let denied = outsider.get(&path).await;
            assert_eq!(denied.status, StatusCode::NOT_FOUND, "{path}: {}", denied.html);
            assert!(!denied.html.contains("Lo vi desde la central"), "{}", denied.html);
        }
    }

    async fn the_detections_topic_carries_per_second_counts_to_the_departments_staff_only(app: TestApp) {
        let p = plant(&app).await;
        let own = app.staff_in(&p.admin, p.department).await;
        let elsewhere = app.department(&p.admin, "Logística").await;
        let other = app.staff_in(&p.admin, elsewhere).await;
        let mut own_ws = listening(&app, &own, &["detections"]).await;
        let mut other_ws = listening(&app, &other, &["detections"]).await;
        let mut items = stress_run("tick", "EMP001", 7, 0.3);
        items.push(crate::devices::detection("tick-h", "EMP001", "happy", 0.9, vigia_domain::Timestamp::now().millis()));
        let answer = batch(&app, &p.key, items).await;
        assert_eq!(answer["accepted"], 8, "{answer}");
        let tick = own_ws.expect_event(Duration::from_secs(3), "detections.tick").await;
        assert_eq!(tick["data"]["department_id"], p.department, "{tick}");
        assert_eq!(tick["data"]["total"], 8);
        assert_eq!(tick["data"]["labels"]["stress"], 7);
        assert_eq!(tick["data"]["labels"]["happy"], 1);
        assert!(tick.get("id").is_none(), "a tick is not an event of the log: {tick}");
        // Counted once: the next second has nothing to say.
        own_ws.expect_silence(Duration::from_millis(1500)).await;
        other_ws.expect_silence(Duration::from_millis(200)).await;
    }
}

/// A department with contact e-mails, created by `admin`.
async fn department_with(app: &TestApp, admin: &TestUser, name: &str, contacts: &[&str]) -> i64 {
    let reply = app
        .post(
            "/api/v1/departments",
            Some(&admin.token),
            json!({ "name": name, "contact_emails": contacts }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["id"].as_i64().expect("department id")
}

async fn an_alert_mails_its_rules_departments_and_is_delivered_as_a_signed_alert_raised_webhook(
    backend: Backend,
) {
    let port = free_port();
    let smtp = SmtpServer::start(port).await;
    let Some(app) = spawn_app_with(backend, |c| {
        mail_config(c, port);
        hook_config(c);
    })
    .await
    else {
        return;
    };
    let admin = app.admin().await;
    let people = department_with(&app, &admin, "Personas", &["personas@utec.pe"]).await;
    let security = department_with(&app, &admin, "Seguridad", &["seguridad@utec.pe"]).await;
    let quiet = department_with(&app, &admin, "Biblioteca", &["biblioteca@utec.pe"]).await;
    let _ = quiet;
    subject(&app, &admin, "EMP010", people, true).await;
    let (_, key) = device(&app, &admin, "cam-mail").await;
    let rules = app.get("/api/v1/alert-rules", Some(&admin.token)).await;
    let rule = rules.body[0].clone();
    let reply = app
        .put(
            &format!("/api/v1/alert-rules/{}", rule["id"]),
            Some(&admin.token),
            json!({
                "name": rule["name"], "labels": rule["labels"], "min_count": rule["min_count"],
                "window_secs": rule["window_secs"], "confidence_floor": rule["confidence_floor"],
                "cooldown_secs": rule["cooldown_secs"], "notify_departments": [security],
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let (hook, _addr, _task) = receiver("127.0.0.1:0".parse().expect("addr"), vec![200]).await;
    let (_, secret) = register(
        &app,
        &admin,
        &format!("http://{_addr}/hook"),
        json!(["alert.raised"]),
    )
    .await;
    *hook.secret.lock().expect("lock") = secret;

    let answer = batch(&app, &key, stress_run("mail", "EMP010", 10, 0.7)).await;
    assert_eq!(answer["alerts_raised"], 1, "{answer}");
    let alerts = app.get("/api/v1/alerts", Some(&admin.token)).await;
    let alert = alerts.body["items"][0]["id"].as_i64().expect("alert id");

    let messages = smtp.wait_for(2).await;
    let mut recipients: Vec<String> = messages.iter().map(to).collect();
    recipients.sort();
    assert_eq!(
        recipients,
        ["personas@utec.pe", "seguridad@utec.pe"],
        "{messages:#?}"
    );
    for m in &messages {
        let subject = m["subject"].as_str().expect("subject");
        assert!(
            subject.starts_with(&format!("[Alerta {alert}] Severidad media")),
            "{subject}"
        );
        let text = m["text"].as_str().expect("text");
        assert!(
            text.contains("EMP010")
                && text.contains(&format!("https://vigia.utec.pe/alerts/{alert}")),
            "{text}"
        );
    }

    let mut requests = Vec::new();
    for _ in 0..200 {
        requests = hook.seen().requests;
        if !requests.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        requests.len(),
        1,
        "one alert.raised delivery: {requests:#?}"
    );
    let (_, verified, body) = &requests[0];
    assert!(verified, "signed with the endpoint's secret");
    assert_eq!(body["type"], "alert.raised");
    assert_eq!(body["data"]["alert_id"], alert);
    assert_eq!(body["data"]["alert"]["subject_code"], "EMP010");
    assert_eq!(body["data"]["alert"]["severity"], "medium");

    // Acknowledging mails the same departments again; the endpoint chose alert.raised only.
    let reply = app
        .post(
            &format!("/api/v1/alerts/{alert}/acknowledge"),
            Some(&admin.token),
            json!({ "notes": "En camino" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let messages = smtp.wait_for(4).await;
    let acknowledged: Vec<&Value> = messages
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("Reconocida"))
        })
        .collect();
    assert_eq!(acknowledged.len(), 2, "{messages:#?}");
    assert!(
        acknowledged[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("En camino"))
    );
    assert!(
        messages.iter().all(|m| to(m) != "biblioteca@utec.pe"),
        "a department the rule does not name is not told"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hook.seen().requests.len(),
        1,
        "no alert.acknowledged webhook for an endpoint that did not choose it"
    );
}

mod mail_and_webhooks {
    macro_rules! on_both_backends {
        ($($name:ident),+ $(,)?) => {
            $(
                mod $name {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn sqlite() {
                        super::super::$name(super::super::Backend::Sqlite).await
                    }
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn postgres() {
                        super::super::$name(super::super::Backend::Postgres).await
                    }
                }
            )+
        };
    }
    on_both_backends!(
        an_alert_mails_its_rules_departments_and_is_delivered_as_a_signed_alert_raised_webhook
    );
}
