//! `/admin/webhooks`: the endpoints (URL, message types, enabled, failure streak), a form to
//! register one — its signing secret shown once, on the answer to that post — and
//! `/admin/webhooks/{id}`: the endpoint's form (URL, description, types, enabled) and its
//! delivery log (each delivery's event — incident, alert or exam event, with its type — and its
//! attempts with status code, outcome and time), with a replay button per delivery; through
//! `routes::webhooks`'s handlers.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::super::form::{Errors, error_status, settle, shown};
use super::super::{AdminForm, AdminViewer, Fields, Staff, Tr, see_other};
use super::admin_of;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query, RequestId};
use crate::path::Path;
use crate::routes::deliveries::{self, DeliveryEventOut, DeliveryOut, DeliveryQuery};
use crate::routes::webhooks::{self as api, WebhookIn, WebhookPatchIn};
use crate::state::AppState;
use crate::ui::{Chrome, UiError};
use vigia_store::exam_events;

/// One endpoint as the list shows it.
pub struct EndpointRow {
    pub id: i64,
    pub url: String,
    pub description: String,
    pub types: String,
    pub enabled: bool,
    pub disabled_reason: String,
    pub failure_streak: i64,
}

/// One attempt of a delivery.
pub struct AttemptRow {
    pub attempt: i64,
    pub at: String,
    pub outcome: String,
    pub status_code: String,
    pub latency_ms: i64,
    pub error: String,
}

/// The event a delivery is about: an incident, alert or exam event, with its type and a link to
/// what it is about.
pub struct EventCell {
    /// `incident` or `exam`: the table of the log.
    pub log: &'static str,
    /// "Incident event", "Alert event" or "Exam event (proctoring)".
    pub label: String,
    pub id: i64,
    /// The event's type (`incident.created`, `media.analyzed`, ...), or that it is gone.
    pub kind: String,
    /// The page of the alert or exam it is about, with its name.
    pub link: Option<(String, String)>,
}

/// One delivery of the log.
pub struct DeliveryRow {
    pub id: i64,
    pub message_type: String,
    pub message_id: String,
    pub status: String,
    pub status_label: String,
    pub created: String,
    pub incident: String,
    pub event: Option<EventCell>,
    pub attempts: Vec<AttemptRow>,
    /// Dead and delivered deliveries can be sent again; a pending one is on its way.
    pub replayable: bool,
}

/// A message type's checkbox.
pub struct TypeOpt {
    pub value: String,
    pub selected: bool,
    /// The catalog key of what the type carries, for those whose name does not say it.
    pub hint: Option<&'static str>,
}

/// The message types as checkboxes (`*`: every type but proctoring's), those in `chosen`
/// ticked.
fn type_options(chosen: &[String]) -> Vec<TypeOpt> {
    std::iter::once("*")
        .chain(api::known_types())
        .map(|t| TypeOpt {
            value: t.to_owned(),
            selected: chosen.iter().any(|c| c == t),
            hint: match t {
                "*" => Some("staff.webhook.all_types"),
                exam_events::ANALYZED => Some("staff.webhook.type.media_analyzed"),
                exam_events::ALERT => Some("staff.webhook.type.proctoring_alert"),
                exam_events::REVIEWED => Some("staff.webhook.type.proctoring_reviewed"),
                _ => None,
            },
        })
        .collect()
}

fn row(lang: crate::ui::Lang, e: &api::WebhookOut) -> EndpointRow {
    EndpointRow {
        id: e.id,
        url: e.url.clone(),
        description: e.description.clone(),
        types: e.event_types.join(", "),
        enabled: e.enabled,
        // The store's reasons are domain messages, read through the catalog like field errors.
        disabled_reason: e
            .disabled_reason
            .as_deref()
            .map(|r| crate::ui::i18n::field_message(lang, r))
            .unwrap_or_default(),
        failure_streak: e.failure_streak,
    }
}

#[derive(Template)]
#[template(path = "ui/staff/admin_webhooks.html")]
struct WebhooksPage<'a> {
    c: &'a Chrome,
    rows: Vec<EndpointRow>,
    url: String,
    description: String,
    types: Vec<TypeOpt>,
    /// The secret of the endpoint just registered (shown this once).
    secret: Option<String>,
    errors: &'a Errors,
    saved: bool,
}

