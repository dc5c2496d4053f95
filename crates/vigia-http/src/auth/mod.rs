//! Authentication (who is calling) as extractors, and the authorization checks every handler
//! uses. This is the one place that turns credentials into a [`Principal`].
//!
//! Credentials: `Authorization: Bearer <access token>` for people, `Authorization: Bearer vak_…`
//! or `X-Api-Key: vak_…` for devices and integrations.

pub mod token;

use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use dashmap::DashMap;
use vigia_domain::Timestamp;
use vigia_domain::auth::{
    API_KEY_PREFIX, ApiKeyPrincipal, Principal, Scope, UserPrincipal, secret_hash,
};
use vigia_domain::ids::{ApiKeyId, SessionId, UserId};
use vigia_domain::users::Role;
use vigia_store::{Actor, api_keys, users};

use crate::error::ApiError;
use crate::state::AppState;

/// Recently verified standings of sessions and API keys, so that a request costs no database
/// round trip. Entries live for a short TTL; changes made through this node invalidate them at
/// once.
pub struct AuthCache {
    ttl: Duration,
    sessions: DashMap<(UserId, SessionId), (Instant, Option<UserPrincipal>)>,
    keys: DashMap<String, (Instant, Option<ApiKeyPrincipal>)>,
    key_touched: DashMap<ApiKeyId, Instant>,
}

impl AuthCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            sessions: DashMap::new(),
            keys: DashMap::new(),
            key_touched: DashMap::new(),
        }
    }

    /// Forgets everything cached about `user` (role change, disable, logout, password change).
    pub fn forget_user(&self, user: UserId) {
        self.sessions.retain(|(u, _), _| *u != user);
    }

    /// Forgets every cached session (a stolen refresh token revoked one we cannot name cheaply).
    pub fn forget_all_sessions(&self) {
        self.sessions.clear();
    }

    /// Forgets every cached API key (a key was revoked).
    pub fn forget_keys(&self) {
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

fn credential(parts: &Parts) -> Option<&str> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, rest) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim());
    }
    parts
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) && credential(parts).is_none() {
            return Err(INVALID);
        }
        let Some(secret) = credential(parts) else {
            return Ok(MaybeAuth(None));
        };
        let principal = if secret.starts_with(API_KEY_PREFIX) {
            Principal::ApiKey(authenticate_key(state, secret).await?)
        } else {
            Principal::User(authenticate_user(state, secret).await?)
        };
        Ok(MaybeAuth(Some(principal)))
    }
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

async fn authenticate_user(state: &AppState, token: &str) -> Result<UserPrincipal, ApiError> {
    let now = Timestamp::now();
    let claims = state.tokens.verify(token, now).map_err(|_| INVALID)?;
    let key = (claims.user(), claims.session());
    if let Some(entry) = state.auth_cache.sessions.get(&key)
        && entry.0.elapsed() < state.auth_cache.ttl
    {
        return entry.1.clone().ok_or(INVALID);
    }
    let standing = users::auth_state(&state.db, key.0, key.1, now).await?;
    let principal = standing
        .filter(|s| !s.disabled && s.session_active)
        .map(|s| UserPrincipal {
            user_id: key.0,
            session_id: key.1,
            role: s.role,
            departments: s.departments,
        });
    state
        .auth_cache
        .sessions
        .insert(key, (Instant::now(), principal.clone()));
    principal.ok_or(INVALID)
}

async fn authenticate_key(state: &AppState, secret: &str) -> Result<ApiKeyPrincipal, ApiError> {
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
            let principal = api_keys::find_active_by_hash(&state.db, &hash, now)
                .await?
                .map(|key| ApiKeyPrincipal {
                    key_id: key.id,
                    created_by: key.created_by,
                    scopes: key.scopes,
                    departments: key.departments,
                });
            state
                .auth_cache
                .keys
                .insert(hash, (Instant::now(), principal.clone()));
            principal
        }
    };
    let principal = principal.ok_or(INVALID_KEY)?;
    touch_key(state, principal.key_id, now).await;
    Ok(principal)
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

    /// Staff or admins; API keys with `scope` act as staff of their departments.
    pub fn require_staff(&self, scope: Scope) -> Result<(), ApiError> {
        match &self.0 {
            Principal::User(u) if u.role >= Role::Staff => Ok(()),
            Principal::ApiKey(k) if k.scopes.contains(&scope) => Ok(()),
            Principal::ApiKey(_) => Err(missing_scope(scope)),
            Principal::User(_) => Err(NOT_STAFF),
        }
    }

    /// Any signed-in person or an API key carrying `scope`.
    pub fn require_scope(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.allows(scope) {
            Ok(())
        } else {
            Err(missing_scope(scope))
        }
    }

    /// The signed-in person (API keys are refused).
    pub fn user(&self) -> Result<&UserPrincipal, ApiError> {
        match &self.0 {
            Principal::User(u) => Ok(u),
            Principal::ApiKey(_) => Err(NOT_A_PERSON),
        }
    }

    /// The caller as recorded in the audit log and event history.
    pub fn actor(&self, request_id: Option<String>) -> Actor {
        Actor {
            label: self.0.label(),
            request_id,
        }
    }
}

fn missing_scope(scope: Scope) -> ApiError {
    ApiError::Forbidden {
        detail: match scope {
            Scope::CatalogRead => "this API key lacks the catalog:read scope",
            Scope::IncidentsRead => "this API key lacks the incidents:read scope",
            Scope::IncidentsWrite => "this API key lacks the incidents:write scope",
            Scope::DetectionsWrite => "this API key lacks the detections:write scope",
            Scope::MediaWrite => "this API key lacks the media:write scope",
            Scope::ReportsRead => "this API key lacks the reports:read scope",
        },
    }
}
