//! Video competitions: an admin opens one (submission and voting windows); signed-in people
//! submit one video entry each ([`entries`]); the public board lists the entries whose video
//! is ready, with their place; one vote per person and competition, withdrawable, only while
//! voting is open. The rules are `vigia_domain::competitions`; the results are frozen and
//! published as a report by the `competition.results` job when voting closes.

pub mod entries;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigia_domain::competitions::{NewCompetition, WindowError, Windows};
use vigia_domain::{FieldError, Timestamp};
use vigia_store::StoreError;
use vigia_store::competitions::{self, Competition};

use super::{Routes, op};
use crate::auth::{Admin, Auth, MaybeAuth};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;
use crate::path::Path;
use crate::state::AppState;

pub use entries::EntryOut;

pub fn router(routes: Routes, max_upload_bytes: usize) -> Routes {
    let routes = op!(routes, create);
    let routes = op!(routes, list);
    let routes = op!(routes, get_one);
    let routes = op!(routes, board);
    let routes = op!(routes, vote);
    let routes = op!(routes, withdraw);
    entries::router(routes, max_upload_bytes)
}

// --- wire types -------------------------------------------------------------------------------

/// A competition to open. Each window is `[open, close)`; voting may overlap submissions but
/// neither opens before submissions do nor closes before them, and it closes in the future.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompetitionIn {
    pub title: String,
    pub description: Option<String>,
    /// The department that runs it (its staff see its results report).
    pub department_id: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    pub submissions_open_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub submissions_close_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub voting_open_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub voting_close_at: Timestamp,
}

/// A competition.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompetitionOut {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub department_id: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    pub submissions_open_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub submissions_close_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub voting_open_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub voting_close_at: Timestamp,
    /// Now: `upcoming`, `submissions`, `voting` or `closed`.
    pub phase: String,
    /// When the results were frozen (after voting closed).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub frozen_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl CompetitionOut {
    pub(crate) fn new(c: &Competition, now: Timestamp) -> Self {
        let w = c.windows();
        Self {
            id: c.id,
            title: c.title.clone(),
            description: c.description.clone(),
            department_id: c.department_id,
            submissions_open_at: w.submissions_open_at,
            submissions_close_at: w.submissions_close_at,
            voting_open_at: w.voting_open_at,
            voting_close_at: w.voting_close_at,
            phase: w.phase(now).as_str().to_owned(),
            frozen_at: c.frozen_at.map(Timestamp::from_millis),
            created_at: Timestamp::from_millis(c.created_at),
        }
    }
}

/// One ready entry on the board, with its place in the live ranking.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoardEntryOut {
    /// 1 for the most votes; equal votes go to the entry whose earliest vote came first.
    pub place: usize,
    pub entry: EntryOut,
}

/// The public board: the ready entries in ranking order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoardOut {
    pub competition: CompetitionOut,
    pub entries: Vec<BoardEntryOut>,
    /// The entry the caller voted for (signed-in callers).
    pub my_vote: Option<i64>,
    /// The ranking frozen when voting closed (also published as a `competition` report).
    #[schema(value_type = Option<Object>)]
    pub results: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompetitionVoteIn {
    /// A ready entry of this competition.
    pub entry_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompetitionVoteOut {
    /// The entry voted for (withdrawn: the entry the vote was for, if any).
    pub entry_id: Option<i64>,
    /// That entry's votes now.
    pub votes: i64,
    pub voted: bool,
}

// --- rules shared with the web UI -------------------------------------------------------------

/// The competition `raw` names; 404 when none.
pub(crate) async fn load(state: &AppState, raw: &str) -> ApiResult<Competition> {
    let id = raw.parse::<i64>().map_err(|_| ApiError::NotFound)?;
    Ok(competitions::find(&state.db, id).await?)
}

/// A window refusal: not open yet → 422 (field `window`), over → 409.
pub(crate) fn window_error(error: WindowError) -> ApiError {
    if error.is_over() {
        ApiError::conflict(error.to_string())
    } else {
        ApiError::Validation(vec![FieldError::new("window", error.to_string())])
    }
}

/// Parses and opens a competition (the API's and the admin form's path).
pub(crate) async fn open(
    state: &AppState,
    admin: &Admin,
    input: CompetitionIn,
) -> ApiResult<CompetitionOut> {
    let now = Timestamp::now();
    let windows = Windows::parse(
        input.submissions_open_at,
        input.submissions_close_at,
        input.voting_open_at,
        input.voting_close_at,
        now,
    );
    let mut new = NewCompetition::parse(&input.title, input.description.as_deref(), windows);
    if let Some(d) = input.department_id
        && d <= 0
    {
        let mut errors = new.err().unwrap_or_default();
        errors.push(FieldError::new("department_id", "must be a positive id"));
        new = Err(errors);
    }
    let new = new?;
    let created = competitions::create(
        &state.db,
        &new,
        input.department_id,
        &admin.0.0.label(),
        now,
    )
    .await?;
    tracing::info!(competition_id = created.id, "competition opened");
    Ok(CompetitionOut::new(&created, now))
}

/// The board of `competition` as `user` sees it.
pub(crate) async fn board_of(
    state: &AppState,
    competition: &Competition,
    user: Option<i64>,
) -> ApiResult<BoardOut> {
    let now = Timestamp::now();
    let standings = competitions::standings(&state.db, competition.id).await?;
    let my_vote = match user {
        Some(u) => competitions::vote_of(&state.db, competition.id, u).await?,
        None => None,
    };
    Ok(BoardOut {
        competition: CompetitionOut::new(competition, now),
        entries: standings
            .into_iter()
            .map(|s| BoardEntryOut {
                place: s.place,
                entry: EntryOut::new(s.entry),
            })
            .collect(),
        my_vote,
        results: competition
            .results
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok()),
    })
}

