//! `GET /detections`: the live detections dashboard, in the viewer's scope (admins: every
//! subject; staff: their departments') — the figures of `GET /api/v1/detections/overview`
//! (KPIs) and `/api/v1/detections/stats` over the last 24 hours (label mix, detections per
//! hour and label, the subjects with the largest stress share, detections per device), through
//! the same handlers. Charts are server-rendered SVG with their numbers in tables
//! ([`crate::ui::charts`]).
//!
//! Live refresh: `GET /detections/live` is the page's content alone. The page's script fetches
//! it again when the stream carries a `detections.tick` (the `detections` topic's per-second
//! aggregate, docs/realtime.md) or an `alert.` event, at most once a second (`data-live-src`,
//! `data-live-min-ms` in `assets/vigia.js`); where EventSource is unavailable it polls every
//! 10 seconds instead (`data-poll-src`); without JavaScript the page is a plain page to reload.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vigia_domain::Timestamp;

use super::super::staff::{Staff, StaffViewer, Tr};
use super::auth_of;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::routes::detections::{self as api, DetectionStatsOut, OverviewOut, StatsQuery};
use crate::state::AppState;
use crate::ui::charts::{Bar, Captions, Series, bar_chart, line_chart};
use crate::ui::{Chrome, UiError};

const HOUR_MS: i64 = 3_600_000;

/// One headline figure.
pub struct Kpi {
    pub id: &'static str,
    pub label: String,
    pub value: String,
    pub warn: bool,
}

pub struct SubjectRow {
    pub code: String,
    pub name: String,
    pub total: i64,
    pub stress: i64,
    pub share: String,
}

/// Everything the dashboard shows.
pub struct Board {
    pub kpis: Vec<Kpi>,
    pub charts: Vec<String>,
    pub top: Vec<SubjectRow>,
    pub devices: Vec<(String, i64)>,
    pub updated: String,
}

fn percent(t: Tr, share: f64) -> String {
    let text = format!("{:.1} %", share * 100.0);
    match t.0 {
        crate::ui::Lang::Es => text.replace('.', ","),
        crate::ui::Lang::En => text,
    }
}

fn captions<'a>(t: Tr, title: &'a str, key: &'a str) -> Captions<'a> {
    Captions {
        title: t.t(title),
        key: t.t(key),
        value: t.t("devices.dash.detections"),
        show_data: t.t("staff.common.show_data"),
        empty: t.t("devices.dash.no_data"),
    }
}

/// The KPIs of the overview.
fn kpis(t: Tr, o: &OverviewOut) -> Vec<Kpi> {
    let kpi = |id, key: &str, value: String, warn| Kpi {
        id,
        label: t.t(key).to_owned(),
        value,
        warn,
    };
    vec![
        kpi(
            "detections",
            "devices.dash.detections_hour",
            o.detections_last_hour.to_string(),
            false,
        ),
        kpi(
            "subjects-detected",
            "devices.dash.subjects_hour",
            o.subjects_detected_last_hour.to_string(),
            false,
        ),
        kpi(
            "stress-share",
            "devices.dash.stress_share",
            percent(t, o.stress_share),
            false,
        ),
        kpi(
            "alerts-high",
            "devices.dash.pending_high",
            o.pending_alerts.high.to_string(),
            o.pending_alerts.high > 0,
        ),
        kpi(
            "alerts-medium",
            "devices.dash.pending_medium",
            o.pending_alerts.medium.to_string(),
            false,
        ),
        kpi(
            "alerts-low",
            "devices.dash.pending_low",
            o.pending_alerts.low.to_string(),
            false,
        ),
        kpi(
            "active-subjects",
            "devices.dash.active_subjects",
            o.active_subjects.to_string(),
            false,
        ),
        kpi(
            "active-devices",
            "devices.dash.active_devices",
            o.active_devices.to_string(),
            false,
        ),
    ]
}

