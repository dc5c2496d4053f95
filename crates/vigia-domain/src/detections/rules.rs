//! Alert rules over detections, severities and the alert lifecycle.

use serde::Serialize;

use super::input::Confidence;
use super::labels::{Label, STRESS_LABELS, Vocabulary};
use crate::FieldError;

/// What a rule watches, per subject: at least `min_count` detections whose label is in
/// `labels` within a sliding window of `window_ms` (the window ending at the newest detection
/// seen for the subject, start excluded: `(newest - window, newest]`), whose average
/// confidence is strictly above `confidence_floor`, and no alert of the same rule for the same
/// subject raised less than `cooldown_ms` earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub labels: Vec<Label>,
    pub min_count: u32,
    pub window_ms: i64,
    pub confidence_floor: Confidence,
    pub cooldown_ms: i64,
}

impl RuleSpec {
    /// The seed's rule: 10 `stress`/`sad` detections in 15 minutes, average confidence above
    /// 0.5, at most one alert per subject an hour.
    pub fn seed_default() -> Self {
        Self {
            labels: STRESS_LABELS.iter().map(|l| Label::stored(*l)).collect(),
            min_count: 10,
            window_ms: 15 * 60_000,
            confidence_floor: Confidence::from_micros(500_000),
            cooldown_ms: 3_600_000,
        }
    }

    /// Checks a rule's parameters; every problem is reported.
    pub fn parse(
        vocabulary: &Vocabulary,
        labels: &[String],
        min_count: i64,
        window_secs: i64,
        confidence_floor: f64,
        cooldown_secs: i64,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut parsed = Vec::new();
        if labels.is_empty() {
            errors.push(FieldError::new("labels", "must name at least one label"));
        }
        for (i, raw) in labels.iter().enumerate() {
            match vocabulary.label(&format!("labels[{i}]"), raw) {
                Ok(label) if !parsed.contains(&label) => parsed.push(label),
                Ok(_) => {}
                Err(error) => errors.push(error),
            }
        }
        if !(1..=100_000).contains(&min_count) {
            errors.push(FieldError::new("min_count", "must be from 1 to 100000"));
        }
        if !(1..=86_400).contains(&window_secs) {
            errors.push(FieldError::new(
                "window_secs",
                "must be from 1 to 86400 (one day)",
            ));
        }
        if !(0..=30 * 86_400).contains(&cooldown_secs) {
            errors.push(FieldError::new(
                "cooldown_secs",
                "must be from 0 to 2592000 (30 days)",
            ));
        }
        let floor = Confidence::parse("confidence_floor", confidence_floor)
            .map_err(|e| errors.push(e))
            .ok();
        match floor {
            Some(confidence_floor) if errors.is_empty() => Ok(Self {
                labels: parsed,
                min_count: min_count as u32,
                window_ms: window_secs * 1000,
                confidence_floor,
                cooldown_ms: cooldown_secs * 1000,
            }),
            _ => Err(errors),
        }
    }

    pub fn watches(&self, label: &Label) -> bool {
        self.labels.contains(label)
    }
}

/// How serious an alert is, from the average confidence of the detections that raised it:
/// `high` above 0.8, `medium` from 0.5 to 0.8 (both included), `low` below 0.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Low, Severity::Medium, Severity::High];

    /// The severity of `count` detections whose confidences add up to `sum_micros`, compared
    /// exactly (no floating point).
    pub fn of(sum_micros: u64, count: u64) -> Self {
        if sum_micros > 800_000 * count {
            Severity::High
        } else if sum_micros >= 500_000 * count {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| FieldError::new(field, "must be low, medium or high"))
    }
}

/// An alert's lifecycle: `pending → acknowledged → resolved` (a pending alert may also be
/// resolved directly; a resolved one stays resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Pending,
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 3] = [
        AlertStatus::Pending,
        AlertStatus::Acknowledged,
        AlertStatus::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Pending => "pending",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| FieldError::new(field, "must be pending, acknowledged or resolved"))
    }

    /// Whether an alert in this status may move to `to`.
    pub fn may_become(self, to: AlertStatus) -> bool {
        matches!(
            (self, to),
            (AlertStatus::Pending, AlertStatus::Acknowledged)
                | (AlertStatus::Pending, AlertStatus::Resolved)
                | (AlertStatus::Acknowledged, AlertStatus::Resolved)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_bands_are_exact_at_0_5_and_0_8() {
        // ten detections, averages given by their sums in millionths
        assert_eq!(
            Severity::of(8_000_000, 10),
            Severity::Medium,
            "exactly 0.8 is medium"
        );
        assert_eq!(
            Severity::of(8_000_001, 10),
            Severity::High,
            "just above 0.8 is high"
        );
        assert_eq!(
            Severity::of(5_000_000, 10),
            Severity::Medium,
            "exactly 0.5 is medium"
        );
        assert_eq!(
            Severity::of(4_999_999, 10),
            Severity::Low,
            "just below 0.5 is low"
        );
    }

    #[test]
    fn a_rule_with_bad_parameters_names_each_field() {
        let v = Vocabulary::default();
        let errors = RuleSpec::parse(&v, &["stress".into(), "bored".into()], 0, 0, 1.5, -1)
            .expect_err("invalid");
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "labels[1]",
                "min_count",
                "window_secs",
                "cooldown_secs",
                "confidence_floor"
            ]
        );
        let ok = RuleSpec::parse(&v, &["stress".into(), "sad".into()], 10, 900, 0.5, 3600)
            .expect("valid");
        assert_eq!(ok, RuleSpec::seed_default());
    }

    #[test]
    fn alerts_move_forward_only() {
        use AlertStatus::*;
        assert!(Pending.may_become(Acknowledged));
        assert!(Pending.may_become(Resolved));
        assert!(Acknowledged.may_become(Resolved));
        assert!(!Acknowledged.may_become(Acknowledged));
        assert!(!Resolved.may_become(Acknowledged));
        assert!(!Resolved.may_become(Resolved));
    }
}
