//! Alert rules (admins), silences (staff) and alerts (staff of the subject's department):
//! list with filters, one alert with its history, acknowledge and resolve.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigia_domain::detections::{AlertStatus, RuleSpec, Severity};
use vigia_domain::ids::{AlertId, AlertRuleId, CategoryId, DepartmentId, DeviceId, SubjectId};
use vigia_domain::validation::bounded_text;
use vigia_domain::{FieldError, Timestamp, Validation};
use vigia_store::detections::alerts::{self, Alert, AlertFilter};
use vigia_store::detections::rules::{self, AlertRule, RuleFields, SilenceRecord};
use vigia_store::page::clamp_limit;

use super::subjects::department_scope;
use super::{Routes, op};
use crate::auth::{Admin, Auth};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, OptionalJson, Query, RequestId};
use crate::path::Path;
use crate::routes::users::cursor;
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, list_rules);
    let routes = op!(routes, create_rule);
    let routes = op!(routes, get_rule);
    let routes = op!(routes, update_rule);
    let routes = op!(routes, delete_rule);
    let routes = op!(routes, list_silences);
    let routes = op!(routes, create_silence);
    let routes = op!(routes, expire_silence);
    let routes = op!(routes, list_alerts);
    let routes = op!(routes, get_alert);
    let routes = op!(routes, acknowledge_alert);
    op!(routes, resolve_alert)
}

// --- rules -------------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleOut {
    pub id: i64,
    pub name: String,
    pub labels: Vec<String>,
    pub min_count: i64,
    pub window_secs: i64,
    pub confidence_floor: f64,
    pub cooldown_secs: i64,
    pub notify_departments: Vec<i64>,
    pub open_incident: bool,
    pub incident_category_id: Option<i64>,
    pub active: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<AlertRule> for RuleOut {
    fn from(r: AlertRule) -> Self {
        Self {
            id: r.id.0,
            name: r.name,
            labels: r.labels,
            min_count: r.min_count,
            window_secs: r.window_secs,
            confidence_floor: r.confidence_floor as f64 / 1e6,
            cooldown_secs: r.cooldown_secs,
            notify_departments: r.notify_departments.into_iter().map(|d| d.0).collect(),
            open_incident: r.open_incident,
            incident_category_id: r.incident_category_id.map(|c| c.0),
            active: r.active,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleIn {
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 200
    )]
    pub name: String,
    /// Labels counted by the rule (e.g. `["stress", "sad"]`).
    #[schema(min_items = 1)]
    pub labels: Vec<String>,
    #[schema(minimum = 1, maximum = 100000)]
    pub min_count: i64,
    #[schema(minimum = 1, maximum = 86400)]
    pub window_secs: i64,
    /// The average confidence must be strictly above this.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub confidence_floor: f64,
    #[schema(minimum = 0, maximum = 2592000)]
    pub cooldown_secs: i64,
    /// Departments told of its alerts besides the subject's own.
    #[serde(default)]
    pub notify_departments: Vec<i64>,
    /// A `high` alert opens an incident of `incident_category_id` in the subject's department.
    #[serde(default)]
    pub open_incident: bool,
    #[schema(minimum = 1)]
    pub incident_category_id: Option<i64>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

fn rule_fields(state: &AppState, input: &RuleIn) -> ApiResult<RuleFields> {
    let mut v = Validation::new();
    let name = v.check(bounded_text("name", &input.name, 1, 200));
    let spec = match RuleSpec::parse(
        &state.ingestion.policy.vocabulary,
        &input.labels,
        input.min_count,
        input.window_secs,
        input.confidence_floor,
        input.cooldown_secs,
    ) {
        Ok(spec) => Some(spec),
        Err(errors) => {
            errors.into_iter().for_each(|e| v.push(e));
            None
        }
    };
    if input.open_incident && input.incident_category_id.is_none() {
        v.push(FieldError::new(
            "incident_category_id",
            "is required when open_incident is true (the incident's category)",
        ));
    }
    v.finish()?;
    Ok(RuleFields {
        name: name.unwrap_or_default(),
        spec: spec.unwrap_or_else(RuleSpec::seed_default),
        notify_departments: input
            .notify_departments
            .iter()
            .map(|d| DepartmentId(*d))
            .collect(),
        open_incident: input.open_incident,
        incident_category_id: input.incident_category_id.map(CategoryId),
        active: input.active,
    })
}

/// List alert rules (staff may read them; admins change them).
#[utoipa::path(get, path = "/api/v1/alert-rules", tag = "alerts", security(("bearer" = [])),
    responses((status = 200, body = Vec<RuleOut>), (status = 403, body = Problem)))]
