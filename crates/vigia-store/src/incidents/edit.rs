//! Editing an incident's content, category and urgency, and the SLA policies that apply.

use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::catalog::Urgency;
use vigia_domain::ids::CategoryId;
use vigia_domain::incidents::{
    EventData, IncidentDescription, IncidentTitle, Location, SlaClock, SlaPolicy,
};

use super::changes::{guarded_update_direct, guarded_update_postgres};
use super::create::policy_or_suggested;
use super::{INCIDENT_COLUMNS, Incident, sla_policy};
use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::{
    ChangeAuthor, Db, StoreError, StoreResult, catalog, composed, direct, direct_read,
    grouped_write,
};

/// What changes; `None` leaves a field as it is. `location: Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct IncidentEdit {
    pub title: Option<IncidentTitle>,
    pub description: Option<IncidentDescription>,
    pub category: Option<CategoryId>,
    pub urgency: Option<Urgency>,
    pub location: Option<Option<Location>>,
}

/// Applies `edit` to `incident` (as read). A new category or urgency re-applies the matching SLA
/// policy to the incident's clock, keeping its start and every pause (including one running).
/// Writes `updated` (and `urgency_changed`) events; fails with [`StoreError::Stale`] when the
/// incident changed since it was read.
pub async fn edit(
    db: &Db,
    incident: &Incident,
    edit: &IncidentEdit,
    actor: &str,
    now: Timestamp,
) -> StoreResult<Incident> {
    if let Some(category) = edit.category {
        catalog::find_category(db, category)
            .await
            .map_err(StoreError::missing_reference("category_id", "category"))?;
    }
    if let Some(zone) = edit
        .location
        .as_ref()
        .and_then(|l| l.as_ref())
        .and_then(|l| l.zone())
    {
        catalog::find_zone(db, zone)
            .await
            .map_err(StoreError::missing_reference("zone_id", "zone"))?;
    }
    let category = edit.category.unwrap_or(incident.category_id);
    let urgency = edit.urgency.unwrap_or(incident.urgency);
    let mut clock = SlaClock::from(incident.sla_clock);
    if category != incident.category_id || urgency != incident.urgency {
        clock.reapply_policy(&sla_policy(db, category, urgency).await?);
    }
    let record = clock.record();
    let resolve_due = (!clock.is_paused() && incident.resolved_at.is_none())
        .then(|| clock.resolve_due(now).millis());
    let mut fields = Vec::new();
    let title = edit
        .title
        .as_ref()
        .map_or(incident.title.as_str(), |t| t.as_str());
    let description = edit
        .description
        .as_ref()
        .map_or(incident.description.as_str(), |d| d.as_str());
    if title != incident.title {
        fields.push("title".to_owned());
    }
    if description != incident.description {
        fields.push("description".to_owned());
    }
    if category != incident.category_id {
        fields.push("category_id".to_owned());
    }
    let (zone, text, point) = match &edit.location {
        Some(location) => {
            fields.push("location".to_owned());
            let l = location.as_ref();
            (
                l.and_then(|l| l.zone()).map(|z| z.0),
                l.and_then(|l| l.text()).map(str::to_owned),
                l.and_then(|l| l.point()),
            )
        }
        None => (
            incident.zone_id.map(|z| z.0),
            incident.location_text.clone(),
            incident.point,
        ),
    };
    let sql = format!(
        "UPDATE incidents SET title = $3, description = $4, category_id = $5, urgency = $6, zone_id = $7, \
         location_text = $8, lat = $9, lon = $10, sla_acknowledge_secs = $11, sla_resolve_secs = $12, \
         sla_raise_urgency = $13, acknowledge_due_at = $14, resolve_due_at = $15, version = version + 1, \
         updated_at = $16 WHERE id = $1 AND version = $2 RETURNING {INCIDENT_COLUMNS}"
    );
    let (id, version, actor) = (incident.id.0, incident.version, actor.to_owned());
    let (title, description) = (title.to_owned(), description.to_owned());
    let (lat, lon) = (point.map(|p| p.lat), point.map(|p| p.lon));
    let acknowledge_due = clock.acknowledge_due().millis();
    let at = now.millis();
    let urgency_changed = (urgency != incident.urgency)
        .then(|| EventData::urgency_changed(incident.urgency, urgency));
    let updated = (!fields.is_empty()).then_some(EventData::Updated { fields });
    let (category, urgency) = (category.0, urgency.as_str());
    let row = grouped_write!(db,
        sqlite: |conn| {
            guarded_update_direct(
                conn,
                &sql,
                &[
                    &id,
                    &version,
                    &title,
                    &description,
                    &category,
                    &urgency,
                    &zone,
                    &text,
                    &lat,
                    &lon,
                    &record.acknowledge_within_secs,
                    &record.resolve_within_secs,
                    &record.raise_urgency_on_breach,
                    &acknowledge_due,
                    &resolve_due,
                    &at,
                ],
                id,
                &actor,
                at,
                [&urgency_changed, &updated].into_iter().flatten(),
            )
        },
        postgres: |tx| {
            let query = sqlx::query_as(composed(&sql))
                .bind(id)
                .bind(version)
                .bind(&title)
                .bind(&description)
                .bind(category)
                .bind(urgency)
                .bind(zone)
                .bind(text.as_deref())
                .bind(lat)
                .bind(lon)
                .bind(record.acknowledge_within_secs)
                .bind(record.resolve_within_secs)
                .bind(record.raise_urgency_on_breach)
                .bind(acknowledge_due)
                .bind(resolve_due)
                .bind(at);
            let events = [&urgency_changed, &updated].into_iter().flatten();
            guarded_update_postgres(&mut *tx, query, id, &actor, at, events).await
        },
    )?;
    Ok(row.into_incident(now))
}

