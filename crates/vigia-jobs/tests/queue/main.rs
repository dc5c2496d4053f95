//! The queue and scheduler against a real database: SQLite always, PostgreSQL too when
//! `VIGIA_TEST_DATABASE_URL` is set. Time is passed explicitly, so retries and lease expiry are
//! tested without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::json;
use sqlx::Connection;
use vigia_domain::Timestamp;
use vigia_jobs::{
    BoxFuture, CronExpr, ExecutionOutcome, Handler, JobContext, JobError, JobMetrics, Registry,
    ScheduleDef, Scheduler, Worker, WorkerConfig,
};
use vigia_store::jobs::{self, JobKind, JobState, NewJob, Task, queue};
use vigia_store::{Db, DbOptions, schedules};

/// A fresh database; a PostgreSQL one is dropped with it.
struct TestDb {
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // No `close()`: the pool's connections belong to the test's (blocked) runtime;
        // `WITH (FORCE)` ends them.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A fresh database per backend available here.
async fn databases() -> Vec<(Db, TestDb)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let sqlite = Db::connect(&url, &DbOptions::default())
        .await
        .expect("sqlite");
    sqlite.migrate().await.expect("migrate");
    let mut dbs = vec![(
        sqlite.clone(),
        TestDb {
            _dir: Some(dir),
            postgres: None,
        },
    )];
    match std::env::var("VIGIA_TEST_DATABASE_URL") {
        Ok(admin) if !admin.is_empty() => {
            let name = format!("vigia_j_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create database");
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            let pg = Db::connect(&format!("{base}/{name}"), &DbOptions::default())
                .await
                .expect("postgres");
            pg.migrate().await.expect("migrate");
            dbs.push((
                pg.clone(),
                TestDb {
                    _dir: None,
                    postgres: Some((admin.clone(), name)),
                },
            ));
        }
        _ => assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the PostgreSQL queue tests: set VIGIA_TEST_DATABASE_URL"
        ),
    }
    dbs
}

const T0: i64 = 1_800_000_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_millis(T0 + secs * 1000)
}

fn config() -> WorkerConfig {
    WorkerConfig {
        lease: Duration::from_secs(30),
        max_attempts: 5,
        backoff_base: Duration::from_secs(10),
        backoff_max: Duration::from_secs(600),
        ..WorkerConfig::default()
    }
}

fn worker(db: &Db, registry: Registry) -> Worker {
    Worker::new(db.clone(), Arc::new(registry), config(), JobMetrics::new())
}

/// Runs `noop` jobs: fails `failures` times, then succeeds.
struct Flaky {
    failures: u32,
    runs: Arc<AtomicU32>,
}

impl Handler for Flaky {
    fn kind(&self) -> JobKind {
        JobKind::Noop
    }
    fn run<'a>(&'a self, _: &'a JobContext, _: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            if run <= self.failures {
                Err(JobError::retry(format!("transient failure {run}")))
            } else {
                Ok(())
            }
        })
    }
}

/// Runs `fail` jobs: fails permanently.
struct Rejects;

impl Handler for Rejects {
    fn kind(&self) -> JobKind {
        JobKind::Fail
    }
    fn run<'a>(&'a self, _: &'a JobContext, _: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async { Err(JobError::permanent("the receiver said 400 Bad Request")) })
    }
}

/// Runs `noop` jobs whose effect is a follow-up `fail` job with a dedup key derived from the
/// task: running twice enqueues it once.
struct Effect {
    runs: Arc<AtomicU32>,
}

impl Handler for Effect {
    fn kind(&self) -> JobKind {
        JobKind::Noop
    }
    fn run<'a>(&'a self, ctx: &'a JobContext, task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            let Task::Noop { n } = task else {
                return Err(JobError::permanent("not a noop job"));
            };
            // Parked far in the future: this test only counts it.
            let follow_up = NewJob::new(&Task::Fail {
                reason: format!("effect {n}"),
            })
            .dedup(format!("effect:{n}"))
            .run_at(Timestamp::from_millis(i64::MAX / 2));
            jobs::enqueue(&ctx.db, &follow_up, ctx.now).await?;
            Ok(())
        })
    }
}

mod running;
mod timetables;
