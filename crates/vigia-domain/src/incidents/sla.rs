//! Service levels: how soon an incident must be acknowledged and resolved, and the per-incident
//! clock that measures it, paused while the incident is on hold.
//!
//! The clock copies the policy's durations when the incident is created, so editing a policy
//! later changes no running clock unless [`SlaClock::reapply_policy`] is called, and that call
//! keeps the time already spent on hold, including a pause in progress. (GLPI and osTicket both
//! lost the accumulated pause when an incident's SLA changed while it was waiting.)
//!
//! Only the resolve target is extended by pauses. An incident can go on hold only after it was
//! acknowledged, so no pause ever precedes the acknowledge milestone; counting later pauses
//! against it would hide a late acknowledgement.

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::catalog::Urgency;
use crate::validation::{FieldError, Validation};

/// The shortest target a policy may set: one minute.
pub const MIN_SLA_SECS: i64 = 60;
/// The longest target a policy may set: a year.
pub const MAX_SLA_SECS: i64 = 366 * 24 * 3600;

/// How soon incidents of some kind must be acknowledged and resolved, counted from creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SlaPolicy {
    acknowledge_within_secs: i64,
    resolve_within_secs: i64,
    raise_urgency_on_breach: bool,
}

impl SlaPolicy {
    /// Checks a policy: both targets between a minute and a year, resolving no sooner than
    /// acknowledging (resolving an incident implies having acknowledged it).
    pub fn parse(
        acknowledge_within_secs: i64,
        resolve_within_secs: i64,
        raise_urgency_on_breach: bool,
    ) -> Result<Self, Vec<FieldError>> {
        let mut v = Validation::new();
        for (field, secs) in [
            ("acknowledge_within_secs", acknowledge_within_secs),
            ("resolve_within_secs", resolve_within_secs),
        ] {
            if !(MIN_SLA_SECS..=MAX_SLA_SECS).contains(&secs) {
                v.push(FieldError::new(
                    field,
                    format!("must be between {MIN_SLA_SECS} and {MAX_SLA_SECS} seconds"),
                ));
            }
        }
        if v.is_empty() && resolve_within_secs < acknowledge_within_secs {
            v.push(FieldError::new(
                "resolve_within_secs",
                "must not be shorter than acknowledge_within_secs",
            ));
        }
        v.finish()?;
        Ok(Self {
            acknowledge_within_secs,
            resolve_within_secs,
            raise_urgency_on_breach,
        })
    }

    /// A starting point for an urgency, used to seed a new installation's policies.
    pub fn suggested_for(urgency: Urgency) -> Self {
        const HOUR: i64 = 3600;
        let (acknowledge_within_secs, resolve_within_secs) = match urgency {
            Urgency::Emergency => (15 * 60, 4 * HOUR),
            Urgency::High => (HOUR, 24 * HOUR),
            Urgency::Medium => (4 * HOUR, 3 * 24 * HOUR),
            Urgency::Low => (24 * HOUR, 7 * 24 * HOUR),
        };
        Self {
            acknowledge_within_secs,
            resolve_within_secs,
            raise_urgency_on_breach: urgency < Urgency::High,
        }
    }

    /// Seconds from creation to the acknowledge target.
    pub fn acknowledge_within_secs(&self) -> i64 {
        self.acknowledge_within_secs
    }

    /// Seconds from creation to the resolve target, not counting time on hold.
    pub fn resolve_within_secs(&self) -> i64 {
        self.resolve_within_secs
    }

    /// Whether a breach raises the incident's urgency one level (see [`raise_urgency`]).
    pub fn raise_urgency_on_breach(&self) -> bool {
        self.raise_urgency_on_breach
    }
}

/// The next urgency up, or `None` for an emergency, which cannot be raised.
pub fn raise_urgency(urgency: Urgency) -> Option<Urgency> {
    match urgency {
        Urgency::Low => Some(Urgency::Medium),
        Urgency::Medium => Some(Urgency::High),
        Urgency::High => Some(Urgency::Emergency),
        Urgency::Emergency => None,
    }
}

