//! The `vigia` binary's library half: configuration, wiring and the application lifecycle, so
//! tests can start the same application the binary runs.

pub mod competition_jobs;
pub mod config;
pub mod connections;
pub mod demo;
pub mod detection_jobs;
pub mod job_handlers;
pub mod jobs;
pub mod jobs_cli;
pub mod landing;
pub mod landing_bench;
pub mod media;
pub mod media_bench;
pub mod media_reference;
pub mod media_video;
pub mod mqtt;
pub mod reports_cli;
pub mod seed;
pub mod simulate;
pub mod simulate_mqtt;
pub mod telemetry;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigia_domain::Timestamp;
use vigia_domain::auth::{hash_password, random_secret};
use vigia_domain::users::{Email, Locale, NewPassword, Role};
use vigia_http::{AppState, HttpConfig};
use vigia_store::{Db, Objects, users};

pub use config::Config;

/// A configured, migrated application bound to its socket, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    grace: Duration,
    limits: vigia_http::listener::ConnectionLimits,
    notifier: vigia_notify::Notifier,
    /// Background work (`[jobs] enabled`), started by [`Application::run`].
    jobs: Option<vigia_jobs::JobsRuntime>,
    /// Captures and reference photos found as they land (`[landing]`, on nodes with `[jobs]`).
    landing: Option<landing::Landing>,
    /// `detections.mqtt_url`, when MQTT ingestion is on.
    mqtt: Option<String>,
    mqtt_stats: Arc<mqtt::MqttStats>,
}

