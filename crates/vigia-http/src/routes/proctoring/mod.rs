//! Exam proctoring: exams, participants and their reference photo, captures and their
//! analysis, proctor reviews. Analysis runs as a `media.analyze` job; enrollment analyses the
//! reference at once so a bad photo is refused with its reason (422).

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use vigia_domain::{FieldError, Timestamp, Validation};
use vigia_media::decode;
use vigia_media::verify::{self, Gates};
use vigia_store::proctoring::{self, NewCapture, NewExam};
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

mod wire;

pub use wire::*;

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
