//! Silences: staff mute a rule, a subject or a device for a period. Detections keep being
//! stored and counted; an alert that a silence matches is not raised.

use serde::Serialize;

use crate::Timestamp;
use crate::ids::{AlertRuleId, DeviceId, SilenceId, SubjectId};

/// What a silence mutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum SilenceTarget {
    Rule(AlertRuleId),
    Subject(SubjectId),
    Device(DeviceId),
}

/// A silence over `[starts_at, ends_at)`: its start included, its end excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    pub id: SilenceId,
    pub target: SilenceTarget,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
}

impl Silence {
    /// Whether an alert of `rule` for `subject`, raised by a detection of `device` taken at
    /// `at`, is muted by this silence.
    pub fn mutes(
        &self,
        rule: AlertRuleId,
        subject: SubjectId,
        device: DeviceId,
        at: Timestamp,
    ) -> bool {
        let matches = match self.target {
            SilenceTarget::Rule(r) => r == rule,
            SilenceTarget::Subject(s) => s == subject,
            SilenceTarget::Device(d) => d == device,
        };
        matches && self.starts_at <= at && at < self.ends_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(target: SilenceTarget) -> Silence {
        Silence {
            id: SilenceId(1),
            target,
            starts_at: Timestamp::from_millis(1_000),
            ends_at: Timestamp::from_millis(2_000),
        }
    }

    #[test]
    fn a_silence_includes_its_start_and_excludes_its_end() {
        let s = silence(SilenceTarget::Subject(SubjectId(7)));
        let mutes = |at| {
            s.mutes(
                AlertRuleId(1),
                SubjectId(7),
                DeviceId(3),
                Timestamp::from_millis(at),
            )
        };
        assert!(!mutes(999), "just before the start");
        assert!(mutes(1_000), "exactly at the start");
        assert!(mutes(1_999), "just before the end");
        assert!(!mutes(2_000), "exactly at the end");
    }

    #[test]
    fn a_silence_mutes_only_its_own_rule_subject_or_device() {
        let at = Timestamp::from_millis(1_500);
        let rule = silence(SilenceTarget::Rule(AlertRuleId(2)));
        assert!(rule.mutes(AlertRuleId(2), SubjectId(1), DeviceId(1), at));
        assert!(!rule.mutes(AlertRuleId(3), SubjectId(1), DeviceId(1), at));
        let device = silence(SilenceTarget::Device(DeviceId(5)));
        assert!(device.mutes(AlertRuleId(2), SubjectId(1), DeviceId(5), at));
        assert!(!device.mutes(AlertRuleId(2), SubjectId(5), DeviceId(1), at));
    }
}
