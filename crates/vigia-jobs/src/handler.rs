//! The extension point: a handler runs the jobs of one [`JobKind`].

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use vigia_domain::Timestamp;
use vigia_store::Db;
use vigia_store::jobs::{JobId, JobKind, Task};

/// A boxed, sendable future (handlers return one, so the trait stays object-safe without
/// `async-trait`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a handler knows about the attempt it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub db: Db,
    pub job_id: JobId,
    pub kind: JobKind,
    /// This attempt's number, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    /// When the attempt started (pass it to store functions as their `now`).
    pub now: Timestamp,
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Try again later: after `after` if given (e.g. a server's `Retry-After`), otherwise after
    /// the exponential backoff. When no attempts are left the job is dead-lettered.
    #[error("{reason}")]
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Retrying cannot help (bad payload, a rejected request): dead-letter the job now.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    /// A retryable failure with the default backoff.
    pub fn retry(reason: impl std::fmt::Display) -> Self {
        JobError::Retry {
            reason: reason.to_string(),
            after: None,
        }
    }

    pub fn permanent(reason: impl std::fmt::Display) -> Self {
        JobError::Permanent(reason.to_string())
    }
}

/// Errors from the store are worth retrying (a lost connection, a lock timeout).
impl From<vigia_store::StoreError> for JobError {
    fn from(e: vigia_store::StoreError) -> Self {
        JobError::retry(format!("{e:#}"))
    }
}

impl From<anyhow::Error> for JobError {
    fn from(e: anyhow::Error) -> Self {
        JobError::retry(format!("{e:#}"))
    }
}

/// Runs the jobs of one kind. A job may run more than once (a worker can die after the effect
/// and before recording success), so a handler must be idempotent: make its effects
/// conditional, or enqueue follow-up work with a dedup key.
///
/// ```ignore
/// struct Escalate;
/// impl Handler for Escalate {
///     fn kind(&self) -> JobKind { JobKind::SlaEscalate }
///     fn run<'a>(&'a self, ctx: &'a JobContext, task: Task)
///         -> BoxFuture<'a, Result<(), JobError>> {
///         Box::pin(async move { /* ... */ Ok(()) })
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// The kind of job this handler runs; the worker hands it only tasks of that kind.
    fn kind(&self) -> JobKind;

    fn run<'a>(&'a self, ctx: &'a JobContext, task: Task) -> BoxFuture<'a, Result<(), JobError>>;
}

/// The error a handler returns when handed a task of another kind (a bug in the registry).
pub fn wrong_task(expected: JobKind, task: &Task) -> JobError {
    JobError::permanent(format!(
        "a {expected} handler was handed a {} job",
        task.kind()
    ))
}

/// Kind → handler. A worker claims only the kinds registered here.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<JobKind, Arc<dyn Handler>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `handler` for its kind, replacing the handler registered for that kind before.
    pub fn register(&mut self, handler: impl Handler) -> &mut Self {
        self.handlers.insert(handler.kind(), Arc::new(handler));
        self
    }

    pub fn get(&self, kind: JobKind) -> Option<&Arc<dyn Handler>> {
        self.handlers.get(&kind)
    }

    pub fn contains(&self, kind: JobKind) -> bool {
        self.handlers.contains_key(&kind)
    }

    /// Every registered kind, sorted.
    pub fn kinds(&self) -> Vec<JobKind> {
        self.handlers.keys().copied().collect()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.kinds())
            .finish()
    }
}
