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

/// The position of each of [`INCIDENT_COLUMNS`] in a row, found by name at compile time (see
/// [`direct::column_index`]): reordering the list cannot misread a row.
mod col {
    use super::INCIDENT_COLUMNS as C;
    use crate::direct::column_index as at;
    pub const ID: usize = at(C, "id");
    pub const CATEGORY_ID: usize = at(C, "category_id");
    pub const DEPARTMENT_ID: usize = at(C, "department_id");
    pub const ASSIGNEE_ID: usize = at(C, "assignee_id");
    pub const REPORTER_ID: usize = at(C, "reporter_id");
    pub const TITLE: usize = at(C, "title");
    pub const DESCRIPTION: usize = at(C, "description");
    pub const ZONE_ID: usize = at(C, "zone_id");
    pub const LOCATION_TEXT: usize = at(C, "location_text");
    pub const LAT: usize = at(C, "lat");
    pub const LON: usize = at(C, "lon");
    pub const URGENCY: usize = at(C, "urgency");
    pub const STATUS: usize = at(C, "status");
    pub const SOURCE: usize = at(C, "source");
    pub const VISIBILITY: usize = at(C, "visibility");
    pub const VOTES: usize = at(C, "votes");
    pub const VERSION: usize = at(C, "version");
    pub const SLA_STARTED_AT: usize = at(C, "sla_started_at");
    pub const SLA_ACKNOWLEDGE_SECS: usize = at(C, "sla_acknowledge_secs");
    pub const SLA_RESOLVE_SECS: usize = at(C, "sla_resolve_secs");
    pub const SLA_RAISE_URGENCY: usize = at(C, "sla_raise_urgency");
    pub const SLA_PAUSED_SINCE: usize = at(C, "sla_paused_since");
    pub const SLA_PAUSED_TOTAL_MS: usize = at(C, "sla_paused_total_ms");
    pub const ACKNOWLEDGED_AT: usize = at(C, "acknowledged_at");
    pub const RESOLVED_AT: usize = at(C, "resolved_at");
    pub const CLOSED_AT: usize = at(C, "closed_at");
    pub const CREATED_AT: usize = at(C, "created_at");
    pub const UPDATED_AT: usize = at(C, "updated_at");
}

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
    /// A row of [`INCIDENT_COLUMNS`] read on a direct SQLite connection (the group commit's or
    /// a reader's), each column found by its name ([`col`]).
    pub(crate) fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(col::ID)?,
            category_id: row.get(col::CATEGORY_ID)?,
            department_id: row.get(col::DEPARTMENT_ID)?,
            assignee_id: row.get(col::ASSIGNEE_ID)?,
            reporter_id: row.get(col::REPORTER_ID)?,
            title: row.get(col::TITLE)?,
            description: row.get(col::DESCRIPTION)?,
            zone_id: row.get(col::ZONE_ID)?,
            location_text: row.get(col::LOCATION_TEXT)?,
            lat: row.get(col::LAT)?,
            lon: row.get(col::LON)?,
            urgency: direct::parsed(row, col::URGENCY, Urgency::parse)?,
            status: direct::parsed(row, col::STATUS, Status::parse)?,
            source: direct::parsed(row, col::SOURCE, Source::parse)?,
            visibility: direct::parsed(row, col::VISIBILITY, IncidentVisibility::parse)?,
            votes: row.get(col::VOTES)?,
            version: row.get(col::VERSION)?,
            sla_started_at: row.get(col::SLA_STARTED_AT)?,
            sla_acknowledge_secs: row.get(col::SLA_ACKNOWLEDGE_SECS)?,
            sla_resolve_secs: row.get(col::SLA_RESOLVE_SECS)?,
            sla_raise_urgency: row.get(col::SLA_RAISE_URGENCY)?,
            sla_paused_since: row.get(col::SLA_PAUSED_SINCE)?,
            sla_paused_total_ms: row.get(col::SLA_PAUSED_TOTAL_MS)?,
            acknowledged_at: row.get(col::ACKNOWLEDGED_AT)?,
            resolved_at: row.get(col::RESOLVED_AT)?,
            closed_at: row.get(col::CLOSED_AT)?,
            created_at: row.get(col::CREATED_AT)?,
            updated_at: row.get(col::UPDATED_AT)?,
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
