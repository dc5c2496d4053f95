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
use vigia_store::exam_events::ExamEvent;
use vigia_store::incidents::feed::{FeedEntry, FeedItem};

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

/// What a connection receives. `alerts` carries alert events from the log, `detections` the
/// per-second aggregates of [`super::detections`]; `reports` is accepted and carries nothing yet.
/// Proctoring events (`proctoring`, `exam:<id>`) go only to those topics, never to `incidents`
/// or `department:<id>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics {
    /// Every incident the caller may see.
    pub incidents: bool,
    pub departments: Vec<DepartmentId>,
    pub incident_ids: Vec<IncidentId>,
    pub alerts: bool,
    pub detections: bool,
    pub reports: bool,
    /// Every exam's proctoring events the caller may see.
    pub proctoring: bool,
    pub exam_ids: Vec<i64>,
    /// Every competition's video processing the caller may see.
    pub competitions: bool,
    pub competition_ids: Vec<i64>,
}

impl Topics {
    /// Parses `incidents`, `department:<id>`, `incident:<id or INC-000123>`, `alerts`,
    /// `detections`, `reports`, `proctoring`, `exam:<id>`, `competitions`, `competition:<id>`.
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
                None if topic == "proctoring" => self.proctoring = true,
                None if topic == "competitions" => self.competitions = true,
                Some(("competition", id)) => {
                    let id = id
                        .parse::<i64>()
                        .ok()
                        .filter(|id| *id > 0)
                        .ok_or_else(|| bad_topic(topic))?;
                    if !self.competition_ids.contains(&id) {
                        self.competition_ids.push(id);
                    }
                }
                Some(("exam", id)) => {
                    let id = id
                        .parse::<i64>()
                        .ok()
                        .filter(|id| *id > 0)
                        .ok_or_else(|| bad_topic(topic))?;
                    if !self.exam_ids.contains(&id) {
                        self.exam_ids.push(id);
                    }
                }
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
        self.proctoring &= !gone.proctoring;
        self.competitions &= !gone.competitions;
        self.competition_ids
            .retain(|c| !gone.competition_ids.contains(c));
        self.exam_ids.retain(|e| !gone.exam_ids.contains(e));
        self.departments.retain(|d| !gone.departments.contains(d));
        self.incident_ids.retain(|i| !gone.incident_ids.contains(i));
        Ok(())
    }

    /// Whether an event about `subject` with `facts` belongs to one of these topics.
    pub fn wants(&self, subject: Subject, facts: &IncidentFacts) -> bool {
        match subject {
            Subject::Incident(incident) => {
                self.incidents
                    || self.incident_ids.contains(&incident)
                    || facts
                        .department
                        .is_some_and(|d| self.departments.contains(&d))
            }
            Subject::Exam(exam) => self.proctoring || self.exam_ids.contains(&exam),
            Subject::Alert => self.alerts,
        }
    }

    /// Whether a competition's video messages belong to one of these topics.
    pub fn wants_competition(&self, competition: i64) -> bool {
        self.competitions || self.competition_ids.contains(&competition)
    }

    /// The topics in their wire form.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        let flags = [
            (self.incidents, "incidents"),
            (self.alerts, "alerts"),
            (self.detections, "detections"),
            (self.reports, "reports"),
            (self.proctoring, "proctoring"),
            (self.competitions, "competitions"),
        ];
        names.extend(flags.iter().filter(|f| f.0).map(|f| f.1.to_owned()));
        names.extend(self.departments.iter().map(|d| format!("department:{d}")));
        names.extend(self.incident_ids.iter().map(|i| format!("incident:{i}")));
        names.extend(self.exam_ids.iter().map(|e| format!("exam:{e}")));
        names.extend(
            self.competition_ids
                .iter()
                .map(|c| format!("competition:{c}")),
        );
        names
    }
}

