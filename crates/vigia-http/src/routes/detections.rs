//! Detection ingestion (one, or a batch of up to 10,000, sent with a device's key) and the
//! detections dashboard (overview and stats, from the per-minute rollups, scoped by
//! department), and the streamed detection export.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigia_domain::detections::{DetectionDraft, ValidDetection};
use vigia_domain::{FieldError, Timestamp};
use vigia_reports::detection_export::DetectionExport;
use vigia_store::detections::dashboard;
use vigia_store::detections::devices::Device;
use vigia_store::detections::window::DetectionFilter;

use super::attachments::FileBytes;
use super::subjects::{calling_device, department_scope};
use super::{Routes, op};
use crate::auth::Auth;
use crate::detections::{BatchResult, ItemResult};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{BATCH_BODY_BYTES, BatchJson, Json, Query, objects_only};
use crate::state::AppState;

/// Most detections one batch may carry.
pub const MAX_BATCH: usize = 10_000;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, ingest_one);
    let routes = op!(routes, ingest_batch, |r| r
        .layer(DefaultBodyLimit::max(BATCH_BODY_BYTES)));
    let routes = op!(routes, overview);
    let routes = op!(routes, stats);
    op!(routes, export_detections)
}

/// One detection as a device sends it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct DetectionIn {
    /// The device's own id for this detection: sent twice, it is stored once.
    #[schema(min_length = 1, max_length = 100)]
    pub client_id: String,
    /// The subject's code.
    #[schema(min_length = 1, max_length = 64)]
    pub subject: String,
    /// One of the configured labels (`detections.labels`).
    pub label: String,
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub confidence: f64,
    /// When it was detected (RFC 3339); at most `detections.max_future_skew_secs` ahead.
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
    /// Optional: the sending device's code; when given it must be the key's device.
    pub device: Option<String>,
    /// Optional JSON object kept with the detection (≤ 4 KiB).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}
objects_only!(DetectionIn);

