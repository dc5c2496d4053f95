//! `GET /proctoring/exams/{id}/live`: the proctor's live view of one exam — participants with
//! their latest status, the alert timeline with a review form on each alert, and the latest
//! captures with every detected face's box drawn over the image (SVG, from the bounding boxes
//! stored in the capture's result). `GET .../live/body` is the same body alone, fetched again by
//! the page's script when the stream announces an event on `exam:{id}`.
//! `GET /proctoring/captures/{id}/image` serves a capture's image to staff;
//! `POST /proctoring/captures/{id}/review` records a review through
//! `routes::proctoring::review_capture`.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use vigia_domain::Timestamp;
use vigia_store::ObjectKey;

use super::{auth_of, reason_label, refusal, status_label};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::path::Path;
use crate::routes::proctoring::{self as api, CaptureListQuery, CaptureOut, ExamOut, ReviewIn};
use crate::state::AppState;
use crate::ui::staff::{Staff, StaffForm, StaffViewer, Tr, see_other};
use crate::ui::{Chrome, Lang, UiError};

/// Captures the page shows (the alert timeline reads as many).
const CAPTURES: u32 = 60;
/// Captures drawn as images.
const GALLERY: usize = 12;

pub struct ParticipantLine {
    pub name: String,
    pub external_id: String,
    pub status: String,
    pub status_label: String,
    pub alerts: i64,
    pub enrolled: bool,
    /// Why the latest reference placed in storage was refused, in the viewer's language.
    pub refused: Option<String>,
}

/// A face's box in the image's pixels.
pub struct FaceBox {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

pub struct CaptureView {
    pub id: i64,
    pub who: String,
    pub at: String,
    pub status: String,
    pub status_label: String,
    pub reason: Option<String>,
    pub distance: Option<String>,
    pub review: Option<String>,
    pub is_alert: bool,
    /// The image's size when it was analysed (`None`: unreadable, or not analysed yet).
    pub size: Option<(i64, i64)>,
    pub faces: Vec<FaceBox>,
    pub stroke: i64,
}

pub struct Live {
    pub exam: ExamOut,
    pub participants: Vec<ParticipantLine>,
    pub alerts: Vec<CaptureView>,
    pub gallery: Vec<CaptureView>,
    pub reviewed: (usize, usize),
}

#[derive(Template)]
#[template(path = "ui/proctoring/live.html")]
struct LivePage<'a> {
    c: &'a Chrome,
    v: &'a Live,
    saved: bool,
}

#[derive(Template)]
#[template(path = "ui/proctoring/live_body.html")]
struct LiveBody<'a> {
    c: &'a Chrome,
    v: &'a Live,
}

fn capture_view(t: Tr, c: &CaptureOut, names: &[(i64, String)]) -> CaptureView {
    let result = c.result.as_ref();
    let size = result
        .and_then(|r| r.get("image"))
        .and_then(|i| Some((i.get("width")?.as_i64()?, i.get("height")?.as_i64()?)));
    let faces: Vec<FaceBox> = result
        .and_then(|r| r.get("faces"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let b = f.get("bounding_box")?;
            Some(FaceBox {
                x: b.get("left")?.as_i64()?,
                y: b.get("top")?.as_i64()?,
                w: b.get("width")?.as_i64()?,
                h: b.get("height")?.as_i64()?,
            })
        })
        .collect();
    let who = c
        .participant_id
        .and_then(|p| names.iter().find(|(id, _)| *id == p))
        .map_or_else(|| c.user_id.clone(), |(_, n)| n.clone());
    let at = c
        .analyzed_at
        .as_deref()
        .unwrap_or(&c.received_at)
        .to_owned();
    CaptureView {
        id: c.id,
        who,
        at: Timestamp::parse_rfc3339(&at).map_or(at, |at| t.datetime(at)),
        status: c.status.clone(),
        status_label: status_label(t.0, &c.status),
        reason: c.reason.as_deref().map(|r| reason_label(t.0, r)),
        distance: c.distance.map(|d| match t.0 {
            Lang::Es => format!("{d:.3}").replace('.', ","),
            Lang::En => format!("{d:.3}"),
        }),
        review: c
            .review
            .as_deref()
            .map(|r| t.t(&format!("proctoring.review.{r}")).to_owned()),
        is_alert: matches!(c.status.as_str(), "ALERT" | "ALERT_FINAL"),
        stroke: size.map_or(2, |(w, _)| (w / 150).max(2)),
        size,
        faces,
    }
}

