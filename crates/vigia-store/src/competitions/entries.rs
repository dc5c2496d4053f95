//! Competition entries: one per person and competition, a title and a video. The upload
//! streams like an attachment's: [`EntryUpload::begin`] reserves the row (hidden while
//! `uploading`; the unique index on competition and person answers a second entry with
//! [`StoreError::Duplicate`] before any byte is stored), the bytes go to
//! `uploaded/competitions/{competition}/{entry}/{name}` as they arrive, and
//! [`EntryUpload::finish`] makes the entry visible together with its `media.transcode` job in
//! one transaction. Anything failing leaves no row and no object. The processing state
//! (`queued → processing → ready | failed`, reason, progress, processed keys) is kept in the
//! entry's row and moved by `crate::transcodes`.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::competitions::EntryTitle;
use vigia_domain::incidents::AllowedMedia;

use crate::incidents::attachments::stored_name;
use crate::jobs::{self, NewJob, Task, VideoRef};
use crate::objects::{HashedWriter, ObjectKey, Objects, Written};
use crate::{Db, StoreError, StoreResult, direct, direct_read, grouped_write};

/// An entry as stored, with its author's name and its votes.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Entry {
    pub id: i64,
    pub competition_id: i64,
    pub user_id: i64,
    pub author: String,
    pub title: String,
    pub object_key: String,
    pub original_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// `queued`, `processing`, `ready`, `failed`.
    pub status: String,
    pub reason: Option<String>,
    pub progress: f64,
    /// ffprobe's metadata as JSON.
    pub info: Option<String>,
    pub video_key: Option<String>,
    pub poster_key: Option<String>,
    pub strip_key: Option<String>,
    pub votes: i64,
    pub first_vote_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Entry {
    /// A row of `select!()` read on a direct SQLite connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            competition_id: row.get("competition_id")?,
            user_id: row.get("user_id")?,
            author: row.get("author")?,
            title: row.get("title")?,
            object_key: row.get("object_key")?,
            original_name: row.get("original_name")?,
            content_type: row.get("content_type")?,
            size_bytes: row.get("size_bytes")?,
            status: row.get("status")?,
            reason: row.get("reason")?,
            progress: row.get("progress")?,
            info: row.get("info")?,
            video_key: row.get("video_key")?,
            poster_key: row.get("poster_key")?,
            strip_key: row.get("strip_key")?,
            votes: row.get("votes")?,
            first_vote_at: row.get("first_vote_at")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }
}

/// The visible entries with their author and votes, as a literal for the statements below.
macro_rules! select {
    () => {
        "SELECT e.id, e.competition_id, e.user_id, u.display_name AS author, e.title, \
         e.object_key, e.original_name, e.content_type, e.size_bytes, e.status, e.reason, \
         e.progress, e.info, e.video_key, e.poster_key, e.strip_key, \
         (SELECT COUNT(*) FROM competition_votes v WHERE v.entry_id = e.id) AS votes, \
         (SELECT MIN(v.voted_at) FROM competition_votes v WHERE v.entry_id = e.id) AS first_vote_at, \
         e.created_at, e.updated_at \
         FROM competition_entries e JOIN users u ON u.id = e.user_id WHERE NOT e.uploading"
    };
}

const FIND: &str = concat!(select!(), " AND e.id = $1");
const OF_USER: &str = concat!(select!(), " AND e.competition_id = $1 AND e.user_id = $2");
const READY: &str = concat!(
    select!(),
    " AND e.competition_id = $1 AND e.status = 'ready' ORDER BY e.id"
);
const RESERVE: &str = "INSERT INTO competition_entries (competition_id, user_id, title, object_key, \
     original_name, content_type, uploading, created_at, updated_at) \
     VALUES ($1, $2, $3, '', $4, $5, TRUE, $6, $6) RETURNING id";
const REVEAL: &str = "UPDATE competition_entries SET object_key = $2, size_bytes = $3, sha256 = $4, \
     uploading = FALSE, updated_at = $5 WHERE id = $1 AND uploading";
