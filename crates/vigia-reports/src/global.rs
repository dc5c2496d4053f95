//! The global report of a period: what happened to every incident created in it.
//!
//! Counts (by status, urgency, category, department, zone; per day) come from the statistics
//! aggregates; mean times and SLA breaches from [`service_figures`]. Figures that change with
//! time (status, breaches) are as of the earlier of the period's end and the moment the report
//! runs, so a report of a past period does not count later acknowledgements.

use std::collections::HashMap;

use anyhow::Context;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use vigia_domain::Timestamp;
use vigia_domain::incidents::ReadScope;
use vigia_store::incidents::stats::{self, StatsFilter};
use vigia_store::reports::{self, NewReport, ReportKind, ReportRecord, service_figures};
use vigia_store::{Db, ObjectKey, Objects, catalog};

use crate::table::{Cell, TableWriter};
use crate::{Format, Period, key_time};

/// How many zones `top_zones` lists.
pub const TOP_ZONES: usize = 5;

/// A count for one value of a dimension. `key` is the value (a status, an id); `None` for
/// incidents with no department or zone. `name` is the catalog name, when there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Count {
    pub key: Option<String>,
    pub name: Option<String>,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodOut {
    pub from: Timestamp,
    pub to: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Incidents created in the period.
    pub created: i64,
    /// Incidents resolved in the period, whenever they were created.
    pub resolved: i64,
    /// Of those created, the ones not resolved or closed.
    pub open: i64,
    /// Of those created, the ones acknowledged.
    pub acknowledged: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breaches {
    /// Created in the period and acknowledged late, or still unacknowledged past the target.
    pub acknowledge: i64,
    /// Created in the period and resolved late, or still unresolved past the target.
    pub resolve: i64,
    /// Incidents with either breach.
    pub incidents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Day {
    /// A UTC date, e.g. `2026-11-23`.
    pub date: String,
    pub created: i64,
    pub resolved: i64,
}

/// The report as written to `report_….json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalReport {
    pub kind: String,
    pub period: PeriodOut,
    pub generated_at: Timestamp,
    /// Time-dependent figures (status, breaches) are as of this moment.
    pub as_of: Timestamp,
    pub totals: Totals,
    pub by_status: Vec<Count>,
    pub by_urgency: Vec<Count>,
    pub by_category: Vec<Count>,
    pub by_department: Vec<Count>,
    pub by_zone: Vec<Count>,
    /// Over the incidents of the period that were acknowledged.
    pub mean_time_to_acknowledge_secs: Option<f64>,
    /// Over the incidents of the period that were resolved.
    pub mean_time_to_resolve_secs: Option<f64>,
    pub sla_breaches: Breaches,
    /// The zones with the most incidents, most first (ties by id); incidents without a zone
    /// are left out.
    pub top_zones: Vec<Count>,
    pub per_day: Vec<Day>,
}

/// Computes the report of `period` (nothing is written).
#[tracing::instrument(skip(db))]
pub async fn compute(db: &Db, period: Period, now: Timestamp) -> anyhow::Result<GlobalReport> {
    let as_of = now.min(period.to());
    let filter = StatsFilter {
        created_from: period.from(),
        created_to: period.to(),
        department: None,
        category: None,
    };
    let (counts, figures, categories, departments, zones) = tokio::try_join!(
        stats::incident_stats(db, &ReadScope::All, &filter),
        service_figures(db, period.from(), period.to(), as_of),
        catalog::list_categories(db),
        catalog::list_departments(db),
        catalog::list_zones(db),
    )
    .context("computing the global report")?;
    let categories: HashMap<i64, String> = categories
        .into_iter()
        .map(|c| (c.id.0, c.name_es))
        .collect();
    let departments: HashMap<i64, String> =
        departments.into_iter().map(|d| (d.id.0, d.name)).collect();
    let zones: HashMap<i64, String> = zones.into_iter().map(|z| (z.id.0, z.name)).collect();
    let named = |names: &HashMap<i64, String>, key: Option<i64>, count: i64| Count {
        key: key.map(|k| k.to_string()),
        name: key.and_then(|k| names.get(&k).cloned()),
        count,
    };
    let open = counts
        .by_status
        .iter()
        .filter(|c| c.key.is_open())
        .map(|c| c.count)
        .sum();
    let by_zone: Vec<Count> = counts
        .by_zone
        .iter()
        .map(|c| named(&zones, c.key.map(|z| z.0), c.count))
        .collect();
    let mut top_zones: Vec<(i64, &Count)> = counts
        .by_zone
        .iter()
        .zip(&by_zone)
        .filter_map(|(c, out)| c.key.map(|z| (z.0, out)))
        .collect();
    top_zones.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(&b.0)));
    let top_zones = top_zones
        .into_iter()
        .take(TOP_ZONES)
        .map(|(_, c)| c.clone())
        .collect();
    Ok(GlobalReport {
        kind: "global".into(),
        period: PeriodOut {
            from: period.from(),
            to: period.to(),
        },
        generated_at: now,
        as_of,
        totals: Totals {
            created: figures.created,
            resolved: figures.resolved,
            open,
            acknowledged: figures.acknowledged,
        },
        by_status: counts
            .by_status
            .iter()
            .map(|c| Count {
                key: Some(c.key.as_str().into()),
                name: None,
                count: c.count,
            })
            .collect(),
        by_urgency: counts
            .by_urgency
            .iter()
            .map(|c| Count {
                key: Some(c.key.as_str().into()),
                name: None,
                count: c.count,
            })
            .collect(),
        by_category: counts
            .by_category
            .iter()
            .map(|c| named(&categories, Some(c.key.0), c.count))
            .collect(),
        by_department: counts
            .by_department
            .iter()
            .map(|c| named(&departments, c.key.map(|d| d.0), c.count))
            .collect(),
        by_zone,
        mean_time_to_acknowledge_secs: figures.mean_acknowledge_secs,
        mean_time_to_resolve_secs: figures.mean_resolve_secs,
        sla_breaches: Breaches {
            acknowledge: figures.acknowledge_breaches,
            resolve: figures.resolve_breaches,
            incidents: figures.breached_incidents,
        },
        top_zones,
        per_day: counts
            .per_day
            .iter()
            .map(|d| Day {
                date: d.date.to_string(),
                created: d.created,
                resolved: d.resolved,
            })
            .collect(),
    })
}

