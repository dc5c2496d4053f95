//! Statistics, staff workload and public rankings: exact counts over a known dataset, scoping
//! by department, who may ask, and what the public sees.

use reqwest::StatusCode;
use serde_json::{Value, json};
use vigia_domain::users::Role;

use crate::backend_tests;
use crate::helpers::{TestApp, TestUser};

/// Departments A and B, their staff, and four incidents:
/// i1 (A, high, zone, public) resolved and assigned to staff A; i2 (A, low, public)
/// acknowledged; i3 (B, low, zone, public) acknowledged; i4 (B, emergency, private) new.
struct Dataset {
    admin: TestUser,
    staff_a: TestUser,
    staff_b: TestUser,
    reporter: TestUser,
    department_a: i64,
    department_b: i64,
    category_a: i64,
    category_b: i64,
    zone: i64,
    incidents: [i64; 4],
}

async fn category(
    app: &TestApp,
    admin: &TestUser,
    name: &str,
    department: i64,
    urgency: &str,
) -> i64 {
    let body = json!({ "name_es": name, "name_en": name, "default_department_id": department, "default_urgency": urgency });
    let reply = app
        .post("/api/v1/categories", Some(&admin.token), body)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["id"].as_i64().expect("category id")
}

async fn report(app: &TestApp, who: &TestUser, body: Value) -> i64 {
    let reply = app.post("/api/v1/incidents", Some(&who.token), body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["id"].as_i64().expect("incident id")
}

fn now_ms() -> i64 {
    vigia_domain::Timestamp::now().millis()
}

async fn dataset(app: &TestApp) -> Dataset {
    let admin = app.admin().await;
    let department_a = app.department(&admin, "Mantenimiento").await;
    let department_b = app.department(&admin, "Seguridad").await;
    let category_a = category(app, &admin, "Fuga de agua", department_a, "high").await;
    let category_b = category(app, &admin, "Robo", department_b, "low").await;
    let zone = app
        .post("/api/v1/zones", Some(&admin.token), json!({ "name": "Pabellón A", "center": { "lat": -12.1352, "lon": -77.0222 }, "radius_m": 40.0 }))
        .await
        .body["id"]
        .as_i64()
        .expect("zone id");
    let staff_a = app.staff_in(&admin, department_a).await;
    let staff_b = app.staff_in(&admin, department_b).await;
    let reporter = app.user(Role::Reporter).await;
    let text = "Hay un problema que necesita atención";
    let i1 = report(app, &reporter, json!({ "category_id": category_a, "title": "Fuga en el baño", "description": text, "zone_id": zone })).await;
    let i2 = report(app, &reporter, json!({ "category_id": category_a, "title": "Goteo en el techo", "description": text, "urgency": "low" })).await;
    let i3 = report(app, &reporter, json!({ "category_id": category_b, "title": "Robo de laptop", "description": text, "zone_id": zone })).await;
    let i4 = report(app, &reporter, json!({ "category_id": category_b, "title": "Amenaza", "description": text, "urgency": "emergency", "visibility": "private" })).await;
    app.move_through(&staff_a, i1, &["acknowledged", "in_progress", "resolved"])
        .await;
    app.move_through(&staff_a, i2, &["acknowledged"]).await;
    app.move_through(&staff_b, i3, &["acknowledged"]).await;
    let assign = app
        .put(
            &format!("/api/v1/incidents/{i1}/assignee"),
            Some(&admin.token),
            json!({ "assignee_id": staff_a.id }),
        )
        .await;
    assert_eq!(assign.status, StatusCode::OK, "{:?}", assign.body);

    // Pin the times the API stamped: i1 acknowledged after 60 s and resolved after an hour,
    // i2 acknowledged after 180 s and past its resolve target, i3 acknowledged after 30 s,
    // i4 past its acknowledge target.
    let created = now_ms() - 2 * 3_600_000;
    let update = "UPDATE incidents SET created_at = $2, acknowledged_at = $3, resolved_at = $4 WHERE id = $1";
    app.exec(
        update,
        &[i1, created, created + 60_000, created + 3_600_000],
    )
    .await;
    let update = "UPDATE incidents SET created_at = $2, acknowledged_at = $3, resolve_due_at = $4 WHERE id = $1";
    app.exec(update, &[i2, created, created + 180_000, now_ms() - 1_000])
        .await;
    let update = "UPDATE incidents SET created_at = $2, acknowledged_at = $3 WHERE id = $1";
    app.exec(update, &[i3, created, created + 30_000]).await;
    app.exec(
        "UPDATE incidents SET acknowledge_due_at = $2 WHERE id = $1",
        &[i4, now_ms() - 1_000],
    )
    .await;
    Dataset {
        admin,
        staff_a,
        staff_b,
        reporter,
        department_a,
        department_b,
        category_a,
        category_b,
        zone,
        incidents: [i1, i2, i3, i4],
    }
}

/// `[{key: k, count: n}, ...]` as `[(k, n), ...]`.
fn pairs(list: &Value, key: &str) -> Vec<(Value, i64)> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|e| (e[key].clone(), e["count"].as_i64().expect("count")))
        .collect()
}

