//! Video competitions in the web UI: the list (`/competitions`), the admin form to open one
//! (`/competitions/new`), the public board with each ready entry's player, votes and ranking
//! ([`board`]), and the entry upload with its processing status ([`entry`]). Every page calls
//! the API's own functions (`routes::competitions`), so the rules are the domain's.

mod board;
mod entry;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use vigia_domain::{FieldError, Timestamp};
use vigia_store::competitions;

use super::page::{FormData, FormErrors, UiError, render, see_other};
use super::viewer::{Chrome, Viewer};
use crate::auth::Admin;
use crate::error::ApiError;
use crate::routes::competitions::{CompetitionIn, CompetitionOut, open};
use crate::state::AppState;

/// The competition pages; the entry form may be as large as an upload.
pub fn router(max_upload_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/competitions", get(list))
        .route("/competitions/new", get(new_form).post(create))
        .route("/competitions/{id}", get(board::show))
        .route("/competitions/{id}/vote", post(board::vote))
        .route(
            "/competitions/{id}/enter",
            get(entry::form)
                .post(entry::submit)
                .layer(DefaultBodyLimit::max(max_upload_bytes + 64 * 1024)),
        )
        .route("/competitions/{id}/entry", get(entry::status))
        .route("/competitions/{id}/entry/live", get(entry::live))
}

/// The catalog key of a phase (`upcoming`, `submissions`, `voting`, `closed`).
fn phase_key(phase: &str) -> &'static str {
    match phase {
        "upcoming" => "competitions.phase.upcoming",
        "submissions" => "competitions.phase.submissions",
        "voting" => "competitions.phase.voting",
        _ => "competitions.phase.closed",
    }
}

#[derive(Template)]
#[template(path = "ui/competitions/list.html")]
struct ListPage<'a> {
    c: &'a Chrome,
    items: Vec<CompetitionOut>,
}

impl ListPage<'_> {
    fn phase(&self, phase: &str) -> &'static str {
        phase_key(phase)
    }
}

/// `GET /competitions`: every competition (anyone).
async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, UiError> {
    let now = Timestamp::now();
    let items = competitions::list(&state.db)
        .await?
        .iter()
        .map(|c| CompetitionOut::new(c, now))
        .collect();
    Ok(render(
        &viewer,
        StatusCode::OK,
        &ListPage {
            c: &viewer.chrome,
            items,
        },
    ))
}

#[derive(Template)]
#[template(path = "ui/competitions/new.html")]
struct NewPage<'a> {
    c: &'a Chrome,
    errors: FormErrors,
    form: FormData,
}

fn admin_of(viewer: &Viewer) -> Result<Admin, UiError> {
    let (auth, _) = viewer.require()?;
    Ok(Admin::check(auth.clone())?)
}

/// `GET /competitions/new` (admins).
async fn new_form(viewer: Viewer) -> Result<Response, UiError> {
    admin_of(&viewer)?;
    Ok(render(
        &viewer,
        StatusCode::OK,
        &NewPage {
            c: &viewer.chrome,
            errors: FormErrors::default(),
            form: FormData::default(),
        },
    ))
}

/// A `datetime-local` value (`2026-12-07T09:00`, UTC as the form says) or RFC 3339.
fn form_time(form: &FormData, field: &str, errors: &mut Vec<FieldError>) -> Timestamp {
    let raw = form.get(field).trim();
    let parsed = Timestamp::parse_rfc3339(raw).or_else(|| {
        let with_seconds = if raw.len() == 16 {
            format!("{raw}:00Z")
        } else {
            format!("{raw}Z")
        };
        Timestamp::parse_rfc3339(&with_seconds)
    });
    parsed.unwrap_or_else(|| {
        errors.push(FieldError::new(
            field,
            "must be an RFC 3339 date-time, e.g. 2026-12-07T09:00:00Z",
        ));
        Timestamp::from_millis(0)
    })
}

/// `POST /competitions/new` (admins): `routes::competitions::open`, errors next to fields.
async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    body: Bytes,
) -> Result<Response, UiError> {
    let admin = admin_of(&viewer)?;
    let form = viewer.form(&body)?;
    let mut errors = Vec::new();
    let department_id = match form.get("department_id").trim() {
        "" => None,
        raw => match raw.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => {
                errors.push(FieldError::new("department_id", "must be a positive id"));
                None
            }
        },
    };
    let input = CompetitionIn {
        title: form.get("title").to_owned(),
        description: form.opt("description").map(str::to_owned),
        department_id,
        submissions_open_at: form_time(&form, "submissions_open_at", &mut errors),
        submissions_close_at: form_time(&form, "submissions_close_at", &mut errors),
        voting_open_at: form_time(&form, "voting_open_at", &mut errors),
        voting_close_at: form_time(&form, "voting_close_at", &mut errors),
    };
    let outcome = if errors.is_empty() {
        open(&state, &admin, input).await
    } else {
        Err(ApiError::Validation(errors))
    };
    match outcome {
        Ok(created) => Ok(see_other(&format!("/competitions/{}", created.id))),
        Err(error) => {
            let errors = FormErrors::from_api(viewer.lang(), error)?;
            Ok(render(
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                &NewPage {
                    c: &viewer.chrome,
                    errors,
                    form,
                },
            ))
        }
    }
}
