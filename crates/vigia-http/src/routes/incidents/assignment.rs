//! Routing an incident to a department, giving it to a staff member, and putting it on the
//! public board or taking it off.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, UserId};
use vigia_domain::incidents::IncidentVisibility;
use vigia_store::incidents;

use super::wire::{IncidentOut, with_etag};
use super::{check_if_match, load};
use crate::auth::{Admin, Auth};
use crate::error::{ApiResult, Problem};
use crate::extract::Json;
use crate::path::Path;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentAssignIn {
    #[schema(minimum = 1)]
    pub department_id: i64,
}

/// Route the incident to another department (admins). Its assignee is cleared and the new
/// department's auto-assignment runs.
#[utoipa::path(put, path = "/api/v1/incidents/{id}/department", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)")), tag = "incidents", request_body = DepartmentAssignIn,
    security(("bearer" = [])), responses((status = 200, body = IncidentOut), (status = 403, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn assign_department(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(input): Json<DepartmentAssignIn>,
) -> ApiResult<Response> {
    let (incident, relation) = load(&state, &admin, &id).await?;
    relation.may_route()?;
    check_if_match(&headers, &incident)?;
    let updated = incidents::assign_department(
        &state.db,
        &incident,
        DepartmentId(input.department_id),
        &admin.0.0.label(),
        Timestamp::now(),
    )
    .await?;
    Ok(with_etag(StatusCode::OK, IncidentOut::full(updated)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssigneeIn {
    /// A staff member of the incident's department, or null to unassign.
    pub assignee_id: Option<i64>,
}

/// Give the incident to a staff member of its department (department staff and admins).
#[utoipa::path(put, path = "/api/v1/incidents/{id}/assignee", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)")), tag = "incidents", request_body = AssigneeIn,
    security(("bearer" = [])), responses((status = 200, body = IncidentOut), (status = 403, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn assign_user(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(input): Json<AssigneeIn>,
) -> ApiResult<Response> {
    let (incident, relation) = load(&state, &auth, &id).await?;
    relation.may_assign()?;
    check_if_match(&headers, &incident)?;
    let updated = incidents::assign_user(
        &state.db,
        &incident,
        input.assignee_id.map(UserId),
        &auth.0.label(),
        Timestamp::now(),
    )
    .await?;
    Ok(with_etag(StatusCode::OK, IncidentOut::full(updated)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisibilityIn {
    /// `public` or `private`.
    #[schema(pattern = "^(public|private)$")]
    pub visibility: String,
}

/// Put the incident on the public board or take it off (department staff and admins).
#[utoipa::path(put, path = "/api/v1/incidents/{id}/visibility", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)")), tag = "incidents", request_body = VisibilityIn,
    security(("bearer" = [])), responses((status = 200, body = IncidentOut), (status = 403, body = Problem)))]
pub(crate) async fn set_visibility(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(input): Json<VisibilityIn>,
) -> ApiResult<Response> {
    let (incident, relation) = load(&state, &auth, &id).await?;
    relation.may_change_visibility()?;
    let visibility = IncidentVisibility::parse("visibility", &input.visibility)?;
    check_if_match(&headers, &incident)?;
    let updated = incidents::set_visibility(
        &state.db,
        &incident,
        visibility,
        &auth.0.label(),
        Timestamp::now(),
    )
    .await?;
    Ok(with_etag(StatusCode::OK, IncidentOut::full(updated)))
}
