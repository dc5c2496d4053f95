//! Creating incidents: routing by category, the SLA clock, auto-assignment and the first
//! events, in one transaction — on SQLite through the group commit, so a burst of reports
//! shares commits instead of waiting for the disk one by one, and runs as direct calls on its
//! connection (see [`crate::group_commit`]).

use std::sync::LazyLock;

use vigia_domain::Timestamp;
use vigia_domain::catalog::Urgency;
use vigia_domain::ids::{DepartmentId, UserId};
use vigia_domain::incidents::{AssignmentStrategy, EventData, NewIncident, SlaClock, SlaPolicy};

use super::assign::{POSTGRES_DEPARTMENT_LOCK, auto_assign, auto_assign_direct};
use super::events::{insert_event, insert_event_direct};
use super::{INCIDENT_COLUMNS, Incident, IncidentRow};
use crate::idempotency::{Claim, claim_key, claim_key_direct};
use crate::{Db, StoreError, StoreResult, composed, direct};

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
    const POLICY: &str = "SELECT acknowledge_within_secs, resolve_within_secs, raise_urgency_on_breach FROM sla_policies \
               WHERE category_id = $1 AND urgency = $2";
    let (category, name) = (category.0, urgency.as_str());
    let row: Option<(i64, i64, bool)> = crate::direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, POLICY, &[&category, &name], |r| {
            Ok((
                r.get("acknowledge_within_secs")?,
                r.get("resolve_within_secs")?,
                r.get("raise_urgency_on_breach")?,
            ))
        }),
        postgres: |pool| Ok(sqlx::query_as(POLICY)
            .bind(category)
            .bind(name)
            .fetch_optional(pool)
            .await?),
    )?;
    Ok(policy_or_suggested(row, urgency))
}

/// A stored policy (acknowledge and resolve within, raise on breach), or the suggested one for
/// `urgency` when there is none or it no longer parses.
pub(super) fn policy_or_suggested(stored: Option<(i64, i64, bool)>, urgency: Urgency) -> SlaPolicy {
    stored
        .and_then(|(ack, resolve, raise)| SlaPolicy::parse(ack, resolve, raise).ok())
        .unwrap_or_else(|| SlaPolicy::suggested_for(urgency))
}

/// What creating an incident resolves from the catalog before writing: routing and SLA.
#[derive(Debug, Clone)]
pub struct Routing {
    pub department: Option<DepartmentId>,
    /// The department's strategy when the incident was routed. Creation only reads (and on
    /// PostgreSQL locks) the department again for an automatic one: a manual department costs
    /// its write nothing.
    pub strategy: Option<AssignmentStrategy>,
    pub urgency: Urgency,
    pub policy: SlaPolicy,
}

/// What routing reads, in one query: the category's defaults, the department the incident
/// goes to (given, or the category's) with its strategy, whether the zone exists, and the SLA
/// policy of the category at the incident's urgency (given, or the category's).
const ROUTE: &str = "SELECT c.default_urgency, d.id, d.assignment_strategy, \
     (SELECT COUNT(*) FROM zones z WHERE z.id = $4), \
     p.acknowledge_within_secs, p.resolve_within_secs, p.raise_urgency_on_breach \
     FROM categories c \
     LEFT JOIN departments d ON d.id = COALESCE($2, c.default_department_id) \
     LEFT JOIN sla_policies p ON p.category_id = c.id AND p.urgency = COALESCE($3, c.default_urgency) \
     WHERE c.id = $1";

type RouteRow = (
    String,
    Option<i64>,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<bool>,
);

