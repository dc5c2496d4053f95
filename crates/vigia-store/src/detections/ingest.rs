//! Writing detections: a batch from one device in one grouped write (one savepoint of a
//! group commit on SQLite, one transaction on PostgreSQL), with the subjects' consent read in
//! that same transaction, idempotency by device and client id, refused counts and the
//! per-minute rollups and the hourly ones the dashboard reads updated alongside (the hourly
//! sums are derived from the batch's minute sums: a few upserts per batch).

use std::collections::HashMap;

use vigia_domain::Timestamp;
use vigia_domain::detections::ValidDetection;
use vigia_domain::detections::labels::STRESS_LABELS;
use vigia_domain::ids::{DepartmentId, DeviceId, SubjectId};

use crate::direct;
use crate::{Db, StoreResult, direct_read, grouped_write};

/// What became of one detection of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now.
    Accepted(Accepted),
    /// This device already sent this client id: stored once, earlier (or earlier in the batch).
    Duplicate,
    /// No subject has this code.
    UnknownSubject,
    /// The subject has not consented (or withdrew consent): refused and counted.
    NoConsent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub id: i64,
    pub subject: SubjectId,
    pub department: DepartmentId,
    /// Inside an open monitoring session of this subject and device.
    pub in_session: bool,
}

const SUBJECT: &str =
    "SELECT id, department_id, consent_at IS NOT NULL FROM subjects WHERE code = $1";
const SESSIONS: &str = "SELECT started_at, COALESCE(ended_at, 9223372036854775807) FROM monitoring_sessions \
     WHERE subject_id = $1 AND device_id = $2";
const REFUSED: &str = "UPDATE subjects SET refused = refused + $2 WHERE id = $1";
const DEVICE: &str = "UPDATE devices SET last_seen_at = $2, refused = refused + $3 WHERE id = $1";
const INSERT: &str = "INSERT INTO detections \
     (device_id, client_id, subject_id, label, confidence, at, received_at, in_session, extra) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (device_id, client_id) DO NOTHING RETURNING id";
const ROLLUP: &str = "INSERT INTO detection_rollups \
     (minute, subject_id, department_id, label, device_id, count, confidence_sum) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (minute, subject_id, department_id, label, device_id) DO UPDATE SET \
     count = detection_rollups.count + excluded.count, \
     confidence_sum = detection_rollups.confidence_sum + excluded.confidence_sum";

const HOURLY_LABELS: &str = "INSERT INTO detection_hourly_labels \
     (hour, department_id, label, count, confidence_sum) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (hour, department_id, label) DO UPDATE SET \
     count = detection_hourly_labels.count + excluded.count, \
     confidence_sum = detection_hourly_labels.confidence_sum + excluded.confidence_sum";
const HOURLY_SUBJECTS: &str = "INSERT INTO detection_hourly_subjects \
     (hour, department_id, subject_id, count, stress) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (hour, department_id, subject_id) DO UPDATE SET \
     count = detection_hourly_subjects.count + excluded.count, \
     stress = detection_hourly_subjects.stress + excluded.stress";
const HOURLY_DEVICES: &str = "INSERT INTO detection_hourly_devices \
     (hour, department_id, device_id, count) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (hour, department_id, device_id) DO UPDATE SET \
     count = detection_hourly_devices.count + excluded.count";

/// [`INSERT`] as the SQLite body runs it: without `RETURNING` (SQLite gathers a returning
/// statement's rows in a table of their own before handing out the first), the new row's id
/// read from the connection instead, with positional parameters bound once per row from one
/// statement prepared for the whole batch. The hottest statement of the product: 10,000 per
/// batch.
const INSERT_SQLITE: &str = "INSERT INTO detections \
     (device_id, client_id, subject_id, label, confidence, at, received_at, in_session, extra) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
     ON CONFLICT (device_id, client_id) DO NOTHING";

