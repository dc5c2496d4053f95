//! The wire protocol shared by `GET /ws` and `GET /api/v1/stream`: what clients send, the
//! envelope every server message uses, and topics.
//!
//! Server messages: `{"type": "...", "id": "<event id>", "ts": "<RFC 3339>", "data": {...}}`.
//! Events carry their event id; control messages (`subscribed`, `pong`, `heartbeat`,
//! `resync_required`, `error`) carry none.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, EventId, IncidentId};
use vigia_domain::incidents::{IncidentCode, IncidentFacts};
use vigia_store::incidents::feed::FeedItem;

/// A message from a WebSocket client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Answered with `pong`.
    Ping,
    /// Replaces the connection's topics; with `last_event_id`, first replays what was missed.
    Subscribe {
        topics: Vec<String>,
        #[serde(default)]
        last_event_id: Option<Value>,
    },
    /// Removes topics.
    Unsubscribe { topics: Vec<String> },
    /// A fresh access token for the same user (or the same API key), sent before the current
    /// one expires so the connection stays open; answered with `authenticated`.
    Authenticate { token: String },
}

/// What a connection receives. Alerts, detections and reports are accepted now and carry
/// messages once those event sources exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics {
    /// Every incident the caller may see.
    pub incidents: bool,
    pub departments: Vec<DepartmentId>,
    pub incident_ids: Vec<IncidentId>,
    pub alerts: bool,
    pub detections: bool,
    pub reports: bool,
}

impl Topics {
    /// Parses `incidents`, `department:<id>`, `incident:<id or INC-000123>`, `alerts`,
    /// `detections`, `reports`.
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, String> {
        let mut topics = Topics::default();
        topics.add(raw)?;
        Ok(topics)
    }

    /// Adds topics (see [`Topics::parse`]).
    pub fn add<S: AsRef<str>>(&mut self, raw: &[S]) -> Result<(), String> {
        for topic in raw {
            let topic = topic.as_ref().trim();
            match topic.split_once(':') {
                None if topic == "incidents" => self.incidents = true,
                None if topic == "alerts" => self.alerts = true,
                None if topic == "detections" => self.detections = true,
                None if topic == "reports" => self.reports = true,
                Some(("department", id)) => {
                    let id = id.parse().map_err(|_| bad_topic(topic))?;
                    if !self.departments.contains(&DepartmentId(id)) {
                        self.departments.push(DepartmentId(id));
                    }
                }
                Some(("incident", id)) => {
                    let id = id
                        .parse::<i64>()
                        .ok()
                        .or_else(|| {
                            IncidentCode::parse("topics", id)
                                .ok()
                                .map(|c| c.sequence() as i64)
                        })
                        .ok_or_else(|| bad_topic(topic))?;
                    if !self.incident_ids.contains(&IncidentId(id)) {
                        self.incident_ids.push(IncidentId(id));
                    }
                }
                _ => return Err(bad_topic(topic)),
            }
        }
        Ok(())
    }

    /// Removes topics (unknown ones are an error, topics not subscribed are ignored).
    pub fn remove<S: AsRef<str>>(&mut self, raw: &[S]) -> Result<(), String> {
        let gone = Topics::parse(raw)?;
        self.incidents &= !gone.incidents;
        self.alerts &= !gone.alerts;
        self.detections &= !gone.detections;
        self.reports &= !gone.reports;
        self.departments.retain(|d| !gone.departments.contains(d));
        self.incident_ids.retain(|i| !gone.incident_ids.contains(i));
        Ok(())
    }

    /// Whether an event about `incident` with `facts` belongs to one of these topics.
    pub fn wants(&self, incident: IncidentId, facts: &IncidentFacts) -> bool {
        self.incidents
            || self.incident_ids.contains(&incident)
            || facts
                .department
                .is_some_and(|d| self.departments.contains(&d))
    }

