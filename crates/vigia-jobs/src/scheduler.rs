//! The scheduler: fires configured cron schedules by enqueueing their jobs.
//!
//! Every node may run it. A tick reads the due schedules and fires each with a compare-and-set
//! on its stored next due time ([`vigia_store::schedules::fire`]), so one node wins per due time.
//!
//! **Missed runs.** The next due time is computed from *now*, not from the missed time: after
//! downtime spanning several due times a schedule fires once, at the first tick, then keeps its
//! timetable. (Its jobs look at the data as it is, so one catch-up run does the work of all.)

use vigia_domain::Timestamp;
use vigia_store::Db;
use vigia_store::jobs::JobKind;
use vigia_store::schedules::{self, ScheduleSpec};

use crate::cron::CronExpr;
use crate::handler::Registry;
use crate::metrics::JobMetrics;

/// One configured schedule.
#[derive(Debug, Clone)]
pub struct ScheduleDef {
    pub name: String,
    /// The job kind it enqueues (one without data: see `JobKind::scheduled_task`).
    pub kind: JobKind,
    pub cron: CronExpr,
    pub enabled: bool,
}

pub struct Scheduler {
    db: Db,
    schedules: Vec<ScheduleDef>,
    metrics: JobMetrics,
}

impl Scheduler {
    /// Keeps the schedules whose job kind has a handler in `registry`; the others are logged and
    /// left out (a node that does not run that kind of job).
    pub fn new(db: Db, defs: Vec<ScheduleDef>, registry: &Registry, metrics: JobMetrics) -> Self {
        let schedules = defs
            .into_iter()
            .filter(|d| {
                let known = registry.contains(d.kind);
                if !known && d.enabled {
                    tracing::info!(schedule = %d.name, kind = %d.kind,
                        "schedule not active: no handler is registered for its job kind");
                }
                known
            })
            .collect();
        Self {
            db,
            schedules,
            metrics,
        }
    }

    /// The active schedules.
    pub fn schedules(&self) -> &[ScheduleDef] {
        &self.schedules
    }

    /// Writes the configured schedules to the database (see [`schedules::sync`]).
    pub async fn sync(&self, now: Timestamp) -> anyhow::Result<()> {
        let specs: Vec<ScheduleSpec> = self
            .schedules
            .iter()
            .filter_map(|d| {
                Some(ScheduleSpec {
                    name: d.name.clone(),
                    kind: d.kind.as_str().to_owned(),
                    cron: d.cron.as_str().to_owned(),
                    enabled: d.enabled,
                    next_run_at: d.cron.next_after(now)?,
                })
            })
            .collect();
        schedules::sync(&self.db, &specs, now).await?;
        Ok(())
    }

    /// Fires every schedule due at `now`; returns the names this node fired.
    pub async fn tick(&self, now: Timestamp) -> anyhow::Result<Vec<String>> {
        let mut fired = Vec::new();
        for due in schedules::due(&self.db, now).await? {
            let Some(def) = self.schedules.iter().find(|d| d.name == due.name) else {
                continue;
            };
            if def.cron.as_str() != due.cron {
                // Another node runs a different configuration; let the node that wrote it fire.
                continue;
            }
            let Some(next) = def.cron.next_after(now) else {
                continue;
            };
            if let Some((run, job)) = schedules::fire(&self.db, &due, next, now).await? {
                tracing::info!(schedule = %due.name, run_id = run, job_id = %job, "schedule fired");
                self.metrics.enqueued(&due.kind, 1);
                fired.push(due.name);
            }
        }
        Ok(fired)
    }
}
