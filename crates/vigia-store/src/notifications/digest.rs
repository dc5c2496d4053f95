//! Digest e-mails: what keeps a burst from flooding an inbox.
//!
//! An e-mail whose recipient is over their rate is *held*: it stays `pending` with no attempt
//! made, and names in `digest_id` the recipient's open digest, a delivery of message type
//! [`DIGEST_TYPE`] whose single job is due when the gathering window ends. A digest is *open*
//! while its payload is empty; the first step of its attempt *closes* it (payload
//! [`CLOSED`]), after which the e-mails it carries are fixed: a held e-mail that arrives later
//! opens the next digest. Holding and closing are each one transaction that reads and writes
//! the recipient's digests (on PostgreSQL under a transaction-scoped advisory lock per recipient; on SQLite inside the group commit, which
//! runs one write at a time), so an e-mail is carried by exactly one digest. Once the digest is
//! delivered, the e-mails it carried are marked delivered with it.

use vigia_domain::Timestamp;

use super::lifecycle::attempt_job;
use super::{Delivery, DeliveryRow, SELECT};
use crate::jobs::{enqueue_direct, enqueue_in};
use crate::{Db, StoreResult, composed, direct, direct_read};

/// The message type of a digest delivery.
pub const DIGEST_TYPE: &str = "notification.digest";

/// The payload of a closed digest whose message is not written yet.
pub const CLOSED: &str = "closed";

const OPEN_DIGEST: &str = "SELECT id FROM notification_deliveries WHERE channel = 'email' \
     AND target = $1 AND message_type = 'notification.digest' AND payload = '' \
     ORDER BY id LIMIT 1";
/// PostgreSQL: a transaction-scoped lock on one recipient's digests.
const LOCK_RECIPIENT: &str = "SELECT pg_advisory_xact_lock(hashtext('digest:' || $1))::text";
const NEW_DIGEST: &str = "INSERT INTO notification_deliveries (channel, target, message_type, \
     message_id, payload, status, attempts, next_attempt_at, created_at, updated_at) \
     VALUES ('email', $1, 'notification.digest', $2, '', 'pending', 0, $3, $4, $4) RETURNING id";
const ATTACH: &str = "UPDATE notification_deliveries SET digest_id = $2, updated_at = $3 \
     WHERE id = $1 AND status = 'pending' AND attempts = 0";

/// Holds e-mail delivery `id` (to `target`) for the recipient's open digest, opening one due at
/// `due` (with `message_id`) when there is none, and returns the digest's id.
pub async fn hold(
    db: &Db,
    id: i64,
    target: &str,
    message_id: &str,
    due: Timestamp,
) -> StoreResult<i64> {
    let now = Timestamp::now().millis();
    let (target, message_id) = (target.to_owned(), message_id.to_owned());
    crate::grouped_write!(db,
        sqlite: |conn| {
            let open: Option<i64> =
                direct::query_optional(conn, OPEN_DIGEST, &[&target], |r| r.get("id"))?;
            let digest = match open {
                Some(digest) => digest,
                None => {
                    let args: [&dyn rusqlite::ToSql; 4] =
                        [&target, &message_id, &due.millis(), &now];
                    let digest: i64 = direct::query_optional(conn, NEW_DIGEST, &args, |r| r.get("id"))?
                        .ok_or_else(|| anyhow::anyhow!("the digest was not created"))?;
                    enqueue_direct(conn, &attempt_job(digest, 1, due), Timestamp::from_millis(now))?;
                    digest
                }
            };
            direct::execute(conn, ATTACH, &[&id, &digest, &now])?;
            Ok(digest)
        },
        postgres: |conn| {
            // Holds and closes for one recipient take turns: two holds finding no open digest
            // would otherwise open one each.
            sqlx::query(LOCK_RECIPIENT).bind(&target).execute(&mut *conn).await?;
            let open: Option<i64> = sqlx::query_scalar(OPEN_DIGEST)
                .bind(&target)
                .fetch_optional(&mut *conn)
                .await?;
            let digest = match open {
                Some(digest) => digest,
                None => {
                    let digest: i64 = sqlx::query_scalar(NEW_DIGEST)
                        .bind(&target)
                        .bind(&message_id)
                        .bind(due.millis())
                        .bind(now)
                        .fetch_one(&mut *conn)
                        .await?;
                    enqueue_in(&mut *conn, &attempt_job(digest, 1, due), Timestamp::from_millis(now))
                        .await?;
                    digest
                }
            };
            sqlx::query(ATTACH)
                .bind(id)
                .bind(digest)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            Ok(digest)
        },
    )
}

/// Closes digest `id` (to `target`): no e-mail joins it after this. Closing twice changes
/// nothing.
pub async fn close(db: &Db, id: i64, target: &str) -> StoreResult<()> {
    const CLOSE: &str = "UPDATE notification_deliveries SET payload = 'closed' \
         WHERE id = $1 AND payload = ''";
    let target = target.to_owned();
    crate::grouped_write!(db,
        sqlite: |conn| {
            direct::execute(conn, CLOSE, &[&id])?;
            Ok(())
        },
        postgres: |conn| {
            sqlx::query(LOCK_RECIPIENT).bind(&target).execute(&mut *conn).await?;
            sqlx::query(CLOSE).bind(id).execute(&mut *conn).await?;
            Ok(())
        },
    )
}

/// The e-mails digest `id` carries, oldest first.
pub async fn carried(db: &Db, id: i64) -> StoreResult<Vec<Delivery>> {
    let sql = format!("{SELECT} WHERE d.digest_id = $1 ORDER BY d.id");
    // Read after the digest was closed (a committed write): a reader sees what it carries.
    let rows: Vec<DeliveryRow> = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[&id], DeliveryRow::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql))
            .bind(id)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(rows.into_iter().map(Delivery::from).collect())
}

/// Stores the written message of closed digest `id`.
pub async fn write(db: &Db, id: i64, payload: &str) -> StoreResult<()> {
    const WRITE: &str = "UPDATE notification_deliveries SET payload = $2 \
         WHERE id = $1 AND payload = 'closed'";
    let payload = payload.to_owned();
    crate::grouped_write!(db,
        sqlite: |conn| direct::execute(conn, WRITE, &[&id, &payload]).map(|_| ()),
        postgres: |conn| {
            sqlx::query(WRITE).bind(id).bind(&payload).execute(&mut *conn).await?;
            Ok(())
        },
    )
}

/// Marks the e-mails digest `$1` carried as delivered at `$2` (when the digest was); run by
/// [`super::record_attempt`] in the transaction that logs the digest delivered.
pub(crate) const MARK_CARRIED_DELIVERED: &str = "UPDATE notification_deliveries \
     SET status = 'delivered', delivered_at = $2, next_attempt_at = NULL, updated_at = $2 \
     WHERE digest_id = $1 AND status = 'pending' AND attempts = 0";
