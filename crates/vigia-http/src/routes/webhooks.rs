//! Webhook endpoints (admins only): registration, secrets, tests. Handlers never send: they
//! queue deliveries (`routes::deliveries` holds their log), and the job queue's
//! `notification.deliver` jobs send them.

use axum::extract::State;

use super::{Routes, op};
use crate::path::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigia_domain::incidents::IncidentEventKind;
use vigia_domain::validation::bounded_text;
use vigia_domain::{FieldError, Timestamp, Validation};
use vigia_notify::signature::generate_secret;
use vigia_notify::ssrf::check_url;
use vigia_store::notifications;
use vigia_store::webhooks::{self, EndpointPatch, NewEndpoint, WebhookEndpoint};

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, RequestId};
use crate::routes::deliveries::{DeliveryOut, delivery_out};
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, list_endpoints);
    let routes = op!(routes, create_endpoint);
    let routes = op!(routes, get_endpoint);
    let routes = op!(routes, update_endpoint);
    let routes = op!(routes, delete_endpoint);
    let routes = op!(routes, rotate_secret);
    op!(routes, test_endpoint)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: i64,
    pub url: String,
    pub description: String,
    /// Message types (`incident.created`, ...) or `*` for all.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why it was disabled (410 Gone, a failure streak, an administrator).
    pub disabled_reason: Option<String>,
    /// Consecutive failed attempts.
    pub failure_streak: i64,
    /// Secrets currently signing (more than one during a rotation's grace period).
    pub active_secrets: usize,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<WebhookEndpoint> for WebhookOut {
    fn from(e: WebhookEndpoint) -> Self {
        Self {
            active_secrets: e.active_secrets(Timestamp::now()).len(),
            id: e.id,
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failure_streak: e.failure_streak,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An endpoint with its signing secret: shown only at creation and rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecretOut {
    /// `whsec_...`: verify `webhook-signature` with it (Standard Webhooks). Store it now: it
    /// cannot be shown again.
    pub secret: String,
    pub endpoint: WebhookOut,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    /// `https://...` (loopback and private addresses are refused unless
    /// `webhooks.allow_private_targets`).
    #[schema(max_length = 2000)]
    pub url: String,
    #[serde(default)]
    pub description: String,
    /// Message types to receive, e.g. `["incident.created", "incident.status_changed"]`, or `["*"]`.
    #[schema(min_items = 1, max_items = 50)]
    pub event_types: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatchIn {
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    pub description: Option<String>,
    #[schema(min_items = 1, max_items = 50)]
    pub event_types: Option<Vec<String>>,
    /// Re-enabling clears the failure streak.
    pub enabled: Option<bool>,
}

pub fn known_types() -> Vec<&'static str> {
    let mut known: Vec<&str> = IncidentEventKind::ALL
        .iter()
        .map(|k| k.message_type())
        .collect();
    known.push("incident.escalated");
    known.extend(
        vigia_domain::detections::AlertEventKind::ALL
            .iter()
            .map(|k| k.message_type()),
    );
    known.extend(vigia_store::exam_events::WEBHOOK_TYPES);
    known.sort_unstable();
    known.dedup();
    known
}

fn parse_url(v: &mut Validation, raw: &str, allow_private: bool) -> Option<String> {
    if raw.len() > 2000 {
        v.push(FieldError::new("url", "must be at most 2000 characters"));
        return None;
    }
    match check_url(raw, allow_private) {
        Ok(url) => Some(url.to_string()),
        Err(refused) => {
            v.push(FieldError::new("url", refused.to_string()));
            None
        }
    }
}

fn parse_types(v: &mut Validation, raw: &[String]) -> Option<Vec<String>> {
    if raw.is_empty() || raw.len() > 50 {
        v.push(FieldError::new(
            "event_types",
            "must list between 1 and 50 message types",
        ));
        return None;
    }
    let known = known_types();
    let mut out: Vec<String> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        if t != "*" && !known.contains(&t.as_str()) {
            v.push(FieldError::new(
                format!("event_types[{i}]"),
                format!("must be \"*\" or one of: {}", known.join(", ")),
            ));
        } else if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Some(out)
}

/// List webhook endpoints.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Vec<WebhookOut>), (status = 403, body = Problem)))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    _admin: Admin,
) -> ApiResult<Json<Vec<WebhookOut>>> {
    let all = webhooks::list(&state.db).await?;
    Ok(Json(all.into_iter().map(WebhookOut::from).collect()))
}

/// Register a webhook endpoint. The response carries its signing secret, shown only once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "notifications", request_body = WebhookIn,
    security(("bearer" = [])),
    responses((status = 201, body = WebhookWithSecretOut), (status = 422, body = Problem)))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    admin: Admin,
    RequestId(rid): RequestId,
    Json(input): Json<WebhookIn>,
) -> ApiResult<(StatusCode, Json<WebhookWithSecretOut>)> {
    let mut v = Validation::new();
    let url = parse_url(
        &mut v,
        &input.url,
        state.config.webhooks_allow_private_targets,
    );
    let description = v.check(bounded_text("description", &input.description, 0, 200));
    let event_types = parse_types(&mut v, &input.event_types);
    v.finish()?;
    let secret = generate_secret();
    let new = NewEndpoint {
        url: url.unwrap_or_default(),
        description: description.unwrap_or_default(),
        event_types: event_types.unwrap_or_default(),
        secret: secret.clone(),
    };
    let endpoint = webhooks::create(&state.db, &new, &admin.actor(rid)).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecretOut {
            secret,
            endpoint: endpoint.into(),
        }),
    ))
}

