//! The media pipeline's jobs: `media.analyze` (one capture against its participant's
//! reference) and `media.scan`, the reconciliation pass behind [`crate::landing`] (captures
//! that landed in storage under `images/{exam code}/{user}/{file}`, and reference photos under
//! `reference/{user}.jpg`, enrolled by `media.enroll` in [`crate::media_reference`]). They live in the binary because
//! they join `vigia-media` (analysis), `vigia-store` (rows, objects) and incident creation.

use serde_json::{Value, json};
use vigia_domain::Timestamp;
use vigia_domain::incidents::{NewIncident, RawNewIncident, Source};
use vigia_jobs::{BoxFuture, Handler, JobContext, JobError, Registry};
use vigia_media::verify::{self, AlertReason, Gates, ImageAnalysis, Verdict};
use vigia_media::{DecodeLimits, Embedding};
use vigia_store::incidents::{self as incidents, Reporter};
use vigia_store::jobs::{JobKind, Task};
use vigia_store::proctoring::{self, Capture, Exam, Outcome, Participant};
use vigia_store::{ObjectKey, Objects};

/// The job kind that lists `images/` for captures that landed in storage.
pub const SCAN: &str = "media.scan";

/// Registers `media.analyze`, `media.scan` and `media.enroll`.
pub fn register(registry: &mut Registry, objects: &Objects, rules: crate::landing::Rules) {
    registry
        .register(Analyze {
            objects: objects.clone(),
        })
        .register(Scan {
            objects: objects.clone(),
            rules,
        })
        .register(crate::media_reference::Enroll {
            objects: objects.clone(),
        });
}

/// `media.analyze`.
struct Analyze {
    objects: Objects,
}

impl Handler for Analyze {
    fn kind(&self) -> JobKind {
        JobKind::MediaAnalyze
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let Task::MediaAnalyze { capture_id } = task else {
                return Err(JobError::permanent(format!(
                    "not a media.analyze job: {task:?}"
                )));
            };
            analyze(ctx, &self.objects, capture_id).await
        })
    }
}

