//! The job handlers that connect the queue to notifications and reports. They live in the
//! binary because they join crates that do not know each other (`vigia-jobs`, `vigia-notify`,
//! `vigia-reports`).
//!
//! | kind | what it does |
//! |---|---|
//! | `event.dispatch` | plans the e-mails and webhooks one incident event causes (`vigia_notify::plan`, idempotent); for an incident routed to a department it enqueues `report.incident` |
//! | `report.incident` | writes `reports/incidents/{department}/incident_{id}.json` for the department of the routing event that caused it (reruns replace it) |
//! | `report.global` | writes the global report of the last complete quarter hour as JSON, CSV and XLSX, and mails its link to `email.report_recipients` |
//!
//! Deliveries themselves are attempted by the notification dispatcher, which keeps each
//! delivery's own schedule (backoff, `Retry-After`) and its per-attempt log.

use serde::Deserialize;
use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, EventId, IncidentId};
use vigia_jobs::{BoxFuture, Handler, JobContext, JobError, Registry};
use vigia_notify::Notifier;
use vigia_reports::{Format, Period};
use vigia_store::Objects;
use vigia_store::incidents::events;
use vigia_store::jobs::{self, NewJob};

/// Registers the handlers of this module, replacing the built-in `event.dispatch`.
pub fn register(registry: &mut Registry, notifier: &Notifier, objects: &Objects) {
    registry
        .register(DispatchEvent {
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

#[derive(Deserialize)]
struct EventPayload {
    event_id: i64,
}

#[derive(Deserialize)]
struct IncidentPayload {
    incident_id: i64,
    /// The department the routing event sent it to; absent in jobs queued before it was carried
    /// (then: the incident's current department).
    #[serde(default)]
    department_id: Option<i64>,
}

fn payload<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, JobError> {
    serde_json::from_value(value).map_err(|e| JobError::permanent(format!("bad payload: {e}")))
}

/// `event.dispatch`.
struct DispatchEvent {
    notifier: Notifier,
}

impl Handler for DispatchEvent {
    fn kind(&self) -> &'static str {
        jobs::relay::EVENT_DISPATCH
    }

    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
        payload_json: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let EventPayload { event_id } = payload(payload_json)?;
            let found = events::list_after(&ctx.db, EventId(event_id - 1), 1).await?;
            let Some(event) = found.into_iter().find(|e| e.id.0 == event_id) else {
                return Err(JobError::permanent(format!(
                    "event {event_id} does not exist"
                )));
            };
            vigia_notify::plan(&self.notifier, &event).await?;
            // Each routing gets its own report, for the department it routed to: a quick reroute
            // must not leave the first department without one.
            let routed_to = match event.kind.as_str() {
                "department_assigned" => event.data["to"].as_i64(),
                "created" => event.data["department_id"].as_i64(),
                _ => None,
            };
            if let Some(department_id) = routed_to {
                let job = NewJob::new(
                    "report.incident",
                    serde_json::json!({
                        "incident_id": event.incident_id.0,
                        "department_id": department_id,
                    }),
                )
                .dedup(format!("report.incident:{event_id}"));
                jobs::enqueue(&ctx.db, &job, ctx.now).await?;
            }
            Ok(())
        })
    }
}

/// `report.incident`.
struct IncidentReport {
    objects: Objects,
}

impl Handler for IncidentReport {
    fn kind(&self) -> &'static str {
        "report.incident"
    }

    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
        payload_json: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let IncidentPayload {
                incident_id,
                department_id,
            } = payload(payload_json)?;
            let written = vigia_reports::incident::run(
                &ctx.db,
                &self.objects,
                IncidentId(incident_id),
                department_id.map(DepartmentId),
                "system",
            )
            .await?;
            if written.is_none() {
                tracing::debug!(incident_id, "no department: no incident report");
            }
            Ok(())
        })
    }
}

/// `report.global`.
struct GlobalReport {
    notifier: Notifier,
    objects: Objects,
}

impl Handler for GlobalReport {
    fn kind(&self) -> &'static str {
        "report.global"
    }

    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
        _payload: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), JobError>> {
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
