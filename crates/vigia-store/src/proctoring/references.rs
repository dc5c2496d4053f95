//! Reference photos that landed in storage as `reference/{user}.{jpg,jpeg,png}`. Each object
//! version is recorded once (unique by key and version, so scans on several nodes or after a
//! restart agree) with its `media.enroll` job in the same transaction. The job checks the photo
//! once and records the outcome here ([`record_check`]: the embedding, or the refusal); the
//! outcome is then applied ([`apply`]) to every participant with that user id in an exam not
//! yet ended, and to a participant added later ([`apply_latest`]). An accepted photo enrolls;
//! a refused one is shown on the participant (`reference_refused`) and leaves the reference
//! already enrolled in force. A participant keeps the id of the object applied last, so an
//! older version checked late never overrides a newer one.
//!
//! The outcome is recorded before it is applied, and a new participant looks it up after its
//! own insert committed: whichever comes second sees the other, so a participant added while
//! a photo is being checked is not missed.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;

use super::{PARTICIPANT_COLUMNS, Participant};
use crate::jobs::{self, NewJob};
use crate::{Db, StoreError, StoreResult, composed, direct, direct_read, grouped_write};

/// The job kind that checks one reference object.
pub const ENROLL: &str = "media.enroll";

/// One version of a reference object and its check.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ReferenceObject {
    pub id: i64,
    pub object_key: String,
    pub version: String,
    pub user_id: String,
    /// `queued`, `accepted` or `refused`.
    pub status: String,
    /// `code: message`, as the API refuses a photo.
    pub refusal: Option<String>,
    /// JSON array of 128 numbers.
    #[serde(skip)]
    pub embedding: Option<String>,
    pub faces: Option<String>,
    pub seen_at: i64,
    pub checked_at: Option<i64>,
}

impl ReferenceObject {
    fn from_direct(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get("id")?,
            object_key: r.get("object_key")?,
            version: r.get("version")?,
            user_id: r.get("user_id")?,
            status: r.get("status")?,
            refusal: r.get("refusal")?,
            embedding: r.get("embedding")?,
            faces: r.get("faces")?,
            seen_at: r.get("seen_at")?,
            checked_at: r.get("checked_at")?,
        })
    }
}

const COLUMNS: &str = "id, object_key, version, user_id, status, refusal, embedding, faces, \
     seen_at, checked_at";

/// Whether this version of this object was already recorded.
pub async fn is_known(db: &Db, key: &str, version: &str) -> StoreResult<bool> {
    const SQL: &str = "SELECT id FROM reference_objects WHERE object_key = $1 AND version = $2";
    let (key, version) = (key.to_owned(), version.to_owned());
    let found: Option<i64> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, SQL, &[&key, &version], |r| r.get("id")),
        postgres: |pool| Ok(sqlx::query_scalar(SQL)
            .bind(&key)
            .bind(&version)
            .fetch_optional(pool)
            .await?),
    )?;
    Ok(found.is_some())
}

/// Records a version of a reference object and enqueues its check in one transaction. `None`
/// when it was already recorded (it is checked once).
pub async fn record_object(
    db: &Db,
    key: &str,
    version: &str,
    user_id: &str,
    now: Timestamp,
) -> StoreResult<Option<ReferenceObject>> {
    let sql = format!(
        "INSERT INTO reference_objects (object_key, version, user_id, status, seen_at) \
         VALUES ($1, $2, $3, 'queued', $4) \
         ON CONFLICT (object_key, version) DO NOTHING RETURNING {COLUMNS}"
    );
    let (key, version, user_id) = (key.to_owned(), version.to_owned(), user_id.to_owned());
    let at = now.millis();
    let enroll = |object: &ReferenceObject| {
        NewJob::new(&jobs::Task::MediaEnroll {
            reference_id: object.id,
        })
        .dedup(format!("{ENROLL}:{}", object.id))
    };
    grouped_write!(db,
        sqlite: |conn| {
            let recorded = direct::query_optional(
                conn,
                &sql,
                &[&key, &version, &user_id, &at],
                ReferenceObject::from_direct,
            )?;
            if let Some(object) = &recorded {
                jobs::enqueue_direct(conn, &enroll(object), now)?;
            }
            Ok(recorded)
        },
        postgres: |tx| {
            let recorded: Option<ReferenceObject> = sqlx::query_as(composed(&sql))
                .bind(&key)
                .bind(&version)
                .bind(&user_id)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(object) = &recorded {
                jobs::enqueue_in(&mut *tx, &enroll(object), now).await?;
            }
            Ok(recorded)
        },
    )
}

pub async fn find_object(db: &Db, id: i64) -> StoreResult<ReferenceObject> {
    let sql = format!("SELECT {COLUMNS} FROM reference_objects WHERE id = $1");
    let found: Option<ReferenceObject> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&id], ReferenceObject::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(id).fetch_optional(pool).await?),
    )?;
    found.ok_or(StoreError::NotFound)
}

/// What checking a reference photo concluded.
#[derive(Debug, Clone, Copy)]
pub enum Check<'a> {
    Accepted {
        embedding_json: &'a str,
        faces_json: &'a str,
    },
    /// `code: message`.
    Refused(&'a str),
}

