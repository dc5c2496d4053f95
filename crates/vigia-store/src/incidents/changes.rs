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

use super::assign::{auto_assign, auto_assign_direct, department_lock_sql};
use super::events::{insert_event, insert_event_direct};
use super::{INCIDENT_COLUMNS, Incident, IncidentRow};
use crate::{Db, StoreError, StoreResult, catalog, composed, direct, direct_read, grouped_write};

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
    let (id, version, actor) = (incident.id.0, incident.version, actor.to_owned());
    let (to, paused_since, paused_total_ms) = (
        to.as_str(),
        record.paused_since.map(Timestamp::millis),
        record.paused_total_ms,
    );
    let (acknowledged_at, resolved_at, closed_at) = (
        acknowledged_at.map(Timestamp::millis),
        resolved_at.map(Timestamp::millis),
        closed_at.map(Timestamp::millis),
    );
    let at = now.millis();
    let row = grouped_write!(db,
        sqlite: |conn| {
            guarded_update_direct(
                conn,
                &sql,
                &[
                    &id,
                    &version,
                    &to,
                    &paused_since,
                    &paused_total_ms,
                    &acknowledged_at,
                    &resolved_at,
                    &closed_at,
                    &resolve_due,
                    &at,
                ],
                id,
                &actor,
                at,
                [&event],
            )
        },
        postgres: |tx| {
            let query = sqlx::query_as(composed(&sql))
                .bind(id)
                .bind(version)
                .bind(to)
                .bind(paused_since)
                .bind(paused_total_ms)
                .bind(acknowledged_at)
                .bind(resolved_at)
                .bind(closed_at)
                .bind(resolve_due)
                .bind(at);
            guarded_update_postgres(&mut *tx, query, id, &actor, at, [&event]).await
        },
    )?;
    Ok(row.into_incident(now))
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

impl Comment {
    /// A comment's row read on a direct SQLite connection, each column by its name.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: CommentId(row.get("id")?),
            incident_id: IncidentId(row.get("incident_id")?),
            author: row.get("author")?,
            author_user_id: row.get("author_user_id")?,
            body: row.get("body")?,
            visibility: direct::parsed(
                row,
                row.as_ref().column_index("visibility")?,
                Visibility::parse,
            )?,
            created_at: Timestamp::from_millis(row.get("created_at")?),
        })
    }
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
    const INSERT: &str = "INSERT INTO incident_comments (incident_id, author, author_user_id, body, visibility, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6) \
               RETURNING id, incident_id, author, author_user_id, body, visibility, created_at";
    const TOUCH: &str = "UPDATE incidents SET updated_at = $2 WHERE id = $1";
    let (id, author, author_user) = (incident.0, author.to_owned(), author_user.map(|u| u.0));
    let (body, visibility) = (comment.body.as_str().to_owned(), comment.visibility);
    let at = now.millis();
    grouped_write!(db,
        sqlite: |conn| {
            let saved = direct::query_optional(
                conn,
                INSERT,
                &[&id, &author, &author_user, &body, &visibility.as_str(), &at],
                Comment::from_direct,
            )?
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("inserting a comment returned no row")))?;
            direct::execute(conn, TOUCH, &[&id, &at])?;
            let event = EventData::CommentAdded {
                comment_id: saved.id,
                visibility,
            };
            insert_event_direct(conn, id, &author, at, &event)?;
            Ok(saved)
        },
        postgres: |tx| {
            let saved: Comment = sqlx::query_as(INSERT)
                .bind(id)
                .bind(&author)
                .bind(author_user)
                .bind(&body)
                .bind(visibility.as_str())
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(TOUCH).bind(id).bind(at).execute(&mut *tx).await?;
            let event = EventData::CommentAdded {
                comment_id: saved.id,
                visibility,
            };
            insert_event!(&mut *tx, id, &author, at, &event);
            Ok(saved)
        },
    )
}

