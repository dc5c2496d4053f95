//! `GET /console/incidents/{code}`: one incident for its department's staff and admins —
//! details, SLA targets, timeline, comments (internal ones too), attachments — and the forms
//! that change it. Each form posts to a route here that calls the API's own handler
//! (`routes::incidents::transition`, `comment`, `assign_user`, `assign_department`,
//! `set_visibility`) with the version the page was rendered from as `If-Match`: a change made
//! meanwhile by someone else comes back as 412 and the page says "changed by someone else,
//! reload" instead of overwriting it.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use vigia_domain::ids::DepartmentId;
use vigia_domain::incidents::MediaKind;
use vigia_domain::users::Role;
use vigia_notify::templates::{status_label, urgency_label};
use vigia_store::incidents::{self, Incident};
use vigia_store::users::{self, UserFilter};

use super::{Names, Opt, Staff, StaffForm, StaffViewer, Tr, see_other};
use crate::auth::{Admin, Auth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, LenientJson};
use crate::path::Path;
use crate::routes::incidents::{
    self as api, AssigneeIn, CommentIn, DepartmentAssignIn, TransitionIn, VisibilityIn, load,
};
use crate::state::AppState;
use crate::ui::{Chrome, UiError, i18n};

/// One line of the timeline.
#[derive(Debug)]
pub struct TimelineEntry {
    pub at: String,
    pub at_iso: String,
    pub what: String,
    pub detail: String,
    pub who: String,
    pub internal: bool,
}

#[derive(Debug)]
pub struct CommentView {
    pub author: String,
    pub at: String,
    pub at_iso: String,
    pub body: String,
    pub internal: bool,
}

#[derive(Debug)]
pub struct AttachmentView {
    pub name: String,
    pub href: String,
    pub thumbnail: Option<String>,
    pub size_kb: u64,
}

/// What the incident page shows besides the incident itself.
#[derive(Debug, Default)]
pub struct Feedback {
    /// A change was saved.
    pub done: bool,
    /// Someone else changed the incident since the form was rendered.
    pub conflict: bool,
    /// Errors by form field (`to`, `body`, `assignee_id`, ...).
    pub errors: Vec<(String, String)>,
}

impl Feedback {
    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }
}

#[derive(Template)]
#[template(path = "ui/staff/incident.html", blocks = ["facts", "activity"])]
struct IncidentPage<'a> {
    c: &'a Chrome,
    viewer: &'a Staff,
    incident: &'a Incident,
    code: String,
    status_label: String,
    urgency_label: String,
    category: String,
    department: String,
    assignee: String,
    created: String,
    ack_due: String,
    resolve_due: String,
    moves: Vec<Opt>,
    staff: Vec<Opt>,
    departments: Vec<Opt>,
    timeline: Vec<TimelineEntry>,
    comments: Vec<CommentView>,
    attachments: Vec<AttachmentView>,
    may_work: bool,
    visibility_key: &'static str,
    feedback: &'a Feedback,
}

/// The page.
pub async fn page(
    State(state): State<AppState>,
    Path(code): Path<String>,
    StaffViewer(viewer): StaffViewer,
) -> Response {
    let feedback = Feedback {
        done: viewer.flag("done=1"),
        ..Feedback::default()
    };
    render(&state, &viewer, &code, &feedback, StatusCode::OK).await
}

/// Which part of the page to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Page,
    /// The facts list (status, assignee, department, SLA, ...).
    Facts,
    /// The comments and the timeline.
    Activity,
}

#[derive(serde::Deserialize)]
pub struct LiveQuery {
    part: Option<String>,
}

/// `GET /console/incidents/{code}/live`: the parts of the page that change, which the page's
/// script fetches again when the real-time stream reports an `incident.*` event on
/// `incident:<id>`: its facts (`?part=facts`) or its comments and timeline. The forms are not
/// part of it, so nothing typed in them is lost. Read with the same scope as the page: an
/// incident the viewer may not see is "not found" here too.
pub async fn live(
    State(state): State<AppState>,
    Path(code): Path<String>,
    axum::extract::Query(q): axum::extract::Query<LiveQuery>,
    StaffViewer(viewer): StaffViewer,
) -> Response {
    let part = match q.part.as_deref() {
        Some("facts") => Part::Facts,
        _ => Part::Activity,
    };
    match build(
        &state,
        &viewer,
        &code,
        &Feedback::default(),
        StatusCode::OK,
        part,
    )
    .await
    {
        Ok(response) => response,
        Err(error) => UiError::from(error).into_response(),
    }
}