/// The columns of the CSV and XLSX variants: one row per figure.
pub const COLUMNS: [&str; 4] = ["section", "key", "name", "value"];

/// The report as rows of [`COLUMNS`] (what the CSV and XLSX variants hold).
pub fn rows(report: &GlobalReport) -> Vec<[Cell; 4]> {
    let mut rows = Vec::new();
    let mut push = |section: &str, key: Option<&str>, name: Option<&str>, value: Cell| {
        rows.push([
            Cell::from(section),
            key.map_or(Cell::Empty, Cell::from),
            name.map_or(Cell::Empty, Cell::from),
            value,
        ]);
    };
    let from = report.period.from.to_rfc3339();
    let to = report.period.to.to_rfc3339();
    push("period", Some("from"), None, Cell::from(from.as_str()));
    push("period", Some("to"), None, Cell::from(to.as_str()));
    let t = &report.totals;
    for (key, value) in [
        ("created", t.created),
        ("resolved", t.resolved),
        ("open", t.open),
        ("acknowledged", t.acknowledged),
    ] {
        push("totals", Some(key), None, Cell::Int(value));
    }
    for (section, counts) in [
        ("by_status", &report.by_status),
        ("by_urgency", &report.by_urgency),
        ("by_category", &report.by_category),
        ("by_department", &report.by_department),
        ("by_zone", &report.by_zone),
        ("top_zones", &report.top_zones),
    ] {
        for c in counts {
            push(
                section,
                c.key.as_deref(),
                c.name.as_deref(),
                Cell::Int(c.count),
            );
        }
    }
    push(
        "mean_times",
        Some("acknowledge_secs"),
        None,
        Cell::from(report.mean_time_to_acknowledge_secs),
    );
    push(
        "mean_times",
        Some("resolve_secs"),
        None,
        Cell::from(report.mean_time_to_resolve_secs),
    );
    let b = &report.sla_breaches;
    push(
        "sla_breaches",
        Some("acknowledge"),
        None,
        Cell::Int(b.acknowledge),
    );
    push("sla_breaches", Some("resolve"), None, Cell::Int(b.resolve));
    push(
        "sla_breaches",
        Some("incidents"),
        None,
        Cell::Int(b.incidents),
    );
    for d in &report.per_day {
        push("created_per_day", Some(&d.date), None, Cell::Int(d.created));
        push(
            "resolved_per_day",
            Some(&d.date),
            None,
            Cell::Int(d.resolved),
        );
    }
    rows
}

/// The report's file in `format` (`json`, `csv` or `xlsx`).
pub fn render(report: &GlobalReport, format: Format) -> anyhow::Result<Vec<u8>> {
    match format {
        Format::Json => serde_json::to_vec_pretty(report).context("encoding the report"),
        Format::Csv | Format::Xlsx => {
            let mut writer = TableWriter::new(format, &COLUMNS, Vec::new())?;
            for row in rows(report) {
                writer.write_row(&row)?;
            }
            writer.finish()
        }
        Format::Ndjson => anyhow::bail!("global reports are written as json, csv or xlsx"),
    }
}

/// The object key of the report of a period ending at `end`, in `format`.
pub fn object_key(end: Timestamp, format: Format) -> ObjectKey {
    ObjectKey::join([
        "reports",
        "global",
        &format!("report_{}.{}", key_time(end), format.extension()),
    ])
}

