//! Exports: the incidents (or their events) a caller may see, matching the incident list's
//! filters, written as NDJSON, CSV or XLSX.
//!
//! Rows are read in pages of [`PAGE`] by keyset pagination (the list query itself for
//! incidents; `id > last` for events) and written as they come, so memory does not grow with
//! the number of rows. The writer is blocking ([`write`] runs on a blocking thread and waits on
//! the runtime for each page); [`stream`] wraps it for HTTP bodies with a small bounded channel,
//! so a slow client slows the export down instead of filling memory.

use std::io::Write;

use anyhow::Context;
use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use vigia_domain::Timestamp;
use vigia_domain::auth::Principal;
use vigia_domain::incidents::{ReadScope, Relation};
use vigia_store::incidents::{self, Incident, IncidentFilter};
use vigia_store::reports::{ExportEvent, count_incidents, events_page};
use vigia_store::{Cursor, Db};

use crate::Format;
use crate::table::{Cell, TableWriter};

/// Rows read per query.
pub const PAGE: usize = 1000;

/// What is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    Incidents,
    /// The history of the incidents that match, oldest event first.
    Events,
}

impl ExportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportKind::Incidents => "incidents",
            ExportKind::Events => "events",
        }
    }
}

/// An export to run.
#[derive(Debug, Clone)]
pub struct Export {
    pub kind: ExportKind,
    /// `ndjson`, `csv` or `xlsx`.
    pub format: Format,
    /// The incidents the caller may read.
    pub scope: ReadScope,
    /// Who reads the file: decides, row by row, whether people are shown and internal events
    /// included, as the API's incident views do. `None`: an operator at the console (all).
    pub viewer: Option<Principal>,
    pub filter: IncidentFilter,
}

pub const INCIDENT_COLUMNS: [&str; 26] = [
    "id",
    "code",
    "status",
    "urgency",
    "category_id",
    "department_id",
    "zone_id",
    "assignee_id",
    "reporter_id",
    "source",
    "visibility",
    "votes",
    "title",
    "description",
    "location_text",
    "lat",
    "lon",
    "acknowledge_due",
    "resolve_due",
    "acknowledge_breached",
    "resolve_breached",
    "acknowledged_at",
    "resolved_at",
    "closed_at",
    "created_at",
    "updated_at",
];

pub const EVENT_COLUMNS: [&str; 8] = [
    "id",
    "incident_id",
    "code",
    "kind",
    "actor",
    "at",
    "internal",
    "data",
];

fn time(t: Timestamp) -> Cell {
    Cell::Text(t.to_rfc3339())
}

fn optional_time(t: Option<Timestamp>) -> Cell {
    t.map_or(Cell::Empty, time)
}

fn relation(viewer: Option<&Principal>, i: &Incident) -> Relation {
    viewer.map_or(Relation::Admin, |p| {
        Relation::of(p, i.department_id, i.reporter_id)
    })
}

fn incident_row(i: Incident, viewer: Option<&Principal>) -> [Cell; 26] {
    // What the API shows anyone of a public incident that is not theirs: no people.
    let people = relation(viewer, &i).sees_people();
    let person = |id: Option<i64>| if people { Cell::from(id) } else { Cell::Empty };
    [
        Cell::Int(i.id.0),
        Cell::Text(i.code.to_string()),
        Cell::from(i.status.as_str()),
        Cell::from(i.urgency.as_str()),
        Cell::Int(i.category_id.0),
        Cell::from(i.department_id.map(|d| d.0)),
        Cell::from(i.zone_id.map(|z| z.0)),
        person(i.assignee_id.map(|u| u.0)),
        person(i.reporter_id.map(|u| u.0)),
        Cell::from(i.source.as_str()),
        Cell::from(i.visibility.as_str()),
        Cell::Int(i.votes),
        Cell::Text(i.title),
        Cell::Text(i.description),
        Cell::from(i.location_text),
        Cell::from(i.point.map(|p| p.lat)),
        Cell::from(i.point.map(|p| p.lon)),
        time(i.sla.acknowledge_due),
        time(i.sla.resolve_due),
        Cell::Bool(i.sla.acknowledge_breached),
        Cell::Bool(i.sla.resolve_breached),
        optional_time(i.acknowledged_at),
        optional_time(i.resolved_at),
        optional_time(i.closed_at),
        time(i.created_at),
        time(i.updated_at),
    ]
}

