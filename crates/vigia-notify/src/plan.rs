//! Who must be told about one incident event, rendered once into delivery rows.
//!
//! - `incident.created` with urgency emergency or high → the configured emergency recipients;
//!   routed to a department → that department's contacts.
//! - `incident.department_assigned` → the new department's contacts.
//! - `incident.status_changed` → the reporter, if they opted in (not when they made the change).
//! - `incident.escalated` → the department's escalation contacts.
//! - Webhooks: every enabled endpoint subscribed to the message type. Internal events (internal
//!   comments) never leave through webhooks: endpoints are outside the staff boundary.
//! - Alert events (`alert.*`): see [`crate::plan_alert`].

use serde_json::{Value, json};
use vigia_domain::Timestamp;
use vigia_domain::ids::DepartmentId;
use vigia_store::incidents::events::StoredEvent;
use vigia_store::notifications::{self, Channel, IncidentBrief, NewDelivery};
use vigia_store::report_links::{self, NewReportLink};
use vigia_store::{StoreError, webhooks};

use crate::Notifier;
use crate::templates::{Lang, Template, breach_label, status_label, urgency_label};

/// A new message id, the same on every attempt of its delivery (`webhook-id`, Message-ID).
pub(crate) fn message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// The Standard Webhooks body: `{type, timestamp, data}`.
pub fn webhook_body(message_type: &str, timestamp: &str, data: Value) -> String {
    json!({ "type": message_type, "timestamp": timestamp, "data": data }).to_string()
}

/// Plans the deliveries for one event and returns their ids (existing ones included, so
/// planning twice is harmless).
#[tracing::instrument(skip_all, fields(event_id = event.id.0, kind = %event.kind))]
pub async fn plan(n: &Notifier, event: &StoredEvent) -> anyhow::Result<Vec<i64>> {
    let db = n.db();
    let incident_id = match (event.incident_id, event.alert_id) {
        (Some(incident), _) => incident,
        (None, Some(alert)) => {
            let planned = crate::plan_alert::plan_alert(n, event, alert.0).await?;
            return Ok(notifications::insert_planned(db, &planned).await?);
        }
        (None, None) => return Ok(Vec::new()),
    };
    let mut planned: Vec<NewDelivery> = Vec::new();
    let brief = match notifications::incident_brief(db, incident_id.0).await {
        Ok(brief) => Some(brief),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    if let (Some(brief), true) = (&brief, n.config().email.enabled) {
        plan_emails(n, event, incident_id, brief, &mut planned).await?;
    }
    if !event.internal {
        for endpoint in webhooks::subscribed(db, &event.message_type).await? {
            let data = json!({
                "event_id": event.id.0,
                "incident_id": incident_id.0,
                "code": event.code.map(|c| c.to_string()),
                "actor": event.actor,
                "at": event.at,
                "change": event.data,
            });
            planned.push(NewDelivery {
                channel: Channel::Webhook,
                target: endpoint.id.to_string(),
                endpoint_id: Some(endpoint.id),
                event_id: Some(event.id.0),
                exam_event_id: None,
                incident_id: Some(incident_id.0),
                message_type: event.message_type.clone(),
                message_id: message_id(),
                payload: webhook_body(&event.message_type, &event.at.to_rfc3339(), data),
            });
        }
    }
    Ok(notifications::insert_planned(db, &planned).await?)
}

async fn plan_emails(
    n: &Notifier,
    event: &StoredEvent,
    incident_id: vigia_domain::ids::IncidentId,
    brief: &IncidentBrief,
    planned: &mut Vec<NewDelivery>,
) -> anyhow::Result<()> {
    let db = n.db();
    let data = &event.data;
    let mail = |to: &str, template: Template, extra: Value| (to.to_owned(), template, extra);
    let mut recipients = Vec::new();
    match event.message_type.as_str() {
        "incident.created" => {
            if data["needs_immediate_notification"].as_bool() == Some(true) {
                for to in &n.config().email.emergency_recipients {
                    recipients.push(mail(to, Template::IncidentUrgent, json!({})));
                }
            }
            if let Some(department) = data["department_id"].as_i64() {
                let contacts = notifications::department_contacts(db, department).await?;
                for to in &contacts.contact_emails {
                    let extra = json!({ "department": contacts.name, "department_id": department });
                    recipients.push(mail(to, Template::IncidentAssigned, extra));
                }
            }
        }
        "incident.department_assigned" => {
            if let Some(department) = data["to"].as_i64() {
                let contacts = notifications::department_contacts(db, department).await?;
                for to in &contacts.contact_emails {
                    let extra = json!({ "department": contacts.name, "department_id": department });
                    recipients.push(mail(to, Template::IncidentAssigned, extra));
                }
            }
        }
        "incident.status_changed" => {
            if let Some(reporter) = brief.reporter_id
                && event.actor != format!("user:{reporter}")
                && let Some((email, _)) =
                    notifications::status_change_subscriber(db, reporter).await?
            {
                let extra = json!({ "from": data["from"], "to": data["to"] });
                recipients.push(mail(&email, Template::StatusChanged, extra));
            }
        }
        "incident.escalated" => {
            if let Some(department) = brief.department_id {
                let contacts = notifications::department_contacts(db, department).await?;
                for to in &contacts.escalation_emails {
                    let extra = json!({ "breach": data["breach"], "department_id": department });
                    recipients.push(mail(to, Template::IncidentEscalated, extra));
                }
            }
        }
        _ => {}
    }
    let mut seen: Vec<String> = Vec::new();
    for (to, template, extra) in recipients {
        let to = to.trim().to_lowercase();
        if to.is_empty() || seen.contains(&to) {
            continue;
        }
        seen.push(to.clone());
        let lang = Lang::from_locale(notifications::locale_of_email(db, &to).await?.as_deref());
        // Department contacts need no account: their link to the department's report is a
        // signed, expiring, revocable capability of their own.
        let report_link = match extra["department_id"].as_i64() {
            Some(department) => {
                let link = report_links::issue(
                    db,
                    &NewReportLink {
                        incident_id,
                        department_id: DepartmentId(department),
                        event_id: event.id.0,
                        recipient: to.clone(),
                        expires_at: link_expiry(event.at, n.config().report_links.ttl),
                    },
                )
                .await?;
                Some(n.report_link(&link))
            }
            None => None,
        };
        let context = incident_context(n, brief, lang, &extra, report_link);
        let rendered = n.0.templates.render(template, lang, context)?;
        let digest = crate::digest::line(n, template, brief, lang);
        planned.push(NewDelivery {
            channel: Channel::Email,
            target: to.clone(),
            endpoint_id: None,
            event_id: Some(event.id.0),
            exam_event_id: None,
            incident_id: Some(incident_id.0),
            message_type: event.message_type.clone(),
            message_id: message_id(),
            payload: serde_json::to_string(&EmailPayload {
                to,
                mail: rendered,
                digest,
            })?,
        });
    }
    Ok(())
}

/// What an e-mail delivery stores: the recipient and the rendered message.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct EmailPayload {
    pub to: String,
    pub mail: crate::templates::RenderedEmail,
    /// Its line in a digest, when it may be gathered into one (never for emergencies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<crate::digest::DigestLine>,
}

