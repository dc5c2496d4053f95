//! Report links: what an e-mail recipient without an account opens, and what admins revoke.
//!
//! `GET /reports/incidents/{department}/incident_{id}.json?key={token}` serves one department's
//! report of one incident to whoever holds the link the department's contacts were mailed
//! (`vigia_domain::links`): no credentials. A link that is malformed, tampered with or signed
//! for another report is 404; an expired or revoked one is 410. Admins list links and revoke
//! one (audited).

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, IncidentId};
use vigia_domain::links::LinkError;
use vigia_reports::Format;
use vigia_store::page::clamp_limit;
use vigia_store::report_links::{self, ReportLink};
use vigia_store::reports::{self, ReportFilter, ReportKind, ReportScope};

use super::{Routes, op};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Query, RequestId};
use crate::path::Path;
use crate::routes::reports::stream_file;
use crate::routes::users::cursor;
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, open_link);
    let routes = op!(routes, list);
    op!(routes, revoke)
}

const EXPIRED: ApiError = ApiError::Gone {
    detail: "this report link has expired; ask the department for a new one",
};
const REVOKED: ApiError = ApiError::Gone {
    detail: "this report link was revoked",
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// The signed token the e-mail carries.
    pub key: Option<String>,
}

/// One department's report of one incident, opened with the signed link its contacts were
/// mailed (no account needed).
#[utoipa::path(get, path = "/reports/incidents/{department}/{file}", tag = "reports",
    params(("department" = i64, Path, description = "the department's id"),
        ("file" = String, Path, description = "`incident_{id}.json`"), LinkQuery),
    responses((status = 200, description = "the report", content_type = "application/json", body = Vec<u8>),
        (status = 404, body = Problem), (status = 410, description = "expired or revoked", body = Problem)))]
async fn open_link(
    State(state): State<AppState>,
    Path((department, file)): Path<(String, String)>,
    Query(q): Query<LinkQuery>,
) -> ApiResult<Response> {
    let department = department
        .parse::<i64>()
        .map(DepartmentId)
        .map_err(|_| ApiError::NotFound)?;
    let incident = file
        .strip_prefix("incident_")
        .and_then(|rest| rest.strip_suffix(".json"))
        .and_then(|id| id.parse::<i64>().ok())
        .map(IncidentId)
        .ok_or(ApiError::NotFound)?;
    let token = q.key.ok_or(ApiError::NotFound)?;
    let claims = state
        .link_key
        .verify(&token, incident, department, Timestamp::now())
        .map_err(|error| match error {
            LinkError::Invalid => ApiError::NotFound,
            LinkError::Expired => EXPIRED,
        })?;
    let link = report_links::find(&state.db, claims.link_id).await?;
    if link.incident_id != incident || link.department_id != department {
        return Err(ApiError::NotFound);
    }
    if link.revoked_at.is_some() {
        return Err(REVOKED);
    }
    let filter = ReportFilter {
        kind: Some(ReportKind::Incident),
        incident: Some(incident),
        department: Some(department),
        ..ReportFilter::default()
    };
    let scope = ReportScope::Departments(vec![department]);
    let page = reports::list(&state.db, &scope, &filter, None, 1).await?;
    let report = page.items.into_iter().next().ok_or(ApiError::NotFound)?;
    stream_file(&state, &report, Format::Json).await
}

/// A report link as admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportLinkOut {
    pub id: i64,
    pub incident_id: i64,
    pub department_id: i64,
    /// The event whose e-mail carried it.
    pub event_id: i64,
    pub recipient: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    pub revoked_by: Option<String>,
}

impl From<ReportLink> for ReportLinkOut {
    fn from(l: ReportLink) -> Self {
        Self {
            id: l.id,
            incident_id: l.incident_id.0,
            department_id: l.department_id.0,
            event_id: l.event_id,
            recipient: l.recipient,
            created_at: l.created_at,
            expires_at: l.expires_at,
            revoked_at: l.revoked_at,
            revoked_by: l.revoked_by,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportLinkPage {
    pub items: Vec<ReportLinkOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportLinkQuery {
    /// Only the links of this incident.
    pub incident: Option<i64>,
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub cursor: Option<String>,
    /// 1 to 200, default 50.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
}

/// Report links mailed to department contacts, newest first (admins).
#[utoipa::path(get, path = "/api/v1/report-links", operation_id = "list_report_links", tag = "reports", params(ReportLinkQuery), security(("bearer" = [])),
    responses((status = 200, body = ReportLinkPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<ReportLinkQuery>,
) -> ApiResult<Json<ReportLinkPage>> {
    let page = report_links::list(
        &state.db,
        q.incident.map(IncidentId),
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    Ok(Json(ReportLinkPage {
        items: page.items.into_iter().map(ReportLinkOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Revoke a report link now: it answers 410 from then on (admins; audited).
#[utoipa::path(post, path = "/api/v1/report-links/{id}/revoke", tag = "reports", security(("bearer" = [])),
    params(("id" = i64, Path, description = "the link's id")),
    responses((status = 200, body = ReportLinkOut), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn revoke(
    State(state): State<AppState>,
    admin: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<String>,
) -> ApiResult<Json<ReportLinkOut>> {
    let id = id.parse::<i64>().map_err(|_| ApiError::NotFound)?;
    let link = report_links::revoke(&state.db, id, &admin.actor(rid)).await?;
    Ok(Json(link.into()))
}
