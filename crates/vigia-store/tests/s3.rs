//! `Objects` against a real S3-compatible server: moto's standalone server, started by the test
//! on a free loopback port and stopped when the test ends.
//!
//! Needs `moto_server` (from `pip install 'moto[server]'`): the path in `VIGIA_TEST_MOTO`, or
//! `moto_server` on `PATH`; and dummy credentials in `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` (any value: moto does not check them). `scripts/test.sh` provides
//! all of them. Without them the test is skipped, except under `CI=true`, where it fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use vigia_store::objects::S3Options;
use vigia_store::{ObjectKey, Objects};

const BUCKET: &str = "vigia-test";
const PREFIX: &str = "some/prefix";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Fails under CI, otherwise prints why the test is skipped. Returns `None` to skip.
fn skip_or_fail<T>(reason: &str) -> Option<T> {
    assert!(
        !in_ci(),
        "CI=true but the S3 test cannot run: {reason}. Run it through scripts/test.sh."
    );
    eprintln!("SKIPPED s3 integration test: {reason} (scripts/test.sh sets everything up)");
    None
}

/// The moto server binary: `VIGIA_TEST_MOTO`, else `moto_server` on `PATH`.
fn moto_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VIGIA_TEST_MOTO").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "VIGIA_TEST_MOTO={} does not exist",
            path.display()
        );
        return Some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
}

