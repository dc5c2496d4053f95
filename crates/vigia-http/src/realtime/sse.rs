//! `GET /api/v1/stream`: the same messages as Server-Sent Events.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use utoipa::IntoParams;
use vigia_domain::ids::EventId;

use super::StreamAuth;
use super::hub::Outlet;
use super::protocol::{Frame, Topics, control, parse_event_id};
use super::session::{self, Incoming, Subscribe, Transport};
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated topics: `incidents` (default), `department:<id>`, `incident:<id>`,
    /// `alerts`, `detections`, `reports`, `proctoring` (every exam you may see), `exam:<id>`,
    /// `competitions` (every competition's video processing), `competition:<id>`.
    pub topics: Option<String>,
    /// Resume after this event id (the `Last-Event-ID` header wins when both are sent).
    pub last_event_id: Option<String>,
}

/// Real-time messages as Server-Sent Events.
///
/// Each event's `data:` is the same JSON envelope `/ws` sends; events carry their id in the
/// SSE `id:` field, so a reconnecting `EventSource` resumes with `Last-Event-ID` and first
/// receives what it missed. Authenticate with `Authorization: Bearer`, `X-Api-Key`, or the
/// session cookie (`EventSource` sends it on same-origin pages).
#[utoipa::path(get, path = "/api/v1/stream", tag = "realtime", params(StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    security(("bearer" = [])),
    responses(
        (status = 200, content_type = "text/event-stream", description = "A stream of `{type, id, ts, data}` messages"),
        (status = 400, body = crate::error::Problem),
        (status = 401, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem, description = "Too many connections for this user"),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    StreamAuth(credential): StreamAuth,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> ApiResult<Response> {
    let topics = Topics::parse(
        &q.topics
            .as_deref()
            .unwrap_or("incidents")
            .split(',')
            .filter(|t| !t.trim().is_empty())
            .collect::<Vec<_>>(),
    )
    .map_err(|detail| ApiError::BadRequest { detail })?;
    let raw_last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.last_event_id);
    let last_event_id: Option<EventId> =
        match raw_last.filter(|s| !s.trim().is_empty()) {
            None => None,
            Some(raw) => Some(parse_event_id(&serde_json::Value::String(raw)).ok_or_else(
                || ApiError::BadRequest {
                    detail: "Last-Event-ID must be an event id such as 1234".into(),
                },
            )?),
        };
    let hub = state.realtime.clone();
    let admission = hub
        .admit(credential.principal().clone())
        .map_err(super::refused)?;
    let (outlet, queue) = Outlet::queue(hub.config.queue_capacity);
    let registration = admission.register(outlet);
    let (tx, mut out) = mpsc::channel::<Event>(16);
    let watch = tx.clone();
    // SSE clients send nothing; the "incoming" stream just ends when the client goes away.
    let gone = futures::stream::once(async move { watch.closed().await })
        .filter_map(|()| async { None::<Incoming> })
        .boxed();
    tokio::spawn(session::run(
        hub,
        registration,
        SseTransport {
            body: tx,
            queue,
            batch: Vec::new(),
        },
        gone,
        Some(Subscribe {
            topics,
            last_event_id,
        }),
        credential,
    ));
    let body = futures::stream::poll_fn(move |cx| out.poll_recv(cx)).map(Ok::<_, Infallible>);
    Ok(Sse::new(body).into_response())
}

/// Frames written per turn at most.
const WRITE_BATCH: usize = 64;

struct SseTransport {
    /// The response body.
    body: mpsc::Sender<Event>,
    /// What the hub queued for this connection.
    queue: mpsc::Receiver<Frame>,
    /// Taken from `queue`, not written yet.
    batch: Vec<Frame>,
}

impl SseTransport {
    async fn send(&mut self, frame: &Frame) -> Result<(), ()> {
        let mut event = Event::default().data(&*frame.text);
        if let Some(id) = frame.id {
            event = event.id(id.0.to_string());
        }
        self.body.send(event).await.map_err(|_| ())
    }
}

impl Transport for SseTransport {
    async fn backlog(&mut self) -> bool {
        if !self.batch.is_empty() {
            return true;
        }
        self.queue.recv_many(&mut self.batch, WRITE_BATCH).await > 0
    }

    async fn drain(&mut self) -> Result<u64, ()> {
        let frames = std::mem::take(&mut self.batch);
        for frame in &frames {
            self.send(frame).await?;
        }
        Ok(frames.len() as u64)
    }

    async fn write(&mut self, frames: Vec<Frame>) -> Result<(), ()> {
        for frame in &frames {
            self.send(frame).await?;
        }
        Ok(())
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = control(
            "closed",
            Some(serde_json::json!({ "code": code, "reason": reason })),
        );
        let _ = self.send(&frame).await;
    }
}
