//! Workers: claim due jobs in batches, run them on a bounded number of tasks, keep their leases
//! alive, and write the outcomes back in batches.
//!
//! Tests use [`Worker::try_execute_task`] / [`Worker::drain`] instead of [`Worker::run`]: one job
//! at a time, in the calling task, at a time the test chooses — deterministic.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use vigia_domain::Timestamp;
use vigia_store::Db;
use vigia_store::jobs::queue::{self, ClaimedJob, Outcome};
use vigia_store::jobs::{JobId, JobKind, relay};

use crate::handler::{JobContext, JobError, Registry};
use crate::metrics::{Finished, JobMetrics};

/// How workers behave (the `[jobs]` configuration section).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs run at the same time by this process.
    pub concurrency: usize,
    /// Jobs claimed per round trip.
    pub batch: usize,
    /// How long to wait before asking again when the queue was empty.
    pub poll_interval: Duration,
    /// How long a claim lasts without a heartbeat; a job held by a dead worker runs again after it.
    pub lease: Duration,
    /// Attempts for jobs enqueued without their own limit.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles with every attempt, with jitter.
    pub backoff_base: Duration,
    /// Longest delay between attempts.
    pub backoff_max: Duration,
    /// Events relayed per transaction.
    pub relay_batch: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            batch: 128,
            poll_interval: Duration::from_millis(250),
            lease: Duration::from_secs(60),
            max_attempts: 8,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(3600),
            relay_batch: 500,
        }
    }
}

pub use vigia_domain::backoff::backoff;

/// What one call of [`Worker::try_execute_task`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionOutcome {
    /// A job ran; `state` is where it went: `succeeded`, `failed` (retry later) or `dead`.
    TaskCompleted {
        id: JobId,
        kind: JobKind,
        state: &'static str,
    },
    /// Nothing was due.
    EmptyQueue,
}

/// A worker over one database and one handler registry. Cheap to share (`Arc`).
pub struct Worker {
    db: Db,
    registry: Arc<Registry>,
    /// The kinds this worker claims: those its registry has handlers for.
    kinds: Vec<JobKind>,
    config: WorkerConfig,
    metrics: JobMetrics,
    owner: String,
    /// Cuts an idle poll short: see [`Worker::with_wake`].
    wake: Arc<tokio::sync::Notify>,
}

impl Worker {
    pub fn new(db: Db, registry: Arc<Registry>, config: WorkerConfig, metrics: JobMetrics) -> Self {
        Self {
            db,
            kinds: registry.kinds(),
            registry,
            config,
            metrics,
            owner: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            wake: Arc::default(),
        }
    }

    /// Shares `wake` with whatever enqueues work on this node: a `notify_one` on it makes an
    /// idle worker claim at once instead of after its poll interval. Other nodes still find
    /// the job on their next poll; the queue is the only channel.
    pub fn with_wake(mut self, wake: Arc<tokio::sync::Notify>) -> Self {
        self.wake = wake;
        self
    }

