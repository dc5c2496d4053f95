//! Exam proctoring: exams, participants and their reference photo, captures and their
//! analysis, proctor reviews. Analysis runs as a `media.analyze` job; enrollment analyses the
//! reference at once so a bad photo is refused with its reason (422).

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigia_domain::{FieldError, Timestamp, Validation};
use vigia_media::decode;
use vigia_media::verify::{self, Gates};
use vigia_store::proctoring::{self, Capture, Exam, NewCapture, NewExam, Participant};
use vigia_store::{ObjectKey, objects::sanitize_segment};

use super::{Routes, op};
use crate::auth::{Admin, Auth};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Query};
use crate::path::Path;
use crate::state::AppState;

pub fn router(routes: Routes, max_upload_bytes: usize) -> Routes {
    let limit = DefaultBodyLimit::max(max_upload_bytes);
    let routes = op!(routes, create_exam);
    let routes = op!(routes, list_exams);
    let routes = op!(routes, get_exam);
    let routes = op!(routes, add_participant);
    let routes = op!(routes, list_participants);
    let routes = op!(routes, enroll_reference, |r| r.layer(limit));
    let routes = op!(routes, post_capture, |r| r.layer(limit));
    let routes = op!(routes, list_captures);
    let routes = op!(routes, get_capture);
    op!(routes, review_capture)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExamIn {
    /// Short unique code, used in storage keys (`images/{code}/{user}/{file}`).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,40}$")]
    pub code: String,
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 200
    )]
    pub title: String,
    /// The category of the incident an `ALERT_FINAL` opens.
    #[schema(minimum = 1)]
    pub category_id: i64,
    /// Where that incident goes (default: the category's department).
    pub department_id: Option<i64>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub starts_at: String,
    /// RFC 3339; after `starts_at`.
    #[schema(format = DateTime)]
    pub ends_at: String,
    /// Distance under which a capture matches its reference (default 0.6).
    #[schema(minimum = 0.2, maximum = 0.9)]
    pub threshold: Option<f64>,
    /// Captures expected per participant and minute (default 2).
    #[schema(minimum = 1, maximum = 60)]
    pub captures_per_minute: Option<i64>,
    /// Consecutive alerts that make an `ALERT_FINAL` (default 3).
    #[schema(minimum = 1, maximum = 100)]
    pub alerts_before_final: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExamOut {
    pub id: i64,
    pub code: String,
    pub title: String,
    pub category_id: i64,
    pub department_id: Option<i64>,
    pub starts_at: String,
    pub ends_at: String,
    pub threshold: f64,
    pub captures_per_minute: i64,
    pub alerts_before_final: i64,
    pub created_at: String,
}

fn rfc(millis: i64) -> String {
    Timestamp::from_millis(millis).to_rfc3339()
}

