//! Which API keys may call each operation: one table, checked in one place.
//!
//! [`mark`] (a route layer) finds the matched operation's row and puts its [`Keys`] into the
//! request's extensions; [`crate::auth::authenticate_request`], through which every credential
//! passes, refuses an API key the row does not admit. An operation without a row admits no API
//! key. People are not limited here (their role is checked by the handler: `Admin`, staff of
//! the incident's department, ...). The document's `security` lists each row's scopes, and the
//! authorization matrix test walks this table and the document together, so a route cannot be
//! added without deciding who may call it.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use vigia_domain::auth::{ApiKeyPrincipal, Scope};

use crate::error::ApiError;

/// The API keys an operation admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// Anyone may call it, with or without credentials (health, sign-in, the public board).
    Open,
    /// People only: a key is refused whatever its scopes (accounts, administration).
    People,
    /// A key holding at least one of these scopes (people are not limited here).
    AnyOf(&'static [Scope]),
}

use Scope::{CatalogRead, DetectionsWrite, IncidentsRead, IncidentsWrite, MediaWrite, ReportsRead};

const CATALOG: Keys = Keys::AnyOf(&[CatalogRead]);
const READ: Keys = Keys::AnyOf(&[IncidentsRead, IncidentsWrite]);
const WRITE: Keys = Keys::AnyOf(&[IncidentsWrite]);
const REPORTS: Keys = Keys::AnyOf(&[ReportsRead]);
const MEDIA: Keys = Keys::AnyOf(&[MediaWrite]);
const DEVICE: Keys = Keys::AnyOf(&[DetectionsWrite]);
const OPEN: Keys = Keys::Open;
const PEOPLE: Keys = Keys::People;