impl Application {
    /// Connects storage, applies migrations, creates the bootstrap admin if asked, and binds.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
        let db = open_database(config).await?;
        let objects = Objects::open(&config.storage_url(), &config.s3_options())?;
        sweep_abandoned_uploads(&db, &objects).await;
        // Finding FFmpeg runs it twice (about 170 ms each): say what is missing without
        // holding up the start.
        tokio::spawn(media::check_prerequisites());
        let secret = jwt_secret(config, &db)?;
        bootstrap_admin(config, &db).await?;
        let listener = TcpListener::bind(config.listen_addr()?)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}: is another process using it?",
                    config.http.listen
                )
            })?;
        if config.realtime.socket_send_buffer_bytes > 0 {
            // Accepted sockets inherit it: bounds what a stalled client can hold in the kernel.
            socket2::SockRef::from(&listener)
                .set_send_buffer_size(config.realtime.socket_send_buffer_bytes)
                .context("cannot set realtime.socket_send_buffer_bytes")?;
        }
        let open_files = connections::raise_open_files_limit();
        let limits = connections::limits(&config.http, open_files);
        tracing::info!(
            open_files,
            max_connections = limits.max_connections,
            "open-file limit"
        );
        let addr = listener.local_addr()?;
        let public_url = if config.http.public_url.is_empty() {
            format!("http://{addr}")
        } else {
            config.http.public_url.clone()
        };
        let http = HttpConfig {
            public_url,
            access_token_ttl: Duration::from_secs(config.http.access_token_ttl_secs),
            refresh_token_ttl: Duration::from_secs(config.http.refresh_token_ttl_days * 86_400),
            allow_registration: config.http.allow_registration,
            max_body_bytes: config.http.max_body_bytes,
            max_upload_bytes: config.http.max_upload_bytes,
            cors_origins: config.http.cors_origins.clone(),
            login_per_minute: config.http.login_per_minute,
            register_per_hour: config.http.register_per_hour,
            auth_cache_ttl: Duration::from_millis(config.http.auth_cache_ttl_ms),
            webhooks_allow_private_targets: config.webhooks.allow_private_targets,
            realtime: config.realtime.to_http(),
            detections: config.detections.policy()?,
        };
        let mut notify = config.notify_config(&http.public_url)?;
        notify.report_links.key = vigia_domain::links::LinkKey::derive(secret.as_bytes());
        let notifier = vigia_notify::Notifier::new(db.clone(), notify)?;
        let mut metrics = vigia_http::metrics::Metrics::new();
        let job_metrics = vigia_jobs::JobMetrics::new();
        job_metrics.register(metrics.registry_mut());
        let jobs = if config.jobs.enabled {
            Some(vigia_jobs::JobsRuntime::new(
                db.clone(),
                jobs::registry(config, &notifier, &objects),
                jobs::runtime_config(config)?,
                job_metrics,
            ))
        } else {
            None
        };
        let landing = match &jobs {
            Some(runtime) if config.landing.enabled => Some(landing::Landing {
                db: db.clone(),
                objects: objects.clone(),
                section: config.landing.clone(),
                wake: runtime.waker(),
            }),
            _ => None,
        };
        let state = AppState::with_metrics(db, objects, http, secret.as_bytes(), metrics);
        Ok(Self {
            listener,
            state,
            grace: Duration::from_secs(config.http.shutdown_grace_secs),
            limits,
            notifier,
            jobs,
            landing,
            mqtt: (!config.detections.mqtt_url.is_empty())
                .then(|| config.detections.mqtt_url.clone()),
            mqtt_stats: Arc::new(mqtt::MqttStats::default()),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// This node's MQTT ingestion counters.
    pub fn mqtt_stats(&self) -> Arc<mqtt::MqttStats> {
        self.mqtt_stats.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Plans and sends e-mails and webhooks (see `vigia_notify`).
    pub fn notifier(&self) -> &vigia_notify::Notifier {
        &self.notifier
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish (up to the
    /// grace period) and closes the database.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let db = self.state.db.clone();
        self.state.realtime.start(shutdown.clone());
        self.state.follow_standing_changes(shutdown.clone());
        if let Some(url) = self.mqtt.clone() {
            tokio::spawn(mqtt::run(
                self.state.clone(),
                url,
                shutdown.clone(),
                self.mqtt_stats.clone(),
            ));
        }
        let background = match self.jobs {
            Some(jobs) => Some(jobs.start(shutdown.clone()).await?),
            None => None,
        };
        let landing = self
            .landing
            .map(|landing| tokio::spawn(landing.run(shutdown.clone())));
        let app = vigia_http::app(self.state)
            .layer(axum::middleware::from_fn(
                vigia_http::listener::track_requests,
            ))
            .into_make_service_with_connect_info::<vigia_http::listener::Peer>();
        let stopping = shutdown.clone();
        let listener = vigia_http::listener::Listener::new(self.listener, self.limits);
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopping.cancelled().await });
        let grace = self.grace;
        tokio::select! {
            result = server => result.context("HTTP server failed")?,
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("in-flight requests did not finish within {} s; stopping anyway", grace.as_secs());
            }
        }
        if let Some(background) = background {
            // The workers wait up to `jobs.shutdown_grace_secs` for running jobs.
            let _ = background.await;
        }
        if let Some(landing) = landing {
            let _ = landing.await;
        }
        db.close().await;
        Ok(())
    }
}

/// Removes uploads a dead process left unfinished (older than an hour, so another node's
/// upload in progress is left alone). A failure is logged: it only leaves garbage behind.
async fn sweep_abandoned_uploads(db: &Db, objects: &Objects) {
    let before = Timestamp::from_millis(Timestamp::now().millis() - 3_600_000);
    match vigia_store::incidents::attachments::sweep_abandoned(db, objects, before).await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed unfinished uploads"),
        Err(error) => tracing::warn!(%error, "cannot remove unfinished uploads"),
    }
    match vigia_store::competitions::entries::sweep_abandoned(db, objects, before).await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed unfinished competition entries"),
        Err(error) => tracing::warn!(%error, "cannot remove unfinished competition entries"),
    }
}

/// Connects to the configured database and applies pending migrations.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let url = config.database_url();
    let db = Db::connect(&url, &config.db_options()).await?;
    let applied = db.migrate().await?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(db)
}

