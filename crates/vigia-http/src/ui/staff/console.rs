//! `GET /console`: the queue of the incidents of the viewer's departments (every incident for
//! admins), filtered and sorted as the API's list (`routes::incidents::filter`), a page at a
//! time by the list's cursor, with each incident's SLA due time and overdue ones marked.
//! `GET /console/rows` is the same table body alone, which the page's script fetches again
//! when the live stream announces a change.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vigia_domain::Timestamp;
use vigia_domain::catalog::Urgency;
use vigia_domain::incidents::{ReadScope, Status};
use vigia_notify::templates::{status_label, urgency_label};
use vigia_store::incidents::{self, Incident};

use super::{Names, Opt, Staff, StaffViewer, Tr};
use crate::error::{ApiError, ApiResult};
use crate::routes::incidents::{IncidentQuery, filter};
use crate::routes::users::cursor;
use crate::state::AppState;
use crate::ui::{Chrome, UiError};

/// Incidents per console page.
const PAGE_SIZE: usize = 25;

/// The console's filters as a form sends them: an empty field means "any".
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ConsoleQuery {
    pub status: Option<String>,
    pub urgency: Option<String>,
    pub category: Option<String>,
    pub department: Option<String>,
    pub q: Option<String>,
    pub sort: Option<String>,
    pub mine: Option<String>,
    pub cursor: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn number(field: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
    non_empty(v)
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| ApiError::field(field, "must be a number"))
        })
        .transpose()
}

impl ConsoleQuery {
    /// The API list's query for these filters (`me` for "assigned to me").
    fn api_query(&self, me: i64) -> ApiResult<IncidentQuery> {
        Ok(IncidentQuery {
            status: non_empty(&self.status),
            category: number("category", &self.category)?,
            urgency: non_empty(&self.urgency),
            department: number("department", &self.department)?,
            assignee: non_empty(&self.mine).map(|_| me),
            zone: None,
            reporter: None,
            created_from: None,
            created_to: None,
            updated_from: None,
            updated_to: None,
            q: non_empty(&self.q),
            sort: non_empty(&self.sort),
            cursor: non_empty(&self.cursor),
            limit: None,
        })
    }

    /// The query string of these filters without the cursor (for links).
    pub fn without_cursor(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("status", &self.status),
            ("urgency", &self.urgency),
            ("category", &self.category),
            ("department", &self.department),
            ("q", &self.q),
            ("sort", &self.sort),
            ("mine", &self.mine),
        ] {
            if let Some(v) = non_empty(value) {
                out.append_pair(key, &v);
            }
        }
        out.finish()
    }
}

/// One row of the queue.
#[derive(Debug, Clone)]
pub struct Row {
    pub code: String,
    pub title: String,
    pub status: &'static str,
    pub status_label: String,
    pub urgency: &'static str,
    pub urgency_label: String,
    pub category: String,
    pub department: String,
    pub assignee: String,
    pub created: String,
    pub created_iso: String,
    /// The next target: acknowledge while new, resolve while open; none once resolved.
    pub due: Option<String>,
    pub due_iso: String,
    pub overdue: bool,
    pub paused: bool,
}

/// The queue: a page of rows and the cursor of the next one.
#[derive(Debug)]
pub struct Queue {
    pub rows: Vec<Row>,
    pub next_cursor: Option<String>,
}

/// The console's scope: an admin's is everything; a staff member's, their departments' (the
/// list then also admits public incidents, which [`queue`] leaves out unless routed to one of
/// the viewer's departments).
pub fn console_scope(viewer: &Staff) -> ReadScope {
    if viewer.is_admin() {
        ReadScope::All
    } else {
        ReadScope::Limited {
            departments: viewer.user.departments.clone(),
            reporter: None,
            staff: true,
        }
    }
}

/// The queue for `viewer` with filters `q`.
pub async fn queue(
    state: &AppState,
    viewer: &Staff,
    names: &mut Names,
    q: &ConsoleQuery,
) -> ApiResult<Queue> {
    let api = q.api_query(viewer.user.user_id.0)?;
    let mut f = filter(&api)?;
    let departments = &viewer.user.departments;
    if !viewer.is_admin() {
        match f.department {
            // A department the viewer does not work: nothing of theirs to list.
            Some(d) if !departments.contains(&d) => {
                return Ok(Queue {
                    rows: Vec::new(),
                    next_cursor: None,
                });
            }
            Some(_) => {}
            None if departments.len() == 1 => f.department = departments.first().copied(),
            None => {}
        }
    }
    let mut page = incidents::list(
        &state.db,
        &console_scope(viewer),
        &f,
        cursor(api.cursor.as_deref())?,
        PAGE_SIZE,
    )
    .await?;
    // The list's scope also admits every public incident: the console keeps the viewer's
    // departments' only (a page may then be shorter; its cursor still goes on from its end).
    if !viewer.is_admin() {
        page.items
            .retain(|i| i.department_id.is_some_and(|d| departments.contains(&d)));
    }
    names
        .learn_people(
            state,
            page.items
                .iter()
                .filter_map(|i| i.assignee_id.map(|u| u.0))
                .collect(),
        )
        .await?;
    let now = Timestamp::now();
    Ok(Queue {
        rows: page
            .items
            .iter()
            .map(|i| row(viewer.t, names, i, now))
            .collect(),
        next_cursor: page.next_cursor,
    })
}

