//! Accounts of the caller: register, login, refresh, logout, `me`, change password.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigia_domain::auth::{
    REFRESH_TOKEN_PREFIX, decoy_hash, hash_password_in, random_secret, secret_hash,
    verify_password_in,
};
use vigia_domain::ids::{DepartmentId, UserId};
use vigia_domain::users::{DisplayName, Email, Locale, NewPassword, Role};
use vigia_domain::{Timestamp, Validation};
use vigia_store::sessions::{self, Rotation};
use vigia_store::{settings, users};

use super::{Routes, op};
use crate::auth::{self as authn, Auth, REFRESH_COOKIE, SESSION_COOKIE};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ClientIp, Json, LenientJson, OptionalJson};
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, register);
    let routes = op!(routes, login);
    let routes = op!(routes, refresh);
    let routes = op!(routes, logout);
    let routes = op!(routes, me);
    let routes = op!(routes, update_me);
    op!(routes, change_password)
}

/// A user account as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    #[schema(value_type = String, example = "reporter")]
    pub role: Role,
    #[schema(value_type = String, example = "es")]
    pub locale: Locale,
    pub disabled: bool,
    /// Away staff get no automatic assignments.
    pub away: bool,
    /// E-mail me when an incident I reported changes status.
    pub notify_status_changes: bool,
    pub departments: Vec<i64>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<users::User> for UserOut {
    fn from(u: users::User) -> Self {
        Self {
            id: u.id.0,
            email: u.email,
            display_name: u.display_name,
            role: u.role,
            locale: u.locale,
            disabled: u.disabled,
            away: u.away,
            notify_status_changes: u.notify_status_changes,
            departments: u.departments.iter().map(|d: &DepartmentId| d.0).collect(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterIn {
    #[schema(format = Email)]
    pub email: String,
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 100
    )]
    pub display_name: String,
    /// `es` (default) or `en`.
    #[schema(pattern = "^(es|en)$")]
    pub locale: Option<String>,
}

/// The setting that switches self-registration on or off at run time.
pub const REGISTRATION_SETTING: &str = "registration.enabled";

pub(crate) async fn registration_open(state: &AppState) -> ApiResult<bool> {
    Ok(
        match settings::get(&state.db, REGISTRATION_SETTING).await? {
            Some(serde_json::Value::Bool(open)) => open,
            _ => state.config.allow_registration,
        },
    )
}

/// Create a reporter account.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterIn,
    responses((status = 201, body = UserOut), (status = 403, body = Problem, description = "registration is closed"),
        (status = 409, body = Problem, description = "e-mail already registered"),
        (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: LenientJson<RegisterIn>,
) -> ApiResult<(StatusCode, Json<UserOut>)> {
    state.limits.register(&state.db, ip).await?;
    if !registration_open(&state).await? {
        return Err(ApiError::Forbidden {
            detail: "self-registration is closed: ask an administrator for an account",
        });
    }
    let input = body.value();
    let new = body.merge(
        new_account(
            &state,
            &input.email,
            &input.password,
            &input.display_name,
            input.locale.as_deref(),
            Ok(Role::Reporter),
        )
        .await,
    )?;
    let user = users::create(&state.db, &new, None).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Checks a new account's fields, reporting every invalid one, and hashes its password (on a
/// blocking thread: Argon2id takes tens of milliseconds by design).
pub(crate) async fn new_account(
    state: &AppState,
    email: &str,
    password: &str,
    display_name: &str,
    locale: Option<&str>,
    role: Result<Role, vigia_domain::FieldError>,
) -> ApiResult<users::NewUser> {
    let mut v = Validation::new();
    let email = v.check(Email::parse("email", email));
    let password = v.check(NewPassword::parse("password", password, email.as_ref()));
    let display_name = v.check(DisplayName::parse("display_name", display_name));
    let role = v.check(role);
    let locale = v.check(locale.map_or(Ok(Locale::Es), |l| Locale::parse("locale", l)));
    v.finish()?;
    let (Some(email), Some(password), Some(display_name), Some(role), Some(locale)) =
        (email, password, display_name, role, locale)
    else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "validation passed without values"
        )));
    };
    let password_hash = state
        .hashing
        .run(move |memory| hash_password_in(memory, &password))
        .await?;
    Ok(users::NewUser {
        email,
        display_name: display_name.as_str().to_owned(),
        password_hash,
        role,
        locale,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    pub email: String,
    pub password: String,
    /// For a browser UI: also set the session cookies (`vigia_session` with the access token,
    /// `vigia_refresh` with the refresh token; both HttpOnly, SameSite=Strict). Requests and
    /// real-time connections authenticated by the cookie must come from this server's origin.
    #[serde(default)]
    pub cookie: bool,
}

/// A fresh pair of tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokensOut {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Exchange at `/api/v1/auth/refresh` for a new pair; each refresh token works once.
    pub refresh_token: String,
    pub user: UserOut,
}

const BAD_CREDENTIALS: ApiError = ApiError::Unauthorized {
    detail: "wrong e-mail or password",
};

/// Sign in with e-mail and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginIn,
    responses((status = 200, body = TokensOut), (status = 401, body = Problem), (status = 429, body = Problem)))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(input): Json<LoginIn>,
) -> ApiResult<Response> {
    let user = check_credentials(&state, ip, &input.email, input.password).await?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let tokens = start_session(&state, user, user_agent).await?;
    Ok(with_cookies(&state, tokens, input.cookie))
}