/// Which SLA target an incident missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaBreach {
    /// Nobody acknowledged it in time.
    Acknowledge,
    /// It was not resolved in time.
    Resolve,
}

/// An incident's SLA clock as the store keeps it, one column per field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaClockRecord {
    pub started_at: Timestamp,
    pub acknowledge_within_secs: i64,
    pub resolve_within_secs: i64,
    pub raise_urgency_on_breach: bool,
    /// When the current pause began, if the incident is on hold.
    pub paused_since: Option<Timestamp>,
    /// Milliseconds spent on hold in pauses that have ended.
    pub paused_total_ms: i64,
}

/// One incident's SLA clock: when it started, the targets copied from its policy, and the
/// time it has spent paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaClock {
    started_at: Timestamp,
    policy: SlaPolicy,
    paused_since: Option<Timestamp>,
    paused_total_ms: i64,
}

impl SlaClock {
    /// A clock for an incident created at `now` under `policy`.
    pub fn start(policy: &SlaPolicy, now: Timestamp) -> Self {
        Self {
            started_at: now,
            policy: *policy,
            paused_since: None,
            paused_total_ms: 0,
        }
    }

    /// The stored form.
    pub fn record(&self) -> SlaClockRecord {
        SlaClockRecord {
            started_at: self.started_at,
            acknowledge_within_secs: self.policy.acknowledge_within_secs,
            resolve_within_secs: self.policy.resolve_within_secs,
            raise_urgency_on_breach: self.policy.raise_urgency_on_breach,
            paused_since: self.paused_since,
            paused_total_ms: self.paused_total_ms,
        }
    }

    /// When the clock started (the incident's creation).
    pub fn started_at(&self) -> Timestamp {
        self.started_at
    }

    /// The targets in force for this incident.
    pub fn policy(&self) -> &SlaPolicy {
        &self.policy
    }

    /// True while the incident is on hold.
    pub fn is_paused(&self) -> bool {
        self.paused_since.is_some()
    }

    /// Stops the clock at `now`. Pausing a paused clock changes nothing.
    pub fn pause(&mut self, now: Timestamp) {
        if self.paused_since.is_none() {
            self.paused_since = Some(now);
        }
    }

    /// Restarts the clock at `now`, adding the pause to the total. Resuming a running clock
    /// changes nothing.
    pub fn resume(&mut self, now: Timestamp) {
        if let Some(since) = self.paused_since.take() {
            self.paused_total_ms = self.paused_total_ms.saturating_add(elapsed_ms(since, now));
        }
    }

    /// Milliseconds spent on hold up to `now`, the current pause included.
    pub fn paused_ms(&self, now: Timestamp) -> i64 {
        let current = self.paused_since.map_or(0, |since| elapsed_ms(since, now));
        self.paused_total_ms.saturating_add(current)
    }

    /// Replaces the targets (the incident's urgency or category changed, or the admin edited
    /// the policy and chose to apply it to open incidents). The start and every pause, the one
    /// in progress included, are kept: the new targets count from creation, minus time on hold.
    pub fn reapply_policy(&mut self, policy: &SlaPolicy) {
        self.policy = *policy;
    }

    /// When the incident must be acknowledged by. Pauses do not move it (see the module doc).
    pub fn acknowledge_due(&self) -> Timestamp {
        self.started_at
            .plus_seconds(self.policy.acknowledge_within_secs)
    }

    /// When the incident must be resolved by, as of `now`. While the incident is on hold the
    /// due time moves forward with `now`, so the time left stays frozen.
    pub fn resolve_due(&self, now: Timestamp) -> Timestamp {
        let due = self
            .started_at
            .plus_seconds(self.policy.resolve_within_secs);
        Timestamp::from_millis(due.millis().saturating_add(self.paused_ms(now)))
    }

