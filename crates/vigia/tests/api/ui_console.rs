//! The staff web UI over HTTP, as a browser without JavaScript uses it: the console's queue
//! and its scope, the incident page's forms (allowed moves only, the version conflict, public
//! and internal comments), the dashboard's figures, and the admin forms (errors next to their
//! fields, an API key's secret shown once, the audit log). The live parts and the look are the
//! browser tests' (`tests/browser`).

use std::collections::HashMap;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::json;
use vigia_domain::Timestamp;
use vigia_domain::incidents::ReadScope;
use vigia_domain::users::Role;
use vigia_store::incidents::stats;

use crate::backend_tests;
use crate::helpers::{TestApp, TestUser};

/// A cookie jar and the CSRF token of the last page, as a browser keeps them.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
    csrf: String,
}

/// A page: status, `Location` and body.
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    /// Where a 303 sends the browser.
    pub(crate) location: Option<String>,
    pub(crate) html: String,
}

impl<'a> Browser<'a> {
    /// A browser signed in as `who` (the API's cookie session).
    pub(crate) async fn signed_in(app: &'a TestApp, who: &TestUser) -> Browser<'a> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let mut browser = Browser {
            app,
            client,
            cookies: HashMap::new(),
            csrf: String::new(),
        };
        let response = browser
            .client
            .post(format!("{}/api/v1/auth/login", app.url))
            .json(&json!({ "email": who.email, "password": who.password, "cookie": true }))
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), StatusCode::OK);
        browser.keep_cookies(&response);
        browser
    }

    fn keep_cookies(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let Some(pair) = value.to_str().ok().and_then(|v| v.split(';').next()) else {
                continue;
            };
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn page(&mut self, response: reqwest::Response) -> Page {
        self.keep_cookies(&response);
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let html = response.text().await.expect("body");
        if let Some(token) = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        {
            self.csrf = token.to_owned();
        }
        Page {
            status,
            location,
            html,
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.app.url))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("get");
        self.page(response).await
    }

    /// Posts a form from this server's own page (its `Origin`, the page's CSRF token).
    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut body: Vec<(&str, &str)> = fields.to_vec();
        let csrf = self.csrf.clone();
        body.push(("csrf", &csrf));
        let response = self
            .client
            .post(format!("{}{path}", self.app.url))
            .header(COOKIE, self.cookie_header())
            .header(ORIGIN, self.app.url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(urlencoded(&body))
            .send()
            .await
            .expect("post");
        self.page(response).await
    }
}