/// Every operation of the API (method, path as routed and documented) and the keys it admits.
pub const TABLE: &[(&str, &str, Keys)] = &[
    ("GET", "/health", OPEN),
    // competitions
    ("POST", "/api/v1/competitions", PEOPLE),
    ("GET", "/api/v1/competitions", OPEN),
    ("GET", "/api/v1/competitions/{id}", OPEN),
    ("GET", "/api/v1/competitions/{id}/board", OPEN),
    ("POST", "/api/v1/competitions/{id}/votes", PEOPLE),
    ("DELETE", "/api/v1/competitions/{id}/votes", PEOPLE),
    ("POST", "/api/v1/competitions/{id}/entries", PEOPLE),
    ("GET", "/api/v1/competitions/{id}/entries/mine", PEOPLE),
    ("GET", "/api/v1/competitions/{id}/entries/{entry_id}", OPEN),
    (
        "GET",
        "/api/v1/competitions/{id}/entries/{entry_id}/processed/{file}",
        OPEN,
    ),
    // proctoring
    ("POST", "/api/v1/exams", PEOPLE),
    ("GET", "/api/v1/exams", PEOPLE),
    ("GET", "/api/v1/exams/{id}", PEOPLE),
    ("POST", "/api/v1/exams/{id}/participants", PEOPLE),
    ("GET", "/api/v1/exams/{id}/participants", PEOPLE),
    (
        "PUT",
        "/api/v1/exams/{id}/participants/{participant_id}/reference",
        PEOPLE,
    ),
    (
        "POST",
        "/api/v1/exams/{id}/participants/{participant_id}/captures",
        MEDIA,
    ),
    ("GET", "/api/v1/exams/{id}/captures", PEOPLE),
    ("GET", "/api/v1/captures/{id}", PEOPLE),
    ("POST", "/api/v1/captures/{id}/review", PEOPLE),
    (
        "GET",
        "/api/v1/incidents/{id}/attachments/{aid}/processing",
        READ,
    ),
    (
        "GET",
        "/api/v1/incidents/{id}/attachments/{aid}/processed/{file}",
        READ,
    ),
    ("GET", "/ready", OPEN),
    ("GET", "/metrics", OPEN),
    // accounts
    ("POST", "/api/v1/auth/register", OPEN),
    ("POST", "/api/v1/auth/login", OPEN),
    ("POST", "/api/v1/auth/refresh", OPEN),
    ("POST", "/api/v1/auth/logout", PEOPLE),
    ("GET", "/api/v1/me", PEOPLE),
    ("PATCH", "/api/v1/me", PEOPLE),
    ("POST", "/api/v1/me/password", PEOPLE),
    ("GET", "/api/v1/users", PEOPLE),
    ("POST", "/api/v1/users", PEOPLE),
    ("GET", "/api/v1/users/{id}", PEOPLE),
    ("PATCH", "/api/v1/users/{id}", PEOPLE),
    // catalog
    ("GET", "/api/v1/departments", CATALOG),
    ("POST", "/api/v1/departments", PEOPLE),
    ("GET", "/api/v1/departments/{id}", CATALOG),
    ("PUT", "/api/v1/departments/{id}", PEOPLE),
    ("DELETE", "/api/v1/departments/{id}", PEOPLE),
    ("GET", "/api/v1/categories", CATALOG),
    ("POST", "/api/v1/categories", PEOPLE),
    ("GET", "/api/v1/categories/{id}", CATALOG),
    ("PUT", "/api/v1/categories/{id}", PEOPLE),
    ("DELETE", "/api/v1/categories/{id}", PEOPLE),
    ("GET", "/api/v1/categories/{id}/sla", CATALOG),
    ("PUT", "/api/v1/categories/{id}/sla/{urgency}", PEOPLE),
    ("GET", "/api/v1/zones", CATALOG),
    ("POST", "/api/v1/zones", PEOPLE),
    ("GET", "/api/v1/zones/{id}", CATALOG),
    ("PUT", "/api/v1/zones/{id}", PEOPLE),
    ("DELETE", "/api/v1/zones/{id}", PEOPLE),
    ("POST", "/api/v1/zones/locate", CATALOG),
    // administration
    ("GET", "/api/v1/api-keys", PEOPLE),
    ("POST", "/api/v1/api-keys", PEOPLE),
    ("GET", "/api/v1/api-keys/{id}", PEOPLE),
    ("DELETE", "/api/v1/api-keys/{id}", PEOPLE),
    ("GET", "/api/v1/audit", PEOPLE),
    ("GET", "/api/v1/settings", PEOPLE),
    ("GET", "/api/v1/settings/{key}", PEOPLE),
    ("PUT", "/api/v1/settings/{key}", PEOPLE),
    // incidents
    ("GET", "/api/v1/incidents", Keys::AnyOf(&[IncidentsRead])),
    ("POST", "/api/v1/incidents", WRITE),
    ("GET", "/api/v1/incidents/mine", PEOPLE),
    ("POST", "/api/v1/incidents/preview", WRITE),
    (
        "POST",
        "/api/v1/incidents/validate-location",
        Keys::AnyOf(&[CatalogRead, IncidentsWrite]),
    ),
    ("GET", "/api/v1/public/incidents", OPEN),
    ("GET", "/api/v1/incidents/{id}", READ),
    ("PATCH", "/api/v1/incidents/{id}", WRITE),
    ("GET", "/api/v1/incidents/{id}/events", READ),
    ("POST", "/api/v1/incidents/{id}/transitions", WRITE),
    ("GET", "/api/v1/incidents/{id}/comments", READ),
    ("POST", "/api/v1/incidents/{id}/comments", WRITE),
    ("PUT", "/api/v1/incidents/{id}/department", PEOPLE),
    ("PUT", "/api/v1/incidents/{id}/assignee", WRITE),
    ("PUT", "/api/v1/incidents/{id}/visibility", WRITE),
    ("POST", "/api/v1/incidents/{id}/votes", PEOPLE),
    ("DELETE", "/api/v1/incidents/{id}/votes", PEOPLE),
    ("GET", "/api/v1/incidents/{id}/attachments", READ),
    ("POST", "/api/v1/incidents/{id}/attachments", WRITE),
    ("GET", "/api/v1/incidents/{id}/attachments/{aid}", READ),
    ("DELETE", "/api/v1/incidents/{id}/attachments/{aid}", WRITE),
    (
        "GET",
        "/api/v1/incidents/{id}/attachments/{aid}/thumbnail",
        READ,
    ),
    // statistics, reports and exports
    ("GET", "/api/v1/stats", REPORTS),
    ("GET", "/api/v1/stats/staff", PEOPLE),
    ("GET", "/api/v1/public/rankings", OPEN),
    ("GET", "/api/v1/reports", REPORTS),
    ("POST", "/api/v1/reports/run", PEOPLE),
    ("POST", "/api/v1/reports/custom", REPORTS),
    ("GET", "/api/v1/reports/{id}", REPORTS),
    ("GET", "/api/v1/reports/{id}/download", REPORTS),
    ("GET", "/api/v1/incidents/{id}/report", REPORTS),
    ("GET", "/api/v1/exports/incidents", REPORTS),
    ("GET", "/api/v1/exports/events", REPORTS),
    // a report's signed link (the key in its query is the credential) and the links' admin
    ("GET", "/reports/incidents/{department}/{file}", OPEN),
    ("GET", "/api/v1/report-links", PEOPLE),
    ("POST", "/api/v1/report-links/{id}/revoke", PEOPLE),
    // notifications
    ("GET", "/api/v1/webhooks", PEOPLE),
    ("POST", "/api/v1/webhooks", PEOPLE),
    ("GET", "/api/v1/webhooks/{id}", PEOPLE),
    ("PATCH", "/api/v1/webhooks/{id}", PEOPLE),
    ("DELETE", "/api/v1/webhooks/{id}", PEOPLE),
    ("POST", "/api/v1/webhooks/{id}/rotate-secret", PEOPLE),
    ("POST", "/api/v1/webhooks/{id}/test", PEOPLE),
    ("GET", "/api/v1/notifications/deliveries", PEOPLE),
    ("GET", "/api/v1/notifications/deliveries/{id}", PEOPLE),
    (
        "POST",
        "/api/v1/notifications/deliveries/{id}/replay",
        PEOPLE,
    ),
    // background jobs
    ("GET", "/api/v1/jobs", PEOPLE),
    ("GET", "/api/v1/jobs/{id}", PEOPLE),
    ("POST", "/api/v1/jobs/{id}/retry", PEOPLE),
    ("POST", "/api/v1/jobs/{id}/cancel", PEOPLE),
    ("GET", "/api/v1/schedules", PEOPLE),
    ("GET", "/api/v1/schedules/{name}", PEOPLE),
    ("PATCH", "/api/v1/schedules/{name}", PEOPLE),
    ("POST", "/api/v1/schedules/{name}/run", PEOPLE),
    ("GET", "/api/v1/schedules/{name}/runs", PEOPLE),
    // devices, subjects, detections and alerts
    ("GET", "/api/v1/subjects", PEOPLE),
    ("POST", "/api/v1/subjects", PEOPLE),
    ("GET", "/api/v1/subjects/{id}", PEOPLE),
    ("PUT", "/api/v1/subjects/{id}", PEOPLE),
    ("DELETE", "/api/v1/subjects/{id}", PEOPLE),
    ("PUT", "/api/v1/subjects/{id}/consent", PEOPLE),
    ("DELETE", "/api/v1/subjects/{id}/consent", PEOPLE),
    ("GET", "/api/v1/subjects/{id}/export", PEOPLE),
    ("GET", "/api/v1/devices", PEOPLE),
    ("POST", "/api/v1/devices", PEOPLE),
    ("GET", "/api/v1/devices/{id}", PEOPLE),
    ("PUT", "/api/v1/devices/{id}", PEOPLE),
    ("POST", "/api/v1/devices/{id}/key", PEOPLE),
    ("POST", "/api/v1/devices/heartbeat", DEVICE),
    ("GET", "/api/v1/monitoring-sessions", PEOPLE),
    ("POST", "/api/v1/monitoring-sessions", PEOPLE),
    ("POST", "/api/v1/monitoring-sessions/{id}/end", PEOPLE),
    ("POST", "/api/v1/detections", DEVICE),
    ("POST", "/api/v1/detections/batch", DEVICE),
    ("GET", "/api/v1/detections/overview", PEOPLE),
    ("GET", "/api/v1/detections/stats", PEOPLE),
    ("GET", "/api/v1/exports/detections", REPORTS),
    ("GET", "/api/v1/alert-rules", PEOPLE),
    ("POST", "/api/v1/alert-rules", PEOPLE),
    ("GET", "/api/v1/alert-rules/{id}", PEOPLE),
    ("PUT", "/api/v1/alert-rules/{id}", PEOPLE),
    ("DELETE", "/api/v1/alert-rules/{id}", PEOPLE),
    ("GET", "/api/v1/silences", PEOPLE),
    ("POST", "/api/v1/silences", PEOPLE),
    ("DELETE", "/api/v1/silences/{id}", PEOPLE),
    ("GET", "/api/v1/alerts", PEOPLE),
    ("GET", "/api/v1/alerts/{id}", PEOPLE),
    ("POST", "/api/v1/alerts/{id}/acknowledge", PEOPLE),
    ("POST", "/api/v1/alerts/{id}/resolve", PEOPLE),
    // real time
    ("GET", "/ws", READ),
    ("GET", "/api/v1/stream", READ),
];

