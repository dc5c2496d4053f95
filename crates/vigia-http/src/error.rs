//! The one API error type. Every error leaves the server as RFC 9457 `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use vigia_domain::FieldError;
use vigia_domain::incidents::Denied;
use vigia_store::StoreError;

pub type ApiResult<T, E = ApiError> = Result<T, E>;

/// What went wrong, as the client should learn it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be read (malformed JSON, bad query string, bad header).
    #[error("{detail}")]
    BadRequest { detail: String },
    /// 401: no credentials, or credentials that are wrong, expired or revoked.
    #[error("{detail}")]
    Unauthorized { detail: &'static str },
    /// 403: the caller is known but may not do this.
    #[error("{detail}")]
    Forbidden { detail: &'static str },
    /// 404: nothing here, or nothing the caller may see.
    #[error("not found")]
    NotFound,
    /// 405: the path exists but not with this method.
    #[error("this path does not accept this method")]
    MethodNotAllowed,
    /// 410: it existed, and no longer opens (an expired or revoked link).
    #[error("{detail}")]
    Gone { detail: &'static str },
    /// 409: the request conflicts with the current state (duplicate, in use, invalid transition).
    #[error("{detail}")]
    Conflict {
        detail: String,
        extra: Option<serde_json::Value>,
    },
    /// 412: the `If-Match` version is stale.
    #[error("{detail}")]
    PreconditionFailed { detail: String },
    /// 413: the body is larger than allowed.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 415: the body's media type is not accepted.
    #[error("{detail}")]
    UnsupportedMediaType { detail: String },
    /// 422: the request was read but some fields are invalid; each is named.
    #[error("{} invalid field(s)", .0.len())]
    Validation(Vec<FieldError>),
    /// 429: too many attempts; retry after the given number of seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// 503: a dependency (database, object storage) is not reachable.
    #[error("{detail}")]
    Unavailable { detail: String },
    /// 500: a bug or an unexpected failure; logged in full, shown opaquely.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:vigia:problem:validation`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For validation problems: every invalid field and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<FieldErrorOut>,
    /// Further members specific to the problem (e.g. `allowed` transitions).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub extra: Option<serde_json::Value>,
}

/// One invalid field of a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorOut {
    /// Where the field is: `email`, `contact_emails[1]`, `location.lat`.
    pub field: String,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            detail: detail.into(),
        }
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            detail: detail.into(),
            extra: None,
        }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad-request",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Gone { .. } => "gone",
            ApiError::Conflict { .. } => "conflict",
            ApiError::PreconditionFailed { .. } => "stale-version",
            ApiError::PayloadTooLarge { .. } => "payload-too-large",
            ApiError::UnsupportedMediaType { .. } => "unsupported-media-type",
            ApiError::Validation(_) => "validation",
            ApiError::TooManyRequests { .. } => "rate-limited",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            ApiError::Internal(_) => {
                Some("an unexpected error occurred; it has been logged".to_owned())
            }
            ApiError::Validation(errors) if errors.len() == 1 => Some(errors[0].to_string()),
            ApiError::Validation(_) => Some("several fields are invalid; see errors".to_owned()),
            ApiError::TooManyRequests { retry_after_secs } => {
                Some(format!("too many attempts; retry in {retry_after_secs} s"))
            }
            ApiError::NotFound => None,
            other => Some(other.to_string()),
        };
        let errors = match self {
            ApiError::Validation(errors) => errors
                .iter()
                .map(|e| FieldErrorOut {
                    field: e.field.clone(),
                    message: e.message.clone(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let extra = match self {
            ApiError::Conflict { extra, .. } => extra.clone(),
            _ => None,
        };
        Problem {
            kind: format!("urn:vigia:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            errors,
            extra,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "request failed");
        }
        let status = self.status();
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::TooManyRequests { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Unauthorized { .. } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"vigia\""),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Duplicate { field } => ApiError::Conflict {
                detail: format!("{field} is already taken"),
                extra: Some(serde_json::json!({ "field": field })),
            },
            StoreError::UnknownReference { field, entity } => {
                ApiError::field(field, format!("refers to a {entity} that does not exist"))
            }
            StoreError::Stale => ApiError::PreconditionFailed {
                detail: "it was changed by someone else; reload it and try again".into(),
            },
            StoreError::InUse { by } => {
                ApiError::conflict(format!("still in use by {by}; remove those first"))
            }
            StoreError::Database(e) => {
                ApiError::Internal(anyhow::Error::new(e).context("database error"))
            }
            StoreError::Sqlite(e) => {
                ApiError::Internal(anyhow::Error::new(e).context("database error"))
            }
            StoreError::Other(e) => ApiError::Internal(e),
        }
    }
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> Self {
        ApiError::Validation(errors)
    }
}

/// A domain refusal ([`vigia_domain::incidents::permissions`]) as the API shows it.
impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Forbidden(detail) => ApiError::Forbidden { detail },
            Denied::Field { field, message } => ApiError::field(field, message),
            Denied::Conflict(detail) => ApiError::conflict(detail),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        ApiError::Validation(vec![error])
    }
}
