//! Catalogs: departments, categories and zones. Every change is audited in its transaction.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::catalog::{CategorySpec, DepartmentSpec, GeoPoint, Urgency, ZoneArea, ZoneSpec};
use vigia_domain::ids::{CategoryId, DepartmentId, UserId, ZoneId};
use vigia_domain::incidents::AssignmentStrategy;

use crate::audit::{AuditDraft, insert_audit};
use crate::composed;
use crate::{ChangeAuthor, Db, StoreError, StoreResult, on_reader, on_writer};

// ---------------------------------------------------------------------------------------------
// Departments

/// A team incidents are routed to.
#[derive(Debug, Clone, Serialize)]
pub struct Department {
    pub id: DepartmentId,
    pub name: String,
    pub contact_emails: Vec<String>,
    /// Told when one of its incidents misses an SLA target.
    pub escalation_emails: Vec<String>,
    pub members: Vec<UserId>,
    /// How new incidents get an assignee: `manual`, `round_robin` or `least_open`.
    pub assignment_strategy: AssignmentStrategy,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(FromRow)]
struct DepartmentRow {
    id: i64,
    name: String,
    contact_emails: String,
    escalation_emails: String,
    assignment_strategy: String,
    created_at: i64,
    updated_at: i64,
}

impl DepartmentRow {
    fn into_department(self, members: Vec<UserId>) -> Department {
        Department {
            id: DepartmentId(self.id),
            name: self.name,
            contact_emails: serde_json::from_str(&self.contact_emails).unwrap_or_default(),
            escalation_emails: serde_json::from_str(&self.escalation_emails).unwrap_or_default(),
            members,
            assignment_strategy: AssignmentStrategy::parse(
                "assignment_strategy",
                &self.assignment_strategy,
            )
            .unwrap_or(AssignmentStrategy::Manual),
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        }
    }
}

const DEPARTMENT_COLUMNS: &str =
    "id, name, contact_emails, escalation_emails, assignment_strategy, created_at, updated_at";

pub async fn department_exists(db: &Db, id: DepartmentId) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM departments WHERE id = $1";
    let n: i64 = on_reader!(db, |pool| sqlx::query_scalar(sql)
        .bind(id.0)
        .fetch_one(pool)
        .await?);
    Ok(n > 0)
}

async fn members_of(db: &Db, id: i64) -> StoreResult<Vec<UserId>> {
    let sql = "SELECT user_id FROM department_members WHERE department_id = $1 ORDER BY user_id";
    let ids: Vec<i64> = on_reader!(db, |pool| sqlx::query_scalar(sql)
        .bind(id)
        .fetch_all(pool)
        .await?);
    Ok(ids.into_iter().map(UserId).collect())
}

pub async fn list_departments(db: &Db) -> StoreResult<Vec<Department>> {
    let sql = format!("SELECT {DEPARTMENT_COLUMNS} FROM departments ORDER BY name");
    let rows: Vec<DepartmentRow> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .fetch_all(pool)
        .await?);
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let members = members_of(db, row.id).await?;
        out.push(row.into_department(members));
    }
    Ok(out)
}

pub async fn find_department(db: &Db, id: DepartmentId) -> StoreResult<Department> {
    let sql = format!("SELECT {DEPARTMENT_COLUMNS} FROM departments WHERE id = $1");
    let row: DepartmentRow = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(id.0)
        .fetch_optional(pool)
        .await?)
    .ok_or(StoreError::NotFound)?;
    let members = members_of(db, row.id).await?;
    Ok(row.into_department(members))
}

fn emails_json(emails: &[vigia_domain::users::Email]) -> String {
    let emails: Vec<&str> = emails.iter().map(|e| e.as_str()).collect();
    serde_json::to_string(&emails).unwrap_or_else(|_| "[]".into())
}

pub async fn create_department(
    db: &Db,
    spec: &DepartmentSpec,
    strategy: AssignmentStrategy,
    actor: &ChangeAuthor,
) -> StoreResult<Department> {
    let now = Timestamp::now().millis();
    let sql = format!(
        "INSERT INTO departments (name, contact_emails, assignment_strategy, created_at, updated_at, \
         escalation_emails) VALUES ($1, $2, $4, $3, $3, $5) \
         RETURNING {DEPARTMENT_COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: DepartmentRow = sqlx::query_as(composed(&sql))
            .bind(&spec.name)
            .bind(emails_json(&spec.contact_emails))
            .bind(now)
            .bind(strategy.as_str())
            .bind(emails_json(&spec.escalation_emails))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "departments_name_key", "name"))?;
        let department = row.into_department(Vec::new());
        let draft = AuditDraft::new(
            actor,
            "department.created",
            AuditEntity::Department,
            Some(department.id.0),
        )
        .after(&department);
        insert_audit!(&mut *tx, draft);
        tx.commit().await?;
        Ok(department)
    })
}