/// Analyses one capture; idempotent (a recorded capture is only completed: its result object
/// written and, for `ALERT_FINAL`, its incident opened).
pub async fn analyze(ctx: &JobContext, objects: &Objects, capture_id: i64) -> Result<(), JobError> {
    let capture = match proctoring::find_capture(&ctx.db, capture_id).await {
        Ok(c) => c,
        Err(vigia_store::StoreError::NotFound) => {
            return Err(JobError::permanent(format!(
                "capture {capture_id} does not exist"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let exam = proctoring::find_exam(&ctx.db, capture.exam_id).await?;
    let participant = match capture.participant_id {
        Some(p) => Some(proctoring::find_participant(&ctx.db, exam.id, p).await?),
        None => None,
    };
    let recorded = if capture.status == "queued" {
        let gates = Gates {
            threshold: exam.threshold,
            ..Gates::default()
        };
        let started = std::time::Instant::now();
        let analysis = match objects.get(&key(&capture.object_key)?).await? {
            None => Err("the file is no longer in storage".to_owned()),
            Some(bytes) => {
                let pool = vigia_media::pool::shared()?;
                pool.analyze(
                    bytes.to_vec(),
                    Some(capture.file_name.clone()),
                    DecodeLimits::default(),
                    gates,
                )
                .await?
                .map_err(|e| e.to_string())
            }
        };
        let total_ms = started.elapsed().as_secs_f64() * 1000.0;
        let reference = participant
            .as_ref()
            .and_then(|p| p.reference_embedding.as_deref())
            .and_then(|e| serde_json::from_str::<Embedding>(e).ok());
        let verdict = match &analysis {
            Err(message) => Verdict::Alert(AlertReason::ImageUnreadable {
                message: message.clone(),
            }),
            Ok(a) => verify::verify(a, reference.as_ref(), &gates),
        };
        let outside = capture.received_at < exam.starts_at || capture.received_at > exam.ends_at;
        let (reason, distance) = match &verdict {
            _ if outside => (Some("outside_window".to_owned()), None),
            Verdict::Match { distance } => (None, Some(*distance)),
            Verdict::Alert(AlertReason::FaceMismatch { distance, .. }) => {
                (Some("face_mismatch".to_owned()), Some(*distance))
            }
            Verdict::Alert(r) => (Some(r.code().to_owned()), None),
        };
        let outcome = Outcome {
            reason,
            distance,
            final_now: outside,
        };
        let result_key = result_key(&capture);
        let input = format!(
            "{}/{}",
            objects.describe().trim_end_matches('/'),
            capture.object_key
        );
        let render = |status: &str| {
            result_json(&ResultParts {
                status,
                capture: &capture,
                exam: &exam,
                participant: participant.as_ref(),
                verdict: &verdict,
                outside,
                analysis: analysis.as_ref().ok(),
                gates: &gates,
                input: &input,
                total_ms,
            })
            .to_string()
        };
        proctoring::record_outcome(
            &ctx.db,
            &capture,
            &outcome,
            exam.alerts_before_final,
            &result_key,
            render,
            Timestamp::now(),
        )
        .await?
    } else {
        capture
    };
    // Completion steps, repeated safely on a rerun.
    if let (Some(result), Some(result_key)) = (&recorded.result, &recorded.result_key) {
        objects
            .put(
                &key(result_key)?,
                bytes::Bytes::from(result.clone().into_bytes()),
            )
            .await?;
    }
    if recorded.status == "ALERT_FINAL" && recorded.incident_id.is_none() {
        open_incident(ctx, &exam, participant.as_ref(), &recorded).await?;
    }
    tracing::info!(capture_id, status = %recorded.status, reason = ?recorded.reason, "capture analysed");
    Ok(())
}

fn key(raw: &str) -> Result<ObjectKey, JobError> {
    ObjectKey::parse(raw).map_err(|e| JobError::permanent(format!("bad object key {raw}: {e:#}")))
}

/// `results/{exam}/{user}/{file}.json` for `images/{exam}/{user}/{file}`.
pub fn result_key(capture: &Capture) -> String {
    let rest = capture
        .object_key
        .strip_prefix("images/")
        .unwrap_or(&capture.object_key);
    format!("results/{rest}.json")
}

struct ResultParts<'a> {
    status: &'a str,
    capture: &'a Capture,
    exam: &'a Exam,
    participant: Option<&'a Participant>,
    verdict: &'a Verdict,
    outside: bool,
    analysis: Option<&'a ImageAnalysis>,
    gates: &'a Gates,
    input: &'a str,
    total_ms: f64,
}

/// The seed's result document (`status`, `reason`, `details`, `face` with `BoundingBox` as
/// fractions of the image, `exam_id`, `user_id`, `s3_input`) plus Vigía's fields.
fn result_json(p: &ResultParts<'_>) -> Value {
    let (reason_code, reason, details) = match p.verdict {
        _ if p.outside => (
            Some("outside_window".to_owned()),
            Some("Capture outside the exam window".to_owned()),
            vec![
                json!({"reason": "outside_window", "received_at": Timestamp::from_millis(p.capture.received_at).to_rfc3339()}),
            ],
        ),
        Verdict::Match { .. } => (None, None, vec![]),
        Verdict::Alert(r) => (
            Some(r.code().to_owned()),
            Some(r.message()),
            vec![serde_json::to_value(r).unwrap_or(Value::Null)],
        ),
    };
    let faces: Vec<Value> = p
        .analysis
        .map(|a| {
            a.faces
                .iter()
                .map(|f| json!({"bounding_box": f.bounding_box, "sharpness": f.sharpness}))
                .collect()
        })
        .unwrap_or_default();
    let face = p.analysis.and_then(|a| {
        a.faces.first().map(|f| {
            let (w, h) = (f64::from(a.width.max(1)), f64::from(a.height.max(1)));
            let b = f.bounding_box;
            json!({
                "BoundingBox": {
                    "Width": b.width as f64 / w, "Height": b.height as f64 / h,
                    "Left": b.left as f64 / w, "Top": b.top as f64 / h,
                },
                // dlib's HOG detector gives no calibrated confidence.
                "Confidence": Value::Null,
            })
        })
    });
    let distance = match p.verdict {
        Verdict::Match { distance } => Some(*distance),
        Verdict::Alert(AlertReason::FaceMismatch { distance, .. }) => Some(*distance),
        _ => None,
    };
    json!({
        "status": p.status,
        "reason": reason,
        "reason_code": reason_code,
        "details": details,
        "face": face,
        "exam_id": p.exam.code,
        "user_id": p.capture.external_id,
        "s3_input": p.input,
        "capture_id": p.capture.id,
        "participant_id": p.participant.map(|x| x.id),
        "reference": p.participant.and_then(|x| x.reference_key.clone()),
        "distance": distance,
        "threshold": p.gates.threshold,
        "min_face_px": p.gates.min_face_px,
        "faces": faces,
        // The upright image's size: `faces[].bounding_box` is in its pixels.
        "image": p.analysis.map(|a| json!({"width": a.width, "height": a.height})),
        "model": p.analysis.map(|a| a.model.clone()),
        "timings_ms": {
            "detect": p.analysis.map(|a| a.detect_ms),
            "embed": p.analysis.map(|a| a.embed_ms),
            "total": p.total_ms,
        },
        "analyzed_at": Timestamp::now().to_rfc3339(),
    })
}

/// Opens (or reuses) the participant's incident for an `ALERT_FINAL` and links the capture.
async fn open_incident(
    ctx: &JobContext,
    exam: &Exam,
    participant: Option<&Participant>,
    capture: &Capture,
) -> Result<(), JobError> {
    if let Some(existing) = match participant {
        Some(p) => proctoring::participant_incident(&ctx.db, p.id).await?,
        None => None,
    } {
        proctoring::link_incident(&ctx.db, capture, existing).await?;
        return Ok(());
    }
    let who = participant.map_or_else(
        || capture.external_id.clone(),
        |p| format!("{} ({})", p.name, p.external_id),
    );
    let title = format!(
        "Proctoring: {} in exam {}",
        capture.reason.as_deref().unwrap_or("alert"),
        exam.code
    );
    let description = format!(
        "ALERT_FINAL for {who} in exam {} \"{}\": {}. Capture {} ({}); result at {}.",
        exam.code,
        exam.title,
        capture.reason.as_deref().unwrap_or("alert"),
        capture.id,
        capture.object_key,
        capture.result_key.as_deref().unwrap_or("-"),
    );
    let raw = RawNewIncident {
        title: &title.chars().take(150).collect::<String>(),
        description: &description,
        category_id: Some(exam.category_id),
        urgency: Some("high"),
        department_id: exam.department_id,
        zone_id: None,
        location_text: None,
        point: None,
        visibility: Some("private"),
    };
    let new = NewIncident::parse(&raw, Source::Media).map_err(|errors| {
        JobError::permanent(format!("cannot describe the incident: {errors:?}"))
    })?;
    let reporter = Reporter {
        user: None,
        label: "system:media".into(),
    };
    let incident = incidents::create(&ctx.db, &new, &reporter, None, Timestamp::now()).await?;
    proctoring::link_incident(&ctx.db, capture, incident.id.0).await?;
    Ok(())
}

/// `media.scan`, the reconciliation pass: lists `images/` and `reference/` whole and records
/// what is not recorded yet — what the watcher or the S3 lister ([`crate::landing`]) missed:
/// events lost, files landed while no node ran, S3 keys that sort before the lister's cursor,
/// replaced reference photos. Known keys are read from the database once per page of 1,000.
/// Objects of unknown exams are skipped (logged); of unknown users in a known exam, recorded
/// and analysed as `reference_missing`.
struct Scan {
    objects: Objects,
    rules: crate::landing::Rules,
}

impl Handler for Scan {
    fn kind(&self) -> JobKind {
        JobKind::MediaScan
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, _task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let added = scan_with(&ctx.db, &self.objects, &self.rules).await?;
            if added > 0 {
                tracing::info!(
                    added,
                    "captures found in storage by the reconciliation pass"
                );
            }
            let references =
                crate::media_reference::scan_with(&ctx.db, &self.objects, &self.rules).await?;
            if references > 0 {
                tracing::info!(
                    references,
                    "reference photos found in storage by the reconciliation pass"
                );
            }
            Ok(())
        })
    }
}

/// The whole reconciliation pass (captures, then reference photos); how many were recorded.
pub async fn reconcile(
    db: &vigia_store::Db,
    objects: &Objects,
    rules: &crate::landing::Rules,
) -> anyhow::Result<usize> {
    Ok(scan_with(db, objects, rules).await?
        + crate::media_reference::scan_with(db, objects, rules).await?)
}

/// One pass over `images/` with the default landing rules; returns how many new captures were
/// recorded.
pub async fn scan(db: &vigia_store::Db, objects: &Objects) -> anyhow::Result<usize> {
    scan_with(db, objects, &crate::landing::Rules::default()).await
}

/// One pass over `images/`; returns how many new captures were recorded. In a local directory
/// a file still being written (not ending like a whole image yet, and younger than
/// `rules.incomplete_wait`) is left for later.
pub async fn scan_with(
    db: &vigia_store::Db,
    objects: &Objects,
    rules: &crate::landing::Rules,
) -> anyhow::Result<usize> {
    let listed = objects.list_versions("images/").await?;
    let mut exams = crate::landing::Exams::default();
    let mut added = 0;
    for page in listed.chunks(1000) {
        let keys: Vec<&str> = page
            .iter()
            .map(|l| l.key.as_str())
            .filter(|k| crate::landing::capture_parts(k).is_some())
            .collect();
        let known = proctoring::landing::known_capture_keys(db, &keys).await?;
        for listed in page {
            let key = listed.key.as_str();
            if known.contains(key) || !landed_whole(objects, listed, rules).await {
                continue;
            }
            if crate::landing::record_capture(db, &mut exams, key)
                .await?
                .is_new()
            {
                added += 1;
            }
        }
    }
    Ok(added)
}

/// Whether a listed object is complete enough to record: always on S3 (an object appears
/// whole); in a local directory, unless it does not end like a whole image yet and was written
/// less than `rules.incomplete_wait` ago (then it is left for the watcher or a later pass).
pub(crate) async fn landed_whole(
    objects: &Objects,
    listed: &vigia_store::objects::Listed,
    rules: &crate::landing::Rules,
) -> bool {
    let Some(path) = objects.local_path(&listed.key) else {
        return true;
    };
    let age = Timestamp::now().millis().saturating_sub(listed.modified_ms);
    if std::time::Duration::from_millis(u64::try_from(age).unwrap_or(0)) >= rules.incomplete_wait {
        return true;
    }
    let ends = tokio::task::spawn_blocking(move || crate::landing::watch::file_ends(&path)).await;
    !matches!(ends, Ok(Ok(Some(vigia_media::whole::Whole::No))))
}

/// Says at startup what the media pipeline lacks; the rest of Vigía works either way (face
/// analysis fails its jobs with the same message, video processing is refused).
pub async fn check_prerequisites() {
    let models = vigia_media::ModelPaths::in_dir(&vigia_media::ModelPaths::default_dir());
    if let Err(error) = models.check() {
        tracing::warn!("face analysis unavailable: {error:#}");
    }
    if let Err(error) = vigia_media::ffmpeg::Tools::detect("ffmpeg", "ffprobe").await {
        tracing::warn!("video processing unavailable: {error}");
    }
}