/// Runs [`INSERT_SQLITE`] for one detection: the new row's id, or `None` if this device
/// already sent this client id.
#[allow(clippy::too_many_arguments)]
fn insert_one(
    insert: &mut rusqlite::CachedStatement<'_>,
    conn: &rusqlite::Connection,
    device: i64,
    subject: i64,
    d: &ValidDetection,
    received: i64,
    in_session: bool,
) -> StoreResult<Option<i64>> {
    insert.raw_bind_parameter(1, device)?;
    insert.raw_bind_parameter(2, &d.client_id)?;
    insert.raw_bind_parameter(3, subject)?;
    insert.raw_bind_parameter(4, d.label.as_str())?;
    insert.raw_bind_parameter(5, i64::from(d.confidence.micros()))?;
    insert.raw_bind_parameter(6, d.at.millis())?;
    insert.raw_bind_parameter(7, received)?;
    insert.raw_bind_parameter(8, in_session)?;
    insert.raw_bind_parameter(9, &d.extra)?;
    Ok(match insert.raw_execute()? {
        0 => None,
        _ => Some(conn.last_insert_rowid()),
    })
}

/// The start (ms) of the UTC hour holding `ms`.
pub(crate) fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(3_600_000) * 3_600_000
}

/// A batch's hourly sums, from its minute sums, in a fixed order (no deadlock between
/// concurrent batches on PostgreSQL): per (hour, department, label) count and confidence sum;
/// per (hour, department, subject) count and stress count; per (hour, department) count.
#[derive(Default)]
struct Hourly {
    labels: Vec<(HourLabel, (i64, i64))>,
    subjects: Vec<(HourSubject, (i64, i64))>,
    devices: Vec<((i64, i64), i64)>,
}

/// (hour, department, label).
type HourLabel = (i64, i64, String);
/// (hour, department, subject).
type HourSubject = (i64, i64, i64);

/// A subject as the batch sees it: id, department, consent.
type SubjectInfo = Option<(i64, i64, bool)>;

/// The batch's work apart from the SQL: caches and rollup sums.
#[derive(Default)]
struct Batch {
    subjects: HashMap<String, SubjectInfo>,
    sessions: HashMap<i64, Vec<(i64, i64)>>,
    refused: HashMap<i64, i64>,
    rollups: HashMap<(i64, i64, i64, String), (i64, i64)>,
}

impl Batch {
    fn in_session(&self, subject: i64, at: i64) -> bool {
        self.sessions
            .get(&subject)
            .is_some_and(|s| s.iter().any(|&(from, to)| from <= at && at < to))
    }

    fn add_rollup(&mut self, subject: i64, department: i64, d: &ValidDetection) {
        let minute = d.at.millis().div_euclid(60_000) * 60_000;
        let entry = self
            .rollups
            .entry((minute, subject, department, d.label.as_str().to_owned()))
            .or_insert((0, 0));
        entry.0 += 1;
        entry.1 += i64::from(d.confidence.micros());
    }

    fn hourly(&self) -> Hourly {
        let mut labels: HashMap<HourLabel, (i64, i64)> = HashMap::new();
        let mut subjects: HashMap<HourSubject, (i64, i64)> = HashMap::new();
        let mut devices: HashMap<(i64, i64), i64> = HashMap::new();
        for ((minute, subject, department, label), (count, sum)) in &self.rollups {
            let hour = hour_of(*minute);
            let l = labels
                .entry((hour, *department, label.clone()))
                .or_default();
            l.0 += count;
            l.1 += sum;
            let s = subjects.entry((hour, *department, *subject)).or_default();
            s.0 += count;
            if STRESS_LABELS.contains(&label.as_str()) {
                s.1 += count;
            }
            *devices.entry((hour, *department)).or_default() += count;
        }
        let mut hourly = Hourly {
            labels: labels.into_iter().collect(),
            subjects: subjects.into_iter().collect(),
            devices: devices.into_iter().collect(),
        };
        hourly.labels.sort();
        hourly.subjects.sort();
        hourly.devices.sort();
        hourly
    }

    fn refused_total(&self) -> i64 {
        self.refused.values().sum()
    }
}

