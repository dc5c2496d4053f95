//! Administration: API keys, the audit log, runtime settings. Admins only.

use axum::extract::State;

use super::{Routes, op};
use crate::path::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigia_domain::Timestamp;
use vigia_domain::auth::{API_KEY_PREFIX, Scope, random_secret, secret_hash};
use vigia_domain::ids::{ApiKeyId, DepartmentId};
use vigia_domain::validation::bounded_text;
use vigia_domain::{FieldError, Validation};
use vigia_store::audit::{self, AuditEntry, AuditFilter};
use vigia_store::page::clamp_limit;
use vigia_store::{api_keys, settings};

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Query, RequestId};
use crate::routes::auth::REGISTRATION_SETTING;
use crate::routes::users::cursor;
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, list_keys);
    let routes = op!(routes, create_key);
    let routes = op!(routes, get_key);
    let routes = op!(routes, revoke_key);
    let routes = op!(routes, list_audit);
    let routes = op!(routes, list_settings);
    let routes = op!(routes, get_setting);
    op!(routes, put_setting)
}

// --- API keys ----------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: i64,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub key_prefix: String,
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<Scope>,
    pub departments: Vec<i64>,
    pub created_by: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
}

impl From<api_keys::ApiKey> for ApiKeyOut {
    fn from(k: api_keys::ApiKey) -> Self {
        Self {
            id: k.id.0,
            name: k.name,
            key_prefix: k.key_prefix,
            scopes: k.scopes,
            departments: k.departments.into_iter().map(|d| d.0).collect(),
            created_by: k.created_by.0,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreatedOut {
    /// Send as `Authorization: Bearer <key>` or `X-Api-Key: <key>`. Store it now: it cannot be shown again.
    pub key: String,
    pub api_key: ApiKeyOut,
}

/// An API key's scope (see `Scope::ALL`; a unit test keeps the pattern in step).
#[derive(ToSchema)]
#[schema(
    value_type = String,
    pattern = "^(catalog:read|incidents:read|incidents:write|detections:write|media:write|reports:read)$"
)]
#[allow(dead_code)]
pub struct ScopeName(String);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyIn {
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 100
    )]
    pub name: String,
    /// E.g. `incidents:write`, `detections:write`.
    #[schema(value_type = Vec<ScopeName>, min_items = 1)]
    pub scopes: Vec<String>,
    /// The departments whose incidents the key may act on.
    #[serde(default)]
    pub departments: Vec<i64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyPage {
    pub items: Vec<ApiKeyOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub cursor: Option<String>,
    /// Page size; out-of-range values are brought into the endpoint's range.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
}

/// List API keys, newest first.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "admin", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = ApiKeyPage), (status = 403, body = Problem)))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<ApiKeyPage>> {
    let page = api_keys::list(
        &state.db,
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    Ok(Json(ApiKeyPage {
        items: page.items.into_iter().map(ApiKeyOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Create a scoped API key for a device or integration.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "admin", request_body = ApiKeyIn, security(("bearer" = [])),
    responses((status = 201, body = ApiKeyCreatedOut), (status = 422, body = Problem)))]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Json(input): Json<ApiKeyIn>,
) -> ApiResult<(StatusCode, Json<ApiKeyCreatedOut>)> {
    let creator = auth.user()?.user_id;
    let mut v = Validation::new();
    let name = v.check(bounded_text("name", &input.name, 1, 100));
    let scopes = v.check(Scope::parse_list("scopes", &input.scopes));
    if input.expires_at.is_some_and(|at| at <= Timestamp::now()) {
        v.push(FieldError::new("expires_at", "must be in the future"));
    }
    v.finish()?;
    let secret = random_secret(API_KEY_PREFIX);
    let new = api_keys::NewApiKey {
        name: name.unwrap_or_default(),
        key_prefix: secret.chars().take(12).collect(),
        key_hash: secret_hash(&secret),
        scopes: scopes.unwrap_or_default(),
        departments: input.departments.into_iter().map(DepartmentId).collect(),
        expires_at: input.expires_at,
        created_by: creator,
    };
    let key = api_keys::create(&state.db, &new, &auth.actor(rid)).await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreatedOut {
            key: secret,
            api_key: key.into(),
        }),
    ))
}

