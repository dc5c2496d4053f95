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

    async fn the_openapi_document_describes_every_route_with_its_parameters_and_the_docs_work_offline(app: TestApp) {
        let doc = app.get("/api/openapi.json", None).await;
        assert_eq!(doc.status, StatusCode::OK);
        assert_eq!(doc.body["openapi"], "3.1.0");
        assert_eq!(doc.body, serde_json::to_value(vigia_http::openapi::document()).expect("json"), "the served document is the generated one");
        // The router is built from the annotated handlers (`routes!`), so its routes are the
        // document's operations; each has its row in the access table, and the table no more.
        let mut operations = Vec::new();
        for (path, item) in doc.body["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("item") {
                let method = method.to_ascii_uppercase();
                operations.push((method.clone(), path.clone()));
                let declared: Vec<&str> = operation["parameters"].as_array().into_iter().flatten()
                    .filter(|p| p["in"] == "path").map(|p| p["name"].as_str().expect("name")).collect();
                let placeholders: Vec<&str> = path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
                assert_eq!(declared, placeholders, "{method} {path}: every path parameter declared, in order");
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    if status.starts_with('4') || status.starts_with('5') {
                        let types: Vec<&String> = response["content"].as_object().expect("content").keys().collect();
                        assert_eq!(types, ["application/problem+json"], "{method} {path} {status}");
                    }
                }
                if operation.get("security").is_some() {
                    assert!(operation["responses"].get("401").is_some(), "{method} {path}: 401 undocumented");
                }
                if operation.get("requestBody").is_some() {
                    for status in ["400", "415", "422"] {
                        assert!(operation["responses"].get(status).is_some(), "{method} {path}: {status} undocumented");
                    }
                }
                // Routed: an anonymous call is never the fallback's 404 or a 405.
                let concrete = path.replace("{urgency}", "high").replace("{key}", "registration_open").replace("{name}", "cleanup");
                let concrete = placeholders.iter().fold(concrete, |p, name| p.replace(&format!("{{{name}}}"), "1"));
                if method == "GET" && (path == "/ws" || path == "/api/v1/stream") {
                    continue; // endless streams; their routes are checked in realtime.rs
                }
                let reply = app.request(method.parse().expect("method"), &concrete, None, None).await;
                let secured = operation.get("security").is_some();
                assert!(reply.status != StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is not routed");
                if secured {
                    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}: {:?}", reply.body);
                }
            }
        }
        let mut table: Vec<(String, String)> = vigia_http::access::TABLE.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
        operations.sort();
        table.sort();
        assert_eq!(operations, table, "the access table has one row per operation");
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