/// The label mix and the per-hour chart of `s`, whose period ends at `to` (24 hours).
fn charts(t: Tr, s: &DetectionStatsOut, to: Timestamp) -> Vec<String> {
    let labels: Vec<Bar> = s
        .labels
        .iter()
        .map(|l| Bar::new(l.label.clone(), l.count))
        .collect();
    let last_hour = to.millis().div_euclid(HOUR_MS) * HOUR_MS;
    let hours: Vec<i64> = (0..24).rev().map(|i| last_hour - i * HOUR_MS).collect();
    let mut per_label: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for h in &s.per_hour {
        let Some(slot) = hours.iter().position(|x| *x == h.hour.millis()) else {
            continue;
        };
        per_label
            .entry(h.label.as_str())
            .or_insert_with(|| vec![0; hours.len()])[slot] += h.count;
    }
    let series: Vec<Series> = per_label
        .into_iter()
        .map(|(label, values)| Series {
            name: label.to_owned(),
            values,
        })
        .collect();
    let x: Vec<String> = hours
        .iter()
        .map(|h| format!("{:02}h", h.div_euclid(HOUR_MS).rem_euclid(24)))
        .collect();
    vec![
        bar_chart(
            "chart-labels",
            &captions(t, "devices.dash.label_mix", "devices.dash.label"),
            &labels,
        ),
        line_chart(
            "chart-per-hour",
            &captions(t, "devices.dash.per_hour", "staff.dash.hour"),
            &x,
            &series,
        ),
    ]
}

/// The dashboard for `viewer` as of now, through the API's overview and stats handlers.
pub async fn gather(state: &AppState, viewer: &Staff) -> ApiResult<Board> {
    let t = viewer.t;
    let now = Timestamp::now();
    let Json(overview) = api::overview(State(state.clone()), auth_of(viewer)).await?;
    let Json(stats) = api::stats(
        State(state.clone()),
        auth_of(viewer),
        crate::extract::Query(StatsQuery {
            from: None,
            to: Some(now),
        }),
    )
    .await?;
    let devices = if viewer.is_admin() {
        let Json(page) = crate::routes::devices::list_devices(
            State(state.clone()),
            crate::ui::staff::admin::admin_of(viewer)?,
            crate::extract::Query(crate::routes::subjects::ListQuery {
                cursor: None,
                limit: Some(500),
                department: None,
                subject: None,
            }),
        )
        .await?;
        page.items.into_iter().map(|d| (d.id, d.code)).collect()
    } else {
        Vec::new()
    };
    let device_name = |id: i64| {
        devices
            .iter()
            .find(|(d, _)| *d == id)
            .map_or_else(|| format!("#{id}"), |(_, code)| code.clone())
    };
    Ok(Board {
        kpis: kpis(t, &overview),
        charts: charts(t, &stats, now),
        top: stats
            .top_subjects
            .iter()
            .map(|s| SubjectRow {
                code: s.code.clone(),
                name: s.name.clone(),
                total: s.total,
                stress: s.stress,
                share: percent(t, s.stress_share),
            })
            .collect(),
        devices: stats
            .devices
            .iter()
            .map(|d| (device_name(d.device_id), d.count))
            .collect(),
        updated: t.datetime(now),
    })
}

#[derive(Template)]
#[template(path = "ui/devices/dashboard.html")]
struct DashboardPage<'a> {
    c: &'a Chrome,
    d: &'a Board,
}

#[derive(Template)]
#[template(path = "ui/devices/dashboard_body.html")]
struct DashboardBody<'a> {
    c: &'a Chrome,
    d: &'a Board,
}

/// The page.
pub async fn page(State(state): State<AppState>, StaffViewer(viewer): StaffViewer) -> Response {
    match gather(&state, &viewer).await {
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

/// The page's content alone, for the periodic refresh.
pub async fn live(State(state): State<AppState>, StaffViewer(viewer): StaffViewer) -> Response {
    match gather(&state, &viewer).await {
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
