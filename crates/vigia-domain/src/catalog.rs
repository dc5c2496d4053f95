//! Catalogs: departments, incident categories, zones — and the urgency scale categories default to.

use serde::{Deserialize, Serialize};

use crate::ids::DepartmentId;
use crate::users::Email;
use crate::validation::{FieldError, Validation, bounded_text};

/// How soon an incident needs attention.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    Low,
    #[default]
    Medium,
    High,
    Emergency,
}

impl Urgency {
    pub const ALL: [Urgency; 4] = [
        Urgency::Low,
        Urgency::Medium,
        Urgency::High,
        Urgency::Emergency,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Low => "low",
            Urgency::Medium => "medium",
            Urgency::High => "high",
            Urgency::Emergency => "emergency",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|u| u.as_str() == raw)
            .ok_or_else(|| FieldError::new(field, "must be one of: low, medium, high, emergency"))
    }
}

/// A department as the admin describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct DepartmentSpec {
    pub name: String,
    /// Told about incidents routed to the department.
    pub contact_emails: Vec<Email>,
    /// Told when one of its incidents misses an SLA target.
    pub escalation_emails: Vec<Email>,
}

impl DepartmentSpec {
    pub fn parse(name: &str, contact_emails: &[String]) -> Result<Self, Vec<FieldError>> {
        let mut v = Validation::new();
        let name = v.check(bounded_text("name", name, 1, 120));
        let contact_emails = email_list(&mut v, "contact_emails", contact_emails);
        v.finish()?;
        Ok(Self {
            name: name.unwrap_or_default(),
            contact_emails,
            escalation_emails: Vec::new(),
        })
    }

    /// Adds the escalation contacts (validated like the contact addresses).
    pub fn with_escalation_emails(mut self, raw: &[String]) -> Result<Self, Vec<FieldError>> {
        let mut v = Validation::new();
        self.escalation_emails = email_list(&mut v, "escalation_emails", raw);
        v.finish()?;
        Ok(self)
    }
}

/// At most 20 valid addresses, duplicates (ignoring case) dropped.
fn email_list(v: &mut Validation, field: &str, raw: &[String]) -> Vec<Email> {
    if raw.len() > 20 {
        v.push(FieldError::new(field, "must list at most 20 addresses"));
    }
    let emails: Vec<Email> = raw
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| v.check(Email::parse(&format!("{field}[{i}]"), raw)))
        .collect();
    let mut unique = Vec::with_capacity(emails.len());
    for email in emails {
        if !unique.contains(&email) {
            unique.push(email);
        }
    }
    unique
}

/// An incident category (the "tipo" of the seeds) as the admin describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct CategorySpec {
    pub name_es: String,
    pub name_en: String,
    pub default_department_id: Option<DepartmentId>,
    pub default_urgency: Urgency,
}

impl CategorySpec {
    pub fn parse(
        name_es: &str,
        name_en: Option<&str>,
        default_department_id: Option<i64>,
        default_urgency: Option<&str>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut v = Validation::new();
        let name_es = v.check(bounded_text("name_es", name_es, 1, 120));
        let name_en = match name_en {
            Some(raw) => v.check(bounded_text("name_en", raw, 1, 120)),
            None => name_es.clone(),
        };
        let default_urgency = match default_urgency {
            Some(raw) => v.check(Urgency::parse("default_urgency", raw)),
            None => Some(Urgency::default()),
        };
        v.finish()?;
        Ok(Self {
            name_es: name_es.unwrap_or_default(),
            name_en: name_en.unwrap_or_default(),
            default_department_id: default_department_id.map(DepartmentId),
            default_urgency: default_urgency.unwrap_or_default(),
        })
    }
}

/// A WGS 84 position in decimal degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

impl GeoPoint {
    pub fn parse(field: &str, lat: f64, lon: f64) -> Result<Self, FieldError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(FieldError::new(
                format!("{field}.lat"),
                "must be a latitude between -90 and 90",
            ));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(FieldError::new(
                format!("{field}.lon"),
                "must be a longitude between -180 and 180",
            ));
        }
        Ok(Self { lat, lon })
    }

    /// Great-circle distance in metres (haversine).
    pub fn distance_m(self, other: GeoPoint) -> f64 {
        const EARTH_RADIUS_M: f64 = 6_371_008.8;
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = (other.lat - self.lat).to_radians();
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().asin()
    }
}

/// Where a zone is: nothing, a point with a radius, or a polygon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ZoneArea {
    /// The zone's reference point (its centre, or where to pin it on a map).
    pub center: Option<GeoPoint>,
    /// With `center`, the zone is the circle of this radius.
    pub radius_m: Option<f64>,
    /// A closed ring of at least 3 vertices (the last need not repeat the first).
    pub polygon: Option<Vec<GeoPoint>>,
}

impl ZoneArea {
    /// True when the zone has a shape a position can be inside of.
    pub fn has_shape(&self) -> bool {
        self.polygon.is_some() || (self.center.is_some() && self.radius_m.is_some())
    }

    /// Whether `point` lies inside the zone. A zone without a shape contains nothing.
    pub fn contains(&self, point: GeoPoint) -> bool {
        if let Some(ring) = &self.polygon {
            return polygon_contains(ring, point);
        }
        match (self.center, self.radius_m) {
            (Some(center), Some(radius)) => center.distance_m(point) <= radius,
            _ => false,
        }
    }
}

