//! Proctoring events on the event log (`exam_events`, migration 0036): one per analysed capture
//! (`media.analyzed`, with its status and reason) and one per review (`proctoring.reviewed`),
//! written in the transaction that records the change. Their ids come from the sequence of
//! `incident_events`, so both tables read as one log with one cursor ([`crate::incidents::feed`]
//! merges them); who may see one is decided by its exam's department.

use serde_json::Value;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, EventId};

use crate::incidents::events::StoredEvent;
use crate::{Backend, Db, StoreResult, direct, direct_read};

/// The message type of an analysed capture.
pub const ANALYZED: &str = "media.analyzed";
/// The message type of a proctor's review of an alert.
pub const REVIEWED: &str = "proctoring.reviewed";
/// The webhook message type of an analysed capture whose status is `ALERT` or `ALERT_FINAL`:
/// not an event of its own but the alerting subset of [`ANALYZED`], for endpoints that want
/// alerts only (see `vigia_notify::plan_exam`).
pub const ALERT: &str = "proctoring.alert";
/// The message types webhook endpoints may subscribe to for proctoring.
pub const WEBHOOK_TYPES: [&str; 3] = [ANALYZED, ALERT, REVIEWED];

/// The next id of the shared event sequence, as SQL for `db`'s backend. On SQLite the
/// `AUTOINCREMENT` sequence of `incident_events` is bumped by hand (its row exists from
/// migration 0036 on); SQLite has one writer, so the bump and the insert that uses it commit
/// together before any other event is written.
pub(crate) fn next_id_sql(db: &Db) -> &'static str {
    match db.backend() {
        Backend::Sqlite { .. } => {
            "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'incident_events' RETURNING seq"
        }
        // Under the lock incident events take (migration 0041), so ids become visible in
        // commit order and a reader of `id > cursor` never skips one.
        Backend::Postgres { .. } => "SELECT next_event_id()",
    }
}

pub(crate) const INSERT: &str = "INSERT INTO exam_events (id, exam_id, capture_id, kind, actor, at, data) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Appends an exam event through `$tx` (a transaction of either backend): `$next` is
/// [`next_id_sql`], `$data` a `serde_json::Value`. Evaluates to nothing.
macro_rules! insert_exam_event {
    ($tx:expr, $next:expr, $exam:expr, $capture:expr, $kind:expr, $actor:expr, $at:expr, $data:expr) => {{
        let id: i64 = sqlx::query_scalar($next).fetch_one(&mut *$tx).await?;
        sqlx::query($crate::exam_events::INSERT)
            .bind(id)
            .bind($exam)
            .bind($capture)
            .bind($kind)
            .bind($actor)
            .bind($at)
            .bind($data.to_string())
            .execute(&mut *$tx)
            .await?;
    }};
}
pub(crate) use insert_exam_event;

/// [`insert_exam_event!`] on a SQLite connection inside a grouped write.
#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_exam_event_direct(
    conn: &crate::direct::Conn,
    exam: i64,
    capture: Option<i64>,
    kind: &str,
    actor: &str,
    at: i64,
    data: &Value,
) -> StoreResult<()> {
    const NEXT: &str =
        "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'incident_events' RETURNING seq";
    let id: i64 = crate::direct::query_optional(conn, NEXT, &[], |r| r.get(0))?
        .ok_or_else(|| crate::StoreError::Other(anyhow::anyhow!("no incident_events sequence")))?;
    crate::direct::execute(
        conn,
        INSERT,
        &[&id, &exam, &capture, &kind, &actor, &at, &data.to_string()],
    )?;
    Ok(())
}

/// One exam event with the department that decides who may see it.
#[derive(Debug, Clone)]
pub struct ExamEvent {
    pub id: EventId,
    pub exam_id: i64,
    /// The capture it is about.
    pub capture_id: Option<i64>,
    /// The exam's department, as it is when the event is read.
    pub department: Option<DepartmentId>,
    /// The message type, e.g. `media.analyzed`.
    pub message_type: String,
    pub actor: String,
    pub at: Timestamp,
    pub data: Value,
}

#[derive(FromRow)]
struct Row {
    id: i64,
    exam_id: i64,
    capture_id: Option<i64>,
    kind: String,
    actor: String,
    at: i64,
    data: String,
    department_id: Option<i64>,
}

