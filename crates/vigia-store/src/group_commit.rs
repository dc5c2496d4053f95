//! Group commit for SQLite: many small writes share one transaction and one `fsync`.
//!
//! SQLite has one writer, and with `synchronous = full` every commit waits for the disk. A write
//! that is only a few statements long would otherwise spend most of its time in its own commit.
//! Here writers hand their work to one thread that runs whatever is waiting as a batch: one
//! `BEGIN IMMEDIATE`, each write inside its own savepoint (a failing write is rolled back alone
//! and gets its own error), one `COMMIT`. Nobody hears "done" before the batch's commit
//! succeeded, so an acknowledged write is durable exactly as if it had committed by itself.
//!
//! The thread owns a SQLite connection of its own (rusqlite) and runs each batch as plain
//! synchronous calls. Through sqlx every statement would be a round trip between an async task
//! and the connection's thread, and on a busy two-core machine each one waits for the scheduler:
//! the writer, which every report waits for, spent most of its time idle between statements.
//!
//! It is the only connection that writes (every store write is a `grouped_write!`), so batches
//! never meet SQLite's lock from this process; the migrations run before it starts, and the
//! checkpointer (`crate::checkpoint`) only copies committed pages.
//!
//! The WAL starts over only when a transaction begins while every frame in it has been copied
//! into the database file. Under steady writes this thread begins its next batch right after
//! its last commit, before the checkpointer can copy that commit's frames, so the WAL would
//! never start over: it grew by 3.4 GB in a minute of 500 incidents/s, and every new block
//! of it cost the kernel a zeroed page. So once the WAL holds more than
//! [`RESTART_WAL_FRAMES`], this thread checkpoints between two batches (at most every
//! [`RESTART_EVERY`], see [`Settings::restart_wal`]); what is left to copy is only what the
//! checkpointer has not copied yet, and the next batch starts the WAL over, reusing the file's
//! blocks.

use std::cell::Cell;
use std::ffi::c_int;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::{StoreError, StoreResult};

/// Most writes one batch takes. Bounds the latency a write waits behind others.
const MAX_BATCH: usize = 256;
/// Writes waiting for the writer before senders wait too (backpressure, not loss).
const QUEUE_DEPTH: usize = 4096;
/// Frames (pages) in the WAL past which the writer checkpoints so the WAL starts over: 16,384
/// pages of 4 KiB, 64 MiB.
pub const RESTART_WAL_FRAMES: c_int = 16_384;
/// How often the writer tries at most, while a long read keeps the WAL from starting over.
pub const RESTART_EVERY: Duration = Duration::from_millis(250);

thread_local! {
    /// Frames in the WAL after this thread's last commit, as SQLite's WAL hook reports them.
    static WAL_FRAMES: Cell<c_int> = const { Cell::new(0) };
}

/// SQLite's WAL hook on the group commit's connection: runs on its thread after each commit.
fn wal_committed(_: &rusqlite::hooks::Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(frames);
    Ok(())
}

/// Delivers one write's result once the batch's commit is known: `Err` carries why it failed.
type Deliver = Box<dyn FnOnce(Result<(), Arc<str>>) + Send>;
/// One write: runs on the batch's connection and says whether it succeeded.
type Write = Box<dyn FnOnce(&Connection) -> (bool, Deliver) + Send>;

/// How the group commit opens its connection.
#[derive(Debug, Clone)]
pub struct Settings {
    pub path: PathBuf,
    /// `synchronous`: `FULL` or `NORMAL`.
    pub synchronous: &'static str,
    pub busy_timeout: Duration,
    /// Notified after a commit that wrote incident events (see [`crate::Db::events_committed`]).
    pub events_committed: Arc<Notify>,
    /// WAL frames past which the writer makes the WAL start over ([`RESTART_WAL_FRAMES`]), and
    /// how often it tries at most ([`RESTART_EVERY`]).
    pub restart_wal: (c_int, Duration),
}

