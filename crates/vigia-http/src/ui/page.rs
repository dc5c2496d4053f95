//! Rendering: a template becomes a response with the UI's headers; a failure becomes an HTML
//! error page in the viewer's language; a rejected form keeps its values and shows each
//! field's error next to it.

use askama::Template;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use vigia_domain::FieldError;

use super::i18n::{self, Lang};
use super::viewer::{Chrome, Viewer, csrf_cookie, visitor_lang};
use crate::error::ApiError;
use crate::state::AppState;

/// The UI's Content-Security-Policy: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A rendered page with the viewer's cookies.
pub fn render<T: Template>(viewer: &Viewer, status: StatusCode, template: &T) -> Response {
    let mut response = html(status, template);
    if viewer.new_csrf {
        // `Secure` is added by [`layer`] on an https server.
        response
            .headers_mut()
            .append(header::SET_COOKIE, csrf_cookie(&viewer.chrome.csrf));
    }
    response
}

pub(super) fn html<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(body) => {
            let mut response = (status, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "a page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// 303 to `to` (after a form: the browser then GETs the page).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Why a page could not be shown. Handlers return it with `?` (an [`ApiError`] converts);
/// [`layer`] turns it into an HTML page in the viewer's language.
#[derive(Debug)]
pub enum UiError {
    /// Not signed in: go to the sign-in page, then come back to this path.
    SignIn(String),
    /// A form from another origin, or without its CSRF token.
    ForeignForm,
    /// Anything else, with the status it maps to.
    Api(ApiError),
}

impl From<ApiError> for UiError {
    fn from(error: ApiError) -> Self {
        UiError::Api(error)
    }
}

impl From<vigia_store::StoreError> for UiError {
    fn from(error: vigia_store::StoreError) -> Self {
        UiError::Api(error.into())
    }
}

/// [`layer`] answers with the sign-in form, which comes back to this path.
#[derive(Debug, Clone)]
struct SignInNeeded(String);

/// What [`layer`] needs to render an error page.
#[derive(Debug, Clone, Copy)]
struct ErrorPage {
    status: StatusCode,
    key: &'static str,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, key) = match self {
            UiError::SignIn(back) => {
                let mut response = StatusCode::UNAUTHORIZED.into_response();
                response.extensions_mut().insert(SignInNeeded(back));
                return response;
            }
            UiError::ForeignForm => (StatusCode::FORBIDDEN, "error.403.origin"),
            UiError::Api(error) => {
                if let ApiError::Internal(inner) = &error {
                    tracing::error!(error = format!("{inner:#}"), "page failed");
                }
                let status = error.status();
                let key = match status.as_u16() {
                    400 => "error.400",
                    401 => "error.401",
                    403 => "error.403",
                    404 | 405 => "error.404",
                    409 => "error.409",
                    412 => "error.412",
                    413 => "error.413",
                    429 => "error.429",
                    503 => "error.503",
                    _ => "error.500",
                };
                (status, key)
            }
        };
        let mut response = status.into_response();
        response.extensions_mut().insert(ErrorPage { status, key });
        response
    }
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorTemplate<'a> {
    c: &'a Chrome,
    message: &'a str,
}

/// An HTML error page for a request that reached no page (unknown path).
pub fn error_page(lang: Lang, status: StatusCode, key: &str) -> Response {
    let chrome = Chrome {
        lang,
        me: None,
        csrf: String::new(),
        here: "/".into(),
    };
    let mut response = html(
        status,
        &ErrorTemplate {
            c: &chrome,
            message: i18n::tr(lang, key),
        },
    );
    ui_headers(&mut response);
    response
}

