//! One detection as a device reports it, checked before anything is stored.

use serde::Serialize;

use super::labels::{Label, Vocabulary};
use crate::{FieldError, Timestamp};

/// A confidence in 0..=1, kept as millionths so sums and averages compare exactly (ten
/// detections at 0.8 average exactly 0.8, not 0.8000000000000002).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Confidence(u32);

impl Confidence {
    pub const SCALE: u32 = 1_000_000;

    /// `raw` if it is a finite number in 0..=1 (rounded to millionths).
    pub fn parse(field: &str, raw: f64) -> Result<Self, FieldError> {
        if raw.is_finite() && (0.0..=1.0).contains(&raw) {
            Ok(Self((raw * f64::from(Self::SCALE)).round() as u32))
        } else {
            Err(FieldError::new(field, "must be a number from 0 to 1"))
        }
    }

    /// From millionths (as stored); values above one million are clamped.
    pub fn from_micros(micros: i64) -> Self {
        Self(micros.clamp(0, i64::from(Self::SCALE)) as u32)
    }

    pub fn micros(self) -> u32 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / f64::from(Self::SCALE)
    }
}

/// What the installation accepts (from `[detections]` in the configuration).
#[derive(Debug, Clone)]
pub struct IngestPolicy {
    pub vocabulary: Vocabulary,
    /// How far in the future (device clock ahead of ours) a timestamp may be.
    pub max_future_skew_ms: i64,
    /// Largest `extra` JSON text, in bytes.
    pub max_extra_bytes: usize,
}

impl Default for IngestPolicy {
    fn default() -> Self {
        Self {
            vocabulary: Vocabulary::default(),
            max_future_skew_ms: 30_000,
            max_extra_bytes: 4096,
        }
    }
}

/// A detection as received, before checks. `extra` is the JSON text of the optional extra
/// object, already known to be JSON.
#[derive(Debug, Clone)]
pub struct DetectionDraft<'a> {
    pub client_id: &'a str,
    pub subject: &'a str,
    pub label: &'a str,
    pub confidence: f64,
    pub timestamp: Timestamp,
    pub extra: Option<String>,
}

/// A detection that passed every check that needs no database.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidDetection {
    /// The device's own id for it: the same device sending the same id twice is stored once.
    pub client_id: String,
    /// The subject's code.
    pub subject: String,
    pub label: Label,
    pub confidence: Confidence,
    pub at: Timestamp,
    pub extra: Option<String>,
}

impl IngestPolicy {
    /// Checks `draft` at `now`; every problem is reported, each naming its field.
    pub fn check(
        &self,
        draft: DetectionDraft<'_>,
        now: Timestamp,
    ) -> Result<ValidDetection, Vec<FieldError>> {
        let mut errors = Vec::new();
        let client_id = draft.client_id.trim();
        if client_id.is_empty() || client_id.len() > 100 || client_id.chars().any(char::is_control)
        {
            errors.push(FieldError::new(
                "client_id",
                "must be 1 to 100 characters without control characters",
            ));
        }
        let subject = draft.subject.trim();
        if subject.is_empty() || subject.len() > 64 {
            errors.push(FieldError::new(
                "subject",
                "must be a subject code of 1 to 64 characters",
            ));
        }
        let label = self
            .vocabulary
            .label("label", draft.label)
            .map_err(|e| errors.push(e))
            .ok();
        let confidence = Confidence::parse("confidence", draft.confidence)
            .map_err(|e| errors.push(e))
            .ok();
        let ahead = draft.timestamp.millis() - now.millis();
        if ahead > self.max_future_skew_ms {
            errors.push(FieldError::new(
                "timestamp",
                format!(
                    "is {} ms in the future; at most {} ms of clock skew is allowed (check the device's clock)",
                    ahead, self.max_future_skew_ms
                ),
            ));
        }
        if let Some(extra) = &draft.extra
            && extra.len() > self.max_extra_bytes
        {
            errors.push(FieldError::new(
                "extra",
                format!("must be at most {} bytes of JSON", self.max_extra_bytes),
            ));
        }
        match (label, confidence) {
            (Some(label), Some(confidence)) if errors.is_empty() => Ok(ValidDetection {
                client_id: client_id.to_owned(),
                subject: subject.to_owned(),
                label,
                confidence,
                at: draft.timestamp,
                extra: draft.extra,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(confidence: f64, at: i64) -> DetectionDraft<'static> {
        DetectionDraft {
            client_id: "cam-1/42",
            subject: "EMP001",
            label: "stress",
            confidence,
            timestamp: Timestamp::from_millis(at),
            extra: None,
        }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_well_formed_detection_passes_with_its_confidence_in_millionths() {
        let policy = IngestPolicy::default();
        let valid = policy
            .check(draft(0.875, 1_000), Timestamp::from_millis(1_000))
            .expect("valid");
        assert_eq!(valid.confidence.micros(), 875_000);
        assert_eq!(valid.label.as_str(), "stress");
    }

    #[test]
    fn confidence_outside_zero_to_one_or_not_a_number_is_refused() {
        let policy = IngestPolicy::default();
        let now = Timestamp::from_millis(0);
        for bad in [-0.01, 1.0001, f64::NAN, f64::INFINITY] {
            let errors = policy.check(draft(bad, 0), now).expect_err("refused");
            assert_eq!(fields(errors), ["confidence"], "{bad}");
        }
        assert!(policy.check(draft(0.0, 0), now).is_ok());
        assert!(policy.check(draft(1.0, 0), now).is_ok());
    }

    #[test]
    fn a_timestamp_beyond_the_allowed_skew_is_refused_and_one_within_it_passes() {
        let policy = IngestPolicy::default();
        let now = Timestamp::from_millis(100_000);
        assert!(
            policy.check(draft(0.5, 130_000), now).is_ok(),
            "exactly the skew"
        );
        let errors = policy.check(draft(0.5, 130_001), now).expect_err("too far");
        assert_eq!(fields(errors), ["timestamp"]);
        assert!(policy.check(draft(0.5, 1), now).is_ok(), "the past is fine");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let policy = IngestPolicy::default();
        let mut d = draft(2.0, 10_000_000);
        d.label = "bored";
        d.client_id = " ";
        d.extra = Some("x".repeat(5000));
        let errors = policy
            .check(d, Timestamp::from_millis(0))
            .expect_err("refused");
        assert_eq!(
            fields(errors),
            ["client_id", "label", "confidence", "timestamp", "extra"]
        );
    }
}
