//! `GET /alerts/{id}`: one alert with its facts, the silences in force that match it and its
//! full history; forms acknowledge and resolve it with a note, through the API's own handler
//! (`routes::alerts::move_alert`). `GET /alerts/{id}/live` renders the facts or the history
//! alone, for the page's script to fetch again on `alert.*` events of the `alerts` topic.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vigia_domain::Timestamp;
use vigia_domain::detections::AlertStatus;
use vigia_domain::ids::AlertId;
use vigia_store::detections::alerts;
use vigia_store::detections::rules;

use super::alerts::{AlertRow, Labels, row};
use super::{Fields, Names, Staff, StaffForm, StaffViewer, see_other};
use crate::auth::Auth;
use crate::error::ApiError;
use crate::routes::alerts::{AlertNoteIn, move_alert};
use crate::routes::subjects::department_scope;
use crate::state::AppState;
use crate::ui::{Chrome, UiError, i18n};

/// One entry of the history as the page shows it.
#[derive(Debug, Clone)]
pub struct HistoryView {
    pub what: String,
    pub who: String,
    pub at: String,
    pub at_iso: String,
    pub notes: Option<String>,
}

/// What a refused form comes back with.
#[derive(Debug, Default)]
pub struct Feedback {
    pub done: bool,
    /// Errors by form field (`notes`, or `form` for the whole form).
    pub errors: Vec<(String, String)>,
    /// Which form the errors belong to (`acknowledge` or `resolve`), so the note typed stays.
    pub form: String,
    pub notes: String,
}

impl Feedback {
    pub fn error(&self, form: &str, field: &str) -> Option<&str> {
        if self.form != form {
            return None;
        }
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    pub fn notes_of(&self, form: &str) -> &str {
        if self.form == form { &self.notes } else { "" }
    }
}

#[derive(Template)]
#[template(path = "ui/staff/alert.html", blocks = ["facts", "history_list"])]
struct AlertPage<'a> {
    c: &'a Chrome,
    alert: AlertRow,
    history: Vec<HistoryView>,
    may_acknowledge: bool,
    may_resolve: bool,
    feedback: &'a Feedback,
}

/// The alert's page.
pub async fn detail(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    StaffViewer(viewer): StaffViewer,
) -> Response {
    let feedback = Feedback {
        done: viewer.flag("done=1"),
        ..Feedback::default()
    };
    render_detail(&state, &viewer, id, &feedback, StatusCode::OK, None).await
}

#[derive(serde::Deserialize)]
pub struct LiveQuery {
    part: Option<String>,
}

/// `GET /alerts/{id}/live`: the parts of the alert page that change, fetched again by the
/// page's script on `alert.*` events of the `alerts` topic: its facts (`?part=facts`, the
/// status among them) or its history. Not the forms, so a note being typed stays. The same
/// scope as the page: an alert of another department is "not found".
pub async fn detail_live(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    axum::extract::Query(q): axum::extract::Query<LiveQuery>,
    StaffViewer(viewer): StaffViewer,
) -> Response {
    let part = if q.part.as_deref() == Some("facts") {
        "facts"
    } else {
        "history"
    };
    let feedback = Feedback::default();
    render_detail(&state, &viewer, id, &feedback, StatusCode::OK, Some(part)).await
}

async fn render_detail(
    state: &AppState,
    viewer: &Staff,
    id: i64,
    feedback: &Feedback,
    status: StatusCode,
    part: Option<&str>,
) -> Response {
    let result = async {
        let scope = department_scope(&Auth(viewer.principal.clone()))?;
        let alert = alerts::find(&state.db, AlertId(id)).await?;
        if !scope.includes(alert.department_id) {
            return Err(ApiError::NotFound);
        }
        let history = alerts::history(&state.db, alert.id).await?;
        let names = Names::load(state, viewer.t).await?;
        let labels = Labels::load(state, std::slice::from_ref(&alert)).await?;
        let now = Timestamp::now();
        let silences = rules::list_silences(&state.db, now.millis()).await?;
        let t = viewer.t;
        let page = AlertPage {
            c: viewer.c(),
            may_acknowledge: alert.status.may_become(AlertStatus::Acknowledged),
            may_resolve: alert.status.may_become(AlertStatus::Resolved),
            alert: row(t, &names, &labels, &silences, &alert, now),
            history: history
                .into_iter()
                .map(|h| HistoryView {
                    what: t.t(history_key(&h.action)).to_owned(),
                    who: h.actor,
                    at: t.datetime(h.at),
                    at_iso: h.at.to_rfc3339(),
                    notes: h.notes,
                })
                .collect(),
            feedback,
        };
        Ok::<_, ApiError>(match part {
            None => viewer.render(status, &page),
            Some("facts") => viewer.render(status, &page.as_facts()),
            Some(_) => viewer.render(status, &page.as_history_list()),
        })
    }
    .await;
    result.unwrap_or_else(|e| UiError::from(e).into_response())
}

fn history_key(action: &str) -> &'static str {
    match action {
        "raised" => "alerts.history.raised",
        "acknowledged" => "alerts.history.acknowledged",
        "resolved" => "alerts.history.resolved",
        "incident_opened" => "alerts.history.incident_opened",
        _ => "alerts.history.other",
    }
}

/// `POST /alerts/{id}/acknowledge` and `/resolve`: the API's handler with the form's note;
/// back to the page (303) when it worked, the page with the message by the field when not.
async fn act(state: AppState, id: i64, viewer: Staff, fields: Fields, to: AlertStatus) -> Response {
    let notes = fields
        .get("notes")
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    let form = match to {
        AlertStatus::Acknowledged => "acknowledge",
        _ => "resolve",
    };
    let result = move_alert(
        &state,
        &Auth(viewer.principal.clone()),
        id,
        to,
        Some(AlertNoteIn {
            notes: notes.clone(),
        }),
    )
    .await;
    let mut feedback = Feedback {
        form: form.to_owned(),
        notes: notes.unwrap_or_default(),
        ..Feedback::default()
    };
    let status = match result {
        Ok(_) => return see_other(&format!("/alerts/{id}?done=1")),
        Err(ApiError::Validation(errors)) => {
            feedback.errors = errors
                .into_iter()
                .map(|e| (e.field, i18n::field_message(viewer.t.0, &e.message)))
                .collect();
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(ApiError::Conflict { .. }) => {
            feedback.errors.push((
                "form".into(),
                viewer.t.t("alerts.detail.conflict").to_owned(),
            ));
            StatusCode::CONFLICT
        }
        Err(error) => return UiError::from(error).into_response(),
    };
    render_detail(&state, &viewer, id, &feedback, status, None).await
}

pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    StaffForm(viewer, fields): StaffForm,
) -> Response {
    act(state, id, viewer, fields, AlertStatus::Acknowledged).await
}

pub async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    StaffForm(viewer, fields): StaffForm,
) -> Response {
    act(state, id, viewer, fields, AlertStatus::Resolved).await
}
