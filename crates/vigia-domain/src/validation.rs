//! Field-level validation errors shared by every parse function.

use serde::Serialize;

/// One invalid field: where it is (a JSON-pointer-like dotted path) and why it is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Collects the errors of several fields so a client learns about all of them at once.
#[derive(Debug, Default)]
pub struct Validation {
    errors: Vec<FieldError>,
}

impl Validation {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the error of `result`, if any, and returns its value.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.errors.push(error);
                None
            }
        }
    }

    pub fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok(())` when no field failed, else every failure.
    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

/// Trims `value` and checks its length in characters: at least `min` once trimmed, at most
/// `max` as sent (the OpenAPI document's `maxLength` is on the value sent, padding included).
pub fn bounded_text(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<String, FieldError> {
    let trimmed = value.trim();
    if trimmed.chars().count() < min {
        return Err(if min == 1 {
            FieldError::new(field, "must not be empty")
        } else {
            FieldError::new(field, format!("must be at least {min} characters"))
        });
    }
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_trims_and_counts_characters_not_bytes() {
        assert_eq!(bounded_text("name", " Ñandú", 1, 6).as_deref(), Ok("Ñandú"));
        assert!(bounded_text("name", "   ", 1, 5).is_err());
        assert!(bounded_text("name", "abcdef", 1, 5).is_err());
        assert!(bounded_text("name", "a\u{0}b", 1, 5).is_err());
    }

    #[test]
    fn bounded_text_counts_the_maximum_on_the_value_as_sent_as_the_openapi_maxlength_does() {
        // Schemathesis sent 6 blanks and 195 characters for a 200-character field.
        let padded = format!("\u{b}\t  \t {}", "*".repeat(195));
        let error = bounded_text("location", &padded, 1, 200).expect_err("201 characters sent");
        assert_eq!(error.message, "must be at most 200 characters");
        assert!(bounded_text("location", &"*".repeat(200), 1, 200).is_ok());
    }

    #[test]
    fn validation_collects_every_error() {
        let mut v = Validation::new();
        v.check::<()>(Err(FieldError::new("a", "x")));
        v.check::<()>(Err(FieldError::new("b", "y")));
        assert_eq!(v.finish().map_err(|e| e.len()), Err(2));
    }
}
