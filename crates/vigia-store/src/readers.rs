//! Hot SQLite reads on connections of their own: a few threads, each owning a read-only
//! rusqlite connection, take whole reads from one queue and run them as plain synchronous calls
//! (see [`crate::direct`]).
//!
//! Through sqlx a read is a command to the connection's thread and then one message per row
//! back, with every column copied on the way; for a 51-row page of incidents that was most of
//! the cost of listing. Here a read is one hand-over each way, and rows become Rust values where
//! SQLite produced them. Reads that are not hot keep using sqlx's reader pool.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::{StoreError, StoreResult};

type Read = Box<dyn FnOnce(&Connection) + Send>;

/// The handle reads are submitted to. Cheap to clone; the threads stop when every handle is gone.
#[derive(Clone)]
pub struct Readers {
    sender: flume::Sender<Read>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("waiting", &self.sender.len())
            .finish()
    }
}

impl Readers {
    /// Opens `threads` read-only connections to the database at `path`, one thread each.
    pub fn start(path: &Path, threads: usize, busy_timeout: Duration) -> anyhow::Result<Self> {
        let (sender, receiver) = flume::unbounded::<Read>();
        for n in 0..threads.max(1) {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .with_context(|| format!("cannot open {} for reading", path.display()))?;
            conn.busy_timeout(busy_timeout)?;
            conn.execute_batch("PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16000;")
                .context("cannot configure a reader connection")?;
            conn.set_prepared_statement_cache_capacity(64);
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("vigia-reader-{n}"))
                .spawn(move || {
                    while let Ok(read) = receiver.recv() {
                        read(&conn);
                    }
                })
                .context("cannot start a reader thread")?;
        }
        Ok(Self { sender })
    }

    /// Runs `read` on the first free reader connection and returns its result.
    pub async fn run<T, F>(&self, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Read = Box::new(move |conn| {
            let _ = reply.send(read(conn));
        });
        self.sender
            .send_async(job)
            .await
            .map_err(|_| StoreError::Other(anyhow::anyhow!("the database readers have stopped")))?;
        answer.await.map_err(|_| {
            StoreError::Other(anyhow::anyhow!(
                "the read did not run: a database reader failed (see the log)"
            ))
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direct;

    #[tokio::test]
    async fn reads_run_on_their_own_connections_and_see_committed_rows() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("r.db");
        let writer = Connection::open(&path).expect("open");
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1), (2);",
            )
            .expect("setup");
        let readers = Readers::start(&path, 2, Duration::from_secs(5)).expect("start");
        let sum = |conn: &Connection| -> StoreResult<i64> {
            Ok(
                direct::query(conn, "SELECT SUM(v) FROM t WHERE v >= $1", &[&0i64], |r| {
                    r.get(0)
                })?[0],
            )
        };
        assert_eq!(readers.run(sum).await.expect("read"), 3);
        writer
            .execute_batch("INSERT INTO t VALUES (4)")
            .expect("insert");
        assert_eq!(
            readers.run(sum).await.expect("read"),
            7,
            "a later read sees the commit"
        );
        let writes = readers
            .run(|conn| direct::execute(conn, "INSERT INTO t VALUES (5)", &[]))
            .await;
        assert!(writes.is_err(), "reader connections are read-only");
    }
}
