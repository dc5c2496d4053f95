//! The web UI: server-rendered pages at `/`, served by the same binary as the API and going
//! through the same domain and store code (see `docs/web-ui.md` for how a page is built).
//!
//! - [`viewer`]: who is looking (the API's session cookie), their language, the CSRF token.
//! - [`page`]: rendering, HTML error pages, forms and their field errors, the UI's headers.
//! - [`i18n`]: one catalog per language (`locales/*.json`), dates and numbers.
//! - [`assets`]: CSS, the small script for live updates, icons; compiled in.
//! - one module per area of pages: [`account`], [`incident`]; [`staff`]: the console,
//!   dashboard and admin pages, with [`charts`] (server-rendered SVG); [`proctoring`]: exams,
//!   participants and reference photos, the proctor's live view.
//!
//! Templates are askama files under `crates/vigia-http/templates/ui/`, checked at compile
//! time; every value is escaped by the template engine.

pub mod account;
pub mod assets;
pub mod charts;
pub mod competitions;
pub mod devices;
pub mod i18n;
pub mod incident;
pub mod lists;
pub mod map;
pub mod page;
pub mod proctoring;
pub mod report;
pub mod staff;
pub mod viewer;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};

use crate::state::AppState;
pub use i18n::Lang;
pub use page::{FormData, FormErrors, UiError, render, see_other};
pub use viewer::{Chrome, Viewer};

/// Every UI route, behind [`page::layer`].
pub fn router(state: AppState) -> Router<AppState> {
    // The report form carries a photo: it may be as large as an upload, plus its fields.
    let upload_limit = state.config.max_upload_bytes + 64 * 1024;
    Router::new()
        .route("/", get(account::home))
        .route("/board", get(lists::board))
        .route("/my", get(lists::mine))
        .route("/my/live", get(lists::mine_live))
        .route(
            "/report",
            get(report::form)
                .post(report::submit)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/signin", get(account::signin_page).post(account::signin))
        .route("/signup", get(account::signup_page).post(account::signup))
        .route("/signout", post(account::signout))
        .route(
            "/profile",
            get(account::profile_page).post(account::profile),
        )
        .route(
            "/password",
            get(account::password_page).post(account::password),
        )
        .route("/lang", post(account::switch_lang))
        .route("/incidents/{code}", get(incident::show))
        .route("/incidents/{code}/live", get(incident::live))
        .route("/incidents/{code}/vote", post(incident::vote))
        .route("/assets/{name}", get(assets::serve))
        .merge(staff::router())
        .merge(proctoring::router(state.config.max_upload_bytes))
        .merge(devices::router())
        .merge(competitions::router(state.config.max_upload_bytes))
        .layer(axum::middleware::from_fn_with_state(state, page::layer))
}

/// The answer for a path nothing serves: an HTML page for a browser, `None` for API clients
/// (paths under `/api` and `/ws`, or requests that do not accept HTML).
pub fn not_found(path: &str, headers: &HeaderMap) -> Option<Response> {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if path.starts_with("/api") || path.starts_with("/ws") || !wants_html {
        return None;
    }
    let lang = match headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("vigia_lang="))
    {
        Some("en") => Lang::En,
        Some("es") => Lang::Es,
        _ => language(headers),
    };
    Some(page::error_page(lang, StatusCode::NOT_FOUND, "error.404"))
}

/// The language a browser prefers among ours: the highest-weighted of `es` and `en` in
/// `Accept-Language` (a tag such as `en-GB` counts as `en`), Spanish when it names neither.
pub fn language(headers: &HeaderMap) -> Lang {
    let Some(raw) = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    else {
        return Lang::Es;
    };
    let mut best: Option<(f32, Lang)> = None;
    for item in raw.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let weight = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let lang = match tag.split('-').next() {
            Some("es") => Lang::Es,
            Some("en") => Lang::En,
            _ => continue,
        };
        if weight > 0.0 && best.is_none_or(|(w, _)| weight > w) {
            best = Some((weight, lang));
        }
    }
    best.map_or(Lang::Es, |(_, lang)| lang)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_language_is_spanish_unless_the_browser_prefers_english() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_LANGUAGE,
                HeaderValue::from_str(value).expect("header"),
            );
            language(&headers)
        };
        assert_eq!(language(&HeaderMap::new()), Lang::Es);
        assert_eq!(with("en-GB,en;q=0.9"), Lang::En);
        assert_eq!(with("fr, en;q=0.5, es;q=0.8"), Lang::Es);
        assert_eq!(with("de, en;q=0.3"), Lang::En);
        assert_eq!(with("de"), Lang::Es);
        assert_eq!(with("en;q=0, es;q=0.1"), Lang::Es);
    }
}
