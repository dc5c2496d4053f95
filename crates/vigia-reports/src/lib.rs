//! Reports and exports.
//!
//! - [`global`]: the report of a period (counts by status, category, urgency, department and
//!   zone; created and resolved; mean times to acknowledge and resolve; SLA breaches; top
//!   zones), written as JSON, CSV and XLSX to `reports/global/report_YYYY-MM-DD_HH-MM.*` and
//!   recorded in the `reports` table. Idempotent: a period ending at the same minute replaces
//!   the same record and files.
//! - [`incident`]: one incident and its history, written to
//!   `reports/incidents/{department id}/incident_{id}.json` once it has a department.
//! - [`custom`]: counts and mean times of filtered incidents grouped by chosen dimensions.
//! - [`detections`]: the detection window report of a period (per subject: detections per
//!   label, stress share, average confidence, alerts raised; totals), written to
//!   `reports/detections/detections_YYYY-MM-DD_HH-MM.*` every 15 minutes by the scheduler.
//! - [`detection_export`]: stored detections matching filters, streamed like [`export`].
//! - [`export`]: incidents or events matching the list filters, streamed as NDJSON, CSV or XLSX
//!   page by page (keyset pagination), so memory stays flat for any number of rows.
//!
//! Every entry point is a plain async function over a [`Db`](vigia_store::Db) and
//! [`Objects`](vigia_store::Objects): the HTTP API, the CLI and the job scheduler call the same
//! code.

pub mod custom;
pub mod detection_export;
pub mod detections;
pub mod export;
pub mod global;
pub mod incident;
pub mod table;

pub use table::{Cell, TableWriter};

use vigia_domain::Timestamp;

/// A file format of reports and exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Csv,
    Xlsx,
    /// One JSON object per line (exports only).
    Ndjson,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Json, Format::Csv, Format::Xlsx, Format::Ndjson];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Ndjson => "ndjson",
        }
    }

    /// The file name extension (the format's name).
    pub fn extension(self) -> &'static str {
        self.as_str()
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

const MINUTE_MS: i64 = 60_000;

/// A report period `[from, to)`, both on whole UTC minutes (the object key names the minute the
/// period ends). Built only through [`Period::new`] or [`Period::window_before`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    from: Timestamp,
    to: Timestamp,
}

/// Why a period was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeriodError {
    /// `from` is not before `to` (once both are truncated to the minute).
    Empty,
    /// Longer than [`MAX_PERIOD_DAYS`] (the report has a row per day).
    TooLong,
}

/// The longest period a report covers.
pub const MAX_PERIOD_DAYS: i64 = 366;

impl std::fmt::Display for PeriodError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeriodError::Empty => {
                f.write_str("the period must start at least a minute before it ends")
            }
            PeriodError::TooLong => write!(f, "the period may span at most {MAX_PERIOD_DAYS} days"),
        }
    }
}

impl std::error::Error for PeriodError {}

impl Period {
    /// `[from, to)` with both truncated to the minute.
    pub fn new(from: Timestamp, to: Timestamp) -> Result<Self, PeriodError> {
        let minute =
            |t: Timestamp| Timestamp::from_millis(t.millis().div_euclid(MINUTE_MS) * MINUTE_MS);
        let (from, to) = (minute(from), minute(to));
        if from >= to {
            return Err(PeriodError::Empty);
        }
        if to.millis() - from.millis() > MAX_PERIOD_DAYS * 86_400_000 {
            return Err(PeriodError::TooLong);
        }
        Ok(Self { from, to })
    }

    /// The last complete window of `minutes` minutes before `now`, aligned on multiples of
    /// `minutes` since midnight UTC (e.g. 15 → 12:00–12:15, 12:15–12:30): what the scheduler
    /// and `vigia report run` without a period produce.
    pub fn window_before(now: Timestamp, minutes: i64) -> Self {
        let size = minutes.max(1) * MINUTE_MS;
        let to = now.millis().div_euclid(size) * size;
        Self {
            from: Timestamp::from_millis(to - size),
            to: Timestamp::from_millis(to),
        }
    }

    pub fn from(self) -> Timestamp {
        self.from
    }

    pub fn to(self) -> Timestamp {
        self.to
    }
}

/// `YYYY-MM-DD_HH-MM` in UTC, as object keys name a report's time.
pub fn key_time(t: Timestamp) -> String {
    let t = t.to_offset_date_time();
    format!(
        "{:04}-{:02}-{:02}_{:02}-{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::io::Read;

    /// The XML of sheet `n` (1-based) of an XLSX file.
    pub fn xlsx_sheet_xml(bytes: &[u8], n: usize) -> String {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("xlsx is a zip");
        let mut file = archive
            .by_name(&format!("xl/worksheets/sheet{n}.xml"))
            .expect("sheet xml");
        let mut xml = String::new();
        file.read_to_string(&mut xml).expect("read sheet");
        xml
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_whole_minutes_and_never_empty() {
        let p = Period::new(
            Timestamp::from_millis(90_500),
            Timestamp::from_millis(185_000),
        )
        .expect("period");
        assert_eq!((p.from().millis(), p.to().millis()), (60_000, 180_000));
        assert_eq!(
            Period::new(
                Timestamp::from_millis(60_000),
                Timestamp::from_millis(119_999)
            ),
            Err(PeriodError::Empty)
        );
        assert_eq!(
            Period::new(
                Timestamp::from_millis(0),
                Timestamp::from_millis(367 * 86_400_000)
            ),
            Err(PeriodError::TooLong)
        );
    }

    #[test]
    fn the_default_window_is_the_last_complete_quarter_hour() {
        let now = Timestamp::parse_rfc3339("2026-11-23T12:37:10Z").expect("time");
        let p = Period::window_before(now, 15);
        assert_eq!(p.from().to_rfc3339(), "2026-11-23T12:15:00Z");
        assert_eq!(p.to().to_rfc3339(), "2026-11-23T12:30:00Z");
        assert_eq!(key_time(p.to()), "2026-11-23_12-30");
    }

    #[test]
    fn formats_round_trip_through_their_names() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
        }
        assert_eq!(Format::parse("pdf"), None);
    }
}
