//! `vigia jobs ...` and `vigia schedules ...`: inspect and steer background work from a shell
//! (they talk to the database directly, like the other maintenance commands).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use tokio_util::sync::CancellationToken;
use vigia_domain::Timestamp;
use vigia_jobs::{JobMetrics, Registry, Worker, WorkerConfig, builtin};
use vigia_store::jobs::{self, JobActionError, JobFilter, JobId, JobKind, JobState, NewJob, Task};
use vigia_store::{Db, schedules};

use crate::config::Config;
use crate::open_database;

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// queued, running, failed, succeeded, dead (the dead-letter list) or cancelled.
        #[arg(long)]
        state: Option<String>,
        /// A job kind, e.g. event.dispatch.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Put a dead, failed or cancelled job back in the queue.
    Retry { id: i64 },
    /// Cancel a queued (or failed, waiting) job.
    Cancel { id: i64 },
    /// Measure queue throughput: enqueue N `bench` jobs, run them with this node's worker
    /// settings, print jobs per second. It never touches this node's database: it works in a
    /// scratch SQLite database it creates (and deletes), or in the empty database given with
    /// --scratch-database-url, and its worker handles only `bench` jobs.
    Bench {
        #[arg(long, default_value_t = 50_000)]
        count: u32,
        /// An empty database to bench instead (e.g. a PostgreSQL database made for it); refused
        /// if it is this node's database or holds any incident or job other than bench jobs.
        #[arg(long)]
        scratch_database_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// List schedules with their next run.
    List,
    /// Run a schedule's job now (a worker picks it up).
    Run { name: String },
    /// Show a schedule's recent runs.
    History {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Pause a schedule (kept across restarts).
    Pause { name: String },
    /// Resume a paused schedule.
    Resume { name: String },
}

pub async fn jobs(config: &Config, command: JobsCommand) -> anyhow::Result<()> {
    if let JobsCommand::Bench {
        count,
        scratch_database_url,
    } = command
    {
        return bench_in_scratch(config, count, scratch_database_url).await;
    }
    let db = open_database(config).await?;
    let result = match command {
        JobsCommand::List { state, kind, limit } => {
            let state = state
                .as_deref()
                .map(|s| JobState::parse(s).map_err(|e| anyhow::anyhow!("--state {e}")))
                .transpose()?;
            let page = jobs::list(&db, &JobFilter { state, kind }, None, limit as usize).await?;
            println!(
                "{:>8}  {:<20} {:<10} {:>8}  {:<25} last error",
                "id", "kind", "state", "attempts", "run at"
            );
            for job in page.items {
                println!(
                    "{:>8}  {:<20} {:<10} {:>8}  {:<25} {}",
                    job.id,
                    job.kind,
                    job.state,
                    job.attempts,
                    job.run_at.to_rfc3339(),
                    job.last_error.unwrap_or_default()
                );
            }
            Ok(())
        }
        JobsCommand::Retry { id } => act(
            jobs::retry(&db, JobId(id), Timestamp::now()).await,
            "queued again",
        ),
        JobsCommand::Cancel { id } => act(
            jobs::cancel(&db, JobId(id), Timestamp::now()).await,
            "cancelled",
        ),
        JobsCommand::Bench { .. } => Ok(()),
    };
    db.close().await;
    result
}

fn act(result: Result<jobs::Job, JobActionError>, done: &str) -> anyhow::Result<()> {
    match result {
        Ok(job) => {
            println!("job {} ({}) {done}", job.id, job.kind);
            Ok(())
        }
        Err(JobActionError::NotFound) => anyhow::bail!("no such job"),
        Err(e) => Err(e.into()),
    }
}

pub async fn schedules(config: &Config, command: SchedulesCommand) -> anyhow::Result<()> {
    let db = open_database(config).await?;
    let now = Timestamp::now();
    let not_found = |name: &str| {
        let name = name.to_owned();
        move |e: vigia_store::StoreError| match e {
            vigia_store::StoreError::NotFound => anyhow::anyhow!(
                "no schedule named {name:?} (schedules are written when `vigia serve` starts; see `vigia schedules list`)"
            ),
            other => other.into(),
        }
    };
    let result = match command {
        SchedulesCommand::List => {
            println!(
                "{:<20} {:<18} {:<14} {:<8} next run",
                "name", "kind", "cron", "state"
            );
            for s in schedules::list(&db).await? {
                let state = match (s.enabled, s.paused) {
                    (false, _) => "disabled",
                    (true, true) => "paused",
                    (true, false) => "active",
                };
                println!(
                    "{:<20} {:<18} {:<14} {:<8} {}",
                    s.name,
                    s.kind,
                    s.cron,
                    state,
                    s.next_run_at.to_rfc3339()
                );
            }
            Ok(())
        }
        SchedulesCommand::Run { name } => {
            let run = schedules::run_now(&db, &name, now)
                .await
                .map_err(not_found(&name))?;
            println!(
                "queued run {} of {name} as job {}",
                run.id,
                run.job_id.unwrap_or_default()
            );
            Ok(())
        }
        SchedulesCommand::History { name, limit } => {
            schedules::find(&db, &name)
                .await
                .map_err(not_found(&name))?;
            let page = schedules::runs(&db, &name, None, limit.clamp(1, 200) as usize).await?;
            println!(
                "{:>6}  {:<8} {:<10} {:<25} {:>10}  error",
                "run", "trigger", "status", "scheduled for", "ms"
            );
            for r in page.items {
                println!(
                    "{:>6}  {:<8} {:<10} {:<25} {:>10}  {}",
                    r.id,
                    r.triggered_by,
                    r.status,
                    r.scheduled_for.to_rfc3339(),
                    r.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
                    r.error.unwrap_or_default()
                );
            }
            Ok(())
        }
        SchedulesCommand::Pause { name } => {
            schedules::set_paused(&db, &name, true, now)
                .await
                .map_err(not_found(&name))?;
            println!("{name} paused");
            Ok(())
        }
        SchedulesCommand::Resume { name } => {
            schedules::set_paused(&db, &name, false, now)
                .await
                .map_err(not_found(&name))?;
            println!("{name} resumed");
            Ok(())
        }
    };
    db.close().await;
    result
}

/// Opens the bench's own database: a fresh SQLite file in a temporary directory (with this
/// node's database settings), or `url` after checking that it holds no real work.
async fn bench_in_scratch(config: &Config, count: u32, url: Option<String>) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("vigia-jobs-bench-")
        .tempdir()
        .context("cannot create a scratch directory for the bench")?;
    let url = match url {
        Some(url) => {
            anyhow::ensure!(
                url != config.database_url(),
                "--scratch-database-url is this node's own database: give the bench an empty one"
            );
            url
        }
        None => format!("sqlite://{}", scratch.path().join("bench.db").display()),
    };
    let db = Db::connect(&url, &config.db_options()).await?;
    db.migrate().await?;
    let result = match jobs::real_work(&db).await.map_err(anyhow::Error::from) {
        Ok(0) => bench(config, &db, count).await,
        Ok(n) => Err(anyhow::anyhow!(
            "the scratch database holds {n} incidents or non-bench jobs: give the bench an empty database"
        )),
        Err(e) => Err(e),
    };
    db.close().await;
    result
}

