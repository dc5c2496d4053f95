//! The JSON shapes of reports: a report with its files, a page of them, and the per-incident
//! report's document (described for the OpenAPI document, written by `vigia_reports::incident`).

use serde::Serialize;
use utoipa::ToSchema;
use vigia_domain::Timestamp;
use vigia_store::reports::ReportRecord;

/// A file of a report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportFileOut {
    /// `json`, `csv` or `xlsx`.
    pub format: String,
    /// Where it is kept in object storage.
    pub object_key: String,
    /// Download it here.
    pub url: String,
}

/// A generated report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportOut {
    pub id: i64,
    /// `global`, `incident`, `custom`, `detections` or `competition`.
    pub kind: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub period_start: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub period_end: Option<Timestamp>,
    pub incident_id: Option<i64>,
    pub department_id: Option<i64>,
    /// The competition of a `competition` report (its frozen ranking).
    pub competition_id: Option<i64>,
    pub files: Vec<ReportFileOut>,
    /// Headline figures (global: totals, mean times, breaches, top zones).
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it was last generated (a rerun of the same period updates it).
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<ReportRecord> for ReportOut {
    fn from(r: ReportRecord) -> Self {
        let files = r
            .objects
            .iter()
            .map(|(format, key)| ReportFileOut {
                format: format.clone(),
                object_key: key.clone(),
                url: format!("/api/v1/reports/{}/download?format={format}", r.id),
            })
            .collect();
        Self {
            id: r.id,
            kind: r.kind.as_str().into(),
            period_start: r.period_start,
            period_end: r.period_end,
            incident_id: r.incident_id.map(|i| i.0),
            department_id: r.department_id.map(|d| d.0),
            competition_id: r.competition_id,
            files,
            summary: r.summary,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The report of one incident, as written when it was routed (`incident_{id}.json`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes the JSON `vigia_reports::incident` writes; never built here
pub struct IncidentReportOut {
    /// `incident`
    pub kind: String,
    #[schema(value_type = String, format = DateTime)]
    pub generated_at: String,
    /// The incident as it was when the report was written.
    #[schema(value_type = Object)]
    pub incident: String,
    pub department_name: Option<String>,
    pub category_name: Option<String>,
    pub zone_name: Option<String>,
    /// Its whole history, internal events included, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportPage {
    pub items: Vec<ReportOut>,
    pub next_cursor: Option<String>,
}
