//! Zones: named circles or rings on the campus map, and which zone holds a point.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigia_domain::Timestamp;
use vigia_domain::catalog::{GeoPoint, ZoneSpec};
use vigia_domain::ids::ZoneId;
use vigia_store::catalog::{self, Zone};

use crate::auth::{Admin, Auth};
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, RequestId, objects_only};
use crate::path::Path;
use crate::state::AppState;

/// A position in decimal degrees (WGS 84).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct PointIo {
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub lon: f64,
}
objects_only!(PointIo);

impl Serialize for PointIo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // serde's derive, kept under the type by `remote = "Self"`.
        PointIo::serialize(self, serializer)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneOut {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub center: Option<PointIo>,
    pub radius_m: Option<f64>,
    pub polygon: Option<Vec<PointIo>>,
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

impl From<Zone> for ZoneOut {
    fn from(z: Zone) -> Self {
        Self {
            id: z.id.0,
            name: z.name,
            description: z.description,
            center: z.area.center.map(point),
            radius_m: z.area.radius_m,
            polygon: z
                .area
                .polygon
                .map(|ring| ring.into_iter().map(point).collect()),
            created_at: z.created_at,
            updated_at: z.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneIn {
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 120
    )]
    pub name: String,
    pub description: Option<String>,
    /// The zone's reference point; with `radius_m` the zone is that circle.
    pub center: Option<PointIo>,
    #[schema(exclusive_minimum = 0, maximum = 100000)]
    pub radius_m: Option<f64>,
    /// A ring of at least 3 vertices.
    #[schema(min_items = 3)]
    pub polygon: Option<Vec<PointIo>>,
}

fn zone_spec(input: &ZoneIn) -> Result<ZoneSpec, Vec<vigia_domain::FieldError>> {
    let polygon: Option<Vec<(f64, f64)>> = input
        .polygon
        .as_ref()
        .map(|p| p.iter().map(|v| (v.lat, v.lon)).collect());
    ZoneSpec::parse(
        &input.name,
        input.description.as_deref(),
        input.center.map(|c| (c.lat, c.lon)),
        input.radius_m,
        polygon.as_deref(),
    )
}

/// List zones.
#[utoipa::path(get, path = "/api/v1/zones", tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = Vec<ZoneOut>)))]
pub async fn list_zones(
    State(state): State<AppState>,
    _auth: Auth,
) -> ApiResult<Json<Vec<ZoneOut>>> {
    Ok(Json(
        catalog::list_zones(&state.db)
            .await?
            .into_iter()
            .map(ZoneOut::from)
            .collect(),
    ))
}

/// One zone.
#[utoipa::path(get, path = "/api/v1/zones/{id}", params(("id" = i64, Path, description = "the zone's id")), tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = ZoneOut), (status = 404, body = Problem)))]
pub async fn get_zone(
    State(state): State<AppState>,
    _auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<ZoneOut>> {
    Ok(Json(
        catalog::find_zone(&state.db, ZoneId(id)).await?.into(),
    ))
}

/// Create a zone.
#[utoipa::path(post, path = "/api/v1/zones", tag = "catalog", request_body = ZoneIn, security(("bearer" = [])),
    responses((status = 201, body = ZoneOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_zone(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Json(input): Json<ZoneIn>,
) -> ApiResult<(StatusCode, Json<ZoneOut>)> {
    let zone = catalog::create_zone(&state.db, &zone_spec(&input)?, &auth.actor(rid)).await?;
    Ok((StatusCode::CREATED, Json(zone.into())))
}

/// Replace a zone.
#[utoipa::path(put, path = "/api/v1/zones/{id}", params(("id" = i64, Path, description = "the zone's id")), tag = "catalog", request_body = ZoneIn, security(("bearer" = [])),
    responses((status = 200, body = ZoneOut), (status = 404, body = Problem), (status = 409, description = "the name is taken", body = Problem), (status = 422, body = Problem)))]
pub async fn update_zone(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
    Json(input): Json<ZoneIn>,
) -> ApiResult<Json<ZoneOut>> {
    let zone =
        catalog::update_zone(&state.db, ZoneId(id), &zone_spec(&input)?, &auth.actor(rid)).await?;
    Ok(Json(zone.into()))
}

/// Delete a zone.
#[utoipa::path(delete, path = "/api/v1/zones/{id}", params(("id" = i64, Path, description = "the zone's id")), tag = "catalog", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn delete_zone(
    State(state): State<AppState>,
    auth: Admin,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    catalog::delete_zone(&state.db, ZoneId(id), &auth.actor(rid)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which zones contain a position, smallest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct LocateOut {
    pub zones: Vec<ZoneOut>,
}

/// Find the zones a position lies in (a room inside a building comes before the building).
#[utoipa::path(post, path = "/api/v1/zones/locate", tag = "catalog", request_body = PointIo,
    security(("bearer" = [])), responses((status = 200, body = LocateOut), (status = 422, body = Problem)))]
pub(crate) async fn locate(
    State(state): State<AppState>,
    _auth: Auth,
    Json(input): Json<PointIo>,
) -> ApiResult<Json<LocateOut>> {
    let point = GeoPoint::parse("point", input.lat, input.lon)?;
    let zones = catalog::zones_containing(&state.db, point).await?;
    Ok(Json(LocateOut {
        zones: zones.into_iter().map(ZoneOut::from).collect(),
    }))
}
