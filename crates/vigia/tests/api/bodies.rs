//! JSON request bodies: every route that takes one reads it the same way (415 for another
//! content type, 413 naming the limit, 422 naming every invalid field), and a rejected body
//! changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::TestApp;
use crate::incidents::{campus, report};

/// Every operation of the OpenAPI document whose body is JSON, its path ids filled with 1.
fn json_body_routes(doc: &Value) -> Vec<(Method, String)> {
    let mut routes = Vec::new();
    for (path, operations) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            if operation["requestBody"]["content"]
                .get("application/json")
                .is_none()
            {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let mut filled = String::new();
            let mut in_parameter = false;
            for c in path.chars() {
                match c {
                    '{' => {
                        in_parameter = true;
                        filled.push('1');
                    }
                    '}' => in_parameter = false,
                    _ if in_parameter => {}
                    _ => filled.push(c),
                }
            }
            routes.push((method, filled));
        }
    }
    routes
}

/// What a raw HTTP/1.1 exchange answered: status, content type and body as JSON.
struct RawReply {
    status: u16,
    content_type: String,
    body: Value,
}

/// Sends `head` (request line and headers, without the blank line) then `body` over a socket of
/// its own and reads the answer: the server may refuse a body before reading it, which an HTTP
/// client sending the whole body would see as a broken pipe.
async fn raw_request(app: &TestApp, head: &str, body: &[u8]) -> RawReply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let host = format!("host: {addr}\r\nconnection: close\r\n\r\n");
    stream
        .write_all(format!("{head}\r\n{host}").as_bytes())
        .await
        .expect("write head");
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("answered in time")
    .expect("read answer");
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    RawReply {
        status,
        content_type,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

backend_tests! {
    async fn every_json_body_route_refuses_other_content_types_and_oversized_bodies_as_problems(app: TestApp) {
        let admin = app.admin().await;
        let doc = app.get("/api/openapi.json", None).await;
        let routes = json_body_routes(&doc.body);
        for named in ["/api/v1/incidents", "/api/v1/auth/refresh", "/api/v1/auth/login"] {
            assert!(routes.iter().any(|(_, p)| p == named), "{named} is walked: {routes:?}");
        }
        let default_limit = app.config.http.max_body_bytes;
        let before = app.snapshot().await;
        for (method, path) in &routes {
            // The detection batch (10,000 detections) has a limit of its own.
            let limit = if path == "/api/v1/detections/batch" {
                vigia_http::extract::BATCH_BODY_BYTES
            } else {
                default_limit
            };
            let send = |content_type: &'static str, body: String| {
                app.client
                    .request(method.clone(), format!("{}{path}", app.url))
                    .bearer_auth(&admin.token)
                    .header("content-type", content_type)
                    .body(body)
                    .send()
            };
            for (content_type, body) in [("text/plain", "{}"), ("application/x-www-form-urlencoded", "a=b")] {
                let reply = TestApp::reply(send(content_type, body.into()).await.expect("send")).await;
                assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{method} {path} as {content_type}: {:?}", reply.body);
                assert!(reply.is_problem(), "{method} {path}: {:?}", reply.headers);
            }
            // Refused from its announced length, before a byte of it is read.
            let head = format!(
                "{method} {path} HTTP/1.1\r\nauthorization: Bearer {}\r\n\
                 content-type: application/json\r\ncontent-length: {}",
                admin.token,
                limit + 1
            );
            let reply = raw_request(&app, &head, b"").await;
            assert_eq!(reply.status, 413, "{method} {path}: {:?}", reply.body);
            assert_eq!(reply.content_type, "application/problem+json", "{method} {path}");
            assert_eq!(reply.body["detail"], format!("the request body is larger than {limit} bytes"), "{method} {path}");
        }
        assert_eq!(app.snapshot().await, before, "refused bodies change nothing");
    }

    async fn a_body_or_a_nested_object_sent_as_a_json_array_is_refused_and_changes_nothing(app: TestApp) {
        // serde would read `[true]` as `{"enabled": true}`; the schema says object.
        let admin = app.admin().await;
        let doc = app.get("/api/openapi.json", None).await;
        let before = app.snapshot().await;
        for (method, path) in json_body_routes(&doc.body) {
            let reply = TestApp::reply(
                app.client
                    .request(method.clone(), format!("{}{path}", app.url))
                    .bearer_auth(&admin.token)
                    .json(&json!([true, "x", 1]))
                    .send()
                    .await
                    .expect("send"),
            )
            .await;
            // Routes an admin may not call answer 401/403 before reading the body, and those
            // whose path names something answer 404 when id 1 does not exist.
            assert!(
                matches!(reply.status.as_u16(), 401 | 403 | 404 | 422),
                "{method} {path} took an array: {} {:?}",
                reply.status,
                reply.body
            );
            if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
                assert_eq!(reply.body["errors"][0]["field"], "body", "{method} {path}: {:?}", reply.body);
            }
        }
        // The case schemathesis found: the body is read before the schedule is looked up.
        let schedule = app
            .patch("/api/v1/schedules/sla_escalate", Some(&admin.token), json!([false]))
            .await;
        assert_eq!(schedule.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", schedule.body);
        assert_eq!(schedule.body["errors"][0]["field"], "body", "{:?}", schedule.body);
        let zone = app
            .post("/api/v1/zones", Some(&admin.token), json!({ "name": "Patio", "center": [19.4, -99.1], "radius_m": 50 }))
            .await;
        assert_eq!(zone.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", zone.body);
        assert_eq!(zone.body["errors"][0]["field"], "center", "{:?}", zone.body);
        assert_eq!(app.snapshot().await, before, "refused bodies change nothing");
    }

    async fn a_chunked_body_over_the_limit_is_a_413_problem(app: TestApp) {
        let admin = app.admin().await;
        let limit = app.config.http.max_body_bytes;
        // No Content-Length: the limit is enforced while the body is read.
        let head = format!(
            "POST /api/v1/incidents HTTP/1.1\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ntransfer-encoding: chunked",
            admin.token
        );
        let mut body = format!("{:x}\r\n", limit + 1).into_bytes();
        body.extend(std::iter::repeat_n(b' ', limit + 1));
        let reply = raw_request(&app, &head, &body).await;
        assert_eq!(reply.status, 413, "{:?}", reply.body);
        assert_eq!(reply.content_type, "application/problem+json");
        assert_eq!(reply.body["detail"], format!("the request body is larger than {limit} bytes"));
    }

    async fn a_report_names_every_missing_and_invalid_field_in_one_answer(app: TestApp) {
        let c = campus(&app).await;
        let before = app.snapshot().await;
        let body = json!({ "category_id": c.leak, "description": "sin título", "urgency": "urgentisimo" });
        for path in ["/api/v1/incidents", "/api/v1/incidents/preview"] {
            let reply = app.post(path, Some(&c.reporter.token), body.clone()).await;
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {:?}", reply.body);
            assert!(reply.is_problem());
            let errors: Vec<(&str, &str)> = reply.body["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .map(|e| (e["field"].as_str().unwrap_or_default(), e["message"].as_str().unwrap_or_default()))
                .collect();
            assert_eq!(
                errors,
                [("title", "is required"), ("urgency", "must be one of: low, medium, high, emergency")],
                "{path}"
            );
        }
        // Wrong types and domain rules together: each field once, under its own name.
        let reply = app
            .post("/api/v1/incidents", Some(&c.reporter.token), json!({
                "category_id": "seis", "title": " ", "description": 5, "zone_id": -1,
                "visibility": "secret", "point": { "lat": "x", "lon": 0 }
            }))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", reply.body);
        let fields: Vec<&str> = reply.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(fields, ["category_id", "description", "point.lat", "title", "visibility", "location.zone_id"], "{:?}", reply.body);
        assert_eq!(app.snapshot().await, before, "a rejected report changes nothing");
    }

    async fn comments_and_accounts_name_type_errors_and_domain_errors_together(app: TestApp) {
        let c = campus(&app).await;
        let id = report(&app, &c.reporter, json!({ "category_id": c.leak, "title": "Fuga", "description": "Agua en el piso" })).await["id"]
            .as_i64()
            .expect("id");
        let before = app.snapshot().await;
        let fields = |reply: &crate::helpers::Reply| -> Vec<String> {
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", reply.body);
            reply.body["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        let comment = app
            .post(&format!("/api/v1/incidents/{id}/comments"), Some(&c.reporter.token), json!({ "visibility": "secreta" }))
            .await;
        assert_eq!(fields(&comment), ["body", "visibility"], "{:?}", comment.body);
        let register = app
            .post("/api/v1/auth/register", None, json!({ "email": "no-es-un-correo", "password": 12345678, "display_name": "Rosa" }))
            .await;
        assert_eq!(fields(&register), ["password", "email"], "{:?}", register.body);
        assert_eq!(app.snapshot().await, before);
    }

    async fn other_routes_name_every_invalid_field_too(app: TestApp) {
        let admin = app.admin().await;
        let before = app.snapshot().await;
        let reply = app
            .post("/api/v1/zones", Some(&admin.token), json!({ "center": { "lat": "norte" }, "radius_m": "grande", "color": "red" }))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", reply.body);
        let fields: Vec<&str> = reply.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().unwrap_or_default())
            .collect();
        assert!(fields.len() >= 4, "{fields:?}");
        for field in ["name", "center.lat", "center.lon", "radius_m", "color"] {
            assert!(fields.contains(&field), "{field} is named: {fields:?}");
        }
        assert_eq!(app.snapshot().await, before);
    }

    async fn a_rejected_request_is_told_apart_from_an_update_by_the_snapshot(app: TestApp) {
        let admin = app.admin().await;
        let department = app.department(&admin, "Mantenimiento").await;
        let before = app.snapshot().await;
        assert!(before.iter().any(|t| t.table == "incident_events"), "every table is covered: {before:?}");
        app.exec("UPDATE departments SET name = 'Limpieza' WHERE id = $1", &[department]).await;
        let after = app.snapshot().await;
        let changed: Vec<&str> = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b != a)
            .map(|(b, _)| b.table.as_str())
            .collect();
        assert_eq!(changed, ["departments"], "an UPDATE keeps the count but not the contents");
    }
}
