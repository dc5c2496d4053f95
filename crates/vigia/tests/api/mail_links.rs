//! The links in a department contact's e-mail, read out of the message a real SMTP server
//! (aiosmtpd) received and followed as the recipient would: the incident page for a signed-in
//! browser, and the report link that needs no account.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, IncidentId};
use vigia_domain::links::{LinkKey, ReportLinkClaims};
use vigia_domain::users::Role;

use crate::helpers::{Backend, JWT_SECRET, TestApp, TestUser, spawn_app_with};
use crate::notify::{SmtpServer, free_port, mail_config, setup, to};

const TITLE: &str = r#"Fuga <b>"grande"</b> & más"#;

/// The URL after `label` on a line of the text part.
fn link_after(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix(label))
        .unwrap_or_else(|| panic!("no line {label:?} in {text}"))
        .trim()
        .to_owned()
}

/// GET `url` with extra headers; status, content type and body text.
async fn fetch(app: &TestApp, url: &str, headers: &[(&str, &str)]) -> (StatusCode, String, String) {
    let mut request = app.client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

/// Signs `who` in as a browser does and returns its `Cookie` header.
async fn browser_session(app: &TestApp, who: &TestUser) -> String {
    let response = app
        .client
        .post(format!("{}/api/v1/auth/login", app.url))
        .json(&json!({ "email": who.email, "password": who.password, "cookie": true }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("vigia_session="))
        .expect("session cookie")
        .split(';')
        .next()
        .expect("cookie pair")
        .to_owned()
}

/// A private, high-urgency incident routed to the department of `setup`, and the e-mail its
/// account-less contact received.
async fn reported(app: &TestApp, smtp: &SmtpServer, category: i64) -> (TestUser, Value, Value) {
    let reporter = app.user(Role::Reporter).await;
    let reply = app
        .post(
            "/api/v1/incidents",
            Some(&reporter.token),
            json!({ "category_id": category, "title": TITLE, "description": "Sale agua.", "visibility": "private" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let messages = smtp.wait_for(3).await;
    let mail = messages
        .iter()
        .find(|m| to(m) == "mantenimiento@utec.pe")
        .unwrap_or_else(|| panic!("no mail to the department: {messages:#?}"))
        .clone();
    (reporter, reply.body, mail)
}

async fn the_incident_link_in_the_mail_opens_the_incident_for_a_signed_in_browser_only(
    backend: Backend,
) {
    let port = free_port();
    let smtp = SmtpServer::start(port).await;
    // No public URL configured: links point at where the server listens.
    let Some(app) = spawn_app_with(backend, |c| {
        mail_config(c, port);
        c.http.public_url = String::new();
    })
    .await
    else {
        return;
    };
    let s = setup(&app).await;
    let (reporter, incident, mail) = reported(&app, &smtp, s.category).await;
    let code = incident["code"].as_str().expect("code");
    let link = link_after(mail["text"].as_str().expect("text"), "Ver el incidente: ");
    assert_eq!(link, format!("{}/incidents/{code}", app.url));

    // Not signed in: a hint, in Spanish unless the browser prefers English; nothing leaks.
    let (status, content_type, html) = fetch(&app, &link, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(
        html.contains("Iniciar sesión")
            && html.contains("action=\"/signin\"")
            && !html.contains("Fuga"),
        "{html}"
    );
    let (_, _, html) = fetch(
        &app,
        &link,
        &[("accept-language", "en-GB,en;q=0.9,es;q=0.5")],
    )
    .await;
    assert!(html.contains("Sign in"), "{html}");
    // Followed from a webmail, the SameSite=Strict cookie stays behind: the page reloads
    // itself as a same-site navigation, which carries it.
    let (status, _, html) = fetch(&app, &link, &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"<meta http-equiv="refresh" content="0">"#),
        "{html}"
    );

    // The department's staff, signed in in this browser: the incident, escaped.
    let cookie = browser_session(&app, &s.staff).await;
    let (status, _, html) = fetch(&app, &link, &[("cookie", &cookie)]).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("Fuga &#60;b&#62;&#34;grande&#34;&#60;/b&#62; &#38; más"),
        "{html}"
    );
    assert!(
        !html.contains("<b>"),
        "markup from the title is never written as is: {html}"
    );
    assert!(
        html.contains(
            "<dt>Estado</dt><dd><span class=\"status status-new\" data-status=\"new\">Nuevo</span>"
        ) && html.contains("<dd>Alta</dd>"),
        "{html}"
    );
    assert!(
        html.contains("Mantenimiento") && html.contains("Fuga de agua"),
        "{html}"
    );
    // The account's language wins over the browser's; in English once the account says so.
    let (_, _, html) = fetch(
        &app,
        &link,
        &[("cookie", &cookie), ("accept-language", "en")],
    )
    .await;
    assert!(html.contains("<dt>Estado</dt>"), "{html}");
    let english = app
        .patch(
            "/api/v1/me",
            Some(&s.staff.token),
            json!({ "locale": "en" }),
        )
        .await;
    assert_eq!(english.status, StatusCode::OK, "{:?}", english.body);
    let (_, _, html) = fetch(&app, &link, &[("cookie", &cookie)]).await;
    assert!(
        html.contains(
            "<dt>Status</dt><dd><span class=\"status status-new\" data-status=\"new\">New</span>"
        ) && html.contains("Water leak"),
        "{html}"
    );
    // The reporter sees their own incident; another reporter gets the same page as for an
    // incident that does not exist.
    let own = browser_session(&app, &reporter).await;
    assert_eq!(
        fetch(&app, &link, &[("cookie", &own)]).await.0,
        StatusCode::OK
    );
    let stranger = app.user(Role::Reporter).await;
    let cookie = browser_session(&app, &stranger).await;
    let (status, _, html) = fetch(&app, &link, &[("cookie", &cookie)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        html.contains("no existe") && !html.contains("Fuga"),
        "{html}"
    );
    let (status, _, missing) = fetch(
        &app,
        &format!("{}/incidents/INC-999999", app.url),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!((status, missing), (StatusCode::NOT_FOUND, html));
}

/// Polls `url` until the report job has written the report.
async fn open_report(app: &TestApp, url: &str) -> Value {
    for _ in 0..200 {
        let response = app.client.get(url).send().await.expect("request");
        if response.status() == StatusCode::OK {
            return response.json().await.expect("report json");
        }
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "only 'not yet' may come first"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the report link never opened the report: {url}");
}

async fn problem(app: &TestApp, url: &str) -> (StatusCode, Value) {
    let reply = TestApp::reply(app.client.get(url).send().await.expect("request")).await;
    assert!(reply.is_problem(), "{:?}", reply.headers);
    (reply.status, reply.body)
}

async fn the_report_link_in_the_mail_opens_the_report_without_an_account_until_revoked(
    backend: Backend,
) {
    let port = free_port();
    let smtp = SmtpServer::start(port).await;
    let Some(app) = spawn_app_with(backend, |c| {
        mail_config(c, port);
        c.http.public_url = String::new();
        // The report is written by the job the routing event causes.
        c.jobs.enabled = true;
    })
    .await
    else {
        return;
    };
    let s = setup(&app).await;
    let (_, incident, mail) = reported(&app, &smtp, s.category).await;
    let (id, department) = (
        incident["id"].as_i64().expect("id"),
        incident["department_id"].as_i64().expect("department"),
    );
    let link = link_after(
        mail["text"].as_str().expect("text"),
        "Informe del incidente: ",
    );
    let prefix = format!(
        "{}/reports/incidents/{department}/incident_{id}.json?key=",
        app.url
    );
    assert!(link.starts_with(&prefix), "{link}");

    // No credentials needed.
    let report = open_report(&app, &link).await;
    assert_eq!(report["incident"]["id"], id);
    assert_eq!(report["incident"]["title"], TITLE);
    assert_eq!(report["department_name"], "Mantenimiento");

    // Tampered with: another signature, another incident or department, no key at all.
    let token = link.strip_prefix(&prefix).expect("token").to_owned();
    let flipped = if token.ends_with('A') {
        format!("{}B", &token[..token.len() - 1])
    } else {
        format!("{}A", &token[..token.len() - 1])
    };
    for url in [
        format!("{prefix}{flipped}"),
        format!(
            "{}/reports/incidents/{department}/incident_{}.json?key={token}",
            app.url,
            id + 1
        ),
        format!(
            "{}/reports/incidents/{}/incident_{id}.json?key={token}",
            app.url,
            department + 1
        ),
        format!(
            "{}/reports/incidents/{department}/incident_{id}.json",
            app.url
        ),
        format!(
            "{}/reports/incidents/{department}/incident_{id}.csv?key={token}",
            app.url
        ),
    ] {
        let (status, body) = problem(&app, &url).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}: {body}");
    }
    // Expired: genuinely signed (tests know the server's secret), past its expiry.
    let link_id: i64 = token
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("link id");
    let expired = LinkKey::derive(JWT_SECRET.as_bytes()).sign(&ReportLinkClaims {
        link_id,
        incident: IncidentId(id),
        department: DepartmentId(department),
        expires_at: Timestamp::now().plus_seconds(-60),
    });
    let (status, body) = problem(&app, &format!("{prefix}{expired}")).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert!(
        body["detail"].as_str().expect("detail").contains("expired"),
        "{body}"
    );

    // Revoked by an admin (not by staff): 410 from then on; the other contact's link still opens.
    let links = app
        .get(
            &format!("/api/v1/report-links?incident={id}"),
            Some(&s.admin.token),
        )
        .await;
    assert_eq!(links.status, StatusCode::OK, "{:?}", links.body);
    let items = links.body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "one link per contact: {items:?}");
    let mine = items
        .iter()
        .find(|l| l["recipient"] == "mantenimiento@utec.pe")
        .expect("the contact's link");
    assert_eq!(mine["id"], link_id);
    let path = format!("/api/v1/report-links/{link_id}/revoke");
    assert_eq!(
        app.post(&path, Some(&s.staff.token), json!({}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        open_report(&app, &link).await["incident"]["id"],
        id,
        "a refused revocation changes nothing"
    );
    let revoked = app.post(&path, Some(&s.admin.token), json!({})).await;
    assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
    assert!(revoked.body["revoked_at"].is_string());
    let (status, body) = problem(&app, &link).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert!(
        body["detail"].as_str().expect("detail").contains("revoked"),
        "{body}"
    );
    let audit = app
        .get("/api/v1/audit?entity=report_link", Some(&s.admin.token))
        .await;
    assert!(
        audit.body.to_string().contains("report_link.revoked"),
        "{:?}",
        audit.body
    );
    let messages = smtp.messages();
    let other = messages
        .iter()
        .find(|m| to(m) != "mantenimiento@utec.pe" && to(m) != "guardia@utec.pe")
        .expect("the other contact's mail");
    let other_link = link_after(other["text"].as_str().expect("text"), "Incident report: ");
    assert_eq!(open_report(&app, &other_link).await["incident"]["id"], id);
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_incident_link_in_the_mail_opens_the_incident_for_a_signed_in_browser_only() {
        super::the_incident_link_in_the_mail_opens_the_incident_for_a_signed_in_browser_only(
            super::Backend::Sqlite,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_report_link_in_the_mail_opens_the_report_without_an_account_until_revoked() {
        super::the_report_link_in_the_mail_opens_the_report_without_an_account_until_revoked(
            super::Backend::Sqlite,
        )
        .await
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_incident_link_in_the_mail_opens_the_incident_for_a_signed_in_browser_only() {
        super::the_incident_link_in_the_mail_opens_the_incident_for_a_signed_in_browser_only(
            super::Backend::Postgres,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_report_link_in_the_mail_opens_the_report_without_an_account_until_revoked() {
        super::the_report_link_in_the_mail_opens_the_report_without_an_account_until_revoked(
            super::Backend::Postgres,
        )
        .await
    }
}
