//! `GET /incidents/{code}`: the incident an e-mail links to, for a signed-in browser (the
//! session cookie) within the caller's scope, as the API would show it; a sign-in hint for
//! anyone else, and the same "not found" whether the incident does not exist or is out of
//! scope.
//!
//! The session cookie is `SameSite=Strict`, so a browser leaves it out when the link is
//! followed from a webmail on another site (`Sec-Fetch-Site: cross-site`). Such a request
//! without credentials gets a page that reloads itself at once: the reload is a same-site
//! navigation and carries the cookie.

use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use vigia_domain::Timestamp;
use vigia_domain::incidents::Visibility;
use vigia_notify::templates::{status_label, urgency_label};
use vigia_store::{catalog, incidents};

use super::text::{Lang, Text, text};
use super::{escape, language, page};
use crate::auth::{Auth, authenticate_request};
use crate::error::{ApiError, ApiResult};
use crate::routes::incidents::load;
use crate::state::AppState;

/// The page.
pub(super) async fn show(
    State(state): State<AppState>,
    Path(code): Path<String>,
    parts: Parts,
) -> ApiResult<Response> {
    let lang = language(&parts.headers);
    let t = text(lang);
    let principal = match authenticate_request(&parts, &state).await {
        Ok(Some((_, authenticated))) => authenticated.principal,
        Ok(None) if cross_site(&parts) => return Ok(reload(lang, t)),
        // No credentials, or an expired or revoked session: the same hint.
        Ok(None) | Err(_) => return Ok(sign_in(lang, t)),
    };
    let (incident, actor) = match load(&state, &Auth(principal), &code).await {
        Ok(found) => found,
        Err(ApiError::NotFound | ApiError::Forbidden { .. }) => return Ok(not_found(lang, t)),
        Err(error) => return Err(error),
    };
    let comments =
        incidents::list_comments(&state.db, incident.id, actor.may_see_internal()).await?;
    let category = catalog::find_category(&state.db, incident.category_id)
        .await
        .ok()
        .map(|c| match lang {
            Lang::Es => c.name_es,
            Lang::En => c.name_en,
        });
    let department = match incident.department_id {
        Some(d) => catalog::find_department(&state.db, d)
            .await
            .ok()
            .map(|d| d.name),
        None => None,
    };
    let mut body = format!(
        "<h1>{code}: {title}</h1><dl>",
        code = escape(&incident.code.to_string()),
        title = escape(&incident.title),
    );
    let mut row = |label: &str, value: &str| {
        body.push_str(&format!("<dt>{label}</dt><dd>{}</dd>", escape(value)));
    };
    row(t.status, &status_label(lang, incident.status.as_str()));
    row(t.urgency, &urgency_label(lang, incident.urgency.as_str()));
    if let Some(category) = &category {
        row(t.category, category);
    }
    if let Some(department) = &department {
        row(t.department, department);
    }
    if let Some(location) = &incident.location_text {
        row(t.location, location);
    }
    row(t.reported, &minute(incident.created_at));
    body.push_str("</dl>");
    for paragraph in incident.description.split("\n\n") {
        body.push_str(&format!("<p>{}</p>", escape(paragraph)));
    }
    body.push_str(&format!("<h2>{}</h2>", t.comments));
    if comments.is_empty() {
        body.push_str(&format!("<p>{}</p>", t.no_comments));
    }
    for comment in &comments {
        let internal = comment.visibility == Visibility::Internal;
        body.push_str(&format!(
            "<section{class}><p class=\"meta\">{when}{note}</p><p>{text}</p></section>",
            class = if internal { " class=\"note\"" } else { "" },
            when = escape(&minute(comment.created_at)),
            note = if internal {
                format!(" · {}", t.internal)
            } else {
                String::new()
            },
            text = escape(&comment.body),
        ));
    }
    let title = format!("{} {}", t.incident, escape(&incident.code.to_string()));
    Ok(page(StatusCode::OK, lang, &title, &body, ""))
}

/// Whether the browser says the request came from another site (a link in a webmail).
fn cross_site(parts: &Parts) -> bool {
    parts
        .headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
}

fn sign_in(lang: Lang, t: &Text) -> Response {
    let body = format!(
        "<h1>{}</h1><p>{}</p><p><a href=\"/api/docs\">{}</a></p>",
        t.sign_in_title, t.sign_in, t.api_docs
    );
    let mut response = page(StatusCode::UNAUTHORIZED, lang, t.sign_in_title, &body, "");
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"vigia\""),
    );
    response
}

fn reload(lang: Lang, t: &Text) -> Response {
    let body = format!("<p>{}</p>", t.opening);
    page(
        StatusCode::OK,
        lang,
        t.opening,
        &body,
        "<meta http-equiv=\"refresh\" content=\"0\">",
    )
}

fn not_found(lang: Lang, t: &Text) -> Response {
    let body = format!("<h1>{}</h1><p>{}</p>", t.not_found_title, t.not_found);
    page(StatusCode::NOT_FOUND, lang, t.not_found_title, &body, "")
}

/// `2026-11-23 18:29 UTC`.
fn minute(at: Timestamp) -> String {
    let rfc = at.to_rfc3339();
    format!("{} UTC", rfc.get(..16).unwrap_or(&rfc).replace('T', " "))
}
