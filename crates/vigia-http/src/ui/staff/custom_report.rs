//! The custom report form of `/reports`: the incident list's filters (status, urgency,
//! category, department, creation dates) and up to three dimensions to group by, posted to
//! `/reports/custom`, which calls `POST /api/v1/reports/custom`'s handler — the same scope
//! (staff: their departments), rules and figures. "Show" answers with the reports page and the
//! result as a table; "CSV" and "XLSX" answer with the API's file.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vigia_notify::templates::{status_label, urgency_label};
use vigia_store::catalog;

use super::form::Errors;
use super::reports::render_page;
use super::{Fields, Names, Opt, Staff, StaffForm};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::reports::{self as api, CustomIn, CustomOut};
use crate::state::AppState;
use crate::ui::UiError;

const DIMENSIONS: [&str; 8] = [
    "status",
    "urgency",
    "category",
    "department",
    "zone",
    "assignee",
    "source",
    "day",
];
const STATUSES: [&str; 6] = [
    "new",
    "acknowledged",
    "in_progress",
    "on_hold",
    "resolved",
    "closed",
];
const URGENCIES: [&str; 4] = ["low", "medium", "high", "emergency"];

/// A checkbox of a group.
pub struct Check {
    pub value: String,
    pub label: String,
    pub checked: bool,
}

/// The custom report's result as the page's table.
pub struct CustomTable {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub total: i64,
    pub truncated: bool,
}

/// The form (values kept) and its result.
pub struct CustomView {
    pub group_by: [Vec<Opt>; 3],
    pub statuses: Vec<Check>,
    pub urgencies: Vec<Check>,
    pub categories: Vec<Opt>,
    pub departments: Vec<Opt>,
    pub created_from: String,
    pub created_to: String,
    pub errors: Errors,
    pub result: Option<CustomTable>,
}

impl CustomView {
    /// The form with `form`'s values (the defaults for an empty form).
    pub async fn new(state: &AppState, viewer: &Staff, form: &Fields) -> ApiResult<Self> {
        let t = viewer.t;
        let names = Names::load(state, t).await?;
        let dimension = |i: usize| {
            let current = form
                .get(&format!("group_by_{i}"))
                .or_else(|| (i == 1).then(|| "category".to_owned()));
            let none = (i > 1).then(|| (String::new(), t.t("staff.common.none").to_owned()));
            Opt::list(
                none.into_iter().chain(DIMENSIONS.iter().map(|d| {
                    (
                        (*d).to_owned(),
                        t.t(&format!("staff.custom.by_{d}")).to_owned(),
                    )
                })),
                &Some(current.unwrap_or_default()),
            )
        };
        let checks = |name: &str, values: &[&str], label: &dyn Fn(&str) -> String| {
            let chosen = form.all(name);
            values
                .iter()
                .map(|v| Check {
                    value: (*v).to_owned(),
                    label: label(v),
                    checked: chosen.iter().any(|c| c == v),
                })
                .collect::<Vec<_>>()
        };
        let any = (String::new(), t.t("staff.common.any").to_owned());
        Ok(Self {
            group_by: [dimension(1), dimension(2), dimension(3)],
            statuses: checks("status", &STATUSES, &|s| status_label(t.0, s)),
            urgencies: checks("urgency", &URGENCIES, &|u| urgency_label(t.0, u)),
            categories: Opt::list(
                std::iter::once(any.clone()).chain(
                    names
                        .categories
                        .iter()
                        .map(|(id, n)| (id.to_string(), n.clone())),
                ),
                &form.get("category"),
            ),
            departments: Opt::list(
                std::iter::once(any).chain(
                    names
                        .departments
                        .iter()
                        .map(|(id, n)| (id.to_string(), n.clone())),
                ),
                &form.get("department"),
            ),
            created_from: form.text("created_from"),
            created_to: form.text("created_to"),
            errors: Errors::default(),
            result: None,
        })
    }
}

/// The API's input from the form: the filters as the incident list names them, the chosen
/// dimensions in order, and the format of the button pressed.
fn custom_in(form: &Fields) -> CustomIn {
    let mut filters = serde_json::Map::new();
    let joined = |name: &str| Some(form.all(name).join(",")).filter(|s| !s.is_empty());
    if let Some(status) = joined("status") {
        filters.insert("status".into(), status.into());
    }
    if let Some(urgency) = joined("urgency") {
        filters.insert("urgency".into(), urgency.into());
    }
    for name in ["category", "department"] {
        if let Some(raw) = form.get(name) {
            // A number as a number; anything else as typed, for the API to refuse.
            let value = raw
                .parse::<i64>()
                .map_or_else(|_| serde_json::Value::from(raw.clone()), Into::into);
            filters.insert(name.into(), value);
        }
    }
    // A date is the whole UTC day: from its first moment, to its last.
    if let Some(from) = form.get("created_from") {
        filters.insert("created_from".into(), format!("{from}T00:00:00Z").into());
    }
    if let Some(to) = form.get("created_to") {
        filters.insert("created_to".into(), format!("{to}T23:59:59.999Z").into());
    }
    CustomIn {
        filters: Some(serde_json::Value::Object(filters)),
        group_by: (1..=3)
            .filter_map(|i| form.get(&format!("group_by_{i}")))
            .collect(),
        format: form.get("format"),
    }
}

