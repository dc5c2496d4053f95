//! `/admin/jobs`: background jobs, newest first, filtered by state (the dead-letter list by
//! default) and kind, with retry and cancel buttons; `/admin/schedules`: the schedules (pause,
//! resume, run now) and `/admin/schedules/{name}`: one schedule's recent runs — through
//! `routes::jobs`'s handlers.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vigia_domain::Timestamp;
use vigia_store::jobs::JobKind;

use super::super::form::Errors;
use super::super::{AdminForm, AdminViewer, Opt, Staff, Tr, see_other};
use super::admin_of;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::path::Path;
use crate::routes::jobs::{self as api, JobQuery, RunQuery, ScheduleOut, SchedulePatchIn};
use crate::state::AppState;
use crate::ui::page::urlencode;
use crate::ui::{Chrome, UiError};

const STATES: [&str; 6] = [
    "queued",
    "running",
    "failed",
    "succeeded",
    "dead",
    "cancelled",
];

#[derive(Debug, Default, Deserialize)]
pub struct JobsQuery {
    /// Absent: the dead-letter list; empty: every state.
    pub state: Option<String>,
    pub kind: Option<String>,
    pub cursor: Option<String>,
    pub done: Option<String>,
}

/// One job as the list shows it.
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub state: String,
    pub state_label: String,
    pub attempts: String,
    pub run_at: String,
    pub finished: String,
    pub last_error: String,
    pub retryable: bool,
    pub cancellable: bool,
}

#[derive(Template)]
#[template(path = "ui/staff/admin_jobs.html")]
struct JobsPage<'a> {
    c: &'a Chrome,
    rows: Vec<JobRow>,
    states: Vec<Opt>,
    kinds: Vec<Opt>,
    /// The filters as a query string (`state=dead&kind=`), for links and the forms' way back.
    filters: String,
    state: String,
    kind: String,
    next: Option<String>,
    done: String,
    errors: &'a Errors,
}

fn when(t: Tr, at: Option<Timestamp>) -> String {
    at.map_or_else(|| "—".to_owned(), |at| t.datetime(at))
}

/// The filters of a query: state (`dead` when absent) and kind.
fn filters_of(q: &JobsQuery) -> (String, String) {
    (
        q.state.clone().unwrap_or_else(|| "dead".into()),
        q.kind.clone().unwrap_or_default(),
    )
}

fn filters_query(state: &str, kind: &str) -> String {
    format!("state={}&kind={}", urlencode(state), urlencode(kind))
}

async fn render_jobs(
    state: &AppState,
    viewer: &Staff,
    q: JobsQuery,
    errors: &Errors,
    status: StatusCode,
) -> ApiResult<Response> {
    let t = viewer.t;
    let (job_state, kind) = filters_of(&q);
    let Json(page) = api::list_jobs(
        State(state.clone()),
        admin_of(viewer)?,
        Query(JobQuery {
            state: Some(job_state.clone()).filter(|s| !s.is_empty()),
            kind: Some(kind.clone()).filter(|k| !k.is_empty()),
            cursor: q.cursor.filter(|c| !c.is_empty()),
            limit: Some(50),
        }),
    )
    .await?;
    let rows = page
        .items
        .into_iter()
        .map(|j| JobRow {
            id: j.id,
            state_label: t.t(&format!("staff.job.state_{}", j.state)).to_owned(),
            retryable: matches!(j.state.as_str(), "dead" | "failed" | "cancelled"),
            cancellable: matches!(j.state.as_str(), "queued" | "failed"),
            kind: j.kind,
            state: j.state,
            attempts: match j.max_attempts {
                Some(max) => format!("{} / {max}", j.attempts),
                None => j.attempts.to_string(),
            },
            // A finished job runs no more: its `run_at` is history.
            run_at: if j.finished_at.is_some() {
                "—".to_owned()
            } else {
                t.datetime(j.run_at)
            },
            finished: when(t, j.finished_at),
            last_error: j.last_error.unwrap_or_default(),
        })
        .collect();
    let states = Opt::list(
        STATES.iter().map(|s| {
            (
                (*s).to_owned(),
                t.t(&format!("staff.job.state_{s}")).to_owned(),
            )
        }),
        &Some(job_state.clone()),
    );
    let kinds = Opt::list(
        JobKind::ALL
            .iter()
            .map(|k| (k.as_str().to_owned(), k.as_str().to_owned())),
        &Some(kind.clone()),
    );
    let done = match q.done.as_deref() {
        Some("retried") => t.t("staff.job.retried").to_owned(),
        Some("cancelled") => t.t("staff.job.cancelled").to_owned(),
        _ => String::new(),
    };
    let page = JobsPage {
        c: viewer.c(),
        rows,
        states,
        kinds,
        filters: filters_query(&job_state, &kind),
        state: job_state,
        kind,
        next: page.next_cursor,
        done,
        errors,
    };
    Ok(viewer.render(status, &page))
}

