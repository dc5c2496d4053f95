//! The test harness: start the real application on port 0 with a fresh database of either
//! backend, and talk to it over HTTP as a user would.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;
use vigia::Application;
use vigia::config::{Config, Overrides};
use vigia_domain::users::Role;
use vigia_store::{Backend as StoreBackend, Db};

/// The signing secret every test app uses, so tests can mint expired or forged tokens.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running application and a client for it.
pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub db: Db,
    pub config: Config,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    postgres_db: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub email: String,
    pub password: String,
    pub token: String,
    pub refresh_token: String,
}

/// Tables a rejected request may change, so a snapshot leaves them out: the position of the
/// outbox's background consumer (the job relay), moved on its own schedule while a test runs,
/// and `rate_limits`, where every login or registration
/// attempt is counted, refused or not (that is its purpose).
const NOT_STATE: [&str; 2] = ["job_cursors", "rate_limits"];

/// One table as [`TestApp::snapshot`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableState {
    pub table: String,
    pub rows: usize,
    /// A hash of every row's text: an UPDATE changes it even when the count stays.
    pub content: u64,
}

/// A response: status, headers and the body parsed as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The `field` of the first validation error, if any.
    pub fn error_field(&self) -> Option<&str> {
        self.body["errors"][0]["field"].as_str()
    }

    pub fn is_problem(&self) -> bool {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            == Some("application/problem+json")
    }
}

/// PostgreSQL tests need `VIGIA_TEST_DATABASE_URL`. Without it they are skipped locally and
/// fail in CI (CI must cover both backends).
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("VIGIA_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "CI=true but VIGIA_TEST_DATABASE_URL is not set: PostgreSQL tests must run in CI"
                );
            }
            eprintln!(
                "skipping: set VIGIA_TEST_DATABASE_URL=postgres://... to run PostgreSQL tests"
            );
            None
        }
    }
}

pub async fn create_postgres_database(admin_url: &str) -> (String, String) {
    let name = format!("vigia_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to VIGIA_TEST_DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url, |(base, _)| base);
    (name.clone(), format!("{base}/{name}"))
}

/// Starts an app with default test settings. `None` when the backend is not available here.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Starts an app after letting `adjust` change its configuration.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (database_url, postgres_db) = match backend {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.path().join("vigia.db").display()),
            None,
        ),
        Backend::Postgres => {
            let admin = postgres_admin_url()?;
            let (name, url) = create_postgres_database(&admin).await;
            (url, Some((admin, name)))
        }
    };
    let overrides = Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        database_url: Some(database_url),
        storage_url: Some(dir.path().join("objects").display().to_string()),
        listen: Some("127.0.0.1:0".into()),
    };
    let mut config =
        Config::load(Some(&write_empty_config(dir.path())), &overrides).expect("config");
    config.auth.jwt_secret = JWT_SECRET.into();
    config.http.login_per_minute = 10_000;
    config.http.register_per_hour = 10_000;
    config.http.shutdown_grace_secs = 2;
    // Background work changes incidents on its own schedule; tests that want it turn it on.
    config.jobs.enabled = false;
    adjust(&mut config);
    Some(start(config, postgres_db, dir).await)
}

/// Builds and runs the application of `config`.
async fn start(
    config: Config,
    postgres_db: Option<(String, String)>,
    dir: tempfile::TempDir,
) -> TestApp {
    let app = Application::build(&config)
        .await
        .expect("application builds");
    let url = format!("http://{}", app.local_addr());
    let db = app.state().db.clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    TestApp {
        url,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        db,
        config,
        shutdown,
        server: Some(server),
        postgres_db,
        _dir: dir,
    }
}

impl TestApp {
    /// Another node of this application: the same settings and database (which stays this
    /// app's to drop), a port of its own. On PostgreSQL, the two make a cluster.
    pub async fn spawn_peer(&self) -> TestApp {
        self.spawn_peer_with(|_| {}).await
    }

