//! Accounts: register, login, tokens, refresh rotation, logout, password change, disable.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use vigia_domain::Timestamp;
use vigia_domain::ids::{SessionId, UserId};
use vigia_domain::users::Role;
use vigia_http::auth::token::TokenKeys;

use crate::backend_tests;
use crate::helpers::{JWT_SECRET, TestApp};

fn registration(email: &str) -> serde_json::Value {
    json!({ "email": email, "password": "tubería-rota-en-el-3er-piso", "display_name": "Rosa" })
}

backend_tests! {
    async fn a_reporter_registers_signs_in_and_reads_their_profile(app: TestApp) {
        let reply = app.post("/api/v1/auth/register", None, registration("Rosa@UTEC.edu.pe")).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        assert_eq!(reply.body["email"], "rosa@utec.edu.pe");
        assert_eq!(reply.body["role"], "reporter");
        assert_eq!(reply.body["locale"], "es");
        assert!(reply.body.get("password_hash").is_none());

        let login = app.login("rosa@utec.edu.pe", "tubería-rota-en-el-3er-piso").await;
        assert_eq!(login.status, StatusCode::OK);
        assert_eq!(login.body["token_type"], "Bearer");
        assert_eq!(login.body["expires_in"], 900);
        let token = login.body["access_token"].as_str().expect("token");
        let me = app.get("/api/v1/me", Some(token)).await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(me.body["email"], "rosa@utec.edu.pe");

        let renamed = app.patch("/api/v1/me", Some(token), json!({ "display_name": "Rosa P.", "locale": "en" })).await;
        assert_eq!(renamed.status, StatusCode::OK);
        assert_eq!(renamed.body["display_name"], "Rosa P.");
        assert_eq!(renamed.body["locale"], "en");
    }

    async fn a_duplicate_email_is_a_409_and_changes_nothing(app: TestApp) {
        app.post("/api/v1/auth/register", None, registration("dup@utec.pe")).await;
        let before = app.snapshot().await;
        let reply = app.post("/api/v1/auth/register", None, registration("DUP@utec.pe")).await;
        assert_eq!(reply.status, StatusCode::CONFLICT);
        assert!(reply.is_problem());
        assert_eq!(reply.body["field"], "email");
        assert_eq!(app.snapshot().await, before);
    }

    async fn a_weak_password_is_a_422_saying_why(app: TestApp) {
        let before = app.snapshot().await;
        for (password, why) in [("corta", "too short"), ("password123", "common"), ("aaaaaaaaaaaaaa", "different characters")] {
            let reply = app
                .post("/api/v1/auth/register", None, json!({ "email": "w@utec.pe", "password": password, "display_name": "W" }))
                .await;
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{password}");
            assert_eq!(reply.error_field(), Some("password"));
            assert!(reply.body["errors"][0]["message"].as_str().unwrap_or_default().contains(why), "{:?}", reply.body);
        }
        let reply = app.post("/api/v1/auth/register", None, json!({ "email": "nope", "password": "x", "display_name": "" })).await;
        let fields: Vec<&str> = reply.body["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
        assert_eq!(fields, ["email", "password", "display_name"]);
        assert_eq!(app.snapshot().await, before);
    }

    async fn wrong_credentials_get_the_same_401_in_similar_time_whether_or_not_the_user_exists(app: TestApp) {
        let user = app.user(Role::Reporter).await;
        let timed = |email: String, password: &'static str| {
            let app = &app;
            async move {
                let started = Instant::now();
                let reply = app.login(&email, password).await;
                (reply, started.elapsed())
            }
        };
        let mut known = Duration::ZERO;
        let mut unknown = Duration::ZERO;
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let (reply, took) = timed(user.email.clone(), "not-the-password").await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
            known += took;
            bodies.push(reply.body);
            let (reply, took) = timed("nobody@utec.pe".into(), "not-the-password").await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
            unknown += took;
            bodies.push(reply.body);
        }
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "answers differ: {bodies:?}");
        // Both paths verify an Argon2id hash; without the decoy the unknown path would be ~100x faster.
        assert!(unknown * 3 > known, "unknown user answered in {unknown:?} vs {known:?}: the timing leaks existence");
    }

    async fn expired_malformed_forged_and_revoked_tokens_are_401(app: TestApp) {
        let user = app.user(Role::Reporter).await;
        let keys = TokenKeys::new(JWT_SECRET.as_bytes());
        let long_ago = Timestamp::from_millis(Timestamp::now().millis() - 3_600_000);
        let expired = keys.issue(UserId(user.id), SessionId(1), long_ago, 60);
        let forged = TokenKeys::new(b"someone else's secret, 32 bytes!").issue(UserId(user.id), SessionId(1), Timestamp::now(), 600);
        for token in [expired.as_str(), "garbage", forged.as_str(), "a.b.c"] {
            let reply = app.get("/api/v1/me", Some(token)).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token}");
            assert!(reply.is_problem());
            assert!(reply.headers.contains_key("www-authenticate"));
        }
        assert_eq!(app.get("/api/v1/me", None).await.status, StatusCode::UNAUTHORIZED);

        assert_eq!(app.post("/api/v1/auth/logout", Some(&user.token), json!({})).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get("/api/v1/me", Some(&user.token)).await.status, StatusCode::UNAUTHORIZED);
        let refresh = app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": user.refresh_token })).await;
        assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    }

    async fn refresh_tokens_rotate_and_a_replayed_one_revokes_the_session(app: TestApp) {
        let user = app.user(Role::Reporter).await;
        let first = app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": user.refresh_token })).await;
        assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
        let rotated = first.body["refresh_token"].as_str().expect("refresh").to_owned();
        assert_ne!(rotated, user.refresh_token);
        let new_access = first.body["access_token"].as_str().expect("access").to_owned();
        assert_eq!(app.get("/api/v1/me", Some(&new_access)).await.status, StatusCode::OK);

        // The old token comes back: someone copied it. The whole session dies.
        let replay = app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": user.refresh_token })).await;
        assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
        let after = app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": rotated })).await;
        assert_eq!(after.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.get("/api/v1/me", Some(&new_access)).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn changing_the_password_signs_out_every_other_session(app: TestApp) {
        let user = app.user(Role::Staff).await;
        let other = app.login(&user.email, &user.password).await;
        let other_token = other.body["access_token"].as_str().expect("token").to_owned();

        let wrong = app
            .post("/api/v1/me/password", Some(&user.token), json!({ "current_password": "nope", "new_password": "otra-clave-bastante-larga" }))
            .await;
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(wrong.error_field(), Some("current_password"));

        let changed = app
            .post("/api/v1/me/password", Some(&user.token), json!({ "current_password": user.password, "new_password": "otra-clave-bastante-larga" }))
            .await;
        assert_eq!(changed.status, StatusCode::NO_CONTENT, "{:?}", changed.body);
        assert_eq!(app.get("/api/v1/me", Some(&user.token)).await.status, StatusCode::OK);
        assert_eq!(app.get("/api/v1/me", Some(&other_token)).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.login(&user.email, &user.password).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.login(&user.email, "otra-clave-bastante-larga").await.status, StatusCode::OK);
    }

    async fn a_disabled_user_cannot_sign_in_and_their_tokens_stop_working(app: TestApp) {
        let admin = app.admin().await;
        let user = app.user(Role::Staff).await;
        assert_eq!(app.get("/api/v1/me", Some(&user.token)).await.status, StatusCode::OK);
        let reply = app.patch(&format!("/api/v1/users/{}", user.id), Some(&admin.token), json!({ "disabled": true })).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(app.get("/api/v1/me", Some(&user.token)).await.status, StatusCode::UNAUTHORIZED);
        let login = app.login(&user.email, &user.password).await;
        assert_eq!(login.status, StatusCode::UNAUTHORIZED);
        assert_eq!(login.body["detail"], "wrong e-mail or password");
        let refresh = app.post("/api/v1/auth/refresh", None, json!({ "refresh_token": user.refresh_token })).await;
        assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    }

    async fn self_registration_can_be_switched_off_at_run_time(app: TestApp) {
        let admin = app.admin().await;
        let off = app.put("/api/v1/settings/registration.enabled", Some(&admin.token), json!({ "value": false })).await;
        assert_eq!(off.status, StatusCode::OK, "{:?}", off.body);
        let reply = app.post("/api/v1/auth/register", None, registration("late@utec.pe")).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        let bad = app.put("/api/v1/settings/registration.enabled", Some(&admin.token), json!({ "value": "no" })).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        let audit = app.get("/api/v1/audit?entity=setting", Some(&admin.token)).await;
        assert_eq!(audit.body["items"][0]["action"], "setting.changed");
        assert_eq!(audit.body["items"][0]["after"]["registration.enabled"], false);
    }
}

mod rate_limits {
    use super::*;
    use crate::helpers::{Backend, spawn_app_with};

    #[tokio::test]
    async fn repeated_logins_from_one_address_get_429_with_retry_after() {
        let app = spawn_app_with(Backend::Sqlite, |c| c.http.login_per_minute = 3)
            .await
            .expect("app");
        for _ in 0..3 {
            assert_eq!(
                app.login("x@utec.pe", "whatever-password").await.status,
                StatusCode::UNAUTHORIZED
            );
        }
        let limited = app.login("x@utec.pe", "whatever-password").await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(limited.is_problem());
        let retry: u64 = limited.headers["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=60).contains(&retry), "{retry}");
    }

    #[tokio::test]
    async fn repeated_registrations_from_one_address_get_429() {
        let app = spawn_app_with(Backend::Sqlite, |c| c.http.register_per_hour = 2)
            .await
            .expect("app");
        for i in 0..2 {
            let reply = app
                .post(
                    "/api/v1/auth/register",
                    None,
                    registration(&format!("r{i}@utec.pe")),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED);
        }
        let limited = app
            .post("/api/v1/auth/register", None, registration("r9@utec.pe"))
            .await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(limited.headers.contains_key("retry-after"));
    }

    /// Three nodes on one PostgreSQL database share one budget per address and account: the
    /// attempts spread over them are counted together, not once per node.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn login_and_registration_limits_hold_across_the_nodes_of_a_cluster() {
        let Some(a) = spawn_app_with(Backend::Postgres, |c| {
            c.http.login_per_minute = 4;
            c.http.register_per_hour = 2;
        })
        .await
        else {
            return;
        };
        let nodes = [&a, &a.spawn_peer().await, &a.spawn_peer().await];
        let mut statuses = Vec::new();
        for n in 0..9 {
            statuses.push(
                nodes[n % 3]
                    .login("x@utec.pe", "whatever-password")
                    .await
                    .status,
            );
        }
        let refused = statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count();
        assert_eq!(statuses[..4], [StatusCode::UNAUTHORIZED; 4], "{statuses:?}");
        assert_eq!(
            refused, 5,
            "4 attempts a minute in all, not 4 per node: {statuses:?}"
        );
        let mut registered = Vec::new();
        for (n, node) in nodes.iter().enumerate() {
            let body = registration(&format!("c{n}@utec.pe"));
            registered.push(node.post("/api/v1/auth/register", None, body).await.status);
        }
        assert_eq!(
            registered,
            [
                StatusCode::CREATED,
                StatusCode::CREATED,
                StatusCode::TOO_MANY_REQUESTS
            ]
        );
    }
}

/// The `name=value` of the `Set-Cookie` headers of a response, by cookie name, with the
/// attributes of each.
fn set_cookies(headers: &reqwest::header::HeaderMap) -> Vec<(String, String, String)> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let v = v.to_str().expect("ASCII cookie").to_owned();
            let (pair, attributes) = v.split_once(';').unwrap_or((&v, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            (name.to_owned(), value.to_owned(), attributes.to_owned())
        })
        .collect()
}

