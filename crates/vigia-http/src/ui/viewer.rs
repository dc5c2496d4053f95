//! Who is looking at a page and in which language: [`Viewer`], the extractor every page
//! handler takes, and [`Chrome`], what every template reads (`c` in the templates: words,
//! dates, numbers, the signed-in person, the CSRF token).
//!
//! Credentials come from the same place as the API's (`crate::auth::authenticate_request`:
//! the session cookie, its standing checked on every request). A request that is not a GET
//! or HEAD must come from this server's own origin (`Origin`, else `Referer`), signed in or
//! not, and carry the CSRF token of its form (double submit: the `vigia_csrf` cookie, HttpOnly
//! and SameSite=Strict, and the same value in the form's `csrf` field).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method};
use vigia_domain::Timestamp;
use vigia_domain::auth::{Principal, UserPrincipal};
use vigia_domain::users::Role;
use vigia_store::users;

use super::assets;
use super::i18n::{self, Lang};
use super::page::UiError;
use crate::auth::{Auth, authenticate_request, check_same_origin, cookie};
use crate::state::AppState;

/// The cookie that carries the CSRF token of a browser's forms.
pub const CSRF_COOKIE: &str = "vigia_csrf";
/// The cookie that remembers a visitor's language choice.
pub const LANG_COOKIE: &str = "vigia_lang";

/// What every template reads.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub lang: Lang,
    /// The signed-in person's name and role.
    pub me: Option<(String, Role)>,
    /// The token every form carries in its `csrf` field.
    pub csrf: String,
    /// The path (and query) of this page, where the language switch comes back to.
    pub here: String,
}

impl Chrome {
    /// The catalog's text for `key`.
    pub fn t<'k>(&self, key: &'k str) -> &'k str {
        i18n::tr(self.lang, key)
    }

    /// `key`'s text with `{name}` replaced by `value`.
    pub fn tw(&self, key: &str, name: &str, value: impl std::fmt::Display) -> String {
        i18n::tr_with(self.lang, key, &[(name, &value.to_string())])
    }

    pub fn lang_code(&self) -> &'static str {
        self.lang.as_str()
    }

    pub fn date(&self, at: &Timestamp) -> String {
        i18n::datetime(self.lang, *at)
    }

    pub fn num(&self, n: &i64) -> String {
        i18n::number(self.lang, *n)
    }

    pub fn signed_in(&self) -> bool {
        self.me.is_some()
    }

    pub fn name(&self) -> &str {
        self.me.as_ref().map_or("", |(name, _)| name.as_str())
    }

    pub fn is_staff(&self) -> bool {
        self.me
            .as_ref()
            .is_some_and(|(_, role)| *role >= Role::Staff)
    }

    pub fn css(&self) -> &'static str {
        assets::url("vigia.css")
    }

    /// The staff pages' stylesheet (console, dashboard, admin).
    pub fn staff_css(&self) -> &'static str {
        assets::url("ui-staff.css")
    }

    /// Whether the signed-in person is an administrator (the admin link).
    pub fn is_admin(&self) -> bool {
        self.me
            .as_ref()
            .is_some_and(|(_, role)| *role == Role::Admin)
    }

    pub fn js(&self) -> &'static str {
        assets::url("vigia.js")
    }

    /// The status label (`status.new` …).
    pub fn status(&self, status: &str) -> &'static str {
        label(self.lang, "status.", status)
    }

    /// The urgency label (`urgency.low` …).
    pub fn urgency(&self, urgency: &str) -> &'static str {
        label(self.lang, "urgency.", urgency)
    }
}

fn label(lang: Lang, prefix: &str, value: &str) -> &'static str {
    i18n::lookup(lang, &format!("{prefix}{value}")).unwrap_or("?")
}

/// The caller of a page.
pub struct Viewer {
    pub chrome: Chrome,
    /// The signed-in person, as the API's extractors see them.
    pub auth: Option<Auth>,
    /// Whether the CSRF cookie must be set with this response (the browser had none).
    pub new_csrf: bool,
}

impl Viewer {
    pub fn lang(&self) -> Lang {
        self.chrome.lang
    }

    /// The signed-in person, or a redirect to the sign-in page that comes back here.
    pub fn require(&self) -> Result<(&Auth, &UserPrincipal), UiError> {
        match &self.auth {
            Some(auth @ Auth(Principal::User(user))) => Ok((auth, user)),
            _ => Err(UiError::SignIn(self.chrome.here.clone())),
        }
    }

    /// Checks the CSRF token a form sent.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), UiError> {
        let expected = self.chrome.csrf.as_bytes();
        let ok = sent.is_some_and(|s| {
            !self.new_csrf && s.len() == expected.len() && constant_eq(s.as_bytes(), expected)
        });
        if ok {
            Ok(())
        } else {
            Err(UiError::ForeignForm)
        }
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, UiError> {
        let acts = !matches!(parts.method, Method::GET | Method::HEAD);
        if acts {
            check_same_origin(parts, &state.config.public_url).map_err(|_| UiError::ForeignForm)?;
        }
        let auth = match authenticate_request(parts, state).await {
            Ok(Some((_, authenticated))) => match authenticated.principal {
                p @ Principal::User(_) => Some(Auth(p)),
                Principal::ApiKey(_) => None,
            },
            // An expired or revoked session is a visitor (the page offers to sign in).
            Ok(None) | Err(_) => None,
        };
        let user = match &auth {
            Some(Auth(Principal::User(u))) => users::find(&state.db, u.user_id).await.ok(),
            _ => None,
        };
        let lang = match &user {
            Some(user) => Lang::from_locale(Some(user.locale.as_str())),
            None => visitor_lang(parts),
        };
        let (csrf, new_csrf) = match cookie(parts, CSRF_COOKIE) {
            Some(token) if token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (token.to_owned(), false)
            }
            _ => (hex::encode(rand::random::<[u8; 16]>()), true),
        };
        let here = parts
            .uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        Ok(Viewer {
            chrome: Chrome {
                lang,
                me: user.map(|u| (u.display_name, u.role)),
                csrf,
                here,
            },
            auth,
            new_csrf,
        })
    }
}

/// A visitor's language: their switch (cookie), else what the browser prefers.
pub fn visitor_lang(parts: &Parts) -> Lang {
    match cookie(parts, LANG_COOKIE) {
        Some("en") => Lang::En,
        Some("es") => Lang::Es,
        _ => super::language(&parts.headers),
    }
}

/// The `Set-Cookie` value that gives a browser its CSRF token.
pub fn csrf_cookie(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("vigia_csrf=; Max-Age=0"))
}