/// Stores a batch of detections from `device`; one outcome per detection, in order. Nothing
/// is answered before the commit.
pub async fn ingest(
    db: &Db,
    device: DeviceId,
    detections: Vec<ValidDetection>,
) -> StoreResult<Vec<Outcome>> {
    let received = Timestamp::now().millis();
    grouped_write!(db,
        sqlite: |conn| {
            let mut batch = Batch::default();
            let mut outcomes = Vec::with_capacity(detections.len());
            let mut insert = conn.prepare_cached(INSERT_SQLITE)?;
            for d in &detections {
                if !batch.subjects.contains_key(&d.subject) {
                    let info = direct::query_optional(conn, SUBJECT, &[&d.subject], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, bool>(2)?))
                    })?;
                    if let Some((id, _, true)) = info {
                        let spans = direct::query(conn, SESSIONS, &[&id, &device.0], |r| {
                            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                        })?;
                        batch.sessions.insert(id, spans);
                    }
                    batch.subjects.insert(d.subject.clone(), info);
                }
                let outcome = match batch.subjects.get(&d.subject).copied().flatten() {
                    None => Outcome::UnknownSubject,
                    Some((id, _, false)) => {
                        *batch.refused.entry(id).or_default() += 1;
                        Outcome::NoConsent
                    }
                    Some((id, department, true)) => {
                        let in_session = batch.in_session(id, d.at.millis());
                        let stored = insert_one(&mut insert, conn, device.0, id, d, received, in_session)?;
                        match stored {
                            None => Outcome::Duplicate,
                            Some(row) => {
                                batch.add_rollup(id, department, d);
                                Outcome::Accepted(Accepted {
                                    id: row,
                                    subject: SubjectId(id),
                                    department: DepartmentId(department),
                                    in_session,
                                })
                            }
                        }
                    }
                };
                outcomes.push(outcome);
            }
            drop(insert);
            // Key order: each page of the rollups is visited once per batch, however spread
            // in time the batch is.
            let mut rollups: Vec<_> = batch.rollups.iter().collect();
            rollups.sort();
            for ((minute, subject, department, label), (count, sum)) in rollups {
                direct::execute(
                    conn,
                    ROLLUP,
                    &[minute, subject, department, label, &device.0, count, sum],
                )?;
            }
            let hourly = batch.hourly();
            for ((hour, department, label), (count, sum)) in &hourly.labels {
                direct::execute(conn, HOURLY_LABELS, &[hour, department, label, count, sum])?;
            }
            for ((hour, department, subject), (count, stress)) in &hourly.subjects {
                direct::execute(conn, HOURLY_SUBJECTS, &[hour, department, subject, count, stress])?;
            }
            for ((hour, department), count) in &hourly.devices {
                direct::execute(conn, HOURLY_DEVICES, &[hour, department, &device.0, count])?;
            }
            for (subject, n) in &batch.refused {
                direct::execute(conn, REFUSED, &[subject, n])?;
            }
            direct::execute(conn, DEVICE, &[&device.0, &received, &batch.refused_total()])?;
            Ok(outcomes)
        },
        postgres: |tx| {
            let mut batch = Batch::default();
            let mut outcomes = Vec::with_capacity(detections.len());
            for d in &detections {
                if !batch.subjects.contains_key(&d.subject) {
                    let info: SubjectInfo = sqlx::query_as(SUBJECT)
                        .bind(&d.subject)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some((id, _, true)) = info {
                        let spans: Vec<(i64, i64)> = sqlx::query_as(SESSIONS)
                            .bind(id)
                            .bind(device.0)
                            .fetch_all(&mut *tx)
                            .await?;
                        batch.sessions.insert(id, spans);
                    }
                    batch.subjects.insert(d.subject.clone(), info);
                }
                let outcome = match batch.subjects.get(&d.subject).copied().flatten() {
                    None => Outcome::UnknownSubject,
                    Some((id, _, false)) => {
                        *batch.refused.entry(id).or_default() += 1;
                        Outcome::NoConsent
                    }
                    Some((id, department, true)) => {
                        let in_session = batch.in_session(id, d.at.millis());
                        let stored: Option<i64> = sqlx::query_scalar(INSERT)
                            .bind(device.0)
                            .bind(&d.client_id)
                            .bind(id)
                            .bind(d.label.as_str())
                            .bind(i64::from(d.confidence.micros()))
                            .bind(d.at.millis())
                            .bind(received)
                            .bind(in_session)
                            .bind(&d.extra)
                            .fetch_optional(&mut *tx)
                            .await?;
                        match stored {
                            None => Outcome::Duplicate,
                            Some(row) => {
                                batch.add_rollup(id, department, d);
                                Outcome::Accepted(Accepted {
                                    id: row,
                                    subject: SubjectId(id),
                                    department: DepartmentId(department),
                                    in_session,
                                })
                            }
                        }
                    }
                };
                outcomes.push(outcome);
            }
            // A fixed order keeps concurrent batches from deadlocking on rollup rows.
            let mut rollups: Vec<_> = batch.rollups.iter().collect();
            rollups.sort();
            for ((minute, subject, department, label), (count, sum)) in rollups {
                sqlx::query(ROLLUP)
                    .bind(minute)
                    .bind(subject)
                    .bind(department)
                    .bind(label)
                    .bind(device.0)
                    .bind(count)
                    .bind(sum)
                    .execute(&mut *tx)
                    .await?;
            }
            let hourly = batch.hourly();
            for ((hour, department, label), (count, sum)) in &hourly.labels {
                sqlx::query(HOURLY_LABELS)
                    .bind(hour)
                    .bind(department)
                    .bind(label)
                    .bind(count)
                    .bind(sum)
                    .execute(&mut *tx)
                    .await?;
            }
            for ((hour, department, subject), (count, stress)) in &hourly.subjects {
                sqlx::query(HOURLY_SUBJECTS)
                    .bind(hour)
                    .bind(department)
                    .bind(subject)
                    .bind(count)
                    .bind(stress)
                    .execute(&mut *tx)
                    .await?;
            }
            for ((hour, department), count) in &hourly.devices {
                sqlx::query(HOURLY_DEVICES)
                    .bind(hour)
                    .bind(department)
                    .bind(device.0)
                    .bind(count)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut refused: Vec<_> = batch.refused.iter().collect();
            refused.sort();
            for (subject, n) in refused {
                sqlx::query(REFUSED).bind(subject).bind(n).execute(&mut *tx).await?;
            }
            sqlx::query(DEVICE)
                .bind(device.0)
                .bind(received)
                .bind(batch.refused_total())
                .execute(&mut *tx)
                .await?;
            Ok(outcomes)
        },
    )
}

