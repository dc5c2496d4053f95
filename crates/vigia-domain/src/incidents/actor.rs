//! Who is acting on one particular incident, as far as the incident's rules care.

use crate::auth::{Principal, Scope};
use crate::ids::{DepartmentId, UserId};
use crate::users::Role;

/// A caller's relation to one incident. The caller computes it (see [`Actor::of`]); the rules
/// ([`crate::incidents::check_transition`], [`Actor::may_see_internal`]) only read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// An admin: may do anything to any incident.
    Admin,
    /// A member of the incident's department (or an API key of it with `incidents:write`).
    DepartmentStaff,
    /// The person who reported the incident, not being staff of its department.
    Reporter,
    /// Anyone else: other reporters, staff of other departments.
    Other,
}

impl Actor {
    /// The relation of `principal` to an incident routed to `department` and reported by
    /// `reporter`. The strongest relation wins: a reporter who is staff of the department acts
    /// as staff. An incident with no department yet can be worked by admins only.
    pub fn of(
        principal: &Principal,
        department: Option<DepartmentId>,
        reporter: Option<UserId>,
    ) -> Actor {
        let in_department =
            |departments: &[DepartmentId]| department.is_some_and(|d| departments.contains(&d));
        match principal {
            Principal::User(user) if user.role == Role::Admin => Actor::Admin,
            Principal::User(user)
                if user.role >= Role::Staff && in_department(&user.departments) =>
            {
                Actor::DepartmentStaff
            }
            Principal::User(user) if reporter == Some(user.user_id) => Actor::Reporter,
            Principal::User(_) => Actor::Other,
            Principal::ApiKey(key)
                if key.scopes.contains(&Scope::IncidentsWrite)
                    && in_department(&key.departments) =>
            {
                Actor::DepartmentStaff
            }
            Principal::ApiKey(_) => Actor::Other,
        }
    }

    /// True when the actor works the incident: admins and the department's staff.
    pub fn is_staff(self) -> bool {
        matches!(self, Actor::Admin | Actor::DepartmentStaff)
    }

    /// True when the actor may read and write internal comments.
    pub fn may_see_internal(self) -> bool {
        self.is_staff()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ApiKeyPrincipal, UserPrincipal};
    use crate::ids::{ApiKeyId, SessionId};

    fn user(id: i64, role: Role, departments: &[i64]) -> Principal {
        Principal::User(UserPrincipal {
            user_id: UserId(id),
            session_id: SessionId(1),
            role,
            departments: departments.iter().copied().map(DepartmentId).collect(),
        })
    }

    #[test]
    fn the_strongest_relation_to_the_incident_wins() {
        let dept = Some(DepartmentId(7));
        let reporter = Some(UserId(1));
        assert_eq!(
            Actor::of(&user(9, Role::Admin, &[]), dept, reporter),
            Actor::Admin
        );
        assert_eq!(
            Actor::of(&user(1, Role::Staff, &[7]), dept, reporter),
            Actor::DepartmentStaff
        );
        assert_eq!(
            Actor::of(&user(1, Role::Staff, &[8]), dept, reporter),
            Actor::Reporter
        );
        assert_eq!(
            Actor::of(&user(1, Role::Reporter, &[]), dept, reporter),
            Actor::Reporter
        );
        assert_eq!(
            Actor::of(&user(2, Role::Reporter, &[7]), dept, reporter),
            Actor::Other
        );
        assert_eq!(
            Actor::of(&user(3, Role::Staff, &[8]), dept, reporter),
            Actor::Other
        );
    }

    #[test]
    fn an_unrouted_incident_is_worked_by_admins_only() {
        assert_eq!(
            Actor::of(&user(3, Role::Staff, &[7]), None, None),
            Actor::Other
        );
        assert_eq!(
            Actor::of(&user(9, Role::Admin, &[]), None, None),
            Actor::Admin
        );
    }

    #[test]
    fn an_api_key_acts_as_staff_only_with_write_scope_in_the_department() {
        let key = |scopes: Vec<Scope>| {
            Principal::ApiKey(ApiKeyPrincipal {
                key_id: ApiKeyId(1),
                created_by: UserId(9),
                scopes,
                departments: vec![DepartmentId(7)],
            })
        };
        let dept = Some(DepartmentId(7));
        assert_eq!(
            Actor::of(&key(vec![Scope::IncidentsWrite]), dept, None),
            Actor::DepartmentStaff
        );
        assert_eq!(
            Actor::of(&key(vec![Scope::IncidentsRead]), dept, None),
            Actor::Other
        );
        assert_eq!(
            Actor::of(
                &key(vec![Scope::IncidentsWrite]),
                Some(DepartmentId(8)),
                None
            ),
            Actor::Other
        );
        assert!(Actor::DepartmentStaff.may_see_internal() && !Actor::Reporter.may_see_internal());
    }
}
