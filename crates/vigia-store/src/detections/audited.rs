//! The audited writes devices, subjects and rules share, one function per backend: read a row
//! as it was (the audit's "before"), and run a statement that returns the row it wrote with
//! its audit entry. Both run inside the caller's `grouped_write!`, so the read, the change and
//! the audit entry are one transaction; each entity keeps its own SQL and fields.

use sqlx::postgres::PgRow;

use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::{PgQuery, StoreError, StoreResult, composed, direct};

/// A unique constraint a write may violate, reported as "`field` is already taken".
#[derive(Debug, Clone, Copy)]
pub(super) struct Taken {
    /// The constraint's name on PostgreSQL (SQLite reports no name).
    pub constraint: &'static str,
    pub field: &'static str,
}

/// The row `find` (selecting by `$1`) reads for `id`, as it is before the write changes it.
pub(super) fn before_direct<R, T: From<R>>(
    conn: &direct::Conn,
    find: &str,
    id: i64,
    decode: fn(&rusqlite::Row<'_>) -> rusqlite::Result<R>,
) -> StoreResult<T> {
    direct::query_optional(conn, find, &[&id], decode)?
        .map(T::from)
        .ok_or(StoreError::NotFound)
}

/// [`before_direct`] inside a PostgreSQL transaction.
pub(super) async fn before_postgres<R, T>(
    tx: &mut sqlx::PgConnection,
    find: &str,
    id: i64,
) -> StoreResult<T>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    T: From<R>,
{
    let row: Option<R> = sqlx::query_as(composed(find))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    row.map(T::from).ok_or(StoreError::NotFound)
}

/// Runs `sql` (an `INSERT` or `UPDATE … RETURNING` one row) and writes the audit entry
/// `audit` makes of the row it returned. No row is [`StoreError::NotFound`].
pub(super) fn returning_direct<R, T: From<R>>(
    conn: &direct::Conn,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
    decode: fn(&rusqlite::Row<'_>) -> rusqlite::Result<R>,
    taken: Option<Taken>,
    audit: impl FnOnce(&T) -> AuditDraft,
) -> StoreResult<T> {
    let row = direct::query_optional(conn, sql, args, decode).map_err(|e| match taken {
        Some(taken) => StoreError::unique_direct(e, taken.field),
        None => e,
    })?;
    let written = T::from(row.ok_or(StoreError::NotFound)?);
    insert_audit_direct(conn, audit(&written))?;
    Ok(written)
}

/// [`returning_direct`] inside a PostgreSQL transaction, for `query` with its parameters bound.
pub(super) async fn returning_postgres<R, T>(
    tx: &mut sqlx::PgConnection,
    query: PgQuery<'_, R>,
    taken: Option<Taken>,
    audit: impl FnOnce(&T) -> AuditDraft,
) -> StoreResult<T>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    T: From<R>,
{
    let row = query
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| match taken {
            Some(taken) => StoreError::unique(e, taken.constraint, taken.field),
            None => StoreError::from(e),
        })?;
    let written = T::from(row.ok_or(StoreError::NotFound)?);
    insert_audit!(&mut *tx, audit(&written));
    Ok(written)
}
