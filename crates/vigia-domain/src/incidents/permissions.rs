//! Who may do what to one incident: the questions every entry point (the REST API, the web
//! UI, the assistant, the CLI) asks before it changes an incident, answered from the caller's
//! [`Relation`] to that incident and the incident's own state.
//!
//! Each rule answers `Ok(())` or a [`Denied`] that says why, in words a user can act on. How a
//! refusal reaches the caller (a 403 problem, a message next to a form field) is the entry
//! point's business; which refusal it is, is decided here, once. Status changes have their own
//! rule, [`Relation::may_transition`] ([`check_transition`]), because a refusal there lists the
//! steps the caller could take instead.

use crate::auth::Principal;
use crate::incidents::input::{IncidentVisibility, Visibility};
use crate::incidents::relation::Relation;
use crate::incidents::status::{Status, TransitionError, check_transition};
use crate::users::Role;

/// Why a caller may not do something to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The caller has no right to do this to this incident (the API answers 403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// A value the caller chose is reserved to others (the API answers 422 naming `field`).
    #[error("{field}: {message}")]
    Field {
        field: &'static str,
        message: &'static str,
    },
    /// The incident's state does not admit it, whoever asks (the API answers 409).
    #[error("{0}")]
    Conflict(&'static str),
}

/// The refusal of everything reserved to the people who work the incident.
pub const STAFF_ONLY: Denied =
    Denied::Forbidden("only the incident's department staff and admins may do this");

/// What an edit changes, as far as who may make it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditReach {
    /// Title, description and location: what the reporter wrote.
    Content,
    /// Category or urgency (and possibly content too): re-applies the SLA policy.
    Classification,
}

impl Relation {
    /// May the caller move the incident from `from` to `to`? The same rule as
    /// [`check_transition`], asked of the relation.
    pub fn may_transition(self, from: Status, to: Status) -> Result<(), TransitionError> {
        check_transition(from, to, self)
    }

    /// May the caller edit an incident in `status`? Staff and admins may change everything;
    /// the reporter may fix what they wrote while nobody has acknowledged it yet.
    pub fn may_edit(self, status: Status, reach: EditReach) -> Result<(), Denied> {
        let reporter_fixing =
            self == Relation::Reporter && status == Status::New && reach == EditReach::Content;
        if self.is_staff() || reporter_fixing {
            Ok(())
        } else {
            Err(Denied::Forbidden(
                "only department staff may edit this; reporters may fix title, description and location while it is new",
            ))
        }
    }

    /// May the caller add a comment of `visibility`? The reporter and the people who work the
    /// incident comment; internal comments are for the latter only.
    pub fn may_comment(self, visibility: Visibility) -> Result<(), Denied> {
        if self == Relation::Other {
            return Err(Denied::Forbidden(
                "only the reporter and the department's staff may comment",
            ));
        }
        if visibility == Visibility::Internal && !self.may_see_internal() {
            return Err(Denied::Field {
                field: "visibility",
                message: "only staff may write internal comments",
            });
        }
        Ok(())
    }

    /// May the caller attach a file? The reporter and the people who work the incident.
    pub fn may_attach(self) -> Result<(), Denied> {
        if self == Relation::Other {
            Err(Denied::Forbidden(
                "only the reporter and the department's staff may attach files",
            ))
        } else {
            Ok(())
        }
    }

    /// May the caller remove an attachment? Whoever attached it (`own`), and the people who
    /// work the incident.
    pub fn may_remove_attachment(self, own: bool) -> Result<(), Denied> {
        if self.is_staff() || own {
            Ok(())
        } else {
            Err(Denied::Forbidden(
                "only whoever attached the file, the department's staff and admins may remove it",
            ))
        }
    }

    /// May the caller give the incident to a staff member (or take it back)?
    pub fn may_assign(self) -> Result<(), Denied> {
        if self.is_staff() {
            Ok(())
        } else {
            Err(STAFF_ONLY)
        }
    }