/// The comments of an incident, oldest first; internal ones only when `include_internal`.
pub async fn list_comments(
    db: &Db,
    incident: IncidentId,
    include_internal: bool,
) -> StoreResult<Vec<Comment>> {
    const LIST: &str = "SELECT id, incident_id, author, author_user_id, body, visibility, created_at FROM incident_comments \
               WHERE incident_id = $1 AND ($2 OR visibility = 'public') ORDER BY id";
    let id = incident.0;
    direct_read!(db,
        sqlite: |conn| direct::query(conn, LIST, &[&id, &include_internal], Comment::from_direct),
        postgres: |pool| Ok(sqlx::query_as(LIST)
            .bind(id)
            .bind(include_internal)
            .fetch_all(pool)
            .await?),
    )
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
    const SET_ASSIGNEE: &str = "UPDATE incidents SET assignee_id = $2 WHERE id = $1";
    // On PostgreSQL the department's row is locked while picking.
    let lock_sql = department_lock_sql(db);
    let sql = format!(
        "UPDATE incidents SET department_id = $3, assignee_id = NULL, version = version + 1, updated_at = $4 \
         WHERE id = $1 AND version = $2 RETURNING {INCIDENT_COLUMNS}"
    );
    let (id, version, actor) = (incident.id.0, incident.version, actor.to_owned());
    let (from_department, from_assignee) = (incident.department_id, incident.assignee_id);
    let at = now.millis();
    // The events of a move: the department's, then the assignee's when it changed.
    let events = move |picked: Option<(UserId, AssignmentStrategy)>| {
        let new_assignee = picked.map(|(user, _)| user);
        let moved = EventData::DepartmentAssigned {
            from: from_department,
            to: department,
        };
        let changed = (from_assignee != new_assignee).then(|| EventData::AssigneeChanged {
            from: from_assignee,
            to: new_assignee,
            strategy: picked.map_or(AssignmentStrategy::Manual, |(_, s)| s),
        });
        (moved, changed)
    };
    let (row, new_assignee) = grouped_write!(db,
        sqlite: |conn| {
            let row = direct::query_optional(
                conn,
                &sql,
                &[&id, &version, &department.0, &at],
                IncidentRow::from_direct,
            )?;
            let row = row.ok_or(StoreError::Stale)?;
            let picked = auto_assign_direct(conn, department.0)?;
            let new_assignee = picked.map(|(user, _)| user);
            if let Some(user) = new_assignee {
                direct::execute(conn, SET_ASSIGNEE, &[&id, &user.0])?;
            }
            let (moved, changed) = events(picked);
            insert_event_direct(conn, id, &actor, at, &moved)?;
            if let Some(changed) = changed {
                insert_event_direct(conn, id, &actor, at, &changed)?;
            }
            Ok((row, new_assignee))
        },
        postgres: |tx| {
            let row: Option<IncidentRow> = sqlx::query_as(composed(&sql))
                .bind(id)
                .bind(version)
                .bind(department.0)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
            let row = row.ok_or(StoreError::Stale)?;
            let picked = auto_assign!(&mut *tx, department.0, lock_sql);
            let new_assignee = picked.map(|(user, _)| user);
            if let Some(user) = new_assignee {
                sqlx::query(SET_ASSIGNEE)
                    .bind(id)
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await?;
            }
            // Events last: on PostgreSQL the first event takes the commit-order lock.
            let (moved, changed) = events(picked);
            insert_event!(&mut *tx, id, &actor, at, &moved);
            if let Some(changed) = changed {
                insert_event!(&mut *tx, id, &actor, at, &changed);
            }
            Ok((row, new_assignee))
        },
    )?;
    let mut updated = row.into_incident(now);
    updated.assignee_id = new_assignee;
    Ok(updated)
}

