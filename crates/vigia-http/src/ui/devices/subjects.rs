//! `/admin/subjects`: monitored subjects (code, name, department, zone, consent, refused
//! detections), a form to register one (with consent, recorded now by the admin), and
//! `/admin/subjects/{id}`: change it, record or withdraw consent, export everything stored about
//! the subject (a JSON file; audited) and erase it (audited) — through `routes::subjects`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vigia_store::catalog;

use super::super::staff::form::{Errors, settle, shown};
use super::super::staff::{AdminForm, AdminViewer, Fields, Names, Opt, Staff, see_other};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, RequestId};
use crate::path::Path;
use crate::routes::subjects::{self as api, ListQuery as ApiList, SubjectIn, SubjectOut};
use crate::state::AppState;
use crate::ui::staff::admin::admin_of;
use crate::ui::{Chrome, UiError};

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub saved: Option<String>,
    pub erased: Option<String>,
}

pub struct SubjectRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub department: String,
    pub zone: String,
    pub consent: Option<String>,
    pub refused: i64,
}

#[derive(Template)]
#[template(path = "ui/devices/subjects.html")]
struct SubjectsPage<'a> {
    c: &'a Chrome,
    rows: Vec<SubjectRow>,
    next: Option<String>,
    form: SubjectForm,
    errors: &'a Errors,
    saved: bool,
    erased: bool,
}

/// The values of the subject form.
pub struct SubjectForm {
    pub code: String,
    pub name: String,
    pub departments: Vec<Opt>,
    pub zones: Vec<Opt>,
    pub consent: bool,
}

async fn subject_form(
    state: &AppState,
    names: &Names,
    code: String,
    name: String,
    department: Option<String>,
    zone: Option<String>,
    consent: bool,
) -> ApiResult<SubjectForm> {
    let zones = catalog::list_zones(&state.db).await?;
    Ok(SubjectForm {
        code,
        name,
        departments: Opt::list(
            names
                .departments
                .iter()
                .map(|(id, n)| (id.to_string(), n.clone())),
            &department,
        ),
        zones: Opt::list(
            zones.into_iter().map(|z| (z.id.0.to_string(), z.name)),
            &zone,
        ),
        consent,
    })
}

fn input(form: &Fields) -> Result<SubjectIn, ApiError> {
    let department_id = form
        .id("department_id")?
        .ok_or_else(|| ApiError::field("department_id", "is required"))?;
    Ok(SubjectIn {
        code: form.text("code"),
        name: form.text("name"),
        department_id,
        zone_id: form.id("zone_id")?,
        consent: form.checked("consent"),
    })
}

async fn render_list(
    state: &AppState,
    viewer: &Staff,
    q: PageQuery,
    form: &Fields,
    errors: &Errors,
    status: StatusCode,
) -> ApiResult<Response> {
    let t = viewer.t;
    let names = Names::load(state, t).await?;
    let zones = catalog::list_zones(&state.db).await?;
    let Json(page) = api::list_subjects(
        State(state.clone()),
        super::auth_of(viewer),
        crate::extract::Query(ApiList {
            cursor: q.cursor.filter(|c| !c.is_empty()),
            limit: Some(50),
            department: None,
            subject: None,
        }),
    )
    .await?;
    let rows = page
        .items
        .into_iter()
        .map(|s| SubjectRow {
            id: s.id,
            department: names
                .department(Some(s.department_id))
                .unwrap_or("—")
                .to_owned(),
            zone: s
                .zone_id
                .and_then(|z| zones.iter().find(|zone| zone.id.0 == z))
                .map_or_else(|| "—".to_owned(), |z| z.name.clone()),
            consent: s.consent_at.map(|at| t.datetime(at)),
            code: s.code,
            name: s.name,
            refused: s.refused,
        })
        .collect();
    let form = subject_form(
        state,
        &names,
        form.text("code"),
        form.text("name"),
        form.get("department_id"),
        form.get("zone_id"),
        form.checked("consent"),
    )
    .await?;
    let page = SubjectsPage {
        c: viewer.c(),
        rows,
        next: page.next_cursor,
        form,
        errors,
        saved: q.saved.is_some(),
        erased: q.erased.is_some(),
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
            q,
            &Fields::default(),
            &Errors::default(),
            StatusCode::OK,
        )
        .await,
    )
}