/// The handle writers submit to. Cheap to clone; the thread stops when every handle is gone.
#[derive(Clone)]
pub struct GroupCommit {
    sender: mpsc::Sender<Write>,
    /// Batches committed so far (each one `COMMIT`, one `fsync`).
    commits: Arc<AtomicU64>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("waiting", &(QUEUE_DEPTH - self.sender.capacity()))
            .field("commits", &self.commits())
            .finish()
    }
}

impl GroupCommit {
    /// Opens the connection and starts the batching thread.
    pub fn start(settings: Settings) -> anyhow::Result<Self> {
        let conn = open(&settings)?;
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        let commits = Arc::new(AtomicU64::new(0));
        // A runtime of its own to wait for writes (`recv_many`).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the group commit's runtime")?;
        std::thread::Builder::new()
            .name("vigia-group-commit".into())
            .spawn({
                let commits = commits.clone();
                let restart = settings.restart_wal;
                move || runtime.block_on(run(conn, receiver, commits, restart))
            })
            .context("cannot start the group commit thread")?;
        Ok(Self { sender, commits })
    }

    /// How many batches have committed: fewer than the writes when writes share commits.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Runs `write` in the next batch and returns its result after the batch committed. `write`
    /// must only touch the connection it is given; an `Err` rolls back its own statements only.
    pub async fn submit<T, F>(&self, write: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<StoreResult<T>>();
        let job: Write = Box::new(move |conn| {
            let result = write(conn);
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

/// Opens the group commit's connection with the pool's settings, and the hooks that tell when
/// a commit wrote incident events.
fn open(settings: &Settings) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        &settings.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {} for writing", settings.path.display()))?;
    conn.busy_timeout(settings.busy_timeout)?;
    // Not `temp_store = MEMORY`: it keeps statement journals in memory as a list of 1 KB
    // chunks, and SQLite walks that list from its head each time a statement inside a
    // savepoint ends. A write's savepoint journals every existing page it touches, so a batch
    // of 10,000 detections walked thousands of chunks per insert: ingestion fell from 36,000
    // to 6,000 detections/s as the table grew to 150,000 rows (bench/README.md). With the
    // default, a statement journal spills to a temporary file past 64 KB and ending a
    // statement truncates it at once.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; \
         PRAGMA cache_size = -16000; {}",
        settings.synchronous,
        crate::checkpoint::WRITER_PRAGMA
    ))
    .context("cannot configure the group commit's connection")?;
    conn.set_prepared_statement_cache_capacity(128);
    let wrote_events = Arc::new(AtomicBool::new(false));
    let flag = wrote_events.clone();
    conn.update_hook(Some(
        move |_: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
            if crate::db::wakes_readers(table) {
                flag.store(true, Ordering::Relaxed);
            }
        },
    ))?;
    let flag = wrote_events.clone();
    let signal = settings.events_committed.clone();
    conn.commit_hook(Some(move || {
        if flag.swap(false, Ordering::Relaxed) {
            signal.notify_one();
        }
        false // false: let the commit happen
    }))?;
    conn.rollback_hook(Some(move || wrote_events.store(false, Ordering::Relaxed)))?;
    // After `WRITER_PRAGMA`: `wal_autocheckpoint` replaces the WAL hook.
    conn.wal_hook(Some(wal_committed));
    Ok(conn)
}

async fn run(
    conn: Connection,
    mut receiver: mpsc::Receiver<Write>,
    commits: Arc<AtomicU64>,
    (restart_frames, restart_every): (c_int, Duration),
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut last_restart: Option<Instant> = None;
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let writes = std::mem::take(&mut batch);
        match run_batch(&conn, writes) {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::error!(%error, "a group commit failed; its writes were answered with an error");
            }
        }
        if WAL_FRAMES.get() > restart_frames
            && last_restart.is_none_or(|at| at.elapsed() >= restart_every)
        {
            last_restart = Some(Instant::now());
            restart_wal(&conn);
        }
    }
}

