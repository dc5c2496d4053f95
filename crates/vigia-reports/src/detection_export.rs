//! The detection export: stored detections of the subjects a caller may see, filtered by
//! subject, device, label and detection time, oldest first, as NDJSON, CSV or XLSX.
//!
//! Like the incident export ([`crate::export`]): pages of [`PAGE`] rows read by keyset
//! pagination on `(at, id)` and written as they come, on a blocking thread behind a small
//! bounded channel, so memory stays flat and a slow client slows the export down.

use std::io::Write;

use anyhow::Context;
use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use vigia_domain::Timestamp;
use vigia_store::Db;
use vigia_store::detections::DepartmentScope;
use vigia_store::detections::window::{DetectionFilter, DetectionRow, detections_page};

use crate::Format;
use crate::export::{ChannelWriter, ReceiverStream};
use crate::table::{Cell, TableWriter};

/// Rows read per query.
pub const PAGE: usize = 1000;

pub const COLUMNS: [&str; 13] = [
    "id",
    "at",
    "received_at",
    "subject_id",
    "subject_code",
    "department_id",
    "device_id",
    "device_code",
    "client_id",
    "label",
    "confidence",
    "in_session",
    "extra",
];

/// A detection export to run.
#[derive(Debug, Clone)]
pub struct DetectionExport {
    /// `ndjson`, `csv` or `xlsx`.
    pub format: Format,
    /// The departments whose subjects' detections may be exported.
    pub scope: DepartmentScope,
    pub filter: DetectionFilter,
}

fn row(d: DetectionRow) -> [Cell; 13] {
    let time = |ms: i64| Cell::Text(Timestamp::from_millis(ms).to_rfc3339());
    [
        Cell::Int(d.id),
        time(d.at),
        time(d.received_at),
        Cell::Int(d.subject_id),
        Cell::Text(d.subject_code),
        Cell::Int(d.department_id),
        Cell::Int(d.device_id),
        Cell::from(d.device_code),
        Cell::Text(d.client_id),
        Cell::Text(d.label),
        Cell::Float(d.confidence as f64 / 1_000_000.0),
        Cell::Bool(d.in_session),
        Cell::from(d.extra),
    ]
}

/// Writes the export to `out`, page by page; returns the rows written and the output.
/// Blocking: call it from a blocking thread; `runtime` runs the queries.
pub fn write<W: Write + Send>(
    runtime: &Handle,
    db: &Db,
    export: &DetectionExport,
    out: W,
) -> anyhow::Result<(u64, W)> {
    let mut writer = TableWriter::new(export.format, &COLUMNS, out)?;
    let mut after = None;
    loop {
        let page = runtime
            .block_on(detections_page(
                db,
                &export.scope,
                &export.filter,
                after,
                PAGE,
            ))
            .context("reading detections")?;
        let full = page.len() == PAGE;
        for detection in page {
            after = Some((detection.at, detection.id));
            writer.write_row(&row(detection))?;
        }
        writer.flush()?;
        if !full {
            break;
        }
    }
    let rows = writer.rows();
    let mut out = writer.finish()?;
    out.flush().context("writing the export")?;
    Ok((rows, out))
}

/// The export as a stream of chunks (for an HTTP body); an error ends the stream with that
/// error, so the client sees a broken transfer rather than a file that looks complete.
pub fn stream(
    db: Db,
    export: DetectionExport,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let runtime = Handle::current();
    let errors = tx.clone();
    tokio::task::spawn_blocking(move || {
        match write(&runtime, &db, &export, ChannelWriter::new(tx)) {
            Ok((rows, mut out)) => {
                if out.flush().is_ok() {
                    tracing::info!(rows, "detection export streamed");
                }
            }
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "detection export failed");
                let _ = errors.blocking_send(Err(std::io::Error::other(format!("{error:#}"))));
            }
        }
    });
    ReceiverStream(rx)
}
