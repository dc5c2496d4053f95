//! Monitored subjects: registered by admins, with consent, export and erasure; read by staff
//! of their departments.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigia_domain::Timestamp;
use vigia_domain::auth::Principal;
use vigia_domain::ids::{DepartmentId, SubjectId, ZoneId};
use vigia_domain::validation::bounded_text;
use vigia_domain::{FieldError, Validation};
use vigia_store::detections::devices::{self, Device};
use vigia_store::detections::subjects::{self, Subject, SubjectFields};
use vigia_store::detections::{DepartmentScope, privacy};
use vigia_store::page::clamp_limit;
use vigia_store::{ChangeAuthor, StoreResult};

use super::{Routes, op};
use crate::auth::{Admin, Auth};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Query, RequestId};
use crate::path::Path;
use crate::routes::users::cursor;
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, list_subjects);
    let routes = op!(routes, create_subject);
    let routes = op!(routes, get_subject);
    let routes = op!(routes, update_subject);
    let routes = op!(routes, record_consent);
    let routes = op!(routes, withdraw_consent);
    let routes = op!(routes, export_subject);
    op!(routes, erase_subject)
}

/// Which departments' subjects the caller may see: admins all, staff their own.
pub fn department_scope(auth: &Auth) -> ApiResult<DepartmentScope> {
    auth.require_staff()?;
    Ok(match &auth.0 {
        Principal::User(u) if u.role == vigia_domain::users::Role::Admin => DepartmentScope::All,
        Principal::User(u) => DepartmentScope::Only(u.departments.clone()),
        Principal::ApiKey(k) => DepartmentScope::Only(k.departments.clone()),
    })
}

/// The shape of an admin's change of a subject or a device (`PUT`): the wire input checked into
/// the store's fields (every bad field in one 422), stored by `store` with the caller as the
/// change's author, and answered as its wire type.
pub(crate) async fn update_row<In, Fields, Row, Out: From<Row>>(
    auth: &Admin,
    rid: Option<String>,
    input: &In,
    check: impl FnOnce(&In) -> ApiResult<Fields>,
    store: impl AsyncFnOnce(&Fields, &ChangeAuthor) -> StoreResult<Row>,
) -> ApiResult<Json<Out>> {
    let fields = check(input)?;
    let row = store(&fields, &auth.actor(rid)).await?;
    Ok(Json(row.into()))
}

/// The device whose key made the request (people and other keys are refused).
pub async fn calling_device(state: &AppState, auth: &Auth) -> ApiResult<Device> {
    let Principal::ApiKey(key) = &auth.0 else {
        return Err(ApiError::Forbidden {
            detail: "detections and heartbeats are sent with a device's API key (see docs/devices.md)",
        });
    };
    let device = devices::by_api_key(&state.db, key.key_id)
        .await
        .map_err(|_| ApiError::Forbidden {
            detail: "this API key belongs to no device: use the key shown when the device was registered",
        })?;
    if !device.active {
        return Err(ApiError::Forbidden {
            detail: "this device is deactivated: an admin can activate it again",
        });
    }
    Ok(device)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub cursor: Option<String>,
    /// Page size; out-of-range values are brought into the endpoint's range.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
    /// Only this department's subjects / this subject's sessions.
    pub department: Option<i64>,
    pub subject: Option<i64>,
}

// --- subjects ----------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectOut {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub department_id: i64,
    pub zone_id: Option<i64>,
    /// Whether detections about this subject are accepted.
    pub consent: bool,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub consent_at: Option<Timestamp>,
    pub consent_by: Option<String>,
    /// Detections refused because consent was missing.
    pub refused: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<Subject> for SubjectOut {
    fn from(s: Subject) -> Self {
        Self {
            id: s.id.0,
            code: s.code,
            name: s.name,
            department_id: s.department_id.0,
            zone_id: s.zone_id.map(|z| z.0),
            consent: s.consent_at.is_some(),
            consent_at: s.consent_at,
            consent_by: s.consent_by,
            refused: s.refused,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectPage {
    pub items: Vec<SubjectOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectIn {
    /// Unique code devices name the subject by (e.g. an employee number).
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 64
    )]
    pub code: String,
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 200
    )]
    pub name: String,
    #[schema(minimum = 1)]
    pub department_id: i64,
    #[schema(minimum = 1)]
    pub zone_id: Option<i64>,
    /// Record the subject's consent now (by the caller). Without it, detections are refused.
    #[serde(default)]
    pub consent: bool,
}

fn subject_fields(input: &SubjectIn) -> ApiResult<SubjectFields> {
    let mut v = Validation::new();
    let code = v.check(bounded_text("code", &input.code, 1, 64));
    let name = v.check(bounded_text("name", &input.name, 1, 200));
    if input.department_id < 1 {
        v.push(FieldError::new("department_id", "must be a department id"));
    }
    if input.zone_id.is_some_and(|z| z < 1) {
        v.push(FieldError::new("zone_id", "must be a zone id"));
    }
    v.finish()?;
    Ok(SubjectFields {
        code: code.unwrap_or_default(),
        name: name.unwrap_or_default(),
        department_id: DepartmentId(input.department_id),
        zone_id: input.zone_id.map(ZoneId),
    })
}

