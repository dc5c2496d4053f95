//! Reports and exports.
//!
//! Who sees what: admins see and run every report. Staff (and API keys with `reports:read`)
//! see the incident reports of their departments, and get custom reports over their
//! departments' incidents; global reports, which count every department, are for admins.
//! Exports are scoped exactly like the incident list: anyone signed in exports what they may
//! list, with people hidden on others' public incidents and internal events only for the
//! incident's staff.

use axum::body::Body;
use axum::extract::{RawQuery, State};

use super::attachments::FileBytes;
use super::{Routes, op};
use crate::path::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigia_domain::Timestamp;
use vigia_domain::auth::Principal;
use vigia_domain::ids::{DepartmentId, IncidentId};
use vigia_domain::incidents::ReadScope;
use vigia_reports::export::{Export, ExportKind};
use vigia_reports::{Format, Period, custom, global};
use vigia_store::page::clamp_limit;
use vigia_store::reports::{self, Dimension, ReportFilter, ReportKind, ReportRecord, ReportScope};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Query, parse_query};
use crate::routes::incidents::{IncidentQuery, filter};
use crate::routes::users::cursor;
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, list);
    let routes = op!(routes, run);
    let routes = op!(routes, custom_report);
    let routes = op!(routes, find);
    let routes = op!(routes, download);
    let routes = op!(routes, incident_report);
    let routes = op!(routes, export_incidents);
    op!(routes, export_events)
}

/// How long the default period of `POST /reports/run` is, in minutes (the scheduler's window).
const DEFAULT_WINDOW_MINUTES: i64 = 15;
/// The most dimensions a custom report groups by.
const MAX_GROUP_BY: usize = 3;

mod wire;

pub use wire::{IncidentReportOut, ReportFileOut, ReportOut, ReportPage};

// --- scope -------------------------------------------------------------------------------------

/// The reports a caller may see (staff and keys: their departments' incident reports).
fn report_scope(auth: &Auth) -> ApiResult<ReportScope> {
    auth.require_staff()?;
    Ok(match &auth.0 {
        Principal::User(u) if u.role == vigia_domain::users::Role::Admin => ReportScope::All,
        Principal::User(u) => ReportScope::Departments(u.departments.clone()),
        Principal::ApiKey(k) => ReportScope::Departments(k.departments.clone()),
    })
}

/// The departments a caller's aggregates count: `None` for all (admins).
fn counted_departments(auth: &Auth) -> ApiResult<Option<Vec<DepartmentId>>> {
    Ok(match report_scope(auth)? {
        ReportScope::All => None,
        ReportScope::Departments(d) => Some(d),
    })
}

// --- list, get, download -----------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `global`, `incident`, `custom`, `detections` or `competition` (the detection window reports).
    #[param(pattern = "^(global|incident|custom|detections|competition)$")]
    pub kind: Option<String>,
    pub incident: Option<i64>,
    pub department: Option<i64>,
    /// Reports whose period ends at or after this.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// Reports whose period ends before this.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub cursor: Option<String>,
    /// Page size; out-of-range values are brought into the endpoint's range.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
}

