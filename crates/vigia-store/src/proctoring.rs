//! Exam proctoring: exams, participants with their reference embedding, and captures with
//! their analysis. A capture is unique by object key, and its `media.analyze` job is enqueued
//! in the transaction that records it; its result is recorded once (compare-and-set on
//! `queued`), with the participant's run of consecutive alerts and its `media.analyzed` event
//! ([`crate::exam_events`]) in the same transaction; a review writes `proctoring.reviewed`.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;

use crate::exam_events::{self, insert_exam_event, insert_exam_event_direct};
use crate::jobs::{self, NewJob};
use crate::{Db, StoreError, StoreResult, composed, direct, direct_read, grouped_write};

pub mod landing;
pub mod references;

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

// --- exams ------------------------------------------------------------------------------------

/// A foreign-key violation on the SQLite connection (a RESTRICT one has the generic constraint
/// code, hence the message).
fn is_foreign_key_direct(error: &StoreError) -> bool {
    matches!(error, StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, message))
        if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
            || message.as_deref().is_some_and(|m| m.contains("FOREIGN KEY constraint failed")))
}

fn unknown_exam_reference() -> StoreError {
    StoreError::UnknownReference {
        field: "category_id".into(),
        entity: "category or department",
    }
}

pub async fn create_exam(db: &Db, new: &NewExam, created_by: &str) -> StoreResult<Exam> {
    let sql = format!(
        "INSERT INTO exams (code, title, category_id, department_id, starts_at, ends_at, threshold, \
         captures_per_minute, alerts_before_final, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {EXAM_COLUMNS}"
    );
    let now = Timestamp::now().millis();
    let new = new.clone();
    let (starts, ends) = (new.starts_at.millis(), new.ends_at.millis());
    let created_by = created_by.to_owned();
    grouped_write!(db,
        sqlite: |conn| {
            direct::query_optional(
                conn,
                &sql,
                &[
                    &new.code,
                    &new.title,
                    &new.category_id,
                    &new.department_id,
                    &starts,
                    &ends,
                    &new.threshold,
                    &new.captures_per_minute,
                    &new.alerts_before_final,
                    &created_by,
                    &now,
                ],
                Exam::from_direct,
            )
            .map_err(|e| {
                if is_foreign_key_direct(&e) {
                    unknown_exam_reference()
                } else {
                    StoreError::unique_direct(e, "code")
                }
            })?
            .ok_or(StoreError::NotFound)
        },
        postgres: |tx| {
            let exam: Exam = sqlx::query_as(composed(&sql))
                .bind(&new.code)
                .bind(&new.title)
                .bind(new.category_id)
                .bind(new.department_id)
                .bind(starts)
                .bind(ends)
                .bind(new.threshold)
                .bind(new.captures_per_minute)
                .bind(new.alerts_before_final)
                .bind(&created_by)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| {
                    if StoreError::is_foreign_key(&e) {
                        unknown_exam_reference()
                    } else {
                        StoreError::unique(e, "exams_code_key", "code")
                    }
                })?;
            Ok(exam)
        },
    )
}

pub async fn list_exams(db: &Db) -> StoreResult<Vec<Exam>> {
    let sql = format!("SELECT {EXAM_COLUMNS} FROM exams ORDER BY id DESC");
    direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[], Exam::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).fetch_all(pool).await?),
    )
}

pub async fn find_exam(db: &Db, id: i64) -> StoreResult<Exam> {
    let sql = format!("SELECT {EXAM_COLUMNS} FROM exams WHERE id = $1");
    let found: Option<Exam> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&id], Exam::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(id).fetch_optional(pool).await?),
    )?;
    found.ok_or(StoreError::NotFound)
}

pub async fn find_exam_by_code(db: &Db, code: &str) -> StoreResult<Exam> {
    let sql = format!("SELECT {EXAM_COLUMNS} FROM exams WHERE code = $1");
    let code = code.to_owned();
    let found: Option<Exam> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&code], Exam::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(&code).fetch_optional(pool).await?),
    )?;
    found.ok_or(StoreError::NotFound)
}

// --- participants -----------------------------------------------------------------------------

