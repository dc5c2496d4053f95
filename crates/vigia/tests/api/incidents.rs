//! Incidents end to end: reporting, scoping, lifecycle, comments, SLA, idempotency, votes, the
//! public board, and the authorization matrix. Routing and assignment: `assignment.rs`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vigia_domain::users::Role;

use crate::backend_tests;
use crate::helpers::{TestApp, TestUser};

/// A small campus: two departments with one staff member each, a category routed to each, a
/// zone, and
/// two reporters.
pub struct Campus {
    pub admin: TestUser,
    pub dept_a: i64,
    pub dept_b: i64,
    pub leak: i64,
    pub zone: i64,
    pub staff_a: TestUser,
    pub staff_b: TestUser,
    pub reporter: TestUser,
    pub other: TestUser,
}

pub async fn campus(app: &TestApp) -> Campus {
    let admin = app.admin().await;
    let dept_a = app.department(&admin, "Mantenimiento").await;
    let dept_b = app.department(&admin, "Seguridad").await;
    let category = |name: &str, dept: i64, urgency: &str| {
        let body =
            json!({ "name_es": name, "default_department_id": dept, "default_urgency": urgency });
        let token = admin.token.clone();
        async move {
            let reply = app.post("/api/v1/categories", Some(&token), body).await;
            reply.body["id"].as_i64().expect("category id")
        }
    };
    let leak = category("Fuga de agua", dept_a, "high").await;
    category("Robo", dept_b, "medium").await;
    let zone = app
        .post("/api/v1/zones", Some(&admin.token), json!({ "name": "Pabellón A", "center": { "lat": -12.1352, "lon": -77.0222 }, "radius_m": 40.0 }))
        .await
        .body["id"]
        .as_i64()
        .expect("zone id");
    let staff_a = app.staff_in(&admin, dept_a).await;
    let staff_b = app.staff_in(&admin, dept_b).await;
    let reporter = app.user(Role::Reporter).await;
    let other = app.user(Role::Reporter).await;
    Campus {
        admin,
        dept_a,
        dept_b,
        leak,
        zone,
        staff_a,
        staff_b,
        reporter,
        other,
    }
}

pub async fn report(app: &TestApp, who: &TestUser, body: Value) -> Value {
    let reply = app.post("/api/v1/incidents", Some(&who.token), body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body
}

pub fn leak_report(campus: &Campus, visibility: &str) -> Value {
    json!({
        "category_id": campus.leak, "title": "Tubería rota en el baño del 3er piso",
        "description": "Sale agua sin parar desde la mañana.", "zone_id": campus.zone,
        "location_text": "Baño de varones, 3er piso", "point": { "lat": -12.1352, "lon": -77.0222 },
        "visibility": visibility
    })
}

async fn move_to(app: &TestApp, who: &TestUser, id: i64, to: &str) -> crate::helpers::Reply {
    app.post(
        &format!("/api/v1/incidents/{id}/transitions"),
        Some(&who.token),
        json!({ "to": to }),
    )
    .await
}

async fn incident_count(app: &TestApp, admin: &TestUser) -> usize {
    app.get("/api/v1/incidents?limit=200", Some(&admin.token))
        .await
        .body["items"]
        .as_array()
        .map_or(0, Vec::len)
}

pub fn kinds(events: &Value) -> Vec<String> {
    events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["type"].as_str().map(str::to_owned))
        .collect()
}

/// Every id `who` gets from `GET /api/v1/incidents?{query}`, following the cursor page by page.
async fn page_through(app: &TestApp, who: &TestUser, query: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let after = cursor
            .as_deref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let page = app
            .get(
                &format!("/api/v1/incidents?limit=3&{query}{after}"),
                Some(&who.token),
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        ids.extend(
            page.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|i| i["id"].as_i64().expect("id")),
        );
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
    panic!("{query}: still more pages after 100 pages of 3: {ids:?}");
}

