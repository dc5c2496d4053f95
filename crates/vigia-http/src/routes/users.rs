//! User administration (admins only): list, create, read, change role, disable, departments.

use axum::extract::State;

use super::{Routes, op};
use crate::path::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigia_domain::Validation;
use vigia_domain::ids::{DepartmentId, UserId};
use vigia_domain::users::{DisplayName, Locale, Role};
use vigia_store::page::clamp_limit;
use vigia_store::{Cursor, users};

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, LenientJson, Query, RequestId};
use crate::routes::auth::UserOut;
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, list);
    let routes = op!(routes, create);
    let routes = op!(routes, find);
    op!(routes, update)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// `reporter`, `staff` or `admin`.
    #[param(pattern = "^(reporter|staff|admin)$")]
    pub role: Option<String>,
    pub disabled: Option<bool>,
    /// Members of this department.
    pub department: Option<i64>,
    /// Matches e-mail or display name.
    pub q: Option<String>,
    /// From `next_cursor` of the previous page.
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub cursor: Option<String>,
    /// 1 to 200, default 50.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<UserOut>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Parses a `cursor` query parameter.
pub fn cursor(raw: Option<&str>) -> ApiResult<Option<Cursor>> {
    raw.map(|c| {
        Cursor::decode(c)
            .ok_or_else(|| ApiError::field("cursor", "is not a cursor this server issued"))
    })
    .transpose()
}

/// List users.
#[utoipa::path(get, path = "/api/v1/users", operation_id = "list_users", tag = "users", params(UserQuery), security(("bearer" = [])),
    responses((status = 200, body = UserPage), (status = 403, body = Problem)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<UserQuery>,
) -> ApiResult<Json<UserPage>> {
    let role = q
        .role
        .as_deref()
        .map(|r| Role::parse("role", r))
        .transpose()?;
    let filter = users::UserFilter {
        role,
        disabled: q.disabled,
        department: q.department.map(DepartmentId),
        q: q.q,
    };
    let page = users::list(
        &state.db,
        &filter,
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    Ok(Json(UserPage {
        items: page.items.into_iter().map(UserOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserIn {
    #[schema(format = Email)]
    pub email: String,
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 100
    )]
    pub display_name: String,
    /// `reporter`, `staff` or `admin`.
    #[schema(pattern = "^(reporter|staff|admin)$")]
    pub role: String,
    /// `es` (default) or `en`.
    #[schema(pattern = "^(es|en)$")]
    pub locale: Option<String>,
    #[serde(default)]
    pub departments: Vec<i64>,
}

/// Create an account of any role.
#[utoipa::path(post, path = "/api/v1/users", operation_id = "create_user", tag = "users", request_body = UserIn, security(("bearer" = [])),
    responses((status = 201, body = UserOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(request_id): RequestId,
    body: LenientJson<UserIn>,
) -> ApiResult<(StatusCode, Json<UserOut>)> {
    let input = body.value();
    let new = body.merge(
        super::auth::new_account(
            &state,
            &input.email,
            &input.password,
            &input.display_name,
            input.locale.as_deref(),
            Role::parse("role", &input.role),
        )
        .await,
    )?;
    let actor = auth.actor(request_id);
    let departments: Vec<DepartmentId> = input
        .departments
        .iter()
        .copied()
        .map(DepartmentId)
        .collect();
    for (i, department) in departments.iter().enumerate() {
        if !vigia_store::catalog::department_exists(&state.db, *department).await? {
            return Err(ApiError::field(
                format!("departments[{i}]"),
                "refers to a department that does not exist",
            ));
        }
    }
    let user = users::create_with_departments(&state.db, &new, &departments, &actor).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", operation_id = "find_user", params(("id" = i64, Path, description = "the user's id")), tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 404, body = Problem)))]
pub(crate) async fn find(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<UserOut>> {
    Ok(Json(users::find(&state.db, UserId(id)).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchIn {
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 100
    )]
    pub display_name: Option<String>,
    /// `reporter`, `staff` or `admin`.
    #[schema(pattern = "^(reporter|staff|admin)$")]
    pub role: Option<String>,
    /// `es` or `en`.
    #[schema(pattern = "^(es|en)$")]
    pub locale: Option<String>,
    /// Disabling signs the user out everywhere at once.
    pub disabled: Option<bool>,
    /// Away staff get no automatic assignments.
    pub away: Option<bool>,
    /// Replaces the user's department memberships.
    pub departments: Option<Vec<i64>>,
}

/// Change a user's name, role, language, standing or departments.
#[utoipa::path(patch, path = "/api/v1/users/{id}", params(("id" = i64, Path, description = "the user's id")), tag = "users", request_body = UserPatchIn,
    security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(request_id): RequestId,
    Path(id): Path<i64>,
    Json(input): Json<UserPatchIn>,
) -> ApiResult<Json<UserOut>> {
    let id = UserId(id);
    let mut v = Validation::new();
    let display_name = input
        .display_name
        .as_deref()
        .and_then(|n| v.check(DisplayName::parse("display_name", n)));
    let role = input
        .role
        .as_deref()
        .and_then(|r| v.check(Role::parse("role", r)));
    let locale = input
        .locale
        .as_deref()
        .and_then(|l| v.check(Locale::parse("locale", l)));
    v.finish()?;
    let target = users::find(&state.db, id).await?;
    let loses_admin = target.role == Role::Admin
        && !target.disabled
        && (input.disabled == Some(true) || role.is_some_and(|r| r != Role::Admin));
    if loses_admin {
        let (_, enabled_admins) = users::counts(&state.db).await?;
        if enabled_admins <= 1 {
            return Err(ApiError::conflict(
                "this is the last enabled administrator: promote another one first",
            ));
        }
    }
    let patch = users::UserPatch {
        display_name: display_name.map(|n| n.as_str().to_owned()),
        role,
        locale,
        disabled: input.disabled,
        away: input.away,
        departments: input
            .departments
            .map(|d| d.into_iter().map(DepartmentId).collect()),
        notify_status_changes: None,
    };
    let user = users::update(&state.db, id, &patch, &auth.actor(request_id)).await?;
    state.forget_user(id);
    Ok(Json(user.into()))
}