    /// May the caller put the incident on the public board or take it off?
    pub fn may_change_visibility(self) -> Result<(), Denied> {
        if self.is_staff() {
            Ok(())
        } else {
            Err(STAFF_ONLY)
        }
    }

    /// May the caller route the incident to another department? Admins only: a department's
    /// staff cannot hand their work to another department.
    pub fn may_route(self) -> Result<(), Denied> {
        if self == Relation::Admin {
            Ok(())
        } else {
            Err(Denied::Forbidden(
                "only administrators may route an incident to another department",
            ))
        }
    }

    /// May the caller say "me too" on an incident of `visibility`? Anyone who sees a public
    /// incident; a private one takes no votes, whoever asks.
    pub fn may_vote(self, visibility: IncidentVisibility) -> Result<(), Denied> {
        match visibility {
            IncidentVisibility::Public => Ok(()),
            IncidentVisibility::Private => {
                Err(Denied::Conflict("only public incidents take votes"))
            }
        }
    }

    /// True when the caller may see the people on the incident: who reported it, who works
    /// it, who wrote each event, who attached each file. Only callers with no relation to
    /// the incident (the public board, other reporters) see it without them.
    pub fn sees_people(self) -> bool {
        self != Relation::Other
    }
}

/// May `principal` choose the department of an incident they report? Staff and admins only:
/// everyone else's report goes where its category says.
pub fn may_choose_department(principal: &Principal) -> Result<(), Denied> {
    if principal.has_role(Role::Staff) {
        Ok(())
    } else {
        Err(Denied::Field {
            field: "department_id",
            message: "only staff and admins may choose the department",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ApiKeyPrincipal, Scope, UserPrincipal};
    use crate::ids::{ApiKeyId, DepartmentId, SessionId, UserId};

    const ALL: [Relation; 4] = [
        Relation::Admin,
        Relation::DepartmentStaff,
        Relation::Reporter,
        Relation::Other,
    ];

    fn forbidden(result: Result<(), Denied>) -> bool {
        matches!(result, Err(Denied::Forbidden(_)))
    }

    #[test]
    fn staff_and_admins_may_edit_everything_in_any_status() {
        for relation in [Relation::Admin, Relation::DepartmentStaff] {
            for status in Status::ALL {
                for reach in [EditReach::Content, EditReach::Classification] {
                    assert_eq!(relation.may_edit(status, reach), Ok(()), "{status}");
                }
            }
        }
    }

    #[test]
    fn the_reporter_may_fix_what_they_wrote_only_while_the_incident_is_new() {
        assert_eq!(
            Relation::Reporter.may_edit(Status::New, EditReach::Content),
            Ok(())
        );
        assert!(forbidden(
            Relation::Reporter.may_edit(Status::New, EditReach::Classification)
        ));
        for status in Status::ALL.into_iter().filter(|s| *s != Status::New) {
            assert!(
                forbidden(Relation::Reporter.may_edit(status, EditReach::Content)),
                "{status}"
            );
        }
    }

    #[test]
    fn others_may_not_edit_at_all() {
        for status in Status::ALL {
            assert!(forbidden(
                Relation::Other.may_edit(status, EditReach::Content)
            ));
        }
    }

    #[test]
    fn the_reporter_and_staff_may_comment_publicly_but_others_may_not() {
        for relation in [
            Relation::Admin,
            Relation::DepartmentStaff,
            Relation::Reporter,
        ] {
            assert_eq!(relation.may_comment(Visibility::Public), Ok(()));
        }
        assert!(forbidden(Relation::Other.may_comment(Visibility::Public)));
        assert!(forbidden(Relation::Other.may_comment(Visibility::Internal)));
    }

    #[test]
    fn an_internal_comment_from_the_reporter_is_refused_on_its_visibility_field() {
        assert_eq!(
            Relation::Reporter.may_comment(Visibility::Internal),
            Err(Denied::Field {
                field: "visibility",
                message: "only staff may write internal comments",
            })
        );
        assert_eq!(Relation::Admin.may_comment(Visibility::Internal), Ok(()));
        assert_eq!(
            Relation::DepartmentStaff.may_comment(Visibility::Internal),
            Ok(())
        );
    }

    #[test]
    fn only_those_who_may_read_internal_comments_may_write_them() {
        for relation in ALL {
            if relation == Relation::Other {
                continue;
            }
            assert_eq!(
                relation.may_comment(Visibility::Internal).is_ok(),
                relation.may_see_internal(),
                "{relation:?}"
            );
        }
    }

    #[test]
    fn assigning_and_changing_visibility_are_for_staff_and_admins() {
        for relation in ALL {
            let expected = if relation.is_staff() {
                Ok(())
            } else {
                Err(STAFF_ONLY)
            };
            assert_eq!(relation.may_assign(), expected, "{relation:?}");
            assert_eq!(relation.may_change_visibility(), expected, "{relation:?}");
        }
    }

    #[test]
    fn only_admins_may_route_an_incident_to_another_department() {
        assert_eq!(Relation::Admin.may_route(), Ok(()));
        for relation in [
            Relation::DepartmentStaff,
            Relation::Reporter,
            Relation::Other,
        ] {
            assert!(forbidden(relation.may_route()), "{relation:?}");
        }
    }

    #[test]
    fn a_public_incident_takes_votes_from_anyone_who_sees_it_and_a_private_one_from_nobody() {
        for relation in ALL {
            assert_eq!(relation.may_vote(IncidentVisibility::Public), Ok(()));
            assert_eq!(
                relation.may_vote(IncidentVisibility::Private),
                Err(Denied::Conflict("only public incidents take votes"))
            );
        }
    }

    #[test]
    fn files_are_attached_by_the_reporter_and_staff_and_removed_by_their_uploader_or_staff() {
        for relation in ALL {
            assert_eq!(
                relation.may_attach().is_ok(),
                relation != Relation::Other,
                "{relation:?}"
            );
            assert_eq!(relation.may_remove_attachment(true), Ok(()), "{relation:?}");
            assert_eq!(
                relation.may_remove_attachment(false).is_ok(),
                relation.is_staff(),
                "{relation:?}"
            );
        }
    }

    #[test]
    fn only_callers_with_no_relation_to_the_incident_see_it_without_its_people() {
        for relation in ALL {
            assert_eq!(relation.sees_people(), relation != Relation::Other);
        }
    }

    #[test]
    fn may_transition_is_the_lifecycle_rule_asked_of_the_relation() {
        for relation in ALL {
            for from in Status::ALL {
                for to in Status::ALL {
                    assert_eq!(
                        relation.may_transition(from, to),
                        check_transition(from, to, relation)
                    );
                }
            }
        }
    }

    #[test]
    fn only_staff_and_admins_may_choose_the_department_of_a_new_report() {
        let user = |role| {
            Principal::User(UserPrincipal {
                user_id: UserId(1),
                session_id: SessionId(1),
                role,
                departments: vec![DepartmentId(1)],
            })
        };
        assert_eq!(may_choose_department(&user(Role::Staff)), Ok(()));
        assert_eq!(may_choose_department(&user(Role::Admin)), Ok(()));
        let refused = may_choose_department(&user(Role::Reporter)).expect_err("refused");
        assert!(matches!(
            refused,
            Denied::Field {
                field: "department_id",
                ..
            }
        ));
        let key = Principal::ApiKey(ApiKeyPrincipal {
            key_id: ApiKeyId(1),
            created_by: UserId(1),
            scopes: vec![Scope::IncidentsWrite],
            departments: vec![DepartmentId(1)],
        });
        assert!(may_choose_department(&key).is_err());
    }
}
