//! Video competitions: an admin opens one with a submission window and a voting window;
//! each signed-in person submits one video entry while submissions are open; the public board
//! lists the entries whose video is ready; each signed-in person has one vote per competition
//! (withdrawable) while voting is open; rankings are by votes, ties broken by the earliest
//! vote; when voting closes the ranking is frozen and published as a report.
//!
//! This module holds the rules: parsing a new competition ([`NewCompetition::parse`]), what
//! may happen when ([`Windows::may_submit`], [`Windows::may_vote`]) and the ranking
//! ([`rank`]). No I/O.

use crate::auth::Principal;
use crate::clock::Timestamp;
use crate::ids::UserId;
use crate::validation::{FieldError, Validation};

/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 4000;

/// When entries may be submitted and when votes may be cast (each `[opens, closes)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub submissions_open_at: Timestamp,
    pub submissions_close_at: Timestamp,
    pub voting_open_at: Timestamp,
    pub voting_close_at: Timestamp,
}

/// Why something cannot be done now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("submissions open at {0}")]
    SubmissionsNotOpen(Timestamp),
    #[error("submissions closed at {0}")]
    SubmissionsClosed(Timestamp),
    #[error("voting opens at {0}")]
    VotingNotOpen(Timestamp),
    #[error("voting closed at {0}; the results are frozen")]
    VotingClosed(Timestamp),
}

impl WindowError {
    /// True when the window has passed for good (a state conflict, 409), false when it has not
    /// opened yet (422: the request cannot be taken now).
    pub fn is_over(self) -> bool {
        matches!(
            self,
            WindowError::SubmissionsClosed(_) | WindowError::VotingClosed(_)
        )
    }
}

/// Where a competition stands at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing open yet.
    Upcoming,
    /// Submissions open, voting not (yet).
    Submissions,
    /// Voting open (submissions may still be open too).
    Voting,
    /// Voting closed: the results are final.
    Closed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Upcoming => "upcoming",
            Phase::Submissions => "submissions",
            Phase::Voting => "voting",
            Phase::Closed => "closed",
        }
    }
}

impl Windows {
    /// Checks the order of the four times: each window opens before it closes, voting does not
    /// open before submissions do nor close before they close, and voting closes after `now`.
    pub fn parse(
        submissions_open_at: Timestamp,
        submissions_close_at: Timestamp,
        voting_open_at: Timestamp,
        voting_close_at: Timestamp,
        now: Timestamp,
    ) -> Result<Self, Vec<FieldError>> {
        let mut v = Validation::new();
        if submissions_close_at <= submissions_open_at {
            v.push(FieldError::new(
                "submissions_close_at",
                "must be after submissions_open_at",
            ));
        }
        if voting_close_at <= voting_open_at {
            v.push(FieldError::new(
                "voting_close_at",
                "must be after voting_open_at",
            ));
        }
        if voting_open_at < submissions_open_at {
            v.push(FieldError::new(
                "voting_open_at",
                "must not be before submissions_open_at",
            ));
        }
        if voting_close_at < submissions_close_at {
            v.push(FieldError::new(
                "voting_close_at",
                "must not be before submissions_close_at",
            ));
        }
        if voting_close_at <= now {
            v.push(FieldError::new("voting_close_at", "must be in the future"));
        }
        v.finish()?;
        Ok(Self {
            submissions_open_at,
            submissions_close_at,
            voting_open_at,
            voting_close_at,
        })
    }

    /// An entry may be submitted at `now`.
    pub fn may_submit(&self, now: Timestamp) -> Result<(), WindowError> {
        if now < self.submissions_open_at {
            Err(WindowError::SubmissionsNotOpen(self.submissions_open_at))
        } else if now >= self.submissions_close_at {
            Err(WindowError::SubmissionsClosed(self.submissions_close_at))
        } else {
            Ok(())
        }
    }

    /// A vote may be cast or withdrawn at `now`.
    pub fn may_vote(&self, now: Timestamp) -> Result<(), WindowError> {
        if now < self.voting_open_at {
            Err(WindowError::VotingNotOpen(self.voting_open_at))
        } else if now >= self.voting_close_at {
            Err(WindowError::VotingClosed(self.voting_close_at))
        } else {
            Ok(())
        }
    }

    /// Voting has closed: the results may be frozen.
    pub fn is_over(&self, now: Timestamp) -> bool {
        now >= self.voting_close_at
    }

    pub fn phase(&self, now: Timestamp) -> Phase {
        if self.is_over(now) {
            Phase::Closed
        } else if self.may_vote(now).is_ok() {
            Phase::Voting
        } else if self.may_submit(now).is_ok() {
            Phase::Submissions
        } else {
            Phase::Upcoming
        }
    }
}

/// A competition to open, parsed from input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCompetition {
    title: String,
    description: String,
    pub windows: Windows,
}