impl Row {
    /// A row of [`EXAM_EVENT`] read on a direct SQLite connection, each column by its name.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            exam_id: row.get("exam_id")?,
            capture_id: row.get("capture_id")?,
            kind: row.get("kind")?,
            actor: row.get("actor")?,
            at: row.get("at")?,
            data: row.get("data")?,
            department_id: row.get("department_id")?,
        })
    }
}

/// Exam events with their exams' departments; continue with ` WHERE ...` on `e.` columns.
const EXAM_EVENT: &str = "SELECT e.id, e.exam_id, e.capture_id, e.kind, e.actor, e.at, e.data, x.department_id \
     FROM exam_events e JOIN exams x ON x.id = e.exam_id";

impl From<Row> for ExamEvent {
    fn from(row: Row) -> Self {
        ExamEvent {
            id: EventId(row.id),
            exam_id: row.exam_id,
            capture_id: row.capture_id,
            department: row.department_id.map(DepartmentId),
            message_type: row.kind,
            actor: row.actor,
            at: Timestamp::from_millis(row.at),
            data: serde_json::from_str(&row.data).unwrap_or(Value::Null),
        }
    }
}

/// Exam events with an id above `after`, oldest first, at most `limit`.
pub async fn read_after(db: &Db, after: EventId, limit: usize) -> StoreResult<Vec<ExamEvent>> {
    let sql = format!(
        "{EXAM_EVENT} WHERE e.id > $1 ORDER BY e.id{}",
        crate::sql::limit(limit)
    );
    let after = after.0;
    let rows: Vec<Row> = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[&after], Row::from_direct),
        postgres: |pool| Ok(sqlx::query_as(crate::composed(&sql))
            .bind(after)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(rows.into_iter().map(ExamEvent::from).collect())
}

/// The events of one exam, newest first, at most `limit`.
pub async fn list_for_exam(db: &Db, exam_id: i64, limit: usize) -> StoreResult<Vec<ExamEvent>> {
    let sql = format!(
        "{EXAM_EVENT} WHERE e.exam_id = $1 ORDER BY e.id DESC{}",
        crate::sql::limit(limit)
    );
    let rows: Vec<Row> = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[&exam_id], Row::from_direct),
        postgres: |pool| Ok(sqlx::query_as(crate::composed(&sql))
            .bind(exam_id)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(rows.into_iter().map(ExamEvent::from).collect())
}

/// The newest exam event's id (0 when there is none).
pub(crate) async fn head(db: &Db) -> StoreResult<i64> {
    const HEAD: &str = "SELECT COALESCE(MAX(id), 0) AS head FROM exam_events";
    let head: Option<i64> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, HEAD, &[], |r| r.get("head")),
        postgres: |pool| Ok(Some(sqlx::query_scalar(HEAD).fetch_one(pool).await?)),
    )?;
    Ok(head.unwrap_or(0))
}

/// The first exam event after `after`, with when it happened.
pub(crate) async fn first_after(db: &Db, after: EventId) -> StoreResult<Option<(i64, i64)>> {
    const FIRST: &str = "SELECT id, at FROM exam_events WHERE id > $1 ORDER BY id LIMIT 1";
    let after = after.0;
    direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, FIRST, &[&after], |r| Ok((r.get("id")?, r.get("at")?))),
        postgres: |pool| Ok(sqlx::query_as(FIRST)
            .bind(after)
            .fetch_optional(pool)
            .await?),
    )
}

/// One event of the log as its consumers outside the real-time hub read it (the relay's
/// dispatch): an incident or alert event, or an exam event.
#[derive(Debug, Clone)]
pub enum LogEvent {
    Incident(StoredEvent),
    Exam(ExamEvent),
}

impl LogEvent {
    pub fn id(&self) -> EventId {
        match self {
            LogEvent::Incident(event) => event.id,
            LogEvent::Exam(event) => event.id,
        }
    }
}

/// Every event of the log after `after` (both tables), oldest first, at most `limit`: the
/// first `limit` of each table hold the first `limit` of both.
pub async fn log_after(db: &Db, after: EventId, limit: usize) -> StoreResult<Vec<LogEvent>> {
    let incidents = crate::incidents::events::list_after(db, after, limit).await?;
    let exams = read_after(db, after, limit).await?;
    if exams.is_empty() {
        return Ok(incidents.into_iter().map(LogEvent::Incident).collect());
    }
    let mut merged: Vec<LogEvent> = incidents
        .into_iter()
        .map(LogEvent::Incident)
        .chain(exams.into_iter().map(LogEvent::Exam))
        .collect();
    merged.sort_by_key(LogEvent::id);
    merged.truncate(limit);
    Ok(merged)
}
