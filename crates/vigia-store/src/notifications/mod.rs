//! The delivery log shared by every outbound channel (e-mail, webhooks, report uploads): one
//! row per message to one target, one row per attempt. It answers "who was notified, when,
//! and did it arrive". It is a log, not a queue: each attempt of an e-mail or webhook is a
//! `notification.deliver` job ([`crate::jobs::Task::Deliver`]), enqueued in the transaction
//! that plans the delivery ([`insert_planned`]), logs the failed attempt before it
//! ([`record_attempt`]) or replays it ([`replay`]).
//!
//! Here: the delivery as the log reads it (with the event it is about) and the log's reads;
//! [`lifecycle`]: planning, attempts, giving up, replay; [`planner_reads`]: what the planner
//! reads besides the log (an incident's summary, who opted in, a recipient's language);
//! [`digest`]: e-mails held for a recipient over their rate.

pub mod digest;
mod lifecycle;
mod planner_reads;

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::detections::AlertEventKind;

use crate::page::{Cursor, Page};
use crate::sql::{Arg, Sql, bind_args};
use crate::{Db, StoreError, StoreResult, composed, direct, direct_read};

pub use lifecycle::{
    AttemptRecord, AttemptResult, exists_for, insert_planned, mark_dead, record_attempt, replay,
};
pub use planner_reads::{
    AddressAccount, DepartmentContacts, IncidentBrief, account_of_email, department_contacts,
    incident_brief, locale_of_email, status_change_subscriber,
};

/// How a message leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Webhook,
    /// A report upload, logged here by the reports stage; the notifier never attempts these.
    Upload,
}

impl Channel {
    /// E-mails and webhooks are sent by `notification.deliver` jobs.
    pub fn is_sent(self) -> bool {
        matches!(self, Channel::Email | Channel::Webhook)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
            Channel::Upload => "upload",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "email" => Some(Channel::Email),
            "webhook" => Some(Channel::Webhook),
            "upload" => Some(Channel::Upload),
            _ => None,
        }
    }
}

/// Where a delivery stands. `failed` will be retried at `next_attempt_at`; `dead` will not
/// (until an admin replays it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            "dead" => Some(DeliveryStatus::Dead),
            _ => None,
        }
    }
}

/// A delivery to create.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub channel: Channel,
    /// The e-mail address, or the endpoint id for webhooks.
    pub target: String,
    pub endpoint_id: Option<i64>,
    /// The incident event it is about; `None` for reports and test events.
    pub event_id: Option<i64>,
    /// The exam event (proctoring) it is about, instead of an incident event.
    pub exam_event_id: Option<i64>,
    pub incident_id: Option<i64>,
    /// `incident.created`, `report`, `webhook.test`, ...
    pub message_type: String,
    /// Stable across attempts: the `webhook-id`, or the e-mail's Message-ID.
    pub message_id: String,
    /// What is sent, rendered once (JSON body for webhooks, a rendered e-mail for mail).
    pub payload: String,
}

/// One message to one target.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub channel: Channel,
    pub target: String,
    pub endpoint_id: Option<i64>,
    /// The incident or alert event it is about (`incident_events`).
    pub event_id: Option<i64>,
    /// The exam event (proctoring, `exam_events`) it is about, instead of an incident event.
    pub exam_event_id: Option<i64>,
    /// Which event of the log it is about, read with it: `None` for reports, tests and digests.
    pub event: Option<DeliveryEvent>,
    pub incident_id: Option<i64>,
    pub message_type: String,
    pub message_id: String,
    #[serde(skip)]
    pub payload: String,
    pub status: DeliveryStatus,
    /// Attempts since it was planned (or last replayed).
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    /// The digest e-mail that carries (or carried) this one, when it was held back because
    /// its recipient had had too many (see [`digest`]).
    pub digest_id: Option<i64>,
}

/// Which table of the event log an event is in. Both share one id sequence, so an event id
/// names one event whichever table holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventLog {
    /// `incident_events`: incident and alert events.
    Incident,
    /// `exam_events`: proctoring events.
    Exam,
}

impl EventLog {
    pub fn as_str(self) -> &'static str {
        match self {
            EventLog::Incident => "incident",
            EventLog::Exam => "exam",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "incident" => Some(EventLog::Incident),
            "exam" => Some(EventLog::Exam),
            _ => None,
        }
    }
}