const FORGET: &str = "DELETE FROM competition_entries WHERE id = $1 AND uploading";
const ABANDONED: &str =
    "SELECT id, competition_id FROM competition_entries WHERE uploading AND created_at < $1";

fn find_direct(conn: &direct::Conn, id: i64) -> StoreResult<Entry> {
    direct::query_optional(conn, FIND, &[&id], Entry::from_direct)?.ok_or(StoreError::NotFound)
}

async fn find_postgres(executor: impl sqlx::PgExecutor<'_>, id: i64) -> StoreResult<Entry> {
    let found: Option<Entry> = sqlx::query_as(FIND)
        .bind(id)
        .fetch_optional(executor)
        .await?;
    found.ok_or(StoreError::NotFound)
}

/// One visible entry.
pub async fn find(db: &Db, id: i64) -> StoreResult<Entry> {
    direct_read!(db,
        sqlite: |conn| find_direct(conn, id),
        postgres: |pool| find_postgres(pool, id).await,
    )
}

/// `user`'s entry in `competition`, if they submitted one.
pub async fn of_user(db: &Db, competition: i64, user: i64) -> StoreResult<Option<Entry>> {
    direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, OF_USER, &[&competition, &user], Entry::from_direct),
        postgres: |pool| Ok(sqlx::query_as(OF_USER)
            .bind(competition)
            .bind(user)
            .fetch_optional(pool)
            .await?),
    )
}

/// The competition's entries whose video is ready, oldest first.
pub async fn ready(db: &Db, competition: i64) -> StoreResult<Vec<Entry>> {
    direct_read!(db,
        sqlite: |conn| direct::query(conn, READY, &[&competition], Entry::from_direct),
        postgres: |pool| Ok(sqlx::query_as(READY)
            .bind(competition)
            .fetch_all(pool)
            .await?),
    )
}

/// An entry being received; see the module documentation.
pub struct EntryUpload {
    db: Db,
    open: Option<Open>,
}

struct Open {
    id: i64,
    file: HashedWriter,
}

