//! Report links: the rows behind the signed links e-mails carry to one department's report of
//! one incident (see `vigia_domain::links`). A link is issued once per e-mail (event and
//! recipient: planning the e-mail again returns the same row), expires on its own, and an admin
//! can revoke it earlier (audited).

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::ids::{DepartmentId, IncidentId};

use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::page::{Cursor, Page};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, direct, direct_read, grouped_write};

/// A stored report link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportLink {
    pub id: i64,
    pub incident_id: IncidentId,
    pub department_id: DepartmentId,
    /// The event whose e-mail carries it.
    pub event_id: i64,
    pub recipient: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// Who revoked it (`user:12`).
    pub revoked_by: Option<String>,
}

#[derive(FromRow)]
struct Row {
    id: i64,
    incident_id: i64,
    department_id: i64,
    event_id: i64,
    recipient: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    revoked_by: Option<String>,
}

impl From<Row> for ReportLink {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            incident_id: IncidentId(r.incident_id),
            department_id: DepartmentId(r.department_id),
            event_id: r.event_id,
            recipient: r.recipient,
            created_at: Timestamp::from_millis(r.created_at),
            expires_at: Timestamp::from_millis(r.expires_at),
            revoked_at: r.revoked_at.map(Timestamp::from_millis),
            revoked_by: r.revoked_by,
        }
    }
}

impl Row {
    /// A row of `columns!()` read on a direct SQLite connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            incident_id: row.get("incident_id")?,
            department_id: row.get("department_id")?,
            event_id: row.get("event_id")?,
            recipient: row.get("recipient")?,
            created_at: row.get("created_at")?,
            expires_at: row.get("expires_at")?,
            revoked_at: row.get("revoked_at")?,
            revoked_by: row.get("revoked_by")?,
        })
    }
}

/// The columns of [`Row`], as a literal for the statements below.
macro_rules! columns {
    () => {
        "id, incident_id, department_id, event_id, recipient, created_at, expires_at, revoked_at, \
         revoked_by"
    };
}

/// Issues a link, or returns the one of the same event and recipient (a no-op update, so that
/// RETURNING gives the existing row).
const ISSUE: &str = concat!(
    "INSERT INTO report_links (incident_id, department_id, event_id, recipient, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (event_id, recipient) DO UPDATE SET recipient = excluded.recipient \
     RETURNING ",
    columns!()
);
const FIND: &str = concat!("SELECT ", columns!(), " FROM report_links WHERE id = $1");
const REVOKE: &str = "UPDATE report_links SET revoked_at = $2, revoked_by = $3 \
     WHERE id = $1 AND revoked_at IS NULL";

fn find_direct(conn: &direct::Conn, id: i64) -> StoreResult<ReportLink> {
    direct::query_optional(conn, FIND, &[&id], Row::from_direct)?
        .map(ReportLink::from)
        .ok_or(StoreError::NotFound)
}

async fn find_postgres(executor: impl sqlx::PgExecutor<'_>, id: i64) -> StoreResult<ReportLink> {
    let row: Option<Row> = sqlx::query_as(FIND)
        .bind(id)
        .fetch_optional(executor)
        .await?;
    row.map(ReportLink::from).ok_or(StoreError::NotFound)
}

/// What an e-mail needs a link for.
#[derive(Debug, Clone)]
pub struct NewReportLink {
    pub incident_id: IncidentId,
    pub department_id: DepartmentId,
    pub event_id: i64,
    pub recipient: String,
    pub expires_at: Timestamp,
}

/// Issues the link of one e-mail, or returns the one already issued for the same event and
/// recipient (its expiry unchanged).
#[tracing::instrument(skip_all, fields(incident_id = new.incident_id.0, event_id = new.event_id))]
pub async fn issue(db: &Db, new: &NewReportLink) -> StoreResult<ReportLink> {
    let now = Timestamp::now().millis();
    let new = new.clone();
    let (incident, department, expires_at) = (
        new.incident_id.0,
        new.department_id.0,
        new.expires_at.millis(),
    );
    let row: Row = grouped_write!(db,
        sqlite: |conn| direct::query_optional(
            conn,
            ISSUE,
            &[&incident, &department, &new.event_id, &new.recipient, &now, &expires_at],
            Row::from_direct,
        )?
        .ok_or(StoreError::NotFound),
        postgres: |tx| Ok(sqlx::query_as(ISSUE)
            .bind(incident)
            .bind(department)
            .bind(new.event_id)
            .bind(&new.recipient)
            .bind(now)
            .bind(expires_at)
            .fetch_one(&mut *tx)
            .await?),
    )?;
    Ok(row.into())
}

/// One link.
pub async fn find(db: &Db, id: i64) -> StoreResult<ReportLink> {
    direct_read!(db,
        sqlite: |conn| find_direct(conn, id),
        postgres: |pool| find_postgres(pool, id).await,
    )
}

/// Links, newest first, of one incident or of all.
pub async fn list(
    db: &Db,
    incident: Option<IncidentId>,
    cursor: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<ReportLink>> {
    let sql = format!(
        concat!(
            "SELECT ",
            columns!(),
            " FROM report_links WHERE ($1 = 0 OR incident_id = $1) AND id < $2 ORDER BY id DESC{}"
        ),
        crate::sql::limit(limit + 1)
    );
    let (incident, cursor) = (
        incident.map_or(0, |i| i.0),
        cursor.map_or(i64::MAX, |c| c.0),
    );
    let rows: Vec<Row> = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[&incident, &cursor], Row::from_direct),
        postgres: |pool| Ok(sqlx::query_as(crate::composed(&sql))
            .bind(incident)
            .bind(cursor)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(Page::from_rows(
        rows.into_iter().map(ReportLink::from).collect(),
        limit,
        |l| l.id,
    ))
}

/// Revokes a link from now on (audited, with the link as it was in the same transaction).
/// Revoking it again changes nothing.
pub async fn revoke(db: &Db, id: i64, actor: &ChangeAuthor) -> StoreResult<ReportLink> {
    let now = Timestamp::now();
    let actor = actor.clone();
    let label = actor.label.clone();
    let revoked = move |before: &ReportLink| {
        let after = ReportLink {
            revoked_at: Some(now),
            revoked_by: Some(actor.label.clone()),
            ..before.clone()
        };
        let draft = AuditDraft::new(
            &actor,
            "report_link.revoked",
            AuditEntity::ReportLink,
            Some(id),
        )
        .before(before)
        .after(&after);
        (after, draft)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before = find_direct(conn, id)?;
            if before.revoked_at.is_some() {
                return Ok(before);
            }
            direct::execute(conn, REVOKE, &[&id, &now.millis(), &label])?;
            let (after, draft) = revoked(&before);
            insert_audit_direct(conn, draft)?;
            Ok(after)
        },
        postgres: |tx| {
            let before = find_postgres(&mut *tx, id).await?;
            if before.revoked_at.is_some() {
                return Ok(before);
            }
            sqlx::query(REVOKE)
                .bind(id)
                .bind(now.millis())
                .bind(&label)
                .execute(&mut *tx)
                .await?;
            let (after, draft) = revoked(&before);
            insert_audit!(&mut *tx, draft);
            Ok(after)
        },
    )
}