pub async fn add_participant(
    db: &Db,
    exam_id: i64,
    external_id: &str,
    name: &str,
) -> StoreResult<Participant> {
    let sql = format!(
        "INSERT INTO exam_participants (exam_id, external_id, name, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING {PARTICIPANT_COLUMNS}"
    );
    let now = Timestamp::now();
    let at = now.millis();
    let (external_id, name) = (external_id.to_owned(), name.to_owned());
    let added: Participant = grouped_write!(db,
        sqlite: |conn| direct::query_optional(
            conn,
            &sql,
            &[&exam_id, &external_id, &name, &at],
            Participant::from_direct,
        )
        .map_err(|e| StoreError::unique_direct(e, "external_id"))?
        .ok_or(StoreError::NotFound),
        postgres: |tx| sqlx::query_as(composed(&sql))
            .bind(exam_id)
            .bind(&external_id)
            .bind(&name)
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "exam_participants_external_key", "external_id")),
    )?;
    // A reference photo that landed in storage before the participant was added.
    references::apply_latest(db, added, now).await
}

pub async fn list_participants(db: &Db, exam_id: i64) -> StoreResult<Vec<Participant>> {
    let sql = format!(
        "SELECT {PARTICIPANT_COLUMNS} FROM exam_participants WHERE exam_id = $1 ORDER BY external_id"
    );
    direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[&exam_id], Participant::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(exam_id).fetch_all(pool).await?),
    )
}

pub async fn find_participant(db: &Db, exam_id: i64, id: i64) -> StoreResult<Participant> {
    let sql = format!(
        "SELECT {PARTICIPANT_COLUMNS} FROM exam_participants WHERE exam_id = $1 AND id = $2"
    );
    let found: Option<Participant> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&exam_id, &id], Participant::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql))
            .bind(exam_id)
            .bind(id)
            .fetch_optional(pool)
            .await?),
    )?;
    found.ok_or(StoreError::NotFound)
}

pub async fn find_participant_by_external(
    db: &Db,
    exam_id: i64,
    external_id: &str,
) -> StoreResult<Option<Participant>> {
    let sql = format!(
        "SELECT {PARTICIPANT_COLUMNS} FROM exam_participants WHERE exam_id = $1 AND external_id = $2"
    );
    let external_id = external_id.to_owned();
    direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&exam_id, &external_id], Participant::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql))
            .bind(exam_id)
            .bind(&external_id)
            .fetch_optional(pool)
            .await?),
    )
}

/// Stores a participant's checked reference: the photo's key, its embedding and its analysis
/// (and forgets an earlier refusal).
pub async fn set_reference(
    db: &Db,
    participant_id: i64,
    key: &str,
    embedding_json: &str,
    faces_json: &str,
) -> StoreResult<Participant> {
    let sql = format!(
        "UPDATE exam_participants SET reference_key = $2, reference_embedding = $3, \
         reference_faces = $4, enrolled_at = $5, reference_refused = NULL WHERE id = $1 \
         RETURNING {PARTICIPANT_COLUMNS}"
    );
    let now = Timestamp::now().millis();
    let (key, embedding, faces) = (
        key.to_owned(),
        embedding_json.to_owned(),
        faces_json.to_owned(),
    );
    let found: Option<Participant> = grouped_write!(db,
        sqlite: |conn| direct::query_optional(
            conn,
            &sql,
            &[&participant_id, &key, &embedding, &faces, &now],
            Participant::from_direct,
        ),
        postgres: |tx| Ok(sqlx::query_as(composed(&sql))
            .bind(participant_id)
            .bind(&key)
            .bind(&embedding)
            .bind(&faces)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?),
    )?;
    found.ok_or(StoreError::NotFound)
}

// --- captures ---------------------------------------------------------------------------------

/// A capture to record.
#[derive(Debug, Clone)]
pub struct NewCapture {
    pub exam_id: i64,
    pub participant_id: Option<i64>,
    pub external_id: String,
    pub object_key: String,
    pub file_name: String,
    /// `api` or `storage`.
    pub origin: &'static str,
}

/// Records a capture and enqueues its analysis in one transaction. `None` when a capture with
/// this object key already exists (it is analysed once).
pub async fn insert_capture(
    db: &Db,
    new: &NewCapture,
    now: Timestamp,
) -> StoreResult<Option<Capture>> {
    let sql = format!(
        "INSERT INTO exam_captures (exam_id, participant_id, external_id, object_key, file_name, \
         origin, status, received_at) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7) \
         ON CONFLICT (object_key) DO NOTHING RETURNING {CAPTURE_COLUMNS}"
    );
    let new = new.clone();
    let at = now.millis();
    let analyze = |capture: &Capture| {
        NewJob::new(&jobs::Task::MediaAnalyze {
            capture_id: capture.id,
        })
        .dedup(format!("{ANALYZE}:{}", capture.id))
    };
    grouped_write!(db,
        sqlite: |conn| {
            let capture = direct::query_optional(
                conn,
                &sql,
                &[
                    &new.exam_id,
                    &new.participant_id,
                    &new.external_id,
                    &new.object_key,
                    &new.file_name,
                    &new.origin,
                    &at,
                ],
                Capture::from_direct,
            )?;
            if let Some(capture) = &capture {
                jobs::enqueue_direct(conn, &analyze(capture), now)?;
            }
            Ok(capture)
        },
        postgres: |tx| {
            let capture: Option<Capture> = sqlx::query_as(composed(&sql))
                .bind(new.exam_id)
                .bind(new.participant_id)
                .bind(&new.external_id)
                .bind(&new.object_key)
                .bind(&new.file_name)
                .bind(new.origin)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(capture) = &capture {
                jobs::enqueue_in(&mut *tx, &analyze(capture), now).await?;
            }
            Ok(capture)
        },
    )
}