/// The moto server process; killed (and reaped) when dropped, even if the test panics.
struct MotoServer {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl MotoServer {
    async fn start(binary: &Path, http: &reqwest::Client) -> Self {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
            listener.local_addr().expect("local address").port()
        };
        let log = tempfile::NamedTempFile::new().expect("temporary log file");
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("reopen log"))
            .stderr(log.reopen().expect("reopen log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut server = Self { child, port, log };
        server.wait_until_ready(http).await;
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    async fn wait_until_ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "moto_server exited ({status}) before answering:\n{}",
                    self.log_text()
                );
            }
            if let Ok(response) = http.get(self.url()).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on {} within 30 s:\n{}",
                self.url(),
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every key in the bucket, as the server lists it (moto does not check signatures).
async fn raw_keys(http: &reqwest::Client, server: &MotoServer) -> Vec<String> {
    let body = http
        .get(format!("{}/{BUCKET}?list-type=2", server.url()))
        .send()
        .await
        .expect("list the bucket")
        .error_for_status()
        .expect("list the bucket")
        .text()
        .await
        .expect("listing body");
    let mut keys: Vec<String> = body
        .split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
        .collect();
    keys.sort();
    keys
}

fn key(raw: &str) -> ObjectKey {
    ObjectKey::parse(raw).expect("valid key")
}

fn options(server: &MotoServer) -> S3Options {
    S3Options {
        endpoint: Some(server.url()),
        region: Some("us-east-1".to_owned()),
        allow_http: true,
    }
}

/// The moto binary, credentials check, a running server and a bucket; `None` to skip.
async fn setup() -> Option<(reqwest::Client, MotoServer)> {
    let binary = moto_binary().or_else(|| {
        skip_or_fail(
            "moto_server not found (set VIGIA_TEST_MOTO or put moto_server on PATH; pip install 'moto[server]')",
        )
    })?;
    let missing: Vec<&str> = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        .into_iter()
        .filter(|name| std::env::var_os(name).is_none_or(|v| v.is_empty()))
        .collect();
    if !missing.is_empty() {
        return skip_or_fail(&format!(
            "{} not set (dummy values do: export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test)",
            missing.join(" and ")
        ));
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let server = MotoServer::start(&binary, &http).await;
    http.put(format!("{}/{BUCKET}", server.url()))
        .send()
        .await
        .expect("create the bucket")
        .error_for_status()
        .expect("create the bucket");
    Some((http, server))
}

#[tokio::test]
async fn objects_round_trip_through_a_real_s3_server_under_the_prefix() {
    let Some((http, server)) = setup().await else {
        return;
    };

    let objects = Objects::open(&format!("s3://{BUCKET}/{PREFIX}"), &options(&server))
        .expect("open S3 storage");
    assert_eq!(objects.describe(), format!("s3://{BUCKET}/{PREFIX}"));

    // put / get, and overwrite
    let photo = key("attachments/1/foto_1.jpg");
    let report = key("reports/global/report_2026-11-22_14-00.json");
    objects
        .put(&photo, Bytes::from_static(b"first"))
        .await
        .expect("put");
    objects
        .put(&photo, Bytes::from_static(b"\xff\xd8\xff photo"))
        .await
        .expect("overwrite");
    objects
        .put(&report, Bytes::from_static(b"{}"))
        .await
        .expect("put");
    assert_eq!(
        objects.get(&photo).await.expect("get").as_deref(),
        Some(b"\xff\xd8\xff photo".as_slice())
    );
    assert_eq!(
        objects.get(&report).await.expect("get").as_deref(),
        Some(b"{}".as_slice())
    );
    assert_eq!(
        objects
            .get(&key("attachments/1/missing.jpg"))
            .await
            .expect("get missing"),
        None
    );

    // stream: a larger object comes back whole, with its size
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let video = key("attachments/2/video.mp4");
    objects
        .put(&video, Bytes::from(big.clone()))
        .await
        .expect("put big");
    let (size, stream) = objects
        .stream(&video)
        .await
        .expect("stream")
        .expect("object exists");
    assert_eq!(size, big.len() as u64);
    let chunks: Vec<Bytes> = stream.try_collect().await.expect("read the stream");
    assert_eq!(chunks.concat(), big);
    assert!(
        objects
            .stream(&key("attachments/2/missing.mp4"))
            .await
            .expect("stream missing")
            .is_none()
    );

    // list: keys relative to the store's prefix, sorted, filtered by the given prefix
    assert_eq!(
        objects.list("attachments").await.expect("list"),
        vec![photo.clone(), video.clone()]
    );
    assert_eq!(
        objects.list("/attachments/").await.expect("list"),
        vec![photo.clone(), video.clone()]
    );
    assert_eq!(
        objects.list("").await.expect("list"),
        vec![photo.clone(), video.clone(), report.clone()]
    );
    assert_eq!(
        objects.list("nothing-here").await.expect("list"),
        Vec::<ObjectKey>::new()
    );

    // on the server, every key lives under the prefix
    assert_eq!(
        raw_keys(&http, &server).await,
        vec![
            format!("{PREFIX}/attachments/1/foto_1.jpg"),
            format!("{PREFIX}/attachments/2/video.mp4"),
            format!("{PREFIX}/reports/global/report_2026-11-22_14-00.json"),
        ]
    );

    // another prefix in the same bucket sees none of it; the bare bucket sees the full paths
    let other = Objects::open(&format!("s3://{BUCKET}/other"), &options(&server)).expect("open");
    assert_eq!(other.list("").await.expect("list"), Vec::<ObjectKey>::new());
    assert_eq!(other.get(&report).await.expect("get"), None);
    let whole = Objects::open(&format!("s3://{BUCKET}"), &options(&server)).expect("open");
    assert_eq!(
        whole
            .get(&key(&format!(
                "{PREFIX}/reports/global/report_2026-11-22_14-00.json"
            )))
            .await
            .expect("get"),
        Some(Bytes::from_static(b"{}"))
    );

    // delete: gone afterwards; deleting a missing object is not an error
    objects.delete(&photo).await.expect("delete");
    assert_eq!(objects.get(&photo).await.expect("get deleted"), None);
    objects.delete(&photo).await.expect("delete again");
    assert_eq!(
        objects.list("attachments").await.expect("list"),
        vec![video.clone()]
    );

    // check: the store answers, and its probe also stays under the prefix
    objects.check().await.expect("check");
    let keys = raw_keys(&http, &server).await;
    assert!(
        keys.iter().all(|k| k.starts_with(&format!("{PREFIX}/"))),
        "a key outside {PREFIX}/: {keys:?}"
    );

    // a bucket that does not exist fails the readiness check
    let missing = Objects::open("s3://no-such-bucket/x", &options(&server)).expect("open");
    assert!(
        missing.check().await.is_err(),
        "check() passed against a missing bucket"
    );
}

#[tokio::test]
async fn names_outside_ascii_list_as_they_were_stored() {
    let Some((_http, server)) = setup().await else {
        return;
    };
    let objects = Objects::open(&format!("s3://{BUCKET}/{PREFIX}"), &options(&server))
        .expect("open S3 storage");
    let photo = ObjectKey::join(["attachments", "3", "foto tubería (1).jpg"]);
    assert_eq!(photo.as_str(), "attachments/3/foto tubería _1_.jpg");
    objects
        .put(&photo, Bytes::from_static(b"jpeg"))
        .await
        .expect("put");
    assert_eq!(
        objects.get(&photo).await.expect("get").as_deref(),
        Some(b"jpeg".as_slice())
    );
    let listed = objects.list("attachments/3").await.expect("list");
    assert_eq!(
        listed,
        vec![photo.clone()],
        "list() must return the keys put(), not their encoded form"
    );
    assert_eq!(
        objects
            .get(&listed[0])
            .await
            .expect("get listed")
            .as_deref(),
        Some(b"jpeg".as_slice())
    );
}
