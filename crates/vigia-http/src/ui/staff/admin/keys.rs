//! `/admin/api-keys`: the keys (name, prefix, scopes, departments, last use, revoked), a form
//! to create one — its secret shown once, on the answer to that post, and never again — and a
//! revoke button each; through `routes::admin::{list_keys, create_key, revoke_key}`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vigia_domain::Timestamp;
use vigia_domain::auth::Scope;

use super::super::form::{Errors, error_status, shown};
use super::super::{AdminForm, AdminViewer, Fields, Names, Opt, Staff, see_other};
use super::admin_of;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, RequestId};
use crate::path::Path;
use crate::routes::admin::{self as api, ApiKeyIn, PageQuery};
use crate::state::AppState;
use crate::ui::{Chrome, UiError};

#[derive(Debug, Default, Deserialize)]
pub struct KeysQuery {
    pub cursor: Option<String>,
    pub saved: Option<String>,
}

pub struct KeyRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub departments: String,
    pub created: String,
    pub last_used: String,
    pub revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/staff/admin_keys.html")]
struct KeysPage<'a> {
    c: &'a Chrome,
    rows: Vec<KeyRow>,
    next: Option<String>,
    scopes: Vec<Opt>,
    departments: Vec<Opt>,
    name: String,
    /// The secret of the key just created (shown this once).
    secret: Option<String>,
    errors: &'a Errors,
    saved: bool,
}

#[allow(clippy::too_many_arguments)]
async fn render(
    state: &AppState,
    viewer: &Staff,
    cursor: Option<String>,
    form: &Fields,
    secret: Option<String>,
    errors: &Errors,
    saved: bool,
    status: StatusCode,
) -> ApiResult<Response> {
    let t = viewer.t;
    let names = Names::load(state, t).await?;
    let Json(page) = api::list_keys(
        State(state.clone()),
        admin_of(viewer)?,
        crate::extract::Query(PageQuery {
            cursor: cursor.filter(|c| !c.is_empty()),
            limit: Some(50),
        }),
    )
    .await?;
    let when = |at: Option<Timestamp>| at.map_or_else(|| "—".to_owned(), |at| t.datetime(at));
    let rows = page
        .items
        .iter()
        .map(|k| KeyRow {
            id: k.id,
            name: k.name.clone(),
            prefix: k.key_prefix.clone(),
            scopes: k
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            departments: k
                .departments
                .iter()
                .filter_map(|d| names.department(Some(*d)))
                .collect::<Vec<_>>()
                .join(", "),
            created: t.datetime(k.created_at),
            last_used: when(k.last_used_at),
            revoked: k.revoked_at.map(|at| t.datetime(at)),
        })
        .collect();
    let chosen_scopes = form.all("scopes");
    let chosen_departments = form.ids("departments").unwrap_or_default();
    let page = KeysPage {
        c: viewer.c(),
        rows,
        next: page.next_cursor,
        scopes: Scope::ALL
            .iter()
            .map(|s| Opt {
                value: s.as_str().to_owned(),
                label: s.as_str().to_owned(),
                selected: chosen_scopes.iter().any(|c| c == s.as_str()),
            })
            .collect(),
        departments: names
            .departments
            .iter()
            .map(|(id, name)| Opt {
                value: id.to_string(),
                label: name.clone(),
                selected: chosen_departments.contains(id),
            })
            .collect(),
        name: if secret.is_some() {
            String::new()
        } else {
            form.text("name")
        },
        secret,
        errors,
        saved,
    };
    Ok(viewer.render(status, &page))
}

pub async fn page(
    State(state): State<AppState>,
    Query(q): Query<KeysQuery>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    let errors = Errors::default();
    let fields = Fields::default();
    let saved = q.saved.is_some();
    shown(
        render(
            &state,
            &viewer,
            q.cursor,
            &fields,
            None,
            &errors,
            saved,
            StatusCode::OK,
        )
        .await,
    )
}

/// Creates a key and answers with the page showing its secret (201, not cached: it is the
/// only time the secret exists outside the caller's hands).
pub async fn create(State(state): State<AppState>, AdminForm(viewer, form): AdminForm) -> Response {
    let result = async {
        let input = ApiKeyIn {
            name: form.text("name"),
            scopes: form.all("scopes"),
            departments: form.ids("departments")?,
            expires_at: None,
        };
        api::create_key(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Json(input),
        )
        .await
    }
    .await;
    let (secret, errors, status) = match result {
        Ok((_, Json(created))) => (Some(created.key), Errors::default(), StatusCode::CREATED),
        Err(error @ (ApiError::Validation(_) | ApiError::Conflict { .. })) => {
            (None, Errors::of(viewer.t.0, &error), error_status(&error))
        }
        Err(error) => return error.into_response(),
    };
    shown(render(&state, &viewer, None, &form, secret, &errors, false, status).await)
}

/// Revokes a key (`DELETE /api/v1/api-keys/{id}`).
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, _): AdminForm,
) -> Response {
    let admin = match admin_of(&viewer) {
        Ok(admin) => admin,
        Err(error) => return error.into_response(),
    };
    match api::revoke_key(State(state.clone()), admin, RequestId(None), Path(id)).await {
        Ok(_) => see_other("/admin/api-keys?saved=1"),
        Err(error) => UiError::from(error).into_response(),
    }
}
