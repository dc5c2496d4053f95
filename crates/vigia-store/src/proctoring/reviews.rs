//! A proctor's review of alert captures (written with its `proctoring.reviewed` event in the
//! same transaction), the review counts of an exam, and the payload of a capture's event on
//! the exam log.

use vigia_domain::Timestamp;

use super::{CAPTURE_COLUMNS, Capture, find_capture};
use crate::exam_events::{self, insert_exam_event, insert_exam_event_direct};
use crate::{Db, StoreError, StoreResult, composed, direct, direct_read, grouped_write};

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
pub(super) fn capture_event(capture: &Capture, reviewed_by: Option<&str>) -> serde_json::Value {
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
