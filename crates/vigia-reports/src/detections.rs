//! The detection window report: for a period (the scheduler's last complete quarter hour), per
//! monitored subject, the detections per label, the share of stress labels, the average
//! confidence and the alerts raised, with totals. Read from the per-minute rollups (by
//! detection time) and the alerts table (an alert counts in the period of the detection that
//! raised it: its window's end), never from the detections. Written as JSON, CSV and XLSX to
//! `reports/detections/detections_YYYY-MM-DD_HH-MM.*` (the minute the period ends) and recorded
//! in the `reports` table with kind `detections`; rerunning a period replaces both.
//!
//! Detections that arrive after a window's report was written (a device that was offline) are
//! in the rollups of their detection time: running that period again counts them.

use std::collections::BTreeMap;

use anyhow::Context;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use vigia_domain::Timestamp;
use vigia_store::detections::window;
use vigia_store::reports::{self, NewReport, ReportKind, ReportRecord};
use vigia_store::{Db, ObjectKey, Objects};

use crate::global::PeriodOut;
use crate::table::{Cell, TableWriter};
use crate::{Format, Period, key_time};

/// The labels whose share is the "stress share" (as on the detections dashboard).
pub const STRESS_LABELS: [&str; 2] = ["stress", "sad"];

/// One subject's figures in the window. `subject_id` 0 is the anonymous aggregate of erased
/// subjects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectWindow {
    pub subject_id: i64,
    pub code: Option<String>,
    pub name: Option<String>,
    pub department_id: Option<i64>,
    /// Detections per label (every label of the report, zeros included).
    pub counts: BTreeMap<String, i64>,
    pub detections: i64,
    /// Detections labelled `stress` or `sad`.
    pub stress: i64,
    /// `stress / detections` (0 without detections).
    pub stress_share: f64,
    /// Average confidence of the window's detections (0..1); `None` without detections.
    pub confidence_avg: Option<f64>,
    /// Alerts raised by the subject's detections of the window.
    pub alerts_raised: i64,
}

/// The window's totals over every subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowTotals {
    /// Subjects with a detection or an alert in the window.
    pub subjects: i64,
    pub counts: BTreeMap<String, i64>,
    pub detections: i64,
    pub stress: i64,
    pub stress_share: f64,
    pub confidence_avg: Option<f64>,
    pub alerts_raised: i64,
}

/// The report as written to `detections_….json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionWindowReport {
    /// `detections`
    pub kind: String,
    pub period: PeriodOut,
    pub generated_at: Timestamp,
    /// The label columns, in order: the configured vocabulary, then any other label stored.
    pub labels: Vec<String>,
    pub subjects: Vec<SubjectWindow>,
    pub totals: WindowTotals,
}

fn share(part: i64, whole: i64) -> f64 {
    if whole > 0 {
        part as f64 / whole as f64
    } else {
        0.0
    }
}

fn average(sum_millionths: i64, n: i64) -> Option<f64> {
    (n > 0).then(|| sum_millionths as f64 / n as f64 / 1_000_000.0)
}

