//! The OpenAPI 3.1 document, generated from the handlers' annotations, and its route.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(title = "Vigía API", description = "Report, route and resolve incidents. Errors are RFC 9457 \
        `application/problem+json`; lists use cursor pagination (`cursor`, `limit`, `next_cursor`). \
        API keys (`vak_…`) may call an operation when they hold one of the scopes its `security` \
        names; operations whose `security` names none are for people only."),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign in and manage your own account"),
        (name = "users", description = "User administration"),
        (name = "incidents", description = "Report, follow and resolve incidents; the public board"),
        (name = "catalog", description = "Departments, categories and zones"),
        (name = "admin", description = "API keys, audit log and runtime settings"),
        (name = "system", description = "Health, readiness and metrics"),
        (name = "stats", description = "Dashboard statistics and the public rankings"),
        (name = "reports", description = "Global, per-incident and custom reports; exports"),
        (name = "notifications", description = "Webhook endpoints and the delivery log of e-mails and webhooks"),
        (name = "realtime", description = "Live incident events over WebSocket and Server-Sent Events"),
        (name = "jobs", description = "Background jobs, the dead-letter list and schedules"),
        (name = "devices", description = "Monitored subjects (consent, export, erasure), devices, heartbeats and monitoring sessions"),
        (name = "detections", description = "Detection ingestion (single and batch) and the detections dashboard"),
        (name = "alerts", description = "Alert rules, silences and alerts with their history"),
        (name = "competitions", description = "Video competitions: entries, the public board, votes and rankings"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT access token or vak_ API key")
                    .build(),
            ),
        );
    }
}

/// The document as served at `/api/openapi.json` and printed by `vigia openapi`: the
/// operations are those the router serves ([`crate::routes::api`] registers each handler by
/// its annotation), completed by [`crate::contract`] with what every operation shares.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let routes = crate::routes::api(crate::routes::Routes::document(), usize::MAX);
    if let (_, Some(operations)) = routes.finish() {
        doc.merge(operations);
    }
    crate::contract::complete(&mut doc);
    doc
}

/// [`document`] as pretty JSON, as committed in `docs/openapi.json`.
pub fn document_json() -> serde_json::Result<String> {
    let mut json = serde_json::to_string_pretty(&document())?;
    json.push('\n');
    Ok(json)
}

/// Where the document is served; the docs page at `/api/docs` loads it from here.
pub const DOCUMENT_PATH: &str = "/api/openapi.json";

/// `GET /api/openapi.json`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route(DOCUMENT_PATH, get(serve_document))
}

/// The document, built and encoded when it is first asked for and then kept as its 100 KB of
/// JSON. Built at start-up, as the Swagger UI router does with a document it is given, its
/// schema objects held about 3 MB of an idle server's memory, for a page few ever open.
async fn serve_document() -> Response {
    static ENCODED: OnceLock<Bytes> = OnceLock::new();
    let body = match ENCODED.get() {
        Some(body) => body.clone(),
        None => match serde_json::to_vec(&document()) {
            Ok(json) => ENCODED.get_or_init(|| Bytes::from(json)).clone(),
            Err(error) => {
                return ApiError::Internal(anyhow::anyhow!(
                    "cannot encode the OpenAPI document: {error}"
                ))
                .into_response();
            }
        },
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    /// CI's drift check: the committed document is the one the routes generate. After changing
    /// an operation, run `cargo run -p vigia -- openapi > docs/openapi.json`.
    #[test]
    fn the_committed_document_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let committed = std::fs::read_to_string(path).expect("docs/openapi.json");
        let generated = super::document_json().expect("encodes");
        assert!(
            committed == generated,
            "docs/openapi.json has drifted from the routes: run `cargo run -p vigia -- openapi > docs/openapi.json`"
        );
    }

    /// The document's patterns for enumerations the domain owns name exactly what the domain
    /// parses (a scope added to the domain must be added to `ScopeName`'s pattern).
    #[test]
    fn the_scope_pattern_names_every_scope_the_server_takes() {
        let document: serde_json::Value =
            serde_json::from_str(&super::document_json().expect("encodes")).expect("json");
        let pattern = document["components"]["schemas"]["ScopeName"]["pattern"]
            .as_str()
            .expect("ScopeName has a pattern");
        let names: Vec<&str> = vigia_domain::auth::Scope::ALL
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(pattern, format!("^({})$", names.join("|")));
    }

    /// OpenAPI requires every `operationId` to be unique, and tools key operations by it: with
    /// two handlers both named `download`, schemathesis took the attachment's `Location` for
    /// a link to the report download and failed its stateful phase. utoipa names an operation
    /// after its handler, so handlers that share a name get an explicit `operation_id`.
    #[test]
    fn every_operation_id_is_unique() {
        let document: serde_json::Value =
            serde_json::from_str(&super::document_json().expect("encodes")).expect("json");
        let mut seen = std::collections::BTreeMap::<String, String>::new();
        let mut duplicates = Vec::new();
        for (path, operations) in document["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                let Some(id) = operation.get("operationId").and_then(|id| id.as_str()) else {
                    continue;
                };
                let here = format!("{} {path}", method.to_uppercase());
                if let Some(first) = seen.insert(id.to_owned(), here.clone()) {
                    duplicates.push(format!("`{id}`: {first} and {here}"));
                }
            }
        }
        assert!(seen.len() > 100, "the document lists its operations");
        assert!(
            duplicates.is_empty(),
            "operationIds used twice (add `operation_id = \"…\"` to one handler): {duplicates:?}"
        );
    }
}