fn cookie_value(cookies: &[(String, String, String)], name: &str) -> String {
    cookies
        .iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"))
        .1
        .clone()
}

mod browser_sessions {
    use super::*;

    backend_tests! {
        async fn a_browser_session_lives_in_cookies_that_only_this_origin_can_act_with(app: TestApp) {
            let user = app.user(Role::Reporter).await;
            let login = app
                .client
                .post(format!("{}/api/v1/auth/login", app.url))
                .json(&json!({ "email": user.email, "password": user.password, "cookie": true }))
                .send()
                .await
                .expect("login");
            assert_eq!(login.status(), StatusCode::OK);
            let cookies = set_cookies(login.headers());
            assert_eq!(cookies.len(), 2, "{cookies:?}");
            for (name, _, attributes) in &cookies {
                assert!(attributes.contains("HttpOnly"), "{name}: {attributes}");
                assert!(attributes.contains("SameSite=Strict"), "{name}: {attributes}");
                assert!(!attributes.contains("Secure"), "plain-http public URL: {attributes}");
            }
            let refresh_attrs = &cookies.iter().find(|c| c.0 == "vigia_refresh").expect("refresh").2;
            assert!(refresh_attrs.contains("Path=/api/v1/auth"), "{refresh_attrs}");
            let session = cookie_value(&cookies, "vigia_session");
            let refresh = cookie_value(&cookies, "vigia_refresh");
            // Without the flag no cookie is set.
            let plain = app.login(&user.email, &user.password).await;
            assert!(plain.headers.get("set-cookie").is_none());

            let with_cookie = |method: reqwest::Method, path: &str, origin: Option<&str>| {
                let mut request = app
                    .client
                    .request(method, format!("{}{path}", app.url))
                    .header("cookie", format!("theme=dark; vigia_session={session}"));
                if let Some(origin) = origin {
                    request = request.header("origin", origin);
                }
                request
            };
            // Reading needs no origin.
            let me = TestApp::reply(with_cookie(reqwest::Method::GET, "/api/v1/me", None).send().await.expect("me")).await;
            assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
            assert_eq!(me.body["email"], user.email.as_str());

            // Acting without an origin, or from another one, is refused and changes nothing.
            for origin in [None, Some("https://evil.example"), Some("null")] {
                let reply = TestApp::reply(
                    with_cookie(reqwest::Method::PATCH, "/api/v1/me", origin)
                        .json(&json!({ "display_name": "Atacante" }))
                        .send()
                        .await
                        .expect("patch"),
                )
                .await;
                assert_eq!(reply.status, StatusCode::FORBIDDEN, "origin {origin:?}: {:?}", reply.body);
                assert!(reply.is_problem());
            }
            let me = TestApp::reply(with_cookie(reqwest::Method::GET, "/api/v1/me", None).send().await.expect("me")).await;
            assert_eq!(me.body["display_name"], "Test User");
            // From this server's own origin it works.
            let reply = TestApp::reply(
                with_cookie(reqwest::Method::PATCH, "/api/v1/me", Some(&app.url))
                    .json(&json!({ "display_name": "Rosa" }))
                    .send()
                    .await
                    .expect("patch"),
            )
            .await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            assert_eq!(reply.body["display_name"], "Rosa");
            // A bearer token still works with no origin at all (API clients).
            let reply = app.patch("/api/v1/me", Some(&user.token), json!({ "locale": "en" })).await;
            assert_eq!(reply.status, StatusCode::OK);

            // Refreshing from the cookie: refused cross-site (and nothing rotates), renewed from here.
            let refresh_with = |origin: &str, token: &str| {
                app.client
                    .post(format!("{}/api/v1/auth/refresh", app.url))
                    .header("cookie", format!("vigia_refresh={token}"))
                    .header("origin", origin.to_owned())
                    .send()
            };
            let refused = TestApp::reply(refresh_with("https://evil.example", &refresh).await.expect("refresh")).await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN);
            let renewed = refresh_with(&app.url, &refresh).await.expect("refresh");
            assert_eq!(renewed.status(), StatusCode::OK);
            let cookies = set_cookies(renewed.headers());
            let session = cookie_value(&cookies, "vigia_session");
            assert_ne!(cookie_value(&cookies, "vigia_refresh"), refresh, "the refresh token rotates");

            // Logout clears both cookies and ends the session.
            let logout = app
                .client
                .post(format!("{}/api/v1/auth/logout", app.url))
                .header("cookie", format!("vigia_session={session}"))
                .header("origin", app.url.clone())
                .send()
                .await
                .expect("logout");
            assert_eq!(logout.status(), StatusCode::NO_CONTENT);
            let cleared = set_cookies(logout.headers());
            assert_eq!(cleared.len(), 2);
            assert!(cleared.iter().all(|(_, value, attrs)| value.is_empty() && attrs.contains("Max-Age=0")), "{cleared:?}");
            let after = app
                .client
                .get(format!("{}/api/v1/me", app.url))
                .header("cookie", format!("vigia_session={session}"))
                .send()
                .await
                .expect("me");
            assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
        }
    }
}