fn per_day_sum(stats: &Value, field: &str) -> i64 {
    stats["per_day"]
        .as_array()
        .expect("per_day")
        .iter()
        .map(|d| d[field].as_i64().expect("n"))
        .sum()
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a time in milliseconds.
fn rfc3339(ms: i64) -> String {
    vigia_domain::Timestamp::from_millis(ms).to_string()
}

/// `GET endpoint` over incidents created in `[from, to)` with `token`, which must succeed.
async fn over_range(app: &TestApp, endpoint: &str, from: i64, to: i64, token: String) -> Value {
    let path = format!(
        "{endpoint}?created_from={}&created_to={}",
        rfc3339(from),
        rfc3339(to)
    );
    let reply = app.get(&path, Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

backend_tests! {
    async fn whole_days_come_from_the_summaries_kept_by_every_change(app: TestApp) {
        let d = dataset(&app).await;
        let [i1, i2, i3, i4] = d.incidents;
        // Five days ago at midnight (UTC) is day 0 of this test.
        let day0 = (now_ms() / DAY - 5) * DAY;
        let place = "UPDATE incidents SET created_at = $2 WHERE id = $1";
        app.exec(place, &[i1, day0 + 10 * HOUR]).await;
        app.exec(place, &[i2, day0 + 12 * HOUR]).await;
        app.exec(place, &[i3, day0 + DAY + 9 * HOUR]).await;
        app.exec(place, &[i4, day0 + 2 * DAY + 23 * HOUR]).await;
        app.exec("UPDATE incidents SET resolved_at = $2 WHERE id = $1", &[i1, day0 + DAY + 8 * HOUR]).await;
        let stats = |from: i64, to: i64, who: &TestUser| over_range(&app, "/api/v1/stats", from, to, who.token.clone());
        let per_day = |s: &Value| -> Vec<(i64, i64)> {
            s["per_day"].as_array().expect("per_day").iter()
                .map(|d| (d["created"].as_i64().expect("created"), d["resolved"].as_i64().expect("resolved")))
                .collect()
        };

        // Three whole days: read from the summaries only.
        let s = stats(day0, day0 + 3 * DAY, &d.admin).await;
        assert_eq!(s["totals"], json!({ "created": 4, "open": 3, "resolved": 1 }));
        assert_eq!(per_day(&s), [(2, 0), (1, 1), (1, 0)]);
        assert_eq!(pairs(&s["by_status"], "status"), [
            (json!("new"), 1), (json!("acknowledged"), 2), (json!("in_progress"), 0),
            (json!("on_hold"), 0), (json!("resolved"), 1), (json!("closed"), 0),
        ]);
        assert_eq!(pairs(&s["by_urgency"], "urgency"), [
            (json!("low"), 2), (json!("medium"), 0), (json!("high"), 1), (json!("emergency"), 1),
        ]);
        assert_eq!(pairs(&s["by_department"], "department_id"), [(json!(d.department_a), 2), (json!(d.department_b), 2)]);
        let mut zones = pairs(&s["by_zone"], "zone_id");
        zones.sort_by_key(|(k, _)| k.as_i64());
        assert_eq!(zones, [(Value::Null, 2), (json!(d.zone), 2)]);

        // Staff workload from the summary: pin the milestones to the new creation times; i3's
        // resolve target is still ahead, i2's and i4's targets have passed.
        let milestones = "UPDATE incidents SET acknowledged_at = $2, resolve_due_at = $3 WHERE id = $1";
        app.exec(milestones, &[i1, day0 + 10 * HOUR + 60_000, now_ms() + DAY]).await;
        app.exec(milestones, &[i2, day0 + 12 * HOUR + 180_000, now_ms() - 1_000]).await;
        app.exec(milestones, &[i3, day0 + DAY + 9 * HOUR + 30_000, now_ms() + DAY]).await;
        let staff = |from: i64, to: i64, who: &TestUser| over_range(&app, "/api/v1/stats/staff", from, to, who.token.clone());
        let w = staff(day0, day0 + 3 * DAY, &d.admin).await;
        assert_eq!(w["departments"], json!([
            { "department_id": d.department_a, "name": "Mantenimiento", "open": 1, "overdue": 1,
              "mean_time_to_acknowledge_secs": 120.0, "mean_time_to_resolve_secs": 79200.0 },
            { "department_id": d.department_b, "name": "Seguridad", "open": 2, "overdue": 1,
              "mean_time_to_acknowledge_secs": 30.0, "mean_time_to_resolve_secs": null },
        ]));
        assert_eq!(w["assignees"], json!([
            { "assignee_id": d.staff_a.id, "display_name": "Test User", "open": 0, "overdue": 0,
              "mean_time_to_acknowledge_secs": 60.0, "mean_time_to_resolve_secs": 79200.0 },
            { "assignee_id": null, "display_name": null, "open": 3, "overdue": 2,
              "mean_time_to_acknowledge_secs": 105.0, "mean_time_to_resolve_secs": null },
        ]));
        // Cut inside days: i2 from the head's incidents, i3 from the summary of day 1.
        let w = staff(day0 + 11 * HOUR, day0 + 2 * DAY + 12 * HOUR, &d.admin).await;
        assert_eq!(w["departments"], json!([
            { "department_id": d.department_a, "name": "Mantenimiento", "open": 1, "overdue": 1,
              "mean_time_to_acknowledge_secs": 180.0, "mean_time_to_resolve_secs": null },
            { "department_id": d.department_b, "name": "Seguridad", "open": 1, "overdue": 0,
              "mean_time_to_acknowledge_secs": 30.0, "mean_time_to_resolve_secs": null },
        ]));
        // Once the target of i3 passes, it is overdue.
        app.exec(milestones, &[i3, day0 + DAY + 9 * HOUR + 30_000, now_ms() - 1_000]).await;
        let w = staff(day0, day0 + 3 * DAY, &d.staff_b).await;
        assert_eq!(w["departments"], json!([
            { "department_id": d.department_b, "name": "Seguridad", "open": 2, "overdue": 2,
              "mean_time_to_acknowledge_secs": 30.0, "mean_time_to_resolve_secs": null },
        ]));
        app.exec(milestones, &[i3, day0 + DAY + 9 * HOUR + 30_000, now_ms() + DAY]).await;

        // Cut inside days: the ends are counted from the incidents, the middle from the summaries.
        let s = stats(day0 + 11 * HOUR, day0 + 2 * DAY + 12 * HOUR, &d.admin).await;
        assert_eq!(s["totals"], json!({ "created": 2, "open": 2, "resolved": 1 }), "i2 (head) and i3 (whole day)");
        assert_eq!(per_day(&s), [(1, 0), (1, 1), (0, 0)]);

        // Changes through the API move the counts: i3 rerouted to A, i2 resolved, i4 acknowledged.
        let moved = app.put(&format!("/api/v1/incidents/{i3}/department"), Some(&d.admin.token), json!({ "department_id": d.department_a })).await;
        assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
        app.move_through(&d.staff_a, i2, &["in_progress", "resolved"]).await;
        app.move_through(&d.staff_b, i4, &["acknowledged"]).await;
        let s = stats(day0, day0 + 3 * DAY, &d.admin).await;
        assert_eq!(pairs(&s["by_department"], "department_id"), [(json!(d.department_a), 3), (json!(d.department_b), 1)]);
        assert_eq!(pairs(&s["by_status"], "status"), [
            (json!("new"), 0), (json!("acknowledged"), 2), (json!("in_progress"), 0),
            (json!("on_hold"), 0), (json!("resolved"), 2), (json!("closed"), 0),
        ]);
        // i2 was resolved today, outside these three days.
        assert_eq!(per_day(&s), [(2, 0), (1, 1), (1, 0)]);
        let w = staff(day0, day0 + 3 * DAY, &d.admin).await;
        let counts = |list: &Value| -> Vec<(i64, i64)> {
            list.as_array().expect("workloads").iter()
                .map(|w| (w["open"].as_i64().expect("open"), w["overdue"].as_i64().expect("overdue")))
                .collect()
        };
        assert_eq!(counts(&w["departments"]), [(1, 0), (1, 0)], "A: i3 open, its target ahead; B: i4 acknowledged, no resolve target");
        assert_eq!(w["assignees"][0]["assignee_id"], json!(d.staff_a.id));
        assert_eq!(w["departments"][1]["mean_time_to_acknowledge_secs"].as_f64().map(|s| s > 0.0), Some(true), "i4 acknowledged");

        // Staff count only their departments, from the summaries too.
        let s = stats(day0, day0 + 3 * DAY, &d.staff_b).await;
        assert_eq!(s["totals"], json!({ "created": 1, "open": 1, "resolved": 0 }));
        assert_eq!(pairs(&s["by_department"], "department_id"), [(json!(d.department_b), 1)]);
        assert_eq!(per_day(&s), [(0, 0), (0, 0), (1, 0)]);
        let s = stats(day0, day0 + 3 * DAY, &d.staff_a).await;
        assert_eq!(s["totals"], json!({ "created": 3, "open": 1, "resolved": 1 }));
    }

    async fn admins_see_exact_counts_of_every_dimension(app: TestApp) {
        let d = dataset(&app).await;
        let reply = app.get("/api/v1/stats", Some(&d.admin.token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let s = &reply.body;
        assert_eq!(s["totals"], json!({ "created": 4, "open": 3, "resolved": 1 }));
        assert_eq!(pairs(&s["by_status"], "status"), [
            (json!("new"), 1), (json!("acknowledged"), 2), (json!("in_progress"), 0),
            (json!("on_hold"), 0), (json!("resolved"), 1), (json!("closed"), 0),
        ]);
        assert_eq!(pairs(&s["by_urgency"], "urgency"), [
            (json!("low"), 2), (json!("medium"), 0), (json!("high"), 1), (json!("emergency"), 1),
        ]);
        assert_eq!(pairs(&s["by_category"], "category_id"), [(json!(d.category_a), 2), (json!(d.category_b), 2)]);
        assert_eq!(pairs(&s["by_department"], "department_id"), [(json!(d.department_a), 2), (json!(d.department_b), 2)]);
        let mut zones = pairs(&s["by_zone"], "zone_id");
        zones.sort_by_key(|(k, _)| k.as_i64());
        assert_eq!(zones, [(Value::Null, 2), (json!(d.zone), 2)]);
        assert_eq!(per_day_sum(s, "created"), 4);
        assert_eq!(per_day_sum(s, "resolved"), 1);
        let days = s["per_day"].as_array().expect("per_day");
        assert!((30..=31).contains(&days.len()), "{}", days.len());
        let today = s["created_to"].as_str().expect("created_to")[..10].to_owned();
        assert_eq!(days.last().expect("a day")["date"], json!(today));

        let filtered = app.get(&format!("/api/v1/stats?category={}", d.category_b), Some(&d.admin.token)).await;
        assert_eq!(filtered.body["totals"], json!({ "created": 2, "open": 2, "resolved": 0 }));
        let old = app.get("/api/v1/stats?created_from=2020-01-01T00:00:00Z&created_to=2020-02-01T00:00:00Z", Some(&d.admin.token)).await;
        assert_eq!(old.body["totals"], json!({ "created": 0, "open": 0, "resolved": 0 }));
        assert_eq!(old.body["per_day"].as_array().map(Vec::len), Some(31));
        assert_eq!(old.body["by_category"], json!([]));
    }

    async fn staff_count_only_their_departments_and_reporters_get_no_workload(app: TestApp) {
        let d = dataset(&app).await;
        let a = app.get("/api/v1/stats", Some(&d.staff_a.token)).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        assert_eq!(a.body["totals"], json!({ "created": 2, "open": 1, "resolved": 1 }));
        assert_eq!(pairs(&a.body["by_department"], "department_id"), [(json!(d.department_a), 2)]);
        assert_eq!(pairs(&a.body["by_category"], "category_id"), [(json!(d.category_a), 2)]);
        let other = app.get(&format!("/api/v1/stats?department={}", d.department_b), Some(&d.staff_a.token)).await;
        assert_eq!(other.body["totals"]["created"], 0, "B's public incidents are not A's figures");
        let b = app.get("/api/v1/stats", Some(&d.staff_b.token)).await;
        assert_eq!(b.body["totals"], json!({ "created": 2, "open": 2, "resolved": 0 }));

        assert_eq!(a.body["counted"], "departments");
        for path in ["/api/v1/stats/staff"] {
            let reply = app.get(path, Some(&d.reporter.token)).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
            assert!(reply.is_problem());
            assert_eq!(app.get(path, None).await.status, StatusCode::UNAUTHORIZED, "{path}");
        }

        let key = app.post("/api/v1/api-keys", Some(&d.admin.token), json!({ "name": "tablero", "scopes": ["reports:read"], "departments": [d.department_b] })).await;
        assert_eq!(key.status, StatusCode::CREATED, "{:?}", key.body);
        let key = key.body["key"].as_str().expect("key").to_owned();
        let by_key = app.get("/api/v1/stats", Some(&key)).await;
        assert_eq!(by_key.body["totals"], json!({ "created": 2, "open": 2, "resolved": 0 }));
        assert_eq!(app.get("/api/v1/stats/staff", Some(&key)).await.status, StatusCode::FORBIDDEN);
        let other_key = app.post("/api/v1/api-keys", Some(&d.admin.token), json!({ "name": "lector", "scopes": ["incidents:read"] })).await;
        let other_key = other_key.body["key"].as_str().expect("key").to_owned();
        assert_eq!(app.get("/api/v1/stats", Some(&other_key)).await.status, StatusCode::FORBIDDEN);
    }

    async fn reporters_get_the_basic_figures_of_their_own_and_the_public_incidents(app: TestApp) {
        let d = dataset(&app).await;
        // The reporter of all four: the private i4 is theirs.
        let own = app.get("/api/v1/stats", Some(&d.reporter.token)).await;
        assert_eq!(own.status, StatusCode::OK, "{:?}", own.body);
        assert_eq!(own.body["counted"], "own_and_public");
        assert_eq!(own.body["totals"], json!({ "created": 4, "open": 3, "resolved": 1 }));
        assert_eq!(pairs(&own.body["by_urgency"], "urgency"),
            [(json!("low"), 2), (json!("medium"), 0), (json!("high"), 1), (json!("emergency"), 1)]);
        // Another reporter: only the three public ones.
        let other = app.user(Role::Reporter).await;
        let public = app.get("/api/v1/stats", Some(&other.token)).await;
        assert_eq!(public.status, StatusCode::OK, "{:?}", public.body);
        assert_eq!(public.body["totals"], json!({ "created": 3, "open": 2, "resolved": 1 }));
        assert_eq!(pairs(&public.body["by_status"], "status"), [
            (json!("new"), 0), (json!("acknowledged"), 2), (json!("in_progress"), 0),
            (json!("on_hold"), 0), (json!("resolved"), 1), (json!("closed"), 0),
        ]);
        assert_eq!(pairs(&public.body["by_urgency"], "urgency"),
            [(json!("low"), 2), (json!("medium"), 0), (json!("high"), 1), (json!("emergency"), 0)]);
        let mut categories = pairs(&public.body["by_category"], "category_id");
        categories.sort_by_key(|(k, _)| k.as_i64());
        assert_eq!(categories, [(json!(d.category_a), 2), (json!(d.category_b), 1)]);
        assert_eq!(pairs(&public.body["by_zone"], "zone_id"), [(Value::Null, 1), (json!(d.zone), 2)]);
        assert_eq!(per_day_sum(&public.body, "created"), 3);
        assert_eq!(per_day_sum(&public.body, "resolved"), 1);
        // The filters narrow them the same way.
        let b = app.get(&format!("/api/v1/stats?department={}", d.department_b), Some(&other.token)).await;
        assert_eq!(b.body["totals"], json!({ "created": 1, "open": 1, "resolved": 0 }));
        let bad = app.get("/api/v1/stats?created_from=2026-01-02T00:00:00Z&created_to=2026-01-01T00:00:00Z", Some(&other.token)).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        // The admin's figures are still everything.
        let all = app.get("/api/v1/stats", Some(&d.admin.token)).await;
        assert_eq!(all.body["counted"], "all");
        assert_eq!(all.body["totals"]["created"], 4);
    }

    async fn staff_workload_has_exact_open_overdue_and_mean_times(app: TestApp) {
        let d = dataset(&app).await;
        let reply = app.get("/api/v1/stats/staff", Some(&d.admin.token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let departments = &reply.body["departments"];
        assert_eq!(departments[0], json!({
            "department_id": d.department_a, "name": "Mantenimiento", "open": 1, "overdue": 1,
            "mean_time_to_acknowledge_secs": 120.0, "mean_time_to_resolve_secs": 3600.0,
        }));
        assert_eq!(departments[1], json!({
            "department_id": d.department_b, "name": "Seguridad", "open": 2, "overdue": 1,
            "mean_time_to_acknowledge_secs": 30.0, "mean_time_to_resolve_secs": null,
        }));
        assert_eq!(reply.body["assignees"], json!([
            { "assignee_id": d.staff_a.id, "display_name": "Test User", "open": 0, "overdue": 0,
              "mean_time_to_acknowledge_secs": 60.0, "mean_time_to_resolve_secs": 3600.0 },
            { "assignee_id": null, "display_name": null, "open": 3, "overdue": 2,
              "mean_time_to_acknowledge_secs": 105.0, "mean_time_to_resolve_secs": null },
        ]));

        let a = app.get("/api/v1/stats/staff", Some(&d.staff_a.token)).await;
        assert_eq!(a.body["departments"].as_array().map(Vec::len), Some(1));
        assert_eq!(a.body["departments"][0]["department_id"], json!(d.department_a));
        assert_eq!(a.body["assignees"][1], json!({ "assignee_id": null, "display_name": null, "open": 1,
            "overdue": 1, "mean_time_to_acknowledge_secs": 180.0, "mean_time_to_resolve_secs": null }));
        let b = app.get("/api/v1/stats/staff", Some(&d.staff_b.token)).await;
        assert_eq!(b.body["assignees"], json!([{ "assignee_id": null, "display_name": null, "open": 2,
            "overdue": 1, "mean_time_to_acknowledge_secs": 30.0, "mean_time_to_resolve_secs": null }]));
    }

    async fn query_strings_are_parsed_strictly(app: TestApp) {
        let admin = app.admin().await;
        for (query, field) in [
            ("foo=1", "foo"),
            ("created_from=yesterday", "created_from"),
            ("department=abc", "department"),
            ("created_from=2026-02-01T00:00:00Z&created_to=2026-01-01T00:00:00Z", "created_from"),
            ("created_from=2020-01-01T00:00:00Z&created_to=2026-01-01T00:00:00Z", "created_from"),
        ] {
            let reply = app.get(&format!("/api/v1/stats?{query}"), Some(&admin.token)).await;
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {:?}", reply.body);
            assert!(reply.is_problem(), "{query}");
            assert_eq!(reply.error_field(), Some(field), "{query}: {:?}", reply.body);
        }
        let reply = app.get("/api/v1/stats/staff?category=1", Some(&admin.token)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        for query in ["limit=0", "limit=51", "limit=x", "top=3"] {
            let reply = app.get(&format!("/api/v1/public/rankings?{query}"), None).await;
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        }
    }

    async fn rankings_order_public_incidents_by_votes_without_personal_data(app: TestApp) {
        let d = dataset(&app).await;
        let [i1, i2, i3, _] = d.incidents;
        for (incident, voters) in [(i1, 2), (i3, 1)] {
            for _ in 0..voters {
                let voter = app.user(Role::Reporter).await;
                let reply = app.post(&format!("/api/v1/incidents/{incident}/votes"), Some(&voter.token), json!({})).await;
                assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
            }
        }
        let reply = app.get("/api/v1/public/rankings", None).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let ids = |group: &Value| -> Vec<i64> {
            group["incidents"].as_array().expect("incidents").iter().map(|i| i["id"].as_i64().expect("id")).collect()
        };
        let zones = reply.body["by_zone"].as_array().expect("by_zone");
        assert_eq!(zones.len(), 1);
        assert_eq!(zones[0]["zone_id"], json!(d.zone));
        assert_eq!(ids(&zones[0]), [i1, i3]);
        let categories = reply.body["by_category"].as_array().expect("by_category");
        assert_eq!(categories.iter().map(|c| c["category_id"].as_i64()).collect::<Vec<_>>(), [Some(d.category_a), Some(d.category_b)]);
        assert_eq!(ids(&categories[0]), [i1, i2]);
        assert_eq!(ids(&categories[1]), [i3], "the private incident is not ranked");
        let first = &categories[0]["incidents"][0];
        let mut keys: Vec<&str> = first.as_object().expect("object").keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["category_id", "code", "id", "status", "title", "votes", "zone_id"]);
        assert_eq!(first["votes"], 2);
        assert_eq!(first["status"], "resolved");
        let top = app.get("/api/v1/public/rankings?limit=1", None).await;
        assert_eq!(ids(&top.body["by_category"][0]), [i1]);
    }
}
