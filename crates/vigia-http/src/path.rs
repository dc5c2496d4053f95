//! The path-parameter extractor: axum's `Path`, refused as problem+json.
//!
//! A path whose parameter cannot be read (`/api/v1/zones/abc` where a number is expected)
//! names nothing that exists: 404, as an unknown id gets, never axum's plain-text 400.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The path's parameters, deserialized like axum's `Path`.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|_| ApiError::NotFound)
    }
}
