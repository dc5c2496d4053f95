//! Authentication (who is calling) as extractors, and the authorization checks every handler
//! uses. This is the one place that turns credentials into a [`Principal`].
//!
//! Credentials: `Authorization: Bearer <access token>` for people, `Authorization: Bearer vak_…`
//! or `X-Api-Key: vak_…` for devices and integrations, and for a browser UI the
//! [`SESSION_COOKIE`] set by `POST /api/v1/auth/login` with `"cookie": true`. A request
//! authenticated by the cookie that changes something (any method but GET, HEAD, OPTIONS), or
//! opens a WebSocket, must come from this server's own origin (the `Origin` header, or
//! `Referer` when there is none): cross-site request forgery and cross-site WebSocket
//! hijacking are refused with 403.

pub mod hashing;
pub mod token;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use dashmap::DashMap;
use vigia_domain::Timestamp;
use vigia_domain::auth::{API_KEY_PREFIX, ApiKeyPrincipal, Principal, UserPrincipal, secret_hash};
use vigia_domain::ids::{ApiKeyId, SessionId, UserId};
use vigia_domain::users::Role;
use vigia_store::{ChangeAuthor, api_keys, users};

use crate::access::Keys;
use crate::error::ApiError;
use crate::state::AppState;

/// An API key in good standing, with its expiry.
type ActiveKey = (ApiKeyPrincipal, Option<Timestamp>);

/// Recently verified standings of sessions and API keys, so that a request costs no database
/// round trip. Entries live for a short TTL; changes invalidate them at once.
///
/// A standing read from the database before a change committed must not be cached after the
/// change was forgotten: every forget moves the [`AuthCache::epoch`] on, and a reader that
/// sees it moved while it read drops what it cached.
pub struct AuthCache {
    ttl: Duration,
    sessions: DashMap<(UserId, SessionId), (Instant, Option<UserPrincipal>)>,
    keys: DashMap<String, (Instant, Option<ActiveKey>)>,
    key_touched: DashMap<ApiKeyId, Instant>,
    epoch: AtomicU64,
}

impl AuthCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            sessions: DashMap::new(),
            keys: DashMap::new(),
            key_touched: DashMap::new(),
            epoch: AtomicU64::new(0),
        }
    }

    /// How many times a standing was forgotten: a credential checked at one epoch may have
    /// been revoked if the epoch has moved since.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Forgets everything cached about `user` (role change, disable, logout, password change).
    pub fn forget_user(&self, user: UserId) {
        self.bump();
        self.sessions.retain(|(u, _), _| *u != user);
    }

    /// Forgets every cached session (a stolen refresh token revoked one we cannot name cheaply).
    pub fn forget_all_sessions(&self) {
        self.bump();
        self.sessions.clear();
    }

    /// Forgets every cached API key (a key was revoked).
    pub fn forget_keys(&self) {
        self.bump();
        self.keys.clear();
    }
}

/// The authenticated caller. Rejects with 401 when credentials are missing or invalid.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

/// The caller if credentials were sent; anonymous otherwise. Invalid credentials still get 401,
/// so a client never silently loses its identity.
#[derive(Debug, Clone)]
pub struct MaybeAuth(pub Option<Principal>);

const MISSING: ApiError = ApiError::Unauthorized {
    detail: "sign in: send Authorization: Bearer <token>",
};
const INVALID: ApiError = ApiError::Unauthorized {
    detail: "the token is invalid, expired or revoked: sign in again",
};
const INVALID_KEY: ApiError = ApiError::Unauthorized {
    detail: "the API key is invalid, expired or revoked",
};

/// The cookie that carries a browser session's access token (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "vigia_session";
/// The cookie that carries a browser session's refresh token, sent only to `/api/v1/auth`.
pub const REFRESH_COOKIE: &str = "vigia_refresh";

/// Where a credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `Authorization` or `X-Api-Key`: never sent by a browser on its own.
    Header,
    /// The session cookie: a browser sends it with every request to this server, so requests
    /// that act must prove they come from this server's pages.
    Cookie,
}

/// The secret a caller presented, and where it came from.
pub fn credential(parts: &Parts) -> Option<(&str, Source)> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, rest) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then_some((rest.trim(), Source::Header));
    }
    if let Some(key) = parts.headers.get("x-api-key") {
        return key.to_str().ok().map(|k| (k.trim(), Source::Header));
    }
    cookie(parts, SESSION_COOKIE).map(|token| (token, Source::Cookie))
}

/// The value of the cookie `name`, if the request carries it.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

const CROSS_SITE: ApiError = ApiError::Forbidden {
    detail: "a cookie-authenticated request that acts must come from this server's own pages \
             (its Origin does not match); API clients send Authorization: Bearer instead",
};

