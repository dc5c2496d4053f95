//! Catalogs: departments, categories and zones. Every change is audited in its transaction.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::catalog::{CategorySpec, DepartmentSpec, GeoPoint, Urgency, ZoneArea, ZoneSpec};
use vigia_domain::ids::{CategoryId, DepartmentId, UserId, ZoneId};
use vigia_domain::incidents::AssignmentStrategy;

use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, direct, direct_read, grouped_write};

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

impl DepartmentRow {
    /// A row of `department_columns!()` read on a direct SQLite connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            name: row.get("name")?,
            contact_emails: row.get("contact_emails")?,
            escalation_emails: row.get("escalation_emails")?,
            assignment_strategy: row.get("assignment_strategy")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }
}

/// The columns of [`DepartmentRow`], as a literal for the statements below.
macro_rules! department_columns {
    () => {
        "id, name, contact_emails, escalation_emails, assignment_strategy, created_at, updated_at"
    };
}

const DEPARTMENT_EXISTS: &str = "SELECT COUNT(*) AS n FROM departments WHERE id = $1";
const MEMBERS_OF: &str =
    "SELECT user_id FROM department_members WHERE department_id = $1 ORDER BY user_id";
const LIST_DEPARTMENTS: &str = concat!(
    "SELECT ",
    department_columns!(),
    " FROM departments ORDER BY name"
);
const FIND_DEPARTMENT: &str = concat!(
    "SELECT ",
    department_columns!(),
    " FROM departments WHERE id = $1"
);
const INSERT_DEPARTMENT: &str = concat!(
    "INSERT INTO departments (name, contact_emails, assignment_strategy, created_at, updated_at, \
     escalation_emails) VALUES ($1, $2, $4, $3, $3, $5) RETURNING ",
    department_columns!()
);
const UPDATE_DEPARTMENT: &str = concat!(
    "UPDATE departments SET name = $2, contact_emails = $3, updated_at = $4, \
     assignment_strategy = $5, escalation_emails = $6 WHERE id = $1 RETURNING ",
    department_columns!()
);
const DELETE_DEPARTMENT: &str = "DELETE FROM departments WHERE id = $1";

/// True for a SQLite foreign-key violation on a direct connection; the rusqlite side of
/// `StoreError::is_foreign_key`. SQLite reports a RESTRICT violation with the generic
/// constraint code, so its message is matched as well.
pub(crate) fn is_foreign_key_direct(error: &StoreError) -> bool {
    matches!(error, StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, message))
        if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
            || (failure.code == rusqlite::ErrorCode::ConstraintViolation
                && message
                    .as_deref()
                    .is_some_and(|m| m.contains("FOREIGN KEY constraint failed"))))
}

/// A foreign-key violation (a row still referring to the one being deleted) as
/// [`StoreError::InUse`], on a direct connection.
fn in_use_direct(error: StoreError, by: &'static str) -> StoreError {
    if is_foreign_key_direct(&error) {
        StoreError::InUse { by }
    } else {
        error
    }
}

/// [`StoreError::is_foreign_key`] as [`StoreError::InUse`], on PostgreSQL.
fn in_use(error: sqlx::Error, by: &'static str) -> StoreError {
    if StoreError::is_foreign_key(&error) {
        StoreError::InUse { by }
    } else {
        error.into()
    }
}

fn department_exists_direct(conn: &direct::Conn, id: DepartmentId) -> StoreResult<bool> {
    let n: Option<i64> = direct::query_optional(conn, DEPARTMENT_EXISTS, &[&id.0], |r| r.get("n"))?;
    Ok(n.unwrap_or(0) > 0)
}

async fn department_exists_postgres(
    executor: impl sqlx::PgExecutor<'_>,
    id: DepartmentId,
) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar(DEPARTMENT_EXISTS)
        .bind(id.0)
        .fetch_one(executor)
        .await?;
    Ok(n > 0)
}