    /// The same with `adjust` applied to the peer's copy of the settings (its database and
    /// object storage stay this app's).
    pub async fn spawn_peer_with(&self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = self.config.clone();
        adjust(&mut config);
        start(config, None, dir).await
    }
}

/// Tests must not read a developer's ./vigia.toml: point --config at an empty file.
fn write_empty_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("test.toml");
    std::fs::write(&path, "").expect("write config");
    path
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some((admin, name)) = self.postgres_db.take() {
            let db = self.db.clone();
            // Drop runs inside the test's runtime; do the async cleanup on a thread of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    db.close().await;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

impl TestApp {
    /// Sends a request; `body` is sent as JSON when given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::reply(request.send().await.expect("request sent")).await
    }

    pub async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::PUT, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::DELETE, path, token, None).await
    }

    /// Signs in and returns the tokens.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/v1/auth/login",
            None,
            json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Creates a user of `role` directly in the store and signs them in.
    pub async fn user(&self, role: Role) -> TestUser {
        let email = format!(
            "{}-{}@test.vigia.local",
            role.as_str(),
            uuid::Uuid::new_v4().simple()
        );
        let password = "un-secreto-bien-largo".to_owned();
        let user = vigia::create_user(&self.db, &email, "Test User", &password, role)
            .await
            .expect("create user");
        let reply = self.login(&email, &password).await;
        assert_eq!(reply.status, StatusCode::OK, "login: {:?}", reply.body);
        TestUser {
            id: user.id.0,
            email,
            password,
            token: reply.body["access_token"]
                .as_str()
                .expect("access token")
                .to_owned(),
            refresh_token: reply.body["refresh_token"]
                .as_str()
                .expect("refresh token")
                .to_owned(),
        }
    }

    /// Creates a staff member of `department` (made so by `admin` over the API) and signs them in.
    pub async fn staff_in(&self, admin: &TestUser, department: i64) -> TestUser {
        let staff = self.user(Role::Staff).await;
        let reply = self
            .patch(
                &format!("/api/v1/users/{}", staff.id),
                Some(&admin.token),
                json!({ "departments": [department] }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        staff
    }

    pub async fn admin(&self) -> TestUser {
        self.user(Role::Admin).await
    }

    /// Runs `sql` with `args` (`$1`, `$2`, ...): for pinning times the API sets to "now".
    pub async fn exec<T: Into<Option<i64>> + Copy>(&self, sql: &str, args: &[T]) {
        let args: Vec<Option<i64>> = args.iter().map(|&a| a.into()).collect();
        match self.db.backend() {
            StoreBackend::Sqlite { .. } => {
                let conn = sqlite(&self.db);
                let mut statement = conn.prepare(sql).expect("prepare");
                bind_numbered(&mut statement, &args);
                statement.raw_execute().expect("update");
            }
            StoreBackend::Postgres { pool } => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
                for a in args {
                    q = q.bind(a);
                }
                q.execute(pool).await.expect("update");
            }
        }
    }

    /// The integer `sql` answers (constant SQL, `$1`, `$2`, ... bound to `args`; `NULL` is
    /// `None`), read from the database as it is committed.
    pub async fn scalar(&self, sql: &str, args: &[i64]) -> Option<i64> {
        match self.db.backend() {
            StoreBackend::Sqlite { .. } => {
                let conn = sqlite(&self.db);
                let mut statement = conn.prepare(sql).expect("prepare");
                bind_numbered(&mut statement, args);
                let mut rows = statement.raw_query();
                let row = rows.next().unwrap_or_else(|e| panic!("{sql}: {e}"));
                row.expect("one row")
                    .get(0)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            StoreBackend::Postgres { pool } => {
                let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()));
                for a in args {
                    q = q.bind(*a);
                }
                q.fetch_one(pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
        }
    }

    /// The texts `sql` answers, one per row (constant SQL, no arguments).
    pub async fn texts(&self, sql: &str) -> Vec<String> {
        match self.db.backend() {
            StoreBackend::Sqlite { .. } => {
                let conn = sqlite(&self.db);
                let mut statement = conn.prepare(sql).expect("prepare");
                statement
                    .query_map([], |r| r.get(0))
                    .and_then(|rows| rows.collect())
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            StoreBackend::Postgres { pool } => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_all(pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
        }
    }

    /// Moves `incident` through `statuses` as `who`, each step expected to succeed.
    pub async fn move_through(&self, who: &TestUser, incident: i64, statuses: &[&str]) {
        for to in statuses {
            let path = format!("/api/v1/incidents/{incident}/transitions");
            let reply = self
                .post(&path, Some(&who.token), json!({ "to": to }))
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{to}: {:?}", reply.body);
        }
    }

    /// Every table of the database (listed by the database itself, so a new table is covered
    /// without editing this) with its row count and a hash of its contents: compared before and
    /// after a rejected request to prove that nothing was inserted, deleted or updated.
    pub async fn snapshot(&self) -> Vec<TableState> {
        let mut tables = Vec::new();
        for table in self.tables().await {
            let rows = self.rows_as_text(&table).await;
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&rows, &mut hasher);
            tables.push(TableState {
                rows: rows.len(),
                content: std::hash::Hasher::finish(&hasher),
                table,
            });
        }
        tables
    }

    /// The names of the database's own tables, less SQLite's internal ones and
    /// [`NOT_STATE`].
    async fn tables(&self) -> Vec<String> {
        let tables = if self.db.is_sqlite() {
            self.texts(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .await
        } else {
            self.texts(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 ORDER BY table_name",
            )
            .await
        };
        tables
            .into_iter()
            .filter(|t| !NOT_STATE.contains(&t.as_str()))
            .collect()
    }

    /// Every row of `table` as text (each column quoted, so `NULL` and `'NULL'` differ), sorted.
    async fn rows_as_text(&self, table: &str) -> Vec<String> {
        let mut rows = if self.db.is_sqlite() {
            let columns = self
                .texts(&format!(
                    "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
                ))
                .await;
            let row = columns
                .iter()
                .map(|c| format!("quote(\"{c}\")"))
                .collect::<Vec<_>>()
                .join(" || ',' || ");
            self.texts(&format!("SELECT {row} FROM \"{table}\"")).await
        } else {
            self.texts(&format!("SELECT t::text FROM \"{table}\" AS t"))
                .await
        };
        rows.sort_unstable();
        rows
    }

    /// Creates a department as `admin` and returns its id.
    pub async fn department(&self, admin: &TestUser, name: &str) -> i64 {
        let reply = self
            .post(
                "/api/v1/departments",
                Some(&admin.token),
                json!({ "name": name, "contact_emails": ["equipo@utec.pe"] }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body["id"].as_i64().expect("id")
    }
}

/// Runs each test body once per backend: `mod sqlite` always, `mod postgres` when configured.
#[macro_export]
macro_rules! backend_tests {
    ($(async fn $name:ident($app:ident: $ty:ty) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $app: $ty = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await.expect("sqlite app");
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some($app): Option<$ty> = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await else { return };
                    $body
                }
            )*
        }
    };
}

/// Binds `args[n - 1]` to each `$n` of `statement` (SQLite numbers parameters by first
/// appearance, not by the digits after `$`).
fn bind_numbered<T: rusqlite::ToSql>(statement: &mut rusqlite::Statement<'_>, args: &[T]) {
    for index in 1..=statement.parameter_count() {
        let n: usize = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse().ok())
            .expect("parameters are written $1, $2, ...");
        statement
            .raw_bind_parameter(index, &args[n - 1])
            .expect("bind");
    }
}

/// A connection of the test's own to the app's SQLite database (committed state only).
pub fn sqlite(db: &Db) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db.sqlite_path().expect("a SQLite app")).expect("open");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn
}
