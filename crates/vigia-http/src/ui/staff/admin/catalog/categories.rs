//! `/admin/categories`: the list, the creation form, and one category's edit page with its SLA
//! per urgency.

use super::*;

pub struct CategoryRow {
    pub c: CategoryOut,
    pub department: String,
    pub urgency: String,
}

#[derive(Template)]
#[template(path = "ui/staff/admin_categories.html")]
struct CategoriesPage<'a> {
    c: &'a Chrome,
    rows: Vec<CategoryRow>,
    departments: Vec<Opt>,
    urgencies: Vec<Opt>,
    action: &'static str,
    submit: &'static str,
    name_es: String,
    name_en: String,
    errors: &'a Errors,
    saved: bool,
}

async fn department_options(
    state: &AppState,
    viewer: &Staff,
    current: Option<String>,
) -> ApiResult<(Vec<DepartmentOut>, Vec<Opt>)> {
    let Json(departments) =
        api::list_departments(State(state.clone()), Auth(viewer.principal.clone())).await?;
    let options = Opt::list(
        departments
            .iter()
            .map(|d| (d.id.to_string(), d.name.clone())),
        &current,
    );
    Ok((departments, options))
}

async fn categories_page(
    state: &AppState,
    viewer: &Staff,
    form: &Fields,
    errors: &Errors,
    saved: bool,
    status: StatusCode,
) -> ApiResult<Response> {
    let t = viewer.t;
    let Json(categories) =
        api::list_categories(State(state.clone()), Auth(viewer.principal.clone())).await?;
    let (departments, options) =
        department_options(state, viewer, form.get("default_department_id")).await?;
    let rows = categories
        .into_iter()
        .map(|c| CategoryRow {
            department: c
                .default_department_id
                .and_then(|id| departments.iter().find(|d| d.id == id))
                .map_or_else(|| "—".to_owned(), |d| d.name.clone()),
            urgency: urgency_label(t.0, &c.default_urgency),
            c,
        })
        .collect();
    let urgency = form
        .get("default_urgency")
        .unwrap_or_else(|| "medium".into());
    Ok(viewer.render(
        status,
        &CategoriesPage {
            c: viewer.c(),
            rows,
            departments: options,
            urgencies: urgency_options(t, &urgency),
            action: "/admin/categories",
            submit: t.t("staff.common.create"),
            name_es: form.text("name_es"),
            name_en: form.text("name_en"),
            errors,
            saved,
        },
    ))
}

fn category_in(form: &Fields) -> ApiResult<CategoryIn> {
    Ok(CategoryIn {
        name_es: form.text("name_es"),
        name_en: form.get("name_en"),
        default_department_id: form.id("default_department_id")?,
        default_urgency: form.get("default_urgency"),
    })
}

pub async fn categories(
    State(state): State<AppState>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    let saved = viewer.flag("saved=1");
    shown(
        categories_page(
            &state,
            &viewer,
            &Fields::default(),
            &Errors::default(),
            saved,
            StatusCode::OK,
        )
        .await,
    )
}

pub async fn create_category(
    State(state): State<AppState>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let result = async {
        api::create_category(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Json(category_in(&form)?),
        )
        .await
    }
    .await;
    let next = |_| "/admin/categories?saved=1".to_owned();
    settle(&viewer, result, next, async |errors, status| {
        categories_page(&state, &viewer, &form, &errors, false, status).await
    })
    .await
}

/// One urgency's SLA row of a category's page.
pub struct SlaRow {
    pub urgency: String,
    pub label: String,
    pub acknowledge_minutes: i64,
    pub resolve_hours: String,
    pub raise: bool,
    pub configured: bool,
}

#[derive(Template)]
#[template(path = "ui/staff/admin_category.html")]
struct CategoryPage<'a> {
    c: &'a Chrome,
    cat: &'a CategoryOut,
    action: String,
    submit: &'static str,
    name_es: String,
    name_en: String,
    departments: Vec<Opt>,
    urgencies: Vec<Opt>,
    sla: Vec<SlaRow>,
    errors: &'a Errors,
    sla_errors: &'a Errors,
    /// The urgency whose SLA form was rejected.
    sla_urgency: String,
    saved: bool,
}

fn sla_row(t: Tr, p: &SlaPolicyOut) -> SlaRow {
    let hours = p.resolve_within_secs as f64 / 3600.0;
    SlaRow {
        urgency: p.urgency.clone(),
        label: urgency_label(t.0, &p.urgency),
        acknowledge_minutes: p.acknowledge_within_secs / 60,
        resolve_hours: if hours.fract() == 0.0 {
            format!("{hours:.0}")
        } else {
            format!("{hours:.2}")
        },
        raise: p.raise_urgency_on_breach,
        configured: p.configured,
    }
}