pub(crate) async fn list_rules(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<RuleOut>>> {
    department_scope(&auth)?;
    Ok(Json(
        rules::list(&state.db)
            .await?
            .into_iter()
            .map(RuleOut::from)
            .collect(),
    ))
}

/// Create an alert rule (admins).
#[utoipa::path(post, path = "/api/v1/alert-rules", tag = "alerts", request_body = RuleIn, security(("bearer" = [])),
    responses((status = 201, body = RuleOut), (status = 422, body = Problem)))]
pub(crate) async fn create_rule(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Json(input): Json<RuleIn>,
) -> ApiResult<(StatusCode, Json<RuleOut>)> {
    let fields = rule_fields(&state, &input)?;
    let rule = rules::save(&state.db, None, &fields, &auth.actor(rid)).await?;
    state.ingestion.invalidate(Some(rule.id)).await;
    Ok((StatusCode::CREATED, Json(rule.into())))
}

/// One alert rule.
#[utoipa::path(get, path = "/api/v1/alert-rules/{id}", params(("id" = i64, Path, description = "the rule's id")), tag = "alerts", security(("bearer" = [])),
    responses((status = 200, body = RuleOut), (status = 404, body = Problem)))]
pub(crate) async fn get_rule(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<RuleOut>> {
    department_scope(&auth)?;
    Ok(Json(rules::find(&state.db, AlertRuleId(id)).await?.into()))
}

/// Replace an alert rule (admins); its windows start afresh.
#[utoipa::path(put, path = "/api/v1/alert-rules/{id}", params(("id" = i64, Path, description = "the rule's id")), tag = "alerts", request_body = RuleIn, security(("bearer" = [])),
    responses((status = 200, body = RuleOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn update_rule(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
    Json(input): Json<RuleIn>,
) -> ApiResult<Json<RuleOut>> {
    let fields = rule_fields(&state, &input)?;
    let rule = rules::save(&state.db, Some(AlertRuleId(id)), &fields, &auth.actor(rid)).await?;
    state.ingestion.invalidate(Some(rule.id)).await;
    Ok(Json(rule.into()))
}

/// Delete an alert rule (admins); its alerts are kept.
#[utoipa::path(delete, path = "/api/v1/alert-rules/{id}", params(("id" = i64, Path, description = "the rule's id")), tag = "alerts", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem)))]
pub(crate) async fn delete_rule(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    rules::delete(&state.db, AlertRuleId(id), &auth.actor(rid)).await?;
    state.ingestion.invalidate(Some(AlertRuleId(id))).await;
    Ok(StatusCode::NO_CONTENT)
}

mod silences;

pub use silences::*;

// --- alerts ------------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryOut {
    /// `raised`, `acknowledged`, `resolved`, `incident_opened`.
    pub action: String,
    pub actor: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub notes: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertOut {
    pub id: i64,
    pub rule_id: i64,
    pub subject_id: i64,
    pub department_id: i64,
    pub device_id: i64,
    /// `low`, `medium` or `high`.
    pub severity: &'static str,
    /// `pending`, `acknowledged` or `resolved`.
    pub status: &'static str,
    pub detection_count: i64,
    pub confidence_avg: f64,
    #[schema(value_type = String, format = DateTime)]
    pub window_start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub window_end: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub raised_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledged_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    /// The incident a `high` alert opened, if its rule says so.
    pub incident_id: Option<i64>,
    /// Silences in force now that match this alert's rule, subject or device.
    pub silenced_by: Vec<i64>,
    /// Filled in when one alert is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryOut>>,
}

fn alert_out(a: Alert, silences: &[SilenceRecord]) -> AlertOut {
    let now = Timestamp::now();
    AlertOut {
        silenced_by: silences
            .iter()
            .filter(|s| s.silence().mutes(a.rule_id, a.subject_id, a.device_id, now))
            .map(|s| s.id.0)
            .collect(),
        id: a.id.0,
        rule_id: a.rule_id.0,
        subject_id: a.subject_id.0,
        department_id: a.department_id.0,
        device_id: a.device_id.0,
        severity: a.severity.as_str(),
        status: a.status.as_str(),
        detection_count: a.detection_count,
        confidence_avg: a.confidence_avg as f64 / 1e6,
        window_start: a.window_start,
        window_end: a.window_end,
        raised_at: a.raised_at,
        acknowledged_at: a.acknowledged_at,
        acknowledged_by: a.acknowledged_by,
        resolved_at: a.resolved_at,
        resolved_by: a.resolved_by,
        incident_id: a.incident_id.map(|i| i.0),
        history: None,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    pub items: Vec<AlertOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub cursor: Option<String>,
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
    #[param(pattern = "^(pending|acknowledged|resolved)$")]
    pub status: Option<String>,
    #[param(pattern = "^(low|medium|high)$")]
    pub severity: Option<String>,
    pub subject: Option<i64>,
    pub device: Option<i64>,
    pub department: Option<i64>,
    pub rule: Option<i64>,
    /// Raised at or after (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// Raised before (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
}

/// List alerts, newest first, with filters (staff: their departments' subjects).
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery), security(("bearer" = [])),
    responses((status = 200, body = AlertPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn list_alerts(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<AlertQuery>,
) -> ApiResult<Json<AlertPage>> {
    let scope = department_scope(&auth)?;
    let mut v = Validation::new();
    let status = q
        .status
        .as_deref()
        .and_then(|s| v.check(AlertStatus::parse("status", s)));
    let severity = q
        .severity
        .as_deref()
        .and_then(|s| v.check(Severity::parse("severity", s)));
    v.finish()?;
    let filter = AlertFilter {
        status,
        severity,
        subject: q.subject.map(SubjectId),
        device: q.device.map(DeviceId),
        department: q.department.map(DepartmentId),
        rule: q.rule.map(AlertRuleId),
        from: q.from,
        to: q.to,
    };
    let page = alerts::list(
        &state.db,
        &scope,
        &filter,
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    let silences = rules::list_silences(&state.db, Timestamp::now().millis()).await?;
    Ok(Json(AlertPage {
        items: page
            .items
            .into_iter()
            .map(|a| alert_out(a, &silences))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn visible_alert(state: &AppState, auth: &Auth, id: i64) -> ApiResult<Alert> {
    let scope = department_scope(auth)?;
    let alert = alerts::find(&state.db, AlertId(id)).await?;
    if !scope.includes(alert.department_id) {
        return Err(ApiError::NotFound);
    }
    Ok(alert)
}

async fn with_history(state: &AppState, alert: Alert) -> ApiResult<AlertOut> {
    let history = alerts::history(&state.db, alert.id).await?;
    let silences = rules::list_silences(&state.db, Timestamp::now().millis()).await?;
    let mut out = alert_out(alert, &silences);
    out.history = Some(
        history
            .into_iter()
            .map(|h| HistoryOut {
                action: h.action,
                actor: h.actor,
                at: h.at,
                notes: h.notes,
            })
            .collect(),
    );
    Ok(out)
}

/// One alert with its full history.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", params(("id" = i64, Path, description = "the alert's id")), tag = "alerts", security(("bearer" = [])),
    responses((status = 200, body = AlertOut), (status = 404, body = Problem)))]
async fn get_alert(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<AlertOut>> {
    let alert = visible_alert(&state, &auth, id).await?;
    Ok(Json(with_history(&state, alert).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertNoteIn {
    #[schema(max_length = 2000)]
    pub notes: Option<String>,
}

/// Moves an alert (the acknowledge and resolve operations; the web UI's forms call it too).
pub(crate) async fn move_alert(
    state: &AppState,
    auth: &Auth,
    id: i64,
    to: AlertStatus,
    input: Option<AlertNoteIn>,
) -> ApiResult<Json<AlertOut>> {
    let alert = visible_alert(state, auth, id).await?;
    let notes = match input.and_then(|i| i.notes) {
        Some(n) => Some(bounded_text("notes", &n, 1, 2000)?),
        None => None,
    };
    if !alert.status.may_become(to) {
        return Err(ApiError::Conflict {
            detail: format!(
                "the alert is {} and cannot become {}",
                alert.status.as_str(),
                to.as_str()
            ),
            extra: None,
        });
    }
    let moved = alerts::transition(
        &state.db,
        alert.id,
        alert.status,
        to,
        &auth.0.label(),
        notes.as_deref(),
    )
    .await?;
    Ok(Json(with_history(state, moved).await?))
}

/// Acknowledge a pending alert, optionally with notes (staff of its department).
#[utoipa::path(post, path = "/api/v1/alerts/{id}/acknowledge", params(("id" = i64, Path, description = "the alert's id")), tag = "alerts",
    request_body(content = AlertNoteIn, description = "optional"), security(("bearer" = [])),
    responses((status = 200, body = AlertOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn acknowledge_alert(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    OptionalJson(input): OptionalJson<AlertNoteIn>,
) -> ApiResult<Json<AlertOut>> {
    move_alert(&state, &auth, id, AlertStatus::Acknowledged, input).await
}

/// Resolve an alert, optionally with notes (staff of its department).
#[utoipa::path(post, path = "/api/v1/alerts/{id}/resolve", params(("id" = i64, Path, description = "the alert's id")), tag = "alerts",
    request_body(content = AlertNoteIn, description = "optional"), security(("bearer" = [])),
    responses((status = 200, body = AlertOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn resolve_alert(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    OptionalJson(input): OptionalJson<AlertNoteIn>,
) -> ApiResult<Json<AlertOut>> {
    move_alert(&state, &auth, id, AlertStatus::Resolved, input).await
}
