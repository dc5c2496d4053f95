//! Background work end to end: the admin API over the queue, the event relay, SLA escalation,
//! the assignment sweep; the real binary in `process` — a job survives `kill -9`, a schedule
//! fires once across two nodes, a malformed cron expression stops the start.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use vigia_domain::Timestamp;
use vigia_jobs::{JobMetrics, Worker};
use vigia_store::jobs::{self, JobFilter, JobState, NewJob, Task};
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
    worker_with(app, &app.config)
}

/// The same with the handlers of `config`.
pub(crate) fn worker_with(app: &TestApp, config: &vigia::Config) -> Worker {
    Worker::new(
        app.db.clone(),
        Arc::new(registry(app, config)),
        vigia::jobs::worker_config(config),
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
        let reason = "the receiver said 400 Bad Request";
        let id = jobs::enqueue(&app.db, &NewJob::new(&Task::Fail { reason: reason.into() }), Timestamp::now())
            .await
            .expect("enqueue")
            .expect("new job");
        let mut config = app.config.clone();
        config.jobs.test_handlers = true;
        let worker = || worker_with(&app, &config);
        assert_eq!(worker().drain(Timestamp::now(), 100).await.expect("drain"), 1);

        let dead = app.get("/api/v1/jobs?state=dead", Some(&admin.token)).await;
        assert_eq!(dead.status, StatusCode::OK, "{:?}", dead.body);
        let item = &dead.body["items"][0];
        assert_eq!(item["id"], id.0);
        assert_eq!(item["state"], "dead");
        assert_eq!(item["kind"], "fail");
        assert_eq!(item["payload"]["reason"], reason);
        assert_eq!(item["last_error"], reason);
        let by_kind = app.get("/api/v1/jobs?kind=fail", Some(&admin.token)).await;
        assert_eq!(by_kind.body["items"].as_array().map(Vec::len), Some(1));
        let none = app.get("/api/v1/jobs?state=queued&kind=fail", Some(&admin.token)).await;
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
        assert_eq!(worker().drain(Timestamp::now(), 100).await.expect("drain"), 0, "a cancelled job does not run");
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
        assert_eq!(names, ["assignment_sweep", "cleanup", "detections_retention", "media_scan", "report_detections", "report_global", "sla_escalate"], "every schedule has its handler");

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

    async fn incident_events_become_batched_dispatch_jobs_that_cover_each_event_once(app: TestApp) {
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
        let expected: Vec<i64> = history.iter().map(|e| e["id"].as_i64().expect("id")).collect();
        // The batches' ranges `(after, through]` do not overlap, and each event is in one.
        let ranges: Vec<(i64, i64)> = dispatched
            .iter()
            .map(|j| (j.payload["after"].as_i64().expect("after"), j.payload["through"].as_i64().expect("through")))
            .collect();
        for event in &expected {
            let covering = ranges.iter().filter(|(after, through)| after < event && event <= through).count();
            assert_eq!(covering, 1, "event {event} is in exactly one batch: {ranges:?}");
        }
        assert_eq!(dispatched.len(), 1, "the events of one drain are one batch: {ranges:?}");
        assert!(dispatched.iter().all(|j| j.state == JobState::Succeeded));
        let batch = &dispatched[0];
        assert_eq!(batch.payload["type"], "event.dispatch");
        assert_eq!(batch.dedup_key.as_deref(), Some(format!("events:{}", ranges[0].1).as_str()));
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
        assert_eq!(reports_jobs.len(), 1, "one report job for the batch");
        assert_eq!(reports_jobs[0].state, JobState::Succeeded, "{:?}", reports_jobs[0]);
        assert_eq!(reports_jobs[0].payload["items"][0]["incident_id"], id);
        assert_eq!(reports_jobs[0].payload["items"].as_array().map(Vec::len), Some(1), "one routing");
        let listed = app.get(&format!("/api/v1/reports?incident={id}"), Some(&c.admin.token)).await;
        assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
        assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1), "{:?}", listed.body);

        let job = jobs::NewJob::new(&Task::GlobalReport {});
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
        let sweep = || NewJob::new(&Task::SlaEscalate {});
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
        jobs::enqueue(&app.db, &NewJob::new(&Task::AssignmentSweep {}), Timestamp::now()).await.expect("enqueue");
        worker.drain(Timestamp::now(), 100).await.expect("drain");
        let found = app.get(&format!("/api/v1/incidents/{id}"), Some(&c.admin.token)).await;
        assert_eq!(found.body["assignee_id"], Value::Null, "manual departments are left alone");

        let strategy = app
            .put(&format!("/api/v1/departments/{}", c.dept_a), Some(&c.admin.token),
                json!({ "name": "Mantenimiento", "contact_emails": [], "assignment_strategy": "round_robin" }))
            .await;
        assert_eq!(strategy.status, StatusCode::OK, "{:?}", strategy.body);
        jobs::enqueue(&app.db, &NewJob::new(&Task::AssignmentSweep {}), Timestamp::now()).await.expect("enqueue");
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
        let id = jobs::enqueue(
            &app.db,
            &NewJob::new(&Task::Noop { n: 0 }),
            Timestamp::now(),
        )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_the_dispatch_handler_neither_relays_nor_claims_dispatch_jobs() {
    let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await else {
        return;
    };
    let c = campus(&app).await;
    report(
        &app,
        &c.reporter,
        json!({
            "category_id": c.leak, "title": "Puerta atascada", "description": "No abre desde ayer."
        }),
    )
    .await;
    // Built-ins only: no `event.dispatch` handler and so no placeholder completing them.
    let mut registry = vigia_jobs::Registry::new();
    vigia_jobs::builtin::register_defaults(&mut registry, Duration::from_secs(60), true);
    assert!(!registry.contains(jobs::JobKind::EventDispatch));
    let partial = Worker::new(
        app.db.clone(),
        Arc::new(registry),
        vigia::jobs::worker_config(&app.config),
        JobMetrics::new(),
    );
    assert_eq!(
        partial.drain(Timestamp::now(), 100).await.expect("drain"),
        0
    );
    assert!(
        jobs_of(&app.db, "event.dispatch").await.is_empty(),
        "nothing relayed"
    );
    // The full worker relays the events and dispatches them for real.
    worker(&app)
        .drain(Timestamp::now(), 100)
        .await
        .expect("drain");
    let dispatched = jobs_of(&app.db, "event.dispatch").await;
    assert_eq!(dispatched.len(), 1);
    jobs::enqueue(
        &app.db,
        &NewJob::new(&Task::EventDispatch {
            after: 0,
            through: 0,
        }),
        Timestamp::now(),
    )
    .await
    .expect("enqueue");
    assert_eq!(
        partial.drain(Timestamp::now(), 100).await.expect("drain"),
        0,
        "not claimed"
    );
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

mod process;
