//! What a job is: one [`Task`], serialized with its kind as the `type` tag (the model is
//! svix's queue tasks). The `kind` column holds the tag, so a worker claims only the kinds it
//! has handlers for; the `payload` column holds the whole tagged value.
//!
//! A new kind of background work is a new variant here, a handler for its [`JobKind`] in
//! `vigia-jobs` or the binary, and an enqueue in the transaction of the change that causes it.

use serde::{Deserialize, Serialize};

/// Every kind of job, without its data (the `kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum JobKind {
    #[serde(rename = "event.dispatch")]
    EventDispatch,
    #[serde(rename = "notification.deliver")]
    Deliver,
    #[serde(rename = "report.incident")]
    IncidentReport,
    #[serde(rename = "report.global")]
    GlobalReport,
    #[serde(rename = "sla.escalate")]
    SlaEscalate,
    #[serde(rename = "assignment.sweep")]
    AssignmentSweep,
    #[serde(rename = "cleanup")]
    Cleanup,
    #[serde(rename = "detections.retention")]
    DetectionsRetention,
    #[serde(rename = "report.detections")]
    DetectionsReport,
    #[serde(rename = "noop")]
    Noop,
    #[serde(rename = "sleep")]
    Sleep,
    #[serde(rename = "fail")]
    Fail,
    #[serde(rename = "bench")]
    Bench,
    #[serde(rename = "media.analyze")]
    MediaAnalyze,
    #[serde(rename = "media.scan")]
    MediaScan,
    #[serde(rename = "media.enroll")]
    MediaEnroll,
    #[serde(rename = "media.transcode")]
    MediaTranscode,
    #[serde(rename = "competition.results")]
    CompetitionResults,
}

impl JobKind {
    pub const ALL: [JobKind; 18] = [
        JobKind::EventDispatch,
        JobKind::Deliver,
        JobKind::IncidentReport,
        JobKind::GlobalReport,
        JobKind::SlaEscalate,
        JobKind::AssignmentSweep,
        JobKind::Cleanup,
        JobKind::DetectionsRetention,
        JobKind::DetectionsReport,
        JobKind::Noop,
        JobKind::Sleep,
        JobKind::Fail,
        JobKind::Bench,
        JobKind::MediaAnalyze,
        JobKind::MediaScan,
        JobKind::MediaEnroll,
        JobKind::MediaTranscode,
        JobKind::CompetitionResults,
    ];

