//! Configuration: embedded commented defaults < config file < `VIGIA_*` environment < flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The defaults, every key commented. Shipped inside the binary.
pub const DEFAULTS: &str = include_str!("../../../config/default.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub data_dir: PathBuf,
    pub mode: Mode,
    pub http: HttpSection,
    pub database: DatabaseSection,
    pub storage: StorageSection,
    pub auth: AuthSection,
    pub bootstrap: BootstrapSection,
    pub log: LogSection,
    pub email: EmailSection,
    pub webhooks: WebhooksSection,
    pub realtime: RealtimeSection,
    pub detections: DetectionsSection,
    pub jobs: crate::jobs::JobsSection,
    #[serde(default)]
    pub schedules: crate::jobs::Schedules,
    #[serde(default)]
    pub media: MediaSection,
    #[serde(default)]
    pub landing: LandingSection,
}

/// `[landing]`: how captures and reference photos are found as they land in storage
/// ([`crate::landing`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LandingSection {
    /// Watch the local directory / list the bucket after its cursor (on nodes with `[jobs]`).
    pub enabled: bool,
    /// A local file written in place is taken once nothing touched it for this long.
    pub settle_ms: u64,
    /// An image that does not look whole yet is waited for up to this long, then taken as is.
    pub incomplete_wait_secs: u64,
    /// S3: list the keys after the cursor this often.
    pub s3_poll_ms: u64,
    /// S3: keys per listing request (S3 answers at most 1,000).
    pub s3_page: usize,
}

impl Default for LandingSection {
    fn default() -> Self {
        Self {
            enabled: true,
            settle_ms: 200,
            incomplete_wait_secs: 30,
            s3_poll_ms: 500,
            s3_page: 1000,
        }
    }
}

/// `[media]`: video processing (face analysis reads its models from `VIGIA_MODELS_DIR`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaSection {
    /// Videos longer than this fail with a reason instead of being processed.
    pub max_video_secs: u64,
    /// One FFmpeg run (probe, transcode, stills) is stopped after this long.
    pub ffmpeg_timeout_secs: u64,
    pub ffmpeg_path: String,
    pub ffprobe_path: String,
}