async fn render(
    state: &AppState,
    viewer: &Staff,
    code: &str,
    feedback: &Feedback,
    status: StatusCode,
) -> Response {
    match build(state, viewer, code, feedback, status, Part::Page).await {
        Ok(response) => response,
        Err(error) => UiError::from(error).into_response(),
    }
}

async fn build(
    state: &AppState,
    viewer: &Staff,
    code: &str,
    feedback: &Feedback,
    status: StatusCode,
    part: Part,
) -> ApiResult<Response> {
    let t = viewer.t;
    let auth = Auth(viewer.principal.clone());
    let (incident, actor) = load(state, &auth, code).await?;
    let mut names = Names::load(state, t).await?;
    let events = incidents::events::list_for_incident(
        &state.db,
        incident.id,
        actor.may_see_internal(),
        None,
        500,
    )
    .await?;
    let comments =
        incidents::list_comments(&state.db, incident.id, actor.may_see_internal()).await?;
    let attachments = incidents::attachments::list(&state.db, incident.id).await?;
    let staff = match incident.department_id {
        Some(department) => {
            users::list(
                &state.db,
                &UserFilter {
                    role: None,
                    disabled: Some(false),
                    department: Some(department),
                    q: None,
                },
                None,
                200,
            )
            .await?
            .items
        }
        None => Vec::new(),
    };
    let people = incident
        .assignee_id
        .map(|u| u.0)
        .into_iter()
        .chain(comments.iter().filter_map(|c| c.author_user_id))
        .chain(events.items.iter().filter_map(|e| user_of(&e.actor)))
        .collect();
    names.learn_people(state, people).await?;
    let code = incident.code.to_string();
    let timeline = events
        .items
        .iter()
        .map(|e| TimelineEntry {
            at: t.datetime(e.at),
            at_iso: e.at.to_rfc3339(),
            what: t.t(&format!("staff.event.{}", e.kind)).to_owned(),
            detail: event_detail(t, &names, &e.data),
            who: who(&names, &e.actor),
            internal: e.internal,
        })
        .collect();
    let page = IncidentPage {
        c: viewer.c(),
        viewer,
        status_label: status_label(t.0, incident.status.as_str()),
        urgency_label: urgency_label(t.0, incident.urgency.as_str()),
        category: names.category(incident.category_id.0),
        department: names
            .department(incident.department_id.map(|d| d.0))
            .unwrap_or(t.t("staff.console.unrouted"))
            .to_owned(),
        assignee: names
            .person(incident.assignee_id.map(|u| u.0))
            .unwrap_or(t.t("staff.console.unassigned"))
            .to_owned(),
        created: t.datetime(incident.created_at),
        ack_due: t.datetime(incident.sla.acknowledge_due),
        resolve_due: t.datetime(incident.sla.resolve_due),
        // The moves the domain's lifecycle allows this caller from here, and nothing else.
        moves: incident
            .status
            .allowed_next_for(actor)
            .iter()
            .map(|s| Opt {
                value: s.as_str().to_owned(),
                label: status_label(t.0, s.as_str()),
                selected: false,
            })
            .collect(),
        staff: staff
            .iter()
            .filter(|u| u.role >= Role::Staff)
            .map(|u| Opt {
                value: u.id.0.to_string(),
                label: u.display_name.clone(),
                selected: incident.assignee_id == Some(u.id),
            })
            .collect(),
        departments: names
            .departments
            .iter()
            .map(|(id, name)| Opt {
                value: id.to_string(),
                label: name.clone(),
                selected: incident.department_id == Some(DepartmentId(*id)),
            })
            .collect(),
        timeline,
        comments: comments
            .iter()
            .map(|c| CommentView {
                author: names
                    .person(c.author_user_id)
                    .map_or_else(|| c.author.clone(), str::to_owned),
                at: t.datetime(c.created_at),
                at_iso: c.created_at.to_rfc3339(),
                body: c.body.clone(),
                internal: c.visibility == vigia_domain::incidents::Visibility::Internal,
            })
            .collect(),
        attachments: attachments
            .iter()
            .map(|a| {
                let href = format!("/api/v1/incidents/{}/attachments/{}", incident.id.0, a.id.0);
                AttachmentView {
                    name: a.name.clone(),
                    thumbnail: (a.media.kind() == MediaKind::Image)
                        .then(|| format!("{href}/thumbnail")),
                    href,
                    size_kb: a.size_bytes.div_ceil(1024),
                }
            })
            .collect(),
        may_work: actor.is_staff(),
        visibility_key: if incident.is_public() {
            "staff.visibility.public"
        } else {
            "staff.visibility.private"
        },
        code,
        incident: &incident,
        feedback,
    };
    Ok(match part {
        Part::Page => viewer.render(status, &page),
        Part::Facts => viewer.render(status, &page.as_facts()),
        Part::Activity => viewer.render(status, &page.as_activity()),
    })
}