/// `application/x-www-form-urlencoded`, as a browser encodes a form.
fn urlencoded(fields: &[(&str, &str)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                other => format!("%{other:02X}"),
            })
            .collect()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn category(app: &TestApp, admin: &TestUser, name: &str, department: i64) -> i64 {
    let reply = app
        .post(
            "/api/v1/categories",
            Some(&admin.token),
            json!({ "name_es": name, "name_en": name, "default_department_id": department }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["id"].as_i64().expect("category id")
}

async fn outsider_page_status(app: &TestApp, who: &TestUser, code: &str) -> StatusCode {
    Browser::signed_in(app, who)
        .await
        .get(&format!("/console/incidents/{code}"))
        .await
        .status
}

async fn report(app: &TestApp, who: &TestUser, category: i64, title: &str) -> (i64, String) {
    let reply = app
        .post(
            "/api/v1/incidents",
            Some(&who.token),
            json!({ "category_id": category, "title": title, "description": "Necesita atención pronto" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    (
        reply.body["id"].as_i64().expect("id"),
        reply.body["code"].as_str().expect("code").to_owned(),
    )
}

backend_tests! {
    async fn the_console_lists_only_the_staff_members_departments_and_marks_overdue_ones(app: TestApp) {
        let admin = app.admin().await;
        let mine = app.department(&admin, "Mantenimiento").await;
        let other = app.department(&admin, "Seguridad").await;
        let cat_mine = category(&app, &admin, "Fuga de agua", mine).await;
        let cat_other = category(&app, &admin, "Robo", other).await;
        let staff = app.staff_in(&admin, mine).await;
        let reporter = app.user(Role::Reporter).await;
        let (late, late_code) = report(&app, &reporter, cat_mine, "Fuga en el baño del pabellón A").await;
        let (_, fresh_code) = report(&app, &reporter, cat_mine, "Goteo en el techo").await;
        let (_, other_code) = report(&app, &reporter, cat_other, "Robo de una laptop").await;
        // Its SLA clock started a week ago: the acknowledge target is long past.
        app.exec(
            "UPDATE incidents SET sla_started_at = $2, acknowledge_due_at = $2 + 60000 WHERE id = $1",
            &[late, Timestamp::now().millis() - 7 * 86_400_000],
        )
        .await;

        let mut browser = Browser::signed_in(&app, &staff).await;
        let page = browser.get("/console").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        assert!(page.html.contains(&late_code) && page.html.contains(&fresh_code));
        assert!(!page.html.contains(&other_code), "another department's incident is listed");
        assert!(page.html.contains("lang=\"es\""));
        // Exactly the late incident's row is marked overdue.
        let overdue_rows: Vec<&str> = page.html.split("<tr class=\"").filter(|r| r.contains(" overdue\"")).collect();
        assert_eq!(overdue_rows.len(), 1, "{}", page.html);
        assert!(overdue_rows[0].contains(&late_code));

        // Filters and the live fragment use the same query.
        let page = browser.get("/console?q=techo").await;
        assert!(page.html.contains(&fresh_code) && !page.html.contains(&late_code));
        let rows = browser.get("/console/rows?sort=created").await;
        assert_eq!(rows.status, StatusCode::OK);
        let first = rows.html.find(&late_code).expect("late listed");
        let second = rows.html.find(&fresh_code).expect("fresh listed");
        assert!(first < second, "oldest first");

        // A reporter is refused; a visitor is sent to sign in.
        let mut reporter_browser = Browser::signed_in(&app, &reporter).await;
        assert_eq!(reporter_browser.get("/console").await.status, StatusCode::FORBIDDEN);
        let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let response = anonymous.get(format!("{}/console", app.url)).send().await.expect("get");
        assert!(response.status().is_redirection() || response.status() == StatusCode::UNAUTHORIZED, "{}", response.status());
    }

    async fn the_incident_page_offers_only_allowed_moves_and_reports_a_concurrent_change(app: TestApp) {
        let admin = app.admin().await;
        let department = app.department(&admin, "Mantenimiento").await;
        let cat = category(&app, &admin, "Fuga de agua", department).await;
        let staff = app.staff_in(&admin, department).await;
        let reporter = app.user(Role::Reporter).await;
        let (id, code) = report(&app, &reporter, cat, "Fuga en el baño del pabellón A").await;

        let mut browser = Browser::signed_in(&app, &staff).await;
        let page = browser.get(&format!("/console/incidents/{code}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        // From `new`, staff may acknowledge (and the lifecycle's other moves), never `closed`.
        assert!(page.html.contains("<option value=\"acknowledged\">"));
        assert!(!page.html.contains("<option value=\"closed\">"), "{}", page.html);

        let moved = browser
            .post(&format!("/console/incidents/{code}/status"), &[("to", "acknowledged"), ("version", "1")])
            .await;
        assert_eq!(moved.status, StatusCode::SEE_OTHER, "{}", moved.html);
        assert_eq!(moved.location.as_deref(), Some(format!("/console/incidents/{code}?done=1#actions").as_str()));
        let reply = app.get(&format!("/api/v1/incidents/{id}"), Some(&staff.token)).await;
        assert_eq!(reply.body["status"], "acknowledged");

        // A form rendered before that change carries the old version: nothing changes.
        let stale = browser
            .post(&format!("/console/incidents/{code}/status"), &[("to", "in_progress"), ("version", "1")])
            .await;
        assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
        assert!(stale.html.contains("Otra persona cambió este incidente"), "{}", stale.html);
        let reply = app.get(&format!("/api/v1/incidents/{id}"), Some(&staff.token)).await;
        assert_eq!(reply.body["status"], "acknowledged");

        // A public and an internal comment; the reporter's API view has only the public one.
        for (body, visibility) in [("Vamos en camino", "public"), ("Pedir repuesto al almacén", "internal")] {
            let posted = browser
                .post(&format!("/console/incidents/{code}/comments"), &[("body", body), ("comment_visibility", visibility)])
                .await;
            assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.html);
        }
        let empty = browser
            .post(&format!("/console/incidents/{code}/comments"), &[("body", "  "), ("comment_visibility", "public")])
            .await;
        assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(empty.html.contains("id=\"body-error\""), "the error is next to the field: {}", empty.html);
        let page = browser.get(&format!("/console/incidents/{code}")).await;
        assert!(page.html.contains("Vamos en camino") && page.html.contains("Pedir repuesto al almacén"));
        let seen = app.get(&format!("/api/v1/incidents/{id}/comments"), Some(&reporter.token)).await;
        let bodies: Vec<&str> = seen.body.as_array().expect("comments").iter().filter_map(|c| c["body"].as_str()).collect();
        assert_eq!(bodies, ["Vamos en camino"]);

        // Assignment through the form; the timeline names it.
        let assigned = browser
            .post(&format!("/console/incidents/{code}/assignee"), &[("assignee_id", &staff.id.to_string()), ("version", "2")])
            .await;
        assert_eq!(assigned.status, StatusCode::SEE_OTHER, "{}", assigned.html);
        let reply = app.get(&format!("/api/v1/incidents/{id}"), Some(&staff.token)).await;
        assert_eq!(reply.body["assignee_id"], staff.id);

        // Routing to another department is for admins.
        let routed = browser
            .post(&format!("/console/incidents/{code}/department"), &[("department_id", &department.to_string()), ("version", "3")])
            .await;
        assert_eq!(routed.status, StatusCode::FORBIDDEN);
    }

    async fn the_incident_live_parts_show_facts_and_timeline_only_to_those_who_may_see_it(app: TestApp) {
        let admin = app.admin().await;
        let department = app.department(&admin, "Mantenimiento").await;
        let elsewhere = app.department(&admin, "Jardinería").await;
        let cat = category(&app, &admin, "Fuga de agua", department).await;
        let staff = app.staff_in(&admin, department).await;
        let outsider = app.staff_in(&admin, elsewhere).await;
        let reporter = app.user(Role::Reporter).await;
        // A private incident: only its department's staff (and admins) may see it.
        let reply = app
            .post(
                "/api/v1/incidents",
                Some(&reporter.token),
                json!({ "category_id": cat, "title": "Fuga en el baño del pabellón A",
                        "description": "Necesita atención pronto", "visibility": "private" }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let id = reply.body["id"].as_i64().expect("id");
        let code = reply.body["code"].as_str().expect("code").to_owned();

        // Someone else (through the API) acknowledges it and leaves an internal comment.
        app.move_through(&admin, id, &["acknowledged"]).await;
        let commented = app
            .post(
                &format!("/api/v1/incidents/{id}/comments"),
                Some(&admin.token),
                json!({ "body": "Pedir repuesto al almacén", "visibility": "internal" }),
            )
            .await;
        assert_eq!(commented.status, StatusCode::CREATED, "{:?}", commented.body);

        let mut browser = Browser::signed_in(&app, &staff).await;
        let facts = browser.get(&format!("/console/incidents/{code}/live?part=facts")).await;
        assert_eq!(facts.status, StatusCode::OK, "{}", facts.html);
        assert!(facts.html.contains("status-acknowledged"), "{}", facts.html);
        assert!(!facts.html.contains("<form"), "the facts part carries no form: {}", facts.html);
        assert!(!facts.html.contains("<html"), "a fragment, not a page: {}", facts.html);
        let activity = browser.get(&format!("/console/incidents/{code}/live")).await;
        assert_eq!(activity.status, StatusCode::OK, "{}", activity.html);
        assert!(activity.html.contains("Pedir repuesto al almacén"), "{}", activity.html);
        assert!(activity.html.contains("class=\"timeline\""), "{}", activity.html);
        assert!(!activity.html.contains("<form") && !activity.html.contains("<html"), "{}", activity.html);

        // Staff of another department get "not found" (as for the page itself), a reporter no
        // staff part at all.
        assert_eq!(outsider_page_status(&app, &outsider, &code).await, StatusCode::NOT_FOUND);
        let mut outsider_browser = Browser::signed_in(&app, &outsider).await;
        for part in ["?part=facts", ""] {
            let denied = outsider_browser.get(&format!("/console/incidents/{code}/live{part}")).await;
            assert_eq!(denied.status, StatusCode::NOT_FOUND, "{}", denied.html);
            assert!(!denied.html.contains("Pedir repuesto"), "{}", denied.html);
        }
        let mut reporter_browser = Browser::signed_in(&app, &reporter).await;
        let denied = reporter_browser.get(&format!("/console/incidents/{code}/live")).await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert!(!denied.html.contains("Pedir repuesto"), "{}", denied.html);
    }

    async fn the_dashboard_shows_the_stats_figures_as_charts_and_tables(app: TestApp) {
        let admin = app.admin().await;
        let department = app.department(&admin, "Mantenimiento").await;
        let cat = category(&app, &admin, "Fuga de agua", department).await;
        let staff = app.staff_in(&admin, department).await;
        let reporter = app.user(Role::Reporter).await;
        let (first, _) = report(&app, &reporter, cat, "Fuga en el baño del pabellón A").await;
        report(&app, &reporter, cat, "Goteo en el techo").await;
        report(&app, &reporter, cat, "Charco en el pasillo").await;
        app.move_through(&staff, first, &["acknowledged", "in_progress", "resolved"]).await;

        let mut browser = Browser::signed_in(&app, &staff).await;
        let page = browser.get("/dashboard").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        // Headline figures: three created today, one resolved, two open.
        assert!(page.html.contains("<li class=\"kpi\" id=\"kpi-created-today\"><span class=\"kpi-value\">3</span>"), "{}", page.html);
        assert!(page.html.contains("id=\"kpi-resolved-today\"><span class=\"kpi-value\">1</span>"));
        assert!(page.html.contains("id=\"kpi-open\"><span class=\"kpi-value\">2</span>"));
        // Every chart is an SVG with its numbers in a table.
        for id in ["chart-status", "chart-urgency", "chart-category", "chart-department", "chart-zone", "chart-per-day", "chart-per-hour"] {
            assert!(page.html.contains(&format!("id=\"{id}\"")), "missing {id}");
        }
        assert!(page.html.matches("<svg ").count() >= 7);
        assert!(page.html.contains("<tr><th scope=\"row\">Fuga de agua</th><td>3</td></tr>"), "{}", page.html);
        assert!(page.html.contains("<tr><th scope=\"row\">resuelto</th><td>1</td></tr>"));
        // The workload table names the department.
        assert!(page.html.contains("<th scope=\"row\">Mantenimiento</th><td>2</td>"), "{}", page.html);
        // In the account's language.
        let reply = app.patch("/api/v1/me", Some(&staff.token), json!({ "locale": "en" })).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let english = browser.get("/dashboard/live").await;
        assert_eq!(english.status, StatusCode::OK);
        assert!(english.html.contains("<tr><th scope=\"row\">resolved</th><td>1</td></tr>"), "{}", english.html);
    }

    async fn incidents_per_hour_are_counted_in_the_callers_scope(app: TestApp) {
        let admin = app.admin().await;
        let mine = app.department(&admin, "Mantenimiento").await;
        let other = app.department(&admin, "Seguridad").await;
        let cat_mine = category(&app, &admin, "Fuga de agua", mine).await;
        let cat_other = category(&app, &admin, "Robo", other).await;
        let staff = app.staff_in(&admin, mine).await;
        let reporter = app.user(Role::Reporter).await;
        let (a, _) = report(&app, &reporter, cat_mine, "Fuga en el baño del pabellón A").await;
        let (b, _) = report(&app, &reporter, cat_mine, "Goteo en el techo").await;
        let (c, _) = report(&app, &reporter, cat_other, "Robo de una laptop").await;
        let now = Timestamp::now().millis();
        let hour = stats::HOUR_MS;
        let this_hour = now - now.rem_euclid(hour);
        // a: created three hours ago and resolved this hour; b: created this hour; c: other department.
        app.exec("UPDATE incidents SET created_at = $2, resolved_at = $3, status = 'resolved' WHERE id = $1", &[a, this_hour - 3 * hour + 1_000, this_hour + 1]).await;
        app.exec("UPDATE incidents SET created_at = $2 WHERE id = $1", &[b, this_hour + 2]).await;
        app.exec("UPDATE incidents SET created_at = $2 WHERE id = $1", &[c, this_hour + 3]).await;
        let scope = ReadScope::Limited { departments: vec![vigia_domain::ids::DepartmentId(mine)], reporter: None, staff: true };
        let _ = staff;
        let hours = stats::per_hour(&app.db, &scope, Timestamp::from_millis(now - 24 * hour), Timestamp::from_millis(now)).await.expect("per hour");
        assert_eq!(hours.len(), 25, "the partial first hour, 23 whole ones and the current one");
        let last = hours.last().expect("current hour");
        assert_eq!((last.created, last.resolved), (1, 1));
        let three_ago = &hours[hours.len() - 4];
        assert_eq!(three_ago.start.millis(), this_hour - 3 * hour);
        assert_eq!((three_ago.created, three_ago.resolved), (1, 0));
        assert_eq!(hours.iter().map(|h| h.created).sum::<i64>(), 2);
        let all = stats::per_hour(&app.db, &ReadScope::All, Timestamp::from_millis(now - 24 * hour), Timestamp::from_millis(now)).await.expect("per hour");
        assert_eq!(all.iter().map(|h| h.created).sum::<i64>(), 3);
    }

    async fn admin_forms_create_through_the_api_rules_and_show_errors_by_their_fields(app: TestApp) {
        let admin = app.admin().await;
        let mut browser = Browser::signed_in(&app, &admin).await;
        assert_eq!(browser.get("/admin/departments").await.status, StatusCode::OK);

        // A bad e-mail is refused next to its field, with what was typed kept; nothing is created.
        let rejected = browser
            .post("/admin/departments", &[("name", "Mantenimiento"), ("contact_emails", "no-es-un-correo"), ("assignment_strategy", "manual")])
            .await;
        assert_eq!(rejected.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", rejected.html);
        assert!(rejected.html.contains("id=\"d-contacts-e\""), "{}", rejected.html);
        assert!(rejected.html.contains("no-es-un-correo"));
        let list = app.get("/api/v1/departments", Some(&admin.token)).await;
        assert_eq!(list.body.as_array().expect("departments").len(), 0);

        let created = browser
            .post("/admin/departments", &[("name", "Mantenimiento"), ("contact_emails", "mantenimiento@utec.pe\nguardia@utec.pe"), ("escalation_emails", "jefe@utec.pe"), ("assignment_strategy", "round_robin")])
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
        let list = app.get("/api/v1/departments", Some(&admin.token)).await;
        let department = &list.body[0];
        assert_eq!(department["contact_emails"], json!(["mantenimiento@utec.pe", "guardia@utec.pe"]));
        assert_eq!(department["escalation_emails"], json!(["jefe@utec.pe"]));
        assert_eq!(department["assignment_strategy"], "round_robin");
        let department_id = department["id"].as_i64().expect("id");

        // A category with that department, then its SLA for high urgency.
        browser.get("/admin/categories").await;
        let created = browser
            .post("/admin/categories", &[("name_es", "Fuga de agua"), ("name_en", "Water leak"), ("default_department_id", &department_id.to_string()), ("default_urgency", "high")])
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
        let categories = app.get("/api/v1/categories", Some(&admin.token)).await;
        let category_id = categories.body[0]["id"].as_i64().expect("category");
        assert_eq!(categories.body[0]["default_urgency"], "high");
        let page = browser.get(&format!("/admin/categories/{category_id}")).await;
        assert_eq!(page.status, StatusCode::OK);
        let bad = browser
            .post(&format!("/admin/categories/{category_id}/sla"), &[("urgency", "high"), ("acknowledge_within_secs", "0"), ("resolve_within_secs", "4")])
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.html.contains("id=\"ack-high-e\""), "{}", bad.html);
        let set = browser
            .post(&format!("/admin/categories/{category_id}/sla"), &[("urgency", "high"), ("acknowledge_within_secs", "15"), ("resolve_within_secs", "4"), ("raise_urgency_on_breach", "1")])
            .await;
        assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.html);
        let sla = app.get(&format!("/api/v1/categories/{category_id}/sla"), Some(&admin.token)).await;
        let high = sla.body.as_array().expect("policies").iter().find(|p| p["urgency"] == "high").expect("high").clone();
        assert_eq!((high["acknowledge_within_secs"].as_i64(), high["resolve_within_secs"].as_i64()), (Some(900), Some(14_400)));

        // An API key: its secret on the answer to the post, never on the list afterwards.
        browser.get("/admin/api-keys").await;
        let created = browser
            .post("/admin/api-keys", &[("name", "Sensor del pabellón A"), ("scopes", "incidents:write"), ("scopes", "catalog:read"), ("departments", &department_id.to_string())])
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.html);
        let secret = created.html.split("id=\"new-key-secret\">").nth(1).and_then(|s| s.split('<').next()).expect("secret shown").to_owned();
        assert!(secret.starts_with("vak_"), "{secret}");
        let works = app.client.get(format!("{}/api/v1/categories", app.url)).header("x-api-key", &secret).send().await.expect("key works");
        assert_eq!(works.status(), StatusCode::OK);
        let list = browser.get("/admin/api-keys").await;
        assert!(list.html.contains("Sensor del pabellón A"));
        assert!(!list.html.contains(&secret), "the secret is shown again");

        // Users: a staff account made a member of the department.
        browser.get("/admin/users").await;
        let created = browser
            .post("/admin/users", &[("display_name", "Ana Pérez"), ("email", "ana@utec.pe"), ("password", "corto"), ("role", "staff")])
            .await;
        assert_eq!(created.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(created.html.contains("id=\"u-password-e\""), "{}", created.html);
        let created = browser
            .post("/admin/users", &[("display_name", "Ana Pérez"), ("email", "ana@utec.pe"), ("password", "una-clave-bien-larga"), ("role", "staff"), ("departments", &department_id.to_string())])
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);

        // The audit log shows each action, filtered by entity.
        let audit = browser.get("/admin/audit").await;
        for action in ["department.created", "category.created", "api_key.created", "user.created"] {
            assert!(audit.html.contains(action), "{action} missing from the audit page");
        }
        let filtered = browser.get("/admin/audit?entity=department").await;
        assert!(filtered.html.contains("department.created") && !filtered.html.contains("api_key.created"));
        let bad_date = browser.get("/admin/audit?since=ayer").await;
        assert_eq!(bad_date.status, StatusCode::UNPROCESSABLE_ENTITY);

        // Staff may not open the admin pages.
        let staff = app.staff_in(&admin, department_id).await;
        let mut staff_browser = Browser::signed_in(&app, &staff).await;
        assert_eq!(staff_browser.get("/admin/users").await.status, StatusCode::FORBIDDEN);
    }
}