impl From<Exam> for ExamOut {
    fn from(e: Exam) -> Self {
        Self {
            id: e.id,
            code: e.code,
            title: e.title,
            category_id: e.category_id,
            department_id: e.department_id,
            starts_at: rfc(e.starts_at),
            ends_at: rfc(e.ends_at),
            threshold: e.threshold,
            captures_per_minute: e.captures_per_minute,
            alerts_before_final: e.alerts_before_final,
            created_at: rfc(e.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantIn {
    /// The user id captures are filed under.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,80}$")]
    pub external_id: String,
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 200
    )]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantOut {
    pub id: i64,
    pub exam_id: i64,
    pub external_id: String,
    pub name: String,
    pub enrolled: bool,
    pub reference_key: Option<String>,
    /// The reference photo's analysis (face box, sharpness).
    #[schema(value_type = Option<Object>)]
    pub reference: Option<serde_json::Value>,
    pub consecutive_alerts: i64,
    /// The latest capture's status: `OK`, `ALERT`, `ALERT_FINAL`.
    pub last_status: Option<String>,
    /// The incident an `ALERT_FINAL` opened.
    pub incident_id: Option<i64>,
    /// Why the latest reference photo placed in storage (`reference/{user}.jpg`) was refused,
    /// as `code: message` (`no_face: No face detected`); the reference enrolled before it, if
    /// any, stays in force. `null` once a valid reference is enrolled.
    pub reference_refused: Option<String>,
}

impl From<Participant> for ParticipantOut {
    fn from(p: Participant) -> Self {
        Self {
            reference_refused: p.reference_refused,
            enrolled: p.reference_embedding.is_some(),
            reference: p
                .reference_faces
                .as_deref()
                .and_then(|f| serde_json::from_str(f).ok()),
            id: p.id,
            exam_id: p.exam_id,
            external_id: p.external_id,
            name: p.name,
            reference_key: p.reference_key,
            consecutive_alerts: p.consecutive_alerts,
            last_status: p.last_status,
            incident_id: p.incident_id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaptureOut {
    pub id: i64,
    pub exam_id: i64,
    pub participant_id: Option<i64>,
    pub user_id: String,
    pub object_key: String,
    /// `api` or `storage`.
    pub origin: String,
    /// `queued`, `OK`, `ALERT`, `ALERT_FINAL`.
    pub status: String,
    /// `no_face`, `multiple_faces`, `face_mismatch`, `face_too_small`, `image_unreadable`,
    /// `reference_missing`, `outside_window`.
    pub reason: Option<String>,
    pub distance: Option<f64>,
    /// The result document (also at `result_key` in storage).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub result_key: Option<String>,
    pub incident_id: Option<i64>,
    /// A proctor's review: `false_positive` or `confirmed`.
    pub review: Option<String>,
    pub received_at: String,
    pub analyzed_at: Option<String>,
}

impl From<Capture> for CaptureOut {
    fn from(c: Capture) -> Self {
        Self {
            result: c
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            id: c.id,
            exam_id: c.exam_id,
            participant_id: c.participant_id,
            user_id: c.external_id,
            object_key: c.object_key,
            origin: c.origin,
            status: c.status,
            reason: c.reason,
            distance: c.distance,
            result_key: c.result_key,
            incident_id: c.incident_id,
            review: c.review,
            received_at: rfc(c.received_at),
            analyzed_at: c.analyzed_at.map(rfc),
        }
    }
}

fn valid_code(field: &str, raw: &str, max: usize, extra: &[char]) -> Result<String, FieldError> {
    let ok = !raw.is_empty()
        && raw.len() <= max
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || extra.contains(&c));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "must be 1 to {max} letters, digits, '_' or '-'{}",
                if extra.is_empty() { "" } else { " or '.'" }
            ),
        ))
    }
}

fn text(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max {
        Err(FieldError::new(
            field,
            format!("must be 1 to {max} characters"),
        ))
    } else {
        Ok(trimmed.to_owned())
    }
}

fn time(field: &str, raw: &str) -> Result<Timestamp, FieldError> {
    Timestamp::parse_rfc3339(raw).ok_or_else(|| {
        FieldError::new(
            field,
            "must be an RFC 3339 date-time, e.g. 2026-12-07T09:00:00Z",
        )
    })
}

fn in_range<T: PartialOrd + Copy + std::fmt::Display>(
    field: &str,
    value: Option<T>,
    default: T,
    min: T,
    max: T,
) -> Result<T, FieldError> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        Err(FieldError::new(
            field,
            format!("must be between {min} and {max}"),
        ))
    } else {
        Ok(v)
    }
}