/// Counts a sign-in attempt against the quotas and checks an e-mail and password: the account
/// if they match an enabled account, 401 otherwise (the answer takes as long either way).
pub(crate) async fn check_credentials(
    state: &AppState,
    ip: std::net::IpAddr,
    email: &str,
    password: String,
) -> ApiResult<UserId> {
    state.limits.login(&state.db, ip, email).await?;
    let credentials = match Email::parse("email", email) {
        Ok(email) => users::credentials(&state.db, &email).await?,
        Err(_) => None,
    };
    // Verify against a decoy hash when the account does not exist, so the answer takes as long.
    let hash = credentials.as_ref().map(|c| c.password_hash.clone());
    let verified = state
        .hashing
        .run(move |memory| {
            let hash = hash.unwrap_or_else(|| decoy_hash(memory).to_owned());
            verify_password_in(memory, &hash, &password)
        })
        .await?;
    let Some(credentials) = credentials.filter(|c| verified && !c.disabled) else {
        return Err(BAD_CREDENTIALS);
    };
    Ok(credentials.id)
}

/// A browser session for `user`: the session row and the value of its [`SESSION_COOKIE`]
/// (an access token that lives as long as the browser session, at most
/// [`BROWSER_SESSION_SECS`]; its standing is checked on every request, so signing out,
/// a password change or an account disabled end it at once).
pub(crate) async fn browser_session(
    state: &AppState,
    user: UserId,
    user_agent: Option<&str>,
) -> ApiResult<HeaderValue> {
    let now = Timestamp::now();
    let ttl = state
        .config
        .refresh_token_ttl
        .as_secs()
        .min(BROWSER_SESSION_SECS);
    let refresh = random_secret(REFRESH_TOKEN_PREFIX);
    let expires = now.plus_seconds(ttl as i64);
    let session =
        sessions::create(&state.db, user, &secret_hash(&refresh), user_agent, expires).await?;
    let access = state.tokens.issue(user, session, now, ttl as i64);
    let secure = state.config.public_url.starts_with("https://");
    Ok(session_cookie(SESSION_COOKIE, &access, "/", ttl, secure))
}

/// The longest a web UI session lasts without signing in again (12 hours).
pub const BROWSER_SESSION_SECS: u64 = 12 * 3600;

