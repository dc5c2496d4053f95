//! `/admin/devices`: devices (code, name, zone and location, active, last seen, firmware,
//! refused and invalid counts) and a form to register one — its API key shown once, on the
//! page that answers the form, and never again; `/admin/devices/{id}`: change it (the active
//! flag stops its ingestion at once) or give it a new key (also shown once) — through
//! `routes::devices`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vigia_domain::Timestamp;
use vigia_store::catalog;

use super::super::staff::form::{Errors, error_status, is_form_error, settle, shown};
use super::super::staff::{AdminForm, AdminViewer, Fields, Opt, Staff};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, RequestId};
use crate::path::Path;
use crate::routes::devices::{self as api, DeviceIn, DeviceOut};
use crate::routes::subjects::ListQuery as ApiList;
use crate::state::AppState;
use crate::ui::staff::admin::admin_of;
use crate::ui::{Chrome, UiError};

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub saved: Option<String>,
}

pub struct DeviceRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub place: String,
    pub active: bool,
    pub last_seen: String,
    pub firmware: String,
    pub refused: i64,
    pub invalid: i64,
}

/// The values of the device form.
pub struct DeviceForm {
    pub code: String,
    pub name: String,
    pub zones: Vec<Opt>,
    pub location: String,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "ui/devices/devices.html")]
struct DevicesPage<'a> {
    c: &'a Chrome,
    rows: Vec<DeviceRow>,
    next: Option<String>,
    form: DeviceForm,
    /// The key of the device just registered (shown this once) and its code.
    secret: Option<(String, String)>,
    errors: &'a Errors,
    saved: bool,
}

async fn device_form(
    state: &AppState,
    code: String,
    name: String,
    zone: Option<String>,
    location: String,
    active: bool,
) -> ApiResult<DeviceForm> {
    let zones = catalog::list_zones(&state.db).await?;
    Ok(DeviceForm {
        code,
        name,
        zones: Opt::list(
            zones.into_iter().map(|z| (z.id.0.to_string(), z.name)),
            &zone,
        ),
        location,
        active,
    })
}

fn input(form: &Fields) -> Result<DeviceIn, ApiError> {
    Ok(DeviceIn {
        code: form.text("code"),
        name: form.text("name"),
        zone_id: form.id("zone_id")?,
        location: form.get("location"),
        active: form.checked("active"),
    })
}

fn when(viewer: &Staff, at: Option<Timestamp>) -> String {
    at.map_or_else(
        || viewer.t.t("devices.device.never").to_owned(),
        |at| viewer.t.datetime(at),
    )
}

#[allow(clippy::too_many_arguments)]
async fn render_list(
    state: &AppState,
    viewer: &Staff,
    cursor: Option<String>,
    form: &Fields,
    secret: Option<(String, String)>,
    errors: &Errors,
    saved: bool,
    status: StatusCode,
) -> ApiResult<Response> {
    let zones = catalog::list_zones(&state.db).await?;
    let Json(page) = api::list_devices(
        State(state.clone()),
        admin_of(viewer)?,
        crate::extract::Query(ApiList {
            cursor: cursor.filter(|c| !c.is_empty()),
            limit: Some(50),
            department: None,
            subject: None,
        }),
    )
    .await?;
    let rows = page
        .items
        .into_iter()
        .map(|d| {
            let zone = d
                .zone_id
                .and_then(|z| zones.iter().find(|zone| zone.id.0 == z))
                .map(|z| z.name.clone());
            let place = [zone, d.location.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" · ");
            DeviceRow {
                id: d.id,
                last_seen: when(viewer, d.last_seen_at),
                firmware: d.firmware.clone().unwrap_or_else(|| "—".to_owned()),
                place: if place.is_empty() {
                    "—".into()
                } else {
                    place
                },
                code: d.code,
                name: d.name,
                active: d.active,
                refused: d.refused,
                invalid: d.invalid,
            }
        })
        .collect();
    let fresh = secret.is_some() || form.get("csrf").is_none();
    let form = if fresh {
        device_form(
            state,
            String::new(),
            String::new(),
            None,
            String::new(),
            true,
        )
        .await?
    } else {
        device_form(
            state,
            form.text("code"),
            form.text("name"),
            form.get("zone_id"),
            form.text("location"),
            form.checked("active"),
        )
        .await?
    };
    let page = DevicesPage {
        c: viewer.c(),
        rows,
        next: page.next_cursor,
        form,
        secret,
        errors,
        saved,
    };
    Ok(viewer.render(status, &page))
}

