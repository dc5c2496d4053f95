//! Reports and exports, by purpose: `records` (the `reports` table: one row per generated
//! report, its files' object keys and a JSON summary; saving, finding and listing them),
//! `figures` (the aggregates a global report adds to [`incident_stats`]: mean times, SLA
//! breaches), `custom` (filtered counts grouped by dimensions) and `export` (the pages exports
//! are streamed from). Callers use the items re-exported here.
//!
//! [`incident_stats`]: crate::incidents::stats::incident_stats

mod custom;
mod export;
mod figures;
mod records;

pub use custom::{Dimension, Group, MAX_GROUPS, grouped};
pub use export::{ExportEvent, count_incidents, events_page};
pub use figures::{ServiceFigures, service_figures};
pub use records::{
    NewReport, ReportFilter, ReportKind, ReportRecord, ReportScope, find, list, save,
};