/// The row of an event for `viewer`, or `None` if the viewer may not see it (an internal event
/// of an incident they do not work on).
fn event_row(e: ExportEvent, viewer: Option<&Principal>) -> Option<[Cell; 8]> {
    let relation = viewer.map_or(Relation::Admin, |p| {
        Relation::of(p, e.department_id, e.reporter_id)
    });
    if e.internal && !relation.may_see_internal() {
        return None;
    }
    let who = if relation.sees_people() {
        Cell::Text(e.actor)
    } else {
        Cell::Empty
    };
    Some([
        Cell::Int(e.id),
        Cell::Int(e.incident_id.0),
        Cell::Text(e.code.to_string()),
        Cell::Text(e.kind),
        who,
        time(e.at),
        Cell::Bool(e.internal),
        Cell::Text(e.data),
    ])
}

/// How many incidents the export covers (its events export has more rows).
pub async fn count(db: &Db, export: &Export) -> anyhow::Result<u64> {
    let n = count_incidents(db, &export.scope, &export.filter).await?;
    Ok(n.max(0) as u64)
}

/// Writes the export to `out`, calling `progress` with the incidents (or events) read so far
/// after each page; returns the rows written. Blocking: call it from a blocking thread
/// (`spawn_blocking`, a plain thread); `runtime` runs the queries.
pub fn write<W: Write + Send>(
    runtime: &Handle,
    db: &Db,
    export: &Export,
    out: W,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<(u64, W)> {
    let viewer = export.viewer.as_ref();
    let mut read = 0u64;
    match export.kind {
        ExportKind::Incidents => {
            let mut writer = TableWriter::new(export.format, &INCIDENT_COLUMNS, out)?;
            let mut cursor: Option<Cursor> = None;
            loop {
                let page = runtime
                    .block_on(incidents::list(
                        db,
                        &export.scope,
                        &export.filter,
                        cursor,
                        PAGE,
                    ))
                    .context("reading incidents")?;
                read += page.items.len() as u64;
                for incident in page.items {
                    writer.write_row(&incident_row(incident, viewer))?;
                }
                writer.flush()?;
                progress(read);
                match page.next_cursor.as_deref().and_then(Cursor::decode) {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let rows = writer.rows();
            let mut out = writer.finish()?;
            out.flush().context("writing the export")?;
            Ok((rows, out))
        }
        ExportKind::Events => {
            let mut writer = TableWriter::new(export.format, &EVENT_COLUMNS, out)?;
            let mut after = 0i64;
            loop {
                let page = runtime
                    .block_on(events_page(db, &export.scope, &export.filter, after, PAGE))
                    .context("reading events")?;
                let full = page.len() == PAGE;
                read += page.len() as u64;
                for event in page {
                    after = event.id;
                    if let Some(row) = event_row(event, viewer) {
                        writer.write_row(&row)?;
                    }
                }
                writer.flush()?;
                progress(read);
                if !full {
                    break;
                }
            }
            let rows = writer.rows();
            let mut out = writer.finish()?;
            out.flush().context("writing the export")?;
            Ok((rows, out))
        }
    }
}

/// A `Write` that hands chunks of about 64 KiB to a bounded channel, blocking when the reader
/// is behind. Fails with `BrokenPipe` once the reader is gone (the client hung up).
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    pub(crate) fn new(tx: mpsc::Sender<Result<Bytes, std::io::Error>>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the reader left"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The export as a stream of chunks (for an HTTP body). It runs on a blocking thread; an
/// error ends the stream with that error, so the client sees a broken transfer rather than a
/// file that looks complete.
pub fn stream(
    db: Db,
    export: Export,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let runtime = Handle::current();
    let errors = tx.clone();
    tokio::task::spawn_blocking(move || {
        let out = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        match write(&runtime, &db, &export, out, |_| {}) {
            Ok((rows, mut out)) => {
                if out.flush().is_ok() {
                    tracing::info!(kind = export.kind.as_str(), rows, "export streamed");
                }
            }
            Err(error) => {
                tracing::warn!(kind = export.kind.as_str(), error = %format!("{error:#}"), "export failed");
                let _ = errors.blocking_send(Err(std::io::Error::other(format!("{error:#}"))));
            }
        }
    });
    ReceiverStream(rx)
}

pub(crate) struct ReceiverStream<T>(pub(crate) mpsc::Receiver<T>);

impl<T> futures::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}
