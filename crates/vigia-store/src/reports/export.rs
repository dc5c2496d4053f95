//! The pages exports are streamed from: how many incidents a caller sees that match a filter,
//! and the events of those incidents page by page.

use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, IncidentId};
use vigia_domain::incidents::{IncidentCode, ReadScope};

use crate::incidents::{IncidentFilter, filter_conditions, restrict};
use crate::sql::{Arg, Sql, bind_args};
use crate::{Db, StoreResult, composed, on_reader};

/// How many incidents `scope` sees that match `filter` (for progress bars).
pub async fn count_incidents(
    db: &Db,
    scope: &ReadScope,
    filter: &IncidentFilter,
) -> StoreResult<i64> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM incidents WHERE 1 = 1");
    restrict(&mut sql, scope);
    filter_conditions(&mut sql, scope, filter);
    let n: i64 = on_reader!(db, |pool| bind_args!(
        sqlx::query_scalar(composed(&sql.text)),
        &sql.args
    )
    .fetch_one(pool)
    .await?);
    Ok(n)
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
    let mut sql = Sql::new(
        "SELECT e.id, e.incident_id, e.kind, e.actor, e.at, e.internal, e.data, department_id, reporter_id \
         FROM incident_events e JOIN incidents ON incidents.id = e.incident_id WHERE e.id > ",
    );
    let p = sql.arg(Arg::I64(after));
    sql.push(&p);
    restrict(&mut sql, scope);
    filter_conditions(&mut sql, scope, filter);
    sql.push(" ORDER BY e.id");
    sql.limit(limit);
    let rows: Vec<EventRow> = on_reader!(db, |pool| bind_args!(
        sqlx::query_as(composed(&sql.text)),
        &sql.args
    )
    .fetch_all(pool)
    .await?);
    Ok(rows
        .into_iter()
        .map(
            |(id, incident, kind, actor, at, internal, data, department, reporter)| ExportEvent {
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
            },
        )
        .collect())
}
