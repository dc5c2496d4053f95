//! `/admin/...`: the administrators' pages. Each reads and changes through the API's own
//! handler functions (`routes::users::list`, `routes::catalog::create_department`, ...),
//! called with the form's values as their wire types: the same validation, authorization and
//! audit entries as the API. A rejected form comes back with each message next to its field
//! and the values typed kept.

pub mod audit;
pub mod catalog;
pub mod jobs;
pub mod keys;
pub mod settings;
pub mod users;
pub mod webhooks;
pub mod zones;

use askama::Template;
use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use super::AdminViewer;
use crate::auth::{Admin, Auth};
use crate::state::AppState;
use crate::ui::Chrome;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(index))
        .route("/admin/users", get(users::page).post(users::create))
        .route("/admin/users/{id}", get(users::edit).post(users::update))
        .route(
            "/admin/departments",
            get(catalog::departments).post(catalog::create_department),
        )
        .route(
            "/admin/departments/{id}",
            get(catalog::department).post(catalog::update_department),
        )
        .route(
            "/admin/categories",
            get(catalog::categories).post(catalog::create_category),
        )
        .route(
            "/admin/categories/{id}",
            get(catalog::category).post(catalog::update_category),
        )
        .route(
            "/admin/categories/{id}/sla",
            axum::routing::post(catalog::set_sla),
        )
        .route("/admin/api-keys", get(keys::page).post(keys::create))
        .route(
            "/admin/api-keys/{id}/revoke",
            axum::routing::post(keys::revoke),
        )
        .route("/admin/audit", get(audit::page))
        .route("/admin/zones", get(zones::page).post(zones::create))
        .route("/admin/zones/{id}", get(zones::edit).post(zones::update))
        .route("/admin/settings", get(settings::page))
        .route("/admin/settings/{key}", axum::routing::post(settings::save))
        .route("/admin/jobs", get(jobs::jobs))
        .route("/admin/jobs/{id}/{action}", axum::routing::post(jobs::act))
        .route("/admin/schedules", get(jobs::schedules))
        .route("/admin/schedules/{name}", get(jobs::schedule))
        .route(
            "/admin/schedules/{name}/pause",
            axum::routing::post(jobs::pause),
        )
        .route(
            "/admin/schedules/{name}/run",
            axum::routing::post(jobs::run),
        )
        .route(
            "/admin/webhooks",
            get(webhooks::page).post(webhooks::create),
        )
        .route(
            "/admin/webhooks/{id}",
            get(webhooks::edit).post(webhooks::update),
        )
        .route(
            "/admin/webhooks/{id}/deliveries/{delivery}/replay",
            axum::routing::post(webhooks::replay),
        )
}

/// The viewer as the API's `Admin` caller, checked as the extractor checks it.
pub fn admin_of(viewer: &super::Staff) -> crate::error::ApiResult<Admin> {
    Admin::check(Auth(viewer.principal.clone()))
}

#[derive(Template)]
#[template(path = "ui/staff/admin_index.html")]
struct Index<'a> {
    c: &'a Chrome,
}

async fn index(AdminViewer(viewer): AdminViewer) -> Response {
    viewer.render(StatusCode::OK, &Index { c: viewer.c() })
}
