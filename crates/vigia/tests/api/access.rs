//! Which API keys may call what: every row of `vigia_http::access::TABLE`, so a new route is
//! covered as soon as it exists (the table has one row per documented operation: system.rs).

use reqwest::{Method, StatusCode};
use serde_json::json;
use vigia_domain::auth::Scope;
use vigia_http::access::{Keys, TABLE};

use crate::backend_tests;
use crate::helpers::TestApp;

/// A key holding exactly `scopes` (at least one), created by `admin`.
async fn key(app: &TestApp, admin: &str, scopes: &[Scope]) -> String {
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let created = app
        .post(
            "/api/v1/api-keys",
            Some(admin),
            json!({ "name": format!("key {}", scopes.len()), "scopes": scopes }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    created.body["key"].as_str().expect("key").to_owned()
}

backend_tests! {
    async fn every_operation_refuses_an_api_key_without_one_of_its_scopes(app: TestApp) {
        let admin = app.admin().await;
        let all = key(&app, &admin.token, &Scope::ALL).await;
        for &(method, path, keys) in TABLE {
            let (secret, expected) = match keys {
                Keys::Open => continue,
                Keys::People => (all.clone(), "for people"),
                Keys::AnyOf(scopes) => {
                    let others: Vec<Scope> = Scope::ALL.into_iter().filter(|s| !scopes.contains(s)).collect();
                    (key(&app, &admin.token, &others).await, "lacks")
                }
            };
            let concrete = path.replace("{urgency}", "high").replace("{key}", "registration_open").replace("{name}", "cleanup")
                .replace("{id}", "1").replace("{aid}", "1");
            let method: Method = method.parse().expect("method");
            let body = matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
            let reply = app.request(method.clone(), &concrete, Some(&secret), body).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}: {:?}", reply.body);
            assert!(reply.is_problem(), "{method} {path}");
            let detail = reply.body["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(expected), "{method} {path}: {detail}");
        }
    }

    async fn exports_need_the_reports_read_scope(app: TestApp) {
        let admin = app.admin().await;
        let reader = key(&app, &admin.token, &[Scope::IncidentsRead]).await;
        let reporter = key(&app, &admin.token, &[Scope::ReportsRead]).await;
        for path in ["/api/v1/exports/incidents?format=csv", "/api/v1/exports/events?format=csv"] {
            let refused = app.get(path, Some(&reader)).await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path} with incidents:read only");
            assert_eq!(refused.body["detail"], "this API key lacks the reports:read scope");
            let allowed = app.client.get(format!("{}{path}", app.url)).bearer_auth(&reporter).send().await.expect("send");
            assert_eq!(allowed.status(), StatusCode::OK, "{path} with reports:read");
        }
    }
}
