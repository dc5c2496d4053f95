//! A video attachment's processing: its status (`queued → processing → ready | failed`, with
//! the reason and progress) and the processed files (MP4 ≤ 720p, poster, thumbnail strip).

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use vigia_store::transcodes::{self, Transcode};

use super::attachments::{FileBytes, disposition, load_attachment, serve};
use super::{Routes, op};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;
use crate::path::Path;
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, processing);
    op!(routes, processed)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessingOut {
    pub attachment_id: i64,
    /// `queued`, `processing`, `ready`, `failed`.
    pub status: String,
    /// Why it failed (not a video, too long, FFmpeg missing, ...).
    pub reason: Option<String>,
    /// 0.0–1.0 while processing.
    pub progress: f64,
    /// ffprobe's metadata (duration_s, width, height, video_codec, audio_codec, format) and
    /// the output's size.
    #[schema(value_type = Option<Object>)]
    pub info: Option<serde_json::Value>,
    /// Paths of the processed files once ready.
    pub video_url: Option<String>,
    pub poster_url: Option<String>,
    pub strip_url: Option<String>,
}

fn out(t: Transcode, base: &str) -> ProcessingOut {
    let ready = t.status == "ready";
    let url = |file: &str| ready.then(|| format!("{base}/processed/{file}"));
    ProcessingOut {
        attachment_id: t.attachment_id,
        info: t.info.as_deref().and_then(|i| serde_json::from_str(i).ok()),
        video_url: url("video.mp4"),
        poster_url: url("poster.jpg"),
        strip_url: url("strip.jpg"),
        status: t.status,
        reason: t.reason,
        progress: t.progress,
    }
}

/// A video attachment's processing status (404 for attachments that are not videos).
#[utoipa::path(get, path = "/api/v1/incidents/{id}/attachments/{aid}/processing", tag = "incidents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "number or code such as INC-000123"),
        ("aid" = i64, Path, description = "the attachment's id")),
    responses((status = 200, body = ProcessingOut), (status = 404, body = Problem)))]
async fn processing(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, aid)): Path<(String, String)>,
) -> ApiResult<Json<ProcessingOut>> {
    let (attachment, _) = load_attachment(&state, &auth, &id, &aid).await?;
    let row = transcodes::find(&state.db, attachment.id.0).await?;
    let base = format!(
        "/api/v1/incidents/{}/attachments/{}",
        attachment.incident_id.0, attachment.id.0
    );
    Ok(Json(out(row, &base)))
}

/// A processed file of a ready video: `video.mp4`, `poster.jpg` or `strip.jpg`.
#[utoipa::path(get, path = "/api/v1/incidents/{id}/attachments/{aid}/processed/{file}", operation_id = "attachment_processed_file", tag = "incidents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "number or code such as INC-000123"),
        ("aid" = i64, Path, description = "the attachment's id"),
        ("file" = String, Path, description = "video.mp4, poster.jpg or strip.jpg")),
    responses((status = 200, description = "the file", content_type = "application/octet-stream", body = FileBytes),
        (status = 404, body = Problem)))]
async fn processed(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, aid, file)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let (attachment, _) = load_attachment(&state, &auth, &id, &aid).await?;
    let row = transcodes::find(&state.db, attachment.id.0).await?;
    let (key, mime) = match file.as_str() {
        "video.mp4" => (row.video_key, "video/mp4"),
        "poster.jpg" => (row.poster_key, "image/jpeg"),
        "strip.jpg" => (row.strip_key, "image/jpeg"),
        _ => return Err(ApiError::NotFound),
    };
    let key = key.ok_or(ApiError::NotFound)?;
    let key = vigia_store::ObjectKey::parse(&key).map_err(ApiError::Internal)?;
    serve(&state, &key, mime, disposition("inline", &file)).await
}
