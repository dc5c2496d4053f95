//! What workers do with the queue: claim due jobs under a lease, extend the lease, and write
//! back what happened — each in one short transaction for a whole batch.

use vigia_domain::Timestamp;

use super::{JobId, JobKind, Task};
use crate::sql::{Arg, Sql, bind_args};
use crate::{Db, StoreResult, composed, direct};

/// A job a worker holds.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: JobId,
    pub kind: JobKind,
    /// The task, or why the stored payload is not one of its kind.
    pub task: Result<Task, String>,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// `None`: the worker's default.
    pub max_attempts: Option<u32>,
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded,
    /// Try again at `at`.
    Retry {
        at: Timestamp,
        error: String,
    },
    /// Give up: the job goes to the dead-letter list.
    Dead {
        error: String,
    },
}

/// `kind IN ('a', 'b')`: the names are the enum's own constants, never input.
fn kinds_sql(kinds: &[JobKind]) -> String {
    let names: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
    format!("kind IN ({})", names.join(", "))
}

fn claim_sql(db: &Db, kinds: &[JobKind], limit: usize) -> String {
    let limit = crate::sql::limit(limit);
    let kinds = kinds_sql(kinds);
    if db.is_sqlite() {
        // One writer: the inner SELECT and the UPDATE cannot interleave with another claim.
        // INDEXED BY: left alone, SQLite picks the state index and sorts every waiting job.
        format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, run_at = $2, updated_at = $3 \
             WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_due_idx WHERE state IN ('queued', 'running', 'failed') AND run_at <= $3 \
                          AND {kinds} ORDER BY run_at, id{limit}) \
             RETURNING id, kind, payload, attempts, max_attempts"
        )
    } else {
        format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, run_at = $2, updated_at = $3 \
             WHERE id IN (SELECT id FROM jobs WHERE state IN ('queued', 'running', 'failed') AND run_at <= $3 \
                          AND {kinds} ORDER BY run_at, id{limit} FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, payload, attempts, max_attempts"
        )
    }
}

/// Claims up to `limit` due jobs of `kinds` (the kinds `owner` has handlers for) until
/// `lease_until`: queued jobs, failed jobs whose retry time came, and running jobs whose lease
/// expired (their worker died or hung). Jobs of other kinds are left to workers that handle
/// them. Also marks the schedule runs of the claimed jobs as running.
#[tracing::instrument(skip_all, fields(owner, limit))]
pub async fn claim(
    db: &Db,
    owner: &str,
    kinds: &[JobKind],
    limit: usize,
    lease_until: Timestamp,
    now: Timestamp,
) -> StoreResult<Vec<ClaimedJob>> {
    type Row = (i64, String, String, i64, Option<i64>);
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let sql = claim_sql(db, kinds, limit);
    let owner = owner.to_owned();
    // The schedule runs of the claimed jobs are running now.
    let runs_of = move |rows: &[Row]| {
        let mut update = Sql::new(
            "UPDATE schedule_runs SET status = 'running', started_at = COALESCE(started_at, ",
        );
        let at = update.arg(Arg::I64(now.millis()));
        update.push(&at);
        update.push(") WHERE status IN ('queued', 'retrying', 'running') AND job_id IN (");
        push_ids(&mut update, rows.iter().map(|r| r.0));
        update.push(")");
        update
    };
    // In the group commit on SQLite, beside the requests' writes.
    let rows: Vec<Row> = crate::grouped_write!(db,
        sqlite: |conn| {
            let rows: Vec<Row> = direct::query(
                conn,
                &sql,
                &[&owner, &lease_until.millis(), &now.millis()],
                |r| {
                    Ok((
                        r.get("id")?,
                        r.get("kind")?,
                        r.get("payload")?,
                        r.get("attempts")?,
                        r.get("max_attempts")?,
                    ))
                },
            )?;
            if !rows.is_empty() {
                let update = runs_of(&rows);
                direct::execute(conn, &update.text, &direct::args(&update.args))?;
            }
            Ok(rows)
        },
        postgres: |conn| {
            let rows: Vec<Row> = sqlx::query_as(crate::composed(&sql))
                .bind(&owner)
                .bind(lease_until.millis())
                .bind(now.millis())
                .fetch_all(&mut *conn)
                .await?;
            if !rows.is_empty() {
                let update = runs_of(&rows);
                bind_args!(sqlx::query(composed(&update.text)), &update.args)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(rows)
        },
    )?;
    Ok(rows
        .into_iter()
        .map(|(id, kind, payload, attempts, max_attempts)| ClaimedJob {
            id: JobId(id),
            // Claimed by one of `kinds`, so the name parses.
            kind: JobKind::parse(&kind).unwrap_or(JobKind::Noop),
            task: serde_json::from_str(&payload)
                .map_err(|e| format!("the payload is not JSON: {e}"))
                .and_then(|payload| Task::decode(&kind, &payload)),
            attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
            max_attempts: max_attempts.map(|m| u32::try_from(m).unwrap_or(u32::MAX)),
        })
        .collect())
}

fn push_ids(sql: &mut Sql, ids: impl Iterator<Item = i64>) {
    for (i, id) in ids.enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        let p = sql.arg(Arg::I64(id));
        sql.push(&p);
    }
}

/// Extends the lease of `owner`'s running jobs among `ids`; returns how many it still holds.
pub async fn heartbeat(
    db: &Db,
    owner: &str,
    ids: &[JobId],
    lease_until: Timestamp,
) -> StoreResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut sql = Sql::new(
        "UPDATE jobs SET run_at = $1 WHERE state = 'running' AND lease_owner = $2 AND id IN (",
    );
    sql.args.push(Arg::I64(lease_until.millis()));
    sql.args.push(Arg::Text(owner.to_owned()));
    push_ids(&mut sql, ids.iter().map(|id| id.0));
    sql.push(")");
    crate::grouped_write!(db,
        sqlite: |conn| Ok(direct::execute(conn, &sql.text, &direct::args(&sql.args))? as u64),
        postgres: |conn| Ok(bind_args!(sqlx::query(composed(&sql.text)), &sql.args)
            .execute(&mut *conn)
            .await?
            .rows_affected()),
    )
}

