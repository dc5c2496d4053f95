//! The assignment sweep: open incidents that have a department but nobody assigned get an
//! assignee picked by the department's strategy (round robin, least open), as at creation.
//! Catches incidents created while nobody was available, or routed by hand to a department.

use serde::Serialize;
use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, IncidentId, UserId};
use vigia_domain::incidents::{AssignmentStrategy, Candidate, EventData, pick_assignee};

use super::events::insert_event;
use crate::{Db, StoreResult, on_writer};

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
       AND i.status IN ('new', 'acknowledged', 'in_progress', 'on_hold')) \
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
    let candidates: Vec<(i64, i64)> = on_writer!(db, |pool| sqlx::query_as(crate::composed(&sql))
        .fetch_all(pool)
        .await?);
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
        "SELECT assignment_strategy, last_assigned_user_id FROM departments WHERE id = $1"
    } else {
        "SELECT assignment_strategy, last_assigned_user_id FROM departments WHERE id = $1 FOR UPDATE"
    };
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let settings: Option<(String, Option<i64>)> = sqlx::query_as(lock)
            .bind(department.0)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((strategy, last)) = settings else {
            return Ok(None);
        };
        let Ok(strategy) = AssignmentStrategy::parse("strategy", &strategy) else {
            return Ok(None);
        };
        if strategy == AssignmentStrategy::Manual {
            return Ok(None);
        }
        let rows: Vec<(i64, bool, i64)> = sqlx::query_as(STAFF)
            .bind(department.0)
            .fetch_all(&mut *tx)
            .await?;
        let staff: Vec<Candidate> = rows
            .into_iter()
            .map(|(id, away, open)| Candidate {
                user_id: UserId(id),
                away,
                open_incidents: u32::try_from(open.max(0)).unwrap_or(u32::MAX),
            })
            .collect();
        let Some(user) = pick_assignee(strategy, &staff, last.map(UserId)) else {
            return Ok(None);
        };
        let changed = sqlx::query(
            "UPDATE incidents SET assignee_id = $2, version = version + 1, updated_at = $3 \
             WHERE id = $1 AND assignee_id IS NULL AND department_id = $4 \
             AND status NOT IN ('resolved', 'closed')",
        )
        .bind(incident.0)
        .bind(user.0)
        .bind(now.millis())
        .bind(department.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Ok(None);
        }
        sqlx::query("UPDATE departments SET last_assigned_user_id = $2 WHERE id = $1")
            .bind(department.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        let event = EventData::AssigneeChanged {
            from: None,
            to: Some(user),
            strategy,
        };
        insert_event!(&mut *tx, incident.0, "system", now.millis(), &event);
        tx.commit().await?;
        Ok(Some(AutoAssigned {
            incident_id: incident,
            department_id: department,
            user_id: user,
            strategy,
        }))
    })
}