async fn gather(state: &AppState, viewer: &Staff, id: i64) -> ApiResult<Live> {
    let t = viewer.t;
    let Json(exam) = api::get_exam(State(state.clone()), auth_of(viewer), Path(id)).await?;
    let Json(participants) =
        api::list_participants(State(state.clone()), auth_of(viewer), Path(id)).await?;
    let Json(captures) = api::list_captures(
        State(state.clone()),
        auth_of(viewer),
        Path(id),
        Query(CaptureListQuery {
            participant_id: None,
            limit: Some(CAPTURES),
        }),
    )
    .await?;
    let names: Vec<(i64, String)> = participants
        .iter()
        .map(|p| (p.id, p.name.clone()))
        .collect();
    let alerts: Vec<CaptureView> = captures
        .iter()
        .filter(|c| matches!(c.status.as_str(), "ALERT" | "ALERT_FINAL"))
        .map(|c| capture_view(t, c, &names))
        .collect();
    let reviewed = (
        alerts.iter().filter(|a| a.review.is_some()).count(),
        alerts.len(),
    );
    let gallery = captures
        .iter()
        .take(GALLERY)
        .map(|c| capture_view(t, c, &names))
        .collect();
    Ok(Live {
        participants: participants
            .into_iter()
            .map(|p| {
                let status = p.last_status.clone().unwrap_or_default();
                ParticipantLine {
                    status_label: if status.is_empty() {
                        t.t("proctoring.status.none").to_owned()
                    } else {
                        status_label(t.0, &status)
                    },
                    status,
                    name: p.name,
                    external_id: p.external_id,
                    alerts: p.consecutive_alerts,
                    enrolled: p.enrolled,
                    refused: p.reference_refused.as_deref().map(|m| refusal(t.0, m)),
                }
            })
            .collect(),
        exam,
        alerts,
        gallery,
        reviewed,
    })
}

pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    StaffViewer(viewer): StaffViewer,
) -> Response {
    match gather(&state, &viewer, id).await {
        Ok(v) => viewer.render(
            StatusCode::OK,
            &LivePage {
                c: viewer.c(),
                v: &v,
                saved: viewer.flag("saved=1"),
            },
        ),
        Err(error) => UiError::from(error).into_response(),
    }
}

/// `GET /proctoring/exams/{id}/live/body`: the live part alone.
pub async fn body(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    StaffViewer(viewer): StaffViewer,
) -> Response {
    match gather(&state, &viewer, id).await {
        Ok(v) => viewer.render(
            StatusCode::OK,
            &LiveBody {
                c: viewer.c(),
                v: &v,
            },
        ),
        Err(error) => UiError::from(error).into_response(),
    }
}

/// `GET /proctoring/captures/{id}/image`: the capture as it was received (staff).
pub async fn image(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    StaffViewer(viewer): StaffViewer,
) -> Response {
    let result: ApiResult<Response> = async {
        let Json(capture) =
            api::get_capture(State(state.clone()), auth_of(&viewer), Path(id)).await?;
        let key = ObjectKey::parse(&capture.object_key).map_err(ApiError::Internal)?;
        let bytes = state
            .objects
            .get(&key)
            .await
            .map_err(ApiError::Internal)?
            .ok_or(ApiError::NotFound)?;
        let kind = vigia_media::decode::sniff(&bytes).unwrap_or("application/octet-stream");
        Ok((
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("private, max-age=3600"),
                ),
            ],
            bytes,
        )
            .into_response())
    }
    .await;
    result.unwrap_or_else(|e| UiError::from(e).into_response())
}

/// `POST /proctoring/captures/{id}/review`: `false_positive` or `confirmed`, then back to the
/// live view.
pub async fn review(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    StaffForm(viewer, form): StaffForm,
) -> Response {
    let input = ReviewIn {
        verdict: form.text("verdict"),
    };
    match api::review_capture(
        State(state.clone()),
        auth_of(&viewer),
        Path(id),
        Json(input),
    )
    .await
    {
        Ok(Json(capture)) => see_other(&format!(
            "/proctoring/exams/{}/live?saved=1#capture-{id}",
            capture.exam_id
        )),
        Err(error) => UiError::from(error).into_response(),
    }
}
