//! Comments on an incident: public ones the reporter sees, internal ones for staff
//! ([`Relation::may_comment`]).
//!
//! [`Relation::may_comment`]: vigia_domain::incidents::Relation::may_comment

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigia_domain::Timestamp;
use vigia_domain::incidents::NewComment;
use vigia_store::incidents::{self, Comment};

use super::load;
use crate::auth::Auth;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, LenientJson};
use crate::path::Path;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentIn {
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 5000
    )]
    pub body: String,
    /// `public` (default; the reporter sees it) or `internal` (staff only).
    #[schema(pattern = "^(public|internal)$")]
    pub visibility: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommentOut {
    pub id: i64,
    pub author: String,
    pub body: String,
    pub visibility: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<Comment> for CommentOut {
    fn from(c: Comment) -> Self {
        Self {
            id: c.id.0,
            author: c.author,
            body: c.body,
            visibility: c.visibility.as_str().into(),
            created_at: c.created_at,
        }
    }
}

/// Comment on an incident. The reporter and department staff may comment; internal comments
/// are for staff only.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/comments", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)")), tag = "incidents", request_body = CommentIn,
    security(("bearer" = [])), responses((status = 201, body = CommentOut), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn comment(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: LenientJson<CommentIn>,
) -> ApiResult<(StatusCode, Json<CommentOut>)> {
    let (incident, relation) = load(&state, &auth, &id).await?;
    let new =
        body.parse(|input| Ok(NewComment::parse(&input.body, input.visibility.as_deref())?))?;
    relation.may_comment(new.visibility)?;
    let saved = incidents::add_comment(
        &state.db,
        incident.id,
        &new,
        &auth.0.label(),
        auth.0.user_id(),
        Timestamp::now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(saved.into())))
}

/// The incident's comments, oldest first (internal ones for staff only).
#[utoipa::path(get, path = "/api/v1/incidents/{id}/comments", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)")), tag = "incidents", security(("bearer" = [])),
    responses((status = 200, body = Vec<CommentOut>), (status = 404, body = Problem)))]
pub(super) async fn comments(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<CommentOut>>> {
    let (incident, relation) = load(&state, &auth, &id).await?;
    let list =
        incidents::list_comments(&state.db, incident.id, relation.may_see_internal()).await?;
    Ok(Json(list.into_iter().map(CommentOut::from).collect()))
}
