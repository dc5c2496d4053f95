//! API conventions shared by every endpoint: problems, limits, ids, headers, health, metrics, docs.

use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests! {
    async fn health_and_readiness_answer(app: TestApp) {
        let health = app.get("/health", None).await;
        assert_eq!(health.status, StatusCode::OK);
        assert_eq!(health.body["status"], "ok");
        let ready = app.get("/ready", None).await;
        assert_eq!(ready.status, StatusCode::OK, "{:?}", ready.body);
        assert_eq!(ready.body["database"], "ok");
        assert_eq!(ready.body["object_storage"], "ok");
    }

    async fn malformed_json_is_a_400_that_says_where_and_changes_nothing(app: TestApp) {
        let admin = app.admin().await;
        let before = app.snapshot().await;
        let reply = app
            .client
            .post(format!("{}/api/v1/departments", app.url))
            .bearer_auth(&admin.token)
            .header("content-type", "application/json")
            .body("{\"name\": \"Seguridad\",\n  \"contact_emails\": [}")
            .send()
            .await
            .expect("send");
        let reply = TestApp::reply(reply).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(reply.is_problem());
        assert!(reply.body["detail"].as_str().unwrap_or_default().contains("line 2 column"), "{:?}", reply.body);
        let unknown = app.post("/api/v1/departments", Some(&admin.token), json!({ "name": "S", "budget": 10 })).await;
        assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(unknown.body["errors"][0]["message"].as_str().unwrap_or_default().contains("unknown field `budget`"));
        let wrong_type = app.post("/api/v1/departments", Some(&admin.token), json!({ "name": 42 })).await;
        assert_eq!(wrong_type.error_field(), Some("name"));
        let not_json = app
            .client
            .post(format!("{}/api/v1/departments", app.url))
            .bearer_auth(&admin.token)
            .body("name=x")
            .send()
            .await
            .expect("send");
        assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(app.snapshot().await, before);
    }

    async fn an_oversized_body_is_a_413_and_changes_nothing(app: TestApp) {
        let admin = app.admin().await;
        let before = app.snapshot().await;
        let huge = "x".repeat(app.config.http.max_body_bytes + 1);
        let reply = app.post("/api/v1/departments", Some(&admin.token), json!({ "name": huge })).await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(reply.is_problem());
        assert_eq!(app.snapshot().await, before);
    }

    async fn every_response_carries_a_request_id_and_security_headers(app: TestApp) {
        let reply = app.get("/api/v1/nowhere", None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert!(reply.is_problem());
        assert_eq!(reply.body["type"], "urn:vigia:problem:not-found");
        assert!(reply.headers.contains_key("x-request-id"));
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
        assert_eq!(reply.headers["x-frame-options"], "DENY");
        let mine = app.client.get(format!("{}/health", app.url)).header("x-request-id", "trace-me-42").send().await.expect("send");
        assert_eq!(mine.headers()["x-request-id"], "trace-me-42");
        let wrong_method = app.delete("/api/v1/me", None).await;
        assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(wrong_method.is_problem());
    }

    async fn metrics_count_requests_by_route_template_and_status(app: TestApp) {
        app.get("/api/v1/users/123", None).await;
        let text = app.client.get(format!("{}/metrics", app.url)).send().await.expect("send").text().await.expect("text");
        assert!(text.contains(r#"vigia_http_requests_total{method="GET",route="/api/v1/users/{id}",status="401"} 1"#), "{text}");
        assert!(text.contains("vigia_http_request_duration_seconds_bucket"));
        assert!(text.contains("vigia_db_pool_connections"));
        assert!(text.contains("vigia_build_info"));
    }

    async fn the_openapi_document_describes_every_endpoint_and_the_docs_work_offline(app: TestApp) {
        let doc = app.get("/api/openapi.json", None).await;
        assert_eq!(doc.status, StatusCode::OK);
        assert_eq!(doc.body["openapi"], "3.1.0");
        for path in ["/api/v1/auth/login", "/api/v1/me", "/api/v1/users/{id}", "/api/v1/categories", "/api/v1/audit", "/api/v1/api-keys", "/ready"] {
            assert!(doc.body["paths"].get(path).is_some(), "{path} undocumented");
        }
        assert!(doc.body["components"]["schemas"].get("Problem").is_some());
        let page = app.client.get(format!("{}/api/docs/", app.url)).send().await.expect("send");
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.expect("html");
        assert!(html.contains("swagger-ui"), "{html}");
        assert!(!html.contains("unpkg.com") && !html.contains("cdn."), "docs must not load from a CDN");
        let initializer = app.client.get(format!("{}/api/docs/swagger-initializer.js", app.url)).send().await.expect("send");
        let initializer = initializer.text().await.expect("script");
        assert!(initializer.contains("/api/openapi.json"), "the docs page must load the served document: {initializer}");
        let bundle = app.client.get(format!("{}/api/docs/swagger-ui-bundle.js", app.url)).send().await.expect("send");
        assert_eq!(bundle.status(), StatusCode::OK);
    }

    async fn cors_allows_only_configured_origins(app: TestApp) {
        let preflight = app
            .client
            .request(reqwest::Method::OPTIONS, format!("{}/api/v1/me", app.url))
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .expect("send");
        assert!(!preflight.headers().contains_key("access-control-allow-origin"));
    }
}
