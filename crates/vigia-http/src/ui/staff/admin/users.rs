//! `/admin/users`: accounts (search, role filter, pages), a form to create one, and
//! `/admin/users/{id}` to change an account's role, departments, away and disabled flags —
//! through `routes::users::{list, create, find, update}`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::super::form::{Errors, settle, shown};
use super::super::{AdminForm, AdminViewer, Fields, Names, Opt, Staff, Tr};
use super::admin_of;
use crate::error::ApiResult;
use crate::extract::{Json, LenientJson, RequestId};
use crate::path::Path;
use crate::routes::auth::UserOut;
use crate::routes::users::{self as api, UserIn, UserPatchIn, UserQuery};
use crate::state::AppState;
use crate::ui::Chrome;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub q: Option<String>,
    pub role: Option<String>,
    pub cursor: Option<String>,
    pub saved: Option<String>,
}

/// One account as the list shows it.
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: String,
    pub departments: String,
    pub disabled: bool,
    pub away: bool,
}

#[derive(Template)]
#[template(path = "ui/staff/admin_users.html")]
struct UsersPage<'a> {
    c: &'a Chrome,
    rows: Vec<UserRow>,
    next: Option<String>,
    q: String,
    roles: Vec<Opt>,
    new_roles: Vec<Opt>,
    departments: Vec<Opt>,
    form: &'a Fields,
    errors: &'a Errors,
    saved: bool,
}

fn role_options(t: Tr, current: &Option<String>) -> Vec<Opt> {
    Opt::list(
        ["reporter", "staff", "admin"]
            .iter()
            .map(|r| ((*r).to_owned(), t.t(&format!("staff.role.{r}")).to_owned())),
        current,
    )
}

fn department_options(names: &Names, chosen: &[i64]) -> Vec<Opt> {
    names
        .departments
        .iter()
        .map(|(id, name)| Opt {
            value: id.to_string(),
            label: name.clone(),
            selected: chosen.contains(id),
        })
        .collect()
}

async fn render_list(
    state: &AppState,
    viewer: &Staff,
    q: &ListQuery,
    form: &Fields,
    errors: &Errors,
    status: StatusCode,
) -> ApiResult<Response> {
    let t = viewer.t;
    let names = Names::load(state, t).await?;
    let role = q.role.clone().filter(|r| !r.is_empty());
    let Json(page) = api::list(
        State(state.clone()),
        admin_of(viewer)?,
        crate::extract::Query(UserQuery {
            role: role.clone(),
            disabled: None,
            department: None,
            q: q.q.clone().filter(|s| !s.trim().is_empty()),
            cursor: q.cursor.clone().filter(|c| !c.is_empty()),
            limit: Some(50),
        }),
    )
    .await?;
    let rows = page
        .items
        .iter()
        .map(|u| UserRow {
            id: u.id,
            email: u.email.clone(),
            name: u.display_name.clone(),
            role: t.t(&format!("staff.role.{}", u.role.as_str())).to_owned(),
            departments: u
                .departments
                .iter()
                .filter_map(|d| names.department(Some(*d)))
                .collect::<Vec<_>>()
                .join(", "),
            disabled: u.disabled,
            away: u.away,
        })
        .collect();
    let chosen = form.ids("departments").unwrap_or_default();
    let page = UsersPage {
        c: viewer.c(),
        rows,
        next: page.next_cursor,
        q: q.q.clone().unwrap_or_default(),
        roles: role_options(t, &role),
        new_roles: role_options(t, &form.get("role").or(Some("staff".into()))),
        departments: department_options(&names, &chosen),
        form,
        errors,
        saved: q.saved.is_some(),
    };
    Ok(viewer.render(status, &page))
}

/// The list and the creation form.
pub async fn page(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    shown(
        render_list(
            &state,
            &viewer,
            &q,
            &Fields::default(),
            &Errors::default(),
            StatusCode::OK,
        )
        .await,
    )
}

/// Creates an account (`POST /api/v1/users`).
pub async fn create(State(state): State<AppState>, AdminForm(viewer, form): AdminForm) -> Response {
    let result = async {
        let input = UserIn {
            email: form.text("email"),
            password: form.get("password").unwrap_or_default(),
            display_name: form.text("display_name"),
            role: form.get("role").unwrap_or_else(|| "staff".into()),
            locale: form.get("locale"),
            departments: form.ids("departments")?,
        };
        api::create(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            LenientJson::from_value(input),
        )
        .await
    }
    .await;
    let next = |_| "/admin/users?saved=1".to_owned();
    settle(&viewer, result, next, async |errors, status| {
        render_list(
            &state,
            &viewer,
            &ListQuery::default(),
            &form,
            &errors,
            status,
        )
        .await
    })
    .await
}

/// 422 for field errors, 409 for a conflict.

#[derive(Template)]
#[template(path = "ui/staff/admin_user.html")]
struct UserPage<'a> {
    c: &'a Chrome,
    user: &'a UserOut,
    roles: Vec<Opt>,
    departments: Vec<Opt>,
    errors: &'a Errors,
    saved: bool,
}

async fn render_user(
    state: &AppState,
    viewer: &Staff,
    id: i64,
    errors: &Errors,
    saved: bool,
    status: StatusCode,
) -> ApiResult<Response> {
    let names = Names::load(state, viewer.t).await?;
    let Json(user) = api::find(State(state.clone()), admin_of(viewer)?, Path(id)).await?;
    let page = UserPage {
        c: viewer.c(),
        roles: role_options(viewer.t, &Some(user.role.as_str().to_owned())),
        departments: department_options(&names, &user.departments),
        user: &user,
        errors,
        saved,
    };
    Ok(viewer.render(status, &page))
}

/// One account's form.
pub async fn edit(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    let saved = viewer.flag("saved=1");
    shown(
        render_user(
            &state,
            &viewer,
            id,
            &Errors::default(),
            saved,
            StatusCode::OK,
        )
        .await,
    )
}

/// Changes an account (`PATCH /api/v1/users/{id}`): role, departments, away, disabled.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let result = async {
        let input = UserPatchIn {
            display_name: form.get("display_name"),
            role: form.get("role"),
            locale: None,
            disabled: Some(form.checked("disabled")),
            away: Some(form.checked("away")),
            departments: Some(form.ids("departments")?),
        };
        api::update(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Path(id),
            Json(input),
        )
        .await
    }
    .await;
    let next = |_| format!("/admin/users/{id}?saved=1");
    settle(&viewer, result, next, async |errors, status| {
        render_user(&state, &viewer, id, &errors, false, status).await
    })
    .await
}