    /// True when the incident was acknowledged late, or is still unacknowledged past its target.
    pub fn is_acknowledge_breached(
        &self,
        now: Timestamp,
        acknowledged_at: Option<Timestamp>,
    ) -> bool {
        acknowledged_at.unwrap_or(now) > self.acknowledge_due()
    }

    /// True when the incident was resolved late, or is still unresolved past its target.
    /// `resolved_at` is the latest resolution (a reopened incident has none).
    pub fn is_resolve_breached(&self, now: Timestamp, resolved_at: Option<Timestamp>) -> bool {
        let at = resolved_at.unwrap_or(now);
        at > self.resolve_due(at)
    }

    /// Everything a client shows about the SLA, as of `now`.
    pub fn snapshot(
        &self,
        now: Timestamp,
        acknowledged_at: Option<Timestamp>,
        resolved_at: Option<Timestamp>,
    ) -> SlaSnapshot {
        SlaSnapshot {
            acknowledge_due: self.acknowledge_due(),
            resolve_due: self.resolve_due(resolved_at.unwrap_or(now)),
            acknowledge_breached: self.is_acknowledge_breached(now, acknowledged_at),
            resolve_breached: self.is_resolve_breached(now, resolved_at),
            paused: self.is_paused(),
        }
    }
}

impl From<SlaClockRecord> for SlaClock {
    /// Rebuilds a clock from the store. Values the store should never hold are made harmless:
    /// a negative pause total counts as none and a target out of range is clamped.
    fn from(r: SlaClockRecord) -> Self {
        let acknowledge_within_secs = r.acknowledge_within_secs.clamp(MIN_SLA_SECS, MAX_SLA_SECS);
        let policy = SlaPolicy {
            acknowledge_within_secs,
            resolve_within_secs: r
                .resolve_within_secs
                .clamp(acknowledge_within_secs, MAX_SLA_SECS),
            raise_urgency_on_breach: r.raise_urgency_on_breach,
        };
        Self {
            started_at: r.started_at,
            policy,
            paused_since: r.paused_since,
            paused_total_ms: r.paused_total_ms.max(0),
        }
    }
}

/// An incident's SLA as shown to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SlaSnapshot {
    pub acknowledge_due: Timestamp,
    pub resolve_due: Timestamp,
    pub acknowledge_breached: bool,
    pub resolve_breached: bool,
    pub paused: bool,
}

