//! Per-incident reports written by the job queue: every department an incident was routed to
//! gets its own, with the comments' text.

use reqwest::StatusCode;
use serde_json::{Value, json};
use vigia_domain::Timestamp;
use vigia_store::jobs::JobState;

use crate::backend_tests;
use crate::helpers::{TestApp, TestUser};
use crate::incidents::{campus, report};
use crate::jobs::worker;

async fn comment(app: &TestApp, who: &TestUser, incident: i64, body: &str) {
    let reply = app
        .post(
            &format!("/api/v1/incidents/{incident}/comments"),
            Some(&who.token),
            json!({ "body": body, "visibility": "internal" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

/// The report file of `record` (an item of `GET /reports`), as JSON.
async fn file(app: &TestApp, token: &str, record: &Value) -> Value {
    let path = format!("/api/v1/reports/{}/download", record["id"]);
    let reply = app.get(&path, Some(token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

fn comment_bodies(report: &Value) -> Vec<&str> {
    report["comments"]
        .as_array()
        .expect("comments")
        .iter()
        .map(|c| c["body"].as_str().expect("body"))
        .collect()
}

backend_tests! {
    async fn a_report_asked_for_before_its_job_ran_is_written_on_the_spot_for_its_staff_only(app: TestApp) {
        let c = campus(&app).await;
        let incident = report(&app, &c.reporter, json!({
            "category_id": c.leak, "title": "Tubería rota en el baño", "description": "Sale agua sin parar."
        })).await;
        let id = incident["id"].as_i64().expect("id");
        comment(&app, &c.staff_a, id, "Cerramos la llave de paso").await;
        let path = format!("/api/v1/incidents/{id}/report");
        // Another department's staff may not read it: nothing is written for them either.
        let refused = app.get(&path, Some(&c.staff_b.token)).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{:?}", refused.body);
        // The test server runs no job worker: the department's staff get it at once.
        let reply = app.get(&path, Some(&c.staff_a.token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["incident"]["id"], id);
        assert_eq!(comment_bodies(&reply.body), ["Cerramos la llave de paso"]);
        let listed = app.get(&format!("/api/v1/reports?kind=incident&incident={id}"), Some(&c.admin.token)).await;
        assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
        assert_eq!(listed.body["items"].as_array().expect("items").len(), 1, "{:?}", listed.body);
    }

    async fn a_quick_reroute_leaves_each_department_its_own_report(app: TestApp) {
        let c = campus(&app).await;
        let incident = report(&app, &c.reporter, json!({
            "category_id": c.leak, "title": "Tubería rota en el baño", "description": "Sale agua sin parar."
        })).await;
        let id = incident["id"].as_i64().expect("id");
        assert_eq!(incident["department_id"], c.dept_a);
        comment(&app, &c.staff_a, id, "Cerramos la llave de paso").await;
        // Rerouted before any job ran: both report jobs run after the move.
        let moved = app
            .put(&format!("/api/v1/incidents/{id}/department"), Some(&c.admin.token), json!({ "department_id": c.dept_b }))
            .await;
        assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
        comment(&app, &c.staff_b, id, "Seguridad acordonó la zona").await;
        let worker = worker(&app);
        worker.drain(Timestamp::now(), 1000).await.expect("drain");
        worker.drain(Timestamp::now(), 1000).await.expect("drain again");

        let jobs = crate::jobs::jobs_of(&app.db, "report.incident").await;
        let routings: Vec<i64> = jobs.iter().flat_map(|j| j.payload["items"].as_array().cloned().unwrap_or_default())
            .filter(|item| item["incident_id"] == id)
            .filter_map(|item| item["department_id"].as_i64())
            .collect();
        assert_eq!(routings, [c.dept_a, c.dept_b], "one report per routing: {jobs:?}");
        assert!(jobs.iter().all(|j| j.state == JobState::Succeeded), "{jobs:?}");
        let listed = app.get(&format!("/api/v1/reports?incident={id}"), Some(&c.admin.token)).await;
        let items = listed.body["items"].as_array().cloned().unwrap_or_default();
        let of = |department: i64| {
            items.iter().find(|r| r["department_id"] == department).unwrap_or_else(|| panic!("no report for {department}: {items:?}")).clone()
        };
        let (for_a, for_b) = (of(c.dept_a), of(c.dept_b));
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(for_a["files"][0]["object_key"], format!("reports/incidents/{}/incident_{id}.json", c.dept_a));
        assert_eq!(for_b["files"][0]["object_key"], format!("reports/incidents/{}/incident_{id}.json", c.dept_b));

        // The first department's report stops where the incident left it: its own note, not
        // the next department's.
        let a = file(&app, &c.staff_a.token, &for_a).await;
        assert_eq!(a["incident"]["id"], id);
        assert_eq!(comment_bodies(&a), ["Cerramos la llave de paso"]);
        let last = a["events"].as_array().and_then(|e| e.last()).expect("events").clone();
        assert_eq!((last["kind"].as_str(), last["data"]["to"].as_i64()), (Some("department_assigned"), Some(c.dept_b)));
        // The department that holds it now sees the whole history.
        let b = file(&app, &c.staff_b.token, &for_b).await;
        assert_eq!(comment_bodies(&b), ["Cerramos la llave de paso", "Seguridad acordonó la zona"]);
        // Each department's staff sees only its own report.
        let reply = app.get(&format!("/api/v1/reports/{}", for_b["id"]), Some(&c.staff_a.token)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        let reply = app.get(&format!("/api/v1/incidents/{id}/report"), Some(&c.staff_a.token)).await;
        assert_eq!(reply.body["department_name"], "Mantenimiento", "{:?}", reply.body);
    }
}
