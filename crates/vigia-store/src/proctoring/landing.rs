//! What the landing of captures and reference photos in storage needs from the database
//! besides recording them ([`super::insert_capture`], [`super::references::record_object`],
//! both unique by object key, which is the one guard against recording an object twice): the
//! S3 lister's durable cursor per listed prefix, and which keys of a listed page are already
//! known, read in one query per page instead of one per key.

use std::collections::HashSet;

use vigia_domain::Timestamp;

use crate::{Db, StoreResult, on_reader, on_writer};

/// Where the lister of `scope` left off: the store's name of the last key it recorded.
pub async fn cursor(db: &Db, scope: &str) -> StoreResult<Option<String>> {
    let sql = "SELECT after_key FROM landing_cursors WHERE scope = $1";
    Ok(on_reader!(db, |pool| sqlx::query_scalar(sql)
        .bind(scope)
        .fetch_optional(pool)
        .await?))
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
    let moved = on_writer!(db, |pool| match from {
        None => sqlx::query(
            "INSERT INTO landing_cursors (scope, after_key, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (scope) DO NOTHING",
        )
        .bind(scope)
        .bind(to)
        .bind(now.millis())
        .execute(pool)
        .await?
        .rows_affected(),
        Some(from) => sqlx::query(
            "UPDATE landing_cursors SET after_key = $3, updated_at = $4 \
             WHERE scope = $1 AND after_key = $2",
        )
        .bind(scope)
        .bind(from)
        .bind(to)
        .bind(now.millis())
        .execute(pool)
        .await?
        .rows_affected(),
    });
    Ok(moved == 1)
}

/// The capture keys already recorded among `keys` (one query: the range from the smallest to
/// the largest; a key the database orders otherwise is only tried once more, harmlessly).
pub async fn known_capture_keys(db: &Db, keys: &[&str]) -> StoreResult<HashSet<String>> {
    let (Some(first), Some(last)) = (keys.iter().min(), keys.iter().max()) else {
        return Ok(HashSet::new());
    };
    let sql = "SELECT object_key FROM exam_captures WHERE object_key >= $1 AND object_key <= $2";
    let found: Vec<String> = on_reader!(db, |pool| sqlx::query_scalar(sql)
        .bind(*first)
        .bind(*last)
        .fetch_all(pool)
        .await?);
    Ok(found.into_iter().collect())
}

/// The (key, version) pairs of reference objects already recorded among `keys`, as
/// [`known_capture_keys`] reads them.
pub async fn known_reference_versions(
    db: &Db,
    keys: &[&str],
) -> StoreResult<HashSet<(String, String)>> {
    let (Some(first), Some(last)) = (keys.iter().min(), keys.iter().max()) else {
        return Ok(HashSet::new());
    };
    let sql = "SELECT object_key, version FROM reference_objects \
               WHERE object_key >= $1 AND object_key <= $2";
    let found: Vec<(String, String)> = on_reader!(db, |pool| sqlx::query_as(sql)
        .bind(*first)
        .bind(*last)
        .fetch_all(pool)
        .await?);
    Ok(found.into_iter().collect())
}
