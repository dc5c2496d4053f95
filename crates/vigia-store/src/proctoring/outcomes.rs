//! A capture's analysis outcome: the status it ends with given its participant's run of
//! consecutive alerts ([`final_status`]), recording it once (compare-and-set on `queued`) with
//! the run and the `media.analyzed` event ([`crate::exam_events`]) in the same transaction, and
//! linking an `ALERT_FINAL` capture and its participant to the incident opened for it.

use vigia_domain::Timestamp;

use super::reviews::capture_event;
use super::{CAPTURE_COLUMNS, Capture, find_capture};
use crate::exam_events::{self, insert_exam_event, insert_exam_event_direct};
use crate::{Db, StoreError, StoreResult, composed, direct, direct_read, grouped_write};

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
