//! `GET /incidents/{code}`: one incident within the viewer's scope (the API's `load`): its
//! details, history, comments the viewer may read, attachments with thumbnails (a video with
//! its processing live from the stream's `video.*` messages, then its player), and the vote
//! of a public incident; `/incidents/{code}/live` is the part that changes, which the page's
//! script fetches again when the real-time stream says the incident changed. The same page
//! answers "not found" whether the incident does not exist or is out of scope.
//!
//! E-mails link here. The session cookie is `SameSite=Strict`, so a browser leaves it out
//! when the link is followed from a webmail on another site (`Sec-Fetch-Site: cross-site`):
//! such a request without credentials gets a page that reloads itself at once, a same-site
//! navigation that carries the cookie.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use vigia_domain::Timestamp;
use vigia_domain::incidents::MediaKind;
use vigia_domain::incidents::Visibility;
use vigia_store::incidents::{self, Incident, attachments};
use vigia_store::{StoreError, catalog, transcodes};

use super::page::{UiError, render, see_other};
use super::viewer::{Chrome, Viewer};
use crate::error::ApiError;
use crate::routes::incidents::load;
use crate::state::AppState;

/// What the page shows, read within the viewer's scope.
pub struct View {
    pub incident: Incident,
    pub code: String,
    pub category: String,
    pub department: Option<String>,
    pub zone: Option<String>,
    pub comments: Vec<CommentView>,
    pub timeline: Vec<(Timestamp, String)>,
    pub attachments: Vec<AttachmentView>,
    pub voted: bool,
    pub may_vote: bool,
}

pub struct CommentView {
    pub at: Timestamp,
    pub internal: bool,
    pub body: String,
}

pub struct AttachmentView {
    pub name: String,
    pub url: String,
    pub thumbnail: Option<String>,
    /// A video's processing: its status, progress, reason and, once ready, its files.
    pub video: Option<VideoView>,
}

pub struct VideoView {
    /// `queued`, `processing`, `ready`, `failed`.
    pub status: String,
    pub percent: i64,
    pub reason: Option<String>,
    /// The processed video and its poster, once ready.
    pub src: Option<String>,
    pub poster: Option<String>,
}

impl VideoView {
    fn of(t: transcodes::Transcode, url: &str) -> Self {
        let ready = t.status == "ready";
        VideoView {
            percent: (t.progress * 100.0).round() as i64,
            src: ready.then(|| format!("{url}/processed/video.mp4")),
            poster: ready.then(|| format!("{url}/processed/poster.jpg")),
            reason: t.reason,
            status: t.status,
        }
    }

    /// The catalog key of its status.
    pub fn status_key(&self) -> &'static str {
        match self.status.as_str() {
            "queued" => "incident.video.queued",
            "processing" => "incident.video.processing",
            "ready" => "incident.video.ready",
            _ => "incident.video.failed",
        }
    }

    /// Still being processed: the part is fetched again.
    pub fn pending(&self) -> bool {
        matches!(self.status.as_str(), "queued" | "processing")
    }
}

#[derive(Template)]
#[template(path = "ui/incident.html")]
struct Page<'a> {
    c: &'a Chrome,
    v: &'a View,
    /// Just reported: say so, with the code.
    created: bool,
}

#[derive(serde::Deserialize)]
pub struct Created {
    new: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/incident_live.html")]
struct Live<'a> {
    c: &'a Chrome,
    v: &'a View,
}

#[derive(Template)]
#[template(path = "ui/incident_facts.html")]
struct Facts<'a> {
    c: &'a Chrome,
    v: &'a View,
}

#[derive(Template)]
#[template(path = "ui/incident_attachments.html")]
struct Attachments<'a> {
    c: &'a Chrome,
    v: &'a View,
}

#[derive(serde::Deserialize)]
pub struct Part {
    part: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/reload.html")]
struct Reload<'a> {
    c: &'a Chrome,
}

