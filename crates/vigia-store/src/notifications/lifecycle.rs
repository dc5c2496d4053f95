//! How a delivery moves through the log: planned with the job of its first attempt
//! ([`insert_planned`]), each attempt logged with the job of the next one ([`record_attempt`]),
//! given up ([`mark_dead`]) or put back in line ([`replay`]). Every step that makes an attempt
//! due enqueues its `notification.deliver` job in the same transaction.

use serde::Serialize;
use vigia_domain::Timestamp;

use super::{Channel, Delivery, DeliveryStatus, NewDelivery, digest, find};
use crate::jobs::{NewJob, Task, enqueue_direct, enqueue_in};
use crate::{Db, StoreError, StoreResult, direct, direct_read, grouped_write, webhooks};

/// The job of attempt `attempt` of delivery `id`, due at `at`.
pub(super) fn attempt_job(id: i64, attempt: u32, at: Timestamp) -> NewJob {
    NewJob::new(&Task::Deliver {
        delivery_id: id,
        attempt,
    })
    .run_at(at)
}

/// Creates the deliveries that do not exist yet, each with the job of its first attempt in
/// the same transaction, and returns the ids of all of them, in order. Idempotent per (event,
/// channel, target): planning the same event twice creates nothing new.
pub async fn insert_planned(db: &Db, planned: &[NewDelivery]) -> StoreResult<Vec<i64>> {
    if planned.is_empty() {
        return Ok(Vec::new());
    }
    let at = Timestamp::now();
    let now = at.millis();
    let planned = planned.to_vec();
    // One write for all of an event's deliveries; on SQLite in the group commit, where the
    // deliveries planned by concurrent jobs share a commit.
    crate::grouped_write!(db,
        sqlite: |conn| {
            let mut ids = Vec::with_capacity(planned.len());
            for d in &planned {
                let args: [&dyn rusqlite::ToSql; 10] = [
                    &d.channel.as_str(),
                    &d.target,
                    &d.endpoint_id,
                    &d.event_id,
                    &d.incident_id,
                    &d.message_type,
                    &d.message_id,
                    &d.payload,
                    &now,
                    &d.exam_event_id,
                ];
                let inserted = direct::query_optional(conn, INSERT_DELIVERY, &args, |r| r.get("id"))?;
                if let (Some(id), true) = (inserted, d.channel.is_sent()) {
                    enqueue_direct(conn, &attempt_job(id, 1, at), at)?;
                }
                let id = match inserted {
                    Some(id) => Some(id),
                    None => direct::query_optional(
                        conn,
                        EXISTING_DELIVERY,
                        &[&d.event_id, &d.channel.as_str(), &d.target, &d.exam_event_id],
                        |r| r.get("id"),
                    )?,
                };
                ids.push(id.ok_or_else(|| collided(d))?);
            }
            Ok(ids)
        },
        postgres: |conn| {
            let mut ids = Vec::with_capacity(planned.len());
            for d in &planned {
                let inserted: Option<i64> = sqlx::query_scalar(INSERT_DELIVERY)
                    .bind(d.channel.as_str())
                    .bind(&d.target)
                    .bind(d.endpoint_id)
                    .bind(d.event_id)
                    .bind(d.incident_id)
                    .bind(&d.message_type)
                    .bind(&d.message_id)
                    .bind(&d.payload)
                    .bind(now)
                    .bind(d.exam_event_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                if let (Some(id), true) = (inserted, d.channel.is_sent()) {
                    enqueue_in(&mut *conn, &attempt_job(id, 1, at), at).await?;
                }
                let id = match inserted {
                    Some(id) => Some(id),
                    None => sqlx::query_scalar(EXISTING_DELIVERY)
                        .bind(d.event_id)
                        .bind(d.channel.as_str())
                        .bind(&d.target)
                        .bind(d.exam_event_id)
                        .fetch_optional(&mut *conn)
                        .await?,
                };
                ids.push(id.ok_or_else(|| collided(d))?);
            }
            Ok(ids)
        },
    )
}

const INSERT_DELIVERY: &str = "INSERT INTO notification_deliveries (channel, target, endpoint_id, event_id, \
     incident_id, message_type, message_id, payload, status, attempts, next_attempt_at, created_at, updated_at, \
     exam_event_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $9, $9, $10) \
     ON CONFLICT DO NOTHING RETURNING id";
/// The delivery of an event (incident `$1` or exam `$4`) on a channel to a target.
const EXISTING_DELIVERY: &str = "SELECT id FROM notification_deliveries \
     WHERE channel = $2 AND target = $3 AND (event_id = $1 OR exam_event_id = $4)";

fn collided(d: &NewDelivery) -> StoreError {
    StoreError::Other(anyhow::anyhow!(
        "delivery {} collided with another message id",
        d.message_id
    ))
}

/// True when the event already has a planned delivery on `channel` to `target`.
pub async fn exists_for(
    db: &Db,
    event_id: i64,
    channel: Channel,
    target: &str,
) -> StoreResult<bool> {
    const COUNT: &str = "SELECT COUNT(*) AS n FROM notification_deliveries \
         WHERE event_id = $1 AND channel = $2 AND target = $3";
    let (channel, target) = (channel.as_str(), target.to_owned());
    let n: Option<i64> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, COUNT, &[&event_id, &channel, &target], |r| r.get("n")),
        postgres: |pool| Ok(Some(sqlx::query_scalar(COUNT)
            .bind(event_id)
            .bind(channel)
            .bind(&target)
            .fetch_one(pool)
            .await?)),
    )?;
    Ok(n.unwrap_or(0) > 0)
}

