//! The `vigia` binary itself: users from the CLI, config show, backup and restore, graceful
//! shutdown on SIGTERM.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_vigia");

fn vigia(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env("VIGIA_LOG__LEVEL", "warn")
        .env_remove("VIGIA_DATABASE__URL");
    command.current_dir(data_dir);
    command
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub(crate) fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.write_all(b"GET /ready HTTP/1.0\r\n\r\n");
            let mut out = String::new();
            let _ = std::io::Read::read_to_string(&mut stream, &mut out);
            if out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server on port {port} never became ready");
}

#[test]
fn user_create_reads_the_password_from_stdin_and_enforces_the_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let create = |password: &str| {
        let mut child = vigia(dir.path())
            .args([
                "user",
                "create",
                "--email",
                "root@utec.pe",
                "--role",
                "admin",
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(password.as_bytes())
            .expect("write");
        child.wait_with_output().expect("output")
    };
    let weak = create("short\n");
    assert!(!weak.status.success());
    assert!(
        String::from_utf8_lossy(&weak.stderr).contains("too short"),
        "{weak:?}"
    );
    let ok = create("una-clave-de-administración\n");
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("created admin root@utec.pe"));
    let again = create("una-clave-de-administración\n");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn config_show_redacts_secrets_and_bad_config_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = vigia(dir.path())
        .args(["config", "show"])
        .env(
            "VIGIA_AUTH__JWT_SECRET",
            "a-very-secret-value-that-is-long-enough-123",
        )
        .env("VIGIA_HTTP__LISTEN", "127.0.0.1:9999")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("listen = \"127.0.0.1:9999\""), "{text}");
    assert!(text.contains("jwt_secret = \"<redacted>\""), "{text}");
    assert!(!text.contains("a-very-secret-value"));

    let bad = vigia(dir.path())
        .args(["config", "show"])
        .env("VIGIA_HTTP__LISTEN", "everywhere")
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("http.listen"),
        "{bad:?}"
    );
    let production = vigia(dir.path())
        .args(["config", "show"])
        .env("VIGIA_MODE", "production")
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&production.stderr).contains("jwt_secret"),
        "{production:?}"
    );
}

#[test]
fn sigterm_lets_the_server_finish_and_exit_cleanly_and_backup_restore_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut server = vigia(dir.path())
        .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_ready(port);

    let backup = dir.path().join("copy.db");
    let out = vigia(dir.path())
        .args(["backup", "--output"])
        .arg(&backup)
        .output()
        .expect("backup");
    assert!(out.status.success(), "{out:?}");
    let again = vigia(dir.path())
        .args(["backup", "--output"])
        .arg(&backup)
        .output()
        .expect("backup");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "server did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");

    // Restore the backup into a fresh data directory and serve it: the demo accounts are there.
    let other = tempfile::tempdir().expect("tempdir");
    let restored = vigia(other.path())
        .args(["restore", "--input"])
        .arg(&backup)
        .output()
        .expect("restore");
    assert!(restored.status.success(), "{restored:?}");
    let refused = vigia(other.path())
        .args(["restore", "--input"])
        .arg(&backup)
        .output()
        .expect("restore");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    let port = free_port();
    let mut server = vigia(other.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_ready(port);
    let body = r#"{"email":"admin@demo.vigia.local","password":"faro-norte-2026"}"#;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(stream, "POST /api/v1/auth/login HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        .expect("write");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).expect("read");
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
}

/// `vigia user create` against the test app's database, the password on standard input.
fn create_user_cli(
    app: &crate::helpers::TestApp,
    dir: &std::path::Path,
    email: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut child = vigia(dir)
        .args(["--database-url", &app.config.database_url()])
        .args([
            "user",
            "create",
            "--email",
            email,
            "--role",
            "staff",
            "--password-stdin",
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"una-clave-bien-larga\n")
        .expect("write");
    child.wait_with_output().expect("output")
}

crate::backend_tests! {
    async fn user_create_places_staff_in_departments_by_id_or_name_and_refuses_unknown_ones(app: crate::helpers::TestApp) {
        let admin = app.admin().await;
        let maintenance = app.department(&admin, "Mantenimiento").await;
        let security = app.department(&admin, "Seguridad").await;
        let dir = tempfile::tempdir().expect("tempdir");
        let before = app.snapshot().await;
        let unknown = create_user_cli(&app, dir.path(), "nadie@utec.pe", &["--department", "Mantenimiento", "--department", "Cafetería"]);
        assert!(!unknown.status.success());
        let stderr = String::from_utf8_lossy(&unknown.stderr);
        assert!(stderr.contains("--department \"Cafetería\": no department has that id or name"), "{stderr}");
        assert!(stderr.contains(&format!("Mantenimiento ({maintenance})")), "{stderr}");
        assert_eq!(app.snapshot().await, before, "nothing was created");

        let ok = create_user_cli(&app, dir.path(), "tecnica@utec.pe", &["--department", "mantenimiento", "--department", &security.to_string()]);
        assert!(ok.status.success(), "{ok:?}");
        let stdout = String::from_utf8_lossy(&ok.stdout);
        assert!(stdout.contains("created staff tecnica@utec.pe"), "{stdout}");
        let users = app.get("/api/v1/users?role=staff&limit=200", Some(&admin.token)).await;
        let created = users.body["items"].as_array().expect("users").iter().find(|u| u["email"] == "tecnica@utec.pe").expect("created").clone();
        let mut departments: Vec<i64> = created["departments"].as_array().expect("departments").iter().map(|d| d.as_i64().expect("id")).collect();
        departments.sort();
        assert_eq!(departments, [maintenance, security]);
    }
}
