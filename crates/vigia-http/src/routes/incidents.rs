//! Incidents: report, read (scoped), lifecycle, comments, routing, assignment, visibility, votes,
//! history. Who may do what is decided by the domain ([`Actor`], [`check_transition`]); the
//! store only ever returns what the caller's [`ReadScope`] admits.

use axum::extract::State;

use super::{Routes, op};
use crate::path::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use vigia_domain::auth::Principal;
use vigia_domain::catalog::{GeoPoint, Urgency};
use vigia_domain::ids::{CategoryId, DepartmentId, IncidentId, UserId, ZoneId};
use vigia_domain::incidents::{
    Actor, IncidentCode, IncidentVisibility, NewComment, NewIncident, RawNewIncident, ReadScope,
    Source, Status, TransitionError, check_transition,
};
use vigia_domain::{FieldError, Timestamp, Validation};
use vigia_store::incidents::{self, Comment, Incident, IncidentFilter, Reporter, Sort};
use vigia_store::page::clamp_limit;
use vigia_store::{StoreError, catalog, idempotency};

use crate::auth::{Admin, Auth};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, LenientJson, Query};
use crate::json_out::{JsonWriter, WriteJson, Written};
use crate::routes::catalog::PointIo;
use crate::routes::users::cursor;
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, list);
    let routes = op!(routes, create);
    let routes = op!(routes, mine);
    let routes = op!(routes, preview);
    let routes = op!(routes, validate_location);
    let routes = op!(routes, find);
    let routes = op!(routes, edit);
    let routes = op!(routes, events);
    let routes = op!(routes, transition);
    let routes = op!(routes, comments);
    let routes = op!(routes, comment);
    let routes = op!(routes, assign_department);
    let routes = op!(routes, assign_user);
    let routes = op!(routes, set_visibility);
    let routes = op!(routes, vote);
    let routes = op!(routes, withdraw_vote);
    op!(routes, public_list)
}

// --- wire types --------------------------------------------------------------------------------

/// Service-level targets and whether they were missed.
#[derive(Debug, ToSchema)]
#[cfg_attr(test, derive(Serialize))]
pub struct SlaOut {
    #[schema(value_type = String, format = DateTime)]
    pub acknowledge_due: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub resolve_due: Timestamp,
    pub acknowledge_breached: bool,
    pub resolve_breached: bool,
    /// True while on hold: the resolve clock is stopped.
    pub paused: bool,
}

#[derive(Debug, ToSchema)]
#[cfg_attr(test, derive(Serialize))]
pub struct LocationOut {
    pub zone_id: Option<i64>,
    pub text: Option<String>,
    pub point: Option<PointIo>,
}

