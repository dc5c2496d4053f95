//! Password hashing, bounded: Argon2id needs 19 MiB per hash, so at most one hash per core runs
//! at a time (the rest wait their turn, after the rate limit let them through), each in one of
//! as many working memories, allocated once and reused. A burst of logins therefore costs the
//! same memory as one login per core, and leaves nothing behind.

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use vigia_domain::auth::HashMemory;

use crate::error::ApiError;

/// Runs password hashes on blocking threads, a bounded number at a time. Cheap to clone.
#[derive(Clone)]
pub struct Hashing(Arc<Inner>);

struct Inner {
    permits: Arc<Semaphore>,
    /// Working memories not in use; never more than the number of permits.
    memories: Mutex<Vec<HashMemory>>,
}

impl Hashing {
    /// At most `concurrency` hashes at a time (at least one).
    pub fn new(concurrency: usize) -> Self {
        Self(Arc::new(Inner {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            memories: Mutex::new(Vec::new()),
        }))
    }

    /// One hash per core.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// Runs `hash` with a working memory once a permit is free. The permit and the memory stay
    /// with the blocking thread, so a caller that goes away does not free either early.
    pub async fn run<T: Send + 'static>(
        &self,
        hash: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = self
            .0
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        let inner = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut memory = inner.take();
            let out = hash(&mut memory);
            inner.give_back(memory);
            drop(permit);
            out
        })
        .await
        .map_err(|e| ApiError::Internal(e.into()))
    }
}

impl Inner {
    fn take(&self) -> HashMemory {
        let pooled = self.memories.lock().map(|mut m| m.pop()).ok().flatten();
        pooled.unwrap_or_default()
    }

    fn give_back(&self, memory: HashMemory) {
        if let Ok(mut memories) = self.memories.lock() {
            memories.push(memory);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_hashes_run_at_once_than_permits_and_memories_are_reused() {
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
        let pooled = hashing.0.memories.lock().expect("lock").len();
        assert!(pooled <= 2, "{pooled} working memories for 2 permits");
    }
}