pub async fn find_capture(db: &Db, id: i64) -> StoreResult<Capture> {
    let sql = format!("SELECT {CAPTURE_COLUMNS} FROM exam_captures WHERE id = $1");
    let found: Option<Capture> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&id], Capture::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(id).fetch_optional(pool).await?),
    )?;
    found.ok_or(StoreError::NotFound)
}

/// An exam's captures, newest first, optionally of one participant; at most `limit`.
pub async fn list_captures(
    db: &Db,
    exam_id: i64,
    participant_id: Option<i64>,
    limit: u32,
) -> StoreResult<Vec<Capture>> {
    let limit = limit.clamp(1, 500);
    let sql = format!(
        "SELECT {CAPTURE_COLUMNS} FROM exam_captures WHERE exam_id = $1 \
         AND ($2 IS NULL OR participant_id = $2) ORDER BY id DESC LIMIT {limit}"
    );
    direct_read!(db,
        sqlite: |conn| direct::query_sized(
            conn,
            &sql,
            &[&exam_id, &participant_id],
            limit as usize,
            Capture::from_direct,
        ),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql))
            .bind(exam_id)
            .bind(participant_id)
            .fetch_all(pool)
            .await?),
    )
}

/// What the analysis concluded, before the participant's run of alerts is applied.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `None` for OK, otherwise the reason code.
    pub reason: Option<String>,
    pub distance: Option<f64>,
    /// Final on its own (a capture outside the exam window).
    pub final_now: bool,
}

/// The status a capture ends with, given its outcome and how many alerts in a row its
/// participant had before it.
pub fn final_status(
    outcome: &Outcome,
    alerts_before: i64,
    alerts_before_final: i64,
) -> &'static str {
    match &outcome.reason {
        None => "OK",
        Some(_) if outcome.final_now || alerts_before + 1 >= alerts_before_final => "ALERT_FINAL",
        Some(_) => "ALERT",
    }
}

