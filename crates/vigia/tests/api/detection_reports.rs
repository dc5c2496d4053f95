//! Detection window reports and the detection export (issue 19, items 7 and 10): a window
//! report checked figure by figure in its JSON and CSV files, rerun in place, written by the
//! scheduled job and mailed; the streamed export with its filters, formats and scope.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vigia_domain::Timestamp;
use vigia_domain::users::Role;
use vigia_reports::Period;

use crate::backend_tests;
use crate::devices::{detection, plant, subject};
use crate::helpers::{Backend, TestApp, spawn_app_with};
use crate::notify::{SmtpServer, free_port, mail_config, to};

const MIN: i64 = 60_000;

/// The quarter hour that ended two hours before now: `[from, to)`.
fn past_window() -> Period {
    Period::window_before(Timestamp::now().plus_seconds(-2 * 3600), 15)
}

async fn batch(app: &TestApp, key: &str, items: Vec<Value>) {
    let reply = app
        .post(
            "/api/v1/detections/batch",
            Some(key),
            json!({ "detections": items }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["invalid"], 0, "{:?}", reply.body);
}

async fn raw(app: &TestApp, path: &str, token: &str) -> (StatusCode, String, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", app.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, kind, response.bytes().await.expect("body").to_vec())
}

fn objects(app: &TestApp) -> vigia_store::Objects {
    vigia_store::Objects::open(&app.config.storage_url(), &app.config.s3_options())
        .expect("objects")
}

fn labels(app: &TestApp) -> Vec<String> {
    app.config.detections.labels.clone()
}

backend_tests! {
    async fn the_window_report_counts_each_subjects_labels_stress_share_confidence_and_alerts(app: TestApp) {
        let p = plant(&app).await;
        let other = subject(&app, &p.admin, "EMP003", p.department, true).await;
        let w = past_window();
        let t0 = w.from().millis();
        // EMP001: 10 stress at 0.9 (raises one alert under the default rule) and 2 happy at
        // 0.5, inside the window; EMP003: 1 sad at 0.6 and 1 neutral at 0.4 inside, and one
        // neutral just after the window (not counted).
        let mut items: Vec<Value> = (0..10)
            .map(|i| detection(&format!("s-{i}"), "EMP001", "stress", 0.9, t0 + MIN + i * 1000))
            .collect();
        items.push(detection("h-0", "EMP001", "happy", 0.5, t0 + 2 * MIN));
        items.push(detection("h-1", "EMP001", "happy", 0.5, t0 + 3 * MIN));
        items.push(detection("o-0", "EMP003", "sad", 0.6, t0));
        items.push(detection("o-1", "EMP003", "neutral", 0.4, w.to().millis() - 1));
        items.push(detection("o-2", "EMP003", "neutral", 0.4, w.to().millis()));
        batch(&app, &p.key, items).await;

        let record = vigia_reports::detections::run(&app.db, &objects(&app), w, &labels(&app), "test")
            .await
            .expect("report");
        let admin = &p.admin.token;
        let (status, _, json) = raw(&app, &format!("/api/v1/reports/{}/download?format=json", record.id), admin).await;
        assert_eq!(status, StatusCode::OK);
        let report: Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(report["kind"], "detections");
        let subjects = report["subjects"].as_array().expect("subjects");
        assert_eq!(subjects.len(), 2, "{report:#}");
        let emp1 = &subjects[0];
        assert_eq!(emp1["subject_id"], p.subject);
        assert_eq!(emp1["code"], "EMP001");
        assert_eq!(emp1["counts"]["stress"], 10);
        assert_eq!(emp1["counts"]["happy"], 2);
        assert_eq!(emp1["counts"]["sad"], 0, "every label has its column");
        assert_eq!(emp1["detections"], 12);
        assert_eq!(emp1["stress"], 10);
        assert!((emp1["stress_share"].as_f64().expect("share") - 10.0 / 12.0).abs() < 1e-9);
        assert!((emp1["confidence_avg"].as_f64().expect("avg") - (9.0 + 1.0) / 12.0).abs() < 1e-9);
        assert_eq!(emp1["alerts_raised"], 1, "{emp1:#}");
        let emp3 = &subjects[1];
        assert_eq!(emp3["subject_id"], other);
        assert_eq!(emp3["detections"], 2, "the one at the window's end is not in it");
        assert_eq!(emp3["stress"], 1, "sad counts as stress");
        assert!((emp3["confidence_avg"].as_f64().expect("avg") - 0.5).abs() < 1e-9);
        assert_eq!(emp3["alerts_raised"], 0);
        let totals = &report["totals"];
        assert_eq!(totals["subjects"], 2);
        assert_eq!(totals["detections"], 14);
        assert_eq!(totals["stress"], 11);
        assert_eq!(totals["alerts_raised"], 1);
        assert_eq!(totals["counts"]["neutral"], 1);

        let (status, kind, csv) = raw(&app, &format!("/api/v1/reports/{}/download?format=csv", record.id), admin).await;
        assert_eq!(status, StatusCode::OK);
        assert!(kind.starts_with("text/csv"), "{kind}");
        let csv = String::from_utf8(csv).expect("utf-8");
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].starts_with("row,subject_id,code,name,department_id,label_neutral,"), "{}", lines[0]);
        assert!(lines[1].starts_with(&format!("subject,{},EMP001,", p.subject)), "{}", lines[1]);
        assert!(lines[3].starts_with("totals,,,,,"), "{}", lines[3]);
        assert_eq!(lines.len(), 4);
        let (status, kind, xlsx) = raw(&app, &format!("/api/v1/reports/{}/download?format=xlsx", record.id), admin).await;
        assert_eq!(status, StatusCode::OK);
        assert!(kind.contains("spreadsheetml"), "{kind}");
        assert_eq!(&xlsx[..2], b"PK", "an XLSX file is a zip");

        // Listed with the other reports, under its own kind; not for staff.
        let list = app.get("/api/v1/reports?kind=detections", Some(admin)).await;
        assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
        let items = list.body["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["kind"], "detections");
        assert_eq!(items[0]["summary"]["totals"]["detections"], 14);
        let keys: Vec<&str> = items[0]["files"].as_array().expect("files").iter().filter_map(|f| f["object_key"].as_str()).collect();
        let stamp = vigia_reports::key_time(w.to());
        assert_eq!(keys, [
            format!("reports/detections/detections_{stamp}.json"),
            format!("reports/detections/detections_{stamp}.csv"),
            format!("reports/detections/detections_{stamp}.xlsx"),
        ]);
        let staff = app.staff_in(&p.admin, p.department).await;
        let seen = app.get("/api/v1/reports?kind=detections", Some(&staff.token)).await;
        assert_eq!(seen.body["items"].as_array().map(Vec::len), Some(0), "{:?}", seen.body);
    }

    async fn rerunning_a_window_replaces_its_report_and_counts_late_detections(app: TestApp) {
        let p = plant(&app).await;
        let w = past_window();
        let t0 = w.from().millis();
        batch(&app, &p.key, vec![detection("a-0", "EMP001", "happy", 0.7, t0 + MIN)]).await;
        let first = vigia_reports::detections::run(&app.db, &objects(&app), w, &labels(&app), "test").await.expect("first");
        assert_eq!(first.summary["totals"]["detections"], 1);
        // A device that was offline sends what it buffered: the rerun counts it.
        batch(&app, &p.key, vec![detection("a-1", "EMP001", "sad", 0.7, t0 + 2 * MIN)]).await;
        let again = vigia_reports::detections::run(&app.db, &objects(&app), w, &labels(&app), "test").await.expect("again");
        assert_eq!(again.id, first.id, "the same record");
        assert_eq!(again.summary["totals"]["detections"], 2);
        let list = app.get("/api/v1/reports?kind=detections", Some(&p.admin.token)).await;
        assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
        // An empty window is a valid report of zeros.
        let empty = Period::window_before(w.from(), 15);
        let zero = vigia_reports::detections::run(&app.db, &objects(&app), empty, &labels(&app), "test").await.expect("empty");
        assert_eq!(zero.summary["totals"]["detections"], 0);
        assert_eq!(zero.summary["totals"]["subjects"], 0);
    }

    async fn the_detection_export_streams_the_filtered_detections_in_each_format(app: TestApp) {
        let p = plant(&app).await;
        let other = subject(&app, &p.admin, "EMP003", p.department, true).await;
        let (_, key2) = crate::devices::device(&app, &p.admin, "cam-02").await;
        let t0 = Timestamp::now().millis() - 3_600_000;
        batch(&app, &p.key, vec![
            detection("e-0", "EMP001", "happy", 0.25, t0),
            detection("e-1", "EMP001", "stress", 0.75, t0 + MIN),
            detection("e-2", "EMP003", "stress", 0.5, t0 + 2 * MIN),
        ]).await;
        batch(&app, &key2, vec![detection("f-0", "EMP001", "stress", 1.0, t0 + 3 * MIN)]).await;
        let admin = &p.admin.token;

        let (status, kind, body) = raw(&app, "/api/v1/exports/detections?format=ndjson", admin).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(kind, "application/x-ndjson");
        let rows: Vec<Value> = String::from_utf8(body).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("a json line")).collect();
        assert_eq!(rows.len(), 4, "{rows:#?}");
        assert_eq!(rows[0]["client_id"], "e-0", "oldest first");
        assert_eq!(rows[0]["subject_code"], "EMP001");
        assert_eq!(rows[0]["device_code"], "cam-01");
        assert_eq!(rows[0]["confidence"], 0.25);
        assert_eq!(rows[0]["in_session"], false);
        assert_eq!(rows[3]["device_code"], "cam-02");

        let filtered = format!(
            "/api/v1/exports/detections?format=csv&subject={}&label=stress&from={}&to={}",
            p.subject,
            Timestamp::from_millis(t0).to_rfc3339(),
            Timestamp::from_millis(t0 + 3 * MIN).to_rfc3339(),
        );
        let (status, kind, body) = raw(&app, &filtered.replace('+', "%2B"), admin).await;
        assert_eq!(status, StatusCode::OK);
        assert!(kind.starts_with("text/csv"), "{kind}");
        let csv = String::from_utf8(body).expect("utf-8");
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].starts_with("id,at,received_at,subject_id,subject_code,"), "{}", lines[0]);
        assert_eq!(lines.len(), 2, "only e-1: {csv}");
        assert!(lines[1].contains(",e-1,stress,0.75,"), "{}", lines[1]);

        let (_, _, body) = raw(&app, &format!("/api/v1/exports/detections?format=ndjson&subject={other}"), admin).await;
        assert_eq!(String::from_utf8(body).expect("utf-8").lines().count(), 1);

        let (status, kind, xlsx) = raw(&app, "/api/v1/exports/detections?format=xlsx&label=stress", admin).await;
        assert_eq!(status, StatusCode::OK);
        assert!(kind.contains("spreadsheetml"), "{kind}");
        assert_eq!(&xlsx[..2], b"PK");
    }

    async fn the_detection_export_is_scoped_like_the_dashboard_and_refuses_bad_filters(app: TestApp) {
        let p = plant(&app).await;
        let elsewhere = app.department(&p.admin, "Almacén").await;
        subject(&app, &p.admin, "EMP009", elsewhere, true).await;
        let t0 = Timestamp::now().millis() - 600_000;
        batch(&app, &p.key, vec![
            detection("g-0", "EMP001", "happy", 0.5, t0),
            detection("g-1", "EMP009", "happy", 0.5, t0 + 1000),
        ]).await;
        // Staff of the first department export its subjects only.
        let staff = app.staff_in(&p.admin, p.department).await;
        let (status, _, body) = raw(&app, "/api/v1/exports/detections?format=ndjson", &staff.token).await;
        assert_eq!(status, StatusCode::OK);
        let text = String::from_utf8(body).expect("utf-8");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("EMP001"));
        // A key with reports:read and the other department exports that one.
        let key = app.post("/api/v1/api-keys", Some(&p.admin.token), json!({
            "name": "BI", "scopes": ["reports:read"], "departments": [elsewhere]
        })).await;
        assert_eq!(key.status, StatusCode::CREATED, "{:?}", key.body);
        let secret = key.body["key"].as_str().expect("secret");
        let (status, _, body) = raw(&app, "/api/v1/exports/detections?format=ndjson", secret).await;
        assert_eq!(status, StatusCode::OK);
        let text = String::from_utf8(body).expect("utf-8");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("EMP009"));
        // A device key (detections:write) and a reporter are refused.
        let (status, _, _) = raw(&app, "/api/v1/exports/detections", &p.key).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let reporter = app.user(Role::Reporter).await;
        let (status, _, _) = raw(&app, "/api/v1/exports/detections", &reporter.token).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // Bad filters are one 422 naming each field.
        let bad = app.get("/api/v1/exports/detections?format=pdf&label=bored&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", Some(&p.admin.token)).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", bad.body);
        let fields: Vec<&str> = bad.body["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
        assert_eq!(fields, ["format", "label", "from"], "{:?}", bad.body);
        let unknown = app.get("/api/v1/exports/detections?colour=red", Some(&p.admin.token)).await;
        assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", unknown.body);
    }
}