impl EntryUpload {
    /// Reserves `user`'s entry in `competition` (hidden until [`EntryUpload::finish`]) and
    /// opens its object. [`StoreError::Duplicate`] (`entry`) when they already have one.
    #[allow(clippy::too_many_arguments)]
    pub async fn begin(
        db: &Db,
        objects: &Objects,
        competition: i64,
        user: i64,
        title: &EntryTitle,
        raw_name: &str,
        media: AllowedMedia,
        now: Timestamp,
    ) -> StoreResult<Self> {
        let name = stored_name(raw_name, media);
        let (title, content_type, at) = (title.as_str().to_owned(), media.mime(), now.millis());
        let stored = name.clone();
        let id: i64 = grouped_write!(db,
            sqlite: |conn| direct::query_optional(
                conn,
                RESERVE,
                &[&competition, &user, &title, &stored, &content_type, &at],
                |r| r.get("id"),
            )
            .map_err(|e| StoreError::unique_direct(e, "entry"))?
            .ok_or(StoreError::NotFound),
            postgres: |tx| sqlx::query_scalar(RESERVE)
                .bind(competition)
                .bind(user)
                .bind(&title)
                .bind(&stored)
                .bind(content_type)
                .bind(at)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| StoreError::unique(e, "competition_entries_one_per_person", "entry")),
        )?;
        let key = ObjectKey::join([
            "uploaded",
            "competitions",
            &competition.to_string(),
            &id.to_string(),
            &name,
        ]);
        let file = match HashedWriter::open(objects, key).await {
            Ok(file) => file,
            Err(error) => {
                forget_row(db, id).await;
                return Err(error.into());
            }
        };
        Ok(Self {
            db: db.clone(),
            open: Some(Open { id, file }),
        })
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.open.as_ref().map_or(0, |o| o.file.size())
    }

    /// Appends the next bytes of the file.
    pub async fn write(&mut self, bytes: &[u8]) -> StoreResult<()> {
        let open = self.open.as_mut().ok_or(StoreError::NotFound)?;
        Ok(open.file.write(bytes).await?)
    }

    /// Completes the object and makes the entry visible with its `media.transcode` job, in one
    /// transaction. On failure nothing stays behind.
    pub async fn finish(mut self, objects: &Objects, now: Timestamp) -> StoreResult<Entry> {
        let open = self.open.take().ok_or(StoreError::NotFound)?;
        let Open { id, file } = open;
        let Written { key, size, sha256 } = match file.finish().await {
            Ok(written) => written,
            Err(error) => {
                forget_row(&self.db, id).await;
                return Err(error.into());
            }
        };
        let db = &self.db;
        let job = NewJob::new(&Task::MediaTranscode {
            video: VideoRef::Entry(id),
        })
        .dedup(format!("{}:entry:{id}", crate::transcodes::TRANSCODE));
        let (object_key, size, at) = (key.as_str().to_owned(), size as i64, now.millis());
        let removed = move || {
            StoreError::Other(anyhow::anyhow!(
                "entry {id} was removed while it was uploading"
            ))
        };
        // The entry as it became visible, read in the same transaction.
        let written: StoreResult<Entry> = grouped_write!(db,
            sqlite: |conn| {
                if direct::execute(conn, REVEAL, &[&id, &object_key, &size, &sha256, &at])? == 0 {
                    return Err(removed());
                }
                jobs::enqueue_direct(conn, &job, now)?;
                find_direct(conn, id)
            },
            postgres: |tx| {
                let updated = sqlx::query(REVEAL)
                    .bind(id)
                    .bind(&object_key)
                    .bind(size)
                    .bind(&sha256)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if updated == 0 {
                    return Err(removed());
                }
                jobs::enqueue_in(&mut *tx, &job, now).await?;
                find_postgres(&mut *tx, id).await
            },
        );
        match written {
            Ok(entry) => Ok(entry),
            Err(error) => {
                if let Err(e) = objects.delete(&key).await {
                    tracing::error!(error = format!("{e:#}"), %key, "cannot delete an orphaned object");
                }
                forget_row(db, id).await;
                Err(error)
            }
        }
    }

    /// Drops what was received: the object and the reserved row.
    pub async fn abandon(mut self) {
        if let Some(open) = self.open.take() {
            abandon(&self.db, open).await;
        }
    }
}

impl Drop for EntryUpload {
    /// An upload dropped unfinished (the request was cancelled) is abandoned in the background.
    fn drop(&mut self) {
        if let Some(open) = self.open.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let db = self.db.clone();
            runtime.spawn(async move { abandon(&db, open).await });
        }
    }
}

async fn abandon(db: &Db, open: Open) {
    open.file.abort().await;
    forget_row(db, open.id).await;
}

/// Deletes a reserved row that never became visible; failures are logged.
async fn forget_row(db: &Db, id: i64) {
    let deleted: StoreResult<()> = async {
        grouped_write!(db,
            sqlite: |conn| {
                direct::execute(conn, FORGET, &[&id])?;
                Ok(())
            },
            postgres: |tx| {
                sqlx::query(FORGET).bind(id).execute(&mut *tx).await?;
                Ok(())
            },
        )
    }
    .await;
    if let Err(error) = deleted {
        tracing::error!(%error, entry_id = id, "cannot remove an unfinished entry");
    }
}

/// Removes entries whose upload started before `started_before` and never finished (their
/// process died), so their authors may submit again: their objects and rows. Returns how many.
pub async fn sweep_abandoned(
    db: &Db,
    objects: &Objects,
    started_before: Timestamp,
) -> StoreResult<usize> {
    let before = started_before.millis();
    let rows: Vec<(i64, i64)> = direct_read!(db,
        sqlite: |conn| direct::query(conn, ABANDONED, &[&before], |r| {
            Ok((r.get("id")?, r.get("competition_id")?))
        }),
        postgres: |pool| Ok(sqlx::query_as(ABANDONED)
            .bind(before)
            .fetch_all(pool)
            .await?),
    )?;
    for &(id, competition) in &rows {
        objects
            .delete_under(&format!("uploaded/competitions/{competition}/{id}"))
            .await?;
        forget_row(db, id).await;
    }
    Ok(rows.len())
}