/// Records a check once (compare-and-set on `queued`); returns the object as stored, also when
/// it had already been checked (then nothing changes).
pub async fn record_check(
    db: &Db,
    id: i64,
    check: Check<'_>,
    now: Timestamp,
) -> StoreResult<ReferenceObject> {
    let (status, refusal, embedding, faces) = match check {
        Check::Accepted {
            embedding_json,
            faces_json,
        } => ("accepted", None, Some(embedding_json), Some(faces_json)),
        Check::Refused(reason) => ("refused", Some(reason), None, None),
    };
    let sql = format!(
        "UPDATE reference_objects SET status = $2, refusal = $3, embedding = $4, faces = $5, \
         checked_at = $6 WHERE id = $1 AND status = 'queued' RETURNING {COLUMNS}"
    );
    let (refusal, embedding, faces) = (
        refusal.map(str::to_owned),
        embedding.map(str::to_owned),
        faces.map(str::to_owned),
    );
    let at = now.millis();
    let updated: Option<ReferenceObject> = grouped_write!(db,
        sqlite: |conn| direct::query_optional(
            conn,
            &sql,
            &[&id, &status, &refusal, &embedding, &faces, &at],
            ReferenceObject::from_direct,
        ),
        postgres: |tx| Ok(sqlx::query_as(composed(&sql))
            .bind(id)
            .bind(status)
            .bind(&refusal)
            .bind(&embedding)
            .bind(&faces)
            .bind(at)
            .fetch_optional(&mut *tx)
            .await?),
    )?;
    match updated {
        Some(object) => Ok(object),
        None => find_object(db, id).await,
    }
}

/// Applies a checked object to the participants with its user id in exams not ended at `now`
/// (or only to `participant`), unless one already has this or a newer object applied. Returns
/// how many participants changed. An object still `queued` changes nothing.
pub async fn apply(
    db: &Db,
    object: &ReferenceObject,
    participant: Option<i64>,
    now: Timestamp,
) -> StoreResult<u64> {
    const WHO: &str = "external_id = $2 AND ($3 IS NULL OR id = $3) \
         AND (reference_object_id IS NULL OR reference_object_id < $1) \
         AND exam_id IN (SELECT id FROM exams WHERE ends_at > $4)";
    // `$5..` as each kind of object sets them.
    let (sql, values) = match (object.status.as_str(), &object.embedding) {
        ("accepted", Some(embedding)) => (
            format!(
                "UPDATE exam_participants SET reference_key = $5, reference_embedding = $6, \
                 reference_faces = $7, enrolled_at = $4, reference_refused = NULL, \
                 reference_object_id = $1 WHERE {WHO}"
            ),
            vec![
                Some(object.object_key.clone()),
                Some(embedding.clone()),
                object.faces.clone(),
            ],
        ),
        ("refused", _) => (
            format!(
                "UPDATE exam_participants SET reference_refused = $5, reference_object_id = $1 \
                 WHERE {WHO}"
            ),
            vec![object.refusal.clone()],
        ),
        _ => return Ok(0),
    };
    let (id, user_id, at) = (object.id, object.user_id.clone(), now.millis());
    grouped_write!(db,
        sqlite: |conn| {
            let mut args: Vec<&dyn rusqlite::ToSql> = vec![&id, &user_id, &participant, &at];
            args.extend(values.iter().map(|v| v as &dyn rusqlite::ToSql));
            Ok(direct::execute(conn, &sql, &args)? as u64)
        },
        postgres: |tx| {
            let mut q = sqlx::query(composed(&sql))
                .bind(id)
                .bind(&user_id)
                .bind(participant)
                .bind(at);
            for value in &values {
                q = q.bind(value);
            }
            Ok(q.execute(&mut *tx).await?.rows_affected())
        },
    )
}

/// Applies what storage holds for a participant's user id (a participant just added): the
/// latest accepted reference, then a refusal of a newer object. Returns the participant as
/// stored afterwards.
pub async fn apply_latest(
    db: &Db,
    participant: Participant,
    now: Timestamp,
) -> StoreResult<Participant> {
    let sql = format!(
        "SELECT {COLUMNS} FROM reference_objects WHERE user_id = $1 AND status = $2 \
         ORDER BY id DESC LIMIT 1"
    );
    let mut changed = 0;
    for status in ["accepted", "refused"] {
        let (sql, user_id) = (sql.clone(), participant.external_id.clone());
        let latest: Option<ReferenceObject> = direct_read!(db,
            sqlite: |conn| direct::query_optional(conn, &sql, &[&user_id, &status], ReferenceObject::from_direct),
            postgres: |pool| Ok(sqlx::query_as(composed(&sql))
                .bind(&user_id)
                .bind(status)
                .fetch_optional(pool)
                .await?),
        )?;
        if let Some(object) = latest {
            changed += apply(db, &object, Some(participant.id), now).await?;
        }
    }
    if changed == 0 {
        return Ok(participant);
    }
    let sql = format!("SELECT {PARTICIPANT_COLUMNS} FROM exam_participants WHERE id = $1");
    let id = participant.id;
    direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&id], Participant::from_direct)?
            .ok_or(StoreError::NotFound),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(id).fetch_one(pool).await?),
    )
}
