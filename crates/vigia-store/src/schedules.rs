//! Schedules and their run history.
//!
//! The configuration says which schedules exist ([`sync`]); the `schedules` row keeps each one's
//! next due time. A tick fires a due schedule with a compare-and-set on that time
//! (`UPDATE ... WHERE next_run_at = $seen`), in the same transaction that enqueues its job and
//! records the run: when several nodes tick at once, exactly one update matches, so a schedule
//! fires once across the cluster (PostgreSQL re-checks the condition after the winner commits;
//! SQLite has one writer).

use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;
use vigia_domain::Timestamp;

use crate::jobs::{JobId, NewJob, enqueue_in};
use crate::page::{Cursor, Page};
use crate::{Db, StoreError, StoreResult, on_reader, on_writer};

/// A schedule as stored.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Schedule {
    pub name: String,
    /// The job kind it enqueues.
    pub kind: String,
    pub cron: String,
    /// From the configuration.
    pub enabled: bool,
    /// Paused by an admin.
    pub paused: bool,
    #[sqlx(try_from = "i64")]
    pub next_run_at: Timestamp,
    #[sqlx(try_from = "Option<i64>")]
    pub last_run_at: OptionalTimestamp,
    #[sqlx(try_from = "i64")]
    pub updated_at: Timestamp,
}

/// A nullable timestamp column.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct OptionalTimestamp(pub Option<Timestamp>);

impl From<Option<i64>> for OptionalTimestamp {
    fn from(v: Option<i64>) -> Self {
        Self(v.map(Timestamp::from_millis))
    }
}

/// What the configuration says about a schedule.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    pub name: String,
    pub kind: String,
    pub cron: String,
    pub enabled: bool,
    /// The next time the cron expression fires after now (used for a new or changed schedule).
    pub next_run_at: Timestamp,
}

const COLUMNS: &str = "name, kind, cron, enabled, paused, next_run_at, last_run_at, updated_at";

/// Writes the configured schedules: new ones are added, changed ones updated (a changed cron
/// expression resets the next due time; an unchanged one keeps it, so a restart neither skips
/// nor repeats a run), and schedules no longer configured are disabled. The admin's pause
/// survives.
pub async fn sync(db: &Db, specs: &[ScheduleSpec], now: Timestamp) -> StoreResult<()> {
    let upsert = "INSERT INTO schedules (name, kind, cron, enabled, paused, next_run_at, updated_at) \
                  VALUES ($1, $2, $3, $4, FALSE, $5, $6) \
                  ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, enabled = excluded.enabled, \
                  next_run_at = CASE WHEN schedules.cron = excluded.cron THEN schedules.next_run_at \
                                     ELSE excluded.next_run_at END, \
                  cron = excluded.cron, updated_at = excluded.updated_at";
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        for spec in specs {
            sqlx::query(upsert)
                .bind(&spec.name)
                .bind(&spec.kind)
                .bind(&spec.cron)
                .bind(spec.enabled)
                .bind(spec.next_run_at.millis())
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
        }
        let existing: Vec<String> = sqlx::query_scalar("SELECT name FROM schedules WHERE enabled")
            .fetch_all(&mut *tx)
            .await?;
        for gone in existing.iter().filter(|n| !names.contains(n)) {
            sqlx::query("UPDATE schedules SET enabled = FALSE, updated_at = $2 WHERE name = $1")
                .bind(gone)
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    })
}

/// Every schedule, by name.
pub async fn list(db: &Db) -> StoreResult<Vec<Schedule>> {
    let sql = format!("SELECT {COLUMNS} FROM schedules ORDER BY name");
    Ok(on_reader!(db, |pool| sqlx::query_as(crate::composed(&sql))
        .fetch_all(pool)
        .await?))
}

/// One schedule.
pub async fn find(db: &Db, name: &str) -> StoreResult<Schedule> {
    let sql = format!("SELECT {COLUMNS} FROM schedules WHERE name = $1");
    let row: Option<Schedule> = on_reader!(db, |pool| sqlx::query_as(crate::composed(&sql))
        .bind(name)
        .fetch_optional(pool)
        .await?);
    row.ok_or(StoreError::NotFound)
}

/// Enabled, unpaused schedules due at `now`.
pub async fn due(db: &Db, now: Timestamp) -> StoreResult<Vec<Schedule>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM schedules WHERE enabled AND NOT paused AND next_run_at <= $1 ORDER BY name"
    );
    Ok(on_writer!(db, |pool| sqlx::query_as(crate::composed(&sql))
        .bind(now.millis())
        .fetch_all(pool)
        .await?))
}

/// The payload of a scheduled job.
fn payload(name: &str, scheduled_for: Timestamp, trigger: &str) -> serde_json::Value {
    json!({ "schedule": name, "scheduled_for": scheduled_for.millis(), "trigger": trigger })
}

/// The job a schedule of `kind` enqueues; an error names a kind that cannot be scheduled.
fn scheduled_job(kind: &str, metadata: serde_json::Value) -> StoreResult<NewJob> {
    NewJob::scheduled(kind, metadata)
        .map_err(|e| StoreError::Other(anyhow::anyhow!("schedule kind: {e}")))
}

