//! Video attachments processed by real FFmpeg: `media.transcode` to a ≤ 720p H.264/AAC MP4
//! with faststart, a poster and a thumbnail strip; failures with their reason.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;
use vigia_domain::Timestamp;

use crate::attachments::upload;
use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestUser};
use crate::incidents::{campus, report};
use crate::jobs::worker;

pub(crate) fn clip(dir: &Path, size: &str, seconds: u32) -> Vec<u8> {
    let path = dir.join(format!("clip-{size}-{seconds}.mp4"));
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=25:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={seconds}"))
        .args(["-c:v", "mpeg4", "-c:a", "aac", "-shortest"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs (scripts/media-setup.sh installs it)");
    assert!(status.success());
    std::fs::read(&path).expect("clip")
}

async fn incident(app: &TestApp) -> (TestUser, i64) {
    let campus = campus(app).await;
    let body = serde_json::json!({
        "category_id": campus.leak, "title": "Video de la fuga", "description": "Grabado con el celular.",
        "visibility": "public",
    });
    let created = report(app, &campus.reporter, body).await;
    (campus.admin, created["id"].as_i64().expect("id"))
}

async fn upload_video(app: &TestApp, admin: &TestUser, incident: i64, bytes: &[u8]) -> i64 {
    let reply = upload(app, &admin.token, incident, "fuga.mp4", "video/mp4", bytes).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["id"].as_i64().expect("attachment id")
}

async fn processing(app: &TestApp, admin: &TestUser, incident: i64, attachment: i64) -> Value {
    let reply = app
        .get(
            &format!("/api/v1/incidents/{incident}/attachments/{attachment}/processing"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

async fn get_bytes(app: &TestApp, token: &str, path: &str) -> (StatusCode, Vec<u8>) {
    let response = app
        .client
        .get(format!("{}{path}", app.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    let status = response.status();
    (status, response.bytes().await.expect("body").to_vec())
}

fn processed_objects(app: &TestApp) -> usize {
    let dir = std::path::PathBuf::from(app.config.storage_url()).join("processed");
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    count(&dir)
}

backend_tests! {
    async fn an_uploaded_1080p_video_becomes_a_720p_faststart_mp4_with_poster_and_strip(app: TestApp) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (admin, incident) = incident(&app).await;
        let attachment = upload_video(&app, &admin, incident, &clip(dir.path(), "1920x1080", 2)).await;
        assert_eq!(processing(&app, &admin, incident, attachment).await["status"], "queued");
        worker(&app).drain(Timestamp::now(), 100).await.expect("drain");
        let done = processing(&app, &admin, incident, attachment).await;
        assert_eq!(done["status"], "ready", "{done}");
        assert_eq!(done["progress"], 1.0);
        assert_eq!(done["info"]["width"], 1920);
        assert_eq!(done["info"]["output"]["height"], 720);
        assert!((done["info"]["duration_s"].as_f64().expect("duration") - 2.0).abs() < 0.3);
        let (status, video) = get_bytes(&app, &admin.token, done["video_url"].as_str().expect("url")).await;
        assert_eq!(status, StatusCode::OK);
        let at = |tag: &[u8]| video.windows(4).position(|w| w == tag).expect("box present");
        assert!(at(b"moov") < at(b"mdat"), "faststart: the index comes first");
        let (status, poster) = get_bytes(&app, &admin.token, done["poster_url"].as_str().expect("url")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&poster[..2], &[0xFF, 0xD8], "a JPEG");
        let (status, _) = get_bytes(&app, &admin.token, done["strip_url"].as_str().expect("url")).await;
        assert_eq!(status, StatusCode::OK);
    }

    async fn a_video_that_is_really_text_fails_with_a_reason_and_writes_nothing(app: TestApp) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (admin, incident) = incident(&app).await;
        // The MP4 signature (so it is accepted as a video) followed by prose.
        let mut fake = clip(dir.path(), "320x240", 1)[..32].to_vec();
        fake.extend_from_slice("Esto no es un video, es un texto cualquiera.\n".repeat(50).as_bytes());
        let attachment = upload_video(&app, &admin, incident, &fake).await;
        worker(&app).drain(Timestamp::now(), 100).await.expect("drain");
        let done = processing(&app, &admin, incident, attachment).await;
        assert_eq!(done["status"], "failed", "{done}");
        assert!(done["reason"].as_str().unwrap_or_default().starts_with("not a video FFmpeg can read"), "{done}");
        assert_eq!(done["video_url"], Value::Null);
        assert_eq!(processed_objects(&app), 0, "nothing half-written");
    }

    async fn an_attempt_killed_mid_way_is_retried_to_completion(app: TestApp) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (admin, incident) = incident(&app).await;
        let attachment = upload_video(&app, &admin, incident, &clip(dir.path(), "640x360", 1)).await;
        // What a killed worker leaves: the row `processing` at 40 %, its job to run again.
        let video = vigia_store::jobs::VideoRef::Attachment(attachment);
        assert!(vigia_store::transcodes::start(&app.db, video).await.expect("start"), "row");
        vigia_store::transcodes::progress(&app.db, video, 0.4).await.expect("progress");
        assert_eq!(processing(&app, &admin, incident, attachment).await["status"], "processing");
        worker(&app).drain(Timestamp::now(), 100).await.expect("drain");
        assert_eq!(processing(&app, &admin, incident, attachment).await["status"], "ready");
    }
}

async fn spawn_with_media(
    backend: Backend,
    adjust: impl FnOnce(&mut vigia::config::MediaSection),
) -> Option<TestApp> {
    crate::helpers::spawn_app_with(backend, |config| adjust(&mut config.media)).await
}

async fn too_long(backend: Backend) {
    let Some(app) = spawn_with_media(backend, |m| m.max_video_secs = 1).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (admin, incident) = incident(&app).await;
    let attachment = upload_video(&app, &admin, incident, &clip(dir.path(), "320x240", 3)).await;
    worker(&app)
        .drain(Timestamp::now(), 100)
        .await
        .expect("drain");
    let done = processing(&app, &admin, incident, attachment).await;
    assert_eq!(done["status"], "failed");
    assert!(
        done["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("exceeds the limit of 1 s"),
        "{done}"
    );
    assert_eq!(processed_objects(&app), 0);
}

async fn ffmpeg_missing(backend: Backend) {
    let Some(app) =
        spawn_with_media(backend, |m| m.ffmpeg_path = "/nonexistent/ffmpeg".into()).await
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (admin, incident) = incident(&app).await;
    let attachment = upload_video(&app, &admin, incident, &clip(dir.path(), "320x240", 1)).await;
    worker(&app)
        .drain(Timestamp::now(), 100)
        .await
        .expect("drain");
    let done = processing(&app, &admin, incident, attachment).await;
    assert_eq!(done["status"], "failed");
    assert!(
        done["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("apt-get install ffmpeg"),
        "{done}"
    );
    // The rest keeps working.
    assert_eq!(app.get("/health", None).await.status, StatusCode::OK);
    assert_eq!(
        app.get(&format!("/api/v1/incidents/{incident}"), Some(&admin.token))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_video_longer_than_the_limit_fails_naming_the_limit() {
    too_long(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_video_longer_than_the_limit_fails_naming_the_limit() {
    too_long(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_without_ffmpeg_videos_fail_saying_how_to_install_it_and_the_rest_works() {
    ffmpeg_missing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_without_ffmpeg_videos_fail_saying_how_to_install_it_and_the_rest_works() {
    ffmpeg_missing(Backend::Postgres).await;
}
