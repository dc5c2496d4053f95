//! `/admin/audit`: the audit log, newest first, filtered by actor, action, entity and time —
//! `routes::admin::list_audit` with the form's values.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vigia_domain::Timestamp;

use super::super::AdminViewer;
use super::super::form::Errors;
use super::admin_of;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::admin::{self as api, AuditQuery};
use crate::state::AppState;
use crate::ui::Chrome;

/// The filters as the form sends them (dates as `YYYY-MM-DD`, UTC days).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filters {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub entity: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub cursor: Option<String>,
}

fn blank(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A `YYYY-MM-DD` field as the start of that UTC day (`next_day` for the day after).
fn day(field: &str, raw: &Option<String>, next_day: bool) -> ApiResult<Option<Timestamp>> {
    let Some(raw) = blank(raw) else {
        return Ok(None);
    };
    let at = Timestamp::parse_rfc3339(&format!("{raw}T00:00:00Z"))
        .ok_or_else(|| ApiError::field(field, "must be a date such as 2026-03-01"))?;
    Ok(Some(if next_day {
        at.plus_seconds(86_400)
    } else {
        at
    }))
}

impl Filters {
    fn api_query(&self) -> ApiResult<AuditQuery> {
        let since = day("since", &self.since, false);
        let until = day("until", &self.until, true);
        let (since, until) = match (since, until) {
            (Ok(s), Ok(u)) => (s, u),
            (Err(ApiError::Validation(mut a)), Err(ApiError::Validation(b))) => {
                a.extend(b);
                return Err(ApiError::Validation(a));
            }
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        Ok(AuditQuery {
            actor: blank(&self.actor),
            action: blank(&self.action),
            entity: blank(&self.entity),
            entity_id: None,
            since,
            until,
            cursor: blank(&self.cursor),
            limit: Some(50),
        })
    }

    fn without_cursor(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("entity", &self.entity),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = blank(v) {
                out.append_pair(k, &v);
            }
        }
        out.finish()
    }
}

pub struct AuditRow {
    pub at: String,
    pub at_iso: String,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub change: String,
}

#[derive(Template)]
#[template(path = "ui/staff/admin_audit.html")]
struct AuditPage<'a> {
    c: &'a Chrome,
    f: &'a Filters,
    rows: Vec<AuditRow>,
    next: Option<String>,
    filters: String,
    errors: Errors,
}

/// A short text of what changed: the `after` values (or `before` for a deletion), compact.
fn change(before: &Option<serde_json::Value>, after: &Option<serde_json::Value>) -> String {
    let value = after.as_ref().or(before.as_ref());
    let text = value.map(|v| v.to_string()).unwrap_or_default();
    if text.chars().count() > 160 {
        let mut cut: String = text.chars().take(159).collect();
        cut.push('…');
        cut
    } else {
        text
    }
}

pub async fn page(
    State(state): State<AppState>,
    Query(f): Query<Filters>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    let t = viewer.t;
    let result = async {
        let q = f.api_query()?;
        let Json(page) = api::list_audit(
            State(state.clone()),
            admin_of(&viewer)?,
            crate::extract::Query(q),
        )
        .await?;
        Ok::<_, ApiError>(page)
    }
    .await;
    let (rows, next, errors, status) = match result {
        Ok(page) => (
            page.items
                .iter()
                .map(|e| AuditRow {
                    at: t.datetime(e.at),
                    at_iso: e.at.to_rfc3339(),
                    actor: e.actor.clone(),
                    action: e.action.clone(),
                    entity: match e.entity_id {
                        Some(id) => format!("{} #{id}", e.entity),
                        None => e.entity.clone(),
                    },
                    change: change(&e.before, &e.after),
                })
                .collect(),
            page.next_cursor,
            Errors::default(),
            StatusCode::OK,
        ),
        Err(error @ ApiError::Validation(_)) => (
            Vec::new(),
            None,
            Errors::of(viewer.t.0, &error),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(error) => return error.into_response(),
    };
    viewer.render(
        status,
        &AuditPage {
            c: viewer.c(),
            f: &f,
            rows,
            next,
            filters: f.without_cursor(),
            errors,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_filters_cover_whole_utc_days_and_bad_dates_name_their_field() {
        let f = Filters {
            since: Some("2026-03-01".into()),
            until: Some("2026-03-01".into()),
            ..Default::default()
        };
        let q = f.api_query().expect("valid");
        let (since, until) = (q.since.expect("since"), q.until.expect("until"));
        assert_eq!(until.millis() - since.millis(), 86_400_000);
        let bad = Filters {
            since: Some("yesterday".into()),
            until: Some("03/01/2026".into()),
            ..Default::default()
        };
        let Err(ApiError::Validation(errors)) = bad.api_query() else {
            panic!("expected field errors");
        };
        assert_eq!(errors.len(), 2);
    }
}
