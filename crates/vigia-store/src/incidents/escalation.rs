//! SLA escalation: incidents past their acknowledge or resolve due time get an `escalated`
//! event, and their urgency raised one level when their SLA policy says so — once per breach.
//!
//! Each breach is marked on the incident row (`sla_acknowledge_escalated_at`,
//! `sla_resolve_escalated_at`) in the transaction that writes its event, so a second sweep finds
//! nothing to do and two nodes sweeping at once escalate it once (the update is conditional on
//! the mark being empty). Raising the urgency keeps the incident's SLA clock: the targets it
//! already missed stay the ones it is measured against, so one breach cannot cascade into
//! another through a tighter policy. Notifying the department's escalation contacts is the
//! consumers' part: the event reaches them through the outbox (`event.dispatch` jobs).

use serde::Serialize;
use vigia_domain::Timestamp;
use vigia_domain::catalog::Urgency;
use vigia_domain::ids::{DepartmentId, IncidentId};
use vigia_domain::incidents::{EventData, SlaBreach, Status, raise_urgency};

use super::events::{insert_event, insert_event_direct};
use super::{INCIDENT_COLUMNS, Incident, IncidentRow};
use crate::{Db, StoreResult, composed, direct, direct_read, grouped_write};

/// One escalation written.
#[derive(Debug, Clone, Serialize)]
pub struct Escalation {
    pub incident_id: IncidentId,
    pub department_id: Option<DepartmentId>,
    pub breach: SlaBreach,
    pub urgency_from: Urgency,
    /// The new urgency, when the policy raised it.
    pub raised_to: Option<Urgency>,
    pub event_id: i64,
}

const ACK_CANDIDATES: &str = "SELECT id FROM incidents WHERE acknowledged_at IS NULL AND acknowledge_due_at < $1 \
     AND sla_acknowledge_escalated_at IS NULL AND status NOT IN ('resolved', 'closed') \
     ORDER BY acknowledge_due_at, id";
const RESOLVE_CANDIDATES: &str = "SELECT id FROM incidents WHERE resolve_due_at IS NOT NULL AND resolve_due_at < $1 \
     AND sla_resolve_escalated_at IS NULL AND resolved_at IS NULL AND status NOT IN ('resolved', 'closed') \
     ORDER BY resolve_due_at, id";

/// Escalates up to `limit` breaches of each kind as of `now`; returns what it wrote.
#[tracing::instrument(skip_all)]
pub async fn escalate_breaches(
    db: &Db,
    now: Timestamp,
    limit: usize,
) -> StoreResult<Vec<Escalation>> {
    let mut done = Vec::new();
    for (breach, sql) in [
        (SlaBreach::Acknowledge, ACK_CANDIDATES),
        (SlaBreach::Resolve, RESOLVE_CANDIDATES),
    ] {
        let sql = format!("{sql}{}", crate::sql::limit(limit));
        let at = now.millis();
        let ids: Vec<i64> = direct_read!(db,
            sqlite: |conn| direct::query(conn, &sql, &[&at], |r| r.get("id")),
            postgres: |pool| Ok(sqlx::query_scalar(crate::composed(&sql))
                .bind(at)
                .fetch_all(pool)
                .await?),
        )?;
        for id in ids {
            if let Some(escalation) = escalate_one(db, IncidentId(id), breach, now).await? {
                done.push(escalation);
            }
        }
    }
    Ok(done)
}

/// Escalates one breach of one incident if it is (still) breached and not yet escalated.
#[tracing::instrument(skip(db, now), fields(incident_id = %incident))]
pub async fn escalate_one(
    db: &Db,
    incident: IncidentId,
    breach: SlaBreach,
    now: Timestamp,
) -> StoreResult<Option<Escalation>> {
    let mark = match breach {
        SlaBreach::Acknowledge => "sla_acknowledge_escalated_at",
        SlaBreach::Resolve => "sla_resolve_escalated_at",
    };
    let lock = if db.is_sqlite() { "" } else { " FOR UPDATE" };
    let read =
        format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1 AND {mark} IS NULL{lock}");
    let update = format!(
        "UPDATE incidents SET urgency = $2, {mark} = $3, version = version + 1, updated_at = $3 \
         WHERE id = $1 AND {mark} IS NULL"
    );
    let (id, at) = (incident.0, now.millis());
    let escalated = move |current: Incident, raised_to: Option<Urgency>, event_id| Escalation {
        incident_id: incident,
        department_id: current.department_id,
        breach,
        urgency_from: current.urgency,
        raised_to,
        event_id,
    };
    let event = move |raised_to| EventData::Escalated { breach, raised_to };
    grouped_write!(db,
        sqlite: |conn| {
            let row = direct::query_optional(conn, &read, &[&id], IncidentRow::from_direct)?;
            let Some((current, raised_to)) = row.and_then(|row| breached(row, breach, now)) else {
                return Ok(None);
            };
            let urgency = raised_to.unwrap_or(current.urgency).as_str();
            if direct::execute(conn, &update, &[&id, &urgency, &at])? != 1 {
                return Ok(None);
            }
            let event_id = insert_event_direct(conn, id, "system", at, &event(raised_to))?;
            Ok(Some(escalated(current, raised_to, event_id)))
        },
        postgres: |tx| {
            let row: Option<IncidentRow> = sqlx::query_as(composed(&read))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((current, raised_to)) = row.and_then(|row| breached(row, breach, now)) else {
                return Ok(None);
            };
            let changed = sqlx::query(composed(&update))
                .bind(id)
                .bind(raised_to.unwrap_or(current.urgency).as_str())
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed != 1 {
                return Ok(None);
            }
            let event_id = insert_event!(&mut *tx, id, "system", at, &event(raised_to));
            Ok(Some(escalated(current, raised_to, event_id)))
        },
    )
}

/// The incident of `row` as of `now` and the urgency its policy raises it to, when it is open
/// and `breach` is (still) breached.
fn breached(
    row: IncidentRow,
    breach: SlaBreach,
    now: Timestamp,
) -> Option<(Incident, Option<Urgency>)> {
    let current = row.into_incident(now);
    let open = !matches!(current.status, Status::Resolved | Status::Closed);
    let breached = match breach {
        SlaBreach::Acknowledge => {
            current.acknowledged_at.is_none() && current.sla.acknowledge_breached
        }
        SlaBreach::Resolve => {
            current.resolved_at.is_none() && !current.sla.paused && current.sla.resolve_breached
        }
    };
    if !open || !breached {
        return None;
    }
    let raised_to = if current.sla_clock.raise_urgency_on_breach {
        raise_urgency(current.urgency)
    } else {
        None
    };
    Some((current, raised_to))
}
