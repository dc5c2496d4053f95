//! Connections a hostile or careless client holds open: half-sent request heads, idle
//! keep-alive sockets, more sockets than the server has descriptors for.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cli::{BIN, free_port, wait_ready};
use crate::helpers::{Backend, TestApp, spawn_app_with};
use crate::realtime::{Credential, connect_ws};

async fn app_with(adjust: impl FnOnce(&mut vigia::Config)) -> TestApp {
    spawn_app_with(Backend::Sqlite, adjust).await.expect("app")
}

fn connect(app: &TestApp) -> TcpStream {
    let stream = TcpStream::connect(app.url.trim_start_matches("http://")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// Reads until the server closes the connection; how long that took and what it sent.
/// Panics if it is still open after the socket's read timeout.
fn wait_for_close(stream: &mut TcpStream) -> (Duration, String) {
    let start = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("still open after {:?}: {e}", start.elapsed()),
        }
    }
    (
        start.elapsed(),
        String::from_utf8_lossy(&received).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_half_a_request_head_is_cut_off_after_the_header_timeout() {
    let app = app_with(|c| {
        c.http.header_read_timeout_secs = 1;
        c.http.idle_timeout_secs = 30;
    })
    .await;
    let mut slow = connect(&app);
    tokio::task::spawn_blocking(move || {
        slow.write_all(b"GET /health HTTP/1.1\r\nHost: vigia\r\nX-Slow: ")
            .expect("write");
        let (after, _) = wait_for_close(&mut slow);
        assert!(after < Duration::from_secs(3), "closed after {after:?}");
    })
    .await
    .expect("slow client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_kept_alive_until_the_idle_timeout_and_then_closed() {
    let app = app_with(|c| {
        c.http.header_read_timeout_secs = 1;
        c.http.idle_timeout_secs = 3;
    })
    .await;
    let mut silent = connect(&app);
    let mut served = connect(&app);
    tokio::task::spawn_blocking(move || {
        served
            .write_all(b"GET /health HTTP/1.1\r\nHost: vigia\r\n\r\n")
            .expect("write");
        let mut buf = [0u8; 1024];
        let n = served.read(&mut buf).expect("response");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        // Not the header timeout: nothing of a next request has arrived.
        let (after, rest) = wait_for_close(&mut served);
        assert!(rest.is_empty(), "{rest}");
        assert!(
            (Duration::from_millis(2500)..Duration::from_secs(6)).contains(&after),
            "kept alive for {after:?}"
        );
        let (after, _) = wait_for_close(&mut silent);
        assert!(
            after < Duration::from_secs(2),
            "a silent connection stayed {after:?} more"
        );
    })
    .await
    .expect("clients");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_is_not_closed_by_the_idle_timeout_once_upgraded() {
    let app = app_with(|c| {
        c.http.header_read_timeout_secs = 1;
        c.http.idle_timeout_secs = 1;
    })
    .await;
    let user = app.user(vigia_domain::users::Role::Reporter).await;
    let mut ws = connect_ws(&app.url, Credential::Bearer(&user.token)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ws.subscribe(&["incidents"], None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_are_refused_at_once_with_a_503() {
    let app = app_with(|c| c.http.max_connections = 3).await;
    // Busy connections, each in the middle of sending a request's head: none can be closed
    // to make room.
    let held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = connect(&app);
            stream
                .write_all(b"GET /health HTTP/1.1\r\n")
                .expect("half a head");
            stream
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut excess = connect(&app);
    let (after, answer) = tokio::task::spawn_blocking(move || wait_for_close(&mut excess))
        .await
        .expect("excess");
    assert!(after < Duration::from_secs(1), "refused after {after:?}");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"status\":503"), "{answer}");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // The server answers a refused connection before it is asked: a client may call that
        // an unexpected message rather than a 503.
        let reply = app.client.get(format!("{}/health", app.url)).send().await;
        match reply {
            Ok(reply) if reply.status() == reqwest::StatusCode::OK => break,
            other => assert!(Instant::now() < deadline, "still refused: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_max_connections_the_longest_idle_connection_makes_room_for_a_new_one() {
    let app = app_with(|c| c.http.max_connections = 3).await;
    let mut oldest = connect(&app);
    std::thread::sleep(Duration::from_millis(50));
    let held: Vec<TcpStream> = (0..2).map(|_| connect(&app)).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // All three places are taken by connections that ask for nothing: a new client is served
    // at once (well within the 60 s idle timeout), and the longest-idle connection is closed.
    let start = Instant::now();
    let reply = app
        .client
        .get(format!("{}/health", app.url))
        .send()
        .await
        .expect("health");
    assert_eq!(reply.status(), reqwest::StatusCode::OK);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "served after {:?}",
        start.elapsed()
    );
    let (after, sent) = tokio::task::spawn_blocking(move || wait_for_close(&mut oldest))
        .await
        .expect("oldest");
    assert!(after < Duration::from_secs(2), "closed after {after:?}");
    assert_eq!(sent, "", "an idle connection is closed without an answer");
    drop(held);
}

/// One `GET /health` over a fresh connection: the status line, or `None`.
fn health(port: u16) -> Option<String> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: vigia\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.lines().next().map(str::to_owned)
}

#[test]
fn with_few_descriptors_health_still_answers_while_an_attacker_holds_idle_sockets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("log")).expect("log file");
    // A soft limit of 96 open files, which the server raises to the hard limit, 160.
    let mut server = Command::new("prlimit")
        .args(["--nofile=96:160", "--"])
        .arg(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("VIGIA_DATABASE__URL")
        .env("VIGIA_LOG__LEVEL", "info")
        .env("VIGIA_JOBS__ENABLED", "false")
        .env("VIGIA_HTTP__HEADER_READ_TIMEOUT_SECS", "1")
        .current_dir(dir.path())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn prlimit (util-linux)");
    wait_ready(port);
    // Far more idle sockets than the server has descriptors: it runs out, and must recover.
    // (A connection the kernel cannot queue for the server is given up on after 100 ms.)
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let attacker: Vec<TcpStream> = (0..400)
        .filter_map(|_| TcpStream::connect_timeout(&address, Duration::from_millis(100)).ok())
        .collect();
    assert!(attacker.len() > 150, "only {} connected", attacker.len());
    let start = Instant::now();
    let answered = loop {
        if let Some(line) = health(port).filter(|l| l.starts_with("HTTP/1.1 200")) {
            break Some(line);
        }
        // The idle timeout is the default 60 s: the server must make room by closing idle
        // sockets, not wait for them to time out.
        if start.elapsed() > Duration::from_secs(5) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = server.kill();
    let _ = server.wait();
    let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
    // Without the terminal's colours.
    let log = log
        .split('\x1b')
        .map(|part| {
            part.split_once('m')
                .filter(|_| part.starts_with('['))
                .map_or(part, |(_, rest)| rest)
        })
        .collect::<String>();
    assert!(
        answered.is_some(),
        "no answer in 5 s while {} sockets were held\n{log}",
        attacker.len()
    );
    assert!(log.contains("open_files=160"), "{log}");
}
