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
use crate::{Db, StoreError, StoreResult, direct, direct_read, grouped_write};

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

impl Transcode {
    /// A row of [`FIND`] read on a direct SQLite connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            attachment_id: row.get("attachment_id")?,
            incident_id: row.get("incident_id")?,
            status: row.get("status")?,
            reason: row.get("reason")?,
            progress: row.get("progress")?,
            info: row.get("info")?,
            video_key: row.get("video_key")?,
            poster_key: row.get("poster_key")?,
            strip_key: row.get("strip_key")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }
}

const FIND: &str = "SELECT attachment_id, incident_id, status, reason, progress, info, video_key, \
     poster_key, strip_key, created_at, updated_at FROM media_transcodes WHERE attachment_id = $1";

pub(crate) const INSERT: &str = "INSERT INTO media_transcodes (attachment_id, incident_id, status, \
     created_at, updated_at) VALUES ($1, $2, 'queued', $3, $3)";

pub async fn find(db: &Db, attachment_id: i64) -> StoreResult<Transcode> {
    let found: Option<Transcode> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, FIND, &[&attachment_id], Transcode::from_direct),
        postgres: |pool| Ok(sqlx::query_as(FIND)
            .bind(attachment_id)
            .fetch_optional(pool)
            .await?),
    )?;
    found.ok_or(StoreError::NotFound)
}

/// One update of a video's processing state, written for each table that keeps it: an
/// attachment's `media_transcodes` row and a competition entry's own row (`$1` the key).
macro_rules! update_video {
    ($set:literal, $condition:literal) => {
        [
            concat!(
                "UPDATE media_transcodes SET ",
                $set,
                " WHERE attachment_id = $1",
                $condition
            ),
            concat!(
                "UPDATE competition_entries SET ",
                $set,
                " WHERE id = $1",
                $condition
            ),
        ]
    };
}

/// From `queued`, or again from `processing` when a previous attempt died; `$2` now.
const START: [&str; 2] = update_video!(
    "status = 'processing', progress = 0, updated_at = $2",
    " AND status IN ('queued', 'processing')"
);
/// `$2` the progress, `$3` now.
const PROGRESS: [&str; 2] = update_video!(
    "progress = $2, updated_at = $3",
    " AND status = 'processing'"
);
/// `$2` ffprobe's metadata, `$3`..`$5` the processed keys, `$6` now.
const READY: [&str; 2] = update_video!(
    "status = 'ready', progress = 1, reason = NULL, info = $2, video_key = $3, poster_key = $4, \
     strip_key = $5, updated_at = $6",
    ""
);
/// `$2` the reason, `$3` the metadata if any, `$4` now.
const FAILED: [&str; 2] = update_video!(
    "status = 'failed', reason = $2, info = COALESCE($3, info), updated_at = $4",
    ""
);

/// The statement of `statements` for the table that keeps `video`'s state, and its key.
fn on_row(video: VideoRef, statements: [&'static str; 2]) -> (&'static str, i64) {
    match video {
        VideoRef::Attachment(id) => (statements[0], id),
        VideoRef::Entry(id) => (statements[1], id),
    }
}

/// Marks the video `processing` (from `queued`, or again from `processing` when a previous
/// attempt died); `false` when it is already `ready` or `failed` (or gone).
pub async fn start(db: &Db, video: VideoRef) -> StoreResult<bool> {
    let (sql, id) = on_row(video, START);
    let now = Timestamp::now().millis();
    let updated: u64 = grouped_write!(db,
        sqlite: |conn| Ok(direct::execute(conn, sql, &[&id, &now])? as u64),
        postgres: |tx| Ok(sqlx::query(sql)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()),
    )?;
    Ok(updated > 0)
}

pub async fn progress(db: &Db, video: VideoRef, progress: f64) -> StoreResult<()> {
    let (sql, id) = on_row(video, PROGRESS);
    let now = Timestamp::now().millis();
    grouped_write!(db,
        sqlite: |conn| {
            direct::execute(conn, sql, &[&id, &progress, &now])?;
            Ok(())
        },
        postgres: |tx| {
            sqlx::query(sql)
                .bind(id)
                .bind(progress)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            Ok(())
        },
    )
}

/// The processed files are in storage: the video becomes `ready`.
pub async fn ready(db: &Db, video: VideoRef, info: &str, keys: [&str; 3]) -> StoreResult<()> {
    let (sql, id) = on_row(video, READY);
    let now = Timestamp::now().millis();
    let info = info.to_owned();
    let [video_key, poster_key, strip_key] = keys.map(str::to_owned);
    grouped_write!(db,
        sqlite: |conn| {
            direct::execute(conn, sql, &[&id, &info, &video_key, &poster_key, &strip_key, &now])?;
            Ok(())
        },
        postgres: |tx| {
            sqlx::query(sql)
                .bind(id)
                .bind(&info)
                .bind(&video_key)
                .bind(&poster_key)
                .bind(&strip_key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            Ok(())
        },
    )
}

pub async fn failed(db: &Db, video: VideoRef, reason: &str, info: Option<&str>) -> StoreResult<()> {
    let (sql, id) = on_row(video, FAILED);
    let now = Timestamp::now().millis();
    let (reason, info) = (reason.to_owned(), info.map(str::to_owned));
    grouped_write!(db,
        sqlite: |conn| {
            direct::execute(conn, sql, &[&id, &reason, &info, &now])?;
            Ok(())
        },
        postgres: |tx| {
            sqlx::query(sql)
                .bind(id)
                .bind(&reason)
                .bind(&info)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            Ok(())
        },
    )
}