/// The layer of every UI route: renders error pages, and gives every answer the UI's headers
/// (strict CSP, never cached, `Secure` cookies on https).
pub async fn layer(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let lang = visitor_lang(&parts);
    let csrf = crate::auth::cookie(&parts, super::viewer::CSRF_COOKIE)
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned);
    let request = Request::from_parts(parts, body);
    let mut response = next.run(request).await;
    if let Some(page) = response.extensions().get::<ErrorPage>().copied() {
        response = error_page(lang, page.status, page.key);
    } else if let Some(SignInNeeded(back)) = response.extensions().get::<SignInNeeded>().cloned() {
        let new_csrf = csrf.is_none();
        let chrome = Chrome {
            lang,
            me: None,
            csrf: csrf.unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>())),
            here: back.clone(),
        };
        response = super::account::sign_in_form(&chrome, &back, new_csrf);
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"vigia\""),
        );
    }
    ui_headers(&mut response);
    if state.config.public_url.starts_with("https://") {
        let cookies: Vec<HeaderValue> = response
            .headers_mut()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| {
                let raw = v.to_str().ok()?;
                if raw.contains("; Secure") {
                    Some(v.clone())
                } else {
                    HeaderValue::from_str(&format!("{raw}; Secure")).ok()
                }
            })
            .collect();
        response.headers_mut().remove(header::SET_COOKIE);
        for cookie in cookies {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    response
}

fn ui_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Cookie, Accept-Language"),
    );
    // `no-referrer` (the API's) would make browsers send `Origin: null` with the UI's own
    // forms, which the origin check refuses; same-origin requests keep their origin.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// A submitted form: its fields in order (url-encoded bodies).
#[derive(Debug, Default)]
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    pub fn parse(body: &[u8]) -> Self {
        FormData(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name` (`""` when absent).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Whether a checkbox `name` was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// The value of `name` as an option (`None` when absent or blank).
    pub fn opt(&self, name: &str) -> Option<&str> {
        Some(self.get(name)).filter(|v| !v.trim().is_empty())
    }
}

impl Viewer {
    /// A submitted form, after its origin (checked by the extractor) and CSRF token.
    pub fn form(&self, body: &[u8]) -> Result<FormData, UiError> {
        let form = FormData::parse(body);
        self.check_csrf(Some(form.get("csrf")))?;
        Ok(form)
    }
}

/// The errors of a rejected form, by field, in the page's language.
#[derive(Debug, Default, Clone)]
pub struct FormErrors {
    fields: Vec<(String, String)>,
    /// An error about the whole form (wrong password, registration closed).
    pub form: Option<String>,
}

impl FormErrors {
    /// The field errors of `error` (the API's 422 `errors`, a 409 naming its field), or the
    /// error itself when it is not about the form's fields.
    pub fn from_api(lang: Lang, error: ApiError) -> Result<Self, UiError> {
        match error {
            ApiError::Validation(list) => Ok(Self::from_fields(lang, &list)),
            ApiError::Conflict {
                extra: Some(extra),
                detail,
            } if extra.get("field").is_some() => {
                let field = extra["field"].as_str().unwrap_or("").to_owned();
                Ok(Self {
                    fields: vec![(field, i18n::field_message(lang, &detail))],
                    form: None,
                })
            }
            ApiError::Unauthorized { detail } => Ok(Self {
                fields: Vec::new(),
                form: Some(i18n::field_message(lang, detail)),
            }),
            other => Err(UiError::Api(other)),
        }
    }

    pub fn from_fields(lang: Lang, list: &[FieldError]) -> Self {
        Self {
            fields: list
                .iter()
                .map(|e| (e.field.clone(), i18n::field_message(lang, &e.message)))
                .collect(),
            form: None,
        }
    }

    /// A message for the whole form.
    pub fn whole(message: String) -> Self {
        Self {
            fields: Vec::new(),
            form: Some(message),
        }
    }

    /// The error of `field` (`""` when it has none).
    pub fn of(&self, field: &str) -> &str {
        self.fields
            .iter()
            .find(|(f, _)| f == field || f.starts_with(&format!("{field}.")))
            .map_or("", |(_, m)| m.as_str())
    }

    pub fn any(&self) -> bool {
        !self.fields.is_empty() || self.form.is_some()
    }
}
