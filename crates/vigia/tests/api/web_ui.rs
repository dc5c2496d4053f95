//! The web UI's server-side rules, over HTTP as a browser sends them: forms need this server's
//! origin and their CSRF token; rejected forms change nothing and name each field's error in
//! the viewer's language; a report from the form is the API's incident with its photo; pages
//! carry the strict Content-Security-Policy. (The browser tests in `tests/browser` drive the
//! same pages in Chromium.)

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;
use vigia_domain::users::Role;

use crate::attachments::{elf, png};
use crate::backend_tests;
use crate::helpers::{TestApp, TestUser};

/// `application/x-www-form-urlencoded`, as a browser encodes a form.
fn urlencoded(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                b => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A browser without redirects, so each answer is seen as sent.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of cookie `name` among the response's `Set-Cookie` headers.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// A page's CSRF token: the cookie it set and the hidden field of its forms hold the same.
async fn csrf(app: &TestApp, client: &reqwest::Client, path: &str) -> String {
    let response = client
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .expect("page");
    let cookie = set_cookie(response.headers(), "vigia_csrf").expect("a CSRF cookie");
    let html = response.text().await.expect("html");
    assert!(
        html.contains(&format!("name=\"csrf\" value=\"{cookie}\"")),
        "{html}"
    );
    cookie
}

/// Signs `who` in through the form; the `Cookie` header of the browser afterwards.
async fn signed_in(app: &TestApp, who: &TestUser) -> String {
    let client = browser();
    let token = csrf(app, &client, "/signin").await;
    let response = client
        .post(format!("{}/signin", app.url))
        .header("origin", &app.url)
        .header("cookie", format!("vigia_csrf={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(urlencoded(&[
            ("csrf", token.as_str()),
            ("email", who.email.as_str()),
            ("password", who.password.as_str()),
            ("next", "/my"),
        ]))
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/my");
    let session = set_cookie(response.headers(), "vigia_session").expect("session cookie");
    format!("vigia_csrf={token}; vigia_session={session}")
}

const BOUNDARY: &str = "vigia-ui-test-boundary-3c9a";