/// When a link issued for an event at `at` stops opening its report.
fn link_expiry(at: Timestamp, ttl: std::time::Duration) -> Timestamp {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_millis(at.millis().saturating_add(ttl_ms))
}

fn incident_context(
    n: &Notifier,
    brief: &IncidentBrief,
    lang: Lang,
    extra: &Value,
    report_link: Option<String>,
) -> Value {
    let code = vigia_domain::incidents::IncidentCode::from_sequence(brief.id.max(0) as u64);
    let department = extra["department"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| brief.department_name.clone());
    let category = match lang {
        Lang::Es => &brief.category_es,
        Lang::En => &brief.category_en,
    };
    let mut description: String = brief.description.chars().take(1000).collect();
    if brief.description.chars().count() > 1000 {
        description.push('…');
    }
    json!({
        "incident": {
            "code": code.to_string(),
            "title": brief.title,
            "description": description,
            "urgency_label": urgency_label(lang, &brief.urgency),
            "status_label": status_label(lang, &brief.status),
            "category": category,
            "department": department,
            "location": brief.location_text,
        },
        "links": {
            "incident": n.incident_link(&code.to_string()),
            "report": report_link,
        },
        "from_label": extra["from"].as_str().map(|s| status_label(lang, s)),
        "to_label": extra["to"].as_str().map(|s| status_label(lang, s)),
        "breach": extra["breach"].as_str().map(|s| breach_label(lang, s)),
    })
}

/// Plans a scheduled report's e-mail to each subscriber (in their language) and returns the
/// delivery ids. Nothing when e-mail is disabled.
pub async fn send_report_email(
    n: &Notifier,
    recipients: &[String],
    title: &str,
    summary: &str,
    link: &str,
) -> anyhow::Result<Vec<i64>> {
    if !n.config().email.enabled {
        return Ok(Vec::new());
    }
    let db = n.db();
    let mut planned = Vec::new();
    for to in recipients {
        let to = to.trim().to_lowercase();
        let lang = Lang::from_locale(notifications::locale_of_email(db, &to).await?.as_deref());
        let context = json!({ "title": title, "summary": summary, "link": link });
        let rendered = n.0.templates.render(Template::Report, lang, context)?;
        planned.push(NewDelivery {
            channel: Channel::Email,
            target: to.clone(),
            endpoint_id: None,
            event_id: None,
            exam_event_id: None,
            incident_id: None,
            message_type: "report".into(),
            message_id: message_id(),
            payload: serde_json::to_string(&EmailPayload {
                to,
                mail: rendered,
                digest: None,
            })?,
        });
    }
    Ok(notifications::insert_planned(db, &planned).await?)
}

/// Plans a `webhook.test` message to one endpoint (whatever types it subscribes to) and
/// returns the delivery id.
pub async fn send_test_webhook(db: &vigia_store::Db, endpoint_id: i64) -> anyhow::Result<i64> {
    let now = vigia_domain::Timestamp::now();
    let data = json!({ "endpoint_id": endpoint_id, "message": "This is a test event from Vigía." });
    let delivery = NewDelivery {
        channel: Channel::Webhook,
        target: endpoint_id.to_string(),
        endpoint_id: Some(endpoint_id),
        event_id: None,
        exam_event_id: None,
        incident_id: None,
        message_type: "webhook.test".into(),
        message_id: message_id(),
        payload: webhook_body("webhook.test", &now.to_rfc3339(), data),
    };
    let ids = notifications::insert_planned(db, &[delivery]).await?;
    ids.first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("the test delivery was not created"))
}
