//! Monitored subjects (people or assets) and their consent.

use serde::Serialize;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::ids::{DepartmentId, SubjectId, ZoneId};

use super::DepartmentScope;
use super::audited::{self, Taken};
use crate::audit::AuditDraft;
use crate::direct::direct_row;
use crate::page::{Cursor, Page};
use crate::{
    ChangeAuthor, Db, StoreError, StoreResult, composed, direct, direct_read, grouped_write,
};

#[derive(Debug, Clone, Serialize)]
pub struct Subject {
    pub id: SubjectId,
    pub code: String,
    pub name: String,
    pub department_id: DepartmentId,
    pub zone_id: Option<ZoneId>,
    /// When consent was recorded; `None`: no consent (detections are refused).
    pub consent_at: Option<Timestamp>,
    pub consent_by: Option<String>,
    /// Detections refused because the subject had not consented.
    pub refused: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

direct_row! {
    struct Row {
        id: i64,
        code: String,
        name: String,
        department_id: i64,
        zone_id: Option<i64>,
        consent_at: Option<i64>,
        consent_by: Option<String>,
        refused: i64,
        created_at: i64,
        updated_at: i64,
    }
}

impl From<Row> for Subject {
    fn from(r: Row) -> Self {
        Self {
            id: SubjectId(r.id),
            code: r.code,
            name: r.name,
            department_id: DepartmentId(r.department_id),
            zone_id: r.zone_id.map(ZoneId),
            consent_at: r.consent_at.map(Timestamp::from_millis),
            consent_by: r.consent_by,
            refused: r.refused,
            created_at: Timestamp::from_millis(r.created_at),
            updated_at: Timestamp::from_millis(r.updated_at),
        }
    }
}

const COLUMNS: &str = "id, code, name, department_id, zone_id, consent_at, consent_by, refused, created_at, updated_at";

/// A subject's editable fields.
#[derive(Debug, Clone)]
pub struct SubjectFields {
    pub code: String,
    pub name: String,
    pub department_id: DepartmentId,
    pub zone_id: Option<ZoneId>,
}

async fn check_references(db: &Db, fields: &SubjectFields) -> StoreResult<()> {
    if !crate::catalog::department_exists(db, fields.department_id).await? {
        return Err(StoreError::UnknownReference {
            field: "department_id".into(),
            entity: "department",
        });
    }
    super::devices::zone_exists(db, fields.zone_id).await
}

/// Two subjects with the same code.
const CODE_TAKEN: Taken = Taken {
    constraint: "subjects_code_key",
    field: "code",
};

fn find_sql() -> String {
    format!("SELECT {COLUMNS} FROM subjects WHERE id = $1")
}

/// Registers a subject (audited). `consent`: consent recorded now by the actor.
pub async fn create(
    db: &Db,
    fields: &SubjectFields,
    consent: bool,
    actor: &ChangeAuthor,
) -> StoreResult<Subject> {
    check_references(db, fields).await?;
    let now = Timestamp::now().millis();
    let sql = format!(
        "INSERT INTO subjects (code, name, department_id, zone_id, consent_at, consent_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {COLUMNS}"
    );
    let (fields, actor) = (fields.clone(), actor.clone());
    let zone = fields.zone_id.map(|z| z.0);
    let consent_at = consent.then_some(now);
    let consent_by = consent.then(|| actor.label.clone());
    let audit = move |subject: &Subject| {
        AuditDraft::new(
            &actor,
            "subject.created",
            AuditEntity::Subject,
            Some(subject.id.0),
        )
        .after(subject)
    };
    grouped_write!(db,
        sqlite: |conn| audited::returning_direct(
            conn,
            &sql,
            &[
                &fields.code,
                &fields.name,
                &fields.department_id.0,
                &zone,
                &consent_at,
                &consent_by,
                &now,
            ],
            Row::from_direct,
            Some(CODE_TAKEN),
            audit,
        ),
        postgres: |tx| {
            let query = sqlx::query_as::<_, Row>(composed(&sql))
                .bind(&fields.code)
                .bind(&fields.name)
                .bind(fields.department_id.0)
                .bind(zone)
                .bind(consent_at)
                .bind(&consent_by)
                .bind(now);
            audited::returning_postgres(&mut *tx, query, Some(CODE_TAKEN), audit).await
        },
    )
}

pub async fn find(db: &Db, id: SubjectId) -> StoreResult<Subject> {
    let sql = find_sql();
    let row: Option<Row> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&id.0], Row::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(id.0).fetch_optional(pool).await?),
    )?;
    row.map(Subject::from).ok_or(StoreError::NotFound)
}

