//! Devices, subjects, monitoring sessions, detections and their rollups, alert rules, alerts
//! and silences (issue 19). Detections are written in batches through the group commit on
//! SQLite (`ingest`), with their per-minute rollups in the same savepoint.

pub mod alerts;
mod audited;
pub mod dashboard;
pub mod devices;
pub mod ingest;
pub mod privacy;
pub mod rules;
pub mod sessions;
pub mod subjects;
pub mod window;

use vigia_domain::ids::DepartmentId;

/// Which subjects (by department) a caller may see: every one, or those of some departments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepartmentScope {
    All,
    Only(Vec<DepartmentId>),
}

impl DepartmentScope {
    /// `AND <column> IN ($first, ...)` for a limited scope (an empty one matches nothing), and
    /// the ids to bind in order.
    pub(crate) fn condition(&self, column: &str, first: usize) -> (String, Vec<i64>) {
        match self {
            DepartmentScope::All => (String::new(), Vec::new()),
            DepartmentScope::Only(ids) if ids.is_empty() => (" AND 1 = 0".into(), Vec::new()),
            DepartmentScope::Only(ids) => {
                let marks: Vec<String> =
                    (0..ids.len()).map(|i| format!("${}", first + i)).collect();
                (
                    format!(" AND {column} IN ({})", marks.join(", ")),
                    ids.iter().map(|d| d.0).collect(),
                )
            }
        }
    }

    /// `fixed` then the `ids` of [`DepartmentScope::condition`], as rusqlite binds them.
    pub(crate) fn direct_args<'a>(
        fixed: &[&'a dyn rusqlite::ToSql],
        ids: &'a [i64],
    ) -> Vec<&'a dyn rusqlite::ToSql> {
        let mut args = fixed.to_vec();
        args.extend(ids.iter().map(|id| id as &dyn rusqlite::ToSql));
        args
    }

    pub fn includes(&self, department: DepartmentId) -> bool {
        match self {
            DepartmentScope::All => true,
            DepartmentScope::Only(ids) => ids.contains(&department),
        }
    }
}
