//! The incident lifecycle: which status may follow which, and who may take each step.
//!
//! ```text
//! new → acknowledged → in_progress ⇄ on_hold
//!                          ↓    ↑ reopen
//!                       resolved → closed
//!                          └──── reopen ───┘
//! ```
//!
//! Decisions the product spec left open:
//! - Every incident passes through `acknowledged`: it is the acknowledge milestone of the SLA. A
//!   "start work" button in a client applies `new → acknowledged → in_progress` as two steps.
//! - An incident on hold must be resumed before it is resolved, so the resolve milestone is never
//!   reached with the SLA clock paused.
//! - Reopening (from `resolved` or `closed`) goes to `in_progress`: somebody is already responsible
//!   for the incident, so it needs no second acknowledgement.

use serde::{Deserialize, Serialize};

use crate::incidents::relation::Relation;
use crate::validation::FieldError;

/// Where an incident is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Reported, nobody has looked at it yet.
    New,
    /// Somebody of the department has seen it (the SLA's acknowledge milestone).
    Acknowledged,
    /// Being worked on.
    InProgress,
    /// Waiting on something outside the department; the SLA clock is paused.
    OnHold,
    /// The department considers it fixed (the SLA's resolve milestone); the reporter may confirm.
    Resolved,
    /// Confirmed fixed, or left resolved long enough to be closed.
    Closed,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 6] = [
        Status::New,
        Status::Acknowledged,
        Status::InProgress,
        Status::OnHold,
        Status::Resolved,
        Status::Closed,
    ];

    /// The wire and storage name, e.g. `in_progress`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Acknowledged => "acknowledged",
            Status::InProgress => "in_progress",
            Status::OnHold => "on_hold",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    /// Parses a wire or storage name.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                FieldError::new(
                    field,
                    "must be one of: new, acknowledged, in_progress, on_hold, resolved, closed",
                )
            })
    }

    /// The statuses the lifecycle allows after this one, whoever asks.
    pub fn allowed_next(self) -> &'static [Status] {
        match self {
            Status::New => &[Status::Acknowledged],
            Status::Acknowledged => &[Status::InProgress],
            Status::InProgress => &[Status::OnHold, Status::Resolved],
            Status::OnHold => &[Status::InProgress],
            Status::Resolved => &[Status::Closed, Status::InProgress],
            Status::Closed => &[Status::InProgress],
        }
    }

    /// The statuses `relation` may move an incident in this status to (a subset of [`Self::allowed_next`]).
    pub fn allowed_next_for(self, relation: Relation) -> &'static [Status] {
        match relation {
            Relation::Admin | Relation::DepartmentStaff => self.allowed_next(),
            // The reporter confirms a resolution or disputes it, nothing else.
            Relation::Reporter => match self {
                Status::Resolved => &[Status::Closed, Status::InProgress],
                Status::Closed => &[Status::InProgress],
                _ => &[],
            },
            Relation::Other => &[],
        }
    }

    /// True until the incident is resolved: it still needs work and counts as open for workload.
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Resolved | Status::Closed)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Status {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Status::parse("status", &raw)
    }
}

/// Why a status change was refused. Both variants carry what the caller may do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The lifecycle has no such step (a conflict with the incident's current state, 409).
    #[error(
        "an incident that is {from} cannot become {to}; allowed: {}",
        list(allowed)
    )]
    NotInLifecycle {
        from: Status,
        to: Status,
        allowed: &'static [Status],
    },
    /// The step exists but this caller may not take it (403).
    #[error(
        "you may not change an incident from {from} to {to}; allowed for you: {}",
        list(allowed)
    )]
    Forbidden {
        from: Status,
        to: Status,
        allowed: &'static [Status],
    },
}

impl TransitionError {
    /// The statuses the caller could have moved the incident to.
    pub fn allowed(&self) -> &'static [Status] {
        match self {
            TransitionError::NotInLifecycle { allowed, .. }
            | TransitionError::Forbidden { allowed, .. } => allowed,
        }
    }
}

fn list(statuses: &[Status]) -> String {
    if statuses.is_empty() {
        return "none".to_owned();
    }
    statuses
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that `relation` may move an incident from `from` to `to`.
pub fn check_transition(
    from: Status,
    to: Status,
    relation: Relation,
) -> Result<(), TransitionError> {
    let allowed = from.allowed_next_for(relation);
    if allowed.contains(&to) {
        Ok(())
    } else if from.allowed_next().contains(&to) {
        Err(TransitionError::Forbidden { from, to, allowed })
    } else {
        Err(TransitionError::NotInLifecycle { from, to, allowed })
    }
}

/// True when the step takes a finished incident back to work.
pub fn is_reopen(from: Status, to: Status) -> bool {
    !from.is_open() && to.is_open()
}

/// What a status change does to the incident's SLA clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaEffect {
    /// Call [`crate::incidents::SlaClock::pause`]: the incident went on hold.
    Pause,
    /// Call [`crate::incidents::SlaClock::resume`]: the incident left `on_hold`.
    Resume,
}

