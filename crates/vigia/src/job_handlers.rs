//! The job handlers that connect the queue to notifications and reports. They live in the
//! binary because they join crates that do not know each other (`vigia-jobs`, `vigia-notify`,
//! `vigia-reports`).
//!
//! | kind | what it does |
//! |---|---|
//! | `event.dispatch` | for a batch of events of the log (incidents' and alerts' in `incident_events`, proctoring's in `exam_events`: one id range covers both): plans the e-mails and webhooks each causes (`vigia_notify::plan`, `vigia_notify::plan_exam`; idempotent), and enqueues one `report.incident` for the batch's routings |
//! | `notification.deliver` | one attempt of one e-mail or webhook delivery (`vigia_notify::attempt`); a failed attempt that may be retried is logged with the job of the next one, due when the backoff (or the receiver's `Retry-After`) says |
//! | `report.incident` | writes `reports/incidents/{department}/incident_{id}.json` for each routing it carries (reruns replace them) |
//! | `report.global` | writes the global report of the last complete quarter hour as JSON, CSV and XLSX, and mails its link to `email.report_recipients` |
//!
//! A delivery's own retry budget (`email.max_attempts`, `webhooks.max_attempts`) decides when
//! it is given up; the job of an attempt is retried by the queue only when the attempt could not
//! run at all (the database was unreachable).

use std::collections::BTreeMap;

use futures::{StreamExt, stream};
use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, EventId, IncidentId};
use vigia_jobs::{BoxFuture, Handler, JobContext, JobError, Registry, wrong_task};
use vigia_notify::Notifier;
use vigia_reports::{Format, Period};
use vigia_store::Objects;
use vigia_store::exam_events::{self, LogEvent};
use vigia_store::jobs::{self, JobKind, NewJob, ReportItem, Task};

/// Registers the handlers of this module.
pub fn register(registry: &mut Registry, notifier: &Notifier, objects: &Objects) {
    registry
        .register(DispatchEvents {
            notifier: notifier.clone(),
        })
        .register(Deliver {
            notifier: notifier.clone(),
        })
        .register(IncidentReport {
            objects: objects.clone(),
        })
        .register(GlobalReport {
            notifier: notifier.clone(),
            objects: objects.clone(),
        });
}

/// Events read per round trip while dispatching a batch.
const EVENT_PAGE: usize = 500;

/// Events of a batch planned at once (planning is idempotent per event, channel and target,
/// and one event's plan does not depend on another's).
const CONCURRENT_PLANS: usize = 32;

/// Incidents of a `report.incident` batch whose reports are written at once; one incident's
/// routings are written in order.
const CONCURRENT_REPORTS: usize = 16;

/// `event.dispatch`.
struct DispatchEvents {
    notifier: Notifier,
}

impl Handler for DispatchEvents {
    fn kind(&self) -> JobKind {
        JobKind::EventDispatch
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let Task::EventDispatch { after, through } = task else {
                return Err(wrong_task(JobKind::EventDispatch, &task));
            };
            let mut reports = Vec::new();
            let mut cursor = after;
            while cursor < through {
                let page = exam_events::log_after(&ctx.db, EventId(cursor), EVENT_PAGE).await?;
                let Some(last) = page.last().map(|e| e.id().0) else {
                    break;
                };
                let batch: Vec<&LogEvent> = page.iter().filter(|e| e.id().0 <= through).collect();
                // Each plan waits on a few group commits: planned one after another, a batch
                // took as long as its commits' latencies added up, not as its work.
                let plans: Vec<_> = batch
                    .iter()
                    .map(|entry| plan_one(&self.notifier, entry))
                    .collect();
                let plans: Vec<(EventId, anyhow::Result<Vec<i64>>)> = stream::iter(plans)
                    .buffer_unordered(CONCURRENT_PLANS)
                    .collect()
                    .await;
                for (event, result) in plans {
                    planned(event, result)?;
                }
                for entry in batch {
                    let LogEvent::Incident(event) = entry else {
                        continue;
                    };
                    // Each routing gets its own report, for the department it routed to: a
                    // quick reroute must not leave the first department without one.
                    let routed_to = match event.kind.as_str() {
                        _ if event.alert_id.is_some() => None,
                        "department_assigned" => event.data["to"].as_i64(),
                        "created" => event.data["department_id"].as_i64(),
                        _ => None,
                    };
                    if let (Some(department_id), Some(incident)) = (routed_to, event.incident_id) {
                        reports.push(ReportItem {
                            incident_id: incident.0,
                            department_id,
                            event_id: event.id.0,
                        });
                    }
                }
                cursor = last;
            }
            if !reports.is_empty() {
                let job = NewJob::new(&Task::IncidentReport { items: reports })
                    .dedup(format!("reports:{through}"));
                jobs::enqueue(&ctx.db, &job, ctx.now).await?;
            }
            Ok(())
        })
    }
}

