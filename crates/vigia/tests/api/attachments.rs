//! Attachments end to end: upload with sniffing and thumbnails, download, list, delete, and
//! proof that refused or broken uploads leave no row, no event and no object behind.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use vigia_domain::users::Role;

use crate::backend_tests;
use crate::helpers::{Reply, TestApp, TestUser};

/// A 400×300 PNG (red over blue), made with Python's zlib; its SHA-256 is [`PNG_SHA256`].
const PNG_HEX: [&str; 18] = [
    "89504e470d0a1a0a0000000d49484452000001900000012c080200000062d57295000002fc4944415478daedd4410900",
    "00080441935c12fb632c6b280c4c827d6c4d02f042490018168061018605605800860518168061011816605800860560",
    "5880610118168061018605605800860518168061011816605800860560588061011816806101860560588061a9001816",
    "806101860560580086051816806101181660580086056058806101181680610186056058008605181680610118166058",
    "00860560588061011816806101860560588061a900181680610186056058008605181680610118166058008605605880",
    "610118168061018605605800860518168061011816605800860560588061011816806101860560588061011816806101",
    "860560580086051816806101181660580086056058806101181680610186056058008605181680610118166058008605",
    "605880610118168061018605605880610118168061018605605800860518168061011816605800860560588061011816",
    "806101860560580086051816806101181660580086056058806101181680610186056058806101181680610186057078",
    "58e90178c1b000c302302cc0b0000c0bc0b000c302302c00c3020c0bc0b0000c0b302c00c302302cc0b0000c0bc0b000",
    "c302302c00c3020c0bc0b0000c0b302c00c302302cc0b0000c0b302c0900c302302cc0b0000c0bc0b000c302302c00c3",
    "020c0bc0b0000c0b302c00c302302cc0b0000c0bc0b000c302302c00c3020c0bc0b0000c0b302c00c302302cc0b0000c",
    "0b302c1500c302302cc0b0000c0bc0b000c302302c00c3020c0bc0b0000c0b302c00c302302cc0b0000c0bc0b000c302",
    "302c00c3020c0bc0b0000c0b302c00c302302cc0b0000c0b302c1500c302302cc0b0000c0bc0b000c302302c00c3020c",
    "0bc0b0000c0b302c00c302302cc0b0000c0bc0b000c302302c00c3020c0bc0b0000c0b302c00c302302cc0b0000c0b30",
    "2c00c302302cc0b0000c0bc0b000c302302c00c3020c0bc0b0000c0b302c00c302302cc0b0000c0bc0b000c302302c00",
    "c3020c0bc0b0000c0b302c00c302302cc0b0000c0b302c00c302302cc0b0000e5ba49ca7ba790ecc510000000049454e",
    "44ae426082",
];
const PNG_SHA256: &str = "44985f18ae3e3152c1e96d7a839e4b04a785c0336d927f489ae59e6a3633149f";
const BOUNDARY: &str = "vigia-test-boundary-7d1f";

