//! The UI's own files (`crates/vigia-http/assets/`), compiled into the binary and served at
//! `/assets/{name}`. Pages link them as `/assets/{name}?v={hash}`: a response to the current
//! hash may be cached for a year, so a new build's files are fetched at once.

use std::sync::LazyLock;

use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "vigia.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/vigia.css"),
    ),
    (
        "vigia.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vigia.js"),
    ),
    (
        "ui-staff.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/ui-staff.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../assets/favicon.svg"),
    ),
];

/// Each file's name, versioned URL and bytes.
static VERSIONED: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(name, _, bytes)| {
            let hash = hex::encode(&Sha256::digest(bytes)[..6]);
            (*name, format!("/assets/{name}?v={hash}"))
        })
        .collect()
});

/// The versioned URL of an asset (`""` for an unknown name).
pub fn url(name: &str) -> &'static str {
    VERSIONED
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, url)| url.as_str())
}

#[derive(serde::Deserialize)]
pub struct Version {
    v: Option<String>,
}

/// `GET /assets/{name}`.
pub async fn serve(Path(name): Path<String>, Query(version): Query<Version>) -> Response {
    let Some((_, kind, bytes)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let current = version
        .v
        .is_some_and(|v| url(&name).ends_with(&format!("?v={v}")));
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        *bytes,
    )
        .into_response()
}
