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
use crate::audit::{AuditDraft, insert_audit};
use crate::{ChangeAuthor, Db, StoreResult, composed, on_reader, on_writer};

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
    let detections: Vec<ExportedDetection> = on_reader!(db, |pool| sqlx::query_as(
        "SELECT id, device_id, client_id, label, confidence, at, in_session, extra \
         FROM detections WHERE subject_id = $1 ORDER BY at, id"
    )
    .bind(id.0)
    .fetch_all(pool)
    .await?);
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        insert_audit!(
            &mut *tx,
            AuditDraft::new(actor, "subject.exported", AuditEntity::Subject, Some(id.0))
        );
        tx.commit().await?;
    });
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
    let subject = subjects::find(db, id).await?;
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO detection_rollups (minute, subject_id, department_id, label, device_id, count, confidence_sum) \
             SELECT minute, 0, department_id, label, device_id, count, confidence_sum FROM detection_rollups \
             WHERE subject_id = $1 \
             ON CONFLICT (minute, subject_id, department_id, label, device_id) DO UPDATE SET \
             count = detection_rollups.count + excluded.count, \
             confidence_sum = detection_rollups.confidence_sum + excluded.confidence_sum",
        )
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM detection_rollups WHERE subject_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        // The hourly rows by label and by device name no subject; those by subject are folded
        // the same way.
        sqlx::query(
            "INSERT INTO detection_hourly_subjects (hour, department_id, subject_id, count, stress) \
             SELECT hour, department_id, 0, count, stress FROM detection_hourly_subjects \
             WHERE subject_id = $1 \
             ON CONFLICT (hour, department_id, subject_id) DO UPDATE SET \
             count = detection_hourly_subjects.count + excluded.count, \
             stress = detection_hourly_subjects.stress + excluded.stress",
        )
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM detection_hourly_subjects WHERE subject_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        let gone = sqlx::query("DELETE FROM detections WHERE subject_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE incidents SET alert_id = NULL WHERE alert_id IN (SELECT id FROM alerts WHERE subject_id = $1)")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM alerts WHERE subject_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM subjects WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        insert_audit!(
            &mut *tx,
            AuditDraft::new(actor, "subject.erased", AuditEntity::Subject, Some(id.0))
                .before(&serde_json::json!({ "code": subject.code, "detections": gone }))
        );
        tx.commit().await?;
        Ok(gone)
    })
}

/// Retention: deletes detections taken before `detections_before`, rollups of minutes before
/// `rollups_before` (ms) and hourly rollups of hours that ended by then (an hour that
/// straddles the limit is kept whole). Returns (detections, minute rollups) deleted.
pub async fn purge(
    db: &Db,
    detections_before: i64,
    rollups_before: i64,
) -> StoreResult<(u64, u64)> {
    let d = on_writer!(db, |pool| sqlx::query(
        "DELETE FROM detections WHERE at < $1"
    )
    .bind(detections_before)
    .execute(pool)
    .await?
    .rows_affected());
    let r = on_writer!(db, |pool| sqlx::query(
        "DELETE FROM detection_rollups WHERE minute < $1"
    )
    .bind(rollups_before)
    .execute(pool)
    .await?
    .rows_affected());
    for table in [
        "detection_hourly_labels",
        "detection_hourly_subjects",
        "detection_hourly_devices",
    ] {
        let sql = format!("DELETE FROM {table} WHERE hour <= $1");
        on_writer!(db, |pool| sqlx::query(composed(&sql))
            .bind(rollups_before - 3_600_000)
            .execute(pool)
            .await?
            .rows_affected());
    }
    Ok((d, r))
}
