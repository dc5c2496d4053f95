//! Automatic assignment: which staff member of a department gets a new incident.

use serde::{Deserialize, Serialize};

use crate::ids::UserId;
use crate::validation::FieldError;

/// How a department hands out its new incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentStrategy {
    /// Nobody is assigned automatically; staff pick incidents up.
    #[default]
    Manual,
    /// Each available staff member in turn, by ascending user id.
    RoundRobin,
    /// The available staff member with the fewest open incidents.
    LeastOpen,
}

impl AssignmentStrategy {
    /// Every strategy.
    pub const ALL: [AssignmentStrategy; 3] = [
        AssignmentStrategy::Manual,
        AssignmentStrategy::RoundRobin,
        AssignmentStrategy::LeastOpen,
    ];

    /// The wire and storage name, e.g. `round_robin`.
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentStrategy::Manual => "manual",
            AssignmentStrategy::RoundRobin => "round_robin",
            AssignmentStrategy::LeastOpen => "least_open",
        }
    }

    /// Parses a wire or storage name.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                FieldError::new(field, "must be one of: manual, round_robin, least_open")
            })
    }
}

impl TryFrom<String> for AssignmentStrategy {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        AssignmentStrategy::parse("assignment_strategy", &raw)
    }
}

/// A staff member of the department, as assignment sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub user_id: UserId,
    /// On leave or otherwise marked unavailable: never picked.
    pub away: bool,
    /// Incidents assigned to them that are not yet resolved.
    pub open_incidents: u32,
}

/// The staff member a new incident goes to, or `None` when the strategy is manual or nobody
/// is available. `last_assigned` is who the department's previous automatic assignment went
/// to; round robin continues after them (and starts from the lowest id when there is none, or
/// wraps around past the highest).
pub fn pick_assignee(
    strategy: AssignmentStrategy,
    candidates: &[Candidate],
    last_assigned: Option<UserId>,
) -> Option<UserId> {
    let available = candidates.iter().filter(|c| !c.away);
    match strategy {
        AssignmentStrategy::Manual => None,
        AssignmentStrategy::RoundRobin => {
            let first = available.clone().map(|c| c.user_id).min()?;
            let next = last_assigned
                .and_then(|last| available.map(|c| c.user_id).filter(|&id| id > last).min());
            Some(next.unwrap_or(first))
        }
        AssignmentStrategy::LeastOpen => available
            .min_by_key(|c| (c.open_incidents, c.user_id))
            .map(|c| c.user_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(id: i64, away: bool, open_incidents: u32) -> Candidate {
        Candidate {
            user_id: UserId(id),
            away,
            open_incidents,
        }
    }

    #[test]
    fn round_robin_takes_the_next_id_after_the_last_and_wraps() {
        let team = [
            staff(30, false, 0),
            staff(10, false, 0),
            staff(20, false, 0),
        ];
        let pick = |last: Option<i64>| {
            pick_assignee(AssignmentStrategy::RoundRobin, &team, last.map(UserId))
        };
        assert_eq!(pick(None), Some(UserId(10)));
        assert_eq!(pick(Some(10)), Some(UserId(20)));
        assert_eq!(pick(Some(20)), Some(UserId(30)));
        assert_eq!(pick(Some(30)), Some(UserId(10)));
        // The last assignee may have left the department since.
        assert_eq!(pick(Some(15)), Some(UserId(20)));
        assert_eq!(pick(Some(99)), Some(UserId(10)));
    }

    #[test]
    fn round_robin_visits_every_available_member_once_per_round() {
        let team = [
            staff(4, false, 0),
            staff(1, false, 0),
            staff(3, true, 0),
            staff(2, false, 0),
        ];
        let mut last = None;
        let mut order = Vec::new();
        for _ in 0..6 {
            last = pick_assignee(AssignmentStrategy::RoundRobin, &team, last);
            order.extend(last.map(|id| id.0));
        }
        assert_eq!(order, [1, 2, 4, 1, 2, 4]);
    }

    #[test]
    fn least_open_picks_the_lightest_load_and_breaks_ties_by_lowest_id() {
        let team = [
            staff(3, false, 2),
            staff(2, false, 1),
            staff(1, true, 0),
            staff(5, false, 1),
        ];
        assert_eq!(
            pick_assignee(AssignmentStrategy::LeastOpen, &team, None),
            Some(UserId(2))
        );
    }

    #[test]
    fn nobody_is_picked_manually_or_when_everyone_is_away() {
        let team = [staff(1, false, 0)];
        assert_eq!(pick_assignee(AssignmentStrategy::Manual, &team, None), None);
        let away = [staff(1, true, 0), staff(2, true, 0)];
        for strategy in AssignmentStrategy::ALL {
            assert_eq!(pick_assignee(strategy, &away, Some(UserId(1))), None);
            assert_eq!(pick_assignee(strategy, &[], None), None);
        }
    }

    #[test]
    fn strategies_round_trip_through_their_names() {
        for strategy in AssignmentStrategy::ALL {
            assert_eq!(
                AssignmentStrategy::parse("strategy", strategy.as_str()),
                Ok(strategy)
            );
        }
        assert!(AssignmentStrategy::parse("strategy", "random").is_err());
    }
}
