//! Accounts: sign up, sign in, sign out, profile, password, the language switch. Each form
//! goes through the API's own functions (`routes::auth`), so the rules and messages are the
//! API's.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use serde::Deserialize;
use vigia_domain::users::Role;
use vigia_store::users;

use super::page::{FormData, FormErrors, UiError, render, see_other};
use super::viewer::{Chrome, LANG_COOKIE, Viewer};
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::routes::auth::{
    MePatch, browser_session, change_own_password, check_credentials, cleared_cookies, new_account,
    registration_open,
};
use crate::state::AppState;

/// `GET /`: the home page.
#[derive(Template)]
#[template(path = "ui/home.html")]
struct Home<'a> {
    c: &'a Chrome,
}

pub async fn home(viewer: Viewer) -> Response {
    render(&viewer, StatusCode::OK, &Home { c: &viewer.chrome })
}

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Where to go after signing in: a path of this site (never another site).
fn local(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/".into(),
    }
}

#[derive(Template)]
#[template(path = "ui/signin.html")]
struct SignIn<'a> {
    c: &'a Chrome,
    errors: FormErrors,
    email: &'a str,
    next: &'a str,
}

pub async fn signin_page(viewer: Viewer, Query(q): Query<Next>) -> Response {
    let next = local(q.next.as_deref());
    let page = SignIn {
        c: &viewer.chrome,
        errors: FormErrors::default(),
        email: "",
        next: &next,
    };
    render(&viewer, StatusCode::OK, &page)
}

/// The sign-in form in place of a page that needs a signed-in person (401), coming back to
/// `next` afterwards.
pub fn sign_in_form(chrome: &Chrome, next: &str, new_csrf: bool) -> Response {
    let page = SignIn {
        c: chrome,
        errors: FormErrors::default(),
        email: "",
        next: &local(Some(next)),
    };
    let mut response = super::page::html(StatusCode::UNAUTHORIZED, &page);
    if new_csrf {
        response
            .headers_mut()
            .append(header::SET_COOKIE, super::viewer::csrf_cookie(&chrome.csrf));
    }
    response
}

fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// `POST /signin`.
pub async fn signin(
    State(state): State<AppState>,
    viewer: Viewer,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    let form = viewer.form(&body)?;
    let next = local(form.opt("next"));
    let email = form.get("email");
    let user = match check_credentials(&state, ip, email, form.get("password").to_owned()).await {
        Ok(user) => user,
        Err(error) => {
            let errors = FormErrors::from_api(viewer.lang(), error)?;
            let page = SignIn {
                c: &viewer.chrome,
                errors,
                email,
                next: &next,
            };
            return Ok(render(&viewer, StatusCode::UNAUTHORIZED, &page));
        }
    };
    signed_in(&state, user, user_agent(&headers), &next).await
}

async fn signed_in(
    state: &AppState,
    user: vigia_domain::ids::UserId,
    user_agent: Option<&str>,
    next: &str,
) -> Result<Response, UiError> {
    let cookie = browser_session(state, user, user_agent).await?;
    Ok((
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        see_other(next),
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "ui/signup.html")]
struct SignUp<'a> {
    c: &'a Chrome,
    errors: FormErrors,
    form: FormData,
    open: bool,
}

pub async fn signup_page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, UiError> {
    let page = SignUp {
        c: &viewer.chrome,
        errors: FormErrors::default(),
        form: FormData::default(),
        open: registration_open(&state).await?,
    };
    Ok(render(&viewer, StatusCode::OK, &page))
}

