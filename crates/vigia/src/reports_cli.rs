//! `vigia report ...` and `vigia export ...`: the same report and export code the API and the
//! scheduler run, from the command line (exports with a progress bar).

use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use vigia_domain::Timestamp;
use vigia_reports::export::{self, Export, ExportKind};
use vigia_reports::{Format, Period, global};
use vigia_store::reports::{self, ReportFilter, ReportKind, ReportScope};
use vigia_store::{Db, Objects};

/// Parses an RFC 3339 time given as `--name`.
pub fn parse_time(name: &str, raw: &str) -> anyhow::Result<Timestamp> {
    Timestamp::parse_rfc3339(raw)
        .with_context(|| format!("--{name} must be an RFC 3339 time such as 2026-11-23T12:00:00Z"))
}

/// Runs the global report of `[from, to)` (default: the last complete quarter hour) and prints
/// where it was written.
pub async fn run(
    db: &Db,
    objects: &Objects,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let period = match (from, to) {
        (None, None) => Period::window_before(now, 15),
        (from, to) => {
            let to = to.unwrap_or(now);
            let from = from.unwrap_or(to.plus_seconds(-15 * 60));
            Period::new(from, to).map_err(|e| anyhow::anyhow!("--from/--to: {e}"))?
        }
    };
    let started = std::time::Instant::now();
    let record = global::run(db, objects, period, &[Format::Csv, Format::Xlsx], "cli").await?;
    println!(
        "report {} for {} .. {} in {:.2} s: {}",
        record.id,
        period.from(),
        period.to(),
        started.elapsed().as_secs_f64(),
        record.summary["totals"]
    );
    for (format, key) in &record.objects {
        println!("  {format}: {key}");
    }
    Ok(())
}

/// Prints the latest reports.
pub async fn list(db: &Db, kind: Option<&str>, limit: usize) -> anyhow::Result<()> {
    let kind = kind
        .map(|k| ReportKind::parse(k).context("--kind must be global, incident or custom"))
        .transpose()?;
    let filter = ReportFilter {
        kind,
        ..ReportFilter::default()
    };
    let page = reports::list(db, &ReportScope::All, &filter, None, limit).await?;
    if page.items.is_empty() {
        println!("no reports yet");
    }
    for r in page.items {
        let period = match (r.period_start, r.period_end) {
            (Some(from), Some(to)) => format!("{from} .. {to}"),
            _ => String::new(),
        };
        let files: Vec<&str> = r.objects.iter().map(|(_, key)| key.as_str()).collect();
        println!(
            "{:>6}  {:<8}  {period}  {}",
            r.id,
            r.kind.as_str(),
            files.join(" ")
        );
    }
    Ok(())
}

/// Writes an export of everything matching `filter` (a query string, as the API takes it) to
/// `output`, with a progress bar.
pub async fn export_to_file(
    db: &Db,
    kind: ExportKind,
    format: &str,
    output: &Path,
    filter: &str,
) -> anyhow::Result<()> {
    let format = Format::parse(format)
        .filter(|f| matches!(f, Format::Csv | Format::Ndjson | Format::Xlsx))
        .context("--format must be csv, ndjson or xlsx")?;
    let filter = vigia_http::routes::reports::parse_filter(filter)
        .map_err(|e| anyhow::anyhow!("--filter: {e}"))?;
    if output.exists() {
        bail!(
            "{} already exists: choose a new file name",
            output.display()
        );
    }
    let export = Export {
        kind,
        format,
        scope: vigia_domain::incidents::ReadScope::All,
        viewer: None,
        filter,
    };
    let total = export::count(db, &export).await?;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {msg} ({per_sec}, {eta} left)",
        )
        .context("progress bar template")?,
    );
    bar.set_message(match kind {
        ExportKind::Incidents => "incidents",
        ExportKind::Events => "events",
    });
    if kind == ExportKind::Events {
        // The total is of incidents; events are counted as they come.
        bar.set_length(0);
    }
    let file = std::fs::File::create_new(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    let runtime = tokio::runtime::Handle::current();
    let task_db = db.clone();
    let task_bar = bar.clone();
    let started = std::time::Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        export::write(
            &runtime,
            &task_db,
            &export,
            BufWriter::with_capacity(256 * 1024, file),
            |read| {
                if task_bar.length().is_some_and(|l| read > l) {
                    task_bar.set_length(read);
                }
                task_bar.set_position(read);
            },
        )
        .map(|(rows, _)| rows)
    })
    .await
    .context("the export task failed")?;
    let rows = match result {
        Ok(rows) => rows,
        Err(error) => {
            bar.abandon();
            let _ = std::fs::remove_file(output);
            return Err(error);
        }
    };
    bar.finish();
    println!(
        "wrote {rows} rows to {} in {:.1} s",
        output.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