/// Resolves the department, urgency and SLA policy of `new` from its category's defaults,
/// checking every reference. Used by create and by preview.
pub async fn route(db: &Db, new: &NewIncident) -> StoreResult<Routing> {
    let zone = new.location.as_ref().and_then(|l| l.zone());
    let (category, department, urgency) = (
        new.category_id.0,
        new.department_id.map(|d| d.0),
        new.urgency.map(|u| u.as_str()),
    );
    let zone_id = zone.map(|z| z.0);
    // Hot: every report is routed here first.
    let row: Option<RouteRow> = crate::direct_read!(db,
        sqlite: |conn| direct::query_optional(
            conn,
            ROUTE,
            &[&category, &department, &urgency, &zone_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        ),
        postgres: |pool| Ok(sqlx::query_as(ROUTE)
            .bind(category)
            .bind(department)
            .bind(urgency)
            .bind(zone_id)
            .fetch_optional(pool)
            .await?),
    )?;
    let missing = |field: &str, entity| StoreError::UnknownReference {
        field: field.into(),
        entity,
    };
    let Some((default_urgency, department, strategy, zones, ack, resolve, raise)) = row else {
        return Err(missing("category_id", "category"));
    };
    if zone.is_some() && zones == 0 {
        return Err(missing("zone_id", "zone"));
    }
    if new.department_id.is_some() && department.is_none() {
        return Err(missing("department_id", "department"));
    }
    let urgency = match new.urgency {
        Some(urgency) => urgency,
        None => Urgency::parse("default_urgency", &default_urgency)
            .map_err(|e| StoreError::Other(anyhow::anyhow!("a category's urgency: {e:?}")))?,
    };
    let stored = match (ack, resolve, raise) {
        (Some(ack), Some(resolve), Some(raise)) => Some((ack, resolve, raise)),
        _ => None,
    };
    let policy = policy_or_suggested(stored, urgency);
    Ok(Routing {
        department: department.map(DepartmentId),
        strategy: strategy
            .map(|s| AssignmentStrategy::parse("assignment_strategy", &s).unwrap_or_default()),
        urgency,
        policy,
    })
}

/// Creates an incident routed by its category, with its SLA clock started, auto-assigned when
/// its department says so, and its `created` (and `assignee_changed`) events — in one
/// transaction. With a `claim`, a replayed `Idempotency-Key` fails with
/// [`StoreError::Duplicate`] and creates nothing. Returns only once the incident is durable.
#[tracing::instrument(skip_all, fields(category_id = %new.category_id))]
pub async fn create(
    db: &Db,
    new: &NewIncident,
    reporter: &Reporter,
    claim: Option<&Claim>,
    now: Timestamp,
) -> StoreResult<Incident> {
    let routing = route(db, new).await?;
    let row = NewRow::new(new, reporter, &routing, claim.cloned(), now);
    let stored = crate::grouped_write!(db,
        sqlite: |conn| write_direct(conn, &row),
        postgres: |conn| write_postgres(conn, row).await,
    )?;
    Ok(stored.into_incident(now))
}

/// Everything creation writes, resolved beforehand and owned, so the write can wait its turn
/// in the group commit.
struct NewRow {
    category_id: i64,
    department: Option<DepartmentId>,
    auto_assigns: bool,
    reporter_id: Option<i64>,
    reporter_label: String,
    title: String,
    description: String,
    zone_id: Option<i64>,
    location_text: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    urgency: &'static str,
    source: &'static str,
    visibility: &'static str,
    clock: SlaClock,
    created: EventData,
    claim: Option<Claim>,
    now: Timestamp,
}

impl NewRow {
    fn new(
        new: &NewIncident,
        reporter: &Reporter,
        routing: &Routing,
        claim: Option<Claim>,
        now: Timestamp,
    ) -> Self {
        let location = new.location.as_ref();
        let point = location.and_then(|l| l.point());
        Self {
            category_id: new.category_id.0,
            department: routing.department,
            auto_assigns: routing
                .strategy
                .is_some_and(|s| s != AssignmentStrategy::Manual),
            reporter_id: reporter.user.map(|u| u.0),
            reporter_label: reporter.label.clone(),
            title: new.title.as_str().to_owned(),
            description: new.description.as_str().to_owned(),
            zone_id: location.and_then(|l| l.zone()).map(|z| z.0),
            location_text: location.and_then(|l| l.text()).map(str::to_owned),
            lat: point.map(|p| p.lat),
            lon: point.map(|p| p.lon),
            urgency: routing.urgency.as_str(),
            source: new.source.as_str(),
            visibility: new.visibility.as_str(),
            clock: SlaClock::start(&routing.policy, now),
            created: EventData::created(
                routing.urgency,
                new.category_id,
                routing.department,
                new.source,
                new.visibility,
            ),
            claim,
            now,
        }
    }
}

/// The incident's columns and values: `$1`..`$20`, with `$15` the creation time. Returns the
/// stored row.
static INSERT_INCIDENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO incidents (category_id, department_id, assignee_id, reporter_id, reporter_label, title, \
         description, zone_id, location_text, lat, lon, urgency, status, source, visibility, sla_started_at, \
         sla_acknowledge_secs, sla_resolve_secs, sla_raise_urgency, acknowledge_due_at, resolve_due_at, \
         created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'new', $13, $14, $15, $16, $17, $18, $19, \
         $20, $15, $15) RETURNING {INCIDENT_COLUMNS}"
    )
});

