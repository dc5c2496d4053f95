//! Proctoring events on the real-time stream: each analysed capture (`media.analyzed`, with
//! its status and reason) and each review (`proctoring.reviewed`) reach the staff of the
//! exam's department subscribed to `exam:<id>` or `proctoring`, and nobody else. Real dlib
//! models, real WebSocket clients, on SQLite and PostgreSQL.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use vigia_domain::Timestamp;

use crate::backend_tests;
use crate::helpers::TestApp;
use crate::incidents::campus;
use crate::jobs::worker;
use crate::proctoring::{photo_bytes, send};
use crate::realtime::{Credential, connect_ws};

const WAIT: Duration = Duration::from_secs(10);

backend_tests! {
    async fn a_capture_event_reaches_the_exams_department_staff_and_not_another_departments(app: TestApp) {
        let c = campus(&app).await;
        let now = Timestamp::now();
        let exam = app
            .post("/api/v1/exams", Some(&c.admin.token), json!({
                "code": "LIVE1", "title": "Física II", "category_id": c.leak,
                "department_id": c.dept_a,
                "starts_at": now.plus_seconds(-3600).to_rfc3339(),
                "ends_at": now.plus_seconds(3600).to_rfc3339(),
            }))
            .await;
        assert_eq!(exam.status, StatusCode::CREATED, "{:?}", exam.body);
        let exam_id = exam.body["id"].as_i64().expect("id");
        let participant = app
            .post(&format!("/api/v1/exams/{exam_id}/participants"), Some(&c.admin.token),
                json!({ "external_id": "user_456", "name": "Barack" }))
            .await;
        let participant_id = participant.body["id"].as_i64().expect("id");
        let reference = format!("/api/v1/exams/{exam_id}/participants/{participant_id}/reference");
        let enrolled = send(&app, Method::PUT, &reference, &c.admin.token, photo_bytes("obama.jpg")).await;
        assert_eq!(enrolled.status, StatusCode::OK, "{:?}", enrolled.body);

        let topic = format!("exam:{exam_id}");
        let mut own = connect_ws(&app.url, Credential::Bearer(&c.staff_a.token)).await;
        own.subscribe(&[topic.as_str()], None).await;
        let mut everything = connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
        everything.subscribe(&["proctoring"], None).await;
        let mut other = connect_ws(&app.url, Credential::Bearer(&c.staff_b.token)).await;
        other.subscribe(&["proctoring", topic.as_str()], None).await;
        let mut incidents_only = connect_ws(&app.url, Credential::Bearer(&c.staff_a.token)).await;
        incidents_only.subscribe(&["incidents", format!("department:{}", c.dept_a).as_str()], None).await;

        // The wrong person: an ALERT with its reason.
        let path = format!("/api/v1/exams/{exam_id}/participants/{participant_id}/captures?name=cap_1.jpg");
        let posted = send(&app, Method::POST, &path, &c.admin.token, photo_bytes("biden.jpg")).await;
        assert_eq!(posted.status, StatusCode::ACCEPTED, "{:?}", posted.body);
        let capture_id = posted.body["id"].as_i64().expect("id");
        worker(&app).drain(Timestamp::now(), 100).await.expect("drain");

        let event = own.expect_event(WAIT, "media.analyzed").await;
        assert_eq!(event["data"]["capture_id"], capture_id, "{event}");
        assert_eq!(event["data"]["exam_id"], exam_id);
        assert_eq!(event["data"]["participant_id"], participant_id);
        assert_eq!(event["data"]["user_id"], "user_456");
        assert_eq!(event["data"]["status"], "ALERT");
        assert_eq!(event["data"]["reason"], "face_mismatch");
        assert!(event["data"]["distance"].as_f64().expect("distance") >= 0.6);
        let id = event["id"].as_str().expect("an event id").to_owned();
        let seen_by_admin = everything.expect_event(WAIT, "media.analyzed").await;
        assert_eq!(seen_by_admin["id"], id.as_str());

        // A proctor's review is an event too.
        let reviewed = app
            .post(&format!("/api/v1/captures/{capture_id}/review"), Some(&c.staff_a.token),
                json!({ "verdict": "confirmed" }))
            .await;
        assert_eq!(reviewed.status, StatusCode::OK, "{:?}", reviewed.body);
        let review = own.expect_event(WAIT, "proctoring.reviewed").await;
        assert_eq!(review["data"]["capture_id"], capture_id);
        assert_eq!(review["data"]["review"], "confirmed");

        // Another department's staff, and a subscriber of incidents only, got neither.
        other.expect_silence(Duration::from_secs(2)).await;
        incidents_only.expect_silence(Duration::from_millis(200)).await;

        // Resuming from before the capture replays both, in order, from the log.
        let mut again = connect_ws(&app.url, Credential::Bearer(&c.staff_a.token)).await;
        let before = (id.parse::<i64>().expect("numeric id") - 1).to_string();
        again.subscribe(&[topic.as_str()], Some(&before)).await;
        assert_eq!(again.expect_event(WAIT, "media.analyzed").await["id"], id.as_str());
        again.expect_event(WAIT, "proctoring.reviewed").await;
    }
}