/// Copies what is left of the WAL into the database file, without waiting for readers, so that
/// the next batch starts the WAL over. A reader still on an older snapshot keeps some frames
/// in use: then the WAL starts over at a later try.
fn restart_wal(conn: &Connection) {
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    }) {
        Ok((frames, copied)) if frames == copied => WAL_FRAMES.set(0),
        Ok((frames, copied)) => {
            tracing::debug!(frames, copied, "a reader keeps the WAL from starting over");
        }
        // The checkpointer is copying at this moment: the next try will do.
        Err(error) => tracing::debug!(%error, "cannot checkpoint from the writer"),
    }
}

/// Runs one batch and delivers every result. A write that could not even start is dropped,
/// which its submitter sees as an error (nothing of it was written).
fn run_batch(conn: &Connection, writes: Vec<Write>) -> StoreResult<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let mut delivers: Vec<Deliver> = Vec::with_capacity(writes.len());
    for write in writes {
        let closed = conn
            .prepare_cached("SAVEPOINT grouped_write")
            .and_then(|mut s| s.execute([]))
            .map(|_| {
                let (ok, deliver) = write(conn);
                let close = if ok {
                    "RELEASE grouped_write"
                } else {
                    "ROLLBACK TO grouped_write; RELEASE grouped_write"
                };
                (conn.execute_batch(close), deliver)
            });
        match closed {
            Ok((Ok(()), deliver)) => delivers.push(deliver),
            Ok((Err(error), deliver)) => {
                // The transaction is in doubt: nobody in it may hear "done".
                let why: Arc<str> = format!("cannot close a savepoint: {error}").into();
                fail_all(&why, delivers.into_iter().chain([deliver]));
                let _ = conn.execute_batch("ROLLBACK");
                return Err(error.into());
            }
            Err(error) => {
                let why: Arc<str> = format!("cannot open a savepoint: {error}").into();
                fail_all(&why, delivers);
                let _ = conn.execute_batch("ROLLBACK");
                return Err(error.into());
            }
        }
    }
    let commit = conn.execute_batch("COMMIT");
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let outcome = commit
        .as_ref()
        .map(|_| ())
        .map_err(|error| Arc::<str>::from(error.to_string()));
    for deliver in delivers {
        deliver(outcome.clone());
    }
    Ok(commit?)
}

