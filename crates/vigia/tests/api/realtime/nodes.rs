//! Two server processes on one PostgreSQL database.

use super::*;

/// A `vigia serve` process, killed when dropped.
struct Node {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(database_url: &str, demo: bool) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vigia"));
    command
        .current_dir(dir.path())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--database-url", database_url, "serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("VIGIA_AUTH__JWT_SECRET", crate::helpers::JWT_SECRET)
        .env("VIGIA_LOG__LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if demo {
        command.arg("--demo");
    }
    let child = command.spawn().expect("spawn vigia serve");
    let node = Node {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "node on port {port} never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    node
}

async fn login(client: &reqwest::Client, url: &str, email: &str, password: &str) -> String {
    let reply: Value = client
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login JSON");
    reply["access_token"].as_str().expect("token").to_owned()
}

/// Two server processes on one PostgreSQL database: an event committed through node A reaches
/// a WebSocket client of node B (LISTEN/NOTIFY), and the other way round over SSE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_through_one_node_reaches_clients_of_another() {
    let Some(admin_url) = crate::helpers::postgres_admin_url() else {
        return;
    };
    let (name, database_url) = crate::helpers::create_postgres_database(&admin_url).await;
    let a = start_node(&database_url, true);
    let client = reqwest::Client::new();
    // Node A loads the demo data; wait until it answers logins.
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin = loop {
        let reply = client
            .post(format!("{}/api/v1/auth/login", a.url))
            .json(&json!({ "email": "admin@demo.vigia.local", "password": "faro-norte-2026" }))
            .send()
            .await;
        if let Ok(reply) = reply
            && reply.status() == StatusCode::OK
        {
            let body: Value = reply.json().await.expect("JSON");
            break body["access_token"].as_str().expect("token").to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "node A never accepted the demo login"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let b = start_node(&database_url, false);
    let reporter = login(
        &client,
        &b.url,
        "reporter@demo.vigia.local",
        "faro-este-2026",
    )
    .await;
    let categories: Value = client
        .get(format!("{}/api/v1/categories", a.url))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("categories")
        .json()
        .await
        .expect("JSON");
    let category = categories["items"][0]["id"]
        .as_i64()
        .or_else(|| categories[0]["id"].as_i64())
        .expect("a demo category");

    let mut on_b = connect_ws(&b.url, Credential::Bearer(&admin)).await;
    on_b.subscribe(&["incidents"], None).await;
    let sse_on_a = client
        .get(format!("{}/api/v1/stream", a.url))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("stream");
    let mut on_a = SseClient::new(sse_on_a);
    assert_eq!(
        on_a.next_within(SECOND * 5).await.expect("ack")["type"],
        "subscribed"
    );

    let started = Instant::now();
    let created: Value = client
        .post(format!("{}/api/v1/incidents", a.url))
        .bearer_auth(&reporter)
        .json(
            &json!({ "category_id": category, "title": "Fuga en el laboratorio",
                       "description": "Gotea desde el techo del laboratorio 2." }),
        )
        .send()
        .await
        .expect("create on A")
        .json()
        .await
        .expect("JSON");
    let id = created["id"].as_i64().expect("incident id");
    let message = on_b
        .expect_event(SECOND.saturating_sub(started.elapsed()), "incident.created")
        .await;
    assert_eq!(message["data"]["incident_id"], id);

    let started = Instant::now();
    let comment = client
        .post(format!("{}/api/v1/incidents/{id}/comments", b.url))
        .bearer_auth(&admin)
        .json(&json!({ "body": "En camino" }))
        .send()
        .await
        .expect("comment on B");
    assert_eq!(comment.status(), StatusCode::CREATED);
    let mut seen = Vec::new();
    while let Some(message) = on_a
        .next_within(SECOND.saturating_sub(started.elapsed()))
        .await
    {
        seen.push(message["type"].as_str().unwrap_or_default().to_owned());
        if seen.last().is_some_and(|t| t == "incident.comment_added") {
            break;
        }
    }
    assert!(
        seen.contains(&"incident.comment_added".to_owned()),
        "node A's SSE client saw {seen:?}"
    );

    drop((on_b, on_a, a, b));
    if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await {
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await;
    }
}