    /// The stored name, e.g. `event.dispatch`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::EventDispatch => "event.dispatch",
            JobKind::Deliver => "notification.deliver",
            JobKind::IncidentReport => "report.incident",
            JobKind::GlobalReport => "report.global",
            JobKind::SlaEscalate => "sla.escalate",
            JobKind::AssignmentSweep => "assignment.sweep",
            JobKind::Cleanup => "cleanup",
            JobKind::DetectionsRetention => "detections.retention",
            JobKind::DetectionsReport => "report.detections",
            JobKind::Noop => "noop",
            JobKind::Sleep => "sleep",
            JobKind::Fail => "fail",
            JobKind::Bench => "bench",
            JobKind::MediaAnalyze => "media.analyze",
            JobKind::MediaScan => "media.scan",
            JobKind::MediaEnroll => "media.enroll",
            JobKind::MediaTranscode => "media.transcode",
            JobKind::CompetitionResults => "competition.results",
        }
    }

    /// Parses a stored name; the error lists the known ones.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == raw)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                format!("{raw:?} is not a job kind (known: {})", names.join(", "))
            })
    }

    /// The task a schedule of this kind enqueues: only kinds without data can be scheduled.
    pub fn scheduled_task(self) -> Result<Task, String> {
        match self {
            JobKind::GlobalReport => Ok(Task::GlobalReport {}),
            JobKind::SlaEscalate => Ok(Task::SlaEscalate {}),
            JobKind::AssignmentSweep => Ok(Task::AssignmentSweep {}),
            JobKind::Cleanup => Ok(Task::Cleanup {}),
            JobKind::DetectionsRetention => Ok(Task::DetectionsRetention {}),
            JobKind::DetectionsReport => Ok(Task::DetectionsReport {}),
            JobKind::Noop => Ok(Task::Noop { n: 0 }),
            JobKind::MediaScan => Ok(Task::MediaScan {}),
            other => Err(format!(
                "{} jobs carry data of their own and cannot be scheduled",
                other.as_str()
            )),
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unit of background work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Task {
    /// Notifications and reports for the incident events with ids in `(after, through]`: the
    /// relay enqueues one per batch of events it reads from the outbox.
    #[serde(rename = "event.dispatch")]
    EventDispatch { after: i64, through: i64 },
    /// Attempt number `attempt` of one notification delivery (an e-mail or a webhook): every
    /// attempt is a job of its own, enqueued with the delivery (the first) or with the logged
    /// failure of the one before, at the time the backoff chose.
    #[serde(rename = "notification.deliver")]
    Deliver { delivery_id: i64, attempt: u32 },
    /// `reports/incidents/{department}/incident_{id}.json` for each routing in `items`.
    #[serde(rename = "report.incident")]
    IncidentReport { items: Vec<ReportItem> },
    /// The global report of the last complete quarter hour (and its e-mail).
    #[serde(rename = "report.global")]
    GlobalReport {},
    /// Escalates SLA breaches, once each.
    #[serde(rename = "sla.escalate")]
    SlaEscalate {},
    /// Auto-assigns waiting incidents of departments with a strategy.
    #[serde(rename = "assignment.sweep")]
    AssignmentSweep {},
    /// Deletes old finished jobs, run history, expired sessions and keys.
    #[serde(rename = "cleanup")]
    Cleanup {},
    /// Deletes detections and rollups past their retention (`[detections]`).
    #[serde(rename = "detections.retention")]
    DetectionsRetention {},
    /// The detection window report of the last complete quarter hour (and its e-mail).
    #[serde(rename = "report.detections")]
    DetectionsReport {},
    /// Completes at once (tests; `jobs.test_handlers`). `n` tells jobs apart.
    #[serde(rename = "noop")]
    Noop {
        #[serde(default)]
        n: i64,
    },
    /// Waits `ms` milliseconds (tests; `jobs.test_handlers`).
    #[serde(rename = "sleep")]
    Sleep { ms: u64 },
    /// Fails permanently with `reason` (tests; `jobs.test_handlers`).
    #[serde(rename = "fail")]
    Fail { reason: String },
    /// `vigia jobs bench`'s own kind: only the bench's worker handles it, so a bench can never
    /// claim, finish or dead-letter real work.
    #[serde(rename = "bench")]
    Bench { n: u32 },
    /// Face analysis of one proctoring capture.
    #[serde(rename = "media.analyze")]
    MediaAnalyze { capture_id: i64 },
    /// Looks for captures that landed in storage under `images/` and reference photos under
    /// `reference/`.
    #[serde(rename = "media.scan")]
    MediaScan {},
    /// Checks one version of a reference photo that landed in storage and enrolls it.
    #[serde(rename = "media.enroll")]
    MediaEnroll { reference_id: i64 },
    /// FFmpeg processing of one video: an incident's attachment or a competition entry.
    #[serde(rename = "media.transcode")]
    MediaTranscode {
        #[serde(flatten)]
        video: VideoRef,
    },
    /// Freezes a competition's ranking when its voting closes and publishes it as a report
    /// (enqueued with the competition, to run at `voting_close_at`).
    #[serde(rename = "competition.results")]
    CompetitionResults { competition_id: i64 },
}

/// Which video a `media.transcode` job processes; stored as `attachment_id` or `entry_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VideoRef {
    /// A video attached to an incident.
    #[serde(rename = "attachment_id")]
    Attachment(i64),
    /// A competition entry's video.
    #[serde(rename = "entry_id")]
    Entry(i64),
}

/// One department's report of one incident, caused by the routing event `event_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportItem {
    pub incident_id: i64,
    pub department_id: i64,
    pub event_id: i64,
}

