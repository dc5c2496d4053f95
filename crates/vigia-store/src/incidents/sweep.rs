//! The assignment sweep: open incidents that have a department but nobody assigned get an
//! assignee picked by the department's strategy (round robin, least open), as at creation.
//! Catches incidents created while nobody was available, or routed by hand to a department.

use serde::Serialize;
use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, IncidentId, UserId};
use vigia_domain::incidents::{AssignmentStrategy, Candidate, EventData, pick_assignee};

use super::events::{insert_event, insert_event_direct};
use crate::{Db, StoreResult, direct, direct_read, grouped_write};

/// One incident the sweep assigned.
#[derive(Debug, Clone, Serialize)]
pub struct AutoAssigned {
    pub incident_id: IncidentId,
    pub department_id: DepartmentId,
    pub user_id: UserId,
    pub strategy: AssignmentStrategy,
}

const CANDIDATES: &str = "SELECT i.id, i.department_id FROM incidents i JOIN departments d ON d.id = i.department_id \
     WHERE i.assignee_id IS NULL AND i.status NOT IN ('resolved', 'closed') AND d.assignment_strategy <> 'manual' \
     ORDER BY i.id";

const STAFF: &str = "SELECT u.id, u.away, (SELECT COUNT(*) FROM incidents i WHERE i.assignee_id = u.id \
       AND i.status IN ('new', 'acknowledged', 'in_progress', 'on_hold')) AS open_incidents \
     FROM users u JOIN department_members m ON m.user_id = u.id \
     WHERE m.department_id = $1 AND u.role IN ('staff', 'admin') AND NOT u.disabled ORDER BY u.id";

/// Assigns up to `limit` unassigned incidents of departments with an automatic strategy.
#[tracing::instrument(skip_all)]
pub async fn assign_unassigned(
    db: &Db,
    now: Timestamp,
    limit: usize,
) -> StoreResult<Vec<AutoAssigned>> {
    let sql = format!("{CANDIDATES}{}", crate::sql::limit(limit));
    let candidates: Vec<(i64, i64)> = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[], |r| Ok((r.get("id")?, r.get("department_id")?))),
        postgres: |pool| Ok(sqlx::query_as(crate::composed(&sql)).fetch_all(pool).await?),
    )?;
    let mut done = Vec::new();
    for (incident, department) in candidates {
        if let Some(assigned) =
            assign_one(db, IncidentId(incident), DepartmentId(department), now).await?
        {
            done.push(assigned);
        }
    }
    Ok(done)
}

async fn assign_one(
    db: &Db,
    incident: IncidentId,
    department: DepartmentId,
    now: Timestamp,
) -> StoreResult<Option<AutoAssigned>> {
    let lock = if db.is_sqlite() {
        SETTINGS
    } else {
        SETTINGS_LOCKED
    };
    let (id, department_id, at) = (incident.0, department.0, now.millis());
    let assigned = move |user, strategy| AutoAssigned {
        incident_id: incident,
        department_id: department,
        user_id: user,
        strategy,
    };
    let event = move |user, strategy| EventData::AssigneeChanged {
        from: None,
        to: Some(user),
        strategy,
    };
    grouped_write!(db,
        sqlite: |conn| {
            let settings = direct::query_optional(conn, lock, &[&department_id], |r| {
                Ok((r.get("assignment_strategy")?, r.get("last_assigned_user_id")?))
            })?;
            let Some((strategy, last)) = settings.and_then(automatic) else {
                return Ok(None);
            };
            let rows = direct::query(conn, STAFF, &[&department_id], |r| {
                Ok((r.get("id")?, r.get("away")?, r.get("open_incidents")?))
            })?;
            let Some(user) = pick(strategy, rows, last) else {
                return Ok(None);
            };
            if direct::execute(conn, ASSIGN, &[&id, &user.0, &at, &department_id])? != 1 {
                return Ok(None);
            }
            direct::execute(conn, RECORD_PICK, &[&department_id, &user.0])?;
            insert_event_direct(conn, id, "system", at, &event(user, strategy))?;
            Ok(Some(assigned(user, strategy)))
        },
        postgres: |tx| {
            let settings: Option<(String, Option<i64>)> = sqlx::query_as(lock)
                .bind(department_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((strategy, last)) = settings.and_then(automatic) else {
                return Ok(None);
            };
            let rows: Vec<(i64, bool, i64)> = sqlx::query_as(STAFF)
                .bind(department_id)
                .fetch_all(&mut *tx)
                .await?;
            let Some(user) = pick(strategy, rows, last) else {
                return Ok(None);
            };
            let changed = sqlx::query(ASSIGN)
                .bind(id)
                .bind(user.0)
                .bind(at)
                .bind(department_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed != 1 {
                return Ok(None);
            }
            sqlx::query(RECORD_PICK)
                .bind(department_id)
                .bind(user.0)
                .execute(&mut *tx)
                .await?;
            insert_event!(&mut *tx, id, "system", at, &event(user, strategy));
            Ok(Some(assigned(user, strategy)))
        },
    )
}

const SETTINGS: &str =
    "SELECT assignment_strategy, last_assigned_user_id FROM departments WHERE id = $1";
const SETTINGS_LOCKED: &str =
    "SELECT assignment_strategy, last_assigned_user_id FROM departments WHERE id = $1 FOR UPDATE";
const ASSIGN: &str = "UPDATE incidents SET assignee_id = $2, version = version + 1, updated_at = $3 \
     WHERE id = $1 AND assignee_id IS NULL AND department_id = $4 \
     AND status NOT IN ('resolved', 'closed')";
const RECORD_PICK: &str = "UPDATE departments SET last_assigned_user_id = $2 WHERE id = $1";

/// A department's strategy (with its last pick) when it assigns automatically.
fn automatic((strategy, last): (String, Option<i64>)) -> Option<(AssignmentStrategy, Option<i64>)> {
    let strategy = AssignmentStrategy::parse("strategy", &strategy).ok()?;
    (strategy != AssignmentStrategy::Manual).then_some((strategy, last))
}

/// The member `strategy` picks among `rows` of [`STAFF`] (id, away, open incidents).
fn pick(
    strategy: AssignmentStrategy,
    rows: Vec<(i64, bool, i64)>,
    last: Option<i64>,
) -> Option<UserId> {
    let staff: Vec<Candidate> = rows
        .into_iter()
        .map(|(id, away, open)| Candidate {
            user_id: UserId(id),
            away,
            open_incidents: u32::try_from(open.max(0)).unwrap_or(u32::MAX),
        })
        .collect();
    pick_assignee(strategy, &staff, last.map(UserId))
}
