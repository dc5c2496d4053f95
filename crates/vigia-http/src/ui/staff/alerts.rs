//! `GET /alerts`: the alerts of the viewer's departments' subjects (every alert for admins),
//! newest first, filtered by status and severity, a page at a time; a new alert appears
//! without a reload (the table body, `GET /alerts/rows`, is fetched again when the stream's
//! `alerts` topic reports an event). One alert's page is in [`super::alert`].

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vigia_domain::Timestamp;
use vigia_domain::detections::{AlertStatus, Severity, SilenceTarget};
use vigia_domain::ids::{DeviceId, SubjectId};
use vigia_notify::templates::{alert_status_label, severity_label};
use vigia_store::StoreError;
use vigia_store::detections::alerts::{self, Alert, AlertFilter};
use vigia_store::detections::rules::{self, SilenceRecord};
use vigia_store::detections::{devices, subjects};

use super::{Names, Opt, Staff, StaffViewer, Tr};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::routes::subjects::department_scope;
use crate::routes::users::cursor;
use crate::state::AppState;
use crate::ui::{Chrome, UiError, i18n};

/// Alerts per page.
const PAGE_SIZE: usize = 25;

/// The list's filters as the form sends them: an empty field means "any".
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AlertsQuery {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub cursor: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl AlertsQuery {
    /// The store's filter, or the API's 422 naming the bad field.
    fn filter(&self) -> ApiResult<AlertFilter> {
        let status = non_empty(&self.status)
            .map(|s| AlertStatus::parse("status", &s))
            .transpose()?;
        let severity = non_empty(&self.severity)
            .map(|s| Severity::parse("severity", &s))
            .transpose()?;
        Ok(AlertFilter {
            status,
            severity,
            ..AlertFilter::default()
        })
    }

    /// The query string of these filters without the cursor (for links).
    pub fn without_cursor(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("status", &self.status), ("severity", &self.severity)] {
            if let Some(v) = non_empty(value) {
                out.append_pair(key, &v);
            }
        }
        out.finish()
    }
}

/// What a page says about the subjects, rules and devices of its alerts (each read once).
#[derive(Default)]
pub(super) struct Labels {
    subjects: HashMap<i64, (String, String)>,
    rules: HashMap<i64, String>,
    devices: HashMap<i64, String>,
}

