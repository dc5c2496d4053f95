//! The incident event log: one entry per change, written in the same transaction as the change,
//! read back as the incident's timeline and pushed to real-time subscribers.

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::catalog::Urgency;
use crate::ids::{AttachmentId, CategoryId, CommentId, DepartmentId, EventId, IncidentId, UserId};
use crate::incidents::assignment::AssignmentStrategy;
use crate::incidents::code::IncidentCode;
use crate::incidents::input::{IncidentVisibility, Source, Visibility};
use crate::incidents::sla::SlaBreach;
use crate::incidents::sniff::AllowedMedia;
use crate::incidents::status::Status;
use crate::validation::FieldError;

macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident => $name:literal),+ $(,)?) => {
        /// What kind of change an event records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum IncidentEventKind {
            $($(#[$doc])* $variant),+
        }

        impl IncidentEventKind {
            /// Every kind.
            pub const ALL: &'static [IncidentEventKind] = &[$(IncidentEventKind::$variant),+];

            /// The storage name, e.g. `status_changed`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(IncidentEventKind::$variant => $name),+
                }
            }

            /// The message type on the real-time channel, e.g. `incident.status_changed`.
            pub fn message_type(self) -> &'static str {
                match self {
                    $(IncidentEventKind::$variant => concat!("incident.", $name)),+
                }
            }
        }
    };
}

event_kinds! {
    /// The incident was reported.
    Created => "created",
    /// Its status changed.
    StatusChanged => "status_changed",
    /// Somebody commented.
    CommentAdded => "comment_added",
    /// It was routed to a department.
    DepartmentAssigned => "department_assigned",
    /// It was given to somebody else, or to nobody.
    AssigneeChanged => "assignee_changed",
    /// A file was attached.
    AttachmentAdded => "attachment_added",
    /// An attachment was removed.
    AttachmentDeleted => "attachment_deleted",
    /// Somebody said "me too".
    Voted => "voted",
    /// Somebody took their "me too" back.
    VoteWithdrawn => "vote_withdrawn",
    /// It was made public or private.
    VisibilityChanged => "visibility_changed",
    /// Its urgency changed by hand.
    UrgencyChanged => "urgency_changed",
    /// It missed an SLA target.
    Escalated => "escalated",
    /// A notification about it went out.
    Notified => "notified",
    /// Its title, description, location or category was edited.
    Updated => "updated",
}

impl IncidentEventKind {
    /// Parses a storage name.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == raw)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                FieldError::new(field, format!("must be one of: {}", known.join(", ")))
            })
    }
}

impl std::fmt::Display for IncidentEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// True for the urgencies that notify the department at once instead of in a digest.
pub fn needs_immediate_notification(urgency: Urgency) -> bool {
    urgency >= Urgency::High
}

