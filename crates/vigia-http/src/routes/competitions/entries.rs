//! Competition entries: the upload (multipart: `title`, then `file`, streamed to storage like
//! an attachment and transcoded by the `media.transcode` job), its processing status, and the
//! processed files of a ready entry (public).

use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use vigia_domain::Timestamp;
use vigia_domain::competitions::EntryTitle;
use vigia_domain::incidents::MediaKind;
use vigia_store::StoreError;
use vigia_store::competitions::{Competition, Entry, EntryUpload, entries};

use super::{load, window_error};
use crate::auth::{Auth, MaybeAuth};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;
use crate::path::Path;
use crate::routes::attachments::{FileBytes, disposition, serve};
use crate::routes::upload::{FilePart, body_limit, multipart_error};
use crate::routes::{Routes, op};
use crate::state::AppState;

pub fn router(routes: Routes, max_upload_bytes: usize) -> Routes {
    let routes = op!(routes, submit, |r| r.layer(body_limit(max_upload_bytes)));
    let routes = op!(routes, mine);
    let routes = op!(routes, get_entry);
    op!(routes, processed)
}

/// An entry and its video's processing.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryOut {
    pub id: i64,
    pub competition_id: i64,
    pub title: String,
    /// The participant's name.
    pub author: String,
    /// `queued`, `processing`, `ready`, `failed`.
    pub status: String,
    /// Why processing failed (not a video FFmpeg can read, too long, ...).
    pub reason: Option<String>,
    /// 0.0–1.0 while processing.
    pub progress: f64,
    /// ffprobe's metadata and the output's size.
    #[schema(value_type = Option<Object>)]
    pub info: Option<serde_json::Value>,
    /// The processed MP4 (≤ 720p H.264/AAC, faststart), once ready.
    pub video_url: Option<String>,
    pub poster_url: Option<String>,
    pub votes: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl EntryOut {
    pub(crate) fn new(e: Entry) -> Self {
        let ready = e.status == "ready";
        let base = format!(
            "/api/v1/competitions/{}/entries/{}/processed",
            e.competition_id, e.id
        );
        Self {
            id: e.id,
            competition_id: e.competition_id,
            title: e.title,
            author: e.author,
            reason: e.reason,
            progress: e.progress,
            info: e.info.as_deref().and_then(|i| serde_json::from_str(i).ok()),
            video_url: ready.then(|| format!("{base}/video.mp4")),
            poster_url: ready.then(|| format!("{base}/poster.jpg")),
            status: e.status,
            votes: e.votes,
            created_at: Timestamp::from_millis(e.created_at),
        }
    }
}

