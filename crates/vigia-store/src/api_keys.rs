//! Scoped API keys for devices and integrations, stored as hashes.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::auth::Scope;
use vigia_domain::ids::{ApiKeyId, DepartmentId, UserId};

use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::catalog::{check_departments_direct, check_departments_postgres};
use crate::page::{Cursor, Page};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, direct, direct_read, grouped_write};

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
    /// A row of `columns!()` read on a direct SQLite connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            name: row.get("name")?,
            key_prefix: row.get("key_prefix")?,
            scopes: row.get("scopes")?,
            created_by: row.get("created_by")?,
            created_at: row.get("created_at")?,
            expires_at: row.get("expires_at")?,
            last_used_at: row.get("last_used_at")?,
            revoked_at: row.get("revoked_at")?,
        })
    }

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

/// The columns of [`ApiKeyRow`], as a literal for the statements below.
macro_rules! columns {
    () => {
        "id, name, key_prefix, scopes, created_by, created_at, expires_at, last_used_at, revoked_at"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO api_keys (name, key_prefix, key_hash, scopes, created_by, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
    columns!()
);
const ADD_DEPARTMENT: &str = "INSERT INTO api_key_departments (api_key_id, department_id) \
     VALUES ($1, $2) ON CONFLICT DO NOTHING";
const DEPARTMENTS_OF: &str = "SELECT department_id FROM api_key_departments WHERE api_key_id = $1 \
     ORDER BY department_id";
const FIND: &str = concat!("SELECT ", columns!(), " FROM api_keys WHERE id = $1");
const FIND_ACTIVE_BY_HASH: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL \
     AND (expires_at IS NULL OR expires_at > $2)"
);
const TOUCH: &str = "UPDATE api_keys SET last_used_at = $2 WHERE id = $1";
const REVOKE: &str = "UPDATE api_keys SET revoked_at = $2 WHERE id = $1";

/// Stores a new key (audited).
pub async fn create(db: &Db, new: &NewApiKey, actor: &ChangeAuthor) -> StoreResult<ApiKey> {
    let scopes = new
        .scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<&str>>()
        .join(" ");
    let now = Timestamp::now().millis();
    let (new, actor) = (new.clone(), actor.clone());
    let expires_at = new.expires_at.map(Timestamp::millis);
    let audit = move |key: &ApiKey| {
        AuditDraft::new(
            &actor,
            "api_key.created",
            AuditEntity::ApiKey,
            Some(key.id.0),
        )
        .after(key)
    };
    grouped_write!(db,
        sqlite: |conn| {
            check_departments_direct(conn, &new.departments)?;
            let row = direct::query_optional(
                conn,
                INSERT,
                &[
                    &new.name,
                    &new.key_prefix,
                    &new.key_hash,
                    &scopes,
                    &new.created_by.0,
                    &now,
                    &expires_at,
                ],
                ApiKeyRow::from_direct,
            )?
            .ok_or(StoreError::NotFound)?;
            for department in &new.departments {
                direct::execute(conn, ADD_DEPARTMENT, &[&row.id, &department.0])?;
            }
            let key = row.into_key(new.departments.clone());
            insert_audit_direct(conn, audit(&key))?;
            Ok(key)
        },
        postgres: |tx| {
            check_departments_postgres(&mut *tx, &new.departments).await?;
            let row: ApiKeyRow = sqlx::query_as(INSERT)
                .bind(&new.name)
                .bind(&new.key_prefix)
                .bind(&new.key_hash)
                .bind(&scopes)
                .bind(new.created_by.0)
                .bind(now)
                .bind(expires_at)
                .fetch_one(&mut *tx)
                .await?;
            for department in &new.departments {
                sqlx::query(ADD_DEPARTMENT)
                    .bind(row.id)
                    .bind(department.0)
                    .execute(&mut *tx)
                    .await?;
            }
            let key = row.into_key(new.departments.clone());
            insert_audit!(&mut *tx, audit(&key));
            Ok(key)
        },
    )
}

/// `row` with its departments, on a direct SQLite connection.
fn with_departments_direct(conn: &direct::Conn, row: ApiKeyRow) -> StoreResult<ApiKey> {
    let departments = direct::query(conn, DEPARTMENTS_OF, &[&row.id], |r| {
        Ok(DepartmentId(r.get("department_id")?))
    })?;
    Ok(row.into_key(departments))
}

/// `row` with its departments, on PostgreSQL.
async fn with_departments_postgres(
    executor: impl sqlx::PgExecutor<'_>,
    row: ApiKeyRow,
) -> StoreResult<ApiKey> {
    let ids: Vec<i64> = sqlx::query_scalar(DEPARTMENTS_OF)
        .bind(row.id)
        .fetch_all(executor)
        .await?;
    Ok(row.into_key(ids.into_iter().map(DepartmentId).collect()))
}

fn find_direct(conn: &direct::Conn, id: ApiKeyId) -> StoreResult<Option<ApiKey>> {
    direct::query_optional(conn, FIND, &[&id.0], ApiKeyRow::from_direct)?
        .map(|row| with_departments_direct(conn, row))
        .transpose()
}

async fn find_postgres(tx: &mut sqlx::PgConnection, id: ApiKeyId) -> StoreResult<Option<ApiKey>> {
    let row: Option<ApiKeyRow> = sqlx::query_as(FIND)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
    match row {
        Some(row) => Ok(Some(with_departments_postgres(&mut *tx, row).await?)),
        None => Ok(None),
    }
}

/// One key by id.
pub async fn find(db: &Db, id: ApiKeyId) -> StoreResult<ApiKey> {
    let key = direct_read!(db,
        sqlite: |conn| find_direct(conn, id),
        postgres: |pool| {
            let row: Option<ApiKeyRow> =
                sqlx::query_as(FIND).bind(id.0).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(Some(with_departments_postgres(pool, row).await?)),
                None => Ok(None),
            }
        },
    )?;
    key.ok_or(StoreError::NotFound)
}