/// Computes the report of `period` with `vocabulary` as its label columns (nothing written).
#[tracing::instrument(skip(db, vocabulary))]
pub async fn compute(
    db: &Db,
    period: Period,
    vocabulary: &[String],
    now: Timestamp,
) -> anyhow::Result<DetectionWindowReport> {
    let (counts, alerts) = window::period_counts(db, period.from(), period.to())
        .await
        .context("reading the window's detections")?;
    let mut labels: Vec<String> = vocabulary.to_vec();
    for c in &counts {
        if !labels.contains(&c.label) {
            labels.push(c.label.clone());
        }
    }
    let zeros: BTreeMap<String, i64> = labels.iter().map(|l| (l.clone(), 0)).collect();
    // Per subject: its label counts and confidence sum.
    let mut subjects: BTreeMap<i64, (SubjectWindow, i64)> = BTreeMap::new();
    let blank = |id: i64, code: &Option<String>, name: &Option<String>, dep: Option<i64>| {
        (
            SubjectWindow {
                subject_id: id,
                code: code.clone(),
                name: name.clone(),
                department_id: dep,
                counts: zeros.clone(),
                detections: 0,
                stress: 0,
                stress_share: 0.0,
                confidence_avg: None,
                alerts_raised: 0,
            },
            0_i64,
        )
    };
    for c in &counts {
        let (s, confidence) = subjects
            .entry(c.subject_id)
            .or_insert_with(|| blank(c.subject_id, &c.code, &c.name, c.department_id));
        *s.counts.entry(c.label.clone()).or_insert(0) += c.count;
        s.detections += c.count;
        if STRESS_LABELS.contains(&c.label.as_str()) {
            s.stress += c.count;
        }
        *confidence += c.confidence_sum;
    }
    for a in &alerts {
        let (s, _) = subjects
            .entry(a.subject_id)
            .or_insert_with(|| blank(a.subject_id, &a.code, &a.name, a.department_id));
        s.alerts_raised += a.alerts;
    }
    let mut totals = WindowTotals {
        subjects: subjects.len() as i64,
        counts: zeros.clone(),
        detections: 0,
        stress: 0,
        stress_share: 0.0,
        confidence_avg: None,
        alerts_raised: 0,
    };
    let mut confidence_total = 0_i64;
    let subjects: Vec<SubjectWindow> = subjects
        .into_values()
        .map(|(mut s, confidence)| {
            s.stress_share = share(s.stress, s.detections);
            s.confidence_avg = average(confidence, s.detections);
            for (label, n) in &s.counts {
                *totals.counts.entry(label.clone()).or_insert(0) += n;
            }
            totals.detections += s.detections;
            totals.stress += s.stress;
            totals.alerts_raised += s.alerts_raised;
            confidence_total += confidence;
            s
        })
        .collect();
    totals.stress_share = share(totals.stress, totals.detections);
    totals.confidence_avg = average(confidence_total, totals.detections);
    Ok(DetectionWindowReport {
        kind: "detections".into(),
        period: PeriodOut {
            from: period.from(),
            to: period.to(),
        },
        generated_at: now,
        labels,
        subjects,
        totals,
    })
}

/// The columns of the CSV and XLSX variants: one row per subject, then a `totals` row.
pub fn columns(report: &DetectionWindowReport) -> Vec<String> {
    let mut columns: Vec<String> = ["row", "subject_id", "code", "name", "department_id"]
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    columns.extend(report.labels.iter().map(|l| format!("label_{l}")));
    columns.extend(
        [
            "detections",
            "stress",
            "stress_share",
            "confidence_avg",
            "alerts_raised",
        ]
        .iter()
        .map(|c| (*c).to_owned()),
    );
    columns
}

/// The report's rows (what the CSV and XLSX variants hold).
pub fn rows(report: &DetectionWindowReport) -> Vec<Vec<Cell>> {
    let counts = |counts: &BTreeMap<String, i64>| -> Vec<Cell> {
        report
            .labels
            .iter()
            .map(|l| Cell::Int(counts.get(l).copied().unwrap_or(0)))
            .collect()
    };
    let mut rows: Vec<Vec<Cell>> = report
        .subjects
        .iter()
        .map(|s| {
            let mut row = vec![
                Cell::from("subject"),
                Cell::Int(s.subject_id),
                Cell::from(s.code.clone()),
                Cell::from(s.name.clone()),
                Cell::from(s.department_id),
            ];
            row.extend(counts(&s.counts));
            row.extend([
                Cell::Int(s.detections),
                Cell::Int(s.stress),
                Cell::Float(s.stress_share),
                Cell::from(s.confidence_avg),
                Cell::Int(s.alerts_raised),
            ]);
            row
        })
        .collect();
    let t = &report.totals;
    let mut total = vec![
        Cell::from("totals"),
        Cell::Empty,
        Cell::Empty,
        Cell::Empty,
        Cell::Empty,
    ];
    total.extend(counts(&t.counts));
    total.extend([
        Cell::Int(t.detections),
        Cell::Int(t.stress),
        Cell::Float(t.stress_share),
        Cell::from(t.confidence_avg),
        Cell::Int(t.alerts_raised),
    ]);
    rows.push(total);
    rows
}

/// The report's file in `format` (`json`, `csv` or `xlsx`).
pub fn render(report: &DetectionWindowReport, format: Format) -> anyhow::Result<Vec<u8>> {
    match format {
        Format::Json => serde_json::to_vec_pretty(report).context("encoding the report"),
        Format::Csv | Format::Xlsx => {
            let columns = columns(report);
            let names: Vec<&str> = columns.iter().map(String::as_str).collect();
            let mut writer = TableWriter::new(format, &names, Vec::new())?;
            for row in rows(report) {
                writer.write_row(&row)?;
            }
            writer.finish()
        }
        Format::Ndjson => anyhow::bail!("window reports are written as json, csv or xlsx"),
    }
}

