//! Runtime settings an admin may change through the API (each change audited).

use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;

use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::{ChangeAuthor, Db, StoreResult, direct, direct_read, grouped_write};

const GET: &str = "SELECT value FROM settings WHERE key = $1";
const ALL: &str = "SELECT key, value FROM settings ORDER BY key";
const SET: &str = "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, \
     updated_by = excluded.updated_by";

/// A setting's stored value, as JSON, if it was ever set.
pub async fn get(db: &Db, key: &str) -> StoreResult<Option<serde_json::Value>> {
    let key = key.to_owned();
    let raw: Option<String> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, GET, &[&key], |r| r.get("value")),
        postgres: |pool| Ok(sqlx::query_scalar(GET).bind(&key).fetch_optional(pool).await?),
    )?;
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

/// Every stored setting.
pub async fn all(db: &Db) -> StoreResult<Vec<(String, serde_json::Value)>> {
    let rows: Vec<(String, String)> = direct_read!(db,
        sqlite: |conn| direct::query(conn, ALL, &[], |r| Ok((r.get("key")?, r.get("value")?))),
        postgres: |pool| Ok(sqlx::query_as(ALL).fetch_all(pool).await?),
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, v)| serde_json::from_str(&v).ok().map(|v| (k, v)))
        .collect())
}

/// Stores a setting, auditing the old and new value (read in the same transaction).
pub async fn set(
    db: &Db,
    key: &str,
    value: &serde_json::Value,
    actor: &ChangeAuthor,
) -> StoreResult<()> {
    let now = Timestamp::now().millis();
    let text = value.to_string();
    let (key, value, actor) = (key.to_owned(), value.clone(), actor.clone());
    let label = actor.label.clone();
    let audited = key.clone();
    let audit = move |before: Option<String>| {
        let before = before.and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok());
        AuditDraft::new(&actor, "setting.changed", AuditEntity::Setting, None)
            .before(&serde_json::json!({ &audited: before }))
            .after(&serde_json::json!({ &audited: value }))
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before: Option<String> =
                direct::query_optional(conn, GET, &[&key], |r| r.get("value"))?;
            direct::execute(conn, SET, &[&key, &text, &now, &label])?;
            insert_audit_direct(conn, audit(before))
        },
        postgres: |tx| {
            let before: Option<String> =
                sqlx::query_scalar(GET).bind(&key).fetch_optional(&mut *tx).await?;
            sqlx::query(SET)
                .bind(&key)
                .bind(&text)
                .bind(now)
                .bind(&label)
                .execute(&mut *tx)
                .await?;
            insert_audit!(&mut *tx, audit(before));
            Ok(())
        },
    )
}