/// Create an exam (admins).
#[utoipa::path(post, path = "/api/v1/exams", tag = "proctoring", request_body = ExamIn,
    security(("bearer" = [])),
    responses((status = 201, body = ExamOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_exam(
    State(state): State<AppState>,
    admin: Admin,
    Json(input): Json<ExamIn>,
) -> ApiResult<(StatusCode, Json<ExamOut>)> {
    let mut v = Validation::new();
    let code = v.check(valid_code("code", &input.code, 40, &[]));
    let title = v.check(text("title", &input.title, 200));
    let starts = v.check(time("starts_at", &input.starts_at));
    let ends = v.check(time("ends_at", &input.ends_at));
    if let (Some(s), Some(e)) = (starts, ends)
        && e <= s
    {
        v.push(FieldError::new("ends_at", "must be after starts_at"));
    }
    let threshold = v.check(in_range("threshold", input.threshold, 0.6, 0.2, 0.9));
    let per_minute = v.check(in_range(
        "captures_per_minute",
        input.captures_per_minute,
        2,
        1,
        60,
    ));
    let finals = v.check(in_range(
        "alerts_before_final",
        input.alerts_before_final,
        3,
        1,
        100,
    ));
    if input.category_id <= 0 {
        v.push(FieldError::new("category_id", "must be a positive id"));
    }
    v.finish()?;
    let (
        Some(code),
        Some(title),
        Some(starts),
        Some(ends),
        Some(threshold),
        Some(per_minute),
        Some(finals),
    ) = (code, title, starts, ends, threshold, per_minute, finals)
    else {
        return Err(ApiError::BadRequest {
            detail: "invalid exam".into(),
        });
    };
    let new = NewExam {
        code,
        title,
        category_id: input.category_id,
        department_id: input.department_id,
        starts_at: starts,
        ends_at: ends,
        threshold,
        captures_per_minute: per_minute,
        alerts_before_final: finals,
    };
    let exam = proctoring::create_exam(&state.db, &new, &admin.0.0.label()).await?;
    Ok((StatusCode::CREATED, Json(exam.into())))
}

/// List exams (staff).
#[utoipa::path(get, path = "/api/v1/exams", tag = "proctoring", security(("bearer" = [])),
    responses((status = 200, body = Vec<ExamOut>)))]