#[allow(clippy::too_many_arguments)]
async fn category_page(
    state: &AppState,
    viewer: &Staff,
    id: i64,
    form: Option<&Fields>,
    errors: &Errors,
    sla_urgency: &str,
    saved: bool,
    status: StatusCode,
) -> ApiResult<Response> {
    let t = viewer.t;
    let auth = || Auth(viewer.principal.clone());
    let Json(c) = api::get_category(State(state.clone()), auth(), Path(id)).await?;
    let Json(policies) = api::list_sla(State(state.clone()), auth(), Path(id)).await?;
    let (name_es, name_en, department, urgency) = match form.filter(|_| sla_urgency.is_empty()) {
        Some(f) => (
            f.text("name_es"),
            f.text("name_en"),
            f.get("default_department_id"),
            f.text("default_urgency"),
        ),
        None => (
            c.name_es.clone(),
            c.name_en.clone(),
            c.default_department_id.map(|d| d.to_string()),
            c.default_urgency.clone(),
        ),
    };
    let (_, departments) = department_options(state, viewer, department).await?;
    let none = Errors::default();
    let (errors, sla_errors) = if sla_urgency.is_empty() {
        (errors, &none)
    } else {
        (&none, errors)
    };
    Ok(viewer.render(
        status,
        &CategoryPage {
            c: viewer.c(),
            action: format!("/admin/categories/{id}"),
            submit: t.t("staff.common.save"),
            cat: &c,
            name_es,
            name_en,
            departments,
            urgencies: urgency_options(t, &urgency),
            sla: policies.iter().map(|p| sla_row(t, p)).collect(),
            errors,
            sla_errors,
            sla_urgency: sla_urgency.to_owned(),
            saved,
        },
    ))
}

pub async fn category(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    let saved = viewer.flag("saved=1");
    shown(
        category_page(
            &state,
            &viewer,
            id,
            None,
            &Errors::default(),
            "",
            saved,
            StatusCode::OK,
        )
        .await,
    )
}

pub async fn update_category(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let result = async {
        api::update_category(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Path(id),
            Json(category_in(&form)?),
        )
        .await
    }
    .await;
    let next = |_| format!("/admin/categories/{id}?saved=1");
    settle(&viewer, result, next, async |errors, status| {
        category_page(&state, &viewer, id, Some(&form), &errors, "", false, status).await
    })
    .await
}

/// Minutes and hours as the form has them → the API's seconds; a value that is not a positive
/// number is the field's error.
fn sla_in(form: &Fields) -> ApiResult<SlaPolicyIn> {
    let number = |field: &str, scale: f64| -> ApiResult<i64> {
        form.get(field)
            .and_then(|v| v.replace(',', ".").parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v > 0.0)
            .map(|v| (v * scale).round() as i64)
            .ok_or_else(|| ApiError::field(field, "must be a positive number"))
    };
    let acknowledge = number("acknowledge_within_secs", 60.0);
    let resolve = number("resolve_within_secs", 3600.0);
    match (acknowledge, resolve) {
        (Ok(a), Ok(r)) => Ok(SlaPolicyIn {
            acknowledge_within_secs: a,
            resolve_within_secs: r,
            raise_urgency_on_breach: form.checked("raise_urgency_on_breach"),
        }),
        (Err(ApiError::Validation(mut a)), Err(ApiError::Validation(r))) => {
            a.extend(r);
            Err(ApiError::Validation(a))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// Sets one urgency's SLA (`PUT /api/v1/categories/{id}/sla/{urgency}`).
pub async fn set_sla(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let urgency = form.text("urgency");
    let result = async {
        api::put_sla(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Path((id, urgency.clone())),
            Json(sla_in(&form)?),
        )
        .await
    }
    .await;
    let next = |_| format!("/admin/categories/{id}?saved=1#sla");
    settle(&viewer, result, next, async |errors, status| {
        category_page(
            &state,
            &viewer,
            id,
            Some(&form),
            &errors,
            &urgency,
            false,
            status,
        )
        .await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sla_minutes_and_hours_become_seconds_and_bad_values_name_their_field() {
        let form = Fields::parse(
            b"acknowledge_within_secs=15&resolve_within_secs=1,5&raise_urgency_on_breach=on",
        );
        let sla = sla_in(&form).expect("valid");
        assert_eq!(sla.acknowledge_within_secs, 900);
        assert_eq!(sla.resolve_within_secs, 5400);
        assert!(sla.raise_urgency_on_breach);
        let bad = Fields::parse(b"acknowledge_within_secs=-1&resolve_within_secs=x");
        let Err(ApiError::Validation(errors)) = sla_in(&bad) else {
            panic!("expected field errors");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["acknowledge_within_secs", "resolve_within_secs"]);
    }
}
