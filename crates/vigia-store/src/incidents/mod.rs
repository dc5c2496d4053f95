//! Incidents: creation (with routing, SLA clock and auto-assignment), scoped reads and lists.
//! Every change writes its event to `incident_events` in the same transaction ([`events`]).

mod assign;
pub mod attachments;
mod changes;
mod create;
mod edit;
pub mod escalation;
pub mod events;
pub mod feed;
mod queries;
pub mod stats;
pub mod sweep;
mod thumbnail;

pub use changes::*;
pub use create::*;
pub use edit::*;
pub use queries::*;

use crate::direct;
use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::catalog::{GeoPoint, Urgency};
use vigia_domain::ids::{CategoryId, DepartmentId, IncidentId, UserId, ZoneId};
use vigia_domain::incidents::{
    IncidentCode, IncidentVisibility, SlaClock, SlaClockRecord, SlaSnapshot, Source, Status,
};

/// An incident as stored, with its SLA as of the time it was read.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub id: IncidentId,
    pub code: IncidentCode,
    pub category_id: CategoryId,
    pub department_id: Option<DepartmentId>,
    pub assignee_id: Option<UserId>,
    pub reporter_id: Option<UserId>,
    pub title: String,
    pub description: String,
    pub zone_id: Option<ZoneId>,
    pub location_text: Option<String>,
    pub point: Option<GeoPoint>,
    pub urgency: Urgency,
    pub status: Status,
    pub source: Source,
    pub visibility: IncidentVisibility,
    pub votes: i64,
    /// Incremented by every change; send it back in `If-Match` to update safely.
    pub version: i64,
    pub sla: SlaSnapshot,
    #[serde(skip)]
    pub sla_clock: SlaClockRecord,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Incident {
    pub fn is_public(&self) -> bool {
        self.visibility == IncidentVisibility::Public
    }
}

pub(crate) const INCIDENT_COLUMNS: &str = "id, category_id, department_id, assignee_id, reporter_id, \
    title, description, zone_id, location_text, lat, lon, urgency, status, source, visibility, votes, version, \
    sla_started_at, sla_acknowledge_secs, sla_resolve_secs, sla_raise_urgency, sla_paused_since, sla_paused_total_ms, \
    acknowledged_at, resolved_at, closed_at, created_at, updated_at";

#[derive(Debug, FromRow)]
pub(crate) struct IncidentRow {
    id: i64,
    category_id: i64,
    department_id: Option<i64>,
    assignee_id: Option<i64>,
    reporter_id: Option<i64>,
    title: String,
    description: String,
    zone_id: Option<i64>,
    location_text: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    #[sqlx(try_from = "String")]
    urgency: Urgency,
    #[sqlx(try_from = "String")]
    status: Status,
    #[sqlx(try_from = "String")]
    source: Source,
    #[sqlx(try_from = "String")]
    visibility: IncidentVisibility,
    votes: i64,
    version: i64,
    sla_started_at: i64,
    sla_acknowledge_secs: i64,
    sla_resolve_secs: i64,
    sla_raise_urgency: bool,
    sla_paused_since: Option<i64>,
    sla_paused_total_ms: i64,
    acknowledged_at: Option<i64>,
    resolved_at: Option<i64>,
    closed_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl IncidentRow {
    /// A row of [`INCIDENT_COLUMNS`] read on the SQLite group commit's connection.
    pub(crate) fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            category_id: row.get(1)?,
            department_id: row.get(2)?,
            assignee_id: row.get(3)?,
            reporter_id: row.get(4)?,
            title: row.get(5)?,
            description: row.get(6)?,
            zone_id: row.get(7)?,
            location_text: row.get(8)?,
            lat: row.get(9)?,
            lon: row.get(10)?,
            urgency: direct::parsed(row, 11, Urgency::parse)?,
            status: direct::parsed(row, 12, Status::parse)?,
            source: direct::parsed(row, 13, Source::parse)?,
            visibility: direct::parsed(row, 14, IncidentVisibility::parse)?,
            votes: row.get(15)?,
            version: row.get(16)?,
            sla_started_at: row.get(17)?,
            sla_acknowledge_secs: row.get(18)?,
            sla_resolve_secs: row.get(19)?,
            sla_raise_urgency: row.get(20)?,
            sla_paused_since: row.get(21)?,
            sla_paused_total_ms: row.get(22)?,
            acknowledged_at: row.get(23)?,
            resolved_at: row.get(24)?,
            closed_at: row.get(25)?,
            created_at: row.get(26)?,
            updated_at: row.get(27)?,
        })
    }

    pub(crate) fn into_incident(self, now: Timestamp) -> Incident {
        let ts = Timestamp::from_millis;
        let record = SlaClockRecord {
            started_at: ts(self.sla_started_at),
            acknowledge_within_secs: self.sla_acknowledge_secs,
            resolve_within_secs: self.sla_resolve_secs,
            raise_urgency_on_breach: self.sla_raise_urgency,
            paused_since: self.sla_paused_since.map(ts),
            paused_total_ms: self.sla_paused_total_ms,
        };
        let acknowledged_at = self.acknowledged_at.map(ts);
        let resolved_at = self.resolved_at.map(ts);
        let sla = SlaClock::from(record).snapshot(now, acknowledged_at, resolved_at);
        Incident {
            id: IncidentId(self.id),
            code: IncidentCode::from_sequence(self.id.max(0) as u64),
            category_id: CategoryId(self.category_id),
            department_id: self.department_id.map(DepartmentId),
            assignee_id: self.assignee_id.map(UserId),
            reporter_id: self.reporter_id.map(UserId),
            title: self.title,
            description: self.description,
            zone_id: self.zone_id.map(ZoneId),
            location_text: self.location_text,
            point: match (self.lat, self.lon) {
                (Some(lat), Some(lon)) => Some(GeoPoint { lat, lon }),
                _ => None,
            },
            urgency: self.urgency,
            status: self.status,
            source: self.source,
            visibility: self.visibility,
            votes: self.votes,
            version: self.version,
            sla,
            sla_clock: record,
            acknowledged_at,
            resolved_at,
            closed_at: self.closed_at.map(ts),
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
        }
    }
}
