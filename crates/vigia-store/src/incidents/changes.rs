//! Changing incidents. Each function runs one short transaction that updates the incident
//! (guarded by its version where a stale write could lose a change) and appends its events.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::catalog::Urgency;
use vigia_domain::ids::{CommentId, DepartmentId, IncidentId, UserId};
use vigia_domain::incidents::{
    AssignmentStrategy, Candidate, EventData, IncidentVisibility, NewComment, NewIncident,
    SlaClock, SlaEffect, SlaPolicy, Status, Visibility, is_reopen, pick_assignee, sla_effect,
};

use super::events::insert_event;
use super::{INCIDENT_COLUMNS, Incident, IncidentRow};
use crate::idempotency::{Claim, claim_key};
use crate::{Db, StoreError, StoreResult, catalog, composed, on_reader, on_writer};

/// Who reported an incident.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub user: Option<UserId>,
    /// `user:12`, `api_key:3`, `system`.
    pub label: String,
}

/// The SLA policy for a category and urgency: the admin's, or the suggested default.
pub async fn sla_policy(
    db: &Db,
    category: vigia_domain::ids::CategoryId,
    urgency: Urgency,
) -> StoreResult<SlaPolicy> {
    let sql = "SELECT acknowledge_within_secs, resolve_within_secs, raise_urgency_on_breach FROM sla_policies \
               WHERE category_id = $1 AND urgency = $2";
    let row: Option<(i64, i64, bool)> = on_reader!(db, |pool| sqlx::query_as(sql)
        .bind(category.0)
        .bind(urgency.as_str())
        .fetch_optional(pool)
        .await?);
    Ok(match row {
        Some((ack, resolve, raise)) => SlaPolicy::parse(ack, resolve, raise)
            .unwrap_or_else(|_| SlaPolicy::suggested_for(urgency)),
        None => SlaPolicy::suggested_for(urgency),
    })
}

/// What creating an incident resolves from the catalog before writing: routing and SLA.
#[derive(Debug, Clone)]
pub struct Routing {
    pub department: Option<DepartmentId>,
    pub urgency: Urgency,
    pub policy: SlaPolicy,
}

/// Resolves the department, urgency and SLA policy of `new` from its category's defaults,
/// checking every reference. Used by create and by preview.
pub async fn route(db: &Db, new: &NewIncident) -> StoreResult<Routing> {
    let category = catalog::find_category(db, new.category_id)
        .await
        .map_err(StoreError::missing_reference("category_id", "category"))?;
    if let Some(department) = new.department_id
        && !catalog::department_exists(db, department).await?
    {
        return Err(StoreError::UnknownReference {
            field: "department_id".into(),
            entity: "department",
        });
    }
    if let Some(zone) = new.location.as_ref().and_then(|l| l.zone()) {
        catalog::find_zone(db, zone)
            .await
            .map_err(StoreError::missing_reference("zone_id", "zone"))?;
    }
    let department = new
        .department_id
        .or(category.default_department_id.map(DepartmentId));
    let urgency = new.urgency.unwrap_or(category.default_urgency);
    let policy = sla_policy(db, new.category_id, urgency).await?;
    Ok(Routing {
        department,
        urgency,
        policy,
    })
}