/// `POST /signup`: a reporter account (the API's rules), signed in at once.
pub async fn signup(
    State(state): State<AppState>,
    viewer: Viewer,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    let form = viewer.form(&body)?;
    let lang = viewer.lang();
    let attempt = async {
        state.limits.register(&state.db, ip).await?;
        if !registration_open(&state).await? {
            return Err(ApiError::Forbidden {
                detail: "registration closed",
            });
        }
        let new = new_account(
            &state,
            form.get("email"),
            form.get("password"),
            form.get("display_name"),
            Some(lang.as_str()),
            Ok(Role::Reporter),
        )
        .await?;
        Ok(users::create(&state.db, &new, None).await?)
    };
    match attempt.await {
        Ok(user) => signed_in(&state, user.id, user_agent(&headers), "/report").await,
        Err(error) => {
            let open = !matches!(error, ApiError::Forbidden { .. });
            let errors = if open {
                FormErrors::from_api(lang, error)?
            } else {
                FormErrors::default()
            };
            let page = SignUp {
                c: &viewer.chrome,
                errors,
                form,
                open,
            };
            Ok(render(&viewer, StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
}

/// `POST /signout`: ends the session (as `POST /api/v1/auth/logout`).
pub async fn signout(
    State(state): State<AppState>,
    viewer: Viewer,
    body: Bytes,
) -> Result<Response, UiError> {
    viewer.form(&body)?;
    if let Ok((_, user)) = viewer.require() {
        vigia_store::sessions::revoke(&state.db, user.user_id, user.session_id).await?;
        state.forget_user(user.user_id);
    }
    Ok((cleared_cookies(), see_other("/")).into_response())
}

#[derive(Template)]
#[template(path = "ui/profile.html")]
struct Profile<'a> {
    c: &'a Chrome,
    errors: FormErrors,
    user: users::User,
    role_key: &'static str,
    saved: bool,
}

fn role_key(role: Role) -> &'static str {
    match role {
        Role::Reporter => "role.reporter",
        Role::Staff => "role.staff",
        Role::Admin => "role.admin",
    }
}

#[derive(Deserialize)]
pub struct Saved {
    saved: Option<String>,
}

pub async fn profile_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<Saved>,
) -> Result<Response, UiError> {
    let (_, me) = viewer.require()?;
    let user = users::find(&state.db, me.user_id).await?;
    let page = Profile {
        c: &viewer.chrome,
        errors: FormErrors::default(),
        role_key: role_key(user.role),
        user,
        saved: q.saved.is_some(),
    };
    Ok(render(&viewer, StatusCode::OK, &page))
}

/// `POST /profile`: name, language, notices, away (as `PATCH /api/v1/me`).
pub async fn profile(
    State(state): State<AppState>,
    viewer: Viewer,
    body: Bytes,
) -> Result<Response, UiError> {
    let (auth, me) = viewer.require()?;
    let form = viewer.form(&body)?;
    let patch = MePatch {
        display_name: Some(form.get("display_name").to_owned()),
        locale: Some(form.get("locale").to_owned()),
        away: (me.role >= Role::Staff).then(|| form.checked("away")),
        notify_status_changes: Some(form.checked("notify_status_changes")),
    };
    match crate::routes::auth::update_profile(&state, auth, &patch).await {
        Ok(_) => Ok(see_other("/profile?saved=1")),
        Err(error) => {
            let errors = FormErrors::from_api(viewer.lang(), error)?;
            let user = users::find(&state.db, me.user_id).await?;
            let page = Profile {
                c: &viewer.chrome,
                errors,
                role_key: role_key(user.role),
                user,
                saved: false,
            };
            Ok(render(&viewer, StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
}

#[derive(Template)]
#[template(path = "ui/password.html")]
struct Password<'a> {
    c: &'a Chrome,
    errors: FormErrors,
    changed: bool,
}

pub async fn password_page(viewer: Viewer, Query(q): Query<Saved>) -> Result<Response, UiError> {
    viewer.require()?;
    let page = Password {
        c: &viewer.chrome,
        errors: FormErrors::default(),
        changed: q.saved.is_some(),
    };
    Ok(render(&viewer, StatusCode::OK, &page))
}

/// `POST /password` (as `POST /api/v1/me/password`).
pub async fn password(
    State(state): State<AppState>,
    viewer: Viewer,
    body: Bytes,
) -> Result<Response, UiError> {
    let (auth, _) = viewer.require()?;
    let form = viewer.form(&body)?;
    let result = change_own_password(
        &state,
        auth,
        form.get("current_password"),
        form.get("new_password"),
    )
    .await;
    match result {
        Ok(()) => Ok(see_other("/password?saved=1")),
        Err(error) => {
            let page = Password {
                c: &viewer.chrome,
                errors: FormErrors::from_api(viewer.lang(), error)?,
                changed: false,
            };
            Ok(render(&viewer, StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
}

/// `POST /lang`: a visitor's language switch (a cookie); a signed-in person's account
/// language changes too.
pub async fn switch_lang(
    State(state): State<AppState>,
    viewer: Viewer,
    body: Bytes,
) -> Result<Response, UiError> {
    let form = viewer.form(&body)?;
    let lang = match form.get("lang") {
        "en" => "en",
        _ => "es",
    };
    if let Some(auth) = &viewer.auth {
        let patch = MePatch {
            display_name: None,
            locale: Some(lang.to_owned()),
            away: None,
            notify_status_changes: None,
        };
        crate::routes::auth::update_profile(&state, auth, &patch).await?;
    }
    let cookie = HeaderValue::from_str(&format!(
        "{LANG_COOKIE}={lang}; Path=/; Max-Age=31536000; SameSite=Lax"
    ))
    .map_err(|_| ApiError::bad_request("bad language"))?;
    let back = local(form.opt("next"));
    Ok((
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        see_other(&back),
    )
        .into_response())
}
