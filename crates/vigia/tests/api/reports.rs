//! Reports and exports: a global report over a hand-built dataset checked figure by figure in
//! its JSON and CSV files, reruns, the empty period, downloads, custom reports, streamed
//! exports with the list filters and role scoping, and the CLI export.

use reqwest::StatusCode;
use serde_json::{Value, json};
use vigia_domain::users::Role;

use crate::backend_tests;
use crate::helpers::{TestApp, TestUser};

/// 2026-01-10T10:00:00Z, the start of the period every report here covers (two hours).
const T0: i64 = 1_768_039_200_000;
const FROM: &str = "2026-01-10T10:00:00Z";
const TO: &str = "2026-01-10T12:00:00Z";
const MIN: i64 = 60_000;

struct Dataset {
    admin: TestUser,
    staff_a: TestUser,
    reporter: TestUser,
    other_reporter: TestUser,
    department_a: i64,
    department_b: i64,
    zone_1: i64,
    zone_2: i64,
    /// i1..i4 created in the period, i5 before it (resolved in it), i6 private by another
    /// reporter, created after it.
    incidents: [i64; 6],
}

async fn id_of(app: &TestApp, who: &TestUser, path: &str, body: Value) -> i64 {
    let reply = app.post(path, Some(&who.token), body).await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "{path}: {:?}",
        reply.body
    );
    reply.body["id"].as_i64().expect("id")
}

/// Pins an incident's times (ms after T0): created, acknowledged, resolved, the acknowledge
/// target and the resolve target (seconds after creation).
async fn pin(
    app: &TestApp,
    id: i64,
    created: i64,
    acknowledged: Option<i64>,
    resolved: Option<i64>,
    acknowledge_within: i64,
    resolve_within_secs: i64,
) {
    let sql = "UPDATE incidents SET created_at = $2, updated_at = $2, sla_started_at = $2, acknowledged_at = $3, \
               resolved_at = $4, acknowledge_due_at = $5, sla_resolve_secs = $6, sla_paused_total_ms = 0, \
               sla_paused_since = NULL WHERE id = $1";
    app.exec(
        sql,
        &[
            Some(id),
            Some(T0 + created),
            acknowledged.map(|a| T0 + a),
            resolved.map(|r| T0 + r),
            Some(T0 + created + acknowledge_within),
            Some(resolve_within_secs),
        ],
    )
    .await;
}

