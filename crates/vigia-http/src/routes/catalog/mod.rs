//! Catalogs: departments, categories, zones. Everyone signed in (and API keys with
//! `catalog:read`) may read them; only admins change them, and every change is audited.

use axum::extract::State;

use super::{Routes, op};
use crate::path::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigia_domain::Timestamp;
use vigia_domain::catalog::{CategorySpec, DepartmentSpec};
use vigia_domain::ids::{CategoryId, DepartmentId};
use vigia_domain::incidents::AssignmentStrategy;
use vigia_store::catalog::{self, Category, Department};

use crate::auth::{Admin, Auth};
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, RequestId};
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, list_departments);
    let routes = op!(routes, create_department);
    let routes = op!(routes, get_department);
    let routes = op!(routes, update_department);
    let routes = op!(routes, delete_department);
    let routes = op!(routes, list_categories);
    let routes = op!(routes, create_category);
    let routes = op!(routes, get_category);
    let routes = op!(routes, update_category);
    let routes = op!(routes, delete_category);
    let routes = op!(routes, list_sla);
    let routes = op!(routes, put_sla);
    let routes = op!(routes, list_zones);
    let routes = op!(routes, create_zone);
    let routes = op!(routes, get_zone);
    let routes = op!(routes, update_zone);
    let routes = op!(routes, delete_zone);
    op!(routes, locate)
}

// --- departments -------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct DepartmentOut {
    pub id: i64,
    pub name: String,
    /// Where notifications about the department's incidents go.
    pub contact_emails: Vec<String>,
    /// Told when one of the department's incidents misses an SLA target (staff only).
    pub escalation_emails: Vec<String>,
    /// User ids of the department's staff (shown to staff and admins only).
    pub members: Vec<i64>,
    /// `manual`, `round_robin` or `least_open`.
    pub assignment_strategy: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

fn department_out(d: Department, auth: &Auth) -> DepartmentOut {
    let staff = auth.require_staff().is_ok();
    DepartmentOut {
        id: d.id.0,
        name: d.name,
        contact_emails: if staff { d.contact_emails } else { Vec::new() },
        escalation_emails: if staff {
            d.escalation_emails
        } else {
            Vec::new()
        },
        members: if staff {
            d.members.into_iter().map(|m| m.0).collect()
        } else {
            Vec::new()
        },
        assignment_strategy: d.assignment_strategy.as_str().into(),
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

/// An e-mail address, such as `ana@example.org`.
#[derive(ToSchema)]
#[schema(value_type = String, format = Email)]
#[allow(dead_code)]
pub struct EmailAddress(String);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentIn {
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 120
    )]
    pub name: String,
    /// Told (by e-mail) about incidents routed to the department. At most 20.
    #[serde(default)]
    #[schema(value_type = Vec<EmailAddress>, max_items = 20)]
    pub contact_emails: Vec<String>,
    /// Told (by e-mail) when one of its incidents misses an SLA target. At most 20.
    #[serde(default)]
    #[schema(value_type = Vec<EmailAddress>, max_items = 20)]
    pub escalation_emails: Vec<String>,
    /// How new incidents get an assignee: `manual` (default), `round_robin` (in turn) or
    /// `least_open` (fewest open incidents). Staff marked away are skipped.
    #[schema(pattern = "^(manual|round_robin|least_open)$")]
    pub assignment_strategy: Option<String>,
}

fn department_input(
    input: &DepartmentIn,
) -> Result<(DepartmentSpec, AssignmentStrategy), Vec<vigia_domain::FieldError>> {
    let spec = match DepartmentSpec::parse(&input.name, &input.contact_emails) {
        Ok(spec) => spec.with_escalation_emails(&input.escalation_emails),
        Err(mut errors) => {
            let probe = DepartmentSpec::parse("probe", &[])
                .and_then(|p| p.with_escalation_emails(&input.escalation_emails));
            if let Err(more) = probe {
                errors.extend(more);
            }
            Err(errors)
        }
    };
    let strategy = input
        .assignment_strategy
        .as_deref()
        .map_or(Ok(AssignmentStrategy::Manual), |s| {
            AssignmentStrategy::parse("assignment_strategy", s)
        });
    match (spec, strategy) {
        (Ok(spec), Ok(strategy)) => Ok((spec, strategy)),
        (Err(mut errors), Err(e)) => {
            errors.push(e);
            Err(errors)
        }
        (Err(errors), _) => Err(errors),
        (_, Err(e)) => Err(vec![e]),
    }
}

