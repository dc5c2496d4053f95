//! One module per area; each exposes `router()`, merged in [`api`].
//!
//! Architecture invariant: a handler is routed only through `utoipa_axum::routes!`, which
//! registers it together with its `#[utoipa::path]`, so the OpenAPI document is the list of
//! routes; and every route passes [`crate::access::mark`], so its row in
//! [`crate::access::TABLE`] decides which API keys may call it.

pub mod admin;
pub mod attachments;
pub mod auth;
pub mod catalog;
pub mod incidents;
pub mod jobs;
pub mod reports;
pub mod stats;
pub mod system;
pub mod users;
pub mod webhooks;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every route of the API with its operation; uploads may be `max_upload_bytes` long.
pub fn api(max_upload_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(system::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(catalog::router())
        .merge(admin::router())
        .merge(incidents::router())
        .merge(stats::router())
        .merge(reports::router())
        .merge(jobs::router())
        .merge(attachments::router(max_upload_bytes))
        .merge(webhooks::router())
        .merge(crate::realtime::router())
        .route_layer(axum::middleware::from_fn(crate::access::mark))
}
