//! Reporting an incident (with `Idempotency-Key` replay), previewing one, and checking a
//! location against the known zones.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use vigia_domain::auth::Principal;
use vigia_domain::catalog::GeoPoint;
use vigia_domain::ids::{IncidentId, ZoneId};
use vigia_domain::incidents::{
    Denied, NewIncident, RawNewIncident, ReadScope, Source, may_choose_department,
};
use vigia_domain::{FieldError, Timestamp, Validation};
use vigia_store::incidents::{self, Reporter};
use vigia_store::{StoreError, catalog, idempotency};

use super::wire::{IncidentOut, with_etag};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, LenientJson};
use crate::routes::catalog::PointIo;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentIn {
    /// Required: without it the report is refused (422 naming this field).
    #[schema(value_type = i64, required = true, minimum = 1)]
    pub category_id: Option<i64>,
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 200
    )]
    pub title: String,
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 5000
    )]
    pub description: String,
    /// Defaults to the category's urgency.
    #[schema(pattern = "^(low|medium|high|emergency)$")]
    pub urgency: Option<String>,
    /// Defaults to the category's department. Only staff and admins may choose it.
    #[schema(minimum = 1)]
    pub department_id: Option<i64>,
    #[schema(minimum = 1)]
    pub zone_id: Option<i64>,
    /// Blank is the same as leaving it out.
    #[schema(
        pattern = r"^(?:\s*|[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*)$",
        max_length = 300
    )]
    pub location_text: Option<String>,
    pub point: Option<PointIo>,
    /// `public` (default) or `private`.
    #[schema(pattern = "^(public|private)$")]
    pub visibility: Option<String>,
    /// `web` (default for people) or `api` (default for API keys).
    pub source: Option<String>,
}

pub(crate) fn parse_incident(input: &IncidentIn, principal: &Principal) -> ApiResult<NewIncident> {
    let mut v = Validation::new();
    let source = match input.source.as_deref() {
        Some(raw) => v.check(Source::parse("source", raw)),
        None if matches!(principal, Principal::ApiKey(_)) => Some(Source::Api),
        None => Some(Source::Web),
    };
    let raw = RawNewIncident {
        title: &input.title,
        description: &input.description,
        category_id: input.category_id,
        urgency: input.urgency.as_deref(),
        department_id: input.department_id,
        zone_id: input.zone_id,
        location_text: input.location_text.as_deref(),
        point: input.point.map(|p| (p.lat, p.lon)),
        visibility: input.visibility.as_deref(),
    };
    let new = match NewIncident::parse(&raw, source.unwrap_or(Source::Web)) {
        Ok(new) => Some(new),
        Err(errors) => {
            errors.into_iter().for_each(|e| v.push(e));
            None
        }
    };
    if new.as_ref().is_some_and(|n| n.department_id.is_some())
        && let Err(denied) = may_choose_department(principal)
    {
        match denied {
            Denied::Field { field, message } => v.push(FieldError::new(field, message)),
            other => return Err(other.into()),
        }
    }
    v.finish()?;
    new.ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "an incident failed to parse without an error"
        ))
    })
}

/// Report an incident. Send `Idempotency-Key` to make retries safe: a retry with the same key
/// and body returns the incident created the first time.
#[utoipa::path(post, path = "/api/v1/incidents", operation_id = "create_incident", tag = "incidents", request_body = IncidentIn,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries safe", pattern = r"^[\x21-\x7E](?:[\x20-\x7E]{0,198}[\x21-\x7E])?$")),
    responses((status = 201, body = IncidentOut), (status = 200, body = IncidentOut, description = "replayed"),
        (status = 409, body = Problem, description = "key reused with another body"),
        (status = 422, body = Problem)))]
pub(super) async fn create(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: LenientJson<IncidentIn>,
) -> ApiResult<Response> {
    let new = body.parse(|input| parse_incident(input, &auth.0))?;
    let label = auth.0.label();
    let claim = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = value
                .to_str()
                .ok()
                .filter(|k| {
                    (1..=200).contains(&k.len()) && k.bytes().all(|b| (0x20..=0x7e).contains(&b))
                })
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "Idempotency-Key must be 1 to 200 visible ASCII characters",
                    )
                })?;
            let request_hash = hex::encode(Sha256::digest(body.bytes()));
            if let Some(recorded) = idempotency::find(&state.db, &label, key).await? {
                return replay(&state, &auth, recorded, &request_hash).await;
            }
            Some(idempotency::Claim {
                principal: label.clone(),
                key: key.to_owned(),
                request_hash,
            })
        }
    };
    let reporter = Reporter {
        user: auth.0.user_id(),
        label: label.clone(),
    };
    match incidents::create(&state.db, &new, &reporter, claim.as_ref(), Timestamp::now()).await {
        Ok(incident) => Ok(with_etag(StatusCode::CREATED, IncidentOut::full(incident))),
        Err(StoreError::Duplicate {
            field: "idempotency_key",
        }) => {
            let claim = claim.ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("duplicate key without a claim"))
            })?;
            let recorded = idempotency::find(&state.db, &label, &claim.key)
                .await?
                .ok_or(ApiError::NotFound)?;
            replay(&state, &auth, recorded, &claim.request_hash).await
        }
        Err(error) => Err(error.into()),
    }
}

