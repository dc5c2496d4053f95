//! Zones: named places (a circle or a polygon), and which of them contain a point.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::catalog::{GeoPoint, ZoneArea, ZoneSpec};
use vigia_domain::ids::ZoneId;

use super::references::{delete_audited_direct, delete_audited_postgres};
use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, direct, direct_read, grouped_write};

/// A named place.
#[derive(Debug, Clone, Serialize)]
pub struct Zone {
    pub id: ZoneId,
    pub name: String,
    pub description: Option<String>,
    #[serde(flatten)]
    pub area: ZoneArea,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(FromRow)]
struct ZoneRow {
    id: i64,
    name: String,
    description: Option<String>,
    center_lat: Option<f64>,
    center_lon: Option<f64>,
    radius_m: Option<f64>,
    polygon: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<ZoneRow> for Zone {
    fn from(row: ZoneRow) -> Self {
        let center = match (row.center_lat, row.center_lon) {
            (Some(lat), Some(lon)) => Some(GeoPoint { lat, lon }),
            _ => None,
        };
        Zone {
            id: ZoneId(row.id),
            name: row.name,
            description: row.description,
            area: ZoneArea {
                center,
                radius_m: row.radius_m,
                polygon: row.polygon.and_then(|p| serde_json::from_str(&p).ok()),
            },
            created_at: Timestamp::from_millis(row.created_at),
            updated_at: Timestamp::from_millis(row.updated_at),
        }
    }
}

impl ZoneRow {
    /// A row of `zone_columns!()` read on a direct SQLite connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            name: row.get("name")?,
            description: row.get("description")?,
            center_lat: row.get("center_lat")?,
            center_lon: row.get("center_lon")?,
            radius_m: row.get("radius_m")?,
            polygon: row.get("polygon")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }
}

/// The columns of [`ZoneRow`], as a literal for the statements below.
macro_rules! zone_columns {
    () => {
        "id, name, description, center_lat, center_lon, radius_m, polygon, created_at, updated_at"
    };
}

const LIST_ZONES: &str = concat!("SELECT ", zone_columns!(), " FROM zones ORDER BY name");
const FIND_ZONE: &str = concat!("SELECT ", zone_columns!(), " FROM zones WHERE id = $1");
const INSERT_ZONE: &str = concat!(
    "INSERT INTO zones (name, description, center_lat, center_lon, radius_m, polygon, created_at, \
     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ",
    zone_columns!()
);
const UPDATE_ZONE: &str = concat!(
    "UPDATE zones SET name = $2, description = $3, center_lat = $4, center_lon = $5, \
     radius_m = $6, polygon = $7, updated_at = $8 WHERE id = $1 RETURNING ",
    zone_columns!()
);
const DELETE_ZONE: &str = "DELETE FROM zones WHERE id = $1";

pub async fn list_zones(db: &Db) -> StoreResult<Vec<Zone>> {
    let rows: Vec<ZoneRow> = direct_read!(db,
        sqlite: |conn| direct::query(conn, LIST_ZONES, &[], ZoneRow::from_direct),
        postgres: |pool| Ok(sqlx::query_as(LIST_ZONES).fetch_all(pool).await?),
    )?;
    Ok(rows.into_iter().map(Zone::from).collect())
}

fn find_zone_direct(conn: &direct::Conn, id: ZoneId) -> StoreResult<Option<Zone>> {
    Ok(direct::query_optional(conn, FIND_ZONE, &[&id.0], ZoneRow::from_direct)?.map(Zone::from))
}

async fn find_zone_postgres(
    executor: impl sqlx::PgExecutor<'_>,
    id: ZoneId,
) -> StoreResult<Option<Zone>> {
    let row: Option<ZoneRow> = sqlx::query_as(FIND_ZONE)
        .bind(id.0)
        .fetch_optional(executor)
        .await?;
    Ok(row.map(Zone::from))
}

pub async fn find_zone(db: &Db, id: ZoneId) -> StoreResult<Zone> {
    let zone = direct_read!(db,
        sqlite: |conn| find_zone_direct(conn, id),
        postgres: |pool| find_zone_postgres(pool, id).await,
    )?;
    zone.ok_or(StoreError::NotFound)
}

/// The zones whose shape contains `point`, smallest first (a room inside a building wins).
pub async fn zones_containing(db: &Db, point: GeoPoint) -> StoreResult<Vec<Zone>> {
    let mut zones: Vec<Zone> = list_zones(db)
        .await?
        .into_iter()
        .filter(|z| z.area.contains(point))
        .collect();
    zones.sort_by(|a, b| area_size(&a.area).total_cmp(&area_size(&b.area)));
    Ok(zones)
}

