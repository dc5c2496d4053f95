//! Vigía's HTTP interface: the REST API v1, OpenAPI and docs, health and metrics.
//!
//! Architecture invariant: handlers parse wire types into domain types, call the store with the
//! caller's scope, and map results to wire types. No SQL here; no JSON in the layers below.

pub mod access;
pub mod auth;
pub mod contract;
pub mod detections;
pub mod error;
pub mod extract;
pub mod json_out;
mod limits;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod path;
pub mod realtime;
pub mod routes;
mod state;
pub mod ui;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::IntoResponse;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::{Config, SwaggerUi};

pub use error::{ApiError, ApiResult};
pub use state::{AppState, HttpConfig};

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP application. Tests call this directly; `vigia serve` binds it to a socket.
pub fn app(state: AppState) -> Router {
    // Routes only: the document is built from the same routes when first asked for.
    let (api, _) = routes::api(routes::Routes::router(), state.config.max_upload_bytes).finish();
    let api = api
        .fallback(
            |uri: axum::http::Uri, headers: axum::http::HeaderMap| async move {
                ui::not_found(uri.path(), &headers)
                    .unwrap_or_else(|| ApiError::NotFound.into_response())
            },
        )
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed.into_response() });
    let docs = SwaggerUi::new("/api/docs").config(Config::from(openapi::DOCUMENT_PATH));
    let body_limit = state.config.max_body_bytes;
    Router::new()
        .merge(docs)
        .merge(openapi::router())
        .merge(ui::router(state.clone()))
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE, HeaderName::from_static("x-api-key"), header::SEC_WEBSOCKET_PROTOCOL]))
                .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %request.method(), uri = %request.uri().path(), request_id)
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
                .layer(cors(&state.config.cors_origins))
                .layer(security_header("x-content-type-options", "nosniff"))
                .layer(security_header("x-frame-options", "DENY"))
                .layer(security_header("referrer-policy", "no-referrer"))
                .layer(security_header(
                    "content-security-policy",
                    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; \
                     script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
                ))
                .layer(security_header("cross-origin-opener-policy", "same-origin")),
        )
        .with_state(state)
}

fn security_header(name: &'static str, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    )
}

fn cors(origins: &[String]) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([REQUEST_ID.clone(), header::ETAG, header::RETRY_AFTER]);
    if origins.iter().any(|o| o == "*") {
        base.allow_origin(AllowOrigin::any())
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        base.allow_origin(AllowOrigin::list(list))
    }
}
