//! Captures found as they land in storage (`vigia::landing`), with real dlib models and the
//! real job runtime: on a local directory the watcher takes a file renamed into place at once
//! and one written in several steps only once it is whole, without the reconciliation pass
//! (`media.scan` is disabled in these tests, so only the watcher, the S3 lister or the catch-up
//! pass at start can explain a capture found); a file that landed while no node ran is found
//! when one starts; two nodes record a capture once. On S3 (moto) the lister reads only the keys
//! after its durable cursor, a restart does not list them again, and a key that sorts before
//! the cursor is found by the reconciliation pass. SQLite and PostgreSQL.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vigia::config::Config;
use vigia::landing::lister;
use vigia_domain::Timestamp;
use vigia_store::{ObjectKey, Objects};

use crate::helpers::{Backend, TestApp, TestUser};
use crate::incidents::campus;
use crate::jobs::jobs_of;
use crate::proctoring::{moto, objects, photo_bytes, send};

/// Background work on, the reconciliation schedule off.
fn watching(config: &mut Config) {
    config.jobs.enabled = true;
    config
        .schedules
        .get_mut("media_scan")
        .expect("media_scan schedule")
        .enabled = false;
}

fn assert_no_periodic_scan(app: &TestApp) {
    assert!(app.config.jobs.enabled && app.config.landing.enabled);
    assert!(
        !app.config.schedules["media_scan"].enabled,
        "the reconciliation pass must not explain what these tests find"
    );
}

struct Exam {
    admin: TestUser,
    id: i64,
    participant: i64,
}

/// An exam in progress with `user_456` enrolled from `obama.jpg`.
async fn exam(app: &TestApp, code: &str) -> Exam {
    let c = campus(app).await;
    let now = Timestamp::now();
    let exam = app
        .post(
            "/api/v1/exams",
            Some(&c.admin.token),
            json!({
                "code": code, "title": "Física", "category_id": c.leak, "department_id": c.dept_a,
                "starts_at": now.plus_seconds(-3600).to_rfc3339(),
                "ends_at": now.plus_seconds(3600).to_rfc3339(),
            }),
        )
        .await;
    assert_eq!(exam.status, StatusCode::CREATED, "{:?}", exam.body);
    let id = exam.body["id"].as_i64().expect("id");
    let participant = app
        .post(
            &format!("/api/v1/exams/{id}/participants"),
            Some(&c.admin.token),
            json!({ "external_id": "user_456", "name": "Barack" }),
        )
        .await;
    assert_eq!(participant.status, StatusCode::CREATED);
    let path = format!(
        "/api/v1/exams/{id}/participants/{}/reference",
        participant.body["id"]
    );
    let enrolled = send(
        app,
        Method::PUT,
        &path,
        &c.admin.token,
        photo_bytes("obama.jpg"),
    )
    .await;
    assert_eq!(enrolled.status, StatusCode::OK, "{:?}", enrolled.body);
    Exam {
        admin: c.admin,
        id,
        participant: participant.body["id"].as_i64().expect("id"),
    }
}

async fn captures(app: &TestApp, exam: &Exam) -> Vec<Value> {
    let list = app
        .get(
            &format!("/api/v1/exams/{}/captures", exam.id),
            Some(&exam.admin.token),
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    list.body.as_array().cloned().unwrap_or_default()
}

fn root(app: &TestApp) -> PathBuf {
    PathBuf::from(app.config.storage_url())
}

/// Writes `bytes` under a temporary name beside `key`, then renames it into place.
fn land_by_rename(root: &Path, key: &str, bytes: &[u8]) {
    let path = root.join(key);
    let dir = path.parent().expect("parent");
    std::fs::create_dir_all(dir).expect("mkdir");
    let temporary = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).expect("name")
    ));
    std::fs::write(&temporary, bytes).expect("write");
    std::fs::rename(&temporary, &path).expect("rename");
}

