//! Changing incidents. Each function runs one short transaction that updates the incident
//! (guarded by its version where a stale write could lose a change) and appends its events.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::ids::{CommentId, DepartmentId, IncidentId, UserId};
use vigia_domain::incidents::{
    AssignmentStrategy, EventData, IncidentVisibility, NewComment, SlaClock, SlaEffect, Status,
    Visibility, is_reopen, sla_effect,
};

use super::assign::{auto_assign, department_lock_sql};
use super::events::insert_event;
use super::{INCIDENT_COLUMNS, Incident, IncidentRow};
use crate::{Db, StoreError, StoreResult, catalog, composed, on_reader, on_writer};

/// Moves `incident` (as read) to `to`, which the caller has checked with
/// [`vigia_domain::incidents::check_transition`]. Pauses or resumes the SLA clock, stamps
/// acknowledgement, resolution and closing, and fails with [`StoreError::Stale`] when the
/// incident changed since it was read.
#[tracing::instrument(skip_all, fields(incident_id = %incident.id, to = to.as_str()))]
pub async fn transition(
    db: &Db,
    incident: &Incident,
    to: Status,
    actor: &str,
    now: Timestamp,
) -> StoreResult<Incident> {
    let from = incident.status;
    let mut clock = SlaClock::from(incident.sla_clock);
    match sla_effect(from, to) {
        Some(SlaEffect::Pause) => clock.pause(now),
        Some(SlaEffect::Resume) => clock.resume(now),
        None => {}
    }
    let record = clock.record();
    let acknowledged_at = incident
        .acknowledged_at
        .or((from == Status::New).then_some(now));
    let reopened = is_reopen(from, to);
    let resolved_at = if to == Status::Resolved {
        Some(now)
    } else if reopened {
        None
    } else {
        incident.resolved_at
    };
    let closed_at = if to == Status::Closed {
        Some(now)
    } else if reopened {
        None
    } else {
        incident.closed_at
    };
    let resolve_due =
        (!clock.is_paused() && resolved_at.is_none()).then(|| clock.resolve_due(now).millis());
    let sql = format!(
        "UPDATE incidents SET status = $3, sla_paused_since = $4, sla_paused_total_ms = $5, acknowledged_at = $6, \
         resolved_at = $7, closed_at = $8, resolve_due_at = $9, version = version + 1, updated_at = $10 \
         WHERE id = $1 AND version = $2 RETURNING {INCIDENT_COLUMNS}"
    );
    let event = EventData::StatusChanged { from, to };
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: Option<IncidentRow> = sqlx::query_as(composed(&sql))
            .bind(incident.id.0)
            .bind(incident.version)
            .bind(to.as_str())
            .bind(record.paused_since.map(Timestamp::millis))
            .bind(record.paused_total_ms)
            .bind(acknowledged_at.map(Timestamp::millis))
            .bind(resolved_at.map(Timestamp::millis))
            .bind(closed_at.map(Timestamp::millis))
            .bind(resolve_due)
            .bind(now.millis())
            .fetch_optional(&mut *tx)
            .await?;
        let row = row.ok_or(StoreError::Stale)?;
        insert_event!(&mut *tx, incident.id.0, actor, now.millis(), &event);
        tx.commit().await?;
        Ok(row.into_incident(now))
    })
}

/// A comment on an incident.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Comment {
    #[sqlx(try_from = "i64")]
    pub id: CommentId,
    #[sqlx(try_from = "i64")]
    pub incident_id: IncidentId,
    pub author: String,
    pub author_user_id: Option<i64>,
    pub body: String,
    #[sqlx(try_from = "String")]
    pub visibility: Visibility,
    #[sqlx(try_from = "i64")]
    pub created_at: Timestamp,
}

/// Adds a comment and its `comment_added` event (internal when the comment is).
pub async fn add_comment(
    db: &Db,
    incident: IncidentId,
    comment: &NewComment,
    author: &str,
    author_user: Option<UserId>,
    now: Timestamp,
) -> StoreResult<Comment> {
    let sql = "INSERT INTO incident_comments (incident_id, author, author_user_id, body, visibility, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6) \
               RETURNING id, incident_id, author, author_user_id, body, visibility, created_at";
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let saved: Comment = sqlx::query_as(sql)
            .bind(incident.0)
            .bind(author)
            .bind(author_user.map(|u| u.0))
            .bind(comment.body.as_str())
            .bind(comment.visibility.as_str())
            .bind(now.millis())
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("UPDATE incidents SET updated_at = $2 WHERE id = $1")
            .bind(incident.0)
            .bind(now.millis())
            .execute(&mut *tx)
            .await?;
        let event = EventData::CommentAdded {
            comment_id: saved.id,
            visibility: comment.visibility,
        };
        insert_event!(&mut *tx, incident.0, author, now.millis(), &event);
        tx.commit().await?;
        Ok(saved)
    })
}

