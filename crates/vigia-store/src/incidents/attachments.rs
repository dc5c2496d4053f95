//! Files attached to incidents: a row in `incident_attachments`, the file itself in object
//! storage under `attachments/{incident}/{attachment}/{name}`, and for images a PNG thumbnail
//! beside it (`thumb_{name}.png`).
//!
//! Adding one is all or nothing: the row, its `attachment_added` event and the incident's new
//! `updated_at` are written in one transaction that stays open while the file is stored (the
//! key needs the row's id); a failed put rolls the transaction back, a failed commit deletes
//! what was stored. Deleting is soft: the row gets `deleted_at` and an `attachment_deleted`
//! event, and the stored objects are kept for the audit trail.

use std::io::Cursor;

use bytes::Bytes;
use futures::stream::BoxStream;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::ids::{AttachmentId, IncidentId, UserId};
use vigia_domain::incidents::{AllowedMedia, EventData, MediaKind};

use super::events::insert_event;
use crate::objects::{ObjectKey, Objects, sanitize_segment};
use crate::{Db, StoreError, StoreResult, on_reader, on_writer};

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_MAX_PX: u32 = 320;

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

/// A checked upload, ready to store: its type sniffed, its size and digest computed.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    /// The name the client gave; made safe by [`stored_name`].
    pub raw_name: String,
    pub media: AllowedMedia,
    pub bytes: Bytes,
    /// SHA-256 of `bytes`, lowercase hex.
    pub sha256: String,
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

/// A PNG thumbnail of an image at most [`THUMBNAIL_MAX_PX`] on its longest side; `None` for
/// other media and for images that cannot be decoded (HEIC and AVIF are not decoded here).
/// CPU-bound: call it on a blocking thread.
pub fn thumbnail(media: AllowedMedia, bytes: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    use anyhow::Context;
    let format = match media {
        AllowedMedia::Jpeg => image::ImageFormat::Jpeg,
        AllowedMedia::Png => image::ImageFormat::Png,
        AllowedMedia::Gif => image::ImageFormat::Gif,
        AllowedMedia::Webp => image::ImageFormat::WebP,
        _ => return Ok(None),
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let decoded = reader.decode().context("cannot decode the image")?;
    let small = if decoded.width() <= THUMBNAIL_MAX_PX && decoded.height() <= THUMBNAIL_MAX_PX {
        decoded
    } else {
        decoded.thumbnail(THUMBNAIL_MAX_PX, THUMBNAIL_MAX_PX)
    };
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(small.to_rgba8())
        .write_to(Cursor::new(&mut png), image::ImageFormat::Png)
        .context("cannot encode the thumbnail")?;
    Ok(Some(png))
}

/// Makes the thumbnail on a blocking thread; a failure is logged, never returned.
async fn thumbnail_or_none(media: AllowedMedia, bytes: Bytes) -> Option<Bytes> {
    if media.kind() != MediaKind::Image {
        return None;
    }
    match tokio::task::spawn_blocking(move || thumbnail(media, &bytes)).await {
        Ok(Ok(png)) => png.map(Bytes::from),
        Ok(Err(error)) => {
            tracing::warn!(error = format!("{error:#}"), "no thumbnail for this image");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "the thumbnail task failed");
            None
        }
    }
}

