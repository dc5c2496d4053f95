//! The `detections` topic: once a second, the counts per department and label of the
//! detections this node accepted in that second — never one message per detection, so a
//! browser keeps up at any ingestion rate.
//!
//! Ingestion adds each committed batch to the [`Tally`] (one lock per batch); the hub's ticker
//! takes it every second and offers one `detections.tick` message per department with
//! detections to every connection subscribed to `detections` that may see that department's
//! subjects ([`vigia_domain::detections::AlertScope`]: staff their departments, admins all,
//! reporters none). Ticks are not events of the log: they carry no `id`, are not replayed
//! after a reconnection, and each node counts only what it received itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::json;
use vigia_domain::Timestamp;
use vigia_domain::ids::DepartmentId;

use super::protocol::Frame;

/// Accepted detections not yet published, per department and label.
#[derive(Clone, Default)]
pub struct Tally(Arc<Mutex<HashMap<DepartmentId, BTreeMap<String, u64>>>>);

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tally").finish_non_exhaustive()
    }
}

impl Tally {
    /// Counts accepted detections, each given by its subject's department and its label.
    pub fn add<'a>(&self, detections: impl IntoIterator<Item = (DepartmentId, &'a str)>) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (department, label) in detections {
            let labels = counts.entry(department).or_default();
            match labels.get_mut(label) {
                Some(n) => *n += 1,
                None => {
                    labels.insert(label.to_owned(), 1);
                }
            }
        }
    }

    /// Takes what was counted since the last call, as one `detections.tick` frame per
    /// department (ordered by department).
    pub fn take_frames(&self, period_secs: u64) -> Vec<(DepartmentId, Frame)> {
        let counts = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        let ts = Timestamp::now();
        let mut frames: Vec<(DepartmentId, Frame)> = counts
            .into_iter()
            .map(|(department, labels)| {
                let total: u64 = labels.values().sum();
                let text = json!({
                    "type": "detections.tick",
                    "ts": ts,
                    "data": {
                        "department_id": department,
                        "period_secs": period_secs,
                        "total": total,
                        "labels": labels,
                    },
                })
                .to_string();
                (department, Frame::new(None, text))
            })
            .collect();
        frames.sort_by_key(|(d, _)| *d);
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_counts_each_departments_labels_once_and_starts_afresh() {
        let tally = Tally::default();
        tally.add([
            (DepartmentId(2), "stress"),
            (DepartmentId(2), "stress"),
            (DepartmentId(2), "happy"),
            (DepartmentId(5), "sad"),
        ]);
        let frames = tally.take_frames(1);
        assert_eq!(frames.len(), 2);
        let first: serde_json::Value = serde_json::from_str(&frames[0].1.text).expect("json");
        assert_eq!(first["type"], "detections.tick");
        assert_eq!(first["data"]["department_id"], 2);
        assert_eq!(first["data"]["total"], 3);
        assert_eq!(first["data"]["labels"]["stress"], 2);
        assert_eq!(first["data"]["labels"]["happy"], 1);
        assert!(frames[0].1.id.is_none(), "ticks are not events of the log");
        assert!(tally.take_frames(1).is_empty(), "counted once");
    }
}