/// Even-odd ray casting on the plane of (lon, lat); exact enough for campus-sized polygons.
fn polygon_contains(ring: &[GeoPoint], p: GeoPoint) -> bool {
    let mut inside = false;
    let mut j = ring.len() - 1;
    for i in 0..ring.len() {
        let (a, b) = (ring[i], ring[j]);
        if (a.lat > p.lat) != (b.lat > p.lat) {
            let lon_at = (b.lon - a.lon) * (p.lat - a.lat) / (b.lat - a.lat) + a.lon;
            if p.lon < lon_at {
                inside = !inside;
            }
        }
        j = i;
    }
    inside
}

/// A zone as the admin describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneSpec {
    pub name: String,
    pub description: Option<String>,
    pub area: ZoneArea,
}

/// A position as it arrives on the wire, before it is checked.
pub type RawPoint = (f64, f64);

impl ZoneSpec {
    pub fn parse(
        name: &str,
        description: Option<&str>,
        center: Option<RawPoint>,
        radius_m: Option<f64>,
        polygon: Option<&[RawPoint]>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut v = Validation::new();
        let name = v.check(bounded_text("name", name, 1, 120));
        let description =
            description.and_then(|d| v.check(bounded_text("description", d, 0, 2000)));
        let center = center.and_then(|(lat, lon)| v.check(GeoPoint::parse("center", lat, lon)));
        if let Some(r) = radius_m {
            if !r.is_finite() || r <= 0.0 || r > 100_000.0 {
                v.push(FieldError::new(
                    "radius_m",
                    "must be a distance in metres between 0 and 100000",
                ));
            } else if center.is_none() {
                v.push(FieldError::new("radius_m", "needs a center"));
            }
        }
        let polygon = polygon.and_then(|points| {
            let mut ring: Vec<GeoPoint> = points
                .iter()
                .enumerate()
                .filter_map(|(i, &(lat, lon))| {
                    v.check(GeoPoint::parse(&format!("polygon[{i}]"), lat, lon))
                })
                .collect();
            if ring.len() > 1 && ring.first() == ring.last() {
                ring.pop();
            }
            if ring.len() < 3 {
                v.push(FieldError::new(
                    "polygon",
                    "must have at least 3 distinct vertices",
                ));
                None
            } else if ring.len() > 1000 {
                v.push(FieldError::new(
                    "polygon",
                    "must have at most 1000 vertices",
                ));
                None
            } else {
                Some(ring)
            }
        });
        v.finish()?;
        Ok(Self {
            name: name.unwrap_or_default(),
            description: description.filter(|d| !d.is_empty()),
            area: ZoneArea {
                center,
                radius_m,
                polygon,
            },
        })
    }
}

impl TryFrom<String> for Urgency {
    type Error = crate::FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Urgency::parse("urgency", &raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> ZoneArea {
        let ring = [
            (-12.0, -77.0),
            (-12.0, -76.99),
            (-12.01, -76.99),
            (-12.01, -77.0),
        ];
        ZoneSpec::parse("Pabellón A", None, None, None, Some(&ring))
            .expect("valid")
            .area
    }

    #[test]
    fn a_point_inside_a_polygon_is_contained_and_one_outside_is_not() {
        let zone = square();
        assert!(zone.contains(GeoPoint {
            lat: -12.005,
            lon: -76.995
        }));
        assert!(!zone.contains(GeoPoint {
            lat: -12.02,
            lon: -76.995
        }));
    }

    #[test]
    fn a_circle_zone_contains_points_within_its_radius() {
        let zone = ZoneSpec::parse("Patio", None, Some((-12.0, -77.0)), Some(100.0), None)
            .expect("valid")
            .area;
        assert!(zone.contains(GeoPoint {
            lat: -12.0005,
            lon: -77.0
        })); // ~55 m
        assert!(!zone.contains(GeoPoint {
            lat: -12.002,
            lon: -77.0
        })); // ~222 m
    }

    #[test]
    fn invalid_zones_name_each_field() {
        let errors = ZoneSpec::parse(
            "",
            None,
            Some((95.0, 0.0)),
            Some(-1.0),
            Some(&[(0.0, 0.0), (1.0, 1.0)]),
        )
        .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "center.lat", "radius_m", "polygon"]);
    }

    #[test]
    fn category_defaults_its_english_name_and_urgency() {
        let spec = CategorySpec::parse("Fuga de agua", None, Some(3), None).expect("valid");
        assert_eq!(spec.name_en, "Fuga de agua");
        assert_eq!(spec.default_urgency, Urgency::Medium);
        assert!(CategorySpec::parse("x", None, None, Some("urgent")).is_err());
    }

    #[test]
    fn department_contact_emails_are_checked_and_deduplicated() {
        let spec =
            DepartmentSpec::parse("Mantenimiento", &["a@utec.pe".into(), "A@utec.pe".into()])
                .expect("valid");
        assert_eq!(spec.contact_emails.len(), 1);
        let errors = DepartmentSpec::parse("Mantenimiento", &["nope".into()]).expect_err("invalid");
        assert_eq!(errors[0].field, "contact_emails[0]");
        let errors = spec
            .with_escalation_emails(&["jefe@utec.pe".into(), "x".into()])
            .expect_err("invalid escalation address");
        assert_eq!(errors[0].field, "escalation_emails[1]");
    }
}
