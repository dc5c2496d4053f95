//! What the catalogs share: whether a department another row refers to exists (checked on
//! the connection of the write that refers to it), and the audited delete, where a foreign-key
//! violation (a row still referring to the one being deleted) is [`StoreError::InUse`].

use vigia_domain::ids::DepartmentId;

use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::{Db, StoreError, StoreResult, direct, direct_read};

const DEPARTMENT_EXISTS: &str = "SELECT COUNT(*) AS n FROM departments WHERE id = $1";

/// Deletes the row `delete` names by `$1 = id` and writes `audit`, the entry that records
/// what it was (read by the caller in the same write). A row still referring to it is
/// [`StoreError::InUse`] by `by`.
pub(super) fn delete_audited_direct(
    conn: &direct::Conn,
    delete: &str,
    id: i64,
    by: &'static str,
    audit: AuditDraft,
) -> StoreResult<()> {
    direct::execute(conn, delete, &[&id]).map_err(|e| in_use_direct(e, by))?;
    insert_audit_direct(conn, audit)
}

/// [`delete_audited_direct`] inside a PostgreSQL transaction.
pub(super) async fn delete_audited_postgres(
    tx: &mut sqlx::PgConnection,
    delete: &'static str,
    id: i64,
    by: &'static str,
    audit: AuditDraft,
) -> StoreResult<()> {
    sqlx::query(delete)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| in_use(e, by))?;
    insert_audit!(&mut *tx, audit);
    Ok(())
}

/// A foreign-key violation (a row still referring to the one being deleted) as
/// [`StoreError::InUse`], on a direct connection.
fn in_use_direct(error: StoreError, by: &'static str) -> StoreError {
    if direct::is_foreign_key(&error) {
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

pub(super) fn department_exists_direct(conn: &direct::Conn, id: DepartmentId) -> StoreResult<bool> {
    let n: Option<i64> = direct::query_optional(conn, DEPARTMENT_EXISTS, &[&id.0], |r| r.get("n"))?;
    Ok(n.unwrap_or(0) > 0)
}

pub(super) async fn department_exists_postgres(
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