impl Labels {
    pub(super) async fn load(state: &AppState, alerts: &[Alert]) -> ApiResult<Self> {
        let mut labels = Labels {
            rules: rules::list(&state.db)
                .await?
                .into_iter()
                .map(|r| (r.id.0, r.name))
                .collect(),
            ..Labels::default()
        };
        for a in alerts {
            if let std::collections::hash_map::Entry::Vacant(e) =
                labels.subjects.entry(a.subject_id.0)
            {
                match subjects::find(&state.db, SubjectId(a.subject_id.0)).await {
                    Ok(s) => {
                        e.insert((s.code, s.name));
                    }
                    Err(StoreError::NotFound) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            if let std::collections::hash_map::Entry::Vacant(e) =
                labels.devices.entry(a.device_id.0)
            {
                match devices::find(&state.db, DeviceId(a.device_id.0)).await {
                    Ok(d) => {
                        e.insert(d.code);
                    }
                    Err(StoreError::NotFound) => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Ok(labels)
    }
}

/// One alert as a row of the list (and the facts of its page).
#[derive(Debug, Clone)]
pub struct AlertRow {
    pub id: i64,
    pub severity: &'static str,
    pub severity_label: String,
    pub status: &'static str,
    pub status_label: String,
    pub subject_code: String,
    pub subject_name: String,
    pub rule: String,
    pub device: String,
    pub department: String,
    pub detections: i64,
    pub confidence: String,
    pub window: String,
    pub raised: String,
    pub raised_iso: String,
    pub incident: Option<String>,
    /// The silences in force that match the alert's rule, subject or device.
    pub silences: Vec<SilenceView>,
}

/// A silence as an alert's page shows it.
#[derive(Debug, Clone)]
pub struct SilenceView {
    pub id: i64,
    pub what: String,
    pub until: String,
    pub reason: String,
    pub by: String,
}

fn silence_view(t: Tr, labels: &Labels, s: &SilenceRecord) -> SilenceView {
    let what = match s.target {
        SilenceTarget::Rule(id) => format!(
            "{} {}",
            t.t("alerts.silence.rule"),
            labels
                .rules
                .get(&id.0)
                .cloned()
                .unwrap_or_else(|| format!("#{id}"))
        ),
        SilenceTarget::Subject(id) => format!(
            "{} {}",
            t.t("alerts.silence.subject"),
            labels
                .subjects
                .get(&id.0)
                .map_or_else(|| format!("#{id}"), |(code, _)| code.clone())
        ),
        SilenceTarget::Device(id) => format!(
            "{} {}",
            t.t("alerts.silence.device"),
            labels
                .devices
                .get(&id.0)
                .cloned()
                .unwrap_or_else(|| format!("#{id}"))
        ),
    };
    SilenceView {
        id: s.id.0,
        what,
        until: t.datetime(s.ends_at),
        reason: s.reason.clone(),
        by: s.created_by.clone(),
    }
}

pub(super) fn row(
    t: Tr,
    names: &Names,
    labels: &Labels,
    silences: &[SilenceRecord],
    a: &Alert,
    now: Timestamp,
) -> AlertRow {
    let (subject_code, subject_name) = labels
        .subjects
        .get(&a.subject_id.0)
        .cloned()
        .unwrap_or_else(|| (format!("#{}", a.subject_id), String::new()));
    let confidence = format!("{:.2}", a.confidence_avg as f64 / 1e6);
    AlertRow {
        id: a.id.0,
        severity: a.severity.as_str(),
        severity_label: severity_label(t.0, a.severity.as_str()),
        status: a.status.as_str(),
        status_label: alert_status_label(t.0, a.status.as_str()),
        subject_code,
        subject_name,
        rule: labels
            .rules
            .get(&a.rule_id.0)
            .cloned()
            .unwrap_or_else(|| format!("#{}", a.rule_id)),
        device: labels
            .devices
            .get(&a.device_id.0)
            .cloned()
            .unwrap_or_else(|| format!("#{}", a.device_id)),
        department: names
            .department(Some(a.department_id.0))
            .unwrap_or_default()
            .to_owned(),
        detections: a.detection_count,
        confidence: match t.0 {
            crate::ui::Lang::Es => confidence.replace('.', ","),
            crate::ui::Lang::En => confidence,
        },
        window: format!(
            "{} – {}",
            t.datetime(a.window_start),
            t.datetime(a.window_end)
        ),
        raised: t.datetime(a.raised_at),
        raised_iso: a.raised_at.to_rfc3339(),
        incident: a.incident_id.map(|i| {
            vigia_domain::incidents::IncidentCode::from_sequence(i.0.max(0) as u64).to_string()
        }),
        silences: silences
            .iter()
            .filter(|s| s.silence().mutes(a.rule_id, a.subject_id, a.device_id, now))
            .map(|s| silence_view(t, labels, s))
            .collect(),
    }
}

/// A page of the list.
#[derive(Debug)]
pub struct AlertList {
    pub rows: Vec<AlertRow>,
    pub next_cursor: Option<String>,
}

async fn list(state: &AppState, viewer: &Staff, q: &AlertsQuery) -> ApiResult<AlertList> {
    let scope = department_scope(&Auth(viewer.principal.clone()))?;
    let filter = q.filter()?;
    let page = alerts::list(
        &state.db,
        &scope,
        &filter,
        cursor(non_empty(&q.cursor).as_deref())?,
        PAGE_SIZE,
    )
    .await?;
    let names = Names::load(state, viewer.t).await?;
    let labels = Labels::load(state, &page.items).await?;
    let now = Timestamp::now();
    let silences = rules::list_silences(&state.db, now.millis()).await?;
    Ok(AlertList {
        rows: page
            .items
            .iter()
            .map(|a| row(viewer.t, &names, &labels, &silences, a, now))
            .collect(),
        next_cursor: page.next_cursor,
    })
}

#[derive(Template)]
#[template(path = "ui/staff/alerts.html")]
struct AlertsPage<'a> {
    c: &'a Chrome,
    q: &'a AlertsQuery,
    list: &'a AlertList,
    statuses: Vec<Opt>,
    severities: Vec<Opt>,
    filters: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/staff/alerts_rows.html")]
struct RowsPartial<'a> {
    c: &'a Chrome,
    list: &'a AlertList,
}

/// The alerts page.
pub async fn page(
    State(state): State<AppState>,
    Query(q): Query<AlertsQuery>,
    StaffViewer(viewer): StaffViewer,
) -> Response {
    let t = viewer.t;
    let (list, error, status) = match list(&state, &viewer, &q).await {
        Ok(list) => (list, None, StatusCode::OK),
        // A filter the list refuses: the message by the form, an empty list.
        Err(ApiError::Validation(errors)) => (
            AlertList {
                rows: Vec::new(),
                next_cursor: None,
            },
            Some(
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, i18n::field_message(t.0, &e.message)))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(other) => return UiError::from(other).into_response(),
    };
    let page = AlertsPage {
        c: viewer.c(),
        q: &q,
        list: &list,
        statuses: Opt::list(
            AlertStatus::ALL
                .iter()
                .map(|s| (s.as_str().to_owned(), alert_status_label(t.0, s.as_str()))),
            &q.status,
        ),
        severities: Opt::list(
            [Severity::High, Severity::Medium, Severity::Low]
                .iter()
                .map(|s| (s.as_str().to_owned(), severity_label(t.0, s.as_str()))),
            &q.severity,
        ),
        filters: q.without_cursor(),
        error,
    };
    viewer.render(status, &page)
}

/// The list's table body alone (the live update fetches it).
pub async fn rows(
    State(state): State<AppState>,
    Query(q): Query<AlertsQuery>,
    StaffViewer(viewer): StaffViewer,
) -> Response {
    match list(&state, &viewer, &q).await {
        Ok(list) => viewer.render(
            StatusCode::OK,
            &RowsPartial {
                c: viewer.c(),
                list: &list,
            },
        ),
        Err(error) => UiError::from(error).into_response(),
    }
}

// --- one alert ---------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_filters_mean_any_and_a_bad_one_names_its_field() {
        let q = AlertsQuery {
            status: Some("pending".into()),
            severity: Some(String::new()),
            cursor: Some("00000000000000ff".into()),
        };
        let f = q.filter().expect("valid");
        assert_eq!(f.status, Some(AlertStatus::Pending));
        assert_eq!(f.severity, None);
        assert_eq!(q.without_cursor(), "status=pending");
        let bad = AlertsQuery {
            severity: Some("extreme".into()),
            ..Default::default()
        };
        match bad.filter() {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "severity"),
            other => panic!("expected a 422 naming severity, got {other:?}"),
        }
    }
}