async fn dataset(app: &TestApp) -> Dataset {
    let admin = app.admin().await;
    let department_a = app.department(&admin, "Mantenimiento").await;
    let department_b = app.department(&admin, "Seguridad").await;
    let category = |name: &str, department: i64, urgency: &str| json!({ "name_es": name, "name_en": name, "default_department_id": department, "default_urgency": urgency });
    let category_a = id_of(
        app,
        &admin,
        "/api/v1/categories",
        category("Fuga de agua", department_a, "high"),
    )
    .await;
    let category_b = id_of(
        app,
        &admin,
        "/api/v1/categories",
        category("Robo", department_b, "low"),
    )
    .await;
    let zone = |name: &str, lat: f64| json!({ "name": name, "center": { "lat": lat, "lon": -77.0222 }, "radius_m": 40.0 });
    let zone_1 = id_of(app, &admin, "/api/v1/zones", zone("Pabellón A", -12.1352)).await;
    let zone_2 = id_of(app, &admin, "/api/v1/zones", zone("Biblioteca", -12.1452)).await;
    let staff_a = app.staff_in(&admin, department_a).await;
    let staff_b = app.staff_in(&admin, department_b).await;
    let reporter = app.user(Role::Reporter).await;
    let other_reporter = app.user(Role::Reporter).await;
    let text = "Hay un problema que necesita atención";
    let report = |category: i64, title: &str, more: Value| {
        let mut body = json!({ "category_id": category, "title": title, "description": text });
        if let (Some(body), Some(more)) = (body.as_object_mut(), more.as_object()) {
            body.extend(more.clone());
        }
        body
    };
    let path = "/api/v1/incidents";
    let i1 = id_of(
        app,
        &reporter,
        path,
        report(category_a, "Fuga en el baño", json!({ "zone_id": zone_1 })),
    )
    .await;
    let i2 = id_of(
        app,
        &reporter,
        path,
        report(
            category_a,
            "Goteo en el techo",
            json!({ "zone_id": zone_1, "urgency": "low" }),
        ),
    )
    .await;
    let i3 = id_of(
        app,
        &reporter,
        path,
        report(category_b, "Robo de laptop", json!({ "zone_id": zone_2 })),
    )
    .await;
    let i4 = id_of(
        app,
        &reporter,
        path,
        report(
            category_b,
            "Amenaza",
            json!({ "urgency": "emergency", "visibility": "private" }),
        ),
    )
    .await;
    let i5 = id_of(
        app,
        &reporter,
        path,
        report(category_b, "Puerta forzada", json!({})),
    )
    .await;
    let i6 = id_of(
        app,
        &other_reporter,
        path,
        report(category_b, "Acoso", json!({ "visibility": "private" })),
    )
    .await;
    app.move_through(&staff_a, i1, &["acknowledged", "in_progress", "resolved"])
        .await;
    app.move_through(&staff_a, i2, &["acknowledged"]).await;
    app.move_through(&staff_b, i3, &["acknowledged"]).await;
    app.move_through(&staff_b, i5, &["acknowledged", "in_progress", "resolved"])
        .await;
    let comment = app
        .post(
            &format!("/api/v1/incidents/{i1}/comments"),
            Some(&staff_a.token),
            json!({ "body": "Nota interna del equipo", "visibility": "internal" }),
        )
        .await;
    assert_eq!(comment.status, StatusCode::CREATED, "{:?}", comment.body);
    // i1: acknowledged after 60 s (target 5 min), resolved after an hour (target 30 min).
    pin(app, i1, 0, Some(MIN), Some(60 * MIN), 5 * MIN, 1_800).await;
    // i2: created at 10 min, acknowledged after 120 s (target 60 s: late), resolve target a day.
    pin(app, i2, 10 * MIN, Some(12 * MIN), None, MIN, 86_400).await;
    // i3: created at 20 min, acknowledged after 5 min (target 10), unresolved past its hour.
    pin(app, i3, 20 * MIN, Some(25 * MIN), None, 10 * MIN, 3_600).await;
    // i4: created at 30 min, never acknowledged (target 15 min), unresolved past its hour.
    pin(app, i4, 30 * MIN, None, None, 15 * MIN, 3_600).await;
    // i5: created the day before, resolved at 1000 s into the period.
    pin(
        app,
        i5,
        -24 * 60 * MIN,
        Some(-24 * 60 * MIN + MIN),
        Some(1_000_000),
        5 * MIN,
        86_400,
    )
    .await;
    // i6: after the period.
    pin(app, i6, 3 * 60 * MIN, None, None, 5 * MIN, 3_600).await;
    Dataset {
        admin,
        staff_a,
        reporter,
        other_reporter,
        department_a,
        department_b,
        zone_1,
        zone_2,
        incidents: [i1, i2, i3, i4, i5, i6],
    }
}

