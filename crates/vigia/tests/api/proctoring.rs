//! Exam proctoring end to end: exams, participants, reference enrollment with real dlib
//! models, captures by POST and by landing in storage, analysis as a job, results in storage
//! and the database, `ALERT_FINAL` opening an incident, proctor reviews. Photos are the ones
//! `scripts/media-setup.sh` fetches from PyPI (never committed).

use std::io::Cursor;

use image::{ImageFormat, RgbImage, imageops};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vigia_domain::Timestamp;
use vigia_store::{ObjectKey, Objects};

use crate::backend_tests;
use crate::helpers::{Reply, TestApp, TestUser};
use crate::incidents::campus;
use crate::jobs::worker;

pub(crate) fn photo_bytes(name: &str) -> Vec<u8> {
    let path = vigia_media::ModelPaths::default_dir()
        .join("test-images")
        .join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/media-setup.sh)", path.display()))
}

pub(crate) fn photo(name: &str) -> RgbImage {
    image::load_from_memory(&photo_bytes(name))
        .expect("decodes")
        .into_rgb8()
}

pub(crate) fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

struct Setup {
    admin: TestUser,
    exam: i64,
    participant: i64,
    category: i64,
}

async fn exam_with(app: &TestApp, code: &str, starts: Timestamp, ends: Timestamp) -> Setup {
    let campus = campus(app).await;
    let exam = app
        .post(
            "/api/v1/exams",
            Some(&campus.admin.token),
            json!({
                "code": code, "title": "Cálculo I — final", "category_id": campus.leak,
                "department_id": campus.dept_a,
                "starts_at": starts.to_rfc3339(), "ends_at": ends.to_rfc3339(),
            }),
        )
        .await;
    assert_eq!(exam.status, StatusCode::CREATED, "{:?}", exam.body);
    let exam_id = exam.body["id"].as_i64().expect("id");
    let participant = app
        .post(
            &format!("/api/v1/exams/{exam_id}/participants"),
            Some(&campus.admin.token),
            json!({ "external_id": "user_456", "name": "Barack" }),
        )
        .await;
    assert_eq!(
        participant.status,
        StatusCode::CREATED,
        "{:?}",
        participant.body
    );
    Setup {
        admin: campus.admin,
        exam: exam_id,
        participant: participant.body["id"].as_i64().expect("id"),
        category: campus.leak,
    }
}

async fn open_exam(app: &TestApp, code: &str) -> Setup {
    let now = Timestamp::now();
    exam_with(app, code, now.plus_seconds(-3600), now.plus_seconds(3600)).await
}

pub(crate) async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    bytes: Vec<u8>,
) -> Reply {
    let response = app
        .client
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("sent");
    TestApp::reply(response).await
}

async fn enroll(app: &TestApp, s: &Setup, bytes: Vec<u8>) -> Reply {
    let path = format!(
        "/api/v1/exams/{}/participants/{}/reference",
        s.exam, s.participant
    );
    send(app, Method::PUT, &path, &s.admin.token, bytes).await
}

async fn capture(app: &TestApp, s: &Setup, name: &str, bytes: Vec<u8>) -> Reply {
    let path = format!(
        "/api/v1/exams/{}/participants/{}/captures?name={name}",
        s.exam, s.participant
    );
    send(app, Method::POST, &path, &s.admin.token, bytes).await
}

/// Runs the queue until it is empty, then reads the capture.
async fn analysed(app: &TestApp, s: &Setup, id: i64) -> Value {
    worker(app)
        .drain(Timestamp::now(), 100)
        .await
        .expect("drain");
    let reply = app
        .get(&format!("/api/v1/captures/{id}"), Some(&s.admin.token))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.body
}

pub(crate) fn objects(app: &TestApp) -> Objects {
    Objects::open(&app.config.storage_url(), &app.config.s3_options()).expect("objects")
}

fn assert_refused(reply: &Reply, reason: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        reply.body
    );
    assert!(reply.is_problem());
    assert_eq!(reply.error_field(), Some("reference"));
    let message = reply.body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.starts_with(&format!("{reason}:")), "{message}");
}