/// Records a capture's outcome once: the capture must still be `queued`. Applies the
/// participant's run of consecutive alerts in the same transaction. `render` turns the
/// decided status into the result JSON stored with it. Returns the capture as stored (also
/// when it had already been recorded: then nothing changes).
///
/// The status is decided from the participant's run as read before the write, so that
/// `render` runs on the caller's task; the write reads the run again and, should another
/// capture of the participant have changed the status meanwhile, records nothing and answers
/// `Stale` (the analysis job runs again).
pub async fn record_outcome(
    db: &Db,
    capture: &Capture,
    outcome: &Outcome,
    alerts_before_final: i64,
    result_key: &str,
    render: impl FnOnce(&str) -> String,
    now: Timestamp,
) -> StoreResult<Capture> {
    const RUN: &str = "SELECT consecutive_alerts FROM exam_participants WHERE id = $1";
    const PARTICIPANT: &str =
        "UPDATE exam_participants SET consecutive_alerts = $2, last_status = $3 WHERE id = $1";
    let update = format!(
        "UPDATE exam_captures SET status = $2, reason = $3, distance = $4, result = $5, \
         result_key = $6, analyzed_at = $7 WHERE id = $1 AND status = 'queued' \
         RETURNING {CAPTURE_COLUMNS}"
    );
    let capture_id = capture.id;
    let participant = capture.participant_id;
    let alerts_before: i64 = match participant {
        Some(p) => direct_read!(db,
            sqlite: |conn| direct::query_optional(conn, RUN, &[&p], |r| r.get("consecutive_alerts")),
            postgres: |pool| Ok(sqlx::query_scalar(RUN).bind(p).fetch_optional(pool).await?),
        )?
        .unwrap_or(0),
        None => 0,
    };
    let status = final_status(outcome, alerts_before, alerts_before_final);
    let result = render(status);
    let outcome = outcome.clone();
    let result_key = result_key.to_owned();
    let at = now.millis();
    let next_id = exam_events::next_id_sql(db);
    let written: StoreResult<Option<Capture>> = grouped_write!(db,
        sqlite: |conn| {
            let alerts_before: i64 = match participant {
                Some(p) => direct::query_optional(conn, RUN, &[&p], |r| r.get("consecutive_alerts"))?
                    .unwrap_or(0),
                None => 0,
            };
            if final_status(&outcome, alerts_before, alerts_before_final) != status {
                return Err(StoreError::Stale);
            }
            let updated = direct::query_optional(
                conn,
                &update,
                &[&capture_id, &status, &outcome.reason, &outcome.distance, &result, &result_key, &at],
                Capture::from_direct,
            )?;
            let Some(updated) = updated else {
                return Ok(None);
            };
            let event = capture_event(&updated, None);
            insert_exam_event_direct(
                conn,
                updated.exam_id,
                Some(updated.id),
                exam_events::ANALYZED,
                "system",
                at,
                &event,
            )?;
            if let Some(p) = participant {
                let run = if status == "OK" { 0 } else { alerts_before + 1 };
                direct::execute(conn, PARTICIPANT, &[&p, &run, &status])?;
            }
            Ok(Some(updated))
        },
        postgres: |tx| {
            let alerts_before: i64 = match participant {
                Some(p) => sqlx::query_scalar(RUN)
                    .bind(p)
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or(0),
                None => 0,
            };
            if final_status(&outcome, alerts_before, alerts_before_final) != status {
                return Err(StoreError::Stale);
            }
            let updated: Option<Capture> = sqlx::query_as(composed(&update))
                .bind(capture_id)
                .bind(status)
                .bind(&outcome.reason)
                .bind(outcome.distance)
                .bind(&result)
                .bind(&result_key)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(updated) = updated else {
                return Ok(None);
            };
            let event = capture_event(&updated, None);
            insert_exam_event!(
                tx,
                next_id,
                updated.exam_id,
                Some(updated.id),
                exam_events::ANALYZED,
                "system",
                at,
                event
            );
            if let Some(p) = participant {
                let run = if status == "OK" { 0 } else { alerts_before + 1 };
                sqlx::query(PARTICIPANT)
                    .bind(p)
                    .bind(run)
                    .bind(status)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(Some(updated))
        },
    );
    match written {
        Ok(Some(updated)) => Ok(updated),
        Ok(None) => find_capture(db, capture_id).await,
        // Recorded by another run meanwhile: that record stands.
        Err(StoreError::Stale) => {
            let stored = find_capture(db, capture_id).await?;
            if stored.status == "queued" {
                Err(StoreError::Stale)
            } else {
                Ok(stored)
            }
        }
        Err(other) => Err(other),
    }
}

/// Links an `ALERT_FINAL` capture (and its participant, if not linked yet) to the incident
/// opened for it.
pub async fn link_incident(db: &Db, capture: &Capture, incident_id: i64) -> StoreResult<()> {
    const CAPTURE: &str = "UPDATE exam_captures SET incident_id = $2 WHERE id = $1";
    const PARTICIPANT: &str =
        "UPDATE exam_participants SET incident_id = $2 WHERE id = $1 AND incident_id IS NULL";
    let (capture_id, participant) = (capture.id, capture.participant_id);
    grouped_write!(db,
        sqlite: |conn| {
            direct::execute(conn, CAPTURE, &[&capture_id, &incident_id])?;
            if let Some(p) = participant {
                direct::execute(conn, PARTICIPANT, &[&p, &incident_id])?;
            }
            Ok(())
        },
        postgres: |tx| {
            sqlx::query(CAPTURE)
                .bind(capture_id)
                .bind(incident_id)
                .execute(&mut *tx)
                .await?;
            if let Some(p) = participant {
                sqlx::query(PARTICIPANT)
                    .bind(p)
                    .bind(incident_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        },
    )
}

/// The incident a participant's earlier `ALERT_FINAL` opened, if any.
pub async fn participant_incident(db: &Db, participant_id: i64) -> StoreResult<Option<i64>> {
    const SQL: &str = "SELECT incident_id FROM exam_participants WHERE id = $1";
    let found: Option<Option<i64>> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, SQL, &[&participant_id], |r| r.get("incident_id")),
        postgres: |pool| Ok(sqlx::query_scalar(SQL)
            .bind(participant_id)
            .fetch_optional(pool)
            .await?),
    )?;
    Ok(found.flatten())
}

/// A proctor's review of an alert: `false_positive` or `confirmed`. `None` when the capture is
/// not an alert (only `ALERT` and `ALERT_FINAL` captures are reviewed).
pub async fn review(
    db: &Db,
    capture_id: i64,
    verdict: &str,
    by: &str,
) -> StoreResult<Option<Capture>> {
    let sql = format!(
        "UPDATE exam_captures SET review = $2, reviewed_by = $3, reviewed_at = $4 \
         WHERE id = $1 AND status IN ('ALERT', 'ALERT_FINAL') RETURNING {CAPTURE_COLUMNS}"
    );
    let now = Timestamp::now().millis();
    let next_id = exam_events::next_id_sql(db);
    let (verdict, by) = (verdict.to_owned(), by.to_owned());
    let found: Option<Capture> = grouped_write!(db,
        sqlite: |conn| {
            let found = direct::query_optional(
                conn,
                &sql,
                &[&capture_id, &verdict, &by, &now],
                Capture::from_direct,
            )?;
            if let Some(capture) = &found {
                let event = capture_event(capture, Some(by.as_str()));
                insert_exam_event_direct(
                    conn,
                    capture.exam_id,
                    Some(capture.id),
                    exam_events::REVIEWED,
                    &by,
                    now,
                    &event,
                )?;
            }
            Ok(found)
        },
        postgres: |tx| {
            let found: Option<Capture> = sqlx::query_as(composed(&sql))
                .bind(capture_id)
                .bind(&verdict)
                .bind(&by)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(capture) = &found {
                let event = capture_event(capture, Some(by.as_str()));
                insert_exam_event!(
                    tx,
                    next_id,
                    capture.exam_id,
                    Some(capture.id),
                    exam_events::REVIEWED,
                    &by,
                    now,
                    event
                );
            }
            Ok(found)
        },
    )?;
    if found.is_none() {
        find_capture(db, capture_id).await?;
    }
    Ok(found)
}

/// The payload of a capture's event on the log: what a proctor's view needs to place it.
fn capture_event(capture: &Capture, reviewed_by: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "exam_id": capture.exam_id,
        "capture_id": capture.id,
        "participant_id": capture.participant_id,
        "user_id": capture.external_id,
        "file_name": capture.file_name,
        "status": capture.status,
        "reason": capture.reason,
        "distance": capture.distance,
        "review": capture.review,
        "reviewed_by": reviewed_by,
    })
}

