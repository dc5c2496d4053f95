//! The delivery log of e-mails, webhooks and uploads (admins only): who was notified, when, and
//! whether it arrived; a dead delivery can be replayed. Handlers never send: a replay re-queues
//! the delivery, and the job queue's `notification.deliver` jobs send it.

use axum::extract::State;

use super::{Routes, op};
use crate::path::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigia_domain::{FieldError, Timestamp, Validation};
use vigia_store::notifications::{
    self, Channel, Delivery, DeliveryEvent, DeliveryFilter, DeliveryStatus, EventLog,
};
use vigia_store::page::clamp_limit;
use vigia_store::webhooks;

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Query};
use crate::routes::users::cursor;
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, list_deliveries);
    let routes = op!(routes, get_delivery);
    op!(routes, replay_delivery)
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    /// 1 for the first attempt (numbering restarts after a replay).
    pub attempt: i64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// `delivered`, `retry` (another attempt follows) or `failed` (the last one).
    pub outcome: String,
    /// HTTP status (webhooks) or SMTP reply code (e-mail), when there was an answer.
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// The event of the log a delivery is about.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryEventOut {
    /// The event's id: incident and exam events share one id sequence, so it names one event.
    pub id: i64,
    /// `incident` (`incident_events`: incident and alert events) or `exam` (`exam_events`:
    /// proctoring events).
    pub log: String,
    /// The event's type: `incident.created`, `alert.raised`, `media.analyzed`,
    /// `proctoring.reviewed`, ... The delivery's `message_type` can differ from it
    /// (`proctoring.alert` is sent for a `media.analyzed` event that alerts). `null` when the
    /// event no longer exists.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The alert an alert event is about.
    pub alert_id: Option<i64>,
    /// The exam an exam event is about.
    pub exam_id: Option<i64>,
}

impl From<DeliveryEvent> for DeliveryEventOut {
    fn from(e: DeliveryEvent) -> Self {
        Self {
            id: e.id,
            log: e.log.as_str().into(),
            kind: e.message_type,
            alert_id: e.alert_id,
            exam_id: e.exam_id,
        }
    }
}

/// One message to one target, and how its attempts went.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: i64,
    /// `email`, `webhook` or `upload`.
    pub channel: String,
    /// The address, or the endpoint id.
    pub target: String,
    pub endpoint_id: Option<i64>,
    /// The incident or alert event it is about.
    pub event_id: Option<i64>,
    /// The exam event (proctoring) it is about, instead of an incident event.
    pub exam_event_id: Option<i64>,
    /// The event it is about, of either table of the log, with its type; `null` for reports,
    /// `webhook.test` and digests.
    pub event: Option<DeliveryEventOut>,
    pub incident_id: Option<i64>,
    /// `incident.created`, `report`, `webhook.test`, ...
    pub message_type: String,
    /// The `webhook-id` / Message-ID, the same on every attempt and replay.
    pub message_id: String,
    /// `pending`, `delivered`, `failed` (will be retried) or `dead` (gave up; replay it).
    pub status: String,
    pub attempts: i64,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<Timestamp>,
    /// The digest e-mail (`notification.digest` delivery) that carries or carried this e-mail,
    /// when its recipient was over their rate; it is delivered when its digest is.
    pub digest_id: Option<i64>,
    pub attempt_log: Vec<AttemptOut>,
}

