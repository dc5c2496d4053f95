//! Lists of incidents: `GET /my` (the viewer's own reports, with filters, live status) and
//! `GET /board` (public incidents, votes and rankings; no sign-in needed). Both read through
//! the API's list (`vigia_store::incidents::list` with the caller's `ReadScope`, the filters
//! of `GET /api/v1/incidents/mine` and `GET /api/v1/public/incidents`) and rankings
//! (`GET /api/v1/public/rankings`).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use vigia_domain::incidents::{ReadScope, Status};
use vigia_store::catalog;
use vigia_store::incidents::{self, Incident, IncidentFilter, stats};
use vigia_store::page::Cursor;

use super::Lang;
use super::page::{UiError, render, urlencode};
use super::viewer::{Chrome, Viewer};
use crate::state::AppState;

const PAGE: usize = 20;
const STATUSES: [&str; 6] = [
    "new",
    "acknowledged",
    "in_progress",
    "on_hold",
    "resolved",
    "closed",
];

/// The filters of `/my` (every one optional; blanks ignored).
#[derive(Debug, Default, Deserialize)]
pub struct MineQuery {
    status: Option<String>,
    category: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
}

impl MineQuery {
    /// The query string of these filters (without the cursor).
    fn filters(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("status", &self.status),
            ("category", &self.category),
            ("q", &self.q),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
                parts.push(format!("{k}={}", urlencode(v)));
            }
        }
        parts.join("&")
    }
}

#[derive(Template)]
#[template(path = "ui/mine.html")]
struct Mine<'a> {
    c: &'a Chrome,
    rows: Rows<'a>,
    statuses: &'static [&'static str],
    categories: Vec<(i64, String)>,
    q: &'a MineQuery,
}

#[derive(Template)]
#[template(path = "ui/mine_rows.html")]
struct Rows<'a> {
    c: &'a Chrome,
    items: Vec<Incident>,
    more: Option<String>,
    live_src: String,
}

impl Mine<'_> {
    fn status_selected(&self, s: &str) -> bool {
        self.q.status.as_deref() == Some(s)
    }
    fn category_selected(&self, id: &i64) -> bool {
        self.q.category.as_deref() == Some(id.to_string().as_str())
    }
    fn text(&self) -> &str {
        self.q.q.as_deref().unwrap_or("")
    }
}

async fn category_names(state: &AppState, lang: Lang) -> Result<Vec<(i64, String)>, UiError> {
    let mut names: Vec<(i64, String)> = catalog::list_categories(&state.db)
        .await?
        .into_iter()
        .map(|c| {
            let name = match lang {
                Lang::Es => c.name_es,
                Lang::En => c.name_en,
            };
            (c.id.0, name)
        })
        .collect();
    names.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(names)
}

async fn my_rows<'a>(
    state: &AppState,
    viewer: &'a Viewer,
    q: &MineQuery,
) -> Result<Rows<'a>, UiError> {
    let (auth, user) = viewer.require()?;
    let filter = IncidentFilter {
        status: q
            .status
            .as_deref()
            .and_then(|s| Status::parse("status", s).ok())
            .into_iter()
            .collect(),
        category: q
            .category
            .as_deref()
            .and_then(|c| c.parse().ok())
            .map(vigia_domain::ids::CategoryId),
        q: q.q.clone().filter(|s| !s.trim().is_empty()),
        reporter: Some(user.user_id),
        ..Default::default()
    };
    let cursor = q.cursor.as_deref().and_then(Cursor::decode);
    let page = incidents::list(&state.db, &ReadScope::of(&auth.0), &filter, cursor, PAGE).await?;
    let filters = q.filters();
    let more = page.next_cursor.map(|c| {
        if filters.is_empty() {
            format!("/my?cursor={c}")
        } else {
            format!("/my?{filters}&cursor={c}")
        }
    });
    Ok(Rows {
        c: &viewer.chrome,
        items: page.items,
        more,
        live_src: format!("/my/live?{filters}"),
    })
}

/// `GET /my`.
pub async fn mine(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<MineQuery>,
) -> Result<Response, UiError> {
    let rows = my_rows(&state, &viewer, &q).await?;
    let page = Mine {
        c: &viewer.chrome,
        rows,
        statuses: &STATUSES,
        categories: category_names(&state, viewer.lang()).await?,
        q: &q,
    };
    Ok(render(&viewer, StatusCode::OK, &page))
}

/// `GET /my/live`: the rows alone, for the live update.
pub async fn mine_live(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<MineQuery>,
) -> Result<Response, UiError> {
    let rows = my_rows(&state, &viewer, &q).await?;
    Ok(render(&viewer, StatusCode::OK, &rows))
}

#[derive(Template)]
#[template(path = "ui/board.html")]
struct Board<'a> {
    c: &'a Chrome,
    items: Vec<Incident>,
    voted: Vec<bool>,
    more: Option<String>,
    by_zone: Vec<(String, Vec<stats::Ranked>)>,
    by_category: Vec<(String, Vec<stats::Ranked>)>,
}

#[derive(Debug, Default, Deserialize)]
pub struct BoardQuery {
    cursor: Option<String>,
}

/// `GET /board`: public incidents (no personal data), "me too" votes, rankings.
pub async fn board(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<BoardQuery>,
) -> Result<Response, UiError> {
    let lang = viewer.lang();
    let filter = IncidentFilter {
        public_only: true,
        ..Default::default()
    };
    let cursor = q.cursor.as_deref().and_then(Cursor::decode);
    let page = incidents::list(&state.db, &ReadScope::PublicOnly, &filter, cursor, PAGE).await?;
    let mut voted = Vec::with_capacity(page.items.len());
    for item in &page.items {
        voted.push(match &viewer.auth {
            Some(auth) => match auth.0.user_id() {
                Some(user) => incidents::has_voted(&state.db, item.id, user).await?,
                None => false,
            },
            None => false,
        });
    }
    let rankings = stats::rankings(&state.db, 3).await?;
    let zones: HashMap<i64, String> = catalog::list_zones(&state.db)
        .await?
        .into_iter()
        .map(|z| (z.id.0, z.name))
        .collect();
    let categories: HashMap<i64, String> =
        category_names(&state, lang).await?.into_iter().collect();
    let name = |names: &HashMap<i64, String>, id: i64| names.get(&id).cloned().unwrap_or_default();
    let page_out = Board {
        c: &viewer.chrome,
        more: page.next_cursor.map(|c| format!("/board?cursor={c}")),
        items: page.items,
        voted,
        by_zone: rankings
            .by_zone
            .into_iter()
            .map(|(z, items)| (name(&zones, z.0), items))
            .collect(),
        by_category: rankings
            .by_category
            .into_iter()
            .map(|(c, items)| (name(&categories, c.0), items))
            .collect(),
    };
    Ok(render(&viewer, StatusCode::OK, &page_out))
}
