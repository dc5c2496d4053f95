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

use crate::routes::{
    admin, attachments, auth, catalog, incidents, jobs, stats, system, users, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Vigía API", description = "Report, route and resolve incidents. Errors are RFC 9457 \
        `application/problem+json`; lists use cursor pagination (`cursor`, `limit`, `next_cursor`)."),
    paths(
        system::health, system::ready,
        auth::register, auth::login, auth::refresh, auth::logout, auth::me, auth::update_me, auth::change_password,
        users::list, users::create, users::find, users::update,
        catalog::list_departments, catalog::get_department, catalog::create_department,
        catalog::update_department, catalog::delete_department,
        catalog::list_categories, catalog::get_category, catalog::create_category,
        catalog::update_category, catalog::delete_category,
        catalog::list_zones, catalog::get_zone, catalog::create_zone, catalog::update_zone, catalog::delete_zone,
        catalog::locate,
        admin::list_keys, admin::create_key, admin::get_key, admin::revoke_key,
        admin::list_audit, admin::list_settings, admin::get_setting, admin::put_setting,
        incidents::create, incidents::preview, incidents::validate_location, incidents::list, incidents::mine,
        incidents::public_list, incidents::find, incidents::events, incidents::transition, incidents::comment,
        incidents::comments, incidents::assign_department, incidents::assign_user, incidents::set_visibility,
        incidents::vote, incidents::withdraw_vote, incidents::edit,
        attachments::upload, attachments::list, attachments::download, attachments::thumbnail, attachments::remove,
        stats::incident_stats, stats::staff_stats, stats::rankings,
        catalog::list_sla, catalog::put_sla,
        webhooks::list_endpoints, webhooks::create_endpoint, webhooks::get_endpoint, webhooks::update_endpoint,
        webhooks::delete_endpoint, webhooks::rotate_secret, webhooks::test_endpoint,
        webhooks::list_deliveries, webhooks::get_delivery, webhooks::replay_delivery,
        crate::realtime::ws::ws, crate::realtime::sse::stream,
        jobs::list_jobs, jobs::get_job, jobs::retry_job, jobs::cancel_job,
        jobs::list_schedules, jobs::get_schedule, jobs::patch_schedule, jobs::run_schedule, jobs::list_runs,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign in and manage your own account"),
        (name = "users", description = "User administration"),
        (name = "incidents", description = "Report, follow and resolve incidents; the public board"),
        (name = "catalog", description = "Departments, categories and zones"),
        (name = "admin", description = "API keys, audit log and runtime settings"),
        (name = "system", description = "Health and readiness"),
        (name = "stats", description = "Dashboard statistics and the public rankings"),
        (name = "notifications", description = "Webhook endpoints and the delivery log of e-mails and webhooks"),
        (name = "realtime", description = "Live incident events over WebSocket and Server-Sent Events"),
        (name = "jobs", description = "Background jobs, the dead-letter list and schedules"),
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

/// The document as served at `/api/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::routes::reports::ReportsDoc::openapi());
    doc.merge(crate::routes::report_links::ReportLinksDoc::openapi());
    doc
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
