//! JSON request bodies. Every route that takes one reads it here, through [`Json`],
//! [`LenientJson`] or [`OptionalJson`], so every one of them answers the same way: 415 when the
//! content type is not JSON, 413 (naming the limit) when the body is too large, 400 for syntax,
//! 422 listing every invalid, missing or unknown field.

use axum::body::{Body, Bytes};
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use vigia_domain::FieldError;

use super::ObjectsOnly;
use super::recover::{Recovered, recover};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A JSON body, read strictly: the content type must be JSON, syntax errors say where they are
/// (400), and type errors, missing or unknown fields are each named (422).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    AppState: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_body(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// A JSON body the handler goes on checking (wire → domain) even when some of its fields are
/// invalid, so that one 422 names every invalid field, those serde rejected and those the
/// domain rejects. The body's bytes are kept (for an idempotency hash).
#[derive(Debug)]
pub struct LenientJson<T> {
    value: T,
    /// The fields serde rejected; `value` holds stand-ins for them.
    errors: Vec<FieldError>,
    bytes: Bytes,
}

impl<S, T> FromRequest<S> for LenientJson<T>
where
    S: Send + Sync,
    AppState: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_body(req, state).await?;
        let (value, errors) = match read(&bytes)? {
            Read::Valid(value) => (value, Vec::new()),
            Read::Invalid(Recovered {
                value: Some(value),
                errors,
            }) => (value, errors),
            Read::Invalid(Recovered { errors, .. }) => return Err(ApiError::Validation(errors)),
        };
        Ok(Self {
            value,
            errors,
            bytes,
        })
    }
}

impl<T> LenientJson<T> {
    /// A body read by other means (a web form already parsed into the wire type): nothing
    /// rejected, no bytes kept.
    pub fn from_value(value: T) -> Self {
        Self {
            value,
            errors: Vec::new(),
            bytes: Bytes::new(),
        }
    }

    /// The body as it was sent.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Runs the handler's checks of the body. When serde already rejected some fields, the
    /// checks run on stand-ins for those and the answer is a 422 with both sets of errors (a
    /// field serde rejected is named once).
    pub fn parse<D>(&self, check: impl FnOnce(&T) -> ApiResult<D>) -> ApiResult<D> {
        self.merge(check(&self.value))
    }

    /// The body, with stand-ins for the fields serde rejected: only for checks whose result
    /// then goes through [`LenientJson::merge`] (an asynchronous check, for instance).
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The result of the handler's checks of [`LenientJson::value`], merged with the errors
    /// serde found (see [`LenientJson::parse`]).
    pub fn merge<D>(&self, checked: ApiResult<D>) -> ApiResult<D> {
        if self.errors.is_empty() {
            return checked;
        }
        let mut errors = self.errors.clone();
        if let Err(ApiError::Validation(more)) = checked {
            for error in more {
                if !errors.iter().any(|e| e.field == error.field) {
                    errors.push(error);
                }
            }
        }
        Err(ApiError::Validation(errors))
    }
}

/// Largest body of a detection batch (10,000 detections with room for their extras).
pub const BATCH_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A JSON body read as [`Json`] reads it, but up to [`BATCH_BODY_BYTES`] long: for the
/// detection batch, whose items are checked one by one by its handler.
#[derive(Debug, Clone, Default)]
pub struct BatchJson<T>(pub T);

impl<S, T> FromRequest<S> for BatchJson<T>
where
    S: Send + Sync,
    AppState: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(not_json());
        }
        let bytes = read_body(req, BATCH_BODY_BYTES).await?;
        parse_json(&bytes).map(BatchJson)
    }
}

/// A JSON body that may be left out: an empty body, whatever its content type, is `None`;
/// anything else is read as [`Json`] reads it.
#[derive(Debug, Clone, Default)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    AppState: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json(req.headers());
        let limit = AppState::from_ref(state).config.max_body_bytes;
        let bytes = read_body(req, limit).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        if !is_json {
            return Err(not_json());
        }
        parse_json(&bytes).map(|value| Self(Some(value)))
    }
}

/// The body of a request that must be JSON: its content type checked before anything is read,
/// its size bounded by `http.max_body_bytes` while it is read.
async fn json_body<S>(req: Request, state: &S) -> ApiResult<Bytes>
where
    AppState: FromRef<S>,
{
    if !is_json(req.headers()) {
        return Err(not_json());
    }
    let limit = AppState::from_ref(state).config.max_body_bytes;
    read_body(req, limit).await
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

fn not_json() -> ApiError {
    ApiError::UnsupportedMediaType {
        detail: "send the body as JSON with Content-Type: application/json".into(),
    }
}

/// Reads the whole body, refusing it (413) as soon as it announces or reaches more than `limit`
/// bytes.
async fn read_body(req: Request, limit: usize) -> ApiResult<Bytes> {
    let too_large = || ApiError::PayloadTooLarge { limit };
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut stream = Body::into_data_stream(req.into_body());
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            ApiError::bad_request(format!("cannot read the request body: {error}"))
        })?;
        total = total.saturating_add(chunk.len());
        if total > limit {
            return Err(too_large());
        }
        chunks.push(chunk);
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => chunks.concat().into(),
    })
}

/// Parses JSON the way every endpoint does, with errors that say where the input went wrong:
/// 400 for syntax (line and column), 422 naming every invalid, missing or unknown field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match read(bytes)? {
        Read::Valid(value) => Ok(value),
        Read::Invalid(recovered) => Err(ApiError::Validation(recovered.errors)),
    }
}

enum Read<T> {
    Valid(T),
    /// Well-formed JSON that does not fit `T`; every error found.
    Invalid(Recovered<T>),
}