/// The result document at `results/{rest}.json` of a local store, once it exists.
async fn local_result(root: &Path, rest: &str, within: Duration) -> Option<Value> {
    let path = root.join("results").join(format!("{rest}.json"));
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(bytes) = std::fs::read(&path)
            && let Ok(value) = serde_json::from_slice::<Value>(&bytes)
        {
            return Some(value);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The result document in an object store, once it exists.
async fn stored_result(store: &Objects, rest: &str, within: Duration) -> Option<Value> {
    let key = ObjectKey::parse(&format!("results/{rest}.json")).expect("key");
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(bytes)) = store.get(&key).await {
            return serde_json::from_slice(&bytes).ok();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

const WITHIN: Duration = Duration::from_secs(60);

async fn watcher_finds_a_capture_renamed_into_place(backend: Backend) {
    let Some(app) = crate::helpers::spawn_app_with(backend, watching).await else {
        return;
    };
    assert_no_periodic_scan(&app);
    let exam = exam(&app, "LW1").await;
    let landed = Instant::now();
    land_by_rename(
        &root(&app),
        "images/LW1/user_456/cap_1.jpg",
        &photo_bytes("obama2.jpg"),
    );
    let result = local_result(&root(&app), "LW1/user_456/cap_1.jpg", WITHIN)
        .await
        .expect("the watcher found the capture and its result was written");
    eprintln!(
        "result {} ms after the file landed",
        landed.elapsed().as_millis()
    );
    assert_eq!(result["status"], "OK", "{result}");
    assert_eq!(result["exam_id"], "LW1");
    let list = captures(&app, &exam).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["origin"], "storage");
    // The temporary name it was written under is never a capture.
    assert_eq!(list[0]["object_key"], "images/LW1/user_456/cap_1.jpg");
    // A capture sent to the API lands in the same directory; its request records it, not the
    // watcher.
    let path = format!(
        "/api/v1/exams/{}/participants/{}/captures?name=by_api.jpg",
        exam.id, exam.participant
    );
    let posted = send(
        &app,
        Method::POST,
        &path,
        &exam.admin.token,
        photo_bytes("obama3.jpg"),
    )
    .await;
    assert_eq!(posted.status, StatusCode::ACCEPTED, "{:?}", posted.body);
    assert_eq!(posted.body["origin"], "api");
    local_result(&root(&app), "LW1/user_456/by_api.jpg", WITHIN)
        .await
        .expect("analysed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(captures(&app, &exam).await.len(), 2);
    assert_eq!(jobs_of(&app.db, "media.analyze").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_capture_renamed_into_the_local_images_dir_is_analysed_without_the_periodic_scan()
 {
    watcher_finds_a_capture_renamed_into_place(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_capture_renamed_into_the_local_images_dir_is_analysed_without_the_periodic_scan()
 {
    watcher_finds_a_capture_renamed_into_place(Backend::Postgres).await;
}

async fn a_file_written_in_two_steps(backend: Backend) {
    use std::io::Write;
    let Some(app) = crate::helpers::spawn_app_with(backend, watching).await else {
        return;
    };
    assert_no_periodic_scan(&app);
    let exam = exam(&app, "LW2").await;
    let bytes = photo_bytes("obama2.jpg");
    assert!(
        bytes.ends_with(&[0xFF, 0xD9]),
        "a whole JPEG ends with its EOI marker"
    );
    let (first, rest) = bytes.split_at(bytes.len() / 2);
    let dir = root(&app).join("images/LW2/user_456");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("cap_2.jpg");
    // First step: half the file, written in place and closed.
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(first))
        .expect("first half");
    // Far longer than `landing.settle_ms`: the half file has settled but is not whole.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        captures(&app, &exam).await.len(),
        0,
        "half a JPEG is not taken"
    );
    // Second step: the rest, appended by another open.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(rest))
        .expect("second half");
    let result = local_result(&root(&app), "LW2/user_456/cap_2.jpg", WITHIN)
        .await
        .expect("the whole file was analysed");
    assert_eq!(result["status"], "OK", "analysed whole: {result}");
    // Give a second recording every chance to happen, then count.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let list = captures(&app, &exam).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["status"], "OK");
    assert_eq!(
        jobs_of(&app.db, "media.analyze").await.len(),
        1,
        "analysed once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_capture_written_in_place_in_two_steps_is_analysed_once_and_whole() {
    a_file_written_in_two_steps(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_capture_written_in_place_in_two_steps_is_analysed_once_and_whole() {
    a_file_written_in_two_steps(Backend::Postgres).await;
}

async fn landed_while_down(backend: Backend) {
    // A node without background work: nothing watches or lists.
    let Some(app) = crate::helpers::spawn_app(backend).await else {
        return;
    };
    let exam = exam(&app, "LW3").await;
    land_by_rename(
        &root(&app),
        "images/LW3/user_456/while_down.jpg",
        &photo_bytes("obama3.jpg"),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(captures(&app, &exam).await.len(), 0);
    // A node with landing starts on the same database and directory.
    let node = app.spawn_peer_with(watching).await;
    assert_no_periodic_scan(&node);
    let result = local_result(&root(&app), "LW3/user_456/while_down.jpg", WITHIN)
        .await
        .expect("the catch-up pass at start found it");
    assert_eq!(result["status"], "OK", "{result}");
    assert_eq!(captures(&app, &exam).await.len(), 1);
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_capture_landed_while_no_node_ran_is_picked_up_when_one_starts() {
    landed_while_down(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_capture_landed_while_no_node_ran_is_picked_up_when_one_starts() {
    landed_while_down(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_two_nodes_watching_one_directory_record_and_analyse_each_capture_once() {
    let Some(app) = crate::helpers::spawn_app_with(Backend::Postgres, watching).await else {
        return;
    };
    let peer = app.spawn_peer().await;
    assert_no_periodic_scan(&peer);
    let exam = exam(&app, "LW4").await;
    let files = ["a.jpg", "b.jpg", "c.jpg"];
    for file in files {
        land_by_rename(
            &root(&app),
            &format!("images/LW4/user_456/{file}"),
            &photo_bytes("obama2.jpg"),
        );
    }
    for file in files {
        let result = local_result(&root(&app), &format!("LW4/user_456/{file}"), WITHIN).await;
        assert_eq!(result.expect(file)["status"], "OK");
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(captures(&app, &exam).await.len(), 3);
    assert_eq!(
        jobs_of(&app.db, "media.analyze").await.len(),
        3,
        "one analysis per capture across both nodes"
    );
    drop(peer);
}

// --- S3 (moto) ----------------------------------------------------------------------------------

async fn s3_app(backend: Backend, moto_url: &str, adjust: fn(&mut Config)) -> Option<TestApp> {
    let endpoint = moto_url.to_owned();
    crate::helpers::spawn_app_with(backend, move |config| {
        config.storage.url = "s3://proctoring/vigia".into();
        config.storage.s3_endpoint = endpoint;
        config.storage.s3_region = "us-east-1".into();
        config.storage.s3_allow_http = true;
        adjust(config);
    })
    .await
}

async fn put(store: &Objects, key: &str) {
    store
        .put(
            &ObjectKey::parse(key).expect("key"),
            photo_bytes("obama2.jpg").into(),
        )
        .await
        .expect("put into the bucket");
}

async fn s3_cursor(backend: Backend) {
    let Some(moto) = moto().await else { return };
    // No background work: every pass below is the test's own.
    let Some(app) = s3_app(backend, &moto.url, |_| {}).await else {
        return;
    };
    let exam = exam(&app, "LS1").await;
    let store = objects(&app);
    put(&store, "images/LS1/mmm/c1.jpg").await;
    put(&store, "images/LS1/mmm/c2.jpg").await;
    put(&store, "images/LS1/mmm/c3.jpg").await;
    // An unknown exam's key (sorting first) is listed, not recorded.
    put(&store, "images/EXNONE/mmm/c1.jpg").await;
    // Pages of two: the pass goes on while pages are full.
    let first = lister::pass(&app.db, &store, "images/", 2)
        .await
        .expect("pass");
    assert_eq!(
        first,
        lister::Pass {
            listed: 4,
            recorded: 3
        }
    );
    assert_eq!(
        lister::pass(&app.db, &store, "images/", 2)
            .await
            .expect("pass"),
        lister::Pass::default(),
        "nothing after the cursor"
    );
    // A restart: a new store handle, the cursor read from the database.
    let restarted =
        Objects::open(&app.config.storage_url(), &app.config.s3_options()).expect("open");
    assert_eq!(
        lister::pass(&app.db, &restarted, "images/", 1000)
            .await
            .expect("pass"),
        lister::Pass::default(),
        "a restart does not list (or record) them again"
    );
    // A key after the cursor is the lister's; one before it is the reconciliation's.
    put(&store, "images/LS1/zzz/c1.jpg").await;
    put(&store, "images/LS1/aaa/c1.jpg").await;
    let (a, b) = tokio::join!(
        lister::pass(&app.db, &store, "images/", 1000),
        lister::pass(&app.db, &restarted, "images/", 1000)
    );
    let (a, b) = (a.expect("pass"), b.expect("pass"));
    assert_eq!(
        a.recorded + b.recorded,
        1,
        "racing listers record zzz once: {a:?} {b:?}"
    );
    let keys: Vec<String> = captures(&app, &exam)
        .await
        .iter()
        .filter_map(|c| c["object_key"].as_str().map(str::to_owned))
        .collect();
    assert!(
        keys.contains(&"images/LS1/zzz/c1.jpg".to_owned()),
        "{keys:?}"
    );
    assert!(
        !keys.contains(&"images/LS1/aaa/c1.jpg".to_owned()),
        "before the cursor: not listed"
    );
    assert_eq!(
        vigia::media::scan(&app.db, &store)
            .await
            .expect("reconcile"),
        1,
        "aaa"
    );
    assert_eq!(
        vigia::media::scan(&app.db, &store)
            .await
            .expect("reconcile"),
        0
    );
    assert_eq!(captures(&app, &exam).await.len(), 5);
    assert_eq!(
        jobs_of(&app.db, "media.analyze").await.len(),
        5,
        "one analysis per capture"
    );
    // Reference photos have a cursor of their own.
    put(&store, "reference/user_456.jpg").await;
    let references = lister::pass(&app.db, &store, "reference/", 1000)
        .await
        .expect("pass");
    // The API's own copy (`reference/LS1/user_456.jpg`) is listed too, but is no reference.
    assert_eq!(
        references,
        lister::Pass {
            listed: 2,
            recorded: 1
        }
    );
    assert_eq!(jobs_of(&app.db, "media.enroll").await.len(), 1);
    drop(moto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_sqlite_the_lister_reads_after_its_durable_cursor_and_keys_before_it_are_reconciled()
{
    s3_cursor(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_postgres_the_lister_reads_after_its_durable_cursor_and_keys_before_it_are_reconciled()
 {
    s3_cursor(Backend::Postgres).await;
}

async fn s3_two_nodes(backend: Backend) {
    let Some(moto) = moto().await else { return };
    let Some(app) = s3_app(backend, &moto.url, watching).await else {
        return;
    };
    let peer = app.spawn_peer().await;
    assert_no_periodic_scan(&peer);
    let exam = exam(&app, "LS2").await;
    let store = objects(&app);
    let landed = Instant::now();
    put(&store, "images/LS2/user_456/from_bucket.jpg").await;
    let result = stored_result(&store, "LS2/user_456/from_bucket.jpg", WITHIN)
        .await
        .expect("the lister found it and the result is in the bucket");
    eprintln!(
        "result {} ms after the object landed",
        landed.elapsed().as_millis()
    );
    assert_eq!(result["status"], "OK", "{result}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(captures(&app, &exam).await.len(), 1);
    assert_eq!(
        jobs_of(&app.db, "media.analyze").await.len(),
        1,
        "analysed once by two nodes"
    );
    drop(peer);
    drop(moto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_sqlite_two_nodes_listing_one_bucket_analyse_a_new_object_once() {
    s3_two_nodes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_postgres_two_nodes_listing_one_bucket_analyse_a_new_object_once() {
    s3_two_nodes(Backend::Postgres).await;
}
