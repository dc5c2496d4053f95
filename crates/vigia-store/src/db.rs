//! Connections: one type over SQLite and PostgreSQL, migrations, health, backup.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::Notify;

use crate::StoreResult;
use crate::checkpoint::Checkpointer;
use crate::group_commit::{self, GroupCommit};
use crate::readers::Readers;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connection settings that are not part of the URL.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// PostgreSQL pool size (SQLite reads use two connections per core, writes one).
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

/// The two backends. Use [`direct_read!`](crate::direct_read) /
/// [`grouped_write!`](crate::grouped_write) rather than matching by hand.
#[derive(Debug, Clone)]
pub enum Backend {
    /// SQLite through rusqlite only: reads on [`Readers`], writes through the [`GroupCommit`].
    Sqlite {
        /// Read-only connections (see [`crate::readers`]).
        readers: Readers,
        /// The one writing connection: writes share commits (see [`crate::group_commit`]).
        group: GroupCommit,
        /// Checkpoints the WAL off the writers' threads (see [`crate::checkpoint`]).
        checkpoints: Arc<Checkpointer>,
        /// The database file, and how long its connections wait for a lock.
        path: PathBuf,
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

/// Runs one read and evaluates to its `StoreResult`. On SQLite, `$sqlite` runs
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
            "full" => "FULL",
            "normal" => "NORMAL",
            other => {
                bail!("database.sqlite_synchronous must be \"full\" or \"normal\", not {other:?}")
            }
        };
        let path = sqlite_file(url)?;
        // Create the file if it is missing and switch it to WAL once: the read-only connections
        // opened next need both.
        let conn = rusqlite::Connection::open(&path)
            .with_context(|| format!("cannot open SQLite database {url}"))?;
        conn.busy_timeout(options.busy_timeout)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .with_context(|| format!("cannot switch {url} to WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            bail!("SQLite database {url} cannot use WAL (journal mode {mode}): use a local disk");
        }
        drop(conn);
        let events_committed = Arc::new(Notify::new());
        let settings = group_commit::Settings {
            path,
            synchronous,
            busy_timeout: options.busy_timeout,
            events_committed: events_committed.clone(),
            restart_wal: (
                group_commit::RESTART_WAL_FRAMES,
                group_commit::RESTART_EVERY,
            ),
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
                group: GroupCommit::start(settings)?,
                checkpoints: Arc::new(checkpoints),
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
    /// [`wakes_readers`]) commits: on SQLite by the group commit's commit hook, on PostgreSQL
    /// by the `LISTEN vigia_events` task that
    /// [`crate::incidents::feed::listen`] runs. A wake-up only says "read again": consumers read
    /// `id > last seen` from the table, and poll as well, so a missed wake-up costs latency only.
    pub fn events_committed(&self) -> &Arc<Notify> {
        &self.events_committed
    }

    /// Waits until no write transaction is in flight on this node. On SQLite the commit hook
    /// fires just before the commit becomes visible; an empty write is answered only after the
    /// batch after it committed, and batches run one at a time. A no-op on PostgreSQL (NOTIFY
    /// is delivered after commit).
    pub async fn settle_writes(&self) {
        if let Backend::Sqlite { group, .. } = &self.backend {
            let _ = group.submit(|_| Ok(())).await;
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
        self.count_applied().await.unwrap_or(0) as usize
    }

    async fn count_applied(&self) -> StoreResult<i64> {
        const SQL: &str = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        crate::direct_read!(self,
            sqlite: |conn| crate::direct::query_optional(conn, SQL, &[], |r| r.get(0))
                .map(Option::unwrap_or_default),
            postgres: |pool| Ok(sqlx::query_scalar(SQL).fetch_one(pool).await?),
        )
    }

    /// Runs `delete`, a clean-up `DELETE` of the rows older than `$1` = `before`, as one
    /// grouped write; returns how many rows it deleted.
    pub(crate) async fn delete_before(
        &self,
        delete: &'static str,
        before: i64,
    ) -> StoreResult<u64> {
        crate::grouped_write!(self,
            sqlite: |conn| Ok(crate::direct::execute(conn, delete, &[&before])? as u64),
            postgres: |tx| Ok(sqlx::query(delete)
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected()),
        )
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.select_one().await.context("database did not answer")?;
        Ok(())
    }

    async fn select_one(&self) -> StoreResult<Option<i64>> {
        const SQL: &str = "SELECT CAST(1 AS BIGINT)";
        crate::direct_read!(self,
            sqlite: |conn| crate::direct::query_optional(conn, SQL, &[], |r| r.get(0)),
            postgres: |pool| Ok(sqlx::query_scalar(SQL).fetch_optional(pool).await?),
        )
    }

    /// Connections in use and idle, for metrics. On SQLite: the readers' connections (two per
    /// core: inline and threads) and the writer's, all kept open, so none counts as idle.
    pub fn pool_stats(&self) -> PoolStats {
        match &self.backend {
            Backend::Sqlite { readers, .. } => PoolStats {
                size: readers.connections() + 1,
                idle: 0,
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
        let Backend::Sqlite {
            path: source,
            busy_timeout,
            ..
        } = &self.backend
        else {
            bail!("online backup is for SQLite; back up PostgreSQL with pg_dump (see the README)");
        };
        if target.exists() {
            bail!(
                "{} already exists: choose a new file name",
                target.display()
            );
        }
        let path = target
            .to_str()
            .context("backup path must be valid UTF-8")?
            .to_owned();
        let (source, timeout) = (source.clone(), *busy_timeout);
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let conn = rusqlite::Connection::open_with_flags(
                &source,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            conn.busy_timeout(timeout)?;
            conn.execute("VACUUM INTO ?1", [&path])
                .context("VACUUM INTO failed")?;
            Ok(())
        })
        .await
        .context("the backup thread panicked")?
    }

    /// Closes PostgreSQL's pool. SQLite's connections close with the last handle (the group
    /// commit answers every write it took first).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { .. } => self.settle_writes().await,
            Backend::Postgres { pool } => pool.close().await,
        }
    }
}

/// Whether a write to `table` wakes the real-time readers at commit: the event log, and the
/// processing state of videos (whose changes the hub sends as `video.*` messages).
pub(crate) fn wakes_readers(table: &str) -> bool {
    matches!(
        table,
        "incident_events" | "exam_events" | "media_transcodes" | "competition_entries"
    )
}

/// The file of a `sqlite://PATH` (or `sqlite:PATH`) URL; query parameters are not supported
/// (the settings are Vigía's own).
fn sqlite_file(url: &str) -> anyhow::Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .context("a SQLite URL starts with sqlite://")?;
    if rest.contains('?') {
        bail!("SQLite URL {url:?} has parameters: Vigía sets its own (database.* settings)");
    }
    if rest.is_empty() || rest == ":memory:" {
        bail!(
            "SQLite URL {url:?} names no file: use sqlite://PATH (an in-memory database cannot be shared by Vigía's connections)"
        );
    }
    Ok(PathBuf::from(rest))
}

/// Connections of a pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
}
