//! Bulk loading of synthetic incidents for load tests and demos (`vigia seed incidents`):
//! multi-row INSERTs in one transaction per batch, each incident with its `created` event.

use vigia_domain::Timestamp;
use vigia_domain::catalog::Urgency;
use vigia_domain::ids::{CategoryId, DepartmentId, UserId, ZoneId};
use vigia_domain::incidents::{EventData, IncidentVisibility, SlaClockRecord, Source, Status};

use crate::{Db, StoreError, StoreResult, composed, direct, direct_read, grouped_write};

/// An incident made up for load tests, already consistent (timestamps in order, SLA columns as
/// the lifecycle would leave them). The caller generates it; [`load_synthetic`] stores it.
#[derive(Debug, Clone)]
pub struct SyntheticIncident {
    pub category_id: CategoryId,
    pub department_id: Option<DepartmentId>,
    pub assignee_id: Option<UserId>,
    pub title: String,
    pub description: String,
    pub zone_id: Option<ZoneId>,
    pub urgency: Urgency,
    pub status: Status,
    pub source: Source,
    pub visibility: IncidentVisibility,
    pub votes: i64,
    pub version: i64,
    pub sla: SlaClockRecord,
    pub acknowledge_due_at: Timestamp,
    /// `None` while on hold and once resolved, as transitions leave it.
    pub resolve_due_at: Option<Timestamp>,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Who synthetic incidents are reported by.
pub const SYNTHETIC_REPORTER: &str = "system";
const SYNTHETIC_COLUMNS: &str = "category_id, department_id, assignee_id, reporter_label, title, description, \
    zone_id, urgency, status, source, visibility, votes, version, sla_started_at, sla_acknowledge_secs, \
    sla_resolve_secs, sla_raise_urgency, sla_paused_since, sla_paused_total_ms, acknowledge_due_at, \
    resolve_due_at, acknowledged_at, resolved_at, closed_at, created_at, updated_at";
const SYNTHETIC_WIDTH: usize = 26;
/// Rows per INSERT statement: well under SQLite's 32,766 bound parameters.
const ROWS_PER_STATEMENT: usize = 1_000;

/// `INSERT INTO {table} ({columns}) VALUES (...), ...` for `rows` rows of `width` placeholders
/// (`$1` ...: each bound by its number on both backends).
fn multi_row_insert(table: &str, columns: &str, width: usize, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
    for row in 0..rows {
        let list: Vec<String> = (1..=width)
            .map(|c| format!("${}", row * width + c))
            .collect();
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(&list.join(", "));
        sql.push(')');
    }
    sql
}

/// What a stored synthetic incident's `created` event is made of.
type Created = (i64, i64, Option<i64>, String, String, String, i64);

const RETURNING: &str =
    " RETURNING id, category_id, department_id, urgency, source, visibility, created_at";
const EVENT_COLUMNS: &str = "incident_id, kind, actor, at, internal, data";

/// The values of one synthetic incident, in [`SYNTHETIC_COLUMNS`]' order.
fn values(i: &SyntheticIncident) -> [rusqlite::types::Value; SYNTHETIC_WIDTH] {
    use rusqlite::types::Value;
    let int = |v: Option<i64>| v.map_or(Value::Null, Value::Integer);
    let ms = |t: Option<Timestamp>| int(t.map(Timestamp::millis));
    let text = |v: &str| Value::Text(v.to_owned());
    [
        Value::Integer(i.category_id.0),
        int(i.department_id.map(|d| d.0)),
        int(i.assignee_id.map(|u| u.0)),
        text(SYNTHETIC_REPORTER),
        text(&i.title),
        text(&i.description),
        int(i.zone_id.map(|z| z.0)),
        text(i.urgency.as_str()),
        text(i.status.as_str()),
        text(i.source.as_str()),
        text(i.visibility.as_str()),
        Value::Integer(i.votes),
        Value::Integer(i.version),
        Value::Integer(i.sla.started_at.millis()),
        Value::Integer(i.sla.acknowledge_within_secs),
        Value::Integer(i.sla.resolve_within_secs),
        Value::Integer(i64::from(i.sla.raise_urgency_on_breach)),
        ms(i.sla.paused_since),
        Value::Integer(i.sla.paused_total_ms),
        Value::Integer(i.acknowledge_due_at.millis()),
        ms(i.resolve_due_at),
        ms(i.acknowledged_at),
        ms(i.resolved_at),
        ms(i.closed_at),
        Value::Integer(i.created_at.millis()),
        Value::Integer(i.updated_at.millis()),
    ]
}

/// The `created` event of a stored synthetic incident: its data and that as JSON.
fn created_event(
    (_, category, department, urgency, source, visibility, _): &Created,
) -> StoreResult<(EventData, String)> {
    let data = EventData::created(
        Urgency::parse("urgency", urgency).unwrap_or_default(),
        CategoryId(*category),
        department.map(DepartmentId),
        Source::parse("source", source).unwrap_or(Source::Api),
        IncidentVisibility::parse("visibility", visibility).unwrap_or_default(),
    );
    let json = serde_json::to_string(&data).map_err(|e| StoreError::Other(e.into()))?;
    Ok((data, json))
}

/// Stores `incidents` and their `created` events in one transaction, with multi-row INSERTs.
/// Returns how many were stored. For load tests and demos: no routing, assignment or audit.
#[tracing::instrument(skip_all, fields(count = incidents.len()))]
pub async fn load_synthetic(db: &Db, incidents: &[SyntheticIncident]) -> StoreResult<u64> {
    let incidents = incidents.to_vec();
    grouped_write!(db,
        sqlite: |conn| {
            use rusqlite::types::Value;
            let mut stored = 0u64;
            for chunk in incidents.chunks(ROWS_PER_STATEMENT) {
                let sql = multi_row_insert("incidents", SYNTHETIC_COLUMNS, SYNTHETIC_WIDTH, chunk.len())
                    + RETURNING;
                let values: Vec<Value> = chunk.iter().flat_map(values).collect();
                let args: Vec<&dyn rusqlite::ToSql> =
                    values.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
                let created: Vec<Created> = direct::query_sized(conn, &sql, &args, chunk.len(), |r| {
                    Ok((
                        r.get("id")?,
                        r.get("category_id")?,
                        r.get("department_id")?,
                        r.get("urgency")?,
                        r.get("source")?,
                        r.get("visibility")?,
                        r.get("created_at")?,
                    ))
                })?;
                if !created.is_empty() {
                    let mut events: Vec<Value> = Vec::with_capacity(created.len() * 6);
                    for row in &created {
                        let (data, json) = created_event(row)?;
                        events.extend([
                            Value::Integer(row.0),
                            Value::Text(data.kind().as_str().to_owned()),
                            Value::Text(SYNTHETIC_REPORTER.to_owned()),
                            Value::Integer(row.6),
                            Value::Integer(0),
                            Value::Text(json),
                        ]);
                    }
                    let sql = multi_row_insert("incident_events", EVENT_COLUMNS, 6, created.len());
                    let args: Vec<&dyn rusqlite::ToSql> =
                        events.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
                    direct::execute(conn, &sql, &args)?;
                }
                stored += created.len() as u64;
            }
            Ok(stored)
        },
        postgres: |tx| {
            let mut stored = 0u64;
            for chunk in incidents.chunks(ROWS_PER_STATEMENT) {
                let sql = multi_row_insert("incidents", SYNTHETIC_COLUMNS, SYNTHETIC_WIDTH, chunk.len())
                    + RETURNING;
                let mut insert = sqlx::query_as::<_, Created>(composed(&sql));
                for i in chunk {
                    let ms = |t: Option<Timestamp>| t.map(Timestamp::millis);
                    insert = insert
                        .bind(i.category_id.0)
                        .bind(i.department_id.map(|d| d.0))
                        .bind(i.assignee_id.map(|u| u.0))
                        .bind(SYNTHETIC_REPORTER)
                        .bind(i.title.as_str())
                        .bind(i.description.as_str())
                        .bind(i.zone_id.map(|z| z.0))
                        .bind(i.urgency.as_str())
                        .bind(i.status.as_str())
                        .bind(i.source.as_str())
                        .bind(i.visibility.as_str())
                        .bind(i.votes)
                        .bind(i.version)
                        .bind(i.sla.started_at.millis())
                        .bind(i.sla.acknowledge_within_secs)
                        .bind(i.sla.resolve_within_secs)
                        .bind(i.sla.raise_urgency_on_breach)
                        .bind(ms(i.sla.paused_since))
                        .bind(i.sla.paused_total_ms)
                        .bind(i.acknowledge_due_at.millis())
                        .bind(ms(i.resolve_due_at))
                        .bind(ms(i.acknowledged_at))
                        .bind(ms(i.resolved_at))
                        .bind(ms(i.closed_at))
                        .bind(i.created_at.millis())
                        .bind(i.updated_at.millis());
                }
                let created: Vec<Created> = insert.fetch_all(&mut *tx).await?;
                let sql = multi_row_insert("incident_events", EVENT_COLUMNS, 6, created.len());
                let mut events = sqlx::query(composed(&sql));
                for row in &created {
                    let (data, json) = created_event(row)?;
                    events = events
                        .bind(row.0)
                        .bind(data.kind().as_str())
                        .bind(SYNTHETIC_REPORTER)
                        .bind(row.6)
                        .bind(false)
                        .bind(json);
                }
                if !created.is_empty() {
                    events.execute(&mut *tx).await?;
                }
                stored += created.len() as u64;
            }
            Ok(stored)
        },
    )
}

/// The enabled staff members and admins of every department, as (department, user) pairs: who
/// synthetic incidents may be assigned to.
pub async fn assignable_staff(db: &Db) -> StoreResult<Vec<(DepartmentId, UserId)>> {
    const STAFF: &str = "SELECT m.department_id, m.user_id FROM department_members m JOIN users u ON u.id = m.user_id \
               WHERE u.role IN ('staff', 'admin') AND NOT u.disabled ORDER BY m.department_id, m.user_id";
    let rows: Vec<(i64, i64)> = direct_read!(db,
        sqlite: |conn| direct::query(conn, STAFF, &[], |r| Ok((r.get("department_id")?, r.get("user_id")?))),
        postgres: |pool| Ok(sqlx::query_as(STAFF).fetch_all(pool).await?),
    )?;
    Ok(rows
        .into_iter()
        .map(|(d, u)| (DepartmentId(d), UserId(u)))
        .collect())
}
