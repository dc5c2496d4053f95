//! Video competitions end to end, with real FFmpeg: entries transcoded by `media.transcode`,
//! the public board of ready entries, one entry and one vote per person, the windows, the
//! ranking's tie rule, and the results frozen into a report when voting closes.

use reqwest::StatusCode;
use serde_json::{Value, json};
use vigia_domain::Timestamp;
use vigia_domain::users::Role;

use crate::backend_tests;
use crate::helpers::{Reply, TestApp, TestUser};
use crate::jobs::worker;
use crate::video::clip;

const BOUNDARY: &str = "vigia-competition-boundary";

fn at(offset_secs: i64) -> String {
    Timestamp::now().plus_seconds(offset_secs).to_rfc3339()
}

/// Opens a competition whose submissions and voting are open now for an hour.
pub(crate) async fn open_competition(app: &TestApp, admin: &TestUser) -> i64 {
    let reply = app
        .post(
            "/api/v1/competitions",
            Some(&admin.token),
            json!({
                "title": "Mejor video del campus", "description": "Un minuto sobre tu facultad.",
                "submissions_open_at": at(-60), "submissions_close_at": at(3600),
                "voting_open_at": at(-60), "voting_close_at": at(7200),
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["phase"], "voting");
    reply.body["id"].as_i64().expect("id")
}

pub(crate) async fn submit(
    app: &TestApp,
    who: &TestUser,
    competition: i64,
    title: &str,
    bytes: &[u8],
) -> Reply {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n{title}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"entry.mp4\"\r\n\
         Content-Type: video/mp4\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let response = app
        .client
        .post(format!(
            "{}/api/v1/competitions/{competition}/entries",
            app.url
        ))
        .bearer_auth(&who.token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .expect("sent");
    TestApp::reply(response).await
}

/// A participant's entry, transcoded and ready.
async fn ready_entry(app: &TestApp, competition: i64, title: &str) -> i64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let participant = app.user(Role::Reporter).await;
    let reply = submit(
        app,
        &participant,
        competition,
        title,
        &clip(dir.path(), "320x240", 1),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let id = reply.body["id"].as_i64().expect("entry id");
    worker(app)
        .drain(Timestamp::now(), 100)
        .await
        .expect("drain");
    let entry = app
        .get(
            &format!("/api/v1/competitions/{competition}/entries/{id}"),
            None,
        )
        .await;
    assert_eq!(entry.body["status"], "ready", "{:?}", entry.body);
    id
}

async fn board(app: &TestApp, competition: i64, who: Option<&TestUser>) -> Value {
    let reply = app
        .get(
            &format!("/api/v1/competitions/{competition}/board"),
            who.map(|w| w.token.as_str()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

/// `(entry id, votes)` in board order.
async fn ranking(app: &TestApp, competition: i64) -> Vec<(i64, i64)> {
    board(app, competition, None).await["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["entry"]["id"].as_i64().expect("id"),
                e["entry"]["votes"].as_i64().expect("votes"),
            )
        })
        .collect()
}

async fn vote(app: &TestApp, who: &TestUser, competition: i64, entry: i64) -> Reply {
    app.post(
        &format!("/api/v1/competitions/{competition}/votes"),
        Some(&who.token),
        json!({ "entry_id": entry }),
    )
    .await
}

async fn withdraw(app: &TestApp, who: &TestUser, competition: i64) -> Reply {
    app.delete(
        &format!("/api/v1/competitions/{competition}/votes"),
        Some(&who.token),
    )
    .await
}

backend_tests! {
    async fn an_entry_is_transcoded_and_appears_on_the_public_board_with_its_video_and_poster(app: TestApp) {
        let admin = app.admin().await;
        let competition = open_competition(&app, &admin).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let participant = app.user(Role::Reporter).await;
        let reply = submit(&app, &participant, competition, "Mi facultad", &clip(dir.path(), "640x360", 1)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        assert_eq!(reply.body["status"], "queued");
        let entry = reply.body["id"].as_i64().expect("id");
        // Not public while it is processed; its author sees its status.
        assert!(board(&app, competition, None).await["entries"].as_array().expect("entries").is_empty());
        assert_eq!(app.get(&format!("/api/v1/competitions/{competition}/entries/{entry}"), None).await.status, StatusCode::NOT_FOUND);
        let mine = app.get(&format!("/api/v1/competitions/{competition}/entries/mine"), Some(&participant.token)).await;
        assert_eq!(mine.body["status"], "queued", "{:?}", mine.body);
        worker(&app).drain(Timestamp::now(), 100).await.expect("drain");
        let shown = board(&app, competition, None).await;
        let item = &shown["entries"][0];
        assert_eq!(item["place"], 1);
        assert_eq!(item["entry"]["title"], "Mi facultad");
        assert_eq!(item["entry"]["author"], "Test User");
        assert_eq!(item["entry"]["info"]["output"]["height"], 360);
        // The processed files are public: no token.
        let video = app.client.get(format!("{}{}", app.url, item["entry"]["video_url"].as_str().expect("url")))
            .send().await.expect("sent");
        assert_eq!(video.status(), StatusCode::OK);
        assert_eq!(video.headers()["content-type"], "video/mp4");
        let bytes = video.bytes().await.expect("body");
        let at = |tag: &[u8]| bytes.windows(4).position(|w| w == tag).expect("box present");
        assert!(at(b"moov") < at(b"mdat"), "faststart");
        let poster = app.client.get(format!("{}{}", app.url, item["entry"]["poster_url"].as_str().expect("url")))
            .send().await.expect("sent");
        assert_eq!(poster.status(), StatusCode::OK);
        assert_eq!(&poster.bytes().await.expect("poster")[..2], &[0xFF, 0xD8]);
    }

    async fn a_second_entry_and_a_non_video_are_refused_and_change_nothing(app: TestApp) {
        let admin = app.admin().await;
        let competition = open_competition(&app, &admin).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let participant = app.user(Role::Reporter).await;
        let video = clip(dir.path(), "320x240", 1);
        assert_eq!(submit(&app, &participant, competition, "Primera", &video).await.status, StatusCode::CREATED);
        let other = app.user(Role::Reporter).await;
        let before = app.snapshot().await;
        let again = submit(&app, &participant, competition, "Segunda", &video).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
        assert!(again.is_problem());
        assert!(again.body["detail"].as_str().unwrap_or_default().contains("already have an entry"));
        // A PNG is not a video: 422 naming the file, nothing stored.
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde";
        let refused = submit(&app, &other, competition, "Foto", png).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", refused.body);
        assert_eq!(refused.error_field(), Some("file"));
        // No title: 422 naming it.
        let untitled = submit(&app, &other, competition, "   ", &video).await;
        assert_eq!(untitled.error_field(), Some("title"), "{:?}", untitled.body);
        assert_eq!(app.snapshot().await, before);
    }

    async fn a_text_file_posing_as_a_video_fails_with_its_reason_and_stays_off_the_board(app: TestApp) {
        let admin = app.admin().await;
        let competition = open_competition(&app, &admin).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let participant = app.user(Role::Reporter).await;
        let mut fake = clip(dir.path(), "320x240", 1)[..32].to_vec();
        fake.extend_from_slice("Esto no es un video.\n".repeat(50).as_bytes());
        let reply = submit(&app, &participant, competition, "Falso", &fake).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        worker(&app).drain(Timestamp::now(), 100).await.expect("drain");
        let mine = app.get(&format!("/api/v1/competitions/{competition}/entries/mine"), Some(&participant.token)).await;
        assert_eq!(mine.body["status"], "failed", "{:?}", mine.body);
        assert!(mine.body["reason"].as_str().unwrap_or_default().starts_with("not a video FFmpeg can read"));
        assert_eq!(mine.body["video_url"], Value::Null);
        assert!(board(&app, competition, None).await["entries"].as_array().expect("entries").is_empty());
    }

    async fn one_vote_per_person_withdrawable_and_equal_votes_rank_by_the_earliest_vote(app: TestApp) {
        let admin = app.admin().await;
        let competition = open_competition(&app, &admin).await;
        let a = ready_entry(&app, competition, "A").await;
        let b = ready_entry(&app, competition, "B").await;
        let (first, second) = (app.user(Role::Reporter).await, app.user(Role::Reporter).await);
        let cast = vote(&app, &first, competition, b).await;
        assert_eq!(cast.status, StatusCode::CREATED, "{:?}", cast.body);
        assert_eq!(cast.body["votes"], 1);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(vote(&app, &second, competition, a).await.status, StatusCode::CREATED);
        // 1–1: B's vote came first.
        assert_eq!(ranking(&app, competition).await, [(b, 1), (a, 1)]);
        assert_eq!(board(&app, competition, Some(&first)).await["my_vote"], b);
        // One vote per person and competition, for any entry.
        let before = app.snapshot().await;
        let twice = vote(&app, &first, competition, a).await;
        assert_eq!(twice.status, StatusCode::CONFLICT, "{:?}", twice.body);
        assert_eq!(app.snapshot().await, before);
        // Withdrawn: idempotent.
        let back = withdraw(&app, &first, competition).await;
        assert_eq!(back.status, StatusCode::OK);
        assert_eq!(back.body, json!({ "entry_id": b, "votes": 0, "voted": false }));
        let again = withdraw(&app, &first, competition).await;
        assert_eq!(again.body, json!({ "entry_id": null, "votes": 0, "voted": false }));
        assert_eq!(ranking(&app, competition).await, [(a, 1), (b, 0)]);
        // Voting again for B: 1–1, and now A's vote is the earliest.
        assert_eq!(vote(&app, &first, competition, b).await.status, StatusCode::CREATED);
        assert_eq!(ranking(&app, competition).await, [(a, 1), (b, 1)]);
        // An entry of no competition of ours: 422 naming it.
        assert_eq!(vote(&app, &admin, competition, 999_999).await.error_field(), Some("entry_id"));
        // People only; signed out: 401.
        assert_eq!(app.post(&format!("/api/v1/competitions/{competition}/votes"), None, json!({"entry_id": a})).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn votes_before_the_window_get_422_and_after_it_409(app: TestApp) {
        let admin = app.admin().await;
        let reply = app.post("/api/v1/competitions", Some(&admin.token), json!({
            "title": "Más tarde", "submissions_open_at": at(-60), "submissions_close_at": at(3600),
            "voting_open_at": at(1800), "voting_close_at": at(7200),
        })).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let competition = reply.body["id"].as_i64().expect("id");
        let entry = ready_entry(&app, competition, "Temprana").await;
        let voter = app.user(Role::Reporter).await;
        let early = vote(&app, &voter, competition, entry).await;
        assert_eq!(early.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", early.body);
        assert_eq!(early.error_field(), Some("window"));
        // The window passes.
        let past = Timestamp::now().plus_seconds(-10).millis();
        app.exec("UPDATE competitions SET voting_open_at = $1 - 1000, submissions_close_at = $1, voting_close_at = $1 WHERE id = $2", &[past, competition]).await;
        let late = vote(&app, &voter, competition, entry).await;
        assert_eq!(late.status, StatusCode::CONFLICT, "{:?}", late.body);
        assert!(late.body["detail"].as_str().unwrap_or_default().contains("voting closed"));
        assert_eq!(withdraw(&app, &voter, competition).await.status, StatusCode::CONFLICT);
        let dir = tempfile::tempdir().expect("tempdir");
        let latecomer = app.user(Role::Reporter).await;
        let entry = submit(&app, &latecomer, competition, "Tarde", &clip(dir.path(), "320x240", 1)).await;
        assert_eq!(entry.status, StatusCode::CONFLICT, "{:?}", entry.body);
    }

    async fn a_competition_with_windows_out_of_order_is_refused_naming_each_field(app: TestApp) {
        let admin = app.admin().await;
        let reporter = app.user(Role::Reporter).await;
        let before = app.snapshot().await;
        let reply = app.post("/api/v1/competitions", Some(&admin.token), json!({
            "title": "", "submissions_open_at": at(100), "submissions_close_at": at(50),
            "voting_open_at": at(-200), "voting_close_at": at(-100),
        })).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", reply.body);
        let fields: Vec<&str> = reply.body["errors"].as_array().expect("errors").iter()
            .map(|e| e["field"].as_str().expect("field")).collect();
        for f in ["title", "submissions_close_at", "voting_open_at", "voting_close_at"] {
            assert!(fields.contains(&f), "{f} in {fields:?}");
        }
        let denied = app.post("/api/v1/competitions", Some(&reporter.token), json!({
            "title": "X", "submissions_open_at": at(0), "submissions_close_at": at(50),
            "voting_open_at": at(0), "voting_close_at": at(100),
        })).await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert_eq!(app.snapshot().await, before);
    }

    async fn results_are_frozen_when_voting_closes_and_published_as_a_json_and_csv_report(app: TestApp) {
        let admin = app.admin().await;
        let competition = open_competition(&app, &admin).await;
        let a = ready_entry(&app, competition, "Alfa, la primera").await;
        let b = ready_entry(&app, competition, "Beta").await;
        for _ in 0..2 {
            let voter = app.user(Role::Reporter).await;
            assert_eq!(vote(&app, &voter, competition, b).await.status, StatusCode::CREATED);
        }
        let voter = app.user(Role::Reporter).await;
        assert_eq!(vote(&app, &voter, competition, a).await.status, StatusCode::CREATED);
        // Before voting closes the job waits.
        worker(&app).drain(Timestamp::now(), 100).await.expect("drain");
        assert_eq!(board(&app, competition, None).await["results"], Value::Null);
        // Voting closes (moved into the past); the job is due at the close time it was given.
        let past = Timestamp::now().plus_seconds(-1).millis();
        app.exec("UPDATE competitions SET submissions_close_at = $1, voting_close_at = $1 WHERE id = $2", &[past, competition]).await;
        worker(&app).drain(Timestamp::now().plus_seconds(7300), 100).await.expect("drain");
        let shown = board(&app, competition, None).await;
        assert_eq!(shown["competition"]["phase"], "closed");
        let results = &shown["results"];
        assert_eq!(results["votes"], 3, "{results}");
        assert_eq!(results["ranking"][0]["entry_id"], b);
        assert_eq!(results["ranking"][0]["votes"], 2);
        assert_eq!(results["ranking"][1]["entry_id"], a);
        // Frozen: no vote moves it.
        assert_eq!(withdraw(&app, &voter, competition).await.status, StatusCode::CONFLICT);
        // Listed with the reports, with its JSON and CSV.
        let listed = app.get("/api/v1/reports?kind=competition", Some(&admin.token)).await;
        assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
        let report = &listed.body["items"][0];
        assert_eq!(report["competition_id"], competition);
        assert_eq!(report["summary"]["winner"]["entry_id"], b);
        let id = report["id"].as_i64().expect("report id");
        let csv = app.client.get(format!("{}/api/v1/reports/{id}/download?format=csv", app.url))
            .bearer_auth(&admin.token).send().await.expect("sent").text().await.expect("csv");
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "place,entry_id,title,author,votes,first_vote_at");
        assert!(lines[1].starts_with(&format!("1,{b},Beta,Test User,2,")), "{csv}");
        assert!(lines[2].starts_with(&format!("2,{a},\"Alfa, la primera\",Test User,1,")), "{csv}");
        let json = app.get(&format!("/api/v1/reports/{id}/download?format=json"), Some(&admin.token)).await;
        assert_eq!(json.body["ranking"], results["ranking"]);
        // Running the job again publishes the same frozen ranking, once.
        vigia::competition_jobs::publish(
            &app.db, &vigia_store::Objects::open(&app.config.storage_url(), &Default::default()).expect("objects"), vigia_store::competitions::find(&app.db, competition).await.expect("find"), Timestamp::now(),
        ).await.expect("publish again");
        let again = app.get("/api/v1/reports?kind=competition", Some(&admin.token)).await;
        assert_eq!(again.body["items"].as_array().expect("items").len(), 1);
        assert_eq!(board(&app, competition, None).await["results"], *results);
    }
}
