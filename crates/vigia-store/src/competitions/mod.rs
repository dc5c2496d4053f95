//! Video competitions: the competition (windows, frozen results), its entries ([`entries`]:
//! streamed uploads whose processing state lives in the entry's row) and its votes (one per
//! person and competition). Creating a competition enqueues its `competition.results` job for
//! the moment voting closes, in the same transaction; [`freeze`] records the ranking once.
//! The rules (windows, ranking) are the domain's `vigia_domain::competitions`.

pub mod entries;

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::competitions::{NewCompetition, Tally, Windows, rank};

use crate::jobs::{self, NewJob, Task};
use crate::{Db, StoreError, StoreResult, direct, direct_read, grouped_write};

pub use entries::{Entry, EntryUpload};

/// A competition as stored.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Competition {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub department_id: Option<i64>,
    pub submissions_open_at: i64,
    pub submissions_close_at: i64,
    pub voting_open_at: i64,
    pub voting_close_at: i64,
    /// The frozen ranking (JSON), once voting closed and the results job ran.
    pub results: Option<String>,
    pub frozen_at: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
}

impl Competition {
    pub fn windows(&self) -> Windows {
        Windows {
            submissions_open_at: Timestamp::from_millis(self.submissions_open_at),
            submissions_close_at: Timestamp::from_millis(self.submissions_close_at),
            voting_open_at: Timestamp::from_millis(self.voting_open_at),
            voting_close_at: Timestamp::from_millis(self.voting_close_at),
        }
    }
}

impl Competition {
    /// A row of `columns!()` read on a direct SQLite connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            title: row.get("title")?,
            description: row.get("description")?,
            department_id: row.get("department_id")?,
            submissions_open_at: row.get("submissions_open_at")?,
            submissions_close_at: row.get("submissions_close_at")?,
            voting_open_at: row.get("voting_open_at")?,
            voting_close_at: row.get("voting_close_at")?,
            results: row.get("results")?,
            frozen_at: row.get("frozen_at")?,
            created_by: row.get("created_by")?,
            created_at: row.get("created_at")?,
        })
    }
}

/// The columns of [`Competition`], as a literal for the statements below.
macro_rules! columns {
    () => {
        "id, title, description, department_id, submissions_open_at, submissions_close_at, \
         voting_open_at, voting_close_at, results, frozen_at, created_by, created_at"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO competitions (title, description, department_id, submissions_open_at, \
     submissions_close_at, voting_open_at, voting_close_at, created_by, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ",
    columns!()
);
const LIST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM competitions ORDER BY id DESC LIMIT 500"
);
const FIND: &str = concat!("SELECT ", columns!(), " FROM competitions WHERE id = $1");
const VOTE: &str = "INSERT INTO competition_votes (competition_id, user_id, entry_id, voted_at) \
     VALUES ($1, $2, $3, $4)";
const VOTES_OF_ENTRY: &str = "SELECT COUNT(*) AS votes FROM competition_votes WHERE entry_id = $1";
const WITHDRAW: &str = "DELETE FROM competition_votes WHERE competition_id = $1 AND user_id = $2 \
     RETURNING entry_id";
const VOTE_OF: &str =
    "SELECT entry_id FROM competition_votes WHERE competition_id = $1 AND user_id = $2";
const FREEZE: &str =
    "UPDATE competitions SET results = $2, frozen_at = $3 WHERE id = $1 AND frozen_at IS NULL";

fn unknown_department() -> StoreError {
    StoreError::UnknownReference {
        field: "department_id".into(),
        entity: "department",
    }
}

fn find_direct(conn: &direct::Conn, id: i64) -> StoreResult<Competition> {
    direct::query_optional(conn, FIND, &[&id], Competition::from_direct)?
        .ok_or(StoreError::NotFound)
}

async fn find_postgres(executor: impl sqlx::PgExecutor<'_>, id: i64) -> StoreResult<Competition> {
    let found: Option<Competition> = sqlx::query_as(FIND)
        .bind(id)
        .fetch_optional(executor)
        .await?;
    found.ok_or(StoreError::NotFound)
}

/// Opens a competition and enqueues its results job for when voting closes (one transaction).
#[tracing::instrument(skip_all)]
pub async fn create(
    db: &Db,
    new: &NewCompetition,
    department_id: Option<i64>,
    created_by: &str,
    now: Timestamp,
) -> StoreResult<Competition> {
    let w = new.windows;
    let (title, description) = (new.title().to_owned(), new.description().to_owned());
    let created_by = created_by.to_owned();
    let results_job = move |competition: &Competition| {
        NewJob::new(&Task::CompetitionResults {
            competition_id: competition.id,
        })
        .dedup(format!("competition.results:{}", competition.id))
        .run_at(w.voting_close_at)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let competition = direct::query_optional(
                conn,
                INSERT,
                &[
                    &title,
                    &description,
                    &department_id,
                    &w.submissions_open_at.millis(),
                    &w.submissions_close_at.millis(),
                    &w.voting_open_at.millis(),
                    &w.voting_close_at.millis(),
                    &created_by,
                    &now.millis(),
                ],
                Competition::from_direct,
            )
            .map_err(|e| if direct::is_foreign_key(&e) { unknown_department() } else { e })?
            .ok_or(StoreError::NotFound)?;
            jobs::enqueue_direct(conn, &results_job(&competition), now)?;
            Ok(competition)
        },
        postgres: |tx| {
            let competition: Competition = sqlx::query_as(INSERT)
                .bind(&title)
                .bind(&description)
                .bind(department_id)
                .bind(w.submissions_open_at.millis())
                .bind(w.submissions_close_at.millis())
                .bind(w.voting_open_at.millis())
                .bind(w.voting_close_at.millis())
                .bind(&created_by)
                .bind(now.millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| {
                    if StoreError::is_foreign_key(&e) {
                        unknown_department()
                    } else {
                        StoreError::Database(e)
                    }
                })?;
            jobs::enqueue_in(&mut *tx, &results_job(&competition), now).await?;
            Ok(competition)
        },
    )
}