const INSERT_RUN: &str = "INSERT INTO schedule_runs (schedule, triggered_by, scheduled_for, job_id, status, created_at) \
     VALUES ($1, $2, $3, $4, 'queued', $5) RETURNING id";

/// Fires `schedule` if it is still due at `seen` (its `next_run_at` as read): moves its next due
/// time to `next`, enqueues its job and records the run, in one transaction. `None` when another
/// node fired it first (or it was paused meanwhile).
pub async fn fire(
    db: &Db,
    schedule: &Schedule,
    next: Timestamp,
    now: Timestamp,
) -> StoreResult<Option<(i64, JobId)>> {
    let seen = schedule.next_run_at;
    let job = scheduled_job(&schedule.kind, payload(&schedule.name, seen, "cron"))?.dedup(format!(
        "schedule:{}:{}",
        schedule.name,
        seen.millis()
    ));
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let won = sqlx::query(
            "UPDATE schedules SET next_run_at = $3, last_run_at = $4 \
             WHERE name = $1 AND next_run_at = $2 AND enabled AND NOT paused",
        )
        .bind(&schedule.name)
        .bind(seen.millis())
        .bind(next.millis())
        .bind(now.millis())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !won {
            return Ok(None);
        }
        let Some(job_id) = enqueue_in(&mut *tx, &job, now).await? else {
            // Already enqueued for this due time: only the due time needed moving.
            tx.commit().await?;
            return Ok(None);
        };
        let run: i64 = sqlx::query_scalar(INSERT_RUN)
            .bind(&schedule.name)
            .bind("cron")
            .bind(seen.millis())
            .bind(job_id.0)
            .bind(now.millis())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some((run, job_id)))
    })
}

/// Runs `name` now, outside its timetable (its next due time does not change).
pub async fn run_now(db: &Db, name: &str, now: Timestamp) -> StoreResult<ScheduleRun> {
    let schedule = find(db, name).await?;
    let job = scheduled_job(&schedule.kind, payload(name, now, "manual"))?;
    let run_id = on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let job_id = enqueue_in(&mut *tx, &job, now)
            .await?
            .ok_or(StoreError::Duplicate { field: "job" })?;
        let run: i64 = sqlx::query_scalar(INSERT_RUN)
            .bind(name)
            .bind("manual")
            .bind(now.millis())
            .bind(job_id.0)
            .bind(now.millis())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        run
    });
    find_run(db, run_id).await
}

/// Pauses or resumes a schedule (an admin's choice; kept across restarts).
pub async fn set_paused(
    db: &Db,
    name: &str,
    paused: bool,
    now: Timestamp,
) -> StoreResult<Schedule> {
    let sql = "UPDATE schedules SET paused = $2, updated_at = $3 WHERE name = $1";
    let n = on_writer!(db, |pool| sqlx::query(sql)
        .bind(name)
        .bind(paused)
        .bind(now.millis())
        .execute(pool)
        .await?
        .rows_affected());
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    find(db, name).await
}

/// One run of a schedule.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ScheduleRun {
    pub id: i64,
    pub schedule: String,
    /// `cron` or `manual`.
    pub triggered_by: String,
    #[sqlx(try_from = "i64")]
    pub scheduled_for: Timestamp,
    pub job_id: Option<i64>,
    /// `queued`, `running`, `retrying`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    #[sqlx(try_from = "Option<i64>")]
    pub started_at: OptionalTimestamp,
    #[sqlx(try_from = "Option<i64>")]
    pub finished_at: OptionalTimestamp,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    #[sqlx(try_from = "i64")]
    pub created_at: Timestamp,
}

const RUN_COLUMNS: &str = "id, schedule, triggered_by, scheduled_for, job_id, status, started_at, finished_at, \
     duration_ms, error, created_at";

async fn find_run(db: &Db, id: i64) -> StoreResult<ScheduleRun> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM schedule_runs WHERE id = $1");
    let row: Option<ScheduleRun> = on_writer!(db, |pool| sqlx::query_as(crate::composed(&sql))
        .bind(id)
        .fetch_optional(pool)
        .await?);
    row.ok_or(StoreError::NotFound)
}

/// The runs of `name`, newest first.
pub async fn runs(
    db: &Db,
    name: &str,
    after: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<ScheduleRun>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM schedule_runs WHERE schedule = $1 AND id < $2 ORDER BY id DESC{}",
        crate::sql::limit(limit + 1)
    );
    let rows: Vec<ScheduleRun> = on_reader!(db, |pool| sqlx::query_as(crate::composed(&sql))
        .bind(name)
        .bind(after.map_or(i64::MAX, |c| c.0))
        .fetch_all(pool)
        .await?);
    Ok(Page::from_rows(rows, limit, |r| r.id))
}

/// Deletes run history recorded before `before`.
pub async fn purge_runs(db: &Db, before: Timestamp) -> StoreResult<u64> {
    let sql = "DELETE FROM schedule_runs WHERE created_at < $1 AND finished_at IS NOT NULL";
    Ok(on_writer!(db, |pool| sqlx::query(sql)
        .bind(before.millis())
        .execute(pool)
        .await?
        .rows_affected()))
}