    /// This worker's lease owner id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    fn lease_until(&self, now: Timestamp) -> Timestamp {
        Timestamp::from_millis(now.millis() + self.config.lease.as_millis() as i64)
    }

    /// The kinds this worker claims.
    pub fn kinds(&self) -> &[JobKind] {
        &self.kinds
    }

    /// Claims one due job of this worker's kinds as of `now`, runs it here and records the
    /// outcome.
    pub async fn try_execute_task(&self, now: Timestamp) -> anyhow::Result<ExecutionOutcome> {
        let mut jobs = queue::claim(
            &self.db,
            &self.owner,
            &self.kinds,
            1,
            self.lease_until(now),
            now,
        )
        .await?;
        let Some(job) = jobs.pop() else {
            return Ok(ExecutionOutcome::EmptyQueue);
        };
        let (id, kind) = (job.id, job.kind);
        let outcome = self.execute(job, now).await;
        let state = match &outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Retry { .. } => "failed",
            Outcome::Dead { .. } => "dead",
        };
        queue::finish(&self.db, &self.owner, &[(id, outcome)], now).await?;
        Ok(ExecutionOutcome::TaskCompleted { id, kind, state })
    }

    /// Relays new incident events into jobs (when this worker dispatches them), then runs every
    /// job of its kinds due at `now`, one at a time,
    /// until none is left; returns how many attempts ran. Retries land in the future, so they
    /// wait for a later `drain` with a later `now`. Stops after `limit` attempts (a handler that
    /// keeps enqueueing due work would otherwise never let it return).
    pub async fn drain(&self, now: Timestamp, limit: usize) -> anyhow::Result<usize> {
        if self.registry.contains(JobKind::EventDispatch) {
            while relay::relay_events(&self.db, self.config.relay_batch, now).await?
                == self.config.relay_batch
            {}
        }
        let mut ran = 0;
        while ran < limit {
            match self.try_execute_task(now).await? {
                ExecutionOutcome::TaskCompleted { .. } => ran += 1,
                ExecutionOutcome::EmptyQueue => break,
            }
        }
        Ok(ran)
    }

    /// Runs one claimed job and decides what becomes of it.
    #[tracing::instrument(skip_all, fields(job_id = %job.id, kind = %job.kind, attempt = job.attempt))]
    async fn execute(&self, job: ClaimedJob, now: Timestamp) -> Outcome {
        let kind = job.kind.as_str();
        let max_attempts = job.max_attempts.unwrap_or(self.config.max_attempts).max(1);
        if job.attempt > max_attempts {
            self.metrics.finished(kind, Finished::Dead, 0.0);
            return Outcome::Dead {
                error: format!(
                    "its lease expired during the last attempt ({} of {max_attempts}): the worker stopped or hung",
                    max_attempts
                ),
            };
        }
        // Claimed by kind, so the handler is there unless the registry changed under a claim.
        let Some(handler) = self.registry.get(job.kind) else {
            self.metrics.finished(kind, Finished::Failed, 0.0);
            return Outcome::Retry {
                at: now,
                error: format!("this worker has no handler for {kind} jobs"),
            };
        };
        let task = match job.task {
            Ok(task) => task,
            Err(error) => {
                tracing::warn!(%error, "unreadable job; dead-lettered");
                self.metrics.finished(kind, Finished::Dead, 0.0);
                return Outcome::Dead { error };
            }
        };
        self.metrics.started(kind);
        let ctx = JobContext {
            db: self.db.clone(),
            job_id: job.id,
            kind: job.kind,
            attempt: job.attempt,
            max_attempts,
            now,
        };
        let started = Instant::now();
        let result = AssertUnwindSafe(handler.run(&ctx, task))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(JobError::retry(format!("the handler panicked: {message}")))
            });
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                self.metrics.finished(kind, Finished::Succeeded, seconds);
                Outcome::Succeeded
            }
            Err(JobError::Permanent(reason)) => {
                tracing::warn!(%reason, "job failed permanently; dead-lettered");
                self.metrics.finished(kind, Finished::Dead, seconds);
                Outcome::Dead { error: reason }
            }
            Err(JobError::Retry { reason, .. }) if job.attempt >= max_attempts => {
                tracing::warn!(%reason, "job failed on its last attempt; dead-lettered");
                self.metrics.finished(kind, Finished::Dead, seconds);
                Outcome::Dead {
                    error: format!("{reason} (gave up after {max_attempts} attempts)"),
                }
            }
            Err(JobError::Retry { reason, after }) => {
                let delay = after.unwrap_or_else(|| {
                    backoff(
                        job.attempt,
                        self.config.backoff_base,
                        self.config.backoff_max,
                        &mut rand::rng(),
                    )
                });
                tracing::info!(%reason, retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
                self.metrics.finished(kind, Finished::Failed, seconds);
                Outcome::Retry {
                    at: Timestamp::from_millis(now.millis() + delay.as_millis() as i64),
                    error: reason,
                }
            }
        }
    }

    /// Works until `shutdown`: claims batches while there are free slots, runs each job on its
    /// own task, heartbeats the leases of running jobs, and writes outcomes in batches. On
    /// shutdown it stops claiming and waits up to `grace` for running jobs; a job still running
    /// then keeps its lease and runs again elsewhere (or here after a restart) once it expires.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken, grace: Duration) {
        let concurrency = self.config.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let in_flight: Arc<Mutex<HashSet<JobId>>> = Arc::default();
        let (done_tx, done_rx) = mpsc::channel::<(JobId, Outcome)>(concurrency * 4 + 256);
        let stop_heartbeat = CancellationToken::new();
        let completer = tokio::spawn(Arc::clone(&self).complete(done_rx, Arc::clone(&in_flight)));
        let heartbeat = tokio::spawn(
            Arc::clone(&self).heartbeat(Arc::clone(&in_flight), stop_heartbeat.clone()),
        );
        tracing::info!(owner = %self.owner, concurrency, "job worker started");
        loop {
            let first = tokio::select! {
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = shutdown.cancelled() => break,
            };
            let want = (1 + slots.available_permits()).min(self.config.batch.max(1));
            let now = Timestamp::now();
            let claimed = queue::claim(
                &self.db,
                &self.owner,
                &self.kinds,
                want,
                self.lease_until(now),
                now,
            );
            let jobs = match claimed.await {
                Ok(jobs) => jobs,
                Err(error) => {
                    tracing::error!(error = %error, "cannot claim jobs");
                    Vec::new()
                }
            };
            if jobs.is_empty() {
                drop(first);
                tokio::select! {
                    () = tokio::time::sleep(self.config.poll_interval) => {}
                    () = self.wake.notified() => {}
                    () = shutdown.cancelled() => break,
                }
                continue;
            }
            let mut permits = vec![first];
            while permits.len() < jobs.len() {
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }
            {
                let mut held = in_flight.lock().unwrap_or_else(|e| e.into_inner());
                held.extend(jobs.iter().map(|j| j.id));
            }
            for (job, permit) in jobs.into_iter().zip(permits) {
                let worker = Arc::clone(&self);
                let done = done_tx.clone();
                tokio::spawn(async move {
                    let id = job.id;
                    let outcome = worker.execute(job, Timestamp::now()).await;
                    let _ = done.send((id, outcome)).await;
                    drop(permit);
                });
            }
        }
        let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
        if tokio::time::timeout(grace, slots.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                "jobs still running after {} s; their leases will expire and they will run again",
                grace.as_secs()
            );
        }
        drop(done_tx);
        let _ = completer.await;
        stop_heartbeat.cancel();
        let _ = heartbeat.await;
        tracing::info!(owner = %self.owner, "job worker stopped");
    }

    /// Writes outcomes as they arrive, as many per transaction as are waiting.
    async fn complete(
        self: Arc<Self>,
        mut done: mpsc::Receiver<(JobId, Outcome)>,
        in_flight: Arc<Mutex<HashSet<JobId>>>,
    ) {
        let mut batch = Vec::with_capacity(256);
        while done.recv_many(&mut batch, 256).await > 0 {
            let mut tries = 0;
            loop {
                match queue::finish(&self.db, &self.owner, &batch, Timestamp::now()).await {
                    Ok(_) => break,
                    Err(error) if tries < 5 => {
                        tries += 1;
                        tracing::warn!(error = %error, "cannot record job outcomes; retrying");
                        tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                    }
                    Err(error) => {
                        // The leases will expire and the jobs run again (handlers are idempotent).
                        tracing::error!(error = %error, count = batch.len(), "cannot record job outcomes");
                        break;
                    }
                }
            }
            let mut held = in_flight.lock().unwrap_or_else(|e| e.into_inner());
            for (id, _) in &batch {
                held.remove(id);
            }
            drop(held);
            batch.clear();
        }
    }

    /// Extends the leases of running jobs every third of the lease.
    async fn heartbeat(
        self: Arc<Self>,
        in_flight: Arc<Mutex<HashSet<JobId>>>,
        stop: CancellationToken,
    ) {
        let every = (self.config.lease / 3).max(Duration::from_millis(50));
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
            let ids: Vec<JobId> = in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .copied()
                .collect();
            for chunk in ids.chunks(500) {
                let now = Timestamp::now();
                if let Err(error) =
                    queue::heartbeat(&self.db, &self.owner, chunk, self.lease_until(now)).await
                {
                    tracing::warn!(error = %error, "cannot extend job leases");
                }
            }
        }
    }
}
