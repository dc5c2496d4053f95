//! A subject's data: export everything stored about them, and erase it. Erasure folds their
//! rollups into the anonymous aggregate (subject 0), so dashboards keep their totals without
//! saying whose they were.

use serde::Serialize;
use vigia_domain::audit::AuditEntity;
use vigia_domain::ids::SubjectId;

use super::DepartmentScope;
use super::alerts::{self, Alert, AlertFilter};
use super::sessions::{self, MonitoringSession};
use super::subjects::{self, Subject};
use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::{
    ChangeAuthor, Db, StoreError, StoreResult, composed, direct, direct_read, grouped_write,
};

#[derive(Debug, Clone, Serialize)]
pub struct SubjectExport {
    pub subject: Subject,
    pub sessions: Vec<MonitoringSession>,
    pub alerts: Vec<Alert>,
    pub detections: Vec<ExportedDetection>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ExportedDetection {
    pub id: i64,
    pub device_id: i64,
    pub client_id: String,
    pub label: String,
    /// Millionths.
    pub confidence: i64,
    /// ms since the epoch.
    pub at: i64,
    pub in_session: bool,
    pub extra: Option<String>,
}

impl ExportedDetection {
    fn from_direct(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get("id")?,
            device_id: r.get("device_id")?,
            client_id: r.get("client_id")?,
            label: r.get("label")?,
            confidence: r.get("confidence")?,
            at: r.get("at")?,
            in_session: r.get("in_session")?,
            extra: r.get("extra")?,
        })
    }
}

/// Detections read per page of an export.
const EXPORT_PAGE: usize = 2_000;

/// A subject's detections after `(at, id)`, in that order, a page at a time.
fn export_page_sql() -> String {
    format!(
        "SELECT id, device_id, client_id, label, confidence, at, in_session, extra \
         FROM detections WHERE subject_id = $1 AND (at > $2 OR (at = $2 AND id > $3)) \
         ORDER BY at, id{}",
        crate::sql::limit(EXPORT_PAGE)
    )
}

/// Everything stored about a subject (audited as `subject.exported`).
pub async fn export(db: &Db, id: SubjectId, actor: &ChangeAuthor) -> StoreResult<SubjectExport> {
    let subject = subjects::find(db, id).await?;
    let sessions = sessions::list(db, Some(id), None, 10_000).await?.items;
    let filter = AlertFilter {
        subject: Some(id),
        ..AlertFilter::default()
    };
    let alerts = alerts::list(db, &DepartmentScope::All, &filter, None, 10_000)
        .await?
        .items;
    let sql = export_page_sql();
    let mut detections: Vec<ExportedDetection> = Vec::new();
    let mut after = (i64::MIN, i64::MIN);
    loop {
        let sql = sql.clone();
        let page: Vec<ExportedDetection> = direct_read!(db,
            sqlite: |conn| direct::query_sized(
                conn,
                &sql,
                &[&id.0, &after.0, &after.1],
                EXPORT_PAGE,
                ExportedDetection::from_direct,
            ),
            postgres: |pool| Ok(sqlx::query_as(composed(&sql))
                .bind(id.0)
                .bind(after.0)
                .bind(after.1)
                .fetch_all(pool)
                .await?),
        )?;
        let full = page.len() == EXPORT_PAGE;
        if let Some(last) = page.last() {
            after = (last.at, last.id);
        }
        detections.extend(page);
        if !full {
            break;
        }
    }
    let actor = actor.clone();
    let audit =
        move || AuditDraft::new(&actor, "subject.exported", AuditEntity::Subject, Some(id.0));
    grouped_write!(db,
        sqlite: |conn| insert_audit_direct(conn, audit()),
        postgres: |tx| {
            insert_audit!(&mut *tx, audit());
            Ok(())
        },
    )?;
    Ok(SubjectExport {
        subject,
        sessions,
        alerts,
        detections,
    })
}

