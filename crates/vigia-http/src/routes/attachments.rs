//! Incident attachments: upload (multipart), list, download, thumbnail, delete.
//!
//! Who may do what: reading follows reading the incident (404 when the caller may not see it);
//! uploading is for its reporter, its department's staff and admins (API keys need
//! `incidents:write`); deleting is for the uploader, the department's staff and admins.
//! What a file is comes from its first bytes (`routes::upload`), never from the client's
//! `Content-Type` or file name. Deleting is soft: the stored file is kept for the audit trail.

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{Multipart, State};

use super::{Routes, op};
use crate::path::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use vigia_domain::Timestamp;
use vigia_domain::ids::{AttachmentId, IncidentId};
use vigia_domain::incidents::Relation;
use vigia_store::StoreError;
use vigia_store::incidents::attachments::{self, Attachment, Upload, Uploader};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Json;
use crate::routes::upload::{FilePart, body_limit, multipart_error};
use crate::state::AppState;

/// The attachment routes. Only the upload accepts bodies up to `max_upload_bytes` (plus the
/// multipart framing); every other route keeps the global JSON limit.
pub fn router(routes: Routes, max_upload_bytes: usize) -> Routes {
    let routes = op!(routes, upload, |router| router
        .layer(body_limit(max_upload_bytes)));
    let routes = op!(routes, list);
    let routes = op!(routes, download);
    let routes = op!(routes, remove);
    op!(routes, thumbnail)
}

// --- wire types --------------------------------------------------------------------------------

/// A file attached to an incident.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentOut {
    pub id: i64,
    pub incident_id: i64,
    /// The name it is served under: the upload's name made safe, with the extension of what
    /// the file really is.
    pub name: String,
    /// What the file's bytes are, e.g. `image/png` (never what the upload claimed).
    pub content_type: String,
    pub size_bytes: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// Where to download it.
    pub url: String,
    /// A PNG preview at most 320 px on its longest side, for images that could be decoded.
    pub thumbnail_url: Option<String>,
    /// `user:12` or `api_key:3`; hidden from callers who are not involved in the incident.
    pub uploaded_by: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl AttachmentOut {
    fn new(a: Attachment, relation: Relation) -> Self {
        let url = format!("/api/v1/incidents/{}/attachments/{}", a.incident_id, a.id);
        Self {
            id: a.id.0,
            incident_id: a.incident_id.0,
            name: a.name,
            content_type: a.media.mime().to_owned(),
            size_bytes: a.size_bytes,
            sha256: a.sha256,
            thumbnail_url: a.thumbnail_key.as_ref().map(|_| format!("{url}/thumbnail")),
            url,
            uploaded_by: relation.sees_people().then_some(a.uploaded_by),
            created_at: a.created_at,
        }
    }
}

/// The upload form: one part named `file`. Its file name is kept (made safe); its type is
/// decided from its bytes. Any other part is refused (422).
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // describes the multipart form; read part by part
pub struct AttachmentUpload {
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// The bytes of a stored file, as served.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct FileBytes(pub Vec<u8>);

// --- loading and rules -------------------------------------------------------------------------

use super::incidents::load;

/// The attachment of a visible incident; 404 when either is missing, invisible or deleted.
pub(crate) async fn load_attachment(
    state: &AppState,
    auth: &Auth,
    raw_id: &str,
    raw_attachment: &str,
) -> ApiResult<(Attachment, Relation)> {
    let (incident, relation) = load(state, auth, raw_id).await?;
    let id = raw_attachment
        .parse::<i64>()
        .map_err(|_| ApiError::NotFound)?;
    let attachment = attachments::find(&state.db, incident.id, AttachmentId(id)).await?;
    Ok((attachment, relation))
}

// --- upload ------------------------------------------------------------------------------------

/// Streams the `file` part into a new attachment of `incident` (see [`FilePart`]).
async fn store_file(
    state: &AppState,
    incident: IncidentId,
    uploader: &Uploader,
    field: Field<'_>,
    limit: usize,
) -> ApiResult<Upload> {
    let file = FilePart::read(field, "", limit).await?;
    let upload = Upload::begin(
        &state.db,
        &state.objects,
        incident,
        &file.name,
        file.media,
        uploader,
        Timestamp::now(),
    )
    .await?;
    file.stream_into(upload, limit).await
}

/// Reads the form: exactly one part named `file`, nothing else. Returns the file received
/// (not yet visible) and its name as sent.
async fn read_upload(
    state: &AppState,
    incident: IncidentId,
    uploader: &Uploader,
    multipart: &mut Multipart,
    limit: usize,
) -> ApiResult<Upload> {
    let mut received: Option<Upload> = None;
    let outcome: ApiResult<()> = async {
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(multipart_error(limit))?
        {
            match field.name() {
                Some("file") if received.is_none() => {
                    received = Some(store_file(state, incident, uploader, field, limit).await?);
                }
                Some("file") => return Err(ApiError::field("file", "send one file per request")),
                other => {
                    return Err(ApiError::field(
                        other.unwrap_or("body").to_owned(),
                        "unknown field: send the file in a part named file",
                    ));
                }
            }
        }
        Ok(())
    }
    .await;
    match (outcome, received) {
        (Ok(()), Some(upload)) => Ok(upload),
        (Ok(()), None) => Err(ApiError::field(
            "file",
            "send the file in a part named file",
        )),
        (Err(error), received) => {
            if let Some(upload) = received {
                upload.abandon().await;
            }
            Err(error)
        }
    }
}

/// Attach a file (`multipart/form-data`, one part named `file`). Photos, videos, PDFs and
/// plain text are accepted, judged by their bytes: programs and unknown types get 415 naming
/// what they are. Images get a thumbnail. Larger than `http.max_upload_bytes`: 413.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/attachments", tag = "incidents",
    request_body(content = AttachmentUpload, content_type = "multipart/form-data"),
    security(("bearer" = [])), params(("id" = String, Path, description = "number or code such as INC-000123")),
    responses((status = 201, body = AttachmentOut), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn upload(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let (incident, relation) = load(&state, &auth, &id).await?;
    relation.may_attach()?;
    let mut multipart = multipart.map_err(|_| ApiError::UnsupportedMediaType {
        detail: "send the file as multipart/form-data in a part named file".into(),
    })?;
    let uploader = Uploader {
        label: auth.0.label(),
        user: auth.0.user_id(),
    };
    let upload = read_upload(
        &state,
        incident.id,
        &uploader,
        &mut multipart,
        state.config.max_upload_bytes,
    )
    .await?;
    let saved = upload.finish(Timestamp::now()).await?;
    tracing::info!(incident_id = %incident.id, attachment_id = %saved.id,         media = saved.media.mime(), size = saved.size_bytes, "file attached");
    let out = AttachmentOut::new(saved, relation);
    let location = HeaderValue::from_str(&out.url).map_err(|e| ApiError::Internal(e.into()))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(out),
    )
        .into_response())
}

