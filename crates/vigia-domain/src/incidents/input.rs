//! What a reporter or an integration sends to create an incident or comment on one, parsed.

use serde::{Deserialize, Serialize};

use crate::catalog::{GeoPoint, RawPoint, Urgency};
use crate::ids::{CategoryId, DepartmentId, ZoneId};
use crate::validation::{FieldError, Validation, bounded_text};

/// The longest incident title, in characters.
pub const INCIDENT_TITLE_MAX_CHARS: usize = 200;
/// The longest incident description, in characters.
pub const INCIDENT_DESCRIPTION_MAX_CHARS: usize = 5000;
/// The longest comment, in characters.
pub const COMMENT_BODY_MAX_CHARS: usize = 5000;
/// The longest free-text location ("2nd floor, by the lifts"), in characters.
pub const LOCATION_TEXT_MAX_CHARS: usize = 300;

/// Trims and bounds multi-line text, first turning CR LF and lone CR (as browsers send
/// textareas) into LF.
fn multiline_text(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    bounded_text(
        field,
        &raw.replace("\r\n", "\n").replace('\r', "\n"),
        1,
        max,
    )
}

/// Trims and bounds one line of text.
fn single_line_text(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    bounded_text(field, raw, 1, max)
}

/// A positive database id.
fn positive_id(field: &str, raw: i64) -> Result<i64, FieldError> {
    if raw > 0 {
        Ok(raw)
    } else {
        Err(FieldError::new(field, "must be a positive id"))
    }
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $max:expr, $parse:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Trims `raw` and checks it is not empty, not too long and free of control characters.
            pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
                $parse(field, raw, $max).map(Self)
            }

            /// The checked text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// An incident's one-line summary: 1 to 200 characters.
    IncidentTitle,
    INCIDENT_TITLE_MAX_CHARS,
    single_line_text
);
text_type!(
    /// What happened, in the reporter's words: 1 to 5000 characters, line breaks kept.
    IncidentDescription,
    INCIDENT_DESCRIPTION_MAX_CHARS,
    multiline_text
);
text_type!(
    /// A comment's text: 1 to 5000 characters, line breaks kept.
    CommentBody,
    COMMENT_BODY_MAX_CHARS,
    multiline_text
);

/// Where an incident is: a known zone, a description, a position, or any of them together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Location {
    zone: Option<ZoneId>,
    text: Option<String>,
    point: Option<GeoPoint>,
}

impl Location {
    /// Parses the location fields (named `location.zone_id`, `location.text`, `location.point`).
    /// A location is optional: `Ok(None)` when no part of it was given (a blank text counts
    /// as not given); each part that was given must be valid.
    pub fn parse(
        zone_id: Option<i64>,
        text: Option<&str>,
        point: Option<RawPoint>,
    ) -> Result<Option<Self>, Vec<FieldError>> {
        let mut v = Validation::new();
        let zone = zone_id
            .and_then(|id| v.check(positive_id("location.zone_id", id)))
            .map(ZoneId);
        let text = text
            .filter(|t| !t.trim().is_empty())
            .and_then(|t| v.check(bounded_text("location.text", t, 1, LOCATION_TEXT_MAX_CHARS)));
        let point =
            point.and_then(|(lat, lon)| v.check(GeoPoint::parse("location.point", lat, lon)));
        v.finish()?;
        if zone.is_none() && text.is_none() && point.is_none() {
            return Ok(None);
        }
        Ok(Some(Self { zone, text, point }))
    }

    /// The named zone, if one was chosen.
    pub fn zone(&self) -> Option<ZoneId> {
        self.zone
    }

    /// The reporter's description of the place.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The position, from the reporter's device or a map pin.
    pub fn point(&self) -> Option<GeoPoint> {
        self.point
    }
}

macro_rules! name_enum {
    ($(#[$doc:meta])* $name:ident, $field:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire and storage name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses a wire or storage name.
            pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
                Self::ALL.iter().copied().find(|v| v.as_str() == raw).ok_or_else(|| {
                    FieldError::new(field, concat!("must be one of: ", $($text, ", "),+).trim_end_matches(", "))
                })
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                $name::parse($field, &raw)
            }
        }
    };
}

