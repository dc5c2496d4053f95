//! The handlers Vigía registers itself.
//!
//! | kind | what it does |
//! |---|---|
//! | `sla.escalate` | escalates SLA breaches once each ([`vigia_store::incidents::escalation`]) |
//! | `assignment.sweep` | auto-assigns unassigned incidents of departments with a strategy |
//! | `cleanup` | deletes old finished jobs and run history, expired sessions, idempotency keys and rate-limit keys |
//! | `noop`, `sleep`, `fail` | for tests, only with `jobs.test_handlers = true` |
//! | `bench` | registered only by `vigia jobs bench`, on its own scratch database |
//!
//! The handlers that need notifications and reports (`event.dispatch`, `report.*`) are the
//! binary's (`vigia::job_handlers`): there is no placeholder for them here, so a worker without
//! them does not claim those jobs at all.

use std::time::Duration;

use vigia_domain::Timestamp;
use vigia_store::jobs::{JobKind, Task};
use vigia_store::{idempotency, incidents, jobs, rate_limits, schedules, sessions};

use crate::handler::{BoxFuture, Handler, JobContext, JobError, Registry, wrong_task};

/// How many breaches / incidents one sweep handles; the next run continues.
const SWEEP_LIMIT: usize = 500;

/// Registers the built-in handlers. `retention` is how long finished jobs and run history are
/// kept; `test_handlers` adds `noop`, `sleep` and `fail`.
pub fn register_defaults(registry: &mut Registry, retention: Duration, test_handlers: bool) {
    registry
        .register(SlaEscalate)
        .register(AssignmentSweep)
        .register(Cleanup { retention });
    if test_handlers {
        registry.register(Noop).register(Sleep).register(Fail);
    }
}

/// `sla.escalate`.
pub struct SlaEscalate;

impl Handler for SlaEscalate {
    fn kind(&self) -> JobKind {
        JobKind::SlaEscalate
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, _task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let done =
                incidents::escalation::escalate_breaches(&ctx.db, ctx.now, SWEEP_LIMIT).await?;
            if !done.is_empty() {
                tracing::info!(escalated = done.len(), "SLA breaches escalated");
            }
            Ok(())
        })
    }
}

/// `assignment.sweep`.
pub struct AssignmentSweep;

impl Handler for AssignmentSweep {
    fn kind(&self) -> JobKind {
        JobKind::AssignmentSweep
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, _task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let done = incidents::sweep::assign_unassigned(&ctx.db, ctx.now, SWEEP_LIMIT).await?;
            if !done.is_empty() {
                tracing::info!(assigned = done.len(), "unassigned incidents auto-assigned");
            }
            Ok(())
        })
    }
}

/// `cleanup`.
pub struct Cleanup {
    pub retention: Duration,
}

impl Handler for Cleanup {
    fn kind(&self) -> JobKind {
        JobKind::Cleanup
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, _task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let before = Timestamp::from_millis(
                ctx.now.millis() - i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX),
            );
            let jobs = jobs::purge_finished(&ctx.db, before).await?;
            let runs = schedules::purge_runs(&ctx.db, before).await?;
            let sessions = sessions::purge_expired(&ctx.db, ctx.now).await?;
            let keys = idempotency::purge(&ctx.db, ctx.now.plus_seconds(-24 * 3600)).await?;
            let limits = rate_limits::purge(&ctx.db, ctx.now).await?;
            tracing::info!(jobs, runs, sessions, keys, limits, "cleanup done");
            Ok(())
        })
    }
}

/// `noop` (tests): completes at once.
pub struct Noop;

impl Handler for Noop {
    fn kind(&self) -> JobKind {
        JobKind::Noop
    }

    fn run<'a>(&'a self, _ctx: &'a JobContext, _task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async { Ok(()) })
    }
}

/// `sleep` (tests): waits its `ms` milliseconds, then completes.
pub struct Sleep;

impl Handler for Sleep {
    fn kind(&self) -> JobKind {
        JobKind::Sleep
    }

    fn run<'a>(&'a self, _ctx: &'a JobContext, task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let Task::Sleep { ms } = task else {
                return Err(wrong_task(JobKind::Sleep, &task));
            };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(())
        })
    }
}

/// `fail` (tests): fails permanently with its reason.
pub struct Fail;

impl Handler for Fail {
    fn kind(&self) -> JobKind {
        JobKind::Fail
    }

    fn run<'a>(&'a self, _ctx: &'a JobContext, task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let Task::Fail { reason } = task else {
                return Err(wrong_task(JobKind::Fail, &task));
            };
            Err(JobError::permanent(reason))
        })
    }
}

/// `bench` (`vigia jobs bench` only): completes at once. The bench registers nothing else, so
/// its worker claims bench jobs only.
pub struct Bench;

impl Handler for Bench {
    fn kind(&self) -> JobKind {
        JobKind::Bench
    }

    fn run<'a>(&'a self, _ctx: &'a JobContext, _task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async { Ok(()) })
    }
}
