//! Background work end to end: the admin API over the queue, the event relay, SLA escalation,
//! the assignment sweep, and the real binary — a job survives `kill -9`, a schedule fires once
//! across two nodes, a malformed cron expression stops the start.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use vigia_domain::Timestamp;
use vigia_jobs::{JobMetrics, Worker};
use vigia_store::jobs::{self, JobFilter, JobState, NewJob};
use vigia_store::{Db, DbOptions};

use crate::backend_tests;
use crate::helpers::TestApp;
use crate::incidents::{campus, report};

/// Every handler the application registers, for `config` over the test app's storage.
pub fn registry(app: &TestApp, config: &vigia::Config) -> vigia_jobs::Registry {
    let notifier = vigia_notify::Notifier::new(
        app.db.clone(),
        // The public URL as the application resolves it: configured, else where it listens.
        config
            .notify_config(if config.http.public_url.is_empty() {
                &app.url
            } else {
                &config.http.public_url
            })
            .expect("notify config"),
    )
    .expect("notifier");
    let objects =
        vigia_store::Objects::open(&config.storage_url(), &config.s3_options()).expect("objects");
    vigia::jobs::registry(config, &notifier, &objects)
}

/// A worker over the test app's database with the app's handlers, drained by hand.
pub(crate) fn worker(app: &TestApp) -> Worker {
    Worker::new(
        app.db.clone(),
        Arc::new(registry(app, &app.config)),
        vigia::jobs::worker_config(&app.config),
        JobMetrics::new(),
    )
}

fn days(n: i64) -> Timestamp {
    Timestamp::now().plus_seconds(n * 86_400)
}

pub(crate) async fn jobs_of(db: &Db, kind: &str) -> Vec<jobs::Job> {
    jobs::list(
        db,
        &JobFilter {
            state: None,
            kind: Some(kind.into()),
        },
        None,
        200,
    )
    .await
    .expect("list jobs")
    .items
}

