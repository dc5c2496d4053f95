//! The JSON shapes of exams, participants and captures.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigia_domain::Timestamp;
use vigia_store::proctoring::{Capture, Exam, Participant};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExamIn {
    /// Short unique code, used in storage keys (`images/{code}/{user}/{file}`).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,40}$")]
    pub code: String,
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 200
    )]
    pub title: String,
    /// The category of the incident an `ALERT_FINAL` opens.
    #[schema(minimum = 1)]
    pub category_id: i64,
    /// Where that incident goes (default: the category's department).
    pub department_id: Option<i64>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub starts_at: String,
    /// RFC 3339; after `starts_at`.
    #[schema(format = DateTime)]
    pub ends_at: String,
    /// Distance under which a capture matches its reference (default 0.6).
    #[schema(minimum = 0.2, maximum = 0.9)]
    pub threshold: Option<f64>,
    /// Captures expected per participant and minute (default 2).
    #[schema(minimum = 1, maximum = 60)]
    pub captures_per_minute: Option<i64>,
    /// Consecutive alerts that make an `ALERT_FINAL` (default 3).
    #[schema(minimum = 1, maximum = 100)]
    pub alerts_before_final: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExamOut {
    pub id: i64,
    pub code: String,
    pub title: String,
    pub category_id: i64,
    pub department_id: Option<i64>,
    pub starts_at: String,
    pub ends_at: String,
    pub threshold: f64,
    pub captures_per_minute: i64,
    pub alerts_before_final: i64,
    pub created_at: String,
}

fn rfc(millis: i64) -> String {
    Timestamp::from_millis(millis).to_rfc3339()
}

impl From<Exam> for ExamOut {
    fn from(e: Exam) -> Self {
        Self {
            id: e.id,
            code: e.code,
            title: e.title,
            category_id: e.category_id,
            department_id: e.department_id,
            starts_at: rfc(e.starts_at),
            ends_at: rfc(e.ends_at),
            threshold: e.threshold,
            captures_per_minute: e.captures_per_minute,
            alerts_before_final: e.alerts_before_final,
            created_at: rfc(e.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantIn {
    /// The user id captures are filed under.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,80}$")]
    pub external_id: String,
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 200
    )]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantOut {
    pub id: i64,
    pub exam_id: i64,
    pub external_id: String,
    pub name: String,
    pub enrolled: bool,
    pub reference_key: Option<String>,
    /// The reference photo's analysis (face box, sharpness).
    #[schema(value_type = Option<Object>)]
    pub reference: Option<serde_json::Value>,
    pub consecutive_alerts: i64,
    /// The latest capture's status: `OK`, `ALERT`, `ALERT_FINAL`.
    pub last_status: Option<String>,
    /// The incident an `ALERT_FINAL` opened.
    pub incident_id: Option<i64>,
    /// Why the latest reference photo placed in storage (`reference/{user}.jpg`) was refused,
    /// as `code: message` (`no_face: No face detected`); the reference enrolled before it, if
    /// any, stays in force. `null` once a valid reference is enrolled.
    pub reference_refused: Option<String>,
}

impl From<Participant> for ParticipantOut {
    fn from(p: Participant) -> Self {
        Self {
            reference_refused: p.reference_refused,
            enrolled: p.reference_embedding.is_some(),
            reference: p
                .reference_faces
                .as_deref()
                .and_then(|f| serde_json::from_str(f).ok()),
            id: p.id,
            exam_id: p.exam_id,
            external_id: p.external_id,
            name: p.name,
            reference_key: p.reference_key,
            consecutive_alerts: p.consecutive_alerts,
            last_status: p.last_status,
            incident_id: p.incident_id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaptureOut {
    pub id: i64,
    pub exam_id: i64,
    pub participant_id: Option<i64>,
    pub user_id: String,
    pub object_key: String,
    /// `api` or `storage`.
    pub origin: String,
    /// `queued`, `OK`, `ALERT`, `ALERT_FINAL`.
    pub status: String,
    /// `no_face`, `multiple_faces`, `face_mismatch`, `face_too_small`, `image_unreadable`,
    /// `reference_missing`, `outside_window`.
    pub reason: Option<String>,
    pub distance: Option<f64>,
    /// The result document (also at `result_key` in storage).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub result_key: Option<String>,
    pub incident_id: Option<i64>,
    /// A proctor's review: `false_positive` or `confirmed`.
    pub review: Option<String>,
    pub received_at: String,
    pub analyzed_at: Option<String>,
}

impl From<Capture> for CaptureOut {
    fn from(c: Capture) -> Self {
        Self {
            result: c
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            id: c.id,
            exam_id: c.exam_id,
            participant_id: c.participant_id,
            user_id: c.external_id,
            object_key: c.object_key,
            origin: c.origin,
            status: c.status,
            reason: c.reason,
            distance: c.distance,
            result_key: c.result_key,
            incident_id: c.incident_id,
            review: c.review,
            received_at: rfc(c.received_at),
            analyzed_at: c.analyzed_at.map(rfc),
        }
    }
}
