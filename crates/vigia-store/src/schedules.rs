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

use crate::jobs::{JobId, NewJob, enqueue_direct, enqueue_in};
use crate::page::{Cursor, Page};
use crate::{Db, StoreError, StoreResult, direct, direct_read, grouped_write};

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

/// The columns of [`Schedule`], as a literal for the statements below.
macro_rules! columns {
    () => {
        "name, kind, cron, enabled, paused, next_run_at, last_run_at, updated_at"
    };
}

impl Schedule {
    /// A row of `columns!()` read on a direct SQLite connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            name: row.get("name")?,
            kind: row.get("kind")?,
            cron: row.get("cron")?,
            enabled: row.get("enabled")?,
            paused: row.get("paused")?,
            next_run_at: Timestamp::from_millis(row.get("next_run_at")?),
            last_run_at: OptionalTimestamp::from(row.get::<_, Option<i64>>("last_run_at")?),
            updated_at: Timestamp::from_millis(row.get("updated_at")?),
        })
    }
}

const UPSERT: &str = "INSERT INTO schedules (name, kind, cron, enabled, paused, next_run_at, updated_at) \
     VALUES ($1, $2, $3, $4, FALSE, $5, $6) \
     ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, enabled = excluded.enabled, \
     next_run_at = CASE WHEN schedules.cron = excluded.cron THEN schedules.next_run_at \
                        ELSE excluded.next_run_at END, \
     cron = excluded.cron, updated_at = excluded.updated_at";
const ENABLED_NAMES: &str = "SELECT name FROM schedules WHERE enabled";
const DISABLE: &str = "UPDATE schedules SET enabled = FALSE, updated_at = $2 WHERE name = $1";
const LIST: &str = concat!("SELECT ", columns!(), " FROM schedules ORDER BY name");
const FIND: &str = concat!("SELECT ", columns!(), " FROM schedules WHERE name = $1");
const DUE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM schedules WHERE enabled AND NOT paused AND next_run_at <= $1 ORDER BY name"
);
/// Moves a schedule's due time from `$2` (as read) to `$3`, only if it is still `$2`.
const ADVANCE: &str = "UPDATE schedules SET next_run_at = $3, last_run_at = $4 \
     WHERE name = $1 AND next_run_at = $2 AND enabled AND NOT paused";
const SET_PAUSED: &str = "UPDATE schedules SET paused = $2, updated_at = $3 WHERE name = $1";

