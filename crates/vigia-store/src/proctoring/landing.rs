//! What the landing of captures and reference photos in storage needs from the database
//! besides recording them ([`super::insert_capture`], [`super::references::record_object`],
//! both unique by object key, which is the one guard against recording an object twice): the
//! S3 lister's durable cursor per listed prefix, and which keys of a listed page are already
//! known, read in one query per page instead of one per key.

use std::collections::HashSet;

use vigia_domain::Timestamp;

use crate::{Db, StoreResult, direct, direct_read, grouped_write};

/// Where the lister of `scope` left off: the store's name of the last key it recorded.
pub async fn cursor(db: &Db, scope: &str) -> StoreResult<Option<String>> {
    const SQL: &str = "SELECT after_key FROM landing_cursors WHERE scope = $1";
    let scope = scope.to_owned();
    direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, SQL, &[&scope], |r| r.get("after_key")),
        postgres: |pool| Ok(sqlx::query_scalar(SQL).bind(&scope).fetch_optional(pool).await?),
    )
}

/// Moves the cursor of `scope` from `from` (what this lister read; `None`: no cursor yet) to
/// `to`. Compare-and-set: `false` when another node moved it first (this one reads it again on
/// its next pass), so the cursor only ever moves to a key listed after the one it was at.
pub async fn advance_cursor(
    db: &Db,
    scope: &str,
    from: Option<&str>,
    to: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    const FIRST: &str = "INSERT INTO landing_cursors (scope, after_key, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (scope) DO NOTHING";
    const NEXT: &str = "UPDATE landing_cursors SET after_key = $3, updated_at = $4 \
         WHERE scope = $1 AND after_key = $2";
    let (scope, from, to) = (scope.to_owned(), from.map(str::to_owned), to.to_owned());
    let at = now.millis();
    let moved: u64 = grouped_write!(db,
        sqlite: |conn| Ok(match &from {
            None => direct::execute(conn, FIRST, &[&scope, &to, &at])?,
            Some(from) => direct::execute(conn, NEXT, &[&scope, from, &to, &at])?,
        } as u64),
        postgres: |tx| Ok(match &from {
            None => sqlx::query(FIRST)
                .bind(&scope)
                .bind(&to)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            Some(from) => sqlx::query(NEXT)
                .bind(&scope)
                .bind(from)
                .bind(&to)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
        }),
    )?;
    Ok(moved == 1)
}

/// The capture keys already recorded among `keys` (one query: the range from the smallest to
/// the largest; a key the database orders otherwise is only tried once more, harmlessly).
pub async fn known_capture_keys(db: &Db, keys: &[&str]) -> StoreResult<HashSet<String>> {
    const SQL: &str =
        "SELECT object_key FROM exam_captures WHERE object_key >= $1 AND object_key <= $2";
    let (Some(first), Some(last)) = (keys.iter().min(), keys.iter().max()) else {
        return Ok(HashSet::new());
    };
    let (first, last) = (first.to_string(), last.to_string());
    let found: Vec<String> = direct_read!(db,
        sqlite: |conn| direct::query(conn, SQL, &[&first, &last], |r| r.get("object_key")),
        postgres: |pool| Ok(sqlx::query_scalar(SQL)
            .bind(&first)
            .bind(&last)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(found.into_iter().collect())
}

/// The (key, version) pairs of reference objects already recorded among `keys`, as
/// [`known_capture_keys`] reads them.
pub async fn known_reference_versions(
    db: &Db,
    keys: &[&str],
) -> StoreResult<HashSet<(String, String)>> {
    const SQL: &str = "SELECT object_key, version FROM reference_objects \
               WHERE object_key >= $1 AND object_key <= $2";
    let (Some(first), Some(last)) = (keys.iter().min(), keys.iter().max()) else {
        return Ok(HashSet::new());
    };
    let (first, last) = (first.to_string(), last.to_string());
    let found: Vec<(String, String)> = direct_read!(db,
        sqlite: |conn| direct::query(conn, SQL, &[&first, &last], |r| {
            Ok((r.get("object_key")?, r.get("version")?))
        }),
        postgres: |pool| Ok(sqlx::query_as(SQL)
            .bind(&first)
            .bind(&last)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(found.into_iter().collect())
}