pub async fn page(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    shown(
        render_list(
            &state,
            &viewer,
            q.cursor,
            &Fields::default(),
            None,
            &Errors::default(),
            q.saved.is_some(),
            StatusCode::OK,
        )
        .await,
    )
}

/// Registers a device and answers with the page showing its key (201; the only time the key
/// exists outside the device).
pub async fn create(State(state): State<AppState>, AdminForm(viewer, form): AdminForm) -> Response {
    let result = async {
        let input = input(&form)?;
        api::create_device(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Json(input),
        )
        .await
    }
    .await;
    let (secret, errors, status) = match result {
        Ok((_, Json(created))) => (
            Some((created.key, created.device.code)),
            Errors::default(),
            StatusCode::CREATED,
        ),
        Err(error) if is_form_error(&error) => {
            (None, Errors::of(viewer.t.0, &error), error_status(&error))
        }
        Err(error) => return UiError::from(error).into_response(),
    };
    shown(render_list(&state, &viewer, None, &form, secret, &errors, false, status).await)
}

#[derive(Template)]
#[template(path = "ui/devices/device.html")]
struct DevicePage<'a> {
    c: &'a Chrome,
    d: &'a DeviceOut,
    last_seen: String,
    form: DeviceForm,
    secret: Option<String>,
    errors: &'a Errors,
    saved: bool,
}

#[allow(clippy::too_many_arguments)]
async fn render_one(
    state: &AppState,
    viewer: &Staff,
    id: i64,
    form: Option<&Fields>,
    secret: Option<String>,
    errors: &Errors,
    saved: bool,
    status: StatusCode,
) -> ApiResult<Response> {
    let Json(d) = api::get_device(State(state.clone()), admin_of(viewer)?, Path(id)).await?;
    let form = match form {
        Some(f) => {
            device_form(
                state,
                f.text("code"),
                f.text("name"),
                f.get("zone_id"),
                f.text("location"),
                f.checked("active"),
            )
            .await?
        }
        None => {
            device_form(
                state,
                d.code.clone(),
                d.name.clone(),
                d.zone_id.map(|z| z.to_string()),
                d.location.clone().unwrap_or_default(),
                d.active,
            )
            .await?
        }
    };
    let page = DevicePage {
        c: viewer.c(),
        last_seen: when(viewer, d.last_seen_at),
        d: &d,
        form,
        secret,
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
            None,
            &Errors::default(),
            q.saved.is_some(),
            StatusCode::OK,
        )
        .await,
    )
}

/// Changes a device (`PUT /api/v1/devices/{id}`).
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let result = async {
        let input = input(&form)?;
        api::update_device(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Path(id),
            Json(input),
        )
        .await
    }
    .await;
    let next = |_| format!("/admin/devices/{id}?saved=1");
    settle(&viewer, result, next, async |errors, status| {
        render_one(
            &state,
            &viewer,
            id,
            Some(&form),
            None,
            &errors,
            false,
            status,
        )
        .await
    })
    .await
}

/// Gives the device a new key, revoking the old one (`POST /api/v1/devices/{id}/key`); the new
/// key is shown once on the answer.
pub async fn rotate(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, _): AdminForm,
) -> Response {
    let result = async {
        api::rotate_device_key(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Path(id),
        )
        .await
    }
    .await;
    match result {
        Ok(Json(rotated)) => render_one(
            &state,
            &viewer,
            id,
            None,
            Some(rotated.key),
            &Errors::default(),
            false,
            StatusCode::OK,
        )
        .await
        .unwrap_or_else(|e| UiError::from(e).into_response()),
        Err(error) => UiError::from(error).into_response(),
    }
}
