//! Vigía's storage. The only crate that writes SQL, and the only one that touches object storage.
//!
//! One [`Db`] serves SQLite and PostgreSQL, chosen by the database URL. SQLite is reached
//! through rusqlite only, PostgreSQL through sqlx, and a store function has one body per backend
//! sharing its SQL text (`$N` placeholders, which `direct` binds by number on SQLite):
//! [`direct_read!`] runs a read on a read-only rusqlite connection, on the caller's thread
//! within a step budget or on a reader thread ([`readers`]); [`grouped_write!`] runs a write on
//! the group commit's connection, the only one that writes, batched with the writes waiting
//! beside it into one transaction and one `fsync` ([`group_commit`], `direct`). On PostgreSQL
//! the same macros run the sqlx body on the pool or in a transaction of its own. Migrations run
//! through sqlx on PostgreSQL and through rusqlite on SQLite (`sqlite_migrate`, same
//! bookkeeping table). WAL checkpoints run on a thread of their own ([`checkpoint`]), and a
//! LIMIT is written into the SQL text, never bound (`sql`). ARCHITECTURE.md ("How a store
//! function is written") says how a function is written.

pub mod api_keys;
pub mod audit;
pub mod catalog;
pub mod checkpoint;
pub mod competitions;
mod db;
pub mod detections;
pub(crate) mod direct;
mod error;
pub mod exam_events;
pub mod group_commit;
pub mod idempotency;
pub mod incidents;
pub mod jobs;
pub mod notifications;
pub mod objects;
pub mod page;
pub mod proctoring;
pub mod rate_limits;
pub mod readers;
pub mod report_links;
pub mod reports;
pub mod schedules;
pub mod sessions;
pub mod settings;
mod sql;
mod sqlite_migrate;
pub mod standing;
pub mod transcodes;
pub mod users;
pub mod webhooks;

pub use db::{Backend, Db, DbOptions, PoolStats};
pub use error::{StoreError, StoreResult};
pub use objects::{ObjectKey, Objects};
pub use page::{Cursor, Page};

/// Who is making a change, carried into the audit log written in the same transaction (its
/// `actor` column). Not to be confused with the domain's `incidents::Relation`: a caller's
/// relation to one incident, which decides what they may do to it.
#[derive(Debug, Clone)]
pub struct ChangeAuthor {
    /// `user:12`, `api_key:3` or `system`.
    pub label: String,
    pub request_id: Option<String>,
}

impl ChangeAuthor {
    pub fn system() -> Self {
        Self {
            label: "system".into(),
            request_id: None,
        }
    }
}

/// Marks SQL text composed at run time from constant fragments, `$N` placeholders and
/// [`sql::limit`]s only (never from input) as safe to prepare. Every value travels as a bind
/// parameter, except a LIMIT, which is a number the code clamps or fixes.
pub(crate) fn composed(sql: &str) -> sqlx::AssertSqlSafe<&str> {
    sqlx::AssertSqlSafe(sql)
}

/// A PostgreSQL statement returning rows of `R`, its parameters bound: what a helper that runs
/// the caller's statement inside a transaction takes.
pub(crate) type PgQuery<'q, R> =
    sqlx::query::QueryAs<'q, sqlx::Postgres, R, sqlx::postgres::PgArguments>;