/// Picks an assignee in `$department` by its strategy, inside the transaction `$tx`, and records
/// the pick for round robin. Evaluates to `Option<(UserId, AssignmentStrategy)>`.
macro_rules! auto_assign {
    ($tx:expr, $department:expr, $lock_sql:expr) => {{
        let department: i64 = $department;
        let settings: Option<(String, Option<i64>)> =
            sqlx::query_as(composed($lock_sql)).bind(department).fetch_optional(&mut *$tx).await?;
        match settings.and_then(|(s, last)| AssignmentStrategy::parse("strategy", &s).ok().map(|s| (s, last))) {
            Some((strategy, last)) if strategy != AssignmentStrategy::Manual => {
                let rows: Vec<(i64, bool, i64)> = sqlx::query_as(
                    "SELECT u.id, u.away, (SELECT COUNT(*) FROM incidents i WHERE i.assignee_id = u.id \
                       AND i.status NOT IN ('resolved', 'closed')) \
                     FROM users u JOIN department_members m ON m.user_id = u.id \
                     WHERE m.department_id = $1 AND u.role IN ('staff', 'admin') AND NOT u.disabled ORDER BY u.id",
                )
                .bind(department)
                .fetch_all(&mut *$tx)
                .await?;
                let candidates: Vec<Candidate> = rows
                    .into_iter()
                    .map(|(id, away, open)| Candidate { user_id: UserId(id), away, open_incidents: open.max(0) as u32 })
                    .collect();
                match pick_assignee(strategy, &candidates, last.map(UserId)) {
                    Some(user) => {
                        sqlx::query("UPDATE departments SET last_assigned_user_id = $2 WHERE id = $1")
                            .bind(department)
                            .bind(user.0)
                            .execute(&mut *$tx)
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

fn department_lock_sql(db: &Db) -> &'static str {
    if db.is_sqlite() {
        "SELECT assignment_strategy, last_assigned_user_id FROM departments WHERE id = $1"
    } else {
        "SELECT assignment_strategy, last_assigned_user_id FROM departments WHERE id = $1 FOR UPDATE"
    }
}

/// Creates an incident routed by its category, with its SLA clock started, auto-assigned when
/// its department says so, and its `created` (and `assignee_changed`) events — in one
/// transaction. With a `claim`, a replayed `Idempotency-Key` fails with
/// [`StoreError::Duplicate`] and creates nothing.
#[tracing::instrument(skip_all, fields(category_id = %new.category_id))]
pub async fn create(
    db: &Db,
    new: &NewIncident,
    reporter: &Reporter,
    claim: Option<&Claim>,
    now: Timestamp,
) -> StoreResult<Incident> {
    let routing = route(db, new).await?;
    let clock = SlaClock::start(&routing.policy, now);
    let record = clock.record();
    let lock_sql = department_lock_sql(db);
    let location = new.location.as_ref();
    let insert = format!(
        "INSERT INTO incidents (category_id, department_id, reporter_id, reporter_label, title, description, zone_id, \
         location_text, lat, lon, urgency, status, source, visibility, sla_started_at, sla_acknowledge_secs, \
         sla_resolve_secs, sla_raise_urgency, acknowledge_due_at, resolve_due_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'new', $12, $13, $14, $15, $16, $17, $18, $19, $14, $14) \
         RETURNING {INCIDENT_COLUMNS}"
    );
    let created = EventData::created(
        routing.urgency,
        new.category_id,
        routing.department,
        new.source,
        new.visibility,
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: IncidentRow = sqlx::query_as(composed(&insert))
            .bind(new.category_id.0)
            .bind(routing.department.map(|d| d.0))
            .bind(reporter.user.map(|u| u.0))
            .bind(&reporter.label)
            .bind(new.title.as_str())
            .bind(new.description.as_str())
            .bind(location.and_then(|l| l.zone()).map(|z| z.0))
            .bind(location.and_then(|l| l.text()))
            .bind(location.and_then(|l| l.point()).map(|p| p.lat))
            .bind(location.and_then(|l| l.point()).map(|p| p.lon))
            .bind(routing.urgency.as_str())
            .bind(new.source.as_str())
            .bind(new.visibility.as_str())
            .bind(now.millis())
            .bind(record.acknowledge_within_secs)
            .bind(record.resolve_within_secs)
            .bind(record.raise_urgency_on_breach)
            .bind(clock.acknowledge_due().millis())
            .bind(clock.resolve_due(now).millis())
            .fetch_one(&mut *tx)
            .await?;
        let id = row.id;
        if let Some(claim) = claim {
            claim_key!(
                &mut *tx,
                claim,
                201u16,
                format!("incident:{id}"),
                now.millis()
            );
        }
        let mut incident = row.into_incident(now);
        let mut assigned = None;
        if let Some(department) = routing.department
            && let Some((user, strategy)) = auto_assign!(tx, department.0, lock_sql)
        {
            sqlx::query("UPDATE incidents SET assignee_id = $2 WHERE id = $1")
                .bind(id)
                .bind(user.0)
                .execute(&mut *tx)
                .await?;
            incident.assignee_id = Some(user);
            assigned = Some(EventData::AssigneeChanged {
                from: None,
                to: Some(user),
                strategy,
            });
        }
        // Events last: on PostgreSQL the first event takes the commit-order lock.
        insert_event!(&mut *tx, id, &reporter.label, now.millis(), &created);
        if let Some(event) = &assigned {
            insert_event!(&mut *tx, id, "system", now.millis(), event);
        }
        tx.commit().await?;
        Ok(incident)
    })
}

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
        let picked = auto_assign!(tx, department.0, lock_sql);
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

/// Withdraws `user`'s vote; [`StoreError::NotFound`] if there was none.
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
            return Err(StoreError::NotFound);
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