async fn render_list(
    state: &AppState,
    viewer: &Staff,
    form: &Fields,
    secret: Option<String>,
    errors: &Errors,
    status: StatusCode,
) -> ApiResult<Response> {
    let Json(endpoints) = api::list_endpoints(State(state.clone()), admin_of(viewer)?).await?;
    let fresh = secret.is_some();
    let page = WebhooksPage {
        c: viewer.c(),
        rows: endpoints.iter().map(|e| row(viewer.t.0, e)).collect(),
        url: if fresh {
            String::new()
        } else {
            form.text("url")
        },
        description: if fresh {
            String::new()
        } else {
            form.text("description")
        },
        types: type_options(&if fresh {
            Vec::new()
        } else {
            form.all("event_types")
        }),
        secret,
        errors,
        saved: viewer.flag("saved=1"),
    };
    Ok(viewer.render(status, &page))
}

pub async fn page(State(state): State<AppState>, AdminViewer(viewer): AdminViewer) -> Response {
    shown(
        render_list(
            &state,
            &viewer,
            &Fields::default(),
            None,
            &Errors::default(),
            StatusCode::OK,
        )
        .await,
    )
}

/// Registers an endpoint and answers with the list showing its secret (201, not cached: the
/// only time the secret is shown).
pub async fn create(State(state): State<AppState>, AdminForm(viewer, form): AdminForm) -> Response {
    let result = async {
        let input = WebhookIn {
            url: form.text("url"),
            description: form.text("description"),
            event_types: form.all("event_types"),
        };
        api::create_endpoint(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Json(input),
        )
        .await
    }
    .await;
    let (secret, errors, status) = match result {
        Ok((_, Json(created))) => (Some(created.secret), Errors::default(), StatusCode::CREATED),
        Err(error @ (ApiError::Validation(_) | ApiError::Conflict { .. })) => {
            (None, Errors::of(viewer.t.0, &error), error_status(&error))
        }
        Err(error) => return UiError::from(error).into_response(),
    };
    shown(render_list(&state, &viewer, &form, secret, &errors, status).await)
}

#[derive(Template)]
#[template(path = "ui/staff/admin_webhook.html")]
struct WebhookPage<'a> {
    c: &'a Chrome,
    e: EndpointRow,
    url: String,
    description: String,
    types: Vec<TypeOpt>,
    enabled: bool,
    deliveries: Vec<DeliveryRow>,
    next: Option<String>,
    errors: &'a Errors,
    saved: bool,
    replayed: bool,
}

fn event_cell(t: Tr, e: &DeliveryEventOut) -> EventCell {
    let (log, label, link) = match (e.log.as_str(), e.alert_id, e.exam_id) {
        ("exam", _, exam) => (
            "exam",
            "staff.webhook.event_exam",
            exam.map(|x| {
                (
                    format!("/proctoring/exams/{x}/live"),
                    format!("{} #{x}", t.t("staff.webhook.exam")),
                )
            }),
        ),
        (_, Some(alert), _) => (
            "incident",
            "staff.webhook.event_alert",
            Some((
                format!("/alerts/{alert}"),
                format!("{} #{alert}", t.t("staff.webhook.alert")),
            )),
        ),
        _ => ("incident", "staff.webhook.event_incident", None),
    };
    EventCell {
        log,
        label: t.t(label).to_owned(),
        id: e.id,
        kind: e
            .kind
            .clone()
            .unwrap_or_else(|| t.t("staff.webhook.event_gone").to_owned()),
        link,
    }
}

