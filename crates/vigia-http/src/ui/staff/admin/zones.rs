//! `/admin/zones`: the campus map (the zones' own shapes, `ui::map`), the zones' list and a
//! form to create one; `/admin/zones/{id}`: one zone's form. A zone is a polygon (one
//! `lat, lon` vertex per line) or a circle (centre and radius in metres); with JavaScript a
//! click on the map adds a vertex or places the centre, without it the coordinates are typed.
//! Saved through `routes::catalog::{create_zone, update_zone}`: the API's zone rules, its
//! messages next to the fields.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vigia_domain::FieldError;
use vigia_domain::ids::ZoneId;
use vigia_store::catalog::{self, Zone};

use super::super::form::{Errors, settle, shown};
use super::super::{AdminForm, AdminViewer, Fields, Staff};
use super::admin_of;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, RequestId};
use crate::path::Path;
use crate::routes::catalog::{self as api, PointIo, ZoneIn};
use crate::state::AppState;
use crate::ui::map::{self, Map};
use crate::ui::{Chrome, UiError};

/// What the zone form shows: typed values, or a stored zone's.
#[derive(Debug, Default)]
pub struct ZoneForm {
    pub name: String,
    pub description: String,
    /// `polygon` or `circle`.
    pub shape: String,
    /// One `lat, lon` vertex per line.
    pub polygon: String,
    pub center_lat: String,
    pub center_lon: String,
    pub radius_m: String,
}