/// Milliseconds from `since` to `now`; never negative, so a clock skewed backwards adds nothing.
fn elapsed_ms(since: Timestamp, now: Timestamp) -> i64 {
    now.millis().saturating_sub(since.millis()).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + minutes * MIN)
    }

    /// Acknowledge within 30 minutes, resolve within 2 hours.
    fn clock() -> SlaClock {
        SlaClock::start(
            &SlaPolicy::parse(30 * 60, 120 * 60, false).expect("valid"),
            at(0),
        )
    }

    #[test]
    fn pausing_then_resuming_shifts_the_resolve_due_time_by_the_pause() {
        let mut clock = clock();
        assert_eq!(clock.resolve_due(at(10)), at(120));
        clock.pause(at(10));
        assert_eq!(
            clock.resolve_due(at(25)),
            at(135),
            "time left is frozen while on hold"
        );
        clock.resume(at(40));
        assert_eq!(clock.resolve_due(at(50)), at(150));
        assert_eq!(
            clock.acknowledge_due(),
            at(30),
            "pauses never move the acknowledge target"
        );
    }

    #[test]
    fn pausing_twice_or_resuming_a_running_clock_changes_nothing() {
        let mut clock = clock();
        clock.resume(at(5));
        clock.pause(at(10));
        clock.pause(at(20));
        clock.resume(at(30));
        clock.resume(at(40));
        assert_eq!(clock.paused_ms(at(60)), 20 * MIN);
    }

    #[test]
    fn a_policy_change_during_a_pause_keeps_the_pause() {
        let mut clock = clock();
        clock.pause(at(10));
        clock.resume(at(20));
        clock.pause(at(60));
        clock.reapply_policy(&SlaPolicy::parse(10 * 60, 240 * 60, true).expect("valid"));
        assert!(clock.is_paused());
        clock.resume(at(90));
        // 240 minutes from creation, plus 10 and 30 minutes on hold.
        assert_eq!(clock.resolve_due(at(100)), at(280));
        assert_eq!(clock.acknowledge_due(), at(10));
        assert!(clock.policy().raise_urgency_on_breach());
    }

    #[test]
    fn an_unacknowledged_incident_breaches_after_its_target() {
        let clock = clock();
        assert!(!clock.is_acknowledge_breached(at(30), None));
        assert!(clock.is_acknowledge_breached(at(31), None));
        assert!(!clock.is_acknowledge_breached(at(500), Some(at(29))));
        assert!(clock.is_acknowledge_breached(at(500), Some(at(45))));
    }

    #[test]
    fn a_late_acknowledgement_stays_breached_after_a_later_pause() {
        let mut clock = clock();
        clock.pause(at(50));
        clock.resume(at(200));
        assert!(clock.is_acknowledge_breached(at(300), Some(at(45))));
    }

    #[test]
    fn resolution_breaches_count_only_time_off_hold() {
        let mut clock = clock();
        clock.pause(at(60));
        assert!(
            !clock.is_resolve_breached(at(1000), None),
            "no breach while on hold"
        );
        clock.resume(at(100));
        assert!(!clock.is_resolve_breached(at(160), None));
        assert!(clock.is_resolve_breached(at(161), None));
        assert!(!clock.is_resolve_breached(at(1000), Some(at(150))));
        assert!(clock.is_resolve_breached(at(1000), Some(at(170))));
    }

    #[test]
    fn a_breach_before_a_pause_is_not_undone_by_it() {
        let mut clock = clock();
        clock.pause(at(130));
        assert!(clock.is_resolve_breached(at(500), None));
        let snapshot = clock.snapshot(at(500), Some(at(5)), None);
        assert!(snapshot.resolve_breached && snapshot.paused && !snapshot.acknowledge_breached);
    }

    #[test]
    fn the_clock_survives_the_store() {
        let mut clock = clock();
        clock.pause(at(10));
        clock.resume(at(15));
        clock.pause(at(30));
        let restored = SlaClock::from(clock.record());
        assert_eq!(restored, clock);
        let corrupt = SlaClockRecord {
            paused_total_ms: -5,
            resolve_within_secs: 1,
            ..clock.record()
        };
        let restored = SlaClock::from(corrupt);
        assert_eq!(restored.paused_ms(at(30)), 0);
        assert_eq!(restored.policy().resolve_within_secs(), 30 * 60);
    }

    #[test]
    fn policies_name_each_invalid_target() {
        let fields =
            |errors: Vec<FieldError>| errors.into_iter().map(|e| e.field).collect::<Vec<_>>();
        assert_eq!(
            fields(SlaPolicy::parse(0, MAX_SLA_SECS + 1, false).expect_err("invalid")),
            ["acknowledge_within_secs", "resolve_within_secs"]
        );
        assert_eq!(
            fields(SlaPolicy::parse(3600, 600, false).expect_err("invalid")),
            ["resolve_within_secs"]
        );
        for urgency in Urgency::ALL {
            let p = SlaPolicy::suggested_for(urgency);
            assert!(
                SlaPolicy::parse(p.acknowledge_within_secs(), p.resolve_within_secs(), false)
                    .is_ok()
            );
        }
    }

    #[test]
    fn urgency_is_raised_one_level_up_to_emergency() {
        assert_eq!(raise_urgency(Urgency::Low), Some(Urgency::Medium));
        assert_eq!(raise_urgency(Urgency::High), Some(Urgency::Emergency));
        assert_eq!(raise_urgency(Urgency::Emergency), None);
    }
}