/// Refuses `departments` (an input's list, `departments[i]`) if one of them does not exist; on
/// the connection of the write that refers to them.
pub(crate) fn check_departments_direct(
    conn: &direct::Conn,
    departments: &[DepartmentId],
) -> StoreResult<()> {
    for (i, department) in departments.iter().enumerate() {
        if !department_exists_direct(conn, *department)? {
            return Err(unknown_department(i));
        }
    }
    Ok(())
}

/// [`check_departments_direct`] inside a PostgreSQL transaction.
pub(crate) async fn check_departments_postgres(
    tx: &mut sqlx::PgConnection,
    departments: &[DepartmentId],
) -> StoreResult<()> {
    for (i, department) in departments.iter().enumerate() {
        if !department_exists_postgres(&mut *tx, *department).await? {
            return Err(unknown_department(i));
        }
    }
    Ok(())
}

fn unknown_department(i: usize) -> StoreError {
    StoreError::UnknownReference {
        field: format!("departments[{i}]"),
        entity: "department",
    }
}

pub async fn department_exists(db: &Db, id: DepartmentId) -> StoreResult<bool> {
    direct_read!(db,
        sqlite: |conn| department_exists_direct(conn, id),
        postgres: |pool| department_exists_postgres(pool, id).await,
    )
}

fn members_direct(conn: &direct::Conn, id: i64) -> StoreResult<Vec<UserId>> {
    direct::query(conn, MEMBERS_OF, &[&id], |r| Ok(UserId(r.get("user_id")?)))
}

async fn members_postgres(
    executor: impl sqlx::PgExecutor<'_>,
    id: i64,
) -> StoreResult<Vec<UserId>> {
    let ids: Vec<i64> = sqlx::query_scalar(MEMBERS_OF)
        .bind(id)
        .fetch_all(executor)
        .await?;
    Ok(ids.into_iter().map(UserId).collect())
}

fn find_department_direct(
    conn: &direct::Conn,
    id: DepartmentId,
) -> StoreResult<Option<Department>> {
    let Some(row) =
        direct::query_optional(conn, FIND_DEPARTMENT, &[&id.0], DepartmentRow::from_direct)?
    else {
        return Ok(None);
    };
    let members = members_direct(conn, row.id)?;
    Ok(Some(row.into_department(members)))
}

async fn find_department_postgres(
    tx: &mut sqlx::PgConnection,
    id: DepartmentId,
) -> StoreResult<Option<Department>> {
    let row: Option<DepartmentRow> = sqlx::query_as(FIND_DEPARTMENT)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let members = members_postgres(&mut *tx, row.id).await?;
    Ok(Some(row.into_department(members)))
}

pub async fn list_departments(db: &Db) -> StoreResult<Vec<Department>> {
    direct_read!(db,
        sqlite: |conn| {
            direct::query(conn, LIST_DEPARTMENTS, &[], DepartmentRow::from_direct)?
                .into_iter()
                .map(|row| {
                    let members = members_direct(conn, row.id)?;
                    Ok(row.into_department(members))
                })
                .collect()
        },
        postgres: |pool| {
            let rows: Vec<DepartmentRow> = sqlx::query_as(LIST_DEPARTMENTS).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let members = members_postgres(pool, row.id).await?;
                out.push(row.into_department(members));
            }
            Ok(out)
        },
    )
}