/// Every competition, newest first.
pub async fn list(db: &Db) -> StoreResult<Vec<Competition>> {
    direct_read!(db,
        sqlite: |conn| direct::query(conn, LIST, &[], Competition::from_direct),
        postgres: |pool| Ok(sqlx::query_as(LIST).fetch_all(pool).await?),
    )
}

pub async fn find(db: &Db, id: i64) -> StoreResult<Competition> {
    direct_read!(db,
        sqlite: |conn| find_direct(conn, id),
        postgres: |pool| find_postgres(pool, id).await,
    )
}

// --- votes ------------------------------------------------------------------------------------

/// Casts `user`'s vote for `entry` (a ready entry of `competition`, checked by the caller):
/// [`StoreError::Duplicate`] when they already voted in this competition. Returns the entry's
/// votes.
#[tracing::instrument(skip(db))]
pub async fn vote(
    db: &Db,
    competition: i64,
    entry: i64,
    user: i64,
    now: Timestamp,
) -> StoreResult<i64> {
    let now = now.millis();
    grouped_write!(db,
        sqlite: |conn| {
            direct::execute(conn, VOTE, &[&competition, &user, &entry, &now])
                .map_err(|e| StoreError::unique_direct(e, "vote"))?;
            let votes: Option<i64> =
                direct::query_optional(conn, VOTES_OF_ENTRY, &[&entry], |r| r.get("votes"))?;
            Ok(votes.unwrap_or(0))
        },
        postgres: |tx| {
            sqlx::query(VOTE)
                .bind(competition)
                .bind(user)
                .bind(entry)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::unique(e, "competition_votes_pkey", "vote"))?;
            Ok(sqlx::query_scalar(VOTES_OF_ENTRY)
                .bind(entry)
                .fetch_one(&mut *tx)
                .await?)
        },
    )
}

/// Takes `user`'s vote in `competition` back; returns the entry it was for, `None` when there
/// was none (idempotent).
#[tracing::instrument(skip(db))]
pub async fn withdraw(db: &Db, competition: i64, user: i64) -> StoreResult<Option<i64>> {
    grouped_write!(db,
        sqlite: |conn| direct::query_optional(conn, WITHDRAW, &[&competition, &user], |r| {
            r.get("entry_id")
        }),
        postgres: |tx| Ok(sqlx::query_scalar(WITHDRAW)
            .bind(competition)
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?),
    )
}

/// The entry `user` voted for in `competition`.
pub async fn vote_of(db: &Db, competition: i64, user: i64) -> StoreResult<Option<i64>> {
    direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, VOTE_OF, &[&competition, &user], |r| {
            r.get("entry_id")
        }),
        postgres: |pool| Ok(sqlx::query_scalar(VOTE_OF)
            .bind(competition)
            .bind(user)
            .fetch_optional(pool)
            .await?),
    )
}

/// One ready entry and its place.
#[derive(Debug, Clone, Serialize)]
pub struct Standing {
    pub place: usize,
    pub entry: Entry,
}

/// The live ranking of the ready entries ([`vigia_domain::competitions::rank`]: votes, then the
/// earliest vote).
pub async fn standings(db: &Db, competition: i64) -> StoreResult<Vec<Standing>> {
    let entries = entries::ready(db, competition).await?;
    let tallies = entries
        .iter()
        .map(|e| Tally {
            entry_id: e.id,
            votes: e.votes,
            first_vote_at: e.first_vote_at.map(Timestamp::from_millis),
            submitted_at: Timestamp::from_millis(e.created_at),
        })
        .collect();
    let mut by_id: std::collections::HashMap<i64, Entry> =
        entries.into_iter().map(|e| (e.id, e)).collect();
    Ok(rank(tallies)
        .into_iter()
        .filter_map(|r| {
            by_id.remove(&r.tally.entry_id).map(|entry| Standing {
                place: r.place,
                entry,
            })
        })
        .collect())
}

/// Records the frozen ranking once (compare-and-set on `frozen_at`); returns the competition
/// as stored afterwards (read in the same transaction), whose `results` are the first ones
/// frozen.
#[tracing::instrument(skip(db, results))]
pub async fn freeze(
    db: &Db,
    competition: i64,
    results: &str,
    now: Timestamp,
) -> StoreResult<Competition> {
    let (results, now) = (results.to_owned(), now.millis());
    grouped_write!(db,
        sqlite: |conn| {
            direct::execute(conn, FREEZE, &[&competition, &results, &now])?;
            find_direct(conn, competition)
        },
        postgres: |tx| {
            sqlx::query(FREEZE)
                .bind(competition)
                .bind(&results)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            find_postgres(&mut *tx, competition).await
        },
    )
}