/// Whether `user` is an enabled staff member (or admin) of `department`.
pub async fn is_department_staff(
    db: &Db,
    user: UserId,
    department: DepartmentId,
) -> StoreResult<bool> {
    const COUNT: &str = "SELECT COUNT(*) AS n FROM users u JOIN department_members m ON m.user_id = u.id \
               WHERE u.id = $1 AND m.department_id = $2 AND u.role IN ('staff', 'admin') AND NOT u.disabled";
    let (user, department) = (user.0, department.0);
    let n: Option<i64> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, COUNT, &[&user, &department], |r| r.get("n")),
        postgres: |pool| Ok(sqlx::query_scalar(COUNT)
            .bind(user)
            .bind(department)
            .fetch_optional(pool)
            .await?),
    )?;
    Ok(n.unwrap_or(0) > 0)
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
    let assignee = assignee.map(|u| u.0);
    versioned_update(db, incident, sql, assignee, actor, event, now).await
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
    versioned_update(db, incident, sql, visibility.as_str(), actor, event, now).await
}

/// Runs `sql` (an `UPDATE` of `incident` guarded by its version: `$1` id, `$2` version, `$3`
/// `value`, `$4` now, returning [`INCIDENT_COLUMNS`]) with its `event`; [`StoreError::Stale`]
/// when the incident changed since it was read.
async fn versioned_update<V>(
    db: &Db,
    incident: &Incident,
    sql: String,
    value: V,
    actor: &str,
    event: EventData,
    now: Timestamp,
) -> StoreResult<Incident>
where
    V: rusqlite::ToSql
        + for<'q> sqlx::Encode<'q, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + Send
        + 'static,
{
    let (id, version, actor) = (incident.id.0, incident.version, actor.to_owned());
    let at = now.millis();
    let row = grouped_write!(db,
        sqlite: |conn| guarded_update_direct(
            conn,
            &sql,
            &[&id, &version, &value, &at],
            id,
            &actor,
            at,
            [&event],
        ),
        postgres: |tx| {
            let query = sqlx::query_as(composed(&sql))
                .bind(id)
                .bind(version)
                .bind(value)
                .bind(at);
            guarded_update_postgres(&mut *tx, query, id, &actor, at, [&event]).await
        },
    )?;
    Ok(row.into_incident(now))
}

/// Runs `sql`, an `UPDATE` of incident `id` guarded by the version read (`WHERE id = $1 AND
/// version = $2`, returning [`INCIDENT_COLUMNS`]), and appends `events` in order;
/// [`StoreError::Stale`] when no row matched: the incident changed since it was read.
pub(super) fn guarded_update_direct<'e>(
    conn: &direct::Conn,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
    id: i64,
    actor: &str,
    at: i64,
    events: impl IntoIterator<Item = &'e EventData>,
) -> StoreResult<IncidentRow> {
    let row = direct::query_optional(conn, sql, args, IncidentRow::from_direct)?;
    let row = row.ok_or(StoreError::Stale)?;
    for event in events {
        insert_event_direct(conn, id, actor, at, event)?;
    }
    Ok(row)
}

/// [`guarded_update_direct`] inside a PostgreSQL transaction, for `query` with its parameters
/// bound.
pub(super) async fn guarded_update_postgres<'e>(
    tx: &mut sqlx::PgConnection,
    query: crate::PgQuery<'_, IncidentRow>,
    id: i64,
    actor: &str,
    at: i64,
    events: impl IntoIterator<Item = &'e EventData>,
) -> StoreResult<IncidentRow> {
    let row = query.fetch_optional(&mut *tx).await?;
    let row = row.ok_or(StoreError::Stale)?;
    for event in events {
        insert_event!(&mut *tx, id, actor, at, event);
    }
    Ok(row)
}

const INSERT_VOTE: &str =
    "INSERT INTO incident_votes (incident_id, user_id, created_at) VALUES ($1, $2, $3)";
const DELETE_VOTE: &str = "DELETE FROM incident_votes WHERE incident_id = $1 AND user_id = $2";
const ADD_VOTE: &str = "UPDATE incidents SET votes = votes + 1 WHERE id = $1 RETURNING votes";
const REMOVE_VOTE: &str = "UPDATE incidents SET votes = votes - 1 WHERE id = $1 RETURNING votes";
const VOTES: &str = "SELECT votes FROM incidents WHERE id = $1";