/// Casts `user`'s vote for `entry_id` in `competition`.
pub(crate) async fn cast_vote(
    state: &AppState,
    competition: &Competition,
    user: i64,
    entry_id: i64,
) -> ApiResult<CompetitionVoteOut> {
    let now = Timestamp::now();
    competition.windows().may_vote(now).map_err(window_error)?;
    let entry = match competitions::entries::find(&state.db, entry_id).await {
        Ok(e) if e.competition_id == competition.id && e.status == "ready" => e,
        Ok(_) | Err(StoreError::NotFound) => {
            return Err(ApiError::field(
                "entry_id",
                "must be a ready entry of this competition",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let votes = competitions::vote(&state.db, competition.id, entry.id, user, now)
        .await
        .map_err(|e| match e {
            StoreError::Duplicate { .. } => ApiError::conflict(
                "you already voted in this competition: withdraw that vote first",
            ),
            other => other.into(),
        })?;
    Ok(CompetitionVoteOut {
        entry_id: Some(entry.id),
        votes,
        voted: true,
    })
}

/// Takes `user`'s vote in `competition` back (idempotent); only while voting is open.
pub(crate) async fn withdraw_vote(
    state: &AppState,
    competition: &Competition,
    user: i64,
) -> ApiResult<CompetitionVoteOut> {
    competition
        .windows()
        .may_vote(Timestamp::now())
        .map_err(window_error)?;
    let entry = competitions::withdraw(&state.db, competition.id, user).await?;
    let votes = match entry {
        Some(e) => competitions::entries::find(&state.db, e).await?.votes,
        None => 0,
    };
    Ok(CompetitionVoteOut {
        entry_id: entry,
        votes,
        voted: false,
    })
}

// --- handlers ---------------------------------------------------------------------------------

/// Open a competition (admins).
#[utoipa::path(post, path = "/api/v1/competitions", operation_id = "create_competition", tag = "competitions", request_body = CompetitionIn,
    security(("bearer" = [])),
    responses((status = 201, body = CompetitionOut), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create(
    State(state): State<AppState>,
    admin: Admin,
    Json(input): Json<CompetitionIn>,
) -> ApiResult<(StatusCode, Json<CompetitionOut>)> {
    Ok((
        StatusCode::CREATED,
        Json(open(&state, &admin, input).await?),
    ))
}

/// Every competition, newest first (public).
#[utoipa::path(get, path = "/api/v1/competitions", operation_id = "list_competitions", tag = "competitions",
    responses((status = 200, body = Vec<CompetitionOut>)))]
async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<CompetitionOut>>> {
    let now = Timestamp::now();
    let all = competitions::list(&state.db).await?;
    Ok(Json(
        all.iter().map(|c| CompetitionOut::new(c, now)).collect(),
    ))
}

/// One competition (public).
#[utoipa::path(get, path = "/api/v1/competitions/{id}", tag = "competitions",
    params(("id" = i64, Path, description = "the competition's id")),
    responses((status = 200, body = CompetitionOut), (status = 404, body = Problem)))]
async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CompetitionOut>> {
    let competition = load(&state, &id).await?;
    Ok(Json(CompetitionOut::new(&competition, Timestamp::now())))
}

/// The public board: entries whose video is ready, with the processed video and poster, in
/// ranking order (votes, then the earliest vote); `my_vote` for signed-in callers; the frozen
/// `results` once voting closed.
#[utoipa::path(get, path = "/api/v1/competitions/{id}/board", tag = "competitions",
    params(("id" = i64, Path, description = "the competition's id")),
    responses((status = 200, body = BoardOut), (status = 404, body = Problem)))]
async fn board(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<BoardOut>> {
    let competition = load(&state, &id).await?;
    let user = match &auth.0 {
        Some(vigia_domain::auth::Principal::User(u)) => Some(u.user_id.0),
        _ => None,
    };
    Ok(Json(board_of(&state, &competition, user).await?))
}

/// Vote for a ready entry: one vote per person and competition, only while voting is open
/// (before: 422 naming `window`; after: 409, the results are frozen). A second vote: 409.
#[utoipa::path(post, path = "/api/v1/competitions/{id}/votes", operation_id = "vote_for_competition_entry", tag = "competitions",
    request_body = CompetitionVoteIn, security(("bearer" = [])),
    params(("id" = i64, Path, description = "the competition's id")),
    responses((status = 201, body = CompetitionVoteOut), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn vote(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<CompetitionVoteIn>,
) -> ApiResult<(StatusCode, Json<CompetitionVoteOut>)> {
    let user = auth.user()?.user_id.0;
    let competition = load(&state, &id).await?;
    let out = cast_vote(&state, &competition, user, input.entry_id).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Take your vote back. Idempotent: without a vote it changes nothing and answers 200 with
/// `voted: false`. Only while voting is open (422 before, 409 after).
#[utoipa::path(delete, path = "/api/v1/competitions/{id}/votes", tag = "competitions",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "the competition's id")),
    responses((status = 200, body = CompetitionVoteOut), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn withdraw(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<CompetitionVoteOut>> {
    let user = auth.user()?.user_id.0;
    let competition = load(&state, &id).await?;
    Ok(Json(withdraw_vote(&state, &competition, user).await?))
}
