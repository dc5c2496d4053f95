//! `kill -9` during detection batches: every acknowledged detection is there after the
//! restart, none twice, and the rollups agree with the detections (the real binary, SQLite).

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigia_domain::Timestamp;
use vigia_domain::auth::{API_KEY_PREFIX, random_secret, secret_hash};
use vigia_domain::ids::DepartmentId;
use vigia_domain::users::Role;
use vigia_store::detections::devices::{self, DeviceFields, DeviceKey};
use vigia_store::detections::subjects::{self, SubjectFields};
use vigia_store::{ChangeAuthor, Db, DbOptions};

const BIN: &str = env!("CARGO_BIN_EXE_vigia");

fn serve(dir: &std::path::Path, url: &str, port: u16) -> Child {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .arg("--database-url")
        .arg(url)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("VIGIA_LOG__LEVEL", "warn")
        .env("VIGIA_AUTH__JWT_SECRET", crate::helpers::JWT_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn vigia serve")
}

async fn ready(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::get(format!("{base}/ready"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn batch(sender: usize, n: usize) -> (Vec<String>, Value) {
    let at = Timestamp::now().to_rfc3339();
    let ids: Vec<String> = (0..500).map(|i| format!("k-{sender}-{n}-{i}")).collect();
    let items: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| json!({ "client_id": id, "subject": "EMP001", "label": if i % 3 == 0 { "stress" } else { "neutral" },
            "confidence": 0.6, "timestamp": at }))
        .collect();
    (ids, json!({ "detections": items }))
}

async fn stored(db: &Db) -> (Vec<String>, i64) {
    let conn = crate::helpers::sqlite(db);
    let ids: Vec<String> = conn
        .prepare("SELECT client_id FROM detections")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("ids");
    let rolled: i64 = conn
        .query_row(
            "SELECT COALESCE(SUM(count), 0) FROM detection_rollups",
            [],
            |r| r.get(0),
        )
        .expect("rollups");
    (ids, rolled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_detection_survives_kill_9_and_none_is_stored_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("vigia.db").display());
    let db = Db::connect(&url, &DbOptions::default())
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    let admin = vigia::create_user(
        &db,
        "admin@crash.test",
        "Admin",
        "un-secreto-bien-largo",
        Role::Admin,
    )
    .await
    .expect("admin");
    vigia::seed::ensure_catalog(&db).await.expect("a catalog");
    let department = vigia_store::catalog::list_departments(&db)
        .await
        .expect("departments")[0]
        .id
        .0;
    let actor = ChangeAuthor::system();
    let fields = SubjectFields {
        code: "EMP001".into(),
        name: "Persona".into(),
        department_id: DepartmentId(department),
        zone_id: None,
    };
    subjects::create(&db, &fields, true, &actor)
        .await
        .expect("subject");
    let secret = random_secret(API_KEY_PREFIX);
    let key = DeviceKey {
        key_prefix: secret.chars().take(12).collect(),
        key_hash: secret_hash(&secret),
    };
    let device = DeviceFields {
        code: "cam-k".into(),
        name: "Cámara".into(),
        zone_id: None,
        location: None,
        active: true,
    };
    devices::create(&db, &device, &key, admin.id, &actor)
        .await
        .expect("device");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let base = format!("http://127.0.0.1:{port}");
    let mut first = serve(dir.path(), &url, port);
    ready(&base).await;

    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let mut sent = Vec::new();
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..3 {
        let (base, secret, acknowledged) = (base.clone(), secret.clone(), acknowledged.clone());
        let batches: Vec<(Vec<String>, Value)> = (0..40).map(|n| batch(sender, n)).collect();
        sent.extend(batches.iter().cloned());
        senders.spawn(async move {
            let client = reqwest::Client::new();
            for (ids, body) in batches {
                let reply = client
                    .post(format!("{base}/api/v1/detections/batch"))
                    .bearer_auth(&secret)
                    .json(&body)
                    .send()
                    .await;
                match reply {
                    Ok(r) if r.status().is_success() => {
                        let answer: Value = r.json().await.unwrap_or(Value::Null);
                        if answer["accepted"].as_u64().unwrap_or(0)
                            + answer["duplicates"].as_u64().unwrap_or(0)
                            == 500
                        {
                            acknowledged.lock().expect("lock").extend(ids);
                        }
                    }
                    _ => return,
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.kill().expect("kill -9");
    first.wait().expect("reaped");
    while senders.join_next().await.is_some() {}
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        !acknowledged.is_empty(),
        "some batches were acknowledged before the kill"
    );

    let mut second = serve(dir.path(), &url, port);
    ready(&base).await;
    let (ids, rolled) = stored(&db).await;
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no detection stored twice");
    assert!(
        acknowledged.iter().all(|id| unique.contains(id)),
        "every acknowledged detection survived"
    );
    assert_eq!(
        rolled,
        ids.len() as i64,
        "the rollups count exactly the stored detections"
    );

    // The devices resend everything: what was stored is recognised, the rest stored once.
    let client = reqwest::Client::new();
    for (_, body) in &sent {
        let reply = client
            .post(format!("{base}/api/v1/detections/batch"))
            .bearer_auth(&secret)
            .json(body)
            .send()
            .await
            .expect("send");
        assert!(reply.status().is_success());
    }
    let (ids, rolled) = stored(&db).await;
    assert_eq!(ids.len(), sent.len() * 500, "every detection exactly once");
    assert_eq!(rolled, ids.len() as i64);
    second.kill().expect("kill");
    second.wait().expect("reaped");
}
