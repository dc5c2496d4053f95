//! Runtime settings an admin may change through the API (each change audited).

use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;

use crate::audit::{AuditDraft, insert_audit};
use crate::{ChangeAuthor, Db, StoreResult, on_reader, on_writer};

/// A setting's stored value, as JSON, if it was ever set.
pub async fn get(db: &Db, key: &str) -> StoreResult<Option<serde_json::Value>> {
    let sql = "SELECT value FROM settings WHERE key = $1";
    let raw: Option<String> = on_reader!(db, |pool| sqlx::query_scalar(sql)
        .bind(key)
        .fetch_optional(pool)
        .await?);
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

/// Every stored setting.
pub async fn all(db: &Db) -> StoreResult<Vec<(String, serde_json::Value)>> {
    let sql = "SELECT key, value FROM settings ORDER BY key";
    let rows: Vec<(String, String)> =
        on_reader!(db, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
    Ok(rows
        .into_iter()
        .filter_map(|(k, v)| serde_json::from_str(&v).ok().map(|v| (k, v)))
        .collect())
}

/// Stores a setting, auditing the old and new value.
pub async fn set(
    db: &Db,
    key: &str,
    value: &serde_json::Value,
    actor: &ChangeAuthor,
) -> StoreResult<()> {
    let before = get(db, key).await?;
    let now = Timestamp::now().millis();
    let text = value.to_string();
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by",
        )
        .bind(key)
        .bind(&text)
        .bind(now)
        .bind(&actor.label)
        .execute(&mut *tx)
        .await?;
        let draft = AuditDraft::new(actor, "setting.changed", AuditEntity::Setting, None)
            .before(&serde_json::json!({ key: before }))
            .after(&serde_json::json!({ key: value }));
        insert_audit!(&mut *tx, draft);
        tx.commit().await?;
    });
    Ok(())
}