/// The row of `method path`, if the table has one (`HEAD` is answered by `GET`).
pub fn keys_of(method: &Method, path: &str) -> Option<Keys> {
    static INDEX: LazyLock<HashMap<(&'static str, &'static str), Keys>> = LazyLock::new(|| {
        TABLE
            .iter()
            .map(|&(method, path, keys)| ((method, path), keys))
            .collect()
    });
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    INDEX.get(&(method, path)).copied()
}

/// The route layer: records the matched operation's row for the credential check.
pub async fn mark(mut request: Request, next: Next) -> Response {
    let keys = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| keys_of(request.method(), path.as_str()));
    if let Some(keys) = keys {
        request.extensions_mut().insert(keys);
    }
    next.run(request).await
}

/// Whether the operation (its row, `None` without one) admits this key.
pub fn check_key(keys: Option<Keys>, key: &ApiKeyPrincipal) -> Result<(), ApiError> {
    match keys {
        Some(Keys::Open) => Ok(()),
        Some(Keys::AnyOf(scopes)) if scopes.iter().any(|s| key.scopes.contains(s)) => Ok(()),
        Some(Keys::AnyOf(scopes)) => Err(ApiError::Forbidden {
            detail: missing_scope(scopes),
        }),
        Some(Keys::People) | None => Err(ApiError::Forbidden {
            detail: "this endpoint is for people, not API keys",
        }),
    }
}

