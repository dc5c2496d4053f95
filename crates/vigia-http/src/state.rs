//! What every handler shares: the database, object storage, settings, keys, metrics, limits.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigia_store::standing::{self, Change};
use vigia_store::{Db, Objects};

use crate::auth::AuthCache;
use crate::auth::hashing::Hashing;
use crate::auth::token::TokenKeys;
use crate::limits::RateLimits;
use crate::metrics::Metrics;

/// HTTP settings, resolved from the configuration by the binary.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where users reach this server, for links and the startup banner.
    pub public_url: String,
    /// Lifetime of access tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens (and so of an idle session).
    pub refresh_token_ttl: Duration,
    /// Whether people may create reporter accounts themselves. An admin can change it at run
    /// time through the `registration.enabled` setting.
    pub allow_registration: bool,
    /// Largest JSON body accepted.
    pub max_body_bytes: usize,
    /// Largest attachment accepted, in bytes (the upload route alone allows bodies this big).
    pub max_upload_bytes: usize,
    /// Origins allowed by CORS; empty means same-origin only, `*` any.
    pub cors_origins: Vec<String>,
    /// Login attempts allowed per client address per minute (and per account per minute),
    /// across all nodes.
    pub login_per_minute: u32,
    /// Registrations allowed per client address per hour, across all nodes.
    pub register_per_hour: u32,
    /// How long a verified user/session standing is reused before the database is asked again.
    /// Changes take effect at once on every node; this bounds one whose announcement was lost.
    pub auth_cache_ttl: Duration,
    /// Webhook endpoints may point at loopback/private/link-local addresses (SSRF guard off).
    pub webhooks_allow_private_targets: bool,
    /// WebSocket/SSE settings.
    pub realtime: crate::realtime::RealtimeConfig,
    /// What detections are accepted (labels, clock skew).
    pub detections: vigia_domain::detections::IngestPolicy,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            allow_registration: true,
            max_body_bytes: 1024 * 1024,
            max_upload_bytes: 25 * 1024 * 1024,
            cors_origins: Vec::new(),
            login_per_minute: 10,
            register_per_hour: 20,
            auth_cache_ttl: Duration::from_secs(2),
            webhooks_allow_private_targets: false,
            realtime: Default::default(),
            detections: Default::default(),
        }
    }
}

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: Db,
    pub objects: Objects,
    pub config: HttpConfig,
    pub tokens: TokenKeys,
    /// Signs and verifies the report links e-mails carry (derived from the server's secret).
    pub link_key: vigia_domain::links::LinkKey,
    pub metrics: Metrics,
    pub limits: RateLimits,
    pub auth_cache: AuthCache,
    /// Password hashing, one per core at a time.
    pub hashing: Hashing,
    pub realtime: crate::realtime::Hub,
    /// Detection ingestion and this node's alert rule engine.
    pub ingestion: crate::detections::Ingestion,
    /// This node, in the standing changes it announces (so it skips its own).
    node: u64,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// A user's standing changed (role, departments, disabled, signed out, new password): drop
    /// what is cached about it and have their open real-time connections check it again now,
    /// here and on every other node.
    pub fn forget_user(&self, user: vigia_domain::ids::UserId) {
        self.apply(Change::User(user));
        self.announce(Change::User(user));
    }

    /// A session we cannot name cheaply was revoked (a reused refresh token).
    pub fn forget_all_sessions(&self) {
        self.apply(Change::AllSessions);
        self.announce(Change::AllSessions);
    }

    /// An API key was revoked or changed.
    pub fn forget_keys(&self) {
        self.apply(Change::Keys);
        self.announce(Change::Keys);
    }

    /// Applies a standing change on this node: cached standings dropped first, then the
    /// connections concerned told to check again (which then read the database).
    fn apply(&self, change: Change) {
        match change {
            Change::User(user) => {
                self.auth_cache.forget_user(user);
                self.realtime.recheck_user(user);
            }
            Change::AllSessions => {
                self.auth_cache.forget_all_sessions();
                self.realtime.recheck_all();
            }
            Change::Keys => {
                self.auth_cache.forget_keys();
                self.realtime.recheck_all();
            }
        }
    }

    /// Tells the other nodes (the change is committed already).
    fn announce(&self, change: Change) {
        let (db, node) = (self.db.clone(), self.node);
        tokio::spawn(async move {
            if let Err(error) = standing::announce(&db, node, change).await {
                tracing::warn!(%error, ?change, "cannot tell other nodes about a standing change");
            }
        });
    }

    /// Applies the standing changes other nodes announce, until `shutdown` (PostgreSQL only;
    /// a SQLite database has one node).
    pub fn follow_standing_changes(&self, shutdown: CancellationToken) {
        let state = self.clone();
        tokio::spawn(async move {
            let on_change = |change| state.apply(change);
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = standing::listen(state.db.clone(), state.node, on_change) => {}
            }
        });
    }

    pub fn new(db: Db, objects: Objects, config: HttpConfig, jwt_secret: &[u8]) -> Self {
        Self::with_metrics(db, objects, config, jwt_secret, Metrics::new())
    }

    /// Like [`AppState::new`], with a metrics registry other parts of Vigía (the job workers)
    /// registered their own metrics in.
    pub fn with_metrics(
        db: Db,
        objects: Objects,
        config: HttpConfig,
        jwt_secret: &[u8],
        mut metrics: Metrics,
    ) -> Self {
        let limits = RateLimits::new(config.login_per_minute, config.register_per_hour);
        let auth_cache = AuthCache::new(config.auth_cache_ttl);
        let tally = crate::realtime::detections::Tally::default();
        let realtime = crate::realtime::Hub::new(
            db.clone(),
            config.realtime.clone(),
            metrics.registry_mut(),
            tally.clone(),
        );
        Self(Arc::new(Inner {
            db,
            objects,
            tokens: TokenKeys::new(jwt_secret),
            link_key: vigia_domain::links::LinkKey::derive(jwt_secret),
            metrics,
            realtime,
            limits,
            auth_cache,
            hashing: Hashing::per_core(),
            ingestion: crate::detections::Ingestion::new(config.detections.clone(), tally),
            config,
            node: rand::random(),
        }))
    }
}
