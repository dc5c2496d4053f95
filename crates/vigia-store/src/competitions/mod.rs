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
use crate::{Db, StoreError, StoreResult, composed, on_reader, on_writer};

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

const COLUMNS: &str = "id, title, description, department_id, submissions_open_at, \
     submissions_close_at, voting_open_at, voting_close_at, results, frozen_at, created_by, created_at";

/// Opens a competition and enqueues its results job for when voting closes (one transaction).
#[tracing::instrument(skip_all)]
pub async fn create(
    db: &Db,
    new: &NewCompetition,
    department_id: Option<i64>,
    created_by: &str,
    now: Timestamp,
) -> StoreResult<Competition> {
    let sql = format!(
        "INSERT INTO competitions (title, description, department_id, submissions_open_at, \
         submissions_close_at, voting_open_at, voting_close_at, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    );
    let w = new.windows;
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let competition: Competition = sqlx::query_as(composed(&sql))
            .bind(new.title())
            .bind(new.description())
            .bind(department_id)
            .bind(w.submissions_open_at.millis())
            .bind(w.submissions_close_at.millis())
            .bind(w.voting_open_at.millis())
            .bind(w.voting_close_at.millis())
            .bind(created_by)
            .bind(now.millis())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| {
                if StoreError::is_foreign_key(&e) {
                    StoreError::UnknownReference {
                        field: "department_id".into(),
                        entity: "department",
                    }
                } else {
                    StoreError::Database(e)
                }
            })?;
        let job = NewJob::new(&Task::CompetitionResults {
            competition_id: competition.id,
        })
        .dedup(format!("competition.results:{}", competition.id))
        .run_at(w.voting_close_at);
        jobs::enqueue_in(&mut *tx, &job, now).await?;
        tx.commit().await?;
        Ok(competition)
    })
}

/// Every competition, newest first.
pub async fn list(db: &Db) -> StoreResult<Vec<Competition>> {
    let sql = format!("SELECT {COLUMNS} FROM competitions ORDER BY id DESC LIMIT 500");
    Ok(on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .fetch_all(pool)
        .await?))
}

pub async fn find(db: &Db, id: i64) -> StoreResult<Competition> {
    let sql = format!("SELECT {COLUMNS} FROM competitions WHERE id = $1");
    let found: Option<Competition> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(id)
        .fetch_optional(pool)
        .await?);
    found.ok_or(StoreError::NotFound)
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
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO competition_votes (competition_id, user_id, entry_id, voted_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(competition)
        .bind(user)
        .bind(entry)
        .bind(now.millis())
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::unique(e, "competition_votes_pkey", "vote"))?;
        let votes: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM competition_votes WHERE entry_id = $1")
                .bind(entry)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(votes)
    })
}

/// Takes `user`'s vote in `competition` back; returns the entry it was for, `None` when there
/// was none (idempotent).
#[tracing::instrument(skip(db))]
pub async fn withdraw(db: &Db, competition: i64, user: i64) -> StoreResult<Option<i64>> {
    Ok(on_writer!(db, |pool| {
        sqlx::query_scalar(
        "DELETE FROM competition_votes WHERE competition_id = $1 AND user_id = $2 RETURNING entry_id"
    )
    .bind(competition)
    .bind(user)
    .fetch_optional(pool)
    .await?
    }))
}

/// The entry `user` voted for in `competition`.
pub async fn vote_of(db: &Db, competition: i64, user: i64) -> StoreResult<Option<i64>> {
    Ok(on_reader!(db, |pool| sqlx::query_scalar(
        "SELECT entry_id FROM competition_votes WHERE competition_id = $1 AND user_id = $2"
    )
    .bind(competition)
    .bind(user)
    .fetch_optional(pool)
    .await?))
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
/// as stored afterwards, whose `results` are the first ones frozen.
#[tracing::instrument(skip(db, results))]
pub async fn freeze(
    db: &Db,
    competition: i64,
    results: &str,
    now: Timestamp,
) -> StoreResult<Competition> {
    on_writer!(db, |pool| sqlx::query(
        "UPDATE competitions SET results = $2, frozen_at = $3 WHERE id = $1 AND frozen_at IS NULL"
    )
    .bind(competition)
    .bind(results)
    .bind(now.millis())
    .execute(pool)
    .await?
    .rows_affected());
    find(db, competition).await
}