name_enum!(
    /// How an incident came in. The caller sets it from the route and principal; clients do not.
    Source, "source", {
        /// The web UI.
        Web => "web",
        /// The REST API (an integration or a device's API key).
        Api => "api",
        /// The conversational assistant.
        Assistant => "assistant",
        /// An automation rule.
        Rule => "rule",
        /// Image or video analysis.
        Media => "media",
    }
);

name_enum!(
    /// Who may read a comment.
    Visibility, "visibility", {
        /// Everyone who can see the incident, the reporter included.
        Public => "public",
        /// Department staff and admins only (see [`crate::incidents::Relation::may_see_internal`]).
        Internal => "internal",
    }
);

name_enum!(
    /// Who may see an incident besides its reporter, its department's staff and admins.
    /// Reports are public unless the reporter asks otherwise, so that others find them and
    /// vote instead of reporting the same thing again.
    #[derive(Default)]
    IncidentVisibility, "visibility", {
        /// Every signed-in user, who may also vote for it ("me too").
        #[default]
        Public => "public",
        /// Nobody else.
        Private => "private",
    }
);

/// A new incident's fields as they arrive on the wire, before they are checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawNewIncident<'a> {
    pub title: &'a str,
    pub description: &'a str,
    pub category_id: Option<i64>,
    /// `None` takes the category's default urgency.
    pub urgency: Option<&'a str>,
    /// `None` takes the category's default department.
    pub department_id: Option<i64>,
    pub zone_id: Option<i64>,
    pub location_text: Option<&'a str>,
    pub point: Option<RawPoint>,
    /// `None` means [`IncidentVisibility::default`].
    pub visibility: Option<&'a str>,
}

/// A new incident, checked. The store fills in what comes from elsewhere: the reporter, the
/// category's defaults, the code, the SLA clock.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIncident {
    pub title: IncidentTitle,
    pub description: IncidentDescription,
    /// Every incident has a category: it routes the incident and picks its SLA.
    pub category_id: CategoryId,
    /// `None`: use the category's default urgency.
    pub urgency: Option<Urgency>,
    /// `None`: use the category's default department.
    pub department_id: Option<DepartmentId>,
    pub location: Option<Location>,
    pub visibility: IncidentVisibility,
    pub source: Source,
}

impl NewIncident {
    /// Checks every field of `raw`, reporting all invalid fields at once.
    pub fn parse(raw: &RawNewIncident<'_>, source: Source) -> Result<Self, Vec<FieldError>> {
        let mut v = Validation::new();
        let title = v.check(IncidentTitle::parse("title", raw.title));
        let description = v.check(IncidentDescription::parse("description", raw.description));
        let category_id = match raw.category_id {
            Some(id) => v.check(positive_id("category_id", id)),
            None => v.check(Err(FieldError::new("category_id", "is required"))),
        };
        let urgency = raw.urgency.map(|u| v.check(Urgency::parse("urgency", u)));
        let department_id = raw
            .department_id
            .map(|id| v.check(positive_id("department_id", id)));
        let visibility = raw
            .visibility
            .map(|vis| v.check(IncidentVisibility::parse("visibility", vis)));
        let location = match Location::parse(raw.zone_id, raw.location_text, raw.point) {
            Ok(location) => location,
            Err(errors) => {
                errors.into_iter().for_each(|e| v.push(e));
                None
            }
        };
        v.finish()?;
        match (title, description, category_id) {
            (Some(title), Some(description), Some(category_id)) => Ok(Self {
                title,
                description,
                category_id: CategoryId(category_id),
                urgency: urgency.flatten(),
                department_id: department_id.flatten().map(DepartmentId),
                location,
                visibility: visibility.flatten().unwrap_or_default(),
                source,
            }),
            // Unreachable: every `None` above recorded an error, and `finish` returned them.
            _ => Err(vec![FieldError::new("", "invalid incident")]),
        }
    }
}

/// A new comment, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewComment {
    pub body: CommentBody,
    pub visibility: Visibility,
}

