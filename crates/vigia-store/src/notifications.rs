//! The delivery log shared by every outbound channel (e-mail, webhooks, report uploads): one
//! row per message to one target, one row per attempt. It answers "who was notified, when,
//! and did it arrive". It is a log, not a queue: each attempt of an e-mail or webhook is a
//! `notification.deliver` job ([`crate::jobs::Task::Deliver`]), enqueued in the transaction
//! that plans the delivery ([`insert_planned`]), logs the failed attempt before it
//! ([`record_attempt`]) or replays it ([`replay`]). Also the few reads the planner needs (an
//! incident's summary, who opted in, a recipient's language).

pub mod digest;

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::detections::AlertEventKind;

use crate::jobs::{NewJob, Task, enqueue_direct, enqueue_in};
use crate::page::{Cursor, Page};
use crate::sql::{Arg, Sql, bind_args};
use crate::{Db, StoreError, StoreResult, composed, direct, on_reader, on_writer};

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

/// The job of attempt `attempt` of delivery `id`, due at `at`.
fn attempt_job(id: i64, attempt: u32, at: Timestamp) -> NewJob {
    NewJob::new(&Task::Deliver {
        delivery_id: id,
        attempt,
    })
    .run_at(at)
}

/// Creates the deliveries that do not exist yet, each with the job of its first attempt in
/// the same transaction, and returns the ids of all of them, in order. Idempotent per (event,
/// channel, target): planning the same event twice creates nothing new.
pub async fn insert_planned(db: &Db, planned: &[NewDelivery]) -> StoreResult<Vec<i64>> {
    if planned.is_empty() {
        return Ok(Vec::new());
    }
    let at = Timestamp::now();
    let now = at.millis();
    let planned = planned.to_vec();
    // One write for all of an event's deliveries; on SQLite in the group commit, where the
    // deliveries planned by concurrent jobs share a commit.
    crate::grouped_write!(db,
        sqlite: |conn| {
            let mut ids = Vec::with_capacity(planned.len());
            for d in &planned {
                let args: [&dyn rusqlite::ToSql; 10] = [
                    &d.channel.as_str(),
                    &d.target,
                    &d.endpoint_id,
                    &d.event_id,
                    &d.incident_id,
                    &d.message_type,
                    &d.message_id,
                    &d.payload,
                    &now,
                    &d.exam_event_id,
                ];
                let inserted = direct::query_optional(conn, INSERT_DELIVERY, &args, |r| r.get(0))?;
                if let (Some(id), true) = (inserted, d.channel.is_sent()) {
                    enqueue_direct(conn, &attempt_job(id, 1, at), at)?;
                }
                let id = match inserted {
                    Some(id) => Some(id),
                    None => direct::query_optional(
                        conn,
                        EXISTING_DELIVERY,
                        &[&d.event_id, &d.channel.as_str(), &d.target, &d.exam_event_id],
                        |r| r.get(0),
                    )?,
                };
                ids.push(id.ok_or_else(|| collided(d))?);
            }
            Ok(ids)
        },
        postgres: |conn| {
            let mut ids = Vec::with_capacity(planned.len());
            for d in &planned {
                let inserted: Option<i64> = sqlx::query_scalar(INSERT_DELIVERY)
                    .bind(d.channel.as_str())
                    .bind(&d.target)
                    .bind(d.endpoint_id)
                    .bind(d.event_id)
                    .bind(d.incident_id)
                    .bind(&d.message_type)
                    .bind(&d.message_id)
                    .bind(&d.payload)
                    .bind(now)
                    .bind(d.exam_event_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                if let (Some(id), true) = (inserted, d.channel.is_sent()) {
                    enqueue_in(&mut *conn, &attempt_job(id, 1, at), at).await?;
                }
                let id = match inserted {
                    Some(id) => Some(id),
                    None => sqlx::query_scalar(EXISTING_DELIVERY)
                        .bind(d.event_id)
                        .bind(d.channel.as_str())
                        .bind(&d.target)
                        .bind(d.exam_event_id)
                        .fetch_optional(&mut *conn)
                        .await?,
                };
                ids.push(id.ok_or_else(|| collided(d))?);
            }
            Ok(ids)
        },
    )
}

const INSERT_DELIVERY: &str = "INSERT INTO notification_deliveries (channel, target, endpoint_id, event_id, \
     incident_id, message_type, message_id, payload, status, attempts, next_attempt_at, created_at, updated_at, \
     exam_event_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $9, $9, $10) \
     ON CONFLICT DO NOTHING RETURNING id";
/// The delivery of an event (incident `$1` or exam `$4`) on a channel to a target.
const EXISTING_DELIVERY: &str = "SELECT id FROM notification_deliveries \
     WHERE channel = $2 AND target = $3 AND (event_id = $1 OR exam_event_id = $4)";

fn collided(d: &NewDelivery) -> StoreError {
    StoreError::Other(anyhow::anyhow!(
        "delivery {} collided with another message id",
        d.message_id
    ))
}

/// True when the event already has a planned delivery on `channel` to `target`.
pub async fn exists_for(
    db: &Db,
    event_id: i64,
    channel: Channel,
    target: &str,
) -> StoreResult<bool> {
    let n: i64 = on_reader!(db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM notification_deliveries \
         WHERE event_id = $1 AND channel = $2 AND target = $3"
    )
    .bind(event_id)
    .bind(channel.as_str())
    .bind(target)
    .fetch_one(pool)
    .await?);
    Ok(n > 0)
}

