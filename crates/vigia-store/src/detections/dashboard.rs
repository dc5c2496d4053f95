//! The detections dashboard, read from the rollups (never from the detections): the overview
//! from the per-minute ones, the stats from the hourly ones and the minutes of partial hours.

use serde::Serialize;
use vigia_domain::Timestamp;

use super::DepartmentScope;
use crate::{Db, StoreResult, composed, direct, direct_read};

/// `label IN (...)` of the stress labels (constant SQL text).
const STRESS: &str = "label IN ('stress', 'sad')";

#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Subjects with consent.
    pub active_subjects: i64,
    pub detections_last_hour: i64,
    pub subjects_detected_last_hour: i64,
    pub pending_alerts: PendingAlerts,
    /// Share of the last hour's detections with a stress label (0..1; 0 without detections).
    pub stress_share: f64,
    /// Active devices heard from in the last 5 minutes.
    pub active_devices: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PendingAlerts {
    pub low: i64,
    pub medium: i64,
    pub high: i64,
}

fn bind_all<'q, DB: sqlx::Database, O>(
    mut q: sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments>,
    values: &[i64],
) -> sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments>
where
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for v in values {
        q = q.bind(*v);
    }
    q
}

/// The overview's four reads: subjects, the last hour's sums, pending alerts, devices.
type OverviewRows = ((i64, i64), (i64, i64, i64), Vec<(String, i64)>, i64);