pub async fn list_exams(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<ExamOut>>> {
    auth.require_staff()?;
    let exams = proctoring::list_exams(&state.db).await?;
    Ok(Json(exams.into_iter().map(ExamOut::from).collect()))
}

/// One exam (staff).
#[utoipa::path(get, path = "/api/v1/exams/{id}", tag = "proctoring", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = ExamOut), (status = 404, body = Problem)))]
pub async fn get_exam(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<ExamOut>> {
    auth.require_staff()?;
    Ok(Json(proctoring::find_exam(&state.db, id).await?.into()))
}

/// Add a participant to an exam (admins).
#[utoipa::path(post, path = "/api/v1/exams/{id}/participants", tag = "proctoring",
    request_body = ParticipantIn, security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 201, body = ParticipantOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn add_participant(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
    Json(input): Json<ParticipantIn>,
) -> ApiResult<(StatusCode, Json<ParticipantOut>)> {
    let mut v = Validation::new();
    let external = v.check(valid_code("external_id", &input.external_id, 80, &['.']));
    let name = v.check(text("name", &input.name, 200));
    v.finish()?;
    let exam = proctoring::find_exam(&state.db, id).await?;
    let (Some(external), Some(name)) = (external, name) else {
        return Err(ApiError::BadRequest {
            detail: "invalid participant".into(),
        });
    };
    let p = proctoring::add_participant(&state.db, exam.id, &external, &name).await?;
    Ok((StatusCode::CREATED, Json(p.into())))
}

/// An exam's participants with their latest status (staff).
#[utoipa::path(get, path = "/api/v1/exams/{id}/participants", tag = "proctoring",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ParticipantOut>), (status = 404, body = Problem)))]
pub async fn list_participants(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<ParticipantOut>>> {
    auth.require_staff()?;
    let exam = proctoring::find_exam(&state.db, id).await?;
    let all = proctoring::list_participants(&state.db, exam.id).await?;
    Ok(Json(all.into_iter().map(ParticipantOut::from).collect()))
}

fn unreadable(field: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::Validation(vec![FieldError::new(
        field,
        format!("image_unreadable: {detail}"),
    )])
}

/// Enroll a participant's reference photo (the request body is the image: JPEG, PNG, GIF or
/// WebP). Refused with 422 and the reason (`no_face`, `multiple_faces`, `face_too_small`,
/// `face_blurry`, `image_unreadable`) unless it shows exactly one large, sharp face. Staff.
#[utoipa::path(put, path = "/api/v1/exams/{id}/participants/{participant_id}/reference", tag = "proctoring",
    security(("bearer" = [])), params(("id" = i64, Path), ("participant_id" = i64, Path)),
    request_body(content = Vec<u8>, content_type = "image/jpeg"),
    responses((status = 200, body = ParticipantOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn enroll_reference(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, participant_id)): Path<(i64, i64)>,
    body: Bytes,
) -> ApiResult<Json<ParticipantOut>> {
    auth.require_staff()?;
    let exam = proctoring::find_exam(&state.db, id).await?;
    let participant = proctoring::find_participant(&state.db, exam.id, participant_id).await?;
    let Some(mime) = decode::sniff(&body) else {
        return Err(unreadable(
            "reference",
            "not an image Vigía can read (JPEG, PNG, GIF or WebP expected)",
        ));
    };
    let pool = vigia_media::pool::shared().map_err(ApiError::Internal)?;
    let gates = Gates {
        threshold: exam.threshold,
        ..Gates::default()
    };
    let reference = pool
        .check_reference(body.to_vec(), gates)
        .await
        .map_err(|e| ApiError::Unavailable {
            detail: format!("face analysis is not available: {e:#}"),
        })?
        .map_err(|reason| {
            ApiError::Validation(vec![FieldError::new("reference", verify::refusal(&reason))])
        })?;
    let extension = mime
        .rsplit('/')
        .next()
        .unwrap_or("jpg")
        .replace("jpeg", "jpg");
    let key = ObjectKey::join([
        "reference",
        &exam.code,
        &format!("{}.{extension}", sanitize_segment(&participant.external_id)),
    ]);
    state
        .objects
        .put(&key, body)
        .await
        .map_err(ApiError::Internal)?;
    let embedding_json =
        serde_json::to_string(&reference.embedding).map_err(|e| ApiError::Internal(e.into()))?;
    let faces = reference.faces_json();
    let stored = proctoring::set_reference(
        &state.db,
        participant.id,
        key.as_str(),
        &embedding_json,
        &faces.to_string(),
    )
    .await?;
    Ok(Json(stored.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CaptureQuery {
    /// The file's name (default: generated); the capture is stored at
    /// `images/{exam code}/{user}/{name}`. A name already received is not analysed again.
    pub name: Option<String>,
}

/// Submit a capture for analysis (the request body is the image). `202` with the queued
/// capture; `200` with the existing one when this file name was already received. Devices use
/// an API key with `media:write`.
#[utoipa::path(post, path = "/api/v1/exams/{id}/participants/{participant_id}/captures", tag = "proctoring",
    security(("bearer" = []), ("api_key" = ["media:write"])), params(("id" = i64, Path), ("participant_id" = i64, Path), CaptureQuery),
    request_body(content = Vec<u8>, content_type = "image/jpeg"),
    responses((status = 202, body = CaptureOut), (status = 200, body = CaptureOut), (status = 404, body = Problem), (status = 415, body = Problem)))]
pub async fn post_capture(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, participant_id)): Path<(i64, i64)>,
    Query(query): Query<CaptureQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<CaptureOut>)> {
    auth.require_staff()?;
    let exam = proctoring::find_exam(&state.db, id).await?;
    let participant = proctoring::find_participant(&state.db, exam.id, participant_id).await?;
    let Some(mime) = decode::sniff(&body) else {
        return Err(ApiError::UnsupportedMediaType {
            detail: "a capture must be a JPEG, PNG, GIF or WebP image".into(),
        });
    };
    let name = match query.name.as_deref() {
        Some(raw) => {
            let safe = sanitize_segment(raw);
            if safe.is_empty() || raw.len() > 200 {
                return Err(ApiError::Validation(vec![FieldError::new(
                    "name",
                    "must be a file name of 1 to 200 characters",
                )]));
            }
            safe
        }
        None => format!(
            "capture-{}.{}",
            Timestamp::now().millis(),
            mime.rsplit('/')
                .next()
                .unwrap_or("jpg")
                .replace("jpeg", "jpg")
        ),
    };
    let key = ObjectKey::join([
        "images",
        exam.code.as_str(),
        &sanitize_segment(&participant.external_id),
        &name,
    ]);
    if let Some(existing) = proctoring::find_capture_by_key(&state.db, key.as_str()).await? {
        return Ok((StatusCode::OK, Json(existing.into())));
    }
    state
        .objects
        .put(&key, body)
        .await
        .map_err(ApiError::Internal)?;
    let new = NewCapture {
        exam_id: exam.id,
        participant_id: Some(participant.id),
        external_id: participant.external_id.clone(),
        object_key: key.as_str().to_owned(),
        file_name: name,
        origin: "api",
    };
    match proctoring::insert_capture(&state.db, &new, Timestamp::now()).await? {
        Some(capture) => Ok((StatusCode::ACCEPTED, Json(capture.into()))),
        None => {
            let existing = proctoring::find_capture_by_key(&state.db, key.as_str())
                .await?
                .ok_or(ApiError::NotFound)?;
            Ok((StatusCode::OK, Json(existing.into())))
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CaptureListQuery {
    pub participant_id: Option<i64>,
    /// At most this many, newest first (default 100, at most 500).
    pub limit: Option<u32>,
}

/// An exam's captures, newest first: the alert timeline (staff).
#[utoipa::path(get, path = "/api/v1/exams/{id}/captures", tag = "proctoring", security(("bearer" = [])),
    params(("id" = i64, Path), CaptureListQuery),
    responses((status = 200, body = Vec<CaptureOut>), (status = 404, body = Problem)))]
pub async fn list_captures(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    Query(query): Query<CaptureListQuery>,
) -> ApiResult<Json<Vec<CaptureOut>>> {
    auth.require_staff()?;
    let exam = proctoring::find_exam(&state.db, id).await?;
    let all = proctoring::list_captures(
        &state.db,
        exam.id,
        query.participant_id,
        query.limit.unwrap_or(100),
    )
    .await?;
    Ok(Json(all.into_iter().map(CaptureOut::from).collect()))
}

/// One capture with its result (staff).
#[utoipa::path(get, path = "/api/v1/captures/{id}", tag = "proctoring", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = CaptureOut), (status = 404, body = Problem)))]
pub async fn get_capture(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<CaptureOut>> {
    auth.require_staff()?;
    Ok(Json(proctoring::find_capture(&state.db, id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewIn {
    /// `false_positive` or `confirmed`.
    #[schema(pattern = "^(false_positive|confirmed)$")]
    pub verdict: String,
}

/// A proctor's review of an alert (staff): kept to measure accuracy.
#[utoipa::path(post, path = "/api/v1/captures/{id}/review", tag = "proctoring", request_body = ReviewIn,
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = CaptureOut), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn review_capture(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    Json(input): Json<ReviewIn>,
) -> ApiResult<Json<CaptureOut>> {
    auth.require_staff()?;
    if !matches!(input.verdict.as_str(), "false_positive" | "confirmed") {
        return Err(ApiError::Validation(vec![FieldError::new(
            "verdict",
            "must be false_positive or confirmed",
        )]));
    }
    match proctoring::review(&state.db, id, &input.verdict, &auth.0.label()).await? {
        Some(capture) => Ok(Json(capture.into())),
        None => Err(ApiError::Conflict {
            detail: "only ALERT and ALERT_FINAL captures can be reviewed".into(),
            extra: None,
        }),
    }
}
