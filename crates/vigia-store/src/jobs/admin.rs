//! Reading and steering jobs: lists with filters, retry and cancel, clean-up.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;

use super::{JobId, JobState};
use crate::page::{Cursor, Page};
use crate::sql::{Arg, Sql, bind_args};
use crate::{Db, StoreError, StoreResult, composed, direct, direct_read, grouped_write};

/// A job as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    pub payload: serde_json::Value,
    pub state: JobState,
    pub dedup_key: Option<String>,
    pub attempts: u32,
    pub max_attempts: Option<u32>,
    /// Queued or failed: when it may run next. Running: when its lease expires.
    pub run_at: Timestamp,
    pub lease_owner: Option<String>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

const JOB_COLUMNS: &str = "id, kind, payload, state, dedup_key, attempts, max_attempts, run_at, lease_owner, \
     last_error, created_at, updated_at, finished_at";

#[derive(FromRow)]
struct JobRow {
    id: i64,
    kind: String,
    payload: String,
    state: String,
    dedup_key: Option<String>,
    attempts: i64,
    max_attempts: Option<i64>,
    run_at: i64,
    lease_owner: Option<String>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

impl JobRow {
    /// A row of [`JOB_COLUMNS`] read on a direct SQLite connection, each column by its name.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            kind: row.get("kind")?,
            payload: row.get("payload")?,
            state: row.get("state")?,
            dedup_key: row.get("dedup_key")?,
            attempts: row.get("attempts")?,
            max_attempts: row.get("max_attempts")?,
            run_at: row.get("run_at")?,
            lease_owner: row.get("lease_owner")?,
            last_error: row.get("last_error")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
            finished_at: row.get("finished_at")?,
        })
    }
}

impl From<JobRow> for Job {
    fn from(r: JobRow) -> Self {
        Job {
            id: JobId(r.id),
            kind: r.kind,
            payload: serde_json::from_str(&r.payload).unwrap_or(serde_json::Value::Null),
            state: JobState::parse(&r.state).unwrap_or(JobState::Dead),
            dedup_key: r.dedup_key,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            max_attempts: r.max_attempts.and_then(|m| u32::try_from(m).ok()),
            run_at: Timestamp::from_millis(r.run_at),
            lease_owner: r.lease_owner,
            last_error: r.last_error,
            created_at: Timestamp::from_millis(r.created_at),
            updated_at: Timestamp::from_millis(r.updated_at),
            finished_at: r.finished_at.map(Timestamp::from_millis),
        }
    }
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
}

/// Jobs, newest first.
pub async fn list(
    db: &Db,
    filter: &JobFilter,
    after: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<Job>> {
    let mut sql = Sql::new(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1"));
    if let Some(state) = filter.state {
        let p = sql.arg(Arg::Text(state.as_str().into()));
        sql.push(&format!(" AND state = {p}"));
    }
    if let Some(kind) = &filter.kind {
        let p = sql.arg(Arg::Text(kind.clone()));
        sql.push(&format!(" AND kind = {p}"));
    }
    if let Some(cursor) = after {
        let p = sql.arg(Arg::I64(cursor.0));
        sql.push(&format!(" AND id < {p}"));
    }
    sql.push(" ORDER BY id DESC");
    sql.limit(limit + 1);
    let rows: Vec<JobRow> = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql.text, &direct::args(&sql.args), JobRow::from_direct),
        postgres: |pool| Ok(bind_args!(sqlx::query_as(composed(&sql.text)), &sql.args)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(Page::from_rows(
        rows.into_iter().map(Job::from).collect(),
        limit,
        |j| j.id.0,
    ))
}

/// One job by its id (`$1`).
static FIND: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"));

/// One job.
pub async fn find(db: &Db, id: JobId) -> StoreResult<Job> {
    let id = id.0;
    let row: Option<JobRow> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &FIND, &[&id], JobRow::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&FIND))
            .bind(id)
            .fetch_optional(pool)
            .await?),
    )?;
    row.map(Job::from).ok_or(StoreError::NotFound)
}