/// The comments of an incident, oldest first; internal ones only when `include_internal`.
pub async fn list_comments(
    db: &Db,
    incident: IncidentId,
    include_internal: bool,
) -> StoreResult<Vec<Comment>> {
    let sql = "SELECT id, incident_id, author, author_user_id, body, visibility, created_at FROM incident_comments \
               WHERE incident_id = $1 AND ($2 OR visibility = 'public') ORDER BY id";
    Ok(on_reader!(db, |pool| sqlx::query_as(sql)
        .bind(incident.0)
        .bind(include_internal)
        .fetch_all(pool)
        .await?))
}

/// Routes `incident` to another department: its assignee is cleared, then the new department's
/// auto-assignment runs. Guarded by the version read.
pub async fn assign_department(
    db: &Db,
    incident: &Incident,
    department: DepartmentId,
    actor: &str,
    now: Timestamp,
) -> StoreResult<Incident> {
    if !catalog::department_exists(db, department).await? {
        return Err(StoreError::UnknownReference {
            field: "department_id".into(),
            entity: "department",
        });
    }
    let lock_sql = department_lock_sql(db);
    let sql = format!(
        "UPDATE incidents SET department_id = $3, assignee_id = NULL, version = version + 1, updated_at = $4 \
         WHERE id = $1 AND version = $2 RETURNING {INCIDENT_COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: Option<IncidentRow> = sqlx::query_as(composed(&sql))
            .bind(incident.id.0)
            .bind(incident.version)
            .bind(department.0)
            .bind(now.millis())
            .fetch_optional(&mut *tx)
            .await?;
        let mut updated = row.ok_or(StoreError::Stale)?.into_incident(now);
        let picked = auto_assign!(&mut *tx, department.0, lock_sql);
        let new_assignee = picked.map(|(user, _)| user);
        if let Some(user) = new_assignee {
            sqlx::query("UPDATE incidents SET assignee_id = $2 WHERE id = $1")
                .bind(incident.id.0)
                .bind(user.0)
                .execute(&mut *tx)
                .await?;
        }
        // Events last: on PostgreSQL the first event takes the commit-order lock.
        let moved = EventData::DepartmentAssigned {
            from: incident.department_id,
            to: department,
        };
        insert_event!(&mut *tx, incident.id.0, actor, now.millis(), &moved);
        if incident.assignee_id != new_assignee {
            let strategy = picked.map_or(AssignmentStrategy::Manual, |(_, s)| s);
            let changed = EventData::AssigneeChanged {
                from: incident.assignee_id,
                to: new_assignee,
                strategy,
            };
            insert_event!(&mut *tx, incident.id.0, actor, now.millis(), &changed);
        }
        updated.assignee_id = new_assignee;
        tx.commit().await?;
        Ok(updated)
    })
}

/// Whether `user` is an enabled staff member (or admin) of `department`.
pub async fn is_department_staff(
    db: &Db,
    user: UserId,
    department: DepartmentId,
) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM users u JOIN department_members m ON m.user_id = u.id \
               WHERE u.id = $1 AND m.department_id = $2 AND u.role IN ('staff', 'admin') AND NOT u.disabled";
    let n: i64 = on_reader!(db, |pool| sqlx::query_scalar(sql)
        .bind(user.0)
        .bind(department.0)
        .fetch_one(pool)
        .await?);
    Ok(n > 0)
}

