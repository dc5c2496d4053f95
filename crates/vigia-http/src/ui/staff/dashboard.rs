//! `GET /dashboard`: headline figures, charts and the staff workload over the last 30 days, in
//! the viewer's scope (an admin's: everything; staff: their departments) — the figures of
//! `GET /api/v1/stats` and `/api/v1/stats/staff`, from the same store functions, plus incidents
//! created and resolved per hour over the last 24 hours. `GET /dashboard/live` is the page's
//! content alone, which the page's script fetches again when the live stream reports a change.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vigia_domain::Timestamp;
use vigia_domain::incidents::ReadScope;
use vigia_notify::templates::{status_label, urgency_label};
use vigia_store::catalog;
use vigia_store::incidents::stats::{self, DAY_MS, HOUR_MS, IncidentStats, StatsFilter};

use super::charts_view::{bars, lines};
use super::{Names, Staff, StaffViewer, Tr};
use crate::error::ApiResult;
use crate::state::AppState;
use crate::ui::charts::{Bar, Series};
use crate::ui::{Chrome, UiError};

/// The days the dashboard covers, up to now.
const RANGE_DAYS: i64 = 30;

/// One headline figure.
#[derive(Debug, Clone)]
pub struct Kpi {
    pub id: &'static str,
    pub label: String,
    pub value: String,
    /// Drawn as a warning (overdue incidents).
    pub warn: bool,
}

/// One row of the workload table.
#[derive(Debug, Clone)]
pub struct WorkRow {
    pub name: String,
    pub open: i64,
    pub overdue: i64,
    pub mtta: String,
    pub mttr: String,
}

/// Everything the dashboard shows.
#[derive(Debug)]
pub struct Dashboard {
    pub kpis: Vec<Kpi>,
    /// Rendered charts (figure + SVG + table), in page order.
    pub charts: Vec<String>,
    pub departments: Vec<WorkRow>,
    pub assignees: Vec<WorkRow>,
    pub updated: String,
}

/// The dashboard's figures for `viewer` as of `now`.
pub async fn gather(state: &AppState, viewer: &Staff, now: Timestamp) -> ApiResult<Dashboard> {
    let t = viewer.t;
    // The scope of the stats routes: admins everything, staff their departments.
    let scope = ReadScope::of(&viewer.principal);
    let range = StatsFilter {
        created_from: now.plus_seconds(-RANGE_DAYS * 86_400),
        created_to: now,
        department: None,
        category: None,
    };
    let today = StatsFilter {
        created_from: Timestamp::from_millis(now.millis().div_euclid(DAY_MS) * DAY_MS),
        ..range
    };
    let names = Names::load(state, t).await?;
    let (period, today_stats, staff, hours, zones) = tokio::try_join!(
        stats::incident_stats(&state.db, &scope, &range),
        stats::incident_stats(&state.db, &scope, &today),
        stats::staff_stats(&state.db, &scope, &range, now),
        stats::per_hour(&state.db, &scope, now.plus_seconds(-24 * 3600), now),
        catalog::list_zones(&state.db),
    )?;
    let created_today: i64 = today_stats.by_status.iter().map(|c| c.count).sum();
    let resolved_today: i64 = today_stats.per_day.iter().map(|d| d.resolved).sum();
    let total = &staff.total;
    let kpis = vec![
        Kpi {
            id: "open",
            label: t.t("staff.dash.open").into(),
            value: total.open.to_string(),
            warn: false,
        },
        Kpi {
            id: "overdue",
            label: t.t("staff.dash.overdue").into(),
            value: total.overdue.to_string(),
            warn: total.overdue > 0,
        },
        Kpi {
            id: "mtta",
            label: t.t("staff.dash.mtta").into(),
            value: t.duration(total.mean_acknowledge_secs),
            warn: false,
        },
        Kpi {
            id: "mttr",
            label: t.t("staff.dash.mttr").into(),
            value: t.duration(total.mean_resolve_secs),
            warn: false,
        },
        Kpi {
            id: "created-today",
            label: t.t("staff.dash.created_today").into(),
            value: created_today.to_string(),
            warn: false,
        },
        Kpi {
            id: "resolved-today",
            label: t.t("staff.dash.resolved_today").into(),
            value: resolved_today.to_string(),
            warn: false,
        },
    ];
    let charts = charts(t, &names, &zones, &period, &hours);
    let work = |name: String, w_open, w_overdue, a, r| WorkRow {
        name,
        open: w_open,
        overdue: w_overdue,
        mtta: t.duration(a),
        mttr: t.duration(r),
    };
    Ok(Dashboard {
        kpis,
        charts,
        departments: staff
            .departments
            .iter()
            .map(|w| {
                work(
                    w.name.clone().unwrap_or_default(),
                    w.open,
                    w.overdue,
                    w.mean_acknowledge_secs,
                    w.mean_resolve_secs,
                )
            })
            .collect(),
        assignees: staff
            .assignees
            .iter()
            .map(|w| {
                work(
                    w.name
                        .clone()
                        .unwrap_or_else(|| t.t("staff.console.unassigned").to_owned()),
                    w.open,
                    w.overdue,
                    w.mean_acknowledge_secs,
                    w.mean_resolve_secs,
                )
            })
            .collect(),
        updated: t.datetime(now),
    })
}

