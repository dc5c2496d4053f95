//! Who must be told about one alert event (`alert.raised`, `.acknowledged`, `.resolved`),
//! rendered once into delivery rows, like incident events in [`crate::plan`]:
//!
//! - E-mail: the `contact_emails` of the subject's department and of every department the
//!   alert's rule names (`notify_departments`), each address once, in its account's language.
//! - Webhooks: every enabled endpoint subscribed to the message type; the body's `data` is
//!   `{event_id, alert_id, actor, at, alert}` with `alert` the event's payload.

use serde_json::{Value, json};
use vigia_domain::ids::{AlertRuleId, DepartmentId};
use vigia_store::detections::rules;
use vigia_store::incidents::events::StoredEvent;
use vigia_store::notifications::{self, Channel, NewDelivery};
use vigia_store::{StoreError, webhooks};

use crate::Notifier;
use crate::plan::{EmailPayload, message_id, webhook_body};
use crate::templates::{Lang, Template, alert_status_label, severity_label};

/// Plans the deliveries of one alert event (see the module's doc).
pub(crate) async fn plan_alert(
    n: &Notifier,
    event: &StoredEvent,
    alert_id: i64,
) -> anyhow::Result<Vec<NewDelivery>> {
    let db = n.db();
    let mut planned = Vec::new();
    if n.config().email.enabled {
        plan_emails(n, event, alert_id, &mut planned).await?;
    }
    for endpoint in webhooks::subscribed(db, &event.message_type).await? {
        let data = json!({
            "event_id": event.id.0,
            "alert_id": alert_id,
            "actor": event.actor,
            "at": event.at,
            "alert": event.data,
        });
        planned.push(NewDelivery {
            channel: Channel::Webhook,
            target: endpoint.id.to_string(),
            endpoint_id: Some(endpoint.id),
            event_id: Some(event.id.0),
            exam_event_id: None,
            incident_id: None,
            message_type: event.message_type.clone(),
            message_id: message_id(),
            payload: webhook_body(&event.message_type, &event.at.to_rfc3339(), data),
        });
    }
    Ok(planned)
}

/// The departments told of an alert: its subject's, then those its rule names (a rule
/// deleted since names none).
async fn departments(n: &Notifier, data: &Value) -> anyhow::Result<Vec<DepartmentId>> {
    let mut departments: Vec<DepartmentId> = data["department_id"]
        .as_i64()
        .map(DepartmentId)
        .into_iter()
        .collect();
    if let Some(rule) = data["rule_id"].as_i64() {
        match rules::find(n.db(), AlertRuleId(rule)).await {
            Ok(rule) => departments.extend(rule.notify_departments),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut seen = Vec::new();
    departments.retain(|d| {
        let first = !seen.contains(d);
        seen.push(*d);
        first
    });
    Ok(departments)
}

async fn plan_emails(
    n: &Notifier,
    event: &StoredEvent,
    alert_id: i64,
    planned: &mut Vec<NewDelivery>,
) -> anyhow::Result<()> {
    let db = n.db();
    let data = &event.data;
    let mut seen: Vec<String> = Vec::new();
    for department in departments(n, data).await? {
        let contacts = match notifications::department_contacts(db, department.0).await {
            Ok(contacts) => contacts,
            Err(StoreError::NotFound) => continue,
            Err(e) => return Err(e.into()),
        };
        for to in &contacts.contact_emails {
            let to = to.trim().to_lowercase();
            if to.is_empty() || seen.contains(&to) {
                continue;
            }
            seen.push(to.clone());
            let lang = Lang::from_locale(notifications::locale_of_email(db, &to).await?.as_deref());
            let context = alert_context(n, event, alert_id, lang, &contacts.name);
            let rendered = n.0.templates.render(Template::Alert, lang, context)?;
            planned.push(NewDelivery {
                channel: Channel::Email,
                target: to.clone(),
                endpoint_id: None,
                event_id: Some(event.id.0),
                exam_event_id: None,
                incident_id: None,
                message_type: event.message_type.clone(),
                message_id: message_id(),
                payload: serde_json::to_string(&EmailPayload {
                    to,
                    mail: rendered,
                    digest: None,
                })?,
            });
        }
    }
    Ok(())
}

fn alert_context(
    n: &Notifier,
    event: &StoredEvent,
    alert_id: i64,
    lang: Lang,
    department: &str,
) -> Value {
    let data = &event.data;
    let text = |key: &str| data[key].as_str().unwrap_or_default().to_owned();
    json!({
        "kind": event.kind,
        "actor": event.actor,
        "department": department,
        "alert": {
            "id": alert_id,
            "rule": text("rule_name"),
            "subject_code": text("subject_code"),
            "subject_name": text("subject_name"),
            "severity_label": severity_label(lang, data["severity"].as_str().unwrap_or_default()),
            "status_label": alert_status_label(lang, data["status"].as_str().unwrap_or_default()),
            "detection_count": data["detection_count"],
            "confidence": format!("{:.2}", data["confidence_avg"].as_f64().unwrap_or_default()),
            "window_start": text("window_start"),
            "window_end": text("window_end"),
            "notes": data["notes"].as_str(),
        },
        "links": { "alert": n.alert_link(alert_id) },
    })
}
