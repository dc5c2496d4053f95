//! Files attached to incidents: a row in `incident_attachments`, the file itself in object
//! storage under `attachments/{incident}/{attachment}/{name}`, and for images a PNG thumbnail
//! beside it (`thumb_{name}.png`).
//!
//! Adding one streams: [`Upload::begin`] reserves the row (its id names the object key; the row
//! stays hidden from every read while `uploading`), the bytes go to object storage as they
//! arrive, hashed on the way, and [`Upload::finish`] makes the attachment visible together with
//! its `attachment_added` event and the incident's new `updated_at`, in one short transaction.
//! No transaction stays open while bytes travel. Anything failing — the client, the size limit,
//! storage, the commit — leaves no visible row, no event and no object ([`Upload::abandon`]; an
//! upload dropped unfinished is abandoned in the background, one left by a crash is removed by
//! [`sweep_abandoned`]). Deleting is soft: the row gets `deleted_at` and an
//! `attachment_deleted` event, and the stored objects are kept for the audit trail.

use bytes::Bytes;
use futures::stream::BoxStream;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::ids::{AttachmentId, IncidentId, UserId};
use vigia_domain::incidents::{AllowedMedia, EventData, MediaKind};

use super::events::{insert_event, insert_event_direct};
use crate::objects::{HashedWriter, ObjectKey, Objects, Written, sanitize_segment};
use crate::{Db, StoreError, StoreResult, direct, direct_read, grouped_write};

pub use super::thumbnail::{THUMBNAIL_DECODES, THUMBNAIL_MAX_PIXELS, THUMBNAIL_MAX_PX, thumbnail};

/// An attachment as stored.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub id: AttachmentId,
    pub incident_id: IncidentId,
    pub object_key: ObjectKey,
    /// The name it is stored and served under: the upload's name made safe, with the extension
    /// of what its bytes are.
    pub name: String,
    /// What its bytes are (never what the upload claimed).
    pub media: AllowedMedia,
    pub size_bytes: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    pub thumbnail_key: Option<ObjectKey>,
    /// `user:12`, `api_key:3`.
    pub uploaded_by: String,
    pub uploaded_by_user_id: Option<UserId>,
    pub created_at: Timestamp,
}

/// Who is attaching or deleting.
#[derive(Debug, Clone)]
pub struct Uploader {
    /// `user:12`, `api_key:3`.
    pub label: String,
    pub user: Option<UserId>,
}

const COLUMNS: &str = "id, incident_id, object_key, original_name, content_type, size_bytes, sha256, \
    thumbnail_key, uploaded_by, uploaded_by_user_id, created_at";

#[derive(Debug, FromRow)]
struct AttachmentRow {
    id: i64,
    incident_id: i64,
    object_key: String,
    original_name: String,
    content_type: String,
    size_bytes: i64,
    sha256: String,
    thumbnail_key: Option<String>,
    uploaded_by: String,
    uploaded_by_user_id: Option<i64>,
    created_at: i64,
}

impl AttachmentRow {
    /// A row of [`COLUMNS`] read on a direct SQLite connection, each column by its name.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            incident_id: row.get("incident_id")?,
            object_key: row.get("object_key")?,
            original_name: row.get("original_name")?,
            content_type: row.get("content_type")?,
            size_bytes: row.get("size_bytes")?,
            sha256: row.get("sha256")?,
            thumbnail_key: row.get("thumbnail_key")?,
            uploaded_by: row.get("uploaded_by")?,
            uploaded_by_user_id: row.get("uploaded_by_user_id")?,
            created_at: row.get("created_at")?,
        })
    }
}

impl TryFrom<AttachmentRow> for Attachment {
    type Error = StoreError;