backend_tests! {
    async fn a_reference_without_a_face_with_two_faces_small_or_blurry_is_refused_with_its_reason(app: TestApp) {
        let s = open_exam(&app, "EX1").await;
        let before = app.snapshot().await;
        assert_refused(&enroll(&app, &s, photo_bytes("camera.png")).await, "no_face");
        let mut two = RgbImage::from_pixel(1200, 1200, image::Rgb([255, 255, 255]));
        imageops::replace(&mut two, &photo("obama2.jpg"), 0, 0);
        imageops::replace(&mut two, &photo("astronaut.png"), 630, 0);
        assert_refused(&enroll(&app, &s, encode(&two, ImageFormat::Png)).await, "multiple_faces");
        let biden = photo("biden.jpg");
        let small = imageops::resize(&biden, biden.width() / 6, biden.height() / 6, imageops::FilterType::Triangle);
        assert_refused(&enroll(&app, &s, encode(&small, ImageFormat::Jpeg)).await, "face_too_small");
        let blurred = imageops::blur(&photo("astronaut.png"), 3.0);
        assert_refused(&enroll(&app, &s, encode(&blurred, ImageFormat::Png)).await, "face_blurry");
        assert_refused(&enroll(&app, &s, b"just some text".to_vec()).await, "image_unreadable");
        assert_eq!(app.snapshot().await, before, "a refused reference changes nothing");

        let enrolled = enroll(&app, &s, photo_bytes("obama.jpg")).await;
        assert_eq!(enrolled.status, StatusCode::OK, "{:?}", enrolled.body);
        assert_eq!(enrolled.body["enrolled"], true);
        assert_eq!(enrolled.body["reference"]["faces"].as_array().map(Vec::len), Some(1));
        let key = enrolled.body["reference_key"].as_str().expect("key");
        assert_eq!(key, "reference/EX1/user_456.jpg");
        assert!(objects(&app).get(&ObjectKey::parse(key).expect("key")).await.expect("get").is_some());
    }

    async fn the_right_person_is_ok_another_raises_alerts_and_the_third_in_a_row_opens_an_incident(app: TestApp) {
        let s = open_exam(&app, "EX2").await;
        assert_eq!(enroll(&app, &s, photo_bytes("obama.jpg")).await.status, StatusCode::OK);
        let ok = capture(&app, &s, "capture_001.jpg", photo_bytes("obama2.jpg")).await;
        assert_eq!(ok.status, StatusCode::ACCEPTED, "{:?}", ok.body);
        assert_eq!(ok.body["status"], "queued");
        let ok = analysed(&app, &s, ok.body["id"].as_i64().expect("id")).await;
        assert_eq!(ok["status"], "OK", "{ok}");
        assert!(ok["distance"].as_f64().expect("distance") < 0.6);
        assert_eq!(ok["result"]["exam_id"], "EX2");
        assert_eq!(ok["result"]["user_id"], "user_456");
        assert!(ok["result"]["face"]["BoundingBox"]["Width"].as_f64().expect("box") > 0.1);

        let mut statuses = Vec::new();
        let mut last = Value::Null;
        for n in 2..=4 {
            let reply = capture(&app, &s, &format!("capture_00{n}.jpg"), photo_bytes("biden.jpg")).await;
            last = analysed(&app, &s, reply.body["id"].as_i64().expect("id")).await;
            statuses.push(last["status"].as_str().unwrap_or_default().to_owned());
            assert_eq!(last["reason"], "face_mismatch");
        }
        assert_eq!(statuses, ["ALERT", "ALERT", "ALERT_FINAL"]);
        assert_eq!(last["result"]["reason"].as_str().map(|r| r.starts_with("Face does not match reference")), Some(true));
        assert!(last["result"]["distance"].as_f64().expect("distance") >= 0.6);
        // The result document is in storage at the seed's key, the same as in the database.
        let stored = objects(&app)
            .get(&ObjectKey::parse("results/EX2/user_456/capture_004.jpg.json").expect("key"))
            .await
            .expect("get")
            .expect("result written");
        let stored: Value = serde_json::from_slice(&stored).expect("json");
        assert_eq!(stored, last["result"]);
        // The incident: source media, the exam's category and department, linked both ways.
        let incident = last["incident_id"].as_i64().expect("an incident was opened");
        let reply = app.get(&format!("/api/v1/incidents/{incident}"), Some(&s.admin.token)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["source"], "media");
        assert_eq!(reply.body["category_id"], s.category);
        let participants = app.get(&format!("/api/v1/exams/{}/participants", s.exam), Some(&s.admin.token)).await;
        assert_eq!(participants.body[0]["incident_id"], incident);
        assert_eq!(participants.body[0]["last_status"], "ALERT_FINAL");
        // A right capture resets the run.
        let reply = capture(&app, &s, "capture_005.jpg", photo_bytes("obama3.jpg")).await;
        let back = analysed(&app, &s, reply.body["id"].as_i64().expect("id")).await;
        assert_eq!(back["status"], "OK");
    }

    async fn damaged_mislabelled_and_oversized_captures_are_alerts_with_the_reason(app: TestApp) {
        let s = open_exam(&app, "EX3").await;
        assert_eq!(enroll(&app, &s, photo_bytes("obama.jpg")).await.status, StatusCode::OK);
        let jpeg = photo_bytes("obama2.jpg");
        let cases = [
            ("truncated.jpg", jpeg[..jpeg.len() / 2].to_vec(), "end-of-image marker"),
            ("really_png.jpg", photo_bytes("astronaut.png"), "image/png but its name says .jpg"),
            ("huge.png", encode(&RgbImage::new(8000, 6250), ImageFormat::Png), "exceeds 24 MP"),
        ];
        // Three alerts in a row: the third is final.
        for ((name, bytes, says), status) in cases.into_iter().zip(["ALERT", "ALERT", "ALERT_FINAL"]) {
            let reply = capture(&app, &s, name, bytes).await;
            assert_eq!(reply.status, StatusCode::ACCEPTED, "{name}: {:?}", reply.body);
            let done = analysed(&app, &s, reply.body["id"].as_i64().expect("id")).await;
            assert_eq!(done["status"], status, "{name}");
            assert_eq!(done["reason"], "image_unreadable", "{name}");
            let detail = done["result"]["details"][0]["message"].as_str().unwrap_or_default();
            assert!(detail.contains(says), "{name}: {detail}");
        }
        // Not an image at all: refused at the door, nothing recorded.
        let before = app.snapshot().await;
        let reply = capture(&app, &s, "notes.jpg", b"hello, I am text".to_vec()).await;
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(reply.is_problem());
        assert_eq!(app.snapshot().await, before);
    }

    async fn the_same_capture_sent_twice_is_recorded_and_analysed_once(app: TestApp) {
        let s = open_exam(&app, "EX4").await;
        let first = capture(&app, &s, "same.jpg", photo_bytes("obama2.jpg")).await;
        assert_eq!(first.status, StatusCode::ACCEPTED);
        let second = capture(&app, &s, "same.jpg", photo_bytes("obama2.jpg")).await;
        assert_eq!(second.status, StatusCode::OK);
        assert_eq!(second.body["id"], first.body["id"]);
        assert_eq!(worker(&app).drain(Timestamp::now(), 100).await.expect("drain"), 1, "one analysis");
        let list = app.get(&format!("/api/v1/exams/{}/captures", s.exam), Some(&s.admin.token)).await;
        assert_eq!(list.body.as_array().map(Vec::len), Some(1));
        // Not enrolled: the capture is an alert saying so.
        assert_eq!(list.body[0]["reason"], "reference_missing");
    }

    async fn captures_landing_in_storage_are_found_once_even_by_racing_scans(app: TestApp) {
        let s = open_exam(&app, "EX5").await;
        assert_eq!(enroll(&app, &s, photo_bytes("obama.jpg")).await.status, StatusCode::OK);
        let store = objects(&app);
        for key in ["images/EX5/user_456/cap_1.jpg", "images/EX5/stranger/cap_1.jpg", "images/NOEXAM/user_456/cap_1.jpg"] {
            store.put(&ObjectKey::parse(key).expect("key"), photo_bytes("obama2.jpg").into()).await.expect("put");
        }
        let (a, b) = tokio::join!(vigia::media::scan(&app.db, &store), vigia::media::scan(&app.db, &store));
        assert_eq!(a.expect("scan") + b.expect("scan"), 2, "two captures, each recorded once");
        assert_eq!(vigia::media::scan(&app.db, &store).await.expect("rescan"), 0);
        worker(&app).drain(Timestamp::now(), 100).await.expect("drain");
        let list = app.get(&format!("/api/v1/exams/{}/captures", s.exam), Some(&s.admin.token)).await;
        let by_user = |user: &str| list.body.as_array().into_iter().flatten().find(|c| c["user_id"] == user).cloned().expect(user);
        assert_eq!(by_user("user_456")["status"], "OK");
        assert_eq!(by_user("user_456")["origin"], "storage");
        assert_eq!(by_user("stranger")["reason"], "reference_missing");
        assert!(store.get(&ObjectKey::parse("results/EX5/user_456/cap_1.jpg.json").expect("key")).await.expect("get").is_some());
    }

    async fn a_capture_outside_the_exam_window_is_final_at_once(app: TestApp) {
        let now = Timestamp::now();
        let s = exam_with(&app, "EX6", now.plus_seconds(-7200), now.plus_seconds(-3600)).await;
        assert_eq!(enroll(&app, &s, photo_bytes("obama.jpg")).await.status, StatusCode::OK);
        let reply = capture(&app, &s, "late.jpg", photo_bytes("obama2.jpg")).await;
        let done = analysed(&app, &s, reply.body["id"].as_i64().expect("id")).await;
        assert_eq!(done["status"], "ALERT_FINAL");
        assert_eq!(done["reason"], "outside_window");
        assert!(done["incident_id"].as_i64().is_some());
    }

    async fn unknown_exams_and_participants_are_404_and_bad_exams_422(app: TestApp) {
        let s = open_exam(&app, "EX7").await;
        let reply = send(&app, Method::POST, "/api/v1/exams/999/participants/1/captures", &s.admin.token, photo_bytes("obama2.jpg")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        let path = format!("/api/v1/exams/{}/participants/999/captures", s.exam);
        assert_eq!(send(&app, Method::POST, &path, &s.admin.token, photo_bytes("obama2.jpg")).await.status, StatusCode::NOT_FOUND);
        let bad = app
            .post("/api/v1/exams", Some(&s.admin.token), json!({
                "code": "bad code!", "title": "", "category_id": s.category,
                "starts_at": "tomorrow", "ends_at": "2026-01-01T00:00:00Z", "threshold": 5.0,
            }))
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<&str> = bad.body["errors"].as_array().into_iter().flatten().filter_map(|e| e["field"].as_str()).collect();
        for field in ["code", "title", "starts_at", "threshold"] {
            assert!(fields.contains(&field), "{field} in {fields:?}");
        }
        let dup = app
            .post("/api/v1/exams", Some(&s.admin.token), json!({
                "code": "EX7", "title": "again", "category_id": s.category,
                "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-02T00:00:00Z",
            }))
            .await;
        assert_eq!(dup.status, StatusCode::CONFLICT);
    }

    async fn a_proctor_reviews_alerts_only(app: TestApp) {
        let s = open_exam(&app, "EX8").await;
        assert_eq!(enroll(&app, &s, photo_bytes("obama.jpg")).await.status, StatusCode::OK);
        let ok = capture(&app, &s, "ok.jpg", photo_bytes("obama2.jpg")).await;
        let alert = capture(&app, &s, "alert.jpg", photo_bytes("biden.jpg")).await;
        worker(&app).drain(Timestamp::now(), 100).await.expect("drain");
        let review = |id: &Value, verdict: &str| {
            let path = format!("/api/v1/captures/{id}/review");
            let body = json!({ "verdict": verdict });
            let token = s.admin.token.clone();
            let app = &app;
            async move { app.post(&path, Some(&token), body).await }
        };
        let reviewed = review(&alert.body["id"], "false_positive").await;
        assert_eq!(reviewed.status, StatusCode::OK, "{:?}", reviewed.body);
        assert_eq!(reviewed.body["review"], "false_positive");
        assert_eq!(review(&ok.body["id"], "confirmed").await.status, StatusCode::CONFLICT);
        assert_eq!(review(&alert.body["id"], "maybe").await.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

// --- S3 (moto) ----------------------------------------------------------------------------------

/// moto's S3 server on a free loopback port, killed when dropped.
pub(crate) struct Moto {
    child: std::process::Child,
    pub(crate) url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VIGIA_TEST_MOTO` (set by scripts/test.sh); without it the S3 tests are skipped locally and
/// fail under `CI=true`.
pub(crate) async fn moto() -> Option<Moto> {
    let Some(binary) = std::env::var_os("VIGIA_TEST_MOTO").filter(|p| !p.is_empty()) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but VIGIA_TEST_MOTO is not set"
        );
        eprintln!("skipping: VIGIA_TEST_MOTO is not set (scripts/test.sh sets it)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let child = std::process::Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http
            .get(&moto.url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            let created = http
                .put(format!("{}/proctoring", moto.url))
                .send()
                .await
                .expect("create bucket");
            assert!(created.status().is_success());
            return Some(moto);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("moto_server did not answer within 30 s");
}

async fn s3_landing_and_results(backend: crate::helpers::Backend) {
    let Some(moto) = moto().await else { return };
    let endpoint = moto.url.clone();
    let Some(app) = crate::helpers::spawn_app_with(backend, move |config| {
        config.storage.url = "s3://proctoring/vigia".into();
        config.storage.s3_endpoint = endpoint;
        config.storage.s3_region = "us-east-1".into();
        config.storage.s3_allow_http = true;
    })
    .await
    else {
        return;
    };
    let s = open_exam(&app, "S3X").await;
    let enrolled = enroll(&app, &s, photo_bytes("obama.jpg")).await;
    assert_eq!(enrolled.status, StatusCode::OK, "{:?}", enrolled.body);
    let store = objects(&app);
    store
        .put(
            &ObjectKey::parse("images/S3X/user_456/from_bucket.jpg").expect("key"),
            photo_bytes("biden.jpg").into(),
        )
        .await
        .expect("put into the bucket");
    assert_eq!(vigia::media::scan(&app.db, &store).await.expect("scan"), 1);
    assert_eq!(
        vigia::media::scan(&app.db, &store).await.expect("rescan"),
        0
    );
    worker(&app)
        .drain(Timestamp::now(), 100)
        .await
        .expect("drain");
    let list = app
        .get(
            &format!("/api/v1/exams/{}/captures", s.exam),
            Some(&s.admin.token),
        )
        .await;
    assert_eq!(list.body[0]["status"], "ALERT");
    assert_eq!(list.body[0]["reason"], "face_mismatch");
    assert_eq!(
        list.body[0]["result"]["s3_input"]
            .as_str()
            .map(|i| i.starts_with("s3://proctoring")),
        Some(true),
        "{}",
        list.body[0]["result"]
    );
    let result = store
        .get(&ObjectKey::parse("results/S3X/user_456/from_bucket.jpg.json").expect("key"))
        .await
        .expect("get")
        .expect("result in the bucket");
    let result: Value = serde_json::from_slice(&result).expect("json");
    assert_eq!(result["status"], "ALERT");
    drop(moto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_sqlite_a_capture_landing_in_the_bucket_is_analysed_and_its_result_written_there() {
    s3_landing_and_results(crate::helpers::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_postgres_a_capture_landing_in_the_bucket_is_analysed_and_its_result_written_there() {
    s3_landing_and_results(crate::helpers::Backend::Postgres).await;
}
