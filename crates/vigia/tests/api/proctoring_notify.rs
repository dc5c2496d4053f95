//! Proctoring results leave Vigía (issue 20): a capture analysed end to end with real dlib
//! models reaches the webhook endpoints subscribed to `media.analyzed` (every result) or
//! `proctoring.alert` (alerts only) as a signed Standard Webhooks message whose `data` is the
//! result document written to storage; `proctoring.reviewed` follows a review; endpoints that
//! did not choose these types (`*` included) get nothing. An `ALERT_FINAL` is mailed through the
//! real SMTP test server to the exam department's contacts who may see the department, and a
//! burst of them is gathered into the contact's digest.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vigia_domain::Timestamp;
use vigia_store::{ObjectKey, Objects};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app_with};
use crate::incidents::campus;
use crate::notify::webhooks::Receiver;
use crate::notify::{SmtpServer, free_port, hook_config, mail_config, receiver, register, to};
use crate::proctoring::{photo_bytes, send};

const PROCTORING_TYPES: [&str; 3] = ["media.analyzed", "proctoring.alert", "proctoring.reviewed"];

pub(crate) struct Exam {
    pub(crate) id: i64,
    pub(crate) participant: i64,
}

/// An open exam of `department` whose `alerts_before_final`-th alert in a row is final, with
/// one participant enrolled with a real reference photo.
pub(crate) async fn exam(
    app: &TestApp,
    admin: &TestUser,
    code: &str,
    category: i64,
    department: i64,
    alerts_before_final: i64,
) -> Exam {
    let now = Timestamp::now();
    let reply = app
        .post(
            "/api/v1/exams",
            Some(&admin.token),
            json!({
                "code": code, "title": "Cálculo I — final", "category_id": category,
                "department_id": department, "alerts_before_final": alerts_before_final,
                "starts_at": now.plus_seconds(-3600).to_rfc3339(),
                "ends_at": now.plus_seconds(3600).to_rfc3339(),
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let id = reply.body["id"].as_i64().expect("id");
    let reply = app
        .post(
            &format!("/api/v1/exams/{id}/participants"),
            Some(&admin.token),
            json!({ "external_id": "user_456", "name": "Barack" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let participant = reply.body["id"].as_i64().expect("id");
    let path = format!("/api/v1/exams/{id}/participants/{participant}/reference");
    let enrolled = send(
        app,
        Method::PUT,
        &path,
        &admin.token,
        photo_bytes("obama.jpg"),
    )
    .await;
    assert_eq!(enrolled.status, StatusCode::OK, "{:?}", enrolled.body);
    Exam { id, participant }
}

/// Sends a capture; returns its id.
async fn capture(app: &TestApp, admin: &TestUser, e: &Exam, name: &str, photo: &str) -> i64 {
    let path = format!(
        "/api/v1/exams/{}/participants/{}/captures?name={name}",
        e.id, e.participant
    );
    let sent = send(app, Method::POST, &path, &admin.token, photo_bytes(photo)).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{:?}", sent.body);
    sent.body["id"].as_i64().expect("id")
}

/// Sends a capture and waits until the node's own workers analysed it; returns the capture.
pub(crate) async fn analysed(
    app: &TestApp,
    admin: &TestUser,
    e: &Exam,
    name: &str,
    photo: &str,
) -> Value {
    let id = capture(app, admin, e, name, photo).await;
    analysis_of(app, admin, id).await
}

/// Waits until the node's own workers analysed capture `id`; returns it.
async fn analysis_of(app: &TestApp, admin: &TestUser, id: i64) -> Value {
    for _ in 0..600 {
        let reply = app
            .get(&format!("/api/v1/captures/{id}"), Some(&admin.token))
            .await;
        if reply.body["status"] != "queued" {
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("capture {id} was never analysed");
}

/// The requests `r` received once there are `n` of them (no more, after a pause).
pub(crate) async fn requests(r: &Receiver, n: usize) -> Vec<(String, bool, Value)> {
    for _ in 0..400 {
        if r.seen().requests.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = r.seen().requests;
    assert_eq!(seen.len(), n, "{seen:#?}");
    seen
}

pub(crate) async fn endpoint(app: &TestApp, admin: &TestUser, types: Value) -> Receiver {
    let (r, addr, _task) = receiver("127.0.0.1:0".parse().expect("addr"), vec![200]).await;
    let (_, secret) = register(app, admin, &format!("http://{addr}/hook"), types).await;
    *r.secret.lock().expect("lock") = secret;
    r
}

async fn set_contacts(app: &TestApp, admin: &TestUser, department: i64, contacts: &[&str]) {
    let reply = app
        .put(
            &format!("/api/v1/departments/{department}"),
            Some(&admin.token),
            json!({ "name": "Mantenimiento", "contact_emails": contacts }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

fn is_final_alert_mail(m: &Value) -> bool {
    m["subject"]
        .as_str()
        .is_some_and(|s| s.starts_with("[ALERTA FINAL]") || s.starts_with("[FINAL ALERT]"))
}

async fn results_reach_subscribed_webhooks_signed_and_the_final_alert_mails_the_departments_contacts(
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
    let c = campus(&app).await;
    // Staff of another department and a reporter are named as contacts too: they may not see
    // the exam's department, so they are not told.
    set_contacts(
        &app,
        &c.admin,
        c.dept_a,
        &[
            "supervision@utec.pe",
            &c.staff_a.email,
            &c.staff_b.email,
            &c.reporter.email,
        ],
    )
    .await;
    let every_result = endpoint(
        &app,
        &c.admin,
        json!(["media.analyzed", "proctoring.reviewed"]),
    )
    .await;
    let alerts_only = endpoint(&app, &c.admin, json!(["proctoring.alert"])).await;
    let everything = endpoint(&app, &c.admin, json!(["*"])).await;
    let unrelated = endpoint(&app, &c.admin, json!(["incident.status_changed"])).await;
    let e = exam(&app, &c.admin, "EXW", c.leak, c.dept_a, 2).await;

    let ok = analysed(&app, &c.admin, &e, "capture_001.jpg", "obama2.jpg").await;
    assert_eq!(ok["status"], "OK", "{ok}");
    let alert = analysed(&app, &c.admin, &e, "capture_002.jpg", "biden.jpg").await;
    assert_eq!(alert["status"], "ALERT", "{alert}");
    let last = analysed(&app, &c.admin, &e, "capture_003.jpg", "biden.jpg").await;
    assert_eq!(last["status"], "ALERT_FINAL", "{last}");

    // Every result, signed, its data the document in storage plus the ids that place it.
    let objects =
        Objects::open(&app.config.storage_url(), &app.config.s3_options()).expect("objects");
    let mut seen = requests(&every_result, 3).await;
    seen.sort_by_key(|(_, _, body)| body["data"]["capture_id"].as_i64());
    let names = ["capture_001.jpg", "capture_002.jpg", "capture_003.jpg"];
    for (((_, verified, body), capture), name) in seen.iter().zip([&ok, &alert, &last]).zip(names) {
        assert!(verified, "signed with the endpoint's secret: {body}");
        assert_eq!(body["type"], "media.analyzed", "{body}");
        let mut data = body["data"].clone();
        let map = data.as_object_mut().expect("an object");
        assert!(
            map.remove("event_id")
                .is_some_and(|id| id.as_i64().is_some()),
            "{body}"
        );
        assert_eq!(
            map.remove("exam"),
            Some(json!({ "id": e.id, "code": "EXW", "title": "Cálculo I — final" }))
        );
        let key = map.remove("result_key").expect("result_key");
        let key = key.as_str().expect("a key");
        assert_eq!(key, format!("results/EXW/user_456/{name}.json"));
        let stored = objects
            .get(&ObjectKey::parse(key).expect("key"))
            .await
            .expect("get")
            .expect("the result document is in storage");
        let stored: Value = serde_json::from_slice(&stored).expect("json");
        assert_eq!(
            data, stored,
            "the webhook carries the result document as written"
        );
        assert_eq!(data["status"], capture["status"]);
        assert_eq!(data["exam_id"], "EXW");
        assert_eq!(data["user_id"], "user_456");
        assert!(
            data["s3_input"]
                .as_str()
                .is_some_and(|s| s.ends_with(&format!("images/EXW/user_456/{name}"))),
            "{data}"
        );
    }
    assert!(
        seen[0].2["data"]["face"]["BoundingBox"]["Width"]
            .as_f64()
            .is_some(),
        "{:?}",
        seen[0].2
    );
    assert_eq!(seen[2].2["data"]["reason_code"], "face_mismatch");

    // Alerts only: the two alerting results, typed proctoring.alert.
    let alerts = requests(&alerts_only, 2).await;
    let mut statuses: Vec<&str> = alerts
        .iter()
        .map(|(_, verified, body)| {
            assert!(verified);
            assert_eq!(body["type"], "proctoring.alert", "{body}");
            body["data"]["status"].as_str().unwrap_or_default()
        })
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["ALERT", "ALERT_FINAL"]);
    // `*` does not cover proctoring (it hears of the incident the final alert opened).
    assert!(
        everything
            .seen()
            .requests
            .iter()
            .all(|(_, _, b)| !PROCTORING_TYPES.contains(&b["type"].as_str().unwrap_or_default())),
        "{:#?}",
        everything.seen().requests
    );
    assert!(
        unrelated.seen().requests.is_empty(),
        "{:#?}",
        unrelated.seen().requests
    );

    // The final alert, mailed to the contacts who may see the exam's department.
    for _ in 0..400 {
        if smtp
            .messages()
            .into_iter()
            .filter(is_final_alert_mail)
            .count()
            >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let finals: Vec<Value> = smtp
        .messages()
        .into_iter()
        .filter(is_final_alert_mail)
        .collect();
    let mut recipients: Vec<String> = finals.iter().map(to).collect();
    recipients.sort();
    let mut expected = vec![
        "supervision@utec.pe".to_owned(),
        c.staff_a.email.to_lowercase(),
    ];
    expected.sort();
    assert_eq!(recipients, expected, "{finals:#?}");
    for m in &finals {
        assert_eq!(
            m["subject"], "[ALERTA FINAL] Examen EXW: Barack (user_456)",
            "{m}"
        );
        let text = m["text"].as_str().expect("text");
        assert!(
            text.contains("el rostro no coincide con el de referencia"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "https://vigia.utec.pe/proctoring/exams/{}/live",
                e.id
            )),
            "{text}"
        );
    }

    // A review is a proctoring.reviewed message to the endpoint that chose it, and no other.
    let reply = app
        .post(
            &format!("/api/v1/captures/{}/review", last["id"]),
            Some(&c.admin.token),
            json!({ "verdict": "confirmed" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let seen = requests(&every_result, 4).await;
    let reviewed = seen
        .iter()
        .find(|(_, _, b)| b["type"] == "proctoring.reviewed")
        .expect("a proctoring.reviewed message");
    assert!(reviewed.1);
    assert_eq!(reviewed.2["data"]["review"]["verdict"], "confirmed");
    assert_eq!(
        reviewed.2["data"]["review"]["by"],
        format!("user:{}", c.admin.id)
    );
    assert_eq!(reviewed.2["data"]["status"], "ALERT_FINAL");
    assert_eq!(reviewed.2["data"]["capture_id"], last["id"]);
    assert_eq!(alerts_only.seen().requests.len(), 2);

    // The delivery log has them, delivered.
    let reply = app
        .get(
            "/api/v1/notifications/deliveries?channel=webhook&limit=100",
            Some(&c.admin.token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let logged: Vec<&Value> = reply.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|d| PROCTORING_TYPES.contains(&d["message_type"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(logged.len(), 6, "{logged:#?}");
    assert!(
        logged.iter().all(|d| d["status"] == "delivered"),
        "{logged:#?}"
    );
}

async fn a_burst_of_final_alerts_reaches_a_contact_as_one_mail_and_one_digest(backend: Backend) {
    const CONTACT: &str = "supervision@utec.pe";
    let port = free_port();
    let smtp = SmtpServer::start(port).await;
    let Some(app) = spawn_app_with(backend, |c| {
        mail_config(c, port);
        c.email.digest_after_per_minute = 1;
        c.email.digest_window_secs = 5;
    })
    .await
    else {
        return;
    };
    let c = campus(&app).await;
    set_contacts(&app, &c.admin, c.dept_a, &[CONTACT]).await;
    // Every alert is final: three in a burst (and the incident the first one opens), all within
    // the digest's window.
    let e = exam(&app, &c.admin, "EXD", c.leak, c.dept_a, 1).await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(capture(&app, &c.admin, &e, &format!("burst_{n}.jpg"), "biden.jpg").await);
    }
    for id in ids {
        let capture = analysis_of(&app, &c.admin, id).await;
        assert_eq!(capture["status"], "ALERT_FINAL", "{capture}");
    }
    for _ in 0..400 {
        let mails: Vec<Value> = smtp
            .messages()
            .into_iter()
            .filter(|m| to(m) == CONTACT)
            .collect();
        if mails.iter().any(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("avisos agrupados"))
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails: Vec<Value> = smtp
        .messages()
        .into_iter()
        .filter(|m| to(m) == CONTACT)
        .collect();
    assert_eq!(
        mails.len(),
        2,
        "one e-mail at once, the rest in one digest: {mails:#?}"
    );
    let digest = mails
        .iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("avisos agrupados"))
        })
        .expect("a digest");
    assert_eq!(digest["subject"], "[Vigía] 3 avisos agrupados", "{digest}");
    let text = digest["text"].as_str().expect("text");
    let finals_held = text.matches("alerta final de supervisión").count();
    let first_was_final = mails.iter().any(is_final_alert_mail);
    assert_eq!(
        finals_held + usize::from(first_was_final),
        3,
        "each final alert once, alone or in the digest: {text}"
    );
    assert!(text.contains("[EXD] Barack (user_456)"), "{text}");
    assert!(
        text.contains(&format!(
            "https://vigia.utec.pe/proctoring/exams/{}/live",
            e.id
        )),
        "{text}"
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
        results_reach_subscribed_webhooks_signed_and_the_final_alert_mails_the_departments_contacts,
        a_burst_of_final_alerts_reaches_a_contact_as_one_mail_and_one_digest,
    );
}

// --- the relay ----------------------------------------------------------------------------------

/// Every event id of both tables of the log, in order.
async fn log_ids(app: &TestApp) -> Vec<i64> {
    let log = vigia_store::exam_events::log_after(&app.db, vigia_domain::ids::EventId(0), 10_000)
        .await
        .expect("log");
    log.iter().map(|e| e.id().0).collect()
}

/// The `(after, through]` ranges of the `event.dispatch` jobs, in order.
async fn dispatch_ranges(app: &TestApp) -> Vec<(i64, i64)> {
    let mut ranges: Vec<(i64, i64)> = crate::jobs::jobs_of(&app.db, "event.dispatch")
        .await
        .iter()
        .map(|j| {
            (
                j.payload["after"].as_i64().expect("after"),
                j.payload["through"].as_i64().expect("through"),
            )
        })
        .collect();
    ranges.sort_unstable();
    ranges
}

backend_tests! {
    async fn the_relay_covers_incident_and_exam_events_with_one_cursor_each_once(app: TestApp) {
        let c = campus(&app).await;
        let e = exam(&app, &c.admin, "EXR", c.leak, c.dept_a, 3).await;
        let report = |title: &'static str| {
            let body = json!({ "category_id": c.leak, "title": title, "description": "Sale agua sin parar." });
            let token = c.reporter.token.clone();
            let app = &app;
            async move {
                let reply = app.post("/api/v1/incidents", Some(&token), body).await;
                assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
            }
        };
        report("Fuga en el baño").await;
        let alert = capture(&app, &c.admin, &e, "capture_001.jpg", "biden.jpg").await;
        // The full worker analyses the capture, relays everything so far and dispatches it (a
        // drain relays first: the second one relays what the analysis wrote).
        for _ in 0..2 {
            crate::jobs::worker(&app).drain(Timestamp::now(), 100).await.expect("drain");
        }
        let relayed = vigia_store::jobs::relay::relay_position(&app.db).await.expect("position");
        assert_eq!(Some(&relayed), log_ids(&app).await.last(), "the media.analyzed event was relayed");

        // Incident, exam, incident: one event at a time, each in a batch of its own.
        report("Fuga en la cocina").await;
        let reply = app
            .post(&format!("/api/v1/captures/{alert}/review"), Some(&c.admin.token), json!({ "verdict": "confirmed" }))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        report("Fuga en el patio").await;
        let mut batches = 0;
        while vigia_store::jobs::relay::relay_events(&app.db, 1, Timestamp::now()).await.expect("relay") > 0 {
            batches += 1;
        }
        let ids = log_ids(&app).await;
        let new: Vec<i64> = ids.iter().copied().filter(|id| *id > relayed).collect();
        assert_eq!(batches, new.len(), "one batch per event: {new:?}");
        let exam_events = vigia_store::exam_events::list_for_exam(&app.db, e.id, 10).await.expect("exam events");
        assert!(exam_events.iter().any(|x| x.message_type == "proctoring.reviewed" && new.contains(&x.id.0)), "{exam_events:?}");

        // The ranges tile the log from 0 to its head: every event, of either table, once.
        let ranges = dispatch_ranges(&app).await;
        let mut position = 0;
        for (after, through) in &ranges {
            assert_eq!(*after, position, "{ranges:?}");
            position = *through;
        }
        assert_eq!(Some(&position), ids.last(), "{ranges:?}");
        for id in &ids {
            let covering = ranges.iter().filter(|(a, t)| a < id && id <= t).count();
            assert_eq!(covering, 1, "event {id} in {ranges:?}");
        }
        for (after, through) in ranges.iter().skip_while(|(_, t)| *t <= relayed) {
            let inside = ids.iter().filter(|id| after < *id && *id <= through).count();
            assert_eq!(inside, 1, "({after}, {through}] in {ids:?}");
        }
    }
}
