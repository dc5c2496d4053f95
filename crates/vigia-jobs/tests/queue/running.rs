//! Jobs: retries with backoff, the dead-letter list, leases after a worker dies, draining,
//! deduplication and concurrent workers.

use super::*;

#[tokio::test]
async fn a_failing_job_is_retried_with_backoff_then_succeeds() {
    for (db, _dir) in databases().await {
        let runs = Arc::new(AtomicU32::new(0));
        let mut registry = Registry::new();
        registry.register(Flaky {
            failures: 2,
            runs: runs.clone(),
        });
        let worker = worker(&db, registry);
        let id = jobs::enqueue(&db, &NewJob::new(&Task::Noop { n: 0 }), at(0))
            .await
            .expect("enqueue")
            .expect("new job");

        assert_eq!(worker.drain(at(0), 100).await.expect("drain"), 1);
        let job = jobs::find(&db, id).await.expect("job");
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.last_error.as_deref(), Some("transient failure 1"));
        // First retry after 5..10 s (base 10 s, jitter in the upper half).
        assert!(
            job.run_at >= at(5) && job.run_at <= at(10),
            "{:?}",
            job.run_at
        );
        assert_eq!(
            worker.drain(at(4), 100).await.expect("drain"),
            0,
            "not due yet"
        );

        assert_eq!(worker.drain(at(10), 100).await.expect("drain"), 1);
        let job = jobs::find(&db, id).await.expect("job");
        assert_eq!(job.state, JobState::Failed);
        assert!(
            job.run_at >= at(10 + 10) && job.run_at <= at(10 + 20),
            "the delay doubled"
        );

        assert_eq!(worker.drain(at(30), 100).await.expect("drain"), 1);
        let job = jobs::find(&db, id).await.expect("job");
        assert_eq!(job.state, JobState::Succeeded);
        assert_eq!(job.attempts, 3);
        assert_eq!(job.finished_at, Some(at(30)));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}

#[tokio::test]
async fn a_job_out_of_attempts_goes_to_the_dead_letter_list() {
    for (db, _dir) in databases().await {
        let runs = Arc::new(AtomicU32::new(0));
        let mut registry = Registry::new();
        registry.register(Flaky {
            failures: u32::MAX,
            runs: runs.clone(),
        });
        let worker = worker(&db, registry);
        let id = jobs::enqueue(
            &db,
            &NewJob::new(&Task::Noop { n: 0 }).max_attempts(3),
            at(0),
        )
        .await
        .expect("enqueue")
        .expect("new job");
        for hour in 0..10 {
            worker.drain(at(hour * 3600), 100).await.expect("drain");
        }
        let job = jobs::find(&db, id).await.expect("job");
        assert_eq!(job.state, JobState::Dead);
        assert_eq!(job.attempts, 3);
        assert_eq!(runs.load(Ordering::SeqCst), 3, "no attempt after the last");
        let error = job.last_error.expect("error kept");
        assert!(
            error.contains("transient failure 3") && error.contains("gave up after 3 attempts"),
            "{error}"
        );
        let dead = jobs::list(
            &db,
            &jobs::JobFilter {
                state: Some(JobState::Dead),
                kind: None,
            },
            None,
            10,
        )
        .await
        .expect("list");
        assert_eq!(dead.items.len(), 1);
    }
}

#[tokio::test]
async fn permanent_errors_are_dead_lettered_at_once_and_other_kinds_are_left_to_their_workers() {
    for (db, _dir) in databases().await {
        let mut registry = Registry::new();
        registry.register(Rejects);
        let worker = worker(&db, registry);
        let reason = "the receiver said 400 Bad Request";
        let rejected = jobs::enqueue(
            &db,
            &NewJob::new(&Task::Fail {
                reason: reason.into(),
            }),
            at(0),
        )
        .await
        .expect("enqueue")
        .expect("new");
        // This worker has no `sleep` handler: it does not claim the job, let alone bury it.
        let other = jobs::enqueue(&db, &NewJob::new(&Task::Sleep { ms: 1 }), at(0))
            .await
            .expect("enqueue")
            .expect("new");
        assert_eq!(worker.drain(at(0), 100).await.expect("drain"), 1);
        let job = jobs::find(&db, rejected).await.expect("job");
        assert_eq!((job.state, job.attempts), (JobState::Dead, 1));
        assert_eq!(job.last_error.as_deref(), Some(reason));
        let job = jobs::find(&db, other).await.expect("job");
        assert_eq!(
            (job.state, job.attempts),
            (JobState::Queued, 0),
            "left alone"
        );
    }
}

#[tokio::test]
async fn a_stored_payload_that_is_not_its_kinds_task_is_dead_lettered_with_the_reason() {
    for (db, _dir) in databases().await {
        let mut registry = Registry::new();
        vigia_jobs::builtin::register_defaults(&mut registry, Duration::from_secs(60), true);
        let worker = worker(&db, registry);
        let bad = NewJob {
            kind: JobKind::Sleep,
            payload: json!({ "ms": "soon" }),
            dedup_key: None,
            run_at: None,
            max_attempts: None,
        };
        let id = jobs::enqueue(&db, &bad, at(0))
            .await
            .expect("enqueue")
            .expect("new");
        assert_eq!(worker.drain(at(0), 100).await.expect("drain"), 1);
        let job = jobs::find(&db, id).await.expect("job");
        assert_eq!((job.state, job.attempts), (JobState::Dead, 1));
        let error = job.last_error.expect("error");
        assert!(error.contains("not a sleep job"), "{error}");
    }
}