pub async fn find(db: &Db, id: i64) -> StoreResult<Delivery> {
    let sql = format!("{SELECT} WHERE d.id = $1");
    // Read through the writer: a delivery is often read right after it was planned or updated.
    let row: Option<DeliveryRow> = on_writer!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(id)
        .fetch_optional(pool)
        .await?);
    row.map(Delivery::from).ok_or(StoreError::NotFound)
}

/// How one attempt ended, as the log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    Delivered,
    /// Failed; another attempt follows.
    Retry,
    /// Failed; no further attempt.
    Failed,
}

impl AttemptResult {
    fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Delivered => "delivered",
            AttemptResult::Retry => "retry",
            AttemptResult::Failed => "failed",
        }
    }
}

/// One attempt to log.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub at: Timestamp,
    pub result: AttemptResult,
    /// HTTP status, or the SMTP reply code.
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// For `Retry`: when the next attempt is due.
    pub next_attempt_at: Option<Timestamp>,
}

/// Logs an attempt and moves the delivery on (delivered, failed with a next time, or dead),
/// in one transaction with the job of the next attempt (for `Retry`): a failed attempt is
/// never left without its retry, even if the process dies right after. A delivered digest
/// marks the e-mails it carried delivered in the same transaction.
pub async fn record_attempt(db: &Db, id: i64, record: &AttemptRecord) -> StoreResult<()> {
    let status = match record.result {
        AttemptResult::Delivered => DeliveryStatus::Delivered,
        AttemptResult::Retry => DeliveryStatus::Failed,
        AttemptResult::Failed => DeliveryStatus::Dead,
    };
    let now = Timestamp::now().millis();
    let delivered_at = (status == DeliveryStatus::Delivered).then_some(record.at.millis());
    let sql = "UPDATE notification_deliveries SET status = $2, attempts = attempts + 1, \
         next_attempt_at = $3, last_error = $4, updated_at = $5, \
         delivered_at = COALESCE($6, delivered_at) WHERE id = $1 RETURNING attempts";
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let attempts: i64 = sqlx::query_scalar(sql)
            .bind(id)
            .bind(status.as_str())
            .bind(record.next_attempt_at.map(Timestamp::millis))
            .bind(&record.error)
            .bind(now)
            .bind(delivered_at)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        sqlx::query(
            "INSERT INTO notification_attempts (delivery_id, attempt, at, outcome, status_code, \
             latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(attempts)
        .bind(record.at.millis())
        .bind(record.result.as_str())
        .bind(record.status_code)
        .bind(record.latency_ms)
        .bind(&record.error)
        .execute(&mut *tx)
        .await?;
        if let Some(at) = delivered_at {
            // A digest delivered: so are the e-mails it carried.
            sqlx::query(digest::MARK_CARRIED_DELIVERED)
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        if let (AttemptResult::Retry, Some(next)) = (record.result, record.next_attempt_at) {
            let attempt = u32::try_from(attempts + 1).unwrap_or(u32::MAX);
            enqueue_in(
                &mut *tx,
                &attempt_job(id, attempt, next),
                Timestamp::from_millis(now),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    })
}

/// Gives a delivery up without an attempt (its endpoint was disabled or deleted).
pub async fn mark_dead(db: &Db, id: i64, reason: &str) -> StoreResult<()> {
    let now = Timestamp::now().millis();
    on_writer!(db, |pool| sqlx::query(
        "UPDATE notification_deliveries SET status = 'dead', \
         next_attempt_at = NULL, last_error = $2, updated_at = $3 WHERE id = $1"
    )
    .bind(id)
    .bind(reason)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected());
    Ok(())
}

/// Puts a dead (or delivered) delivery back in line with a fresh attempt budget and the job
/// of its first new attempt, in one transaction. The message id stays the same, so receivers
/// can still tell a replay from a new message. Refused (`Stale`) while the delivery is pending
/// or failed: its next attempt is already queued.
pub async fn replay(db: &Db, id: i64) -> StoreResult<Delivery> {
    let at = Timestamp::now();
    let now = at.millis();
    let sql = "UPDATE notification_deliveries SET status = 'pending', attempts = 0, \
         next_attempt_at = $2, last_error = NULL, updated_at = $2, digest_id = NULL \
         WHERE id = $1 AND status IN ('dead', 'delivered') \
         AND channel IN ('email', 'webhook') RETURNING id";
    let replayed: Option<i64> = on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let replayed: Option<i64> = sqlx::query_scalar(sql)
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        if replayed.is_some() {
            enqueue_in(&mut *tx, &attempt_job(id, 1, at), at).await?;
        }
        tx.commit().await?;
        replayed
    });
    let delivery = find(db, id).await?;
    match replayed {
        Some(_) => Ok(delivery),
        None => Err(StoreError::Stale),
    }
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
    let rows: Vec<DeliveryRow> = on_reader!(db, |pool| bind_args!(
        sqlx::query_as(composed(&sql.text)),
        &sql.args
    )
    .fetch_all(pool)
    .await?);
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

/// The attempts of some deliveries, oldest first.
pub async fn attempts_of(db: &Db, delivery_ids: &[i64]) -> StoreResult<Vec<Attempt>> {
    let mut out = Vec::new();
    for id in delivery_ids {
        let rows: Vec<Attempt> = on_reader!(db, |pool| sqlx::query_as(
            "SELECT id, delivery_id, attempt, at, outcome, status_code, latency_ms, error \
             FROM notification_attempts WHERE delivery_id = $1 ORDER BY id"
        )
        .bind(*id)
        .fetch_all(pool)
        .await?);
        out.extend(rows);
    }
    Ok(out)
}

// --- what the planner reads ---------------------------------------------------------------------

/// What a notification says about an incident. Read without a caller scope: only the
/// notification planner uses it, never a request handler.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct IncidentBrief {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub status: String,
    pub urgency: String,
    pub department_id: Option<i64>,
    pub department_name: Option<String>,
    pub category_es: String,
    pub category_en: String,
    pub location_text: Option<String>,
    pub reporter_id: Option<i64>,
    pub visibility: String,
    pub created_at: i64,
}