// --- read --------------------------------------------------------------------------------------

/// The incident's attachments, oldest first (deleted ones are not listed).
#[utoipa::path(get, path = "/api/v1/incidents/{id}/attachments", operation_id = "list_attachments", tag = "incidents", security(("bearer" = [])),
    params(("id" = String, Path, description = "number or code such as INC-000123")),
    responses((status = 200, body = Vec<AttachmentOut>), (status = 404, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<AttachmentOut>>> {
    let (incident, relation) = load(&state, &auth, &id).await?;
    let items = attachments::list(&state.db, incident.id).await?;
    Ok(Json(
        items
            .into_iter()
            .map(|a| AttachmentOut::new(a, relation))
            .collect(),
    ))
}

/// `attachment; filename="..."; filename*=UTF-8''...` for a name made safe by the store (no
/// quotes, backslashes or control characters); non-ASCII letters travel in `filename*`.
pub(crate) fn disposition(kind: &str, name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii() { c } else { '_' })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

/// Streams a stored object with the headers that stop browsers from second-guessing it.
pub(crate) async fn serve(
    state: &AppState,
    key: &vigia_store::ObjectKey,
    content_type: &'static str,
    disposition: HeaderValue,
) -> ApiResult<Response> {
    let (size, stream) = attachments::open(&state.objects, key)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                ApiError::Internal(anyhow::anyhow!("object {key} is missing from storage"))
            }
            other => other.into(),
        })?;
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_LENGTH, HeaderValue::from(size)),
        (header::CONTENT_DISPOSITION, disposition),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("private")),
    ];
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// Download the file, as the type its bytes are (`X-Content-Type-Options: nosniff`).
#[utoipa::path(get, path = "/api/v1/incidents/{id}/attachments/{aid}", operation_id = "download_attachment", tag = "incidents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "number or code such as INC-000123"),
        ("aid" = i64, Path, description = "the attachment's id")),
    responses((status = 200, description = "the file, with its sniffed Content-Type", content_type = "application/octet-stream", body = FileBytes),
        (status = 404, body = Problem)))]
async fn download(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, aid)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (attachment, _) = load_attachment(&state, &auth, &id, &aid).await?;
    let disposition = disposition("attachment", &attachment.name);
    serve(
        &state,
        &attachment.object_key,
        attachment.media.mime(),
        disposition,
    )
    .await
}

/// The image's thumbnail: a PNG at most 320 px on its longest side (404 when it has none).
#[utoipa::path(get, path = "/api/v1/incidents/{id}/attachments/{aid}/thumbnail", tag = "incidents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "number or code such as INC-000123"),
        ("aid" = i64, Path, description = "the attachment's id")),
    responses((status = 200, description = "a PNG", content_type = "image/png", body = FileBytes),
        (status = 404, body = Problem)))]
async fn thumbnail(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, aid)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (attachment, _) = load_attachment(&state, &auth, &id, &aid).await?;
    let key = attachment.thumbnail_key.ok_or(ApiError::NotFound)?;
    let name = format!("thumb_{}.png", attachment.name);
    serve(&state, &key, "image/png", disposition("inline", &name)).await
}

// --- delete ------------------------------------------------------------------------------------

/// Remove an attachment (its uploader, the department's staff and admins). It disappears from
/// the incident and an `attachment_deleted` event is recorded; the stored file is kept for
/// the audit trail.
#[utoipa::path(delete, path = "/api/v1/incidents/{id}/attachments/{aid}", tag = "incidents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "number or code such as INC-000123"),
        ("aid" = i64, Path, description = "the attachment's id")),
    responses((status = 204, description = "removed"), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn remove(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, aid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (attachment, relation) = load_attachment(&state, &auth, &id, &aid).await?;
    let label = auth.0.label();
    relation.may_remove_attachment(attachment.uploaded_by == label)?;
    attachments::delete(&state.db, &attachment, &label, Timestamp::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
