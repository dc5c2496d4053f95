//! What an incident looks like on the wire. [`IncidentOut`] and [`IncidentPage`] are the
//! API's hottest bodies and are written by hand ([`WriteJson`]); the tests check that the
//! output is what a `Serialize` derive would produce, byte for byte.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
#[cfg(test)]
use serde::Serialize;
use utoipa::ToSchema;
use vigia_domain::Timestamp;
use vigia_domain::auth::Principal;
use vigia_domain::catalog::GeoPoint;
use vigia_domain::incidents::{IncidentCode, Relation};
use vigia_store::incidents::Incident;

use crate::json_out::{JsonWriter, WriteJson, Written};
use crate::routes::catalog::PointIo;

/// Service-level targets and whether they were missed.
#[derive(Debug, ToSchema)]
#[cfg_attr(test, derive(Serialize))]
pub struct SlaOut {
    #[schema(value_type = String, format = DateTime)]
    pub acknowledge_due: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub resolve_due: Timestamp,
    pub acknowledge_breached: bool,
    pub resolve_breached: bool,
    /// True while on hold: the resolve clock is stopped.
    pub paused: bool,
}

#[derive(Debug, ToSchema)]
#[cfg_attr(test, derive(Serialize))]
pub struct LocationOut {
    pub zone_id: Option<i64>,
    pub text: Option<String>,
    pub point: Option<PointIo>,
}

