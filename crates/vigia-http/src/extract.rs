//! Extractors whose rejections are [`ApiError`]s, so malformed input gets the same problem format
//! as every other error.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body, read strictly: the content type must be JSON, syntax errors say where they are
/// (400), and type errors, missing or unknown fields name the field (422).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType {
                detail: "send the body as JSON with Content-Type: application/json".into(),
            });
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit: 0 }
            } else {
                ApiError::bad_request(format!("cannot read the request body: {rejection}"))
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses JSON the way every endpoint does, with errors that say where the input went wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." { "body".to_owned() } else { path };
                ApiError::field(field, clean_serde_message(&inner.to_string()))
            }
            _ => ApiError::bad_request(format!(
                "malformed JSON at line {} column {}: {}",
                inner.line(),
                inner.column(),
                clean_serde_message(&inner.to_string())
            )),
        }
    })?;
    deserializer.end().map_err(|e| {
        ApiError::bad_request(format!("trailing characters after the JSON value: {e}"))
    })?;
    Ok(value)
}

/// serde's messages end with " at line X column Y"; we report the position separately.
fn clean_serde_message(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match json_body(&self.0) {
            Ok(body) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(error) => {
                ApiError::Internal(anyhow::anyhow!("cannot encode the response: {error}"))
                    .into_response()
            }
        }
    }
}

/// `value` as a JSON body (see [`crate::json_out::body`]).
fn json_body<T: Serialize>(value: &T) -> serde_json::Result<Bytes> {
    crate::json_out::body(|buffer| serde_json::to_writer(buffer, value))
}

/// A query string, with errors as 422 naming the parameter. Unknown parameters are rejected by
/// the target type's `deny_unknown_fields`.
#[derive(Debug, Clone, Default)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Parses a query string the way [`Query`] does (422 naming the parameter).
pub fn parse_query<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded_parse(raw));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." {
            "query".to_owned()
        } else {
            path
        };
        ApiError::field(field, error.into_inner().to_string())
    })
}

fn form_urlencoded_parse(raw: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(raw.as_bytes())
}

/// The client's address as the socket saw it (no proxy headers are trusted).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<crate::listener::Peer>>()
            .map(|ConnectInfo(peer)| peer.addr.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientIp(ip))
    }
}

/// The request id assigned by the request-id middleware, for the audit trail.
#[derive(Debug, Clone)]
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(RequestId(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        tries: u32,
    }

    fn problem(result: Result<Login, ApiError>) -> (u16, String) {
        let error = result.expect_err("should fail");
        let p = error.problem();
        let field = p
            .errors
            .first()
            .map(|e| e.field.clone())
            .unwrap_or_default();
        (
            p.status,
            format!("{field}|{}", p.detail.unwrap_or_default()),
        )
    }

    #[test]
    fn malformed_json_is_a_400_that_says_where() {
        let (status, detail) = problem(parse_json(b"{\"email\": \"a\",\n \"tries\": }"));
        assert_eq!(status, 400);
        assert!(detail.contains("line 2 column"), "{detail}");
    }

    #[test]
    fn wrong_types_and_unknown_fields_name_the_field() {
        let (status, detail) = problem(parse_json(br#"{"email": "a", "tries": "x"}"#));
        assert_eq!(status, 422);
        assert!(detail.starts_with("tries|"), "{detail}");
        let (status, detail) = problem(parse_json(br#"{"email": "a", "tries": 1, "admin": true}"#));
        assert_eq!(status, 422);
        assert!(detail.contains("unknown field `admin`"), "{detail}");
    }
}
