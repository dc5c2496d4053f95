//! The event log as a feed for real-time delivery: events after a cursor together with the
//! facts that decide who may see them (the incident's department, reporter and public flag,
//! read in the same query so a fan-out never asks the database per connection), the head of
//! the log, and the wake-ups that say "read again". The log is `incident_events` and
//! `exam_events` (proctoring), whose ids share one sequence: both are read here as one feed.

use std::time::Duration;

use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, EventId, UserId};
use vigia_domain::incidents::IncidentFacts;

use super::events::{EventRow, StoredEvent};
use crate::exam_events::{self, ExamEvent};
use crate::{Backend, Db, StoreResult, direct, direct_read};

/// The PostgreSQL channel migration 0005 notifies on every event insert (payload: the id).
pub const CHANNEL: &str = "vigia_events";

/// One entry of the log: an incident event, or an exam event (proctoring).
#[derive(Debug, Clone)]
pub enum FeedEntry {
    Incident(FeedItem),
    Exam(ExamEvent),
}

impl FeedEntry {
    pub fn id(&self) -> EventId {
        match self {
            FeedEntry::Incident(item) => item.event.id,
            FeedEntry::Exam(event) => event.id,
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            FeedEntry::Incident(item) => item.event.at,
            FeedEntry::Exam(event) => event.at,
        }
    }
}

/// One event with the visibility facts of its incident, as they are when the event is read;
/// for an alert event, the department of the alert's subject.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub event: StoredEvent,
    pub facts: IncidentFacts,
    /// Set for alert events: the alert's department (who may see it is decided by
    /// `vigia_domain::detections::AlertScope`).
    pub alert_department: Option<DepartmentId>,
}

#[derive(FromRow)]
struct FeedRow {
    #[sqlx(flatten)]
    event: EventRow,
    department_id: Option<i64>,
    reporter_id: Option<i64>,
    visibility: Option<String>,
    alert_department_id: Option<i64>,
}

impl FeedRow {
    /// A row of [`FEED`] read on a direct SQLite connection: the event's columns first (see
    /// [`EventRow::from_direct`]), the facts by name.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            event: EventRow::from_direct(row)?,
            department_id: row.get("department_id")?,
            reporter_id: row.get("reporter_id")?,
            visibility: row.get("visibility")?,
            alert_department_id: row.get("alert_department_id")?,
        })
    }
}

impl From<FeedRow> for FeedItem {
    fn from(row: FeedRow) -> Self {
        FeedItem {
            facts: IncidentFacts {
                department: row.department_id.map(DepartmentId),
                reporter: row.reporter_id.map(UserId),
                public: row.visibility.as_deref() == Some("public"),
            },
            alert_department: row.alert_department_id.map(DepartmentId),
            event: StoredEvent::from(row.event),
        }
    }
}

/// Entries with an id above `after`, oldest first, at most `limit`: incident events with their
/// incidents' facts (or their alerts' departments) merged with exam events.
pub async fn read_after(db: &Db, after: EventId, limit: usize) -> StoreResult<Vec<FeedEntry>> {
    let incidents = read_incident_events_after(db, after, limit).await?;
    let exams = exam_events::read_after(db, after, limit).await?;
    if exams.is_empty() {
        return Ok(incidents.into_iter().map(FeedEntry::Incident).collect());
    }
    let mut merged: Vec<FeedEntry> = incidents
        .into_iter()
        .map(FeedEntry::Incident)
        .chain(exams.into_iter().map(FeedEntry::Exam))
        .collect();
    merged.sort_by_key(FeedEntry::id);
    merged.truncate(limit);
    Ok(merged)
}

/// Incident events after `$1` with their incidents' facts, oldest first.
const FEED: &str = "SELECT e.id, e.incident_id, e.kind, e.actor, e.at, e.internal, e.data, e.alert_id, \
     i.department_id, i.reporter_id, i.visibility, a.department_id AS alert_department_id \
     FROM incident_events e LEFT JOIN incidents i ON i.id = e.incident_id \
     LEFT JOIN alerts a ON a.id = e.alert_id \
     WHERE e.id > $1 ORDER BY e.id";

async fn read_incident_events_after(
    db: &Db,
    after: EventId,
    limit: usize,
) -> StoreResult<Vec<FeedItem>> {
    let sql = format!("{FEED}{}", crate::sql::limit(limit));
    let after = after.0;
    let rows: Vec<FeedRow> = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[&after], FeedRow::from_direct),
        postgres: |pool| Ok(sqlx::query_as(crate::composed(&sql))
            .bind(after)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(rows.into_iter().map(FeedItem::from).collect())
}

/// The id of the newest event (0 for an empty log).
pub async fn head(db: &Db) -> StoreResult<EventId> {
    const HEAD: &str = "SELECT COALESCE(MAX(id), 0) AS head FROM incident_events";
    let id: Option<i64> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, HEAD, &[], |r| r.get("head")),
        postgres: |pool| Ok(Some(sqlx::query_scalar(HEAD).fetch_one(pool).await?)),
    )?;
    let id = id.unwrap_or(0);
    Ok(EventId(id.max(exam_events::head(db).await?)))
}

/// When the first event after `after` happened, if there is one: a client resuming from
/// `after` missed it, and it tells whether the gap still lies inside the replay window.
pub async fn first_after(db: &Db, after: EventId) -> StoreResult<Option<(EventId, Timestamp)>> {
    const FIRST: &str = "SELECT id, at FROM incident_events WHERE id > $1 ORDER BY id LIMIT 1";
    let cursor = after.0;
    let row: Option<(i64, i64)> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, FIRST, &[&cursor], |r| Ok((r.get("id")?, r.get("at")?))),
        postgres: |pool| Ok(sqlx::query_as(FIRST)
            .bind(cursor)
            .fetch_optional(pool)
            .await?),
    )?;
    let first = match (row, exam_events::first_after(db, after).await?) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    };
    Ok(first.map(|(id, at)| (EventId(id), Timestamp::from_millis(at))))
}

/// On PostgreSQL, listens on [`CHANNEL`] and wakes [`Db::events_committed`] for every
/// notification, reconnecting after failures, until the task is dropped. Returns at once on
/// SQLite, where the group commit's commit hook does the waking.
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
