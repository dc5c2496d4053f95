//! The devices pages (issue 19, `docs/devices.md`): subjects and their consent, devices and
//! their keys, alert rules (admins), silences (staff) and the live detections dashboard.
//! Like the staff pages, every page reads and every form changes through the API's own handler
//! functions (`routes::subjects`, `routes::devices`, `routes::alerts`, `routes::detections`),
//! called with the form's values as their wire types: the same validation, authorization and
//! audit entries as the API. A rejected form comes back with each message next to its field
//! and the values typed kept.

pub mod dashboard;
pub mod device_admin;
pub mod rules;
pub mod silences;
pub mod subjects;

use axum::Router;
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::staff::Staff;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/detections", get(dashboard::page))
        .route("/detections/live", get(dashboard::live))
        .route("/silences", get(silences::page).post(silences::create))
        .route("/silences/{id}/end", post(silences::end))
        .route(
            "/admin/subjects",
            get(subjects::page).post(subjects::create),
        )
        .route(
            "/admin/subjects/{id}",
            get(subjects::edit).post(subjects::update),
        )
        .route("/admin/subjects/{id}/consent", post(subjects::consent))
        .route("/admin/subjects/{id}/export", get(subjects::export))
        .route("/admin/subjects/{id}/erase", post(subjects::erase))
        .route(
            "/admin/devices",
            get(device_admin::page).post(device_admin::create),
        )
        .route(
            "/admin/devices/{id}",
            get(device_admin::edit).post(device_admin::update),
        )
        .route("/admin/devices/{id}/key", post(device_admin::rotate))
        .route("/admin/alert-rules", get(rules::page).post(rules::create))
        .route(
            "/admin/alert-rules/{id}",
            get(rules::edit).post(rules::update),
        )
        .route("/admin/alert-rules/{id}/delete", post(rules::delete))
}

/// The viewer as the API's `Auth` caller.
pub fn auth_of(viewer: &Staff) -> crate::auth::Auth {
    crate::auth::Auth(viewer.principal.clone())
}

/// A number field: its text parsed, or a field error naming it.
pub fn number<T: std::str::FromStr>(
    form: &crate::ui::staff::Fields,
    name: &str,
) -> Result<Option<T>, ApiError> {
    form.get(name)
        .map(|v| {
            v.replace(',', ".")
                .parse()
                .map_err(|_| ApiError::field(name, "must be a number"))
        })
        .transpose()
}

/// A moment typed into a `datetime-local` field (read as UTC), or a field error naming it.
pub fn moment(
    form: &crate::ui::staff::Fields,
    name: &str,
) -> Result<Option<vigia_domain::Timestamp>, ApiError> {
    form.get(name)
        .map(|v| {
            let full = match v.len() {
                16 => format!("{v}:00Z"),
                19 => format!("{v}Z"),
                _ => v.clone(),
            };
            vigia_domain::Timestamp::parse_rfc3339(&full)
                .ok_or_else(|| ApiError::field(name, "must be a date and time"))
        })
        .transpose()
}

/// A moment as a `datetime-local` field's value (UTC, to the minute).
pub fn moment_value(at: vigia_domain::Timestamp) -> String {
    let rfc = at.to_rfc3339();
    rfc.get(..16).unwrap_or(&rfc).to_owned()
}