#[tokio::test]
async fn a_job_whose_worker_died_runs_again_after_its_lease_and_its_effect_happens_once() {
    for (db, _dir) in databases().await {
        let runs = Arc::new(AtomicU32::new(0));
        let mut registry = Registry::new();
        registry.register(Effect { runs: runs.clone() });
        let survivor = worker(&db, registry.clone());
        let id = jobs::enqueue(&db, &NewJob::new(&Task::Noop { n: 7 }), at(0))
            .await
            .expect("enqueue")
            .expect("new");

        // A worker claims the job, runs its effect, and dies before recording the outcome.
        let claimed = queue::claim(&db, "worker-that-dies", &[JobKind::Noop], 10, at(30), at(0))
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        let ghost = Worker::new(db.clone(), Arc::new(registry), config(), JobMetrics::new());
        let ctx = JobContext {
            db: db.clone(),
            job_id: id,
            kind: JobKind::Noop,
            attempt: 1,
            max_attempts: 5,
            now: at(1),
        };
        Effect { runs: runs.clone() }
            .run(&ctx, Task::Noop { n: 7 })
            .await
            .expect("effect");
        drop(ghost);

        // While the lease holds, nobody else takes it.
        assert_eq!(
            survivor.try_execute_task(at(20)).await.expect("try"),
            ExecutionOutcome::EmptyQueue
        );
        assert_eq!(
            jobs::find(&db, id).await.expect("job").state,
            JobState::Running
        );

        // After it expires, another worker does.
        match survivor.try_execute_task(at(31)).await.expect("try") {
            ExecutionOutcome::TaskCompleted { id: ran, state, .. } => {
                assert_eq!((ran, state), (id, "succeeded"));
            }
            other => panic!("expected the expired job to run, got {other:?}"),
        }
        let job = jobs::find(&db, id).await.expect("job");
        assert_eq!((job.state, job.attempts), (JobState::Succeeded, 2));
        assert_eq!(runs.load(Ordering::SeqCst), 2, "the handler ran twice");
        let effects = jobs::list(
            &db,
            &jobs::JobFilter {
                state: None,
                kind: Some("fail".into()),
            },
            None,
            10,
        )
        .await
        .expect("list");
        assert_eq!(effects.items.len(), 1, "the effect happened once");

        // The dead worker's late report changes nothing.
        let late = queue::finish(
            &db,
            "worker-that-dies",
            &[(
                id,
                queue::Outcome::Dead {
                    error: "late".into(),
                },
            )],
            at(40),
        )
        .await
        .expect("finish");
        assert_eq!(late, 0);
        assert_eq!(
            jobs::find(&db, id).await.expect("job").state,
            JobState::Succeeded
        );
    }
}

#[tokio::test]
async fn drain_runs_exactly_the_due_jobs_and_dedup_keys_enqueue_once() {
    for (db, _dir) in databases().await {
        let runs = Arc::new(AtomicU32::new(0));
        let mut registry = Registry::new();
        registry.register(Flaky {
            failures: 0,
            runs: runs.clone(),
        });
        let worker = worker(&db, registry);
        let batch: Vec<NewJob> = (0..10)
            .map(|i| NewJob::new(&Task::Noop { n: i }).dedup(format!("k{}", i % 5)))
            .collect();
        assert_eq!(
            jobs::enqueue_batch(&db, &batch, at(0))
                .await
                .expect("batch"),
            5
        );
        jobs::enqueue(
            &db,
            &NewJob::new(&Task::Noop { n: 0 }).run_at(at(60)),
            at(0),
        )
        .await
        .expect("enqueue");
        assert_eq!(worker.drain(at(0), 100).await.expect("drain"), 5);
        assert_eq!(runs.load(Ordering::SeqCst), 5);
        assert_eq!(worker.drain(at(0), 100).await.expect("drain"), 0);
        assert_eq!(
            worker.drain(at(60), 100).await.expect("drain"),
            1,
            "the delayed job"
        );
    }
}

#[tokio::test]
async fn workers_run_jobs_concurrently_and_stop_on_shutdown() {
    for (db, _dir) in databases().await {
        let runs = Arc::new(AtomicU32::new(0));
        let mut registry = Registry::new();
        registry.register(Flaky {
            failures: 0,
            runs: runs.clone(),
        });
        let batch: Vec<NewJob> = (0..300)
            .map(|i| NewJob::new(&Task::Noop { n: i }))
            .collect();
        jobs::enqueue_batch(&db, &batch, Timestamp::now())
            .await
            .expect("batch");
        let worker = Arc::new(Worker::new(
            db.clone(),
            Arc::new(registry),
            WorkerConfig {
                poll_interval: Duration::from_millis(20),
                ..config()
            },
            JobMetrics::new(),
        ));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(worker.run(shutdown.clone(), Duration::from_secs(5)));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let done = jobs::list(
                &db,
                &jobs::JobFilter {
                    state: Some(JobState::Succeeded),
                    kind: None,
                },
                None,
                200,
            )
            .await
            .expect("list");
            if done.items.len() == 200 && done.next_cursor.is_some() {
                let counts = jobs::counts(&db).await.expect("counts");
                if counts
                    .iter()
                    .any(|(_, s, n)| *s == JobState::Succeeded && *n == 300)
                {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "workers did not finish: {:?}",
                jobs::counts(&db).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shutdown.cancel();
        running.await.expect("worker stops");
        assert_eq!(runs.load(Ordering::SeqCst), 300, "each job ran once");
    }
}
