//! Background work of the detections platform.
//!
//! | kind | what it does |
//! |---|---|
//! | `detections.retention` | deletes detections older than `detections.retention_days` and per-minute rollups older than `detections.rollup_retention_days` |
//! | `report.detections` | writes the detection window report of the last complete quarter hour as JSON, CSV and XLSX (`reports/detections/…`), and mails its link to `email.report_recipients` like the global report |

use vigia_domain::Timestamp;
use vigia_jobs::{BoxFuture, Handler, JobContext, JobError, Registry};
use vigia_notify::Notifier;
use vigia_reports::Period;
use vigia_store::Objects;
use vigia_store::detections::privacy;
use vigia_store::jobs::{JobKind, Task};

use crate::config::DetectionsSection;

pub fn register(
    registry: &mut Registry,
    config: &DetectionsSection,
    notifier: &Notifier,
    objects: &Objects,
) {
    registry
        .register(Retention {
            detections_days: config.retention_days,
            rollup_days: config.rollup_retention_days,
        })
        .register(WindowReport {
            labels: config.labels.clone(),
            notifier: notifier.clone(),
            objects: objects.clone(),
        });
}

/// `report.detections`.
pub struct WindowReport {
    /// The configured vocabulary: the report's label columns.
    pub labels: Vec<String>,
    pub notifier: Notifier,
    pub objects: Objects,
}

impl Handler for WindowReport {
    fn kind(&self) -> JobKind {
        JobKind::DetectionsReport
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, _task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let period = Period::window_before(ctx.now, 15);
            let record = vigia_reports::detections::run(
                &ctx.db,
                &self.objects,
                period,
                &self.labels,
                "system",
            )
            .await?;
            let recipients = &self.notifier.config().email.report_recipients;
            if !recipients.is_empty() {
                let minute = |at: Timestamp| {
                    let rfc = at.to_rfc3339();
                    rfc.get(..16).unwrap_or(&rfc).replace('T', " ")
                };
                let title = format!(
                    "Vigía detecciones {} — {}",
                    minute(period.from()),
                    minute(period.to())
                );
                let totals = &record.summary["totals"];
                let summary = format!(
                    "detections {}, subjects {}, alerts raised {}",
                    totals["detections"], totals["subjects"], totals["alerts_raised"]
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

/// `detections.retention`.
pub struct Retention {
    pub detections_days: u64,
    pub rollup_days: u64,
}

impl Handler for Retention {
    fn kind(&self) -> JobKind {
        JobKind::DetectionsRetention
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, _task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let now = Timestamp::now().millis();
            let day = 86_400_000_i64;
            let detections_before = now - (self.detections_days.min(100_000) as i64) * day;
            let rollups_before = now - (self.rollup_days.min(100_000) as i64) * day;
            let (detections, rollups) =
                privacy::purge(&ctx.db, detections_before, rollups_before).await?;
            tracing::info!(detections, rollups, "detections retention done");
            Ok(())
        })
    }
}