    /// The topics in their wire form.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        let flags = [
            (self.incidents, "incidents"),
            (self.alerts, "alerts"),
            (self.detections, "detections"),
            (self.reports, "reports"),
        ];
        names.extend(flags.iter().filter(|f| f.0).map(|f| f.1.to_owned()));
        names.extend(self.departments.iter().map(|d| format!("department:{d}")));
        names.extend(self.incident_ids.iter().map(|i| format!("incident:{i}")));
        names
    }
}

fn bad_topic(topic: &str) -> String {
    format!(
        "unknown topic {topic:?}: use incidents, department:<id>, incident:<id>, alerts, detections or reports"
    )
}

/// Parses a last event id given as a number or a string of digits.
pub fn parse_event_id(raw: &Value) -> Option<EventId> {
    match raw {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|id| *id >= 0)
    .map(EventId)
}

/// One event rendered once for every connection: the envelope in full, and without who did
/// it (for callers with no relation to the incident).
#[derive(Debug, Clone)]
pub struct Rendered {
    pub id: EventId,
    pub incident: IncidentId,
    pub facts: IncidentFacts,
    pub internal: bool,
    pub full: Frame,
    pub without_people: Frame,
}

/// A pre-serialized server message; cloning it is two reference-count increments.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The event id, for events (SSE sends it as the `id:` field).
    pub id: Option<EventId>,
    /// The JSON envelope (what SSE sends as `data:`).
    pub text: Arc<str>,
    /// The envelope as a WebSocket text frame, encoded once for every connection.
    pub wire: Bytes,
}

impl Frame {
    pub fn new(id: Option<EventId>, text: String) -> Self {
        Self {
            id,
            wire: super::socket::text_frame(&text),
            text: text.into(),
        }
    }
}

impl Rendered {
    pub fn of(item: &FeedItem) -> Self {
        let event = &item.event;
        let mut data = match &event.data {
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        data.insert("incident_id".into(), json!(event.incident_id));
        data.insert("code".into(), json!(event.code));
        data.insert("internal".into(), json!(event.internal));
        let envelope = |data: &serde_json::Map<String, Value>| {
            let text = json!({
                "type": event.message_type,
                "id": event.id.0.to_string(),
                "ts": event.at,
                "data": data,
            })
            .to_string();
            Frame::new(Some(event.id), text)
        };
        let without_people = envelope(&data);
        data.insert("actor".into(), json!(event.actor));
        Rendered {
            id: event.id,
            incident: event.incident_id,
            facts: item.facts,
            internal: event.internal,
            full: envelope(&data),
            without_people,
        }
    }
}

/// A control message (no event id).
pub fn control(kind: &str, data: Option<Value>) -> Frame {
    let mut message = json!({ "type": kind, "ts": Timestamp::now() });
    if let Some(data) = data {
        message["data"] = data;
    }
    Frame::new(None, message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_match_and_print_back() {
        let topics = Topics::parse(&["incidents", "department:3", "incident:INC-000042", "alerts"])
            .expect("valid topics");
        assert_eq!(topics.incident_ids, [IncidentId(42)]);
        assert_eq!(
            topics.names(),
            ["incidents", "alerts", "department:3", "incident:42"]
        );
        assert!(Topics::parse(&["everything"]).is_err());
        assert!(Topics::parse(&["department:x"]).is_err());

        let facts = |department| IncidentFacts {
            department: Some(DepartmentId(department)),
            reporter: None,
            public: false,
        };
        let mut narrow = Topics::parse(&["department:3", "incident:7"]).expect("valid");
        assert!(narrow.wants(IncidentId(1), &facts(3)));
        assert!(narrow.wants(IncidentId(7), &facts(4)));
        assert!(!narrow.wants(IncidentId(1), &facts(4)));
        narrow.remove(&["department:3"]).expect("valid");
        assert!(!narrow.wants(IncidentId(1), &facts(3)));
    }

    #[test]
    fn last_event_ids_are_numbers_or_strings_of_digits() {
        assert_eq!(parse_event_id(&json!(12)), Some(EventId(12)));
        assert_eq!(parse_event_id(&json!("12")), Some(EventId(12)));
        assert_eq!(parse_event_id(&json!("abc")), None);
        assert_eq!(parse_event_id(&json!(-1)), None);
    }
}
