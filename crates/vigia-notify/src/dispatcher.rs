//! The delivery dispatcher: it attempts deliveries whose time has come (each delivery keeps its
//! own schedule: backoff with jitter, the receiver's `Retry-After`). Where the job queue runs
//! (`jobs.enabled`), events are planned by its `event.dispatch` jobs; without it the dispatcher
//! also follows the incident event outbox itself (cursor in `notification_cursor`) and plans
//! each event ([`Planning::FollowEvents`]). Every step is idempotent, so several nodes may run it at once: planning
//! is unique per (event, channel, target) and an attempt first claims its delivery.

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use vigia_domain::Timestamp;
use vigia_domain::ids::EventId;
use vigia_store::incidents::events;
use vigia_store::notifications;

use crate::{Notifier, attempt, plan};

/// Deliveries attempted at once.
const CONCURRENCY: usize = 8;

/// Who plans events into deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planning {
    /// The dispatcher follows the event outbox itself (no job queue on this installation).
    FollowEvents,
    /// The job queue's `event.dispatch` jobs plan; the dispatcher only attempts deliveries.
    ByJobs,
}

/// Runs until `shutdown` is cancelled.
pub async fn run(n: Notifier, planning: Planning, shutdown: CancellationToken) {
    let interval = n.config().poll_interval;
    loop {
        if let Err(e) = tick(&n, planning).await {
            tracing::warn!(error = %format!("{e:#}"), "notification dispatcher");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Plans the events after the planner's cursor and moves the cursor past them.
async fn plan_new_events(n: &Notifier) -> anyhow::Result<()> {
    let db = n.db();
    let mut cursor = notifications::planner_cursor(db).await?;
    loop {
        let batch = events::list_after(db, EventId(cursor), 200).await?;
        let Some(last) = batch.last().map(|e| e.id.0) else {
            break;
        };
        for event in &batch {
            // A message that cannot be planned (say, a template bug) must not hold up every
            // later one: it is logged and skipped. Database errors stop here and are retried.
            if let Err(e) = plan(n, event).await {
                if e.downcast_ref::<vigia_store::StoreError>().is_some() {
                    notifications::set_planner_cursor(db, event.id.0 - 1).await?;
                    return Err(e);
                }
                tracing::error!(event_id = event.id.0, error = %format!("{e:#}"), "cannot plan notifications");
            }
        }
        notifications::set_planner_cursor(db, last).await?;
        cursor = last;
    }
    Ok(())
}

/// Plans every new event (with [`Planning::FollowEvents`]), then attempts every due delivery
/// once. Returns how many attempts were made.
pub async fn tick(n: &Notifier, planning: Planning) -> anyhow::Result<usize> {
    let db = n.db();
    if planning == Planning::FollowEvents {
        plan_new_events(n).await?;
    }
    let due = notifications::due(db, Timestamp::now(), 100).await?;
    let count = due.len();
    futures::stream::iter(due)
        .for_each_concurrent(CONCURRENCY, |id| async move {
            if let Err(e) = attempt(n, id).await {
                tracing::warn!(delivery_id = id, error = %format!("{e:#}"), "delivery attempt failed to run");
            }
        })
        .await;
    Ok(count)
}