/// The upload form: a part `title`, then a part `file` with the video. Any other part is
/// refused (422).
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // describes the multipart form; read part by part
pub struct EntryUploadForm {
    pub title: String,
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// Streams the `file` part into a reserved entry (see [`FilePart`]): its first bytes must be a
/// video (422 naming `file` otherwise, 415 for programs and unknown types).
async fn store_video(
    state: &AppState,
    competition: i64,
    user: i64,
    title: &EntryTitle,
    field: Field<'_>,
    limit: usize,
) -> ApiResult<EntryUpload> {
    let file = FilePart::read(field, "video", limit).await?;
    if file.media.kind() != MediaKind::Video {
        return Err(ApiError::field(
            "file",
            format!(
                "must be a video (MP4, QuickTime, WebM or Matroska); this file is {}",
                file.media.mime()
            ),
        ));
    }
    let upload = EntryUpload::begin(
        &state.db,
        &state.objects,
        competition,
        user,
        title,
        &file.name,
        file.media,
        Timestamp::now(),
    )
    .await
    .map_err(|e| match e {
        StoreError::Duplicate { .. } => {
            ApiError::conflict("you already have an entry in this competition")
        }
        other => other.into(),
    })?;
    file.stream_into(upload, limit).await
}

/// Reads the form (`title`, then `file`), checks the submission window and stores the entry;
/// the API's and the web form's path.
pub(crate) async fn receive(
    state: &AppState,
    competition: &Competition,
    user: i64,
    multipart: &mut Multipart,
) -> ApiResult<EntryOut> {
    competition
        .windows()
        .may_submit(Timestamp::now())
        .map_err(window_error)?;
    let limit = state.config.max_upload_bytes;
    let mut title: Option<EntryTitle> = None;
    let mut received: Option<EntryUpload> = None;
    let outcome: ApiResult<()> = async {
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(multipart_error(limit))?
        {
            match field.name() {
                Some("title") if title.is_none() && received.is_none() => {
                    let raw = field.text().await.map_err(multipart_error(limit))?;
                    title = Some(EntryTitle::parse(&raw)?);
                }
                Some("file") if received.is_none() => {
                    let Some(t) = &title else {
                        return Err(ApiError::field("title", "send the title before the file"));
                    };
                    received =
                        Some(store_video(state, competition.id, user, t, field, limit).await?);
                }
                Some(other @ ("title" | "file")) => {
                    return Err(ApiError::field(other.to_owned(), "send it once"));
                }
                other => {
                    return Err(ApiError::field(
                        other.unwrap_or("body").to_owned(),
                        "unknown field: send title and file",
                    ));
                }
            }
        }
        Ok(())
    }
    .await;
    let upload = match (outcome, received) {
        (Ok(()), Some(upload)) => upload,
        (Ok(()), None) if title.is_none() => {
            return Err(ApiError::field("title", "must be 1 to 200 characters"));
        }
        (Ok(()), None) => {
            return Err(ApiError::field(
                "file",
                "send the video in a part named file",
            ));
        }
        (Err(error), received) => {
            if let Some(upload) = received {
                upload.abandon().await;
            }
            return Err(error);
        }
    };
    let entry = upload.finish(&state.objects, Timestamp::now()).await?;
    tracing::info!(
        competition_id = competition.id,
        entry_id = entry.id,
        "entry submitted"
    );
    Ok(EntryOut::new(entry))
}

/// Submit your entry (`multipart/form-data`: a part `title`, then a part `file` with the
/// video), once per competition (409 for a second), while submissions are open (422 before,
/// 409 after). The video is judged by its bytes: not a video → 422; it is then transcoded
/// in the background (`status` `queued → processing → ready | failed` with the reason).
#[utoipa::path(post, path = "/api/v1/competitions/{id}/entries", tag = "competitions",
    request_body(content = EntryUploadForm, content_type = "multipart/form-data"),
    security(("bearer" = [])), params(("id" = i64, Path, description = "the competition's id")),
    responses((status = 201, body = EntryOut), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn submit(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<EntryOut>)> {
    let user = auth.user()?.user_id.0;
    let competition = load(&state, &id).await?;
    let mut multipart = multipart.map_err(|_| ApiError::UnsupportedMediaType {
        detail: "send multipart/form-data with the parts title and file".into(),
    })?;
    let out = receive(&state, &competition, user, &mut multipart).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Your entry in this competition and its processing status (404 when you have none).
#[utoipa::path(get, path = "/api/v1/competitions/{id}/entries/mine", operation_id = "my_competition_entries", tag = "competitions",
    security(("bearer" = [])), params(("id" = i64, Path, description = "the competition's id")),
    responses((status = 200, body = EntryOut), (status = 404, body = Problem)))]
async fn mine(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<EntryOut>> {
    let user = auth.user()?.user_id.0;
    let competition = load(&state, &id).await?;
    let entry = entries::of_user(&state.db, competition.id, user)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(EntryOut::new(entry)))
}

/// The entry if `caller` may see it: anyone once ready; before, its author and admins.
pub(crate) async fn visible_entry(
    state: &AppState,
    caller: &MaybeAuth,
    competition: i64,
    raw: &str,
) -> ApiResult<Entry> {
    let id = raw.parse::<i64>().map_err(|_| ApiError::NotFound)?;
    let entry = entries::find(&state.db, id).await?;
    if entry.competition_id != competition {
        return Err(ApiError::NotFound);
    }
    if vigia_domain::competitions::may_see_entry(
        caller.0.as_ref(),
        vigia_domain::ids::UserId(entry.user_id),
        entry.status == "ready",
    ) {
        Ok(entry)
    } else {
        Err(ApiError::NotFound)
    }
}

/// One entry: public once its video is ready; before that, for its author and admins.
#[utoipa::path(get, path = "/api/v1/competitions/{id}/entries/{entry_id}", tag = "competitions",
    params(("id" = i64, Path, description = "the competition's id"), ("entry_id" = i64, Path, description = "the entry's id")),
    responses((status = 200, body = EntryOut), (status = 404, body = Problem)))]
async fn get_entry(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Path((id, entry_id)): Path<(String, String)>,
) -> ApiResult<Json<EntryOut>> {
    let competition = load(&state, &id).await?;
    let entry = visible_entry(&state, &auth, competition.id, &entry_id).await?;
    Ok(Json(EntryOut::new(entry)))
}

/// A processed file of a ready entry (public): `video.mp4` or `poster.jpg`.
#[utoipa::path(get, path = "/api/v1/competitions/{id}/entries/{entry_id}/processed/{file}", operation_id = "competition_entry_processed_file", tag = "competitions",
    params(("id" = i64, Path, description = "the competition's id"), ("entry_id" = i64, Path, description = "the entry's id"),
        ("file" = String, Path, description = "video.mp4 or poster.jpg")),
    responses((status = 200, description = "the file", content_type = "application/octet-stream", body = FileBytes),
        (status = 404, body = Problem)))]
async fn processed(
    State(state): State<AppState>,
    Path((id, entry_id, file)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let competition = load(&state, &id).await?;
    let entry = visible_entry(&state, &MaybeAuth(None), competition.id, &entry_id).await?;
    let (key, mime) = match file.as_str() {
        "video.mp4" => (entry.video_key, "video/mp4"),
        "poster.jpg" => (entry.poster_key, "image/jpeg"),
        _ => return Err(ApiError::NotFound),
    };
    let key = key.ok_or(ApiError::NotFound)?;
    let key = vigia_store::ObjectKey::parse(&key).map_err(ApiError::Internal)?;
    serve(&state, &key, mime, disposition("inline", &file)).await
}