/// List departments.
#[utoipa::path(get, path = "/api/v1/departments", tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = Vec<DepartmentOut>), (status = 401, body = Problem)))]
pub(crate) async fn list_departments(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<DepartmentOut>>> {
    let all = catalog::list_departments(&state.db).await?;
    Ok(Json(
        all.into_iter().map(|d| department_out(d, &auth)).collect(),
    ))
}

/// One department.
#[utoipa::path(get, path = "/api/v1/departments/{id}", params(("id" = i64, Path, description = "the department's id")), tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = DepartmentOut), (status = 404, body = Problem)))]
pub(crate) async fn get_department(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<DepartmentOut>> {
    Ok(Json(department_out(
        catalog::find_department(&state.db, DepartmentId(id)).await?,
        &auth,
    )))
}

/// Create a department.
#[utoipa::path(post, path = "/api/v1/departments", tag = "catalog", request_body = DepartmentIn,
    security(("bearer" = [])),
    responses((status = 201, body = DepartmentOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn create_department(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Json(input): Json<DepartmentIn>,
) -> ApiResult<(StatusCode, Json<DepartmentOut>)> {
    let (spec, strategy) = department_input(&input)?;
    let department =
        catalog::create_department(&state.db, &spec, strategy, &auth.actor(rid)).await?;
    Ok((StatusCode::CREATED, Json(department_out(department, &auth))))
}

/// Replace a department's name and contacts.
#[utoipa::path(put, path = "/api/v1/departments/{id}", params(("id" = i64, Path, description = "the department's id")), tag = "catalog", request_body = DepartmentIn,
    security(("bearer" = [])),
    responses((status = 200, body = DepartmentOut), (status = 404, body = Problem), (status = 409, description = "the name is taken", body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn update_department(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
    Json(input): Json<DepartmentIn>,
) -> ApiResult<Json<DepartmentOut>> {
    let (spec, strategy) = department_input(&input)?;
    let department = catalog::update_department(
        &state.db,
        DepartmentId(id),
        &spec,
        strategy,
        &auth.actor(rid),
    )
    .await?;
    Ok(Json(department_out(department, &auth)))
}

/// Delete a department no category refers to.
#[utoipa::path(delete, path = "/api/v1/departments/{id}", params(("id" = i64, Path, description = "the department's id")), tag = "catalog", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn delete_department(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    catalog::delete_department(&state.db, DepartmentId(id), &auth.actor(rid)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- categories --------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryOut {
    pub id: i64,
    pub name_es: String,
    pub name_en: String,
    /// Where incidents of this category go unless someone decides otherwise.
    pub default_department_id: Option<i64>,
    /// `low`, `medium`, `high` or `emergency`.
    pub default_urgency: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<Category> for CategoryOut {
    fn from(c: Category) -> Self {
        Self {
            id: c.id.0,
            name_es: c.name_es,
            name_en: c.name_en,
            default_department_id: c.default_department_id,
            default_urgency: c.default_urgency.as_str().to_owned(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryIn {
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 120
    )]
    pub name_es: String,
    /// Defaults to the Spanish name.
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 120
    )]
    pub name_en: Option<String>,
    pub default_department_id: Option<i64>,
    /// Defaults to `medium`.
    #[schema(pattern = "^(low|medium|high|emergency)$")]
    pub default_urgency: Option<String>,
}

fn category_spec(input: &CategoryIn) -> Result<CategorySpec, Vec<vigia_domain::FieldError>> {
    CategorySpec::parse(
        &input.name_es,
        input.name_en.as_deref(),
        input.default_department_id,
        input.default_urgency.as_deref(),
    )
}

/// List categories.
#[utoipa::path(get, path = "/api/v1/categories", tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = Vec<CategoryOut>)))]
pub(crate) async fn list_categories(
    State(state): State<AppState>,
    _auth: Auth,
) -> ApiResult<Json<Vec<CategoryOut>>> {
    Ok(Json(
        catalog::list_categories(&state.db)
            .await?
            .into_iter()
            .map(CategoryOut::from)
            .collect(),
    ))
}

/// One category.
#[utoipa::path(get, path = "/api/v1/categories/{id}", params(("id" = i64, Path, description = "the category's id")), tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = CategoryOut), (status = 404, body = Problem)))]
pub(crate) async fn get_category(
    State(state): State<AppState>,
    _auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<CategoryOut>> {
    Ok(Json(
        catalog::find_category(&state.db, CategoryId(id))
            .await?
            .into(),
    ))
}

/// Create a category.
#[utoipa::path(post, path = "/api/v1/categories", tag = "catalog", request_body = CategoryIn,
    security(("bearer" = [])),
    responses((status = 201, body = CategoryOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn create_category(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Json(input): Json<CategoryIn>,
) -> ApiResult<(StatusCode, Json<CategoryOut>)> {
    let category =
        catalog::create_category(&state.db, &category_spec(&input)?, &auth.actor(rid)).await?;
    Ok((StatusCode::CREATED, Json(category.into())))
}

/// Replace a category.
#[utoipa::path(put, path = "/api/v1/categories/{id}", params(("id" = i64, Path, description = "the category's id")), tag = "catalog", request_body = CategoryIn,
    security(("bearer" = [])),
    responses((status = 200, body = CategoryOut), (status = 404, body = Problem), (status = 409, description = "the name is taken", body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn update_category(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
    Json(input): Json<CategoryIn>,
) -> ApiResult<Json<CategoryOut>> {
    let category = catalog::update_category(
        &state.db,
        CategoryId(id),
        &category_spec(&input)?,
        &auth.actor(rid),
    )
    .await?;
    Ok(Json(category.into()))
}

/// Delete a category no incident refers to.
#[utoipa::path(delete, path = "/api/v1/categories/{id}", params(("id" = i64, Path, description = "the category's id")), tag = "catalog", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn delete_category(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    catalog::delete_category(&state.db, CategoryId(id), &auth.actor(rid)).await?;
    Ok(StatusCode::NO_CONTENT)
}

mod zones;

pub use zones::*;

// --- SLA policies ------------------------------------------------------------------------------

/// The service-level targets of one urgency of a category.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlaPolicyOut {
    pub urgency: String,
    pub acknowledge_within_secs: i64,
    pub resolve_within_secs: i64,
    /// Raise the incident's urgency one step when a target is missed.
    pub raise_urgency_on_breach: bool,
    /// False when the built-in default for the urgency applies.
    pub configured: bool,
}

/// The SLA policy of every urgency of a category.
#[utoipa::path(get, path = "/api/v1/categories/{id}/sla", params(("id" = i64, Path, description = "the category's id")), tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = Vec<SlaPolicyOut>), (status = 404, body = Problem)))]
pub(crate) async fn list_sla(
    State(state): State<AppState>,
    _auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<SlaPolicyOut>>> {
    let list = vigia_store::incidents::list_policies(&state.db, CategoryId(id)).await?;
    Ok(Json(
        list.into_iter()
            .map(|p| SlaPolicyOut {
                urgency: p.urgency.as_str().into(),
                acknowledge_within_secs: p.acknowledge_within_secs,
                resolve_within_secs: p.resolve_within_secs,
                raise_urgency_on_breach: p.raise_urgency_on_breach,
                configured: p.configured,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicyIn {
    /// 60 seconds to 366 days.
    #[schema(minimum = 60, maximum = 31622400)]
    pub acknowledge_within_secs: i64,
    /// 60 seconds to 366 days, and not shorter than `acknowledge_within_secs`.
    #[schema(minimum = 60, maximum = 31622400)]
    pub resolve_within_secs: i64,
    #[serde(default)]
    pub raise_urgency_on_breach: bool,
}

/// Set a category's SLA policy for one urgency (audited). New incidents use it; open incidents
/// switch to it when their category or urgency changes, keeping time spent on hold.
#[utoipa::path(put, path = "/api/v1/categories/{id}/sla/{urgency}", params(("id" = i64, Path, description = "the category's id"), ("urgency" = String, Path, description = "`low`, `medium`, `high` or `emergency`", pattern = "^(low|medium|high|emergency)$")), tag = "catalog", request_body = SlaPolicyIn,
    security(("bearer" = [])),
    responses((status = 200, body = Vec<SlaPolicyOut>), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn put_sla(
    State(state): State<AppState>,
    admin: Admin,
    RequestId(rid): RequestId,
    Path((id, urgency)): Path<(i64, String)>,
    Json(input): Json<SlaPolicyIn>,
) -> ApiResult<Json<Vec<SlaPolicyOut>>> {
    let urgency = vigia_domain::catalog::Urgency::parse("urgency", &urgency)?;
    let policy = vigia_domain::incidents::SlaPolicy::parse(
        input.acknowledge_within_secs,
        input.resolve_within_secs,
        input.raise_urgency_on_breach,
    )?;
    vigia_store::incidents::set_policy(
        &state.db,
        CategoryId(id),
        urgency,
        &policy,
        &admin.actor(rid),
    )
    .await?;
    list_sla(State(state), admin.0, Path(id)).await
}
