//! Automatic assignment inside a department, shared by creation and rerouting.

use vigia_domain::ids::UserId;
use vigia_domain::incidents::{AssignmentStrategy, Candidate, pick_assignee};

use crate::{Db, StoreResult, direct};

/// Picks an assignee in `$department` by its strategy through the connection `$conn` (inside
/// the caller's transaction), and records the pick for round robin. Evaluates to
/// `Option<(UserId, AssignmentStrategy)>`. Round robin never counts incidents, so its cost does
/// not grow with the table; least-open counts each candidate's open incidents by index.
macro_rules! auto_assign {
    ($conn:expr, $department:expr, $lock_sql:expr) => {{
        use vigia_domain::incidents::AssignmentStrategy;
        let conn = $conn;
        let department: i64 = $department;
        let settings: Option<(String, Option<i64>)> = sqlx::query_as($crate::composed($lock_sql))
            .bind(department)
            .fetch_optional(&mut *conn)
            .await?;
        let strategy = settings.and_then(|(s, last)| {
            AssignmentStrategy::parse("strategy", &s)
                .ok()
                .map(|s| (s, last))
        });
        match strategy {
            Some((strategy, last)) if strategy != AssignmentStrategy::Manual => {
                let rows: Vec<(i64, bool, i64)> =
                    sqlx::query_as($crate::incidents::assign::candidates_sql(strategy))
                        .bind(department)
                        .fetch_all(&mut *conn)
                        .await?;
                match $crate::incidents::assign::pick(strategy, rows, last) {
                    Some(user) => {
                        sqlx::query($crate::incidents::assign::RECORD_PICK)
                            .bind(department)
                            .bind(user.0)
                            .execute(&mut *conn)
                            .await?;
                        Some((user, strategy))
                    }
                    None => None,
                }
            }
            _ => None,
        }
    }};
}
pub(crate) use auto_assign;

/// A department's members who may be assigned, with whether they are away and (for least-open)
/// how many open incidents they hold.
pub(crate) fn candidates_sql(strategy: AssignmentStrategy) -> &'static str {
    if strategy == AssignmentStrategy::LeastOpen {
        "SELECT u.id, u.away, (SELECT COUNT(*) FROM incidents i WHERE i.assignee_id = u.id \
           AND i.status IN ('new', 'acknowledged', 'in_progress', 'on_hold')) \
         FROM users u JOIN department_members m ON m.user_id = u.id \
         WHERE m.department_id = $1 AND u.role IN ('staff', 'admin') AND NOT u.disabled ORDER BY u.id"
    } else {
        "SELECT u.id, u.away, CAST(0 AS BIGINT) \
         FROM users u JOIN department_members m ON m.user_id = u.id \
         WHERE m.department_id = $1 AND u.role IN ('staff', 'admin') AND NOT u.disabled ORDER BY u.id"
    }
}

/// Remembers a department's last pick, for round robin.
pub(crate) const RECORD_PICK: &str =
    "UPDATE departments SET last_assigned_user_id = $2 WHERE id = $1";

/// The member `strategy` picks among `rows` of [`candidates_sql`].
pub(crate) fn pick(
    strategy: AssignmentStrategy,
    rows: Vec<(i64, bool, i64)>,
    last: Option<i64>,
) -> Option<UserId> {
    let candidates: Vec<Candidate> = rows
        .into_iter()
        .map(|(id, away, open)| Candidate {
            user_id: UserId(id),
            away,
            open_incidents: open.max(0) as u32,
        })
        .collect();
    pick_assignee(strategy, &candidates, last.map(UserId))
}

/// [`auto_assign!`] on the SQLite group commit's connection (one writer: no lock needed).
pub(crate) fn auto_assign_direct(
    conn: &direct::Conn,
    department: i64,
) -> StoreResult<Option<(UserId, AssignmentStrategy)>> {
    let settings: Option<(String, Option<i64>)> =
        direct::query_optional(conn, DEPARTMENT_SETTINGS, &[&department], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let Some((strategy, last)) = settings else {
        return Ok(None);
    };
    let strategy = AssignmentStrategy::parse("strategy", &strategy).unwrap_or_default();
    if strategy == AssignmentStrategy::Manual {
        return Ok(None);
    }
    let rows = direct::query(conn, candidates_sql(strategy), &[&department], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    let Some(user) = pick(strategy, rows, last) else {
        return Ok(None);
    };
    direct::execute(conn, RECORD_PICK, &[&department, &user.0])?;
    Ok(Some((user, strategy)))
}

/// A department's assignment settings.
const DEPARTMENT_SETTINGS: &str =
    "SELECT assignment_strategy, last_assigned_user_id FROM departments WHERE id = $1";
/// The same, locking the department's row so concurrent round-robin picks take turns.
pub(crate) const POSTGRES_DEPARTMENT_LOCK: &str =
    "SELECT assignment_strategy, last_assigned_user_id FROM departments WHERE id = $1 FOR UPDATE";

/// Reads a department's assignment settings, locking its row on PostgreSQL (SQLite has one
/// writer already).
pub(crate) fn department_lock_sql(db: &Db) -> &'static str {
    if db.is_sqlite() {
        DEPARTMENT_SETTINGS
    } else {
        POSTGRES_DEPARTMENT_LOCK
    }
}

#[cfg(test)]
mod tests {
    use crate::{Backend, Db, DbOptions};

    /// SQLite's plan for `sql`, one line per step.
    async fn plan(db: &Db, sql: &str) -> String {
        let Backend::Sqlite { readers, .. } = &db.backend else {
            unreachable!("a SQLite database")
        };
        let sql = format!("EXPLAIN QUERY PLAN {sql}");
        let rows: Vec<String> = readers
            .run(move |conn| crate::direct::query(conn, &sql, &[], |r| r.get("detail")))
            .await
            .expect("plan");
        rows.join("\n")
    }

    /// Counting a member's open incidents (least-open assignment, on every report) and listing
    /// an assignee's incidents must read an index of the assignee, never the whole table.
    #[tokio::test]
    async fn work_by_assignee_is_read_through_an_assignee_index() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("plan.db").display());
        let db = Db::connect(&url, &DbOptions::default())
            .await
            .expect("open");
        db.migrate().await.expect("migrate");
        let open = plan(
            &db,
            "SELECT COUNT(*) FROM incidents i WHERE i.assignee_id = 7 \
             AND i.status IN ('new', 'acknowledged', 'in_progress', 'on_hold')",
        )
        .await;
        assert!(
            open.contains("USING COVERING INDEX incidents_assignee_idx"),
            "{open}"
        );
        let list = plan(
            &db,
            "SELECT id FROM incidents WHERE 1 = 1 AND assignee_id = 7 ORDER BY id DESC LIMIT 51",
        )
        .await;
        assert!(list.contains("incidents_assignee_list_idx"), "{list}");
        assert!(!list.contains("TEMP B-TREE"), "{list}");
    }
}