backend_tests! {
    async fn a_reported_incident_is_routed_worked_and_its_whole_history_is_kept(app: TestApp) {
        let c = campus(&app).await;
        let created = report(&app, &c.reporter, leak_report(&c, "private")).await;
        let id = created["id"].as_i64().expect("id");
        assert_eq!(created["code"], format!("INC-{id:06}"));
        assert_eq!(created["department_id"], c.dept_a, "routed by its category");
        assert_eq!(created["urgency"], "high", "the category's default urgency");
        assert_eq!(created["status"], "new");
        assert_eq!(created["source"], "web");
        assert_eq!(created["version"], 1);
        assert!(created["sla"]["acknowledge_due"].is_string());

        let mine = app.get("/api/v1/incidents/mine", Some(&c.reporter.token)).await;
        assert_eq!(mine.body["items"][0]["id"], id);
        let queue = app.get(&format!("/api/v1/incidents?department={}&status=new", c.dept_a), Some(&c.staff_a.token)).await;
        assert_eq!(queue.body["items"].as_array().map(Vec::len), Some(1));
        let by_code = app.get(&format!("/api/v1/incidents/INC-{id:06}"), Some(&c.staff_a.token)).await;
        assert_eq!(by_code.status, StatusCode::OK);
        assert_eq!(by_code.headers["etag"], "\"1\"");
        // Creation answers with the row it stored, column for column.
        let fetched = app.get(&format!("/api/v1/incidents/{id}"), Some(&c.reporter.token)).await;
        let mut answered = created.clone();
        answered.as_object_mut().expect("object").remove("timeline");
        let mut stored = fetched.body.clone();
        stored.as_object_mut().expect("object").remove("timeline");
        assert_eq!(answered, stored);

        assert_eq!(move_to(&app, &c.staff_a, id, "acknowledged").await.status, StatusCode::OK);
        let note = app
            .post(&format!("/api/v1/incidents/{id}/comments"), Some(&c.staff_a.token), json!({ "body": "Llamar al gasfitero", "visibility": "internal" }))
            .await;
        assert_eq!(note.status, StatusCode::CREATED);
        app.post(&format!("/api/v1/incidents/{id}/comments"), Some(&c.staff_a.token), json!({ "body": "Vamos en camino" })).await;
        assert_eq!(move_to(&app, &c.staff_a, id, "in_progress").await.status, StatusCode::OK);
        let held = move_to(&app, &c.staff_a, id, "on_hold").await;
        assert_eq!(held.body["sla"]["paused"], true);
        assert_eq!(move_to(&app, &c.staff_a, id, "in_progress").await.body["sla"]["paused"], false);
        let resolved = move_to(&app, &c.staff_a, id, "resolved").await;
        assert!(resolved.body["resolved_at"].is_string());
        let closed = move_to(&app, &c.reporter, id, "closed").await;
        assert_eq!(closed.status, StatusCode::OK, "the reporter confirms the fix: {:?}", closed.body);
        assert_eq!(closed.body["version"], 7);

        let staff_view = app.get(&format!("/api/v1/incidents/{id}/events"), Some(&c.staff_a.token)).await;
        assert_eq!(kinds(&staff_view.body), [
            "incident.created", "incident.status_changed", "incident.comment_added", "incident.comment_added",
            "incident.status_changed", "incident.status_changed", "incident.status_changed",
            "incident.status_changed", "incident.status_changed",
        ]);
        assert_eq!(staff_view.body["items"][1]["data"], json!({ "kind": "status_changed", "from": "new", "to": "acknowledged" }));
        let reporter_view = app.get(&format!("/api/v1/incidents/{id}/events"), Some(&c.reporter.token)).await;
        assert_eq!(kinds(&reporter_view.body).len(), 8, "the internal comment is hidden from the reporter");
        let comments = app.get(&format!("/api/v1/incidents/{id}/comments"), Some(&c.reporter.token)).await;
        assert_eq!(comments.body.as_array().map(Vec::len), Some(1));
        assert_eq!(comments.body[0]["body"], "Vamos en camino");

        let reopened = move_to(&app, &c.reporter, id, "in_progress").await;
        assert_eq!(reopened.status, StatusCode::OK);
        assert!(reopened.body["resolved_at"].is_null() && reopened.body["closed_at"].is_null());
    }

    async fn an_invalid_transition_is_a_409_listing_the_allowed_ones_and_a_stale_version_a_412(app: TestApp) {
        let c = campus(&app).await;
        let id = report(&app, &c.reporter, leak_report(&c, "public")).await["id"].as_i64().expect("id");
        let before = app.snapshot().await;
        let jump = move_to(&app, &c.staff_a, id, "resolved").await;
        assert_eq!(jump.status, StatusCode::CONFLICT);
        assert!(jump.is_problem());
        assert_eq!(jump.body["current"], "new");
        assert_eq!(jump.body["allowed"], json!(["acknowledged"]));
        let unknown = move_to(&app, &c.staff_a, id, "exploded").await;
        assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
        let by_reporter = move_to(&app, &c.reporter, id, "acknowledged").await;
        assert_eq!(by_reporter.status, StatusCode::FORBIDDEN);
        let stale = app
            .client
            .post(format!("{}/api/v1/incidents/{id}/transitions", app.url))
            .bearer_auth(&c.staff_a.token)
            .header("if-match", "\"7\"")
            .json(&json!({ "to": "acknowledged" }))
            .send()
            .await
            .expect("send");
        assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(app.snapshot().await, before);
        let events = app.get(&format!("/api/v1/incidents/{id}/events"), Some(&c.staff_a.token)).await;
        assert_eq!(kinds(&events.body), ["incident.created"], "rejected requests leave no event");
        let fresh = app
            .client
            .post(format!("{}/api/v1/incidents/{id}/transitions", app.url))
            .bearer_auth(&c.staff_a.token)
            .header("if-match", "\"1\"")
            .json(&json!({ "to": "acknowledged" }))
            .send()
            .await
            .expect("send");
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(fresh.headers()["etag"], "\"2\"");

        // If-Match takes exactly the forms its documented pattern describes: `"2"`, `W/"2"`,
        // `2` or `*`; anything else is a 400, even when it contains the current version.
        let transition = |tag: &'static str, to: &'static str| {
            app.client
                .post(format!("{}/api/v1/incidents/{id}/transitions", app.url))
                .bearer_auth(&c.staff_a.token)
                .header("if-match", tag)
                .json(&json!({ "to": to }))
                .send()
        };
        for sloppy in ["\"\"2\"\"", "+2", "W/W/\"2\"", "\"2", "0x2"] {
            let refused = transition(sloppy, "in_progress").await.expect("send");
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "If-Match: {sloppy}");
        }
        let weak = transition("W/\"2\"", "in_progress").await.expect("send");
        assert_eq!(weak.status(), StatusCode::OK);
        assert_eq!(weak.headers()["etag"], "\"3\"");
    }

    async fn bad_reports_name_the_field_and_create_nothing(app: TestApp) {
        let c = campus(&app).await;
        let before = incident_count(&app, &c.admin).await;
        for (body, field) in [
            (json!({ "category_id": 9999, "title": "t", "description": "d" }), "category_id"),
            (json!({ "category_id": c.leak, "title": "t", "description": "d", "zone_id": 9999 }), "zone_id"),
            (json!({ "category_id": c.leak, "title": "t", "description": "x".repeat(5001) }), "description"),
            (json!({ "category_id": c.leak, "title": "", "description": "d" }), "title"),
            (json!({ "category_id": c.leak, "title": "t", "description": "d", "urgency": "yesterday" }), "urgency"),
            (json!({ "category_id": c.leak, "title": "t", "description": "d", "department_id": c.dept_b }), "department_id"),
            (json!({ "title": "t", "description": "d" }), "category_id"),
        ] {
            let reply = app.post("/api/v1/incidents", Some(&c.reporter.token), body).await;
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {:?}", reply.body);
            assert_eq!(reply.error_field(), Some(field), "{:?}", reply.body);
        }
        assert_eq!(incident_count(&app, &c.admin).await, before);
    }

    async fn every_role_pages_through_exactly_what_its_scope_admits_in_order(app: TestApp) {
        let c = campus(&app).await;
        let categories = app.get("/api/v1/categories", Some(&c.admin.token)).await;
        let theft = categories.body.as_array().expect("categories").iter()
            .find(|k| k["default_department_id"].as_i64() == Some(c.dept_b))
            .and_then(|k| k["id"].as_i64()).expect("a category routed to the second department");
        // Reporters, staff reporting too, both departments, public and private, two urgencies.
        let reporters = [&c.reporter, &c.other, &c.staff_b, &c.reporter];
        for n in 0..26 {
            let category = if n % 3 == 0 { theft } else { c.leak };
            let visibility = if n % 5 == 0 { "public" } else { "private" };
            let body = json!({ "category_id": category, "title": format!("Incidente {n}"),
                "description": "Para recorrer la lista por páginas.", "visibility": visibility });
            report(&app, reporters[n % reporters.len()], body).await;
        }
        // Unfiltered and filtered pages are planned one way, pages filtered by an owner
        // (department, assignee, reporter) another: both must give the same answers.
        let filters = [String::new(), "urgency=high".into(), "status=new&q=incidente".into(),
            format!("department={}&status=new", c.dept_a), format!("reporter={}", c.other.id)];
        for filter in &filters {
            let all = app.get(&format!("/api/v1/incidents?limit=200&{filter}"), Some(&c.admin.token)).await;
            let all = all.body["items"].as_array().expect("items").clone();
            assert!(all.len() >= 6, "{filter}: too few incidents to page through");
            let viewers = [(&c.staff_a, Some(c.dept_a)), (&c.staff_b, Some(c.dept_b)), (&c.reporter, None), (&c.other, None), (&c.admin, None)];
            for (viewer, department) in viewers {
                // A filter on a person finds only incidents whose people the viewer is shown.
                let admitted: Vec<i64> = all.iter().filter(|i| {
                    let sees_people = viewer.id == c.admin.id
                        || i["reporter_id"].as_i64() == Some(viewer.id)
                        || (department.is_some() && i["department_id"].as_i64() == department);
                    sees_people || (i["visibility"] == "public" && !filter.starts_with("reporter="))
                }).map(|i| i["id"].as_i64().expect("id")).collect();
                let newest = page_through(&app, viewer, filter).await;
                assert_eq!(newest, admitted, "{filter}: viewer {}", viewer.email);
                let oldest = page_through(&app, viewer, &format!("sort=created&{filter}")).await;
                assert_eq!(oldest, admitted.iter().rev().copied().collect::<Vec<_>>(), "{filter}, oldest first: viewer {}", viewer.email);
            }
        }
    }

    async fn a_reporter_never_learns_about_another_reporters_private_incident(app: TestApp) {
        let c = campus(&app).await;
        let id = report(&app, &c.reporter, leak_report(&c, "private")).await["id"].as_i64().expect("id");
        for path in [format!("/api/v1/incidents/{id}"), format!("/api/v1/incidents/{id}/events"), format!("/api/v1/incidents/{id}/comments")] {
            assert_eq!(app.get(&path, Some(&c.other.token)).await.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(app.get(&path, Some(&c.staff_b.token)).await.status, StatusCode::NOT_FOUND, "{path}");
        }
        let listed = app.get("/api/v1/incidents", Some(&c.other.token)).await;
        assert_eq!(listed.body["items"], json!([]));
        let transition = move_to(&app, &c.other, id, "closed").await;
        assert_eq!(transition.status, StatusCode::NOT_FOUND);
    }

    async fn the_same_idempotency_key_returns_the_first_incident_and_never_a_duplicate(app: TestApp) {
        let c = campus(&app).await;
        let send = |body: Value| {
            let request = app
                .client
                .post(format!("{}/api/v1/incidents", app.url))
                .bearer_auth(&c.reporter.token)
                .header("idempotency-key", "sensor-7-2026-11-23T10:00")
                .json(&body);
            async move { TestApp::reply(request.send().await.expect("send")).await }
        };
        let first = send(leak_report(&c, "public")).await;
        assert_eq!(first.status, StatusCode::CREATED);
        let again = send(leak_report(&c, "public")).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.headers["idempotent-replayed"], "true");
        assert_eq!(again.body["id"], first.body["id"]);
        let other_body = send(leak_report(&c, "private")).await;
        assert_eq!(other_body.status, StatusCode::CONFLICT);
        let all = app.get("/api/v1/incidents", Some(&c.admin.token)).await;
        assert_eq!(all.body["items"].as_array().map(Vec::len), Some(1));
    }

    async fn concurrent_reports_are_each_stored_once_with_their_events(app: TestApp) {
        // 40 reports at once share commits on SQLite; four of them replay one key, so exactly
        // one of those may create an incident and the failing ones must not disturb the rest.
        let c = campus(&app).await;
        let sends = (0..40).map(|n| {
            let mut request = app
                .client
                .post(format!("{}/api/v1/incidents", app.url))
                .bearer_auth(&c.reporter.token)
                .json(&leak_report(&c, "public"));
            if n % 10 == 0 {
                request = request.header("idempotency-key", "burst-key");
            }
            async move { TestApp::reply(request.send().await.expect("send")).await }
        });
        let replies = futures::future::join_all(sends).await;
        let created: Vec<i64> = replies
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .map(|r| r.body["id"].as_i64().expect("id"))
            .collect();
        assert_eq!(created.len(), 37, "36 plain reports and one for the shared key");
        for reply in &replies {
            assert!(matches!(reply.status, StatusCode::CREATED | StatusCode::OK), "{:?}", reply.body);
        }
        let mut unique = created.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), created.len(), "every incident has its own id");
        let listed = app.get("/api/v1/incidents?limit=100", Some(&c.admin.token)).await;
        assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(37));
        for id in created.iter().take(5) {
            let events = app.get(&format!("/api/v1/incidents/{id}/events"), Some(&c.admin.token)).await;
            assert_eq!(kinds(&events.body), ["incident.created"], "one creation event each");
        }
    }

    async fn public_incidents_take_one_vote_per_person_withdrawn_idempotently_and_the_board_hides_who_reported(app: TestApp) {
        let c = campus(&app).await;
        let public = report(&app, &c.reporter, leak_report(&c, "public")).await["id"].as_i64().expect("id");
        let private = report(&app, &c.reporter, leak_report(&c, "private")).await["id"].as_i64().expect("id");
        let vote = app.post(&format!("/api/v1/incidents/{public}/votes"), Some(&c.other.token), json!({})).await;
        assert_eq!(vote.status, StatusCode::CREATED);
        assert_eq!(vote.body["votes"], 1);
        let twice = app.post(&format!("/api/v1/incidents/{public}/votes"), Some(&c.other.token), json!({})).await;
        assert_eq!(twice.status, StatusCode::CONFLICT);
        assert_eq!(app.post(&format!("/api/v1/incidents/{public}/votes"), Some(&c.staff_b.token), json!({})).await.body["votes"], 2);
        assert_eq!(app.post(&format!("/api/v1/incidents/{private}/votes"), Some(&c.other.token), json!({})).await.status, StatusCode::NOT_FOUND);
        let mine = app.post(&format!("/api/v1/incidents/{private}/votes"), Some(&c.reporter.token), json!({})).await;
        assert_eq!(mine.status, StatusCode::CONFLICT, "private incidents take no votes");
        let withdrawn = app.delete(&format!("/api/v1/incidents/{public}/votes"), Some(&c.other.token)).await;
        assert_eq!(withdrawn.body["votes"], 1);
        let again = app.delete(&format!("/api/v1/incidents/{public}/votes"), Some(&c.other.token)).await;
        assert_eq!(again.status, StatusCode::OK, "withdrawing a vote one does not have is idempotent: {:?}", again.body);
        assert_eq!((again.body["votes"].clone(), again.body["voted"].clone()), (json!(1), json!(false)));
        let missing = app.delete("/api/v1/incidents/999999/votes", Some(&c.other.token)).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "a missing incident is still 404");

        let board = app.get("/api/v1/public/incidents", None).await;
        assert_eq!(board.status, StatusCode::OK);
        let items = board.body["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert!(items[0]["reporter_id"].is_null());
        let seen_by_other = app.get(&format!("/api/v1/incidents/{public}"), Some(&c.other.token)).await;
        assert!(seen_by_other.body["reporter_id"].is_null(), "personal data hidden from other reporters");
        let hide = app.put(&format!("/api/v1/incidents/{public}/visibility"), Some(&c.staff_a.token), json!({ "visibility": "private" })).await;
        assert_eq!(hide.status, StatusCode::OK);
        assert_eq!(app.get("/api/v1/public/incidents", None).await.body["items"], json!([]));
    }

    async fn preview_and_location_checks_save_nothing(app: TestApp) {
        let c = campus(&app).await;
        let before = app.snapshot().await;
        let preview = app.post("/api/v1/incidents/preview", Some(&c.reporter.token), leak_report(&c, "public")).await;
        assert_eq!(preview.status, StatusCode::OK, "{:?}", preview.body);
        assert_eq!(preview.body["department_id"], c.dept_a);
        assert_eq!(preview.body["urgency"], "high");
        assert_eq!(preview.body["warnings"], json!([]));
        let outside = app
            .post("/api/v1/incidents/validate-location", Some(&c.reporter.token), json!({ "point": { "lat": -12.2, "lon": -77.0 } }))
            .await;
        assert_eq!(outside.body["valid"], false);
        let inside = app
            .post("/api/v1/incidents/validate-location", Some(&c.reporter.token), json!({ "zone_id": c.zone, "point": { "lat": -12.1352, "lon": -77.0222 } }))
            .await;
        assert_eq!(inside.body["valid"], true);
        assert_eq!(inside.body["zone_name"], "Pabellón A");
        assert_eq!(app.snapshot().await, before);
        assert_eq!(app.get("/api/v1/incidents", Some(&c.admin.token)).await.body["items"], json!([]));
    }

    async fn random_action_sequences_keep_history_consistent_with_the_current_state(app: TestApp) {
        let c = campus(&app).await;
        let id = report(&app, &c.reporter, leak_report(&c, "public")).await["id"].as_i64().expect("id");
        let statuses = ["new", "acknowledged", "in_progress", "on_hold", "resolved", "closed"];
        let actors = [&c.staff_a, &c.reporter, &c.admin, &c.other];
        let mut seed: u64 = 0x5eed_1234_abcd_0001;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..40 {
            let actor = actors[(next() % actors.len() as u64) as usize];
            let to = statuses[(next() % statuses.len() as u64) as usize];
            let reply = move_to(&app, actor, id, to).await;
            assert!([200, 403, 404, 409].contains(&reply.status.as_u16()), "{to}: {:?}", reply.body);
        }
        let current = app.get(&format!("/api/v1/incidents/{id}"), Some(&c.admin.token)).await.body;
        let events = app.get(&format!("/api/v1/incidents/{id}/events?limit=500"), Some(&c.admin.token)).await.body;
        let mut state = "new".to_owned();
        let mut changes = 0;
        for event in events["items"].as_array().expect("items") {
            if event["type"] == "incident.status_changed" {
                assert_eq!(event["data"]["from"], state.as_str(), "each change starts where the last ended");
                state = event["data"]["to"].as_str().expect("to").to_owned();
                changes += 1;
            }
        }
        assert_eq!(current["status"], state.as_str(), "the history replays to the current status");
        assert_eq!(current["version"], 1 + changes);
    }

    async fn time_on_hold_survives_a_change_of_policy_and_urgency(app: TestApp) {
        let c = campus(&app).await;
        let policy = app
            .put(&format!("/api/v1/categories/{}/sla/low", c.leak), Some(&c.admin.token), json!({ "acknowledge_within_secs": 600, "resolve_within_secs": 3600 }))
            .await;
        assert_eq!(policy.status, StatusCode::OK, "{:?}", policy.body);
        assert_eq!(policy.body[0]["urgency"], "low");
        assert_eq!(policy.body[0]["configured"], true);
        let bad = app
            .put(&format!("/api/v1/categories/{}/sla/low", c.leak), Some(&c.admin.token), json!({ "acknowledge_within_secs": -5, "resolve_within_secs": 3600 }))
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

        let incident = report(&app, &c.reporter, leak_report(&c, "private")).await;
        let id = incident["id"].as_i64().expect("id");
        for to in ["acknowledged", "in_progress", "on_hold"] {
            assert_eq!(move_to(&app, &c.staff_a, id, to).await.status, StatusCode::OK);
        }
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        let edited = app.patch(&format!("/api/v1/incidents/{id}"), Some(&c.staff_a.token), json!({ "urgency": "low" })).await;
        assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
        assert_eq!(edited.body["urgency"], "low");
        assert_eq!(edited.body["sla"]["paused"], true, "the change of policy does not end the pause");
        let resumed = move_to(&app, &c.staff_a, id, "in_progress").await;
        let created = vigia_domain::Timestamp::parse_rfc3339(incident["created_at"].as_str().expect("created")).expect("ts");
        let due = vigia_domain::Timestamp::parse_rfc3339(resumed.body["sla"]["resolve_due"].as_str().expect("due")).expect("ts");
        let budget_ms = due.millis() - created.millis();
        assert!(budget_ms >= 3_600_000 + 1_100, "the pause was lost: {budget_ms} ms");
        assert!(budget_ms < 3_600_000 + 10_000, "{budget_ms} ms");
        let events = app.get(&format!("/api/v1/incidents/{id}/events"), Some(&c.staff_a.token)).await;
        assert!(kinds(&events.body).contains(&"incident.urgency_changed".to_owned()));

        let by_reporter = app.patch(&format!("/api/v1/incidents/{id}"), Some(&c.reporter.token), json!({ "title": "Otra cosa" })).await;
        assert_eq!(by_reporter.status, StatusCode::FORBIDDEN, "reporters may edit only while the incident is new");
    }

    async fn the_authorization_matrix_holds_for_every_incident_endpoint_and_role(app: TestApp) {
        let c = campus(&app).await;
        // Who: anonymous, the reporter (owner), another reporter, staff of the department,
        // staff of another department, admin.
        struct Case { method: Method, path: &'static str, body: Value, expect: [u16; 6] }
        let cases = [
            Case { method: Method::GET, path: "/api/v1/incidents/{id}", body: Value::Null, expect: [401, 200, 404, 200, 404, 200] },
            Case { method: Method::GET, path: "/api/v1/incidents/{id}/events", body: Value::Null, expect: [401, 200, 404, 200, 404, 200] },
            Case { method: Method::GET, path: "/api/v1/incidents/{id}/comments", body: Value::Null, expect: [401, 200, 404, 200, 404, 200] },
            Case { method: Method::POST, path: "/api/v1/incidents/{id}/comments", body: json!({ "body": "hola" }), expect: [401, 201, 404, 201, 404, 201] },
            Case { method: Method::POST, path: "/api/v1/incidents/{id}/comments", body: json!({ "body": "nota", "visibility": "internal" }), expect: [401, 422, 404, 201, 404, 201] },
            Case { method: Method::POST, path: "/api/v1/incidents/{id}/transitions", body: json!({ "to": "acknowledged" }), expect: [401, 403, 404, 200, 404, 200] },
            Case { method: Method::PUT, path: "/api/v1/incidents/{id}/assignee", body: json!({ "assignee_id": null }), expect: [401, 403, 404, 200, 404, 200] },
            Case { method: Method::PUT, path: "/api/v1/incidents/{id}/visibility", body: json!({ "visibility": "private" }), expect: [401, 403, 404, 200, 404, 200] },
            Case { method: Method::PUT, path: "/api/v1/incidents/{id}/department", body: json!({ "department_id": c.dept_a }), expect: [401, 403, 403, 403, 403, 200] },
            Case { method: Method::POST, path: "/api/v1/incidents/{id}/votes", body: json!({}), expect: [401, 409, 404, 409, 404, 409] },
            Case { method: Method::GET, path: "/api/v1/incidents", body: Value::Null, expect: [401, 200, 200, 200, 200, 200] },
            Case { method: Method::GET, path: "/api/v1/incidents/mine", body: Value::Null, expect: [401, 200, 200, 200, 200, 200] },
            Case { method: Method::GET, path: "/api/v1/public/incidents", body: Value::Null, expect: [200, 200, 200, 200, 200, 200] },
        ];
        let who: [Option<&TestUser>; 6] = [None, Some(&c.reporter), Some(&c.other), Some(&c.staff_a), Some(&c.staff_b), Some(&c.admin)];
        for case in &cases {
            for (i, user) in who.iter().enumerate() {
                let id = report(&app, &c.reporter, leak_report(&c, "private")).await["id"].as_i64().expect("id");
                let path = case.path.replace("{id}", &id.to_string());
                let body = (!case.body.is_null()).then(|| case.body.clone());
                let reply = app.request(case.method.clone(), &path, user.map(|u| u.token.as_str()), body).await;
                assert_eq!(reply.status.as_u16(), case.expect[i], "{} {} as #{i}: {:?}", case.method, case.path, reply.body);
                if !reply.status.is_success() {
                    assert!(reply.is_problem(), "{} {} as #{i}: errors are problem+json", case.method, case.path);
                }
            }
        }
    }
}
