//! Monitoring sessions: a subject watched by a device from a start to an end.
//!
//! A detection outside every session of its subject and device is still stored and counted
//! (rules and dashboards see it); it is marked `in_session = false`, so reports and exports
//! can tell it apart.

use serde::Serialize;
use vigia_domain::Timestamp;
use vigia_domain::ids::{DeviceId, MonitoringSessionId, SubjectId};

use crate::direct::direct_row;
use crate::page::{Cursor, Page};
use crate::{
    ChangeAuthor, Db, StoreError, StoreResult, composed, direct, direct_read, grouped_write,
};

#[derive(Debug, Clone, Serialize)]
pub struct MonitoringSession {
    pub id: MonitoringSessionId,
    pub subject_id: SubjectId,
    pub device_id: DeviceId,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub started_by: String,
}

direct_row! {
    struct Row {
        id: i64,
        subject_id: i64,
        device_id: i64,
        started_at: i64,
        ended_at: Option<i64>,
        started_by: String,
    }
}

impl From<Row> for MonitoringSession {
    fn from(r: Row) -> Self {
        Self {
            id: MonitoringSessionId(r.id),
            subject_id: SubjectId(r.subject_id),
            device_id: DeviceId(r.device_id),
            started_at: Timestamp::from_millis(r.started_at),
            ended_at: r.ended_at.map(Timestamp::from_millis),
            started_by: r.started_by,
        }
    }
}

const COLUMNS: &str = "id, subject_id, device_id, started_at, ended_at, started_by";

const OPEN: &str = "SELECT COUNT(*) AS n FROM monitoring_sessions \
     WHERE subject_id = $1 AND device_id = $2 AND ended_at IS NULL";
const EXISTS: &str = "SELECT COUNT(*) AS n FROM monitoring_sessions WHERE id = $1";

/// Starts a session now. A subject and device already in an open session get 409 (`Duplicate`).
pub async fn start(
    db: &Db,
    subject: SubjectId,
    device: DeviceId,
    actor: &ChangeAuthor,
) -> StoreResult<MonitoringSession> {
    super::subjects::find(db, subject)
        .await
        .map_err(StoreError::missing_reference("subject_id", "subject"))?;
    super::devices::find(db, device)
        .await
        .map_err(StoreError::missing_reference("device_id", "device"))?;
    let sql = format!(
        "INSERT INTO monitoring_sessions (subject_id, device_id, started_at, started_by) \
         VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    );
    let now = Timestamp::now().millis();
    let label = actor.label.clone();
    let already_open = || StoreError::Duplicate {
        field: "subject_id",
    };
    let row: Row = grouped_write!(db,
        sqlite: |conn| {
            let open: i64 = direct::query_optional(conn, OPEN, &[&subject.0, &device.0], |r| r.get("n"))?
                .unwrap_or(0);
            if open > 0 {
                return Err(already_open());
            }
            direct::query_optional(conn, &sql, &[&subject.0, &device.0, &now, &label], Row::from_direct)?
                .ok_or(StoreError::NotFound)
        },
        postgres: |tx| {
            let open: i64 = sqlx::query_scalar(OPEN)
                .bind(subject.0)
                .bind(device.0)
                .fetch_one(&mut *tx)
                .await?;
            if open > 0 {
                return Err(already_open());
            }
            Ok(sqlx::query_as(composed(&sql))
                .bind(subject.0)
                .bind(device.0)
                .bind(now)
                .bind(&label)
                .fetch_one(&mut *tx)
                .await?)
        },
    )?;
    Ok(row.into())
}

/// Ends an open session now (`Stale` if it had already ended).
pub async fn end(db: &Db, id: MonitoringSessionId) -> StoreResult<MonitoringSession> {
    let sql = format!(
        "UPDATE monitoring_sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL RETURNING {COLUMNS}"
    );
    let now = Timestamp::now().millis();
    let gone = |exists: i64| {
        if exists > 0 {
            StoreError::Stale
        } else {
            StoreError::NotFound
        }
    };
    let row: Row = grouped_write!(db,
        sqlite: |conn| {
            match direct::query_optional(conn, &sql, &[&id.0, &now], Row::from_direct)? {
                Some(row) => Ok(row),
                None => {
                    let exists: i64 = direct::query_optional(conn, EXISTS, &[&id.0], |r| r.get("n"))?
                        .unwrap_or(0);
                    Err(gone(exists))
                }
            }
        },
        postgres: |tx| {
            let row: Option<Row> = sqlx::query_as(composed(&sql))
                .bind(id.0)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            match row {
                Some(row) => Ok(row),
                None => {
                    let exists: i64 = sqlx::query_scalar(EXISTS)
                        .bind(id.0)
                        .fetch_one(&mut *tx)
                        .await?;
                    Err(gone(exists))
                }
            }
        },
    )?;
    Ok(row.into())
}

/// Sessions, newest first, optionally of one subject.
pub async fn list(
    db: &Db,
    subject: Option<SubjectId>,
    after: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<MonitoringSession>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM monitoring_sessions WHERE id < $1 AND ($2 = 0 OR subject_id = $2) \
         ORDER BY id DESC LIMIT {}",
        limit + 1
    );
    let after = after.map_or(i64::MAX, |c| c.0);
    let subject = subject.map_or(0, |s| s.0);
    let rows: Vec<Row> = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[&after, &subject], Row::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql))
            .bind(after)
            .bind(subject)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(Page::from_rows(rows, limit, |r| r.id).map(MonitoringSession::from))
}