async fn view(state: &AppState, viewer: &Viewer, code: &str) -> Result<View, UiError> {
    let (auth, user) = viewer.require()?;
    let lang = viewer.lang();
    let (incident, relation) = load(state, auth, code).await.map_err(|e| match e {
        ApiError::Forbidden { .. } => UiError::Api(ApiError::NotFound),
        other => UiError::Api(other),
    })?;
    let internal = relation.may_see_internal();
    let comments = incidents::list_comments(&state.db, incident.id, internal)
        .await?
        .into_iter()
        .map(|c| CommentView {
            at: c.created_at,
            internal: c.visibility == Visibility::Internal,
            body: c.body,
        })
        .collect();
    let events =
        incidents::events::list_for_incident(&state.db, incident.id, internal, None, 200).await?;
    let timeline = events
        .items
        .into_iter()
        .filter(|e| !matches!(e.kind.as_str(), "voted" | "vote_withdrawn" | "notified"))
        .map(|e| {
            let text = match e.kind.as_str() {
                "status_changed" => {
                    let to = e.data.get("to").and_then(|v| v.as_str()).unwrap_or("");
                    let status = super::i18n::lookup(lang, &format!("status.{to}")).unwrap_or(to);
                    super::i18n::tr_with(lang, "event.status_changed", &[("status", status)])
                }
                kind => super::i18n::lookup(lang, &format!("event.{kind}"))
                    .unwrap_or(super::i18n::tr(lang, "event.other"))
                    .to_owned(),
            };
            (e.at, text)
        })
        .collect();
    let category = catalog::find_category(&state.db, incident.category_id)
        .await
        .map(|c| match lang {
            super::Lang::Es => c.name_es,
            super::Lang::En => c.name_en,
        })
        .unwrap_or_default();
    let department = match incident.department_id {
        Some(d) => catalog::find_department(&state.db, d)
            .await
            .ok()
            .map(|d| d.name),
        None => None,
    };
    let zone = match incident.zone_id {
        Some(z) => catalog::find_zone(&state.db, z).await.ok().map(|z| z.name),
        None => None,
    };
    let mut attachments = Vec::new();
    for a in attachments::list(&state.db, incident.id).await? {
        let url = format!("/api/v1/incidents/{}/attachments/{}", a.incident_id, a.id);
        let video = match a.media.kind() {
            MediaKind::Video => match transcodes::find(&state.db, a.id.0).await {
                Ok(t) => Some(VideoView::of(t, &url)),
                Err(StoreError::NotFound) => None,
                Err(other) => return Err(other.into()),
            },
            _ => None,
        };
        attachments.push(AttachmentView {
            name: a.name,
            thumbnail: a.thumbnail_key.as_ref().map(|_| format!("{url}/thumbnail")),
            url,
            video,
        });
    }
    let voted = incidents::has_voted(&state.db, incident.id, user.user_id).await?;
    Ok(View {
        code: incident.code.to_string(),
        may_vote: relation.may_vote(incident.visibility).is_ok(),
        incident,
        category,
        department,
        zone,
        comments,
        timeline,
        attachments,
        voted,
    })
}

/// The page.
pub async fn show(
    State(state): State<AppState>,
    Path(code): Path<String>,
    Query(q): Query<Created>,
    viewer: Viewer,
    parts: Parts,
) -> Result<Response, UiError> {
    if viewer.auth.is_none() && cross_site(&parts) {
        return Ok(render(
            &viewer,
            StatusCode::OK,
            &Reload { c: &viewer.chrome },
        ));
    }
    let v = view(&state, &viewer, &code).await?;
    Ok(render(
        &viewer,
        StatusCode::OK,
        &Page {
            c: &viewer.chrome,
            v: &v,
            created: q.new.is_some(),
        },
    ))
}

/// The parts of the page that change: its facts and vote (`?part=facts`), its attachments
/// with their videos' processing (`?part=attachments`, fetched again on `video.*` messages),
/// or its comments and history.
pub async fn live(
    State(state): State<AppState>,
    Path(code): Path<String>,
    Query(q): Query<Part>,
    viewer: Viewer,
) -> Result<Response, UiError> {
    let v = view(&state, &viewer, &code).await?;
    let c = &viewer.chrome;
    Ok(match q.part.as_deref() {
        Some("facts") => render(&viewer, StatusCode::OK, &Facts { c, v: &v }),
        Some("attachments") => render(&viewer, StatusCode::OK, &Attachments { c, v: &v }),
        _ => render(&viewer, StatusCode::OK, &Live { c, v: &v }),
    })
}

/// `POST /incidents/{code}/vote`: "me too" (`vote=1`) or take it back (`vote=0`), as
/// `POST`/`DELETE /api/v1/incidents/{id}/votes`; a second vote changes nothing.
pub async fn vote(
    State(state): State<AppState>,
    Path(code): Path<String>,
    viewer: Viewer,
    body: Bytes,
) -> Result<Response, UiError> {
    let (auth, user) = viewer.require()?;
    let form = viewer.form(&body)?;
    let (incident, relation) = load(&state, auth, &code).await?;
    relation
        .may_vote(incident.visibility)
        .map_err(ApiError::from)?;
    let now = Timestamp::now();
    if form.get("vote") == "0" {
        incidents::withdraw_vote(&state.db, incident.id, user.user_id, now).await?;
    } else {
        match incidents::vote(&state.db, incident.id, user.user_id, now).await {
            Ok(_) | Err(StoreError::Duplicate { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    let back = match form.get("back") {
        "board" => "/board".to_owned(),
        _ => format!("/incidents/{}", incident.code),
    };
    Ok(see_other(&back))
}

/// Whether the browser says the request came from another site (a link in a webmail).
fn cross_site(parts: &Parts) -> bool {
    parts
        .headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
}
