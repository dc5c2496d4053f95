//! The audit log: who did what to which entity, when, with the state before and after.

use serde::Serialize;

/// The kind of entity an audited action touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEntity {
    User,
    ApiKey,
    Department,
    Category,
    Zone,
    Setting,
    WebhookEndpoint,
    ReportLink,
    Subject,
    Device,
    AlertRule,
    Silence,
}

impl AuditEntity {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEntity::User => "user",
            AuditEntity::ApiKey => "api_key",
            AuditEntity::Department => "department",
            AuditEntity::Category => "category",
            AuditEntity::Zone => "zone",
            AuditEntity::Setting => "setting",
            AuditEntity::WebhookEndpoint => "webhook_endpoint",
            AuditEntity::ReportLink => "report_link",
            AuditEntity::Subject => "subject",
            AuditEntity::Device => "device",
            AuditEntity::AlertRule => "alert_rule",
            AuditEntity::Silence => "silence",
        }
    }
}

/// One audited action, as the use case describes it; the store adds id and time.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// `user:12`, `api_key:3` or `system` (see [`crate::auth::Principal::label`]).
    pub actor: String,
    /// A dotted verb such as `user.role_changed` or `category.created`.
    pub action: &'static str,
    pub entity: AuditEntity,
    pub entity_id: Option<i64>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub request_id: Option<String>,
}
