//! Silences: staff mute a rule, a subject or a device for a period, with a reason. Matching
//! detections are still stored and counted; no alert is raised.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigia_domain::detections::SilenceTarget;
use vigia_domain::ids::{AlertRuleId, DeviceId, SilenceId, SubjectId};
use vigia_domain::validation::bounded_text;
use vigia_domain::{FieldError, Timestamp, Validation};
use vigia_store::detections::rules::{self, SilenceRecord};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Query, RequestId};
use crate::path::Path;
use crate::routes::subjects::department_scope;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceOut {
    pub id: i64,
    /// `rule`, `subject` or `device`.
    pub kind: &'static str,
    /// The rule's, subject's or device's id.
    pub target_id: i64,
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: Timestamp,
    pub reason: String,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Alerts it kept from being raised.
    pub suppressed: i64,
}

impl From<SilenceRecord> for SilenceOut {
    fn from(s: SilenceRecord) -> Self {
        let (kind, target_id) = match s.target {
            SilenceTarget::Rule(id) => ("rule", id.0),
            SilenceTarget::Subject(id) => ("subject", id.0),
            SilenceTarget::Device(id) => ("device", id.0),
        };
        Self {
            id: s.id.0,
            kind,
            target_id,
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            reason: s.reason,
            created_by: s.created_by,
            created_at: s.created_at,
            suppressed: s.suppressed,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceIn {
    /// Exactly one of `rule_id`, `subject_id`, `device_id`.
    #[schema(minimum = 1)]
    pub rule_id: Option<i64>,
    #[schema(minimum = 1)]
    pub subject_id: Option<i64>,
    #[schema(minimum = 1)]
    pub device_id: Option<i64>,
    /// Start (included); default now.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starts_at: Option<Timestamp>,
    /// End (excluded); after the start.
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: Timestamp,
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 500
    )]
    pub reason: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SilenceQuery {
    /// Also list silences that have ended.
    pub all: Option<bool>,
}

/// List silences: those not yet over (or all, with `all=true`), newest first (staff).
#[utoipa::path(get, path = "/api/v1/silences", tag = "alerts", params(SilenceQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<SilenceOut>), (status = 403, body = Problem)))]
pub(crate) async fn list_silences(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<SilenceQuery>,
) -> ApiResult<Json<Vec<SilenceOut>>> {
    department_scope(&auth)?;
    let after = if q.all == Some(true) {
        i64::MIN
    } else {
        Timestamp::now().millis()
    };
    Ok(Json(
        rules::list_silences(&state.db, after)
            .await?
            .into_iter()
            .map(SilenceOut::from)
            .collect(),
    ))
}

/// Silence a rule, a subject or a device for a period, with a reason (staff). Matching
/// detections are still stored and counted; no alert is raised.
#[utoipa::path(post, path = "/api/v1/silences", tag = "alerts", request_body = SilenceIn, security(("bearer" = [])),
    responses((status = 201, body = SilenceOut), (status = 422, body = Problem)))]
pub(crate) async fn create_silence(
    State(state): State<AppState>,
    auth: Auth,
    RequestId(rid): RequestId,
    Json(input): Json<SilenceIn>,
) -> ApiResult<(StatusCode, Json<SilenceOut>)> {
    department_scope(&auth)?;
    let mut v = Validation::new();
    let target = match (input.rule_id, input.subject_id, input.device_id) {
        (Some(id), None, None) => Some(SilenceTarget::Rule(AlertRuleId(id))),
        (None, Some(id), None) => Some(SilenceTarget::Subject(SubjectId(id))),
        (None, None, Some(id)) => Some(SilenceTarget::Device(DeviceId(id))),
        _ => {
            v.push(FieldError::new(
                "rule_id",
                "give exactly one of rule_id, subject_id and device_id",
            ));
            None
        }
    };
    let starts_at = input.starts_at.unwrap_or_else(Timestamp::now);
    if input.ends_at <= starts_at {
        v.push(FieldError::new("ends_at", "must be after starts_at"));
    }
    let reason = v.check(bounded_text("reason", &input.reason, 1, 500));
    v.finish()?;
    let (Some(target), Some(reason)) = (target, reason) else {
        return Err(ApiError::field(
            "rule_id",
            "give exactly one of rule_id, subject_id and device_id",
        ));
    };
    let silence = rules::create_silence(
        &state.db,
        target,
        starts_at,
        input.ends_at,
        &reason,
        &auth.actor(rid),
    )
    .await?;
    state.ingestion.invalidate(None).await;
    Ok((StatusCode::CREATED, Json(silence.into())))
}

/// End a silence now (staff).
#[utoipa::path(delete, path = "/api/v1/silences/{id}", params(("id" = i64, Path, description = "the silence's id")), tag = "alerts", security(("bearer" = [])),
    responses((status = 200, body = SilenceOut), (status = 404, body = Problem)))]
pub(crate) async fn expire_silence(
    State(state): State<AppState>,
    auth: Auth,
    RequestId(rid): RequestId,
    Path(id): Path<i64>,
) -> ApiResult<Json<SilenceOut>> {
    department_scope(&auth)?;
    let silence = rules::expire_silence(&state.db, SilenceId(id), &auth.actor(rid)).await?;
    state.ingestion.invalidate(None).await;
    Ok(Json(silence.into()))
}
