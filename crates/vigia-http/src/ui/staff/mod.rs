//! The staff side of the web UI: the incident console, the alerts, the dashboard, reports and
//! the admin pages. Every page reads through the same store functions as the API routes, with the
//! caller's scope, and every change goes through the API's own handler function (called with
//! the form's values as its wire type), so the rules, the authorization and the audit trail
//! are the API's.

pub mod admin;
pub mod alert;
pub mod alerts;
pub mod charts_view;
pub mod console;
pub mod custom_report;
pub mod dashboard;
pub mod form;
pub mod incident;
pub mod reports;
pub mod text;

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use vigia_domain::auth::{Principal, UserPrincipal};
use vigia_domain::users::Role;
use vigia_store::{catalog, users};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
pub use crate::ui::see_other;
use crate::ui::{Chrome, UiError, Viewer as UiViewer};
pub use form::Fields;
pub use text::Tr;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(console::page))
        .route("/console/rows", get(console::rows))
        .route("/console/incidents/{code}", get(incident::page))
        .route("/console/incidents/{code}/live", get(incident::live))
        .route(
            "/console/incidents/{code}/status",
            post(incident::change_status),
        )
        .route(
            "/console/incidents/{code}/comments",
            post(incident::add_comment),
        )
        .route("/console/incidents/{code}/assignee", post(incident::assign))
        .route(
            "/console/incidents/{code}/department",
            post(incident::route),
        )
        .route(
            "/console/incidents/{code}/visibility",
            post(incident::visibility),
        )
        .route("/alerts", get(alerts::page))
        .route("/alerts/rows", get(alerts::rows))
        .route("/alerts/{id}", get(alert::detail))
        .route("/alerts/{id}/live", get(alert::detail_live))
        .route("/alerts/{id}/acknowledge", post(alert::acknowledge))
        .route("/alerts/{id}/resolve", post(alert::resolve))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/live", get(dashboard::live))
        .route("/reports", get(reports::page))
        .route("/reports/run", post(reports::run))
        .route("/reports/custom", post(custom_report::run))
        .route("/reports/{id}", get(reports::report))
        .merge(admin::router())
}

/// A signed-in staff member or admin looking at a page: the UI's [`Viewer`] (language, CSRF
/// token, the page's chrome) and the account as the API sees it.
pub struct Staff {
    pub ui: UiViewer,
    pub user: UserPrincipal,
    pub principal: Principal,
    pub t: Tr,
}

impl Staff {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    pub fn c(&self) -> &Chrome {
        &self.ui.chrome
    }

    /// Whether the page's URL carries `flag` (`saved=1`, `done=1` after a form's 303).
    pub fn flag(&self, flag: &str) -> bool {
        self.ui
            .chrome
            .here
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|p| p == flag))
    }

    /// A form's fields, its CSRF token checked (the `Viewer` extractor has already refused a
    /// post from another origin).
    fn form(&self, body: &[u8]) -> Result<Fields, UiError> {
        let fields = Fields::parse(body);
        self.ui.check_csrf(fields.get("csrf").as_deref())?;
        Ok(fields)
    }

    /// A template rendered for this viewer (with the CSRF cookie when the browser had none).
    pub fn render<T: Template>(&self, status: StatusCode, template: &T) -> Response {
        crate::ui::render(&self.ui, status, template)
    }
}

/// The staff member or admin behind the UI's viewer: staff or admins when `admin` is false,
/// admins only when it is true; the sign-in page for a visitor, a 403 page for others.
fn staff(ui: UiViewer, admin: bool) -> Result<Staff, UiError> {
    let Some(Auth(principal)) = ui.auth.clone() else {
        return Err(UiError::SignIn(ui.chrome.here.clone()));
    };
    let Principal::User(user) = principal.clone() else {
        return Err(UiError::SignIn(ui.chrome.here.clone()));
    };
    let allowed = if admin {
        user.role == Role::Admin
    } else {
        user.role >= Role::Staff
    };
    if !allowed {
        return Err(UiError::Api(ApiError::Forbidden {
            detail: "this page is for staff and administrators",
        }));
    }
    let t = Tr(ui.chrome.lang);
    Ok(Staff {
        user,
        principal,
        t,
        ui,
    })
}