/// The SLA consequence of moving from `from` to `to`, if any.
pub fn sla_effect(from: Status, to: Status) -> Option<SlaEffect> {
    match (from == Status::OnHold, to == Status::OnHold) {
        (false, true) => Some(SlaEffect::Pause),
        (true, false) => Some(SlaEffect::Resume),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELATIONS: [Relation; 4] = [
        Relation::Admin,
        Relation::DepartmentStaff,
        Relation::Reporter,
        Relation::Other,
    ];

    #[test]
    fn the_lifecycle_runs_from_new_to_closed_and_can_reopen() {
        let path = [
            Status::New,
            Status::Acknowledged,
            Status::InProgress,
            Status::OnHold,
            Status::InProgress,
        ];
        for pair in path.windows(2) {
            assert_eq!(
                check_transition(pair[0], pair[1], Relation::DepartmentStaff),
                Ok(())
            );
        }
        assert_eq!(
            check_transition(
                Status::InProgress,
                Status::Resolved,
                Relation::DepartmentStaff
            ),
            Ok(())
        );
        assert_eq!(
            check_transition(Status::Resolved, Status::Closed, Relation::DepartmentStaff),
            Ok(())
        );
        assert_eq!(
            check_transition(Status::Closed, Status::InProgress, Relation::Admin),
            Ok(())
        );
        assert!(is_reopen(Status::Closed, Status::InProgress));
        assert!(!is_reopen(Status::OnHold, Status::InProgress));
    }

    #[test]
    fn an_incident_on_hold_must_resume_before_it_is_resolved() {
        let error = check_transition(Status::OnHold, Status::Resolved, Relation::Admin)
            .expect_err("refused");
        assert_eq!(error.allowed(), &[Status::InProgress]);
        assert!(matches!(error, TransitionError::NotInLifecycle { .. }));
        assert_eq!(
            error.to_string(),
            "an incident that is on_hold cannot become resolved; allowed: in_progress"
        );
    }

    #[test]
    fn no_status_may_follow_itself_or_skip_acknowledgement() {
        for status in Status::ALL {
            for relation in RELATIONS {
                assert!(
                    check_transition(status, status, relation).is_err(),
                    "{status} -> {status}"
                );
            }
        }
        assert!(check_transition(Status::New, Status::InProgress, Relation::Admin).is_err());
        assert!(check_transition(Status::New, Status::Resolved, Relation::Admin).is_err());
    }

    #[test]
    fn the_reporter_may_only_confirm_or_reopen() {
        for from in Status::ALL {
            for &to in from.allowed_next() {
                let reporter_may = matches!(
                    (from, to),
                    (Status::Resolved, Status::Closed)
                        | (Status::Resolved, Status::InProgress)
                        | (Status::Closed, Status::InProgress)
                );
                assert_eq!(
                    check_transition(from, to, Relation::Reporter).is_ok(),
                    reporter_may,
                    "{from} -> {to}"
                );
            }
        }
        let error = check_transition(Status::New, Status::Acknowledged, Relation::Reporter)
            .expect_err("refused");
        assert!(matches!(
            error,
            TransitionError::Forbidden { allowed: [], .. }
        ));
        assert_eq!(
            error.to_string(),
            "you may not change an incident from new to acknowledged; allowed for you: none"
        );
    }

    #[test]
    fn outsiders_may_take_no_step_and_staff_and_admins_every_step() {
        for from in Status::ALL {
            assert!(from.allowed_next_for(Relation::Other).is_empty());
            assert_eq!(from.allowed_next_for(Relation::Admin), from.allowed_next());
            assert_eq!(
                from.allowed_next_for(Relation::DepartmentStaff),
                from.allowed_next()
            );
            for &to in from.allowed_next_for(Relation::Reporter) {
                assert!(
                    from.allowed_next().contains(&to),
                    "reporter step {from} -> {to} not in lifecycle"
                );
            }
        }
    }

    #[test]
    fn going_on_hold_pauses_the_sla_and_leaving_it_resumes() {
        assert_eq!(
            sla_effect(Status::InProgress, Status::OnHold),
            Some(SlaEffect::Pause)
        );
        assert_eq!(
            sla_effect(Status::OnHold, Status::InProgress),
            Some(SlaEffect::Resume)
        );
        assert_eq!(sla_effect(Status::New, Status::Acknowledged), None);
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in Status::ALL {
            assert_eq!(Status::parse("status", status.as_str()), Ok(status));
            let json = serde_json::to_string(&status).expect("serializes");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(
            Status::parse("status", "open").expect_err("unknown").field,
            "status"
        );
    }
}