/// Why an admin action on a job did nothing.
#[derive(Debug, thiserror::Error)]
pub enum JobActionError {
    #[error("no such job")]
    NotFound,
    /// The job is not in a state the action applies to.
    #[error("job {id} is {state}: {action} applies only to {allowed} jobs")]
    WrongState {
        id: JobId,
        state: JobState,
        action: &'static str,
        allowed: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for JobActionError {
    fn from(e: sqlx::Error) -> Self {
        JobActionError::Store(e.into())
    }
}

/// What an action found: the job it changed, or the job as it is (if it exists) when its
/// state refused the action.
enum Acted {
    Done(JobRow),
    Refused(Option<JobRow>),
}

/// Runs `sql` (`$1` the job, `$2` now, returning [`JOB_COLUMNS`]) and, when it changed the
/// job, `then` (same arguments) in the same transaction; when it did not, reads the job there
/// to say why.
async fn act(
    db: &Db,
    id: JobId,
    sql: &'static str,
    then: Option<&'static str>,
    now: Timestamp,
    action: &'static str,
    allowed: &'static str,
) -> Result<Job, JobActionError> {
    let (job, at) = (id.0, now.millis());
    let acted = grouped_write!(db,
        sqlite: |conn| {
            let Some(row) = direct::query_optional(conn, sql, &[&job, &at], JobRow::from_direct)? else {
                let current = direct::query_optional(conn, &FIND, &[&job], JobRow::from_direct)?;
                return Ok(Acted::Refused(current));
            };
            if let Some(then) = then {
                direct::execute(conn, then, &[&job, &at])?;
            }
            Ok(Acted::Done(row))
        },
        postgres: |tx| {
            let row: Option<JobRow> = sqlx::query_as(sql)
                .bind(job)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                let current: Option<JobRow> = sqlx::query_as(composed(&FIND))
                    .bind(job)
                    .fetch_optional(&mut *tx)
                    .await?;
                return Ok(Acted::Refused(current));
            };
            if let Some(then) = then {
                sqlx::query(then).bind(job).bind(at).execute(&mut *tx).await?;
            }
            Ok(Acted::Done(row))
        },
    )?;
    match acted {
        Acted::Done(row) => Ok(row.into()),
        Acted::Refused(Some(current)) => Err(JobActionError::WrongState {
            id,
            state: Job::from(current).state,
            action,
            allowed,
        }),
        Acted::Refused(None) => Err(JobActionError::NotFound),
    }
}

/// Puts a dead, failed or cancelled job back in the queue to run now, with its attempts reset.
pub async fn retry(db: &Db, id: JobId, now: Timestamp) -> Result<Job, JobActionError> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $2, finished_at = NULL, updated_at = $2 \
             WHERE id = $1 AND state IN ('dead', 'failed', 'cancelled') RETURNING {JOB_COLUMNS}"
        )
    });
    act(
        db,
        id,
        sql_str(&SQL),
        None,
        now,
        "retry",
        "dead, failed or cancelled",
    )
    .await
}

/// Cancels a job that has not started (queued, or failed and waiting for a retry).
pub async fn cancel(db: &Db, id: JobId, now: Timestamp) -> Result<Job, JobActionError> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "UPDATE jobs SET state = 'cancelled', finished_at = $2, updated_at = $2 \
             WHERE id = $1 AND state IN ('queued', 'failed') RETURNING {JOB_COLUMNS}"
        )
    });
    // Its schedule's run, cancelled with it.
    const CANCEL_RUN: &str = "UPDATE schedule_runs SET status = 'cancelled', finished_at = $2 \
               WHERE job_id = $1 AND status IN ('queued', 'retrying')";
    act(
        db,
        id,
        sql_str(&SQL),
        Some(CANCEL_RUN),
        now,
        "cancel",
        "queued or failed",
    )
    .await
}

fn sql_str(s: &'static std::sync::LazyLock<String>) -> &'static str {
    s.as_str()
}

/// How many jobs are in each state, per kind: `(kind, state, count)`.
pub async fn counts(db: &Db) -> StoreResult<Vec<(String, JobState, i64)>> {
    const COUNTS: &str =
        "SELECT kind, state, COUNT(*) AS n FROM jobs GROUP BY kind, state ORDER BY kind, state";
    let rows: Vec<(String, String, i64)> = direct_read!(db,
        sqlite: |conn| direct::query(conn, COUNTS, &[], |r| Ok((r.get("kind")?, r.get("state")?, r.get("n")?))),
        postgres: |pool| Ok(sqlx::query_as(COUNTS).fetch_all(pool).await?),
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, s, n)| JobState::parse(&s).ok().map(|s| (k, s, n)))
        .collect())
}

/// Deletes finished jobs (succeeded, dead, cancelled) that finished before `before`.
pub async fn purge_finished(db: &Db, before: Timestamp) -> StoreResult<u64> {
    const PURGE: &str = "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < $1 \
               AND state IN ('succeeded', 'dead', 'cancelled')";
    db.delete_before(PURGE, before.millis()).await
}

/// Incidents plus jobs of any kind but `bench`: what a benchmark's scratch database must not
/// hold (`vigia jobs bench` refuses a database with real work in it).
pub async fn real_work(db: &Db) -> StoreResult<i64> {
    const REAL_WORK: &str = "SELECT (SELECT COUNT(*) FROM incidents) + (SELECT COUNT(*) FROM jobs WHERE kind <> 'bench') AS n";
    let n: Option<i64> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, REAL_WORK, &[], |r| r.get("n")),
        postgres: |pool| Ok(Some(sqlx::query_scalar::<_, i64>(REAL_WORK).fetch_one(pool).await?)),
    )?;
    Ok(n.unwrap_or(0))
}
