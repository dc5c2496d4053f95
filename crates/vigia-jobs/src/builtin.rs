//! The handlers Vigía registers itself.
//!
//! | kind | what it does |
//! |---|---|
//! | `event.dispatch` | one per incident event (see [`vigia_store::jobs::relay`]); nothing subscribes yet, so it completes — register a handler of the same kind to replace it |
//! | `sla.escalate` | escalates SLA breaches once each ([`vigia_store::incidents::escalation`]) |
//! | `assignment.sweep` | auto-assigns unassigned incidents of departments with a strategy |
//! | `cleanup` | deletes old finished jobs and run history, expired sessions, idempotency keys and rate-limit keys |
//! | `noop`, `sleep` | for tests and benchmarks, only with `jobs.test_handlers = true` |

use std::time::Duration;

use serde::Deserialize;
use vigia_domain::Timestamp;
use vigia_store::jobs::relay::EVENT_DISPATCH;
use vigia_store::{idempotency, incidents, jobs, rate_limits, schedules, sessions};

use crate::handler::{BoxFuture, Handler, JobContext, JobError, Registry};

/// How many breaches / incidents one sweep handles; the next run continues.
const SWEEP_LIMIT: usize = 500;

/// Registers the built-in handlers. `retention` is how long finished jobs and run history are
/// kept; `test_handlers` adds `noop` and `sleep`.
pub fn register_defaults(registry: &mut Registry, retention: Duration, test_handlers: bool) {
    registry
        .register(EventDispatch)
        .register(SlaEscalate)
        .register(AssignmentSweep)
        .register(Cleanup { retention });
    if test_handlers {
        registry.register(Noop).register(Sleep);
    }
}

/// `event.dispatch`: nothing is subscribed to incident events yet, so it completes. The
/// notification fan-out replaces it by registering its own `event.dispatch` handler.
pub struct EventDispatch;

impl Handler for EventDispatch {
    fn kind(&self) -> &'static str {
        EVENT_DISPATCH
    }

    fn run<'a>(
        &'a self,
        _ctx: &'a JobContext,
        _payload: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async { Ok(()) })
    }
}

/// `sla.escalate`.
pub struct SlaEscalate;

impl Handler for SlaEscalate {
    fn kind(&self) -> &'static str {
        "sla.escalate"
    }

    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
        _payload: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), JobError>> {
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
    fn kind(&self) -> &'static str {
        "assignment.sweep"
    }

    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
        _payload: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), JobError>> {
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
    fn kind(&self) -> &'static str {
        "cleanup"
    }

    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
        _payload: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), JobError>> {
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

/// `noop` (tests, benchmarks): completes at once.
pub struct Noop;

impl Handler for Noop {
    fn kind(&self) -> &'static str {
        "noop"
    }

    fn run<'a>(
        &'a self,
        _ctx: &'a JobContext,
        _payload: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async { Ok(()) })
    }
}

/// `sleep` (tests): waits `{"ms": N}` milliseconds, then completes.
pub struct Sleep;

#[derive(Deserialize)]
struct SleepPayload {
    ms: u64,
}

impl Handler for Sleep {
    fn kind(&self) -> &'static str {
        "sleep"
    }

    fn run<'a>(
        &'a self,
        _ctx: &'a JobContext,
        payload: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let SleepPayload { ms } = serde_json::from_value(payload)
                .map_err(|e| JobError::permanent(format!("payload must be {{\"ms\": N}}: {e}")))?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(())
        })
    }
}
