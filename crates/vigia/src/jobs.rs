//! Wiring of background work: the `[jobs]` and `[schedules.*]` configuration, the handler
//! registry, and the runtime `Application` starts beside the HTTP server.
//!
//! To plug in a new kind of job, add its variant to `vigia_store::jobs::Task` and register its
//! handler in [`registry`] (one line). Every kind the queue carries has its real handler here:
//! the built-ins, then the notification and report handlers of [`crate::job_handlers`].

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};
use vigia_jobs::{CronExpr, Registry, RuntimeConfig, ScheduleDef, WorkerConfig, builtin};
use vigia_store::jobs::JobKind;

use crate::config::Config;

/// `[jobs]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobsSection {
    pub enabled: bool,
    pub concurrency: usize,
    pub batch: usize,
    pub poll_interval_ms: u64,
    pub lease_secs: u64,
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_secs: u64,
    pub relay_interval_ms: u64,
    pub scheduler_tick_ms: u64,
    pub shutdown_grace_secs: u64,
    pub retention_days: u64,
    pub test_handlers: bool,
}

/// `[schedules.NAME]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleSection {
    /// The job kind to enqueue.
    pub kind: String,
    pub cron: String,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// Checks `[jobs]` and every schedule; a malformed cron expression names its key.
pub fn validate(config: &Config) -> anyhow::Result<()> {
    let jobs = &config.jobs;
    if jobs.concurrency == 0 || jobs.batch == 0 {
        bail!("jobs.concurrency and jobs.batch must be at least 1");
    }
    if jobs.max_attempts == 0 {
        bail!("jobs.max_attempts must be at least 1");
    }
    if jobs.lease_secs < 2 {
        bail!("jobs.lease_secs must be at least 2 (heartbeats renew it every third)");
    }
    if jobs.poll_interval_ms == 0 || jobs.relay_interval_ms == 0 || jobs.scheduler_tick_ms == 0 {
        bail!(
            "jobs.poll_interval_ms, jobs.relay_interval_ms and jobs.scheduler_tick_ms must be positive"
        );
    }
    schedule_defs(config).map(|_| ())
}

/// The configured schedules, parsed.
pub fn schedule_defs(config: &Config) -> anyhow::Result<Vec<ScheduleDef>> {
    let mut defs = Vec::new();
    for (name, section) in &config.schedules {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            bail!("schedules.{name}: a schedule name may only use letters, digits, '_' and '-'");
        }
        let kind = JobKind::parse(section.kind.trim())
            .and_then(|kind| kind.scheduled_task().map(|task| task.kind()))
            .map_err(|e| anyhow::anyhow!("schedules.{name}.kind: {e}"))?;
        let cron = CronExpr::parse(&section.cron)
            .map_err(|e| anyhow::anyhow!("schedules.{name}.cron {e}"))?;
        defs.push(ScheduleDef {
            name: name.clone(),
            kind,
            cron,
            enabled: section.enabled,
        });
    }
    Ok(defs)
}

/// Every handler this build knows. Other parts of Vigía register theirs here.
pub fn registry(
    config: &Config,
    notifier: &vigia_notify::Notifier,
    objects: &vigia_store::Objects,
) -> Registry {
    let mut registry = Registry::new();
    builtin::register_defaults(
        &mut registry,
        Duration::from_secs(config.jobs.retention_days.saturating_mul(86_400)),
        config.jobs.test_handlers,
    );
    crate::job_handlers::register(&mut registry, notifier, objects);
    crate::media::register(&mut registry, objects, (&config.landing).into());
    crate::competition_jobs::register(&mut registry, objects);
    registry.register(crate::media_video::Transcode {
        objects: objects.clone(),
        limits: crate::media_video::VideoLimits {
            max_duration_secs: config.media.max_video_secs,
            timeout: Duration::from_secs(config.media.ffmpeg_timeout_secs),
            ffmpeg: config.media.ffmpeg_path.clone(),
            ffprobe: config.media.ffprobe_path.clone(),
        },
    });
    crate::detection_jobs::register(&mut registry, &config.detections, notifier, objects);
    registry
}

/// The worker settings.
pub fn worker_config(config: &Config) -> WorkerConfig {
    let jobs = &config.jobs;
    WorkerConfig {
        concurrency: jobs.concurrency,
        batch: jobs.batch,
        poll_interval: Duration::from_millis(jobs.poll_interval_ms),
        lease: Duration::from_secs(jobs.lease_secs),
        max_attempts: jobs.max_attempts,
        backoff_base: Duration::from_millis(jobs.backoff_base_ms),
        backoff_max: Duration::from_secs(jobs.backoff_max_secs),
        relay_batch: 500,
    }
}

/// Everything the runtime needs from the configuration.
pub fn runtime_config(config: &Config) -> anyhow::Result<RuntimeConfig> {
    Ok(RuntimeConfig {
        worker: worker_config(config),
        relay_interval: Duration::from_millis(config.jobs.relay_interval_ms),
        scheduler_tick: Duration::from_millis(config.jobs.scheduler_tick_ms),
        shutdown_grace: Duration::from_secs(config.jobs.shutdown_grace_secs),
        schedules: schedule_defs(config)?,
    })
}

/// Schedules by name, for `BTreeMap` config fields.
pub type Schedules = BTreeMap<String, ScheduleSection>;

#[cfg(test)]
mod tests {
    use crate::config::{Config, Overrides};

    #[test]
    fn the_default_schedules_parse() {
        let config = Config::load(None, &Overrides::default()).expect("defaults load");
        let defs = super::schedule_defs(&config).expect("schedules");
        let kinds: Vec<&str> = defs.iter().map(|d| d.kind.as_str()).collect();
        for kind in [
            "report.global",
            "sla.escalate",
            "assignment.sweep",
            "cleanup",
        ] {
            assert!(kinds.contains(&kind), "{kind} is scheduled by default");
        }
    }

    #[test]
    fn a_schedule_of_an_unknown_kind_or_of_a_kind_with_data_is_rejected_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (kind, expected) in [
            ("report.nobody", "is not a job kind"),
            ("event.dispatch", "cannot be scheduled"),
        ] {
            let file = dir.path().join("vigia.toml");
            std::fs::write(
                &file,
                format!("[schedules.odd]\nkind = \"{kind}\"\ncron = \"0 * * * * *\"\n"),
            )
            .expect("write");
            let error = Config::load(Some(&file), &Overrides::default()).expect_err("rejected");
            let message = format!("{error:#}");
            assert!(message.contains("schedules.odd.kind"), "{message}");
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn a_malformed_cron_expression_is_rejected_at_load_naming_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("vigia.toml");
        std::fs::write(
            &file,
            "[schedules.cleanup]\nkind = \"cleanup\"\ncron = \"every day at noon\"\n",
        )
        .expect("write");
        let error = Config::load(Some(&file), &Overrides::default()).expect_err("rejected");
        let message = format!("{error:#}");
        assert!(message.contains("schedules.cleanup.cron"), "{message}");
        assert!(message.contains("not a valid cron expression"), "{message}");
    }
}