async fn the_scheduled_window_report_is_written_listed_and_mailed(backend: Backend) {
    let port = free_port();
    let smtp = SmtpServer::start(port).await;
    let Some(app) = spawn_app_with(backend, |c| {
        mail_config(c, port);
        c.email.report_recipients = vec!["bienestar@utec.pe".into()];
    })
    .await
    else {
        return;
    };
    let p = plant(&app).await;
    // A detection in the quarter hour the job reports on: the last complete one.
    let w = Period::window_before(Timestamp::now(), 15);
    batch(
        &app,
        &p.key,
        vec![detection(
            "j-0",
            "EMP001",
            "stress",
            0.8,
            w.from().millis() + 1000,
        )],
    )
    .await;
    let worker = vigia_jobs::Worker::new(
        app.db.clone(),
        Arc::new(crate::jobs::registry(&app, &app.config)),
        vigia::jobs::worker_config(&app.config),
        vigia_jobs::JobMetrics::new(),
    );
    let now = Timestamp::now();
    let job = vigia_store::jobs::NewJob::new(&vigia_store::jobs::Task::DetectionsReport {});
    vigia_store::jobs::enqueue(&app.db, &job, now)
        .await
        .expect("enqueue");
    worker.drain(now, 100).await.expect("drain");
    // The application's own workers may have taken the job: the e-mail says it ran.
    let messages = smtp.wait_for(1).await;
    assert_eq!(to(&messages[0]), "bienestar@utec.pe", "{messages:#?}");
    let list = app
        .get("/api/v1/reports?kind=detections", Some(&p.admin.token))
        .await;
    let items = list.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{:?}", list.body);
    assert_eq!(items[0]["created_by"], "system");
    assert_eq!(items[0]["summary"]["totals"]["detections"], 1);
    let text = messages[0]["text"].as_str().expect("text");
    assert!(
        text.contains(&format!(
            "https://vigia.utec.pe/api/v1/reports/{}/download?format=json",
            items[0]["id"]
        )) && text.contains("detections 1"),
        "the e-mail links the report and sums it up: {text}"
    );
}

mod scheduled {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_the_scheduled_window_report_is_written_listed_and_mailed() {
        the_scheduled_window_report_is_written_listed_and_mailed(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_the_scheduled_window_report_is_written_listed_and_mailed() {
        the_scheduled_window_report_is_written_listed_and_mailed(Backend::Postgres).await
    }
}
