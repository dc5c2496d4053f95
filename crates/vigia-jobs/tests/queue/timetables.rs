//! Schedules (timetables): one job per due time, and one after downtime.

use super::*;

fn noop_registry() -> Registry {
    struct Noop;
    impl Handler for Noop {
        fn kind(&self) -> JobKind {
            JobKind::Noop
        }
        fn run<'a>(&'a self, _: &'a JobContext, _: Task) -> BoxFuture<'a, Result<(), JobError>> {
            Box::pin(async { Ok(()) })
        }
    }
    let mut registry = Registry::new();
    registry.register(Noop);
    registry
}

#[tokio::test]
async fn a_schedule_fires_once_per_due_time_and_once_after_downtime() {
    for (db, _dir) in databases().await {
        let registry = noop_registry();
        let defs = vec![
            ScheduleDef {
                name: "minutely".into(),
                kind: JobKind::Noop,
                cron: CronExpr::parse("* * * * *").expect("cron"),
                enabled: true,
            },
            ScheduleDef {
                name: "unhandled".into(),
                kind: JobKind::GlobalReport,
                cron: CronExpr::parse("*/15 * * * *").expect("cron"),
                enabled: true,
            },
        ];
        let node_a = Scheduler::new(db.clone(), defs.clone(), &registry, JobMetrics::new());
        let node_b = Scheduler::new(db.clone(), defs, &registry, JobMetrics::new());
        assert_eq!(
            node_a.schedules().len(),
            1,
            "kinds without a handler are not scheduled"
        );
        let start = Timestamp::from_millis(T0 - T0 % 60_000 + 30_000); // hh:mm:30
        node_a.sync(start).await.expect("sync");
        node_b.sync(start).await.expect("sync");
        assert!(
            node_a.tick(start).await.expect("tick").is_empty(),
            "not due before its time"
        );

        // Both nodes tick after the due time: one fires.
        let due = Timestamp::from_millis(start.millis() + 31_000);
        let fired_a = node_a.tick(due).await.expect("tick");
        let fired_b = node_b.tick(due).await.expect("tick");
        assert_eq!(fired_a.len() + fired_b.len(), 1);

        // Ten minutes of downtime: one catch-up run, not ten.
        let later = Timestamp::from_millis(due.millis() + 10 * 60_000 + 5_000);
        assert_eq!(node_b.tick(later).await.expect("tick"), ["minutely"]);
        assert!(node_a.tick(later).await.expect("tick").is_empty());
        let schedule = schedules::find(&db, "minutely").await.expect("schedule");
        assert_eq!(schedule.next_run_at.millis() % 60_000, 0);
        assert!(
            schedule.next_run_at > later
                && schedule.next_run_at.millis() - later.millis() <= 60_000
        );

        let runs = schedules::runs(&db, "minutely", None, 50)
            .await
            .expect("runs");
        assert_eq!(runs.items.len(), 2);
        assert!(
            runs.items
                .iter()
                .all(|r| r.status == "queued" && r.triggered_by == "cron")
        );

        // Running the jobs completes the runs with a duration.
        let worker = worker(&db, registry);
        assert_eq!(worker.drain(later, 100).await.expect("drain"), 2);
        let runs = schedules::runs(&db, "minutely", None, 50)
            .await
            .expect("runs");
        assert!(
            runs.items
                .iter()
                .all(|r| r.status == "succeeded" && r.duration_ms == Some(0)),
            "{:?}",
            runs.items
        );

        // Paused schedules do not fire; the pause survives a re-sync.
        schedules::set_paused(&db, "minutely", true, later)
            .await
            .expect("pause");
        node_a.sync(later).await.expect("sync");
        let much_later = Timestamp::from_millis(later.millis() + 3_600_000);
        assert!(node_a.tick(much_later).await.expect("tick").is_empty());
        assert!(
            schedules::find(&db, "minutely")
                .await
                .expect("schedule")
                .paused
        );
    }
}
