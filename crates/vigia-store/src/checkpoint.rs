//! WAL checkpoints on a thread of their own.
//!
//! Left to itself, SQLite checkpoints in the connection that commits once the WAL passes 1,000
//! pages: the group commit's thread would stop to copy those pages into the database file and
//! `fsync` it while every waiting write waited with it, a few milliseconds every fraction of a
//! second during a burst of reports. The writer connections turn that off
//! (`wal_autocheckpoint = 0`) and this thread runs a `PASSIVE` checkpoint every
//! [`INTERVAL`] instead: it copies what has been committed without blocking writers or
//! readers, and costs a look at the WAL index when there is nothing to copy.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};

/// How often the WAL is checkpointed.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// The pragma every writer connection runs: checkpoints are this thread's job.
pub const WRITER_PRAGMA: &str = "PRAGMA wal_autocheckpoint = 0;";

/// The checkpointing thread; it stops when this handle is dropped.
#[derive(Debug)]
pub struct Checkpointer {
    _stop: flume::Sender<()>,
    checkpointed: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Starts checkpointing the WAL of the database at `path` every `interval`.
    pub fn start(path: &Path, interval: Duration, busy_timeout: Duration) -> anyhow::Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open {} to checkpoint it", path.display()))?;
        conn.busy_timeout(busy_timeout)?;
        conn.execute_batch(WRITER_PRAGMA)
            .context("cannot configure the checkpoint connection")?;
        let (stop, stopped) = flume::bounded::<()>(0);
        let checkpointed = Arc::new(AtomicU64::new(0));
        let total = checkpointed.clone();
        std::thread::Builder::new()
            .name("vigia-checkpoint".into())
            .spawn(move || {
                while let Err(flume::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    // (busy, frames in the WAL, frames checkpointed); busy only in modes that
                    // wait for writers, which PASSIVE does not.
                    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        row.get::<_, i64>(2)
                    }) {
                        Ok(frames) => {
                            total.store(frames.max(0) as u64, Ordering::Relaxed);
                        }
                        Err(error) => tracing::warn!(%error, "cannot checkpoint the SQLite WAL"),
                    }
                }
            })
            .context("cannot start the checkpoint thread")?;
        Ok(Self {
            _stop: stop,
            checkpointed,
        })
    }

    /// Frames of the current WAL that the last checkpoint had copied into the database file.
    pub fn checkpointed_frames(&self) -> u64 {
        self.checkpointed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With the writer's automatic checkpoints off, committed pages reach the database file
    /// only through the checkpoint thread.
    #[test]
    fn the_thread_copies_committed_pages_into_the_database_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.db");
        let writer = Connection::open(&path).expect("open");
        writer
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; {WRITER_PRAGMA} CREATE TABLE t (v TEXT);"
            ))
            .expect("setup");
        for n in 0..2_000 {
            writer
                .execute("INSERT INTO t VALUES (?1)", [format!("{n:0>200}")])
                .expect("insert");
        }
        let size = || std::fs::metadata(&path).expect("size").len();
        let before = size();
        assert!(
            before < 100_000,
            "nothing was checkpointed yet ({before} bytes)"
        );

        let checkpointer =
            Checkpointer::start(&path, Duration::from_millis(10), Duration::from_secs(5))
                .expect("start");
        // The file grows while a checkpoint copies, before the thread records what it copied:
        // wait for both.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while (size() < 400_000 || checkpointer.checkpointed_frames() == 0)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(size() >= 400_000, "the rows reached the database file");
        assert!(checkpointer.checkpointed_frames() > 0);
        let count: i64 = writer
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(count, 2_000);
    }
}