impl Default for MediaSection {
    fn default() -> Self {
        Self {
            max_video_secs: 600,
            ffmpeg_timeout_secs: 1800,
            ffmpeg_path: "ffmpeg".into(),
            ffprobe_path: "ffprobe".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Development,
    Production,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpSection {
    pub listen: String,
    pub public_url: String,
    pub max_body_bytes: usize,
    pub max_upload_bytes: usize,
    pub cors_origins: Vec<String>,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_days: u64,
    pub allow_registration: bool,
    pub login_per_minute: u32,
    pub register_per_hour: u32,
    pub auth_cache_ttl_ms: u64,
    pub shutdown_grace_secs: u64,
    pub header_read_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub max_connections: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseSection {
    pub url: String,
    pub max_connections: u32,
    pub sqlite_synchronous: String,
    pub busy_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageSection {
    pub url: String,
    pub s3_endpoint: String,
    pub s3_region: String,
    pub s3_allow_http: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthSection {
    pub jwt_secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootstrapSection {
    pub admin_email: String,
    pub admin_password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogSection {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[email]`: outgoing mail over SMTP.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmailSection {
    pub enabled: bool,
    pub smtp_host: String,
    pub smtp_port: u16,
    /// `none`, `starttls` or `tls`.
    pub smtp_mode: String,
    pub smtp_user: String,
    pub smtp_password: String,
    pub smtp_ca_file: String,
    pub from: String,
    pub emergency_recipients: Vec<String>,
    pub report_recipients: Vec<String>,
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_secs: u64,
    pub report_link_ttl_days: u64,
    /// E-mails one recipient gets a minute before the rest are gathered into a digest
    /// (0: never); emergencies are never held.
    pub digest_after_per_minute: u32,
    /// How long a digest gathers before it is sent.
    pub digest_window_secs: u64,
}

/// `[webhooks]`: outgoing Standard Webhooks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhooksSection {
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_secs: u64,
    pub allow_private_targets: bool,
    pub disable_after_failures: u32,
}

impl Config {
    /// The notifier's settings; `public_url` is the resolved one.
    pub fn notify_config(&self, public_url: &str) -> anyhow::Result<vigia_notify::NotifyConfig> {
        let e = &self.email;
        let w = &self.webhooks;
        let smtp_mode = vigia_notify::SmtpMode::parse(&e.smtp_mode).with_context(|| {
            format!(
                "email.smtp_mode must be \"none\", \"starttls\" or \"tls\", not {:?}",
                e.smtp_mode
            )
        })?;
        Ok(vigia_notify::NotifyConfig {
            public_url: public_url.to_owned(),
            email: vigia_notify::EmailSettings {
                enabled: e.enabled,
                smtp_host: e.smtp_host.clone(),
                smtp_port: e.smtp_port,
                smtp_mode,
                smtp_user: e.smtp_user.clone(),
                smtp_password: e.smtp_password.clone(),
                smtp_ca_file: e.smtp_ca_file.clone(),
                from: e.from.clone(),
                emergency_recipients: e.emergency_recipients.clone(),
                report_recipients: e.report_recipients.clone(),
                timeout: Duration::from_secs(e.timeout_secs.max(1)),
                retry: vigia_notify::RetryPolicy {
                    max_attempts: e.max_attempts.max(1),
                    base: Duration::from_millis(e.retry_base_ms),
                    max: Duration::from_secs(e.retry_max_secs.max(1)),
                },
                digest: vigia_notify::DigestPolicy {
                    after_per_minute: e.digest_after_per_minute,
                    window: Duration::from_secs(e.digest_window_secs.max(1)),
                },
            },
            webhooks: vigia_notify::WebhookSettings {
                timeout: Duration::from_secs(w.timeout_secs.max(1)),
                retry: vigia_notify::RetryPolicy {
                    max_attempts: w.max_attempts.max(1),
                    base: Duration::from_millis(w.retry_base_ms),
                    max: Duration::from_secs(w.retry_max_secs.max(1)),
                },
                allow_private_targets: w.allow_private_targets,
                disable_after_failures: w.disable_after_failures.max(1),
            },
            report_links: vigia_notify::ReportLinkSettings {
                // The running server derives it from its resolved secret (`Application::build`).
                key: if self.auth.jwt_secret.is_empty() {
                    vigia_domain::links::LinkKey::random()
                } else {
                    vigia_domain::links::LinkKey::derive(self.auth.jwt_secret.as_bytes())
                },
                ttl: Duration::from_secs(e.report_link_ttl_days.max(1).saturating_mul(86_400)),
            },
        })
    }
}

/// `[detections]`: device detections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DetectionsSection {
    pub labels: Vec<String>,
    pub max_future_skew_secs: u64,
    pub retention_days: u64,
    pub rollup_retention_days: u64,
    pub mqtt_url: String,
}

impl DetectionsSection {
    /// The ingestion policy, or a message naming the bad key.
    pub fn policy(&self) -> anyhow::Result<vigia_domain::detections::IngestPolicy> {
        let vocabulary =
            vigia_domain::detections::Vocabulary::parse("detections.labels", &self.labels)
                .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
        Ok(vigia_domain::detections::IngestPolicy {
            vocabulary,
            max_future_skew_ms: (self.max_future_skew_secs.min(86_400) * 1000) as i64,
            max_extra_bytes: 4096,
        })
    }
}

/// `[realtime]`: WebSocket and Server-Sent Events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealtimeSection {
    pub heartbeat_secs: u64,
    pub replay_window_secs: u64,
    pub queue_capacity: usize,
    pub max_connections_per_user: usize,
    pub max_connections: usize,
    pub max_message_bytes: usize,
    pub ws_read_buffer_bytes: usize,
    pub poll_interval_ms: u64,
    pub socket_send_buffer_bytes: usize,
    pub auth_recheck_secs: u64,
}

impl RealtimeSection {
    pub fn to_http(&self) -> vigia_http::realtime::RealtimeConfig {
        vigia_http::realtime::RealtimeConfig {
            heartbeat: Duration::from_secs(self.heartbeat_secs.max(1)),
            replay_window: Duration::from_secs(self.replay_window_secs),
            queue_capacity: self.queue_capacity.max(1),
            max_connections_per_user: self.max_connections_per_user,
            max_connections: self.max_connections,
            max_message_bytes: self.max_message_bytes.max(256),
            ws_read_buffer_bytes: self.ws_read_buffer_bytes.max(128),
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(10)),
            auth_recheck: Duration::from_secs(self.auth_recheck_secs.max(1)),
        }
    }
}

/// Values given on the command line; `None` leaves the configured value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

impl Config {
    /// Loads the layers. `file` is `--config`; without it `./vigia.toml` is read if present.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        match file {
            Some(path) => {
                if !path.exists() {
                    bail!("config file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("vigia.toml")),
        }
        figment = figment.merge(
            Env::prefixed("VIGIA_")
                .split("__")
                .filter(|k| !k.as_str().starts_with("test_")),
        );
        let mut flat = serde_json::Map::new();
        if let Some(dir) = &overrides.data_dir {
            flat.insert("data_dir".into(), serde_json::json!(dir));
        }
        if let Some(url) = &overrides.database_url {
            flat.insert("database".into(), serde_json::json!({ "url": url }));
        }
        if let Some(url) = &overrides.storage_url {
            flat.insert("storage".into(), serde_json::json!({ "url": url }));
        }
        if let Some(listen) = &overrides.listen {
            flat.insert("http".into(), serde_json::json!({ "listen": listen }));
        }
        figment = figment.merge(Serialized::defaults(serde_json::Value::Object(flat)));
        let config: Config = figment
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.listen_addr()?;
        if !["full", "normal"].contains(&self.database.sqlite_synchronous.as_str()) {
            bail!("database.sqlite_synchronous must be \"full\" or \"normal\"");
        }
        if !self.auth.jwt_secret.is_empty() && self.auth.jwt_secret.len() < 32 {
            bail!("auth.jwt_secret must be at least 32 characters long");
        }
        if self.mode == Mode::Production && self.auth.jwt_secret.is_empty() {
            bail!(
                "production mode needs auth.jwt_secret (VIGIA_AUTH__JWT_SECRET): generate one with `openssl rand -base64 48`"
            );
        }
        if self.http.access_token_ttl_secs == 0 || self.http.refresh_token_ttl_days == 0 {
            bail!("token lifetimes must be positive");
        }
        self.notify_config("")?;
        for (i, to) in self.email.emergency_recipients.iter().enumerate() {
            if vigia_domain::users::Email::parse("email", to).is_err() {
                bail!("email.emergency_recipients[{i}] {to:?} is not an e-mail address");
            }
        }
        for (i, to) in self.email.report_recipients.iter().enumerate() {
            if vigia_domain::users::Email::parse("email", to).is_err() {
                bail!("email.report_recipients[{i}] {to:?} is not an e-mail address");
            }
        }
        crate::jobs::validate(self)?;
        if self.landing.s3_poll_ms == 0 || !(1..=1000).contains(&self.landing.s3_page) {
            bail!("landing.s3_poll_ms must be positive and landing.s3_page from 1 to 1000");
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.http.listen.parse().with_context(|| {
            format!(
                "http.listen {:?} is not an address such as 127.0.0.1:8080",
                self.http.listen
            )
        })
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("vigia.db").display())
        } else {
            self.database.url.clone()
        }
    }

    /// The object storage URL, defaulting to a directory in the data directory.
    pub fn storage_url(&self) -> String {
        if self.storage.url.is_empty() {
            self.data_dir.join("objects").display().to_string()
        } else {
            self.storage.url.clone()
        }
    }

    pub fn db_options(&self) -> vigia_store::DbOptions {
        vigia_store::DbOptions {
            max_connections: self.database.max_connections,
            busy_timeout: Duration::from_millis(self.database.busy_timeout_ms),
            sqlite_synchronous: self.database.sqlite_synchronous.clone(),
        }
    }

    pub fn s3_options(&self) -> vigia_store::objects::S3Options {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        vigia_store::objects::S3Options {
            endpoint: non_empty(&self.storage.s3_endpoint),
            region: non_empty(&self.storage.s3_region),
            allow_http: self.storage.s3_allow_http,
        }
    }

    /// The effective configuration as TOML with secrets replaced by `<redacted>`.
    pub fn redacted_toml(&self) -> anyhow::Result<String> {
        let mut shown = self.clone();
        let redact = |s: &mut String| {
            if !s.is_empty() {
                *s = "<redacted>".into();
            }
        };
        redact(&mut shown.auth.jwt_secret);
        redact(&mut shown.bootstrap.admin_password);
        redact(&mut shown.email.smtp_password);
        shown.database.url = redact_url_password(&shown.database.url);
        toml::to_string_pretty(&shown).context("cannot render the configuration")
    }
}

/// `postgres://u:secret@h/db` → `postgres://u:<redacted>@h/db`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_load_and_flags_win() {
        let overrides = Overrides {
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        };
        let config = Config::load(None, &overrides).expect("defaults load");
        assert_eq!(config.http.listen, "127.0.0.1:0");
        assert!(config.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url_password("postgres://vigia:s3cret@db/vigia"),
            "postgres://vigia:<redacted>@db/vigia"
        );
        assert_eq!(
            redact_url_password("sqlite://data/vigia.db"),
            "sqlite://data/vigia.db"
        );
    }
}
