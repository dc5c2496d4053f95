//! Typed identifiers: a `UserId` cannot be passed where a `DepartmentId` is expected.

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl From<i64> for $name {
            fn from(v: i64) -> Self {
                Self(v)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A user account.
    UserId
);
id_type!(
    /// A login session (one refresh-token family).
    SessionId
);
id_type!(
    /// A scoped API key.
    ApiKeyId
);
id_type!(
    /// A department (a team incidents are routed to).
    DepartmentId
);
id_type!(
    /// An incident category.
    CategoryId
);
id_type!(
    /// A named place.
    ZoneId
);
id_type!(
    /// An audit log entry.
    AuditId
);
id_type!(
    /// An incident (its number; the human-facing code is [`crate::incidents::IncidentCode`]).
    IncidentId
);
id_type!(
    /// A comment on an incident.
    CommentId
);
id_type!(
    /// A file attached to an incident.
    AttachmentId
);
id_type!(
    /// An entry of an incident's event log.
    EventId
);
id_type!(
    /// A monitored person or asset.
    SubjectId
);
id_type!(
    /// A registered sensing device (camera, edge box).
    DeviceId
);
id_type!(
    /// A monitoring session of one subject by one device.
    MonitoringSessionId
);
id_type!(
    /// An alert rule over detections.
    AlertRuleId
);
id_type!(
    /// An alert raised by a rule.
    AlertId
);
id_type!(
    /// A silence: a period in which matching alerts are not raised.
    SilenceId
);