/// A posted form and who posted it, read in the order a handler taking the UI's viewer and
/// then the body would: the origin check, the body (so a body over the limit is a 413
/// whoever sends it), then the poster's role ([`staff`]) and the form's CSRF token
/// ([`Staff::form`]).
async fn posted(req: Request, state: &AppState, admin: bool) -> Result<(Staff, Fields), Response> {
    let (mut parts, body) = req.into_parts();
    let ui = UiViewer::from_request_parts(&mut parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    let body = Bytes::from_request(Request::from_parts(parts, body), state)
        .await
        .map_err(IntoResponse::into_response)?;
    let viewer = staff(ui, admin).map_err(IntoResponse::into_response)?;
    let fields = viewer.form(&body).map_err(IntoResponse::into_response)?;
    Ok((viewer, fields))
}

/// A staff page's viewer, as a handler's argument: a staff member or an admin; the sign-in
/// page for a visitor, a 403 page for anyone else.
pub struct StaffViewer(pub Staff);

/// An admin page's viewer, as a handler's argument: an admin; the sign-in page for a
/// visitor, a 403 page for anyone else.
pub struct AdminViewer(pub Staff);

/// A form posted by a staff member or an admin, with its fields (see [`posted`]); a
/// handler's last argument, as it reads the body.
pub struct StaffForm(pub Staff, pub Fields);

/// A form posted by an admin, with its fields (see [`posted`]); a handler's last argument,
/// as it reads the body.
pub struct AdminForm(pub Staff, pub Fields);

impl FromRequestParts<AppState> for StaffViewer {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, UiError> {
        staff(UiViewer::from_request_parts(parts, state).await?, false).map(Self)
    }
}

impl FromRequestParts<AppState> for AdminViewer {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, UiError> {
        staff(UiViewer::from_request_parts(parts, state).await?, true).map(Self)
    }
}

impl FromRequest<AppState> for StaffForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (viewer, fields) = posted(req, state, false).await?;
        Ok(Self(viewer, fields))
    }
}

impl FromRequest<AppState> for AdminForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (viewer, fields) = posted(req, state, true).await?;
        Ok(Self(viewer, fields))
    }
}

/// Names of the catalog's departments and categories, and of the people a page mentions.
#[derive(Debug, Default)]
pub struct Names {
    pub departments: Vec<(i64, String)>,
    pub categories: Vec<(i64, String)>,
    people: HashMap<i64, String>,
}

impl Names {
    pub async fn load(state: &AppState, t: Tr) -> ApiResult<Self> {
        let departments = catalog::list_departments(&state.db)
            .await?
            .into_iter()
            .map(|d| (d.id.0, d.name))
            .collect();
        let categories = catalog::list_categories(&state.db)
            .await?
            .into_iter()
            .map(|c| {
                let name = match t.0 {
                    crate::ui::Lang::Es => c.name_es,
                    crate::ui::Lang::En => c.name_en,
                };
                (c.id.0, name)
            })
            .collect();
        Ok(Self {
            departments,
            categories,
            people: HashMap::new(),
        })
    }

    /// Learns the display names of `ids` (each read once).
    pub async fn learn_people(&mut self, state: &AppState, ids: Vec<i64>) -> ApiResult<()> {
        for id in ids {
            if self.people.contains_key(&id) {
                continue;
            }
            let name = match users::find(&state.db, vigia_domain::ids::UserId(id)).await {
                Ok(user) => user.display_name,
                Err(vigia_store::StoreError::NotFound) => format!("#{id}"),
                Err(error) => return Err(error.into()),
            };
            self.people.insert(id, name);
        }
        Ok(())
    }

    pub fn department(&self, id: Option<i64>) -> Option<&str> {
        let id = id?;
        self.departments
            .iter()
            .find(|(d, _)| *d == id)
            .map(|(_, n)| n.as_str())
    }

    pub fn category(&self, id: i64) -> String {
        self.categories
            .iter()
            .find(|(c, _)| *c == id)
            .map_or_else(|| format!("#{id}"), |(_, n)| n.clone())
    }

    pub fn person(&self, id: Option<i64>) -> Option<&str> {
        self.people.get(&id?).map(String::as_str)
    }
}

/// One `<option>` of a `<select>`.
#[derive(Debug, Clone)]
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Opt {
    /// Options from `(value, label)` pairs, the one equal to `current` selected.
    pub fn list(
        items: impl Iterator<Item = (String, String)>,
        current: &Option<String>,
    ) -> Vec<Self> {
        let current = current.as_deref().map(str::trim);
        items
            .map(|(value, label)| Opt {
                selected: current == Some(value.as_str()),
                value,
                label,
            })
            .collect()
    }
}