/// The dashboard's charts, in page order.
fn charts(
    t: Tr,
    names: &Names,
    zones: &[catalog::Zone],
    s: &IncidentStats,
    hours: &[stats::HourCount],
) -> Vec<String> {
    let by_status: Vec<Bar> = s
        .by_status
        .iter()
        .map(|c| Bar::new(status_label(t.0, c.key.as_str()), c.count))
        .collect();
    let by_urgency: Vec<Bar> = s
        .by_urgency
        .iter()
        .map(|c| Bar::new(urgency_label(t.0, c.key.as_str()), c.count))
        .collect();
    let by_category: Vec<Bar> = s
        .by_category
        .iter()
        .map(|c| Bar::new(names.category(c.key.0), c.count))
        .collect();
    let by_department: Vec<Bar> = s
        .by_department
        .iter()
        .map(|c| {
            let name = names
                .department(c.key.map(|d| d.0))
                .unwrap_or(t.t("staff.console.unrouted"));
            Bar::new(name, c.count)
        })
        .collect();
    let by_zone: Vec<Bar> = s
        .by_zone
        .iter()
        .map(|c| {
            let name = c
                .key
                .and_then(|z| zones.iter().find(|zone| zone.id == z))
                .map_or(t.t("staff.dash.no_zone"), |z| z.name.as_str());
            Bar::new(name, c.count)
        })
        .collect();
    let days: Vec<String> = s
        .per_day
        .iter()
        .map(|d| match t.0 {
            crate::ui::Lang::Es => format!("{:02}/{:02}", d.date.day(), u8::from(d.date.month())),
            crate::ui::Lang::En => format!("{:02}-{:02}", u8::from(d.date.month()), d.date.day()),
        })
        .collect();
    let per_day = [
        Series {
            name: t.t("staff.dash.created").into(),
            values: s.per_day.iter().map(|d| d.created).collect(),
        },
        Series {
            name: t.t("staff.dash.resolved").into(),
            values: s.per_day.iter().map(|d| d.resolved).collect(),
        },
    ];
    let hour_labels: Vec<String> = hours
        .iter()
        .map(|h| {
            format!(
                "{:02}h",
                h.start.millis().div_euclid(HOUR_MS).rem_euclid(24)
            )
        })
        .collect();
    let per_hour = [
        Series {
            name: t.t("staff.dash.created").into(),
            values: hours.iter().map(|h| h.created).collect(),
        },
        Series {
            name: t.t("staff.dash.resolved").into(),
            values: hours.iter().map(|h| h.resolved).collect(),
        },
    ];
    vec![
        bars(
            t,
            "chart-status",
            "staff.dash.by_status",
            "staff.field.status",
            &by_status,
        ),
        bars(
            t,
            "chart-urgency",
            "staff.dash.by_urgency",
            "staff.field.urgency",
            &by_urgency,
        ),
        bars(
            t,
            "chart-category",
            "staff.dash.by_category",
            "staff.field.category",
            &by_category,
        ),
        bars(
            t,
            "chart-department",
            "staff.dash.by_department",
            "staff.field.department",
            &by_department,
        ),
        bars(
            t,
            "chart-zone",
            "staff.dash.by_zone",
            "staff.field.zone",
            &by_zone,
        ),
        lines(
            t,
            "chart-per-day",
            "staff.dash.per_day",
            "staff.dash.day",
            &days,
            &per_day,
        ),
        lines(
            t,
            "chart-per-hour",
            "staff.dash.per_hour",
            "staff.dash.hour",
            &hour_labels,
            &per_hour,
        ),
    ]
}

#[derive(Template)]
#[template(path = "ui/staff/dashboard.html")]
struct DashboardPage<'a> {
    c: &'a Chrome,
    d: &'a Dashboard,
}

#[derive(Template)]
#[template(path = "ui/staff/dashboard_body.html")]
struct DashboardBody<'a> {
    c: &'a Chrome,
    d: &'a Dashboard,
}

/// The page.
pub async fn page(State(state): State<AppState>, StaffViewer(viewer): StaffViewer) -> Response {
    match gather(&state, &viewer, Timestamp::now()).await {
        Ok(d) => viewer.render(
            StatusCode::OK,
            &DashboardPage {
                c: viewer.c(),
                d: &d,
            },
        ),
        Err(error) => UiError::from(error).into_response(),
    }
}

/// The page's content alone, for the live update.
pub async fn live(State(state): State<AppState>, StaffViewer(viewer): StaffViewer) -> Response {
    match gather(&state, &viewer, Timestamp::now()).await {
        Ok(d) => viewer.render(
            StatusCode::OK,
            &DashboardBody {
                c: viewer.c(),
                d: &d,
            },
        ),
        Err(error) => UiError::from(error).into_response(),
    }
}
