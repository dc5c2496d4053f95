//! Moving an incident through its lifecycle ([`Relation::may_transition`]).
//!
//! [`Relation::may_transition`]: vigia_domain::incidents::Relation::may_transition

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use vigia_domain::Timestamp;
use vigia_domain::incidents::{STAFF_ONLY, Status, TransitionError};
use vigia_store::incidents;

use super::wire::{IncidentOut, with_etag};
use super::{check_if_match, load};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;
use crate::path::Path;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionIn {
    /// The status to move to.
    #[schema(pattern = "^(new|acknowledged|in_progress|on_hold|resolved|closed)$")]
    pub to: String,
}

/// Move the incident through its lifecycle. Invalid moves get 409 listing the allowed ones.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/transitions", tag = "incidents", request_body = TransitionIn,
    security(("bearer" = [])), params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)"), ("If-Match" = Option<String>, Header, description = "the version read", pattern = r#"^(\*|(W/)?"[0-9]{1,18}"|[0-9]{1,18})$"#)),
    responses((status = 200, body = IncidentOut), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem)))]
pub(crate) async fn transition(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(input): Json<TransitionIn>,
) -> ApiResult<Response> {
    let (incident, relation) = load(&state, &auth, &id).await?;
    let to = Status::parse("to", &input.to)?;
    check_if_match(&headers, &incident)?;
    relation
        .may_transition(incident.status, to)
        .map_err(|error| {
            let allowed: Vec<&str> = error.allowed().iter().map(|s| s.as_str()).collect();
            let extra = Some(
                serde_json::json!({ "current": incident.status.as_str(), "allowed": allowed }),
            );
            match error {
                TransitionError::NotInLifecycle { .. } => ApiError::Conflict {
                    detail: format!(
                        "cannot go from {} to {}",
                        incident.status.as_str(),
                        to.as_str()
                    ),
                    extra,
                },
                TransitionError::Forbidden { .. } => STAFF_ONLY.into(),
            }
        })?;
    let updated =
        incidents::transition(&state.db, &incident, to, &auth.0.label(), Timestamp::now()).await?;
    Ok(with_etag(
        StatusCode::OK,
        IncidentOut::for_caller(updated, &auth.0),
    ))
}
