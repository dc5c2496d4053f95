//! Scoped API keys for devices and integrations, stored as hashes.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::auth::Scope;
use vigia_domain::ids::{ApiKeyId, DepartmentId, UserId};

use crate::audit::{AuditDraft, insert_audit};
use crate::composed;
use crate::page::{Cursor, Page};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, on_reader, on_writer};

/// An API key as listed (never the secret or its hash).
#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub key_prefix: String,
    pub scopes: Vec<Scope>,
    pub departments: Vec<DepartmentId>,
    pub created_by: UserId,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(FromRow)]
struct ApiKeyRow {
    id: i64,
    name: String,
    key_prefix: String,
    scopes: String,
    created_by: i64,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl ApiKeyRow {
    fn into_key(self, departments: Vec<DepartmentId>) -> ApiKey {
        ApiKey {
            id: ApiKeyId(self.id),
            name: self.name,
            key_prefix: self.key_prefix,
            scopes: self
                .scopes
                .split(' ')
                .filter_map(|s| Scope::parse("scopes", s).ok())
                .collect(),
            departments,
            created_by: UserId(self.created_by),
            created_at: Timestamp::from_millis(self.created_at),
            expires_at: self.expires_at.map(Timestamp::from_millis),
            last_used_at: self.last_used_at.map(Timestamp::from_millis),
            revoked_at: self.revoked_at.map(Timestamp::from_millis),
        }
    }
}

/// What a new key is made of.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub key_prefix: String,
    pub key_hash: String,
    pub scopes: Vec<Scope>,
    pub departments: Vec<DepartmentId>,
    pub expires_at: Option<Timestamp>,
    pub created_by: UserId,
}

const COLUMNS: &str =
    "id, name, key_prefix, scopes, created_by, created_at, expires_at, last_used_at, revoked_at";

/// Stores a new key (audited).
pub async fn create(db: &Db, new: &NewApiKey, actor: &ChangeAuthor) -> StoreResult<ApiKey> {
    for (i, department) in new.departments.iter().enumerate() {
        if !crate::catalog::department_exists(db, *department).await? {
            return Err(StoreError::UnknownReference {
                field: format!("departments[{i}]"),
                entity: "department",
            });
        }
    }
    let scopes: Vec<&str> = new.scopes.iter().map(|s| s.as_str()).collect();
    let sql = format!(
        "INSERT INTO api_keys (name, key_prefix, key_hash, scopes, created_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: ApiKeyRow = sqlx::query_as(composed(&sql))
            .bind(&new.name)
            .bind(&new.key_prefix)
            .bind(&new.key_hash)
            .bind(scopes.join(" "))
            .bind(new.created_by.0)
            .bind(Timestamp::now().millis())
            .bind(new.expires_at.map(Timestamp::millis))
            .fetch_one(&mut *tx)
            .await?;
        for department in &new.departments {
            sqlx::query("INSERT INTO api_key_departments (api_key_id, department_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(row.id)
                .bind(department.0)
                .execute(&mut *tx)
                .await?;
        }
        let key = row.into_key(new.departments.clone());
        insert_audit!(
            &mut *tx,
            AuditDraft::new(
                actor,
                "api_key.created",
                AuditEntity::ApiKey,
                Some(key.id.0)
            )
            .after(&key)
        );
        tx.commit().await?;
        Ok(key)
    })
}

async fn departments_of(db: &Db, key: i64) -> StoreResult<Vec<DepartmentId>> {
    let sql = "SELECT department_id FROM api_key_departments WHERE api_key_id = $1 ORDER BY department_id";
    let ids: Vec<i64> = on_reader!(db, |pool| sqlx::query_scalar(sql)
        .bind(key)
        .fetch_all(pool)
        .await?);
    Ok(ids.into_iter().map(DepartmentId).collect())
}

/// One key by id.
pub async fn find(db: &Db, id: ApiKeyId) -> StoreResult<ApiKey> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
    let row: ApiKeyRow = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(id.0)
        .fetch_optional(pool)
        .await?)
    .ok_or(StoreError::NotFound)?;
    let departments = departments_of(db, row.id).await?;
    Ok(row.into_key(departments))
}

/// The active (not revoked, not expired) key whose secret hashes to `hash`.
pub async fn find_active_by_hash(
    db: &Db,
    hash: &str,
    now: Timestamp,
) -> StoreResult<Option<ApiKey>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $2)"
    );
    let row: Option<ApiKeyRow> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(hash)
        .bind(now.millis())
        .fetch_optional(pool)
        .await?);
    match row {
        Some(row) => {
            let departments = departments_of(db, row.id).await?;
            Ok(Some(row.into_key(departments)))
        }
        None => Ok(None),
    }
}

/// Records that a key was used. Callers throttle this (it is a write).
pub async fn touch(db: &Db, id: ApiKeyId, at: Timestamp) -> StoreResult<()> {
    let sql = "UPDATE api_keys SET last_used_at = $2 WHERE id = $1";
    on_writer!(db, |pool| {
        sqlx::query(sql)
            .bind(id.0)
            .bind(at.millis())
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// All keys, newest first.
pub async fn list(db: &Db, before: Option<Cursor>, limit: usize) -> StoreResult<Page<ApiKey>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys WHERE id < $1 ORDER BY id DESC{}",
        crate::sql::limit(limit + 1)
    );
    let rows: Vec<ApiKeyRow> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(before.map_or(i64::MAX, |c| c.0))
        .fetch_all(pool)
        .await?);
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        let departments = departments_of(db, row.id).await?;
        keys.push(row.into_key(departments));
    }
    Ok(Page::from_rows(keys, limit, |k| k.id.0))
}

/// Revokes a key (audited). Revoking twice is not an error.
pub async fn revoke(db: &Db, id: ApiKeyId, actor: &ChangeAuthor) -> StoreResult<ApiKey> {
    let before = find(db, id).await?;
    if before.revoked_at.is_some() {
        return Ok(before);
    }
    let now = Timestamp::now();
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1")
            .bind(id.0)
            .bind(now.millis())
            .execute(&mut *tx)
            .await?;
        let after = ApiKey {
            revoked_at: Some(now),
            ..before.clone()
        };
        let draft = AuditDraft::new(actor, "api_key.revoked", AuditEntity::ApiKey, Some(id.0))
            .before(&before)
            .after(&after);
        insert_audit!(&mut *tx, draft);
        tx.commit().await?;
        Ok(after)
    })
}