/// Review counts of an exam: (false positives, confirmed, alerts in all).
pub async fn review_counts(db: &Db, exam_id: i64) -> StoreResult<(i64, i64, i64)> {
    const SQL: &str = "SELECT \
        COALESCE(SUM(CASE WHEN review = 'false_positive' THEN 1 ELSE 0 END), 0) AS false_positives, \
        COALESCE(SUM(CASE WHEN review = 'confirmed' THEN 1 ELSE 0 END), 0) AS confirmed, \
        COUNT(*) AS alerts FROM exam_captures WHERE exam_id = $1 AND status IN ('ALERT', 'ALERT_FINAL')";
    direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, SQL, &[&exam_id], |r| {
            Ok((r.get("false_positives")?, r.get("confirmed")?, r.get("alerts")?))
        })?
        .ok_or_else(|| StoreError::Other(anyhow::anyhow!("an aggregate returned no row"))),
        postgres: |pool| Ok(sqlx::query_as(SQL).bind(exam_id).fetch_one(pool).await?),
    )
}

pub async fn find_capture_by_key(db: &Db, key: &str) -> StoreResult<Option<Capture>> {
    let sql = format!("SELECT {CAPTURE_COLUMNS} FROM exam_captures WHERE object_key = $1");
    let key = key.to_owned();
    direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&key], Capture::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(&key).fetch_optional(pool).await?),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Outcome {
        Outcome {
            reason: Some("no_face".into()),
            distance: None,
            final_now: false,
        }
    }

    #[test]
    fn the_third_alert_in_a_row_is_final_and_an_ok_never_is() {
        assert_eq!(final_status(&alert(), 0, 3), "ALERT");
        assert_eq!(final_status(&alert(), 1, 3), "ALERT");
        assert_eq!(final_status(&alert(), 2, 3), "ALERT_FINAL");
        let ok = Outcome {
            reason: None,
            distance: Some(0.3),
            final_now: false,
        };
        assert_eq!(final_status(&ok, 5, 3), "OK");
    }

    #[test]
    fn an_alert_outside_the_window_is_final_at_once() {
        let outside = Outcome {
            final_now: true,
            ..alert()
        };
        assert_eq!(final_status(&outside, 0, 3), "ALERT_FINAL");
    }
}
