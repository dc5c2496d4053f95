//! The campus map of the zone picker: the zones' own polygons and circles drawn as inline
//! SVG (no tiles, nothing from the internet). Larger zones are drawn first so the smaller ones
//! inside them stay clickable.

use vigia_domain::catalog::GeoPoint;
use vigia_store::catalog::Zone;

/// Metres per degree of latitude.
const M_PER_DEG: f64 = 111_320.0;
/// The map's width in SVG units.
const WIDTH: f64 = 320.0;

/// One zone as drawn.
pub struct MapZone {
    pub id: i64,
    pub name: String,
    /// `points` of a polygon, or empty for a circle.
    pub points: String,
    pub cx: String,
    pub cy: String,
    pub r: String,
    /// Where its name is written.
    pub label_x: String,
    pub label_y: String,
}

/// The map: its view box and zones; `None` when no zone has a shape.
pub struct Map {
    pub view_box: String,
    pub zones: Vec<MapZone>,
    pub frame: Frame,
}

/// How the map places a position, for a script that turns a click back into one:
/// `x = margin + (lon - min_lon) * k * scale`, `y = margin + (max_lat - lat) * scale`.
pub struct Frame {
    pub min_lon: f64,
    pub max_lat: f64,
    pub k: f64,
    pub scale: f64,
    pub margin: f64,
}

impl Frame {
    /// The position under the map's point `(x, y)`: `(lat, lon)`.
    pub fn position(&self, x: f64, y: f64) -> (f64, f64) {
        let lat = self.max_lat - (y - self.margin) / self.scale;
        let lon = self.min_lon + (x - self.margin) / (self.k * self.scale);
        (lat, lon)
    }
}

/// A circle: its centre and its radius in degrees of latitude.
type Circle = (GeoPoint, f64);

/// A zone's outline as (lat, lon) points (a circle's bounding corners) and, for a circle, the
/// circle.
fn outline(zone: &Zone) -> Option<(Vec<GeoPoint>, Option<Circle>)> {
    if let Some(ring) = &zone.area.polygon {
        return Some((ring.clone(), None));
    }
    match (zone.area.center, zone.area.radius_m) {
        (Some(c), Some(r)) => {
            let dlat = r / M_PER_DEG;
            let dlon = r / (M_PER_DEG * c.lat.to_radians().cos().max(0.01));
            let corners = vec![
                GeoPoint {
                    lat: c.lat - dlat,
                    lon: c.lon - dlon,
                },
                GeoPoint {
                    lat: c.lat + dlat,
                    lon: c.lon + dlon,
                },
            ];
            Some((corners, Some((c, dlat))))
        }
        _ => None,
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

pub fn build(zones: &[Zone]) -> Option<Map> {
    build_padded(zones, 0.0)
}

/// The map with room around the zones: each side grows by `pad` times the zones' extent (the
/// zone editor leaves space to draw a new zone beside the others).
pub fn build_padded(zones: &[Zone], pad: f64) -> Option<Map> {
    let shapes: Vec<(&Zone, Vec<GeoPoint>, Option<Circle>)> = zones
        .iter()
        .filter_map(|z| outline(z).map(|(pts, circle)| (z, pts, circle)))
        .collect();
    let all = shapes.iter().flat_map(|(_, pts, _)| pts.iter());
    let (mut min_lat, mut max_lat, mut min_lon, mut max_lon) =
        (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in all {
        min_lat = min_lat.min(p.lat);
        max_lat = max_lat.max(p.lat);
        min_lon = min_lon.min(p.lon);
        max_lon = max_lon.max(p.lon);
    }
    if shapes.is_empty() || min_lat > max_lat {
        return None;
    }
    let (pad_lat, pad_lon) = (
        (max_lat - min_lat).max(0.0005) * pad,
        (max_lon - min_lon).max(0.0005) * pad,
    );
    min_lat -= pad_lat;
    max_lat += pad_lat;
    min_lon -= pad_lon;
    max_lon += pad_lon;
    // Equirectangular: a degree of longitude is cos(latitude) of a degree of latitude.
    let k = ((min_lat + max_lat) / 2.0).to_radians().cos().max(0.01);
    let span_x = ((max_lon - min_lon) * k).max(1e-6);
    let span_y = (max_lat - min_lat).max(1e-6);
    let margin = 8.0;
    let scale = (WIDTH - 2.0 * margin) / span_x;
    let height = (span_y * scale + 2.0 * margin).clamp(120.0, 480.0);
    let scale = scale.min((height - 2.0 * margin) / span_y);
    let x = |lon: f64| margin + (lon - min_lon) * k * scale;
    let y = |lat: f64| margin + (max_lat - lat) * scale;
    let mut sized: Vec<(f64, MapZone)> = shapes
        .into_iter()
        .map(|(zone, pts, circle)| match circle {
            Some((c, dlat)) => {
                let r = dlat * scale;
                let area = std::f64::consts::PI * r * r;
                (
                    area,
                    MapZone {
                        id: zone.id.0,
                        name: zone.name.clone(),
                        points: String::new(),
                        cx: fmt(x(c.lon)),
                        cy: fmt(y(c.lat)),
                        r: fmt(r),
                        label_x: fmt(x(c.lon)),
                        label_y: fmt(y(c.lat) + 3.0),
                    },
                )
            }
            None => {
                let xs: Vec<(f64, f64)> = pts.iter().map(|p| (x(p.lon), y(p.lat))).collect();
                let area = shoelace(&xs);
                let (sx, sy) = xs
                    .iter()
                    .fold((0.0, 0.0), |(a, b), (px, py)| (a + px, b + py));
                let n = xs.len().max(1) as f64;
                let points = xs
                    .iter()
                    .map(|(px, py)| format!("{},{}", fmt(*px), fmt(*py)))
                    .collect::<Vec<_>>()
                    .join(" ");
                // A big zone's name goes near its top, out of the way of the zones inside it.
                let top = xs.iter().map(|(_, py)| *py).fold(f64::MAX, f64::min);
                (
                    area,
                    MapZone {
                        id: zone.id.0,
                        name: zone.name.clone(),
                        points,
                        cx: String::new(),
                        cy: String::new(),
                        r: String::new(),
                        label_x: fmt(sx / n),
                        label_y: fmt((top + 14.0).min(sy / n)),
                    },
                )
            }
        })
        .collect();
    sized.sort_by(|a, b| b.0.total_cmp(&a.0));
    Some(Map {
        view_box: format!("0 0 {} {}", fmt(WIDTH), fmt(height)),
        zones: sized.into_iter().map(|(_, z)| z).collect(),
        frame: Frame {
            min_lon,
            max_lat,
            k,
            scale,
            margin,
        },
    })
}

fn shoelace(pts: &[(f64, f64)]) -> f64 {
    let n = pts.len();
    (0..n)
        .map(|i| {
            let (x1, y1) = pts[i];
            let (x2, y2) = pts[(i + 1) % n];
            x1 * y2 - x2 * y1
        })
        .sum::<f64>()
        .abs()
        / 2.0
}