/// An incident. On the public board the reporter and assignee are hidden.
///
/// Written by [`WriteJson`] (a page of them is the API's hottest body); the tests check that
/// the output is what a `Serialize` derive would produce, field for field and byte for byte.
#[derive(Debug, ToSchema)]
#[cfg_attr(test, derive(Serialize))]
pub struct IncidentOut {
    pub id: i64,
    /// Human code, e.g. `INC-000123`.
    #[schema(value_type = String)]
    pub code: IncidentCode,
    pub category_id: i64,
    pub department_id: Option<i64>,
    pub assignee_id: Option<i64>,
    pub reporter_id: Option<i64>,
    pub title: String,
    pub description: String,
    pub location: LocationOut,
    /// `low`, `medium`, `high` or `emergency`.
    pub urgency: &'static str,
    /// `new`, `acknowledged`, `in_progress`, `on_hold`, `resolved` or `closed`.
    pub status: &'static str,
    /// `web`, `api`, `assistant`, `rule` or `media`.
    pub source: &'static str,
    /// `public` or `private`.
    pub visibility: &'static str,
    pub votes: i64,
    /// Send back as `If-Match` to change the incident safely.
    pub version: i64,
    pub sla: SlaOut,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

fn point(p: GeoPoint) -> PointIo {
    PointIo {
        lat: p.lat,
        lon: p.lon,
    }
}

impl IncidentOut {
    fn full(i: Incident) -> Self {
        Self {
            id: i.id.0,
            code: i.code,
            category_id: i.category_id.0,
            department_id: i.department_id.map(|d| d.0),
            assignee_id: i.assignee_id.map(|u| u.0),
            reporter_id: i.reporter_id.map(|u| u.0),
            title: i.title,
            description: i.description,
            location: LocationOut {
                zone_id: i.zone_id.map(|z| z.0),
                text: i.location_text,
                point: i.point.map(point),
            },
            urgency: i.urgency.as_str(),
            status: i.status.as_str(),
            source: i.source.as_str(),
            visibility: i.visibility.as_str(),
            votes: i.votes,
            version: i.version,
            sla: SlaOut {
                acknowledge_due: i.sla.acknowledge_due,
                resolve_due: i.sla.resolve_due,
                acknowledge_breached: i.sla.acknowledge_breached,
                resolve_breached: i.sla.resolve_breached,
                paused: i.sla.paused,
            },
            acknowledged_at: i.acknowledged_at,
            resolved_at: i.resolved_at,
            closed_at: i.closed_at,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }

    /// What anyone may see of a public incident that is not theirs: no personal data.
    fn redacted(i: Incident) -> Self {
        let mut out = Self::full(i);
        out.reporter_id = None;
        out.assignee_id = None;
        out
    }

    /// The view `principal` gets of `incident`.
    fn for_caller(i: Incident, principal: &Principal) -> Self {
        let actor = Actor::of(principal, i.department_id, i.reporter_id);
        if actor == Actor::Other {
            Self::redacted(i)
        } else {
            Self::full(i)
        }
    }
}

impl WriteJson for IncidentOut {
    fn write_json(&self, w: &mut JsonWriter<'_>) {
        w.raw("{\"id\":");
        w.i64(self.id);
        w.raw(",\"code\":");
        self.code.with_str(|code| w.str(code));
        w.raw(",\"category_id\":");
        w.i64(self.category_id);
        w.raw(",\"department_id\":");
        w.opt_i64(self.department_id);
        w.raw(",\"assignee_id\":");
        w.opt_i64(self.assignee_id);
        w.raw(",\"reporter_id\":");
        w.opt_i64(self.reporter_id);
        w.raw(",\"title\":");
        w.str(&self.title);
        w.raw(",\"description\":");
        w.str(&self.description);
        w.raw(",\"location\":{\"zone_id\":");
        w.opt_i64(self.location.zone_id);
        w.raw(",\"text\":");
        w.opt_str(self.location.text.as_deref());
        w.raw(",\"point\":");
        match self.location.point {
            Some(p) => {
                w.raw("{\"lat\":");
                w.f64(p.lat);
                w.raw(",\"lon\":");
                w.f64(p.lon);
                w.raw("}");
            }
            None => w.null(),
        }
        w.raw("},\"urgency\":");
        w.str(self.urgency);
        w.raw(",\"status\":");
        w.str(self.status);
        w.raw(",\"source\":");
        w.str(self.source);
        w.raw(",\"visibility\":");
        w.str(self.visibility);
        w.raw(",\"votes\":");
        w.i64(self.votes);
        w.raw(",\"version\":");
        w.i64(self.version);
        w.raw(",\"sla\":{\"acknowledge_due\":");
        w.timestamp(self.sla.acknowledge_due);
        w.raw(",\"resolve_due\":");
        w.timestamp(self.sla.resolve_due);
        w.raw(",\"acknowledge_breached\":");
        w.bool(self.sla.acknowledge_breached);
        w.raw(",\"resolve_breached\":");
        w.bool(self.sla.resolve_breached);
        w.raw(",\"paused\":");
        w.bool(self.sla.paused);
        w.raw("},\"acknowledged_at\":");
        w.opt_timestamp(self.acknowledged_at);
        w.raw(",\"resolved_at\":");
        w.opt_timestamp(self.resolved_at);
        w.raw(",\"closed_at\":");
        w.opt_timestamp(self.closed_at);
        w.raw(",\"created_at\":");
        w.timestamp(self.created_at);
        w.raw(",\"updated_at\":");
        w.timestamp(self.updated_at);
        w.raw("}");
    }
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn with_etag(status: StatusCode, incident: IncidentOut) -> Response {
    let tag = etag(incident.version);
    (status, [(header::ETAG, tag)], Written(incident)).into_response()
}

// --- loading and rules -------------------------------------------------------------------------

/// Parses a path id: a number or a code such as `INC-000123`.
pub(crate) fn incident_id(raw: &str) -> ApiResult<IncidentId> {
    if let Ok(n) = raw.parse::<i64>() {
        return Ok(IncidentId(n));
    }
    IncidentCode::parse("id", raw)
        .map(|c| IncidentId(c.sequence() as i64))
        .map_err(|_| ApiError::NotFound)
}

/// The incident if the caller may see it; 404 otherwise (never 403: existence is not leaked).
pub(crate) async fn load(
    state: &AppState,
    auth: &Auth,
    raw_id: &str,
) -> ApiResult<(Incident, Actor)> {
    let incident =
        incidents::find(&state.db, &ReadScope::of(&auth.0), incident_id(raw_id)?).await?;
    let actor = Actor::of(&auth.0, incident.department_id, incident.reporter_id);
    Ok((incident, actor))
}

/// Checks `If-Match` (optional; when sent it must name the current version) → 412.
fn check_if_match(headers: &HeaderMap, incident: &Incident) -> ApiResult<()> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let raw = value
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match must be an ETag such as \"3\""))?;
    // `"3"`, `W/"3"` or a bare `3` (the document's pattern, IF_MATCH_PATTERN), or `*`.
    let tag = raw.trim();
    let unweak = tag.strip_prefix("W/").unwrap_or(tag);
    let digits = unweak
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(unweak);
    let version: Option<i64> =
        (!digits.is_empty() && digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten();
    match version {
        Some(v) if v == incident.version => Ok(()),
        Some(_) => Err(ApiError::PreconditionFailed {
            detail: format!(
                "the incident is at version {}; reload it and try again",
                incident.version
            ),
        }),
        None if tag == "*" => Ok(()),
        None => Err(ApiError::bad_request(
            "If-Match must be an ETag such as \"3\"",
        )),
    }
}

const STAFF_ONLY: ApiError = ApiError::Forbidden {
    detail: "only the incident's department staff and admins may do this",
};

fn require_staff_of(actor: Actor) -> ApiResult<()> {
    if actor.is_staff() {
        Ok(())
    } else {
        Err(STAFF_ONLY)
    }
}

// --- report ------------------------------------------------------------------------------------

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

fn parse_incident(input: &IncidentIn, principal: &Principal) -> ApiResult<NewIncident> {
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
        && !principal.has_role(vigia_domain::users::Role::Staff)
    {
        v.push(FieldError::new(
            "department_id",
            "only staff and admins may choose the department",
        ));
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
#[utoipa::path(post, path = "/api/v1/incidents", tag = "incidents", request_body = IncidentIn,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries safe", pattern = r"^[\x21-\x7E](?:[\x20-\x7E]{0,198}[\x21-\x7E])?$")),
    responses((status = 201, body = IncidentOut), (status = 200, body = IncidentOut, description = "replayed"),
        (status = 409, body = Problem, description = "key reused with another body"),
        (status = 422, body = Problem)))]
async fn create(
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

async fn replay(
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
async fn preview(
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
async fn validate_location(
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

// --- read --------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IncidentQuery {
    /// Comma-separated statuses, e.g. `new,acknowledged`.
    #[param(
        pattern = r"^\s*(?:new|acknowledged|in_progress|on_hold|resolved|closed)?\s*(?:,\s*(?:new|acknowledged|in_progress|on_hold|resolved|closed)?\s*)*$"
    )]
    pub status: Option<String>,
    pub category: Option<i64>,
    /// Comma-separated urgencies.
    #[param(
        pattern = r"^\s*(?:low|medium|high|emergency)?\s*(?:,\s*(?:low|medium|high|emergency)?\s*)*$"
    )]
    pub urgency: Option<String>,
    pub department: Option<i64>,
    pub assignee: Option<i64>,
    pub zone: Option<i64>,
    pub reporter: Option<i64>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_from: Option<Timestamp>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_to: Option<Timestamp>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub updated_from: Option<Timestamp>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub updated_to: Option<Timestamp>,
    /// Words to find in title and description.
    pub q: Option<String>,
    /// `-created` (newest first, default) or `created`.
    #[param(pattern = "^-?created$")]
    pub sort: Option<String>,
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub cursor: Option<String>,
    /// Page size; out-of-range values are brought into the endpoint's range.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
}

