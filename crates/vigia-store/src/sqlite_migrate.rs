//! Applies the SQLite migrations through rusqlite, keeping the bookkeeping table sqlx's
//! migrator keeps (`_sqlx_migrations`: version, description, checksum, success), so a database
//! migrated by an earlier Vigía is recognised as it is: the same checks (a failed migration
//! left behind, an applied one whose text changed, an applied one this build does not know)
//! refuse to start, and each migration runs with its bookkeeping row in one transaction, unless
//! it says `-- no-transaction` (it then manages its own, as SQLite's table rebuilds need).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, bail};
use rusqlite::Connection;
use sqlx::migrate::Migrator;

const TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

const RECORD: &str = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
     VALUES (?1, ?2, TRUE, ?3, -1)";

/// Applies `migrator`'s pending migrations on `conn`; returns how many it applied.
pub(crate) fn run(conn: &mut Connection, migrator: &Migrator) -> anyhow::Result<usize> {
    conn.execute_batch(TABLE)
        .context("creating the migrations table")?;
    let dirty: Option<i64> = conn
        .query_row(
            "SELECT version FROM _sqlx_migrations WHERE NOT success ORDER BY version LIMIT 1",
            [],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            other => Err(other),
        })?;
    if let Some(version) = dirty {
        bail!(
            "migration {version} was left unfinished by an earlier start: restore the database \
             from a backup (see the README's operations section)"
        );
    }
    let applied: HashMap<i64, Vec<u8>> = {
        let mut statement =
            conn.prepare("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")?;
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
    if let Some(unknown) = applied.keys().find(|v| !known.contains(v)) {
        bail!(
            "the database has migration {unknown}, which this build of Vigía does not know: \
             run the version that wrote it, or a newer one"
        );
    }
    let mut count = 0;
    for migration in migrator.iter() {
        if migration.migration_type.is_down_migration() {
            continue;
        }
        if let Some(checksum) = applied.get(&migration.version) {
            if checksum.as_slice() != &*migration.checksum {
                bail!(
                    "migration {} changed after it was applied to this database",
                    migration.version
                );
            }
            continue;
        }
        let started = Instant::now();
        let record = |conn: &Connection| {
            conn.execute(
                RECORD,
                rusqlite::params![
                    migration.version,
                    &*migration.description,
                    &*migration.checksum
                ],
            )
        };
        let applied = if migration.no_tx {
            conn.execute_batch(migration.sql.as_str())
                .and_then(|()| record(conn).map(drop))
        } else {
            let tx = conn.transaction()?;
            tx.execute_batch(migration.sql.as_str())
                .and_then(|()| record(&tx).map(drop))
                .and_then(|()| tx.commit())
        };
        applied.with_context(|| {
            format!(
                "applying SQLite migration {} ({})",
                migration.version, migration.description
            )
        })?;
        conn.execute(
            "UPDATE _sqlx_migrations SET execution_time = ?1 WHERE version = ?2",
            rusqlite::params![started.elapsed().as_nanos() as i64, migration.version],
        )?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::run;

    static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

    fn open(dir: &tempfile::TempDir) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(dir.path().join("db.sqlite")).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")
            .expect("pragmas");
        conn
    }

    #[test]
    fn every_migration_applies_once_and_a_second_run_applies_none() {
        let dir = tempfile::tempdir().expect("dir");
        let mut conn = open(&dir);
        let first = run(&mut conn, &MIGRATIONS).expect("first run");
        assert_eq!(first, MIGRATIONS.iter().count());
        assert_eq!(run(&mut conn, &MIGRATIONS).expect("second run"), 0);
        let recorded: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM _sqlx_migrations WHERE success AND execution_time >= 0",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(recorded as usize, first);
        let incidents: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'incidents'",
                [],
                |r| r.get(0),
            )
            .expect("table");
        assert_eq!(incidents, 1);
    }

    #[test]
    fn a_changed_applied_migration_and_an_unfinished_one_refuse_to_start() {
        let dir = tempfile::tempdir().expect("dir");
        let mut conn = open(&dir);
        run(&mut conn, &MIGRATIONS).expect("first run");
        conn.execute(
            "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 1",
            [],
        )
        .expect("tamper");
        let changed = run(&mut conn, &MIGRATIONS).expect_err("a changed migration");
        assert!(format!("{changed:#}").contains("changed after it was applied"));
        conn.execute(
            "UPDATE _sqlx_migrations SET success = FALSE WHERE version = 2",
            [],
        )
        .expect("mark unfinished");
        let dirty = run(&mut conn, &MIGRATIONS).expect_err("an unfinished migration");
        assert!(format!("{dirty:#}").contains("migration 2 was left unfinished"));
    }
}
