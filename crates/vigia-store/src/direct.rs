//! Statements on the SQLite group commit's own connection ([`crate::group_commit`]): plain
//! synchronous calls on the thread that owns it, so a write costs what SQLite does and nothing
//! more. The SQL is the same text the sqlx paths run, `$1`, `$2`, ... included: arguments are
//! bound by those names, so a placeholder may appear in any order and more than once.

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{CachedStatement, Connection, Row, ToSql};

use crate::sql::Arg;
use crate::{StoreError, StoreResult};

/// The connection writes get inside their batch's transaction.
pub type Conn = Connection;

impl ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Arg::I64(v) => ToSqlOutput::Owned(Value::Integer(*v)),
            Arg::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
        })
    }
}

/// Prepares `sql` (from the connection's statement cache) and binds `args[n - 1]` to every
/// `$n` in it.
fn prepare<'c>(
    conn: &'c Conn,
    sql: &str,
    args: &[&dyn ToSql],
) -> rusqlite::Result<CachedStatement<'c>> {
    let mut statement = conn.prepare_cached(sql)?;
    for index in 1..=statement.parameter_count() {
        let n = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=args.len()).contains(n))
            .ok_or_else(|| {
                rusqlite::Error::InvalidParameterName(format!(
                    "parameter {index} of {sql:?} is not one of $1..${}",
                    args.len()
                ))
            })?;
        statement.raw_bind_parameter(index, args[n - 1])?;
    }
    Ok(statement)
}

/// The position of `name` in `columns`, a comma-separated list of column names as written in
/// a SELECT (`"id, category_id, title"`), computed at compile time: rows are decoded by column
/// name at no run-time cost, and a name missing from the list fails the build.
///
/// ```ignore
/// const TITLE: usize = column_index(INCIDENT_COLUMNS, "title");
/// ```
pub const fn column_index(columns: &str, name: &str) -> usize {
    let list = columns.as_bytes();
    let wanted = name.as_bytes();
    let mut index = 0;
    let mut start = 0;
    while start < list.len() {
        // Skip separators: commas and whitespace.
        while start < list.len() && (list[start] == b',' || list[start].is_ascii_whitespace()) {
            start += 1;
        }
        let mut end = start;
        while end < list.len() && list[end] != b',' && !list[end].is_ascii_whitespace() {
            end += 1;
        }
        if end > start {
            if end - start == wanted.len() {
                let mut i = 0;
                while i < wanted.len() && list[start + i] == wanted[i] {
                    i += 1;
                }
                if i == wanted.len() {
                    return index;
                }
            }
            index += 1;
        }
        start = end;
    }
    panic!("column not in the list")
}

/// A row struct read by column name on both backends: `#[derive(sqlx::FromRow)]` for
/// PostgreSQL, and `from_direct` for rusqlite, which reads each field from the column of the
/// same name. For rows whose fields are the columns as stored, so the list is written once.
///
/// ```ignore
/// direct_row! {
///     struct Row { id: i64, code: String }
/// }
/// ```
macro_rules! direct_row {
    ($(#[$meta:meta])* struct $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(sqlx::FromRow)]
        struct $name {
            $($field: $ty),*
        }

        impl $name {
            fn from_direct(r: &::rusqlite::Row<'_>) -> ::rusqlite::Result<Self> {
                Ok(Self {
                    $($field: r.get(stringify!($field))?),*
                })
            }
        }
    };
}
pub(crate) use direct_row;

/// Column `index` of `row`, a stored name (a status, an urgency, ...) parsed by `parse` from the
/// text SQLite holds, without copying it first. A name the domain does not know is a decoding
/// error, not a silent default.
pub fn parsed<T>(
    row: &Row<'_>,
    index: usize,
    parse: impl FnOnce(&str, &str) -> Result<T, vigia_domain::FieldError>,
) -> rusqlite::Result<T> {
    let text = row.get_ref(index)?.as_str()?;
    parse("stored value", text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            Box::new(error),
        )
    })
}

/// Runs a statement that returns no rows; returns how many rows it changed.
pub fn execute(conn: &Conn, sql: &str, args: &[&dyn ToSql]) -> StoreResult<usize> {
    Ok(prepare(conn, sql, args)?.raw_execute()?)
}

/// Runs `sql` and maps each row it returns.
pub fn query<T>(
    conn: &Conn,
    sql: &str,
    args: &[&dyn ToSql],
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>> {
    query_sized(conn, sql, args, 0, map)
}

/// [`query`] into a vector with room for `expected` rows from the start, so a page of large
/// rows is not moved as the vector grows.
pub fn query_sized<T>(
    conn: &Conn,
    sql: &str,
    args: &[&dyn ToSql],
    expected: usize,
    mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>> {
    let mut statement = prepare(conn, sql, args)?;
    let mut rows = statement.raw_query();
    let mut mapped = Vec::with_capacity(expected);
    while let Some(row) = rows.next()? {
        mapped.push(map(row)?);
    }
    Ok(mapped)
}

/// Runs `sql` and maps its first row, if any; the statement still runs to its end (an
/// `INSERT ... RETURNING` is complete only then).
pub fn query_optional<T>(
    conn: &Conn,
    sql: &str,
    args: &[&dyn ToSql],
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Option<T>> {
    Ok(query(conn, sql, args, map)?.into_iter().next())
}

/// `args` as bind values, for SQL composed with [`crate::sql::Sql`].
pub fn args(args: &[Arg]) -> Vec<&dyn ToSql> {
    args.iter().map(|a| a as &dyn ToSql).collect()
}

impl StoreError {
    /// Maps a SQLite unique violation to [`StoreError::Duplicate`] for `field`.
    pub(crate) fn unique_direct(error: StoreError, field: &'static str) -> Self {
        match error {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, _))
                if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                StoreError::Duplicate { field }
            }
            other => other,
        }
    }
}

/// True for a SQLite foreign-key violation: the rusqlite side of
/// `StoreError::is_foreign_key`. SQLite reports a RESTRICT violation with the generic
/// constraint code, so its message is matched as well.
pub(crate) fn is_foreign_key(error: &StoreError) -> bool {
    matches!(error, StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, message))
        if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
            || (failure.code == rusqlite::ErrorCode::ConstraintViolation
                && message
                    .as_deref()
                    .is_some_and(|m| m.contains("FOREIGN KEY constraint failed"))))
}

#[cfg(test)]
mod tests {
    use super::column_index;

    #[test]
    fn a_column_is_found_by_name_across_commas_spaces_and_line_breaks() {
        const COLUMNS: &str = "id, sla_started_at,\n    started_at,updated_at";
        assert_eq!(column_index(COLUMNS, "id"), 0);
        assert_eq!(column_index(COLUMNS, "sla_started_at"), 1);
        assert_eq!(column_index(COLUMNS, "started_at"), 2);
        assert_eq!(column_index(COLUMNS, "updated_at"), 3);
    }

    #[test]
    #[should_panic(expected = "column not in the list")]
    fn a_name_missing_from_the_list_is_refused() {
        column_index("id, title", "tit");
    }
}
