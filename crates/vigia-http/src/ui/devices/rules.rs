//! `/admin/alert-rules`: the alert rules (labels, how many detections within which window,
//! the confidence floor, the cooldown, who is told, whether a `high` alert opens an incident,
//! active) and a form to create one; `/admin/alert-rules/{id}`: change or delete it — through
//! `routes::alerts::{list_rules, create_rule, get_rule, update_rule, delete_rule}`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::super::staff::form::{Errors, settle, shown};
use super::super::staff::{AdminForm, AdminViewer, Fields, Names, Opt, Staff, see_other};
use super::number;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, RequestId};
use crate::path::Path;
use crate::routes::alerts::{self as api, RuleIn, RuleOut};
use crate::state::AppState;
use crate::ui::staff::admin::admin_of;
use crate::ui::{Chrome, UiError};

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub saved: Option<String>,
    pub deleted: Option<String>,
}

pub struct RuleRow {
    pub id: i64,
    pub name: String,
    pub labels: String,
    pub condition: String,
    pub cooldown: String,
    pub notify: String,
    pub incident: bool,
    pub active: bool,
}

/// The values of the rule form, as typed.
pub struct RuleForm {
    pub name: String,
    pub labels: Vec<Opt>,
    pub min_count: String,
    pub window_minutes: String,
    pub confidence_floor: String,
    pub cooldown_minutes: String,
    pub departments: Vec<Opt>,
    pub open_incident: bool,
    pub categories: Vec<Opt>,
    pub active: bool,
}

impl RuleForm {
    fn of_rule(state: &AppState, names: &Names, r: Option<&RuleOut>) -> Self {
        let chosen = |all: &[i64], id: i64| all.contains(&id);
        let labels = r.map_or_else(
            || vec!["stress".to_owned(), "sad".to_owned()],
            |r| r.labels.clone(),
        );
        let notify = r.map(|r| r.notify_departments.clone()).unwrap_or_default();
        Self {
            name: r.map(|r| r.name.clone()).unwrap_or_default(),
            labels: label_options(state, &labels),
            min_count: r.map_or(10, |r| r.min_count).to_string(),
            window_minutes: (r.map_or(900, |r| r.window_secs) / 60).to_string(),
            confidence_floor: r.map_or(0.5, |r| r.confidence_floor).to_string(),
            cooldown_minutes: (r.map_or(3600, |r| r.cooldown_secs) / 60).to_string(),
            departments: names
                .departments
                .iter()
                .map(|(id, n)| Opt {
                    value: id.to_string(),
                    label: n.clone(),
                    selected: chosen(&notify, *id),
                })
                .collect(),
            open_incident: r.is_some_and(|r| r.open_incident),
            categories: Opt::list(
                names
                    .categories
                    .iter()
                    .map(|(id, n)| (id.to_string(), n.clone())),
                &r.and_then(|r| r.incident_category_id)
                    .map(|c| c.to_string()),
            ),
            active: r.is_none_or(|r| r.active),
        }
    }

    fn of_form(state: &AppState, names: &Names, f: &Fields) -> Self {
        let notify = f.ids("notify_departments").unwrap_or_default();
        Self {
            name: f.text("name"),
            labels: label_options(state, &f.all("labels")),
            min_count: f.text("min_count"),
            window_minutes: f.text("window_minutes"),
            confidence_floor: f.text("confidence_floor"),
            cooldown_minutes: f.text("cooldown_minutes"),
            departments: names
                .departments
                .iter()
                .map(|(id, n)| Opt {
                    value: id.to_string(),
                    label: n.clone(),
                    selected: notify.contains(id),
                })
                .collect(),
            open_incident: f.checked("open_incident"),
            categories: Opt::list(
                names
                    .categories
                    .iter()
                    .map(|(id, n)| (id.to_string(), n.clone())),
                &f.get("incident_category_id"),
            ),
            active: f.checked("active"),
        }
    }
}

fn label_options(state: &AppState, chosen: &[String]) -> Vec<Opt> {
    state
        .ingestion
        .policy
        .vocabulary
        .names()
        .iter()
        .map(|l| Opt {
            value: l.clone(),
            label: l.clone(),
            selected: chosen.contains(l),
        })
        .collect()
}