pub async fn jobs(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<JobsQuery>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    render_jobs(&state, &viewer, q, &Errors::default(), StatusCode::OK)
        .await
        .unwrap_or_else(|e| UiError::from(e).into_response())
}

/// Retry or cancel: `POST /admin/jobs/{id}/{action}`, back to the list with its filters; a
/// job in the wrong state for it (409) is told above the list.
pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(i64, String)>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let q = JobsQuery {
        state: Some(form.text("state")),
        kind: Some(form.text("kind")),
        cursor: None,
        done: None,
    };
    let result = async {
        let admin = admin_of(&viewer)?;
        match action.as_str() {
            "retry" => api::retry_job(State(state.clone()), admin, Path(id)).await,
            "cancel" => api::cancel_job(State(state.clone()), admin, Path(id)).await,
            _ => Err(ApiError::NotFound),
        }
    }
    .await;
    match result {
        Ok(_) => {
            let (job_state, kind) = filters_of(&q);
            let done = if action == "retry" {
                "retried"
            } else {
                "cancelled"
            };
            see_other(&format!(
                "/admin/jobs?{}&done={done}",
                filters_query(&job_state, &kind)
            ))
        }
        Err(error @ ApiError::Conflict { .. }) => {
            let errors = Errors::of(viewer.t.0, &error);
            render_jobs(&state, &viewer, q, &errors, StatusCode::CONFLICT)
                .await
                .unwrap_or_else(|e| UiError::from(e).into_response())
        }
        Err(error) => UiError::from(error).into_response(),
    }
}

// --- schedules ---------------------------------------------------------------------------------

/// One schedule as the pages show it.
pub struct ScheduleRow {
    pub name: String,
    pub path: String,
    pub kind: String,
    pub cron: String,
    pub configured: bool,
    pub paused: bool,
    pub state_label: String,
    pub next_run: String,
    pub last_run: String,
}

fn schedule_row(t: Tr, s: ScheduleOut) -> ScheduleRow {
    let state = if !s.configured {
        "off"
    } else if s.paused {
        "paused"
    } else {
        "active"
    };
    ScheduleRow {
        path: format!("/admin/schedules/{}", urlencode(&s.name)),
        state_label: t.t(&format!("staff.schedule.{state}")).to_owned(),
        next_run: if s.enabled {
            t.datetime(s.next_run_at)
        } else {
            "—".to_owned()
        },
        last_run: when(t, s.last_run_at),
        name: s.name,
        kind: s.kind,
        cron: s.cron,
        configured: s.configured,
        paused: s.paused,
    }
}

#[derive(Template)]
#[template(path = "ui/staff/admin_schedules.html")]
struct SchedulesPage<'a> {
    c: &'a Chrome,
    rows: Vec<ScheduleRow>,
    saved: bool,
}

pub async fn schedules(
    State(state): State<AppState>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    let result = async {
        let Json(list) = api::list_schedules(State(state.clone()), admin_of(&viewer)?).await?;
        let page = SchedulesPage {
            c: viewer.c(),
            rows: list
                .into_iter()
                .map(|s| schedule_row(viewer.t, s))
                .collect(),
            saved: viewer.flag("saved=1"),
        };
        ApiResult::<Response>::Ok(viewer.render(StatusCode::OK, &page))
    }
    .await;
    result.unwrap_or_else(|e| UiError::from(e).into_response())
}

