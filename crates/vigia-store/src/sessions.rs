//! Login sessions: one per login, identified by a rotating refresh token stored only as a hash.

use vigia_domain::Timestamp;
use vigia_domain::ids::{SessionId, UserId};

use crate::{Db, StoreError, StoreResult, direct, grouped_write};

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

const CREATE: &str = "INSERT INTO sessions (user_id, refresh_hash, user_agent, created_at, last_used_at, expires_at) \
     VALUES ($1, $2, $3, $4, $4, $5) RETURNING id";
/// Replaces a current refresh token; `$1` the presented hash, `$2` the new one, `$3` now.
const ROTATE: &str = "UPDATE sessions SET previous_hash = refresh_hash, refresh_hash = $2, last_used_at = $3, \
     expires_at = $4 WHERE refresh_hash = $1 AND revoked_at IS NULL AND expires_at > $3 \
     AND user_id IN (SELECT id FROM users WHERE NOT disabled) RETURNING id, user_id";
/// Revokes the session whose previous token `$1` was presented again.
const REVOKE_REUSED: &str =
    "UPDATE sessions SET revoked_at = $2 WHERE previous_hash = $1 AND revoked_at IS NULL";
const REVOKE: &str =
    "UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL";
const PURGE: &str =
    "DELETE FROM sessions WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1)";

/// Starts a session for `user`.
pub async fn create(
    db: &Db,
    user: UserId,
    refresh_hash: &str,
    user_agent: Option<&str>,
    expires_at: Timestamp,
) -> StoreResult<SessionId> {
    let now = Timestamp::now().millis();
    let refresh_hash = refresh_hash.to_owned();
    let user_agent = user_agent.map(|ua| ua.chars().take(200).collect::<String>());
    let expires_at = expires_at.millis();
    let id: i64 = grouped_write!(db,
        sqlite: |conn| direct::query_optional(
            conn,
            CREATE,
            &[&user.0, &refresh_hash, &user_agent, &now, &expires_at],
            |r| r.get("id"),
        )?
        .ok_or(StoreError::NotFound),
        postgres: |tx| Ok(sqlx::query_scalar(CREATE)
            .bind(user.0)
            .bind(&refresh_hash)
            .bind(&user_agent)
            .bind(now)
            .bind(expires_at)
            .fetch_one(&mut *tx)
            .await?),
    )?;
    Ok(SessionId(id))
}

/// What a presented token's rotation found: the rotated session, else how many sessions the
/// token revoked as reused.
fn outcome(current: Option<(i64, i64)>, reused: u64) -> Rotation {
    match current {
        Some((session, user)) => Rotation::Rotated {
            session: SessionId(session),
            user: UserId(user),
        },
        None if reused > 0 => Rotation::Reused,
        None => Rotation::Invalid,
    }
}

/// Replaces the refresh token `presented_hash` by `new_hash`, detecting reuse.
pub async fn rotate(
    db: &Db,
    presented_hash: &str,
    new_hash: &str,
    new_expiry: Timestamp,
) -> StoreResult<Rotation> {
    let now = Timestamp::now().millis();
    let (presented_hash, new_hash) = (presented_hash.to_owned(), new_hash.to_owned());
    let new_expiry = new_expiry.millis();
    grouped_write!(db,
        sqlite: |conn| {
            let current = direct::query_optional(
                conn,
                ROTATE,
                &[&presented_hash, &new_hash, &now, &new_expiry],
                |r| Ok((r.get("id")?, r.get("user_id")?)),
            )?;
            let reused = match current {
                Some(_) => 0,
                None => direct::execute(conn, REVOKE_REUSED, &[&presented_hash, &now])? as u64,
            };
            Ok(outcome(current, reused))
        },
        postgres: |tx| {
            let current: Option<(i64, i64)> = sqlx::query_as(ROTATE)
                .bind(&presented_hash)
                .bind(&new_hash)
                .bind(now)
                .bind(new_expiry)
                .fetch_optional(&mut *tx)
                .await?;
            let reused = match current {
                Some(_) => 0,
                None => sqlx::query(REVOKE_REUSED)
                    .bind(&presented_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
            };
            Ok(outcome(current, reused))
        },
    )
}

/// Ends one session of `user` (logout). Revoking an already revoked session is not an error.
pub async fn revoke(db: &Db, user: UserId, session: SessionId) -> StoreResult<()> {
    let now = Timestamp::now().millis();
    grouped_write!(db,
        sqlite: |conn| {
            direct::execute(conn, REVOKE, &[&session.0, &user.0, &now])?;
            Ok(())
        },
        postgres: |tx| {
            sqlx::query(REVOKE)
                .bind(session.0)
                .bind(user.0)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            Ok(())
        },
    )
}

/// Deletes sessions that expired or were revoked before `before` (clean-up job).
pub async fn purge_expired(db: &Db, before: Timestamp) -> StoreResult<u64> {
    db.delete_before(PURGE, before.millis()).await
}