/// Writes the configured schedules: new ones are added, changed ones updated (a changed cron
/// expression resets the next due time; an unchanged one keeps it, so a restart neither skips
/// nor repeats a run), and schedules no longer configured are disabled. The admin's pause
/// survives.
pub async fn sync(db: &Db, specs: &[ScheduleSpec], now: Timestamp) -> StoreResult<()> {
    let specs = specs.to_vec();
    let now = now.millis();
    grouped_write!(db,
        sqlite: |conn| {
            for spec in &specs {
                direct::execute(
                    conn,
                    UPSERT,
                    &[&spec.name, &spec.kind, &spec.cron, &spec.enabled, &spec.next_run_at.millis(), &now],
                )?;
            }
            let existing: Vec<String> = direct::query(conn, ENABLED_NAMES, &[], |r| r.get("name"))?;
            for gone in existing.iter().filter(|n| !specs.iter().any(|s| &s.name == *n)) {
                direct::execute(conn, DISABLE, &[gone, &now])?;
            }
            Ok(())
        },
        postgres: |tx| {
            for spec in &specs {
                sqlx::query(UPSERT)
                    .bind(&spec.name)
                    .bind(&spec.kind)
                    .bind(&spec.cron)
                    .bind(spec.enabled)
                    .bind(spec.next_run_at.millis())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            let existing: Vec<String> =
                sqlx::query_scalar(ENABLED_NAMES).fetch_all(&mut *tx).await?;
            for gone in existing.iter().filter(|n| !specs.iter().any(|s| &s.name == *n)) {
                sqlx::query(DISABLE)
                    .bind(gone)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        },
    )
}

/// Every schedule, by name.
pub async fn list(db: &Db) -> StoreResult<Vec<Schedule>> {
    direct_read!(db,
        sqlite: |conn| direct::query(conn, LIST, &[], Schedule::from_direct),
        postgres: |pool| Ok(sqlx::query_as(LIST).fetch_all(pool).await?),
    )
}

fn find_direct(conn: &direct::Conn, name: &str) -> StoreResult<Schedule> {
    direct::query_optional(conn, FIND, &[&name], Schedule::from_direct)?.ok_or(StoreError::NotFound)
}

async fn find_postgres(executor: impl sqlx::PgExecutor<'_>, name: &str) -> StoreResult<Schedule> {
    let row: Option<Schedule> = sqlx::query_as(FIND)
        .bind(name)
        .fetch_optional(executor)
        .await?;
    row.ok_or(StoreError::NotFound)
}

/// One schedule.
pub async fn find(db: &Db, name: &str) -> StoreResult<Schedule> {
    let name = name.to_owned();
    direct_read!(db,
        sqlite: |conn| find_direct(conn, &name),
        postgres: |pool| find_postgres(pool, &name).await,
    )
}

/// Enabled, unpaused schedules due at `now`.
pub async fn due(db: &Db, now: Timestamp) -> StoreResult<Vec<Schedule>> {
    let now = now.millis();
    direct_read!(db,
        sqlite: |conn| direct::query(conn, DUE, &[&now], Schedule::from_direct),
        postgres: |pool| Ok(sqlx::query_as(DUE).bind(now).fetch_all(pool).await?),
    )
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
    let seen = schedule.next_run_at.millis();
    let job = scheduled_job(
        &schedule.kind,
        payload(&schedule.name, schedule.next_run_at, "cron"),
    )?
    .dedup(format!("schedule:{}:{}", schedule.name, seen));
    let (name, next, at) = (schedule.name.clone(), next.millis(), now.millis());
    grouped_write!(db,
        sqlite: |conn| {
            if direct::execute(conn, ADVANCE, &[&name, &seen, &next, &at])? != 1 {
                return Ok(None);
            }
            // `None`: already enqueued for this due time; only the due time needed moving.
            let Some(job_id) = enqueue_direct(conn, &job, now)? else {
                return Ok(None);
            };
            let run: i64 = direct::query_optional(
                conn,
                INSERT_RUN,
                &[&name, &"cron", &seen, &job_id.0, &at],
                |r| r.get("id"),
            )?
            .ok_or(StoreError::NotFound)?;
            Ok(Some((run, job_id)))
        },
        postgres: |tx| {
            let won = sqlx::query(ADVANCE)
                .bind(&name)
                .bind(seen)
                .bind(next)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !won {
                return Ok(None);
            }
            // `None`: already enqueued for this due time; only the due time needed moving.
            let Some(job_id) = enqueue_in(&mut *tx, &job, now).await? else {
                return Ok(None);
            };
            let run: i64 = sqlx::query_scalar(INSERT_RUN)
                .bind(&name)
                .bind("cron")
                .bind(seen)
                .bind(job_id.0)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
            Ok(Some((run, job_id)))
        },
    )
}

/// Runs `name` now, outside its timetable (its next due time does not change). The schedule
/// and the run it records are read in the same transaction.
pub async fn run_now(db: &Db, name: &str, now: Timestamp) -> StoreResult<ScheduleRun> {
    let (name, at) = (name.to_owned(), now.millis());
    let job_of = move |schedule: &Schedule| {
        scheduled_job(&schedule.kind, payload(&schedule.name, now, "manual"))
    };
    grouped_write!(db,
        sqlite: |conn| {
            let job = job_of(&find_direct(conn, &name)?)?;
            let job_id = enqueue_direct(conn, &job, now)?
                .ok_or(StoreError::Duplicate { field: "job" })?;
            let run: i64 = direct::query_optional(
                conn,
                INSERT_RUN,
                &[&name, &"manual", &at, &job_id.0, &at],
                |r| r.get("id"),
            )?
            .ok_or(StoreError::NotFound)?;
            find_run_direct(conn, run)
        },
        postgres: |tx| {
            let job = job_of(&find_postgres(&mut *tx, &name).await?)?;
            let job_id = enqueue_in(&mut *tx, &job, now)
                .await?
                .ok_or(StoreError::Duplicate { field: "job" })?;
            let run: i64 = sqlx::query_scalar(INSERT_RUN)
                .bind(&name)
                .bind("manual")
                .bind(at)
                .bind(job_id.0)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
            find_run_postgres(&mut *tx, run).await
        },
    )
}

/// Pauses or resumes a schedule (an admin's choice; kept across restarts).
pub async fn set_paused(
    db: &Db,
    name: &str,
    paused: bool,
    now: Timestamp,
) -> StoreResult<Schedule> {
    let (name, now) = (name.to_owned(), now.millis());
    grouped_write!(db,
        sqlite: |conn| {
            if direct::execute(conn, SET_PAUSED, &[&name, &paused, &now])? == 0 {
                return Err(StoreError::NotFound);
            }
            find_direct(conn, &name)
        },
        postgres: |tx| {
            let n = sqlx::query(SET_PAUSED)
                .bind(&name)
                .bind(paused)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            find_postgres(&mut *tx, &name).await
        },
    )
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

/// The columns of [`ScheduleRun`], as a literal for the statements below.
macro_rules! run_columns {
    () => {
        "id, schedule, triggered_by, scheduled_for, job_id, status, started_at, finished_at, \
         duration_ms, error, created_at"
    };
}

impl ScheduleRun {
    /// A row of `run_columns!()` read on a direct SQLite connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            schedule: row.get("schedule")?,
            triggered_by: row.get("triggered_by")?,
            scheduled_for: Timestamp::from_millis(row.get("scheduled_for")?),
            job_id: row.get("job_id")?,
            status: row.get("status")?,
            started_at: OptionalTimestamp::from(row.get::<_, Option<i64>>("started_at")?),
            finished_at: OptionalTimestamp::from(row.get::<_, Option<i64>>("finished_at")?),
            duration_ms: row.get("duration_ms")?,
            error: row.get("error")?,
            created_at: Timestamp::from_millis(row.get("created_at")?),
        })
    }
}

