//! The event relay: turns new rows of the event log — the incident outbox (`incident_events`,
//! incident and alert events) and the proctoring events (`exam_events`) — into `event.dispatch`
//! jobs, one per batch of events. Both tables draw their ids from one sequence, so one cursor
//! covers both and a batch's `(after, through]` is a range of either.
//!
//! An incident change writes its event in its own transaction; that event row *is* the enqueue.
//! The relay reads events after a durable cursor and, in one transaction, enqueues one
//! [`Task::EventDispatch`] for the ids it read (`(after, through]`) and advances the cursor — so
//! every committed event is covered by exactly one job (the `events:{through}` dedup key makes
//! even a replay harmless), and no incident store code needs to know about jobs. Event ids become visible in id order on both backends (see migration 0004),
//! so reading `id > cursor` skips nothing.

use vigia_domain::Timestamp;

use super::{NewJob, Task, enqueue_direct, enqueue_in};
use crate::{Db, StoreResult, direct, direct_read};

const CURSOR: &str = "event_relay";

/// The ids of up to `limit` events of both tables after a position (`$1`), oldest first: the
/// first `limit` of each table hold the first `limit` of both.
fn read_events(limit: usize) -> String {
    let limit = crate::sql::limit(limit);
    format!(
        "SELECT id FROM (\
         SELECT id FROM (SELECT id FROM incident_events WHERE id > $1 ORDER BY id{limit}) AS i \
         UNION ALL \
         SELECT id FROM (SELECT id FROM exam_events WHERE id > $1 ORDER BY id{limit}) AS x\
         ) AS log ORDER BY id{limit}"
    )
}
const SAVE_CURSOR: &str = "INSERT INTO job_cursors (name, position, updated_at) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at";

/// The job a batch of events becomes.
fn dispatch_job(after: i64, through: i64) -> NewJob {
    NewJob::new(&Task::EventDispatch { after, through }).dedup(format!("events:{through}"))
}

/// Relays up to `limit` new events as one job; returns how many events.
#[tracing::instrument(skip_all)]
pub async fn relay_events(db: &Db, limit: usize, now: Timestamp) -> StoreResult<usize> {
    let read_events = read_events(limit);
    // In the group commit on SQLite: the events it relays were committed by earlier batches,
    // or are in this one and commit (or roll back) with it.
    crate::grouped_write!(db,
        sqlite: |conn| {
            let read_cursor = "SELECT position FROM job_cursors WHERE name = $1";
            let position =
                direct::query_optional(conn, read_cursor, &[&CURSOR], |r| r.get("position"))?;
            let after = position.unwrap_or(0i64);
            let events: Vec<i64> =
                direct::query(conn, &read_events, &[&after], |r| r.get("id"))?;
            let Some(&last) = events.last() else {
                return Ok(0);
            };
            enqueue_direct(conn, &dispatch_job(after, last), now)?;
            direct::execute(conn, SAVE_CURSOR, &[&CURSOR, &last, &now.millis()])?;
            Ok(events.len())
        },
        postgres: |conn| {
            let position: Option<i64> =
                sqlx::query_scalar("SELECT position FROM job_cursors WHERE name = $1 FOR UPDATE")
                    .bind(CURSOR)
                    .fetch_optional(&mut *conn)
                    .await?;
            let after = position.unwrap_or(0);
            let events: Vec<i64> = sqlx::query_scalar(crate::composed(&read_events))
                .bind(after)
                .fetch_all(&mut *conn)
                .await?;
            let Some(&last) = events.last() else {
                return Ok(0);
            };
            enqueue_in(&mut *conn, &dispatch_job(after, last), now).await?;
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
    const POSITION: &str = "SELECT position FROM job_cursors WHERE name = $1";
    // The relay's writes are answered once committed: a reader sees the last position.
    let position: Option<i64> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, POSITION, &[&CURSOR], |r| r.get("position")),
        postgres: |pool| Ok(sqlx::query_scalar(POSITION)
            .bind(CURSOR)
            .fetch_optional(pool)
            .await?),
    )?;
    Ok(position.unwrap_or(0))
}