pub async fn find_department(db: &Db, id: DepartmentId) -> StoreResult<Department> {
    let department = direct_read!(db,
        sqlite: |conn| find_department_direct(conn, id),
        postgres: |pool| {
            let row: Option<DepartmentRow> =
                sqlx::query_as(FIND_DEPARTMENT).bind(id.0).fetch_optional(pool).await?;
            match row {
                Some(row) => {
                    let members = members_postgres(pool, row.id).await?;
                    Ok(Some(row.into_department(members)))
                }
                None => Ok(None),
            }
        },
    )?;
    department.ok_or(StoreError::NotFound)
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
    let (name, actor) = (spec.name.clone(), actor.clone());
    let contacts = emails_json(&spec.contact_emails);
    let escalation = emails_json(&spec.escalation_emails);
    let strategy = strategy.as_str();
    let audit = move |department: &Department| {
        AuditDraft::new(
            &actor,
            "department.created",
            AuditEntity::Department,
            Some(department.id.0),
        )
        .after(department)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let department = direct::query_optional(
                conn,
                INSERT_DEPARTMENT,
                &[&name, &contacts, &now, &strategy, &escalation],
                DepartmentRow::from_direct,
            )
            .map_err(|e| StoreError::unique_direct(e, "name"))?
            .ok_or(StoreError::NotFound)?
            .into_department(Vec::new());
            insert_audit_direct(conn, audit(&department))?;
            Ok(department)
        },
        postgres: |tx| {
            let row: DepartmentRow = sqlx::query_as(INSERT_DEPARTMENT)
                .bind(&name)
                .bind(&contacts)
                .bind(now)
                .bind(strategy)
                .bind(&escalation)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| StoreError::unique(e, "departments_name_key", "name"))?;
            let department = row.into_department(Vec::new());
            insert_audit!(&mut *tx, audit(&department));
            Ok(department)
        },
    )
}

/// Changes a department, audited with before and after (read in the same transaction).
pub async fn update_department(
    db: &Db,
    id: DepartmentId,
    spec: &DepartmentSpec,
    strategy: AssignmentStrategy,
    actor: &ChangeAuthor,
) -> StoreResult<Department> {
    let now = Timestamp::now().millis();
    let (name, actor) = (spec.name.clone(), actor.clone());
    let contacts = emails_json(&spec.contact_emails);
    let escalation = emails_json(&spec.escalation_emails);
    let strategy = strategy.as_str();
    let audit = move |before: &Department, after: &Department| {
        AuditDraft::new(
            &actor,
            "department.updated",
            AuditEntity::Department,
            Some(id.0),
        )
        .before(before)
        .after(after)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before = find_department_direct(conn, id)?.ok_or(StoreError::NotFound)?;
            let after = direct::query_optional(
                conn,
                UPDATE_DEPARTMENT,
                &[&id.0, &name, &contacts, &now, &strategy, &escalation],
                DepartmentRow::from_direct,
            )
            .map_err(|e| StoreError::unique_direct(e, "name"))?
            .ok_or(StoreError::NotFound)?
            .into_department(before.members.clone());
            insert_audit_direct(conn, audit(&before, &after))?;
            Ok(after)
        },
        postgres: |tx| {
            let before = find_department_postgres(&mut *tx, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            let row: DepartmentRow = sqlx::query_as(UPDATE_DEPARTMENT)
                .bind(id.0)
                .bind(&name)
                .bind(&contacts)
                .bind(now)
                .bind(strategy)
                .bind(&escalation)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| StoreError::unique(e, "departments_name_key", "name"))?;
            let after = row.into_department(before.members.clone());
            insert_audit!(&mut *tx, audit(&before, &after));
            Ok(after)
        },
    )
}

/// Deletes a department unless a category still routes to it (audited with what it was).
pub async fn delete_department(db: &Db, id: DepartmentId, actor: &ChangeAuthor) -> StoreResult<()> {
    let actor = actor.clone();
    let audit = move |before: &Department| {
        AuditDraft::new(
            &actor,
            "department.deleted",
            AuditEntity::Department,
            Some(id.0),
        )
        .before(before)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before = find_department_direct(conn, id)?.ok_or(StoreError::NotFound)?;
            direct::execute(conn, DELETE_DEPARTMENT, &[&id.0])
                .map_err(|e| in_use_direct(e, "categories"))?;
            insert_audit_direct(conn, audit(&before))
        },
        postgres: |tx| {
            let before = find_department_postgres(&mut *tx, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            sqlx::query(DELETE_DEPARTMENT)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(|e| in_use(e, "categories"))?;
            insert_audit!(&mut *tx, audit(&before));
            Ok(())
        },
    )
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

impl Category {
    /// A row of `category_columns!()` read on a direct SQLite connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let urgency = row.as_ref().column_index("default_urgency")?;
        Ok(Self {
            id: CategoryId(row.get("id")?),
            name_es: row.get("name_es")?,
            name_en: row.get("name_en")?,
            default_department_id: row.get("default_department_id")?,
            default_urgency: direct::parsed(row, urgency, Urgency::parse)?,
            created_at: Timestamp::from_millis(row.get("created_at")?),
            updated_at: Timestamp::from_millis(row.get("updated_at")?),
        })
    }
}