/// The event a delivery is about, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryEvent {
    pub id: i64,
    pub log: EventLog,
    /// The event's type: `incident.created`, `alert.raised`, `media.analyzed`,
    /// `proctoring.reviewed`, ... (a delivery's message type can differ: `proctoring.alert` is
    /// sent for a `media.analyzed` event that alerts). `None` if the event is gone.
    pub message_type: Option<String>,
    /// The alert an alert event is about.
    pub alert_id: Option<i64>,
    /// The exam an exam event is about.
    pub exam_id: Option<i64>,
}

impl DeliveryEvent {
    /// From the delivery's event ids and what the log's two tables say of them.
    fn of(row: &DeliveryRow) -> Option<Self> {
        if let Some(id) = row.event_id {
            let message_type = row
                .event_kind
                .as_deref()
                .map(|kind| match row.event_alert_id {
                    Some(_) => AlertEventKind::parse(kind)
                        .map(|k| k.message_type().to_owned())
                        .unwrap_or_else(|| format!("alert.{kind}")),
                    None => format!("incident.{kind}"),
                });
            return Some(Self {
                id,
                log: EventLog::Incident,
                message_type,
                alert_id: row.event_alert_id,
                exam_id: None,
            });
        }
        row.exam_event_id.map(|id| Self {
            id,
            log: EventLog::Exam,
            message_type: row.exam_event_kind.clone(),
            alert_id: None,
            exam_id: row.exam_id,
        })
    }
}

#[derive(FromRow)]
struct DeliveryRow {
    id: i64,
    channel: String,
    target: String,
    endpoint_id: Option<i64>,
    event_id: Option<i64>,
    exam_event_id: Option<i64>,
    /// `incident_events.kind` of `event_id`.
    event_kind: Option<String>,
    event_alert_id: Option<i64>,
    /// `exam_events.kind` of `exam_event_id` (its message type).
    exam_event_kind: Option<String>,
    exam_id: Option<i64>,
    incident_id: Option<i64>,
    message_type: String,
    message_id: String,
    payload: String,
    status: String,
    attempts: i64,
    next_attempt_at: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
    delivered_at: Option<i64>,
    digest_id: Option<i64>,
}

impl DeliveryRow {
    /// A row of [`SELECT`] read on a direct SQLite connection, each column by its name.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            channel: row.get("channel")?,
            target: row.get("target")?,
            endpoint_id: row.get("endpoint_id")?,
            event_id: row.get("event_id")?,
            exam_event_id: row.get("exam_event_id")?,
            event_kind: row.get("event_kind")?,
            event_alert_id: row.get("event_alert_id")?,
            exam_event_kind: row.get("exam_event_kind")?,
            exam_id: row.get("exam_id")?,
            incident_id: row.get("incident_id")?,
            message_type: row.get("message_type")?,
            message_id: row.get("message_id")?,
            payload: row.get("payload")?,
            status: row.get("status")?,
            attempts: row.get("attempts")?,
            next_attempt_at: row.get("next_attempt_at")?,
            last_error: row.get("last_error")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
            delivered_at: row.get("delivered_at")?,
            digest_id: row.get("digest_id")?,
        })
    }
}

impl From<DeliveryRow> for Delivery {
    fn from(row: DeliveryRow) -> Self {
        Self {
            event: DeliveryEvent::of(&row),
            id: row.id,
            channel: Channel::parse(&row.channel).unwrap_or(Channel::Email),
            target: row.target,
            endpoint_id: row.endpoint_id,
            event_id: row.event_id,
            exam_event_id: row.exam_event_id,
            incident_id: row.incident_id,
            message_type: row.message_type,
            message_id: row.message_id,
            payload: row.payload,
            status: DeliveryStatus::parse(&row.status).unwrap_or(DeliveryStatus::Pending),
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at.map(Timestamp::from_millis),
            last_error: row.last_error,
            created_at: Timestamp::from_millis(row.created_at),
            updated_at: Timestamp::from_millis(row.updated_at),
            delivered_at: row.delivered_at.map(Timestamp::from_millis),
            digest_id: row.digest_id,
        }
    }
}

/// Every read of a [`Delivery`]: the row (`d`) and the event it is about, from either table
/// of the log. Continue with ` WHERE ...` on `d.` columns.
const SELECT: &str = "SELECT d.id, d.channel, d.target, d.endpoint_id, d.event_id, d.incident_id, \
     d.message_type, d.message_id, d.payload, d.status, d.attempts, d.next_attempt_at, \
     d.last_error, d.created_at, d.updated_at, d.delivered_at, d.digest_id, d.exam_event_id, \
     ie.kind AS event_kind, ie.alert_id AS event_alert_id, xe.kind AS exam_event_kind, \
     xe.exam_id AS exam_id \
     FROM notification_deliveries d \
     LEFT JOIN incident_events ie ON ie.id = d.event_id \
     LEFT JOIN exam_events xe ON xe.id = d.exam_event_id";