/// What changed, with what consumers (timeline, notifications, webhooks) need to act on it.
/// Stored as JSON beside the kind; the `kind` tag repeats [`IncidentEventKind::as_str`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventData {
    /// The incident was reported.
    Created {
        urgency: Urgency,
        category_id: CategoryId,
        department_id: Option<DepartmentId>,
        source: Source,
        visibility: IncidentVisibility,
        /// Emergency and high urgency: notify the department now.
        needs_immediate_notification: bool,
    },
    /// Its status changed (check it with [`crate::incidents::check_transition`]).
    StatusChanged { from: Status, to: Status },
    /// Somebody commented.
    CommentAdded {
        comment_id: CommentId,
        /// Internal comments are delivered to staff only.
        visibility: Visibility,
    },
    /// It was routed to a department.
    DepartmentAssigned {
        from: Option<DepartmentId>,
        to: DepartmentId,
    },
    /// It was given to somebody else, or to nobody.
    AssigneeChanged {
        from: Option<UserId>,
        to: Option<UserId>,
        /// `manual` when a person chose, otherwise the strategy that picked.
        strategy: AssignmentStrategy,
    },
    /// A file was attached; `media` is what its bytes are, not what the upload claimed.
    AttachmentAdded {
        attachment_id: AttachmentId,
        media: AllowedMedia,
        size_bytes: u64,
    },
    /// An attachment was removed.
    AttachmentDeleted { attachment_id: AttachmentId },
    /// Somebody said "me too".
    Voted {
        user_id: UserId,
        /// The incident's vote count afterwards.
        votes: u32,
    },
    /// Somebody took their "me too" back.
    VoteWithdrawn { user_id: UserId, votes: u32 },
    /// It was made public or private.
    VisibilityChanged {
        from: IncidentVisibility,
        to: IncidentVisibility,
    },
    /// Its urgency changed by hand; only a raise to high or emergency notifies at once.
    UrgencyChanged {
        from: Urgency,
        to: Urgency,
        needs_immediate_notification: bool,
    },
    /// It missed an SLA target.
    Escalated {
        breach: SlaBreach,
        /// The urgency it was raised to, when its policy raises urgency on breach.
        raised_to: Option<Urgency>,
    },
    /// A notification about it went out.
    Notified {
        /// How: `email`, `webhook`, `push`.
        channel: String,
        recipients: u32,
    },
    /// Its title, description, location or category was edited.
    Updated {
        /// The names of the fields that changed, e.g. `["title", "location"]`.
        fields: Vec<String>,
    },
}

impl EventData {
    /// The event of a newly reported incident.
    pub fn created(
        urgency: Urgency,
        category_id: CategoryId,
        department_id: Option<DepartmentId>,
        source: Source,
        visibility: IncidentVisibility,
    ) -> Self {
        EventData::Created {
            urgency,
            category_id,
            department_id,
            source,
            visibility,
            needs_immediate_notification: needs_immediate_notification(urgency),
        }
    }

    /// The event of an urgency changed by hand.
    pub fn urgency_changed(from: Urgency, to: Urgency) -> Self {
        EventData::UrgencyChanged {
            from,
            to,
            needs_immediate_notification: to > from && needs_immediate_notification(to),
        }
    }

    /// The kind of this event.
    pub fn kind(&self) -> IncidentEventKind {
        match self {
            EventData::Created { .. } => IncidentEventKind::Created,
            EventData::StatusChanged { .. } => IncidentEventKind::StatusChanged,
            EventData::CommentAdded { .. } => IncidentEventKind::CommentAdded,
            EventData::DepartmentAssigned { .. } => IncidentEventKind::DepartmentAssigned,
            EventData::AssigneeChanged { .. } => IncidentEventKind::AssigneeChanged,
            EventData::AttachmentAdded { .. } => IncidentEventKind::AttachmentAdded,
            EventData::AttachmentDeleted { .. } => IncidentEventKind::AttachmentDeleted,
            EventData::Voted { .. } => IncidentEventKind::Voted,
            EventData::VoteWithdrawn { .. } => IncidentEventKind::VoteWithdrawn,
            EventData::VisibilityChanged { .. } => IncidentEventKind::VisibilityChanged,
            EventData::UrgencyChanged { .. } => IncidentEventKind::UrgencyChanged,
            EventData::Escalated { .. } => IncidentEventKind::Escalated,
            EventData::Notified { .. } => IncidentEventKind::Notified,
            EventData::Updated { .. } => IncidentEventKind::Updated,
        }
    }

    /// True when only department staff and admins may see the event (an internal comment).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            EventData::CommentAdded {
                visibility: Visibility::Internal,
                ..
            }
        )
    }
}

/// One entry of an incident's event log, as stored and as sent to subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentEvent {
    pub id: EventId,
    pub incident_id: IncidentId,
    pub code: IncidentCode,
    /// `user:12`, `api_key:3` or `system` (see [`crate::auth::Principal::label`]).
    pub actor: String,
    pub at: Timestamp,
    pub data: EventData,
}

