//! Group commit for SQLite: many small writes share one transaction and one `fsync`.
//!
//! SQLite has one writer, and with `synchronous = full` every commit waits for the disk. A write
//! that is only a few statements long would otherwise spend most of its time in its own commit.
//! Here writers hand their statements to one task that runs whatever is waiting as a batch: one
//! `BEGIN`, each write inside its own savepoint (a failing write is rolled back alone and gets its
//! own error), one `COMMIT`. Nobody hears "done" before the batch's commit succeeded, so an
//! acknowledged write is durable exactly as if it had committed by itself.

use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::{StoreError, StoreResult};

/// Most writes one batch takes. Bounds the latency a write waits behind others.
const MAX_BATCH: usize = 256;
/// Writes waiting for the writer before senders wait too (backpressure, not loss).
const QUEUE_DEPTH: usize = 4096;

/// Delivers one write's result once the batch's commit is known: `Err` carries why it failed.
type Deliver = Box<dyn FnOnce(Result<(), Arc<str>>) + Send>;
/// One write: runs on the batch's connection and says whether it succeeded.
type Write =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Deliver)> + Send>;

/// The handle writers submit to. Cheap to clone; the task stops when every handle is gone.
#[derive(Clone)]
pub struct GroupCommit {
    sender: mpsc::Sender<Write>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("waiting", &(QUEUE_DEPTH - self.sender.capacity()))
            .finish()
    }
}

impl GroupCommit {
    /// Starts the batching task on the current runtime, writing through `writer`.
    pub fn start(writer: SqlitePool) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(writer, receiver));
        Self { sender }
    }

    /// Runs `write` in the next batch and returns its result after the batch committed. `write`
    /// must only touch the connection it is given; an `Err` rolls back its own statements only.
    pub async fn submit<T, F>(&self, write: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel::<StoreResult<T>>();
        let job: Write = Box::new(move |conn| {
            Box::pin(async move {
                let result = write(conn).await;
                let ok = result.is_ok();
                let deliver: Deliver = Box::new(move |commit| {
                    let outcome = match (result, commit) {
                        (Ok(value), Ok(())) => Ok(value),
                        (Err(error), _) => Err(error),
                        (Ok(_), Err(why)) => Err(StoreError::Other(anyhow::anyhow!(
                            "the write was rolled back because its batch did not commit: {why}"
                        ))),
                    };
                    let _ = reply.send(outcome);
                });
                (ok, deliver)
            })
        });
        self.sender
            .send(job)
            .await
            .map_err(|_| StoreError::Other(anyhow::anyhow!("the database writer has stopped")))?;
        answer.await.map_err(|_| {
            StoreError::Other(anyhow::anyhow!(
                "the write did not run: the database writer failed (see the log)"
            ))
        })?
    }
}

async fn run(writer: SqlitePool, mut receiver: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let writes = std::mem::take(&mut batch);
        if let Err(error) = run_batch(&writer, writes).await {
            tracing::error!(%error, "a group commit failed; its writes were answered with an error");
        }
    }
}

/// Runs one batch and delivers every result. A write that could not even start is dropped,
/// which its submitter sees as an error (nothing of it was written).
///
/// Each write runs after a `SAVEPOINT` of its own that is never released: `COMMIT` releases
/// them all, and a failed write rolls back to its savepoint, the newest on the stack, undoing
/// its own statements only. That is one statement per write instead of two, and every
/// statement is a round trip to the connection's thread.
async fn run_batch(writer: &SqlitePool, writes: Vec<Write>) -> Result<(), sqlx::Error> {
    let mut conn = writer.acquire().await?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let mut delivers: Vec<Deliver> = Vec::with_capacity(writes.len());
    for write in writes {
        if let Err(error) = sqlx::raw_sql("SAVEPOINT grouped_write")
            .execute(&mut *tx)
            .await
        {
            return Err(fail_all(error, delivers, None));
        }
        let (ok, deliver) = write(&mut tx).await;
        if !ok
            && let Err(error) = sqlx::raw_sql("ROLLBACK TO grouped_write")
                .execute(&mut *tx)
                .await
        {
            return Err(fail_all(error, delivers, Some(deliver)));
        }
        delivers.push(deliver);
    }
    let commit = tx.commit().await;
    let outcome = commit
        .as_ref()
        .map(|_| ())
        .map_err(|error| Arc::<str>::from(error.to_string()));
    for deliver in delivers {
        deliver(outcome.clone());
    }
    commit
}

/// The batch's transaction is in doubt after `error`: nobody in it may hear "done" (dropping
/// the transaction rolls it back).
fn fail_all(error: sqlx::Error, delivers: Vec<Deliver>, current: Option<Deliver>) -> sqlx::Error {
    let why: Arc<str> = format!("the batch's transaction failed: {error}").into();
    for deliver in delivers.into_iter().chain(current) {
        deliver(Err(why.clone()));
    }
    error
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;
    use sqlx::sqlite::SqliteConnectOptions;

    use super::*;

    async fn pool(dir: &tempfile::TempDir) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.expect("open");
        sqlx::query("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)")
            .execute(&pool)
            .await
            .expect("create");
        pool
    }

    fn insert(
        value: i64,
    ) -> impl for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<i64>> {
        move |conn| {
            async move {
                sqlx::query("INSERT INTO t (v) VALUES ($1)")
                    .bind(value)
                    .execute(&mut *conn)
                    .await?;
                Ok(value)
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn a_failing_write_is_rolled_back_alone_and_the_others_commit() {
        let dir = tempfile::tempdir().expect("dir");
        let pool = pool(&dir).await;
        let group = GroupCommit::start(pool.clone());
        // The middle write inserts a row, then fails: only its own row must go.
        fn failing(conn: &mut SqliteConnection) -> BoxFuture<'_, StoreResult<i64>> {
            async move {
                sqlx::query("INSERT INTO t (v) VALUES (2)")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("INSERT INTO t (v) VALUES (1)")
                    .execute(&mut *conn)
                    .await?;
                Ok(2)
            }
            .boxed()
        }
        let (a, b, c) = tokio::join!(
            group.submit(insert(1)),
            group.submit(failing),
            group.submit(insert(3)),
        );
        assert_eq!(a.expect("first"), 1);
        assert!(b.is_err(), "a duplicate value fails its own write");
        assert_eq!(c.expect("third"), 3);
        let stored: Vec<i64> = sqlx::query_scalar("SELECT v FROM t ORDER BY v")
            .fetch_all(&pool)
            .await
            .expect("read");
        assert_eq!(stored, vec![1, 3], "the failed write left nothing behind");
    }

    #[tokio::test]
    async fn many_concurrent_writes_share_commits_and_every_one_is_answered() {
        let dir = tempfile::tempdir().expect("dir");
        let pool = pool(&dir).await;
        let group = GroupCommit::start(pool.clone());
        let writes = (0..500).map(|v| group.submit(insert(v)));
        let answers = futures::future::join_all(writes).await;
        assert!(answers.iter().all(Result::is_ok));
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(count, 500);
    }

    #[tokio::test]
    async fn writes_after_the_database_closed_get_an_error_not_a_hang() {
        let dir = tempfile::tempdir().expect("dir");
        let pool = pool(&dir).await;
        let group = GroupCommit::start(pool.clone());
        pool.close().await;
        let answer =
            tokio::time::timeout(std::time::Duration::from_secs(5), group.submit(insert(1)))
                .await
                .expect("answered in time");
        assert!(answer.is_err());
    }
}
