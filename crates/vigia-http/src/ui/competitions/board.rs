//! `GET /competitions/{id}`: the public board — each ready entry's HTML5 player with its
//! poster, its votes and place, the vote/withdraw buttons for signed-in people, and the frozen
//! results once voting closed. `POST /competitions/{id}/vote` casts or withdraws through the
//! API's `cast_vote`/`withdraw_vote`; a refusal (window, second vote) is shown on the board.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::phase_key;
use crate::error::ApiError;
use crate::path::Path;
use crate::routes::competitions::{BoardOut, board_of, cast_vote, load, withdraw_vote};
use crate::state::AppState;
use crate::ui::page::{UiError, render, see_other};
use crate::ui::viewer::{Chrome, Viewer};

#[derive(Template)]
#[template(path = "ui/competitions/board.html")]
struct BoardPage<'a> {
    c: &'a Chrome,
    board: BoardOut,
    /// A refused vote, in the viewer's language.
    problem: Option<String>,
    /// The frozen ranking: (place, title, author, votes).
    results: Vec<(i64, String, String, i64)>,
}

impl BoardPage<'_> {
    fn phase(&self) -> &'static str {
        phase_key(&self.board.competition.phase)
    }

    fn voting(&self) -> bool {
        self.board.competition.phase == "voting"
    }

    fn mine(&self, entry: &i64) -> bool {
        self.board.my_vote == Some(*entry)
    }
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    status: StatusCode,
    problem: Option<String>,
) -> Result<Response, UiError> {
    let competition = load(state, id).await?;
    let user = viewer.require().ok().map(|(_, u)| u.user_id.0);
    let board = board_of(state, &competition, user).await?;
    let results = board
        .results
        .as_ref()
        .and_then(|r| r["ranking"].as_array())
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["place"].as_i64().unwrap_or_default(),
                        r["title"].as_str().unwrap_or_default().to_owned(),
                        r["author"].as_str().unwrap_or_default().to_owned(),
                        r["votes"].as_i64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(render(
        viewer,
        status,
        &BoardPage {
            c: &viewer.chrome,
            board,
            problem,
            results,
        },
    ))
}

/// `GET /competitions/{id}` (anyone).
pub(super) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    page(&state, &viewer, &id, StatusCode::OK, None).await
}

/// `POST /competitions/{id}/vote`: `vote=1&entry_id=…` casts, `vote=0` withdraws.
pub(super) async fn vote(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    let (_, user) = viewer.require()?;
    let form = viewer.form(&body)?;
    let competition = load(&state, &id).await?;
    let user = user.user_id.0;
    let outcome = if form.get("vote") == "0" {
        withdraw_vote(&state, &competition, user).await.map(|_| ())
    } else {
        let entry = form.get("entry_id").trim().parse::<i64>().unwrap_or(0);
        cast_vote(&state, &competition, user, entry)
            .await
            .map(|_| ())
    };
    match outcome {
        Ok(()) => Ok(see_other(&format!("/competitions/{}", competition.id))),
        Err(error) => {
            let (status, key) = match &error {
                ApiError::Conflict { detail, .. } if detail.contains("already voted") => {
                    (StatusCode::CONFLICT, "competitions.error.already_voted")
                }
                ApiError::Conflict { .. } => (StatusCode::CONFLICT, "competitions.error.closed"),
                ApiError::Validation(list) if list.iter().any(|e| e.field == "window") => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "competitions.error.not_open",
                ),
                ApiError::Validation(_) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "competitions.error.no_entry",
                ),
                _ => return Err(error.into()),
            };
            let message = viewer.chrome.t(key).to_owned();
            page(&state, &viewer, &id, status, Some(message)).await
        }
    }
}