/// Checks one wire detection for `device` (everything that needs no database).
pub fn check(
    state: &AppState,
    device: &Device,
    input: &DetectionIn,
    now: Timestamp,
) -> Result<ValidDetection, Vec<FieldError>> {
    let extra = input
        .extra
        .as_ref()
        .map(|m| serde_json::to_string(m).unwrap_or_default());
    let checked = state.ingestion.policy.check(
        DetectionDraft {
            client_id: &input.client_id,
            subject: &input.subject,
            label: &input.label,
            confidence: input.confidence,
            timestamp: input.timestamp,
            extra,
        },
        now,
    );
    match (&input.device, checked) {
        (Some(code), result) if *code != device.code => {
            let mut errors = result.err().unwrap_or_default();
            errors.insert(
                0,
                FieldError::new(
                    "device",
                    format!(
                        "unknown device {code:?}: this key belongs to device {:?}",
                        device.code
                    ),
                ),
            );
            Err(errors)
        }
        (_, result) => result,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DetectionOut {
    /// `accepted` (stored now) or `duplicate` (this device sent this client id before).
    pub status: &'static str,
    /// The stored detection's id (accepted only).
    pub id: Option<i64>,
    /// Alerts this detection raised.
    pub alerts_raised: usize,
}

/// Send one detection (device key, scope `detections:write`). 201 when stored, 200 for a
/// duplicate; 422 for an invalid detection, an unknown subject or a subject without consent
/// (refused and counted).
#[utoipa::path(post, path = "/api/v1/detections", tag = "detections", request_body = DetectionIn, security(("bearer" = [])),
    responses((status = 201, body = DetectionOut), (status = 200, body = DetectionOut), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn ingest_one(
    State(state): State<AppState>,
    auth: Auth,
    Json(input): Json<DetectionIn>,
) -> ApiResult<(StatusCode, Json<DetectionOut>)> {
    let device = calling_device(&state, &auth).await?;
    let draft = check(&state, &device, &input, Timestamp::now());
    let BatchResult { items, alerts } = state
        .ingestion
        .ingest(&state.db, &device, vec![draft])
        .await?;
    match items.into_iter().next() {
        Some(ItemResult::Accepted { id }) => Ok((
            StatusCode::CREATED,
            Json(DetectionOut {
                status: "accepted",
                id: Some(id),
                alerts_raised: alerts.len(),
            }),
        )),
        Some(ItemResult::Duplicate) => Ok((
            StatusCode::OK,
            Json(DetectionOut {
                status: "duplicate",
                id: None,
                alerts_raised: 0,
            }),
        )),
        Some(ItemResult::Refused(error)) => Err(ApiError::Validation(vec![error])),
        Some(ItemResult::Invalid(errors)) => Err(ApiError::Validation(errors)),
        None => Err(ApiError::Internal(anyhow::anyhow!(
            "ingestion answered nothing"
        ))),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchIn {
    /// 1 to 10,000 detections, each checked on its own.
    #[schema(value_type = Vec<DetectionIn>, min_items = 1, max_items = 10000)]
    pub detections: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemErrorOut {
    pub field: String,
    pub message: String,
}

/// A detection of the batch that was not stored now.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItemOut {
    /// Its position in `detections`, from 0.
    pub index: usize,
    /// `duplicate` (stored before: nothing to do), `refused` (subject without consent; counted,
    /// do not resend) or `invalid` (fix it before resending).
    pub status: &'static str,
    pub errors: Vec<ItemErrorOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchOut {
    pub accepted: usize,
    pub duplicates: usize,
    pub refused: usize,
    pub invalid: usize,
    pub alerts_raised: usize,
    /// Every detection that was not accepted now, in order; accepted ones are not listed.
    pub items: Vec<BatchItemOut>,
}

fn errors_out(errors: Vec<FieldError>) -> Vec<ItemErrorOut> {
    errors
        .into_iter()
        .map(|e| ItemErrorOut {
            field: e.field,
            message: e.message,
        })
        .collect()
}

/// Send a batch of up to 10,000 detections (device key). The valid ones are stored (all in one
/// commit) and the answer lists the others with their errors; 200 whenever the batch itself
/// could be read. Resending the same batch stores nothing twice.
#[utoipa::path(post, path = "/api/v1/detections/batch", tag = "detections", request_body = BatchIn, security(("bearer" = [])),
    responses((status = 200, body = BatchOut), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem)))]
async fn ingest_batch(
    State(state): State<AppState>,
    auth: Auth,
    BatchJson(input): BatchJson<BatchIn>,
) -> ApiResult<Json<BatchOut>> {
    let device = calling_device(&state, &auth).await?;
    if input.detections.is_empty() || input.detections.len() > MAX_BATCH {
        return Err(ApiError::field(
            "detections",
            format!("must hold 1 to {MAX_BATCH} detections"),
        ));
    }
    let now = Timestamp::now();
    let drafts = input
        .detections
        .into_iter()
        .map(
            |item| match serde_path_to_error::deserialize::<_, DetectionIn>(item) {
                Ok(wire) => check(&state, &device, &wire, now),
                Err(error) => {
                    let path = error.path().to_string();
                    let field = if path == "." {
                        "detection".to_owned()
                    } else {
                        path
                    };
                    Err(vec![FieldError::new(field, error.into_inner().to_string())])
                }
            },
        )
        .collect();
    let result = state.ingestion.ingest(&state.db, &device, drafts).await?;
    let mut out = BatchOut {
        accepted: 0,
        duplicates: 0,
        refused: 0,
        invalid: 0,
        alerts_raised: result.alerts.len(),
        items: Vec::new(),
    };
    for (index, item) in result.items.into_iter().enumerate() {
        let (status, errors) = match item {
            ItemResult::Accepted { .. } => {
                out.accepted += 1;
                continue;
            }
            ItemResult::Duplicate => {
                out.duplicates += 1;
                ("duplicate", Vec::new())
            }
            ItemResult::Refused(error) => {
                out.refused += 1;
                ("refused", vec![error])
            }
            ItemResult::Invalid(errors) => {
                out.invalid += 1;
                ("invalid", errors)
            }
        };
        out.items.push(BatchItemOut {
            index,
            status,
            errors: errors_out(errors),
        });
    }
    Ok(Json(out))
}

// --- dashboard ---------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct PendingAlertsOut {
    pub low: i64,
    pub medium: i64,
    pub high: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OverviewOut {
    /// Subjects with consent.
    pub active_subjects: i64,
    pub detections_last_hour: i64,
    pub subjects_detected_last_hour: i64,
    pub pending_alerts: PendingAlertsOut,
    /// Share (0..1) of the last hour's detections labelled `stress` or `sad`.
    pub stress_share: f64,
    /// Active devices heard from in the last 5 minutes.
    pub active_devices: i64,
}

/// The detections overview (staff: their departments' subjects; admins: all).
#[utoipa::path(get, path = "/api/v1/detections/overview", tag = "detections", security(("bearer" = [])),
    responses((status = 200, body = OverviewOut), (status = 403, body = Problem)))]
pub(crate) async fn overview(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<OverviewOut>> {
    let scope = department_scope(&auth)?;
    let o = dashboard::overview(&state.db, &scope, Timestamp::now()).await?;
    Ok(Json(OverviewOut {
        active_subjects: o.active_subjects,
        detections_last_hour: o.detections_last_hour,
        subjects_detected_last_hour: o.subjects_detected_last_hour,
        pending_alerts: PendingAlertsOut {
            low: o.pending_alerts.low,
            medium: o.pending_alerts.medium,
            high: o.pending_alerts.high,
        },
        stress_share: o.stress_share,
        active_devices: o.active_devices,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Start (RFC 3339, included); default 24 hours before `to`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// End (RFC 3339, excluded); default the end of the current UTC hour, so that by default
    /// the period is the 24 whole hours ending with the current one (the hourly chart's bars,
    /// read from the hourly rollups alone). A period whose ends fall inside hours also reads
    /// the per-minute rollups of those two partial hours.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelOut {
    pub label: String,
    pub count: i64,
    pub confidence_avg: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HourOut {
    #[schema(value_type = String, format = DateTime)]
    pub hour: Timestamp,
    pub label: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectStressOut {
    pub subject_id: i64,
    pub code: String,
    pub name: String,
    pub total: i64,
    pub stress: i64,
    pub stress_share: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceCountOut {
    pub device_id: i64,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DetectionStatsOut {
    #[schema(value_type = String, format = DateTime)]
    pub from: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub to: Timestamp,
    /// Detections per label.
    pub labels: Vec<LabelOut>,
    /// Detections per hour and label.
    pub per_hour: Vec<HourOut>,
    /// The 10 subjects with the largest share of stress labels.
    pub top_subjects: Vec<SubjectStressOut>,
    pub devices: Vec<DeviceCountOut>,
}

/// The end of the UTC hour holding `at`: the default end of the stats period.
fn end_of_hour(at: Timestamp) -> Timestamp {
    const HOUR_MS: i64 = 3_600_000;
    Timestamp::from_millis(at.millis().div_euclid(HOUR_MS) * HOUR_MS + HOUR_MS)
}

/// Detection statistics over a period of at most 31 days (staff: their departments); by
/// default the 24 whole hours ending with the current one.
#[utoipa::path(get, path = "/api/v1/detections/stats", tag = "detections", params(StatsQuery), security(("bearer" = [])),
    responses((status = 200, body = DetectionStatsOut), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<DetectionStatsOut>> {
    let scope = department_scope(&auth)?;
    let to = q.to.unwrap_or_else(|| end_of_hour(Timestamp::now()));
    let from = q
        .from
        .unwrap_or(Timestamp::from_millis(to.millis() - 86_400_000));
    if from >= to {
        return Err(ApiError::field("from", "must be before to"));
    }
    if to.millis() - from.millis() > 31 * 86_400_000 {
        return Err(ApiError::field(
            "from",
            "the period may be at most 31 days long",
        ));
    }
    let s = dashboard::stats(&state.db, &scope, from, to).await?;
    Ok(Json(DetectionStatsOut {
        from,
        to,
        labels: s
            .labels
            .into_iter()
            .map(|l| LabelOut {
                label: l.label,
                count: l.count,
                confidence_avg: l.confidence_avg,
            })
            .collect(),
        per_hour: s
            .per_hour
            .into_iter()
            .map(|h| HourOut {
                hour: Timestamp::from_millis(h.hour),
                label: h.label,
                count: h.count,
            })
            .collect(),
        top_subjects: s
            .top_subjects
            .into_iter()
            .map(|t| SubjectStressOut {
                subject_id: t.subject_id,
                code: t.code,
                name: t.name,
                total: t.total,
                stress: t.stress,
                stress_share: t.stress_share,
            })
            .collect(),
        devices: s
            .devices
            .into_iter()
            .map(|d| DeviceCountOut {
                device_id: d.device_id,
                count: d.count,
            })
            .collect(),
    }))
}

// --- export ------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DetectionExportQuery {
    /// `csv` (default), `ndjson` or `xlsx`.
    #[param(pattern = "^(csv|ndjson|xlsx)$")]
    pub format: Option<String>,
    /// Only this subject's detections (its id).
    pub subject: Option<i64>,
    /// Only this device's detections (its id).
    pub device: Option<i64>,
    /// Only this label (one of `detections.labels`).
    pub label: Option<String>,
    /// Detected at or after (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// Detected before (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
}

/// The export's format and filter from its query, every bad field named in one 422.
pub fn export_request(
    state: &AppState,
    q: &DetectionExportQuery,
) -> ApiResult<(vigia_reports::Format, DetectionFilter)> {
    use vigia_reports::Format;
    let mut v = vigia_domain::Validation::new();
    let format = match q.format.as_deref() {
        None => Some(Format::Csv),
        Some(raw) => {
            let f = Format::parse(raw).filter(|f| *f != Format::Json);
            if f.is_none() {
                v.push(FieldError::new(
                    "format",
                    "must be one of ndjson, csv, xlsx",
                ));
            }
            f
        }
    };
    let label = q.label.as_deref().and_then(|l| {
        v.check(state.ingestion.policy.vocabulary.label("label", l))
            .map(|l| l.as_str().to_owned())
    });
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from >= to
    {
        v.push(FieldError::new("from", "must be before to"));
    }
    v.finish()?;
    Ok((
        format.unwrap_or(Format::Csv),
        DetectionFilter {
            subject: q.subject.map(vigia_domain::ids::SubjectId),
            device: q.device.map(vigia_domain::ids::DeviceId),
            label,
            from: q.from,
            to: q.to,
        },
    ))
}

/// Stored detections of the subjects the caller may see (staff and keys with `reports:read`:
/// their departments'; admins: all), filtered, oldest first, as one streamed file (memory
/// stays flat however many rows).
#[utoipa::path(get, path = "/api/v1/exports/detections", tag = "reports", params(DetectionExportQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "the file", content(
        (FileBytes = "text/csv; charset=utf-8"), (FileBytes = "application/x-ndjson"), (FileBytes = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn export_detections(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<DetectionExportQuery>,
) -> ApiResult<Response> {
    let scope = department_scope(&auth)?;
    let (format, filter) = export_request(&state, &q)?;
    let name = format!(
        "detections_{}.{}",
        vigia_reports::key_time(Timestamp::now()),
        format.extension()
    );
    let export = DetectionExport {
        format,
        scope,
        filter,
    };
    let body = Body::from_stream(vigia_reports::detection_export::stream(
        state.db.clone(),
        export,
    ));
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        ),
        (
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                .unwrap_or(HeaderValue::from_static("attachment")),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("private")),
    ];
    Ok((headers, body).into_response())
}