/// Registers a subject (`POST /api/v1/subjects`).
pub async fn create(State(state): State<AppState>, AdminForm(viewer, form): AdminForm) -> Response {
    let result = async {
        let input = input(&form)?;
        api::create_subject(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Json(input),
        )
        .await
    }
    .await;
    let next = |(_, Json(created)): (_, Json<SubjectOut>)| {
        format!("/admin/subjects/{}?saved=1", created.id)
    };
    settle(&viewer, result, next, async |errors, status| {
        render_list(
            &state,
            &viewer,
            PageQuery::default(),
            &form,
            &errors,
            status,
        )
        .await
    })
    .await
}

#[derive(Template)]
#[template(path = "ui/devices/subject.html")]
struct SubjectPage<'a> {
    c: &'a Chrome,
    s: &'a SubjectOut,
    consent_at: Option<String>,
    form: SubjectForm,
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
    let Json(s) = api::get_subject(State(state.clone()), super::auth_of(viewer), Path(id)).await?;
    let form = match form {
        Some(f) => {
            subject_form(
                state,
                &names,
                f.text("code"),
                f.text("name"),
                f.get("department_id"),
                f.get("zone_id"),
                false,
            )
            .await?
        }
        None => {
            subject_form(
                state,
                &names,
                s.code.clone(),
                s.name.clone(),
                Some(s.department_id.to_string()),
                s.zone_id.map(|z| z.to_string()),
                false,
            )
            .await?
        }
    };
    let page = SubjectPage {
        c: viewer.c(),
        consent_at: s.consent_at.map(|at| viewer.t.datetime(at)),
        s: &s,
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

/// Changes a subject (`PUT /api/v1/subjects/{id}`).
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let result = async {
        let input = input(&form)?;
        api::update_subject(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Path(id),
            Json(input),
        )
        .await
    }
    .await;
    let next = |_| format!("/admin/subjects/{id}?saved=1");
    settle(&viewer, result, next, async |errors, status| {
        render_one(&state, &viewer, id, Some(&form), &errors, false, status).await
    })
    .await
}

/// Records (`give=true`) or withdraws consent (`PUT` / `DELETE /api/v1/subjects/{id}/consent`).
pub async fn consent(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let result = async {
        let admin: Admin = admin_of(&viewer)?;
        if form.get("give").as_deref() == Some("true") {
            api::record_consent(State(state.clone()), admin, RequestId(None), Path(id)).await
        } else {
            api::withdraw_consent(State(state.clone()), admin, RequestId(None), Path(id)).await
        }
    }
    .await;
    match result {
        Ok(_) => see_other(&format!("/admin/subjects/{id}?saved=1")),
        Err(error) => UiError::from(error).into_response(),
    }
}

/// Everything stored about the subject as a JSON file (`GET /api/v1/subjects/{id}/export`;
/// audited as `subject.exported`).
pub async fn export(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    let result = async {
        api::export_subject(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Path(id),
        )
        .await
    }
    .await;
    match result {
        Ok(Json(document)) => {
            let name = format!("subject_{}.json", document.subject.code);
            let bytes = serde_json::to_vec_pretty(&document).unwrap_or_default();
            let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                .unwrap_or(HeaderValue::from_static("attachment"));
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    ),
                    (header::CONTENT_DISPOSITION, disposition),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                bytes,
            )
                .into_response()
        }
        Err(error) => UiError::from(error).into_response(),
    }
}

/// Erases the subject (`DELETE /api/v1/subjects/{id}`) once its code is typed to confirm.
pub async fn erase(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let result = async {
        let Json(subject) =
            api::get_subject(State(state.clone()), super::auth_of(&viewer), Path(id)).await?;
        if form.get("confirm").as_deref() != Some(subject.code.as_str()) {
            return Err(ApiError::field(
                "confirm",
                "type the subject's code to confirm the erasure",
            ));
        }
        api::erase_subject(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Path(id),
        )
        .await
    }
    .await;
    let next = |_| "/admin/subjects?erased=1".to_owned();
    settle(&viewer, result, next, async |errors, status| {
        render_one(&state, &viewer, id, None, &errors, false, status).await
    })
    .await
}
