//! Background jobs and schedules: the dead-letter list, retry and cancel, schedules with their
//! run history. Admins only.

use axum::extract::State;

use super::{Routes, op};
use crate::path::Path;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigia_domain::Timestamp;
use vigia_store::StoreError;
use vigia_store::jobs::{self, Job, JobActionError, JobFilter, JobId, JobState};
use vigia_store::page::clamp_limit;
use vigia_store::schedules::{self, Schedule, ScheduleRun};

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Query};
use crate::routes::users::cursor;
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, list_jobs);
    let routes = op!(routes, get_job);
    let routes = op!(routes, retry_job);
    let routes = op!(routes, cancel_job);
    let routes = op!(routes, list_schedules);
    let routes = op!(routes, get_schedule);
    let routes = op!(routes, patch_schedule);
    let routes = op!(routes, run_schedule);
    op!(routes, list_runs)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobOut {
    pub id: i64,
    /// Which handler runs it, e.g. `event.dispatch`.
    pub kind: String,
    pub payload: serde_json::Value,
    /// `queued`, `running`, `failed` (a retry is waiting), `succeeded`, `dead` or `cancelled`.
    pub state: String,
    pub dedup_key: Option<String>,
    pub attempts: u32,
    /// `null`: the workers' configured default.
    pub max_attempts: Option<u32>,
    /// Queued or failed: when it may run next. Running: when its lease expires.
    #[schema(value_type = String, format = DateTime)]
    pub run_at: Timestamp,
    pub last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

impl From<Job> for JobOut {
    fn from(j: Job) -> Self {
        Self {
            id: j.id.0,
            kind: j.kind,
            payload: j.payload,
            state: j.state.as_str().into(),
            dedup_key: j.dedup_key,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: j.run_at,
            last_error: j.last_error,
            created_at: j.created_at,
            updated_at: j.updated_at,
            finished_at: j.finished_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<JobOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// `queued`, `running`, `failed`, `succeeded`, `dead` (the dead-letter list) or `cancelled`.
    #[param(pattern = "^(queued|running|failed|succeeded|dead|cancelled)$")]
    pub state: Option<String>,
    /// A job kind, e.g. `event.dispatch`.
    pub kind: Option<String>,
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub cursor: Option<String>,
    /// Page size; out-of-range values are brought into the endpoint's range.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
}

/// List jobs, newest first, by state and kind.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobQuery), security(("bearer" = [])),
    responses((status = 200, body = JobPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<JobQuery>,
) -> ApiResult<Json<JobPage>> {
    let job_state = q
        .state
        .as_deref()
        .map(|s| JobState::parse(s).map_err(|e| ApiError::field("state", e)))
        .transpose()?;
    let filter = JobFilter {
        state: job_state,
        kind: q.kind.filter(|k| !k.is_empty()),
    };
    let page = jobs::list(
        &state.db,
        &filter,
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    Ok(Json(JobPage {
        items: page.items.into_iter().map(JobOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One job.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", params(("id" = i64, Path, description = "the job's id")), tag = "jobs", security(("bearer" = [])),
    responses((status = 200, body = JobOut), (status = 404, body = Problem)))]
pub async fn get_job(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<JobOut>> {
    Ok(Json(jobs::find(&state.db, JobId(id)).await?.into()))
}

fn action_error(e: JobActionError) -> ApiError {
    match e {
        JobActionError::NotFound => ApiError::NotFound,
        wrong @ JobActionError::WrongState { .. } => ApiError::conflict(wrong.to_string()),
        JobActionError::Store(e) => e.into(),
    }
}

/// Put a dead, failed or cancelled job back in the queue, to run now with its attempts reset.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", params(("id" = i64, Path, description = "the job's id")), tag = "jobs", security(("bearer" = [])),
    responses((status = 200, body = JobOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn retry_job(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<JobOut>> {
    let job = jobs::retry(&state.db, JobId(id), Timestamp::now())
        .await
        .map_err(action_error)?;
    Ok(Json(job.into()))
}

/// Cancel a job that has not started (queued, or failed and waiting for a retry).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", params(("id" = i64, Path, description = "the job's id")), tag = "jobs", security(("bearer" = [])),
    responses((status = 200, body = JobOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel_job(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<JobOut>> {
    let job = jobs::cancel(&state.db, JobId(id), Timestamp::now())
        .await
        .map_err(action_error)?;
    Ok(Json(job.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleOut {
    pub name: String,
    /// The job kind it enqueues.
    pub kind: String,
    /// Cron expression, UTC.
    pub cron: String,
    /// Enabled in the configuration.
    pub configured: bool,
    /// Paused by an admin.
    pub paused: bool,
    /// Runs on its timetable: configured and not paused.
    pub enabled: bool,
    #[schema(value_type = String, format = DateTime)]
    pub next_run_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_run_at: Option<Timestamp>,
}

impl From<Schedule> for ScheduleOut {
    fn from(s: Schedule) -> Self {
        Self {
            enabled: s.enabled && !s.paused,
            name: s.name,
            kind: s.kind,
            cron: s.cron,
            configured: s.enabled,
            paused: s.paused,
            next_run_at: s.next_run_at,
            last_run_at: s.last_run_at.0,
        }
    }
}

/// Pause (`enabled: false`) or resume (`enabled: true`) a schedule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatchIn {
    pub enabled: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleRunOut {
    pub id: i64,
    pub schedule: String,
    /// `cron` or `manual`.
    pub triggered_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_for: Timestamp,
    pub job_id: Option<i64>,
    /// `queued`, `running`, `retrying`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
}

impl From<ScheduleRun> for ScheduleRunOut {
    fn from(r: ScheduleRun) -> Self {
        Self {
            id: r.id,
            schedule: r.schedule,
            triggered_by: r.triggered_by,
            scheduled_for: r.scheduled_for,
            job_id: r.job_id,
            status: r.status,
            started_at: r.started_at.0,
            finished_at: r.finished_at.0,
            duration_ms: r.duration_ms,
            error: r.error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleRunPage {
    pub items: Vec<ScheduleRunOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub cursor: Option<String>,
    /// Page size; out-of-range values are brought into the endpoint's range.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
}

/// List schedules.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "jobs", security(("bearer" = [])),
    responses((status = 200, body = Vec<ScheduleOut>), (status = 403, body = Problem)))]
pub async fn list_schedules(
    State(state): State<AppState>,
    _admin: Admin,
) -> ApiResult<Json<Vec<ScheduleOut>>> {
    let all = schedules::list(&state.db).await?;
    Ok(Json(all.into_iter().map(ScheduleOut::from).collect()))
}

/// One schedule.
#[utoipa::path(get, path = "/api/v1/schedules/{name}", params(("name" = String, Path, description = "the schedule's name")), tag = "jobs", security(("bearer" = [])),
    responses((status = 200, body = ScheduleOut), (status = 404, body = Problem)))]
pub async fn get_schedule(
    State(state): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
) -> ApiResult<Json<ScheduleOut>> {
    Ok(Json(schedules::find(&state.db, &name).await?.into()))
}

/// Pause or resume a schedule; the choice survives restarts.
#[utoipa::path(patch, path = "/api/v1/schedules/{name}", params(("name" = String, Path, description = "the schedule's name")), tag = "jobs", request_body = SchedulePatchIn,
    security(("bearer" = [])),
    responses((status = 200, body = ScheduleOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_schedule(
    State(state): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
    Json(input): Json<SchedulePatchIn>,
) -> ApiResult<Json<ScheduleOut>> {
    let schedule =
        schedules::set_paused(&state.db, &name, !input.enabled, Timestamp::now()).await?;
    Ok(Json(schedule.into()))
}

/// Run a schedule's job now, outside its timetable.
#[utoipa::path(post, path = "/api/v1/schedules/{name}/run", params(("name" = String, Path, description = "the schedule's name")), tag = "jobs", security(("bearer" = [])),
    responses((status = 202, body = ScheduleRunOut), (status = 404, body = Problem)))]
pub async fn run_schedule(
    State(state): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
) -> ApiResult<(axum::http::StatusCode, Json<ScheduleRunOut>)> {
    let run = schedules::run_now(&state.db, &name, Timestamp::now())
        .await
        .map_err(|e| match e {
            StoreError::Duplicate { .. } => ApiError::conflict("that run is already queued"),
            other => other.into(),
        })?;
    Ok((axum::http::StatusCode::ACCEPTED, Json(run.into())))
}

/// A schedule's runs, newest first, with status and duration.
#[utoipa::path(get, path = "/api/v1/schedules/{name}/runs", tag = "jobs", params(("name" = String, Path, description = "the schedule's name"), RunQuery), security(("bearer" = [])),
    responses((status = 200, body = ScheduleRunPage), (status = 404, body = Problem)))]
pub async fn list_runs(
    State(state): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
    Query(q): Query<RunQuery>,
) -> ApiResult<Json<ScheduleRunPage>> {
    schedules::find(&state.db, &name).await?;
    let page = schedules::runs(
        &state.db,
        &name,
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    Ok(Json(ScheduleRunPage {
        items: page.items.into_iter().map(ScheduleRunOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}