impl NewCompetition {
    /// Title 1–200 characters (trimmed), description up to 4000, and the windows' rules.
    /// Every invalid field is reported.
    pub fn parse(
        title: &str,
        description: Option<&str>,
        windows: Result<Windows, Vec<FieldError>>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut v = Validation::new();
        let title = v.check(entry_title_like("title", title));
        let description = description.unwrap_or("").trim().to_owned();
        if description.chars().count() > MAX_DESCRIPTION {
            v.push(FieldError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        let windows = match windows {
            Ok(w) => Some(w),
            Err(errors) => {
                errors.into_iter().for_each(|e| v.push(e));
                None
            }
        };
        v.finish()?;
        match (title, windows) {
            (Some(title), Some(windows)) => Ok(Self {
                title,
                description,
                windows,
            }),
            _ => Err(vec![FieldError::new("title", "invalid competition")]),
        }
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    pub fn description(&self) -> &str {
        &self.description
    }
}

/// The title of an entry: 1–200 characters once trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryTitle(String);

impl EntryTitle {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        entry_title_like("title", raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn entry_title_like(field: &str, raw: &str) -> Result<String, FieldError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_TITLE {
        Err(FieldError::new(
            field,
            format!("must be 1 to {MAX_TITLE} characters"),
        ))
    } else {
        Ok(trimmed.to_owned())
    }
}

/// One entry's votes, as counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub entry_id: i64,
    pub votes: i64,
    /// The earliest of its current votes (`None` without votes).
    pub first_vote_at: Option<Timestamp>,
    pub submitted_at: Timestamp,
}

/// One entry's place in the ranking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    /// 1 for the winner; every entry has its own place (ties are broken).
    pub place: usize,
    pub tally: Tally,
}

/// The ranking: most votes first; equal votes → the entry whose earliest vote came first;
/// entries without votes after all others, earliest submission first; the id last, so the
/// order never depends on how rows were read.
pub fn rank(mut tallies: Vec<Tally>) -> Vec<Ranked> {
    tallies.sort_by(|a, b| {
        b.votes
            .cmp(&a.votes)
            .then_with(|| match (a.first_vote_at, b.first_vote_at) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .then_with(|| a.submitted_at.cmp(&b.submitted_at))
            .then_with(|| a.entry_id.cmp(&b.entry_id))
    });
    tallies
        .into_iter()
        .enumerate()
        .map(|(i, tally)| Ranked {
            place: i + 1,
            tally,
        })
        .collect()
}

/// Who may see an entry (its row, its video, its processing live): anyone once its video is
/// ready; before that (queued, processing, failed) its author and admins.
pub fn may_see_entry(caller: Option<&Principal>, author: UserId, ready: bool) -> bool {
    ready || caller.is_some_and(|p| p.is_admin() || p.user_id() == Some(author))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_millis(1_000_000 + s * 1000)
    }

    fn windows() -> Windows {
        Windows::parse(at(0), at(10), at(5), at(20), at(0)).expect("valid")
    }

    #[test]
    fn windows_must_be_in_order_and_voting_must_close_in_the_future() {
        let errors = Windows::parse(at(10), at(0), at(-5), at(-1), at(0)).expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"submissions_close_at"), "{fields:?}");
        assert!(fields.contains(&"voting_open_at"), "{fields:?}");
        assert!(
            errors.iter().any(|e| e.message == "must be in the future"),
            "{errors:?}"
        );
    }

    #[test]
    fn submissions_and_votes_are_taken_only_inside_their_windows() {
        let w = windows();
        assert_eq!(
            w.may_submit(at(-1)),
            Err(WindowError::SubmissionsNotOpen(at(0)))
        );
        assert!(w.may_submit(at(9)).is_ok());
        assert!(w.may_submit(at(10)).expect_err("closed").is_over());
        assert!(!w.may_vote(at(4)).expect_err("not yet").is_over());
        assert!(w.may_vote(at(5)).is_ok());
        assert_eq!(w.may_vote(at(20)), Err(WindowError::VotingClosed(at(20))));
        assert_eq!(w.phase(at(-1)), Phase::Upcoming);
        assert_eq!(w.phase(at(2)), Phase::Submissions);
        assert_eq!(w.phase(at(7)), Phase::Voting);
        assert_eq!(w.phase(at(20)), Phase::Closed);
    }

    #[test]
    fn a_competition_reports_every_invalid_field_at_once() {
        let bad = Windows::parse(at(0), at(10), at(5), at(1), at(0));
        let errors = NewCompetition::parse("  ", Some(&"x".repeat(4001)), bad).expect_err("bad");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["title", "description", "voting_close_at", "voting_close_at"]
        );
        let ok = NewCompetition::parse(" Mejor video ", None, Ok(windows())).expect("ok");
        assert_eq!(ok.title(), "Mejor video");
        assert_eq!(ok.description(), "");
    }

    fn tally(entry_id: i64, votes: i64, first: Option<i64>, submitted: i64) -> Tally {
        Tally {
            entry_id,
            votes,
            first_vote_at: first.map(at),
            submitted_at: at(submitted),
        }
    }

    #[test]
    fn more_votes_rank_first_and_equal_votes_go_to_the_earliest_vote() {
        let ranked = rank(vec![
            tally(1, 2, Some(9), 0),
            tally(2, 3, Some(8), 1),
            tally(3, 2, Some(4), 2),
            tally(4, 0, None, 0),
            tally(5, 0, None, 3),
        ]);
        let order: Vec<(usize, i64)> = ranked.iter().map(|r| (r.place, r.tally.entry_id)).collect();
        assert_eq!(order, [(1, 2), (2, 3), (3, 1), (4, 4), (5, 5)]);
    }

    #[test]
    fn an_entry_is_seen_by_anyone_once_ready_and_before_by_its_author_and_admins() {
        use crate::auth::UserPrincipal;
        use crate::ids::SessionId;
        use crate::users::Role;
        let user = |id, role| {
            Principal::User(UserPrincipal {
                user_id: UserId(id),
                session_id: SessionId(1),
                role,
                departments: vec![],
            })
        };
        let (author, other, admin) = (
            user(1, Role::Reporter),
            user(2, Role::Reporter),
            user(3, Role::Admin),
        );
        assert!(may_see_entry(Some(&author), UserId(1), false));
        assert!(may_see_entry(Some(&admin), UserId(1), false));
        assert!(!may_see_entry(Some(&other), UserId(1), false));
        assert!(!may_see_entry(None, UserId(1), false));
        assert!(may_see_entry(Some(&other), UserId(1), true));
        assert!(may_see_entry(None, UserId(1), true));
    }
}