const INCIDENT_BRIEF: &str = "SELECT i.id, i.title, i.description, i.status, i.urgency, i.department_id, \
     d.name AS department_name, c.name_es AS category_es, c.name_en AS category_en, \
     i.location_text, i.reporter_id, i.visibility, i.created_at \
     FROM incidents i JOIN categories c ON c.id = i.category_id \
     LEFT JOIN departments d ON d.id = i.department_id WHERE i.id = $1";

impl IncidentBrief {
    /// A row of [`INCIDENT_BRIEF`] read on a direct connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            title: row.get(1)?,
            description: row.get(2)?,
            status: row.get(3)?,
            urgency: row.get(4)?,
            department_id: row.get(5)?,
            department_name: row.get(6)?,
            category_es: row.get(7)?,
            category_en: row.get(8)?,
            location_text: row.get(9)?,
            reporter_id: row.get(10)?,
            visibility: row.get(11)?,
            created_at: row.get(12)?,
        })
    }
}

/// Hot: every `event.dispatch` job reads its incident here.
pub async fn incident_brief(db: &Db, incident_id: i64) -> StoreResult<IncidentBrief> {
    let row: Option<IncidentBrief> = crate::direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, INCIDENT_BRIEF, &[&incident_id], IncidentBrief::from_direct),
        postgres: |pool| Ok(sqlx::query_as(INCIDENT_BRIEF)
            .bind(incident_id)
            .fetch_optional(pool)
            .await?),
    )?;
    row.ok_or(StoreError::NotFound)
}