/// The event of an automatic pick.
fn assignment_event(assigned: Option<(UserId, AssignmentStrategy)>) -> Option<EventData> {
    assigned.map(|(user, strategy)| EventData::AssigneeChanged {
        from: None,
        to: Some(user),
        strategy,
    })
}

/// Writes a [`NewRow`] on the SQLite group commit's connection: the assignee is picked first
/// (when the department assigns automatically), then the incident row, the idempotency claim
/// and the events. Returns the stored row.
fn write_direct(conn: &direct::Conn, row: &NewRow) -> StoreResult<IncidentRow> {
    let now = row.now;
    let assigned = match row.department {
        Some(department) if row.auto_assigns => auto_assign_direct(conn, department.0)?,
        _ => None,
    };
    let record = row.clock.record();
    let stored = direct::query_optional(
        conn,
        &INSERT_INCIDENT,
        &[
            &row.category_id,
            &row.department.map(|d| d.0),
            &assigned.map(|(user, _)| user.0),
            &row.reporter_id,
            &row.reporter_label,
            &row.title,
            &row.description,
            &row.zone_id,
            &row.location_text,
            &row.lat,
            &row.lon,
            &row.urgency,
            &row.source,
            &row.visibility,
            &now.millis(),
            &record.acknowledge_within_secs,
            &record.resolve_within_secs,
            &record.raise_urgency_on_breach,
            &row.clock.acknowledge_due().millis(),
            &row.clock.resolve_due(now).millis(),
        ],
        IncidentRow::from_direct,
    )?;
    let stored = stored.ok_or_else(|| {
        StoreError::Other(anyhow::anyhow!("inserting an incident returned no row"))
    })?;
    let id = stored.id;
    if let Some(claim) = &row.claim {
        claim_key_direct(conn, claim, 201, &format!("incident:{id}"), now.millis())?;
    }
    insert_event_direct(conn, id, &row.reporter_label, now.millis(), &row.created)?;
    if let Some(event) = assignment_event(assigned) {
        insert_event_direct(conn, id, "system", now.millis(), &event)?;
    }
    Ok(stored)
}

/// Writes a [`NewRow`] in `conn`, a PostgreSQL transaction: the same steps as
/// [`write_direct`], the department's row locked while picking so concurrent round-robin picks
/// take turns, and the events last (the first takes the commit-order lock, migration 0004).
/// Returns the stored row.
async fn write_postgres(conn: &mut sqlx::PgConnection, row: NewRow) -> StoreResult<IncidentRow> {
    let now = row.now;
    let assigned = match row.department {
        Some(department) if row.auto_assigns => {
            auto_assign!(&mut *conn, department.0, POSTGRES_DEPARTMENT_LOCK)
        }
        _ => None,
    };
    let record = row.clock.record();
    let stored: IncidentRow = sqlx::query_as(composed(&INSERT_INCIDENT))
        .bind(row.category_id)
        .bind(row.department.map(|d| d.0))
        .bind(assigned.map(|(user, _): (UserId, _)| user.0))
        .bind(row.reporter_id)
        .bind(&row.reporter_label)
        .bind(&row.title)
        .bind(&row.description)
        .bind(row.zone_id)
        .bind(row.location_text.as_deref())
        .bind(row.lat)
        .bind(row.lon)
        .bind(row.urgency)
        .bind(row.source)
        .bind(row.visibility)
        .bind(now.millis())
        .bind(record.acknowledge_within_secs)
        .bind(record.resolve_within_secs)
        .bind(record.raise_urgency_on_breach)
        .bind(row.clock.acknowledge_due().millis())
        .bind(row.clock.resolve_due(now).millis())
        .fetch_one(&mut *conn)
        .await?;
    let id = stored.id;
    if let Some(claim) = &row.claim {
        claim_key!(
            &mut *conn,
            claim,
            201u16,
            format!("incident:{id}"),
            now.millis()
        );
    }
    insert_event!(
        &mut *conn,
        id,
        &row.reporter_label,
        now.millis(),
        &row.created
    );
    if let Some(event) = assignment_event(assigned) {
        insert_event!(&mut *conn, id, "system", now.millis(), &event);
    }
    Ok(stored)
}
