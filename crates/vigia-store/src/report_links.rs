//! Report links: the rows behind the signed links e-mails carry to one department's report of
//! one incident (see `vigia_domain::links`). A link is issued once per e-mail (event and
//! recipient: planning the e-mail again returns the same row), expires on its own, and an admin
//! can revoke it earlier (audited).

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::ids::{DepartmentId, IncidentId};

use crate::audit::{AuditDraft, insert_audit};
use crate::page::{Cursor, Page};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, on_reader, on_writer};

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

const COLUMNS: &str = "id, incident_id, department_id, event_id, recipient, created_at, expires_at, \
                       revoked_at, revoked_by";

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
    let sql = format!(
        "INSERT INTO report_links (incident_id, department_id, event_id, recipient, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (event_id, recipient) DO UPDATE SET recipient = excluded.recipient \
         RETURNING {COLUMNS}"
    );
    let now = Timestamp::now().millis();
    let row: Row = on_writer!(db, |pool| sqlx::query_as(crate::composed(&sql))
        .bind(new.incident_id.0)
        .bind(new.department_id.0)
        .bind(new.event_id)
        .bind(&new.recipient)
        .bind(now)
        .bind(new.expires_at.millis())
        .fetch_one(pool)
        .await?);
    Ok(row.into())
}

/// One link.
pub async fn find(db: &Db, id: i64) -> StoreResult<ReportLink> {
    let sql = format!("SELECT {COLUMNS} FROM report_links WHERE id = $1");
    let row: Option<Row> = on_reader!(db, |pool| sqlx::query_as(crate::composed(&sql))
        .bind(id)
        .fetch_optional(pool)
        .await?);
    row.map(ReportLink::from).ok_or(StoreError::NotFound)
}

/// Links, newest first, of one incident or of all.
pub async fn list(
    db: &Db,
    incident: Option<IncidentId>,
    cursor: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<ReportLink>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM report_links WHERE ($1 = 0 OR incident_id = $1) AND id < $2 \
         ORDER BY id DESC{}",
        crate::sql::limit(limit + 1)
    );
    let rows: Vec<Row> = on_reader!(db, |pool| sqlx::query_as(crate::composed(&sql))
        .bind(incident.map_or(0, |i| i.0))
        .bind(cursor.map_or(i64::MAX, |c| c.0))
        .fetch_all(pool)
        .await?);
    Ok(Page::from_rows(
        rows.into_iter().map(ReportLink::from).collect(),
        limit,
        |l| l.id,
    ))
}

/// Revokes a link from now on (audited). Revoking it again changes nothing.
pub async fn revoke(db: &Db, id: i64, actor: &ChangeAuthor) -> StoreResult<ReportLink> {
    let before = find(db, id).await?;
    if before.revoked_at.is_some() {
        return Ok(before);
    }
    let now = Timestamp::now();
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "UPDATE report_links SET revoked_at = $2, revoked_by = $3 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(now.millis())
        .bind(&actor.label)
        .execute(&mut *tx)
        .await?;
        let after = ReportLink {
            revoked_at: Some(now),
            revoked_by: Some(actor.label.clone()),
            ..before.clone()
        };
        let draft = AuditDraft::new(
            actor,
            "report_link.revoked",
            AuditEntity::ReportLink,
            Some(id),
        )
        .before(&before)
        .after(&after);
        insert_audit!(&mut *tx, draft);
        tx.commit().await?;
        Ok(after)
    })
}