impl ZoneForm {
    fn of(zone: &Zone) -> Self {
        let circle = zone.area.polygon.is_none() && zone.area.radius_m.is_some();
        Self {
            name: zone.name.clone(),
            description: zone.description.clone().unwrap_or_default(),
            shape: if circle { "circle" } else { "polygon" }.into(),
            polygon: zone
                .area
                .polygon
                .as_ref()
                .map(|ring| {
                    ring.iter()
                        .map(|p| format!("{:.6}, {:.6}", p.lat, p.lon))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default(),
            center_lat: zone
                .area
                .center
                .map_or_else(String::new, |c| format!("{:.6}", c.lat)),
            center_lon: zone
                .area
                .center
                .map_or_else(String::new, |c| format!("{:.6}", c.lon)),
            radius_m: zone
                .area
                .radius_m
                .map_or_else(String::new, |r| format!("{r}")),
        }
    }

    fn from_fields(form: &Fields) -> Self {
        Self {
            name: form.text("name"),
            description: form.text("description"),
            shape: form.get("shape").unwrap_or_else(|| "polygon".into()),
            polygon: form.raw("polygon").unwrap_or_default(),
            center_lat: form.text("center_lat"),
            center_lon: form.text("center_lon"),
            radius_m: form.text("radius_m"),
        }
    }

    fn is_circle(&self) -> bool {
        self.shape == "circle"
    }

    /// The API's input: the shape chosen, its coordinates read as numbers. A line or a value
    /// that is not a number is an error of its field, and nothing is sent.
    fn zone_in(&self) -> Result<ZoneIn, ApiError> {
        let mut errors = Vec::new();
        let mut number = |field: &str, raw: &str| -> Option<f64> {
            let raw = raw.trim();
            if raw.is_empty() {
                return None;
            }
            match raw.replace(',', ".").parse::<f64>() {
                Ok(n) if n.is_finite() => Some(n),
                _ => {
                    errors.push(FieldError::new(field, "must be a number"));
                    None
                }
            }
        };
        let (center, radius_m, polygon) = if self.is_circle() {
            let lat = number("center", &self.center_lat);
            let lon = number("center", &self.center_lon);
            let radius = number("radius_m", &self.radius_m);
            let center = match (lat, lon) {
                (Some(lat), Some(lon)) => Some(PointIo { lat, lon }),
                _ => None,
            };
            (center, radius, None)
        } else {
            let mut points = Vec::new();
            for (n, line) in self.polygon.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let parts: Vec<&str> = line
                    .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
                    .filter(|p| !p.is_empty())
                    .collect();
                match parts.as_slice() {
                    [lat, lon] => match (lat.parse::<f64>(), lon.parse::<f64>()) {
                        (Ok(lat), Ok(lon)) => points.push(PointIo { lat, lon }),
                        _ => errors.push(line_error(n)),
                    },
                    _ => errors.push(line_error(n)),
                }
            }
            (None, None, Some(points))
        };
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(ZoneIn {
            name: self.name.clone(),
            description: Some(self.description.clone()).filter(|d| !d.is_empty()),
            center,
            radius_m,
            polygon,
        })
    }
}

fn line_error(n: usize) -> FieldError {
    FieldError::new(
        "polygon",
        format!(
            "line {} is not a latitude and a longitude separated by a comma",
            n + 1
        ),
    )
}

/// The API's field names as the form's: `center.lat` is the centre's, `polygon[2].lon` the
/// polygon's.
fn form_errors(mut errors: Errors) -> Errors {
    for (field, _) in &mut errors.0 {
        if let Some((head, _)) = field.split_once('.') {
            *field = head.to_owned();
        }
    }
    errors
}

/// One zone of the list.
pub struct ZoneRow {
    pub id: i64,
    pub name: String,
    pub shape: String,
    pub description: String,
}

#[derive(Template)]
#[template(path = "ui/staff/admin_zones.html")]
struct ZonesPage<'a> {
    c: &'a Chrome,
    /// `None`: the zone being edited (the list page has it `None` too).
    editing: Option<i64>,
    map: Option<Map>,
    /// The map's projection as data attributes for the script.
    frame: Vec<(&'static str, String)>,
    rows: Vec<ZoneRow>,
    form: ZoneForm,
    action: String,
    errors: &'a Errors,
    saved: bool,
}

async fn render(
    state: &AppState,
    viewer: &Staff,
    editing: Option<i64>,
    form: ZoneForm,
    errors: &Errors,
    status: StatusCode,
) -> ApiResult<Response> {
    let t = viewer.t;
    let zones = catalog::list_zones(&state.db).await?;
    let map = map::build_padded(&zones, 0.15);
    let frame = map
        .as_ref()
        .map(|m| {
            vec![
                ("min-lon", m.frame.min_lon.to_string()),
                ("max-lat", m.frame.max_lat.to_string()),
                ("k", m.frame.k.to_string()),
                ("scale", m.frame.scale.to_string()),
                ("margin", m.frame.margin.to_string()),
            ]
        })
        .unwrap_or_default();
    let rows = zones
        .iter()
        .map(|z| ZoneRow {
            id: z.id.0,
            name: z.name.clone(),
            shape: if z.area.polygon.is_some() {
                t.t("staff.zone.polygon").to_owned()
            } else if z.area.radius_m.is_some() {
                t.t("staff.zone.circle").to_owned()
            } else {
                t.t("staff.zone.no_shape").to_owned()
            },
            description: z.description.clone().unwrap_or_default(),
        })
        .collect();
    let page = ZonesPage {
        c: viewer.c(),
        editing,
        map,
        frame,
        rows,
        form,
        action: editing.map_or_else(
            || "/admin/zones".to_owned(),
            |id| format!("/admin/zones/{id}"),
        ),
        errors,
        saved: viewer.flag("saved=1"),
    };
    Ok(viewer.render(status, &page))
}

pub async fn page(State(state): State<AppState>, AdminViewer(viewer): AdminViewer) -> Response {
    let form = ZoneForm {
        shape: "polygon".into(),
        ..ZoneForm::default()
    };
    shown(
        render(
            &state,
            &viewer,
            None,
            form,
            &Errors::default(),
            StatusCode::OK,
        )
        .await,
    )
}

pub async fn edit(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminViewer(viewer): AdminViewer,
) -> Response {
    let result = async {
        let zone = catalog::find_zone(&state.db, ZoneId(id)).await?;
        render(
            &state,
            &viewer,
            Some(id),
            ZoneForm::of(&zone),
            &Errors::default(),
            StatusCode::OK,
        )
        .await
    }
    .await;
    result.unwrap_or_else(|e| UiError::from(e).into_response())
}

/// Creates (`id` `None`) or replaces a zone; a rejected form comes back with its messages.
async fn save(state: AppState, viewer: Staff, fields: Fields, id: Option<i64>) -> Response {
    let form = ZoneForm::from_fields(&fields);
    let result = async {
        let input = form.zone_in()?;
        let admin = admin_of(&viewer)?;
        match id {
            None => api::create_zone(State(state.clone()), admin, RequestId(None), Json(input))
                .await
                .map(|(_, Json(z))| z.id),
            Some(id) => api::update_zone(
                State(state.clone()),
                admin,
                RequestId(None),
                Path(id),
                Json(input),
            )
            .await
            .map(|Json(z)| z.id),
        }
    }
    .await;
    let next = |zone| format!("/admin/zones?saved=1#zone-{zone}");
    settle(&viewer, result, next, async |errors, status| {
        render(&state, &viewer, id, form, &form_errors(errors), status).await
    })
    .await
}

pub async fn create(
    State(state): State<AppState>,
    AdminForm(viewer, fields): AdminForm,
) -> Response {
    save(state, viewer, fields, None).await
}

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    AdminForm(viewer, fields): AdminForm,
) -> Response {
    save(state, viewer, fields, Some(id)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_vertices_become_the_apis_polygon_and_a_bad_line_is_named() {
        let form = ZoneForm {
            name: "Patio".into(),
            shape: "polygon".into(),
            polygon: "-12.1350, -77.0220\n-12.1352 -77.0210\n\n-12.1360;-77.0215\n".into(),
            ..ZoneForm::default()
        };
        let input = form.zone_in().expect("three vertices");
        let ring = input.polygon.expect("a polygon");
        assert_eq!(ring.len(), 3);
        assert_eq!((ring[1].lat, ring[1].lon), (-12.1352, -77.0210));
        assert!(input.center.is_none() && input.radius_m.is_none());

        let bad = ZoneForm {
            polygon: "-12.1, -77.0\nal lado del patio".into(),
            ..form
        };
        let Err(ApiError::Validation(errors)) = bad.zone_in() else {
            panic!("a line that is not a position is refused");
        };
        assert_eq!(errors[0].field, "polygon");
        assert!(
            errors[0].message.contains("line 2"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn a_circle_sends_its_centre_and_radius_only() {
        let form = ZoneForm {
            name: "Biblioteca".into(),
            shape: "circle".into(),
            polygon: "1, 2".into(),
            center_lat: "-12.135".into(),
            center_lon: "-77.022".into(),
            radius_m: "40".into(),
            ..ZoneForm::default()
        };
        let input = form.zone_in().expect("a circle");
        assert!(input.polygon.is_none());
        let center = input.center.expect("centre");
        assert_eq!(
            (center.lat, center.lon, input.radius_m),
            (-12.135, -77.022, Some(40.0))
        );
    }
}