pub async fn find(db: &Db, id: i64) -> StoreResult<Delivery> {
    let sql = format!("{SELECT} WHERE d.id = $1");
    // A delivery is often read right after it was planned or updated: a write is answered only
    // once committed, so a reader sees it.
    let row: Option<DeliveryRow> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&id], DeliveryRow::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql))
            .bind(id)
            .fetch_optional(pool)
            .await?),
    )?;
    row.map(Delivery::from).ok_or(StoreError::NotFound)
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// About this event, of either table of the log (their ids never collide).
    pub event_id: Option<i64>,
    /// About an event of this table of the log.
    pub event_log: Option<EventLog>,
    pub incident_id: Option<i64>,
    pub endpoint_id: Option<i64>,
    pub channel: Option<Channel>,
    pub status: Option<DeliveryStatus>,
}

/// Newest first.
pub async fn list(
    db: &Db,
    filter: &DeliveryFilter,
    before: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<Delivery>> {
    let mut sql = Sql::new(&format!("{SELECT} WHERE 1 = 1"));
    fn eq(sql: &mut Sql, column: &str, arg: Arg) {
        let p = sql.arg(arg);
        sql.push(&format!(" AND {column} = {p}"));
    }
    if let Some(v) = filter.event_id {
        let p = sql.arg(Arg::I64(v));
        sql.push(&format!(" AND (d.event_id = {p} OR d.exam_event_id = {p})"));
    }
    match filter.event_log {
        Some(EventLog::Incident) => sql.push(" AND d.event_id IS NOT NULL"),
        Some(EventLog::Exam) => sql.push(" AND d.exam_event_id IS NOT NULL"),
        None => {}
    }
    if let Some(v) = filter.incident_id {
        eq(&mut sql, "d.incident_id", Arg::I64(v));
    }
    if let Some(v) = filter.endpoint_id {
        eq(&mut sql, "d.endpoint_id", Arg::I64(v));
    }
    if let Some(v) = filter.channel {
        eq(&mut sql, "d.channel", Arg::Text(v.as_str().into()));
    }
    if let Some(v) = filter.status {
        eq(&mut sql, "d.status", Arg::Text(v.as_str().into()));
    }
    if let Some(c) = before {
        let p = sql.arg(Arg::I64(c.0));
        sql.push(&format!(" AND d.id < {p}"));
    }
    sql.push(" ORDER BY d.id DESC");
    sql.limit(limit + 1);
    let rows: Vec<DeliveryRow> = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql.text, &direct::args(&sql.args), DeliveryRow::from_direct),
        postgres: |pool| Ok(bind_args!(sqlx::query_as(composed(&sql.text)), &sql.args)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(Page::from_rows(
        rows.into_iter().map(Delivery::from).collect(),
        limit,
        |d| d.id,
    ))
}

/// One logged attempt.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Attempt {
    pub id: i64,
    pub delivery_id: i64,
    pub attempt: i64,
    pub at: i64,
    pub outcome: String,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

impl Attempt {
    /// A logged attempt read on a direct SQLite connection, each column by its name.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            delivery_id: row.get("delivery_id")?,
            attempt: row.get("attempt")?,
            at: row.get("at")?,
            outcome: row.get("outcome")?,
            status_code: row.get("status_code")?,
            latency_ms: row.get("latency_ms")?,
            error: row.get("error")?,
        })
    }
}

/// The attempts of some deliveries, oldest first.
pub async fn attempts_of(db: &Db, delivery_ids: &[i64]) -> StoreResult<Vec<Attempt>> {
    const ATTEMPTS: &str = "SELECT id, delivery_id, attempt, at, outcome, status_code, latency_ms, error \
         FROM notification_attempts WHERE delivery_id = $1 ORDER BY id";
    let mut out = Vec::new();
    for &id in delivery_ids {
        let rows: Vec<Attempt> = direct_read!(db,
            sqlite: |conn| direct::query(conn, ATTEMPTS, &[&id], Attempt::from_direct),
            postgres: |pool| Ok(sqlx::query_as(ATTEMPTS).bind(id).fetch_all(pool).await?),
        )?;
        out.extend(rows);
    }
    Ok(out)
}