/// One run of a schedule.
pub struct RunRow {
    pub triggered_by: String,
    pub scheduled_for: String,
    pub status: String,
    pub status_label: String,
    pub started: String,
    pub finished: String,
    pub duration: String,
    pub error: String,
    pub job_id: Option<i64>,
}

#[derive(Template)]
#[template(path = "ui/staff/admin_schedule.html")]
struct SchedulePage<'a> {
    c: &'a Chrome,
    s: ScheduleRow,
    runs: Vec<RunRow>,
    next: Option<String>,
    saved: bool,
    ran: bool,
    errors: &'a Errors,
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    pub cursor: Option<String>,
}

async fn render_schedule(
    state: &AppState,
    viewer: &Staff,
    name: String,
    cursor: Option<String>,
    errors: &Errors,
    status: StatusCode,
) -> ApiResult<Response> {
    let t = viewer.t;
    let Json(s) =
        api::get_schedule(State(state.clone()), admin_of(viewer)?, Path(name.clone())).await?;
    let Json(runs) = api::list_runs(
        State(state.clone()),
        admin_of(viewer)?,
        Path(name),
        Query(RunQuery {
            cursor: cursor.filter(|c| !c.is_empty()),
            limit: Some(25),
        }),
    )
    .await?;
    let page = SchedulePage {
        c: viewer.c(),
        s: schedule_row(t, s),
        next: runs.next_cursor,
        runs: runs_rows(t, runs.items),
        saved: viewer.flag("saved=1"),
        ran: viewer.flag("ran=1"),
        errors,
    };
    Ok(viewer.render(status, &page))
}

fn runs_rows(t: Tr, items: Vec<api::ScheduleRunOut>) -> Vec<RunRow> {
    items
        .into_iter()
        .map(|r| RunRow {
            triggered_by: t
                .t(&format!("staff.schedule.by_{}", r.triggered_by))
                .to_owned(),
            scheduled_for: t.datetime(r.scheduled_for),
            status_label: t.t(&format!("staff.schedule.run_{}", r.status)).to_owned(),
            status: r.status,
            started: when(t, r.started_at),
            finished: when(t, r.finished_at),
            duration: r
                .duration_ms
                .map_or_else(|| "—".to_owned(), |ms| format!("{ms} ms")),
            error: r.error.unwrap_or_default(),
            job_id: r.job_id,
        })
        .collect()
}

pub async fn schedule(
    State(state): State<AppState>,
    Path(name): Path<String>,
    axum::extract::Query(q): axum::extract::Query<HistoryQuery>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    render_schedule(
        &state,
        &viewer,
        name,
        q.cursor,
        &Errors::default(),
        StatusCode::OK,
    )
    .await
    .unwrap_or_else(|e| UiError::from(e).into_response())
}

/// Pause or resume (`PATCH /api/v1/schedules/{name}`), back to where the form was.
pub async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let enabled = form.get("enabled").as_deref() == Some("1");
    let result = async {
        api::patch_schedule(
            State(state.clone()),
            admin_of(&viewer)?,
            Path(name.clone()),
            Json(SchedulePatchIn { enabled }),
        )
        .await
    }
    .await;
    match result {
        Ok(_) if form.get("back").as_deref() == Some("one") => {
            see_other(&format!("/admin/schedules/{}?saved=1", urlencode(&name)))
        }
        Ok(_) => see_other("/admin/schedules?saved=1"),
        Err(error) => UiError::from(error).into_response(),
    }
}

/// Runs a schedule's job now (`POST /api/v1/schedules/{name}/run`); its history page follows.
pub async fn run(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AdminForm(viewer, _): AdminForm,
) -> Response {
    let result = async {
        api::run_schedule(State(state.clone()), admin_of(&viewer)?, Path(name.clone())).await
    }
    .await;
    match result {
        Ok(_) => see_other(&format!("/admin/schedules/{}?ran=1", urlencode(&name))),
        Err(error @ ApiError::Conflict { .. }) => {
            let errors = Errors::of(viewer.t.0, &error);
            render_schedule(&state, &viewer, name, None, &errors, StatusCode::CONFLICT)
                .await
                .unwrap_or_else(|e| UiError::from(e).into_response())
        }
        Err(error) => UiError::from(error).into_response(),
    }
}
