//! The event log as a feed for real-time delivery: events after a cursor together with the
//! facts that decide who may see them (the incident's department, reporter and public flag,
//! read in the same query so a fan-out never asks the database per connection), the head of
//! the log, and the wake-ups that say "read again".

use std::time::Duration;

use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, EventId, UserId};
use vigia_domain::incidents::IncidentFacts;

use super::events::{EventRow, StoredEvent};
use crate::{Backend, Db, StoreResult, on_reader};

/// The PostgreSQL channel migration 0005 notifies on every event insert (payload: the id).
pub const CHANNEL: &str = "vigia_events";

/// One event with the visibility facts of its incident, as they are when the event is read.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub event: StoredEvent,
    pub facts: IncidentFacts,
}

#[derive(FromRow)]
struct FeedRow {
    #[sqlx(flatten)]
    event: EventRow,
    department_id: Option<i64>,
    reporter_id: Option<i64>,
    visibility: String,
}

impl From<FeedRow> for FeedItem {
    fn from(row: FeedRow) -> Self {
        FeedItem {
            facts: IncidentFacts {
                department: row.department_id.map(DepartmentId),
                reporter: row.reporter_id.map(UserId),
                public: row.visibility == "public",
            },
            event: StoredEvent::from(row.event),
        }
    }
}

/// Events with an id above `after`, oldest first, at most `limit`, with their incidents' facts.
pub async fn read_after(db: &Db, after: EventId, limit: usize) -> StoreResult<Vec<FeedItem>> {
    let sql = "SELECT e.id, e.incident_id, e.kind, e.actor, e.at, e.internal, e.data, \
               i.department_id, i.reporter_id, i.visibility \
               FROM incident_events e JOIN incidents i ON i.id = e.incident_id \
               WHERE e.id > $1 ORDER BY e.id";
    let sql = format!("{sql}{}", crate::sql::limit(limit));
    let rows: Vec<FeedRow> = on_reader!(db, |pool| sqlx::query_as(crate::composed(&sql))
        .bind(after.0)
        .fetch_all(pool)
        .await?);
    Ok(rows.into_iter().map(FeedItem::from).collect())
}

/// The id of the newest event (0 for an empty log).
pub async fn head(db: &Db) -> StoreResult<EventId> {
    let sql = "SELECT COALESCE(MAX(id), 0) FROM incident_events";
    let id: i64 = on_reader!(db, |pool| sqlx::query_scalar(sql).fetch_one(pool).await?);
    Ok(EventId(id))
}

/// When the first event after `after` happened, if there is one: a client resuming from
/// `after` missed it, and it tells whether the gap still lies inside the replay window.
pub async fn first_after(db: &Db, after: EventId) -> StoreResult<Option<(EventId, Timestamp)>> {
    let sql = "SELECT id, at FROM incident_events WHERE id > $1 ORDER BY id LIMIT 1";
    let row: Option<(i64, i64)> = on_reader!(db, |pool| sqlx::query_as(sql)
        .bind(after.0)
        .fetch_optional(pool)
        .await?);
    Ok(row.map(|(id, at)| (EventId(id), Timestamp::from_millis(at))))
}

/// On PostgreSQL, listens on [`CHANNEL`] and wakes [`Db::events_committed`] for every
/// notification, reconnecting after failures, until the task is dropped. Returns at once on
/// SQLite, where the writer connection's commit hook does the waking.
pub async fn listen(db: Db) {
    let Backend::Postgres { pool } = db.backend() else {
        return;
    };
    loop {
        let result: Result<(), sqlx::Error> = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
            listener.listen(CHANNEL).await?;
            // Anything committed while we were not listening is found by the next read.
            db.events_committed().notify_one();
            loop {
                listener.recv().await?;
                db.events_committed().notify_one();
            }
        }
        .await;
        if let Err(error) = result {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(%error, "event notifications lost; listening again in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