async fn events(app: &TestApp, token: &str, incident: i64) -> Vec<Value> {
    let reply = app
        .get(
            &format!("/api/v1/incidents/{incident}/events?limit=200"),
            Some(token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["items"].as_array().expect("items").clone()
}

backend_tests! {
    async fn dead_jobs_are_listed_retried_and_cancelled_by_admins(app: TestApp) {
        let admin = app.admin().await;
        let staff = app.user(vigia_domain::users::Role::Staff).await;
        let id = jobs::enqueue(&app.db, &NewJob::new("report.nobody", json!({ "x": 1 })), Timestamp::now())
            .await
            .expect("enqueue")
            .expect("new job");
        assert_eq!(worker(&app).drain(Timestamp::now(), 100).await.expect("drain"), 1);

        let dead = app.get("/api/v1/jobs?state=dead", Some(&admin.token)).await;
        assert_eq!(dead.status, StatusCode::OK, "{:?}", dead.body);
        let item = &dead.body["items"][0];
        assert_eq!(item["id"], id.0);
        assert_eq!(item["state"], "dead");
        assert_eq!(item["payload"]["x"], 1);
        assert!(item["last_error"].as_str().expect("error").contains("no handler is registered for job kind \"report.nobody\""));
        let by_kind = app.get("/api/v1/jobs?kind=report.nobody", Some(&admin.token)).await;
        assert_eq!(by_kind.body["items"].as_array().map(Vec::len), Some(1));
        let none = app.get("/api/v1/jobs?state=queued&kind=report.nobody", Some(&admin.token)).await;
        assert_eq!(none.body["items"].as_array().map(Vec::len), Some(0));

        assert_eq!(app.get("/api/v1/jobs", Some(&staff.token)).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get("/api/v1/jobs", None).await.status, StatusCode::UNAUTHORIZED);
        let forbidden = app.post(&format!("/api/v1/jobs/{id}/retry"), Some(&staff.token), json!({})).await;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
        assert_eq!(jobs::find(&app.db, id).await.expect("job").state, JobState::Dead, "a refused retry changes nothing");
        let bad = app.get("/api/v1/jobs?state=zombie", Some(&admin.token)).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad.error_field(), Some("state"));

        let retried = app.post(&format!("/api/v1/jobs/{id}/retry"), Some(&admin.token), json!({})).await;
        assert_eq!(retried.status, StatusCode::OK, "{:?}", retried.body);
        assert_eq!(retried.body["state"], "queued");
        assert_eq!(retried.body["attempts"], 0);
        let again = app.post(&format!("/api/v1/jobs/{id}/retry"), Some(&admin.token), json!({})).await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert!(again.is_problem());
        assert!(again.body["detail"].as_str().expect("detail").contains("is queued"), "{:?}", again.body);

        let cancelled = app.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&admin.token), json!({})).await;
        assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
        assert_eq!(cancelled.body["state"], "cancelled");
        assert_eq!(worker(&app).drain(Timestamp::now(), 100).await.expect("drain"), 0, "a cancelled job does not run");
        let twice = app.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&admin.token), json!({})).await;
        assert_eq!(twice.status, StatusCode::CONFLICT);
        assert_eq!(app.post("/api/v1/jobs/987654/cancel", Some(&admin.token), json!({})).await.status, StatusCode::NOT_FOUND);
        let found = app.get(&format!("/api/v1/jobs/{id}"), Some(&admin.token)).await;
        assert_eq!(found.body["state"], "cancelled");
    }

    async fn schedules_are_listed_run_paused_and_keep_their_history(app: TestApp) {
        let admin = app.admin().await;
        let mut config = app.config.clone();
        config.jobs.test_handlers = true;
        let registry = registry(&app, &config);
        let scheduler = vigia_jobs::Scheduler::new(
            app.db.clone(),
            vigia::jobs::schedule_defs(&config).expect("schedules"),
            &registry,
            JobMetrics::new(),
        );
        scheduler.sync(Timestamp::now()).await.expect("sync");
        let list = app.get("/api/v1/schedules", Some(&admin.token)).await;
        assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
        let names: Vec<&str> = list.body.as_array().expect("array").iter().filter_map(|s| s["name"].as_str()).collect();
        assert_eq!(names, ["assignment_sweep", "cleanup", "report_global", "sla_escalate"], "every schedule has its handler");

        let run = app.post("/api/v1/schedules/cleanup/run", Some(&admin.token), json!({})).await;
        assert_eq!(run.status, StatusCode::ACCEPTED, "{:?}", run.body);
        assert_eq!(run.body["status"], "queued");
        assert_eq!(run.body["triggered_by"], "manual");
        assert_eq!(worker(&app).drain(Timestamp::now(), 100).await.expect("drain"), 1);
        let history = app.get("/api/v1/schedules/cleanup/runs", Some(&admin.token)).await;
        assert_eq!(history.status, StatusCode::OK);
        let last = &history.body["items"][0];
        assert_eq!(last["status"], "succeeded", "{last:?}");
        assert!(last["duration_ms"].as_i64().is_some());
        assert!(last["finished_at"].is_string());

        let paused = app.patch("/api/v1/schedules/sla_escalate", Some(&admin.token), json!({ "enabled": false })).await;
        assert_eq!(paused.status, StatusCode::OK, "{:?}", paused.body);
        assert_eq!((paused.body["enabled"].as_bool(), paused.body["paused"].as_bool()), (Some(false), Some(true)));
        let far = days(1);
        assert!(scheduler.tick(far).await.expect("tick").iter().all(|n| n != "sla_escalate"));
        let resumed = app.patch("/api/v1/schedules/sla_escalate", Some(&admin.token), json!({ "enabled": true })).await;
        assert_eq!(resumed.body["enabled"], true);
        assert_eq!(scheduler.tick(days(2)).await.expect("tick").iter().filter(|n| *n == "sla_escalate").count(), 1);

        assert_eq!(app.post("/api/v1/schedules/nope/run", Some(&admin.token), json!({})).await.status, StatusCode::NOT_FOUND);
        let bad = app.patch("/api/v1/schedules/cleanup", Some(&admin.token), json!({ "enabled": "yes" })).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn incident_events_become_dispatch_jobs_once(app: TestApp) {
        let c = campus(&app).await;
        let incident = report(&app, &c.reporter, json!({
            "category_id": c.leak, "title": "Tubería rota en el baño", "description": "Sale agua sin parar."
        })).await;
        let id = incident["id"].as_i64().expect("id");
        let history = events(&app, &c.admin.token, id).await;
        let worker = worker(&app);
        worker.drain(Timestamp::now(), 1000).await.expect("drain");
        worker.drain(Timestamp::now(), 1000).await.expect("drain again");
        let dispatched = jobs_of(&app.db, "event.dispatch").await;
        let mut relayed: Vec<i64> = dispatched
            .iter()
            .filter(|j| j.payload["incident_id"] == id)
            .map(|j| j.payload["event_id"].as_i64().expect("event id"))
            .collect();
        relayed.sort_unstable();
        let expected: Vec<i64> = history.iter().map(|e| e["id"].as_i64().expect("id")).collect();
        assert_eq!(relayed, expected, "one job per event");
        assert!(dispatched.iter().all(|j| j.state == JobState::Succeeded));
        let created = dispatched.iter().find(|j| j.payload["event_id"] == expected[0]).expect("created job");
        assert_eq!(created.payload["type"], "incident.created");
        assert_eq!(created.dedup_key.as_deref(), Some(format!("event:{}", expected[0]).as_str()));
    }

    async fn dispatch_jobs_write_the_incident_report_and_the_global_report_job_writes_its_files(app: TestApp) {
        let c = campus(&app).await;
        let incident = report(&app, &c.reporter, json!({
            "category_id": c.leak, "title": "Tubería rota en el baño", "description": "Sale agua sin parar."
        })).await;
        let id = incident["id"].as_i64().expect("id");
        let worker = worker(&app);
        worker.drain(Timestamp::now(), 1000).await.expect("drain");
        worker.drain(Timestamp::now(), 1000).await.expect("drain again");
        let reports_jobs = jobs_of(&app.db, "report.incident").await;
        assert_eq!(reports_jobs.len(), 1, "one report job for the routing event");
        assert_eq!(reports_jobs[0].state, JobState::Succeeded, "{:?}", reports_jobs[0]);
        assert_eq!(reports_jobs[0].payload["incident_id"], id);
        let listed = app.get(&format!("/api/v1/reports?incident={id}"), Some(&c.admin.token)).await;
        assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
        assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1), "{:?}", listed.body);

        let job = jobs::NewJob::new("report.global", json!({}));
        jobs::enqueue(&app.db, &job, Timestamp::now()).await.expect("enqueue");
        worker.drain(Timestamp::now(), 1000).await.expect("drain the report");
        let global = jobs_of(&app.db, "report.global").await;
        assert_eq!(global[0].state, JobState::Succeeded, "{:?}", global[0]);
        let listed = app.get("/api/v1/reports?kind=global", Some(&c.admin.token)).await;
        let items = listed.body["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1, "{:?}", listed.body);
        let text = items[0].to_string();
        for format in ["json", "csv", "xlsx"] {
            assert!(text.contains(&format!(".{format}")), "the {format} file is recorded: {text}");
        }
    }

    async fn sla_breaches_escalate_once_each_and_raise_urgency_by_policy(app: TestApp) {
        let c = campus(&app).await;
        let policy = app
            .put(&format!("/api/v1/categories/{}/sla/high", c.leak), Some(&c.admin.token),
                json!({ "acknowledge_within_secs": 600, "resolve_within_secs": 3600, "raise_urgency_on_breach": true }))
            .await;
        assert_eq!(policy.status, StatusCode::OK, "{:?}", policy.body);
        let late = report(&app, &c.reporter, json!({
            "category_id": c.leak, "title": "Fuga en el laboratorio", "description": "Nadie la atendió."
        })).await;
        let on_time = report(&app, &c.reporter, json!({
            "category_id": c.leak, "title": "Fuga en la cafetería", "description": "Ya la están viendo."
        })).await;
        let (late, on_time) = (late["id"].as_i64().expect("id"), on_time["id"].as_i64().expect("id"));
        let ack = app.post(&format!("/api/v1/incidents/{on_time}/transitions"), Some(&c.staff_a.token), json!({ "to": "acknowledged" })).await;
        assert_eq!(ack.status, StatusCode::OK, "{:?}", ack.body);
        let hold = app.post(&format!("/api/v1/incidents/{on_time}/transitions"), Some(&c.staff_a.token), json!({ "to": "in_progress" })).await;
        assert_eq!(hold.status, StatusCode::OK, "{:?}", hold.body);
        let hold = app.post(&format!("/api/v1/incidents/{on_time}/transitions"), Some(&c.staff_a.token), json!({ "to": "on_hold" })).await;
        assert_eq!(hold.status, StatusCode::OK, "{:?}", hold.body);

        let worker = worker(&app);
        // Twenty minutes later: only the acknowledge target of the first incident is missed.
        let sweep = || NewJob::new("sla.escalate", json!({}));
        jobs::enqueue(&app.db, &sweep(), Timestamp::now()).await.expect("enqueue");
        worker.drain(Timestamp::now().plus_seconds(20 * 60), 100).await.expect("drain");
        let found = app.get(&format!("/api/v1/incidents/{late}"), Some(&c.admin.token)).await;
        assert_eq!(found.body["urgency"], "emergency", "raised one level");
        let escalated: Vec<Value> = events(&app, &c.admin.token, late).await.into_iter().filter(|e| e["type"] == "incident.escalated").collect();
        assert_eq!(escalated.len(), 1);
        assert_eq!(escalated[0]["type"], "incident.escalated");
        assert_eq!(escalated[0]["data"]["breach"], "acknowledge");
        assert_eq!(escalated[0]["data"]["raised_to"], "emergency");
        assert_eq!(escalated[0]["actor"], "system");
        let version = found.body["version"].as_i64().expect("version");

        // Two hours later, swept twice: the resolve breach escalates once; emergency cannot rise.
        for _ in 0..2 {
            jobs::enqueue(&app.db, &sweep(), Timestamp::now()).await.expect("enqueue");
            worker.drain(Timestamp::now().plus_seconds(2 * 3600), 100).await.expect("drain");
        }
        let escalated: Vec<Value> = events(&app, &c.admin.token, late).await.into_iter().filter(|e| e["type"] == "incident.escalated").collect();
        assert_eq!(escalated.len(), 2, "{escalated:?}");
        assert_eq!(escalated[1]["data"]["breach"], "resolve");
        assert_eq!(escalated[1]["data"]["raised_to"], Value::Null);
        let found = app.get(&format!("/api/v1/incidents/{late}"), Some(&c.admin.token)).await;
        assert_eq!(found.body["version"].as_i64(), Some(version + 1));

        // The incident on hold was acknowledged in time and its resolve clock is stopped.
        let quiet = events(&app, &c.admin.token, on_time).await;
        assert!(quiet.iter().all(|e| e["type"] != "incident.escalated"), "{quiet:?}");
        let sweeps = jobs_of(&app.db, "sla.escalate").await;
        assert!(sweeps.iter().all(|j| j.state == JobState::Succeeded));
    }

    async fn the_assignment_sweep_assigns_waiting_incidents_by_strategy(app: TestApp) {
        let c = campus(&app).await;
        let incident = report(&app, &c.reporter, json!({
            "category_id": c.leak, "title": "Luz quemada", "description": "El pasillo está a oscuras."
        })).await;
        let id = incident["id"].as_i64().expect("id");
        assert_eq!(incident["assignee_id"], Value::Null, "manual strategy: nobody assigned");
        let worker = worker(&app);
        jobs::enqueue(&app.db, &NewJob::new("assignment.sweep", json!({})), Timestamp::now()).await.expect("enqueue");
        worker.drain(Timestamp::now(), 100).await.expect("drain");
        let found = app.get(&format!("/api/v1/incidents/{id}"), Some(&c.admin.token)).await;
        assert_eq!(found.body["assignee_id"], Value::Null, "manual departments are left alone");

        let strategy = app
            .put(&format!("/api/v1/departments/{}", c.dept_a), Some(&c.admin.token),
                json!({ "name": "Mantenimiento", "contact_emails": [], "assignment_strategy": "round_robin" }))
            .await;
        assert_eq!(strategy.status, StatusCode::OK, "{:?}", strategy.body);
        jobs::enqueue(&app.db, &NewJob::new("assignment.sweep", json!({})), Timestamp::now()).await.expect("enqueue");
        worker.drain(Timestamp::now(), 100).await.expect("drain");
        let found = app.get(&format!("/api/v1/incidents/{id}"), Some(&c.admin.token)).await;
        assert_eq!(found.body["assignee_id"], c.staff_a.id);
        let assigned: Vec<Value> = events(&app, &c.admin.token, id).await.into_iter().filter(|e| e["type"] == "incident.assignee_changed").collect();
        assert_eq!(assigned.len(), 1);
        assert_eq!(assigned[0]["data"]["strategy"], "round_robin");
        assert_eq!(assigned[0]["data"]["to"], c.staff_a.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_runs_jobs_in_the_background_and_counts_them_per_kind() {
    for backend in [
        crate::helpers::Backend::Sqlite,
        crate::helpers::Backend::Postgres,
    ] {
        let Some(app) = crate::helpers::spawn_app_with(backend, |c| {
            c.jobs.enabled = true;
            c.jobs.test_handlers = true;
            c.jobs.poll_interval_ms = 20;
            c.jobs.relay_interval_ms = 20;
        })
        .await
        else {
            continue;
        };
        let admin = app.admin().await;
        let id = jobs::enqueue(&app.db, &NewJob::new("noop", json!({})), Timestamp::now())
            .await
            .expect("enqueue")
            .expect("new");
        let c = campus(&app).await;
        report(&app, &c.reporter, json!({
            "category_id": c.leak, "title": "Puerta atascada", "description": "No abre desde ayer."
        }))
        .await;
        wait_for(
            "the background workers",
            Duration::from_secs(30),
            async || {
                let done = jobs::find(&app.db, id).await.expect("job").state == JobState::Succeeded;
                let dispatched = jobs_of(&app.db, "event.dispatch").await;
                done && !dispatched.is_empty()
                    && dispatched.iter().all(|j| j.state == JobState::Succeeded)
            },
        )
        .await;
        let metrics = app.get("/metrics", None).await;
        assert_eq!(metrics.status, StatusCode::OK);
        let text = app
            .client
            .get(format!("{}/metrics", app.url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        assert!(
            text.contains("vigia_jobs_succeeded_total{kind=\"noop\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vigia_jobs_enqueued_total{kind=\"event.dispatch\"}"),
            "{text}"
        );
        assert!(
            text.contains("vigia_job_duration_seconds_count{kind=\"event.dispatch\"}"),
            "{text}"
        );
        drop(admin);
    }
}

// --- The real binary ------------------------------------------------------------------------

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

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
        &NewJob::new("sleep", json!({ "ms": 2500 })),
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
