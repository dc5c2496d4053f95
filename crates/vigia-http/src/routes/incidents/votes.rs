//! "Me too" on public incidents: one vote per person ([`Relation::may_vote`]).
//!
//! [`Relation::may_vote`]: vigia_domain::incidents::Relation::may_vote

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use vigia_domain::Timestamp;
use vigia_store::StoreError;
use vigia_store::incidents;

use super::load;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;
use crate::path::Path;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct VotesOut {
    pub votes: i64,
    pub voted: bool,
}

/// Say "me too" on a public incident (once per person).
#[utoipa::path(post, path = "/api/v1/incidents/{id}/votes", operation_id = "vote_for_incident", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)")), tag = "incidents", security(("bearer" = [])),
    responses((status = 201, body = VotesOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn vote(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<VotesOut>)> {
    let user = auth.user()?.user_id;
    let (incident, relation) = load(&state, &auth, &id).await?;
    relation.may_vote(incident.visibility)?;
    let votes = incidents::vote(&state.db, incident.id, user, Timestamp::now())
        .await
        .map_err(|e| match e {
            StoreError::Duplicate { .. } => {
                ApiError::conflict("you already voted for this incident")
            }
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(VotesOut { votes, voted: true })))
}

/// Take your vote back. Idempotent: without a vote it changes nothing and answers the same
/// (200, `voted: false`); 404 means the incident does not exist or is not yours to see.
#[utoipa::path(delete, path = "/api/v1/incidents/{id}/votes", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)")), tag = "incidents", security(("bearer" = [])),
    responses((status = 200, body = VotesOut), (status = 404, body = Problem)))]
pub(super) async fn withdraw_vote(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<VotesOut>> {
    let user = auth.user()?.user_id;
    let (incident, _) = load(&state, &auth, &id).await?;
    let votes = incidents::withdraw_vote(&state.db, incident.id, user, Timestamp::now()).await?;
    Ok(Json(VotesOut {
        votes,
        voted: false,
    }))
}
