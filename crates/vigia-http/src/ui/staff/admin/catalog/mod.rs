//! `/admin/departments` and `/admin/categories`: the catalogue's lists, creation forms and one
//! edit page each (a department's contacts, escalation e-mails and assignment strategy; a
//! category's names, default department and urgency, and its SLA per urgency) — through
//! `routes::catalog`'s handlers.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vigia_notify::templates::urgency_label;

use super::super::form::{Errors, settle, shown};
use super::super::{AdminForm, AdminViewer, Fields, Opt, Staff, Tr};
use super::admin_of;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, RequestId};
use crate::path::Path;
use crate::routes::catalog::{
    self as api, CategoryIn, CategoryOut, DepartmentIn, DepartmentOut, SlaPolicyIn, SlaPolicyOut,
};
use crate::state::AppState;
use crate::ui::Chrome;

const STRATEGIES: [&str; 3] = ["manual", "round_robin", "least_open"];
const URGENCIES: [&str; 4] = ["low", "medium", "high", "emergency"];

fn strategy_options(t: Tr, current: &str) -> Vec<Opt> {
    Opt::list(
        STRATEGIES.iter().map(|s| {
            (
                (*s).to_owned(),
                t.t(&format!("staff.strategy.{s}")).to_owned(),
            )
        }),
        &Some(current.to_owned()),
    )
}

fn urgency_options(t: Tr, current: &str) -> Vec<Opt> {
    Opt::list(
        URGENCIES
            .iter()
            .map(|u| ((*u).to_owned(), urgency_label(t.0, u))),
        &Some(current.to_owned()),
    )
}

// --- departments -------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ui/staff/admin_departments.html")]
struct DepartmentsPage<'a> {
    c: &'a Chrome,
    departments: Vec<DepartmentOut>,
    strategies: Vec<Opt>,
    action: &'static str,
    submit: &'static str,
    name: String,
    contact_emails: String,
    escalation_emails: String,
    errors: &'a Errors,
    saved: bool,
}

async fn departments_page(
    state: &AppState,
    viewer: &Staff,
    form: &Fields,
    errors: &Errors,
    saved: bool,
    status: StatusCode,
) -> ApiResult<Response> {
    let Json(departments) =
        api::list_departments(State(state.clone()), Auth(viewer.principal.clone())).await?;
    let strategy = form
        .get("assignment_strategy")
        .unwrap_or_else(|| "manual".into());
    Ok(viewer.render(
        status,
        &DepartmentsPage {
            c: viewer.c(),
            departments,
            strategies: strategy_options(viewer.t, &strategy),
            action: "/admin/departments",
            submit: viewer.t.t("staff.common.create"),
            name: form.text("name"),
            contact_emails: form.text("contact_emails"),
            escalation_emails: form.text("escalation_emails"),
            errors,
            saved,
        },
    ))
}

fn department_in(form: &Fields) -> DepartmentIn {
    DepartmentIn {
        name: form.text("name"),
        contact_emails: form.list("contact_emails"),
        escalation_emails: form.list("escalation_emails"),
        assignment_strategy: form.get("assignment_strategy"),
    }
}

pub async fn departments(
    State(state): State<AppState>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    let saved = viewer.flag("saved=1");
    shown(
        departments_page(
            &state,
            &viewer,
            &Fields::default(),
            &Errors::default(),
            saved,
            StatusCode::OK,
        )
        .await,
    )
}

pub async fn create_department(
    State(state): State<AppState>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let admin = match admin_of(&viewer) {
        Ok(admin) => admin,
        Err(error) => return error.into_response(),
    };
    let result = api::create_department(
        State(state.clone()),
        admin,
        RequestId(None),
        Json(department_in(&form)),
    )
    .await;
    let next = |_| "/admin/departments?saved=1".to_owned();
    settle(&viewer, result, next, async |errors, status| {
        departments_page(&state, &viewer, &form, &errors, false, status).await
    })
    .await
}

#[derive(Template)]
#[template(path = "ui/staff/admin_department.html")]
struct DepartmentPage<'a> {
    c: &'a Chrome,
    d: &'a DepartmentOut,
    action: String,
    submit: &'static str,
    name: String,
    contact_emails: String,
    escalation_emails: String,
    strategies: Vec<Opt>,
    errors: &'a Errors,
    saved: bool,
}

async fn department_page(
    state: &AppState,
    viewer: &Staff,
    id: i64,
    form: Option<&Fields>,
    errors: &Errors,
    saved: bool,
    status: StatusCode,
) -> ApiResult<Response> {
    let Json(d) = api::get_department(
        State(state.clone()),
        Auth(viewer.principal.clone()),
        Path(id),
    )
    .await?;
    // A rejected form keeps what was typed; otherwise the stored values.
    let (name, contacts, escalation, strategy) = match form {
        Some(f) => (
            f.text("name"),
            f.text("contact_emails"),
            f.text("escalation_emails"),
            f.text("assignment_strategy"),
        ),
        None => (
            d.name.clone(),
            d.contact_emails.join("\n"),
            d.escalation_emails.join("\n"),
            d.assignment_strategy.clone(),
        ),
    };
    Ok(viewer.render(
        status,
        &DepartmentPage {
            c: viewer.c(),
            action: format!("/admin/departments/{id}"),
            submit: viewer.t.t("staff.common.save"),
            d: &d,
            name,
            contact_emails: contacts,
            escalation_emails: escalation,
            strategies: strategy_options(viewer.t, &strategy),
            errors,
            saved,
        },
    ))
}

pub async fn department(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    let saved = viewer.flag("saved=1");
    shown(
        department_page(
            &state,
            &viewer,
            id,
            None,
            &Errors::default(),
            saved,
            StatusCode::OK,
        )
        .await,
    )
}

pub async fn update_department(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let admin = match admin_of(&viewer) {
        Ok(admin) => admin,
        Err(error) => return error.into_response(),
    };
    let result = api::update_department(
        State(state.clone()),
        admin,
        RequestId(None),
        Path(id),
        Json(department_in(&form)),
    )
    .await;
    let next = |_| format!("/admin/departments/{id}?saved=1");
    settle(&viewer, result, next, async |errors, status| {
        department_page(&state, &viewer, id, Some(&form), &errors, false, status).await
    })
    .await
}

mod categories;

pub use categories::*;