pub async fn update_department(
    db: &Db,
    id: DepartmentId,
    spec: &DepartmentSpec,
    strategy: AssignmentStrategy,
    actor: &ChangeAuthor,
) -> StoreResult<Department> {
    let before = find_department(db, id).await?;
    let now = Timestamp::now().millis();
    let sql = format!(
        "UPDATE departments SET name = $2, contact_emails = $3, updated_at = $4, assignment_strategy = $5, \
         escalation_emails = $6 WHERE id = $1 \
         RETURNING {DEPARTMENT_COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: DepartmentRow = sqlx::query_as(composed(&sql))
            .bind(id.0)
            .bind(&spec.name)
            .bind(emails_json(&spec.contact_emails))
            .bind(now)
            .bind(strategy.as_str())
            .bind(emails_json(&spec.escalation_emails))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "departments_name_key", "name"))?;
        let after = row.into_department(before.members.clone());
        let draft = AuditDraft::new(
            actor,
            "department.updated",
            AuditEntity::Department,
            Some(id.0),
        )
        .before(&before)
        .after(&after);
        insert_audit!(&mut *tx, draft);
        tx.commit().await?;
        Ok(after)
    })
}

pub async fn delete_department(db: &Db, id: DepartmentId, actor: &ChangeAuthor) -> StoreResult<()> {
    let before = find_department(db, id).await?;
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM departments WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if StoreError::is_foreign_key(&e) {
                    StoreError::InUse { by: "categories" }
                } else {
                    e.into()
                }
            })?;
        insert_audit!(
            &mut *tx,
            AuditDraft::new(
                actor,
                "department.deleted",
                AuditEntity::Department,
                Some(id.0)
            )
            .before(&before)
        );
        tx.commit().await?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Categories

/// An incident category.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Category {
    #[sqlx(try_from = "i64")]
    pub id: CategoryId,
    pub name_es: String,
    pub name_en: String,
    pub default_department_id: Option<i64>,
    #[sqlx(try_from = "String")]
    pub default_urgency: Urgency,
    #[sqlx(try_from = "i64")]
    pub created_at: Timestamp,
    #[sqlx(try_from = "i64")]
    pub updated_at: Timestamp,
}

const CATEGORY_COLUMNS: &str =
    "id, name_es, name_en, default_department_id, default_urgency, created_at, updated_at";

pub async fn list_categories(db: &Db) -> StoreResult<Vec<Category>> {
    let sql = format!("SELECT {CATEGORY_COLUMNS} FROM categories ORDER BY name_es");
    Ok(on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .fetch_all(pool)
        .await?))
}

pub async fn find_category(db: &Db, id: CategoryId) -> StoreResult<Category> {
    let sql = format!("SELECT {CATEGORY_COLUMNS} FROM categories WHERE id = $1");
    on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(id.0)
        .fetch_optional(pool)
        .await?)
    .ok_or(StoreError::NotFound)
}

async fn check_default_department(db: &Db, spec: &CategorySpec) -> StoreResult<()> {
    if let Some(department) = spec.default_department_id
        && !department_exists(db, department).await?
    {
        return Err(StoreError::UnknownReference {
            field: "default_department_id".into(),
            entity: "department",
        });
    }
    Ok(())
}

pub async fn create_category(
    db: &Db,
    spec: &CategorySpec,
    actor: &ChangeAuthor,
) -> StoreResult<Category> {
    check_default_department(db, spec).await?;
    let now = Timestamp::now().millis();
    let sql = format!(
        "INSERT INTO categories (name_es, name_en, default_department_id, default_urgency, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {CATEGORY_COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let category: Category = sqlx::query_as(composed(&sql))
            .bind(&spec.name_es)
            .bind(&spec.name_en)
            .bind(spec.default_department_id.map(|d| d.0))
            .bind(spec.default_urgency.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "categories_name_es_key", "name_es"))?;
        let draft = AuditDraft::new(
            actor,
            "category.created",
            AuditEntity::Category,
            Some(category.id.0),
        )
        .after(&category);
        insert_audit!(&mut *tx, draft);
        tx.commit().await?;
        Ok(category)
    })
}