/// The token signing secret: configured, or generated once per data directory (single node).
fn jwt_secret(config: &Config, db: &Db) -> anyhow::Result<String> {
    if !config.auth.jwt_secret.is_empty() {
        return Ok(config.auth.jwt_secret.clone());
    }
    if !db.is_sqlite() {
        bail!(
            "with PostgreSQL, nodes must share a signing key: set auth.jwt_secret (VIGIA_AUTH__JWT_SECRET), \
             e.g. the output of `openssl rand -base64 48`"
        );
    }
    let path = config.data_dir.join("jwt.secret");
    read_or_create_secret(&path)
}

fn read_or_create_secret(path: &Path) -> anyhow::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= 32 {
            return Ok(existing);
        }
        bail!(
            "{} is shorter than 32 characters: delete it to generate a new one",
            path.display()
        );
    }
    let secret = random_secret("");
    write_private(path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a token signing key");
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Creates the configured admin when the database has no users yet.
async fn bootstrap_admin(config: &Config, db: &Db) -> anyhow::Result<()> {
    let (email, password) = (
        &config.bootstrap.admin_email,
        &config.bootstrap.admin_password,
    );
    if email.is_empty() && password.is_empty() {
        return Ok(());
    }
    let (count, _) = users::counts(db).await?;
    if count > 0 {
        return Ok(());
    }
    create_user(db, email, "Administrador", password, Role::Admin).await?;
    tracing::info!(%email, "created the first administrator from the bootstrap settings");
    Ok(())
}

/// Creates an account after checking the e-mail and password policy (used by the CLI).
pub async fn create_user(
    db: &Db,
    email: &str,
    name: &str,
    password: &str,
    role: Role,
) -> anyhow::Result<users::User> {
    create_user_in(db, email, name, password, role, &[]).await
}

/// Like [`create_user`], with memberships of `departments`, each named by id or by name (as
/// `vigia user create --department`). An unknown department is an error naming it, before
/// anything is created; the account and its memberships are written in one transaction.
pub async fn create_user_in(
    db: &Db,
    email: &str,
    name: &str,
    password: &str,
    role: Role,
    departments: &[String],
) -> anyhow::Result<users::User> {
    let departments = resolve_departments(db, departments).await?;
    let email = Email::parse("email", email).map_err(|e| anyhow::anyhow!("{e}"))?;
    let password = NewPassword::parse("password", password, Some(&email))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let display_name = vigia_domain::users::DisplayName::parse("name", name)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let new = users::NewUser {
        email,
        display_name: display_name.as_str().to_owned(),
        password_hash: hash_password(&password),
        role,
        locale: Locale::Es,
    };
    users::create_with_departments(db, &new, &departments, &vigia_store::ChangeAuthor::system())
        .await
        .map_err(|e| match e {
            vigia_store::StoreError::Duplicate { .. } => {
                anyhow::anyhow!("a user with that e-mail already exists")
            }
            other => anyhow::Error::new(other),
        })
}

/// The departments `names` refer to, each by id or by name (case does not matter).
pub async fn resolve_departments(
    db: &Db,
    names: &[String],
) -> anyhow::Result<Vec<vigia_domain::ids::DepartmentId>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let known = vigia_store::catalog::list_departments(db)
        .await
        .context("reading the departments")?;
    names
        .iter()
        .map(|raw| {
            let wanted = raw.trim();
            known
                .iter()
                .find(|d| {
                    wanted.parse::<i64>().ok() == Some(d.id.0)
                        || d.name.to_lowercase() == wanted.to_lowercase()
                })
                .map(|d| d.id)
                .ok_or_else(|| {
                    let list: Vec<String> = known
                        .iter()
                        .take(20)
                        .map(|d| format!("{} ({})", d.name, d.id.0))
                        .collect();
                    let list = if list.is_empty() {
                        "there are none yet".to_owned()
                    } else {
                        format!("known: {}", list.join(", "))
                    };
                    anyhow::anyhow!(
                        "--department {raw:?}: no department has that id or name ({list})"
                    )
                })
        })
        .collect()
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