impl NewComment {
    /// Checks a comment; without a visibility it is public.
    pub fn parse(body: &str, visibility: Option<&str>) -> Result<Self, Vec<FieldError>> {
        let mut v = Validation::new();
        let body = v.check(CommentBody::parse("body", body));
        let visibility = match visibility {
            Some(raw) => v.check(Visibility::parse("visibility", raw)),
            None => Some(Visibility::Public),
        };
        v.finish()?;
        match (body, visibility) {
            (Some(body), Some(visibility)) => Ok(Self { body, visibility }),
            // Unreachable: every `None` above recorded an error, and `finish` returned them.
            _ => Err(vec![FieldError::new("", "invalid comment")]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leak() -> RawNewIncident<'static> {
        RawNewIncident {
            title: "  Fuga de agua en el baño  ",
            description: "Sale agua del lavabo.\r\nEstá mojado el piso.",
            category_id: Some(3),
            ..RawNewIncident::default()
        }
    }

    #[test]
    fn a_minimal_incident_takes_its_defaults() {
        let incident = NewIncident::parse(&leak(), Source::Web).expect("valid");
        assert_eq!(incident.title.as_str(), "Fuga de agua en el baño");
        assert_eq!(
            incident.description.as_str(),
            "Sale agua del lavabo.\nEstá mojado el piso."
        );
        assert_eq!(incident.category_id, CategoryId(3));
        assert_eq!(
            (incident.urgency, incident.department_id, incident.location),
            (None, None, None)
        );
        assert_eq!(incident.visibility, IncidentVisibility::Public);
        assert_eq!(incident.source, Source::Web);
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let long = "x".repeat(INCIDENT_DESCRIPTION_MAX_CHARS + 1);
        let raw = RawNewIncident {
            title: " ",
            description: &long,
            category_id: None,
            urgency: Some("urgent"),
            department_id: Some(0),
            zone_id: Some(-1),
            location_text: Some("ok"),
            point: Some((0.0, 200.0)),
            visibility: Some("secret"),
        };
        let errors = NewIncident::parse(&raw, Source::Api).expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "title",
                "description",
                "category_id",
                "urgency",
                "department_id",
                "visibility",
                "location.zone_id",
                "location.point.lon"
            ]
        );
    }

    #[test]
    fn a_location_is_optional_but_each_given_part_must_be_valid() {
        assert_eq!(Location::parse(None, Some("   "), None), Ok(None));
        let location = Location::parse(Some(4), Some(" Pabellón B "), Some((-12.1, -77.0)))
            .expect("valid")
            .expect("given");
        assert_eq!(
            (location.zone(), location.text()),
            (Some(ZoneId(4)), Some("Pabellón B"))
        );
        let long = "x".repeat(LOCATION_TEXT_MAX_CHARS + 1);
        assert_eq!(
            Location::parse(None, Some(&long), None).expect_err("too long")[0].field,
            "location.text"
        );
    }

    #[test]
    fn titles_are_bounded_and_single_line() {
        assert!(IncidentTitle::parse("title", &"é".repeat(INCIDENT_TITLE_MAX_CHARS)).is_ok());
        assert!(IncidentTitle::parse("title", &"é".repeat(INCIDENT_TITLE_MAX_CHARS + 1)).is_err());
        assert!(IncidentTitle::parse("title", "one\rtwo").is_err());
    }

    #[test]
    fn comments_are_public_unless_marked_internal() {
        let comment = NewComment::parse("Ya vamos.", None).expect("valid");
        assert_eq!(comment.visibility, Visibility::Public);
        let internal = NewComment::parse("Pedir repuesto", Some("internal")).expect("valid");
        assert_eq!(internal.visibility, Visibility::Internal);
        let errors = NewComment::parse("", Some("private")).expect_err("invalid");
        assert_eq!(
            errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            ["body", "visibility"]
        );
        assert_eq!(errors[1].message, "must be one of: public, internal");
    }

    #[test]
    fn sources_round_trip_through_their_names() {
        for &source in Source::ALL {
            assert_eq!(Source::parse("source", source.as_str()), Ok(source));
        }
        assert_eq!(
            Source::try_from("email".to_owned())
                .expect_err("unknown")
                .field,
            "source"
        );
    }
}