/// Computes the report of `period`, writes it in JSON and each of `formats` (`csv`, `xlsx`) to
/// object storage and records it. Running it again for a period ending at the same minute
/// rewrites the same files and updates the same record.
#[tracing::instrument(skip(db, objects))]
pub async fn run(
    db: &Db,
    objects: &Objects,
    period: Period,
    formats: &[Format],
    created_by: &str,
) -> anyhow::Result<ReportRecord> {
    let report = compute(db, period, Timestamp::now()).await?;
    let mut written = Vec::new();
    let mut wanted = vec![Format::Json];
    wanted.extend(
        formats
            .iter()
            .filter(|f| matches!(f, Format::Csv | Format::Xlsx)),
    );
    wanted.dedup();
    for format in wanted {
        if written.iter().any(|(f, _)| f == format.as_str()) {
            continue;
        }
        let bytes = render(&report, format)?;
        let key = object_key(period.to(), format);
        objects.put(&key, Bytes::from(bytes)).await?;
        written.push((format.as_str().to_owned(), key.to_string()));
    }
    let summary = serde_json::json!({
        "totals": report.totals,
        "mean_time_to_acknowledge_secs": report.mean_time_to_acknowledge_secs,
        "mean_time_to_resolve_secs": report.mean_time_to_resolve_secs,
        "sla_breaches": report.sla_breaches,
        "top_zones": report.top_zones,
    });
    let record = reports::save(
        db,
        &NewReport {
            competition_id: None,
            kind: ReportKind::Global,
            period_start: Some(period.from()),
            period_end: Some(period.to()),
            incident_id: None,
            department_id: None,
            objects: written,
            summary,
            created_by: created_by.to_owned(),
        },
    )
    .await?;
    tracing::info!(
        report = record.id,
        created = report.totals.created,
        "global report written"
    );
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> GlobalReport {
        let t = |s| Timestamp::parse_rfc3339(s).expect("time");
        GlobalReport {
            kind: "global".into(),
            period: PeriodOut {
                from: t("2026-11-23T12:00:00Z"),
                to: t("2026-11-23T12:15:00Z"),
            },
            generated_at: t("2026-11-23T12:15:03Z"),
            as_of: t("2026-11-23T12:15:00Z"),
            totals: Totals {
                created: 3,
                resolved: 1,
                open: 2,
                acknowledged: 2,
            },
            by_status: vec![Count {
                key: Some("new".into()),
                name: None,
                count: 1,
            }],
            by_urgency: vec![],
            by_category: vec![],
            by_department: vec![Count {
                key: None,
                name: None,
                count: 3,
            }],
            by_zone: vec![],
            mean_time_to_acknowledge_secs: Some(90.5),
            mean_time_to_resolve_secs: None,
            sla_breaches: Breaches {
                acknowledge: 1,
                resolve: 0,
                incidents: 1,
            },
            top_zones: vec![Count {
                key: Some("4".into()),
                name: Some("Pabellón A".into()),
                count: 2,
            }],
            per_day: vec![Day {
                date: "2026-11-23".into(),
                created: 3,
                resolved: 1,
            }],
        }
    }

    #[test]
    fn the_object_key_names_the_minute_the_period_ends() {
        let end = Timestamp::parse_rfc3339("2026-03-01T09:05:00Z").expect("time");
        assert_eq!(
            object_key(end, Format::Json).as_str(),
            "reports/global/report_2026-03-01_09-05.json"
        );
        assert_eq!(
            object_key(end, Format::Xlsx).as_str(),
            "reports/global/report_2026-03-01_09-05.xlsx"
        );
    }

    #[test]
    fn json_round_trips_and_csv_has_one_row_per_figure() {
        let r = report();
        let json = render(&r, Format::Json).expect("json");
        let back: GlobalReport = serde_json::from_slice(&json).expect("parse");
        assert_eq!(back, r);
        let csv = String::from_utf8(render(&r, Format::Csv).expect("csv")).expect("utf-8");
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "section,key,name,value");
        assert!(lines.contains(&"totals,created,,3"));
        assert!(lines.contains(&"by_department,,,3"));
        assert!(lines.contains(&"top_zones,4,Pabellón A,2"));
        assert!(lines.contains(&"mean_times,acknowledge_secs,,90.5"));
        assert!(lines.contains(&"mean_times,resolve_secs,,"));
        assert!(lines.contains(&"sla_breaches,acknowledge,,1"));
        assert!(lines.contains(&"created_per_day,2026-11-23,,3"));
        assert_eq!(lines.len(), 1 + rows(&r).len());
    }

    #[test]
    fn xlsx_holds_the_same_rows() {
        let r = report();
        let xlsx = render(&r, Format::Xlsx).expect("xlsx");
        let sheet = crate::test_support::xlsx_sheet_xml(&xlsx, 1);
        assert!(sheet.contains("Pabellón A"));
        assert!(sheet.contains(&format!("r=\"A{}\"", rows(&r).len() + 1)));
    }
}