/// Stored detections of `subject` with one of `labels`, taken after `since` ms (time order),
/// as (id, time ms, confidence millionths): what a rule window is rebuilt from after a restart.
pub async fn recent(
    db: &Db,
    subject: SubjectId,
    labels: &[String],
    since: i64,
) -> StoreResult<Vec<(i64, i64, i64)>> {
    const RECENT: &str = "SELECT id, at, confidence, label FROM detections \
         WHERE subject_id = $1 AND at > $2 ORDER BY at";
    let rows: Vec<(i64, i64, i64, String)> = direct_read!(db,
        sqlite: |conn| direct::query(conn, RECENT, &[&subject.0, &since], |r| {
            Ok((r.get("id")?, r.get("at")?, r.get("confidence")?, r.get("label")?))
        }),
        postgres: |pool| Ok(sqlx::query_as(RECENT)
            .bind(subject.0)
            .bind(since)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(rows
        .into_iter()
        .filter(|(_, _, _, label)| labels.contains(label))
        .map(|(id, at, confidence, _)| (id, at, confidence))
        .collect())
}

/// The `limit` newest stored detections of `subject` with one of `labels`, newest first, as
/// (id, time ms): where a rebuilt rule window ends at the earliest. Walks the subject's
/// detections from the newest and stops after `limit` with one of the labels.
pub async fn latest(
    db: &Db,
    subject: SubjectId,
    labels: &[String],
    limit: i64,
) -> StoreResult<Vec<(i64, i64)>> {
    if labels.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (0..labels.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT id, at FROM detections WHERE subject_id = $1 AND label IN ({}) ORDER BY at DESC{}",
        marks.join(", "),
        crate::sql::limit(usize::try_from(limit).unwrap_or(0))
    );
    let labels = labels.to_vec();
    let rows: Vec<(i64, i64)> = direct_read!(db,
        sqlite: |conn| {
            let mut args: Vec<&dyn rusqlite::ToSql> = vec![&subject.0];
            args.extend(labels.iter().map(|l| l as &dyn rusqlite::ToSql));
            direct::query(conn, &sql, &args, |r| Ok((r.get("id")?, r.get("at")?)))
        },
        postgres: |pool| {
            let mut q = sqlx::query_as(crate::composed(&sql)).bind(subject.0);
            for label in &labels {
                q = q.bind(label);
            }
            Ok(q.fetch_all(pool).await?)
        },
    )?;
    Ok(rows)
}