/// Gives `incident` to `assignee` (a staff member of its department) or to nobody.
pub async fn assign_user(
    db: &Db,
    incident: &Incident,
    assignee: Option<UserId>,
    actor: &str,
    now: Timestamp,
) -> StoreResult<Incident> {
    if let Some(user) = assignee {
        let member = match incident.department_id {
            Some(department) => is_department_staff(db, user, department).await?,
            None => false,
        };
        if !member {
            return Err(StoreError::UnknownReference {
                field: "assignee_id".into(),
                entity: "staff member of the incident's department",
            });
        }
    }
    let sql = format!(
        "UPDATE incidents SET assignee_id = $3, version = version + 1, updated_at = $4 \
         WHERE id = $1 AND version = $2 RETURNING {INCIDENT_COLUMNS}"
    );
    let event = EventData::AssigneeChanged {
        from: incident.assignee_id,
        to: assignee,
        strategy: AssignmentStrategy::Manual,
    };
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: Option<IncidentRow> = sqlx::query_as(composed(&sql))
            .bind(incident.id.0)
            .bind(incident.version)
            .bind(assignee.map(|u| u.0))
            .bind(now.millis())
            .fetch_optional(&mut *tx)
            .await?;
        let row = row.ok_or(StoreError::Stale)?;
        insert_event!(&mut *tx, incident.id.0, actor, now.millis(), &event);
        tx.commit().await?;
        Ok(row.into_incident(now))
    })
}

/// Makes an incident public (on the board, open to votes) or private.
pub async fn set_visibility(
    db: &Db,
    incident: &Incident,
    visibility: IncidentVisibility,
    actor: &str,
    now: Timestamp,
) -> StoreResult<Incident> {
    let sql = format!(
        "UPDATE incidents SET visibility = $3, version = version + 1, updated_at = $4 \
         WHERE id = $1 AND version = $2 RETURNING {INCIDENT_COLUMNS}"
    );
    let event = EventData::VisibilityChanged {
        from: incident.visibility,
        to: visibility,
    };
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: Option<IncidentRow> = sqlx::query_as(composed(&sql))
            .bind(incident.id.0)
            .bind(incident.version)
            .bind(visibility.as_str())
            .bind(now.millis())
            .fetch_optional(&mut *tx)
            .await?;
        let row = row.ok_or(StoreError::Stale)?;
        insert_event!(&mut *tx, incident.id.0, actor, now.millis(), &event);
        tx.commit().await?;
        Ok(row.into_incident(now))
    })
}

/// Records `user`'s "me too" and returns the new vote count. A second vote is
/// [`StoreError::Duplicate`]. Votes do not change the incident's version.
pub async fn vote(db: &Db, incident: IncidentId, user: UserId, now: Timestamp) -> StoreResult<i64> {
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO incident_votes (incident_id, user_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(incident.0)
        .bind(user.0)
        .bind(now.millis())
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::unique(e, "incident_votes_pkey", "vote"))?;
        let votes: i64 = sqlx::query_scalar(
            "UPDATE incidents SET votes = votes + 1 WHERE id = $1 RETURNING votes",
        )
        .bind(incident.0)
        .fetch_one(&mut *tx)
        .await?;
        let event = EventData::Voted {
            user_id: user,
            votes: votes.max(0) as u32,
        };
        insert_event!(
            &mut *tx,
            incident.0,
            &format!("user:{user}"),
            now.millis(),
            &event
        );
        tx.commit().await?;
        Ok(votes)
    })
}

/// Withdraws `user`'s vote and returns the incident's votes. Idempotent: without a vote to
/// withdraw nothing changes (no event) and the current count is returned.
pub async fn withdraw_vote(
    db: &Db,
    incident: IncidentId,
    user: UserId,
    now: Timestamp,
) -> StoreResult<i64> {
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let removed =
            sqlx::query("DELETE FROM incident_votes WHERE incident_id = $1 AND user_id = $2")
                .bind(incident.0)
                .bind(user.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if removed == 0 {
            let votes: i64 = sqlx::query_scalar("SELECT votes FROM incidents WHERE id = $1")
                .bind(incident.0)
                .fetch_one(&mut *tx)
                .await?;
            return Ok(votes);
        }
        let votes: i64 = sqlx::query_scalar(
            "UPDATE incidents SET votes = votes - 1 WHERE id = $1 RETURNING votes",
        )
        .bind(incident.0)
        .fetch_one(&mut *tx)
        .await?;
        let event = EventData::VoteWithdrawn {
            user_id: user,
            votes: votes.max(0) as u32,
        };
        insert_event!(
            &mut *tx,
            incident.0,
            &format!("user:{user}"),
            now.millis(),
            &event
        );
        tx.commit().await?;
        Ok(votes)
    })
}

/// Whether `user` has voted for `incident`.
pub async fn has_voted(db: &Db, incident: IncidentId, user: UserId) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM incident_votes WHERE incident_id = $1 AND user_id = $2";
    let n: i64 = on_reader!(db, |pool| sqlx::query_scalar(sql)
        .bind(incident.0)
        .bind(user.0)
        .fetch_one(pool)
        .await?);
    Ok(n > 0)
}