/// An incident. On the public board the reporter and assignee are hidden.
///
/// Written by [`WriteJson`] (a page of them is the API's hottest body); the tests check that
/// the output is what a `Serialize` derive would produce, field for field and byte for byte.
#[derive(Debug, ToSchema)]
#[cfg_attr(test, derive(Serialize))]
pub struct IncidentOut {
    pub id: i64,
    /// Human code, e.g. `INC-000123`.
    #[schema(value_type = String)]
    pub code: IncidentCode,
    pub category_id: i64,
    pub department_id: Option<i64>,
    pub assignee_id: Option<i64>,
    pub reporter_id: Option<i64>,
    pub title: String,
    pub description: String,
    pub location: LocationOut,
    /// `low`, `medium`, `high` or `emergency`.
    pub urgency: &'static str,
    /// `new`, `acknowledged`, `in_progress`, `on_hold`, `resolved` or `closed`.
    pub status: &'static str,
    /// `web`, `api`, `assistant`, `rule` or `media`.
    pub source: &'static str,
    /// `public` or `private`.
    pub visibility: &'static str,
    pub votes: i64,
    /// Send back as `If-Match` to change the incident safely.
    pub version: i64,
    pub sla: SlaOut,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

fn point(p: GeoPoint) -> PointIo {
    PointIo {
        lat: p.lat,
        lon: p.lon,
    }
}

impl IncidentOut {
    pub(super) fn full(i: Incident) -> Self {
        Self {
            id: i.id.0,
            code: i.code,
            category_id: i.category_id.0,
            department_id: i.department_id.map(|d| d.0),
            assignee_id: i.assignee_id.map(|u| u.0),
            reporter_id: i.reporter_id.map(|u| u.0),
            title: i.title,
            description: i.description,
            location: LocationOut {
                zone_id: i.zone_id.map(|z| z.0),
                text: i.location_text,
                point: i.point.map(point),
            },
            urgency: i.urgency.as_str(),
            status: i.status.as_str(),
            source: i.source.as_str(),
            visibility: i.visibility.as_str(),
            votes: i.votes,
            version: i.version,
            sla: SlaOut {
                acknowledge_due: i.sla.acknowledge_due,
                resolve_due: i.sla.resolve_due,
                acknowledge_breached: i.sla.acknowledge_breached,
                resolve_breached: i.sla.resolve_breached,
                paused: i.sla.paused,
            },
            acknowledged_at: i.acknowledged_at,
            resolved_at: i.resolved_at,
            closed_at: i.closed_at,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }

    /// What anyone may see of a public incident that is not theirs: no personal data.
    pub(super) fn redacted(i: Incident) -> Self {
        let mut out = Self::full(i);
        out.reporter_id = None;
        out.assignee_id = None;
        out
    }

    /// The view `principal` gets of `incident`.
    pub(super) fn for_caller(i: Incident, principal: &Principal) -> Self {
        if Relation::of(principal, i.department_id, i.reporter_id).sees_people() {
            Self::full(i)
        } else {
            Self::redacted(i)
        }
    }
}

impl WriteJson for IncidentOut {
    fn write_json(&self, w: &mut JsonWriter<'_>) {
        w.raw("{\"id\":");
        w.i64(self.id);
        w.raw(",\"code\":");
        self.code.with_str(|code| w.str(code));
        w.raw(",\"category_id\":");
        w.i64(self.category_id);
        w.raw(",\"department_id\":");
        w.opt_i64(self.department_id);
        w.raw(",\"assignee_id\":");
        w.opt_i64(self.assignee_id);
        w.raw(",\"reporter_id\":");
        w.opt_i64(self.reporter_id);
        w.raw(",\"title\":");
        w.str(&self.title);
        w.raw(",\"description\":");
        w.str(&self.description);
        w.raw(",\"location\":{\"zone_id\":");
        w.opt_i64(self.location.zone_id);
        w.raw(",\"text\":");
        w.opt_str(self.location.text.as_deref());
        w.raw(",\"point\":");
        match self.location.point {
            Some(p) => {
                w.raw("{\"lat\":");
                w.f64(p.lat);
                w.raw(",\"lon\":");
                w.f64(p.lon);
                w.raw("}");
            }
            None => w.null(),
        }
        w.raw("},\"urgency\":");
        w.str(self.urgency);
        w.raw(",\"status\":");
        w.str(self.status);
        w.raw(",\"source\":");
        w.str(self.source);
        w.raw(",\"visibility\":");
        w.str(self.visibility);
        w.raw(",\"votes\":");
        w.i64(self.votes);
        w.raw(",\"version\":");
        w.i64(self.version);
        w.raw(",\"sla\":{\"acknowledge_due\":");
        w.timestamp(self.sla.acknowledge_due);
        w.raw(",\"resolve_due\":");
        w.timestamp(self.sla.resolve_due);
        w.raw(",\"acknowledge_breached\":");
        w.bool(self.sla.acknowledge_breached);
        w.raw(",\"resolve_breached\":");
        w.bool(self.sla.resolve_breached);
        w.raw(",\"paused\":");
        w.bool(self.sla.paused);
        w.raw("},\"acknowledged_at\":");
        w.opt_timestamp(self.acknowledged_at);
        w.raw(",\"resolved_at\":");
        w.opt_timestamp(self.resolved_at);
        w.raw(",\"closed_at\":");
        w.opt_timestamp(self.closed_at);
        w.raw(",\"created_at\":");
        w.timestamp(self.created_at);
        w.raw(",\"updated_at\":");
        w.timestamp(self.updated_at);
        w.raw("}");
    }
}

pub(super) fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

pub(super) fn with_etag(status: StatusCode, incident: IncidentOut) -> Response {
    let tag = etag(incident.version);
    (status, [(header::ETAG, tag)], Written(incident)).into_response()
}

#[derive(Debug, ToSchema)]
#[cfg_attr(test, derive(Serialize))]
pub struct IncidentPage {
    pub items: Vec<IncidentOut>,
    pub next_cursor: Option<String>,
}

impl WriteJson for IncidentPage {
    fn write_json(&self, w: &mut JsonWriter<'_>) {
        w.raw("{\"items\":");
        w.array(&self.items);
        w.raw(",\"next_cursor\":");
        w.opt_str(self.next_cursor.as_deref());
        w.raw("}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn text(rng: &mut StdRng) -> String {
        const PIECES: &[&str] = &[
            "Tubería",
            " rota",
            "\"",
            "\\",
            "\n",
            "\t",
            "\u{1}",
            "ñ",
            "😀",
            "</script>",
            "a",
            "",
        ];
        (0..rng.random_range(0..12))
            .map(|_| PIECES[rng.random_range(0..PIECES.len())])
            .collect()
    }

    fn maybe<T>(rng: &mut StdRng, value: impl FnOnce(&mut StdRng) -> T) -> Option<T> {
        rng.random_bool(0.5).then(|| value(rng))
    }

    fn time(rng: &mut StdRng) -> Timestamp {
        // Whole seconds now and then: their fraction is left out.
        let millis = rng.random_range(0..4_102_444_800_000_i64);
        Timestamp::from_millis(if rng.random_bool(0.2) {
            millis / 1000 * 1000
        } else {
            millis
        })
    }

    fn incident(rng: &mut StdRng) -> IncidentOut {
        let id = rng.random_range(1..20_000_000);
        IncidentOut {
            id,
            code: IncidentCode::from_sequence(id as u64),
            category_id: rng.random_range(1..100),
            department_id: maybe(rng, |r| r.random_range(1..100)),
            assignee_id: maybe(rng, |r| r.random_range(1..100)),
            reporter_id: maybe(rng, |r| r.random_range(-5..100)),
            title: text(rng),
            description: text(rng),
            location: LocationOut {
                zone_id: maybe(rng, |_| 7),
                text: maybe(rng, text),
                point: maybe(rng, |r| PointIo {
                    lat: r.random_range(-90.0..90.0),
                    lon: if r.random_bool(0.2) {
                        -70.0
                    } else {
                        r.random_range(-180.0..180.0)
                    },
                }),
            },
            urgency: ["low", "medium", "high", "emergency"][rng.random_range(0..4)],
            status: ["new", "on_hold"][rng.random_range(0..2)],
            source: "web",
            visibility: ["public", "private"][rng.random_range(0..2)],
            votes: rng.random_range(0..1000),
            version: rng.random_range(1..50),
            sla: SlaOut {
                acknowledge_due: time(rng),
                resolve_due: time(rng),
                acknowledge_breached: rng.random_bool(0.5),
                resolve_breached: rng.random_bool(0.5),
                paused: rng.random_bool(0.5),
            },
            acknowledged_at: maybe(rng, time),
            resolved_at: maybe(rng, time),
            closed_at: maybe(rng, time),
            created_at: time(rng),
            updated_at: time(rng),
        }
    }

    fn written(value: &impl WriteJson) -> String {
        let mut buffer = Vec::new();
        value.write_json(&mut JsonWriter::new(&mut buffer));
        String::from_utf8(buffer).expect("UTF-8")
    }

    #[test]
    fn an_incident_is_written_byte_for_byte_as_serde_would_serialize_it() {
        let mut rng = StdRng::seed_from_u64(2026);
        for _ in 0..2_000 {
            let incident = incident(&mut rng);
            let expected = serde_json::to_string(&incident).expect("serializable");
            assert_eq!(written(&incident), expected);
        }
    }

    #[test]
    fn a_page_is_written_byte_for_byte_as_serde_would_serialize_it() {
        let mut rng = StdRng::seed_from_u64(11);
        for items in [0, 1, 2, 50] {
            let page = IncidentPage {
                items: (0..items).map(|_| incident(&mut rng)).collect(),
                next_cursor: maybe(&mut rng, |_| "djE6ODQ5MQ".to_owned()),
            };
            let expected = serde_json::to_string(&page).expect("serializable");
            assert_eq!(written(&page), expected, "{items} items");
        }
    }
}
