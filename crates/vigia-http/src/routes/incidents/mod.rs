//! Incidents: report, read (scoped), lifecycle, comments, routing, assignment, visibility, votes,
//! history. Who may do what is decided by the domain: the caller's [`Relation`] to the
//! incident answers `may_edit`, `may_comment`, `may_transition`, ... (handlers only ask and map
//! the refusal to a problem); the store only ever returns what the caller's [`ReadScope`] admits.
//!
//! Code map: [`wire`] (what an incident looks like on the wire, written by hand), [`report`]
//! (report, preview, location check), [`read`] (lists, one incident, history), [`lifecycle`]
//! (transitions), [`comments`], [`assignment`] (department, assignee, visibility), [`votes`],
//! [`edit`]; this module loads an incident with the caller's relation and checks `If-Match`.

use axum::http::{HeaderMap, header};
use vigia_domain::ids::IncidentId;
use vigia_domain::incidents::{IncidentCode, ReadScope, Relation};
use vigia_store::incidents::{self, Incident};

use super::{Routes, op};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

mod assignment;
mod comments;
mod edit;
mod lifecycle;
mod read;
mod report;
mod votes;
mod wire;

use assignment::{__path_assign_department, __path_assign_user, __path_set_visibility};
// The web UI's staff forms call these handlers with the form as their wire type.
pub(crate) use assignment::{
    AssigneeIn, DepartmentAssignIn, VisibilityIn, assign_department, assign_user, set_visibility,
};
use comments::{__path_comment, __path_comments, comments};
pub(crate) use comments::{CommentIn, comment};
use edit::{__path_edit, edit};
use lifecycle::__path_transition;
pub(crate) use lifecycle::{TransitionIn, transition};
use read::{
    __path_events, __path_find, __path_list, __path_mine, __path_public_list, events, find, list,
    mine, public_list,
};
pub(crate) use read::{IncidentQuery, filter};
use report::{
    __path_create, __path_preview, __path_validate_location, create, preview, validate_location,
};
pub(crate) use report::{IncidentIn, parse_incident};
use votes::{__path_vote, __path_withdraw_vote, vote, withdraw_vote};
pub use wire::{IncidentOut, IncidentPage};

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, list);
    let routes = op!(routes, create);
    let routes = op!(routes, mine);
    let routes = op!(routes, preview);
    let routes = op!(routes, validate_location);
    let routes = op!(routes, find);
    let routes = op!(routes, edit);
    let routes = op!(routes, events);
    let routes = op!(routes, transition);
    let routes = op!(routes, comments);
    let routes = op!(routes, comment);
    let routes = op!(routes, assign_department);
    let routes = op!(routes, assign_user);
    let routes = op!(routes, set_visibility);
    let routes = op!(routes, vote);
    let routes = op!(routes, withdraw_vote);
    op!(routes, public_list)
}

// --- loading and rules -------------------------------------------------------------------------

/// Parses a path id: a number or a code such as `INC-000123`.
pub(crate) fn incident_id(raw: &str) -> ApiResult<IncidentId> {
    if let Ok(n) = raw.parse::<i64>() {
        return Ok(IncidentId(n));
    }
    IncidentCode::parse("id", raw)
        .map(|c| IncidentId(c.sequence() as i64))
        .map_err(|_| ApiError::NotFound)
}

/// The incident if the caller may see it; 404 otherwise (never 403: existence is not leaked).
pub(crate) async fn load(
    state: &AppState,
    auth: &Auth,
    raw_id: &str,
) -> ApiResult<(Incident, Relation)> {
    let incident =
        incidents::find(&state.db, &ReadScope::of(&auth.0), incident_id(raw_id)?).await?;
    let relation = Relation::of(&auth.0, incident.department_id, incident.reporter_id);
    Ok((incident, relation))
}

/// Checks `If-Match` (optional; when sent it must name the current version) → 412.
pub(super) fn check_if_match(headers: &HeaderMap, incident: &Incident) -> ApiResult<()> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let raw = value
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match must be an ETag such as \"3\""))?;
    // `"3"`, `W/"3"` or a bare `3` (the document's pattern, IF_MATCH_PATTERN), or `*`.
    let tag = raw.trim();
    let unweak = tag.strip_prefix("W/").unwrap_or(tag);
    let digits = unweak
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(unweak);
    let version: Option<i64> =
        (!digits.is_empty() && digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten();
    match version {
        Some(v) if v == incident.version => Ok(()),
        Some(_) => Err(ApiError::PreconditionFailed {
            detail: format!(
                "the incident is at version {}; reload it and try again",
                incident.version
            ),
        }),
        None if tag == "*" => Ok(()),
        None => Err(ApiError::bad_request(
            "If-Match must be an ETag such as \"3\"",
        )),
    }
}
