//! Who may receive one event of the log: the rules of the REST API ([`ReadScope`] for the
//! incident, [`Relation::may_see_internal`] for internal events, people hidden from callers with
//! no relation to the incident), applied to the facts the real-time hub carries with each event.

use crate::auth::{Principal, UserPrincipal};
use crate::ids::{DepartmentId, SessionId, UserId};
use crate::incidents::relation::Relation;
use crate::incidents::scope::ReadScope;
use crate::users::Role;

/// What visibility depends on: the incident's routing, reporter and public flag, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentFacts {
    pub department: Option<DepartmentId>,
    pub reporter: Option<UserId>,
    pub public: bool,
}

/// How an event may be shown to one caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Not at all: the incident is out of scope, or the event is internal and the caller is
    /// not staff of it.
    Hidden,
    /// Without who did it (the caller has no relation to the incident, as in
    /// `GET /incidents/{id}/events`).
    WithoutPeople,
    /// In full.
    Full,
}

/// The audience of an event about an incident with `facts` for `principal`, whose read scope
/// is `scope` (computed once per connection with [`ReadScope::of`]).
pub fn audience(
    principal: &Principal,
    scope: &ReadScope,
    facts: IncidentFacts,
    internal: bool,
) -> Audience {
    if !scope.admits(facts.department, facts.reporter, facts.public) {
        return Audience::Hidden;
    }
    let relation = Relation::of(principal, facts.department, facts.reporter);
    if internal && !relation.may_see_internal() {
        Audience::Hidden
    } else if !relation.sees_people() {
        Audience::WithoutPeople
    } else {
        Audience::Full
    }
}

/// Whether an account — reached at its address, not over a connection — may receive an
/// internal event of `department` (an exam event): the rule [`audience`] applies to the same
/// account on the real-time stream (admins, and staff of the department).
pub fn account_receives_internal(
    user_id: UserId,
    role: Role,
    departments: Vec<DepartmentId>,
    department: Option<DepartmentId>,
) -> bool {
    let principal = Principal::User(UserPrincipal {
        user_id,
        // No session: none of these rules reads it.
        session_id: SessionId(0),
        role,
        departments,
    });
    let facts = IncidentFacts {
        department,
        reporter: None,
        public: false,
    };
    audience(&principal, &ReadScope::of(&principal), facts, true) != Audience::Hidden
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ApiKeyPrincipal, Scope, UserPrincipal};
    use crate::ids::{ApiKeyId, SessionId};
    use crate::users::Role;

    fn user(id: i64, role: Role, departments: &[i64]) -> Principal {
        Principal::User(UserPrincipal {
            user_id: UserId(id),
            session_id: SessionId(1),
            role,
            departments: departments.iter().copied().map(DepartmentId).collect(),
        })
    }

    fn of(principal: &Principal, facts: IncidentFacts, internal: bool) -> Audience {
        audience(principal, &ReadScope::of(principal), facts, internal)
    }

    const PRIVATE_OF_1: IncidentFacts = IncidentFacts {
        department: Some(DepartmentId(7)),
        reporter: Some(UserId(1)),
        public: false,
    };

    #[test]
    fn a_reporter_receives_their_own_private_incident_but_not_anothers() {
        assert_eq!(
            of(&user(1, Role::Reporter, &[]), PRIVATE_OF_1, false),
            Audience::Full
        );
        assert_eq!(
            of(&user(2, Role::Reporter, &[]), PRIVATE_OF_1, false),
            Audience::Hidden
        );
    }

    #[test]
    fn internal_events_reach_department_staff_and_admins_only() {
        assert_eq!(
            of(&user(1, Role::Reporter, &[]), PRIVATE_OF_1, true),
            Audience::Hidden
        );
        assert_eq!(
            of(&user(3, Role::Staff, &[7]), PRIVATE_OF_1, true),
            Audience::Full
        );
        assert_eq!(
            of(&user(3, Role::Staff, &[8]), PRIVATE_OF_1, true),
            Audience::Hidden
        );
        assert_eq!(
            of(&user(9, Role::Admin, &[]), PRIVATE_OF_1, true),
            Audience::Full
        );
    }

    #[test]
    fn strangers_see_public_incidents_without_people() {
        let public = IncidentFacts {
            public: true,
            ..PRIVATE_OF_1
        };
        assert_eq!(
            of(&user(2, Role::Reporter, &[]), public, false),
            Audience::WithoutPeople
        );
        assert_eq!(
            of(&user(2, Role::Reporter, &[]), public, true),
            Audience::Hidden
        );
    }

    #[test]
    fn an_api_key_reads_its_departments_with_the_read_scope() {
        let key = |scopes: Vec<Scope>| {
            Principal::ApiKey(ApiKeyPrincipal {
                key_id: ApiKeyId(1),
                created_by: UserId(9),
                scopes,
                departments: vec![DepartmentId(7)],
            })
        };
        assert_eq!(
            of(&key(vec![Scope::IncidentsRead]), PRIVATE_OF_1, false),
            Audience::WithoutPeople
        );
        assert_eq!(
            of(&key(vec![Scope::CatalogRead]), PRIVATE_OF_1, false),
            Audience::Hidden
        );
        assert_eq!(
            of(
                &key(vec![Scope::IncidentsRead, Scope::IncidentsWrite]),
                PRIVATE_OF_1,
                true
            ),
            Audience::Full
        );
    }

    #[test]
    fn an_account_receives_an_exam_event_only_as_admin_or_staff_of_its_department() {
        let of = |role, departments: &[i64]| {
            account_receives_internal(
                UserId(3),
                role,
                departments.iter().copied().map(DepartmentId).collect(),
                Some(DepartmentId(7)),
            )
        };
        assert!(of(Role::Admin, &[]));
        assert!(of(Role::Staff, &[7]));
        assert!(!of(Role::Staff, &[8]), "staff of another department");
        assert!(!of(Role::Reporter, &[7]), "a reporter is not staff of it");
        assert!(
            !account_receives_internal(UserId(3), Role::Staff, vec![DepartmentId(7)], None),
            "an exam of no department is for admins only"
        );
    }
}