pub async fn update_category(
    db: &Db,
    id: CategoryId,
    spec: &CategorySpec,
    actor: &ChangeAuthor,
) -> StoreResult<Category> {
    let before = find_category(db, id).await?;
    check_default_department(db, spec).await?;
    let now = Timestamp::now().millis();
    let sql = format!(
        "UPDATE categories SET name_es = $2, name_en = $3, default_department_id = $4, default_urgency = $5, \
         updated_at = $6 WHERE id = $1 RETURNING {CATEGORY_COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let after: Category = sqlx::query_as(composed(&sql))
            .bind(id.0)
            .bind(&spec.name_es)
            .bind(&spec.name_en)
            .bind(spec.default_department_id.map(|d| d.0))
            .bind(spec.default_urgency.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "categories_name_es_key", "name_es"))?;
        let draft = AuditDraft::new(actor, "category.updated", AuditEntity::Category, Some(id.0))
            .before(&before)
            .after(&after);
        insert_audit!(&mut *tx, draft);
        tx.commit().await?;
        Ok(after)
    })
}

pub async fn delete_category(db: &Db, id: CategoryId, actor: &ChangeAuthor) -> StoreResult<()> {
    let before = find_category(db, id).await?;
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM categories WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if StoreError::is_foreign_key(&e) {
                    StoreError::InUse { by: "incidents" }
                } else {
                    e.into()
                }
            })?;
        insert_audit!(
            &mut *tx,
            AuditDraft::new(actor, "category.deleted", AuditEntity::Category, Some(id.0))
                .before(&before)
        );
        tx.commit().await?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Zones

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

const ZONE_COLUMNS: &str =
    "id, name, description, center_lat, center_lon, radius_m, polygon, created_at, updated_at";

pub async fn list_zones(db: &Db) -> StoreResult<Vec<Zone>> {
    let sql = format!("SELECT {ZONE_COLUMNS} FROM zones ORDER BY name");
    let rows: Vec<ZoneRow> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .fetch_all(pool)
        .await?);
    Ok(rows.into_iter().map(Zone::from).collect())
}

pub async fn find_zone(db: &Db, id: ZoneId) -> StoreResult<Zone> {
    let sql = format!("SELECT {ZONE_COLUMNS} FROM zones WHERE id = $1");
    let row: ZoneRow = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(id.0)
        .fetch_optional(pool)
        .await?)
    .ok_or(StoreError::NotFound)?;
    Ok(row.into())
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

pub async fn create_zone(db: &Db, spec: &ZoneSpec, actor: &ChangeAuthor) -> StoreResult<Zone> {
    let now = Timestamp::now().millis();
    let sql = format!(
        "INSERT INTO zones (name, description, center_lat, center_lon, radius_m, polygon, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {ZONE_COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: ZoneRow = sqlx::query_as(composed(&sql))
            .bind(&spec.name)
            .bind(spec.description.as_deref())
            .bind(spec.area.center.map(|c| c.lat))
            .bind(spec.area.center.map(|c| c.lon))
            .bind(spec.area.radius_m)
            .bind(polygon_json(spec))
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "zones_name_key", "name"))?;
        let zone = Zone::from(row);
        insert_audit!(
            &mut *tx,
            AuditDraft::new(actor, "zone.created", AuditEntity::Zone, Some(zone.id.0)).after(&zone)
        );
        tx.commit().await?;
        Ok(zone)
    })
}

pub async fn update_zone(
    db: &Db,
    id: ZoneId,
    spec: &ZoneSpec,
    actor: &ChangeAuthor,
) -> StoreResult<Zone> {
    let before = find_zone(db, id).await?;
    let now = Timestamp::now().millis();
    let sql = format!(
        "UPDATE zones SET name = $2, description = $3, center_lat = $4, center_lon = $5, radius_m = $6, \
         polygon = $7, updated_at = $8 WHERE id = $1 RETURNING {ZONE_COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: ZoneRow = sqlx::query_as(composed(&sql))
            .bind(id.0)
            .bind(&spec.name)
            .bind(spec.description.as_deref())
            .bind(spec.area.center.map(|c| c.lat))
            .bind(spec.area.center.map(|c| c.lon))
            .bind(spec.area.radius_m)
            .bind(polygon_json(spec))
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "zones_name_key", "name"))?;
        let after = Zone::from(row);
        let draft = AuditDraft::new(actor, "zone.updated", AuditEntity::Zone, Some(id.0))
            .before(&before)
            .after(&after);
        insert_audit!(&mut *tx, draft);
        tx.commit().await?;
        Ok(after)
    })
}

pub async fn delete_zone(db: &Db, id: ZoneId, actor: &ChangeAuthor) -> StoreResult<()> {
    let before = find_zone(db, id).await?;
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM zones WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if StoreError::is_foreign_key(&e) {
                    StoreError::InUse { by: "incidents" }
                } else {
                    e.into()
                }
            })?;
        insert_audit!(
            &mut *tx,
            AuditDraft::new(actor, "zone.deleted", AuditEntity::Zone, Some(id.0)).before(&before)
        );
        tx.commit().await?;
        Ok(())
    })
}
