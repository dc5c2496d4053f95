//! Login sessions: one per login, identified by a rotating refresh token stored only as a hash.

use vigia_domain::Timestamp;
use vigia_domain::ids::{SessionId, UserId};

use crate::{Db, StoreError, StoreResult, on_writer};

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is replaced by the new one.
    Rotated { session: SessionId, user: UserId },
    /// The token was already rotated away: it was stolen or replayed, so the whole session is
    /// revoked (RFC 6819 §5.2.2.3, refresh token rotation with reuse detection).
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

/// Starts a session for `user`.
pub async fn create(
    db: &Db,
    user: UserId,
    refresh_hash: &str,
    user_agent: Option<&str>,
    expires_at: Timestamp,
) -> StoreResult<SessionId> {
    let now = Timestamp::now().millis();
    let sql = "INSERT INTO sessions (user_id, refresh_hash, user_agent, created_at, last_used_at, expires_at) \
               VALUES ($1, $2, $3, $4, $4, $5) RETURNING id";
    let id: i64 = on_writer!(db, |pool| sqlx::query_scalar(sql)
        .bind(user.0)
        .bind(refresh_hash)
        .bind(user_agent.map(|ua| ua.chars().take(200).collect::<String>()))
        .bind(now)
        .bind(expires_at.millis())
        .fetch_one(pool)
        .await?);
    Ok(SessionId(id))
}

/// Replaces the refresh token `presented_hash` by `new_hash`, detecting reuse.
pub async fn rotate(
    db: &Db,
    presented_hash: &str,
    new_hash: &str,
    new_expiry: Timestamp,
) -> StoreResult<Rotation> {
    let now = Timestamp::now().millis();
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let current: Option<(i64, i64)> = sqlx::query_as(
            "UPDATE sessions SET previous_hash = refresh_hash, refresh_hash = $2, last_used_at = $3, expires_at = $4 \
             WHERE refresh_hash = $1 AND revoked_at IS NULL AND expires_at > $3 \
             AND user_id IN (SELECT id FROM users WHERE NOT disabled) RETURNING id, user_id",
        )
        .bind(presented_hash)
        .bind(new_hash)
        .bind(now)
        .bind(new_expiry.millis())
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match current {
            Some((session, user)) => Rotation::Rotated {
                session: SessionId(session),
                user: UserId(user),
            },
            None => {
                let reused = sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE previous_hash = $1 AND revoked_at IS NULL")
                    .bind(presented_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if reused > 0 {
                    Rotation::Reused
                } else {
                    Rotation::Invalid
                }
            }
        };
        tx.commit().await?;
        Ok::<_, StoreError>(outcome)
    })
}

/// Ends one session of `user` (logout). Revoking an already revoked session is not an error.
pub async fn revoke(db: &Db, user: UserId, session: SessionId) -> StoreResult<()> {
    let sql =
        "UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL";
    on_writer!(db, |pool| {
        sqlx::query(sql)
            .bind(session.0)
            .bind(user.0)
            .bind(Timestamp::now().millis())
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Deletes sessions that expired or were revoked before `before` (clean-up job).
pub async fn purge_expired(db: &Db, before: Timestamp) -> StoreResult<u64> {
    let sql = "DELETE FROM sessions WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1)";
    Ok(on_writer!(db, |pool| sqlx::query(sql)
        .bind(before.millis())
        .execute(pool)
        .await?
        .rows_affected()))
}