    fn try_from(row: AttachmentRow) -> StoreResult<Self> {
        let media = AllowedMedia::from_mime(&row.content_type).ok_or_else(|| {
            StoreError::Other(anyhow::anyhow!(
                "attachment {} has an unknown content type {:?}",
                row.id,
                row.content_type
            ))
        })?;
        Ok(Attachment {
            id: AttachmentId(row.id),
            incident_id: IncidentId(row.incident_id),
            object_key: ObjectKey::parse(&row.object_key)?,
            name: row.original_name,
            media,
            size_bytes: row.size_bytes.max(0) as u64,
            sha256: row.sha256,
            thumbnail_key: row
                .thumbnail_key
                .as_deref()
                .map(ObjectKey::parse)
                .transpose()?,
            uploaded_by: row.uploaded_by,
            uploaded_by_user_id: row.uploaded_by_user_id.map(UserId),
            created_at: Timestamp::from_millis(row.created_at),
        })
    }
}

/// The name an upload is stored and served under: one safe path segment (see
/// [`sanitize_segment`]) whose extension says what the bytes are, so `foto.jpg` holding a PNG
/// is served as `foto.png` and `../../etc/passwd.png` as `passwd.png`.
pub fn stored_name(raw: &str, media: AllowedMedia) -> String {
    let safe = sanitize_segment(raw);
    let accepted: &[&str] = match media {
        AllowedMedia::Jpeg => &["jpg", "jpeg"],
        AllowedMedia::Heic => &["heic", "heif"],
        AllowedMedia::Mp4 => &["mp4", "m4v"],
        other => &[other.extension()],
    };
    let (stem, extension) = match safe.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, Some(ext)),
        _ => (safe.as_str(), None),
    };
    match extension {
        Some(ext) if accepted.iter().any(|a| a.eq_ignore_ascii_case(ext)) => safe.clone(),
        _ => format!("{stem}.{}", media.extension()),
    }
}

/// An attachment being received; see the module documentation for the whole path.
pub struct Upload {
    db: Db,
    objects: Objects,
    /// `None` once finished or abandoned.
    open: Option<Open>,
}

struct Open {
    id: i64,
    incident: IncidentId,
    name: String,
    media: AllowedMedia,
    file: HashedWriter,
    uploader: Uploader,
}

fn attachment_dir(incident: IncidentId, id: i64) -> [String; 3] {
    [
        "attachments".to_owned(),
        incident.0.to_string(),
        id.to_string(),
    ]
}