/// The columns of [`Category`], as a literal for the statements below.
macro_rules! category_columns {
    () => {
        "id, name_es, name_en, default_department_id, default_urgency, created_at, updated_at"
    };
}

const LIST_CATEGORIES: &str = concat!(
    "SELECT ",
    category_columns!(),
    " FROM categories ORDER BY name_es"
);
const FIND_CATEGORY: &str = concat!(
    "SELECT ",
    category_columns!(),
    " FROM categories WHERE id = $1"
);
const INSERT_CATEGORY: &str = concat!(
    "INSERT INTO categories (name_es, name_en, default_department_id, default_urgency, created_at, \
     updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING ",
    category_columns!()
);
const UPDATE_CATEGORY: &str = concat!(
    "UPDATE categories SET name_es = $2, name_en = $3, default_department_id = $4, \
     default_urgency = $5, updated_at = $6 WHERE id = $1 RETURNING ",
    category_columns!()
);
const DELETE_CATEGORY: &str = "DELETE FROM categories WHERE id = $1";

pub async fn list_categories(db: &Db) -> StoreResult<Vec<Category>> {
    direct_read!(db,
        sqlite: |conn| direct::query(conn, LIST_CATEGORIES, &[], Category::from_direct),
        postgres: |pool| Ok(sqlx::query_as(LIST_CATEGORIES).fetch_all(pool).await?),
    )
}

fn find_category_direct(conn: &direct::Conn, id: CategoryId) -> StoreResult<Option<Category>> {
    direct::query_optional(conn, FIND_CATEGORY, &[&id.0], Category::from_direct)
}

async fn find_category_postgres(
    executor: impl sqlx::PgExecutor<'_>,
    id: CategoryId,
) -> StoreResult<Option<Category>> {
    Ok(sqlx::query_as(FIND_CATEGORY)
        .bind(id.0)
        .fetch_optional(executor)
        .await?)
}

pub async fn find_category(db: &Db, id: CategoryId) -> StoreResult<Category> {
    let category = direct_read!(db,
        sqlite: |conn| find_category_direct(conn, id),
        postgres: |pool| find_category_postgres(pool, id).await,
    )?;
    category.ok_or(StoreError::NotFound)
}

fn unknown_default_department() -> StoreError {
    StoreError::UnknownReference {
        field: "default_department_id".into(),
        entity: "department",
    }
}

/// Refuses a category whose default department does not exist, on the write's connection.
fn check_default_department_direct(
    conn: &direct::Conn,
    department: Option<DepartmentId>,
) -> StoreResult<()> {
    match department {
        Some(department) if !department_exists_direct(conn, department)? => {
            Err(unknown_default_department())
        }
        _ => Ok(()),
    }
}

/// [`check_default_department_direct`] inside a PostgreSQL transaction.
async fn check_default_department_postgres(
    tx: &mut sqlx::PgConnection,
    department: Option<DepartmentId>,
) -> StoreResult<()> {
    match department {
        Some(department) if !department_exists_postgres(&mut *tx, department).await? => {
            Err(unknown_default_department())
        }
        _ => Ok(()),
    }
}