/// Erases a subject: detections, alerts, sessions, silences and the subject itself; its
/// rollups are folded into the anonymous aggregate. One transaction, audited as
/// `subject.erased` (the audit keeps the code only). Returns how many detections went.
pub async fn erase(db: &Db, id: SubjectId, actor: &ChangeAuthor) -> StoreResult<u64> {
    const CODE: &str = "SELECT code FROM subjects WHERE id = $1";
    const FOLD_ROLLUPS: &str = "INSERT INTO detection_rollups (minute, subject_id, department_id, label, device_id, count, confidence_sum) \
         SELECT minute, 0, department_id, label, device_id, count, confidence_sum FROM detection_rollups \
         WHERE subject_id = $1 \
         ON CONFLICT (minute, subject_id, department_id, label, device_id) DO UPDATE SET \
         count = detection_rollups.count + excluded.count, \
         confidence_sum = detection_rollups.confidence_sum + excluded.confidence_sum";
    // The hourly rows by label and by device name no subject; those by subject are folded
    // the same way.
    const FOLD_HOURLY: &str = "INSERT INTO detection_hourly_subjects (hour, department_id, subject_id, count, stress) \
         SELECT hour, department_id, 0, count, stress FROM detection_hourly_subjects \
         WHERE subject_id = $1 \
         ON CONFLICT (hour, department_id, subject_id) DO UPDATE SET \
         count = detection_hourly_subjects.count + excluded.count, \
         stress = detection_hourly_subjects.stress + excluded.stress";
    const BEFORE_DETECTIONS: [&str; 2] = [
        FOLD_ROLLUPS,
        "DELETE FROM detection_rollups WHERE subject_id = $1",
    ];
    const HOURLY: [&str; 2] = [
        FOLD_HOURLY,
        "DELETE FROM detection_hourly_subjects WHERE subject_id = $1",
    ];
    const DETECTIONS: &str = "DELETE FROM detections WHERE subject_id = $1";
    const AFTER_DETECTIONS: [&str; 3] = [
        "UPDATE incidents SET alert_id = NULL WHERE alert_id IN (SELECT id FROM alerts WHERE subject_id = $1)",
        "DELETE FROM alerts WHERE subject_id = $1",
        "DELETE FROM subjects WHERE id = $1",
    ];
    let actor = actor.clone();
    let audit = move |code: String, gone: u64| {
        AuditDraft::new(&actor, "subject.erased", AuditEntity::Subject, Some(id.0))
            .before(&serde_json::json!({ "code": code, "detections": gone }))
    };
    grouped_write!(db,
        sqlite: |conn| {
            let code: String = direct::query_optional(conn, CODE, &[&id.0], |r| r.get("code"))?
                .ok_or(StoreError::NotFound)?;
            for sql in BEFORE_DETECTIONS.into_iter().chain(HOURLY) {
                direct::execute(conn, sql, &[&id.0])?;
            }
            let gone = direct::execute(conn, DETECTIONS, &[&id.0])? as u64;
            for sql in AFTER_DETECTIONS {
                direct::execute(conn, sql, &[&id.0])?;
            }
            insert_audit_direct(conn, audit(code, gone))?;
            Ok(gone)
        },
        postgres: |tx| {
            let code: Option<String> = sqlx::query_scalar(CODE)
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
            let code = code.ok_or(StoreError::NotFound)?;
            for sql in BEFORE_DETECTIONS.into_iter().chain(HOURLY) {
                sqlx::query(sql).bind(id.0).execute(&mut *tx).await?;
            }
            let gone = sqlx::query(DETECTIONS)
                .bind(id.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for sql in AFTER_DETECTIONS {
                sqlx::query(sql).bind(id.0).execute(&mut *tx).await?;
            }
            insert_audit!(&mut *tx, audit(code, gone));
            Ok(gone)
        },
    )
}

/// Retention: deletes detections taken before `detections_before`, rollups of minutes before
/// `rollups_before` (ms) and hourly rollups of hours that ended by then (an hour that
/// straddles the limit is kept whole). Returns (detections, minute rollups) deleted.
pub async fn purge(
    db: &Db,
    detections_before: i64,
    rollups_before: i64,
) -> StoreResult<(u64, u64)> {
    const DETECTIONS: &str = "DELETE FROM detections WHERE at < $1";
    const ROLLUPS: &str = "DELETE FROM detection_rollups WHERE minute < $1";
    const HOURLY: [&str; 3] = [
        "DELETE FROM detection_hourly_labels WHERE hour <= $1",
        "DELETE FROM detection_hourly_subjects WHERE hour <= $1",
        "DELETE FROM detection_hourly_devices WHERE hour <= $1",
    ];
    let hours_before = rollups_before - 3_600_000;
    grouped_write!(db,
        sqlite: |conn| {
            let d = direct::execute(conn, DETECTIONS, &[&detections_before])? as u64;
            let r = direct::execute(conn, ROLLUPS, &[&rollups_before])? as u64;
            for sql in HOURLY {
                direct::execute(conn, sql, &[&hours_before])?;
            }
            Ok((d, r))
        },
        postgres: |tx| {
            let d = sqlx::query(DETECTIONS)
                .bind(detections_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let r = sqlx::query(ROLLUPS)
                .bind(rollups_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for sql in HOURLY {
                sqlx::query(sql).bind(hours_before).execute(&mut *tx).await?;
            }
            Ok((d, r))
        },
    )
}
