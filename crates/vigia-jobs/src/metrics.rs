//! Job metrics per kind, registered in the server's Prometheus registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabels {
    kind: String,
}

/// Counters and a duration histogram per job kind. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct JobMetrics {
    enqueued: Family<KindLabels, Counter>,
    started: Family<KindLabels, Counter>,
    succeeded: Family<KindLabels, Counter>,
    failed: Family<KindLabels, Counter>,
    dead: Family<KindLabels, Counter>,
    duration: Family<KindLabels, Histogram>,
}

impl Default for JobMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl JobMetrics {
    pub fn new() -> Self {
        Self {
            enqueued: Family::default(),
            started: Family::default(),
            succeeded: Family::default(),
            failed: Family::default(),
            dead: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 4.0, 12))
            }),
        }
    }

    /// Registers the families (`vigia_jobs_*` when the registry has the `vigia` prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "jobs_enqueued",
            "Jobs enqueued by this node's relay and scheduler, by kind",
            self.enqueued.clone(),
        );
        registry.register(
            "jobs_started",
            "Job attempts started, by kind",
            self.started.clone(),
        );
        registry.register(
            "jobs_succeeded",
            "Jobs that succeeded, by kind",
            self.succeeded.clone(),
        );
        registry.register(
            "jobs_failed",
            "Job attempts that failed and will be retried, by kind",
            self.failed.clone(),
        );
        registry.register(
            "jobs_dead",
            "Jobs moved to the dead-letter list, by kind",
            self.dead.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Time handlers took per attempt, by kind",
            self.duration.clone(),
        );
    }

    fn labels(kind: &str) -> KindLabels {
        KindLabels { kind: kind.into() }
    }

    pub(crate) fn enqueued(&self, kind: &str, n: u64) {
        self.enqueued.get_or_create(&Self::labels(kind)).inc_by(n);
    }

    pub(crate) fn started(&self, kind: &str) {
        self.started.get_or_create(&Self::labels(kind)).inc();
    }

    pub(crate) fn finished(&self, kind: &str, result: Finished, seconds: f64) {
        let labels = Self::labels(kind);
        match result {
            Finished::Succeeded => self.succeeded.get_or_create(&labels).inc(),
            Finished::Failed => self.failed.get_or_create(&labels).inc(),
            Finished::Dead => self.dead.get_or_create(&labels).inc(),
        };
        self.duration.get_or_create(&labels).observe(seconds);
    }

    /// Succeeded jobs of `kind` so far (for tests and the benchmark).
    pub fn succeeded_count(&self, kind: &str) -> u64 {
        self.succeeded.get_or_create(&Self::labels(kind)).get()
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Finished {
    Succeeded,
    Failed,
    Dead,
}