/// The tokens as JSON, with the session cookies set when `cookies` is true.
fn with_cookies(state: &AppState, tokens: TokensOut, cookies: bool) -> Response {
    if !cookies {
        return Json(tokens).into_response();
    }
    let secure = state.config.public_url.starts_with("https://");
    let set = [
        session_cookie(
            SESSION_COOKIE,
            &tokens.access_token,
            "/",
            state.config.access_token_ttl.as_secs(),
            secure,
        ),
        session_cookie(
            REFRESH_COOKIE,
            &tokens.refresh_token,
            "/api/v1/auth",
            state.config.refresh_token_ttl.as_secs(),
            secure,
        ),
    ];
    (
        AppendHeaders(set.map(|value| (header::SET_COOKIE, value))),
        Json(tokens),
    )
        .into_response()
}

fn session_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let mut header = HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("vigia_invalid=; Max-Age=0"));
    header.set_sensitive(true);
    header
}

/// Headers that delete both session cookies.
pub(crate) fn cleared_cookies() -> AppendHeaders<[(header::HeaderName, HeaderValue); 2]> {
    AppendHeaders([
        (
            header::SET_COOKIE,
            HeaderValue::from_static(
                "vigia_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
            ),
        ),
        (
            header::SET_COOKIE,
            HeaderValue::from_static(
                "vigia_refresh=; Path=/api/v1/auth; Max-Age=0; HttpOnly; SameSite=Strict",
            ),
        ),
    ])
}

async fn start_session(
    state: &AppState,
    user: UserId,
    user_agent: Option<&str>,
) -> ApiResult<TokensOut> {
    let now = Timestamp::now();
    let refresh = random_secret(REFRESH_TOKEN_PREFIX);
    let expires = now.plus_seconds(state.config.refresh_token_ttl.as_secs() as i64);
    let session =
        sessions::create(&state.db, user, &secret_hash(&refresh), user_agent, expires).await?;
    tokens(state, user, session, refresh, now).await
}

async fn tokens(
    state: &AppState,
    user: UserId,
    session: vigia_domain::ids::SessionId,
    refresh: String,
    now: Timestamp,
) -> ApiResult<TokensOut> {
    let ttl = state.config.access_token_ttl.as_secs();
    let access_token = state.tokens.issue(user, session, now, ttl as i64);
    let user = users::find(&state.db, user).await?;
    Ok(TokensOut {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token: refresh,
        user: user.into(),
    })
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshIn {
    /// The refresh token; a browser session may leave it out and send its `vigia_refresh`
    /// cookie instead (it then gets new cookies).
    pub refresh_token: Option<String>,
}

/// Exchange a refresh token for a new pair. Presenting an already used refresh token revokes
/// the whole session (it was stolen or replayed).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshIn,
    responses((status = 200, body = TokensOut), (status = 401, body = Problem),
        (status = 403, body = Problem, description = "cookie refresh from another origin")))]
async fn refresh(
    State(state): State<AppState>,
    parts: Parts,
    OptionalJson(input): OptionalJson<RefreshIn>,
) -> ApiResult<Response> {
    let input = input.unwrap_or_default();
    let (presented, from_cookie) = match input.refresh_token {
        Some(token) => (token, false),
        None => {
            let token = authn::cookie(&parts, REFRESH_COOKIE).ok_or(ApiError::Unauthorized {
                detail: "send {\"refresh_token\": \"...\"} or the vigia_refresh cookie",
            })?;
            authn::check_same_origin(&parts, &state.config.public_url)?;
            (token.to_owned(), true)
        }
    };
    let now = Timestamp::now();
    let next = random_secret(REFRESH_TOKEN_PREFIX);
    let expires = now.plus_seconds(state.config.refresh_token_ttl.as_secs() as i64);
    match sessions::rotate(
        &state.db,
        &secret_hash(&presented),
        &secret_hash(&next),
        expires,
    )
    .await?
    {
        Rotation::Rotated { session, user } => {
            let tokens = tokens(&state, user, session, next, now).await?;
            Ok(with_cookies(&state, tokens, from_cookie))
        }
        Rotation::Reused => {
            tracing::warn!("a rotated refresh token was presented again; its session is revoked");
            state.forget_all_sessions();
            Err(ApiError::Unauthorized {
                detail: "this refresh token was already used; the session is revoked",
            })
        }
        Rotation::Invalid => Err(ApiError::Unauthorized {
            detail: "the refresh token is invalid, expired or revoked",
        }),
    }
}

