//! Password hashing, bounded: Argon2id needs 19 MiB per hash, so at most one hash per core runs
//! at a time (the rest wait their turn, after the rate limit let them through), each in a
//! working memory given back to the operating system when it ends ([`HashMemory`]). A burst
//! of logins therefore costs at most 19 MiB per core while it lasts, and nothing after.

use std::sync::Arc;

use tokio::sync::Semaphore;
use vigia_domain::auth::HashMemory;

use crate::error::ApiError;

/// Runs password hashes on blocking threads, a bounded number at a time. Cheap to clone.
#[derive(Clone)]
pub struct Hashing {
    permits: Arc<Semaphore>,
}

impl Hashing {
    /// At most `concurrency` hashes at a time (at least one).
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// One hash per core.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// Runs `hash` in a fresh working memory once a permit is free. The permit stays with the
    /// blocking work, so a caller that goes away does not let another hash start early.
    pub async fn run<T: Send + 'static>(
        &self,
        hash: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        tokio::task::spawn_blocking(move || {
            let mut memory = HashMemory::new();
            let out = hash(&mut memory);
            drop(memory);
            drop(permit);
            out
        })
        .await
        .map_err(|e| ApiError::Internal(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_hashes_run_at_once_than_permits() {
        let hashing = Hashing::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (hashing, running, most) = (hashing.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    hashing
                        .run(move |_memory| {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(30));
                            running.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("join").expect("hashed");
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }
}