/// One webhook endpoint.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", params(("id" = i64, Path, description = "the webhook endpoint's id")), tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = WebhookOut), (status = 404, body = Problem)))]
pub async fn get_endpoint(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<WebhookOut>> {
    Ok(Json(webhooks::find(&state.db, id).await?.into()))
}

/// Change an endpoint's URL, description or types; disable or re-enable it.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", params(("id" = i64, Path, description = "the webhook endpoint's id")), tag = "notifications", request_body = WebhookPatchIn,
    security(("bearer" = [])),
    responses((status = 200, body = WebhookOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_endpoint(
    State(state): State<AppState>,
    admin: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
    Json(input): Json<WebhookPatchIn>,
) -> ApiResult<Json<WebhookOut>> {
    let mut v = Validation::new();
    let url = input
        .url
        .as_deref()
        .and_then(|u| parse_url(&mut v, u, state.config.webhooks_allow_private_targets));
    let description = input
        .description
        .as_deref()
        .and_then(|d| v.check(bounded_text("description", d, 0, 200)));
    let event_types = input
        .event_types
        .as_deref()
        .and_then(|t| parse_types(&mut v, t));
    v.finish()?;
    let patch = EndpointPatch {
        url,
        description,
        event_types,
        enabled: input.enabled,
    };
    Ok(Json(
        webhooks::update(&state.db, id, &patch, &admin.actor(rid))
            .await?
            .into(),
    ))
}

/// Delete an endpoint. Its delivery log stays (with the endpoint id as target).
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", params(("id" = i64, Path, description = "the webhook endpoint's id")), tag = "notifications", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_endpoint(
    State(state): State<AppState>,
    admin: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    webhooks::delete(&state.db, id, &admin.actor(rid)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// How long the previous secret keeps signing, in hours (0 to 168, default 24), so
    /// receivers can switch without rejecting messages.
    #[schema(maximum = 168)]
    pub grace_hours: Option<u32>,
}

/// Issue a new signing secret. Both sign every delivery until the old one's grace ends.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", params(("id" = i64, Path, description = "the webhook endpoint's id")), tag = "notifications", request_body = RotateIn,
    security(("bearer" = [])),
    responses((status = 200, body = WebhookWithSecretOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn rotate_secret(
    State(state): State<AppState>,
    admin: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
    Json(input): Json<RotateIn>,
) -> ApiResult<Json<WebhookWithSecretOut>> {
    let hours = input.grace_hours.unwrap_or(24);
    if hours > 168 {
        return Err(ApiError::field("grace_hours", "must be between 0 and 168"));
    }
    let secret = generate_secret();
    let old_until = Timestamp::now().plus_seconds(i64::from(hours) * 3600);
    let endpoint =
        webhooks::rotate_secret(&state.db, id, &secret, old_until, &admin.actor(rid)).await?;
    Ok(Json(WebhookWithSecretOut {
        secret,
        endpoint: endpoint.into(),
    }))
}

/// Queue a `webhook.test` message to the endpoint; follow it in the delivery log.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", params(("id" = i64, Path, description = "the webhook endpoint's id")), tag = "notifications", security(("bearer" = [])),
    responses((status = 202, body = DeliveryOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn test_endpoint(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> ApiResult<(StatusCode, Json<DeliveryOut>)> {
    let endpoint = webhooks::find(&state.db, id).await?;
    if !endpoint.enabled {
        return Err(ApiError::conflict(
            "the endpoint is disabled: enable it first",
        ));
    }
    let delivery_id = vigia_notify::send_test_webhook(&state.db, id).await?;
    let delivery = notifications::find(&state.db, delivery_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(delivery_out(delivery, Vec::new())),
    ))
}
