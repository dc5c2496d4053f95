//! Hot SQLite reads on connections of their own, run as plain synchronous calls (see
//! [`crate::direct`]).
//!
//! A read first runs right where it is asked for, on the caller's thread, on one of a few
//! read-only connections kept for that, with a budget of SQLite virtual-machine steps
//! ([`INLINE_STEPS`], well under a millisecond): a page of incidents, one incident or a routing
//! lookup fits in it many times over. A read that outgrows the budget (a free-text search over
//! a large table, say) is interrupted and handed whole to the reader threads, each owning a
//! read-only connection and taking reads from one queue, so no async worker is ever blocked
//! for long. When every inline connection is busy the read goes to the threads at once.
//!
//! Through sqlx a read is a command to the connection's thread and then one message per row
//! back, with every column copied on the way; for a 51-row page of incidents that was most of
//! the cost of listing. Handing the read to a reader thread costs two wake-ups and frees every
//! row's memory on another thread than the one that allocated it; run inline, it costs
//! neither. Every SQLite read of the store runs here (`direct_read!`).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::{StoreError, StoreResult};

type Read = Box<dyn FnOnce(&Connection) + Send>;

/// SQLite virtual-machine steps a read may take on the caller's thread before it is moved to
/// the reader threads. A 51-row page of incidents takes about 5,000.
pub const INLINE_STEPS: i32 = 50_000;

/// The handle reads are submitted to. Cheap to clone; the threads stop when every handle is gone.
#[derive(Clone)]
pub struct Readers {
    sender: flume::Sender<Read>,
    /// Connections for reads run on the caller's thread, each interrupted past [`INLINE_STEPS`].
    inline: Arc<Mutex<Vec<Connection>>>,
    /// Connections open: inline and threads.
    connections: u32,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("waiting", &self.sender.len())
            .finish()
    }
}

impl Readers {
    /// Opens `threads` read-only connections to the database at `path`, one thread each, and
    /// as many for reads run inline.
    pub fn start(path: &Path, threads: usize, busy_timeout: Duration) -> anyhow::Result<Self> {
        let open = || -> anyhow::Result<Connection> {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .with_context(|| format!("cannot open {} for reading", path.display()))?;
            conn.busy_timeout(busy_timeout)?;
            conn.execute_batch("PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16000;")
                .context("cannot configure a reader connection")?;
            conn.set_prepared_statement_cache_capacity(64);
            Ok(conn)
        };
        let mut inline = Vec::new();
        for _ in 0..threads.max(1) {
            let conn = open()?;
            // Called once the read has taken INLINE_STEPS steps: interrupt it.
            conn.progress_handler(INLINE_STEPS, Some(|| true))?;
            inline.push(conn);
        }
        let (sender, receiver) = flume::unbounded::<Read>();
        for n in 0..threads.max(1) {
            let conn = open()?;
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
        Ok(Self {
            sender,
            inline: Arc::new(Mutex::new(inline)),
            connections: 2 * threads.max(1) as u32,
        })
    }

    /// How many connections the readers keep open.
    pub fn connections(&self) -> u32 {
        self.connections
    }

    /// Runs `read` and returns its result: on the caller's thread within [`INLINE_STEPS`],
    /// otherwise on the first free reader thread.
    pub async fn run<T, F>(&self, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
    {
        if let Some(result) = self.run_inline(&read) {
            return result;
        }
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

    /// `read` on a free inline connection, unless none is free or the read outgrew its budget.
    fn run_inline<T>(
        &self,
        read: impl Fn(&Connection) -> StoreResult<T>,
    ) -> Option<StoreResult<T>> {
        let conn = self.inline.lock().ok()?.pop()?;
        let result = read(&conn);
        if let Ok(mut free) = self.inline.lock() {
            free.push(conn);
        }
        match result {
            Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(error, _)))
                if error.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                None
            }
            result => Some(result),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direct;

    /// A WAL database with table `t (v)` holding `values`, its writer connection, and readers
    /// on it (the directory lives as long as the returned guard).
    fn database(values: &str) -> (tempfile::TempDir, Connection, Readers) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("r.db");
        let writer = Connection::open(&path).expect("open");
        writer
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER); INSERT INTO t VALUES {values};"
            ))
            .expect("setup");
        let readers = Readers::start(&path, 2, Duration::from_secs(5)).expect("start");
        (dir, writer, readers)
    }

    #[tokio::test]
    async fn reads_run_on_their_own_connections_and_see_committed_rows() {
        let (_dir, writer, readers) = database("(1), (2)");
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

    /// A small read runs on the caller's thread; one past the step budget is interrupted and
    /// runs again, whole, on a reader thread, with the same answer it would have had inline.
    #[tokio::test]
    async fn small_reads_run_inline_and_long_ones_move_to_the_reader_threads() {
        let (_dir, _writer, readers) = database("(1)");
        let thread = || std::thread::current().name().unwrap_or_default().to_owned();
        let caller = thread();
        // The one value and the thread the read ran on.
        let small_read = move |conn: &Connection| {
            let v: Vec<i64> = direct::query(conn, "SELECT v FROM t", &[], |r| r.get(0))?;
            Ok((v[0], thread()))
        };
        let (small, ran_on) = readers.run(small_read).await.expect("small read");
        assert_eq!((small, ran_on.as_str()), (1, caller.as_str()));

        let count = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) \
                     SELECT COUNT(*), SUM(i) FROM n";
        let (sum, ran_on) = readers
            .run(move |conn| {
                let rows: Vec<(i64, i64)> =
                    direct::query(conn, count, &[], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok((rows[0], thread()))
            })
            .await
            .expect("long read");
        assert_eq!(sum, (200_000, 200_000 * 200_001 / 2));
        assert!(ran_on.starts_with("vigia-reader-"), "ran on {ran_on}");

        let (small, ran_on) = readers
            .run(small_read)
            .await
            .expect("small read after an interrupted one");
        assert_eq!(
            (small, ran_on.as_str()),
            (1, caller.as_str()),
            "the inline connection is usable again"
        );
    }
}
