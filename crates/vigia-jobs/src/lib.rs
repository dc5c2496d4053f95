//! Vigía's background work: a durable job queue in the database (see [`vigia_store::jobs`]),
//! workers with leases, retries and a dead-letter list, the incident event relay, and a cron
//! scheduler that fires once across nodes.
//!
//! **Extension point.** A job is one `vigia_store::jobs::Task` (a `#[serde(tag = "type")]`
//! enum). To add work, add a variant, implement [`Handler`] for its `JobKind`, register it in
//! the [`Registry`] that the binary builds (see `vigia::jobs`), and enqueue it with
//! `vigia_store::jobs::enqueue_in` inside the transaction of the change that causes it (or
//! `enqueue`). A worker claims only the kinds its registry has handlers for. Return [`JobError::Retry`] for
//! failures worth retrying (with `after` to honour a `Retry-After`) and [`JobError::Permanent`]
//! for the rest. Handlers must be idempotent: a job may run twice.

pub mod builtin;
mod cron;
mod handler;
mod metrics;
mod runtime;
mod scheduler;
mod worker;

pub use cron::CronExpr;
pub use handler::{BoxFuture, Handler, JobContext, JobError, Registry, wrong_task};
pub use metrics::JobMetrics;
pub use runtime::{JobsRuntime, RuntimeConfig};
pub use scheduler::{ScheduleDef, Scheduler};
pub use worker::{ExecutionOutcome, Worker, WorkerConfig, backoff};