/// A rough size used only to order nested zones.
fn area_size(area: &ZoneArea) -> f64 {
    if let Some(ring) = &area.polygon {
        let (mut min_lat, mut max_lat, mut min_lon, mut max_lon) =
            (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in ring {
            min_lat = min_lat.min(p.lat);
            max_lat = max_lat.max(p.lat);
            min_lon = min_lon.min(p.lon);
            max_lon = max_lon.max(p.lon);
        }
        return (max_lat - min_lat) * (max_lon - min_lon) * 1e10;
    }
    area.radius_m.map_or(f64::MAX, |r| r * r)
}

fn polygon_json(spec: &ZoneSpec) -> Option<String> {
    spec.area
        .polygon
        .as_ref()
        .and_then(|p| serde_json::to_string(p).ok())
}

/// What a zone's statements bind, `$1`.. in [`INSERT_ZONE`]'s order.
struct ZoneValues {
    name: String,
    description: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    radius_m: Option<f64>,
    polygon: Option<String>,
}

impl ZoneValues {
    fn of(spec: &ZoneSpec) -> Self {
        Self {
            name: spec.name.clone(),
            description: spec.description.clone(),
            lat: spec.area.center.map(|c| c.lat),
            lon: spec.area.center.map(|c| c.lon),
            radius_m: spec.area.radius_m,
            polygon: polygon_json(spec),
        }
    }
}

pub async fn create_zone(db: &Db, spec: &ZoneSpec, actor: &ChangeAuthor) -> StoreResult<Zone> {
    let now = Timestamp::now().millis();
    let (values, actor) = (ZoneValues::of(spec), actor.clone());
    let audit = move |zone: &Zone| {
        AuditDraft::new(&actor, "zone.created", AuditEntity::Zone, Some(zone.id.0)).after(zone)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let v = &values;
            let zone = direct::query_optional(
                conn,
                INSERT_ZONE,
                &[&v.name, &v.description, &v.lat, &v.lon, &v.radius_m, &v.polygon, &now],
                ZoneRow::from_direct,
            )
            .map_err(|e| StoreError::unique_direct(e, "name"))?
            .map(Zone::from)
            .ok_or(StoreError::NotFound)?;
            insert_audit_direct(conn, audit(&zone))?;
            Ok(zone)
        },
        postgres: |tx| {
            let row: ZoneRow = sqlx::query_as(INSERT_ZONE)
                .bind(&values.name)
                .bind(&values.description)
                .bind(values.lat)
                .bind(values.lon)
                .bind(values.radius_m)
                .bind(&values.polygon)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| StoreError::unique(e, "zones_name_key", "name"))?;
            let zone = Zone::from(row);
            insert_audit!(&mut *tx, audit(&zone));
            Ok(zone)
        },
    )
}

/// Changes a zone, audited with before and after (read in the same transaction).
pub async fn update_zone(
    db: &Db,
    id: ZoneId,
    spec: &ZoneSpec,
    actor: &ChangeAuthor,
) -> StoreResult<Zone> {
    let now = Timestamp::now().millis();
    let (values, actor) = (ZoneValues::of(spec), actor.clone());
    let audit = move |before: &Zone, after: &Zone| {
        AuditDraft::new(&actor, "zone.updated", AuditEntity::Zone, Some(id.0))
            .before(before)
            .after(after)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before = find_zone_direct(conn, id)?.ok_or(StoreError::NotFound)?;
            let v = &values;
            let after = direct::query_optional(
                conn,
                UPDATE_ZONE,
                &[&id.0, &v.name, &v.description, &v.lat, &v.lon, &v.radius_m, &v.polygon, &now],
                ZoneRow::from_direct,
            )
            .map_err(|e| StoreError::unique_direct(e, "name"))?
            .map(Zone::from)
            .ok_or(StoreError::NotFound)?;
            insert_audit_direct(conn, audit(&before, &after))?;
            Ok(after)
        },
        postgres: |tx| {
            let before = find_zone_postgres(&mut *tx, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            let row: ZoneRow = sqlx::query_as(UPDATE_ZONE)
                .bind(id.0)
                .bind(&values.name)
                .bind(&values.description)
                .bind(values.lat)
                .bind(values.lon)
                .bind(values.radius_m)
                .bind(&values.polygon)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| StoreError::unique(e, "zones_name_key", "name"))?;
            let after = Zone::from(row);
            insert_audit!(&mut *tx, audit(&before, &after));
            Ok(after)
        },
    )
}

/// Deletes a zone no incident refers to (audited with what it was).
pub async fn delete_zone(db: &Db, id: ZoneId, actor: &ChangeAuthor) -> StoreResult<()> {
    let actor = actor.clone();
    let audit = move |before: &Zone| {
        AuditDraft::new(&actor, "zone.deleted", AuditEntity::Zone, Some(id.0)).before(before)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before = find_zone_direct(conn, id)?.ok_or(StoreError::NotFound)?;
            delete_audited_direct(conn, DELETE_ZONE, id.0, "incidents", audit(&before))
        },
        postgres: |tx| {
            let before = find_zone_postgres(&mut *tx, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            delete_audited_postgres(&mut *tx, DELETE_ZONE, id.0, "incidents", audit(&before)).await
        },
    )
}