fn delivery_row(viewer: &Staff, d: &DeliveryOut) -> DeliveryRow {
    let t = viewer.t;
    DeliveryRow {
        event: d.event.as_ref().map(|e| event_cell(t, e)),
        id: d.id,
        message_type: d.message_type.clone(),
        message_id: d.message_id.clone(),
        status: d.status.clone(),
        status_label: t
            .t(&format!("staff.webhook.status_{}", d.status))
            .to_owned(),
        created: t.datetime(d.created_at),
        incident: d
            .incident_id
            .map_or_else(String::new, |i| format!("INC-{i:06}")),
        attempts: d
            .attempt_log
            .iter()
            .map(|a| AttemptRow {
                attempt: a.attempt,
                at: t.datetime(a.at),
                outcome: t
                    .t(&format!("staff.webhook.outcome_{}", a.outcome))
                    .to_owned(),
                status_code: a
                    .status_code
                    .map_or_else(|| "—".to_owned(), |c| c.to_string()),
                latency_ms: a.latency_ms,
                error: a.error.clone().unwrap_or_default(),
            })
            .collect(),
        replayable: d.status == "dead" || d.status == "delivered",
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct LogQuery {
    pub cursor: Option<String>,
}

async fn render_one(
    state: &AppState,
    viewer: &Staff,
    id: i64,
    cursor: Option<String>,
    form: Option<&Fields>,
    errors: &Errors,
    status: StatusCode,
) -> ApiResult<Response> {
    let Json(endpoint) =
        api::get_endpoint(State(state.clone()), admin_of(viewer)?, Path(id)).await?;
    let Json(log) = deliveries::list_deliveries(
        State(state.clone()),
        admin_of(viewer)?,
        Query(DeliveryQuery {
            event: None,
            event_log: None,
            incident: None,
            endpoint: Some(id),
            channel: Some("webhook".into()),
            status: None,
            cursor: cursor.filter(|c| !c.is_empty()),
            limit: Some(25),
        }),
    )
    .await?;
    let (url, description, types, enabled) = match form {
        Some(f) => (
            f.text("url"),
            f.text("description"),
            f.all("event_types"),
            f.checked("enabled"),
        ),
        None => (
            endpoint.url.clone(),
            endpoint.description.clone(),
            endpoint.event_types.clone(),
            endpoint.enabled,
        ),
    };
    let page = WebhookPage {
        c: viewer.c(),
        e: row(viewer.t.0, &endpoint),
        url,
        description,
        types: type_options(&types),
        enabled,
        deliveries: log.items.iter().map(|d| delivery_row(viewer, d)).collect(),
        next: log.next_cursor,
        errors,
        saved: viewer.flag("saved=1"),
        replayed: viewer.flag("replayed=1"),
    };
    Ok(viewer.render(status, &page))
}

/// One endpoint: its form and its delivery log.
pub async fn edit(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    axum::extract::Query(q): axum::extract::Query<LogQuery>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    shown(
        render_one(
            &state,
            &viewer,
            id,
            q.cursor,
            None,
            &Errors::default(),
            StatusCode::OK,
        )
        .await,
    )
}

/// Changes an endpoint (`PATCH /api/v1/webhooks/{id}`): URL, description, types, enabled.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let result = async {
        let input = WebhookPatchIn {
            url: Some(form.text("url")),
            description: Some(form.text("description")),
            event_types: Some(form.all("event_types")),
            enabled: Some(form.checked("enabled")),
        };
        api::update_endpoint(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Path(id),
            Json(input),
        )
        .await
    }
    .await;
    let next = |_| format!("/admin/webhooks/{id}?saved=1");
    settle(&viewer, result, next, async |errors, status| {
        render_one(&state, &viewer, id, None, Some(&form), &errors, status).await
    })
    .await
}

/// Sends a delivery again (`POST /api/v1/notifications/deliveries/{id}/replay`); a refusal
/// (still pending, endpoint disabled) is shown as the page's alert, above the endpoint's form.
pub async fn replay(
    State(state): State<AppState>,
    Path((id, delivery)): Path<(i64, i64)>,
    AdminForm(viewer, _): AdminForm,
) -> Response {
    let result = async {
        deliveries::replay_delivery(State(state.clone()), admin_of(&viewer)?, Path(delivery)).await
    }
    .await;
    match result {
        Ok(_) => see_other(&format!("/admin/webhooks/{id}?replayed=1")),
        Err(error @ ApiError::Conflict { .. }) => render_one(
            &state,
            &viewer,
            id,
            None,
            None,
            &Errors::of(viewer.t.0, &error),
            StatusCode::CONFLICT,
        )
        .await
        .unwrap_or_else(|e| UiError::from(e).into_response()),
        Err(error) => UiError::from(error).into_response(),
    }
}
