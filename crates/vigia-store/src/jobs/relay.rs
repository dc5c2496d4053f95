//! The event relay: turns new rows of the incident outbox (`incident_events`) into
//! `event.dispatch` jobs.
//!
//! An incident change writes its event in its own transaction; that event row *is* the enqueue.
//! The relay reads events after a durable cursor and, in one transaction, enqueues one job per
//! event and advances the cursor — so every committed event becomes exactly one job (the
//! `event:{id}` dedup key makes even a replay harmless), and no incident store code needs to
//! know about jobs. Event ids become visible in id order on both backends (see migration 0004),
//! so reading `id > cursor` skips nothing.

use serde_json::json;
use vigia_domain::Timestamp;
use vigia_domain::incidents::IncidentEventKind;

use super::{NewJob, enqueue_direct, enqueue_in};
use crate::{Db, StoreResult, direct, on_writer};

/// The job kind the relay enqueues, one per incident event.
pub const EVENT_DISPATCH: &str = "event.dispatch";

const CURSOR: &str = "event_relay";

/// The events after a position, oldest first; [`crate::sql::limit`] follows.
const READ_EVENTS: &str =
    "SELECT id, incident_id, kind FROM incident_events WHERE id > $1 ORDER BY id";
const SAVE_CURSOR: &str = "INSERT INTO job_cursors (name, position, updated_at) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at";

/// The job one event becomes.
fn dispatch_job(id: i64, incident_id: i64, kind: &str) -> NewJob {
    let message_type = IncidentEventKind::parse("kind", kind)
        .map(|k| k.message_type().to_owned())
        .unwrap_or_else(|_| format!("incident.{kind}"));
    NewJob::new(
        EVENT_DISPATCH,
        json!({ "event_id": id, "incident_id": incident_id, "type": message_type }),
    )
    .dedup(format!("event:{id}"))
}

/// Relays up to `limit` new events; returns how many.
#[tracing::instrument(skip_all)]
pub async fn relay_events(db: &Db, limit: usize, now: Timestamp) -> StoreResult<usize> {
    let read_events = format!("{READ_EVENTS}{}", crate::sql::limit(limit));
    // In the group commit on SQLite: the events it relays were committed by earlier batches,
    // or are in this one and commit (or roll back) with it.
    crate::grouped_write!(db,
        sqlite: |conn| {
            let read_cursor = "SELECT position FROM job_cursors WHERE name = $1";
            let position = direct::query_optional(conn, read_cursor, &[&CURSOR], |r| r.get(0))?;
            let events: Vec<(i64, i64, String)> = direct::query(
                conn,
                &read_events,
                &[&position.unwrap_or(0i64)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let Some(&(last, _, _)) = events.last() else {
                return Ok(0);
            };
            for (id, incident_id, kind) in &events {
                enqueue_direct(conn, &dispatch_job(*id, *incident_id, kind), now)?;
            }
            direct::execute(conn, SAVE_CURSOR, &[&CURSOR, &last, &now.millis()])?;
            Ok(events.len())
        },
        postgres: |conn| {
            let position: Option<i64> =
                sqlx::query_scalar("SELECT position FROM job_cursors WHERE name = $1 FOR UPDATE")
                    .bind(CURSOR)
                    .fetch_optional(&mut *conn)
                    .await?;
            let events: Vec<(i64, i64, String)> = sqlx::query_as(crate::composed(&read_events))
                .bind(position.unwrap_or(0))
                .fetch_all(&mut *conn)
                .await?;
            let Some(&(last, _, _)) = events.last() else {
                return Ok(0);
            };
            for (id, incident_id, kind) in &events {
                enqueue_in(&mut *conn, &dispatch_job(*id, *incident_id, kind), now).await?;
            }
            sqlx::query(SAVE_CURSOR)
                .bind(CURSOR)
                .bind(last)
                .bind(now.millis())
                .execute(&mut *conn)
                .await?;
            Ok(events.len())
        },
    )
}

/// The id of the last relayed event.
pub async fn relay_position(db: &Db) -> StoreResult<i64> {
    let sql = "SELECT position FROM job_cursors WHERE name = $1";
    let position: Option<i64> = on_writer!(db, |pool| sqlx::query_scalar(sql)
        .bind(CURSOR)
        .fetch_optional(pool)
        .await?);
    Ok(position.unwrap_or(0))
}
