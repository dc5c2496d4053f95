//! Bulk loading of synthetic incidents for load tests and demos (`vigia seed incidents`):
//! multi-row INSERTs in one transaction per batch, each incident with its `created` event.

use vigia_domain::Timestamp;
use vigia_domain::catalog::Urgency;
use vigia_domain::ids::{CategoryId, DepartmentId, UserId, ZoneId};
use vigia_domain::incidents::{EventData, IncidentVisibility, SlaClockRecord, Source, Status};

use crate::{Db, StoreError, StoreResult, composed, on_reader, on_writer};

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

/// `INSERT INTO {table} ({columns}) VALUES (...), ...` for `rows` rows of `width` placeholders.
/// SQLite gets anonymous `?` placeholders: sqlx resolves a named one (`$N`) by asking SQLite
/// for its name, a linear search, which makes a statement with thousands of them quadratic.
fn multi_row_insert(db: &Db, table: &str, columns: &str, width: usize, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
    for row in 0..rows {
        let list: Vec<String> = (1..=width)
            .map(|c| {
                if db.is_sqlite() {
                    "?".to_owned()
                } else {
                    format!("${}", row * width + c)
                }
            })
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

/// Stores `incidents` and their `created` events in one transaction, with multi-row INSERTs.
/// Returns how many were stored. For load tests and demos: no routing, assignment or audit.
#[tracing::instrument(skip_all, fields(count = incidents.len()))]
pub async fn load_synthetic(db: &Db, incidents: &[SyntheticIncident]) -> StoreResult<u64> {
    type Created = (i64, i64, Option<i64>, String, String, String, i64);
    const EVENT_COLUMNS: &str = "incident_id, kind, actor, at, internal, data";
    let mut stored = 0u64;
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        for chunk in incidents.chunks(ROWS_PER_STATEMENT) {
            let sql = multi_row_insert(
                db,
                "incidents",
                SYNTHETIC_COLUMNS,
                SYNTHETIC_WIDTH,
                chunk.len(),
            ) + " RETURNING id, category_id, department_id, urgency, source, visibility, created_at";
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
            let sql = multi_row_insert(db, "incident_events", EVENT_COLUMNS, 6, created.len());
            let mut events = sqlx::query(composed(&sql));
            for (id, category, department, urgency, source, visibility, at) in &created {
                let data = EventData::created(
                    Urgency::parse("urgency", urgency).unwrap_or_default(),
                    CategoryId(*category),
                    department.map(DepartmentId),
                    Source::parse("source", source).unwrap_or(Source::Api),
                    IncidentVisibility::parse("visibility", visibility).unwrap_or_default(),
                );
                let json = serde_json::to_string(&data).map_err(|e| StoreError::Other(e.into()))?;
                events = events
                    .bind(*id)
                    .bind(data.kind().as_str())
                    .bind(SYNTHETIC_REPORTER)
                    .bind(*at)
                    .bind(false)
                    .bind(json);
            }
            if !created.is_empty() {
                events.execute(&mut *tx).await?;
            }
            stored += created.len() as u64;
        }
        tx.commit().await?;
        Ok::<_, StoreError>(())
    })?;
    Ok(stored)
}

/// The enabled staff members and admins of every department, as (department, user) pairs: who
/// synthetic incidents may be assigned to.
pub async fn assignable_staff(db: &Db) -> StoreResult<Vec<(DepartmentId, UserId)>> {
    let sql = "SELECT m.department_id, m.user_id FROM department_members m JOIN users u ON u.id = m.user_id \
               WHERE u.role IN ('staff', 'admin') AND NOT u.disabled ORDER BY m.department_id, m.user_id";
    let rows: Vec<(i64, i64)> = on_reader!(db, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
    Ok(rows
        .into_iter()
        .map(|(d, u)| (DepartmentId(d), UserId(u)))
        .collect())
}