impl Task {
    pub fn kind(&self) -> JobKind {
        match self {
            Task::EventDispatch { .. } => JobKind::EventDispatch,
            Task::Deliver { .. } => JobKind::Deliver,
            Task::IncidentReport { .. } => JobKind::IncidentReport,
            Task::GlobalReport {} => JobKind::GlobalReport,
            Task::SlaEscalate {} => JobKind::SlaEscalate,
            Task::AssignmentSweep {} => JobKind::AssignmentSweep,
            Task::Cleanup {} => JobKind::Cleanup,
            Task::DetectionsRetention {} => JobKind::DetectionsRetention,
            Task::DetectionsReport {} => JobKind::DetectionsReport,
            Task::Noop { .. } => JobKind::Noop,
            Task::Sleep { .. } => JobKind::Sleep,
            Task::Fail { .. } => JobKind::Fail,
            Task::Bench { .. } => JobKind::Bench,
            Task::MediaAnalyze { .. } => JobKind::MediaAnalyze,
            Task::MediaScan {} => JobKind::MediaScan,
            Task::MediaEnroll { .. } => JobKind::MediaEnroll,
            Task::MediaTranscode { .. } => JobKind::MediaTranscode,
            Task::CompetitionResults { .. } => JobKind::CompetitionResults,
        }
    }

    /// The stored payload: the tagged JSON value.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Reads a stored job: its `kind` column wins over any `type` in the payload.
    pub fn decode(kind: &str, payload: &serde_json::Value) -> Result<Task, String> {
        let kind = JobKind::parse(kind)?;
        let mut value = match payload {
            serde_json::Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        value.insert("type".into(), kind.as_str().into());
        serde_json::from_value(serde_json::Value::Object(value))
            .map_err(|e| format!("the payload is not a {kind} job: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for kind in JobKind::ALL {
            assert_eq!(JobKind::parse(kind.as_str()), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).expect("serialize"),
                json!(kind.as_str())
            );
        }
        assert!(
            JobKind::parse("report.nobody")
                .expect_err("unknown")
                .contains("known: event.dispatch")
        );
    }

    #[test]
    fn a_task_is_stored_with_its_kind_as_the_type_tag_and_decoded_by_its_kind_column() {
        let task = Task::EventDispatch {
            after: 4,
            through: 9,
        };
        let stored = task.to_json();
        assert_eq!(
            stored,
            json!({ "type": "event.dispatch", "after": 4, "through": 9 })
        );
        assert_eq!(Task::decode("event.dispatch", &stored), Ok(task));
        // A scheduled job's payload carries metadata the task ignores.
        let scheduled = json!({ "schedule": "cleanup", "scheduled_for": 1, "trigger": "cron" });
        assert_eq!(Task::decode("cleanup", &scheduled), Ok(Task::Cleanup {}));
        let bad = Task::decode("sleep", &json!({ "ms": "soon" })).expect_err("bad payload");
        assert!(bad.contains("not a sleep job"), "{bad}");
    }

    #[test]
    fn a_transcode_job_names_an_attachment_or_an_entry_and_old_payloads_still_decode() {
        let old = json!({ "type": "media.transcode", "attachment_id": 7 });
        let task = Task::decode("media.transcode", &old).expect("decodes");
        assert_eq!(
            task,
            Task::MediaTranscode {
                video: VideoRef::Attachment(7)
            }
        );
        assert_eq!(task.to_json(), old);
        let entry = Task::MediaTranscode {
            video: VideoRef::Entry(3),
        };
        assert_eq!(
            entry.to_json(),
            json!({ "type": "media.transcode", "entry_id": 3 })
        );
        assert_eq!(Task::decode("media.transcode", &entry.to_json()), Ok(entry));
    }

    #[test]
    fn only_kinds_without_data_can_be_scheduled() {
        assert_eq!(
            JobKind::Cleanup.scheduled_task(),
            Ok(Task::Cleanup {}),
            "cleanup"
        );
        assert!(JobKind::EventDispatch.scheduled_task().is_err());
        assert!(JobKind::Bench.scheduled_task().is_err());
    }
}