/// Whether a cookie-authenticated request must prove its origin: it changes something, or it
/// opens a WebSocket (browsers do not apply CORS to WebSocket handshakes).
fn needs_same_origin(parts: &Parts) -> bool {
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    !safe || upgrade
}

/// Refuses a request whose `Origin` (or, without one, `Referer`) is not this server: either
/// the configured public URL or the `Host` the request was sent to. A request with neither
/// header is refused too: every browser sends `Origin` on such requests.
pub fn check_same_origin(parts: &Parts, public_url: &str) -> Result<(), ApiError> {
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .or_else(|| parts.headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .and_then(origin_of)
        .ok_or(CROSS_SITE)?;
    let public = origin_of(public_url);
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| h.to_ascii_lowercase());
    let (_, origin_host) = origin.split_once("://").ok_or(CROSS_SITE)?;
    if public.as_deref() == Some(origin.as_str()) || host.as_deref() == Some(origin_host) {
        Ok(())
    } else {
        Err(CROSS_SITE)
    }
}

/// `scheme://host[:port]` of a URL, lowercased; `None` for `null` or anything unreadable.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || !matches!(scheme, "http" | "https") {
        return None;
    }
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = authenticate_request(parts, state).await?;
        Ok(MaybeAuth(
            caller.map(|(_, authenticated)| authenticated.principal),
        ))
    }
}

/// The credential a request carries and who it belongs to; `None` when it carries none. A
/// malformed `Authorization` header is refused rather than ignored, and so is a session cookie
/// that acts from another origin, and an API key the route's row in [`crate::access::TABLE`]
/// does not admit (every extractor of a caller comes through here).
pub async fn authenticate_request<'p>(
    parts: &'p Parts,
    state: &AppState,
) -> Result<Option<(&'p str, Authenticated)>, ApiError> {
    if parts.headers.contains_key(header::AUTHORIZATION) && credential(parts).is_none() {
        return Err(INVALID);
    }
    let Some((secret, source)) = credential(parts) else {
        return Ok(None);
    };
    if source == Source::Cookie && needs_same_origin(parts) {
        check_same_origin(parts, &state.config.public_url)?;
    }
    let authenticated = authenticate(state, secret).await?;
    if let Principal::ApiKey(key) = &authenticated.principal {
        crate::access::check_key(parts.extensions.get::<Keys>().copied(), key)?;
    }
    Ok(Some((secret, authenticated)))
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match MaybeAuth::from_request_parts(parts, state).await? {
            MaybeAuth(Some(principal)) => Ok(Auth(principal)),
            MaybeAuth(None) => Err(MISSING),
        }
    }
}

/// Who a secret belongs to, and until when it may be used.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    /// When the access token or API key expires; `None` for a key without expiry.
    pub expires_at: Option<Timestamp>,
}

/// Turns a secret (an access token or an API key) into its caller.
pub async fn authenticate(state: &AppState, secret: &str) -> Result<Authenticated, ApiError> {
    if secret.starts_with(API_KEY_PREFIX) {
        let (principal, expires_at) = authenticate_key(state, secret).await?;
        Ok(Authenticated {
            principal: Principal::ApiKey(principal),
            expires_at,
        })
    } else {
        let (principal, expires_at) = authenticate_user(state, secret).await?;
        Ok(Authenticated {
            principal: Principal::User(principal),
            expires_at: Some(expires_at),
        })
    }
}

/// A credential checked again, for a connection that outlives a request.
#[derive(Debug, Clone)]
pub enum Standing {
    Valid(Authenticated),
    /// The access token or API key reached its expiry.
    Expired,
    /// Signed out, session revoked, account disabled, key revoked, or no longer readable.
    Revoked,
}

/// Checks a secret again, telling an expiry apart from a revocation.
pub async fn recheck(state: &AppState, secret: &str) -> Standing {
    let now = Timestamp::now();
    if !secret.starts_with(API_KEY_PREFIX)
        && state.tokens.verify(secret, now) == Err(token::TokenError::Expired)
    {
        return Standing::Expired;
    }
    match authenticate(state, secret).await {
        Ok(authenticated)
            if authenticated
                .expires_at
                .is_some_and(|at| at.millis() <= now.millis()) =>
        {
            Standing::Expired
        }
        Ok(authenticated) => Standing::Valid(authenticated),
        Err(_) => Standing::Revoked,
    }
}

