//! A posted form's fields, repeated names kept (checkbox groups), the errors a rejected
//! form shows next to its fields, and how a form's post ends ([`settle`]): a 303 to the next
//! page, the same form again with its errors, or an error page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{Staff, see_other};
use crate::error::{ApiError, ApiResult};
use crate::ui::{Lang, UiError, i18n};

/// The fields of an `application/x-www-form-urlencoded` body, in order.
#[derive(Debug, Default, Clone)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The first value of `name` exactly as sent.
    pub fn raw(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// The first value of `name` as sent, or an empty string.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default()
    }

    /// Every non-blank value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    /// Whether a checkbox `name` was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every value of `name` as ids; a value that is not a number is a field error.
    pub fn ids(&self, name: &str) -> Result<Vec<i64>, ApiError> {
        self.all(name)
            .iter()
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::field(name, "must be chosen from the list"))
            })
            .collect()
    }

    /// `name` as an optional id.
    pub fn id(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::field(name, "must be chosen from the list"))
            })
            .transpose()
    }

    /// Lines or commas of a text area as a list (e-mail addresses).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.text(name)
            .split(['\n', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// What a form shows after a rejected post: the message of each field, by the field's name
/// (an API error's `departments[1]` is shown by `departments`).
#[derive(Debug, Default, Clone)]
pub struct Errors(pub Vec<(String, String)>);

impl Errors {
    /// The errors of a rejected call in `lang` (the domain's messages through the catalog's
    /// `error.*` keys): its field errors, or the whole problem under `form`.
    pub fn of(lang: Lang, error: &ApiError) -> Self {
        match error {
            ApiError::Validation(errors) => Self(
                errors
                    .iter()
                    .map(|e| {
                        let field = e.field.split('[').next().unwrap_or(&e.field).to_owned();
                        (field, i18n::field_message(lang, &e.message))
                    })
                    .collect(),
            ),
            other => Self(vec![(
                "form".to_owned(),
                i18n::field_message(lang, &other.to_string()),
            )]),
        }
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    /// Every message shown by `field` (a conflict, reported for the whole form, that is about
    /// one field).
    pub fn all_on(self, field: &str) -> Self {
        Self(
            self.0
                .into_iter()
                .map(|(_, m)| (field.to_owned(), m))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whether `error` is one a form shows next to its fields (field errors and conflicts); the
/// rest are error pages.
pub fn is_form_error(error: &ApiError) -> bool {
    matches!(error, ApiError::Validation(_) | ApiError::Conflict { .. })
}

/// The status a rejected form is shown again with: 409 for a conflict, 422 otherwise.
pub fn error_status(error: &ApiError) -> StatusCode {
    match error {
        ApiError::Conflict { .. } => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// How a create or update post ends: on success a 303 to the page `next` names; a refusal
/// shown next to the fields ([`is_form_error`]) renders the form again through `again`, with
/// the errors in the viewer's language and the refusal's status ([`error_status`]); any other
/// error (and an error rendering the form) is an error page.
pub async fn settle<T>(
    viewer: &Staff,
    result: ApiResult<T>,
    next: impl FnOnce(T) -> String,
    again: impl AsyncFnOnce(Errors, StatusCode) -> ApiResult<Response>,
) -> Response {
    match result {
        Ok(done) => see_other(&next(done)),
        Err(error) if is_form_error(&error) => {
            let status = error_status(&error);
            shown(again(Errors::of(viewer.t.0, &error), status).await)
        }
        Err(error) => UiError::from(error).into_response(),
    }
}

/// A rendered page, or the error page of what kept it from rendering.
pub fn shown(page: ApiResult<Response>) -> Response {
    page.unwrap_or_else(|e| UiError::from(e).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_blank_values_and_lists_are_read_as_a_browser_sends_them() {
        let f = Fields::parse(b"name=+Mantenimiento+&departments=1&departments=3&departments=&emails=a%40x.org%0D%0Ab%40x.org%2C+c%40x.org&away=on");
        assert_eq!(f.get("name").as_deref(), Some("Mantenimiento"));
        assert_eq!(f.ids("departments").expect("ids"), vec![1, 3]);
        assert_eq!(f.list("emails"), vec!["a@x.org", "b@x.org", "c@x.org"]);
        assert!(f.checked("away"));
        assert!(!f.checked("disabled"));
        assert_eq!(f.get("missing"), None);
        let bad = Fields::parse(b"departments=x");
        assert!(bad.ids("departments").is_err());
    }

    #[test]
    fn field_errors_are_shown_by_their_field_and_other_problems_by_the_form() {
        let errors = Errors::of(
            Lang::En,
            &ApiError::Validation(vec![
                vigia_domain::FieldError::new("departments[1]", "does not exist"),
                vigia_domain::FieldError::new("name", "is required"),
            ]),
        );
        assert_eq!(errors.get("departments"), Some("Does not exist"));
        assert_eq!(errors.get("name"), Some("Is required"));
        let conflict = Errors::of(
            Lang::En,
            &ApiError::Conflict {
                detail: "the name is taken".into(),
                extra: None,
            },
        );
        assert_eq!(conflict.get("form"), Some("The name is taken"));
    }
}