impl Upload {
    /// Reserves the attachment's row (hidden until [`Upload::finish`]) and opens its object.
    /// `media` is what the first bytes showed; `raw_name` is made safe by [`stored_name`].
    pub async fn begin(
        db: &Db,
        objects: &Objects,
        incident: IncidentId,
        raw_name: &str,
        media: AllowedMedia,
        uploader: &Uploader,
        now: Timestamp,
    ) -> StoreResult<Self> {
        let name = stored_name(raw_name, media);
        const RESERVE: &str = "INSERT INTO incident_attachments (incident_id, object_key, original_name, content_type, \
                      size_bytes, sha256, uploaded_by, uploaded_by_user_id, created_at, uploading) \
                      VALUES ($1, '', $2, $3, 0, '', $4, $5, $6, TRUE) RETURNING id";
        let (incident_id, stored) = (incident.0, name.clone());
        let (label, user) = (uploader.label.clone(), uploader.user.map(|u| u.0));
        let at = now.millis();
        let missing = StoreError::missing_reference("incident_id", "incident");
        let id: i64 = grouped_write!(db,
            sqlite: |conn| direct::query_optional(
                conn,
                RESERVE,
                &[&incident_id, &stored, &media.mime(), &label, &user, &at],
                |r| r.get("id"),
            )?
            .ok_or(StoreError::NotFound),
            postgres: |tx| Ok(sqlx::query_scalar(RESERVE)
                .bind(incident_id)
                .bind(&stored)
                .bind(media.mime())
                .bind(&label)
                .bind(user)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?),
        )
        .map_err(missing)?;
        let dir = attachment_dir(incident, id);
        let key = ObjectKey::join(dir.iter().map(String::as_str).chain([name.as_str()]));
        let file = match HashedWriter::open(objects, key).await {
            Ok(file) => file,
            Err(error) => {
                forget_row(db, id).await;
                return Err(error.into());
            }
        };
        Ok(Self {
            db: db.clone(),
            objects: objects.clone(),
            open: Some(Open {
                id,
                incident,
                name,
                media,
                file,
                uploader: uploader.clone(),
            }),
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

    /// Completes the object, makes a thumbnail for images (a failure only means none), and
    /// makes the attachment visible with its event. On failure nothing stays behind.
    pub async fn finish(mut self, now: Timestamp) -> StoreResult<Attachment> {
        let open = self.open.take().ok_or(StoreError::NotFound)?;
        let Open {
            id,
            incident,
            name,
            media,
            file,
            uploader,
        } = open;
        let Written { key, size, sha256 } = match file.finish().await {
            Ok(written) => written,
            Err(error) => {
                forget_row(&self.db, id).await;
                return Err(error.into());
            }
        };
        let thumbnail_key = store_thumbnail(&self.objects, incident, id, &name, media, &key).await;
        let db = &self.db;
        let (object_key, thumb) = (
            key.as_str().to_owned(),
            thumbnail_key.as_ref().map(|k| k.as_str().to_owned()),
        );
        let (stored_sha, label, at, size_bytes) = (
            sha256.clone(),
            uploader.label.clone(),
            now.millis(),
            size as i64,
        );
        let event = EventData::AttachmentAdded {
            attachment_id: AttachmentId(id),
            media,
            size_bytes: size,
        };
        // A video's processing row and job, visible with it or not at all.
        let job = (media.kind() == MediaKind::Video).then(|| {
            crate::jobs::NewJob::new(&crate::jobs::Task::MediaTranscode {
                video: crate::jobs::VideoRef::Attachment(id),
            })
            .dedup(format!("{}:{id}", crate::transcodes::TRANSCODE))
        });
        let removed = move || {
            StoreError::Other(anyhow::anyhow!(
                "attachment {id} was removed while it was uploading"
            ))
        };
        let written: StoreResult<()> = grouped_write!(db,
            sqlite: |conn| {
                let updated = direct::execute(
                    conn,
                    FINISH,
                    &[&id, &object_key, &thumb, &size_bytes, &stored_sha, &at],
                )?;
                if updated == 0 {
                    return Err(removed());
                }
                direct::execute(conn, TOUCH, &[&incident.0, &at])?;
                insert_event_direct(conn, incident.0, &label, at, &event)?;
                if let Some(job) = &job {
                    direct::execute(conn, crate::transcodes::INSERT, &[&id, &incident.0, &at])?;
                    crate::jobs::enqueue_direct(conn, job, now)?;
                }
                Ok(())
            },
            postgres: |tx| {
                let updated = sqlx::query(FINISH)
                    .bind(id)
                    .bind(&object_key)
                    .bind(&thumb)
                    .bind(size_bytes)
                    .bind(&stored_sha)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if updated == 0 {
                    return Err(removed());
                }
                sqlx::query(TOUCH).bind(incident.0).bind(at).execute(&mut *tx).await?;
                insert_event!(&mut *tx, incident.0, &label, at, &event);
                if let Some(job) = &job {
                    sqlx::query(crate::transcodes::INSERT)
                        .bind(id)
                        .bind(incident.0)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    crate::jobs::enqueue_in(&mut *tx, job, now).await?;
                }
                Ok(())
            },
        );
        if let Err(error) = written {
            forget(&self.objects, [Some(&key), thumbnail_key.as_ref()]).await;
            forget_row(db, id).await;
            return Err(error);
        }
        Ok(Attachment {
            id: AttachmentId(id),
            incident_id: incident,
            object_key: key,
            name,
            media,
            size_bytes: size,
            sha256,
            thumbnail_key,
            uploaded_by: uploader.label,
            uploaded_by_user_id: uploader.user,
            created_at: now,
        })
    }

    /// Drops what was received: the object and the reserved row.
    pub async fn abandon(mut self) {
        if let Some(open) = self.open.take() {
            abandon(&self.db, open).await;
        }
    }
}

/// Makes a reserved attachment visible: `$1` id, `$2` object key, `$3` thumbnail key, `$4`
/// size, `$5` SHA-256, `$6` now.
const FINISH: &str = "UPDATE incident_attachments SET object_key = $2, thumbnail_key = $3, size_bytes = $4, \
     sha256 = $5, created_at = $6, uploading = FALSE WHERE id = $1 AND uploading";
/// An incident's `updated_at`: `$1` id, `$2` now.
const TOUCH: &str = "UPDATE incidents SET updated_at = $2 WHERE id = $1";

/// Reads an image back, shrinks it (see [`super::thumbnail`]) and stores the PNG beside it.
async fn store_thumbnail(
    objects: &Objects,
    incident: IncidentId,
    id: i64,
    name: &str,
    media: AllowedMedia,
    key: &ObjectKey,
) -> Option<ObjectKey> {
    if media.kind() != MediaKind::Image {
        return None;
    }
    let made = async {
        let Some(png) = super::thumbnail::render(objects, key, media).await? else {
            return Ok(None);
        };
        let thumb_name = format!("thumb_{name}.png");
        let dir = attachment_dir(incident, id);
        let tkey = ObjectKey::join(dir.iter().map(String::as_str).chain([thumb_name.as_str()]));
        objects.put(&tkey, Bytes::from(png)).await?;
        anyhow::Ok(Some(tkey))
    };
    match made.await {
        Ok(key) => key,
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "no thumbnail for this image");
            None
        }
    }
}

impl Drop for Upload {
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

/// Deletes a reserved row that never became visible; failures are logged (the sweep retries).
async fn forget_row(db: &Db, id: i64) {
    if let Err(error) = delete_unfinished(db, id).await {
        tracing::error!(%error, attachment_id = id, "cannot remove an unfinished attachment");
    }
}

/// Deletes the row of upload `id` if it is still unfinished.
async fn delete_unfinished(db: &Db, id: i64) -> StoreResult<()> {
    const FORGET: &str = "DELETE FROM incident_attachments WHERE id = $1 AND uploading";
    grouped_write!(db,
        sqlite: |conn| direct::execute(conn, FORGET, &[&id]).map(|_| ()),
        postgres: |tx| {
            sqlx::query(FORGET).bind(id).execute(&mut *tx).await?;
            Ok(())
        },
    )
}

/// Removes uploads that started before `started_before` and never finished (their process
/// died): their objects and their rows. Returns how many. Run at startup and by cleanup.
pub async fn sweep_abandoned(
    db: &Db,
    objects: &Objects,
    started_before: Timestamp,
) -> StoreResult<usize> {
    const ABANDONED: &str =
        "SELECT id, incident_id FROM incident_attachments WHERE uploading AND created_at < $1";
    let before = started_before.millis();
    let rows: Vec<(i64, i64)> = direct_read!(db,
        sqlite: |conn| direct::query(conn, ABANDONED, &[&before], |r| {
            Ok((r.get("id")?, r.get("incident_id")?))
        }),
        postgres: |pool| Ok(sqlx::query_as(ABANDONED).bind(before).fetch_all(pool).await?),
    )?;
    for &(id, incident) in &rows {
        let dir = attachment_dir(IncidentId(incident), id).join("/");
        objects.delete_under(&dir).await?;
        forget_row(db, id).await;
    }
    Ok(rows.len())
}

/// Deletes objects written for a transaction that did not commit; failures are only logged
/// (the object is unreachable without its row).
async fn forget<'a>(objects: &Objects, keys: impl IntoIterator<Item = Option<&'a ObjectKey>>) {
    for key in keys.into_iter().flatten() {
        if let Err(error) = objects.delete(key).await {
            tracing::error!(error = format!("{error:#}"), %key, "cannot delete an orphaned object");
        }
    }
}

/// The incident's attachments that are not deleted, oldest first.
pub async fn list(db: &Db, incident: IncidentId) -> StoreResult<Vec<Attachment>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM incident_attachments WHERE incident_id = $1 AND deleted_at IS NULL AND NOT uploading ORDER BY id"
    );
    let incident = incident.0;
    let rows: Vec<AttachmentRow> = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[&incident], AttachmentRow::from_direct),
        postgres: |pool| Ok(sqlx::query_as(crate::composed(&sql))
            .bind(incident)
            .fetch_all(pool)
            .await?),
    )?;
    rows.into_iter().map(Attachment::try_from).collect()
}

