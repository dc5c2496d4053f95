//! The incident event log: append-only, written in the same transaction as the change it
//! records. Its monotonic id is the cursor real-time clients and batch jobs resume from.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::detections::AlertEventKind;
use vigia_domain::ids::{AlertId, EventId, IncidentId};
use vigia_domain::incidents::{EventData, IncidentCode};

use crate::page::{Cursor, Page};
use crate::{Db, StoreResult};

/// Appends an event through `$executor` (a transaction of either backend) and evaluates to
/// its id.
macro_rules! insert_event {
    ($executor:expr, $incident:expr, $actor:expr, $at:expr, $data:expr) => {{
        let data: &vigia_domain::incidents::EventData = $data;
        let json = serde_json::to_string(data).map_err(|e| $crate::StoreError::Other(e.into()))?;
        let id: i64 = sqlx::query_scalar($crate::incidents::events::INSERT_EVENT)
            .bind($incident)
            .bind(data.kind().as_str())
            .bind($actor)
            .bind($at)
            .bind(data.is_internal())
            .bind(json)
            .fetch_one($executor)
            .await?;
        id
    }};
}
pub(crate) use insert_event;

pub(crate) const INSERT_EVENT: &str = "INSERT INTO incident_events (incident_id, kind, actor, at, internal, data) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";

/// [`insert_event!`] on the SQLite group commit's connection.
pub(crate) fn insert_event_direct(
    conn: &crate::direct::Conn,
    incident: i64,
    actor: &str,
    at: i64,
    data: &vigia_domain::incidents::EventData,
) -> crate::StoreResult<i64> {
    let json = serde_json::to_string(data).map_err(|e| crate::StoreError::Other(e.into()))?;
    let id = crate::direct::query_optional(
        conn,
        INSERT_EVENT,
        &[
            &incident,
            &data.kind().as_str(),
            &actor,
            &at,
            &data.is_internal(),
            &json,
        ],
        |r| r.get(0),
    )?;
    id.ok_or_else(|| crate::StoreError::Other(anyhow::anyhow!("inserting an event returned no id")))
}

/// One stored event: about an incident (`incident_id` and `code`) or about an alert
/// (`alert_id`; see `detections::alerts`), never both.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub id: EventId,
    pub incident_id: Option<IncidentId>,
    pub code: Option<IncidentCode>,
    pub alert_id: Option<AlertId>,
    /// E.g. `status_changed`.
    pub kind: String,
    /// The message type on the real-time channel, e.g. `incident.status_changed` or
    /// `alert.raised`.
    #[serde(rename = "type")]
    pub message_type: String,
    pub actor: String,
    pub at: Timestamp,
    pub internal: bool,
    pub data: serde_json::Value,
}

#[derive(FromRow)]
pub(crate) struct EventRow {
    id: i64,
    incident_id: Option<i64>,
    kind: String,
    actor: String,
    at: i64,
    internal: bool,
    data: String,
    alert_id: Option<i64>,
}

/// The columns an [`EventRow`] is read from, in its order (prefix `e.` for joins).
pub(crate) const EVENT_COLUMNS: &str = "id, incident_id, kind, actor, at, internal, data, alert_id";

impl EventRow {
    /// A row of [`EVENT_COLUMNS`] (or of a SELECT that starts with them) read on a direct
    /// connection, each column found by its name at compile time.
    pub(crate) fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        use crate::direct::column_index as at;
        const C: &str = EVENT_COLUMNS;
        Ok(Self {
            id: row.get(const { at(C, "id") })?,
            incident_id: row.get(const { at(C, "incident_id") })?,
            kind: row.get(const { at(C, "kind") })?,
            actor: row.get(const { at(C, "actor") })?,
            at: row.get(const { at(C, "at") })?,
            internal: row.get(const { at(C, "internal") })?,
            data: row.get(const { at(C, "data") })?,
            alert_id: row.get(const { at(C, "alert_id") })?,
        })
    }
}

impl From<EventRow> for StoredEvent {
    fn from(row: EventRow) -> Self {
        let data: serde_json::Value =
            serde_json::from_str(&row.data).unwrap_or(serde_json::Value::Null);
        let message_type = match row.alert_id {
            Some(_) => AlertEventKind::parse(&row.kind)
                .map(|k| k.message_type().to_owned())
                .unwrap_or_else(|| format!("alert.{}", row.kind)),
            None => serde_json::from_value::<EventData>(data.clone())
                .map(|d| d.kind().message_type().to_owned())
                .unwrap_or_else(|_| format!("incident.{}", row.kind)),
        };
        StoredEvent {
            id: EventId(row.id),
            incident_id: row.incident_id.map(IncidentId),
            code: row
                .incident_id
                .map(|id| IncidentCode::from_sequence(id.max(0) as u64)),
            alert_id: row.alert_id.map(AlertId),
            kind: row.kind,
            message_type,
            actor: row.actor,
            at: Timestamp::from_millis(row.at),
            internal: row.internal,
            data,
        }
    }
}

/// The history of one incident, oldest first. Internal events only when `include_internal`.
pub async fn list_for_incident(
    db: &Db,
    incident: IncidentId,
    include_internal: bool,
    after: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<StoredEvent>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM incident_events \
         WHERE incident_id = $1 AND id > $2 AND ($3 OR NOT internal) ORDER BY id"
    );
    let sql = format!("{sql}{}", crate::sql::limit(limit + 1));
    let (incident, after) = (incident.0, after.map_or(0, |c| c.0));
    let rows: Vec<EventRow> = crate::direct_read!(db,
        sqlite: |conn| crate::direct::query(
            conn,
            &sql,
            &[&incident, &after, &include_internal],
            EventRow::from_direct,
        ),
        postgres: |pool| Ok(sqlx::query_as(crate::composed(&sql))
            .bind(incident)
            .bind(after)
            .bind(include_internal)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(Page::from_rows(
        rows.into_iter().map(StoredEvent::from).collect(),
        limit,
        |e| e.id.0,
    ))
}

/// Every event after `after`, oldest first, for consumers of the outbox.
pub async fn list_after(db: &Db, after: EventId, limit: usize) -> StoreResult<Vec<StoredEvent>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM incident_events WHERE id > $1 ORDER BY id");
    let sql = format!("{sql}{}", crate::sql::limit(limit));
    let after = after.0;
    // Hot: every `event.dispatch` job reads its event here.
    let rows: Vec<EventRow> = crate::direct_read!(db,
        sqlite: |conn| crate::direct::query(conn, &sql, &[&after], EventRow::from_direct),
        postgres: |pool| Ok(sqlx::query_as(crate::composed(&sql)).bind(after).fetch_all(pool).await?),
    )?;
    Ok(rows.into_iter().map(StoredEvent::from).collect())
}