#[derive(Debug, ToSchema)]
#[cfg_attr(test, derive(Serialize))]
pub struct IncidentPage {
    pub items: Vec<IncidentOut>,
    pub next_cursor: Option<String>,
}

impl WriteJson for IncidentPage {
    fn write_json(&self, w: &mut JsonWriter<'_>) {
        w.raw("{\"items\":");
        w.array(&self.items);
        w.raw(",\"next_cursor\":");
        w.opt_str(self.next_cursor.as_deref());
        w.raw("}");
    }
}

/// The list filters of `q` (shared by the list, exports and custom reports).
pub(crate) fn filter(q: &IncidentQuery) -> ApiResult<IncidentFilter> {
    let list = |raw: &Option<String>| -> Vec<String> {
        raw.as_deref()
            .map(|r| {
                r.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let status = list(&q.status)
        .iter()
        .map(|s| Status::parse("status", s))
        .collect::<Result<_, _>>()?;
    let urgency = list(&q.urgency)
        .iter()
        .map(|u| Urgency::parse("urgency", u))
        .collect::<Result<_, _>>()?;
    let sort = match q.sort.as_deref() {
        None | Some("-created") => Sort::Newest,
        Some("created") => Sort::Oldest,
        Some(_) => return Err(ApiError::field("sort", "must be -created or created")),
    };
    Ok(IncidentFilter {
        status,
        category: q.category.map(CategoryId),
        urgency,
        department: q.department.map(DepartmentId),
        assignee: q.assignee.map(UserId),
        zone: q.zone.map(ZoneId),
        reporter: q.reporter.map(UserId),
        created_from: q.created_from,
        created_to: q.created_to,
        updated_from: q.updated_from,
        updated_to: q.updated_to,
        q: q.q.clone(),
        public_only: false,
        sort,
    })
}

async fn list_in_scope(
    state: &AppState,
    auth: &Auth,
    scope: &ReadScope,
    f: IncidentFilter,
    q: &IncidentQuery,
) -> ApiResult<Written<IncidentPage>> {
    let page = incidents::list(
        &state.db,
        scope,
        &f,
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    Ok(Written(IncidentPage {
        items: page
            .items
            .into_iter()
            .map(|i| IncidentOut::for_caller(i, &auth.0))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Incidents the caller may see, filtered, newest first.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(IncidentQuery), security(("bearer" = [])),
    responses((status = 200, body = IncidentPage), (status = 422, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<IncidentQuery>,
) -> ApiResult<Written<IncidentPage>> {
    let f = filter(&q)?;
    list_in_scope(&state, &auth, &ReadScope::of(&auth.0), f, &q).await
}

/// The incidents the caller reported.
#[utoipa::path(get, path = "/api/v1/incidents/mine", tag = "incidents", params(IncidentQuery), security(("bearer" = [])),
    responses((status = 200, body = IncidentPage)))]
async fn mine(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<IncidentQuery>,
) -> ApiResult<Written<IncidentPage>> {
    let user = auth.user()?.user_id;
    let mut f = filter(&q)?;
    f.reporter = Some(user);
    list_in_scope(&state, &auth, &ReadScope::of(&auth.0), f, &q).await
}

/// The public board: public incidents, without personal data. No sign-in needed.
#[utoipa::path(get, path = "/api/v1/public/incidents", tag = "incidents", params(IncidentQuery),
    responses((status = 200, body = IncidentPage)))]
async fn public_list(
    State(state): State<AppState>,
    Query(q): Query<IncidentQuery>,
) -> ApiResult<Written<IncidentPage>> {
    let mut f = filter(&q)?;
    f.public_only = true;
    f.reporter = None;
    f.assignee = None;
    let page = incidents::list(
        &state.db,
        &ReadScope::PublicOnly,
        &f,
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    Ok(Written(IncidentPage {
        items: page.items.into_iter().map(IncidentOut::redacted).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One incident. Its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents", security(("bearer" = [])),
    params(("id" = String, Path, description = "number or code such as INC-000123")),
    responses((status = 200, body = IncidentOut), (status = 404, body = Problem)))]
async fn find(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (incident, _) = load(&state, &auth, &id).await?;
    Ok(with_etag(
        StatusCode::OK,
        IncidentOut::for_caller(incident, &auth.0),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    /// Monotonic; use as a cursor.
    pub id: i64,
    pub incident_id: i64,
    pub code: String,
    /// Real-time message type, e.g. `incident.status_changed`.
    #[serde(rename = "type")]
    pub message_type: String,
    pub actor: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub cursor: Option<String>,
    /// Page size; out-of-range values are brought into the endpoint's range.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
}

/// The incident's history, oldest first (internal events for staff only).
#[utoipa::path(get, path = "/api/v1/incidents/{id}/events", tag = "incidents", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)"), EventQuery),
    security(("bearer" = [])), responses((status = 200, body = EventPage), (status = 404, body = Problem)))]
async fn events(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<EventQuery>,
) -> ApiResult<Json<EventPage>> {
    let (incident, actor) = load(&state, &auth, &id).await?;
    let page = incidents::events::list_for_incident(
        &state.db,
        incident.id,
        actor.may_see_internal(),
        cursor(q.cursor.as_deref())?,
        q.limit.unwrap_or(200).clamp(1, 500) as usize,
    )
    .await?;
    let hide_people = actor == Actor::Other;
    Ok(Json(EventPage {
        items: page
            .items
            .into_iter()
            .map(|e| EventOut {
                id: e.id.0,
                incident_id: e.incident_id.0,
                code: e.code.to_string(),
                message_type: e.message_type,
                actor: if hide_people { String::new() } else { e.actor },
                at: e.at,
                data: e.data,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

// --- lifecycle ---------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionIn {
    /// The status to move to.
    #[schema(pattern = "^(new|acknowledged|in_progress|on_hold|resolved|closed)$")]
    pub to: String,
}

/// Move the incident through its lifecycle. Invalid moves get 409 listing the allowed ones.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/transitions", tag = "incidents", request_body = TransitionIn,
    security(("bearer" = [])), params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)"), ("If-Match" = Option<String>, Header, description = "the version read", pattern = r#"^(\*|(W/)?"[0-9]{1,18}"|[0-9]{1,18})$"#)),
    responses((status = 200, body = IncidentOut), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem)))]
async fn transition(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(input): Json<TransitionIn>,
) -> ApiResult<Response> {
    let (incident, actor) = load(&state, &auth, &id).await?;
    let to = Status::parse("to", &input.to)?;
    check_if_match(&headers, &incident)?;
    check_transition(incident.status, to, actor).map_err(|error| {
        let allowed: Vec<&str> = error.allowed().iter().map(|s| s.as_str()).collect();
        let extra =
            Some(serde_json::json!({ "current": incident.status.as_str(), "allowed": allowed }));
        match error {
            TransitionError::NotInLifecycle { .. } => ApiError::Conflict {
                detail: format!(
                    "cannot go from {} to {}",
                    incident.status.as_str(),
                    to.as_str()
                ),
                extra,
            },
            TransitionError::Forbidden { .. } => STAFF_ONLY,
        }
    })?;
    let updated =
        incidents::transition(&state.db, &incident, to, &auth.0.label(), Timestamp::now()).await?;
    Ok(with_etag(
        StatusCode::OK,
        IncidentOut::for_caller(updated, &auth.0),
    ))
}

// --- comments ----------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentIn {
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 5000
    )]
    pub body: String,
    /// `public` (default; the reporter sees it) or `internal` (staff only).
    #[schema(pattern = "^(public|internal)$")]
    pub visibility: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommentOut {
    pub id: i64,
    pub author: String,
    pub body: String,
    pub visibility: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<Comment> for CommentOut {
    fn from(c: Comment) -> Self {
        Self {
            id: c.id.0,
            author: c.author,
            body: c.body,
            visibility: c.visibility.as_str().into(),
            created_at: c.created_at,
        }
    }
}

/// Comment on an incident. The reporter and department staff may comment; internal comments
/// are for staff only.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/comments", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)")), tag = "incidents", request_body = CommentIn,
    security(("bearer" = [])), responses((status = 201, body = CommentOut), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn comment(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: LenientJson<CommentIn>,
) -> ApiResult<(StatusCode, Json<CommentOut>)> {
    let (incident, actor) = load(&state, &auth, &id).await?;
    let new =
        body.parse(|input| Ok(NewComment::parse(&input.body, input.visibility.as_deref())?))?;
    if actor == Actor::Other {
        return Err(ApiError::Forbidden {
            detail: "only the reporter and the department's staff may comment",
        });
    }
    if new.visibility == vigia_domain::incidents::Visibility::Internal && !actor.may_see_internal()
    {
        return Err(ApiError::field(
            "visibility",
            "only staff may write internal comments",
        ));
    }
    let saved = incidents::add_comment(
        &state.db,
        incident.id,
        &new,
        &auth.0.label(),
        auth.0.user_id(),
        Timestamp::now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(saved.into())))
}

/// The incident's comments, oldest first (internal ones for staff only).
#[utoipa::path(get, path = "/api/v1/incidents/{id}/comments", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)")), tag = "incidents", security(("bearer" = [])),
    responses((status = 200, body = Vec<CommentOut>), (status = 404, body = Problem)))]
async fn comments(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<CommentOut>>> {
    let (incident, actor) = load(&state, &auth, &id).await?;
    let list = incidents::list_comments(&state.db, incident.id, actor.may_see_internal()).await?;
    Ok(Json(list.into_iter().map(CommentOut::from).collect()))
}

// --- routing, assignment, visibility -----------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentAssignIn {
    #[schema(minimum = 1)]
    pub department_id: i64,
}

/// Route the incident to another department (admins). Its assignee is cleared and the new
/// department's auto-assignment runs.
#[utoipa::path(put, path = "/api/v1/incidents/{id}/department", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)")), tag = "incidents", request_body = DepartmentAssignIn,
    security(("bearer" = [])), responses((status = 200, body = IncidentOut), (status = 403, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn assign_department(
    State(state): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(input): Json<DepartmentAssignIn>,
) -> ApiResult<Response> {
    let (incident, _) = load(&state, &admin, &id).await?;
    check_if_match(&headers, &incident)?;
    let updated = incidents::assign_department(
        &state.db,
        &incident,
        DepartmentId(input.department_id),
        &admin.0.0.label(),
        Timestamp::now(),
    )
    .await?;
    Ok(with_etag(StatusCode::OK, IncidentOut::full(updated)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssigneeIn {
    /// A staff member of the incident's department, or null to unassign.
    pub assignee_id: Option<i64>,
}

/// Give the incident to a staff member of its department (department staff and admins).
#[utoipa::path(put, path = "/api/v1/incidents/{id}/assignee", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)")), tag = "incidents", request_body = AssigneeIn,
    security(("bearer" = [])), responses((status = 200, body = IncidentOut), (status = 403, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn assign_user(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(input): Json<AssigneeIn>,
) -> ApiResult<Response> {
    let (incident, actor) = load(&state, &auth, &id).await?;
    require_staff_of(actor)?;
    check_if_match(&headers, &incident)?;
    let updated = incidents::assign_user(
        &state.db,
        &incident,
        input.assignee_id.map(UserId),
        &auth.0.label(),
        Timestamp::now(),
    )
    .await?;
    Ok(with_etag(StatusCode::OK, IncidentOut::full(updated)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisibilityIn {
    /// `public` or `private`.
    #[schema(pattern = "^(public|private)$")]
    pub visibility: String,
}

/// Put the incident on the public board or take it off (department staff and admins).
#[utoipa::path(put, path = "/api/v1/incidents/{id}/visibility", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)")), tag = "incidents", request_body = VisibilityIn,
    security(("bearer" = [])), responses((status = 200, body = IncidentOut), (status = 403, body = Problem)))]
async fn set_visibility(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(input): Json<VisibilityIn>,
) -> ApiResult<Response> {
    let (incident, actor) = load(&state, &auth, &id).await?;
    require_staff_of(actor)?;
    let visibility = IncidentVisibility::parse("visibility", &input.visibility)?;
    check_if_match(&headers, &incident)?;
    let updated = incidents::set_visibility(
        &state.db,
        &incident,
        visibility,
        &auth.0.label(),
        Timestamp::now(),
    )
    .await?;
    Ok(with_etag(StatusCode::OK, IncidentOut::full(updated)))
}

// --- votes -------------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct VotesOut {
    pub votes: i64,
    pub voted: bool,
}

/// Say "me too" on a public incident (once per person).
#[utoipa::path(post, path = "/api/v1/incidents/{id}/votes", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)")), tag = "incidents", security(("bearer" = [])),
    responses((status = 201, body = VotesOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn vote(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<VotesOut>)> {
    let user = auth.user()?.user_id;
    let (incident, _) = load(&state, &auth, &id).await?;
    if !incident.is_public() {
        return Err(ApiError::conflict("only public incidents take votes"));
    }
    let votes = incidents::vote(&state.db, incident.id, user, Timestamp::now())
        .await
        .map_err(|e| match e {
            StoreError::Duplicate { .. } => {
                ApiError::conflict("you already voted for this incident")
            }
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(VotesOut { votes, voted: true })))
}

/// Take your vote back. Idempotent: without a vote it changes nothing and answers the same
/// (200, `voted: false`); 404 means the incident does not exist or is not yours to see.
#[utoipa::path(delete, path = "/api/v1/incidents/{id}/votes", params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)")), tag = "incidents", security(("bearer" = [])),
    responses((status = 200, body = VotesOut), (status = 404, body = Problem)))]
async fn withdraw_vote(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<VotesOut>> {
    let user = auth.user()?.user_id;
    let (incident, _) = load(&state, &auth, &id).await?;
    let votes = incidents::withdraw_vote(&state.db, incident.id, user, Timestamp::now()).await?;
    Ok(Json(VotesOut {
        votes,
        voted: false,
    }))
}

// --- edit --------------------------------------------------------------------------------------

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
#[serde(deny_unknown_fields)]
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

/// Edit an incident. Department staff and admins may change everything; the reporter may fix
/// title, description and location while it is still `new`.
#[utoipa::path(patch, path = "/api/v1/incidents/{id}", tag = "incidents", request_body = IncidentPatch,
    security(("bearer" = [])), params(("id" = String, Path, description = "the incident's number, or its code (`INC-000123`)"), ("If-Match" = Option<String>, Header, description = "the version read", pattern = r#"^(\*|(W/)?"[0-9]{1,18}"|[0-9]{1,18})$"#)),
    responses((status = 200, body = IncidentOut), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn edit(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(input): Json<IncidentPatch>,
) -> ApiResult<Response> {
    let (incident, actor) = load(&state, &auth, &id).await?;
    let staff_fields = input.category_id.is_some() || input.urgency.is_some();
    let allowed = actor.is_staff()
        || (actor == Actor::Reporter && incident.status == Status::New && !staff_fields);
    if !allowed {
        return Err(ApiError::Forbidden {
            detail: "only department staff may edit this; reporters may fix title, description and location while it is new",
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn text(rng: &mut StdRng) -> String {
        const PIECES: &[&str] = &[
            "Tubería",
            " rota",
            "\"",
            "\\",
            "\n",
            "\t",
            "\u{1}",
            "ñ",
            "😀",
            "</script>",
            "a",
            "",
        ];
        (0..rng.random_range(0..12))
            .map(|_| PIECES[rng.random_range(0..PIECES.len())])
            .collect()
    }

    fn maybe<T>(rng: &mut StdRng, value: impl FnOnce(&mut StdRng) -> T) -> Option<T> {
        rng.random_bool(0.5).then(|| value(rng))
    }

    fn time(rng: &mut StdRng) -> Timestamp {
        // Whole seconds now and then: their fraction is left out.
        let millis = rng.random_range(0..4_102_444_800_000_i64);
        Timestamp::from_millis(if rng.random_bool(0.2) {
            millis / 1000 * 1000
        } else {
            millis
        })
    }

    fn incident(rng: &mut StdRng) -> IncidentOut {
        let id = rng.random_range(1..20_000_000);
        IncidentOut {
            id,
            code: IncidentCode::from_sequence(id as u64),
            category_id: rng.random_range(1..100),
            department_id: maybe(rng, |r| r.random_range(1..100)),
            assignee_id: maybe(rng, |r| r.random_range(1..100)),
            reporter_id: maybe(rng, |r| r.random_range(-5..100)),
            title: text(rng),
            description: text(rng),
            location: LocationOut {
                zone_id: maybe(rng, |_| 7),
                text: maybe(rng, text),
                point: maybe(rng, |r| PointIo {
                    lat: r.random_range(-90.0..90.0),
                    lon: if r.random_bool(0.2) {
                        -70.0
                    } else {
                        r.random_range(-180.0..180.0)
                    },
                }),
            },
            urgency: ["low", "medium", "high", "emergency"][rng.random_range(0..4)],
            status: ["new", "on_hold"][rng.random_range(0..2)],
            source: "web",
            visibility: ["public", "private"][rng.random_range(0..2)],
            votes: rng.random_range(0..1000),
            version: rng.random_range(1..50),
            sla: SlaOut {
                acknowledge_due: time(rng),
                resolve_due: time(rng),
                acknowledge_breached: rng.random_bool(0.5),
                resolve_breached: rng.random_bool(0.5),
                paused: rng.random_bool(0.5),
            },
            acknowledged_at: maybe(rng, time),
            resolved_at: maybe(rng, time),
            closed_at: maybe(rng, time),
            created_at: time(rng),
            updated_at: time(rng),
        }
    }

    fn written(value: &impl WriteJson) -> String {
        let mut buffer = Vec::new();
        value.write_json(&mut JsonWriter::new(&mut buffer));
        String::from_utf8(buffer).expect("UTF-8")
    }

    #[test]
    fn an_incident_is_written_byte_for_byte_as_serde_would_serialize_it() {
        let mut rng = StdRng::seed_from_u64(2026);
        for _ in 0..2_000 {
            let incident = incident(&mut rng);
            let expected = serde_json::to_string(&incident).expect("serializable");
            assert_eq!(written(&incident), expected);
        }
    }

    #[test]
    fn a_page_is_written_byte_for_byte_as_serde_would_serialize_it() {
        let mut rng = StdRng::seed_from_u64(11);
        for items in [0, 1, 2, 50] {
            let page = IncidentPage {
                items: (0..items).map(|_| incident(&mut rng)).collect(),
                next_cursor: maybe(&mut rng, |_| "djE6ODQ5MQ".to_owned()),
            };
            let expected = serde_json::to_string(&page).expect("serializable");
            assert_eq!(written(&page), expected, "{items} items");
        }
    }
}