/// One API key.
#[utoipa::path(get, path = "/api/v1/api-keys/{id}", params(("id" = i64, Path, description = "the API key's id")), tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = ApiKeyOut), (status = 404, body = Problem)))]
async fn get_key(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<ApiKeyOut>> {
    Ok(Json(api_keys::find(&state.db, ApiKeyId(id)).await?.into()))
}

/// Revoke an API key: it stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", params(("id" = i64, Path, description = "the API key's id")), tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = ApiKeyOut), (status = 404, body = Problem)))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
) -> ApiResult<Json<ApiKeyOut>> {
    let key = api_keys::revoke(&state.db, ApiKeyId(id), &auth.actor(rid)).await?;
    state.forget_keys();
    Ok(Json(key.into()))
}

// --- audit log ---------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// `user:12`, `api_key:3` or `system`.
    pub actor: Option<String>,
    /// E.g. `user.updated`, `category.created`.
    pub action: Option<String>,
    /// `user`, `api_key`, `department`, `category`, `zone`, `setting`.
    pub entity: Option<String>,
    pub entity_id: Option<i64>,
    /// RFC 3339; inclusive.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<Timestamp>,
    /// RFC 3339; exclusive.
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<Timestamp>,
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub cursor: Option<String>,
    /// Page size; out-of-range values are brought into the endpoint's range.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryOut {
    pub id: i64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    pub request_id: Option<String>,
}

impl From<AuditEntry> for AuditEntryOut {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            entity: e.entity,
            entity_id: e.entity_id,
            before: e.before,
            after: e.after,
            request_id: e.request_id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntryOut>,
    pub next_cursor: Option<String>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "admin", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem)))]
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        entity: q.entity,
        entity_id: q.entity_id,
        since: q.since,
        until: q.until,
    };
    let page = audit::list(
        &state.db,
        &filter,
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    Ok(Json(AuditPage {
        items: page.items.into_iter().map(AuditEntryOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

// --- settings ----------------------------------------------------------------------------------

/// The settings an admin may change at run time, with the type each takes.
pub(crate) const SETTINGS: &[(&str, &str)] = &[(REGISTRATION_SETTING, "boolean")];

#[derive(Debug, Serialize, ToSchema)]
pub struct SettingOut {
    pub key: String,
    pub value: serde_json::Value,
}

fn known_setting(key: &str) -> ApiResult<&'static str> {
    SETTINGS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, kind)| *kind)
        .ok_or(ApiError::NotFound)
}

async fn effective(state: &AppState, key: &str) -> ApiResult<serde_json::Value> {
    Ok(match settings::get(&state.db, key).await? {
        Some(value) => value,
        None if key == REGISTRATION_SETTING => {
            serde_json::Value::Bool(state.config.allow_registration)
        }
        None => serde_json::Value::Null,
    })
}

/// Every runtime setting with its effective value.
#[utoipa::path(get, path = "/api/v1/settings", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<SettingOut>)))]
pub(crate) async fn list_settings(
    State(state): State<AppState>,
    _admin: Admin,
) -> ApiResult<Json<Vec<SettingOut>>> {
    let mut out = Vec::new();
    for (key, _) in SETTINGS {
        out.push(SettingOut {
            key: (*key).into(),
            value: effective(&state, key).await?,
        });
    }
    Ok(Json(out))
}

/// One runtime setting.
#[utoipa::path(get, path = "/api/v1/settings/{key}", params(("key" = String, Path, description = "the setting's key")), tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = SettingOut), (status = 404, body = Problem)))]
async fn get_setting(
    State(state): State<AppState>,
    _admin: Admin,
    Path(key): Path<String>,
) -> ApiResult<Json<SettingOut>> {
    known_setting(&key)?;
    let value = effective(&state, &key).await?;
    Ok(Json(SettingOut { key, value }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingIn {
    pub value: serde_json::Value,
}

/// Change a runtime setting (audited).
#[utoipa::path(put, path = "/api/v1/settings/{key}", params(("key" = String, Path, description = "the setting's key")), tag = "admin", request_body = SettingIn,
    security(("bearer" = [])),
    responses((status = 200, body = SettingOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn put_setting(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(key): Path<String>,
    Json(input): Json<SettingIn>,
) -> ApiResult<Json<SettingOut>> {
    let kind = known_setting(&key)?;
    if kind == "boolean" && !input.value.is_boolean() {
        return Err(ApiError::field("value", "must be true or false"));
    }
    settings::set(&state.db, &key, &input.value, &auth.actor(rid)).await?;
    Ok(Json(SettingOut {
        key,
        value: input.value,
    }))
}