/// Plans the deliveries of one event of the log.
async fn plan_one(notifier: &Notifier, entry: &LogEvent) -> (EventId, anyhow::Result<Vec<i64>>) {
    match entry {
        LogEvent::Incident(event) => (event.id, vigia_notify::plan(notifier, event).await),
        LogEvent::Exam(event) => (event.id, vigia_notify::plan_exam(notifier, event).await),
    }
}

/// The outcome of planning one event. A message that cannot be planned (say, a template bug)
/// must not hold up the rest of the batch: it is logged and skipped. Database errors retry the
/// batch (planning is idempotent per event, channel and target).
fn planned(event: EventId, result: anyhow::Result<Vec<i64>>) -> Result<(), JobError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.downcast_ref::<vigia_store::StoreError>().is_some() => Err(e.into()),
        Err(e) => {
            tracing::error!(event_id = event.0, error = %format!("{e:#}"), "cannot plan notifications");
            Ok(())
        }
    }
}

/// `notification.deliver`.
struct Deliver {
    notifier: Notifier,
}

impl Handler for Deliver {
    fn kind(&self) -> JobKind {
        JobKind::Deliver
    }

    fn run<'a>(&'a self, _ctx: &'a JobContext, task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let Task::Deliver {
                delivery_id,
                attempt,
            } = task
            else {
                return Err(wrong_task(JobKind::Deliver, &task));
            };
            match vigia_notify::attempt(&self.notifier, delivery_id, attempt).await {
                Ok(outcome) => {
                    tracing::debug!(delivery_id, attempt, ?outcome, "delivery attempt");
                    Ok(())
                }
                Err(e) => match e.downcast_ref::<vigia_store::StoreError>() {
                    Some(vigia_store::StoreError::NotFound) => Err(JobError::permanent(format!(
                        "delivery {delivery_id} does not exist"
                    ))),
                    _ => Err(e.into()),
                },
            }
        })
    }
}

/// `report.incident`.
struct IncidentReport {
    objects: Objects,
}

impl Handler for IncidentReport {
    fn kind(&self) -> JobKind {
        JobKind::IncidentReport
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let Task::IncidentReport { items } = task else {
                return Err(wrong_task(JobKind::IncidentReport, &task));
            };
            // Grouped by incident, in order within each: one incident's routings rewrite
            // the same records one after another; different incidents are written at once.
            let mut by_incident: BTreeMap<i64, Vec<ReportItem>> = BTreeMap::new();
            for item in items {
                by_incident.entry(item.incident_id).or_default().push(item);
            }
            let writes: Vec<_> = by_incident
                .into_values()
                .map(|group| self.write(ctx, group))
                .collect();
            let written: Vec<anyhow::Result<()>> = stream::iter(writes)
                .buffer_unordered(CONCURRENT_REPORTS)
                .collect()
                .await;
            written.into_iter().collect::<anyhow::Result<()>>()?;
            Ok(())
        })
    }
}

impl IncidentReport {
    /// Writes one incident's reports, one routing after another.
    async fn write(&self, ctx: &JobContext, group: Vec<ReportItem>) -> anyhow::Result<()> {
        for item in group {
            let written = vigia_reports::incident::run(
                &ctx.db,
                &self.objects,
                IncidentId(item.incident_id),
                Some(DepartmentId(item.department_id)),
                "system",
            )
            .await?;
            if written.is_none() {
                tracing::debug!(item.incident_id, "no department: no incident report");
            }
        }
        Ok(())
    }
}

/// `report.global`.
struct GlobalReport {
    notifier: Notifier,
    objects: Objects,
}

impl Handler for GlobalReport {
    fn kind(&self) -> JobKind {
        JobKind::GlobalReport
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, _task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let period = Period::window_before(ctx.now, 15);
            let record = vigia_reports::global::run(
                &ctx.db,
                &self.objects,
                period,
                &[Format::Json, Format::Csv, Format::Xlsx],
                "system",
            )
            .await?;
            let recipients = &self.notifier.config().email.report_recipients;
            if !recipients.is_empty() {
                let title = format!(
                    "Vigía {} — {}",
                    format_minute(period.from()),
                    format_minute(period.to())
                );
                let summary = format!(
                    "created {}, resolved {}",
                    record.summary["totals"]["created"], record.summary["totals"]["resolved"]
                );
                let link = format!(
                    "{}/api/v1/reports/{}/download?format=json",
                    self.notifier.config().public_url.trim_end_matches('/'),
                    record.id
                );
                vigia_notify::send_report_email(
                    &self.notifier,
                    recipients,
                    &title,
                    &summary,
                    &link,
                )
                .await?;
            }
            Ok(())
        })
    }
}

fn format_minute(at: Timestamp) -> String {
    let rfc = at.to_rfc3339();
    rfc.get(..16).unwrap_or(&rfc).replace('T', " ")
}