fn bad_topic(topic: &str) -> String {
    format!(
        "unknown topic {topic:?}: use incidents, department:<id>, incident:<id>, alerts, detections, reports, proctoring, exam:<id>, competitions or competition:<id>"
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

/// What an event is about: an incident, an alert (topic `alerts`, seen by its department's
/// staff, whose department is in the event's facts), or an exam (proctoring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Incident(IncidentId),
    Alert,
    Exam(i64),
}

/// One event rendered once for every connection: the envelope in full, and without who did
/// it (for callers with no relation to the incident).
#[derive(Debug, Clone)]
pub struct Rendered {
    pub id: EventId,
    pub subject: Subject,
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
    pub fn of(entry: &FeedEntry) -> Self {
        match entry {
            FeedEntry::Incident(item) => Self::of_incident(item),
            FeedEntry::Exam(event) => Self::of_exam(event),
        }
    }

    /// An exam event: seen, with who did it, by the exam department's staff and admins (an
    /// internal event of an incident of that department, as far as [`audience`] is concerned).
    ///
    /// [`audience`]: vigia_domain::incidents::audience
    fn of_exam(event: &ExamEvent) -> Self {
        let data = match &event.data {
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        let mut full_data = data.clone();
        full_data.insert("actor".into(), json!(event.actor));
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
        Rendered {
            id: event.id,
            subject: Subject::Exam(event.exam_id),
            facts: IncidentFacts {
                department: event.department,
                reporter: None,
                public: false,
            },
            internal: true,
            full: envelope(&full_data),
            without_people: envelope(&data),
        }
    }

    fn of_incident(item: &FeedItem) -> Self {
        let event = &item.event;
        let mut data = match &event.data {
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        let (subject, facts) = match (event.incident_id, item.alert_department) {
            (Some(id), _) => {
                data.insert("incident_id".into(), json!(id));
                data.insert("code".into(), json!(event.code));
                data.insert("internal".into(), json!(event.internal));
                (Subject::Incident(id), item.facts)
            }
            // An alert event's data is the alert itself (see `detections::alerts`).
            (None, department) => (
                Subject::Alert,
                IncidentFacts {
                    department: Some(department.unwrap_or(DepartmentId(0))),
                    reporter: None,
                    public: false,
                },
            ),
        };
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
            subject,
            facts,
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
        let incident = |id| Subject::Incident(IncidentId(id));
        assert!(narrow.wants(incident(1), &facts(3)));
        assert!(narrow.wants(incident(7), &facts(4)));
        assert!(!narrow.wants(incident(1), &facts(4)));
        narrow.remove(&["department:3"]).expect("valid");
        assert!(!narrow.wants(incident(1), &facts(3)));
    }

    #[test]
    fn exam_events_go_only_to_proctoring_and_their_exam_topic() {
        let facts = IncidentFacts {
            department: Some(DepartmentId(3)),
            reporter: None,
            public: false,
        };
        let broad = Topics::parse(&["incidents", "department:3"]).expect("valid");
        assert!(!broad.wants(Subject::Exam(5), &facts));
        let one = Topics::parse(&["exam:5"]).expect("valid");
        assert!(one.wants(Subject::Exam(5), &facts));
        assert!(!one.wants(Subject::Exam(6), &facts));
        assert!(!one.wants(Subject::Incident(IncidentId(5)), &facts));
        let all = Topics::parse(&["proctoring"]).expect("valid");
        assert!(all.wants(Subject::Exam(6), &facts));
        assert_eq!(all.names(), ["proctoring"]);
        assert_eq!(one.names(), ["exam:5"]);
        assert!(Topics::parse(&["exam:x"]).is_err());
    }

    #[test]
    fn competition_topics_parse_match_and_come_off() {
        let mut topics = Topics::parse(&["competition:3", "incidents"]).expect("valid");
        assert!(topics.wants_competition(3));
        assert!(!topics.wants_competition(4));
        assert_eq!(topics.names(), ["incidents", "competition:3"]);
        let all = Topics::parse(&["competitions"]).expect("valid");
        assert!(all.wants_competition(4));
        assert_eq!(all.names(), ["competitions"]);
        topics.remove(&["competition:3"]).expect("valid");
        assert!(!topics.wants_competition(3));
        assert!(Topics::parse(&["competition:x"]).is_err());
        assert!(Topics::parse(&["competition:0"]).is_err());
    }

    #[test]
    fn last_event_ids_are_numbers_or_strings_of_digits() {
        assert_eq!(parse_event_id(&json!(12)), Some(EventId(12)));
        assert_eq!(parse_event_id(&json!("12")), Some(EventId(12)));
        assert_eq!(parse_event_id(&json!("abc")), None);
        assert_eq!(parse_event_id(&json!(-1)), None);
    }
}
