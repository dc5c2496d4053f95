//! Routing and assignment: admins reroute, staff assign their own people, and the automatic
//! policies (round robin skipping staff who are away, least open work).

use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::TestApp;
use crate::incidents::{campus, kinds, leak_report, report};

backend_tests! {
    async fn admins_reroute_and_staff_assign_only_their_own_people(app: TestApp) {
        let c = campus(&app).await;
        let id = report(&app, &c.reporter, leak_report(&c, "private")).await["id"].as_i64().expect("id");
        let outsider = app.put(&format!("/api/v1/incidents/{id}/assignee"), Some(&c.staff_a.token), json!({ "assignee_id": c.staff_b.id })).await;
        assert_eq!(outsider.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(outsider.error_field(), Some("assignee_id"));
        let assigned = app.put(&format!("/api/v1/incidents/{id}/assignee"), Some(&c.staff_a.token), json!({ "assignee_id": c.staff_a.id })).await;
        assert_eq!(assigned.status, StatusCode::OK);
        assert_eq!(assigned.body["assignee_id"], c.staff_a.id);
        let by_staff = app.put(&format!("/api/v1/incidents/{id}/department"), Some(&c.staff_a.token), json!({ "department_id": c.dept_b })).await;
        assert_eq!(by_staff.status, StatusCode::FORBIDDEN);
        let moved = app.put(&format!("/api/v1/incidents/{id}/department"), Some(&c.admin.token), json!({ "department_id": c.dept_b })).await;
        assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
        assert_eq!(moved.body["department_id"], c.dept_b);
        assert!(moved.body["assignee_id"].is_null(), "the old department's assignee is cleared");
        assert_eq!(app.get(&format!("/api/v1/incidents/{id}"), Some(&c.staff_a.token)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/api/v1/incidents/{id}"), Some(&c.staff_b.token)).await.status, StatusCode::OK);
        let events = app.get(&format!("/api/v1/incidents/{id}/events"), Some(&c.admin.token)).await;
        assert_eq!(kinds(&events.body), ["incident.created", "incident.assignee_changed", "incident.department_assigned", "incident.assignee_changed"]);
        let unknown = app.put(&format!("/api/v1/incidents/{id}/department"), Some(&c.admin.token), json!({ "department_id": 999 })).await;
        assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn round_robin_assignment_skips_staff_who_are_away(app: TestApp) {
        let c = campus(&app).await;
        let second = app.staff_in(&c.admin, c.dept_a).await;
        let third = app.staff_in(&c.admin, c.dept_a).await;
        let strategy = app
            .put(&format!("/api/v1/departments/{}", c.dept_a), Some(&c.admin.token), json!({ "name": "Mantenimiento", "contact_emails": [], "assignment_strategy": "round_robin" }))
            .await;
        assert_eq!(strategy.body["assignment_strategy"], "round_robin");
        let away = app.patch("/api/v1/me", Some(&second.token), json!({ "away": true })).await;
        assert_eq!(away.body["away"], true);
        let mut assignees = Vec::new();
        for _ in 0..4 {
            let incident = report(&app, &c.reporter, leak_report(&c, "private")).await;
            assignees.push(incident["assignee_id"].as_i64().expect("auto-assigned"));
        }
        assert_eq!(assignees, [c.staff_a.id, third.id, c.staff_a.id, third.id]);
    }

    async fn least_open_assignment_evens_out_open_work_at_creation(app: TestApp) {
        let c = campus(&app).await;
        let second = app.staff_in(&c.admin, c.dept_a).await;
        let strategy = app
            .put(&format!("/api/v1/departments/{}", c.dept_a), Some(&c.admin.token), json!({ "name": "Mantenimiento", "contact_emails": [], "assignment_strategy": "least_open" }))
            .await;
        assert_eq!(strategy.body["assignment_strategy"], "least_open");
        let mut assignees = Vec::new();
        for _ in 0..4 {
            let incident = report(&app, &c.reporter, leak_report(&c, "private")).await;
            assignees.push(incident["assignee_id"].as_i64().expect("auto-assigned"));
        }
        let count = |who: i64| assignees.iter().filter(|&&a| a == who).count();
        assert_eq!((count(c.staff_a.id), count(second.id)), (2, 2), "{assignees:?}");
        // One more each way: whoever holds fewer open incidents gets the next one.
        let first = report(&app, &c.reporter, leak_report(&c, "private")).await["assignee_id"].as_i64().expect("assigned");
        let next = report(&app, &c.reporter, leak_report(&c, "private")).await["assignee_id"].as_i64().expect("assigned");
        assert_ne!(first, next, "the one with fewer open incidents is picked");
    }
}