/// End this session: its access and refresh tokens stop working.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
async fn logout(State(state): State<AppState>, auth: Auth) -> ApiResult<impl IntoResponse> {
    let user = auth.user()?;
    sessions::revoke(&state.db, user.user_id, user.session_id).await?;
    state.forget_user(user.user_id);
    Ok((StatusCode::NO_CONTENT, cleared_cookies()))
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = Problem)))]
async fn me(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<UserOut>> {
    let user = auth.user()?;
    Ok(Json(users::find(&state.db, user.user_id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MePatch {
    #[schema(
        pattern = r"^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B-\x1F\x7F-\x9F]*$",
        max_length = 100
    )]
    pub display_name: Option<String>,
    /// `es` or `en`.
    #[schema(pattern = "^(es|en)$")]
    pub locale: Option<String>,
    /// Staff: mark yourself away (no automatic assignments) or back.
    pub away: Option<bool>,
    /// Receive an e-mail when an incident you reported changes status (off by default).
    pub notify_status_changes: Option<bool>,
}

/// Change your display name or language.
#[utoipa::path(patch, path = "/api/v1/me", tag = "auth", security(("bearer" = [])), request_body = MePatch,
    responses((status = 200, body = UserOut), (status = 422, body = Problem)))]
async fn update_me(
    State(state): State<AppState>,
    auth: Auth,
    Json(input): Json<MePatch>,
) -> ApiResult<Json<UserOut>> {
    Ok(Json(update_profile(&state, &auth, &input).await?.into()))
}

/// Applies a change of the caller's own profile (display name, language, away, notices).
pub(crate) async fn update_profile(
    state: &AppState,
    auth: &Auth,
    input: &MePatch,
) -> ApiResult<users::User> {
    let user = auth.user()?;
    let mut v = Validation::new();
    let display_name = input
        .display_name
        .as_deref()
        .and_then(|n| v.check(DisplayName::parse("display_name", n)));
    let locale = input
        .locale
        .as_deref()
        .and_then(|l| v.check(Locale::parse("locale", l)));
    v.finish()?;
    let patch = users::UserPatch {
        display_name: display_name.map(|n| n.as_str().to_owned()),
        locale,
        away: input.away,
        notify_status_changes: input.notify_status_changes,
        ..Default::default()
    };
    let actor = auth.actor(None);
    Ok(users::update(&state.db, user.user_id, &patch, &actor).await?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeIn {
    pub current_password: String,
    #[schema(min_length = 10, max_length = 128)]
    pub new_password: String,
}

/// Change your password. Every other session is signed out.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "auth", security(("bearer" = [])),
    request_body = PasswordChangeIn,
    responses((status = 204), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn change_password(
    State(state): State<AppState>,
    auth: Auth,
    Json(input): Json<PasswordChangeIn>,
) -> ApiResult<StatusCode> {
    change_own_password(&state, &auth, &input.current_password, &input.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the caller's password after checking the current one; every other session of the
/// account is signed out.
pub(crate) async fn change_own_password(
    state: &AppState,
    auth: &Auth,
    current_password: &str,
    new_password: &str,
) -> ApiResult<()> {
    let principal = auth.user()?.clone();
    let current = users::find(&state.db, principal.user_id).await?;
    let email = Email::parse("email", &current.email).ok();
    let new = NewPassword::parse("new_password", new_password, email.as_ref())?;
    let stored = users::password_hash(&state.db, principal.user_id).await?;
    let current_password = current_password.to_owned();
    let hashed = state
        .hashing
        .run(move |memory| {
            verify_password_in(memory, &stored, &current_password)
                .then(|| hash_password_in(memory, &new))
        })
        .await?;
    let Some(hash) = hashed else {
        return Err(ApiError::field(
            "current_password",
            "is not your current password",
        ));
    };
    users::set_password(
        &state.db,
        principal.user_id,
        &hash,
        Some(principal.session_id),
    )
    .await?;
    state.forget_user(principal.user_id);
    Ok(())
}