pub(super) async fn replay(
    state: &AppState,
    auth: &Auth,
    recorded: idempotency::Recorded,
    request_hash: &str,
) -> ApiResult<Response> {
    if recorded.request_hash != request_hash {
        return Err(ApiError::conflict(
            "this Idempotency-Key was used with a different request body",
        ));
    }
    let id = recorded
        .resource
        .strip_prefix("incident:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "unexpected idempotency record {}",
                recorded.resource
            ))
        })?;
    let incident = incidents::find(&state.db, &ReadScope::All, IncidentId(id)).await?;
    let mut response = with_etag(StatusCode::OK, IncidentOut::for_caller(incident, &auth.0));
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}

/// What reporting would create, without saving anything.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewOut {
    /// The format of the code the incident will get.
    pub code_format: &'static str,
    pub department_id: Option<i64>,
    pub urgency: String,
    #[schema(value_type = String, format = DateTime)]
    pub acknowledge_due: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub resolve_due: Timestamp,
    /// Things the reporter may want to fix before sending.
    pub warnings: Vec<String>,
}

/// Preview an incident: routing, urgency, SLA due times and warnings. Nothing is saved.
#[utoipa::path(post, path = "/api/v1/incidents/preview", tag = "incidents", request_body = IncidentIn,
    security(("bearer" = [])), responses((status = 200, body = PreviewOut), (status = 422, body = Problem)))]
pub(super) async fn preview(
    State(state): State<AppState>,
    auth: Auth,
    body: LenientJson<IncidentIn>,
) -> ApiResult<Json<PreviewOut>> {
    let new = body.parse(|input| parse_incident(input, &auth.0))?;
    let routing = incidents::route(&state.db, &new).await?;
    let now = Timestamp::now();
    let clock = vigia_domain::incidents::SlaClock::start(&routing.policy, now);
    let mut warnings = Vec::new();
    if routing.department.is_none() {
        warnings
            .push("the category has no default department: an administrator will route it".into());
    }
    if new.location.is_none() {
        warnings.push("no location given: staff may not find the place".into());
    }
    if let Some(point) = new.location.as_ref().and_then(|l| l.point()) {
        let zones = catalog::zones_containing(&state.db, point).await?;
        if zones.is_empty() {
            warnings.push("the position is outside every known zone".into());
        } else if let Some(zone) = new.location.as_ref().and_then(|l| l.zone())
            && !zones.iter().any(|z| z.id == zone)
        {
            warnings.push("the position is not inside the chosen zone".into());
        }
    }
    Ok(Json(PreviewOut {
        code_format: "INC-000000",
        department_id: routing.department.map(|d| d.0),
        urgency: routing.urgency.as_str().into(),
        acknowledge_due: clock.acknowledge_due(),
        resolve_due: clock.resolve_due(now),
        warnings,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationIn {
    pub zone_id: Option<i64>,
    pub point: PointIo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LocationCheckOut {
    /// True when the position is inside a known zone (and inside `zone_id` when given).
    pub valid: bool,
    /// The smallest known zone containing the position.
    pub zone_id: Option<i64>,
    pub zone_name: Option<String>,
    /// Every zone containing the position, smallest first.
    pub zones: Vec<i64>,
}

/// Is this position inside a known zone, and which one?
#[utoipa::path(post, path = "/api/v1/incidents/validate-location", tag = "incidents", request_body = LocationIn,
    security(("bearer" = [])), responses((status = 200, body = LocationCheckOut), (status = 422, body = Problem)))]
pub(super) async fn validate_location(
    State(state): State<AppState>,
    _auth: Auth,
    Json(input): Json<LocationIn>,
) -> ApiResult<Json<LocationCheckOut>> {
    let point = GeoPoint::parse("point", input.point.lat, input.point.lon)?;
    if let Some(zone) = input.zone_id {
        catalog::find_zone(&state.db, ZoneId(zone))
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    ApiError::field("zone_id", "refers to a zone that does not exist")
                }
                other => other.into(),
            })?;
    }
    let zones = catalog::zones_containing(&state.db, point).await?;
    let valid = match input.zone_id {
        Some(zone) => zones.iter().any(|z| z.id.0 == zone),
        None => !zones.is_empty(),
    };
    Ok(Json(LocationCheckOut {
        valid,
        zone_id: zones.first().map(|z| z.id.0),
        zone_name: zones.first().map(|z| z.name.clone()),
        zones: zones.iter().map(|z| z.id.0).collect(),
    }))
}
