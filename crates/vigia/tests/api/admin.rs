//! Administration: users, roles, departments, API keys, the audit log, role checks.

use reqwest::StatusCode;
use serde_json::json;
use vigia_domain::users::Role;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests! {
    async fn admins_manage_users_and_every_change_is_audited_with_before_and_after(app: TestApp) {
        let admin = app.admin().await;
        let department = app.department(&admin, "Mantenimiento").await;
        let created = app
            .post("/api/v1/users", Some(&admin.token), json!({
                "email": "sergio@utec.pe", "password": "llave-inglesa-2026", "display_name": "Sergio",
                "role": "staff", "departments": [department]
            }))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let id = created.body["id"].as_i64().expect("id");
        assert_eq!(created.body["departments"], json!([department]));

        let promoted = app.patch(&format!("/api/v1/users/{id}"), Some(&admin.token), json!({ "role": "admin" })).await;
        assert_eq!(promoted.status, StatusCode::OK);
        assert_eq!(promoted.body["role"], "admin");

        let listed = app.get(&format!("/api/v1/users?department={department}"), Some(&admin.token)).await;
        assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));

        let audit = app.get(&format!("/api/v1/audit?entity=user&entity_id={id}"), Some(&admin.token)).await;
        assert_eq!(audit.status, StatusCode::OK);
        let items = audit.body["items"].as_array().expect("items");
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(items[0]["action"], "user.updated");
        assert_eq!(items[0]["before"]["role"], "staff");
        assert_eq!(items[0]["after"]["role"], "admin");
        assert_eq!(items[0]["actor"], format!("user:{}", admin.id));
        assert!(items[0]["request_id"].as_str().is_some_and(|r| !r.is_empty()));
        assert_eq!(items[1]["action"], "user.created");
    }

    async fn the_right_token_with_the_wrong_role_is_403(app: TestApp) {
        let staff = app.user(Role::Staff).await;
        let reporter = app.user(Role::Reporter).await;
        for token in [&staff.token, &reporter.token] {
            for (method, path) in [
                ("GET", "/api/v1/users"),
                ("GET", "/api/v1/audit"),
                ("GET", "/api/v1/api-keys"),
                ("GET", "/api/v1/settings"),
                ("POST", "/api/v1/departments"),
                ("POST", "/api/v1/categories"),
                ("POST", "/api/v1/zones"),
            ] {
                let reply = match method {
                    "GET" => app.get(path, Some(token)).await,
                    _ => app.post(path, Some(token), json!({ "name": "x", "name_es": "x" })).await,
                };
                assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}: {:?}", reply.body);
                assert!(reply.is_problem());
            }
        }
    }

    async fn the_last_administrator_cannot_be_demoted_or_disabled(app: TestApp) {
        let admin = app.admin().await;
        let before = app.snapshot().await;
        for patch in [json!({ "role": "staff" }), json!({ "disabled": true })] {
            let reply = app.patch(&format!("/api/v1/users/{}", admin.id), Some(&admin.token), patch).await;
            assert_eq!(reply.status, StatusCode::CONFLICT);
        }
        assert_eq!(app.snapshot().await, before);
        let unknown = app.patch("/api/v1/users/999999", Some(&admin.token), json!({ "role": "staff" })).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        let bad = app.patch(&format!("/api/v1/users/{}", admin.id), Some(&admin.token), json!({ "departments": [424242] })).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad.error_field(), Some("departments[0]"));
        assert_eq!(app.snapshot().await, before);
    }

    async fn scoped_api_keys_are_shown_once_limited_to_their_scopes_and_revocable(app: TestApp) {
        let admin = app.admin().await;
        let created = app
            .post("/api/v1/api-keys", Some(&admin.token), json!({ "name": "sensor-lab-3", "scopes": ["catalog:read"] }))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let key = created.body["key"].as_str().expect("key").to_owned();
        assert!(key.starts_with("vak_"));
        let id = created.body["api_key"]["id"].as_i64().expect("id");
        assert!(created.body["api_key"]["last_used_at"].is_null());

        let listed = app.get("/api/v1/api-keys", Some(&admin.token)).await;
        assert!(!listed.body.to_string().contains(&key), "the secret must never be listed");

        let via_header = app
            .client
            .get(format!("{}/api/v1/categories", app.url))
            .header("x-api-key", &key)
            .send()
            .await
            .expect("send");
        assert_eq!(via_header.status(), StatusCode::OK);
        assert_eq!(app.get("/api/v1/zones", Some(&key)).await.status, StatusCode::OK);
        assert_eq!(app.post("/api/v1/departments", Some(&key), json!({ "name": "x" })).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get("/api/v1/me", Some(&key)).await.status, StatusCode::FORBIDDEN);

        let shown = app.get(&format!("/api/v1/api-keys/{id}"), Some(&admin.token)).await;
        assert!(shown.body["last_used_at"].is_string(), "{:?}", shown.body);

        let bad = app.post("/api/v1/api-keys", Some(&admin.token), json!({ "name": "x", "scopes": ["root"] })).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad.error_field(), Some("scopes[0]"));

        let revoked = app.delete(&format!("/api/v1/api-keys/{id}"), Some(&admin.token)).await;
        assert_eq!(revoked.status, StatusCode::OK);
        assert!(revoked.body["revoked_at"].is_string());
        assert_eq!(app.get("/api/v1/categories", Some(&key)).await.status, StatusCode::UNAUTHORIZED);
        let audit = app.get("/api/v1/audit?entity=api_key", Some(&admin.token)).await;
        let actions: Vec<&str> = audit.body["items"].as_array().expect("items").iter().filter_map(|e| e["action"].as_str()).collect();
        assert_eq!(actions, ["api_key.revoked", "api_key.created"]);
    }

    async fn lists_page_with_cursors_and_refuse_foreign_cursors(app: TestApp) {
        let admin = app.admin().await;
        for _ in 0..4 {
            app.user(Role::Reporter).await;
        }
        let first = app.get("/api/v1/users?limit=2", Some(&admin.token)).await;
        assert_eq!(first.body["items"].as_array().map(Vec::len), Some(2));
        let cursor = first.body["next_cursor"].as_str().expect("cursor").to_owned();
        let second = app.get(&format!("/api/v1/users?limit=2&cursor={cursor}"), Some(&admin.token)).await;
        let third_cursor = second.body["next_cursor"].as_str().expect("cursor").to_owned();
        let third = app.get(&format!("/api/v1/users?limit=2&cursor={third_cursor}"), Some(&admin.token)).await;
        assert_eq!(third.body["items"].as_array().map(Vec::len), Some(1));
        assert!(third.body["next_cursor"].is_null());
        let ids: Vec<i64> = [&first, &second, &third]
            .iter()
            .flat_map(|r| r.body["items"].as_array().cloned().unwrap_or_default())
            .filter_map(|u| u["id"].as_i64())
            .collect();
        assert_eq!(ids.len(), 5);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));

        let foreign = app.get("/api/v1/users?cursor=12", Some(&admin.token)).await;
        assert_eq!(foreign.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(foreign.error_field(), Some("cursor"));
        let unknown_param = app.get("/api/v1/users?colour=red", Some(&admin.token)).await;
        assert_eq!(unknown_param.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
