//! `/silences` (staff and admins): the silences in force (`?all=1`: ended ones too) with what
//! each mutes, its period, reason, author and the alerts it kept from being raised; a form to
//! silence a rule, a subject or (admins) a device until a time, with a reason; and a button to
//! end one now — through `routes::alerts::{list_silences, create_silence, expire_silence}`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vigia_domain::Timestamp;

use super::super::staff::form::{Errors, settle, shown};
use super::super::staff::{Fields, Opt, Staff, StaffForm, StaffViewer, see_other};
use super::{auth_of, moment, moment_value};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, RequestId};
use crate::path::Path;
use crate::routes::alerts::{self as api, SilenceIn, SilenceQuery};
use crate::routes::subjects::ListQuery as ApiList;
use crate::state::AppState;
use crate::ui::staff::admin::admin_of;
use crate::ui::{Chrome, UiError};

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub all: Option<String>,
    pub saved: Option<String>,
    pub ended: Option<String>,
}

pub struct SilenceRow {
    pub id: i64,
    pub kind: String,
    pub target: String,
    pub starts: String,
    pub ends: String,
    pub reason: String,
    pub by: String,
    pub suppressed: i64,
    pub over: bool,
}

#[derive(Template)]
#[template(path = "ui/devices/silences.html")]
struct SilencesPage<'a> {
    c: &'a Chrome,
    rows: Vec<SilenceRow>,
    all: bool,
    rules: Vec<Opt>,
    subjects: Vec<Opt>,
    devices: Vec<Opt>,
    admin: bool,
    starts_at: String,
    ends_at: String,
    reason: String,
    errors: &'a Errors,
    saved: bool,
    ended: bool,
}

/// What a silence may mute, for the viewer: rules, their subjects and (admins) devices.
struct Targets {
    rules: Vec<(i64, String)>,
    subjects: Vec<(i64, String)>,
    devices: Vec<(i64, String)>,
}

async fn targets(state: &AppState, viewer: &Staff) -> ApiResult<Targets> {
    let Json(rules) = api::list_rules(State(state.clone()), auth_of(viewer)).await?;
    let Json(subjects) = crate::routes::subjects::list_subjects(
        State(state.clone()),
        auth_of(viewer),
        crate::extract::Query(ApiList {
            cursor: None,
            limit: Some(500),
            department: None,
            subject: None,
        }),
    )
    .await?;
    let devices = if viewer.is_admin() {
        let Json(page) = crate::routes::devices::list_devices(
            State(state.clone()),
            admin_of(viewer)?,
            crate::extract::Query(ApiList {
                cursor: None,
                limit: Some(500),
                department: None,
                subject: None,
            }),
        )
        .await?;
        page.items
            .into_iter()
            .map(|d| (d.id, format!("{} · {}", d.code, d.name)))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Targets {
        rules: rules.into_iter().map(|r| (r.id, r.name)).collect(),
        subjects: subjects
            .items
            .into_iter()
            .map(|s| (s.id, format!("{} · {}", s.code, s.name)))
            .collect(),
        devices,
    })
}

fn name_of(list: &[(i64, String)], id: i64) -> String {
    list.iter()
        .find(|(i, _)| *i == id)
        .map_or_else(|| format!("#{id}"), |(_, n)| n.clone())
}

async fn render(
    state: &AppState,
    viewer: &Staff,
    q: &PageQuery,
    form: &Fields,
    errors: &Errors,
    status: StatusCode,
) -> ApiResult<Response> {
    let t = viewer.t;
    let all = q.all.is_some();
    let Json(silences) = api::list_silences(
        State(state.clone()),
        auth_of(viewer),
        crate::extract::Query(SilenceQuery { all: Some(all) }),
    )
    .await?;
    let targets = targets(state, viewer).await?;
    let now = Timestamp::now();
    let rows = silences
        .into_iter()
        .map(|s| {
            let target = match s.kind {
                "rule" => name_of(&targets.rules, s.target_id),
                "subject" => name_of(&targets.subjects, s.target_id),
                _ => name_of(&targets.devices, s.target_id),
            };
            SilenceRow {
                id: s.id,
                kind: t.t(&format!("devices.silence.kind_{}", s.kind)).to_owned(),
                target,
                starts: t.datetime(s.starts_at),
                ends: t.datetime(s.ends_at),
                reason: s.reason,
                by: s.created_by,
                suppressed: s.suppressed,
                over: s.ends_at <= now,
            }
        })
        .collect();
    let options = |list: &[(i64, String)], name: &str| {
        Opt::list(
            list.iter().map(|(id, n)| (id.to_string(), n.clone())),
            &form.get(name),
        )
    };
    let page = SilencesPage {
        c: viewer.c(),
        rows,
        all,
        rules: options(&targets.rules, "rule_id"),
        subjects: options(&targets.subjects, "subject_id"),
        devices: options(&targets.devices, "device_id"),
        admin: viewer.is_admin(),
        starts_at: form.text("starts_at"),
        ends_at: form
            .get("ends_at")
            .unwrap_or_else(|| moment_value(now.plus_seconds(3600))),
        reason: form.text("reason"),
        errors,
        saved: q.saved.is_some(),
        ended: q.ended.is_some(),
    };
    Ok(viewer.render(status, &page))
}

pub async fn page(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
    StaffViewer(viewer): StaffViewer,
) -> Response {
    shown(
        render(
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

fn input(form: &Fields) -> Result<SilenceIn, ApiError> {
    let starts_at = moment(form, "starts_at");
    let ends_at = moment(form, "ends_at");
    let (starts_at, ends_at) = match (starts_at, ends_at) {
        (Ok(s), Ok(Some(e))) => (s, e),
        (Ok(_), Ok(None)) => return Err(ApiError::field("ends_at", "is required")),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    Ok(SilenceIn {
        rule_id: form.id("rule_id")?,
        subject_id: form.id("subject_id")?,
        device_id: form.id("device_id")?,
        starts_at,
        ends_at,
        reason: form.text("reason"),
    })
}

/// Creates a silence (`POST /api/v1/silences`).
pub async fn create(State(state): State<AppState>, StaffForm(viewer, form): StaffForm) -> Response {
    let result = async {
        let input = input(&form)?;
        api::create_silence(
            State(state.clone()),
            auth_of(&viewer),
            RequestId(None),
            Json(input),
        )
        .await
    }
    .await;
    let next = |_| "/silences?saved=1".to_owned();
    settle(&viewer, result, next, async |errors, status| {
        render(
            &state,
            &viewer,
            &PageQuery::default(),
            &form,
            &errors,
            status,
        )
        .await
    })
    .await
}

/// Ends a silence now (`DELETE /api/v1/silences/{id}`).
pub async fn end(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    StaffForm(viewer, _): StaffForm,
) -> Response {
    match api::expire_silence(
        State(state.clone()),
        auth_of(&viewer),
        RequestId(None),
        Path(id),
    )
    .await
    {
        Ok(_) => see_other("/silences?ended=1"),
        Err(error) => UiError::from(error).into_response(),
    }
}
