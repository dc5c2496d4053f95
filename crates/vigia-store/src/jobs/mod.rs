//! The durable job queue: one table, `jobs`, on either backend.
//!
//! A job is one [`Task`] (its kind, the `type` tag, is also the `kind` column, so workers claim
//! only the kinds they handle; the whole tagged value is the JSON `payload`). It is enqueued with
//! [`enqueue_in`] inside the transaction of the change that causes it, so the job exists if and
//! only if the change committed, or with [`enqueue`] on its own. An optional `dedup_key` is
//! unique: enqueueing a key that exists adds nothing, which is how a handler that may run twice
//! (its lease expired while it worked) still has its effect once.
//!
//! Workers claim due jobs in batches ([`queue::claim`]): on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, on SQLite through its single writer. A claim is a lease: the job's
//! `run_at` becomes the lease expiry, heartbeats extend it, and when it passes any worker may
//! claim the job again. Results are written back in batches ([`queue::finish`]).
//!
//! States: `queued` → `running` → `succeeded`; a failed attempt → `failed` (a retry waits for
//! `run_at`) → `running` ...; no attempts left or a permanent error → `dead` (the dead-letter
//! list); an admin may `cancel` a waiting job or `retry` a dead, failed or cancelled one.

mod admin;
pub mod queue;
pub mod relay;
mod task;

pub use admin::*;
pub use task::{JobKind, ReportItem, Task, VideoRef};

use serde::Serialize;
use vigia_domain::Timestamp;

use crate::{Db, StoreResult};

/// A job's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct JobId(pub i64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Leased by a worker.
    Running,
    /// The last attempt failed; a retry waits for `run_at`.
    Failed,
    Succeeded,
    /// Out of attempts or failed permanently: the dead-letter list.
    Dead,
    /// Cancelled by an admin before it ran.
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Failed,
        JobState::Succeeded,
        JobState::Dead,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Failed => "failed",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses a state name; the error lists the valid ones.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!("must be one of: {}", names.join(", "))
            })
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    /// The tagged task, plus (for scheduled jobs) the schedule's metadata.
    pub payload: serde_json::Value,
    /// Unique: a second job with the same key is not added.
    pub dedup_key: Option<String>,
    /// Not before this time (default: now).
    pub run_at: Option<Timestamp>,
    /// Attempts before the job is dead-lettered (default: the workers' `jobs.max_attempts`).
    pub max_attempts: Option<u32>,
}

impl NewJob {
    pub fn new(task: &Task) -> Self {
        Self {
            kind: task.kind(),
            payload: task.to_json(),
            dedup_key: None,
            run_at: None,
            max_attempts: None,
        }
    }

    /// A scheduled job of `kind` (only kinds without data), with the schedule's `metadata`
    /// beside the task's tag.
    pub fn scheduled(kind: &str, metadata: serde_json::Value) -> Result<Self, String> {
        let task = JobKind::parse(kind)?.scheduled_task()?;
        let mut job = Self::new(&task);
        if let (serde_json::Value::Object(payload), serde_json::Value::Object(extra)) =
            (&mut job.payload, metadata)
        {
            payload.extend(extra);
        }
        Ok(job)
    }

    /// Adds an idempotency key: enqueueing the same key again adds nothing.
    pub fn dedup(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    pub fn run_at(mut self, at: Timestamp) -> Self {
        self.run_at = Some(at);
        self
    }

    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }
}

const INSERT_JOB: &str = "INSERT INTO jobs (kind, payload, state, dedup_key, max_attempts, run_at, created_at, updated_at) \
     VALUES ($1, $2, 'queued', $3, $4, $5, $6, $6) ON CONFLICT (dedup_key) DO NOTHING RETURNING id";

/// Enqueues `job` through `executor` — a transaction (or connection) of either backend — so the
/// job commits together with the caller's change. `None` when its `dedup_key` already exists.
///
/// On SQLite, [`enqueue_direct`] does the same on the group commit's connection:
///
/// ```ignore
/// grouped_write!(db,
///     sqlite: |conn| {
///         // ... the change ...
///         jobs::enqueue_direct(conn, &job, now)
///     },
///     postgres: |tx| {
///         // ... the change ...
///         jobs::enqueue_in(&mut *tx, &job, now).await
///     },
/// )
/// ```
pub async fn enqueue_in<'c, E, DB>(
    executor: E,
    job: &NewJob,
    now: Timestamp,
) -> StoreResult<Option<JobId>>
where
    E: sqlx::Executor<'c, Database = DB>,
    DB: sqlx::Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'a> String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Decode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<i64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let payload =
        serde_json::to_string(&job.payload).map_err(|e| crate::StoreError::Other(e.into()))?;
    let id: Option<i64> = sqlx::query_scalar::<DB, i64>(INSERT_JOB)
        .bind(job.kind.as_str().to_owned())
        .bind(payload)
        .bind(job.dedup_key.clone())
        .bind(job.max_attempts.map(i64::from))
        .bind(job.run_at.unwrap_or(now).millis())
        .bind(now.millis())
        .fetch_optional(executor)
        .await?;
    Ok(id.map(JobId))
}

/// [`enqueue_in`] on the SQLite group commit's connection.
pub(crate) fn enqueue_direct(
    conn: &crate::direct::Conn,
    job: &NewJob,
    now: Timestamp,
) -> StoreResult<Option<JobId>> {
    let payload =
        serde_json::to_string(&job.payload).map_err(|e| crate::StoreError::Other(e.into()))?;
    let id = crate::direct::query_optional(
        conn,
        INSERT_JOB,
        &[
            &job.kind.as_str(),
            &payload,
            &job.dedup_key,
            &job.max_attempts.map(i64::from),
            &job.run_at.unwrap_or(now).millis(),
            &now.millis(),
        ],
        |row| row.get::<_, i64>("id"),
    )?;
    Ok(id.map(JobId))
}

/// Enqueues one job as a write of its own (on SQLite, in the group commit: handlers enqueue
/// follow-up jobs one at a time, and each would otherwise pay a commit). `None` when its
/// `dedup_key` already exists.
#[tracing::instrument(skip_all, fields(kind = %job.kind))]
pub async fn enqueue(db: &Db, job: &NewJob, now: Timestamp) -> StoreResult<Option<JobId>> {
    let job = job.clone();
    crate::grouped_write!(db,
        sqlite: |conn| enqueue_direct(conn, &job, now),
        postgres: |conn| enqueue_in(&mut *conn, &job, now).await,
    )
}

/// Enqueues many jobs in one transaction; returns how many were added (duplicates are not).
pub async fn enqueue_batch(db: &Db, jobs: &[NewJob], now: Timestamp) -> StoreResult<usize> {
    let jobs = jobs.to_vec();
    crate::grouped_write!(db,
        sqlite: |conn| {
            let mut added = 0;
            for job in &jobs {
                if enqueue_direct(conn, job, now)?.is_some() {
                    added += 1;
                }
            }
            Ok(added)
        },
        postgres: |conn| {
            let mut added = 0;
            for job in &jobs {
                if enqueue_in(&mut *conn, job, now).await?.is_some() {
                    added += 1;
                }
            }
            Ok(added)
        },
    )
}