pub(crate) fn png() -> Vec<u8> {
    let hex: String = PNG_HEX.concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// An ELF header followed by padding: a Linux program, whatever it is called.
pub(crate) fn elf() -> Vec<u8> {
    let mut bytes = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
    bytes.resize(1024, 0);
    bytes
}

/// A multipart body with one `file` part: `(Content-Type header, body)`.
fn multipart(filename: &str, declared_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: {declared_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

pub(crate) async fn upload(
    app: &TestApp,
    token: &str,
    incident: i64,
    filename: &str,
    declared_type: &str,
    bytes: &[u8],
) -> Reply {
    let (content_type, body) = multipart(filename, declared_type, bytes);
    let response = app
        .client
        .post(format!(
            "{}/api/v1/incidents/{incident}/attachments",
            app.url
        ))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("upload sent");
    TestApp::reply(response).await
}

/// Status, headers and raw bytes of a GET.
async fn fetch(
    app: &TestApp,
    token: &str,
    path: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let response = app
        .client
        .get(format!("{}{path}", app.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    let (status, headers) = (response.status(), response.headers().clone());
    (
        status,
        headers,
        response.bytes().await.expect("body").to_vec(),
    )
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// An admin, a reporter and a private incident the reporter reported.
pub(crate) struct Setup {
    pub admin: TestUser,
    pub reporter: TestUser,
    pub incident: i64,
}

pub(crate) async fn setup(app: &TestApp, visibility: &str) -> Setup {
    let admin = app.admin().await;
    let department = app
        .department(&admin, &format!("Mantenimiento ({visibility})"))
        .await;
    let category = app
        .post("/api/v1/categories", Some(&admin.token), json!({ "name_es": format!("Fuga de agua ({visibility})"), "default_department_id": department }))
        .await;
    assert_eq!(category.status, StatusCode::CREATED, "{:?}", category.body);
    let reporter = app.user(Role::Reporter).await;
    let incident = app
        .post(
            "/api/v1/incidents",
            Some(&reporter.token),
            json!({
                "category_id": category.body["id"], "title": "Tubería rota en el baño del 3er piso",
                "description": "Sale agua sin parar desde la mañana.", "visibility": visibility
            }),
        )
        .await;
    assert_eq!(incident.status, StatusCode::CREATED, "{:?}", incident.body);
    Setup {
        admin,
        reporter,
        incident: incident.body["id"].as_i64().expect("incident id"),
    }
}

/// Everything a failed upload could leave behind: row counts of every table (attachments and
/// events included) and the files under the object store's `attachments/` directory.
#[derive(Debug, PartialEq)]
struct Traces {
    tables: Vec<crate::helpers::TableState>,
    attachments: i64,
    events: i64,
    objects: Vec<PathBuf>,
}

async fn count(app: &TestApp, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    app.scalar(&sql, &[]).await.expect("count rows")
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn stored_objects(app: &TestApp) -> Vec<PathBuf> {
    let root = PathBuf::from(app.config.storage_url());
    let mut files = Vec::new();
    files_under(&root.join("attachments"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| f.strip_prefix(&root).map(Path::to_path_buf).unwrap_or(f))
        .collect()
}

async fn traces(app: &TestApp) -> Traces {
    Traces {
        tables: app.snapshot().await,
        attachments: count(app, "incident_attachments").await,
        events: count(app, "incident_events").await,
        objects: stored_objects(app),
    }
}

/// Sends the start of an upload over a raw socket, then hangs up before the body is complete.
/// Returns the status line the server answered with, if it answered at all.
fn abandon_upload(url: &str, token: &str, incident: i64) -> String {
    let address = url.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(address).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (content_type, body) = multipart("fuga.png", "image/png", &png());
    let head = format!(
        "POST /api/v1/incidents/{incident}/attachments HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len() + 200_000
    );
    socket.write_all(head.as_bytes()).expect("write head");
    socket
        .write_all(&body[..body.len() - 20])
        .expect("write part of the body");
    socket.write_all(&vec![0u8; 100_000]).expect("write more");
    socket.shutdown(std::net::Shutdown::Write).expect("hang up");
    let mut answer = String::new();
    let _ = socket.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

backend_tests! {
    async fn a_reporter_attaches_a_photo_and_gets_back_the_same_bytes_and_a_thumbnail(app: TestApp) {
        let s = setup(&app, "private").await;
        let bytes = png();
        let before = count(&app, "incident_events").await;
        let reply = upload(&app, &s.reporter.token, s.incident, "foto de la fuga.png", "application/octet-stream", &bytes).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let a = &reply.body;
        assert_eq!(a["sha256"], PNG_SHA256);
        assert_eq!(a["size_bytes"], bytes.len());
        assert_eq!(a["content_type"], "image/png", "the bytes decide, not the declared type");
        assert_eq!(a["name"], "foto de la fuga.png");
        assert_eq!(a["uploaded_by"], format!("user:{}", s.reporter.id));
        let id = a["id"].as_i64().expect("id");
        let url = format!("/api/v1/incidents/{}/attachments/{id}", s.incident);
        assert_eq!(a["url"], url);
        assert_eq!(header(&reply.headers, "location"), url);

        let (status, headers, body) = fetch(&app, &s.reporter.token, &url).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, bytes);
        assert_eq!(header(&headers, "content-type"), "image/png");
        assert_eq!(header(&headers, "content-length"), bytes.len().to_string());
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert!(header(&headers, "content-disposition").starts_with("attachment; filename=\"foto de la fuga.png\""));

        let (status, headers, thumb) = fetch(&app, &s.admin.token, a["thumbnail_url"].as_str().expect("thumbnail")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "content-type"), "image/png");
        assert!(thumb.starts_with(b"\x89PNG\r\n\x1a\n"));
        let dimension = |at: usize| u32::from_be_bytes([thumb[at], thumb[at + 1], thumb[at + 2], thumb[at + 3]]);
        assert_eq!((dimension(16), dimension(20)), (320, 240), "fits in 320 px, same aspect ratio");
        let dir = format!("attachments/{}/{id}", s.incident);
        assert_eq!(stored_objects(&app), [
            PathBuf::from(format!("{dir}/foto de la fuga.png")),
            PathBuf::from(format!("{dir}/thumb_foto de la fuga.png.png")),
        ]);

        let second = upload(&app, &s.reporter.token, s.incident, "nota.txt", "text/plain", "La llave de paso está en el sótano.".as_bytes()).await;
        assert_eq!(second.status, StatusCode::CREATED, "{:?}", second.body);
        assert!(second.body["thumbnail_url"].is_null());
        let listed = app.get(&format!("/api/v1/incidents/{}/attachments", s.incident), Some(&s.reporter.token)).await;
        assert_eq!(listed.status, StatusCode::OK);
        let names: Vec<&str> = listed.body.as_array().expect("list").iter().filter_map(|a| a["name"].as_str()).collect();
        assert_eq!(names, ["foto de la fuga.png", "nota.txt"]);
        assert_eq!(count(&app, "incident_events").await, before + 2);
        let events = app.get(&format!("/api/v1/incidents/{}/events", s.incident), Some(&s.reporter.token)).await;
        let added = &events.body["items"].as_array().expect("events").iter().find(|e| e["type"] == "incident.attachment_added").expect("event")["data"];
        assert_eq!((added["attachment_id"].as_i64(), added["media"].as_str()), (Some(id), Some("image/png")));
    }

    async fn programs_and_unknown_files_are_refused_whatever_they_are_called(app: TestApp) {
        let s = setup(&app, "private").await;
        let before = traces(&app).await;
        let reply = upload(&app, &s.reporter.token, s.incident, "foto.jpg", "image/jpeg", &elf()).await;
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{:?}", reply.body);
        assert!(reply.is_problem());
        assert!(reply.body["detail"].as_str().is_some_and(|d| d.contains("ELF")), "{:?}", reply.body);
        let zip = upload(&app, &s.reporter.token, s.incident, "fotos.png", "image/png", b"PK\x03\x04\x14\0\0\0\0\0").await;
        assert_eq!(zip.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let empty = upload(&app, &s.reporter.token, s.incident, "vacio.png", "image/png", b"").await;
        assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(empty.error_field(), Some("file"));
        let json = app.post(&format!("/api/v1/incidents/{}/attachments", s.incident), Some(&s.reporter.token), json!({ "file": "x" })).await;
        assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(json.is_problem());
        assert_eq!(traces(&app).await, before);
    }

    async fn uploads_over_the_limit_or_cut_off_midway_leave_nothing_behind(app: TestApp) {
        let s = setup(&app, "private").await;
        let before = traces(&app).await;
        let mut huge = png();
        huge.resize(app.config.http.max_upload_bytes + 1, 0);
        let reply = upload(&app, &s.reporter.token, s.incident, "enorme.png", "image/png", &huge).await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(reply.is_problem(), "413 must be problem+json: {:?}", reply.headers);
        assert_eq!(traces(&app).await, before);

        let (url, token, incident) = (app.url.clone(), s.reporter.token.clone(), s.incident);
        let answer = tokio::task::spawn_blocking(move || abandon_upload(&url, &token, incident)).await.expect("socket task");
        assert_eq!(answer, "HTTP/1.1 400 Bad Request", "the server gave up on the cut-off upload");
        assert_eq!(traces(&app).await, before);

        let fine = upload(&app, &s.reporter.token, s.incident, "fuga.png", "image/png", &png()).await;
        assert_eq!(fine.status, StatusCode::CREATED, "the server still takes uploads: {:?}", fine.body);
    }

    async fn a_large_file_streams_to_storage_and_an_upload_left_by_a_crash_is_swept(app: TestApp) {
        use sha2::{Digest, Sha256};
        use vigia_domain::Timestamp;
        use vigia_domain::ids::IncidentId;
        use vigia_domain::incidents::AllowedMedia;
        use vigia_store::incidents::attachments::{self, Upload, Uploader};

        let s = setup(&app, "private").await;
        // Bigger than two 5 MiB parts, so storage receives it in several pieces.
        let mut pdf = b"%PDF-1.7\n".to_vec();
        pdf.extend((0..12 * 1024 * 1024).map(|i| b'a' + (i % 26) as u8));
        let reply = upload(&app, &s.reporter.token, s.incident, "informe.pdf", "application/pdf", &pdf).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        assert_eq!(reply.body["size_bytes"], pdf.len());
        assert_eq!(reply.body["sha256"], hex::encode(Sha256::digest(&pdf)));
        let url = format!("{}{}", app.url, reply.body["url"].as_str().expect("url"));
        let download = app.client.get(url).bearer_auth(&s.reporter.token).send().await.expect("download");
        assert_eq!(download.status(), StatusCode::OK);
        assert!(download.bytes().await.expect("bytes") == pdf, "the stored file is the uploaded one");

        // A process that dies mid-upload leaves a hidden reserved row; the sweep removes it.
        let before = traces(&app).await;
        let objects = vigia_store::Objects::open(&app.config.storage_url(), &Default::default()).expect("objects");
        let uploader = Uploader { label: format!("user:{}", s.reporter.id), user: None };
        let mut crashed = Upload::begin(&app.db, &objects, IncidentId(s.incident), "foto.pdf", AllowedMedia::Pdf, &uploader, Timestamp::now())
            .await
            .expect("begin");
        crashed.write(b"%PDF-1.7 cut short").await.expect("write");
        std::mem::forget(crashed);
        assert_eq!(count(&app, "incident_attachments").await, before.attachments + 1, "the row is reserved");
        let listed = app.get(&format!("/api/v1/incidents/{}/attachments", s.incident), Some(&s.reporter.token)).await;
        assert_eq!(listed.body.as_array().map(Vec::len), Some(1), "an unfinished upload is never listed");
        let recent = attachments::sweep_abandoned(&app.db, &objects, Timestamp::from_millis(Timestamp::now().millis() - 60_000))
            .await
            .expect("sweep");
        assert_eq!(recent, 0, "an upload that may still be running is left alone");
        let swept = attachments::sweep_abandoned(&app.db, &objects, Timestamp::from_millis(Timestamp::now().millis() + 1_000))
            .await
            .expect("sweep");
        assert_eq!(swept, 1);
        assert_eq!(traces(&app).await, before, "no row, no event, no object is left");
    }

    async fn a_failing_store_rolls_the_upload_back_and_a_failing_thumbnail_does_not_fail_it(app: TestApp) {
        let s = setup(&app, "private").await;
        // A file where the incident's directory should be: every object put for it fails.
        let blocker = PathBuf::from(app.config.storage_url()).join(format!("attachments/{}", s.incident));
        std::fs::create_dir_all(blocker.parent().expect("parent")).expect("mkdir");
        std::fs::write(&blocker, b"not a directory").expect("blocker");
        let before = traces(&app).await;
        let reply = upload(&app, &s.reporter.token, s.incident, "fuga.png", "image/png", &png()).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{:?}", reply.body);
        assert!(reply.is_problem());
        assert_eq!(traces(&app).await, before, "no row, no event, no object");
        std::fs::remove_file(&blocker).expect("unblock");

        let mut broken = png();
        broken.truncate(60);
        broken.resize(2048, 0x55);
        let reply = upload(&app, &s.reporter.token, s.incident, "rota.png", "image/png", &broken).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        assert!(reply.body["thumbnail_url"].is_null());
        let thumb = app.get(&format!("{}/thumbnail", reply.body["url"].as_str().expect("url")), Some(&s.reporter.token)).await;
        assert_eq!(thumb.status, StatusCode::NOT_FOUND);
    }

    async fn path_traversal_names_are_stored_as_one_safe_segment(app: TestApp) {
        let s = setup(&app, "private").await;
        let reply = upload(&app, &s.reporter.token, s.incident, "../../etc/passwd.png", "image/png", &png()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        assert_eq!(reply.body["name"], "passwd.png");
        let id = reply.body["id"].as_i64().expect("id");
        let stored = stored_objects(&app);
        assert!(stored.contains(&PathBuf::from(format!("attachments/{}/{id}/passwd.png", s.incident))), "{stored:?}");
        let data_dir = PathBuf::from(app.config.storage_url());
        assert!(!data_dir.parent().expect("parent").join("etc").exists());
        let (_, headers, _) = fetch(&app, &s.reporter.token, &format!("/api/v1/incidents/{}/attachments/{id}", s.incident)).await;
        assert!(header(&headers, "content-disposition").contains("filename=\"passwd.png\""));

        let renamed = upload(&app, &s.reporter.token, s.incident, "foto.jpg", "image/jpeg", &png()).await;
        assert_eq!(renamed.body["name"], "foto.png", "served with the extension of what it is");
    }

    async fn people_outside_the_incident_neither_see_nor_attach(app: TestApp) {
        let s = setup(&app, "private").await;
        let attached = upload(&app, &s.reporter.token, s.incident, "fuga.png", "image/png", &png()).await;
        let id = attached.body["id"].as_i64().expect("id");
        let other = app.user(Role::Reporter).await;
        let base = format!("/api/v1/incidents/{}/attachments", s.incident);
        let before = traces(&app).await;
        for path in [base.clone(), format!("{base}/{id}"), format!("{base}/{id}/thumbnail")] {
            let reply = app.get(&path, Some(&other.token)).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        }
        assert_eq!(upload(&app, &other.token, s.incident, "mia.png", "image/png", &png()).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.delete(&format!("{base}/{id}"), Some(&other.token)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&base, None).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(traces(&app).await, before);

        let public = setup(&app, "public").await;
        let reply = upload(&app, &other.token, public.incident, "mia.png", "image/png", &png()).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "seeing a public incident is not taking part in it");
    }

    async fn the_uploader_removes_an_attachment_and_the_file_is_kept_for_the_audit(app: TestApp) {
        let s = setup(&app, "private").await;
        let base = format!("/api/v1/incidents/{}/attachments", s.incident);
        let by_admin = upload(&app, &s.admin.token, s.incident, "plano.png", "image/png", &png()).await;
        let admin_file = by_admin.body["id"].as_i64().expect("id");
        let forbidden = app.delete(&format!("{base}/{admin_file}"), Some(&s.reporter.token)).await;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "only the uploader or staff");

        let mine = upload(&app, &s.reporter.token, s.incident, "fuga.png", "image/png", &png()).await;
        let id = mine.body["id"].as_i64().expect("id");
        let objects = stored_objects(&app);
        let removed = app.delete(&format!("{base}/{id}"), Some(&s.reporter.token)).await;
        assert_eq!(removed.status, StatusCode::NO_CONTENT, "{:?}", removed.body);
        let listed = app.get(&base, Some(&s.reporter.token)).await;
        let ids: Vec<i64> = listed.body.as_array().expect("list").iter().filter_map(|a| a["id"].as_i64()).collect();
        assert_eq!(ids, [admin_file]);
        assert_eq!(app.get(&format!("{base}/{id}"), Some(&s.reporter.token)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.delete(&format!("{base}/{id}"), Some(&s.reporter.token)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(stored_objects(&app), objects, "soft delete keeps the stored file");

        let events = app.get(&format!("/api/v1/incidents/{}/events", s.incident), Some(&s.admin.token)).await;
        let deleted: Vec<_> = events.body["items"].as_array().expect("events").iter().filter(|e| e["type"] == "incident.attachment_deleted").collect();
        assert_eq!(deleted.len(), 1);
        assert_eq!(deleted[0]["data"]["attachment_id"], id);
        assert_eq!(deleted[0]["actor"], format!("user:{}", s.reporter.id));
        assert_eq!(app.delete(&format!("{base}/{admin_file}"), Some(&s.admin.token)).await.status, StatusCode::NO_CONTENT);
    }
}
