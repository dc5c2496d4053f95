//! `GET /proctoring/exams/{id}`: an exam, its participants with their latest status, a form
//! that adds a participant (admins, `routes::proctoring::add_participant`) and, on each
//! participant, a file form that enrolls the reference photo through
//! `routes::proctoring::enroll_reference`. A photo the API refuses (no face, two faces, a face
//! too small or blurry, not an image) comes back as the page with the reason next to that
//! participant's file field, in the viewer's language, and nothing stored.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vigia_domain::Timestamp;

use super::{auth_of, refusal, status_label};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::path::Path;
use crate::routes::proctoring::{self as api, ExamOut, ParticipantIn};
use crate::state::AppState;
use crate::ui::staff::admin::admin_of;
use crate::ui::staff::form::{Errors, settle, shown};
use crate::ui::staff::{AdminForm, Fields, Names, Staff, StaffViewer, see_other};
use crate::ui::{Chrome, UiError};

pub struct ParticipantRow {
    pub id: i64,
    pub external_id: String,
    pub name: String,
    pub enrolled: bool,
    /// Why the latest reference placed in storage was refused, in the viewer's language.
    pub refused: Option<String>,
    pub status: Option<String>,
    pub status_label: String,
    pub alerts: i64,
    /// The refusal of the photo just sent for this participant.
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/proctoring/exam.html")]
struct ExamPage<'a> {
    c: &'a Chrome,
    exam: ExamOut,
    department: String,
    category: String,
    starts: String,
    ends: String,
    rows: Vec<ParticipantRow>,
    admin: bool,
    form: &'a Fields,
    errors: &'a Errors,
    saved: bool,
}

/// What a page shows after a post: the add form's errors, or a refused photo's participant and
/// message.
#[derive(Default)]
struct Outcome {
    form: Fields,
    errors: Errors,
    refused: Option<(i64, String)>,
}

async fn render(
    state: &AppState,
    viewer: &Staff,
    id: i64,
    outcome: &Outcome,
    status: StatusCode,
) -> ApiResult<Response> {
    let t = viewer.t;
    let names = Names::load(state, t).await?;
    let Json(exam) = api::get_exam(State(state.clone()), auth_of(viewer), Path(id)).await?;
    let Json(participants) =
        api::list_participants(State(state.clone()), auth_of(viewer), Path(id)).await?;
    let when = |raw: &str| {
        Timestamp::parse_rfc3339(raw).map_or_else(|| raw.to_owned(), |at| t.datetime(at))
    };
    let rows = participants
        .into_iter()
        .map(|p| ParticipantRow {
            error: outcome
                .refused
                .as_ref()
                .filter(|(who, _)| *who == p.id)
                .map(|(_, m)| m.clone()),
            status_label: p
                .last_status
                .as_deref()
                .map_or_else(|| "—".to_owned(), |s| status_label(t.0, s)),
            id: p.id,
            external_id: p.external_id,
            name: p.name,
            enrolled: p.enrolled,
            refused: p.reference_refused.as_deref().map(|m| refusal(t.0, m)),
            status: p.last_status,
            alerts: p.consecutive_alerts,
        })
        .collect();
    let page = ExamPage {
        c: viewer.c(),
        department: names.department(exam.department_id).map_or_else(
            || t.t("proctoring.exam.department_default").to_owned(),
            str::to_owned,
        ),
        category: names.category(exam.category_id),
        starts: when(&exam.starts_at),
        ends: when(&exam.ends_at),
        exam,
        rows,
        admin: viewer.is_admin(),
        form: &outcome.form,
        errors: &outcome.errors,
        saved: viewer.flag("saved=1"),
    };
    Ok(viewer.render(status, &page))
}

pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    StaffViewer(viewer): StaffViewer,
) -> Response {
    shown(render(&state, &viewer, id, &Outcome::default(), StatusCode::OK).await)
}

/// `POST /proctoring/exams/{id}/participants` (admins).
pub async fn add(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let input = ParticipantIn {
        external_id: form.text("external_id"),
        name: form.text("name"),
    };
    let result = match admin_of(&viewer) {
        Ok(admin) => api::add_participant(State(state.clone()), admin, Path(id), Json(input)).await,
        Err(error) => Err(error),
    };
    let next = |_| format!("/proctoring/exams/{id}?saved=1");
    settle(&viewer, result, next, async |errors, status| {
        // The API's conflict is about the participant's id: show it there.
        let errors = if status == StatusCode::CONFLICT {
            errors.all_on("external_id")
        } else {
            errors
        };
        let outcome = Outcome {
            form,
            errors,
            refused: None,
        };
        render(&state, &viewer, id, &outcome, status).await
    })
    .await
}

/// The file and the CSRF token of an enrollment form.
async fn read_photo(mut multipart: Multipart, limit: usize) -> Result<(String, Bytes), UiError> {
    let unreadable = |_| UiError::Api(ApiError::bad_request("cannot read the form"));
    let mut csrf = String::new();
    let mut photo = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name().unwrap_or_default() {
            "photo" => {
                while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
                    if photo.len() + chunk.len() > limit {
                        return Err(ApiError::PayloadTooLarge { limit }.into());
                    }
                    photo.extend_from_slice(&chunk);
                }
            }
            "csrf" => csrf = field.text().await.map_err(unreadable)?,
            _ => {}
        }
    }
    Ok((csrf, Bytes::from(photo)))
}

/// `POST /proctoring/exams/{id}/participants/{participant}/reference`: the photo of a file
/// form, enrolled as the API's `PUT .../reference` does.
pub async fn enroll(
    State(state): State<AppState>,
    Path((id, participant)): Path<(i64, i64)>,
    StaffViewer(viewer): StaffViewer,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let multipart = match multipart {
        Ok(m) => m,
        Err(_) => {
            return UiError::Api(ApiError::bad_request("send the form as multipart"))
                .into_response();
        }
    };
    let (csrf, photo) = match read_photo(multipart, state.config.max_upload_bytes).await {
        Ok(read) => read,
        Err(error) => return error.into_response(),
    };
    if let Err(error) = viewer.ui.check_csrf(Some(&csrf)) {
        return error.into_response();
    }
    let result = if photo.is_empty() {
        Err(ApiError::field(
            "reference",
            "image_unreadable: no file was chosen",
        ))
    } else {
        api::enroll_reference(
            State(state.clone()),
            auth_of(&viewer),
            Path((id, participant)),
            photo,
        )
        .await
        .map(|_| ())
    };
    match result {
        Ok(()) => see_other(&format!("/proctoring/exams/{id}?saved=1")),
        Err(ApiError::Validation(errors)) => {
            let message = errors
                .iter()
                .find(|e| e.field == "reference")
                .or(errors.first())
                .map(|e| refusal(viewer.t.0, &e.message))
                .unwrap_or_default();
            let outcome = Outcome {
                refused: Some((participant, message)),
                ..Outcome::default()
            };
            render(
                &state,
                &viewer,
                id,
                &outcome,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
            .unwrap_or_else(|e| UiError::from(e).into_response())
        }
        Err(error) => UiError::from(error).into_response(),
    }
}
