//! Alert events on the event log, and who may see them.
//!
//! An alert's changes (raised, acknowledged, resolved) are events of the same log as incident
//! events, so they reach real-time clients, e-mail and webhooks the same way. Who receives one
//! is decided here, on the rule of the alert API: admins see every alert, staff (and API keys)
//! those of their departments' subjects, reporters none.

use crate::auth::Principal;
use crate::ids::DepartmentId;
use crate::users::Role;

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertEventKind {
    Raised,
    Acknowledged,
    Resolved,
}

impl AlertEventKind {
    pub const ALL: [AlertEventKind; 3] = [
        AlertEventKind::Raised,
        AlertEventKind::Acknowledged,
        AlertEventKind::Resolved,
    ];

    /// The `kind` column of the event log.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEventKind::Raised => "raised",
            AlertEventKind::Acknowledged => "acknowledged",
            AlertEventKind::Resolved => "resolved",
        }
    }

    /// The message type on the real-time channel and in webhooks.
    pub fn message_type(self) -> &'static str {
        match self {
            AlertEventKind::Raised => "alert.raised",
            AlertEventKind::Acknowledged => "alert.acknowledged",
            AlertEventKind::Resolved => "alert.resolved",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// Which departments' alerts a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertScope {
    /// Admins.
    All,
    /// Staff and API keys: their departments'.
    Only(Vec<DepartmentId>),
    /// Reporters.
    None,
}

impl AlertScope {
    pub fn of(principal: &Principal) -> Self {
        match principal {
            Principal::User(u) if u.role == Role::Admin => AlertScope::All,
            Principal::User(u) if u.role >= Role::Staff => AlertScope::Only(u.departments.clone()),
            Principal::User(_) => AlertScope::None,
            Principal::ApiKey(k) => AlertScope::Only(k.departments.clone()),
        }
    }

    /// Whether an alert about a subject of `department` is visible.
    pub fn admits(&self, department: DepartmentId) -> bool {
        match self {
            AlertScope::All => true,
            AlertScope::Only(ids) => ids.contains(&department),
            AlertScope::None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserPrincipal;
    use crate::ids::{SessionId, UserId};

    fn user(role: Role, departments: &[i64]) -> Principal {
        Principal::User(UserPrincipal {
            user_id: UserId(1),
            session_id: SessionId(1),
            role,
            departments: departments.iter().copied().map(DepartmentId).collect(),
        })
    }

    #[test]
    fn staff_see_their_departments_alerts_admins_all_and_reporters_none() {
        let d3 = DepartmentId(3);
        assert!(AlertScope::of(&user(Role::Staff, &[3])).admits(d3));
        assert!(!AlertScope::of(&user(Role::Staff, &[4])).admits(d3));
        assert!(AlertScope::of(&user(Role::Admin, &[])).admits(d3));
        assert!(!AlertScope::of(&user(Role::Reporter, &[3])).admits(d3));
    }

    #[test]
    fn event_kinds_print_back_and_name_their_message_types() {
        for kind in AlertEventKind::ALL {
            assert_eq!(AlertEventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(kind.message_type(), format!("alert.{}", kind.as_str()));
        }
        assert_eq!(AlertEventKind::parse("created"), None);
    }
}