impl IncidentEvent {
    /// The message type on the real-time channel, e.g. `incident.status_changed`.
    pub fn message_type(&self) -> &'static str {
        self.data.kind().message_type()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each() -> Vec<EventData> {
        vec![
            EventData::created(
                Urgency::High,
                CategoryId(1),
                None,
                Source::Web,
                IncidentVisibility::Public,
            ),
            EventData::StatusChanged {
                from: Status::New,
                to: Status::Acknowledged,
            },
            EventData::CommentAdded {
                comment_id: CommentId(5),
                visibility: Visibility::Internal,
            },
            EventData::DepartmentAssigned {
                from: None,
                to: DepartmentId(2),
            },
            EventData::AssigneeChanged {
                from: None,
                to: Some(UserId(4)),
                strategy: AssignmentStrategy::RoundRobin,
            },
            EventData::AttachmentAdded {
                attachment_id: AttachmentId(3),
                media: AllowedMedia::Jpeg,
                size_bytes: 1024,
            },
            EventData::AttachmentDeleted {
                attachment_id: AttachmentId(3),
            },
            EventData::Voted {
                user_id: UserId(8),
                votes: 2,
            },
            EventData::VoteWithdrawn {
                user_id: UserId(8),
                votes: 1,
            },
            EventData::VisibilityChanged {
                from: IncidentVisibility::Public,
                to: IncidentVisibility::Private,
            },
            EventData::urgency_changed(Urgency::Low, Urgency::Emergency),
            EventData::Escalated {
                breach: SlaBreach::Acknowledge,
                raised_to: Some(Urgency::High),
            },
            EventData::Notified {
                channel: "email".into(),
                recipients: 3,
            },
            EventData::Updated {
                fields: vec!["title".into()],
            },
        ]
    }

    #[test]
    fn every_kind_has_a_payload_tagged_with_its_name() {
        let events = one_of_each();
        let kinds: Vec<IncidentEventKind> = events.iter().map(EventData::kind).collect();
        assert_eq!(kinds, IncidentEventKind::ALL);
        for event in events {
            let json = serde_json::to_value(&event).expect("serializes");
            assert_eq!(json["kind"], event.kind().as_str());
            assert_eq!(
                serde_json::from_value::<EventData>(json).expect("deserializes"),
                event
            );
        }
    }

    #[test]
    fn kinds_parse_back_and_name_their_channel_message() {
        for &kind in IncidentEventKind::ALL {
            assert_eq!(IncidentEventKind::parse("kind", kind.as_str()), Ok(kind));
            assert_eq!(kind.message_type(), format!("incident.{kind}"));
        }
        assert_eq!(
            IncidentEventKind::StatusChanged.message_type(),
            "incident.status_changed"
        );
        assert!(IncidentEventKind::parse("kind", "deleted").is_err());
    }

    #[test]
    fn emergency_and_high_urgency_incidents_notify_at_once() {
        let flag = |urgency| match EventData::created(
            urgency,
            CategoryId(1),
            None,
            Source::Api,
            Default::default(),
        ) {
            EventData::Created {
                needs_immediate_notification,
                ..
            } => needs_immediate_notification,
            _ => unreachable!(),
        };
        assert!(flag(Urgency::Emergency) && flag(Urgency::High));
        assert!(!flag(Urgency::Medium) && !flag(Urgency::Low));
        let lowered = EventData::urgency_changed(Urgency::Emergency, Urgency::High);
        assert!(matches!(
            lowered,
            EventData::UrgencyChanged {
                needs_immediate_notification: false,
                ..
            }
        ));
    }

    #[test]
    fn an_event_travels_with_its_incident_code_and_message_type() {
        let event = IncidentEvent {
            id: EventId(1),
            incident_id: IncidentId(42),
            code: IncidentCode::from_sequence(42),
            actor: "user:7".into(),
            at: Timestamp::from_millis(1_800_000_000_000),
            data: EventData::StatusChanged {
                from: Status::InProgress,
                to: Status::OnHold,
            },
        };
        assert_eq!(event.message_type(), "incident.status_changed");
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["code"], "INC-000042");
        assert_eq!(json["data"]["to"], "on_hold");
        assert!(!event.data.is_internal());
    }
}
