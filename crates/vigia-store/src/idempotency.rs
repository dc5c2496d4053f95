//! `Idempotency-Key`: a retried POST gets the result of the first attempt instead of a
//! duplicate. The key is claimed inside the transaction that creates the resource, so two
//! concurrent attempts cannot both create it.

use vigia_domain::Timestamp;

use crate::{Db, StoreResult, direct, direct_read};

/// What the first request with a key produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// A hash of the first request's body: a different body under the same key is an error.
    pub request_hash: String,
    pub status: u16,
    /// What was created, e.g. `incident:42`.
    pub resource: String,
}

const FIND: &str =
    "SELECT request_hash, status, body FROM idempotency_keys WHERE principal = $1 AND key = $2";
const PURGE: &str = "DELETE FROM idempotency_keys WHERE created_at < $1";

/// The record of `key` for `principal`, if any.
pub async fn find(db: &Db, principal: &str, key: &str) -> StoreResult<Option<Recorded>> {
    let (principal, key) = (principal.to_owned(), key.to_owned());
    let row: Option<(String, i32, String)> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, FIND, &[&principal, &key], |r| {
            Ok((r.get("request_hash")?, r.get("status")?, r.get("body")?))
        }),
        postgres: |pool| Ok(sqlx::query_as(FIND)
            .bind(&principal)
            .bind(&key)
            .fetch_optional(pool)
            .await?),
    )?;
    Ok(row.map(|(request_hash, status, resource)| Recorded {
        request_hash,
        status: status as u16,
        resource,
    }))
}

/// Forgets keys older than `before` (they are kept 24 hours).
pub async fn purge(db: &Db, before: Timestamp) -> StoreResult<u64> {
    db.delete_before(PURGE, before.millis()).await
}

/// A key to claim in the transaction that creates a resource.
#[derive(Debug, Clone)]
pub struct Claim {
    pub principal: String,
    pub key: String,
    pub request_hash: String,
}

/// Inserts the claim through `$executor`; a second claim of the same key fails with a unique
/// violation, which the caller maps to a replay.
macro_rules! claim_key {
    ($executor:expr, $claim:expr, $status:expr, $resource:expr, $now:expr) => {{
        let claim: &$crate::idempotency::Claim = $claim;
        sqlx::query($crate::idempotency::INSERT_CLAIM)
            .bind(&claim.principal)
            .bind(&claim.key)
            .bind(&claim.request_hash)
            .bind(i32::from($status))
            .bind($resource)
            .bind($now)
            .execute($executor)
            .await
            .map_err(|e| {
                $crate::StoreError::unique(e, "idempotency_keys_pkey", "idempotency_key")
            })?;
    }};
}
pub(crate) use claim_key;

pub(crate) const INSERT_CLAIM: &str = "INSERT INTO idempotency_keys (principal, key, request_hash, status, body, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// [`claim_key!`] on the SQLite group commit's connection.
pub(crate) fn claim_key_direct(
    conn: &crate::direct::Conn,
    claim: &Claim,
    status: u16,
    resource: &str,
    now: i64,
) -> crate::StoreResult<()> {
    crate::direct::execute(
        conn,
        INSERT_CLAIM,
        &[
            &claim.principal,
            &claim.key,
            &claim.request_hash,
            &i32::from(status),
            &resource,
            &now,
        ],
    )
    .map_err(|e| crate::StoreError::unique_direct(e, "idempotency_key"))?;
    Ok(())
}