async fn authenticate_user(
    state: &AppState,
    token: &str,
) -> Result<(UserPrincipal, Timestamp), ApiError> {
    let now = Timestamp::now();
    let claims = state.tokens.verify(token, now).map_err(|_| INVALID)?;
    let expires_at = Timestamp::from_millis(claims.exp.saturating_mul(1000));
    let key = (claims.user(), claims.session());
    if let Some(entry) = state.auth_cache.sessions.get(&key)
        && entry.0.elapsed() < state.auth_cache.ttl
    {
        return entry.1.clone().map(|p| (p, expires_at)).ok_or(INVALID);
    }
    let epoch = state.auth_cache.epoch();
    let standing = users::auth_state(&state.db, key.0, key.1, now).await?;
    let principal = standing
        .filter(|s| !s.disabled && s.session_active)
        .map(|s| UserPrincipal {
            user_id: key.0,
            session_id: key.1,
            role: s.role,
            departments: s.departments,
        });
    let cache = &state.auth_cache;
    cache
        .sessions
        .insert(key, (Instant::now(), principal.clone()));
    if cache.epoch() != epoch {
        // Something was forgotten while we read: what we read may predate it.
        cache.sessions.remove(&key);
    }
    principal.map(|p| (p, expires_at)).ok_or(INVALID)
}

async fn authenticate_key(
    state: &AppState,
    secret: &str,
) -> Result<(ApiKeyPrincipal, Option<Timestamp>), ApiError> {
    let now = Timestamp::now();
    let hash = secret_hash(secret);
    let cached = state
        .auth_cache
        .keys
        .get(&hash)
        .filter(|entry| entry.0.elapsed() < state.auth_cache.ttl)
        .map(|entry| entry.1.clone());
    let principal = match cached {
        Some(principal) => principal,
        None => {
            let epoch = state.auth_cache.epoch();
            let principal = api_keys::find_active_by_hash(&state.db, &hash, now)
                .await?
                .map(|key| {
                    let principal = ApiKeyPrincipal {
                        key_id: key.id,
                        created_by: key.created_by,
                        scopes: key.scopes,
                        departments: key.departments,
                    };
                    (principal, key.expires_at)
                });
            let cache = &state.auth_cache;
            cache
                .keys
                .insert(hash.clone(), (Instant::now(), principal.clone()));
            if cache.epoch() != epoch {
                cache.keys.remove(&hash);
            }
            principal
        }
    };
    let (principal, expires_at) = principal.ok_or(INVALID_KEY)?;
    touch_key(state, principal.key_id, now).await;
    Ok((principal, expires_at))
}

/// Records a key's last use at most once a minute (it is a write).
async fn touch_key(state: &AppState, key: ApiKeyId, now: Timestamp) {
    let due = state
        .auth_cache
        .key_touched
        .get(&key)
        .is_none_or(|at| at.elapsed() >= Duration::from_secs(60));
    if due {
        state.auth_cache.key_touched.insert(key, Instant::now());
        if let Err(error) = api_keys::touch(&state.db, key, now).await {
            tracing::warn!(%error, api_key = %key, "cannot record API key use");
        }
    }
}

/// An authenticated administrator. Handlers that only admins may call take this instead of
/// [`Auth`], so a non-admin gets 403 before the body is even read.
#[derive(Debug, Clone)]
pub struct Admin(pub Auth);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_request_parts(parts, state).await?;
        auth.require_admin()?;
        Ok(Admin(auth))
    }
}

impl Admin {
    /// `auth` as an admin, checked as the extractor checks it (for the web UI's forms, which
    /// call the API's handlers with the caller they authenticated).
    pub fn check(auth: Auth) -> Result<Admin, ApiError> {
        auth.require_admin()?;
        Ok(Admin(auth))
    }
}

impl std::ops::Deref for Admin {
    type Target = Auth;
    fn deref(&self) -> &Auth {
        &self.0
    }
}

const NOT_ADMIN: ApiError = ApiError::Forbidden {
    detail: "only administrators may do this",
};
const NOT_STAFF: ApiError = ApiError::Forbidden {
    detail: "only staff and administrators may do this",
};
const NOT_A_PERSON: ApiError = ApiError::Forbidden {
    detail: "this endpoint is for people, not API keys",
};

impl Auth {
    /// Admins only.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.is_admin() {
            Ok(())
        } else {
            Err(NOT_ADMIN)
        }
    }

    /// Staff or admins; an API key acts as staff of its departments (the route's row in
    /// [`crate::access::TABLE`] has already checked its scopes).
    pub fn require_staff(&self) -> Result<(), ApiError> {
        match &self.0 {
            Principal::User(u) if u.role >= Role::Staff => Ok(()),
            Principal::ApiKey(_) => Ok(()),
            Principal::User(_) => Err(NOT_STAFF),
        }
    }

    /// The signed-in person (API keys are refused).
    pub fn user(&self) -> Result<&UserPrincipal, ApiError> {
        match &self.0 {
            Principal::User(u) => Ok(u),
            Principal::ApiKey(_) => Err(NOT_A_PERSON),
        }
    }

    /// The caller as the author of a change, recorded in the audit log and event history.
    pub fn actor(&self, request_id: Option<String>) -> ChangeAuthor {
        ChangeAuthor {
            label: self.0.label(),
            request_id,
        }
    }
}
