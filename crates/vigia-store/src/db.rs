//! Connections: one type over SQLite and PostgreSQL, migrations, health, backup.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::Notify;

use crate::checkpoint::Checkpointer;
use crate::group_commit::{self, GroupCommit};
use crate::readers::Readers;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connection settings that are not part of the URL.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// PostgreSQL pool size; on SQLite, the number of reader connections.
    pub max_connections: u32,
    /// SQLite: wait this long for a lock before failing.
    pub busy_timeout: Duration,
    /// SQLite `synchronous`: `full` (durable on power loss) or `normal` (durable on process crash).
    pub sqlite_synchronous: String,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            busy_timeout: Duration::from_secs(5),
            sqlite_synchronous: "full".into(),
        }
    }
}

/// The two backends. Use [`on_reader!`](crate::on_reader) / [`on_writer!`](crate::on_writer)
/// rather than matching by hand.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
        /// Connections of their own for the hottest reads (see [`crate::readers`]).
        readers: Readers,
        /// Batches small hot-path writes into shared commits (see [`crate::group_commit`]).
        group: GroupCommit,
        /// Checkpoints the WAL off the writers' threads (see [`crate::checkpoint`]).
        checkpoints: Arc<Checkpointer>,
        /// The database file, and how long its connections wait for a lock.
        path: std::path::PathBuf,
        busy_timeout: Duration,
    },
    Postgres {
        pool: PgPool,
    },
}

/// The database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pub(crate) backend: Backend,
    /// Woken after a commit that wrote incident events (see [`Db::events_committed`]).
    pub(crate) events_committed: Arc<Notify>,
}

/// Runs `$body` with `$pool` bound to a pool that may read.
#[macro_export]
#[doc(hidden)]
macro_rules! on_reader {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.backend {
            $crate::Backend::Sqlite { reader: $pool, .. } => $body,
            $crate::Backend::Postgres { pool: $pool } => $body,
        }
    };
}

/// Runs `$body` with `$pool` bound to the pool that may write.
#[macro_export]
#[doc(hidden)]
macro_rules! on_writer {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.backend {
            $crate::Backend::Sqlite { writer: $pool, .. } => $body,
            $crate::Backend::Postgres { pool: $pool } => $body,
        }
    };
}

/// Runs one hot read and evaluates to its `StoreResult`. On SQLite, `$sqlite` runs
/// synchronously on a direct reader connection (`$sq: &rusqlite::Connection`): first on the
/// caller's thread within a step budget, and again, whole, on a reader thread if it outgrew it
/// (see [`crate::readers`]), so it must own what it uses and may run twice. On PostgreSQL,
/// `$postgres` runs with `$pg` the pool.
#[macro_export]
#[doc(hidden)]
macro_rules! direct_read {
    ($db:expr, sqlite: |$sq:ident| $sqlite:expr, postgres: |$pg:ident| $postgres:expr $(,)?) => {
        match &$db.backend {
            $crate::Backend::Sqlite { readers, .. } => {
                readers
                    .run(move |$sq: &::rusqlite::Connection| $sqlite)
                    .await
            }
            $crate::Backend::Postgres { pool: $pg } => $postgres,
        }
    };
}

/// Runs one durable write and evaluates to its `StoreResult` once committed. On SQLite,
/// `$sqlite` runs synchronously on the group commit's connection (`$sq: &rusqlite::Connection`,
/// see [`crate::direct`]), sharing a transaction and an `fsync` with the writes submitted
/// alongside it, in a savepoint of its own; it must own what it uses, as it runs on the group
/// commit's thread. On PostgreSQL, `$postgres` runs as an `async move` block with `$pg` a
/// `&mut` connection inside a transaction of its own.
#[macro_export]
#[doc(hidden)]
macro_rules! grouped_write {
    ($db:expr, sqlite: |$sq:ident| $sqlite:expr, postgres: |$pg:ident| $postgres:expr $(,)?) => {
        match &$db.backend {
            $crate::Backend::Sqlite { group, .. } => {
                group
                    .submit(move |$sq: &::rusqlite::Connection| $sqlite)
                    .await
            }
            $crate::Backend::Postgres { pool } => {
                let mut tx = pool.begin().await?;
                let result = {
                    let $pg = &mut *tx;
                    async move { $postgres }.await
                };
                if result.is_ok() {
                    tx.commit().await?;
                }
                result
            }
        }
    };
}