const FIND_RUN: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM schedule_runs WHERE id = $1"
);
const PURGE_RUNS: &str =
    "DELETE FROM schedule_runs WHERE created_at < $1 AND finished_at IS NOT NULL";

fn find_run_direct(conn: &direct::Conn, id: i64) -> StoreResult<ScheduleRun> {
    direct::query_optional(conn, FIND_RUN, &[&id], ScheduleRun::from_direct)?
        .ok_or(StoreError::NotFound)
}

async fn find_run_postgres(tx: &mut sqlx::PgConnection, id: i64) -> StoreResult<ScheduleRun> {
    let row: Option<ScheduleRun> = sqlx::query_as(FIND_RUN)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
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
        concat!(
            "SELECT ",
            run_columns!(),
            " FROM schedule_runs WHERE schedule = $1 AND id < $2 ORDER BY id DESC{}"
        ),
        crate::sql::limit(limit + 1)
    );
    let (name, after) = (name.to_owned(), after.map_or(i64::MAX, |c| c.0));
    let rows: Vec<ScheduleRun> = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[&name, &after], ScheduleRun::from_direct),
        postgres: |pool| Ok(sqlx::query_as(crate::composed(&sql))
            .bind(&name)
            .bind(after)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(Page::from_rows(rows, limit, |r| r.id))
}

/// Deletes run history recorded before `before`.
pub async fn purge_runs(db: &Db, before: Timestamp) -> StoreResult<u64> {
    db.delete_before(PURGE_RUNS, before.millis()).await
}
