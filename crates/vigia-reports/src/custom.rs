//! Custom reports: the incidents matching the list filters, counted per combination of chosen
//! dimensions, with mean times; returned as rows or written as a CSV or XLSX file.

use serde::Serialize;
use vigia_domain::ids::DepartmentId;
use vigia_store::incidents::IncidentFilter;
use vigia_store::incidents::stats::DAY_MS;
use vigia_store::reports::{Dimension, grouped};
use vigia_store::{Db, reports};

use crate::Format;
use crate::table::{Cell, TableWriter};

/// One group: its key per dimension (in the order asked), count and mean times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Statuses, urgencies and sources by name; categories, departments, zones and assignees by
    /// id (`null` for none); days as `YYYY-MM-DD`.
    pub keys: Vec<Option<String>>,
    pub count: i64,
    pub mean_time_to_acknowledge_secs: Option<f64>,
    pub mean_time_to_resolve_secs: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomReport {
    pub group_by: Vec<&'static str>,
    /// Ordered by the keys.
    pub rows: Vec<Row>,
    /// All the incidents counted.
    pub total: i64,
    /// True when more groups existed than [`reports::MAX_GROUPS`].
    pub truncated: bool,
}

/// Counts the incidents matching `filter` grouped by `dimensions`. `departments`: `None` counts
/// every incident (admins), otherwise only those routed to these departments (staff).
pub async fn run(
    db: &Db,
    departments: Option<&[DepartmentId]>,
    filter: &IncidentFilter,
    dimensions: &[Dimension],
) -> anyhow::Result<CustomReport> {
    let groups = grouped(db, departments, filter, dimensions).await?;
    let truncated = groups.len() >= reports::MAX_GROUPS;
    let rows: Vec<Row> = groups
        .into_iter()
        .filter(|g| g.count > 0)
        .map(|g| Row {
            keys: g
                .keys
                .into_iter()
                .zip(dimensions)
                .map(|(key, d)| match d {
                    Dimension::Day => key.map(|k| day_name(&k)),
                    _ => key,
                })
                .collect(),
            count: g.count,
            mean_time_to_acknowledge_secs: g.mean_acknowledge_secs,
            mean_time_to_resolve_secs: g.mean_resolve_secs,
        })
        .collect();
    Ok(CustomReport {
        group_by: dimensions.iter().map(|d| d.as_str()).collect(),
        total: rows.iter().map(|r| r.count).sum(),
        rows,
        truncated,
    })
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01), or the input if it is not one.
fn day_name(raw: &str) -> String {
    raw.parse::<i64>()
        .ok()
        .map(|day| vigia_domain::Timestamp::from_millis(day * DAY_MS))
        .map(|t| t.to_offset_date_time().date().to_string())
        .unwrap_or_else(|| raw.to_owned())
}

/// The report as a CSV or XLSX file: one column per dimension, then the figures.
pub fn render(report: &CustomReport, format: Format) -> anyhow::Result<Vec<u8>> {
    let mut columns: Vec<&str> = report.group_by.clone();
    columns.extend([
        "count",
        "mean_time_to_acknowledge_secs",
        "mean_time_to_resolve_secs",
    ]);
    let mut writer = TableWriter::new(format, &columns, Vec::new())?;
    for row in &report.rows {
        let mut cells: Vec<Cell> = row.keys.iter().cloned().map(Cell::from).collect();
        cells.push(Cell::Int(row.count));
        cells.push(Cell::from(row.mean_time_to_acknowledge_secs));
        cells.push(Cell::from(row.mean_time_to_resolve_secs));
        writer.write_row(&cells)?;
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_keys_become_dates() {
        assert_eq!(day_name("20415"), "2025-11-23");
        assert_eq!(day_name("x"), "x");
    }

    #[test]
    fn csv_has_a_column_per_dimension_then_the_figures() {
        let report = CustomReport {
            group_by: vec!["status", "zone"],
            rows: vec![Row {
                keys: vec![Some("new".into()), None],
                count: 2,
                mean_time_to_acknowledge_secs: None,
                mean_time_to_resolve_secs: Some(3.0),
            }],
            total: 2,
            truncated: false,
        };
        let csv = String::from_utf8(render(&report, Format::Csv).expect("csv")).expect("utf-8");
        assert_eq!(
            csv,
            "status,zone,count,mean_time_to_acknowledge_secs,mean_time_to_resolve_secs\nnew,,2,,3\n"
        );
    }
}