/// The next SLA target of an incident and whether it is missed: acknowledge while `new`,
/// resolve while open, none once resolved or closed.
pub fn next_target(i: &Incident) -> Option<(Timestamp, bool)> {
    match i.status {
        Status::New => Some((i.sla.acknowledge_due, i.sla.acknowledge_breached)),
        s if s.is_open() => Some((i.sla.resolve_due, i.sla.resolve_breached)),
        _ => None,
    }
}

fn row(t: Tr, names: &Names, i: &Incident, _now: Timestamp) -> Row {
    let target = next_target(i);
    Row {
        code: i.code.to_string(),
        title: i.title.clone(),
        status: i.status.as_str(),
        status_label: status_label(t.0, i.status.as_str()),
        urgency: i.urgency.as_str(),
        urgency_label: urgency_label(t.0, i.urgency.as_str()),
        category: names.category(i.category_id.0),
        department: names
            .department(i.department_id.map(|d| d.0))
            .unwrap_or(t.t("staff.console.unrouted"))
            .to_owned(),
        assignee: names
            .person(i.assignee_id.map(|u| u.0))
            .unwrap_or(t.t("staff.console.unassigned"))
            .to_owned(),
        created: t.datetime(i.created_at),
        created_iso: i.created_at.to_rfc3339(),
        due: target.map(|(at, _)| t.datetime(at)),
        due_iso: target.map(|(at, _)| at.to_rfc3339()).unwrap_or_default(),
        overdue: target.is_some_and(|(_, missed)| missed),
        paused: i.sla.paused,
    }
}

#[derive(Template)]
#[template(path = "ui/staff/console.html")]
struct ConsolePage<'a> {
    c: &'a Chrome,
    q: &'a ConsoleQuery,
    queue: &'a Queue,
    statuses: Vec<Opt>,
    urgencies: Vec<Opt>,
    categories: Vec<Opt>,
    departments: Vec<Opt>,
    filters: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/staff/console_rows.html")]
struct RowsPartial<'a> {
    c: &'a Chrome,
    queue: &'a Queue,
}

/// The console page.
pub async fn page(
    State(state): State<AppState>,
    Query(q): Query<ConsoleQuery>,
    StaffViewer(viewer): StaffViewer,
) -> Response {
    match render_page(&state, &viewer, &q).await {
        Ok(response) => response,
        Err(error) => UiError::from(error).into_response(),
    }
}

async fn render_page(state: &AppState, viewer: &Staff, q: &ConsoleQuery) -> ApiResult<Response> {
    let t = viewer.t;
    let mut names = Names::load(state, t).await?;
    let (queue, error, status) = match queue(state, viewer, &mut names, q).await {
        Ok(queue) => (queue, None, StatusCode::OK),
        // A filter the list refuses (a bad cursor, say): the message by the form, an empty queue.
        Err(ApiError::Validation(errors)) => (
            Queue {
                rows: Vec::new(),
                next_cursor: None,
            },
            Some(
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(other) => return Err(other),
    };
    let page = ConsolePage {
        c: viewer.c(),
        q,
        queue: &queue,
        statuses: Opt::list(
            Status::ALL
                .iter()
                .map(|s| (s.as_str().to_owned(), status_label(t.0, s.as_str()))),
            &q.status,
        ),
        urgencies: Opt::list(
            Urgency::ALL
                .iter()
                .map(|u| (u.as_str().to_owned(), urgency_label(t.0, u.as_str()))),
            &q.urgency,
        ),
        categories: Opt::list(
            names
                .categories
                .iter()
                .map(|(id, name)| (id.to_string(), name.clone())),
            &q.category,
        ),
        departments: Opt::list(
            names
                .departments
                .iter()
                .filter(|(id, _)| {
                    viewer.is_admin() || viewer.user.departments.iter().any(|d| d.0 == *id)
                })
                .map(|(id, name)| (id.to_string(), name.clone())),
            &q.department,
        ),
        filters: q.without_cursor(),
        error,
    };
    Ok(viewer.render(status, &page))
}

/// The queue's table body alone (the live update fetches it).
pub async fn rows(
    State(state): State<AppState>,
    Query(q): Query<ConsoleQuery>,
    StaffViewer(viewer): StaffViewer,
) -> Response {
    let result = async {
        let mut names = Names::load(&state, viewer.t).await?;
        let queue = queue(&state, &viewer, &mut names, &q).await?;
        Ok::<_, ApiError>(viewer.render(
            StatusCode::OK,
            &RowsPartial {
                c: viewer.c(),
                queue: &queue,
            },
        ))
    }
    .await;
    result.unwrap_or_else(|e| UiError::from(e).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_form_fields_mean_any_and_mine_filters_on_the_viewer() {
        let q = ConsoleQuery {
            status: Some("new".into()),
            category: Some(String::new()),
            department: Some(" 3 ".into()),
            mine: Some("1".into()),
            ..Default::default()
        };
        let api = q.api_query(42).expect("valid");
        assert_eq!(api.status.as_deref(), Some("new"));
        assert_eq!(api.category, None);
        assert_eq!(api.department, Some(3));
        assert_eq!(api.assignee, Some(42));
        assert_eq!(q.without_cursor(), "status=new&department=3&mine=1");
        let bad = ConsoleQuery {
            category: Some("x".into()),
            ..Default::default()
        };
        assert!(matches!(bad.api_query(1), Err(ApiError::Validation(_))));
    }
}
