//! The pages exports are streamed from: how many incidents a caller sees that match a filter,
//! and the events of those incidents page by page (on SQLite each page read in chunks of at
//! most [`CHUNK`] rows, so no reader is held while a large page travels).

use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, IncidentId};
use vigia_domain::incidents::{IncidentCode, ReadScope};

use crate::incidents::{IncidentFilter, filter_conditions, restrict};
use crate::sql::{Arg, Sql, bind_args};
use crate::{Db, StoreResult, composed, direct, direct_read};

/// How many incidents `scope` sees that match `filter` (for progress bars).
pub async fn count_incidents(
    db: &Db,
    scope: &ReadScope,
    filter: &IncidentFilter,
) -> StoreResult<i64> {
    let mut sql = Sql::new("SELECT COUNT(*) AS n FROM incidents WHERE 1 = 1");
    restrict(&mut sql, scope);
    filter_conditions(&mut sql, scope, filter);
    let n: Option<i64> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql.text, &direct::args(&sql.args), |r| r.get("n")),
        postgres: |pool| Ok(Some(bind_args!(sqlx::query_scalar(composed(&sql.text)), &sql.args)
            .fetch_one(pool)
            .await?)),
    )?;
    Ok(n.unwrap_or(0))
}

/// An event with what deciding its visibility needs: its incident's department and reporter.
#[derive(Debug, Clone)]
pub struct ExportEvent {
    pub id: i64,
    pub incident_id: IncidentId,
    pub code: IncidentCode,
    pub kind: String,
    pub actor: String,
    pub at: Timestamp,
    pub internal: bool,
    /// The event's payload, as stored (JSON text).
    pub data: String,
    pub department_id: Option<DepartmentId>,
    pub reporter_id: Option<vigia_domain::ids::UserId>,
}

type EventRow = (
    i64,
    i64,
    String,
    String,
    i64,
    bool,
    String,
    Option<i64>,
    Option<i64>,
);

/// A row of an [`events_page`] read on a direct SQLite connection, each column by its name.
fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok((
        r.get("id")?,
        r.get("incident_id")?,
        r.get("kind")?,
        r.get("actor")?,
        r.get("at")?,
        r.get("internal")?,
        r.get("data")?,
        r.get("department_id")?,
        r.get("reporter_id")?,
    ))
}

/// The most rows one read of [`events_page`] returns: a longer page is read in chunks, each
/// after the last id of the one before.
const CHUNK: usize = 2_000;

/// The next `limit` events (by id, after `after`) of the incidents `scope` sees that match
/// `filter`. Whether a caller may see an internal event or its actor is decided by the caller
/// per event (its incident's department and reporter come along).
pub async fn events_page(
    db: &Db,
    scope: &ReadScope,
    filter: &IncidentFilter,
    after: i64,
    limit: usize,
) -> StoreResult<Vec<ExportEvent>> {
    let mut page = Vec::with_capacity(limit.min(CHUNK));
    let mut after = after;
    while page.len() < limit {
        let want = (limit - page.len()).min(CHUNK);
        let mut sql = Sql::new(
            "SELECT e.id, e.incident_id, e.kind, e.actor, e.at, e.internal, e.data, department_id, reporter_id \
             FROM incident_events e JOIN incidents ON incidents.id = e.incident_id WHERE e.id > ",
        );
        let p = sql.arg(Arg::I64(after));
        sql.push(&p);
        restrict(&mut sql, scope);
        filter_conditions(&mut sql, scope, filter);
        sql.push(" ORDER BY e.id");
        sql.limit(want);
        let rows: Vec<EventRow> = direct_read!(db,
            sqlite: |conn| direct::query_sized(conn, &sql.text, &direct::args(&sql.args), want, event_row),
            postgres: |pool| Ok(bind_args!(sqlx::query_as(composed(&sql.text)), &sql.args)
                .fetch_all(pool)
                .await?),
        )?;
        let read = rows.len();
        if let Some(last) = rows.last() {
            after = last.0;
        }
        page.extend(rows.into_iter().map(export_event));
        if read < want {
            break;
        }
    }
    Ok(page)
}

/// An [`EventRow`] as exported.
fn export_event(row: EventRow) -> ExportEvent {
    let (id, incident, kind, actor, at, internal, data, department, reporter) = row;
    ExportEvent {
        id,
        incident_id: IncidentId(incident),
        code: IncidentCode::from_sequence(incident.max(0) as u64),
        kind,
        actor,
        at: Timestamp::from_millis(at),
        internal,
        data,
        department_id: department.map(DepartmentId),
        reporter_id: reporter.map(vigia_domain::ids::UserId),
    }
}