/// The `votes` a vote statement returned, or an error when the incident's row is gone.
fn counted(votes: Option<i64>) -> StoreResult<i64> {
    votes
        .ok_or_else(|| StoreError::Other(anyhow::anyhow!("the incident's votes were not returned")))
}

/// Records `user`'s "me too" and returns the new vote count. A second vote is
/// [`StoreError::Duplicate`]. Votes do not change the incident's version.
pub async fn vote(db: &Db, incident: IncidentId, user: UserId, now: Timestamp) -> StoreResult<i64> {
    let (id, at, actor) = (incident.0, now.millis(), format!("user:{user}"));
    let voted = move |votes: i64| EventData::Voted {
        user_id: user,
        votes: votes.max(0) as u32,
    };
    grouped_write!(db,
        sqlite: |conn| {
            direct::execute(conn, INSERT_VOTE, &[&id, &user.0, &at])
                .map_err(|e| StoreError::unique_direct(e, "vote"))?;
            let votes = counted(direct::query_optional(conn, ADD_VOTE, &[&id], |r| r.get("votes"))?)?;
            insert_event_direct(conn, id, &actor, at, &voted(votes))?;
            Ok(votes)
        },
        postgres: |tx| {
            sqlx::query(INSERT_VOTE)
                .bind(id)
                .bind(user.0)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::unique(e, "incident_votes_pkey", "vote"))?;
            let votes: i64 = sqlx::query_scalar(ADD_VOTE).bind(id).fetch_one(&mut *tx).await?;
            insert_event!(&mut *tx, id, &actor, at, &voted(votes));
            Ok(votes)
        },
    )
}

/// Withdraws `user`'s vote and returns the incident's votes. Idempotent: without a vote to
/// withdraw nothing changes (no event) and the current count is returned.
pub async fn withdraw_vote(
    db: &Db,
    incident: IncidentId,
    user: UserId,
    now: Timestamp,
) -> StoreResult<i64> {
    let (id, at, actor) = (incident.0, now.millis(), format!("user:{user}"));
    let withdrawn = move |votes: i64| EventData::VoteWithdrawn {
        user_id: user,
        votes: votes.max(0) as u32,
    };
    grouped_write!(db,
        sqlite: |conn| {
            let removed = direct::execute(conn, DELETE_VOTE, &[&id, &user.0])?;
            if removed == 0 {
                return counted(direct::query_optional(conn, VOTES, &[&id], |r| r.get("votes"))?);
            }
            let votes = counted(direct::query_optional(conn, REMOVE_VOTE, &[&id], |r| r.get("votes"))?)?;
            insert_event_direct(conn, id, &actor, at, &withdrawn(votes))?;
            Ok(votes)
        },
        postgres: |tx| {
            let removed = sqlx::query(DELETE_VOTE)
                .bind(id)
                .bind(user.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if removed == 0 {
                let votes: i64 = sqlx::query_scalar(VOTES).bind(id).fetch_one(&mut *tx).await?;
                return Ok(votes);
            }
            let votes: i64 = sqlx::query_scalar(REMOVE_VOTE).bind(id).fetch_one(&mut *tx).await?;
            insert_event!(&mut *tx, id, &actor, at, &withdrawn(votes));
            Ok(votes)
        },
    )
}

/// Whether `user` has voted for `incident`.
pub async fn has_voted(db: &Db, incident: IncidentId, user: UserId) -> StoreResult<bool> {
    const COUNT: &str =
        "SELECT COUNT(*) AS n FROM incident_votes WHERE incident_id = $1 AND user_id = $2";
    let (id, user) = (incident.0, user.0);
    let n: Option<i64> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, COUNT, &[&id, &user], |r| r.get("n")),
        postgres: |pool| Ok(sqlx::query_scalar(COUNT)
            .bind(id)
            .bind(user)
            .fetch_optional(pool)
            .await?),
    )?;
    Ok(n.unwrap_or(0) > 0)
}