fn fail_all(why: &Arc<str>, delivers: impl IntoIterator<Item = Deliver>) {
    for deliver in delivers {
        deliver(Err(why.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direct::{self, Conn};

    /// A database with `t (v UNIQUE)` and a group commit on it; returns the file too.
    fn setup(dir: &tempfile::TempDir) -> (PathBuf, GroupCommit) {
        let path = dir.path().join("t.db");
        Connection::open(&path)
            .and_then(|c| {
                c.execute_batch(
                    "PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER NOT NULL UNIQUE)",
                )
            })
            .expect("create");
        let settings = Settings {
            path: path.clone(),
            synchronous: "FULL",
            busy_timeout: Duration::from_secs(5),
            events_committed: Arc::new(Notify::new()),
            restart_wal: (RESTART_WAL_FRAMES, RESTART_EVERY),
        };
        let group = GroupCommit::start(settings).expect("start");
        (path, group)
    }

    fn insert(value: i64) -> impl FnOnce(&Conn) -> StoreResult<i64> {
        move |conn| {
            direct::execute(conn, "INSERT INTO t (v) VALUES ($1)", &[&value])?;
            Ok(value)
        }
    }

    /// The committed values, read on a connection of its own.
    fn stored(path: &PathBuf) -> Vec<i64> {
        let conn = Connection::open(path).expect("open");
        let mut statement = conn.prepare("SELECT v FROM t ORDER BY v").expect("prepare");
        statement
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .expect("read")
    }

    /// With writes that never pause, the WAL starts over once it passes its limit instead of
    /// growing with every write. No checkpointer runs here: the writer's own is the only one.
    #[tokio::test]
    async fn under_writes_that_never_pause_the_wal_starts_over_instead_of_growing() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("w.db");
        Connection::open(&path)
            .and_then(|c| c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE b (v BLOB)"))
            .expect("create");
        let group = GroupCommit::start(Settings {
            path: path.clone(),
            synchronous: "NORMAL",
            busy_timeout: Duration::from_secs(5),
            events_committed: Arc::new(Notify::new()),
            restart_wal: (64, Duration::ZERO),
        })
        .expect("start");
        // 8 writers, 1,000 writes of 16 KiB: about 5,000 pages, 20 MB of WAL if it never
        // started over.
        let writers: Vec<_> = (0..8)
            .map(|_| {
                let group = group.clone();
                tokio::spawn(async move {
                    for _ in 0..125 {
                        group
                            .submit(|conn: &Conn| {
                                direct::execute(
                                    conn,
                                    "INSERT INTO b (v) VALUES (zeroblob(16384))",
                                    &[],
                                )
                            })
                            .await
                            .expect("write");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
        let rows = group
            .submit(|conn: &Conn| {
                direct::query_optional(conn, "SELECT COUNT(*) FROM b", &[], |r| r.get::<_, i64>(0))
            })
            .await
            .expect("count");
        assert_eq!(rows, Some(1000));
        let wal = std::fs::metadata(dir.path().join("w.db-wal"))
            .expect("wal")
            .len();
        assert!(wal < 2_000_000, "the WAL started over: {wal} bytes");
    }

    /// The writer keeps temporary files (statement journals) on disk: see `open`.
    #[tokio::test]
    async fn the_writer_keeps_statement_journals_out_of_memory() {
        let dir = tempfile::tempdir().expect("dir");
        let (_path, group) = setup(&dir);
        let temp_store = group
            .submit(|conn: &Conn| {
                direct::query_optional(conn, "PRAGMA temp_store", &[], |r| r.get::<_, i64>(0))
            })
            .await
            .expect("pragma");
        assert_eq!(
            temp_store,
            Some(0),
            "temp_store is DEFAULT (0), not MEMORY (2)"
        );
    }

    #[tokio::test]
    async fn a_failing_write_is_rolled_back_alone_and_the_others_commit() {
        let dir = tempfile::tempdir().expect("dir");
        let (path, group) = setup(&dir);
        // The middle write inserts a row, then fails: only its own row must go.
        let failing = |conn: &Conn| -> StoreResult<i64> {
            direct::execute(conn, "INSERT INTO t (v) VALUES (2)", &[])?;
            direct::execute(conn, "INSERT INTO t (v) VALUES (1)", &[])?;
            Ok(2)
        };
        let (a, b, c) = tokio::join!(
            group.submit(insert(1)),
            group.submit(failing),
            group.submit(insert(3)),
        );
        assert_eq!(a.expect("first"), 1);
        assert!(b.is_err(), "a duplicate value fails its own write");
        assert_eq!(c.expect("third"), 3);
        assert_eq!(
            stored(&path),
            vec![1, 3],
            "the failed write left nothing behind"
        );
    }

    #[tokio::test]
    async fn many_concurrent_writes_share_commits_and_every_one_is_answered() {
        let dir = tempfile::tempdir().expect("dir");
        let (path, group) = setup(&dir);
        let before = group.commits();
        let writes = (0..500).map(|v| group.submit(insert(v)));
        let answers = futures::future::join_all(writes).await;
        assert!(answers.iter().all(Result::is_ok));
        assert_eq!(stored(&path).len(), 500);
        let commits = group.commits() - before;
        // Each batch takes at most MAX_BATCH writes, so 500 need at least two commits; one
        // commit per write (or anything near it) would mean no sharing.
        assert!(
            (2..=25).contains(&commits),
            "500 concurrent writes took {commits} commits"
        );
    }
}