/// Enqueues `count` bench jobs (in transactions of 5,000), then runs the real worker loop with
/// only the bench handler until all succeeded.
async fn bench(config: &Config, db: &Db, count: u32) -> anyhow::Result<()> {
    let started = Instant::now();
    let chunk: Vec<u32> = (0..count).collect();
    for part in chunk.chunks(5_000) {
        let batch: Vec<NewJob> = part
            .iter()
            .map(|&n| NewJob::new(&Task::Bench { n }))
            .collect();
        jobs::enqueue_batch(db, &batch, Timestamp::now()).await?;
    }
    let enqueue = started.elapsed();
    let mut registry = Registry::new();
    registry.register(builtin::Bench);
    let metrics = JobMetrics::new();
    let settings: WorkerConfig = crate::jobs::worker_config(config);
    let worker = Arc::new(Worker::new(
        db.clone(),
        Arc::new(registry),
        settings.clone(),
        metrics.clone(),
    ));
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(worker.run(shutdown.clone(), Duration::from_secs(30)));
    let deadline = Instant::now() + Duration::from_secs(600);
    while metrics.succeeded_count(JobKind::Bench.as_str()) < u64::from(count) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the jobs did not finish within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.cancel();
    running.await.context("worker task failed")?;
    let run = started.elapsed();
    let left = jobs::counts(db)
        .await?
        .into_iter()
        .filter(|(kind, state, _)| kind == JobKind::Bench.as_str() && *state != JobState::Succeeded)
        .map(|(_, _, n)| n)
        .sum::<i64>();
    anyhow::ensure!(left == 0, "{left} jobs did not succeed");
    println!(
        "enqueued {count} jobs in {:.2} s ({:.0}/s); ran them in {:.2} s: {:.0} jobs/s \
         (concurrency {}, batch {}, backend {})",
        enqueue.as_secs_f64(),
        f64::from(count) / enqueue.as_secs_f64().max(0.001),
        run.as_secs_f64(),
        f64::from(count) / run.as_secs_f64().max(0.001),
        settings.concurrency,
        settings.batch,
        if db.is_sqlite() { "sqlite" } else { "postgres" }
    );
    Ok(())
}
