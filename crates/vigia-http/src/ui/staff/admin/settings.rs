//! `/admin/settings`: the runtime settings (`GET /api/v1/settings`), each with its own form
//! that saves through `PUT /api/v1/settings/{key}`'s handler: the API checks the value, a
//! refusal is shown next to the field and the setting is left as it was.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::super::form::{Errors, settle, shown};
use super::super::{AdminForm, AdminViewer, Opt, Staff};
use super::admin_of;
use crate::error::ApiResult;
use crate::extract::{Json, RequestId};
use crate::path::Path;
use crate::routes::admin::{self as api, SETTINGS, SettingIn};
use crate::state::AppState;
use crate::ui::Chrome;
use crate::ui::page::urlencode;

/// One setting's form.
pub struct SettingRow {
    pub key: String,
    /// The form's field id (`s-registration_enabled`).
    pub id: String,
    pub action: String,
    pub label: String,
    pub help: String,
    /// `boolean`: a yes/no choice; anything else: a JSON value typed.
    pub boolean: bool,
    pub choices: Vec<Opt>,
    pub value: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/staff/admin_settings.html")]
struct SettingsPage<'a> {
    c: &'a Chrome,
    rows: Vec<SettingRow>,
    saved: bool,
}

fn kind_of(key: &str) -> &'static str {
    SETTINGS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("json", |(_, kind)| *kind)
}

/// Renders every setting; `typed` is the rejected form's (key, value typed, its errors).
async fn render(
    state: &AppState,
    viewer: &Staff,
    typed: Option<(&str, &str, &Errors)>,
    status: StatusCode,
) -> ApiResult<Response> {
    let t = viewer.t;
    let Json(list) = api::list_settings(State(state.clone()), admin_of(viewer)?).await?;
    let rows = list
        .into_iter()
        .map(|s| {
            let name = s.key.replace('.', "_");
            let (value, error) = match typed {
                Some((key, raw, errors)) if key == s.key => (
                    raw.to_owned(),
                    errors
                        .get("value")
                        .or_else(|| errors.get("form"))
                        .map(str::to_owned),
                ),
                _ => (
                    match &s.value {
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    },
                    None,
                ),
            };
            let boolean = kind_of(&s.key) == "boolean";
            SettingRow {
                id: format!("s-{name}"),
                action: format!("/admin/settings/{}", urlencode(&s.key)),
                label: t.t(&format!("staff.setting.{name}")).to_owned(),
                help: t.t(&format!("staff.setting.{name}_help")).to_owned(),
                choices: Opt::list(
                    [
                        ("true".to_owned(), t.t("staff.common.yes").to_owned()),
                        ("false".to_owned(), t.t("staff.common.no").to_owned()),
                    ]
                    .into_iter(),
                    &Some(value.clone()),
                ),
                boolean,
                value,
                error,
                key: s.key,
            }
        })
        .collect();
    let page = SettingsPage {
        c: viewer.c(),
        rows,
        saved: viewer.flag("saved=1"),
    };
    Ok(viewer.render(status, &page))
}

pub async fn page(State(state): State<AppState>, AdminViewer(viewer): AdminViewer) -> Response {
    shown(render(&state, &viewer, None, StatusCode::OK).await)
}

/// The value as the API takes it: JSON when it reads as JSON (`true`, `12`), else the text.
fn value_of(raw: &str) -> serde_json::Value {
    serde_json::from_str(raw.trim()).unwrap_or_else(|_| serde_json::Value::String(raw.to_owned()))
}

/// Saves one setting (`PUT /api/v1/settings/{key}`).
pub async fn save(
    State(state): State<AppState>,
    Path(key): Path<String>,
    AdminForm(viewer, form): AdminForm,
) -> Response {
    let raw = form.text("value");
    let result = async {
        api::put_setting(
            State(state.clone()),
            admin_of(&viewer)?,
            RequestId(None),
            Path(key.clone()),
            Json(SettingIn {
                value: value_of(&raw),
            }),
        )
        .await
    }
    .await;
    let next = |_| "/admin/settings?saved=1".to_owned();
    settle(&viewer, result, next, async |errors, status| {
        render(&state, &viewer, Some((&key, &raw, &errors)), status).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_value_is_sent_as_json_when_it_reads_as_json() {
        assert_eq!(value_of("true"), serde_json::json!(true));
        assert_eq!(value_of(" false "), serde_json::json!(false));
        assert_eq!(value_of("sí"), serde_json::json!("sí"));
    }
}
