//! `GET/POST /report`: report an incident. The form is `multipart/form-data` (it may carry a
//! photo or video) with the API's field names; the incident is checked by the API's own
//! `parse_incident` and the file by the upload path's sniffing (`classify`) before anything is
//! written, so a rejected form changes nothing and shows each error next to its field. Then
//! the incident is created as `POST /api/v1/incidents` does and the file attached as
//! `POST /api/v1/incidents/{id}/attachments` does; the browser lands on the incident's page.

use askama::Template;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::BytesMut;
use vigia_domain::Timestamp;
use vigia_domain::incidents::classify;
use vigia_domain::incidents::sniff::SNIFF_PREFIX_LEN;
use vigia_store::catalog::{self, Category, Zone};
use vigia_store::incidents::attachments::{Upload, Uploader};
use vigia_store::incidents::{self, Reporter};

use super::Lang;
use super::map::{self, Map};
use super::page::{FormData, FormErrors, UiError, render, see_other};
use super::viewer::{Chrome, Viewer};
use crate::error::ApiError;
use crate::routes::catalog::PointIo;
use crate::routes::incidents::{IncidentIn, parse_incident};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "ui/report.html")]
struct Report<'a> {
    c: &'a Chrome,
    errors: FormErrors,
    form: FormData,
    categories: Vec<(i64, String)>,
    zones: Vec<(i64, String)>,
    map: Option<Map>,
}

impl Report<'_> {
    fn selected(&self, name: &str, value: &i64) -> bool {
        self.form.get(name) == value.to_string()
    }

    fn private(&self) -> bool {
        self.form.get("visibility") == "private"
    }
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    errors: FormErrors,
    form: FormData,
) -> Result<Response, UiError> {
    let lang = viewer.lang();
    let categories: Vec<Category> = catalog::list_categories(&state.db).await?;
    let zones: Vec<Zone> = catalog::list_zones(&state.db).await?;
    let mut names: Vec<(i64, String)> = categories
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
    let page = Report {
        c: &viewer.chrome,
        errors,
        form,
        categories: names,
        zones: zones.iter().map(|z| (z.id.0, z.name.clone())).collect(),
        map: map::build(&zones),
    };
    Ok(render(viewer, status, &page))
}

/// `GET /report`.
pub async fn form(State(state): State<AppState>, viewer: Viewer) -> Result<Response, UiError> {
    viewer.require()?;
    page(
        &state,
        &viewer,
        StatusCode::OK,
        FormErrors::default(),
        FormData::default(),
    )
    .await
}

/// The photo part of the form, read whole (bounded by the upload limit).
struct Photo {
    name: String,
    bytes: BytesMut,
}

async fn read(
    mut multipart: Multipart,
    limit: usize,
) -> Result<(FormData, Option<Photo>), UiError> {
    let mut fields = Vec::new();
    let mut photo = None;
    let unreadable = |_| UiError::Api(ApiError::bad_request("cannot read the form"));
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "photo" {
            let file_name = field.file_name().unwrap_or_default().to_owned();
            let mut bytes = BytesMut::new();
            while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
                if bytes.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge { limit }.into());
                }
                bytes.extend_from_slice(&chunk);
            }
            // A file input left empty sends a part without a name or bytes.
            if !(file_name.is_empty() && bytes.is_empty()) {
                photo = Some(Photo {
                    name: file_name,
                    bytes,
                });
            }
        } else {
            let text = field.text().await.map_err(unreadable)?;
            fields.push((name, text));
        }
    }
    Ok((FormData(fields), photo))
}

fn number(form: &FormData, name: &str) -> Option<i64> {
    form.opt(name).map(|v| v.trim().parse().unwrap_or(0))
}

/// `POST /report`.
pub async fn submit(
    State(state): State<AppState>,
    viewer: Viewer,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, UiError> {
    let (auth, _) = viewer.require()?;
    let multipart =
        multipart.map_err(|_| UiError::Api(ApiError::bad_request("send the form as multipart")))?;
    let (form, photo) = read(multipart, state.config.max_upload_bytes).await?;
    viewer.check_csrf(Some(form.get("csrf")))?;
    let lang = viewer.lang();
    let point = match (form.opt("lat"), form.opt("lon")) {
        (Some(lat), Some(lon)) => match (lat.parse(), lon.parse()) {
            (Ok(lat), Ok(lon)) => Some(PointIo { lat, lon }),
            _ => None,
        },
        _ => None,
    };
    let input = IncidentIn {
        category_id: number(&form, "category_id"),
        title: form.get("title").to_owned(),
        description: form.get("description").to_owned(),
        urgency: form.opt("urgency").map(str::to_owned),
        department_id: None,
        zone_id: number(&form, "zone_id"),
        location_text: form.opt("location_text").map(str::to_owned),
        point,
        visibility: Some(form.get("visibility"))
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        source: None,
    };
    let mut errors = Vec::new();
    let new = match parse_incident(&input, &auth.0) {
        Ok(new) => Some(new),
        Err(ApiError::Validation(list)) => {
            errors.extend(list);
            None
        }
        Err(other) => return Err(other.into()),
    };
    let media = match &photo {
        Some(p) => match classify(&p.bytes[..p.bytes.len().min(SNIFF_PREFIX_LEN)]) {
            Ok(media) => Some(media),
            Err(_) => {
                errors.push(vigia_domain::FieldError::new("photo", "photo refused"));
                None
            }
        },
        None => None,
    };
    let Some(new) = new.filter(|_| errors.is_empty()) else {
        let errors = FormErrors::from_fields(lang, &errors);
        return page(
            &state,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            errors,
            form,
        )
        .await;
    };
    let reporter = Reporter {
        user: auth.0.user_id(),
        label: auth.0.label(),
    };
    let created = match incidents::create(&state.db, &new, &reporter, None, Timestamp::now()).await
    {
        Ok(incident) => incident,
        Err(error) => {
            let errors = FormErrors::from_api(lang, error.into())?;
            return page(
                &state,
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                errors,
                form,
            )
            .await;
        }
    };
    if let (Some(photo), Some(media)) = (photo, media) {
        let uploader = Uploader {
            label: auth.0.label(),
            user: auth.0.user_id(),
        };
        let mut upload = Upload::begin(
            &state.db,
            &state.objects,
            created.id,
            &photo.name,
            media,
            &uploader,
            Timestamp::now(),
        )
        .await?;
        if let Err(error) = upload.write(&photo.bytes).await {
            upload.abandon().await;
            return Err(error.into());
        }
        upload.finish(Timestamp::now()).await?;
    }
    Ok(see_other(&format!("/incidents/{}?new=1", created.code)))
}