/// A key of the result as people read it: names for ids, labels for statuses and urgencies.
async fn label_keys(
    state: &AppState,
    viewer: &Staff,
    out: &CustomOut,
) -> ApiResult<Vec<Vec<String>>> {
    let t = viewer.t;
    let mut names = Names::load(state, t).await?;
    let zones = catalog::list_zones(&state.db).await?;
    let people: Vec<i64> = out
        .group_by
        .iter()
        .enumerate()
        .filter(|(_, d)| *d == "assignee")
        .flat_map(|(i, _)| {
            out.rows
                .iter()
                .filter_map(move |r| r.keys.get(i).cloned().flatten())
        })
        .filter_map(|k| k.parse().ok())
        .collect();
    names.learn_people(state, people).await?;
    let label = |dimension: &str, key: &Option<String>| -> String {
        let Some(key) = key else {
            return "—".to_owned();
        };
        let id = key.parse::<i64>().ok();
        match dimension {
            "status" => status_label(t.0, key),
            "urgency" => urgency_label(t.0, key),
            "category" => id.map_or_else(|| key.clone(), |id| names.category(id)),
            "department" => names.department(id).unwrap_or(key).to_owned(),
            "zone" => zones
                .iter()
                .find(|z| Some(z.id.0) == id)
                .map_or_else(|| key.clone(), |z| z.name.clone()),
            "assignee" => names.person(id).unwrap_or(key).to_owned(),
            _ => key.clone(),
        }
    };
    Ok(out
        .rows
        .iter()
        .map(|r| {
            let mut cells: Vec<String> = out
                .group_by
                .iter()
                .zip(&r.keys)
                .map(|(d, k)| label(d, k))
                .collect();
            cells.push(crate::ui::i18n::number(t.0, r.count));
            cells.push(t.duration(r.mean_time_to_acknowledge_secs));
            cells.push(t.duration(r.mean_time_to_resolve_secs));
            cells
        })
        .collect())
}

/// `POST /reports/custom`.
pub async fn run(State(state): State<AppState>, StaffForm(viewer, form): StaffForm) -> Response {
    let mut view = match CustomView::new(&state, &viewer, &form).await {
        Ok(view) => view,
        Err(error) => return UiError::from(error).into_response(),
    };
    let input = custom_in(&form);
    let file = input.format.as_deref().is_some_and(|f| f != "json");
    let result = api::custom_report(
        State(state.clone()),
        Auth(viewer.principal.clone()),
        Json(input),
    )
    .await;
    let response = match result {
        Ok(response) if file => return response,
        Ok(response) => response,
        Err(error @ ApiError::Validation(_)) => {
            let mut errors = Errors::of(viewer.t.0, &error);
            for (field, _) in &mut errors.0 {
                if let Some(rest) = field.strip_prefix("filters.") {
                    *field = rest.to_owned();
                }
            }
            view.errors = errors;
            return render_page(&state, &viewer, &view, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
        Err(error) => return UiError::from(error).into_response(),
    };
    let table = async {
        let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("custom report body: {e}")))?;
        let out: CustomOut = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("custom report json: {e}")))?;
        let rows = label_keys(&state, &viewer, &out).await?;
        let t = viewer.t;
        let mut headers: Vec<String> = out
            .group_by
            .iter()
            .map(|d| t.t(&format!("staff.custom.by_{d}")).to_owned())
            .collect();
        headers.push(t.t("staff.custom.count").to_owned());
        headers.push(t.t("staff.custom.mean_ack").to_owned());
        headers.push(t.t("staff.custom.mean_resolve").to_owned());
        ApiResult::<CustomTable>::Ok(CustomTable {
            headers,
            rows,
            total: out.total,
            truncated: out.truncated,
        })
    }
    .await;
    match table {
        Ok(table) => {
            view.result = Some(table);
            render_page(&state, &viewer, &view, StatusCode::OK).await
        }
        Err(error) => UiError::from(error).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_the_apis_filters_and_dimensions() {
        let form = Fields::parse(
            b"group_by_1=category&group_by_2=&group_by_3=day&status=new&status=acknowledged&urgency=high&category=&department=4&created_from=2026-11-01&created_to=2026-11-30&format=csv",
        );
        let input = custom_in(&form);
        assert_eq!(input.group_by, vec!["category", "day"]);
        assert_eq!(input.format.as_deref(), Some("csv"));
        assert_eq!(
            input.filters,
            Some(serde_json::json!({
                "status": "new,acknowledged",
                "urgency": "high",
                "department": 4,
                "created_from": "2026-11-01T00:00:00Z",
                "created_to": "2026-11-30T23:59:59.999Z",
            }))
        );
    }
}
