//! Departments: the teams incidents are routed to, with their members and how new incidents
//! get an assignee.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::catalog::DepartmentSpec;
use vigia_domain::ids::{DepartmentId, UserId};
use vigia_domain::incidents::AssignmentStrategy;

use super::references::{delete_audited_direct, delete_audited_postgres};
use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, direct, direct_read, grouped_write};

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
            delete_audited_direct(conn, DELETE_DEPARTMENT, id.0, "categories", audit(&before))
        },
        postgres: |tx| {
            let before = find_department_postgres(&mut *tx, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            delete_audited_postgres(&mut *tx, DELETE_DEPARTMENT, id.0, "categories", audit(&before)).await
        },
    )
}
