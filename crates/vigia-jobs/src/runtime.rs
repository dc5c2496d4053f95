//! Everything background in one process: workers, the event relay and the scheduler, started
//! beside the HTTP server and stopped by the same cancellation token.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigia_domain::Timestamp;
use vigia_store::Db;
use vigia_store::jobs::JobKind;
use vigia_store::jobs::relay;

use crate::handler::Registry;
use crate::metrics::JobMetrics;
use crate::scheduler::{ScheduleDef, Scheduler};
use crate::worker::{Worker, WorkerConfig};

/// What to run and how.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub worker: WorkerConfig,
    /// How often the relay looks for new incident events.
    pub relay_interval: Duration,
    /// How often the scheduler looks for due schedules.
    pub scheduler_tick: Duration,
    /// How long shutdown waits for running jobs.
    pub shutdown_grace: Duration,
    pub schedules: Vec<ScheduleDef>,
}

/// The background half of a node.
pub struct JobsRuntime {
    db: Db,
    registry: Arc<Registry>,
    config: RuntimeConfig,
    metrics: JobMetrics,
    wake: Arc<tokio::sync::Notify>,
}

impl JobsRuntime {
    pub fn new(db: Db, registry: Registry, config: RuntimeConfig, metrics: JobMetrics) -> Self {
        Self {
            db,
            registry: Arc::new(registry),
            config,
            metrics,
            wake: Arc::default(),
        }
    }

    /// Wakes this node's idle worker (see [`Worker::with_wake`]): for work enqueued here that
    /// should start without waiting for the poll interval, such as a capture that just landed.
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.wake)
    }

    /// A worker over this runtime's database and handlers (tests drain it by hand).
    pub fn worker(&self) -> Worker {
        Worker::new(
            self.db.clone(),
            Arc::clone(&self.registry),
            self.config.worker.clone(),
            self.metrics.clone(),
        )
        .with_wake(Arc::clone(&self.wake))
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Writes the schedules, then starts workers, relay and scheduler; the handle resolves once
    /// all have stopped after `shutdown`.
    pub async fn start(self, shutdown: CancellationToken) -> anyhow::Result<JoinHandle<()>> {
        let scheduler = Scheduler::new(
            self.db.clone(),
            self.config.schedules.clone(),
            &self.registry,
            self.metrics.clone(),
        );
        scheduler.sync(Timestamp::now()).await?;
        let worker = Arc::new(self.worker());
        let grace = self.config.shutdown_grace;
        let workers = tokio::spawn(worker.run(shutdown.clone(), grace));
        // The relay feeds `event.dispatch` jobs: only a node that runs them follows the outbox.
        let relay = self.registry.contains(JobKind::EventDispatch).then(|| {
            tokio::spawn(relay_loop(
                self.db.clone(),
                self.config.worker.relay_batch,
                self.config.relay_interval,
                self.metrics.clone(),
                shutdown.clone(),
            ))
        });
        let ticks = tokio::spawn(scheduler_loop(
            scheduler,
            self.config.scheduler_tick,
            shutdown.clone(),
        ));
        Ok(tokio::spawn(async move {
            let _ = tokio::join!(workers, ticks);
            if let Some(relay) = relay {
                let _ = relay.await;
            }
        }))
    }
}

async fn relay_loop(
    db: Db,
    batch: usize,
    every: Duration,
    metrics: JobMetrics,
    shutdown: CancellationToken,
) {
    loop {
        loop {
            match relay::relay_events(&db, batch, Timestamp::now()).await {
                Ok(n) => {
                    if n > 0 {
                        metrics.enqueued(JobKind::EventDispatch.as_str(), 1);
                    }
                    if n < batch {
                        break;
                    }
                }
                Err(error) => {
                    tracing::error!(error = %error, "event relay failed");
                    break;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

async fn scheduler_loop(scheduler: Scheduler, every: Duration, shutdown: CancellationToken) {
    loop {
        if let Err(error) = scheduler.tick(Timestamp::now()).await {
            tracing::error!(error = %error, "scheduler tick failed");
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