/// The active (not revoked, not expired) key whose secret hashes to `hash`.
pub async fn find_active_by_hash(
    db: &Db,
    hash: &str,
    now: Timestamp,
) -> StoreResult<Option<ApiKey>> {
    let (hash, now) = (hash.to_owned(), now.millis());
    direct_read!(db,
        sqlite: |conn| {
            direct::query_optional(conn, FIND_ACTIVE_BY_HASH, &[&hash, &now], ApiKeyRow::from_direct)?
                .map(|row| with_departments_direct(conn, row))
                .transpose()
        },
        postgres: |pool| {
            let row: Option<ApiKeyRow> = sqlx::query_as(FIND_ACTIVE_BY_HASH)
                .bind(&hash)
                .bind(now)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => Ok(Some(with_departments_postgres(pool, row).await?)),
                None => Ok(None),
            }
        },
    )
}

/// Records that a key was used. Callers throttle this (it is a write).
pub async fn touch(db: &Db, id: ApiKeyId, at: Timestamp) -> StoreResult<()> {
    let at = at.millis();
    grouped_write!(db,
        sqlite: |conn| {
            direct::execute(conn, TOUCH, &[&id.0, &at])?;
            Ok(())
        },
        postgres: |tx| {
            sqlx::query(TOUCH).bind(id.0).bind(at).execute(&mut *tx).await?;
            Ok(())
        },
    )
}

/// All keys, newest first.
pub async fn list(db: &Db, before: Option<Cursor>, limit: usize) -> StoreResult<Page<ApiKey>> {
    let sql = format!(
        concat!(
            "SELECT ",
            columns!(),
            " FROM api_keys WHERE id < $1 ORDER BY id DESC{}"
        ),
        crate::sql::limit(limit + 1)
    );
    let before = before.map_or(i64::MAX, |c| c.0);
    let keys: Vec<ApiKey> = direct_read!(db,
        sqlite: |conn| {
            direct::query(conn, &sql, &[&before], ApiKeyRow::from_direct)?
                .into_iter()
                .map(|row| with_departments_direct(conn, row))
                .collect()
        },
        postgres: |pool| {
            let rows: Vec<ApiKeyRow> = sqlx::query_as(crate::composed(&sql))
                .bind(before)
                .fetch_all(pool)
                .await?;
            let mut keys = Vec::with_capacity(rows.len());
            for row in rows {
                keys.push(with_departments_postgres(pool, row).await?);
            }
            Ok(keys)
        },
    )?;
    Ok(Page::from_rows(keys, limit, |k| k.id.0))
}

/// Revokes a key (audited, with the key as it was in the same transaction). Revoking twice is
/// not an error.
pub async fn revoke(db: &Db, id: ApiKeyId, actor: &ChangeAuthor) -> StoreResult<ApiKey> {
    let now = Timestamp::now();
    let actor = actor.clone();
    let revoked = move |before: &ApiKey| {
        let after = ApiKey {
            revoked_at: Some(now),
            ..before.clone()
        };
        let draft = AuditDraft::new(&actor, "api_key.revoked", AuditEntity::ApiKey, Some(id.0))
            .before(before)
            .after(&after);
        (after, draft)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before = find_direct(conn, id)?.ok_or(StoreError::NotFound)?;
            if before.revoked_at.is_some() {
                return Ok(before);
            }
            direct::execute(conn, REVOKE, &[&id.0, &now.millis()])?;
            let (after, draft) = revoked(&before);
            insert_audit_direct(conn, draft)?;
            Ok(after)
        },
        postgres: |tx| {
            let before = find_postgres(&mut *tx, id).await?.ok_or(StoreError::NotFound)?;
            if before.revoked_at.is_some() {
                return Ok(before);
            }
            sqlx::query(REVOKE)
                .bind(id.0)
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
            let (after, draft) = revoked(&before);
            insert_audit!(&mut *tx, draft);
            Ok(after)
        },
    )
}