/// The user id in an actor label such as `user:12`.
fn user_of(actor: &str) -> Option<i64> {
    actor.strip_prefix("user:")?.parse().ok()
}

fn who(names: &Names, actor: &str) -> String {
    match user_of(actor).and_then(|id| names.person(Some(id))) {
        Some(name) => name.to_owned(),
        None => actor.to_owned(),
    }
}

/// A short description of an event's data: `nuevo → recibido`, the department routed to, ...
fn event_detail(t: Tr, names: &Names, data: &serde_json::Value) -> String {
    let s = |k: &str| data.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let i = |k: &str| data.get(k).and_then(serde_json::Value::as_i64);
    match s("kind") {
        "status_changed" => format!(
            "{} → {}",
            status_label(t.0, s("from")),
            status_label(t.0, s("to"))
        ),
        "urgency_changed" => format!(
            "{} → {}",
            urgency_label(t.0, s("from")),
            urgency_label(t.0, s("to"))
        ),
        "department_assigned" => names.department(i("to")).unwrap_or_default().to_owned(),
        "assignee_changed" => names
            .person(i("to"))
            .unwrap_or(t.t("staff.console.unassigned"))
            .to_owned(),
        "visibility_changed" => t.t(&format!("staff.visibility.{}", s("to"))).to_owned(),
        "comment_added" if s("visibility") == "internal" => t.t("staff.detail.internal").to_owned(),
        _ => String::new(),
    }
}

// --- actions -----------------------------------------------------------------------------------

/// Every incident form: the version it was rendered from, and the fields of one action.
#[derive(Debug, Default)]
pub struct ActionForm {
    pub version: Option<String>,
    pub to: Option<String>,
    pub body: Option<String>,
    pub comment_visibility: Option<String>,
    pub assignee_id: Option<String>,
    pub department_id: Option<String>,
    pub visibility: Option<String>,
}

impl From<&super::Fields> for ActionForm {
    fn from(f: &super::Fields) -> Self {
        Self {
            version: f.get("version"),
            to: f.get("to"),
            // A comment's text as typed (the API trims and checks it).
            body: f.raw("body"),
            comment_visibility: f.get("comment_visibility"),
            assignee_id: f.get("assignee_id"),
            department_id: f.get("department_id"),
            visibility: f.get("visibility"),
        }
    }
}

/// `If-Match` with the version the form was rendered from.
fn if_match(form: &ActionForm) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(version) = form.version.as_deref().filter(|v| !v.is_empty())
        && let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", version.trim()))
    {
        headers.insert(header::IF_MATCH, value);
    }
    headers
}