impl Db {
    /// Connects to `url`: `sqlite://path/to/file.db` (created if missing) or `postgres://...`.
    pub async fn connect(url: &str, options: &DbOptions) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, options).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_postgres(url, options).await
        } else {
            bail!("unsupported database URL {url:?}: use sqlite://PATH or postgres://USER@HOST/DB")
        }
    }

    async fn connect_sqlite(url: &str, options: &DbOptions) -> anyhow::Result<Self> {
        let synchronous = match options.sqlite_synchronous.as_str() {
            "full" => SqliteSynchronous::Full,
            "normal" => SqliteSynchronous::Normal,
            other => {
                bail!("database.sqlite_synchronous must be \"full\" or \"normal\", not {other:?}")
            }
        };
        let connect = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("invalid SQLite URL {url:?}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout)
            // Not `temp_store = memory` (see `group_commit::open`: statement journals).
            .pragma("cache_size", "-16000")
            // Checkpoints run on their own thread (crate::checkpoint), not in the committer.
            .pragma("wal_autocheckpoint", "0")
            .statement_cache_capacity(256);
        let path = connect.get_filename().to_owned();
        let events_committed = Arc::new(Notify::new());
        let signal = events_committed.clone();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| watch_event_commits(conn, signal.clone()))
            .connect_with(connect.clone())
            .await
            .with_context(|| format!("cannot open SQLite database {url}"))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(1)
            .connect_with(connect.read_only(true))
            .await
            .with_context(|| format!("cannot open SQLite database {url} for reading"))?;
        let settings = group_commit::Settings {
            path,
            synchronous: if options.sqlite_synchronous == "normal" {
                "NORMAL"
            } else {
                "FULL"
            },
            busy_timeout: options.busy_timeout,
            events_committed: events_committed.clone(),
        };
        // Reads are CPU work: one connection per core keeps every core busy without more
        // threads taking turns on them.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let readers = Readers::start(&settings.path, cores, options.busy_timeout)?;
        let checkpoints = Checkpointer::start(
            &settings.path,
            crate::checkpoint::INTERVAL,
            options.busy_timeout,
        )?;
        Ok(Self {
            backend: Backend::Sqlite {
                readers,
                path: settings.path.clone(),
                busy_timeout: options.busy_timeout,
                group: GroupCommit::start(settings, writer.clone())?,
                checkpoints: Arc::new(checkpoints),
                writer,
                reader,
            },
            events_committed,
        })
    }

    async fn connect_postgres(url: &str, options: &DbOptions) -> anyhow::Result<Self> {
        let connect = PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await
            .context("cannot connect to PostgreSQL")?;
        Ok(Self {
            backend: Backend::Postgres { pool },
            events_committed: Arc::new(Notify::new()),
        })
    }

    /// Notified after a transaction that wrote events (or changed a video's processing, see
    /// [`wakes_readers`]) commits: on SQLite by the commit
    /// hooks of both writer connections (the sqlx writer's and the group commit's), on PostgreSQL by the `LISTEN vigia_events` task that
    /// [`crate::incidents::feed::listen`] runs. A wake-up only says "read again": consumers read
    /// `id > last seen` from the table, and poll as well, so a missed wake-up costs latency only.
    pub fn events_committed(&self) -> &Arc<Notify> {
        &self.events_committed
    }

    /// Waits until no write transaction is in flight on this node. On SQLite the commit hook
    /// fires just before the commit becomes visible; taking the sqlx writer's single connection
    /// afterwards guarantees the commit has finished (a group commit batch holds it until its
    /// `COMMIT` returned). A no-op on PostgreSQL (NOTIFY is
    /// delivered after commit).
    pub async fn settle_writes(&self) {
        if let Backend::Sqlite { writer, .. } = &self.backend {
            drop(writer.acquire().await);
        }
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The SQLite database file (`None` on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        match &self.backend {
            Backend::Sqlite { path, .. } => Some(path),
            Backend::Postgres { .. } => None,
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.backend, Backend::Sqlite { .. })
    }

    /// Applies pending migrations and returns how many were applied. Safe to run on every
    /// start and from several nodes at once (sqlx takes a lock on PostgreSQL). On SQLite they
    /// run through rusqlite ([`crate::sqlite_migrate`]) on a connection of their own.
    pub async fn migrate(&self) -> anyhow::Result<usize> {
        match &self.backend {
            Backend::Sqlite {
                path, busy_timeout, ..
            } => {
                let (path, timeout) = (path.clone(), *busy_timeout);
                tokio::task::spawn_blocking(move || {
                    let mut conn = rusqlite::Connection::open(&path)
                        .with_context(|| format!("cannot open {} to migrate it", path.display()))?;
                    conn.busy_timeout(timeout)?;
                    conn.execute_batch("PRAGMA foreign_keys = ON")?;
                    crate::sqlite_migrate::run(&mut conn, &SQLITE_MIGRATIONS)
                })
                .await
                .context("the migration thread panicked")?
            }
            Backend::Postgres { pool } => {
                let before = self.applied_migrations().await;
                POSTGRES_MIGRATIONS
                    .run(pool)
                    .await
                    .context("applying PostgreSQL migrations")?;
                Ok(self.applied_migrations().await.saturating_sub(before))
            }
        }
    }

    /// How many migrations this database has applied (0 for a new database).
    pub async fn applied_migrations(&self) -> usize {
        let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        let count: Result<i64, _> =
            on_writer!(self, |pool| sqlx::query_scalar(sql).fetch_one(pool).await);
        count.unwrap_or(0) as usize
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> anyhow::Result<()> {
        on_writer!(self, |pool| {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .context("database did not answer")?;
        });
        Ok(())
    }

    /// Connections in use and idle, for metrics.
    pub fn pool_stats(&self) -> PoolStats {
        match &self.backend {
            Backend::Sqlite { writer, reader, .. } => PoolStats {
                size: writer.size() + reader.size(),
                idle: (writer.num_idle() + reader.num_idle()) as u32,
            },
            Backend::Postgres { pool } => PoolStats {
                size: pool.size(),
                idle: pool.num_idle() as u32,
            },
        }
    }

    /// Writes a consistent copy of a SQLite database to `target` while it stays in use
    /// (`VACUUM INTO`). PostgreSQL deployments use `pg_dump` instead.
    pub async fn backup_sqlite(&self, target: &std::path::Path) -> anyhow::Result<()> {
        let Backend::Sqlite { reader, .. } = &self.backend else {
            bail!("online backup is for SQLite; back up PostgreSQL with pg_dump (see the README)");
        };
        if target.exists() {
            bail!(
                "{} already exists: choose a new file name",
                target.display()
            );
        }
        let path = target.to_str().context("backup path must be valid UTF-8")?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(reader)
            .await
            .context("VACUUM INTO failed")?;
        Ok(())
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { writer, reader, .. } => {
                reader.close().await;
                writer.close().await;
            }
            Backend::Postgres { pool } => pool.close().await,
        }
    }
}

/// Installs hooks on a SQLite writer connection that notify `signal` when a transaction that
/// inserted into `incident_events` or `exam_events` commits (the flag is cleared on rollback).
/// Whether a write to `table` wakes the real-time readers at commit: the event log, and the
/// processing state of videos (whose changes the hub sends as `video.*` messages).
pub(crate) fn wakes_readers(table: &str) -> bool {
    matches!(
        table,
        "incident_events" | "exam_events" | "media_transcodes" | "competition_entries"
    )
}

fn watch_event_commits(
    conn: &mut sqlx::SqliteConnection,
    signal: Arc<Notify>,
) -> BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move {
        let wrote_events = Arc::new(AtomicBool::new(false));
        let mut handle = conn.lock_handle().await?;
        let flag = wrote_events.clone();
        handle.set_update_hook(move |change| {
            if wakes_readers(change.table) {
                flag.store(true, Ordering::Relaxed);
            }
        });
        let flag = wrote_events.clone();
        handle.set_commit_hook(move || {
            if flag.swap(false, Ordering::Relaxed) {
                signal.notify_one();
            }
            true
        });
        handle.set_rollback_hook(move || wrote_events.store(false, Ordering::Relaxed));
        Ok(())
    })
}

/// Connections of a pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
}
