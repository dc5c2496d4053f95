//! Streaming one multipart file part into storage, the same way for an incident's attachments
//! and a competition's entries: the part's first bytes decide what the file is (415 before
//! anything is written), then every chunk is counted (413 past the limit) and written as it
//! arrives; an error abandons what was written.

use axum::extract::DefaultBodyLimit;
use axum::extract::multipart::{Field, MultipartError};
use axum::http::StatusCode;
use bytes::BytesMut;
use vigia_domain::incidents::sniff::SNIFF_PREFIX_LEN;
use vigia_domain::incidents::{AllowedMedia, SniffError, classify};
use vigia_store::StoreResult;
use vigia_store::competitions::EntryUpload;
use vigia_store::incidents::attachments::Upload;

use crate::error::{ApiError, ApiResult};

/// Room for the multipart framing (boundaries, part headers, small fields such as a title) on
/// top of the largest file accepted.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// The body limit of an upload route: the largest file plus the multipart framing. Every other
/// route keeps the global JSON limit.
pub(crate) fn body_limit(max_upload_bytes: usize) -> DefaultBodyLimit {
    DefaultBodyLimit::max(max_upload_bytes.saturating_add(MULTIPART_OVERHEAD))
}

/// A multipart reading error: 413 naming `limit` when the body is too large, 400 otherwise.
pub(crate) fn multipart_error(limit: usize) -> impl Fn(MultipartError) -> ApiError {
    move |error| {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::bad_request(format!("cannot read the upload: {}", error.body_text()))
        }
    }
}

/// Why a file's first bytes were refused: an empty file is a field error, a program or an
/// unknown type a 415.
pub(crate) fn refused(error: SniffError) -> ApiError {
    match error {
        SniffError::Empty => error.field_error("file").into(),
        SniffError::Executable(_) | SniffError::Unknown => ApiError::UnsupportedMediaType {
            detail: error.to_string(),
        },
    }
}

/// A file being received into storage, not yet visible.
pub(crate) trait Staging {
    /// Bytes received so far.
    fn size(&self) -> u64;
    /// Appends the next bytes.
    async fn write(&mut self, bytes: &[u8]) -> StoreResult<()>;
    /// Drops what was received.
    async fn abandon(self);
}

impl Staging for Upload {
    fn size(&self) -> u64 {
        Upload::size(self)
    }
    async fn write(&mut self, bytes: &[u8]) -> StoreResult<()> {
        Upload::write(self, bytes).await
    }
    async fn abandon(self) {
        Upload::abandon(self).await
    }
}

impl Staging for EntryUpload {
    fn size(&self) -> u64 {
        EntryUpload::size(self)
    }
    async fn write(&mut self, bytes: &[u8]) -> StoreResult<()> {
        EntryUpload::write(self, bytes).await
    }
    async fn abandon(self) {
        EntryUpload::abandon(self).await
    }
}

/// A file part whose first bytes were read and classified; the rest is still in the part.
pub(crate) struct FilePart<'a> {
    field: Field<'a>,
    /// The file's name as sent.
    pub name: String,
    /// What its first bytes say it is.
    pub media: AllowedMedia,
    head: BytesMut,
    ended: bool,
}

impl<'a> FilePart<'a> {
    /// Reads the part's first bytes and classifies them; `unnamed` stands for a part sent
    /// without a file name.
    pub(crate) async fn read(
        mut field: Field<'a>,
        unnamed: &str,
        limit: usize,
    ) -> ApiResult<FilePart<'a>> {
        let name = field.file_name().unwrap_or(unnamed).to_owned();
        let mut head = BytesMut::new();
        let mut ended = false;
        while head.len() < SNIFF_PREFIX_LEN {
            match field.chunk().await.map_err(multipart_error(limit))? {
                Some(chunk) => head.extend_from_slice(&chunk),
                None => {
                    ended = true;
                    break;
                }
            }
            if head.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
        }
        let media = classify(&head[..head.len().min(SNIFF_PREFIX_LEN)]).map_err(refused)?;
        Ok(FilePart {
            field,
            name,
            media,
            head,
            ended,
        })
    }

    /// Writes the whole file into `upload`, refusing it past `limit` bytes; on any error the
    /// upload is abandoned.
    pub(crate) async fn stream_into<U: Staging>(
        mut self,
        mut upload: U,
        limit: usize,
    ) -> ApiResult<U> {
        let streamed: ApiResult<()> = async {
            upload.write(&self.head).await?;
            if !self.ended {
                while let Some(chunk) = self.field.chunk().await.map_err(multipart_error(limit))? {
                    if upload.size() + chunk.len() as u64 > limit as u64 {
                        return Err(ApiError::PayloadTooLarge { limit });
                    }
                    upload.write(&chunk).await?;
                }
            }
            Ok(())
        }
        .await;
        match streamed {
            Ok(()) => Ok(upload),
            Err(error) => {
                upload.abandon().await;
                Err(error)
            }
        }
    }
}
