//! What every operation of the document shares, written once instead of in each annotation:
//! who may call it (from [`crate::access::TABLE`]), and the errors the shared machinery
//! answers with — the credential extractors (401, 403), the JSON body extractor (400, 413,
//! 415, 422), the query extractor (400, 422) and the path extractor (404) — all as RFC 9457
//! `application/problem+json`, the media type [`crate::error::ApiError`] sends.

use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::response::Response;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};

use crate::access::{self, Keys};

/// The media type of every error body.
pub const PROBLEM: &str = "application/problem+json";

/// Completes every operation of `doc` (see the module's documentation).
pub fn complete(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in operations(item) {
            let keys = access::keys_of(&method, path);
            complete_operation(operation, keys);
            // An incident changes under optimistic concurrency (its version, `If-Match`).
            if method != axum::http::Method::GET && path.starts_with("/api/v1/incidents/{id}") {
                operation
                    .responses
                    .responses
                    .entry("412".to_owned())
                    .or_insert_with(|| {
                        RefOr::T(problem_response(
                            "the incident changed meanwhile (a stale If-Match, or a concurrent change)",
                        ))
                    });
            }
        }
    }
}

/// The operations of a path item, with their methods.
pub fn operations(item: &mut PathItem) -> Vec<(axum::http::Method, &mut Operation)> {
    use axum::http::Method;
    [
        (Method::GET, item.get.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|op| (method, op)))
    .collect()
}

fn complete_operation(operation: &mut Operation, keys: Option<Keys>) {
    // Who may call it: people with a bearer token or session, and the API keys of its row.
    operation.security = match keys {
        Some(Keys::Open) => None,
        Some(Keys::AnyOf(scopes)) => Some(vec![SecurityRequirement::new(
            "bearer",
            scopes.iter().map(|s| s.as_str()),
        )]),
        Some(Keys::People) | None => Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]),
    };
    let mut errors: Vec<(&str, &str)> = Vec::new();
    if operation.security.is_some() {
        errors.push(("401", "missing, invalid, expired or revoked credentials"));
        errors.push((
            "403",
            "the caller may not do this (role, or an API key's scopes)",
        ));
    }
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let located = |place: ParameterIn| {
        parameters
            .iter()
            .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
    };
    if located(ParameterIn::Path) {
        errors.push(("404", "nothing here, or nothing the caller may see"));
    }
    if located(ParameterIn::Query) {
        errors.push(("400", "the request cannot be read"));
        errors.push(("422", "invalid fields, each named"));
    }
    if operation.request_body.is_some() {
        errors.push(("400", "the request cannot be read"));
        errors.push(("413", "the body is too large"));
        errors.push(("415", "the body's media type is not accepted"));
        errors.push(("422", "invalid fields, each named"));
    }
    let responses = &mut operation.responses.responses;
    for (status, description) in errors {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(problem_response(description)));
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        // OpenAPI requires a description; an annotation without one gets the status's reason.
        if response.description.is_empty() {
            response.description = status
                .parse::<u16>()
                .ok()
                .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
                .and_then(|code| code.canonical_reason())
                .unwrap_or("answer")
                .to_owned();
        }
        // Every error is a problem document, whatever media type its annotation assumed.
        if status.starts_with('4') || status.starts_with('5') {
            let schema = response
                .content
                .shift_remove("application/json")
                .or_else(|| response.content.shift_remove(PROBLEM));
            let content = match schema {
                Some(RefOr::T(content)) => content,
                _ => problem_content(),
            };
            response
                .content
                .insert(PROBLEM.to_owned(), RefOr::T(content));
        }
    }
}

fn problem_content() -> Content {
    Content::new(Some(Ref::from_schema_name("Problem")))
}

fn problem_response(description: &str) -> Response {
    let mut response = Response::new(description);
    response
        .content
        .insert(PROBLEM.to_owned(), RefOr::T(problem_content()));
    response
}
