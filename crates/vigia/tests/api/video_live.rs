//! Video processing on the real-time stream: a real FFmpeg transcode of a generated clip
//! reaches the incident's watchers as `video.processing`, `video.progress` and `video.ready`
//! (no event id: they are read from the video's row, not the event log), and nobody who may
//! not see the incident receives any of it; a competition entry's processing reaches its
//! author, and only its `video.ready` reaches everyone else. On SQLite and PostgreSQL.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vigia_domain::Timestamp;
use vigia_domain::users::Role;

use crate::attachments::upload;
use crate::backend_tests;
use crate::competitions::{open_competition, submit};
use crate::helpers::TestApp;
use crate::incidents::{campus, report};
use crate::jobs::worker;
use crate::realtime::{Credential, WsClient, connect_ws};
use crate::video::clip;

/// The `video.*` messages that arrive within `wait` of the last one.
async fn video_messages(client: &mut WsClient, wait: Duration) -> Vec<Value> {
    let mut seen = Vec::new();
    while let Some(message) = client.next_within(wait).await {
        if message["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("video."))
        {
            let done = message["type"] == "video.ready" || message["type"] == "video.failed";
            seen.push(message);
            if done {
                break;
            }
        }
    }
    seen
}

backend_tests! {
    async fn a_transcode_reaches_the_incidents_watchers_as_processing_progress_ready_and_no_one_else(app: TestApp) {
        let c = campus(&app).await;
        let created = report(&app, &c.reporter, json!({
            "category_id": c.leak, "title": "Video de la fuga en el sótano",
            "description": "Grabado con el celular.", "visibility": "private",
        })).await;
        let incident = created["id"].as_i64().expect("id");
        let topic = format!("incident:{incident}");

        let mut reporter = connect_ws(&app.url, Credential::Bearer(&c.reporter.token)).await;
        reporter.subscribe(&[topic.as_str()], None).await;
        let mut staff = connect_ws(&app.url, Credential::Bearer(&c.staff_a.token)).await;
        staff.subscribe(&[format!("department:{}", c.dept_a).as_str()], None).await;
        let mut other_department = connect_ws(&app.url, Credential::Bearer(&c.staff_b.token)).await;
        other_department.subscribe(&["incidents", topic.as_str()], None).await;
        let mut stranger = connect_ws(&app.url, Credential::Bearer(&c.other.token)).await;
        stranger.subscribe(&["incidents", topic.as_str()], None).await;

        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = clip(dir.path(), "1920x1080", 8);
        let uploaded = upload(&app, &c.admin.token, incident, "fuga.mp4", "video/mp4", &bytes).await;
        assert_eq!(uploaded.status, StatusCode::CREATED, "{:?}", uploaded.body);
        let attachment = uploaded.body["id"].as_i64().expect("attachment id");
        worker(&app).drain(Timestamp::now(), 100).await.expect("drain");

        for watcher in [&mut reporter, &mut staff] {
            let messages = video_messages(watcher, Duration::from_secs(10)).await;
            let types: Vec<&str> = messages.iter().filter_map(|m| m["type"].as_str()).collect();
            assert_eq!(types.first(), Some(&"video.processing"), "{messages:?}");
            assert_eq!(types.last(), Some(&"video.ready"), "{messages:?}");
            assert!(types.contains(&"video.progress"), "progress on the way: {messages:?}");
            let progress: Vec<f64> = messages.iter().filter_map(|m| m["data"]["progress"].as_f64()).collect();
            assert!(progress.windows(2).all(|w| w[0] <= w[1]), "progress only grows: {progress:?}");
            assert!(progress.len() <= 25, "throttled, not one message per percent: {progress:?}");
            for message in &messages {
                assert_eq!(message["data"]["incident_id"], incident, "{message}");
                assert_eq!(message["data"]["attachment_id"], attachment, "{message}");
                assert!(message.get("id").is_none(), "not an event of the log: {message}");
            }
            assert_eq!(messages.last().expect("ready")["data"]["status"], "ready");
        }
        for outsider in [&mut other_department, &mut stranger] {
            let messages = video_messages(outsider, Duration::from_secs(2)).await;
            assert!(messages.is_empty(), "no access, no message: {messages:?}");
        }
    }

    async fn an_entrys_processing_reaches_its_author_and_only_its_ready_reaches_others(app: TestApp) {
        let admin = app.admin().await;
        let competition = open_competition(&app, &admin).await;
        let author = app.user(Role::Reporter).await;
        let visitor = app.user(Role::Reporter).await;
        let mut own = connect_ws(&app.url, Credential::Bearer(&author.token)).await;
        own.subscribe(&[format!("competition:{competition}").as_str()], None).await;
        let mut others = connect_ws(&app.url, Credential::Bearer(&visitor.token)).await;
        others.subscribe(&["competitions"], None).await;
        let mut elsewhere = connect_ws(&app.url, Credential::Bearer(&admin.token)).await;
        elsewhere.subscribe(&[format!("competition:{}", competition + 1).as_str(), "incidents"], None).await;

        let dir = tempfile::tempdir().expect("tempdir");
        let reply = submit(&app, &author, competition, "Mi facultad", &clip(dir.path(), "640x360", 2)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let entry = reply.body["id"].as_i64().expect("entry id");
        worker(&app).drain(Timestamp::now(), 100).await.expect("drain");

        let mine = video_messages(&mut own, Duration::from_secs(10)).await;
        let types: Vec<&str> = mine.iter().filter_map(|m| m["type"].as_str()).collect();
        assert_eq!(types.first(), Some(&"video.processing"), "{mine:?}");
        assert_eq!(types.last(), Some(&"video.ready"), "{mine:?}");
        for message in &mine {
            assert_eq!(message["data"]["competition_id"], competition, "{message}");
            assert_eq!(message["data"]["entry_id"], entry, "{message}");
        }
        let theirs = video_messages(&mut others, Duration::from_secs(10)).await;
        let types: Vec<&str> = theirs.iter().filter_map(|m| m["type"].as_str()).collect();
        assert_eq!(types, ["video.ready"], "public once ready, not before: {theirs:?}");
        let unrelated = video_messages(&mut elsewhere, Duration::from_secs(2)).await;
        assert!(unrelated.is_empty(), "another competition's topic: {unrelated:?}");
    }
}

/// Two nodes on one PostgreSQL database, neither polling: a transcode run through node A
/// reaches a client of node B, woken only by the `vigia_events` notification of the video's
/// row changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_transcode_on_one_node_reaches_a_client_of_another() {
    let Some(a) = crate::helpers::spawn_app_with(crate::helpers::Backend::Postgres, |config| {
        config.realtime.poll_interval_ms = 600_000;
    })
    .await
    else {
        return;
    };
    let b = a.spawn_peer().await;
    let c = campus(&a).await;
    let created = report(
        &a,
        &c.reporter,
        json!({
            "category_id": c.leak, "title": "Video de la fuga en el sótano",
            "description": "Grabado con el celular.", "visibility": "private",
        }),
    )
    .await;
    let incident = created["id"].as_i64().expect("id");
    let mut watcher = connect_ws(&b.url, Credential::Bearer(&c.reporter.token)).await;
    watcher
        .subscribe(&[format!("incident:{incident}").as_str()], None)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = clip(dir.path(), "1280x720", 4);
    let uploaded = upload(
        &a,
        &c.admin.token,
        incident,
        "fuga.mp4",
        "video/mp4",
        &bytes,
    )
    .await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{:?}", uploaded.body);
    worker(&a)
        .drain(Timestamp::now(), 100)
        .await
        .expect("drain");
    let messages = video_messages(&mut watcher, Duration::from_secs(10)).await;
    let types: Vec<&str> = messages.iter().filter_map(|m| m["type"].as_str()).collect();
    assert_eq!(types.first(), Some(&"video.processing"), "{messages:?}");
    assert_eq!(types.last(), Some(&"video.ready"), "{messages:?}");
}
