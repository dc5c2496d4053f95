//! `GET /proctoring`: the exams (staff), and for admins a form that creates one through
//! `routes::proctoring::create_exam`; a rejected form comes back with each message next to its
//! field and the values typed kept.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use vigia_domain::Timestamp;

use super::auth_of;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::proctoring::{self as api, ExamIn, ExamOut};
use crate::state::AppState;
use crate::ui::Chrome;
use crate::ui::staff::admin::admin_of;
use crate::ui::staff::form::{Errors, settle, shown};
use crate::ui::staff::{AdminForm, Fields, Names, Opt, Staff, StaffViewer};

pub struct ExamRow {
    pub id: i64,
    pub code: String,
    pub title: String,
    pub department: String,
    pub starts: String,
    pub ends: String,
    pub open: bool,
}

#[derive(Template)]
#[template(path = "ui/proctoring/exams.html")]
struct ExamsPage<'a> {
    c: &'a Chrome,
    rows: Vec<ExamRow>,
    admin: bool,
    form: &'a Fields,
    categories: Vec<Opt>,
    departments: Vec<Opt>,
    errors: &'a Errors,
}

async fn render(
    state: &AppState,
    viewer: &Staff,
    form: &Fields,
    errors: &Errors,
    status: StatusCode,
) -> ApiResult<Response> {
    let t = viewer.t;
    let names = Names::load(state, t).await?;
    let Json(exams) = api::list_exams(State(state.clone()), auth_of(viewer)).await?;
    let now = Timestamp::now();
    let parse = |raw: &str| Timestamp::parse_rfc3339(raw).unwrap_or(now);
    let rows = exams
        .into_iter()
        .map(|e| {
            let (starts, ends) = (parse(&e.starts_at), parse(&e.ends_at));
            ExamRow {
                id: e.id,
                code: e.code,
                title: e.title,
                department: names.department(e.department_id).unwrap_or("—").to_owned(),
                starts: t.datetime(starts),
                ends: t.datetime(ends),
                open: starts <= now && now <= ends,
            }
        })
        .collect();
    let pairs = |list: &[(i64, String)]| {
        list.iter()
            .map(|(id, name)| (id.to_string(), name.clone()))
            .collect::<Vec<_>>()
    };
    let page = ExamsPage {
        c: viewer.c(),
        rows,
        admin: viewer.is_admin(),
        form,
        categories: Opt::list(
            pairs(&names.categories).into_iter(),
            &form.get("category_id"),
        ),
        departments: Opt::list(
            pairs(&names.departments).into_iter(),
            &form.get("department_id"),
        ),
        errors,
    };
    Ok(viewer.render(status, &page))
}

pub async fn page(State(state): State<AppState>, StaffViewer(viewer): StaffViewer) -> Response {
    shown(
        render(
            &state,
            &viewer,
            &Fields::default(),
            &Errors::default(),
            StatusCode::OK,
        )
        .await,
    )
}

/// A `datetime-local` value (`2026-12-07T09:00`, read as UTC as the form says) as RFC 3339;
/// anything else is passed on for the API to refuse.
fn utc(raw: &str) -> String {
    let raw = raw.trim();
    match raw.len() {
        16 if raw.as_bytes().get(10) == Some(&b'T') => format!("{raw}:00Z"),
        19 if raw.as_bytes().get(10) == Some(&b'T') => format!("{raw}Z"),
        _ => raw.to_owned(),
    }
}

/// `POST /proctoring`: creates an exam (admins) and opens its page.
pub async fn create(State(state): State<AppState>, AdminForm(viewer, form): AdminForm) -> Response {
    let result = async {
        let number = |name: &str| -> Result<Option<f64>, ApiError> {
            form.get(name)
                .map(|v| {
                    v.replace(',', ".")
                        .parse::<f64>()
                        .map_err(|_| ApiError::field(name, "must be a number"))
                })
                .transpose()
        };
        let input = ExamIn {
            code: form.text("code"),
            title: form.text("title"),
            category_id: form
                .id("category_id")?
                .ok_or_else(|| ApiError::field("category_id", "must be chosen from the list"))?,
            department_id: form.id("department_id")?,
            starts_at: utc(&form.text("starts_at")),
            ends_at: utc(&form.text("ends_at")),
            threshold: number("threshold")?,
            captures_per_minute: number("captures_per_minute")?.map(|n| n as i64),
            alerts_before_final: number("alerts_before_final")?.map(|n| n as i64),
        };
        api::create_exam(State(state.clone()), admin_of(&viewer)?, Json(input)).await
    }
    .await;
    let next = |(_, Json(exam)): (_, Json<ExamOut>)| format!("/proctoring/exams/{}", exam.id);
    settle(&viewer, result, next, async |errors, status| {
        // The API's conflict is about the code: show it there.
        let errors = if status == StatusCode::CONFLICT {
            errors.all_on("code")
        } else {
            errors
        };
        render(&state, &viewer, &form, &errors, status).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datetime_local_value_is_read_as_utc() {
        assert_eq!(utc("2026-12-07T09:00"), "2026-12-07T09:00:00Z");
        assert_eq!(utc("2026-12-07T09:00:30"), "2026-12-07T09:00:30Z");
        assert_eq!(utc("tomorrow"), "tomorrow");
    }
}