/// The object key of the window report of a period ending at `end`, in `format`.
pub fn object_key(end: Timestamp, format: Format) -> ObjectKey {
    ObjectKey::join([
        "reports",
        "detections",
        &format!("detections_{}.{}", key_time(end), format.extension()),
    ])
}

/// Computes the report of `period`, writes it as JSON, CSV and XLSX to object storage and
/// records it (kind `detections`). Rerunning a period ending at the same minute rewrites the
/// same files and updates the same record.
#[tracing::instrument(skip(db, objects, vocabulary))]
pub async fn run(
    db: &Db,
    objects: &Objects,
    period: Period,
    vocabulary: &[String],
    created_by: &str,
) -> anyhow::Result<ReportRecord> {
    let report = compute(db, period, vocabulary, Timestamp::now()).await?;
    let mut written = Vec::new();
    for format in [Format::Json, Format::Csv, Format::Xlsx] {
        let bytes = render(&report, format)?;
        let key = object_key(period.to(), format);
        objects.put(&key, Bytes::from(bytes)).await?;
        written.push((format.as_str().to_owned(), key.to_string()));
    }
    let summary = serde_json::json!({ "totals": report.totals });
    let record = reports::save(
        db,
        &NewReport {
            kind: ReportKind::Detections,
            period_start: Some(period.from()),
            period_end: Some(period.to()),
            incident_id: None,
            department_id: None,
            competition_id: None,
            objects: written,
            summary,
            created_by: created_by.to_owned(),
        },
    )
    .await?;
    tracing::info!(
        report = record.id,
        detections = report.totals.detections,
        "detection window report written"
    );
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> DetectionWindowReport {
        let t = |s| Timestamp::parse_rfc3339(s).expect("time");
        let counts = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
            pairs.iter().map(|(l, n)| ((*l).to_owned(), *n)).collect()
        };
        DetectionWindowReport {
            kind: "detections".into(),
            period: PeriodOut {
                from: t("2026-12-07T10:00:00Z"),
                to: t("2026-12-07T10:15:00Z"),
            },
            generated_at: t("2026-12-07T10:15:02Z"),
            labels: vec!["happy".into(), "stress".into()],
            subjects: vec![SubjectWindow {
                subject_id: 4,
                code: Some("EMP001".into()),
                name: Some("Ana, de planta".into()),
                department_id: Some(2),
                counts: counts(&[("happy", 1), ("stress", 3)]),
                detections: 4,
                stress: 3,
                stress_share: 0.75,
                confidence_avg: Some(0.8),
                alerts_raised: 1,
            }],
            totals: WindowTotals {
                subjects: 1,
                counts: counts(&[("happy", 1), ("stress", 3)]),
                detections: 4,
                stress: 3,
                stress_share: 0.75,
                confidence_avg: Some(0.8),
                alerts_raised: 1,
            },
        }
    }

    #[test]
    fn the_object_key_names_the_minute_the_window_ends() {
        let end = Timestamp::parse_rfc3339("2026-12-07T10:15:00Z").expect("time");
        assert_eq!(
            object_key(end, Format::Csv).as_str(),
            "reports/detections/detections_2026-12-07_10-15.csv"
        );
    }

    #[test]
    fn the_csv_has_a_row_per_subject_a_column_per_label_and_a_totals_row() {
        let r = report();
        let csv = String::from_utf8(render(&r, Format::Csv).expect("csv")).expect("utf-8");
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "row,subject_id,code,name,department_id,label_happy,label_stress,detections,stress,stress_share,confidence_avg,alerts_raised"
        );
        assert_eq!(
            lines[1],
            "subject,4,EMP001,\"Ana, de planta\",2,1,3,4,3,0.75,0.8,1"
        );
        assert_eq!(lines[2], "totals,,,,,1,3,4,3,0.75,0.8,1");
        assert_eq!(lines.len(), 3);
        let back: DetectionWindowReport =
            serde_json::from_slice(&render(&r, Format::Json).expect("json")).expect("parse");
        assert_eq!(back, r);
        let xlsx = render(&r, Format::Xlsx).expect("xlsx");
        let sheet = crate::test_support::xlsx_sheet_xml(&xlsx, 1);
        assert!(
            sheet.contains("EMP001") && sheet.contains("r=\"A3\""),
            "{sheet}"
        );
    }
}