fn read<T: DeserializeOwned>(bytes: &[u8]) -> Result<Read<T>, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let first = match serde_path_to_error::deserialize(ObjectsOnly(&mut deserializer)) {
        Ok(value) => {
            deserializer.end().map_err(|e| {
                ApiError::bad_request(format!("trailing characters after the JSON value: {e}"))
            })?;
            return Ok(Read::Valid(value));
        }
        Err(error) => error,
    };
    let path = first.path().to_string();
    let inner = first.into_inner();
    if inner.classify() != serde_json::error::Category::Data {
        return Err(ApiError::bad_request(format!(
            "malformed JSON at line {} column {}: {}",
            inner.line(),
            inner.column(),
            super::clean_serde_message(&inner.to_string())
        )));
    }
    // Well-formed but not a `T`: read it again to find every error, not only the first.
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    if whole_numbers_as_integers(&mut value) {
        // `2.0` is an integer in JSON Schema's sense (and in the OpenAPI document's): read the
        // body again with whole numbers written as integers, which serde takes for any number.
        if let Ok(valid) = serde_path_to_error::deserialize::<_, T>(ObjectsOnly(&value)) {
            return Ok(Read::Valid(valid));
        }
    }
    let first = FieldError::new(
        if path == "." { "body".to_owned() } else { path },
        super::clean_serde_message(&inner.to_string()),
    );
    let mut recovered = recover::<T>(&value);
    if recovered.errors.is_empty() {
        // The second reading found nothing serde did: serde's error is the answer.
        recovered = Recovered {
            value: None,
            errors: vec![first],
        };
    }
    Ok(Read::Invalid(recovered))
}

/// Rewrites every number with a zero fractional part that fits an `i64` (`-2293.0`, `1e3`) as
/// that integer; says whether any was rewritten. Fields of floating-point type read integers as
/// well, so only integer fields see a difference: they accept whole numbers however written.
fn whole_numbers_as_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(number) => match number.as_f64() {
            Some(f)
                if !number.is_i64()
                    && !number.is_u64()
                    && f.fract() == 0.0
                    && f >= i64::MIN as f64
                    && f < i64::MAX as f64 =>
            {
                *number = (f as i64).into();
                true
            }
            _ => false,
        },
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| {
            whole_numbers_as_integers(item) | changed
        }),
        Value::Object(fields) => fields.values_mut().fold(false, |changed, field| {
            whole_numbers_as_integers(field) | changed
        }),
        Value::Null | Value::Bool(_) | Value::String(_) => false,
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match json_body_out(&self.0) {
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
fn json_body_out<T: Serialize>(value: &T) -> serde_json::Result<Bytes> {
    crate::json_out::body(|buffer| serde_json::to_writer(buffer, value))
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Point {
        lat: f64,
        lon: f64,
    }

    #[derive(Debug, serde::Deserialize, PartialEq, Eq)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Leak,
        Fire,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Report {
        title: String,
        description: String,
        category_id: i64,
        urgency: Option<String>,
        kind: Option<Kind>,
        point: Option<Point>,
        #[serde(default)]
        tags: Vec<u8>,
    }

    fn errors(body: &[u8]) -> Vec<(String, String)> {
        match parse_json::<Report>(body) {
            Err(ApiError::Validation(errors)) => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn every_missing_invalid_and_unknown_field_is_named_in_one_answer() {
        let found = errors(
            br#"{"category_id": "6", "kind": "flood", "point": {"lat": "x"},
                 "tags": [1, 300], "admin": true, "urgency": null}"#,
        );
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "title",
                "description",
                "category_id",
                "kind",
                "point.lat",
                "point.lon",
                "tags[1]",
                "admin"
            ],
            "{found:?}"
        );
        assert_eq!(found[0].1, "is required");
        assert_eq!(found[2].1, "invalid type: string \"6\", expected i64");
        assert_eq!(
            found[3].1,
            "unknown variant `flood`, expected one of `leak`, `fire`"
        );
        assert_eq!(found[5].1, "is required");
        assert_eq!(found[6].1, "invalid value: integer `300`, expected u8");
        assert!(found[7].1.starts_with("unknown field `admin`"), "{found:?}");
    }

    #[test]
    fn whole_numbers_written_with_a_fraction_or_exponent_are_integers() {
        let login: Login = parse_json(br#"{"email": "a", "tries": 3.0}"#).expect("3.0 is 3");
        assert_eq!(login.tries, 3);
        let login: Login = parse_json(br#"{"email": "a", "tries": 2e1}"#).expect("2e1 is 20");
        assert_eq!(login.tries, 20);
        let (status, detail) = problem(parse_json(br#"{"email": "a", "tries": 3.5}"#));
        assert_eq!(status, 422);
        assert!(
            detail.contains("tries: invalid type: floating point `3.5`"),
            "{detail}"
        );
        let (status, detail) = problem(parse_json(br#"{"email": "a", "tries": -2.0}"#));
        assert_eq!(status, 422, "a whole number out of range is still refused");
        assert!(detail.starts_with("tries|"), "{detail}");
    }

    #[test]
    fn a_body_of_the_wrong_shape_is_named_body() {
        assert_eq!(
            errors(b"[1, 2]"),
            [(
                "body".to_owned(),
                "invalid type: sequence, expected struct Report".to_owned()
            )]
        );
    }

    #[test]
    fn optional_and_defaulted_fields_may_be_left_out() {
        let found = errors(br#"{"title": "t", "description": 5}"#);
        assert_eq!(
            found,
            [
                (
                    "description".to_owned(),
                    "invalid type: integer `5`, expected a string".to_owned()
                ),
                ("category_id".to_owned(), "is required".to_owned())
            ],
            "urgency, kind, point (optional) and tags (defaulted) are not reported"
        );
    }
}
