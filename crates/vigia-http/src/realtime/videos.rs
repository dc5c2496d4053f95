//! Video processing on the stream: `video.processing`, `video.progress`, `video.ready` and
//! `video.failed` for incident attachments (topics `incidents`, `department:<id>`,
//! `incident:<id>`, seen by whoever may see the incident) and competition entries (topics
//! `competitions`, `competition:<id>`; `video.ready` for anyone, the rest for the entry's author
//! and admins: [`vigia_domain::competitions::may_see_entry`]).
//!
//! These are not events of the log. A video's state is its row (`media_transcodes`,
//! `competition_entries`), moved by the `media.transcode` job, whose progress writes are
//! throttled (a 5 % step, at most one a second). A change of those rows wakes the hub like an
//! event does (SQLite's commit hook; PostgreSQL's `vigia_events` notification, migration 0044),
//! and the hub's video task reads the unfinished and recently finished videos
//! ([`vigia_store::transcodes::live`]), compares them with its previous read and sends what
//! changed. So every node sends what any node's worker did, nothing is added to the log per
//! percent, and a client that reconnects reads the current state over REST (messages carry no
//! `id` and are not replayed).

use std::collections::HashMap;

use serde_json::{Value, json};
use vigia_domain::Timestamp;
use vigia_store::transcodes::live::{LiveVideo, LiveVideoOf};

use super::protocol::Frame;

/// A change worth a message, rendered once for every connection.
#[derive(Debug, Clone)]
pub struct VideoMessage {
    pub video: LiveVideo,
    pub frame: Frame,
}

/// What the hub last read of each video.
#[derive(Debug, Default)]
pub struct VideoWatch {
    seen: HashMap<LiveVideoOf, (String, f64)>,
    /// False until the first read, which only records what is there.
    started: bool,
}

impl VideoWatch {
    /// Replaces what is known with `read` and returns the messages for what changed: a new
    /// status (`video.<status>`, except `queued`, which `incident.attachment_added` or the
    /// entry's upload already told), or a new progress while `processing`.
    pub fn changes(&mut self, read: Vec<LiveVideo>) -> Vec<VideoMessage> {
        let mut now = HashMap::with_capacity(read.len());
        let mut messages = Vec::new();
        for video in read {
            let before = self.seen.get(&video.of);
            let kind = match before {
                _ if !self.started => None,
                Some((status, _)) if *status != video.status => Some(video.status.as_str()),
                Some((_, progress))
                    if video.status == "processing" && *progress != video.progress =>
                {
                    Some("progress")
                }
                Some(_) => None,
                None => Some(video.status.as_str()),
            };
            now.insert(video.of, (video.status.clone(), video.progress));
            if let Some(kind) = kind.filter(|k| *k != "queued") {
                messages.push(VideoMessage {
                    frame: render(kind, &video),
                    video,
                });
            }
        }
        self.seen = now;
        self.started = true;
        messages
    }
}

fn render(kind: &str, video: &LiveVideo) -> Frame {
    let mut data = match video.of {
        LiveVideoOf::Attachment {
            incident,
            attachment,
        } => json!({"incident_id": incident, "attachment_id": attachment}),
        LiveVideoOf::Entry { competition, entry } => {
            json!({"competition_id": competition, "entry_id": entry})
        }
    };
    data["status"] = json!(video.status);
    data["progress"] = json!((video.progress * 1000.0).round() / 1000.0);
    data["reason"] = video.reason.as_ref().map_or(Value::Null, |r| json!(r));
    let text = json!({
        "type": format!("video.{kind}"),
        "ts": Timestamp::now(),
        "data": data,
    })
    .to_string();
    Frame::new(None, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigia_domain::incidents::IncidentFacts;

    fn video(status: &str, progress: f64) -> LiveVideo {
        LiveVideo {
            of: LiveVideoOf::Attachment {
                incident: 7,
                attachment: 3,
            },
            status: status.into(),
            reason: (status == "failed").then(|| "not a video".into()),
            progress,
            facts: IncidentFacts {
                department: None,
                reporter: None,
                public: true,
            },
            author: None,
        }
    }

    fn types(messages: &[VideoMessage]) -> Vec<String> {
        messages
            .iter()
            .map(|m| {
                let v: Value = serde_json::from_str(&m.frame.text).expect("json");
                v["type"].as_str().expect("type").to_owned()
            })
            .collect()
    }

    #[test]
    fn status_changes_and_progress_become_messages_and_nothing_else_does() {
        let mut watch = VideoWatch::default();
        assert!(
            watch.changes(vec![video("processing", 0.2)]).is_empty(),
            "first read: a baseline"
        );
        assert!(
            watch.changes(vec![video("processing", 0.2)]).is_empty(),
            "no change"
        );
        assert_eq!(
            types(&watch.changes(vec![video("processing", 0.4)])),
            ["video.progress"]
        );
        assert_eq!(
            types(&watch.changes(vec![video("ready", 1.0)])),
            ["video.ready"]
        );
        assert!(
            watch.changes(vec![]).is_empty(),
            "gone from the recent window"
        );
    }

    #[test]
    fn a_video_first_seen_queued_says_nothing_until_it_starts_then_fails_with_its_reason() {
        let mut watch = VideoWatch::default();
        watch.changes(vec![]);
        assert!(watch.changes(vec![video("queued", 0.0)]).is_empty());
        assert_eq!(
            types(&watch.changes(vec![video("processing", 0.0)])),
            ["video.processing"]
        );
        let failed = watch.changes(vec![video("failed", 0.3)]);
        assert_eq!(types(&failed), ["video.failed"]);
        let v: Value = serde_json::from_str(&failed[0].frame.text).expect("json");
        assert_eq!(v["data"]["reason"], "not a video");
        assert_eq!(v["data"]["incident_id"], 7);
        assert_eq!(v["data"]["attachment_id"], 3);
        assert!(v.get("id").is_none(), "not an event of the log");
    }
}