/// How one attempt ended, as the log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    Delivered,
    /// Failed; another attempt follows.
    Retry,
    /// Failed; no further attempt.
    Failed,
}

impl AttemptResult {
    fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Delivered => "delivered",
            AttemptResult::Retry => "retry",
            AttemptResult::Failed => "failed",
        }
    }
}

/// One attempt to log.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub at: Timestamp,
    pub result: AttemptResult,
    /// HTTP status, or the SMTP reply code.
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// For `Retry`: when the next attempt is due.
    pub next_attempt_at: Option<Timestamp>,
    /// A webhook delivered: its endpoint, whose failure streak ends in the same transaction.
    pub ends_streak_of: Option<i64>,
}

/// Logs an attempt and moves the delivery on (delivered, failed with a next time, or dead),
/// in one transaction with the job of the next attempt (for `Retry`): a failed attempt is
/// never left without its retry, even if the process dies right after. A delivered digest
/// marks the e-mails it carried delivered in the same transaction, and a delivered webhook
/// ends its endpoint's failure streak there too (one write per attempt, not two).
pub async fn record_attempt(db: &Db, id: i64, record: &AttemptRecord) -> StoreResult<()> {
    let status = match record.result {
        AttemptResult::Delivered => DeliveryStatus::Delivered,
        AttemptResult::Retry => DeliveryStatus::Failed,
        AttemptResult::Failed => DeliveryStatus::Dead,
    };
    let now = Timestamp::now().millis();
    let delivered_at = (status == DeliveryStatus::Delivered).then_some(record.at.millis());
    let (status, next_attempt_at) = (
        status.as_str(),
        record.next_attempt_at.map(Timestamp::millis),
    );
    let (error, attempt_at, outcome) = (
        record.error.clone(),
        record.at.millis(),
        record.result.as_str(),
    );
    let (status_code, latency_ms) = (record.status_code, record.latency_ms);
    let ends_streak_of = record.ends_streak_of;
    // The job of the next attempt, for a retry.
    let retry = match (record.result, record.next_attempt_at) {
        (AttemptResult::Retry, Some(next)) => Some(next),
        _ => None,
    };
    let next_job = move |attempts: i64| {
        retry.map(|next| attempt_job(id, u32::try_from(attempts + 1).unwrap_or(u32::MAX), next))
    };
    let at = Timestamp::from_millis(now);
    grouped_write!(db,
        sqlite: |conn| {
            let attempts: i64 = direct::query_optional(
                conn,
                ATTEMPTED,
                &[&id, &status, &next_attempt_at, &error, &now, &delivered_at],
                |r| r.get("attempts"),
            )?
            .ok_or(StoreError::NotFound)?;
            direct::execute(
                conn,
                INSERT_ATTEMPT,
                &[&id, &attempts, &attempt_at, &outcome, &status_code, &latency_ms, &error],
            )?;
            if let Some(delivered) = delivered_at {
                // A digest delivered: so are the e-mails it carried.
                direct::execute(conn, digest::MARK_CARRIED_DELIVERED, &[&id, &delivered])?;
            }
            if let Some(endpoint) = ends_streak_of {
                direct::execute(conn, webhooks::RECORD_SUCCESS, &[&endpoint])?;
            }
            if let Some(job) = next_job(attempts) {
                enqueue_direct(conn, &job, at)?;
            }
            Ok(())
        },
        postgres: |tx| {
            let attempts: i64 = sqlx::query_scalar(ATTEMPTED)
                .bind(id)
                .bind(status)
                .bind(next_attempt_at)
                .bind(&error)
                .bind(now)
                .bind(delivered_at)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
            sqlx::query(INSERT_ATTEMPT)
                .bind(id)
                .bind(attempts)
                .bind(attempt_at)
                .bind(outcome)
                .bind(status_code)
                .bind(latency_ms)
                .bind(&error)
                .execute(&mut *tx)
                .await?;
            if let Some(delivered) = delivered_at {
                // A digest delivered: so are the e-mails it carried.
                sqlx::query(digest::MARK_CARRIED_DELIVERED)
                    .bind(id)
                    .bind(delivered)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(endpoint) = ends_streak_of {
                sqlx::query(webhooks::RECORD_SUCCESS)
                    .bind(endpoint)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(job) = next_job(attempts) {
                enqueue_in(&mut *tx, &job, at).await?;
            }
            Ok(())
        },
    )
}

/// An attempt's outcome on its delivery; returns the attempts so far.
const ATTEMPTED: &str = "UPDATE notification_deliveries SET status = $2, attempts = attempts + 1, \
     next_attempt_at = $3, last_error = $4, updated_at = $5, \
     delivered_at = COALESCE($6, delivered_at) WHERE id = $1 RETURNING attempts";
const INSERT_ATTEMPT: &str = "INSERT INTO notification_attempts (delivery_id, attempt, at, outcome, status_code, \
     latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Gives a delivery up without an attempt (its endpoint was disabled or deleted).
pub async fn mark_dead(db: &Db, id: i64, reason: &str) -> StoreResult<()> {
    let now = Timestamp::now().millis();
    const DEAD: &str = "UPDATE notification_deliveries SET status = 'dead', \
         next_attempt_at = NULL, last_error = $2, updated_at = $3 WHERE id = $1";
    let reason = reason.to_owned();
    grouped_write!(db,
        sqlite: |conn| direct::execute(conn, DEAD, &[&id, &reason, &now]).map(|_| ()),
        postgres: |tx| {
            sqlx::query(DEAD)
                .bind(id)
                .bind(&reason)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            Ok(())
        },
    )
}

/// Puts a dead (or delivered) delivery back in line with a fresh attempt budget and the job
/// of its first new attempt, in one transaction. The message id stays the same, so receivers
/// can still tell a replay from a new message. Refused (`Stale`) while the delivery is pending
/// or failed: its next attempt is already queued.
pub async fn replay(db: &Db, id: i64) -> StoreResult<Delivery> {
    let at = Timestamp::now();
    let now = at.millis();
    const REPLAY: &str = "UPDATE notification_deliveries SET status = 'pending', attempts = 0, \
         next_attempt_at = $2, last_error = NULL, updated_at = $2, digest_id = NULL \
         WHERE id = $1 AND status IN ('dead', 'delivered') \
         AND channel IN ('email', 'webhook') RETURNING id";
    let replayed: Option<i64> = grouped_write!(db,
        sqlite: |conn| {
            let replayed: Option<i64> = direct::query_optional(conn, REPLAY, &[&id, &now], |r| r.get("id"))?;
            if replayed.is_some() {
                enqueue_direct(conn, &attempt_job(id, 1, at), at)?;
            }
            Ok(replayed)
        },
        postgres: |tx| {
            let replayed: Option<i64> = sqlx::query_scalar(REPLAY)
                .bind(id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            if replayed.is_some() {
                enqueue_in(&mut *tx, &attempt_job(id, 1, at), at).await?;
            }
            Ok(replayed)
        },
    )?;
    let delivery = find(db, id).await?;
    match replayed {
        Some(_) => Ok(delivery),
        None => Err(StoreError::Stale),
    }
}
