//! Detection labels: a configurable vocabulary (`detections.labels`).

use serde::Serialize;

use crate::FieldError;

/// The labels a fresh installation accepts (the seed's emotions plus a few).
pub const DEFAULT_LABELS: [&str; 9] = [
    "neutral",
    "happy",
    "sad",
    "angry",
    "surprised",
    "fear",
    "disgust",
    "stress",
    "fatigue",
];

/// The labels the default rule and the dashboards call "stress" labels.
pub const STRESS_LABELS: [&str; 2] = ["stress", "sad"];

/// A label from the configured vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Label(String);

impl Label {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A label read back from storage (it was checked when it was written).
    pub fn stored(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The labels this installation accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    labels: Vec<String>,
}

impl Default for Vocabulary {
    fn default() -> Self {
        Self {
            labels: DEFAULT_LABELS.iter().map(|l| (*l).to_owned()).collect(),
        }
    }
}

impl Vocabulary {
    /// Checks a configured vocabulary: 1..=64 distinct names of 1..=32 lowercase letters,
    /// digits, `_` or `-`.
    pub fn parse(field: &str, raw: &[String]) -> Result<Self, FieldError> {
        if raw.is_empty() || raw.len() > 64 {
            return Err(FieldError::new(field, "must list between 1 and 64 labels"));
        }
        let mut labels: Vec<String> = Vec::with_capacity(raw.len());
        for (i, name) in raw.iter().enumerate() {
            let ok = (1..=32).contains(&name.len())
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !ok {
                return Err(FieldError::new(
                    format!("{field}[{i}]"),
                    "a label is 1 to 32 lowercase letters, digits, '_' or '-'",
                ));
            }
            if !labels.contains(name) {
                labels.push(name.clone());
            }
        }
        Ok(Self { labels })
    }

    /// `raw` as a label of this vocabulary, or an error that lists the known ones.
    pub fn label(&self, field: &str, raw: &str) -> Result<Label, FieldError> {
        if self.labels.iter().any(|l| l == raw) {
            Ok(Label(raw.to_owned()))
        } else {
            Err(FieldError::new(
                field,
                format!(
                    "unknown label {raw:?}; known labels: {}",
                    self.labels.join(", ")
                ),
            ))
        }
    }

    pub fn names(&self) -> &[String] {
        &self.labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_vocabulary_knows_the_seed_labels_and_refuses_others() {
        let v = Vocabulary::default();
        assert_eq!(
            v.label("label", "stress").map(|l| l.0),
            Ok("stress".to_owned())
        );
        let error = v.label("label", "bored").expect_err("unknown");
        assert_eq!(error.field, "label");
        assert!(error.message.contains("neutral"), "{}", error.message);
        assert!(
            v.label("label", "Stress").is_err(),
            "labels are case-sensitive"
        );
    }

    #[test]
    fn a_configured_vocabulary_must_be_well_formed() {
        let ok = Vocabulary::parse("labels", &["calm".into(), "alert".into(), "calm".into()])
            .expect("valid");
        assert_eq!(ok.names(), ["calm", "alert"]);
        assert!(Vocabulary::parse("labels", &[]).is_err());
        let bad = Vocabulary::parse("labels", &["ok".into(), "Not Ok".into()]).expect_err("bad");
        assert_eq!(bad.field, "labels[1]");
    }
}