/// The form as the API's wire type: minutes become seconds; a number that is not one is a
/// field error of its own name.
fn input(form: &Fields) -> Result<RuleIn, ApiError> {
    let mut errors = Vec::new();
    let mut read = |name: &str| match number::<f64>(form, name) {
        Ok(v) => v,
        Err(ApiError::Validation(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(_) => None,
    };
    let min_count = read("min_count");
    let window = read("window_minutes");
    let floor = read("confidence_floor");
    let cooldown = read("cooldown_minutes");
    let categories = form.id("incident_category_id");
    let departments = form.ids("notify_departments");
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(RuleIn {
        name: form.text("name"),
        labels: form.all("labels"),
        min_count: min_count.unwrap_or(0.0) as i64,
        window_secs: window.map_or(0, |m| (m * 60.0).round() as i64),
        confidence_floor: floor.unwrap_or(-1.0),
        cooldown_secs: cooldown.map_or(-1, |m| (m * 60.0).round() as i64),
        notify_departments: departments?,
        open_incident: form.checked("open_incident"),
        incident_category_id: categories?,
        active: form.checked("active"),
    })
}

/// The API's field names as the form's: a window or cooldown error is shown by the minutes.
fn in_minutes(Errors(list): Errors) -> Errors {
    Errors(
        list.into_iter()
            .map(|(field, message)| {
                let field = match field.as_str() {
                    "window_secs" => "window_minutes".to_owned(),
                    "cooldown_secs" => "cooldown_minutes".to_owned(),
                    _ => field,
                };
                (field, message)
            })
            .collect(),
    )
}

#[derive(Template)]
#[template(path = "ui/devices/rules.html")]
struct RulesPage<'a> {
    c: &'a Chrome,
    rows: Vec<RuleRow>,
    form: RuleForm,
    errors: &'a Errors,
    saved: bool,
    deleted: bool,
}

async fn render_list(
    state: &AppState,
    viewer: &Staff,
    q: PageQuery,
    form: Option<&Fields>,
    errors: &Errors,
    status: StatusCode,
) -> ApiResult<Response> {
    let t = viewer.t;
    let names = Names::load(state, t).await?;
    let Json(rules) = api::list_rules(State(state.clone()), super::auth_of(viewer)).await?;
    let rows = rules
        .iter()
        .map(|r| RuleRow {
            id: r.id,
            name: r.name.clone(),
            labels: r.labels.join(", "),
            condition: t
                .t("devices.rule.condition")
                .replace("{count}", &r.min_count.to_string())
                .replace("{minutes}", &(r.window_secs / 60).to_string())
                .replace("{floor}", &r.confidence_floor.to_string()),
            cooldown: format!("{} min", r.cooldown_secs / 60),
            notify: r
                .notify_departments
                .iter()
                .filter_map(|d| names.department(Some(*d)))
                .collect::<Vec<_>>()
                .join(", "),
            incident: r.open_incident,
            active: r.active,
        })
        .collect();
    let form = match form {
        Some(f) => RuleForm::of_form(state, &names, f),
        None => RuleForm::of_rule(state, &names, None),
    };
    let page = RulesPage {
        c: viewer.c(),
        rows,
        form,
        errors,
        saved: q.saved.is_some(),
        deleted: q.deleted.is_some(),
    };
    Ok(viewer.render(status, &page))
}

pub async fn page(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    shown(render_list(&state, &viewer, q, None, &Errors::default(), StatusCode::OK).await)
}

/// Creates a rule (`POST /api/v1/alert-rules`).
pub async fn create(State(state): State<AppState>, AdminForm(viewer, form): AdminForm) -> Response {
    let result = async {
        let input = input(&form)?;
        api::create_rule(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Json(input),
        )
        .await
    }
    .await;
    let next = |_| "/admin/alert-rules?saved=1".to_owned();
    settle(&viewer, result, next, async |errors, status| {
        let errors = in_minutes(errors);
        render_list(
            &state,
            &viewer,
            PageQuery::default(),
            Some(&form),
            &errors,
            status,
        )
        .await
    })
    .await
}

#[derive(Template)]
#[template(path = "ui/devices/rule.html")]
struct RulePage<'a> {
    c: &'a Chrome,
    r: &'a RuleOut,
    form: RuleForm,
    errors: &'a Errors,
    saved: bool,
}

async fn render_one(
    state: &AppState,
    viewer: &Staff,
    id: i64,
    form: Option<&Fields>,
    errors: &Errors,
    saved: bool,
    status: StatusCode,
) -> ApiResult<Response> {
    let names = Names::load(state, viewer.t).await?;
    let Json(r) = api::get_rule(State(state.clone()), super::auth_of(viewer), Path(id)).await?;
    let form = match form {
        Some(f) => RuleForm::of_form(state, &names, f),
        None => RuleForm::of_rule(state, &names, Some(&r)),
    };
    let page = RulePage {
        c: viewer.c(),
        r: &r,
        form,
        errors,
        saved,
    };
    Ok(viewer.render(status, &page))
}

pub async fn edit(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    shown(
        render_one(
            &state,
            &viewer,
            id,
            None,
            &Errors::default(),
            q.saved.is_some(),
            StatusCode::OK,
        )
        .await,
    )
}

/// Replaces a rule (`PUT /api/v1/alert-rules/{id}`).
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let result = async {
        let input = input(&form)?;
        api::update_rule(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Path(id),
            Json(input),
        )
        .await
    }
    .await;
    let next = |_| format!("/admin/alert-rules/{id}?saved=1");
    settle(&viewer, result, next, async |errors, status| {
        let errors = in_minutes(errors);
        render_one(&state, &viewer, id, Some(&form), &errors, false, status).await
    })
    .await
}

/// Deletes a rule (`DELETE /api/v1/alert-rules/{id}`); its alerts are kept.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, _): AdminForm,
) -> Response {
    let result = async {
        api::delete_rule(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Path(id),
        )
        .await
    }
    .await;
    match result {
        Ok(_) => see_other("/admin/alert-rules?deleted=1"),
        Err(error) => UiError::from(error).into_response(),
    }
}
