//! Exam proctoring: exams, participants with their reference embedding, and captures with
//! their analysis. A capture is unique by object key, and its `media.analyze` job is enqueued
//! in the transaction that records it; its result is recorded once (compare-and-set on
//! `queued`), with the participant's run of consecutive alerts and its `media.analyzed` event
//! ([`crate::exam_events`]) in the same transaction; a review writes `proctoring.reviewed`.
//!
//! This file holds the row types and their column lists; the functions live by purpose in
//! `exams` (exams and participants), `captures` (recording and finding captures),
//! `outcomes` (an analysis outcome and the incident it opens), `reviews` (a proctor's
//! review), [`references`] (reference photos from storage) and [`landing`] (the storage
//! lister's bookkeeping), and are re-exported here.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;

mod captures;
mod exams;
pub mod landing;
mod outcomes;
pub mod references;
mod reviews;

pub use captures::{NewCapture, find_capture, find_capture_by_key, insert_capture, list_captures};
pub use exams::{
    add_participant, create_exam, find_exam, find_exam_by_code, find_participant,
    find_participant_by_external, list_exams, list_participants, set_reference,
};
pub use outcomes::{Outcome, final_status, link_incident, participant_incident, record_outcome};
pub use reviews::{review, review_counts};

/// The job kind that analyses one capture.
pub const ANALYZE: &str = "media.analyze";

/// An exam.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Exam {
    pub id: i64,
    pub code: String,
    pub title: String,
    pub category_id: i64,
    pub department_id: Option<i64>,
    /// Milliseconds since the epoch.
    pub starts_at: i64,
    pub ends_at: i64,
    pub threshold: f64,
    pub captures_per_minute: i64,
    pub alerts_before_final: i64,
    pub created_by: String,
    pub created_at: i64,
}

/// What creating an exam needs (checked by the caller).
#[derive(Debug, Clone)]
pub struct NewExam {
    pub code: String,
    pub title: String,
    pub category_id: i64,
    pub department_id: Option<i64>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub threshold: f64,
    pub captures_per_minute: i64,
    pub alerts_before_final: i64,
}

impl Exam {
    fn from_direct(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get("id")?,
            code: r.get("code")?,
            title: r.get("title")?,
            category_id: r.get("category_id")?,
            department_id: r.get("department_id")?,
            starts_at: r.get("starts_at")?,
            ends_at: r.get("ends_at")?,
            threshold: r.get("threshold")?,
            captures_per_minute: r.get("captures_per_minute")?,
            alerts_before_final: r.get("alerts_before_final")?,
            created_by: r.get("created_by")?,
            created_at: r.get("created_at")?,
        })
    }
}

const EXAM_COLUMNS: &str = "id, code, title, category_id, department_id, starts_at, ends_at, \
     threshold, captures_per_minute, alerts_before_final, created_by, created_at";

/// A participant of an exam.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Participant {
    pub id: i64,
    pub exam_id: i64,
    /// The user id captures are filed under (`images/{exam}/{user}/...`).
    pub external_id: String,
    pub name: String,
    pub reference_key: Option<String>,
    /// JSON array of 128 numbers.
    #[serde(skip)]
    pub reference_embedding: Option<String>,
    /// JSON of the reference photo's analysis (faces, sharpness).
    pub reference_faces: Option<String>,
    pub enrolled_at: Option<i64>,
    pub consecutive_alerts: i64,
    pub last_status: Option<String>,
    pub incident_id: Option<i64>,
    pub created_at: i64,
    /// Why the latest reference photo that came from storage was refused (`code: message`);
    /// the reference enrolled before it, if any, stays in force.
    pub reference_refused: Option<String>,
    /// The storage reference object applied last ([`references`]).
    pub reference_object_id: Option<i64>,
}

impl Participant {
    pub(crate) fn from_direct(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get("id")?,
            exam_id: r.get("exam_id")?,
            external_id: r.get("external_id")?,
            name: r.get("name")?,
            reference_key: r.get("reference_key")?,
            reference_embedding: r.get("reference_embedding")?,
            reference_faces: r.get("reference_faces")?,
            enrolled_at: r.get("enrolled_at")?,
            consecutive_alerts: r.get("consecutive_alerts")?,
            last_status: r.get("last_status")?,
            incident_id: r.get("incident_id")?,
            created_at: r.get("created_at")?,
            reference_refused: r.get("reference_refused")?,
            reference_object_id: r.get("reference_object_id")?,
        })
    }
}

const PARTICIPANT_COLUMNS: &str = "id, exam_id, external_id, name, reference_key, \
     reference_embedding, reference_faces, enrolled_at, consecutive_alerts, last_status, \
     incident_id, created_at, reference_refused, reference_object_id";

/// One analysed (or waiting) image.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Capture {
    pub id: i64,
    pub exam_id: i64,
    pub participant_id: Option<i64>,
    pub external_id: String,
    pub object_key: String,
    pub file_name: String,
    /// `api` or `storage`.
    pub origin: String,
    /// `queued`, `OK`, `ALERT`, `ALERT_FINAL`.
    pub status: String,
    pub reason: Option<String>,
    pub distance: Option<f64>,
    /// The result JSON as written to `result_key`.
    pub result: Option<String>,
    pub result_key: Option<String>,
    pub incident_id: Option<i64>,
    pub review: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<i64>,
    pub received_at: i64,
    pub analyzed_at: Option<i64>,
}

impl Capture {
    fn from_direct(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get("id")?,
            exam_id: r.get("exam_id")?,
            participant_id: r.get("participant_id")?,
            external_id: r.get("external_id")?,
            object_key: r.get("object_key")?,
            file_name: r.get("file_name")?,
            origin: r.get("origin")?,
            status: r.get("status")?,
            reason: r.get("reason")?,
            distance: r.get("distance")?,
            result: r.get("result")?,
            result_key: r.get("result_key")?,
            incident_id: r.get("incident_id")?,
            review: r.get("review")?,
            reviewed_by: r.get("reviewed_by")?,
            reviewed_at: r.get("reviewed_at")?,
            received_at: r.get("received_at")?,
            analyzed_at: r.get("analyzed_at")?,
        })
    }
}

const CAPTURE_COLUMNS: &str = "id, exam_id, participant_id, external_id, object_key, file_name, \
     origin, status, reason, distance, result, result_key, incident_id, review, reviewed_by, \
     reviewed_at, received_at, analyzed_at";