fn missing_scope(scopes: &[Scope]) -> &'static str {
    match scopes {
        [Scope::IncidentsRead, Scope::IncidentsWrite] => {
            "this API key lacks the incidents:read and incidents:write scopes (either will do)"
        }
        [Scope::CatalogRead, Scope::IncidentsWrite] => {
            "this API key lacks the catalog:read and incidents:write scopes (either will do)"
        }
        [Scope::CatalogRead, ..] => "this API key lacks the catalog:read scope",
        [Scope::IncidentsRead, ..] => "this API key lacks the incidents:read scope",
        [Scope::IncidentsWrite, ..] => "this API key lacks the incidents:write scope",
        [Scope::DetectionsWrite, ..] => "this API key lacks the detections:write scope",
        [Scope::MediaWrite, ..] => "this API key lacks the media:write scope",
        [Scope::ReportsRead, ..] | [] => "this API key lacks the reports:read scope",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_answered_by_the_get_row_and_an_unknown_route_has_none() {
        assert_eq!(keys_of(&Method::HEAD, "/api/v1/zones"), Some(CATALOG));
        assert_eq!(keys_of(&Method::GET, "/api/v1/nowhere"), None);
    }

    #[test]
    fn a_key_is_admitted_by_any_listed_scope_and_never_by_a_people_row_or_a_missing_one() {
        let key = ApiKeyPrincipal {
            key_id: vigia_domain::ids::ApiKeyId(1),
            created_by: vigia_domain::ids::UserId(1),
            scopes: vec![IncidentsWrite],
            departments: Vec::new(),
        };
        assert!(check_key(Some(READ), &key).is_ok());
        assert!(check_key(Some(OPEN), &key).is_ok());
        assert!(check_key(Some(REPORTS), &key).is_err());
        assert!(check_key(Some(PEOPLE), &key).is_err());
        assert!(check_key(None, &key).is_err());
    }
}