/// After an action: back to the page (303) when it worked; the page again with the conflict
/// or the errors next to their fields when it did not.
async fn after(state: &AppState, viewer: &Staff, code: &str, result: ApiResult<()>) -> Response {
    let mut feedback = Feedback::default();
    let status = match result {
        Ok(()) => return see_other(&format!("/console/incidents/{code}?done=1#actions")),
        Err(ApiError::PreconditionFailed { .. }) => {
            feedback.conflict = true;
            StatusCode::PRECONDITION_FAILED
        }
        Err(ApiError::Validation(errors)) => {
            feedback.errors = errors
                .into_iter()
                .map(|e| (e.field, i18n::field_message(viewer.t.0, &e.message)))
                .collect();
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(ApiError::Conflict { detail, .. }) => {
            feedback
                .errors
                .push(("to".into(), i18n::field_message(viewer.t.0, &detail)));
            StatusCode::CONFLICT
        }
        Err(ApiError::Forbidden { detail }) => {
            feedback
                .errors
                .push(("form".into(), i18n::field_message(viewer.t.0, detail)));
            StatusCode::FORBIDDEN
        }
        Err(error) => return error.into_response(),
    };
    render(state, viewer, code, &feedback, status).await
}

/// A required text field, or a 422 naming it.
fn required(field: &str, value: &Option<String>) -> ApiResult<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::field(field, "is required"))
}

macro_rules! staff_action {
    ($name:ident, |$state:ident, $viewer:ident, $code:ident, $form:ident| $body:expr) => {
        pub async fn $name(
            State($state): State<AppState>,
            Path($code): Path<String>,
            StaffForm($viewer, fields): StaffForm,
        ) -> Response {
            let $form = ActionForm::from(&fields);
            let result: ApiResult<()> = async { $body }.await;
            after(&$state, &$viewer, &$code, result).await
        }
    };
}

staff_action!(change_status, |state, viewer, code, form| {
    let to = required("to", &form.to)?;
    api::transition(
        State(state.clone()),
        Auth(viewer.principal.clone()),
        if_match(&form),
        Path(code.clone()),
        Json(TransitionIn { to }),
    )
    .await
    .map(drop)
});

staff_action!(add_comment, |state, viewer, code, form| {
    let body = CommentIn {
        body: form.body.clone().unwrap_or_default(),
        visibility: form.comment_visibility.clone(),
    };
    api::comment(
        State(state.clone()),
        Auth(viewer.principal.clone()),
        Path(code.clone()),
        LenientJson::from_value(body),
    )
    .await
    .map(drop)
});

staff_action!(assign, |state, viewer, code, form| {
    let assignee_id = match form.assignee_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .map_err(|_| ApiError::field("assignee_id", "must be a staff member"))?,
        ),
    };
    api::assign_user(
        State(state.clone()),
        Auth(viewer.principal.clone()),
        if_match(&form),
        Path(code.clone()),
        Json(AssigneeIn { assignee_id }),
    )
    .await
    .map(drop)
});

staff_action!(route, |state, viewer, code, form| {
    let department_id = required("department_id", &form.department_id)?
        .parse::<i64>()
        .map_err(|_| ApiError::field("department_id", "must be a department"))?;
    api::assign_department(
        State(state.clone()),
        Admin::check(Auth(viewer.principal.clone()))?,
        if_match(&form),
        Path(code.clone()),
        Json(DepartmentAssignIn { department_id }),
    )
    .await
    .map(drop)
});

staff_action!(visibility, |state, viewer, code, form| {
    let visibility = required("visibility", &form.visibility)?;
    api::set_visibility(
        State(state.clone()),
        Auth(viewer.principal.clone()),
        if_match(&form),
        Path(code.clone()),
        Json(VisibilityIn { visibility }),
    )
    .await
    .map(drop)
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_version_becomes_if_match_and_a_missing_one_sends_none() {
        let form = ActionForm {
            version: Some("7".into()),
            ..Default::default()
        };
        assert_eq!(
            if_match(&form).get(header::IF_MATCH).map(|v| v.as_bytes()),
            Some(&b"\"7\""[..])
        );
        assert!(if_match(&ActionForm::default()).is_empty());
    }

    #[test]
    fn actor_labels_name_their_user() {
        assert_eq!(user_of("user:12"), Some(12));
        assert_eq!(user_of("api_key:3"), None);
        assert_eq!(user_of("system"), None);
    }

    #[test]
    fn timeline_details_describe_the_change_in_the_page_language() {
        let names = Names::default();
        let data =
            serde_json::json!({"kind": "status_changed", "from": "new", "to": "acknowledged"});
        assert_eq!(
            event_detail(Tr(crate::ui::Lang::Es), &names, &data),
            "nuevo → recibido"
        );
        assert_eq!(
            event_detail(Tr(crate::ui::Lang::En), &names, &data),
            "new → acknowledged"
        );
    }
}
