//! Which incidents a caller may read. Every incident query takes one of these, so a handler
//! cannot forget to restrict what it returns.

use crate::auth::{Principal, Scope};
use crate::ids::{DepartmentId, UserId};
use crate::users::Role;

/// The incidents visible to a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadScope {
    /// Everything (admins).
    All,
    /// Public incidents, those routed to `departments`, and those `reporter` reported.
    Limited {
        departments: Vec<DepartmentId>,
        reporter: Option<UserId>,
        /// Whether the caller works the departments' incidents (staff, API keys with
        /// `incidents:write`) and so sees who reported and who works them.
        staff: bool,
    },
    /// Public incidents only (anonymous visitors of the public board).
    PublicOnly,
}

impl ReadScope {
    /// The scope of `principal`: admins see all; staff their departments', their own and public
    /// ones; reporters their own and public ones; API keys with `incidents:read` their
    /// departments' and public ones; other keys nothing but public ones.
    pub fn of(principal: &Principal) -> Self {
        match principal {
            Principal::User(u) if u.role == Role::Admin => ReadScope::All,
            Principal::User(u) if u.role == Role::Staff => ReadScope::Limited {
                departments: u.departments.clone(),
                reporter: Some(u.user_id),
                staff: true,
            },
            Principal::User(u) => ReadScope::Limited {
                departments: Vec::new(),
                reporter: Some(u.user_id),
                staff: false,
            },
            Principal::ApiKey(k) if k.scopes.contains(&Scope::IncidentsRead) => {
                ReadScope::Limited {
                    departments: k.departments.clone(),
                    reporter: None,
                    staff: k.scopes.contains(&Scope::IncidentsWrite),
                }
            }
            Principal::ApiKey(_) => ReadScope::PublicOnly,
        }
    }

    /// Whether an incident with these attributes is visible in this scope.
    pub fn admits(
        &self,
        department: Option<DepartmentId>,
        reporter: Option<UserId>,
        public: bool,
    ) -> bool {
        match self {
            ReadScope::All => true,
            ReadScope::PublicOnly => public,
            ReadScope::Limited {
                departments,
                reporter: me,
                ..
            } => {
                public
                    || department.is_some_and(|d| departments.contains(&d))
                    || (me.is_some() && reporter == *me)
            }
        }
    }

    /// Whether the caller is shown who reported and who works an incident with these
    /// attributes it may read (the rule of [`Relation::of`]: anyone but [`Relation::Other`]). A
    /// filter on a person matches only such incidents, or it would tell who is behind the
    /// others.
    ///
    /// [`Relation::of`]: crate::incidents::Relation::of
    /// [`Relation::Other`]: crate::incidents::Relation::Other
    pub fn sees_people(&self, department: Option<DepartmentId>, reporter: Option<UserId>) -> bool {
        match self {
            ReadScope::All => true,
            ReadScope::PublicOnly => false,
            ReadScope::Limited {
                departments,
                reporter: me,
                staff,
            } => {
                (*staff && department.is_some_and(|d| departments.contains(&d)))
                    || (me.is_some() && reporter == *me)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserPrincipal;
    use crate::ids::SessionId;

    fn user(role: Role, departments: &[i64]) -> Principal {
        Principal::User(UserPrincipal {
            user_id: UserId(7),
            session_id: SessionId(1),
            role,
            departments: departments.iter().copied().map(DepartmentId).collect(),
        })
    }

    #[test]
    fn reporters_see_their_own_and_public_incidents_only() {
        let scope = ReadScope::of(&user(Role::Reporter, &[]));
        assert!(scope.admits(Some(DepartmentId(1)), Some(UserId(7)), false));
        assert!(scope.admits(Some(DepartmentId(1)), Some(UserId(8)), true));
        assert!(!scope.admits(Some(DepartmentId(1)), Some(UserId(8)), false));
    }

    #[test]
    fn the_people_of_an_incident_are_seen_by_exactly_those_who_are_not_others_to_it() {
        use crate::auth::{ApiKeyPrincipal, Scope};
        use crate::ids::ApiKeyId;
        use crate::incidents::Relation;
        let key = |scopes: &[Scope]| {
            Principal::ApiKey(ApiKeyPrincipal {
                key_id: ApiKeyId(1),
                created_by: UserId(1),
                scopes: scopes.to_vec(),
                departments: vec![DepartmentId(1)],
            })
        };
        let principals = [
            user(Role::Reporter, &[]),
            user(Role::Staff, &[1]),
            user(Role::Admin, &[]),
            key(&[Scope::IncidentsRead]),
            key(&[Scope::IncidentsRead, Scope::IncidentsWrite]),
        ];
        for principal in &principals {
            let scope = ReadScope::of(principal);
            for department in [None, Some(DepartmentId(1)), Some(DepartmentId(2))] {
                for reporter in [None, Some(UserId(7)), Some(UserId(8))] {
                    assert_eq!(
                        scope.sees_people(department, reporter),
                        Relation::of(principal, department, reporter) != Relation::Other,
                        "{principal:?} {department:?} {reporter:?}"
                    );
                }
            }
        }
        assert!(!ReadScope::PublicOnly.sees_people(Some(DepartmentId(1)), Some(UserId(7))));
    }

    #[test]
    fn staff_see_their_departments_incidents_and_admins_see_all() {
        let scope = ReadScope::of(&user(Role::Staff, &[1]));
        assert!(scope.admits(Some(DepartmentId(1)), Some(UserId(8)), false));
        assert!(!scope.admits(Some(DepartmentId(2)), Some(UserId(8)), false));
        assert!(!scope.admits(None, Some(UserId(8)), false));
        assert!(ReadScope::of(&user(Role::Admin, &[])).admits(None, None, false));
    }
}
