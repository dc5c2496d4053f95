//! Reading incidents: the lists (scoped, mine, the public board), one incident, its history.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigia_domain::Timestamp;
use vigia_domain::catalog::Urgency;
use vigia_domain::ids::{CategoryId, DepartmentId, UserId, ZoneId};
use vigia_domain::incidents::{ReadScope, Status};
use vigia_store::incidents::{self, IncidentFilter, Sort};
use vigia_store::page::clamp_limit;

use super::load;
use super::wire::{IncidentOut, IncidentPage, with_etag};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Query};
use crate::json_out::Written;
use crate::path::Path;
use crate::routes::users::cursor;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IncidentQuery {
    /// Comma-separated statuses, e.g. `new,acknowledged`.
    #[param(
        pattern = r"^\s*(?:new|acknowledged|in_progress|on_hold|resolved|closed)?\s*(?:,\s*(?:new|acknowledged|in_progress|on_hold|resolved|closed)?\s*)*$"
    )]
    pub status: Option<String>,
    pub category: Option<i64>,
    /// Comma-separated urgencies.
    #[param(
        pattern = r"^\s*(?:low|medium|high|emergency)?\s*(?:,\s*(?:low|medium|high|emergency)?\s*)*$"
    )]
    pub urgency: Option<String>,
    pub department: Option<i64>,
    pub assignee: Option<i64>,
    pub zone: Option<i64>,
    pub reporter: Option<i64>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_from: Option<Timestamp>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_to: Option<Timestamp>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub updated_from: Option<Timestamp>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub updated_to: Option<Timestamp>,
    /// Words to find in title and description.
    pub q: Option<String>,
    /// `-created` (newest first, default) or `created`.
    #[param(pattern = "^-?created$")]
    pub sort: Option<String>,
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub cursor: Option<String>,
    /// Page size; out-of-range values are brought into the endpoint's range.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
}
/// The list filters of `q` (shared by the list, exports and custom reports).
pub(crate) fn filter(q: &IncidentQuery) -> ApiResult<IncidentFilter> {
    let list = |raw: &Option<String>| -> Vec<String> {
        raw.as_deref()
            .map(|r| {
                r.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let status = list(&q.status)
        .iter()
        .map(|s| Status::parse("status", s))
        .collect::<Result<_, _>>()?;
    let urgency = list(&q.urgency)
        .iter()
        .map(|u| Urgency::parse("urgency", u))
        .collect::<Result<_, _>>()?;
    let sort = match q.sort.as_deref() {
        None | Some("-created") => Sort::Newest,
        Some("created") => Sort::Oldest,
        Some(_) => return Err(ApiError::field("sort", "must be -created or created")),
    };
    Ok(IncidentFilter {
        status,
        category: q.category.map(CategoryId),
        urgency,
        department: q.department.map(DepartmentId),
        assignee: q.assignee.map(UserId),
        zone: q.zone.map(ZoneId),
        reporter: q.reporter.map(UserId),
        created_from: q.created_from,
        created_to: q.created_to,
        updated_from: q.updated_from,
        updated_to: q.updated_to,
        q: q.q.clone(),
        public_only: false,
        sort,
    })
}

pub(super) async fn list_in_scope(
    state: &AppState,
    auth: &Auth,
    scope: &ReadScope,
    f: IncidentFilter,
    q: &IncidentQuery,
) -> ApiResult<Written<IncidentPage>> {
    let page = incidents::list(
        &state.db,
        scope,
        &f,
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    Ok(Written(IncidentPage {
        items: page
            .items
            .into_iter()
            .map(|i| IncidentOut::for_caller(i, &auth.0))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Incidents the caller may see, filtered, newest first.
#[utoipa::path(get, path = "/api/v1/incidents", operation_id = "list_incidents", tag = "incidents", params(IncidentQuery), security(("bearer" = [])),
    responses((status = 200, body = IncidentPage), (status = 422, body = Problem)))]
pub(super) async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<IncidentQuery>,
) -> ApiResult<Written<IncidentPage>> {
    let f = filter(&q)?;
    list_in_scope(&state, &auth, &ReadScope::of(&auth.0), f, &q).await
}

/// The incidents the caller reported.
#[utoipa::path(get, path = "/api/v1/incidents/mine", operation_id = "my_incidents", tag = "incidents", params(IncidentQuery), security(("bearer" = [])),
    responses((status = 200, body = IncidentPage)))]
pub(super) async fn mine(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<IncidentQuery>,
) -> ApiResult<Written<IncidentPage>> {
    let user = auth.user()?.user_id;
    let mut f = filter(&q)?;
    f.reporter = Some(user);
    list_in_scope(&state, &auth, &ReadScope::of(&auth.0), f, &q).await
}

/// The public board: public incidents, without personal data. No sign-in needed.
#[utoipa::path(get, path = "/api/v1/public/incidents", tag = "incidents", params(IncidentQuery),
    responses((status = 200, body = IncidentPage)))]
pub(super) async fn public_list(
    State(state): State<AppState>,
    Query(q): Query<IncidentQuery>,
) -> ApiResult<Written<IncidentPage>> {
    let mut f = filter(&q)?;
    f.public_only = true;
    f.reporter = None;
    f.assignee = None;
    let page = incidents::list(
        &state.db,
        &ReadScope::PublicOnly,
        &f,
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    Ok(Written(IncidentPage {
        items: page.items.into_iter().map(IncidentOut::redacted).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One incident. Its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", operation_id = "find_incident", tag = "incidents", security(("bearer" = [])),
    params(("id" = String, Path, description = "number or code such as INC-000123")),
    responses((status = 200, body = IncidentOut), (status = 404, body = Problem)))]
pub(super) async fn find(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (incident, _) = load(&state, &auth, &id).await?;
    Ok(with_etag(
        StatusCode::OK,
        IncidentOut::for_caller(incident, &auth.0),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    /// Monotonic; use as a cursor.
    pub id: i64,
    pub incident_id: i64,
    pub code: String,
    /// Real-time message type, e.g. `incident.status_changed`.
    #[serde(rename = "type")]
    pub message_type: String,
    pub actor: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub cursor: Option<String>,
    /// Page size; out-of-range values are brought into the endpoint's range.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
}

/// The incident's history, oldest first (internal events for staff only).
#[utoipa::path(get, path = "/api/v1/incidents/{id}/events", tag = "incidents", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)"), EventQuery),
    security(("bearer" = [])), responses((status = 200, body = EventPage), (status = 404, body = Problem)))]
pub(super) async fn events(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<EventQuery>,
) -> ApiResult<Json<EventPage>> {
    let (incident, relation) = load(&state, &auth, &id).await?;
    let page = incidents::events::list_for_incident(
        &state.db,
        incident.id,
        relation.may_see_internal(),
        cursor(q.cursor.as_deref())?,
        q.limit.unwrap_or(200).clamp(1, 500) as usize,
    )
    .await?;
    let hide_people = !relation.sees_people();
    Ok(Json(EventPage {
        items: page
            .items
            .into_iter()
            .map(|e| EventOut {
                id: e.id.0,
                // The incident's own events: both are always there.
                incident_id: incident.id.0,
                code: incident.code.to_string(),
                message_type: e.message_type,
                actor: if hide_people { String::new() } else { e.actor },
                at: e.at,
                data: e.data,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}
