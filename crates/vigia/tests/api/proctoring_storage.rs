//! Reference photos enrolled by landing in storage as `reference/{user}.{jpg,jpeg,png}`,
//! found by the `media.scan` job and checked by `media.enroll` with real dlib models: a good
//! photo enrolls every participant with that user id in exams not ended (and one added later),
//! a photo without a face or with two is refused with its reason on the API and the exam and
//! live pages while the reference before it stays in force, an object version is enrolled once
//! however often it is seen, and a replaced object is checked again. Local storage on SQLite
//! and PostgreSQL; S3 (moto) on both.

use image::{ImageFormat, RgbImage, imageops};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vigia_domain::Timestamp;
use vigia_store::jobs::{self, NewJob, Task};
use vigia_store::{ObjectKey, Objects};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};
use crate::incidents::{Campus, campus};
use crate::jobs::worker;
use crate::proctoring::{encode, moto, objects, photo, photo_bytes, send};
use crate::ui_console::Browser;

async fn exam(app: &TestApp, c: &Campus, code: &str, starts: Timestamp, ends: Timestamp) -> i64 {
    let reply = app
        .post(
            "/api/v1/exams",
            Some(&c.admin.token),
            json!({
                "code": code, "title": "Álgebra", "category_id": c.leak, "department_id": c.dept_a,
                "starts_at": starts.to_rfc3339(), "ends_at": ends.to_rfc3339(),
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["id"].as_i64().expect("id")
}

async fn open_exam(app: &TestApp, c: &Campus, code: &str) -> i64 {
    let now = Timestamp::now();
    exam(
        app,
        c,
        code,
        now.plus_seconds(-3600),
        now.plus_seconds(3600),
    )
    .await
}

/// Adds a participant; the body as answered.
async fn add(app: &TestApp, c: &Campus, exam: i64, user: &str) -> Value {
    let reply = app
        .post(
            &format!("/api/v1/exams/{exam}/participants"),
            Some(&c.admin.token),
            json!({ "external_id": user, "name": format!("Persona {user}") }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body
}

/// The participant as `GET /api/v1/exams/{id}/participants` shows it.
async fn shown(app: &TestApp, c: &Campus, exam: i64, user: &str) -> Value {
    let reply = app
        .get(
            &format!("/api/v1/exams/{exam}/participants"),
            Some(&c.admin.token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    reply
        .body
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["external_id"] == user)
        .cloned()
        .expect(user)
}

async fn land(store: &Objects, key: &str, bytes: Vec<u8>) {
    store
        .put(&ObjectKey::parse(key).expect("key"), bytes.into())
        .await
        .expect("put");
}

/// What the schedule does: one `media.scan` job, then the queue drained (its `media.enroll`
/// jobs included).
async fn scan_job(app: &TestApp) {
    let job = NewJob::new(&Task::MediaScan {});
    jobs::enqueue(&app.db, &job, Timestamp::now())
        .await
        .expect("enqueue");
    worker(app)
        .drain(Timestamp::now(), 100)
        .await
        .expect("drain the scan");
    worker(app)
        .drain(Timestamp::now(), 100)
        .await
        .expect("drain what it found");
}

/// Posts a capture of `bytes` for the participant and returns its analysed status and reason.
async fn capture(
    app: &TestApp,
    c: &Campus,
    exam: i64,
    participant: &Value,
    name: &str,
    bytes: Vec<u8>,
) -> (String, String) {
    let path = format!(
        "/api/v1/exams/{exam}/participants/{}/captures?name={name}",
        participant["id"]
    );
    let posted = send(app, Method::POST, &path, &c.admin.token, bytes).await;
    assert_eq!(posted.status, StatusCode::ACCEPTED, "{:?}", posted.body);
    worker(app)
        .drain(Timestamp::now(), 100)
        .await
        .expect("drain");
    let done = app
        .get(
            &format!("/api/v1/captures/{}", posted.body["id"]),
            Some(&c.admin.token),
        )
        .await;
    (
        done.body["status"].as_str().unwrap_or_default().to_owned(),
        done.body["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

fn two_faces() -> Vec<u8> {
    let mut two = RgbImage::from_pixel(1200, 1200, image::Rgb([255, 255, 255]));
    imageops::replace(&mut two, &photo("obama2.jpg"), 0, 0);
    imageops::replace(&mut two, &photo("astronaut.png"), 630, 0);
    encode(&two, ImageFormat::Png)
}

fn refused(participant: &Value) -> &str {
    participant["reference_refused"]
        .as_str()
        .unwrap_or_default()
}

backend_tests! {
    async fn a_reference_landing_in_storage_enrolls_the_user_in_every_exam_not_ended_and_a_capture_of_the_same_person_is_ok(app: TestApp) {
        let c = campus(&app).await;
        let open = open_exam(&app, &c, "RW1").await;
        let now = Timestamp::now();
        let ended = exam(&app, &c, "RW0", now.plus_seconds(-7200), now.plus_seconds(-3600)).await;
        let ana = add(&app, &c, open, "user_456").await;
        add(&app, &c, ended, "user_456").await;
        let other = add(&app, &c, open, "someone_else").await;
        assert_eq!(ana["enrolled"], false);
        // Without a reference, a capture is `reference_missing`.
        assert_eq!(capture(&app, &c, open, &other, "before.jpg", photo_bytes("obama2.jpg")).await.1, "reference_missing");

        land(&objects(&app), "reference/user_456.jpg", photo_bytes("obama.jpg")).await;
        scan_job(&app).await;
        let enrolled = shown(&app, &c, open, "user_456").await;
        assert_eq!(enrolled["enrolled"], true, "{enrolled}");
        assert_eq!(enrolled["reference_key"], "reference/user_456.jpg");
        assert_eq!(enrolled["reference"]["faces"].as_array().map(Vec::len), Some(1));
        assert_eq!(enrolled["reference_refused"], Value::Null);
        assert_eq!(shown(&app, &c, ended, "user_456").await["enrolled"], false, "an ended exam keeps what it had");
        assert_eq!(shown(&app, &c, open, "someone_else").await["enrolled"], false);
        assert_eq!(capture(&app, &c, open, &ana, "cap_1.jpg", photo_bytes("obama2.jpg")).await.0, "OK");
        assert_eq!(capture(&app, &c, open, &ana, "cap_2.jpg", photo_bytes("biden.jpg")).await.1, "face_mismatch");

        // A participant added after the photo landed is enrolled from it at once.
        let later = open_exam(&app, &c, "RW2").await;
        let added = add(&app, &c, later, "user_456").await;
        assert_eq!(added["enrolled"], true, "{added}");
        assert_eq!(added["reference_key"], "reference/user_456.jpg");
        assert_eq!(capture(&app, &c, later, &added, "cap_1.jpg", photo_bytes("obama3.jpg")).await.0, "OK");
    }

    async fn the_same_reference_object_seen_twice_or_by_racing_scans_is_enrolled_once(app: TestApp) {
        let c = campus(&app).await;
        let exam = open_exam(&app, &c, "RW3").await;
        add(&app, &c, exam, "user_456").await;
        let store = objects(&app);
        land(&store, "reference/user_456.jpg", photo_bytes("obama.jpg")).await;
        // Neither a file elsewhere nor the API's own copies are references to enroll.
        land(&store, "reference/RW3/user_456.jpg", photo_bytes("biden.jpg")).await;
        land(&store, "reference/notes.txt", b"hello".to_vec()).await;
        let (a, b) = tokio::join!(
            vigia::media_reference::scan(&app.db, &store),
            vigia::media_reference::scan(&app.db, &store)
        );
        assert_eq!(a.expect("scan") + b.expect("scan"), 1, "one object version, recorded once");
        assert_eq!(vigia::media_reference::scan(&app.db, &store).await.expect("rescan"), 0);
        assert_eq!(worker(&app).drain(Timestamp::now(), 100).await.expect("drain"), 1, "one check");
        let first = shown(&app, &c, exam, "user_456").await;
        assert_eq!(first["enrolled"], true);
        // The scan job again: nothing new is checked, the enrollment is unchanged.
        scan_job(&app).await;
        assert_eq!(vigia::media_reference::scan(&app.db, &store).await.expect("rescan"), 0);
        assert_eq!(shown(&app, &c, exam, "user_456").await, first);
    }

    async fn a_reference_in_storage_without_a_face_or_with_two_is_refused_with_its_reason_and_the_previous_one_stays(app: TestApp) {
        let c = campus(&app).await;
        let exam = open_exam(&app, &c, "RW4").await;
        let ana = add(&app, &c, exam, "user_456").await;
        let ben = add(&app, &c, exam, "ben").await;
        let store = objects(&app);
        // Never enrolled: refused, not enrolled, captures still `reference_missing`.
        land(&store, "reference/ben.png", two_faces()).await;
        scan_job(&app).await;
        let shown_ben = shown(&app, &c, exam, "ben").await;
        assert_eq!(shown_ben["enrolled"], false);
        assert!(refused(&shown_ben).starts_with("multiple_faces: 2 faces"), "{shown_ben}");
        assert_eq!(capture(&app, &c, exam, &ben, "c.jpg", photo_bytes("obama2.jpg")).await.1, "reference_missing");

        // Enrolled, then replaced by a photo without a face: refused, the first one in force.
        land(&store, "reference/user_456.jpg", photo_bytes("obama.jpg")).await;
        scan_job(&app).await;
        assert_eq!(shown(&app, &c, exam, "user_456").await["enrolled"], true);
        land(&store, "reference/user_456.jpg", photo_bytes("camera.png")).await;
        scan_job(&app).await;
        let after = shown(&app, &c, exam, "user_456").await;
        assert_eq!(after["enrolled"], true, "{after}");
        assert!(refused(&after).starts_with("no_face:"), "{after}");
        assert_eq!(capture(&app, &c, exam, &ana, "c1.jpg", photo_bytes("obama2.jpg")).await.0, "OK", "the previous reference is in force");

        // The pages show the refusal, in Spanish and in English.
        let mut browser = Browser::signed_in(&app, &c.admin).await;
        for path in [format!("/proctoring/exams/{exam}"), format!("/proctoring/exams/{exam}/live")] {
            let page = browser.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}");
            assert!(page.html.contains("Referencia rechazada: No se detecta ningún rostro en la foto"), "{path}: {}", page.html);
            assert!(page.html.contains("Referencia rechazada: Hay 2 rostros en la foto"), "{path}");
        }
        let english = app.patch("/api/v1/me", Some(&c.admin.token), json!({ "locale": "en" })).await;
        assert_eq!(english.status, StatusCode::OK);
        let page = browser.get(&format!("/proctoring/exams/{exam}")).await;
        assert!(page.html.contains("Reference refused: No face can be seen in the photo"), "{}", page.html);

        // A replacement that passes enrolls again and clears the refusal.
        land(&store, "reference/user_456.jpg", photo_bytes("biden.jpg")).await;
        scan_job(&app).await;
        let replaced = shown(&app, &c, exam, "user_456").await;
        assert_eq!(replaced["reference_refused"], Value::Null, "{replaced}");
        assert_eq!(capture(&app, &c, exam, &ana, "c2.jpg", photo_bytes("obama2.jpg")).await.1, "face_mismatch", "the new reference is in force");
        let page = browser.get(&format!("/proctoring/exams/{exam}")).await;
        assert!(!page.html.contains("No face can be seen"));
    }
}

// --- S3 (moto) ----------------------------------------------------------------------------------

async fn s3_reference_enrollment(backend: Backend) {
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
    let c = campus(&app).await;
    let exam = open_exam(&app, &c, "RWS3").await;
    let ana = add(&app, &c, exam, "user_456").await;
    let store = objects(&app);
    land(&store, "reference/user_456.jpeg", photo_bytes("obama.jpg")).await;
    scan_job(&app).await;
    assert_eq!(shown(&app, &c, exam, "user_456").await["enrolled"], true);
    assert_eq!(
        capture(&app, &c, exam, &ana, "s3_1.jpg", photo_bytes("obama2.jpg"))
            .await
            .0,
        "OK"
    );
    // The same bytes put again: the same version (ETag), not checked again.
    land(&store, "reference/user_456.jpeg", photo_bytes("obama.jpg")).await;
    assert_eq!(
        vigia::media_reference::scan(&app.db, &store)
            .await
            .expect("scan"),
        0
    );
    // A replacement with two faces: refused with its reason, the reference before it in force.
    land(&store, "reference/user_456.jpeg", two_faces()).await;
    assert_eq!(
        vigia::media_reference::scan(&app.db, &store)
            .await
            .expect("scan"),
        1
    );
    worker(&app)
        .drain(Timestamp::now(), 100)
        .await
        .expect("drain");
    let after = shown(&app, &c, exam, "user_456").await;
    assert_eq!(after["enrolled"], true);
    assert!(refused(&after).starts_with("multiple_faces:"), "{after}");
    assert_eq!(
        capture(&app, &c, exam, &ana, "s3_2.jpg", photo_bytes("obama3.jpg"))
            .await
            .0,
        "OK"
    );
    drop(moto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_sqlite_a_reference_landing_in_the_bucket_enrolls_once_and_a_bad_replacement_is_refused()
 {
    s3_reference_enrollment(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_postgres_a_reference_landing_in_the_bucket_enrolls_once_and_a_bad_replacement_is_refused()
 {
    s3_reference_enrollment(Backend::Postgres).await;
}