/// Reports, newest first (admins: all; staff: their departments' incident reports).
#[utoipa::path(get, path = "/api/v1/reports", operation_id = "list_reports", tag = "reports", params(ReportQuery), security(("bearer" = [])),
    responses((status = 200, body = ReportPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<ReportPage>> {
    let scope = report_scope(&auth)?;
    let kind = q
        .kind
        .as_deref()
        .map(|k| {
            ReportKind::parse(k).ok_or_else(|| {
                ApiError::field(
                    "kind",
                    "must be global, incident, custom, detections or competition",
                )
            })
        })
        .transpose()?;
    let filter = ReportFilter {
        kind,
        incident: q.incident.map(IncidentId),
        department: q.department.map(DepartmentId),
        period_from: q.from,
        period_to: q.to,
    };
    let page = reports::list(
        &state.db,
        &scope,
        &filter,
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    Ok(Json(ReportPage {
        items: page.items.into_iter().map(ReportOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn load(state: &AppState, auth: &Auth, raw: &str) -> ApiResult<ReportRecord> {
    let scope = report_scope(auth)?;
    let id = raw.parse::<i64>().map_err(|_| ApiError::NotFound)?;
    Ok(reports::find(&state.db, &scope, id).await?)
}

/// One report.
#[utoipa::path(get, path = "/api/v1/reports/{id}", operation_id = "find_report", tag = "reports", security(("bearer" = [])),
    params(("id" = i64, Path, description = "the report's id")),
    responses((status = 200, body = ReportOut), (status = 404, body = Problem)))]
pub(crate) async fn find(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ReportOut>> {
    Ok(Json(load(&state, &auth, &id).await?.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// `json` (default), `csv` or `xlsx`.
    #[param(pattern = "^(json|csv|xlsx)$")]
    pub format: Option<String>,
}

fn parse_format(raw: Option<&str>, default: Format, allowed: &[Format]) -> ApiResult<Format> {
    let names: Vec<&str> = allowed.iter().map(|f| f.as_str()).collect();
    match raw {
        None => Ok(default),
        Some(raw) => Format::parse(raw)
            .filter(|f| allowed.contains(f))
            .ok_or_else(|| {
                ApiError::field("format", format!("must be one of {}", names.join(", ")))
            }),
    }
}

fn file_headers(format: Format, name: &str) -> [(header::HeaderName, HeaderValue); 4] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        ),
        (
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                .unwrap_or(HeaderValue::from_static("attachment")),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("private")),
    ]
}

/// A report's file, streamed from object storage (404 if the report has no file in that
/// format).
#[utoipa::path(get, path = "/api/v1/reports/{id}/download", operation_id = "download_report", tag = "reports", security(("bearer" = [])),
    params(("id" = i64, Path, description = "the report's id"), DownloadQuery),
    responses((status = 200, description = "the file", content(
        (serde_json::Value = "application/json"), (FileBytes = "text/csv; charset=utf-8"), (FileBytes = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn download(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> ApiResult<Response> {
    let format = parse_format(
        q.format.as_deref(),
        Format::Json,
        &[Format::Json, Format::Csv, Format::Xlsx],
    )?;
    let report = load(&state, &auth, &id).await?;
    stream_file(&state, &report, format).await
}

/// The report of one incident (written when it is routed to a department, or here if that job
/// has not run yet), streamed as JSON: the newest of the caller's departments' reports of it
/// (e-mails carry a signed link of their own, see `report_links`). 404 when the incident has
/// no department or the caller may not see it.
#[utoipa::path(get, path = "/api/v1/incidents/{id}/report", tag = "reports", security(("bearer" = [])),
    params(("id" = i64, Path, description = "the incident's number")),
    responses((status = 200, description = "the report", body = IncidentReportOut),
        (status = 404, body = Problem)))]
async fn incident_report(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let scope = report_scope(&auth)?;
    let incident = id.parse::<i64>().map_err(|_| ApiError::NotFound)?;
    let filter = ReportFilter {
        kind: Some(ReportKind::Incident),
        incident: Some(IncidentId(incident)),
        ..ReportFilter::default()
    };
    let page = reports::list(&state.db, &scope, &filter, None, 1).await?;
    let report = match page.items.into_iter().next() {
        Some(report) => report,
        None => {
            // Not written yet (its `report.incident` job has not run): written now for the
            // incident's department, if the caller may read the incident at all; the scope
            // below still decides whether they may read that department's report.
            let id = IncidentId(incident);
            vigia_store::incidents::find(&state.db, &ReadScope::of(&auth.0), id).await?;
            let label = auth.0.label();
            vigia_reports::incident::run(&state.db, &state.objects, id, None, &label)
                .await
                .map_err(ApiError::Internal)?;
            let page = reports::list(&state.db, &scope, &filter, None, 1).await?;
            page.items.into_iter().next().ok_or(ApiError::NotFound)?
        }
    };
    stream_file(&state, &report, Format::Json).await
}

/// Streams one of `report`'s files from object storage.
pub(crate) async fn stream_file(
    state: &AppState,
    report: &ReportRecord,
    format: Format,
) -> ApiResult<Response> {
    let key = report.object(format.as_str()).ok_or(ApiError::NotFound)?;
    let key = vigia_store::ObjectKey::parse(key).map_err(ApiError::Internal)?;
    let (size, stream) = state
        .objects
        .stream(&key)
        .await
        .map_err(ApiError::Internal)?
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("object {key} is missing from storage"))
        })?;
    let name = key
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or("report")
        .to_owned();
    let mut response = (file_headers(format, &name), Body::from_stream(stream)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    Ok(response)
}

// --- run now -----------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunIn {
    /// Start of the period (inclusive, truncated to the minute). Default: 15 minutes before `to`.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// End of the period (exclusive, truncated to the minute). Default: the last complete
    /// quarter hour (or now, when `from` is given).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    /// Files besides JSON: `csv`, `xlsx` (default both).
    pub formats: Option<Vec<String>>,
}

/// Generate the global report of a period now (admins). Running it again for a period ending
/// at the same minute replaces the same report and files.
#[utoipa::path(post, path = "/api/v1/reports/run", tag = "reports", request_body = RunIn, security(("bearer" = [])),
    responses((status = 200, body = ReportOut), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn run(
    State(state): State<AppState>,
    auth: Auth,
    Json(input): Json<RunIn>,
) -> ApiResult<Json<ReportOut>> {
    auth.require_admin()?;
    let now = Timestamp::now();
    let period = match (input.from, input.to) {
        (None, None) => Period::window_before(now, DEFAULT_WINDOW_MINUTES),
        (from, to) => {
            let to = to.unwrap_or(now);
            let from = from.unwrap_or(to.plus_seconds(-DEFAULT_WINDOW_MINUTES * 60));
            Period::new(from, to).map_err(|e| ApiError::field("from", e.to_string()))?
        }
    };
    let formats = match &input.formats {
        None => vec![Format::Csv, Format::Xlsx],
        Some(names) => names
            .iter()
            .map(|n| {
                Format::parse(n)
                    .filter(|f| matches!(f, Format::Json | Format::Csv | Format::Xlsx))
                    .ok_or_else(|| ApiError::field("formats", "each must be json, csv or xlsx"))
            })
            .collect::<ApiResult<_>>()?,
    };
    let record = global::run(&state.db, &state.objects, period, &formats, &auth.0.label())
        .await
        .map_err(ApiError::Internal)?;
    Ok(Json(record.into()))
}

// --- custom ------------------------------------------------------------------------------------

/// A dimension a custom report groups by.
#[derive(ToSchema)]
#[schema(value_type = String, pattern = "^(status|urgency|category|department|zone|assignee|source|day)$")]
#[allow(dead_code)]
pub struct GroupBy(String);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomIn {
    /// The incident list's filters, same names and forms (e.g. `{"status": "new,acknowledged",
    /// "created_from": "2026-11-01T00:00:00Z"}`).
    #[schema(value_type = Option<Object>)]
    pub filters: Option<serde_json::Value>,
    /// Up to three of `status`, `urgency`, `category`, `department`, `zone`, `assignee`,
    /// `source`, `day`, each named once.
    #[schema(value_type = Vec<GroupBy>, min_items = 1, max_items = 3)]
    pub group_by: Vec<String>,
    /// `json` (default: rows in the response), `csv` or `xlsx` (a file).
    pub format: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CustomRowOut {
    /// One per `group_by` dimension, in order (`null`: no department, zone or assignee).
    pub keys: Vec<Option<String>>,
    pub count: i64,
    pub mean_time_to_acknowledge_secs: Option<f64>,
    pub mean_time_to_resolve_secs: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CustomOut {
    pub group_by: Vec<String>,
    pub rows: Vec<CustomRowOut>,
    pub total: i64,
    /// True when there were more groups than returned (10,000).
    pub truncated: bool,
}

/// Counts and mean times of the incidents matching the list filters, grouped by up to three
/// dimensions (staff: their departments' incidents; admins: all). As rows, or a CSV/XLSX file.
#[utoipa::path(post, path = "/api/v1/reports/custom", tag = "reports", request_body = CustomIn, security(("bearer" = [])),
    responses((status = 200, description = "the rows (`json`), or a file (`csv`, `xlsx`)", content(
        (CustomOut = "application/json"), (FileBytes = "text/csv; charset=utf-8"),
        (FileBytes = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn custom_report(
    State(state): State<AppState>,
    auth: Auth,
    Json(input): Json<CustomIn>,
) -> ApiResult<Response> {
    let departments = counted_departments(&auth)?;
    let format = parse_format(
        input.format.as_deref(),
        Format::Json,
        &[Format::Json, Format::Csv, Format::Xlsx],
    )?;
    if input.group_by.is_empty() || input.group_by.len() > MAX_GROUP_BY {
        return Err(ApiError::field(
            "group_by",
            format!("name 1 to {MAX_GROUP_BY} dimensions"),
        ));
    }
    let mut dimensions = Vec::new();
    for name in &input.group_by {
        let d = Dimension::parse(name).ok_or_else(|| {
            ApiError::field(
                "group_by",
                format!(
                    "{name:?} is not one of status, urgency, category, department, zone, assignee, source, day"
                ),
            )
        })?;
        if dimensions.contains(&d) {
            return Err(ApiError::field(
                "group_by",
                format!("{name:?} is named twice"),
            ));
        }
        dimensions.push(d);
    }
    let query: IncidentQuery = match input.filters {
        None => parse_query("")?,
        Some(value) => {
            let bytes = serde_json::to_vec(&value).map_err(|e| ApiError::Internal(e.into()))?;
            crate::extract::parse_json::<IncidentQuery>(&bytes).map_err(|e| match e {
                ApiError::Validation(mut errors) => {
                    for error in &mut errors {
                        error.field = format!("filters.{}", error.field);
                    }
                    ApiError::Validation(errors)
                }
                other => other,
            })?
        }
    };
    let filter = filter(&query)?;
    let report = custom::run(&state.db, departments.as_deref(), &filter, &dimensions)
        .await
        .map_err(ApiError::Internal)?;
    if format != Format::Json {
        let bytes = custom::render(&report, format).map_err(ApiError::Internal)?;
        let name = format!(
            "custom_{}.{}",
            vigia_reports::key_time(Timestamp::now()),
            format.extension()
        );
        return Ok((file_headers(format, &name), bytes).into_response());
    }
    Ok(Json(CustomOut {
        group_by: report.group_by.iter().map(|g| (*g).to_owned()).collect(),
        rows: report
            .rows
            .into_iter()
            .map(|r| CustomRowOut {
                keys: r.keys,
                count: r.count,
                mean_time_to_acknowledge_secs: r.mean_time_to_acknowledge_secs,
                mean_time_to_resolve_secs: r.mean_time_to_resolve_secs,
            })
            .collect(),
        total: report.total,
        truncated: report.truncated,
    })
    .into_response())
}

// --- exports -----------------------------------------------------------------------------------

/// Splits `format` off a raw query string; the rest is parsed as the incident list's filters.
fn export_request(raw: Option<&str>) -> ApiResult<(Format, IncidentQuery)> {
    let raw = raw.unwrap_or_default();
    let mut format = None;
    let mut rest = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        if name == "format" {
            format = Some(value.into_owned());
        } else {
            rest.append_pair(&name, &value);
        }
    }
    let format = parse_format(
        format.as_deref(),
        Format::Csv,
        &[Format::Ndjson, Format::Csv, Format::Xlsx],
    )?;
    let query: IncidentQuery = parse_query(&rest.finish())?;
    // The list's parameters are checked as the list checks them (the export streams every page).
    cursor(query.cursor.as_deref())?;
    Ok((format, query))
}

async fn export(
    state: AppState,
    auth: Auth,
    raw: Option<String>,
    kind: ExportKind,
) -> ApiResult<Response> {
    let (format, query) = export_request(raw.as_deref())?;
    let export = Export {
        kind,
        format,
        scope: ReadScope::of(&auth.0),
        viewer: Some(auth.0.clone()),
        filter: filter(&query)?,
    };
    let name = format!(
        "{}_{}.{}",
        kind.as_str(),
        vigia_reports::key_time(Timestamp::now()),
        format.extension()
    );
    let body = Body::from_stream(vigia_reports::export::stream(state.db.clone(), export));
    Ok((file_headers(format, &name), body).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ExportFormat {
    /// `csv` (default), `ndjson` or `xlsx`.
    #[param(pattern = "^(csv|ndjson|xlsx)$")]
    pub format: Option<String>,
}

/// The incidents the caller may list, with the list's filters, as one streamed file (memory
/// stays flat however many rows). People are hidden on others' public incidents.
#[utoipa::path(get, path = "/api/v1/exports/incidents", tag = "reports", params(ExportFormat, IncidentQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "the file", content(
        (FileBytes = "text/csv; charset=utf-8"), (FileBytes = "application/x-ndjson"), (FileBytes = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn export_incidents(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    export(state, auth, raw, ExportKind::Incidents).await
}

/// The history of the incidents the caller may list (same filters), oldest event first, as
/// one streamed file. Internal events only for the incident's staff and admins.
#[utoipa::path(get, path = "/api/v1/exports/events", tag = "reports", params(ExportFormat, IncidentQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "the file", content(
        (FileBytes = "text/csv; charset=utf-8"), (FileBytes = "application/x-ndjson"), (FileBytes = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn export_events(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    export(state, auth, raw, ExportKind::Events).await
}

/// The incident list's filters from a query string (`status=new&zone=3`), for the CLI's
/// `--filter`: the same names, forms and checks as the API. The error lists every bad field.
pub fn parse_filter(raw: &str) -> Result<vigia_store::incidents::IncidentFilter, String> {
    let explain = |error: ApiError| match error {
        ApiError::Validation(errors) => errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    };
    let query: IncidentQuery = parse_query(raw).map_err(explain)?;
    filter(&query).map_err(explain)
}
