//! Exams and their participants: creating and finding exams, adding and finding participants,
//! and storing a participant's checked reference ([`set_reference`]; photos that land in
//! storage go through [`super::references`]).

use vigia_domain::Timestamp;

use super::{EXAM_COLUMNS, Exam, NewExam, PARTICIPANT_COLUMNS, Participant, references};
use crate::{Db, StoreError, StoreResult, composed, direct, direct_read, grouped_write};

fn unknown_exam_reference() -> StoreError {
    StoreError::UnknownReference {
        field: "category_id".into(),
        entity: "category or department",
    }
}

pub async fn create_exam(db: &Db, new: &NewExam, created_by: &str) -> StoreResult<Exam> {
    let sql = format!(
        "INSERT INTO exams (code, title, category_id, department_id, starts_at, ends_at, threshold, \
         captures_per_minute, alerts_before_final, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {EXAM_COLUMNS}"
    );
    let now = Timestamp::now().millis();
    let new = new.clone();
    let (starts, ends) = (new.starts_at.millis(), new.ends_at.millis());
    let created_by = created_by.to_owned();
    grouped_write!(db,
        sqlite: |conn| {
            direct::query_optional(
                conn,
                &sql,
                &[
                    &new.code,
                    &new.title,
                    &new.category_id,
                    &new.department_id,
                    &starts,
                    &ends,
                    &new.threshold,
                    &new.captures_per_minute,
                    &new.alerts_before_final,
                    &created_by,
                    &now,
                ],
                Exam::from_direct,
            )
            .map_err(|e| {
                if direct::is_foreign_key(&e) {
                    unknown_exam_reference()
                } else {
                    StoreError::unique_direct(e, "code")
                }
            })?
            .ok_or(StoreError::NotFound)
        },
        postgres: |tx| {
            let exam: Exam = sqlx::query_as(composed(&sql))
                .bind(&new.code)
                .bind(&new.title)
                .bind(new.category_id)
                .bind(new.department_id)
                .bind(starts)
                .bind(ends)
                .bind(new.threshold)
                .bind(new.captures_per_minute)
                .bind(new.alerts_before_final)
                .bind(&created_by)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| {
                    if StoreError::is_foreign_key(&e) {
                        unknown_exam_reference()
                    } else {
                        StoreError::unique(e, "exams_code_key", "code")
                    }
                })?;
            Ok(exam)
        },
    )
}

pub async fn list_exams(db: &Db) -> StoreResult<Vec<Exam>> {
    let sql = format!("SELECT {EXAM_COLUMNS} FROM exams ORDER BY id DESC");
    direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[], Exam::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).fetch_all(pool).await?),
    )
}

pub async fn find_exam(db: &Db, id: i64) -> StoreResult<Exam> {
    let sql = format!("SELECT {EXAM_COLUMNS} FROM exams WHERE id = $1");
    let found: Option<Exam> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&id], Exam::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(id).fetch_optional(pool).await?),
    )?;
    found.ok_or(StoreError::NotFound)
}

pub async fn find_exam_by_code(db: &Db, code: &str) -> StoreResult<Exam> {
    let sql = format!("SELECT {EXAM_COLUMNS} FROM exams WHERE code = $1");
    let code = code.to_owned();
    let found: Option<Exam> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&code], Exam::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(&code).fetch_optional(pool).await?),
    )?;
    found.ok_or(StoreError::NotFound)
}

pub async fn add_participant(
    db: &Db,
    exam_id: i64,
    external_id: &str,
    name: &str,
) -> StoreResult<Participant> {
    let sql = format!(
        "INSERT INTO exam_participants (exam_id, external_id, name, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING {PARTICIPANT_COLUMNS}"
    );
    let now = Timestamp::now();
    let at = now.millis();
    let (external_id, name) = (external_id.to_owned(), name.to_owned());
    let added: Participant = grouped_write!(db,
        sqlite: |conn| direct::query_optional(
            conn,
            &sql,
            &[&exam_id, &external_id, &name, &at],
            Participant::from_direct,
        )
        .map_err(|e| StoreError::unique_direct(e, "external_id"))?
        .ok_or(StoreError::NotFound),
        postgres: |tx| sqlx::query_as(composed(&sql))
            .bind(exam_id)
            .bind(&external_id)
            .bind(&name)
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "exam_participants_external_key", "external_id")),
    )?;
    // A reference photo that landed in storage before the participant was added.
    references::apply_latest(db, added, now).await
}

pub async fn list_participants(db: &Db, exam_id: i64) -> StoreResult<Vec<Participant>> {
    let sql = format!(
        "SELECT {PARTICIPANT_COLUMNS} FROM exam_participants WHERE exam_id = $1 ORDER BY external_id"
    );
    direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[&exam_id], Participant::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(exam_id).fetch_all(pool).await?),
    )
}

pub async fn find_participant(db: &Db, exam_id: i64, id: i64) -> StoreResult<Participant> {
    let sql = format!(
        "SELECT {PARTICIPANT_COLUMNS} FROM exam_participants WHERE exam_id = $1 AND id = $2"
    );
    let found: Option<Participant> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&exam_id, &id], Participant::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql))
            .bind(exam_id)
            .bind(id)
            .fetch_optional(pool)
            .await?),
    )?;
    found.ok_or(StoreError::NotFound)
}

pub async fn find_participant_by_external(
    db: &Db,
    exam_id: i64,
    external_id: &str,
) -> StoreResult<Option<Participant>> {
    let sql = format!(
        "SELECT {PARTICIPANT_COLUMNS} FROM exam_participants WHERE exam_id = $1 AND external_id = $2"
    );
    let external_id = external_id.to_owned();
    direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&exam_id, &external_id], Participant::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql))
            .bind(exam_id)
            .bind(&external_id)
            .fetch_optional(pool)
            .await?),
    )
}

/// Stores a participant's checked reference: the photo's key, its embedding and its analysis
/// (and forgets an earlier refusal).
pub async fn set_reference(
    db: &Db,
    participant_id: i64,
    key: &str,
    embedding_json: &str,
    faces_json: &str,
) -> StoreResult<Participant> {
    let sql = format!(
        "UPDATE exam_participants SET reference_key = $2, reference_embedding = $3, \
         reference_faces = $4, enrolled_at = $5, reference_refused = NULL WHERE id = $1 \
         RETURNING {PARTICIPANT_COLUMNS}"
    );
    let now = Timestamp::now().millis();
    let (key, embedding, faces) = (
        key.to_owned(),
        embedding_json.to_owned(),
        faces_json.to_owned(),
    );
    let found: Option<Participant> = grouped_write!(db,
        sqlite: |conn| direct::query_optional(
            conn,
            &sql,
            &[&participant_id, &key, &embedding, &faces, &now],
            Participant::from_direct,
        ),
        postgres: |tx| Ok(sqlx::query_as(composed(&sql))
            .bind(participant_id)
            .bind(&key)
            .bind(&embedding)
            .bind(&faces)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?),
    )?;
    found.ok_or(StoreError::NotFound)
}