/// One attachment of `incident` that is not deleted; [`StoreError::NotFound`] otherwise.
pub async fn find(db: &Db, incident: IncidentId, id: AttachmentId) -> StoreResult<Attachment> {
    let sql = format!(
        "SELECT {COLUMNS} FROM incident_attachments WHERE id = $1 AND incident_id = $2 AND deleted_at IS NULL AND NOT uploading"
    );
    let (id, incident) = (id.0, incident.0);
    let row: Option<AttachmentRow> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&id, &incident], AttachmentRow::from_direct),
        postgres: |pool| Ok(sqlx::query_as(crate::composed(&sql))
            .bind(id)
            .bind(incident)
            .fetch_optional(pool)
            .await?),
    )?;
    row.ok_or(StoreError::NotFound)?.try_into()
}

/// Soft-deletes `attachment`: sets `deleted_at` and records `attachment_deleted`, in one
/// transaction. The stored objects are kept (the audit trail may need them);
/// [`StoreError::NotFound`] if it was already deleted.
#[tracing::instrument(skip_all, fields(incident_id = %attachment.incident_id, attachment_id = %attachment.id))]
pub async fn delete(
    db: &Db,
    attachment: &Attachment,
    actor: &str,
    now: Timestamp,
) -> StoreResult<()> {
    const DELETE: &str = "UPDATE incident_attachments SET deleted_at = $3 \
         WHERE id = $1 AND incident_id = $2 AND deleted_at IS NULL AND NOT uploading";
    let (id, incident, actor, at) = (
        attachment.id.0,
        attachment.incident_id.0,
        actor.to_owned(),
        now.millis(),
    );
    let event = EventData::AttachmentDeleted {
        attachment_id: attachment.id,
    };
    grouped_write!(db,
        sqlite: |conn| {
            if direct::execute(conn, DELETE, &[&id, &incident, &at])? == 0 {
                return Err(StoreError::NotFound);
            }
            direct::execute(conn, TOUCH, &[&incident, &at])?;
            insert_event_direct(conn, incident, &actor, at, &event)?;
            Ok(())
        },
        postgres: |tx| {
            let updated = sqlx::query(DELETE)
                .bind(id)
                .bind(incident)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(TOUCH).bind(incident).bind(at).execute(&mut *tx).await?;
            insert_event!(&mut *tx, incident, &actor, at, &event);
            Ok(())
        },
    )
}

/// A stored object (the file or its thumbnail) as a stream, with its size.
pub type ObjectStream = (u64, BoxStream<'static, Result<Bytes, std::io::Error>>);

/// The object at `key` as a stream; [`StoreError::NotFound`] if it is missing.
pub async fn open(objects: &Objects, key: &ObjectKey) -> StoreResult<ObjectStream> {
    objects.stream(key).await?.ok_or(StoreError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_are_one_safe_segment_with_the_extension_of_the_bytes() {
        assert_eq!(
            stored_name("../../etc/passwd.png", AllowedMedia::Png),
            "passwd.png"
        );
        assert_eq!(stored_name("foto.JPEG", AllowedMedia::Jpeg), "foto.JPEG");
        assert_eq!(stored_name("foto.jpg", AllowedMedia::Png), "foto.png");
        assert_eq!(stored_name("informe", AllowedMedia::Pdf), "informe.pdf");
        assert_eq!(stored_name(".png", AllowedMedia::Png), "png.png");
        assert_eq!(stored_name("", AllowedMedia::Text), "_.txt");
        assert_eq!(
            stored_name("..\\..\\x.exe", AllowedMedia::Gif),
            "x.gif",
            "a program's extension never survives"
        );
    }
}