/// A body as bytes, with its status and content type.
async fn raw(app: &TestApp, path: &str, token: &str) -> (StatusCode, String, Vec<u8>) {
    let response = app
        .client
        .get(format!("{}{path}", app.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.bytes().await.expect("body").to_vec();
    (status, content_type, bytes)
}

async fn run(app: &TestApp, who: &TestUser, from: &str, to: &str) -> Value {
    let reply = app
        .post(
            "/api/v1/reports/run",
            Some(&who.token),
            json!({ "from": from, "to": to }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

fn counts(list: &Value) -> Vec<(Value, i64)> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|c| (c["key"].clone(), c["count"].as_i64().expect("count")))
        .collect()
}

fn id(n: i64) -> Value {
    json!(n.to_string())
}

async fn reports_rows(app: &TestApp) -> i64 {
    app.scalar("SELECT COUNT(*) FROM reports", &[])
        .await
        .expect("count")
}

fn xlsx_sheet(bytes: &[u8]) -> String {
    use std::io::Read;
    assert_eq!(&bytes[..4], b"PK\x03\x04", "an XLSX file is a zip");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("zip");
    let mut xml = String::new();
    archive
        .by_name("xl/worksheets/sheet1.xml")
        .expect("sheet1")
        .read_to_string(&mut xml)
        .expect("xml");
    xml
}

backend_tests! {
    async fn the_global_report_has_the_hand_computed_figures_in_json_and_csv(app: TestApp) {
        let d = dataset(&app).await;
        let record = run(&app, &d.admin, FROM, TO).await;
        assert_eq!(record["kind"], "global");
        assert_eq!(record["period_start"], FROM);
        assert_eq!(record["period_end"], TO);
        let keys: Vec<&str> = record["files"].as_array().expect("files").iter().map(|f| f["object_key"].as_str().expect("key")).collect();
        assert_eq!(keys, [
            "reports/global/report_2026-01-10_12-00.json",
            "reports/global/report_2026-01-10_12-00.csv",
            "reports/global/report_2026-01-10_12-00.xlsx",
        ]);
        let id_ = record["id"].as_i64().expect("id");

        let (status, content_type, bytes) = raw(&app, &format!("/api/v1/reports/{id_}/download?format=json"), &d.admin.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "application/json");
        let r: Value = serde_json::from_slice(&bytes).expect("json report");
        assert_eq!(r["totals"], json!({ "created": 4, "resolved": 2, "open": 3, "acknowledged": 3 }));
        assert_eq!(counts(&r["by_status"]), [
            (json!("new"), 1), (json!("acknowledged"), 2), (json!("in_progress"), 0),
            (json!("on_hold"), 0), (json!("resolved"), 1), (json!("closed"), 0),
        ]);
        assert_eq!(counts(&r["by_urgency"]), [(json!("low"), 2), (json!("medium"), 0), (json!("high"), 1), (json!("emergency"), 1)]);
        assert_eq!(counts(&r["by_department"]), [(id(d.department_a), 2), (id(d.department_b), 2)]);
        assert_eq!(r["by_department"][0]["name"], "Mantenimiento");
        let mut zones = counts(&r["by_zone"]);
        zones.sort_by_key(|(k, _)| k.as_str().map(str::to_owned));
        assert_eq!(zones, [(Value::Null, 1), (id(d.zone_1), 2), (id(d.zone_2), 1)]);
        // (60 + 120 + 300) / 3 acknowledged; only i1 resolved, after an hour.
        assert_eq!(r["mean_time_to_acknowledge_secs"], json!(160.0));
        assert_eq!(r["mean_time_to_resolve_secs"], json!(3600.0));
        // Acknowledged late: i2, i4 (never). Resolved late: i1, i3 and i4 (still open past target).
        assert_eq!(r["sla_breaches"], json!({ "acknowledge": 2, "resolve": 3, "incidents": 4 }));
        assert_eq!(r["top_zones"], json!([
            { "key": d.zone_1.to_string(), "name": "Pabellón A", "count": 2 },
            { "key": d.zone_2.to_string(), "name": "Biblioteca", "count": 1 },
        ]));
        assert_eq!(r["per_day"], json!([{ "date": "2026-01-10", "created": 4, "resolved": 2 }]));
        assert_eq!(record["summary"]["sla_breaches"], r["sla_breaches"]);

        let (status, content_type, bytes) = raw(&app, &format!("/api/v1/reports/{id_}/download?format=csv"), &d.admin.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "text/csv; charset=utf-8");
        let csv = String::from_utf8(bytes).expect("utf-8");
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "section,key,name,value");
        for expected in [
            "totals,created,,4".to_owned(), "totals,resolved,,2".to_owned(), "totals,open,,3".to_owned(),
            "by_status,new,,1".to_owned(), "by_status,acknowledged,,2".to_owned(), "by_urgency,low,,2".to_owned(),
            format!("by_department,{},Mantenimiento,2", d.department_a), format!("by_zone,{},Pabellón A,2", d.zone_1),
            "by_zone,,,1".to_owned(), "mean_times,acknowledge_secs,,160".to_owned(), "mean_times,resolve_secs,,3600".to_owned(),
            "sla_breaches,acknowledge,,2".to_owned(), "sla_breaches,resolve,,3".to_owned(), "sla_breaches,incidents,,4".to_owned(),
            format!("top_zones,{},Pabellón A,2", d.zone_1), "created_per_day,2026-01-10,,4".to_owned(),
        ] {
            assert!(lines.contains(&expected.as_str()), "missing {expected:?} in\n{csv}");
        }

        let (status, content_type, bytes) = raw(&app, &format!("/api/v1/reports/{id_}/download?format=xlsx"), &d.admin.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
        let sheet = xlsx_sheet(&bytes);
        assert!(sheet.contains("Pabellón A") && sheet.contains("<v>160</v>"), "{sheet}");
    }

    async fn running_the_same_period_again_replaces_the_report(app: TestApp) {
        let d = dataset(&app).await;
        let first = run(&app, &d.admin, FROM, TO).await;
        // Seconds are truncated to the minute: the same period.
        let second = run(&app, &d.admin, "2026-01-10T10:00:30Z", "2026-01-10T12:00:59Z").await;
        assert_eq!(first["id"], second["id"]);
        assert_eq!(second["period_start"], FROM);
        assert_eq!(reports_rows(&app).await, 1);
        let list = app.get("/api/v1/reports?kind=global", Some(&d.admin.token)).await;
        assert_eq!(list.status, StatusCode::OK);
        assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
        let one = app.get(&format!("/api/v1/reports/{}", first["id"]), Some(&d.admin.token)).await;
        assert_eq!(one.body["summary"]["totals"]["created"], 4);
    }

    async fn a_report_of_an_empty_period_is_valid_and_empty(app: TestApp) {
        let d = dataset(&app).await;
        let record = run(&app, &d.admin, "2025-06-01T00:00:00Z", "2025-06-01T00:15:00Z").await;
        let (status, _, bytes) = raw(&app, &format!("/api/v1/reports/{}/download", record["id"]), &d.admin.token).await;
        assert_eq!(status, StatusCode::OK);
        let r: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(r["totals"], json!({ "created": 0, "resolved": 0, "open": 0, "acknowledged": 0 }));
        assert!(counts(&r["by_status"]).iter().all(|(_, n)| *n == 0));
        assert_eq!(r["by_zone"], json!([]));
        assert_eq!(r["top_zones"], json!([]));
        assert_eq!(r["mean_time_to_acknowledge_secs"], Value::Null);
        assert_eq!(r["sla_breaches"], json!({ "acknowledge": 0, "resolve": 0, "incidents": 0 }));
        let (_, _, csv) = raw(&app, &format!("/api/v1/reports/{}/download?format=csv", record["id"]), &d.admin.token).await;
        let csv = String::from_utf8(csv).expect("utf-8");
        assert!(csv.starts_with("section,key,name,value\n") && csv.contains("totals,created,,0"), "{csv}");
        assert!(csv.contains("mean_times,acknowledge_secs,,\n"), "{csv}");
    }

    async fn bad_report_requests_are_problems_and_change_nothing(app: TestApp) {
        let d = dataset(&app).await;
        let before = reports_rows(&app).await;
        let reply = app.post("/api/v1/reports/run", Some(&d.admin.token), json!({ "from": TO, "to": FROM })).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(reply.is_problem());
        assert_eq!(reply.error_field(), Some("from"));
        let reply = app.post("/api/v1/reports/run", Some(&d.admin.token), json!({ "from": "2024-01-01T00:00:00Z", "to": TO })).await;
        assert_eq!(reply.error_field(), Some("from"), "longer than 366 days");
        let reply = app.post("/api/v1/reports/run", Some(&d.admin.token), json!({ "formats": ["pdf"] })).await;
        assert_eq!(reply.error_field(), Some("formats"));
        let reply = app.post("/api/v1/reports/run", Some(&d.staff_a.token), json!({})).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        let reply = app.get("/api/v1/reports", Some(&d.reporter.token)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        let reply = app.post("/api/v1/reports/custom", Some(&d.admin.token), json!({ "group_by": ["colour"] })).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reply.error_field(), Some("group_by"));
        let reply = app.post("/api/v1/reports/custom", Some(&d.admin.token), json!({ "group_by": ["status"], "filters": { "status": "lost" } })).await;
        assert_eq!(reply.error_field(), Some("status"));
        let reply = app.get("/api/v1/exports/incidents?format=pdf", Some(&d.admin.token)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reply.error_field(), Some("format"));
        let reply = app.get("/api/v1/exports/incidents?colour=red", Some(&d.admin.token)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reports_rows(&app).await, before);
        let record = run(&app, &d.admin, FROM, TO).await;
        let reply = app.get(&format!("/api/v1/reports/{}/download?format=ndjson", record["id"]), Some(&d.admin.token)).await;
        assert_eq!(reply.error_field(), Some("format"));
        // Staff see their departments' incident reports only, not global ones.
        let reply = app.get(&format!("/api/v1/reports/{}", record["id"]), Some(&d.staff_a.token)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }

    async fn custom_reports_group_filtered_incidents_within_the_callers_departments(app: TestApp) {
        let d = dataset(&app).await;
        let body = json!({ "group_by": ["department", "status"], "filters": { "created_from": FROM, "created_to": TO } });
        let reply = app.post("/api/v1/reports/custom", Some(&d.admin.token), body.clone()).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let rows: Vec<(Value, i64)> = reply.body["rows"].as_array().expect("rows").iter().map(|r| (r["keys"].clone(), r["count"].as_i64().expect("n"))).collect();
        let (a, b) = (d.department_a.to_string(), d.department_b.to_string());
        assert_eq!(rows, [
            (json!([a, "acknowledged"]), 1), (json!([a, "resolved"]), 1),
            (json!([b, "acknowledged"]), 1), (json!([b, "new"]), 1),
        ]);
        assert_eq!(reply.body["total"], 4);
        let resolved = &reply.body["rows"][1];
        assert_eq!(resolved["mean_time_to_resolve_secs"], json!(3600.0));
        let reply = app.post("/api/v1/reports/custom", Some(&d.staff_a.token), body).await;
        assert_eq!(reply.body["total"], 2, "{:?}", reply.body);
        let body = json!({ "group_by": ["zone"], "filters": { "created_from": FROM, "created_to": TO, "urgency": "low" }, "format": "csv" });
        let response = app.client.post(format!("{}/api/v1/reports/custom", app.url)).bearer_auth(&d.admin.token).json(&body).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        let csv = response.text().await.expect("csv");
        assert_eq!(csv, format!(
            "zone,count,mean_time_to_acknowledge_secs,mean_time_to_resolve_secs\n{},1,120,\n{},1,300,\n",
            d.zone_1, d.zone_2
        ));
    }

    async fn exports_follow_the_list_filters_and_the_callers_scope(app: TestApp) {
        let d = dataset(&app).await;
        let [i1, i2, i3, i4, i5, i6] = d.incidents;
        // Admin, CSV, one department.
        let (status, content_type, bytes) = raw(&app, &format!("/api/v1/exports/incidents?format=csv&department={}&sort=created", d.department_a), &d.admin.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "text/csv; charset=utf-8");
        let csv = String::from_utf8(bytes).expect("utf-8");
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let ids: Vec<i64> = reader.records().map(|r| r.expect("row")[0].parse().expect("id")).collect();
        assert_eq!(ids, [i1, i2]);
        assert!(csv.starts_with("id,code,status,urgency,category_id,department_id,zone_id,assignee_id,reporter_id,"));

        // A reporter exports their own and public incidents only, like their list.
        let (_, content_type, bytes) = raw(&app, "/api/v1/exports/incidents?format=ndjson", &d.reporter.token).await;
        assert_eq!(content_type, "application/x-ndjson");
        let rows: Vec<Value> = String::from_utf8(bytes).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("line")).collect();
        let mut ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().expect("id")).collect();
        ids.sort();
        assert_eq!(ids, [i1, i2, i3, i4, i5]);
        assert!(rows.iter().all(|r| r["reporter_id"] == json!(d.reporter.id)));
        let (_, _, bytes) = raw(&app, "/api/v1/exports/incidents?format=ndjson&sort=created", &d.other_reporter.token).await;
        let rows: Vec<Value> = String::from_utf8(bytes).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("line")).collect();
        let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().expect("id")).collect();
        assert_eq!(ids, [i1, i2, i3, i5, i6], "the private i4 is not theirs");
        assert_eq!(rows[0]["reporter_id"], Value::Null, "people are hidden on others' incidents");
        assert_eq!(rows[4]["reporter_id"], json!(d.other_reporter.id));

        // Events: the internal comment only for the department's staff and admins.
        let internal = |bytes: Vec<u8>| -> usize {
            String::from_utf8(bytes).expect("utf-8").lines().filter(|l| l.contains("\"internal\":true")).count()
        };
        let path = format!("/api/v1/exports/events?format=ndjson&department={}", d.department_a);
        let (_, _, admin_events) = raw(&app, &path, &d.admin.token).await;
        let (_, _, staff_events) = raw(&app, &path, &d.staff_a.token).await;
        let (_, _, reporter_events) = raw(&app, &path, &d.other_reporter.token).await;
        assert_eq!((internal(admin_events.clone()), internal(staff_events), internal(reporter_events.clone())), (1, 1, 0));
        let lines = |b: &[u8]| String::from_utf8(b.to_vec()).expect("utf-8").lines().count();
        // i1: created + 3 status changes + comment; i2: created + 1 status change.
        assert_eq!(lines(&admin_events), 7);
        assert_eq!(lines(&reporter_events), 6);

        // XLSX: a real workbook with a header and one row per incident.
        let (status, content_type, bytes) = raw(&app, "/api/v1/exports/incidents?format=xlsx", &d.admin.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
        let sheet = xlsx_sheet(&bytes);
        assert!(sheet.contains("Fuga en el baño") && sheet.contains("r=\"A7\"") && !sheet.contains("r=\"A8\""), "{sheet}");
    }

    async fn the_cli_exports_to_a_file_with_the_same_filters(app: TestApp) {
        let d = dataset(&app).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let output = dir.path().join("incidents.csv");
        let url = app.config.database_url();
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_vigia"))
            .args(["--database-url", &url, "--data-dir"])
            .arg(dir.path())
            .args(["export", "incidents", "--format", "csv", "--filter"])
            .arg(format!("department={}", d.department_b))
            .arg("--output")
            .arg(&output)
            .env("VIGIA_LOG__LEVEL", "warn")
            .status()
            .expect("run vigia");
        assert!(status.success());
        let csv = std::fs::read_to_string(&output).expect("file");
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let mut ids: Vec<i64> = reader.records().map(|r| r.expect("row")[0].parse().expect("id")).collect();
        ids.sort();
        let [_, _, i3, i4, i5, i6] = d.incidents;
        assert_eq!(ids, [i3, i4, i5, i6]);
        let bad = std::process::Command::new(env!("CARGO_BIN_EXE_vigia"))
            .args(["--database-url", &url, "--data-dir"])
            .arg(dir.path())
            .args(["export", "incidents", "--filter", "status=lost", "--output"])
            .arg(dir.path().join("never.csv"))
            .output()
            .expect("run vigia");
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("status"));
        assert!(!dir.path().join("never.csv").exists());
    }

    async fn an_incident_report_is_written_for_its_department_and_only_its_staff_see_it(app: TestApp) {
        let d = dataset(&app).await;
        let objects = vigia_store::Objects::open(&app.config.storage_url(), &app.config.s3_options()).expect("objects");
        let [i1, ..] = d.incidents;
        let record = vigia_reports::incident::run(&app.db, &objects, vigia_domain::ids::IncidentId(i1), None, "test")
            .await
            .expect("incident report")
            .expect("i1 has a department");
        let key = format!("reports/incidents/{}/incident_{i1}.json", d.department_a);
        assert_eq!(record.object("json"), Some(key.as_str()));
        let again = vigia_reports::incident::run(&app.db, &objects, vigia_domain::ids::IncidentId(i1), None, "test")
            .await
            .expect("rerun")
            .expect("report");
        assert_eq!(again.id, record.id);
        let (status, _, bytes) = raw(&app, &format!("/api/v1/reports/{}/download", record.id), &d.staff_a.token).await;
        assert_eq!(status, StatusCode::OK);
        let report: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(report["incident"]["id"], i1);
        assert_eq!(report["department_name"], "Mantenimiento");
        let kinds: Vec<&str> = report["events"].as_array().expect("events").iter().map(|e| e["kind"].as_str().expect("kind")).collect();
        assert_eq!(kinds.first(), Some(&"created"));
        assert!(report["events"].as_array().expect("events").iter().any(|e| e["internal"] == true), "the department's report keeps internal notes");
        // With their text: the comment_added event names the comment the report carries.
        let comment_event = report["events"].as_array().expect("events").iter().find(|e| e["kind"] == "comment_added").expect("comment event").clone();
        assert_eq!(report["comments"].as_array().map(Vec::len), Some(1), "{report:#}");
        assert_eq!(report["comments"][0]["id"], comment_event["data"]["comment_id"]);
        assert_eq!(report["comments"][0]["body"], "Nota interna del equipo");
        assert_eq!(report["comments"][0]["visibility"], "internal");
        let list = app.get("/api/v1/reports", Some(&d.staff_a.token)).await;
        assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1), "{:?}", list.body);
        let staff_b = app.staff_in(&d.admin, d.department_b).await;
        let list = app.get("/api/v1/reports", Some(&staff_b.token)).await;
        assert_eq!(list.body["items"], json!([]));
        let reply = app.get(&format!("/api/v1/reports/{}", record.id), Some(&staff_b.token)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        // The stable address e-mails link to: the same file for the department, 404 for others.
        let (status, _, linked) = raw(&app, &format!("/api/v1/incidents/{i1}/report"), &d.staff_a.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(linked, bytes);
        let (status, _, _) = raw(&app, &format!("/api/v1/incidents/{i1}/report"), &staff_b.token).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn the_openapi_document_lists_the_report_and_export_endpoints(app: TestApp) {
        let doc = app.get("/api/openapi.json", None).await;
        for path in ["/api/v1/reports", "/api/v1/reports/{id}", "/api/v1/reports/{id}/download", "/api/v1/reports/run",
            "/api/v1/reports/custom", "/api/v1/exports/incidents", "/api/v1/exports/events", "/api/v1/incidents/{id}/report"] {
            assert!(doc.body["paths"].get(path).is_some(), "{path} undocumented");
        }
        assert!(doc.body["components"]["schemas"].get("ReportOut").is_some());
        assert!(doc.body["paths"]["/api/v1/incidents"].is_object(), "the main document is still there");
    }
}
