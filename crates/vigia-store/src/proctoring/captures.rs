//! Recording and finding captures. A capture is unique by object key, and its `media.analyze`
//! job ([`super::ANALYZE`]) is enqueued in the transaction that records it.

use vigia_domain::Timestamp;

use super::{ANALYZE, CAPTURE_COLUMNS, Capture};
use crate::jobs::{self, NewJob};
use crate::{Db, StoreError, StoreResult, composed, direct, direct_read, grouped_write};

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

pub async fn find_capture_by_key(db: &Db, key: &str) -> StoreResult<Option<Capture>> {
    let sql = format!("SELECT {CAPTURE_COLUMNS} FROM exam_captures WHERE object_key = $1");
    let key = key.to_owned();
    direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&key], Capture::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(&key).fetch_optional(pool).await?),
    )
}
