//! Incident categories, each with a default department and urgency.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::catalog::{CategorySpec, Urgency};
use vigia_domain::ids::{CategoryId, DepartmentId};

use super::references::{
    delete_audited_direct, delete_audited_postgres, department_exists_direct,
    department_exists_postgres,
};
use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, direct, direct_read, grouped_write};

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
            delete_audited_direct(conn, DELETE_CATEGORY, id.0, "incidents", audit(&before))
        },
        postgres: |tx| {
            let before = find_category_postgres(&mut *tx, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            delete_audited_postgres(&mut *tx, DELETE_CATEGORY, id.0, "incidents", audit(&before)).await
        },
    )
}