/// A `multipart/form-data` body as a browser sends the report form: text fields, then the
/// `photo` file. `(Content-Type, body)`.
fn multipart(fields: &[(&str, &str)], file_name: &str, photo: &[u8]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{file_name}\"\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(photo);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

fn csp_of(headers: &HeaderMap) -> String {
    headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

backend_tests! {
    async fn a_form_needs_this_servers_origin_and_its_csrf_token(app: TestApp) {
        let who = app.user(Role::Reporter).await;
        let client = browser();
        let token = csrf(&app, &client, "/signin").await;
        let before = app.snapshot().await;
        let attempt = |origin: &'static str, sent: Option<&str>| {
            let mut form = vec![("email", who.email.as_str()), ("password", who.password.as_str())];
            if let Some(sent) = sent {
                form.push(("csrf", sent));
            }
            let body = urlencoded(&form);
            let origin = if origin == "self" { app.url.clone() } else { origin.to_owned() };
            client
                .post(format!("{}/signin", app.url))
                .header("origin", origin)
                .header("cookie", format!("vigia_csrf={token}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
        };
        // Another origin, even with the right token: refused with an HTML page.
        let foreign = attempt("http://evil.example.org", Some(&token)).await.expect("post");
        assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
        assert!(set_cookie(foreign.headers(), "vigia_session").is_none());
        let html = foreign.text().await.expect("html");
        assert!(html.contains("no vino de esta página"), "{html}");
        // This origin without the token, or with another one: refused.
        for sent in [None, Some("0123456789abcdef0123456789abcdef")] {
            let response = attempt("self", sent).await.expect("post");
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{sent:?}");
        }
        assert_eq!(app.snapshot().await, before, "refused forms change nothing");
        // Both: signed in.
        let ok = attempt("self", Some(&token)).await.expect("post");
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        let session = set_cookie(ok.headers(), "vigia_session").expect("session");
        let cookie = ok.headers().get_all("set-cookie").iter().find_map(|v| v.to_str().ok().filter(|v| v.starts_with("vigia_session="))).expect("cookie").to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        let profile = client
            .get(format!("{}/profile", app.url))
            .header("cookie", format!("vigia_session={session}"))
            .send()
            .await
            .expect("profile");
        assert_eq!(profile.status(), StatusCode::OK);
        assert!(profile.text().await.expect("html").contains(&who.email));
    }

    async fn a_rejected_sign_up_names_each_field_in_the_viewers_language_and_changes_nothing(app: TestApp) {
        let client = browser();
        let token = csrf(&app, &client, "/signup").await;
        let before = app.snapshot().await;
        for (lang, email_error, password_error) in [
            ("es", "Debe ser un correo como ana@example.org", "Es demasiado corta: usa al menos 10 caracteres"),
            ("en", "Must be an e-mail address such as ana@example.org", "Is too short: use at least 10 characters"),
        ] {
            let response = client
                .post(format!("{}/signup", app.url))
                .header("origin", &app.url)
                .header("cookie", format!("vigia_csrf={token}; vigia_lang={lang}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(urlencoded(&[("csrf", token.as_str()), ("display_name", "Ana"), ("email", "no-es-correo"), ("password", "corta")]))
                .send()
                .await
                .expect("post");
            assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
            let html = response.text().await.expect("html");
            assert!(html.contains(&format!("<p class=\"error\" id=\"f-email-error\">{email_error}</p>")), "{html}");
            assert!(html.contains(&format!("<p class=\"error\" id=\"f-password-error\">{password_error}</p>")), "{html}");
            assert!(html.contains("aria-describedby=\"f-email-error\""), "{html}");
            assert!(!html.contains("f-display_name-error"), "a valid field has no error: {html}");
            assert!(html.contains("value=\"no-es-correo\""), "the values are kept: {html}");
        }
        assert_eq!(app.snapshot().await, before);
    }

    async fn a_report_from_the_form_is_the_apis_incident_with_its_photo(app: TestApp) {
        let admin = app.admin().await;
        let category = app
            .post("/api/v1/categories", Some(&admin.token), json!({ "name_es": "Fuga de agua", "name_en": "Water leak", "default_urgency": "high" }))
            .await;
        assert_eq!(category.status, StatusCode::CREATED, "{:?}", category.body);
        let category = category.body["id"].as_i64().expect("id").to_string();
        let zone = app
            .post("/api/v1/zones", Some(&admin.token), json!({ "name": "Biblioteca", "center": { "lat": -12.136, "lon": -77.0212 }, "radius_m": 30.0 }))
            .await;
        assert_eq!(zone.status, StatusCode::CREATED, "{:?}", zone.body);
        let zone = zone.body["id"].as_i64().expect("id").to_string();
        let reporter = app.user(Role::Reporter).await;
        let cookie = signed_in(&app, &reporter).await;
        let token = cookie.split(';').next().and_then(|c| c.strip_prefix("vigia_csrf=")).expect("token").to_owned();
        let client = browser();
        let send = |photo: Vec<u8>, title: &str| {
            let fields = [
                ("csrf", token.as_str()),
                ("category_id", category.as_str()),
                ("title", title),
                ("description", "Sale agua del techo."),
                ("zone_id", zone.as_str()),
                ("location_text", "Sala 2"),
                ("urgency", ""),
                ("visibility", "private"),
            ];
            let (content_type, body) = multipart(&fields, "techo.png", &photo);
            client
                .post(format!("{}/report", app.url))
                .header("origin", &app.url)
                .header("cookie", cookie.clone())
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        // A program disguised as a photo: refused next to the field, nothing written.
        let before = app.snapshot().await;
        let refused = send(elf(), "Gotera").await.expect("post");
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = refused.text().await.expect("html");
        assert!(html.contains("id=\"f-photo-error\">Este archivo no es una foto"), "{html}");
        assert!(html.contains("Gotera"), "the form keeps its values: {html}");
        assert_eq!(app.snapshot().await, before);

        let created = send(png(), "Gotera en la biblioteca").await.expect("post");
        assert_eq!(created.status(), StatusCode::SEE_OTHER);
        let location = created.headers()["location"].to_str().expect("location").to_owned();
        let code = location
            .strip_prefix("/incidents/")
            .and_then(|l| l.strip_suffix("?new=1"))
            .expect("the new incident's page")
            .to_owned();
        let incident = app.get(&format!("/api/v1/incidents/{code}"), Some(&reporter.token)).await;
        assert_eq!(incident.status, StatusCode::OK);
        assert_eq!(incident.body["title"], "Gotera en la biblioteca");
        assert_eq!(incident.body["urgency"], "high", "the category's urgency");
        assert_eq!(incident.body["visibility"], "private");
        assert_eq!(incident.body["source"], "web");
        assert_eq!(incident.body["location"]["zone_id"].to_string(), zone);
        let files = app.get(&format!("/api/v1/incidents/{code}/attachments"), Some(&reporter.token)).await;
        assert_eq!(files.body.as_array().map(Vec::len), Some(1), "{:?}", files.body);
        assert_eq!(files.body[0]["content_type"], "image/png");

        let page = client
            .get(format!("{}{location}", app.url))
            .header("cookie", cookie.clone())
            .send()
            .await
            .expect("page");
        assert_eq!(page.status(), StatusCode::OK);
        let csp = csp_of(page.headers());
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(page.headers()["cache-control"], HeaderValue::from_static("no-store"));
        let html = page.text().await.expect("html");
        assert!(html.contains(&format!("Reporte enviado. Su código es {code}.")), "{html}");
        assert!(html.contains("/thumbnail\""), "the photo's thumbnail: {html}");
    }
}
