//! The real binary: a job survives `kill -9`, a schedule fires once across two nodes, a
//! malformed cron expression stops the start, the jobs bench stays in its scratch database.

use super::*;

const BIN: &str = env!("CARGO_BIN_EXE_vigia");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `vigia serve` on a free port with test handlers and fast timings.
fn serve(data_dir: &std::path::Path, database_url: &str, extra: &[(&str, &str)]) -> Child {
    let mut command = Command::new(BIN);
    command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--database-url")
        .arg(database_url)
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .current_dir(data_dir)
        .env("VIGIA_LOG__LEVEL", "warn")
        .env("VIGIA_AUTH__JWT_SECRET", crate::helpers::JWT_SECRET)
        .env("VIGIA_JOBS__TEST_HANDLERS", "true")
        .env("VIGIA_JOBS__POLL_INTERVAL_MS", "50")
        .env("VIGIA_JOBS__SCHEDULER_TICK_MS", "100")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (key, value) in extra {
        command.env(key, value);
    }
    command.spawn().expect("spawn vigia serve")
}

async fn open(url: &str) -> Db {
    let db = Db::connect(url, &DbOptions::default())
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_when_the_process_is_killed_completes_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("vigia.db").display());
    let db = open(&url).await;
    let id = jobs::enqueue(
        &db,
        &NewJob::new(&Task::Sleep { ms: 2500 }),
        Timestamp::now(),
    )
    .await
    .expect("enqueue")
    .expect("new");
    let lease = [("VIGIA_JOBS__LEASE_SECS", "2")];
    let mut first = serve(dir.path(), &url, &lease);
    wait_for("the job to start", Duration::from_secs(30), async || {
        jobs::find(&db, id).await.expect("job").state == JobState::Running
    })
    .await;
    first.kill().expect("kill -9");
    first.wait().expect("reaped");
    let job = jobs::find(&db, id).await.expect("job");
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Running, 1),
        "killed mid-job"
    );

    let mut second = serve(dir.path(), &url, &lease);
    wait_for(
        "the job to complete after the restart",
        Duration::from_secs(30),
        async || jobs::find(&db, id).await.expect("job").state == JobState::Succeeded,
    )
    .await;
    second.kill().expect("kill");
    second.wait().expect("reaped");
    let job = jobs::find(&db, id).await.expect("job");
    assert_eq!(job.attempts, 2, "the lease expired and the job ran again");
    assert_eq!(job.lease_owner, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_across_two_nodes_on_postgres() {
    let admin = match std::env::var("VIGIA_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI must run the two-node schedule test: set VIGIA_TEST_DATABASE_URL"
            );
            eprintln!("skipping: set VIGIA_TEST_DATABASE_URL to run the two-node schedule test");
            return;
        }
    };
    let name = format!("vigia_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    let db = open(&url).await;
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let every_second = [
        ("VIGIA_SCHEDULES__TICK__KIND", "noop"),
        ("VIGIA_SCHEDULES__TICK__CRON", "* * * * * *"),
    ];
    let mut nodes = [
        serve(dir_a.path(), &url, &every_second),
        serve(dir_b.path(), &url, &every_second),
    ];
    let runs = async || -> Vec<(i64, String)> {
        match db.backend() {
            vigia_store::Backend::Postgres { pool } => sqlx::query_as(
                "SELECT scheduled_for, status FROM schedule_runs WHERE schedule = 'tick' ORDER BY id",
            )
            .fetch_all(pool)
            .await
            .expect("runs"),
            vigia_store::Backend::Sqlite { .. } => unreachable!("postgres test"),
        }
    };
    wait_for("five ticks", Duration::from_secs(60), async || {
        runs().await.len() >= 5
    })
    .await;
    for node in &mut nodes {
        node.kill().expect("kill");
        node.wait().expect("reaped");
    }
    let fired = runs().await;
    let mut due: Vec<i64> = fired.iter().map(|(at, _)| *at).collect();
    due.dedup();
    assert_eq!(
        due.len(),
        fired.len(),
        "each due second fired once: {fired:?}"
    );
    assert!(
        due.windows(2).all(|w| w[1] - w[0] >= 1000),
        "one run per second at most: {due:?}"
    );
    let noop = jobs_of(&db, "noop").await;
    assert_eq!(noop.len(), fired.len(), "one job per run");
    assert!(
        noop.iter()
            .filter(|j| j.state == JobState::Succeeded)
            .count()
            >= fired.len() - 2
    );
    db.close().await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await;
}

#[test]
fn a_malformed_cron_expression_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("VIGIA_SCHEDULES__CLEANUP__CRON", "every night")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("schedules.cleanup.cron"), "{stderr}");
    assert!(
        stderr.contains("\"every night\" is not a valid cron expression"),
        "{stderr}"
    );
    assert!(!dir.path().join("vigia.db").exists(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_bench_never_touches_the_nodes_own_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("vigia.db").display());
    let db = open(&url).await;
    // Real work waiting in the node's database: a dispatch batch and a report.
    let dispatch = jobs::enqueue(
        &db,
        &NewJob::new(&Task::EventDispatch {
            after: 0,
            through: 1,
        }),
        Timestamp::now(),
    )
    .await
    .expect("enqueue")
    .expect("new");
    let report = jobs::enqueue(&db, &NewJob::new(&Task::GlobalReport {}), Timestamp::now())
        .await
        .expect("enqueue")
        .expect("new");
    let bench = |extra: &[&str]| {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--database-url")
            .arg(&url)
            .args(["jobs", "bench", "--count", "300"])
            .args(extra)
            .current_dir(dir.path())
            .env("VIGIA_LOG__LEVEL", "warn")
            .output()
            .expect("run the bench")
    };
    let output = bench(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("ran them in") && stdout.contains("jobs/s"),
        "{stdout}"
    );
    for id in [dispatch, report] {
        let job = jobs::find(&db, id).await.expect("job");
        assert_eq!(
            (job.state, job.attempts),
            (JobState::Queued, 0),
            "untouched: {job:?}"
        );
    }
    assert!(
        jobs_of(&db, "bench").await.is_empty(),
        "the bench ran in a scratch database of its own"
    );
    // Pointed at the node's own database, it refuses.
    let output = bench(&["--scratch-database-url", &url]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("this node's own database"), "{stderr}");
    // Pointed at another database holding real work, it refuses too.
    let other = tempfile::tempdir().expect("tempdir");
    let other_url = format!("sqlite://{}", other.path().join("other.db").display());
    let other_db = open(&other_url).await;
    jobs::enqueue(&other_db, &NewJob::new(&Task::Cleanup {}), Timestamp::now())
        .await
        .expect("enqueue");
    let output = bench(&["--scratch-database-url", &other_url]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("holds 1 incidents or non-bench jobs"),
        "{stderr}"
    );
    assert_eq!(
        jobs_of(&other_db, "cleanup").await[0].state,
        JobState::Queued
    );
    db.close().await;
    other_db.close().await;
}