/// Stores `new` on `incident`: its thumbnail is made first (outside the transaction), then
/// row, objects, event and `updated_at` go in together. A failed thumbnail only means no
/// thumbnail; anything else failing leaves no row, no event and no object.
#[tracing::instrument(skip_all, fields(incident_id = %incident, media = new.media.mime(), size = new.bytes.len()))]
pub async fn add(
    db: &Db,
    objects: &Objects,
    incident: IncidentId,
    new: NewAttachment,
    uploader: &Uploader,
    now: Timestamp,
) -> StoreResult<Attachment> {
    let name = stored_name(&new.raw_name, new.media);
    let thumb = thumbnail_or_none(new.media, new.bytes.clone()).await;
    let size = new.bytes.len() as i64;
    let insert = "INSERT INTO incident_attachments (incident_id, object_key, original_name, content_type, \
                  size_bytes, sha256, uploaded_by, uploaded_by_user_id, created_at) \
                  VALUES ($1, '', $2, $3, $4, $5, $6, $7, $8) RETURNING id";
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let id: i64 = sqlx::query_scalar(insert)
            .bind(incident.0)
            .bind(&name)
            .bind(new.media.mime())
            .bind(size)
            .bind(&new.sha256)
            .bind(&uploader.label)
            .bind(uploader.user.map(|u| u.0))
            .bind(now.millis())
            .fetch_one(&mut *tx)
            .await?;
        let dir = [
            "attachments".to_owned(),
            incident.0.to_string(),
            id.to_string(),
        ];
        let key = ObjectKey::join(dir.iter().map(String::as_str).chain([name.as_str()]));
        // Dropping `tx` on the error path rolls the row back.
        objects.put(&key, new.bytes.clone()).await?;
        let mut thumbnail_key = None;
        if let Some(png) = thumb {
            let thumb_name = format!("thumb_{name}.png");
            let tkey = ObjectKey::join(dir.iter().map(String::as_str).chain([thumb_name.as_str()]));
            match objects.put(&tkey, png).await {
                Ok(()) => thumbnail_key = Some(tkey),
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "cannot store the thumbnail")
                }
            }
        }
        let written: StoreResult<()> = async {
            sqlx::query(
                "UPDATE incident_attachments SET object_key = $2, thumbnail_key = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(key.as_str())
            .bind(thumbnail_key.as_ref().map(ObjectKey::as_str))
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE incidents SET updated_at = $2 WHERE id = $1")
                .bind(incident.0)
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
            let event = EventData::AttachmentAdded {
                attachment_id: AttachmentId(id),
                media: new.media,
                size_bytes: size as u64,
            };
            insert_event!(&mut *tx, incident.0, &uploader.label, now.millis(), &event);
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(error) = written {
            forget(objects, [Some(&key), thumbnail_key.as_ref()]).await;
            return Err(error);
        }
        Ok(Attachment {
            id: AttachmentId(id),
            incident_id: incident,
            object_key: key,
            name,
            media: new.media,
            size_bytes: size as u64,
            sha256: new.sha256,
            thumbnail_key,
            uploaded_by: uploader.label.clone(),
            uploaded_by_user_id: uploader.user,
            created_at: now,
        })
    })
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
        "SELECT {COLUMNS} FROM incident_attachments WHERE incident_id = $1 AND deleted_at IS NULL ORDER BY id"
    );
    let rows: Vec<AttachmentRow> = on_reader!(db, |pool| sqlx::query_as(crate::composed(&sql))
        .bind(incident.0)
        .fetch_all(pool)
        .await?);
    rows.into_iter().map(Attachment::try_from).collect()
}

/// One attachment of `incident` that is not deleted; [`StoreError::NotFound`] otherwise.
pub async fn find(db: &Db, incident: IncidentId, id: AttachmentId) -> StoreResult<Attachment> {
    let sql = format!(
        "SELECT {COLUMNS} FROM incident_attachments WHERE id = $1 AND incident_id = $2 AND deleted_at IS NULL"
    );
    let row: Option<AttachmentRow> = on_reader!(db, |pool| sqlx::query_as(crate::composed(&sql))
        .bind(id.0)
        .bind(incident.0)
        .fetch_optional(pool)
        .await?);
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
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE incident_attachments SET deleted_at = $3 \
             WHERE id = $1 AND incident_id = $2 AND deleted_at IS NULL",
        )
        .bind(attachment.id.0)
        .bind(attachment.incident_id.0)
        .bind(now.millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("UPDATE incidents SET updated_at = $2 WHERE id = $1")
            .bind(attachment.incident_id.0)
            .bind(now.millis())
            .execute(&mut *tx)
            .await?;
        let event = EventData::AttachmentDeleted {
            attachment_id: attachment.id,
        };
        insert_event!(
            &mut *tx,
            attachment.incident_id.0,
            actor,
            now.millis(),
            &event
        );
        tx.commit().await?;
        Ok(())
    })
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

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_pixel(width, height, image::Rgb([200, 30, 30]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(image)
            .write_to(Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("encode");
        out
    }

    #[test]
    fn thumbnails_fit_in_320_pixels_and_keep_the_aspect_ratio() {
        let thumb = thumbnail(AllowedMedia::Png, &png(800, 400))
            .expect("thumbnail")
            .expect("an image");
        let decoded = image::load_from_memory(&thumb).expect("a PNG");
        assert_eq!((decoded.width(), decoded.height()), (320, 160));
        let small = thumbnail(AllowedMedia::Png, &png(20, 10))
            .expect("thumbnail")
            .expect("an image");
        let decoded = image::load_from_memory(&small).expect("a PNG");
        assert_eq!((decoded.width(), decoded.height()), (20, 10));
    }

    #[test]
    fn only_decodable_images_get_thumbnails() {
        assert_eq!(thumbnail(AllowedMedia::Pdf, b"%PDF-1.7").expect("ok"), None);
        assert!(thumbnail(AllowedMedia::Png, b"\x89PNG\r\n\x1a\nbroken").is_err());
    }
}
