//! Editing an incident's content and classification ([`Relation::may_edit`]).
//!
//! [`Relation::may_edit`]: vigia_domain::incidents::Relation::may_edit

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use vigia_domain::Timestamp;
use vigia_domain::catalog::Urgency;
use vigia_domain::ids::CategoryId;
use vigia_domain::incidents::EditReach;
use vigia_store::incidents;

use super::wire::{IncidentOut, with_etag};
use super::{check_if_match, load};
use crate::auth::Auth;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, objects_only};
use crate::path::Path;
use crate::routes::catalog::PointIo;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentPatch {
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 200
    )]
    pub title: Option<String>,
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 5000
    )]
    pub description: Option<String>,
    /// Staff only. Re-applies the SLA policy, keeping time already spent on hold.
    pub category_id: Option<i64>,
    /// Staff only. Re-applies the SLA policy, keeping time already spent on hold.
    pub urgency: Option<String>,
    /// Replaces the whole location; `null` members clear it.
    pub location: Option<LocationPatch>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct LocationPatch {
    pub zone_id: Option<i64>,
    /// Blank is the same as leaving it out.
    #[schema(
        pattern = r"^(?:\s*|[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*)$",
        max_length = 300
    )]
    pub text: Option<String>,
    pub point: Option<PointIo>,
}
objects_only!(LocationPatch);

/// Edit an incident. Department staff and admins may change everything; the reporter may fix
/// title, description and location while it is still `new`.
#[utoipa::path(patch, path = "/api/v1/incidents/{id}", tag = "incidents", request_body = IncidentPatch,
    security(("bearer" = [])), params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)"), ("If-Match" = Option<String>, Header, description = "the version read", pattern = r#"^(\*|(W/)?"[0-9]{1,18}"|[0-9]{1,18})$"#)),
    responses((status = 200, body = IncidentOut), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn edit(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(input): Json<IncidentPatch>,
) -> ApiResult<Response> {
    let (incident, relation) = load(&state, &auth, &id).await?;
    let reach = if input.category_id.is_some() || input.urgency.is_some() {
        EditReach::Classification
    } else {
        EditReach::Content
    };
    relation.may_edit(incident.status, reach)?;
    let mut v = vigia_domain::Validation::new();
    let title = input
        .title
        .as_deref()
        .and_then(|t| v.check(vigia_domain::incidents::IncidentTitle::parse("title", t)));
    let description = input.description.as_deref().and_then(|d| {
        v.check(vigia_domain::incidents::IncidentDescription::parse(
            "description",
            d,
        ))
    });
    let urgency = input
        .urgency
        .as_deref()
        .and_then(|u| v.check(Urgency::parse("urgency", u)));
    let location = match &input.location {
        None => None,
        Some(l) => match vigia_domain::incidents::Location::parse(
            l.zone_id,
            l.text.as_deref(),
            l.point.map(|p| (p.lat, p.lon)),
        ) {
            Ok(location) => Some(location),
            Err(errors) => {
                errors.into_iter().for_each(|e| v.push(e));
                None
            }
        },
    };
    v.finish()?;
    check_if_match(&headers, &incident)?;
    let change = incidents::IncidentEdit {
        title,
        description,
        category: input.category_id.map(CategoryId),
        urgency,
        location,
    };
    let updated = incidents::edit(
        &state.db,
        &incident,
        &change,
        &auth.0.label(),
        Timestamp::now(),
    )
    .await?;
    Ok(with_etag(
        StatusCode::OK,
        IncidentOut::for_caller(updated, &auth.0),
    ))
}
