//! `GET/POST /competitions/{id}/enter`: submit your entry (a title and a video; the form is
//! `multipart/form-data` with the CSRF token as its first part, checked before any byte is
//! stored; then the API's `entries::receive` streams the video like the API does).
//! `GET /competitions/{id}/entry`: your entry's processing status — queued, processing (with
//! progress), ready (with its player) or failed with the reason; its `/live` fragment is
//! fetched again on each `video.*` message of the stream's `competition:<id>` topic, or, where
//! the stream is unavailable, every 3 s (`data-poll-src`) until the status is final.

use askama::Template;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::StatusCode;
use axum::response::Response;
use vigia_store::competitions::entries;

use crate::error::ApiError;
use crate::path::Path;
use crate::routes::competitions::entries::receive;
use crate::routes::competitions::{CompetitionOut, EntryOut, load};
use crate::state::AppState;
use crate::ui::page::{FormData, FormErrors, UiError, render, see_other};
use crate::ui::viewer::{Chrome, Viewer};

#[derive(Template)]
#[template(path = "ui/competitions/enter.html")]
struct EnterPage<'a> {
    c: &'a Chrome,
    competition: CompetitionOut,
    errors: FormErrors,
    form: FormData,
}

async fn enter_page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    status: StatusCode,
    errors: FormErrors,
    form: FormData,
) -> Result<Response, UiError> {
    let competition = load(state, id).await?;
    let competition = CompetitionOut::new(&competition, vigia_domain::Timestamp::now());
    Ok(render(
        viewer,
        status,
        &EnterPage {
            c: &viewer.chrome,
            competition,
            errors,
            form,
        },
    ))
}

/// `GET /competitions/{id}/enter` (signed in); with an entry already, its status page.
pub(super) async fn form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let (_, user) = viewer.require()?;
    let competition = load(&state, &id).await?;
    if entries::of_user(&state.db, competition.id, user.user_id.0)
        .await?
        .is_some()
    {
        return Ok(see_other(&format!(
            "/competitions/{}/entry",
            competition.id
        )));
    }
    enter_page(
        &state,
        &viewer,
        &id,
        StatusCode::OK,
        FormErrors::default(),
        FormData::default(),
    )
    .await
}

/// The catalog key for a refused entry that is not about one field.
fn refusal_key(error: &ApiError) -> Option<&'static str> {
    match error {
        ApiError::Conflict { detail, .. } if detail.contains("already have an entry") => {
            Some("competitions.error.already_entered")
        }
        ApiError::Conflict { .. } => Some("competitions.error.submissions_closed"),
        ApiError::Validation(list) if list.iter().any(|e| e.field == "window") => {
            Some("competitions.error.submissions_not_open")
        }
        ApiError::UnsupportedMediaType { .. } => Some("competitions.error.not_video"),
        ApiError::PayloadTooLarge { .. } => Some("competitions.error.too_large"),
        _ => None,
    }
}

/// `POST /competitions/{id}/enter`.
pub(super) async fn submit(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, UiError> {
    let (_, user) = viewer.require()?;
    let user = user.user_id.0;
    let competition = load(&state, &id).await?;
    let mut multipart =
        multipart.map_err(|_| UiError::Api(ApiError::bad_request("send the form as multipart")))?;
    // The token comes first; nothing is read further without it.
    let unreadable = |_| UiError::Api(ApiError::bad_request("cannot read the form"));
    let first = multipart.next_field().await.map_err(unreadable)?;
    let token = match first {
        Some(field) if field.name() == Some("csrf") => {
            Some(field.text().await.map_err(unreadable)?)
        }
        _ => None,
    };
    viewer.check_csrf(token.as_deref())?;
    match receive(&state, &competition, user, &mut multipart).await {
        Ok(_) => Ok(see_other(&format!(
            "/competitions/{}/entry",
            competition.id
        ))),
        Err(error) => {
            let lang = viewer.lang();
            let (status, errors) = match refusal_key(&error) {
                Some(key) => (
                    error.status(),
                    FormErrors::whole(viewer.chrome.t(key).to_owned()),
                ),
                None => {
                    let status = error.status();
                    let mut errors = FormErrors::from_api(lang, error)?;
                    if !errors.of("file").is_empty() {
                        errors = FormErrors::whole(
                            viewer.chrome.t("competitions.error.not_video").to_owned(),
                        );
                    }
                    (status, errors)
                }
            };
            enter_page(&state, &viewer, &id, status, errors, FormData::default()).await
        }
    }
}

#[derive(Template)]
#[template(path = "ui/competitions/entry.html")]
struct EntryPage<'a> {
    c: &'a Chrome,
    competition: CompetitionOut,
    entry: EntryOut,
}

#[derive(Template)]
#[template(path = "ui/competitions/entry_live.html")]
struct EntryLive<'a> {
    c: &'a Chrome,
    competition: CompetitionOut,
    entry: EntryOut,
}

impl EntryLive<'_> {
    fn status_key(&self) -> &'static str {
        status_key(&self.entry)
    }

    fn pending(&self) -> bool {
        pending(&self.entry)
    }

    fn percent(&self) -> i64 {
        percent(&self.entry)
    }
}

fn status_key(entry: &EntryOut) -> &'static str {
    match entry.status.as_str() {
        "queued" => "competitions.status.queued",
        "processing" => "competitions.status.processing",
        "ready" => "competitions.status.ready",
        _ => "competitions.status.failed",
    }
}

/// Still being processed: the fragment is fetched again.
fn pending(entry: &EntryOut) -> bool {
    matches!(entry.status.as_str(), "queued" | "processing")
}

fn percent(entry: &EntryOut) -> i64 {
    (entry.progress * 100.0).round() as i64
}

impl EntryPage<'_> {
    fn status_key(&self) -> &'static str {
        status_key(&self.entry)
    }

    fn pending(&self) -> bool {
        pending(&self.entry)
    }

    fn percent(&self) -> i64 {
        percent(&self.entry)
    }
}

async fn my_entry(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
) -> Result<(CompetitionOut, EntryOut), UiError> {
    let (_, user) = viewer.require()?;
    let competition = load(state, id).await?;
    let entry = entries::of_user(&state.db, competition.id, user.user_id.0)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((
        CompetitionOut::new(&competition, vigia_domain::Timestamp::now()),
        EntryOut::new(entry),
    ))
}

/// `GET /competitions/{id}/entry`: your entry's status (signed in; 404 without one).
pub(super) async fn status(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let (competition, entry) = my_entry(&state, &viewer, &id).await?;
    Ok(render(
        &viewer,
        StatusCode::OK,
        &EntryPage {
            c: &viewer.chrome,
            competition,
            entry,
        },
    ))
}

/// `GET /competitions/{id}/entry/live`: the status fragment alone.
pub(super) async fn live(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let (competition, entry) = my_entry(&state, &viewer, &id).await?;
    Ok(render(
        &viewer,
        StatusCode::OK,
        &EntryLive {
            c: &viewer.chrome,
            competition,
            entry,
        },
    ))
}
