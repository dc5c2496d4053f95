//! `/reports`: the reports the viewer may see (admins: all; staff: their departments'
//! incident reports), newest first, each with its files to download (the API's
//! `/api/v1/reports/{id}/download`, which the session cookie opens); `/reports/{id}`: one
//! report as a page (its period and headline figures); `POST /reports/run` (admins): the
//! global report of the last quarter hour now — through `routes::reports::{list, find, run}`.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::custom_report::CustomView;
use super::{AdminForm, Fields, Staff, StaffViewer, see_other};
use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::path::Path;
use crate::routes::reports::{self as api, ReportOut, ReportQuery, RunIn};
use crate::state::AppState;
use crate::ui::{Chrome, UiError};

pub struct ReportRow {
    pub id: i64,
    pub kind: String,
    pub period: String,
    pub created: String,
    pub files: Vec<(String, String)>,
}

fn row(viewer: &Staff, r: &ReportOut) -> ReportRow {
    let t = viewer.t;
    let period = match (r.period_start, r.period_end) {
        (Some(from), Some(to)) => format!("{} – {}", t.datetime(from), t.datetime(to)),
        _ => r
            .incident_id
            .map_or_else(String::new, |i| format!("INC-{i:06}")),
    };
    ReportRow {
        id: r.id,
        kind: t.t(&format!("staff.report.kind_{}", r.kind)).to_owned(),
        period,
        created: t.datetime(r.updated_at),
        files: r
            .files
            .iter()
            .map(|f| (f.format.to_uppercase(), f.url.clone()))
            .collect(),
    }
}

#[derive(Template)]
#[template(path = "ui/staff/reports.html")]
struct ReportsPage<'a> {
    c: &'a Chrome,
    rows: Vec<ReportRow>,
    admin: bool,
    custom: &'a CustomView,
}

pub async fn page(State(state): State<AppState>, StaffViewer(viewer): StaffViewer) -> Response {
    let custom = match CustomView::new(&state, &viewer, &Fields::default()).await {
        Ok(custom) => custom,
        Err(error) => return UiError::from(error).into_response(),
    };
    render_page(&state, &viewer, &custom, StatusCode::OK).await
}

/// The reports page: the list, the run button (admins) and the custom report form with its
/// result, if any.
pub async fn render_page(
    state: &AppState,
    viewer: &Staff,
    custom: &CustomView,
    status: StatusCode,
) -> Response {
    let result = async {
        let Json(page) = api::list(
            State(state.clone()),
            Auth(viewer.principal.clone()),
            Query(ReportQuery {
                kind: None,
                incident: None,
                department: None,
                from: None,
                to: None,
                cursor: None,
                limit: Some(50),
            }),
        )
        .await?;
        ApiResult::<Response>::Ok(viewer.render(
            status,
            &ReportsPage {
                c: viewer.c(),
                rows: page.items.iter().map(|r| row(viewer, r)).collect(),
                admin: viewer.is_admin(),
                custom,
            },
        ))
    }
    .await;
    result.unwrap_or_else(|e| UiError::from(e).into_response())
}

#[derive(Template)]
#[template(path = "ui/staff/report.html")]
struct ReportPage<'a> {
    c: &'a Chrome,
    r: ReportRow,
    ran: bool,
    figures: Vec<(String, String)>,
}

/// The summary's values as `path: value` lines (`totals.created: 12`).
fn figures(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                figures(&path, v, out);
            }
        }
        serde_json::Value::Array(items) if items.iter().all(|i| !i.is_object()) => out.push((
            prefix.to_owned(),
            items
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )),
        serde_json::Value::Array(items) => {
            for (n, item) in items.iter().enumerate() {
                figures(&format!("{prefix}[{}]", n + 1), item, out);
            }
        }
        serde_json::Value::Null => out.push((prefix.to_owned(), "—".to_owned())),
        serde_json::Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

pub async fn report(
    State(state): State<AppState>,
    Path(id): Path<String>,
    StaffViewer(viewer): StaffViewer,
) -> Response {
    match api::find(
        State(state.clone()),
        Auth(viewer.principal.clone()),
        Path(id),
    )
    .await
    {
        Ok(Json(r)) => {
            let mut out = Vec::new();
            figures("", &r.summary, &mut out);
            viewer.render(
                StatusCode::OK,
                &ReportPage {
                    c: viewer.c(),
                    r: row(&viewer, &r),
                    ran: viewer.flag("ran=1"),
                    figures: out,
                },
            )
        }
        Err(error) => UiError::from(error).into_response(),
    }
}

/// Runs the global report of the last quarter hour (admins; the API checks it).
pub async fn run(State(state): State<AppState>, AdminForm(viewer, _): AdminForm) -> Response {
    let input = RunIn {
        from: None,
        to: None,
        formats: None,
    };
    match api::run(
        State(state.clone()),
        Auth(viewer.principal.clone()),
        Json(input),
    )
    .await
    {
        Ok(Json(r)) => see_other(&format!("/reports/{}?ran=1", r.id)),
        Err(error) => UiError::from(error).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_reads_as_one_line_per_figure() {
        let mut out = Vec::new();
        figures(
            "",
            &serde_json::json!({"totals": {"created": 3, "resolved": 1}, "mean": null, "top": [{"zone": "A", "n": 2}]}),
            &mut out,
        );
        let lines: Vec<String> = out.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        assert_eq!(
            lines,
            [
                "mean: —",
                "top[1].n: 2",
                "top[1].zone: A",
                "totals.created: 3",
                "totals.resolved: 1"
            ]
        );
    }
}