/// Subjects in `scope`, newest first.
pub async fn list(
    db: &Db,
    scope: &DepartmentScope,
    department: Option<DepartmentId>,
    after: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<Subject>> {
    let (scoped, ids) = scope.condition("department_id", 3);
    let sql = format!(
        "SELECT {COLUMNS} FROM subjects WHERE id < $1 AND ($2 = 0 OR department_id = $2){scoped} \
         ORDER BY id DESC LIMIT {}",
        limit + 1
    );
    let after = after.map_or(i64::MAX, |c| c.0);
    let department = department.map_or(0, |d| d.0);
    let rows: Vec<Row> = direct_read!(db,
        sqlite: |conn| {
            let args = DepartmentScope::direct_args(&[&after, &department], &ids);
            direct::query_sized(conn, &sql, &args, limit + 1, Row::from_direct)
        },
        postgres: |pool| {
            let mut q = sqlx::query_as(composed(&sql)).bind(after).bind(department);
            for id in &ids {
                q = q.bind(*id);
            }
            Ok(q.fetch_all(pool).await?)
        },
    )?;
    Ok(Page::from_rows(rows, limit, |r| r.id).map(Subject::from))
}

/// Changes a subject's fields (audited with before and after).
pub async fn update(
    db: &Db,
    id: SubjectId,
    fields: &SubjectFields,
    actor: &ChangeAuthor,
) -> StoreResult<Subject> {
    check_references(db, fields).await?;
    let find = find_sql();
    let sql = format!(
        "UPDATE subjects SET code = $2, name = $3, department_id = $4, zone_id = $5, updated_at = $6 \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let now = Timestamp::now().millis();
    let (fields, actor) = (fields.clone(), actor.clone());
    let zone = fields.zone_id.map(|z| z.0);
    let audit = move |before: &Subject, subject: &Subject| {
        AuditDraft::new(&actor, "subject.updated", AuditEntity::Subject, Some(id.0))
            .before(before)
            .after(subject)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before: Subject = audited::before_direct(conn, &find, id.0, Row::from_direct)?;
            audited::returning_direct(
                conn,
                &sql,
                &[&id.0, &fields.code, &fields.name, &fields.department_id.0, &zone, &now],
                Row::from_direct,
                Some(CODE_TAKEN),
                |subject| audit(&before, subject),
            )
        },
        postgres: |tx| {
            let before = audited::before_postgres::<Row, Subject>(&mut *tx, &find, id.0).await?;
            let query = sqlx::query_as::<_, Row>(composed(&sql))
                .bind(id.0)
                .bind(&fields.code)
                .bind(&fields.name)
                .bind(fields.department_id.0)
                .bind(zone)
                .bind(now);
            audited::returning_postgres(&mut *tx, query, Some(CODE_TAKEN), |subject| {
                audit(&before, subject)
            })
            .await
        },
    )
}

/// Records (`true`) or withdraws (`false`) a subject's consent (audited). Withdrawal takes
/// effect for every detection written after this commit: ingestion reads consent in the
/// writer's own transaction.
pub async fn set_consent(
    db: &Db,
    id: SubjectId,
    consent: bool,
    actor: &ChangeAuthor,
) -> StoreResult<Subject> {
    let find = find_sql();
    let now = Timestamp::now().millis();
    let sql = format!(
        "UPDATE subjects SET consent_at = $2, consent_by = $3, updated_at = $4 WHERE id = $1 RETURNING {COLUMNS}"
    );
    let action = if consent {
        "subject.consent_recorded"
    } else {
        "subject.consent_withdrawn"
    };
    let actor = actor.clone();
    let consent_at = consent.then_some(now);
    let consent_by = consent.then(|| actor.label.clone());
    let audit = move |before: &Subject, subject: &Subject| {
        AuditDraft::new(&actor, action, AuditEntity::Subject, Some(id.0))
            .before(before)
            .after(subject)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before: Subject = audited::before_direct(conn, &find, id.0, Row::from_direct)?;
            audited::returning_direct(
                conn,
                &sql,
                &[&id.0, &consent_at, &consent_by, &now],
                Row::from_direct,
                None,
                |subject| audit(&before, subject),
            )
        },
        postgres: |tx| {
            let before = audited::before_postgres::<Row, Subject>(&mut *tx, &find, id.0).await?;
            let query = sqlx::query_as::<_, Row>(composed(&sql))
                .bind(id.0)
                .bind(consent_at)
                .bind(&consent_by)
                .bind(now);
            audited::returning_postgres(&mut *tx, query, None, |subject| audit(&before, subject))
                .await
        },
    )
}