/// A category's SLA policy for one urgency, as configured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyEntry {
    pub urgency: Urgency,
    pub acknowledge_within_secs: i64,
    pub resolve_within_secs: i64,
    pub raise_urgency_on_breach: bool,
    /// False when no policy was set and the suggested default applies.
    pub configured: bool,
}

/// The policy of every urgency of `category` (configured or the default).
pub async fn list_policies(db: &Db, category: CategoryId) -> StoreResult<Vec<PolicyEntry>> {
    catalog::find_category(db, category).await?;
    const CONFIGURED: &str = "SELECT urgency FROM sla_policies WHERE category_id = $1";
    let id = category.0;
    let configured: Vec<String> = direct_read!(db,
        sqlite: |conn| direct::query(conn, CONFIGURED, &[&id], |r| r.get("urgency")),
        postgres: |pool| Ok(sqlx::query_scalar(CONFIGURED).bind(id).fetch_all(pool).await?),
    )?;
    let mut out = Vec::new();
    for urgency in Urgency::ALL {
        let policy = sla_policy(db, category, urgency).await?;
        out.push(PolicyEntry {
            urgency,
            acknowledge_within_secs: policy.acknowledge_within_secs(),
            resolve_within_secs: policy.resolve_within_secs(),
            raise_urgency_on_breach: policy.raise_urgency_on_breach(),
            configured: configured.iter().any(|u| u == urgency.as_str()),
        });
    }
    Ok(out)
}

/// Sets `category`'s policy for `urgency` (audited). Incidents already open keep the policy
/// they were created under until their category or urgency changes.
pub async fn set_policy(
    db: &Db,
    category: CategoryId,
    urgency: Urgency,
    policy: &SlaPolicy,
    actor: &ChangeAuthor,
) -> StoreResult<()> {
    catalog::find_category(db, category).await?;
    let now = Timestamp::now().millis();
    let (category, (ack, resolve, raise)) = (
        category.0,
        (
            policy.acknowledge_within_secs(),
            policy.resolve_within_secs(),
            policy.raise_urgency_on_breach(),
        ),
    );
    let actor = actor.clone();
    // The audit entry, from the policy as it was (read in the same transaction).
    let audit = move |stored: Option<(i64, i64, bool)>| {
        let configured = stored.is_some();
        let was = policy_or_suggested(stored, urgency);
        let before = PolicyEntry {
            urgency,
            acknowledge_within_secs: was.acknowledge_within_secs(),
            resolve_within_secs: was.resolve_within_secs(),
            raise_urgency_on_breach: was.raise_urgency_on_breach(),
            configured,
        };
        let after = serde_json::json!({
            "urgency": urgency, "acknowledge_within_secs": ack,
            "resolve_within_secs": resolve, "raise_urgency_on_breach": raise,
        });
        AuditDraft::new(
            &actor,
            "category.sla_policy_set",
            AuditEntity::Category,
            Some(category),
        )
        .before(&Some(before))
        .after(&after)
    };
    let urgency = urgency.as_str();
    grouped_write!(db,
        sqlite: |conn| {
            let stored = direct::query_optional(conn, POLICY, &[&category, &urgency], |r| {
                Ok((
                    r.get("acknowledge_within_secs")?,
                    r.get("resolve_within_secs")?,
                    r.get("raise_urgency_on_breach")?,
                ))
            })?;
            direct::execute(conn, SET_POLICY, &[&category, &urgency, &ack, &resolve, &raise, &now])?;
            insert_audit_direct(conn, audit(stored))
        },
        postgres: |tx| {
            let stored: Option<(i64, i64, bool)> = sqlx::query_as(POLICY)
                .bind(category)
                .bind(urgency)
                .fetch_optional(&mut *tx)
                .await?;
            sqlx::query(SET_POLICY)
                .bind(category)
                .bind(urgency)
                .bind(ack)
                .bind(resolve)
                .bind(raise)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            insert_audit!(&mut *tx, audit(stored));
            Ok(())
        },
    )
}

/// A category's stored policy for one urgency.
const POLICY: &str = "SELECT acknowledge_within_secs, resolve_within_secs, raise_urgency_on_breach \
     FROM sla_policies WHERE category_id = $1 AND urgency = $2";
const SET_POLICY: &str = "INSERT INTO sla_policies (category_id, urgency, acknowledge_within_secs, resolve_within_secs, \
     raise_urgency_on_breach, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (category_id, urgency) DO UPDATE SET acknowledge_within_secs = excluded.acknowledge_within_secs, \
     resolve_within_secs = excluded.resolve_within_secs, raise_urgency_on_breach = excluded.raise_urgency_on_breach, \
     updated_at = excluded.updated_at";