/// The overview at `now` for the subjects of `scope`.
pub async fn overview(db: &Db, scope: &DepartmentScope, now: Timestamp) -> StoreResult<Overview> {
    let hour_ago = now.millis() - 3_600_000;
    let (scoped, ids) = scope.condition("department_id", 2);
    let subjects_sql = format!(
        "SELECT COUNT(*) AS n, $1 AS zero FROM subjects WHERE consent_at IS NOT NULL AND $1 = $1{scoped}"
    );
    let hour_sql = format!(
        "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS total, \
         CAST(COALESCE(SUM(CASE WHEN {STRESS} THEN count ELSE 0 END), 0) AS BIGINT) AS stress, \
         COUNT(DISTINCT CASE WHEN subject_id <> 0 THEN subject_id END) AS detected \
         FROM detection_rollups WHERE minute >= $1{scoped}"
    );
    let alerts_sql = format!(
        "SELECT severity, COUNT(*) AS n FROM alerts WHERE status = 'pending' AND $1 = $1{scoped} GROUP BY severity"
    );
    const DEVICES: &str =
        "SELECT COUNT(*) AS n FROM devices WHERE active = $1 AND last_seen_at >= $2";
    let seen_since = now.millis() - 300_000;
    let ((subjects, _), (total, stress, detected), pending, devices): OverviewRows = direct_read!(db,
        sqlite: |conn| {
            let zero = 0_i64;
            let missing = || crate::StoreError::Other(anyhow::anyhow!("an aggregate returned no row"));
            let s = direct::query_optional(conn, &subjects_sql, &DepartmentScope::direct_args(&[&zero], &ids), |r| {
                Ok((r.get("n")?, r.get("zero")?))
            })?
            .ok_or_else(missing)?;
            let h = direct::query_optional(conn, &hour_sql, &DepartmentScope::direct_args(&[&hour_ago], &ids), |r| {
                Ok((r.get("total")?, r.get("stress")?, r.get("detected")?))
            })?
            .ok_or_else(missing)?;
            let a = direct::query(conn, &alerts_sql, &DepartmentScope::direct_args(&[&zero], &ids), |r| {
                Ok((r.get("severity")?, r.get("n")?))
            })?;
            let d = direct::query_optional(conn, DEVICES, &[&true, &seen_since], |r| r.get("n"))?
                .ok_or_else(missing)?;
            Ok((s, h, a, d))
        },
        postgres: |pool| {
            let s = bind_all(sqlx::query_as(composed(&subjects_sql)).bind(0_i64), &ids)
                .fetch_one(pool)
                .await?;
            let h = bind_all(sqlx::query_as(composed(&hour_sql)).bind(hour_ago), &ids)
                .fetch_one(pool)
                .await?;
            let a = bind_all(sqlx::query_as(composed(&alerts_sql)).bind(0_i64), &ids)
                .fetch_all(pool)
                .await?;
            let d: (i64,) = sqlx::query_as(DEVICES)
                .bind(true)
                .bind(seen_since)
                .fetch_one(pool)
                .await?;
            Ok((s, h, a, d.0))
        },
    )?;
    let mut pending_alerts = PendingAlerts::default();
    for (severity, n) in pending {
        match severity.as_str() {
            "low" => pending_alerts.low = n,
            "medium" => pending_alerts.medium = n,
            _ => pending_alerts.high = n,
        }
    }
    Ok(Overview {
        active_subjects: subjects,
        detections_last_hour: total,
        subjects_detected_last_hour: detected,
        pending_alerts,
        stress_share: if total > 0 {
            stress as f64 / total as f64
        } else {
            0.0
        },
        active_devices: devices,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub labels: Vec<LabelCount>,
    pub per_hour: Vec<HourLabelCount>,
    pub top_subjects: Vec<SubjectStress>,
    pub devices: Vec<DeviceCount>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LabelCount {
    pub label: String,
    pub count: i64,
    /// Average confidence (0..1).
    #[sqlx(skip)]
    pub confidence_avg: f64,
    #[serde(skip)]
    pub confidence_sum: i64,
}

impl LabelCount {
    fn from_direct(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            label: r.get("label")?,
            count: r.get("count")?,
            confidence_avg: 0.0,
            confidence_sum: r.get("confidence_sum")?,
        })
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct HourLabelCount {
    /// Start of the hour, ms.
    pub hour: i64,
    pub label: String,
    pub count: i64,
}

impl HourLabelCount {
    fn from_direct(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            hour: r.get("hour")?,
            label: r.get("label")?,
            count: r.get("count")?,
        })
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SubjectStress {
    pub subject_id: i64,
    pub code: String,
    pub name: String,
    pub total: i64,
    pub stress: i64,
    #[sqlx(skip)]
    pub stress_share: f64,
}

impl SubjectStress {
    fn from_direct(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            subject_id: r.get("subject_id")?,
            code: r.get("code")?,
            name: r.get("name")?,
            total: r.get("total")?,
            stress: r.get("stress")?,
            stress_share: 0.0,
        })
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeviceCount {
    pub device_id: i64,
    pub count: i64,
}

impl DeviceCount {
    fn from_direct(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            device_id: r.get("device_id")?,
            count: r.get("count")?,
        })
    }
}

/// The stats' four reads.
type StatsRows = (
    Vec<LabelCount>,
    Vec<HourLabelCount>,
    Vec<SubjectStress>,
    Vec<DeviceCount>,
);

/// `[from, to)` split for reading: whole hours `[hours_from, hours_to)` from the hourly rows,
/// the edges `[from, hours_from)` and `[hours_to, to)` from the minute rows. A range inside
/// one hour has no whole hour (`hours_from = hours_to = to`).
fn split_hours(from: i64, to: i64) -> (i64, i64) {
    let hours_from = super::ingest::hour_of(from + 3_599_999);
    let hours_to = super::ingest::hour_of(to);
    if hours_from < hours_to {
        (hours_from, hours_to)
    } else {
        (to, to)
    }
}

/// `SELECT {hourly} FROM {table} r` over the whole hours ($3..$4) and `SELECT {minutes} FROM
/// detection_rollups r` over the two edges ($1..$3, $4..$2), as one `UNION ALL` to aggregate.
fn hours_and_edges(table: &str, hourly: &str, minutes: &str, scoped: &str) -> String {
    format!(
        "SELECT {hourly} FROM {table} r WHERE r.hour >= $3 AND r.hour < $4{scoped} \
         UNION ALL SELECT {minutes} FROM detection_rollups r WHERE r.minute >= $1 AND r.minute < $3{scoped} \
         UNION ALL SELECT {minutes} FROM detection_rollups r WHERE r.minute >= $4 AND r.minute < $2{scoped}"
    )
}

/// Statistics over `[from, to)` for the subjects of `scope`: whole hours from the hourly
/// rollups, the partial hours at the edges from the minute ones, so the cost follows the hours
/// and subjects of the answer, not the detections stored.
pub async fn stats(
    db: &Db,
    scope: &DepartmentScope,
    from: Timestamp,
    to: Timestamp,
) -> StoreResult<Stats> {
    let (scoped, ids) = scope.condition("r.department_id", 5);
    let labels_sql = format!(
        "SELECT u.label, CAST(SUM(u.count) AS BIGINT) AS count, CAST(SUM(u.confidence_sum) AS BIGINT) AS confidence_sum \
         FROM ({}) u GROUP BY u.label ORDER BY u.label",
        hours_and_edges(
            "detection_hourly_labels",
            "r.label, r.count, r.confidence_sum",
            "r.label, r.count, r.confidence_sum",
            &scoped
        )
    );
    let hours_sql = format!(
        "SELECT u.hour, u.label, CAST(SUM(u.count) AS BIGINT) AS count \
         FROM ({}) u GROUP BY u.hour, u.label ORDER BY u.hour, u.label",
        hours_and_edges(
            "detection_hourly_labels",
            "r.hour, r.label, r.count",
            "(r.minute / 3600000) * 3600000 AS hour, r.label, r.count",
            &scoped
        )
    );
    let top_sql = format!(
        "SELECT u.subject_id, s.code, s.name, CAST(SUM(u.count) AS BIGINT) AS total, \
         CAST(SUM(u.stress) AS BIGINT) AS stress \
         FROM ({}) u JOIN subjects s ON s.id = u.subject_id \
         GROUP BY u.subject_id, s.code, s.name \
         ORDER BY SUM(u.stress) * 1.0 / SUM(u.count) DESC, u.subject_id LIMIT 10",
        hours_and_edges(
            "detection_hourly_subjects",
            "r.subject_id, r.count, r.stress",
            &format!(
                "r.subject_id, r.count, CASE WHEN r.{STRESS} THEN r.count ELSE 0 END AS stress"
            ),
            &scoped
        )
    );
    let devices_sql = format!(
        "SELECT u.device_id, CAST(SUM(u.count) AS BIGINT) AS count \
         FROM ({}) u GROUP BY u.device_id ORDER BY u.device_id",
        hours_and_edges(
            "detection_hourly_devices",
            "r.device_id, r.count",
            "r.device_id, r.count",
            &scoped
        )
    );
    let (f, t) = (from.millis(), to.millis());
    let (hf, ht) = split_hours(f, t);
    let (mut labels, per_hour, mut top_subjects, devices): StatsRows = direct_read!(db,
        sqlite: |conn| {
            let args = DepartmentScope::direct_args(&[&f, &t, &hf, &ht], &ids);
            let l = direct::query(conn, &labels_sql, &args, LabelCount::from_direct)?;
            let h = direct::query(conn, &hours_sql, &args, HourLabelCount::from_direct)?;
            let s = direct::query(conn, &top_sql, &args, SubjectStress::from_direct)?;
            let d = direct::query(conn, &devices_sql, &args, DeviceCount::from_direct)?;
            Ok((l, h, s, d))
        },
        postgres: |pool| {
            let l = bind_all(
                sqlx::query_as(composed(&labels_sql)).bind(f).bind(t).bind(hf).bind(ht),
                &ids,
            )
            .fetch_all(pool)
            .await?;
            let h = bind_all(
                sqlx::query_as(composed(&hours_sql)).bind(f).bind(t).bind(hf).bind(ht),
                &ids,
            )
            .fetch_all(pool)
            .await?;
            let s = bind_all(
                sqlx::query_as(composed(&top_sql)).bind(f).bind(t).bind(hf).bind(ht),
                &ids,
            )
            .fetch_all(pool)
            .await?;
            let d = bind_all(
                sqlx::query_as(composed(&devices_sql)).bind(f).bind(t).bind(hf).bind(ht),
                &ids,
            )
            .fetch_all(pool)
            .await?;
            Ok((l, h, s, d))
        },
    )?;
    for l in &mut labels {
        l.confidence_avg = if l.count > 0 {
            l.confidence_sum as f64 / l.count as f64 / 1_000_000.0
        } else {
            0.0
        };
    }
    for s in &mut top_subjects {
        s.stress_share = if s.total > 0 {
            s.stress as f64 / s.total as f64
        } else {
            0.0
        };
    }
    Ok(Stats {
        labels,
        per_hour,
        top_subjects,
        devices,
    })
}
