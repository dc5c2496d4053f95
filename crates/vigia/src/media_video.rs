//! `media.transcode`: a video attachment → `processed/attachments/{incident}/{attachment}/`
//! (a competition entry → `processed/competitions/{competition}/{entry}/`)
//! `video.mp4` (H.264/AAC, ≤ 720p, faststart), `poster.jpg`, `strip.jpg`, with ffprobe's
//! metadata, progress and a reason when it fails. Work happens in a private temporary
//! directory; objects are stored only once all three files exist, and the row turns `ready`
//! only after they are stored. A killed attempt leaves its row `processing` and is retried
//! when its lease expires.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use vigia_domain::ids::{AttachmentId, IncidentId};
use vigia_jobs::{BoxFuture, Handler, JobContext, JobError};
use vigia_media::ffmpeg::{Tools, VideoError};
use vigia_store::competitions;
use vigia_store::incidents::attachments;
use vigia_store::jobs::{JobKind, Task, VideoRef};
use vigia_store::transcodes;
use vigia_store::{ObjectKey, Objects};

/// `[media]`'s video settings.
#[derive(Debug, Clone)]
pub struct VideoLimits {
    /// Longer videos fail with a reason.
    pub max_duration_secs: u64,
    /// One FFmpeg run may take this long.
    pub timeout: Duration,
    pub ffmpeg: String,
    pub ffprobe: String,
}

pub struct Transcode {
    pub objects: Objects,
    pub limits: VideoLimits,
}

impl Handler for Transcode {
    fn kind(&self) -> JobKind {
        JobKind::MediaTranscode
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let Task::MediaTranscode { video } = task else {
                return Err(JobError::permanent(format!(
                    "not a media.transcode job: {task:?}"
                )));
            };
            if !transcodes::start(&ctx.db, video).await? {
                return Ok(()); // ready or failed already
            }
            let (kind, id) = match video {
                VideoRef::Attachment(id) => ("attachment", id),
                VideoRef::Entry(id) => ("entry", id),
            };
            // Private to this process and attempt (nodes may share a machine and a job id).
            let work = std::env::temp_dir().join(format!(
                "vigia-transcode-{}-{kind}-{id}-{}-{}",
                std::process::id(),
                ctx.job_id.0,
                ctx.attempt
            ));
            let result = self.process(ctx, video, &work).await;
            let _ = tokio::fs::remove_dir_all(&work).await;
            match result {
                Ok(()) => Ok(()),
                Err(Failure::Final(reason, info)) => {
                    tracing::warn!(?video, %reason, "video processing failed");
                    transcodes::failed(&ctx.db, video, &reason, info.as_deref()).await?;
                    Ok(())
                }
                Err(Failure::Again(reason)) if ctx.attempt < ctx.max_attempts => {
                    Err(JobError::retry(reason))
                }
                Err(Failure::Again(reason)) => {
                    transcodes::failed(&ctx.db, video, &reason, None).await?;
                    Err(JobError::permanent(reason))
                }
            }
        })
    }
}

enum Failure {
    /// The input is the problem: retrying cannot help.
    Final(String, Option<String>),
    /// The machine was: try again.
    Again(String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Again(format!("{e:#}"))
    }
}

impl From<vigia_store::StoreError> for Failure {
    fn from(e: vigia_store::StoreError) -> Self {
        Failure::Again(format!("{e:#}"))
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Again(format!("{e}"))
    }
}

fn classify(error: VideoError, info: Option<String>) -> Failure {
    match error {
        VideoError::Missing { .. }
        | VideoError::NotAVideo(_)
        | VideoError::TooLong { .. }
        | VideoError::Failed(_) => Failure::Final(error.to_string(), info),
        VideoError::Timeout { .. } | VideoError::Io(_) => Failure::Again(error.to_string()),
    }
}

impl Transcode {
    /// The uploaded object and where the processed files go.
    async fn locate(
        &self,
        ctx: &JobContext,
        video: VideoRef,
    ) -> Result<(ObjectKey, String), Failure> {
        Ok(match video {
            VideoRef::Attachment(id) => {
                let row = transcodes::find(&ctx.db, id).await?;
                let incident = row.incident_id;
                let attachment =
                    attachments::find(&ctx.db, IncidentId(incident), AttachmentId(id)).await?;
                (
                    attachment.object_key,
                    format!("processed/attachments/{incident}/{id}"),
                )
            }
            VideoRef::Entry(id) => {
                let entry = competitions::entries::find(&ctx.db, id).await?;
                (
                    ObjectKey::parse(&entry.object_key).map_err(Failure::from)?,
                    format!("processed/competitions/{}/{id}", entry.competition_id),
                )
            }
        })
    }

    async fn process(&self, ctx: &JobContext, video: VideoRef, work: &Path) -> Result<(), Failure> {
        let tools = Tools::detect(&self.limits.ffmpeg, &self.limits.ffprobe)
            .await
            .map_err(|e| classify(e, None))?;
        let (input_key, base) = self.locate(ctx, video).await?;
        let Some(bytes) = self.objects.get(&input_key).await? else {
            return Err(Failure::Final(
                "the uploaded file is no longer in storage".into(),
                None,
            ));
        };
        tokio::fs::create_dir_all(work.join("out")).await?;
        let input = work.join("input");
        tokio::fs::write(&input, &bytes).await?;
        drop(bytes);
        let info = tools
            .probe(&input, self.limits.timeout)
            .await
            .map_err(|e| classify(e, None))?;
        let info_json = serde_json::to_string(&info).ok();
        if info.duration_s > self.limits.max_duration_secs as f64 {
            let error = VideoError::TooLong {
                duration_s: info.duration_s,
                limit_s: self.limits.max_duration_secs,
            };
            return Err(classify(error, info_json));
        }
        // Progress: FFmpeg's reports go through a watch channel; a task stores the latest in
        // steps of 5 % at most once a second. The row is what the REST API answers and what
        // the real-time hub reads for `video.progress` (`vigia_http::realtime::videos`), so
        // this throttle is the stream's too.
        let (report, mut latest) = tokio::sync::watch::channel(0.0f64);
        let db = ctx.db.clone();
        let writer = tokio::spawn(async move {
            let mut last = -1.0;
            while latest.changed().await.is_ok() {
                let p = *latest.borrow_and_update();
                if p - last >= 0.05 {
                    last = p;
                    let _ = transcodes::progress(&db, video, p).await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let done = tools
            .transcode(&input, &info, &work.join("out"), self.limits.timeout, |p| {
                let _ = report.send(p);
            })
            .await;
        drop(report);
        let _ = writer.await;
        let done = done.map_err(|e| classify(e, info_json.clone()))?;
        let mut keys = Vec::new();
        for (path, name) in [
            (&done.video, "video.mp4"),
            (&done.poster, "poster.jpg"),
            (&done.strip, "strip.jpg"),
        ] {
            let key = ObjectKey::parse(&format!("{base}/{name}")).map_err(Failure::from)?;
            let bytes = tokio::fs::read(path).await?;
            self.objects.put(&key, bytes.into()).await?;
            keys.push(key);
        }
        let mut info_value = serde_json::to_value(&info).unwrap_or(Value::Null);
        info_value["output"] = serde_json::json!({"width": done.width, "height": done.height, "codec": "h264", "audio": "aac"});
        transcodes::ready(
            &ctx.db,
            video,
            &info_value.to_string(),
            [keys[0].as_str(), keys[1].as_str(), keys[2].as_str()],
        )
        .await?;
        Ok(())
    }
}