/// Writes the outcomes of `owner`'s attempts in one transaction, with the runs of their
/// schedules. An outcome for a job whose lease `owner` lost (another worker took it) changes
/// nothing: that worker's outcome counts. Returns how many jobs were updated.
#[tracing::instrument(skip_all, fields(owner, count = outcomes.len()))]
pub async fn finish(
    db: &Db,
    owner: &str,
    outcomes: &[(JobId, Outcome)],
    now: Timestamp,
) -> StoreResult<u64> {
    if outcomes.is_empty() {
        return Ok(0);
    }
    let steps = outcome_steps(owner, outcomes, now);
    // In the group commit on SQLite: outcomes arrive batch by batch while requests write.
    crate::grouped_write!(db,
        sqlite: |conn| {
            let mut updated = 0;
            for step in &steps {
                let n = direct::execute(conn, &step.job.text, &direct::args(&step.job.args))?;
                if n > 0 || !step.run_if_job_changed {
                    direct::execute(conn, &step.run.text, &direct::args(&step.run.args))?;
                }
                updated += n as u64;
            }
            Ok(updated)
        },
        postgres: |conn| {
            let mut updated = 0;
            for step in &steps {
                let n = bind_args!(sqlx::query(composed(&step.job.text)), &step.job.args)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                if n > 0 || !step.run_if_job_changed {
                    bind_args!(sqlx::query(composed(&step.run.text)), &step.run.args)
                        .execute(&mut *conn)
                        .await?;
                }
                updated += n;
            }
            Ok(updated)
        },
    )
}

/// One update of jobs and the matching update of their schedule runs.
struct OutcomeStep {
    job: Sql,
    run: Sql,
    /// Update the run only when the job was still `owner`'s (it changed).
    run_if_job_changed: bool,
}

/// What [`finish`] writes: every success in one step, each retry or dead letter in its own.
fn outcome_steps(owner: &str, outcomes: &[(JobId, Outcome)], now: Timestamp) -> Vec<OutcomeStep> {
    let mut steps = Vec::new();
    let succeeded: Vec<i64> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Succeeded))
        .map(|(id, _)| id.0)
        .collect();
    if !succeeded.is_empty() {
        let mut job = Sql::new(
            "UPDATE jobs SET state = 'succeeded', lease_owner = NULL, finished_at = $1, updated_at = $1 \
             WHERE state = 'running' AND lease_owner = $2 AND id IN (",
        );
        job.args.push(Arg::I64(now.millis()));
        job.args.push(Arg::Text(owner.to_owned()));
        push_ids(&mut job, succeeded.iter().copied());
        job.push(")");
        let mut run = Sql::new(
            "UPDATE schedule_runs SET status = 'succeeded', finished_at = $1, \
             duration_ms = $1 - COALESCE(started_at, $1), error = NULL \
             WHERE status IN ('queued', 'running', 'retrying') AND job_id IN (",
        );
        run.args.push(Arg::I64(now.millis()));
        push_ids(&mut run, succeeded.iter().copied());
        run.push(")");
        steps.push(OutcomeStep {
            job,
            run,
            run_if_job_changed: false,
        });
    }
    const RETRY: &str = "UPDATE jobs SET state = 'failed', lease_owner = NULL, run_at = $3, last_error = $4, updated_at = $5 \
         WHERE id = $1 AND state = 'running' AND lease_owner = $2";
    const RETRY_RUN: &str = "UPDATE schedule_runs SET status = 'retrying', error = $2 WHERE job_id = $1 AND status IN ('queued', 'running')";
    const DEAD: &str = "UPDATE jobs SET state = 'dead', lease_owner = NULL, last_error = $3, finished_at = $4, updated_at = $4 \
         WHERE id = $1 AND state = 'running' AND lease_owner = $2";
    const DEAD_RUN: &str = "UPDATE schedule_runs SET status = 'failed', error = $2, finished_at = $3, \
         duration_ms = $3 - COALESCE(started_at, $3) WHERE job_id = $1 AND status IN ('queued', 'running', 'retrying')";
    let sql = |text: &str, args: Vec<Arg>| Sql {
        args,
        ..Sql::new(text)
    };
    for (id, outcome) in outcomes {
        let (job, run) = match outcome {
            Outcome::Succeeded => continue,
            Outcome::Retry { at, error } => (
                sql(
                    RETRY,
                    vec![
                        Arg::I64(id.0),
                        Arg::Text(owner.to_owned()),
                        Arg::I64(at.millis()),
                        Arg::Text(error.clone()),
                        Arg::I64(now.millis()),
                    ],
                ),
                sql(RETRY_RUN, vec![Arg::I64(id.0), Arg::Text(error.clone())]),
            ),
            Outcome::Dead { error } => (
                sql(
                    DEAD,
                    vec![
                        Arg::I64(id.0),
                        Arg::Text(owner.to_owned()),
                        Arg::Text(error.clone()),
                        Arg::I64(now.millis()),
                    ],
                ),
                sql(
                    DEAD_RUN,
                    vec![
                        Arg::I64(id.0),
                        Arg::Text(error.clone()),
                        Arg::I64(now.millis()),
                    ],
                ),
            ),
        };
        steps.push(OutcomeStep {
            job,
            run,
            run_if_job_changed: true,
        });
    }
    steps
}