pub(crate) fn delivery_out(d: Delivery, attempts: Vec<notifications::Attempt>) -> DeliveryOut {
    DeliveryOut {
        id: d.id,
        channel: d.channel.as_str().into(),
        target: d.target,
        endpoint_id: d.endpoint_id,
        event_id: d.event_id,
        exam_event_id: d.exam_event_id,
        event: d.event.map(DeliveryEventOut::from),
        incident_id: d.incident_id,
        message_type: d.message_type,
        message_id: d.message_id,
        status: d.status.as_str().into(),
        attempts: d.attempts,
        next_attempt_at: d.next_attempt_at,
        last_error: d.last_error,
        created_at: d.created_at,
        delivered_at: d.delivered_at,
        digest_id: d.digest_id,
        attempt_log: attempts
            .into_iter()
            .filter(|a| a.delivery_id == d.id)
            .map(|a| AttemptOut {
                attempt: a.attempt,
                at: Timestamp::from_millis(a.at),
                outcome: a.outcome,
                status_code: a.status_code,
                latency_ms: a.latency_ms,
                error: a.error,
            })
            .collect(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Deliveries about this event: an incident or alert event, or an exam event (proctoring);
    /// both tables of the log share one id sequence.
    pub event: Option<i64>,
    /// Deliveries about an event of this table of the log: `incident` (incident and alert
    /// events) or `exam` (proctoring events).
    #[param(pattern = "^(incident|exam)$")]
    pub event_log: Option<String>,
    pub incident: Option<i64>,
    pub endpoint: Option<i64>,
    /// `email`, `webhook` or `upload`.
    #[param(pattern = "^(email|webhook|upload)$")]
    pub channel: Option<String>,
    /// `pending`, `delivered`, `failed` or `dead` (the dead-letter list).
    #[param(pattern = "^(pending|delivered|failed|dead)$")]
    pub status: Option<String>,
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub cursor: Option<String>,
    /// 1 to 200, default 50.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryOut>,
    pub next_cursor: Option<String>,
}

/// A query parameter naming one of a set of values: parsed by `parse`, or a field error listing
/// the `allowed` names.
fn named<T>(
    v: &mut Validation,
    field: &str,
    raw: Option<&str>,
    parse: fn(&str) -> Option<T>,
    allowed: &str,
) -> Option<T> {
    let raw = raw?;
    v.check(parse(raw).ok_or_else(|| FieldError::new(field, format!("must be {allowed}"))))
}

/// The delivery log, newest first: who was notified, when, and whether it arrived.
#[utoipa::path(get, path = "/api/v1/notifications/deliveries", tag = "notifications", params(DeliveryQuery),
    security(("bearer" = [])),
    responses((status = 200, body = DeliveryPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<DeliveryQuery>,
) -> ApiResult<Json<DeliveryPage>> {
    let mut v = Validation::new();
    let channel = named(
        &mut v,
        "channel",
        q.channel.as_deref(),
        Channel::parse,
        "email, webhook or upload",
    );
    let status = named(
        &mut v,
        "status",
        q.status.as_deref(),
        DeliveryStatus::parse,
        "pending, delivered, failed or dead",
    );
    let event_log = named(
        &mut v,
        "event_log",
        q.event_log.as_deref(),
        EventLog::parse,
        "incident or exam",
    );
    v.finish()?;
    let filter = DeliveryFilter {
        event_id: q.event,
        event_log,
        incident_id: q.incident,
        endpoint_id: q.endpoint,
        channel,
        status,
    };
    let page = notifications::list(
        &state.db,
        &filter,
        cursor(q.cursor.as_deref())?,
        clamp_limit(q.limit),
    )
    .await?;
    let ids: Vec<i64> = page.items.iter().map(|d| d.id).collect();
    let attempts = notifications::attempts_of(&state.db, &ids).await?;
    Ok(Json(DeliveryPage {
        items: page
            .items
            .into_iter()
            .map(|d| {
                let mine = attempts
                    .iter()
                    .filter(|a| a.delivery_id == d.id)
                    .cloned()
                    .collect();
                delivery_out(d, mine)
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One delivery with its attempts.
#[utoipa::path(get, path = "/api/v1/notifications/deliveries/{id}", params(("id" = i64, Path, description = "the delivery's id")), tag = "notifications",
    security(("bearer" = [])),
    responses((status = 200, body = DeliveryOut), (status = 404, body = Problem)))]
async fn get_delivery(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<DeliveryOut>> {
    let delivery = notifications::find(&state.db, id).await?;
    let attempts = notifications::attempts_of(&state.db, &[id]).await?;
    Ok(Json(delivery_out(delivery, attempts)))
}

/// Send a dead (or delivered) delivery again with a fresh attempt budget and the same message
/// id; a pending one is refused (409), its next attempt being queued already. A webhook whose endpoint is disabled must have the endpoint re-enabled first.
#[utoipa::path(post, path = "/api/v1/notifications/deliveries/{id}/replay", params(("id" = i64, Path, description = "the delivery's id")), tag = "notifications",
    security(("bearer" = [])),
    responses((status = 202, body = DeliveryOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn replay_delivery(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> ApiResult<(StatusCode, Json<DeliveryOut>)> {
    let delivery = notifications::find(&state.db, id).await?;
    if delivery.channel == Channel::Webhook {
        let Some(endpoint_id) = delivery.endpoint_id else {
            return Err(ApiError::conflict("its endpoint was deleted"));
        };
        if !webhooks::find(&state.db, endpoint_id).await?.enabled {
            return Err(ApiError::conflict(
                "its endpoint is disabled: enable it first",
            ));
        }
    }
    let delivery = notifications::replay(&state.db, id)
        .await
        .map_err(|e| match e {
            vigia_store::StoreError::Stale => {
                ApiError::conflict(
                    "the delivery is still pending: its next attempt is already queued (only a dead or delivered delivery can be replayed)",
                )
            }
            other => other.into(),
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(delivery_out(delivery, Vec::new())),
    ))
}