/// List monitored subjects (staff: their departments' only).
#[utoipa::path(get, path = "/api/v1/subjects", tag = "devices", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = SubjectPage), (status = 403, body = Problem)))]
pub(crate) async fn list_subjects(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<SubjectPage>> {
    let scope = department_scope(&auth)?;
    let page = subjects::list(
        &state.db,
        &scope,
        q.department.map(DepartmentId),
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    Ok(Json(SubjectPage {
        items: page.items.into_iter().map(SubjectOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Register a monitored subject (admins).
#[utoipa::path(post, path = "/api/v1/subjects", tag = "devices", request_body = SubjectIn, security(("bearer" = [])),
    responses((status = 201, body = SubjectOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn create_subject(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Json(input): Json<SubjectIn>,
) -> ApiResult<(StatusCode, Json<SubjectOut>)> {
    let fields = subject_fields(&input)?;
    let subject = subjects::create(&state.db, &fields, input.consent, &auth.actor(rid)).await?;
    Ok((StatusCode::CREATED, Json(subject.into())))
}

async fn visible_subject(state: &AppState, auth: &Auth, id: i64) -> ApiResult<Subject> {
    let scope = department_scope(auth)?;
    let subject = subjects::find(&state.db, SubjectId(id)).await?;
    if !scope.includes(subject.department_id) {
        return Err(ApiError::NotFound);
    }
    Ok(subject)
}

/// One subject.
#[utoipa::path(get, path = "/api/v1/subjects/{id}", params(("id" = i64, Path, description = "the subject's id")), tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = SubjectOut), (status = 404, body = Problem)))]
pub(crate) async fn get_subject(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<SubjectOut>> {
    Ok(Json(visible_subject(&state, &auth, id).await?.into()))
}

/// Change a subject (admins); consent is changed with its own operations.
#[utoipa::path(put, path = "/api/v1/subjects/{id}", params(("id" = i64, Path, description = "the subject's id")), tag = "devices", request_body = SubjectIn, security(("bearer" = [])),
    responses((status = 200, body = SubjectOut), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn update_subject(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
    Json(input): Json<SubjectIn>,
) -> ApiResult<Json<SubjectOut>> {
    update_row(&auth, rid, &input, subject_fields, async |fields, actor| {
        subjects::update(&state.db, SubjectId(id), fields, actor).await
    })
    .await
}

/// Record the subject's consent, by the caller, now (admins).
#[utoipa::path(put, path = "/api/v1/subjects/{id}/consent", params(("id" = i64, Path, description = "the subject's id")), tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = SubjectOut), (status = 404, body = Problem)))]
pub(crate) async fn record_consent(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
) -> ApiResult<Json<SubjectOut>> {
    let subject = subjects::set_consent(&state.db, SubjectId(id), true, &auth.actor(rid)).await?;
    Ok(Json(subject.into()))
}

/// Withdraw the subject's consent (admins): every detection about them is refused from now on.
#[utoipa::path(delete, path = "/api/v1/subjects/{id}/consent", params(("id" = i64, Path, description = "the subject's id")), tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = SubjectOut), (status = 404, body = Problem)))]
pub(crate) async fn withdraw_consent(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
) -> ApiResult<Json<SubjectOut>> {
    let subject = subjects::set_consent(&state.db, SubjectId(id), false, &auth.actor(rid)).await?;
    Ok(Json(subject.into()))
}

/// Everything stored about a subject, as one JSON document (admins; audited).
#[utoipa::path(get, path = "/api/v1/subjects/{id}/export", params(("id" = i64, Path, description = "the subject's id")), tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = SubjectExportOut), (status = 404, body = Problem)))]
pub(crate) async fn export_subject(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
) -> ApiResult<Json<SubjectExportOut>> {
    let export = privacy::export(&state.db, SubjectId(id), &auth.actor(rid)).await?;
    let value = |v: &dyn erased::Value| v.json();
    Ok(Json(SubjectExportOut {
        subject: export.subject.into(),
        sessions: value(&export.sessions),
        alerts: value(&export.alerts),
        detections: value(&export.detections),
    }))
}

/// Everything stored about a subject.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectExportOut {
    pub subject: SubjectOut,
    /// Monitoring sessions (id, device_id, started_at, ended_at, started_by).
    pub sessions: serde_json::Value,
    /// Alerts about the subject, with their status and who handled them.
    pub alerts: serde_json::Value,
    /// Every stored detection: id, device_id, client_id, label, confidence (millionths), at
    /// (ms since the epoch), in_session, extra (JSON text).
    pub detections: serde_json::Value,
}

mod erased {
    /// Any serializable store value as JSON (export documents only).
    pub trait Value {
        fn json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Value for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErasedOut {
    /// Detections deleted (their per-minute counts remain, without the subject).
    pub detections_erased: u64,
}

/// Erase a subject and everything about them (admins; audited). Their per-minute counts stay
/// in an anonymous aggregate.
#[utoipa::path(delete, path = "/api/v1/subjects/{id}", params(("id" = i64, Path, description = "the subject's id")), tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = ErasedOut), (status = 404, body = Problem)))]
pub(crate) async fn erase_subject(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
) -> ApiResult<Json<ErasedOut>> {
    let gone = privacy::erase(&state.db, SubjectId(id), &auth.actor(rid)).await?;
    state.ingestion.forget_subject(SubjectId(id)).await;
    Ok(Json(ErasedOut {
        detections_erased: gone,
    }))
}
