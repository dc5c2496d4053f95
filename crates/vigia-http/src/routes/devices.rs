//! Devices (registered by admins, each with an API key of its own, scope `detections:write`),
//! their heartbeat, and monitoring sessions (started and ended by staff).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigia_domain::Timestamp;
use vigia_domain::auth::{API_KEY_PREFIX, random_secret, secret_hash};
use vigia_domain::ids::{DeviceId, MonitoringSessionId, SubjectId, ZoneId};
use vigia_domain::validation::bounded_text;
use vigia_domain::{FieldError, Validation};
use vigia_store::StoreError;
use vigia_store::detections::devices::{self, Device, DeviceFields, DeviceKey};
use vigia_store::detections::sessions::{self, MonitoringSession};
use vigia_store::page::clamp_limit;

use super::subjects::{ListQuery, calling_device, department_scope, update_row};
use super::{Routes, op};
use crate::auth::{Admin, Auth};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, OptionalJson, Query, RequestId};
use crate::path::Path;
use crate::routes::users::cursor;
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, list_devices);
    let routes = op!(routes, create_device);
    let routes = op!(routes, get_device);
    let routes = op!(routes, update_device);
    let routes = op!(routes, rotate_device_key);
    let routes = op!(routes, heartbeat);
    let routes = op!(routes, list_sessions);
    let routes = op!(routes, start_session);
    op!(routes, end_session)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceOut {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub zone_id: Option<i64>,
    pub location: Option<String>,
    /// The device's API key (revoke it with `DELETE /api/v1/api-keys/{id}`).
    pub api_key_id: i64,
    pub active: bool,
    pub firmware: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen_at: Option<Timestamp>,
    /// Detections refused because their subject had not consented.
    pub refused: i64,
    /// MQTT messages that were not a valid detection or heartbeat.
    pub invalid: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<Device> for DeviceOut {
    fn from(d: Device) -> Self {
        Self {
            id: d.id.0,
            code: d.code,
            name: d.name,
            zone_id: d.zone_id.map(|z| z.0),
            location: d.location,
            api_key_id: d.api_key_id.0,
            active: d.active,
            firmware: d.firmware,
            last_seen_at: d.last_seen_at,
            refused: d.refused,
            invalid: d.invalid,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// A device and its key: the only time the key is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceWithKeyOut {
    /// Send as `X-Api-Key` (HTTP) or as the MQTT password. Store it now: it cannot be shown again.
    pub key: String,
    pub device: DeviceOut,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DevicePage {
    pub items: Vec<DeviceOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceIn {
    /// Unique code; also the device's MQTT username and topic segment (`vigia/devices/{code}/…`).
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub code: String,
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 200
    )]
    pub name: String,
    #[schema(minimum = 1)]
    pub zone_id: Option<i64>,
    /// Blank is the same as leaving it out.
    #[schema(
        pattern = r"^(?:\s*|[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*)$",
        max_length = 200
    )]
    pub location: Option<String>,
    #[serde(default = "active_default")]
    pub active: bool,
}

fn active_default() -> bool {
    true
}

fn device_fields(input: &DeviceIn) -> ApiResult<DeviceFields> {
    let mut v = Validation::new();
    let code_ok = (1..=64).contains(&input.code.len())
        && input
            .code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !code_ok {
        v.push(FieldError::new(
            "code",
            "must be 1 to 64 letters, digits, '_', '.' or '-' (it is an MQTT topic segment)",
        ));
    }
    let name = v.check(bounded_text("name", &input.name, 1, 200));
    let location = input
        .location
        .as_deref()
        .filter(|l| !l.trim().is_empty())
        .and_then(|l| v.check(bounded_text("location", l, 1, 200)));
    if input.zone_id.is_some_and(|z| z < 1) {
        v.push(FieldError::new("zone_id", "must be a zone id"));
    }
    v.finish()?;
    Ok(DeviceFields {
        code: input.code.clone(),
        name: name.unwrap_or_default(),
        zone_id: input.zone_id.map(ZoneId),
        location,
        active: input.active,
    })
}

fn new_key() -> (String, DeviceKey) {
    let secret = random_secret(API_KEY_PREFIX);
    let key = DeviceKey {
        key_prefix: secret.chars().take(12).collect(),
        key_hash: secret_hash(&secret),
    };
    (secret, key)
}

/// List devices (admins).
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = DevicePage), (status = 403, body = Problem)))]
pub(crate) async fn list_devices(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<DevicePage>> {
    let page = devices::list(
        &state.db,
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    Ok(Json(DevicePage {
        items: page.items.into_iter().map(DeviceOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Register a device (admins). The answer carries its API key, shown this once.
#[utoipa::path(post, path = "/api/v1/devices", tag = "devices", request_body = DeviceIn, security(("bearer" = [])),
    responses((status = 201, body = DeviceWithKeyOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn create_device(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Json(input): Json<DeviceIn>,
) -> ApiResult<(StatusCode, Json<DeviceWithKeyOut>)> {
    let fields = device_fields(&input)?;
    let creator = auth.user()?.user_id;
    let (secret, key) = new_key();
    let device = devices::create(&state.db, &fields, &key, creator, &auth.actor(rid)).await?;
    Ok((
        StatusCode::CREATED,
        Json(DeviceWithKeyOut {
            key: secret,
            device: device.into(),
        }),
    ))
}

/// One device (admins).
#[utoipa::path(get, path = "/api/v1/devices/{id}", params(("id" = i64, Path, description = "the device's id")), tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = DeviceOut), (status = 404, body = Problem)))]
pub(crate) async fn get_device(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<DeviceOut>> {
    Ok(Json(devices::find(&state.db, DeviceId(id)).await?.into()))
}

/// Change a device (admins); `active: false` stops its ingestion at once.
#[utoipa::path(put, path = "/api/v1/devices/{id}", params(("id" = i64, Path, description = "the device's id")), tag = "devices", request_body = DeviceIn, security(("bearer" = [])),
    responses((status = 200, body = DeviceOut), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn update_device(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
    Json(input): Json<DeviceIn>,
) -> ApiResult<Json<DeviceOut>> {
    update_row(&auth, rid, &input, device_fields, async |fields, actor| {
        devices::update(&state.db, DeviceId(id), fields, actor).await
    })
    .await
}

/// Give a device a new API key and revoke its old one at once (admins).
#[utoipa::path(post, path = "/api/v1/devices/{id}/key", params(("id" = i64, Path, description = "the device's id")), tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = DeviceWithKeyOut), (status = 404, body = Problem)))]
pub(crate) async fn rotate_device_key(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
) -> ApiResult<Json<DeviceWithKeyOut>> {
    let creator = auth.user()?.user_id;
    let (secret, key) = new_key();
    let device =
        devices::rotate_key(&state.db, DeviceId(id), &key, creator, &auth.actor(rid)).await?;
    state.forget_keys();
    Ok(Json(DeviceWithKeyOut {
        key: secret,
        device: device.into(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatIn {
    /// Firmware or software version text, kept on the device.
    #[schema(max_length = 100)]
    pub firmware: Option<String>,
}

/// A device says it is alive (sent with the device's key); the body is optional.
#[utoipa::path(post, path = "/api/v1/devices/heartbeat", tag = "devices", request_body(content = HeartbeatIn, description = "optional"), security(("bearer" = [])),
    responses((status = 200, body = DeviceOut), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn heartbeat(
    State(state): State<AppState>,
    auth: Auth,
    OptionalJson(input): OptionalJson<HeartbeatIn>,
) -> ApiResult<Json<DeviceOut>> {
    let device = calling_device(&state, &auth).await?;
    let firmware = match input.and_then(|i| i.firmware) {
        Some(f) => Some(bounded_text("firmware", &f, 1, 100)?),
        None => None,
    };
    Ok(Json(
        devices::heartbeat(&state.db, device.id, firmware.as_deref())
            .await?
            .into(),
    ))
}

// --- monitoring sessions -----------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub id: i64,
    pub subject_id: i64,
    pub device_id: i64,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
    pub started_by: String,
}

impl From<MonitoringSession> for SessionOut {
    fn from(s: MonitoringSession) -> Self {
        Self {
            id: s.id.0,
            subject_id: s.subject_id.0,
            device_id: s.device_id.0,
            started_at: s.started_at,
            ended_at: s.ended_at,
            started_by: s.started_by,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionPage {
    pub items: Vec<SessionOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionIn {
    #[schema(minimum = 1)]
    pub subject_id: i64,
    #[schema(minimum = 1)]
    pub device_id: i64,
}

/// List monitoring sessions (staff), optionally of one subject.
#[utoipa::path(get, path = "/api/v1/monitoring-sessions", tag = "devices", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = SessionPage), (status = 403, body = Problem)))]
async fn list_sessions(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<SessionPage>> {
    department_scope(&auth)?;
    let page = sessions::list(
        &state.db,
        q.subject.map(SubjectId),
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    Ok(Json(SessionPage {
        items: page.items.into_iter().map(SessionOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Start monitoring a subject with a device (staff). Detections outside every session are
/// still stored, marked `in_session: false` (see docs/devices.md).
#[utoipa::path(post, path = "/api/v1/monitoring-sessions", tag = "devices", request_body = SessionIn, security(("bearer" = [])),
    responses((status = 201, body = SessionOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn start_session(
    State(state): State<AppState>,
    auth: Auth,
    RequestId(rid): RequestId,
    Json(input): Json<SessionIn>,
) -> ApiResult<(StatusCode, Json<SessionOut>)> {
    department_scope(&auth)?;
    let mut v = Validation::new();
    if input.subject_id < 1 {
        v.push(FieldError::new("subject_id", "must be a subject id"));
    }
    if input.device_id < 1 {
        v.push(FieldError::new("device_id", "must be a device id"));
    }
    v.finish()?;
    let session = sessions::start(
        &state.db,
        SubjectId(input.subject_id),
        DeviceId(input.device_id),
        &auth.actor(rid),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(session.into())))
}

/// End a monitoring session now (staff); ending one already ended is 409.
#[utoipa::path(post, path = "/api/v1/monitoring-sessions/{id}/end", params(("id" = i64, Path, description = "the session's id")), tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = SessionOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn end_session(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<SessionOut>> {
    department_scope(&auth)?;
    match sessions::end(&state.db, MonitoringSessionId(id)).await {
        Ok(session) => Ok(Json(session.into())),
        Err(StoreError::Stale) => Err(ApiError::conflict("the session has already ended")),
        Err(e) => Err(e.into()),
    }
}