pub async fn create_category(
    db: &Db,
    spec: &CategorySpec,
    actor: &ChangeAuthor,
) -> StoreResult<Category> {
    let now = Timestamp::now().millis();
    let (spec, actor) = (spec.clone(), actor.clone());
    let department = spec.default_department_id;
    let urgency = spec.default_urgency.as_str();
    let audit = move |category: &Category| {
        AuditDraft::new(
            &actor,
            "category.created",
            AuditEntity::Category,
            Some(category.id.0),
        )
        .after(category)
    };
    grouped_write!(db,
        sqlite: |conn| {
            check_default_department_direct(conn, department)?;
            let category = direct::query_optional(
                conn,
                INSERT_CATEGORY,
                &[&spec.name_es, &spec.name_en, &department.map(|d| d.0), &urgency, &now],
                Category::from_direct,
            )
            .map_err(|e| StoreError::unique_direct(e, "name_es"))?
            .ok_or(StoreError::NotFound)?;
            insert_audit_direct(conn, audit(&category))?;
            Ok(category)
        },
        postgres: |tx| {
            check_default_department_postgres(&mut *tx, department).await?;
            let category: Category = sqlx::query_as(INSERT_CATEGORY)
                .bind(&spec.name_es)
                .bind(&spec.name_en)
                .bind(department.map(|d| d.0))
                .bind(urgency)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| StoreError::unique(e, "categories_name_es_key", "name_es"))?;
            insert_audit!(&mut *tx, audit(&category));
            Ok(category)
        },
    )
}

/// Changes a category, audited with before and after (read in the same transaction).
pub async fn update_category(
    db: &Db,
    id: CategoryId,
    spec: &CategorySpec,
    actor: &ChangeAuthor,
) -> StoreResult<Category> {
    let now = Timestamp::now().millis();
    let (spec, actor) = (spec.clone(), actor.clone());
    let department = spec.default_department_id;
    let urgency = spec.default_urgency.as_str();
    let audit = move |before: &Category, after: &Category| {
        AuditDraft::new(
            &actor,
            "category.updated",
            AuditEntity::Category,
            Some(id.0),
        )
        .before(before)
        .after(after)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before = find_category_direct(conn, id)?.ok_or(StoreError::NotFound)?;
            check_default_department_direct(conn, department)?;
            let after = direct::query_optional(
                conn,
                UPDATE_CATEGORY,
                &[&id.0, &spec.name_es, &spec.name_en, &department.map(|d| d.0), &urgency, &now],
                Category::from_direct,
            )
            .map_err(|e| StoreError::unique_direct(e, "name_es"))?
            .ok_or(StoreError::NotFound)?;
            insert_audit_direct(conn, audit(&before, &after))?;
            Ok(after)
        },
        postgres: |tx| {
            let before = find_category_postgres(&mut *tx, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            check_default_department_postgres(&mut *tx, department).await?;
            let after: Category = sqlx::query_as(UPDATE_CATEGORY)
                .bind(id.0)
                .bind(&spec.name_es)
                .bind(&spec.name_en)
                .bind(department.map(|d| d.0))
                .bind(urgency)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| StoreError::unique(e, "categories_name_es_key", "name_es"))?;
            insert_audit!(&mut *tx, audit(&before, &after));
            Ok(after)
        },
    )
}

/// Deletes a category no incident refers to (audited with what it was).
pub async fn delete_category(db: &Db, id: CategoryId, actor: &ChangeAuthor) -> StoreResult<()> {
    let actor = actor.clone();
    let audit = move |before: &Category| {
        AuditDraft::new(
            &actor,
            "category.deleted",
            AuditEntity::Category,
            Some(id.0),
        )
        .before(before)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before = find_category_direct(conn, id)?.ok_or(StoreError::NotFound)?;
            direct::execute(conn, DELETE_CATEGORY, &[&id.0])
                .map_err(|e| in_use_direct(e, "incidents"))?;
            insert_audit_direct(conn, audit(&before))
        },
        postgres: |tx| {
            let before = find_category_postgres(&mut *tx, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            sqlx::query(DELETE_CATEGORY)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(|e| in_use(e, "incidents"))?;
            insert_audit!(&mut *tx, audit(&before));
            Ok(())
        },
    )
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
            direct::execute(conn, DELETE_ZONE, &[&id.0])
                .map_err(|e| in_use_direct(e, "incidents"))?;
            insert_audit_direct(conn, audit(&before))
        },
        postgres: |tx| {
            let before = find_zone_postgres(&mut *tx, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            sqlx::query(DELETE_ZONE)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(|e| in_use(e, "incidents"))?;
            insert_audit!(&mut *tx, audit(&before));
            Ok(())
        },
    )
}