/// A department's addresses for notifications.
#[derive(Debug, Clone)]
pub struct DepartmentContacts {
    pub name: String,
    pub contact_emails: Vec<String>,
    pub escalation_emails: Vec<String>,
}

pub async fn department_contacts(db: &Db, department_id: i64) -> StoreResult<DepartmentContacts> {
    let sql = "SELECT name, contact_emails, escalation_emails FROM departments WHERE id = $1";
    let row: Option<(String, String, String)> = crate::direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, sql, &[&department_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        }),
        postgres: |pool| Ok(sqlx::query_as(sql)
            .bind(department_id)
            .fetch_optional(pool)
            .await?),
    )?;
    let (name, contacts, escalation) = row.ok_or(StoreError::NotFound)?;
    Ok(DepartmentContacts {
        name,
        contact_emails: serde_json::from_str(&contacts).unwrap_or_default(),
        escalation_emails: serde_json::from_str(&escalation).unwrap_or_default(),
    })
}

/// A user who asked to hear about status changes: their address and language, if they are
/// enabled and opted in.
pub async fn status_change_subscriber(
    db: &Db,
    user_id: i64,
) -> StoreResult<Option<(String, String)>> {
    let row: Option<(String, String)> = on_reader!(db, |pool| {
        sqlx::query_as(
        "SELECT email, locale FROM users WHERE id = $1 AND notify_status_changes AND NOT disabled"
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?
    });
    Ok(row)
}

/// The language of the account with this address (`es` or `en`), if there is one.
pub async fn locale_of_email(db: &Db, email: &str) -> StoreResult<Option<String>> {
    let locale: Option<String> = on_reader!(db, |pool| sqlx::query_scalar(
        "SELECT locale FROM users WHERE LOWER(email) = LOWER($1)"
    )
    .bind(email)
    .fetch_optional(pool)
    .await?);
    Ok(locale)
}

/// The account behind an address, as far as who may receive what cares.
#[derive(Debug, Clone)]
pub struct AddressAccount {
    pub user_id: vigia_domain::ids::UserId,
    pub disabled: bool,
    pub role: vigia_domain::users::Role,
    pub departments: Vec<vigia_domain::ids::DepartmentId>,
}

/// The account with this address, if there is one.
pub async fn account_of_email(db: &Db, email: &str) -> StoreResult<Option<AddressAccount>> {
    let row: Option<(i64, String, bool)> = on_reader!(db, |pool| sqlx::query_as(
        "SELECT id, role, disabled FROM users WHERE LOWER(email) = LOWER($1)"
    )
    .bind(email)
    .fetch_optional(pool)
    .await?);
    let Some((id, role, disabled)) = row else {
        return Ok(None);
    };
    let departments: Vec<i64> = on_reader!(db, |pool| sqlx::query_scalar(
        "SELECT department_id FROM department_members WHERE user_id = $1 ORDER BY department_id"
    )
    .bind(id)
    .fetch_all(pool)
    .await?);
    Ok(Some(AddressAccount {
        user_id: vigia_domain::ids::UserId(id),
        disabled,
        role: vigia_domain::users::Role::parse("role", &role)
            .unwrap_or(vigia_domain::users::Role::Reporter),
        departments: departments
            .into_iter()
            .map(vigia_domain::ids::DepartmentId)
            .collect(),
    }))
}
