//! The delivery log names each delivery's event (issue 20): a capture analysed end to end
//! reaches a webhook endpoint, and its deliveries are found by the exam event's id, by the log
//! (`event_log=exam`) and together, while an unknown log is refused.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestUser, spawn_app_with};
use crate::incidents::campus;
use crate::notify::hook_config;
use crate::proctoring_notify::{analysed, endpoint, exam, requests};

/// The delivery log of the webhook channel, filtered by `query`, once `n` deliveries match.
async fn logged(app: &TestApp, admin: &TestUser, query: &str, n: usize) -> Vec<Value> {
    let path = format!("/api/v1/notifications/deliveries?channel=webhook&{query}");
    for _ in 0..400 {
        let reply = app.get(&path, Some(&admin.token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let items = reply.body["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} deliveries match {query}");
}

pub(crate) async fn the_delivery_log_names_each_deliverys_event_and_filters_exam_events_by_id_and_log(
    backend: Backend,
) {
    let Some(app) = spawn_app_with(backend, hook_config).await else {
        return;
    };
    let c = campus(&app).await;
    let results = endpoint(
        &app,
        &c.admin,
        json!(["media.analyzed", "incident.created"]),
    )
    .await;
    let alerts = endpoint(&app, &c.admin, json!(["proctoring.alert"])).await;
    let e = exam(&app, &c.admin, "EXL", c.leak, c.dept_a, 3).await;
    let alert = analysed(&app, &c.admin, &e, "capture_001.jpg", "biden.jpg").await;
    assert_eq!(alert["status"], "ALERT", "{alert}");
    let reply = app
        .post(
            "/api/v1/incidents",
            Some(&c.reporter.token),
            json!({ "category_id": c.leak, "title": "Fuga en el baño", "description": "Sale agua sin parar." }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let incident = reply.body["id"].as_i64().expect("id");
    requests(&results, 2).await;
    requests(&alerts, 1).await;

    // The events, as their own logs have them.
    let exam_events = vigia_store::exam_events::list_for_exam(&app.db, e.id, 10)
        .await
        .expect("exam events");
    assert_eq!(exam_events.len(), 1, "{exam_events:?}");
    let exam_event = exam_events[0].id.0;
    let reply = app
        .get(
            &format!("/api/v1/incidents/{incident}/events"),
            Some(&c.admin.token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let created = reply.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|ev| ev["type"] == "incident.created")
        .and_then(|ev| ev["id"].as_i64())
        .expect("the incident.created event");

    // event= an exam event: both deliveries of the analysed capture, each naming the exam event
    // and its type (the alert endpoint's message type is not the event's).
    let mut of_exam = logged(&app, &c.admin, &format!("event={exam_event}"), 2).await;
    of_exam.sort_by_key(|d| d["message_type"].as_str().map(str::to_owned));
    let types: Vec<&str> = of_exam
        .iter()
        .map(|d| d["message_type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        types,
        ["media.analyzed", "proctoring.alert"],
        "{of_exam:#?}"
    );
    for d in &of_exam {
        assert_eq!(d["exam_event_id"], exam_event, "{d}");
        assert_eq!(d["event_id"], Value::Null, "{d}");
        assert_eq!(
            d["event"],
            json!({ "id": exam_event, "log": "exam", "type": "media.analyzed", "alert_id": null, "exam_id": e.id }),
            "{d}"
        );
    }
    // event= an incident event: its delivery only, named as an incident event.
    let of_incident = logged(&app, &c.admin, &format!("event={created}"), 1).await;
    assert_eq!(of_incident.len(), 1, "{of_incident:#?}");
    assert_eq!(of_incident[0]["message_type"], "incident.created");
    assert_eq!(of_incident[0]["event_id"], created);
    assert_eq!(of_incident[0]["exam_event_id"], Value::Null);
    assert_eq!(
        of_incident[0]["event"],
        json!({ "id": created, "log": "incident", "type": "incident.created", "alert_id": null, "exam_id": null })
    );

    // event_log= one table of the log.
    let exam_only = logged(&app, &c.admin, "event_log=exam", 2).await;
    let mut ids: Vec<i64> = exam_only.iter().filter_map(|d| d["id"].as_i64()).collect();
    ids.sort_unstable();
    let mut expected: Vec<i64> = of_exam.iter().filter_map(|d| d["id"].as_i64()).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected, "{exam_only:#?}");
    let incident_only = logged(&app, &c.admin, "event_log=incident", 1).await;
    assert!(
        incident_only
            .iter()
            .all(|d| d["event"]["log"] == "incident"),
        "{incident_only:#?}"
    );
    assert!(
        incident_only
            .iter()
            .any(|d| d["id"] == of_incident[0]["id"]),
        "{incident_only:#?}"
    );
    // Both filters together: nothing is about an incident event and the exam event at once.
    let none = app
        .get(
            &format!("/api/v1/notifications/deliveries?event={exam_event}&event_log=incident"),
            Some(&c.admin.token),
        )
        .await;
    assert_eq!(none.status, StatusCode::OK, "{:?}", none.body);
    assert_eq!(none.body["items"], json!([]));

    // One delivery read alone names its event too.
    let one = app
        .get(
            &format!("/api/v1/notifications/deliveries/{}", of_exam[1]["id"]),
            Some(&c.admin.token),
        )
        .await;
    assert_eq!(one.status, StatusCode::OK, "{:?}", one.body);
    assert_eq!(one.body["event"], of_exam[1]["event"]);

    // An unknown log is refused, naming the parameter.
    let refused = app
        .get(
            "/api/v1/notifications/deliveries?event_log=proctoring",
            Some(&c.admin.token),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.to_string().contains("event_log"),
        "{:?}",
        refused.body
    );
}

macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(crate::helpers::Backend::Postgres).await
                }
            }
        )+
    };
}
on_both_backends!(
    the_delivery_log_names_each_deliverys_event_and_filters_exam_events_by_id_and_log
);
