//! Who is acting on one particular incident, as far as the incident's rules care. The rules
//! themselves are `Relation::may_*` in [`crate::incidents::permissions`] and
//! [`crate::incidents::check_transition`].

use crate::auth::{Principal, Scope};
use crate::ids::{DepartmentId, UserId};
use crate::users::Role;

/// A caller's relation to one incident. The caller computes it (see [`Relation::of`]); the rules
/// ([`crate::incidents::check_transition`], [`Relation::may_edit`], [`Relation::may_comment`],
/// ...) only read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    /// An admin: may do anything to any incident.
    Admin,
    /// A member of the incident's department (or an API key of it with `incidents:write`).
    DepartmentStaff,
    /// The person who reported the incident, not being staff of its department.
    Reporter,
    /// Anyone else: other reporters, staff of other departments.
    Other,
}

impl Relation {
    /// The relation of `principal` to an incident routed to `department` and reported by
    /// `reporter`. The strongest relation wins: a reporter who is staff of the department acts
    /// as staff. An incident with no department yet can be worked by admins only.
    pub fn of(
        principal: &Principal,
        department: Option<DepartmentId>,
        reporter: Option<UserId>,
    ) -> Relation {
        let in_department =
            |departments: &[DepartmentId]| department.is_some_and(|d| departments.contains(&d));
        match principal {
            Principal::User(user) if user.role == Role::Admin => Relation::Admin,
            Principal::User(user)
                if user.role >= Role::Staff && in_department(&user.departments) =>
            {
                Relation::DepartmentStaff
            }
            Principal::User(user) if reporter == Some(user.user_id) => Relation::Reporter,
            Principal::User(_) => Relation::Other,
            Principal::ApiKey(key)
                if key.scopes.contains(&Scope::IncidentsWrite)
                    && in_department(&key.departments) =>
            {
                Relation::DepartmentStaff
            }
            Principal::ApiKey(_) => Relation::Other,
        }
    }

    /// True when the caller works the incident: admins and the department's staff.
    pub fn is_staff(self) -> bool {
        matches!(self, Relation::Admin | Relation::DepartmentStaff)
    }

    /// True when the caller may read and write internal comments.
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
            Relation::of(&user(9, Role::Admin, &[]), dept, reporter),
            Relation::Admin
        );
        assert_eq!(
            Relation::of(&user(1, Role::Staff, &[7]), dept, reporter),
            Relation::DepartmentStaff
        );
        assert_eq!(
            Relation::of(&user(1, Role::Staff, &[8]), dept, reporter),
            Relation::Reporter
        );
        assert_eq!(
            Relation::of(&user(1, Role::Reporter, &[]), dept, reporter),
            Relation::Reporter
        );
        assert_eq!(
            Relation::of(&user(2, Role::Reporter, &[7]), dept, reporter),
            Relation::Other
        );
        assert_eq!(
            Relation::of(&user(3, Role::Staff, &[8]), dept, reporter),
            Relation::Other
        );
    }

    #[test]
    fn an_unrouted_incident_is_worked_by_admins_only() {
        assert_eq!(
            Relation::of(&user(3, Role::Staff, &[7]), None, None),
            Relation::Other
        );
        assert_eq!(
            Relation::of(&user(9, Role::Admin, &[]), None, None),
            Relation::Admin
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
            Relation::of(&key(vec![Scope::IncidentsWrite]), dept, None),
            Relation::DepartmentStaff
        );
        assert_eq!(
            Relation::of(&key(vec![Scope::IncidentsRead]), dept, None),
            Relation::Other
        );
        assert_eq!(
            Relation::of(
                &key(vec![Scope::IncidentsWrite]),
                Some(DepartmentId(8)),
                None
            ),
            Relation::Other
        );
        assert!(
            Relation::DepartmentStaff.may_see_internal() && !Relation::Reporter.may_see_internal()
        );
    }
}
