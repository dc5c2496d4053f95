//! Video processing rows: `queued → processing → ready | failed` with the reason, progress,
//! ffprobe's metadata and the processed objects' keys. A row is created (and its
//! `media.transcode` job enqueued) in the transaction that makes a video attachment visible.
//! A competition entry keeps the same state in its own row (`competition_entries`); the
//! functions that move the state take a [`VideoRef`] naming either.

pub mod live;

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;

use crate::jobs::VideoRef;
use crate::{Db, StoreError, StoreResult, composed, on_reader, on_writer};

/// The job kind that processes one video attachment.
pub const TRANSCODE: &str = "media.transcode";

/// One video's processing.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Transcode {
    pub attachment_id: i64,
    pub incident_id: i64,
    /// `queued`, `processing`, `ready`, `failed`.
    pub status: String,
    pub reason: Option<String>,
    /// 0.0–1.0.
    pub progress: f64,
    /// ffprobe's metadata as JSON.
    pub info: Option<String>,
    pub video_key: Option<String>,
    pub poster_key: Option<String>,
    pub strip_key: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "attachment_id, incident_id, status, reason, progress, info, video_key, \
     poster_key, strip_key, created_at, updated_at";

pub(crate) const INSERT: &str = "INSERT INTO media_transcodes (attachment_id, incident_id, status, \
     created_at, updated_at) VALUES ($1, $2, 'queued', $3, $3)";

pub async fn find(db: &Db, attachment_id: i64) -> StoreResult<Transcode> {
    let sql = format!("SELECT {COLUMNS} FROM media_transcodes WHERE attachment_id = $1");
    let found: Option<Transcode> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(attachment_id)
        .fetch_optional(pool)
        .await?);
    found.ok_or(StoreError::NotFound)
}

/// Where a video's processing state is kept: its table and key column.
fn row_of(video: VideoRef) -> (&'static str, &'static str, i64) {
    match video {
        VideoRef::Attachment(id) => ("media_transcodes", "attachment_id", id),
        VideoRef::Entry(id) => ("competition_entries", "id", id),
    }
}

/// Marks the video `processing` (from `queued`, or again from `processing` when a previous
/// attempt died); `false` when it is already `ready` or `failed` (or gone).
pub async fn start(db: &Db, video: VideoRef) -> StoreResult<bool> {
    let (table, key, id) = row_of(video);
    let sql = format!(
        "UPDATE {table} SET status = 'processing', progress = 0, updated_at = $2 \
         WHERE {key} = $1 AND status IN ('queued', 'processing')"
    );
    let now = Timestamp::now().millis();
    let updated = on_writer!(db, |pool| sqlx::query(composed(&sql))
        .bind(id)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(updated > 0)
}

pub async fn progress(db: &Db, video: VideoRef, progress: f64) -> StoreResult<()> {
    let (table, key, id) = row_of(video);
    let sql = format!(
        "UPDATE {table} SET progress = $2, updated_at = $3 WHERE {key} = $1 AND status = 'processing'"
    );
    let now = Timestamp::now().millis();
    on_writer!(db, |pool| sqlx::query(composed(&sql))
        .bind(id)
        .bind(progress)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

/// The processed files are in storage: the video becomes `ready`.
pub async fn ready(db: &Db, video: VideoRef, info: &str, keys: [&str; 3]) -> StoreResult<()> {
    let (table, key, id) = row_of(video);
    let sql = format!(
        "UPDATE {table} SET status = 'ready', progress = 1, reason = NULL, info = $2, \
         video_key = $3, poster_key = $4, strip_key = $5, updated_at = $6 WHERE {key} = $1"
    );
    let now = Timestamp::now().millis();
    on_writer!(db, |pool| sqlx::query(composed(&sql))
        .bind(id)
        .bind(info)
        .bind(keys[0])
        .bind(keys[1])
        .bind(keys[2])
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}

pub async fn failed(db: &Db, video: VideoRef, reason: &str, info: Option<&str>) -> StoreResult<()> {
    let (table, key, id) = row_of(video);
    let sql = format!(
        "UPDATE {table} SET status = 'failed', reason = $2, info = COALESCE($3, info), \
         updated_at = $4 WHERE {key} = $1"
    );
    let now = Timestamp::now().millis();
    on_writer!(db, |pool| sqlx::query(composed(&sql))
        .bind(id)
        .bind(reason)
        .bind(info)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(())
}
