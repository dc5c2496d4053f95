//! Server-rendered pages for people arriving from a link (an e-mail's "view the incident"),
//! until the web UI replaces them. Spanish by default, English when the browser prefers it
//! (`Accept-Language`); every value written into a page goes through [`escape`].

mod incident;
mod text;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;
pub use text::Lang;

pub fn router() -> Router<AppState> {
    Router::new().route("/incidents/{code}", get(incident::show))
}

/// `s` with the five characters HTML gives meaning to replaced by their references (safe in
/// element content and in quoted attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

/// A whole page: `title` and `body` are HTML already (escaped by the caller). Never cached:
/// what it shows depends on who is signed in.
pub fn page(status: StatusCode, lang: Lang, title: &str, body: &str, head: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{head}\
         <title>{title} · Vigía</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;\
         line-height:1.5;color:#222}}dt{{font-weight:600}}dd{{margin:0 0 .5rem}}\
         .note{{background:#fff6dd;padding:.5rem}}.meta{{color:#666;font-size:.9rem}}</style>\
         </head><body><main>{body}</main></body></html>\n",
        lang = lang.as_str(),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept-Language, Cookie"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

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
