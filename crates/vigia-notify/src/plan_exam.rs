//! Who must be told about one exam event (proctoring: `media.analyzed`, `proctoring.reviewed`),
//! rendered once into delivery rows, like alert events in [`crate::plan_alert`]:
//!
//! - Webhooks: `media.analyzed` → every enabled endpoint subscribed to it; an alerting result
//!   (`ALERT`, `ALERT_FINAL`) also → those subscribed to `proctoring.alert`, the alerts-only
//!   type. An endpoint subscribed to both gets each event once: typed `proctoring.alert` when
//!   it alerts, `media.analyzed` otherwise. `proctoring.reviewed` → endpoints subscribed to it.
//!   Proctoring types must be chosen by name: `*` does not cover them (see
//!   [`vigia_store::webhooks::WebhookEndpoint::subscribes_to`]). The body's `data` is the
//!   capture's result document, exactly as written to `results/{exam}/{user}/{file}.json`
//!   (the seed's `status`, `reason`, `details`, `face`, `exam_id`, `user_id`, `s3_input`, and
//!   Vigía's fields), plus `event_id`, `exam` (`{id, code, title}`), `result_key`, and for a
//!   review `review` (`{verdict, by, at}`).
//! - E-mail: an `ALERT_FINAL` result → the contact addresses of the exam's department, each
//!   once and in its account's language, as a digestible e-mail (a burst of final alerts is
//!   gathered into the recipient's digest). `ALERT` is not mailed: it is on the webhooks and the
//!   live view, and only the final alert asks a person to act (it also opens an incident).
//!   An exam event is an internal event of its exam's department: an address whose account may
//!   not see that (not an admin, nor staff of the department; or disabled) is skipped, the rule
//!   of the real-time stream ([`account_receives_internal`]). Addresses with no account are the
//!   department's contacts, named by an admin, as for incident e-mails.

use serde_json::{Value, json};
use vigia_domain::ids::DepartmentId;
use vigia_domain::incidents::audience::account_receives_internal;
use vigia_store::exam_events::{self, ExamEvent};
use vigia_store::notifications::{self, Channel, NewDelivery};
use vigia_store::proctoring::{self, Capture, Exam};
use vigia_store::webhooks::{self, WebhookEndpoint};
use vigia_store::{StoreError, StoreResult};

use crate::Notifier;
use crate::plan::{EmailPayload, message_id, webhook_body};
use crate::templates::{Lang, Template, proctoring_reason_label};

/// Plans the deliveries of one exam event (see the module's doc) and returns their ids
/// (existing ones included, so planning twice is harmless).
#[tracing::instrument(skip_all, fields(event_id = event.id.0, kind = %event.message_type))]
pub async fn plan_exam(n: &Notifier, event: &ExamEvent) -> anyhow::Result<Vec<i64>> {
    let db = n.db();
    let Some(capture_id) = event.capture_id else {
        return Ok(Vec::new());
    };
    // An exam or capture deleted since has no one left to tell.
    let (Some(capture), Some(exam)) = (
        found(proctoring::find_capture(db, capture_id).await)?,
        found(proctoring::find_exam(db, event.exam_id).await)?,
    ) else {
        return Ok(Vec::new());
    };
    let status = event.data["status"].as_str().unwrap_or_default();
    let mut planned = Vec::new();
    let data = webhook_data(event, &capture, &exam);
    for (endpoint, message_type) in endpoints(n, event, status).await? {
        planned.push(NewDelivery {
            channel: Channel::Webhook,
            target: endpoint.id.to_string(),
            endpoint_id: Some(endpoint.id),
            event_id: None,
            exam_event_id: Some(event.id.0),
            incident_id: None,
            message_type: message_type.to_owned(),
            message_id: message_id(),
            payload: webhook_body(message_type, &event.at.to_rfc3339(), data.clone()),
        });
    }
    if n.config().email.enabled
        && event.message_type == exam_events::ANALYZED
        && status == "ALERT_FINAL"
    {
        plan_emails(n, event, &capture, &exam, &mut planned).await?;
    }
    Ok(notifications::insert_planned(db, &planned).await?)
}

fn found<T>(result: StoreResult<T>) -> StoreResult<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The endpoints told of `event`, each once, with the message type it is sent as.
async fn endpoints(
    n: &Notifier,
    event: &ExamEvent,
    status: &str,
) -> anyhow::Result<Vec<(WebhookEndpoint, &'static str)>> {
    let db = n.db();
    let mut chosen: Vec<(WebhookEndpoint, &'static str)> = Vec::new();
    let own_type = match event.message_type.as_str() {
        exam_events::ANALYZED => exam_events::ANALYZED,
        exam_events::REVIEWED => exam_events::REVIEWED,
        _ => return Ok(chosen),
    };
    if own_type == exam_events::ANALYZED && matches!(status, "ALERT" | "ALERT_FINAL") {
        for endpoint in webhooks::subscribed(db, exam_events::ALERT).await? {
            chosen.push((endpoint, exam_events::ALERT));
        }
    }
    for endpoint in webhooks::subscribed(db, own_type).await? {
        if !chosen.iter().any(|(e, _)| e.id == endpoint.id) {
            chosen.push((endpoint, own_type));
        }
    }
    Ok(chosen)
}

/// The webhook's `data`: the result document plus the ids that place it.
fn webhook_data(event: &ExamEvent, capture: &Capture, exam: &Exam) -> Value {
    let mut data = capture
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok())
        .and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default();
    data.insert("event_id".into(), json!(event.id.0));
    data.insert(
        "exam".into(),
        json!({ "id": exam.id, "code": exam.code, "title": exam.title }),
    );
    data.insert("result_key".into(), json!(capture.result_key));
    if event.message_type == exam_events::REVIEWED {
        data.insert(
            "review".into(),
            json!({ "verdict": event.data["review"], "by": event.actor, "at": event.at }),
        );
    }
    Value::Object(data)
}

async fn plan_emails(
    n: &Notifier,
    event: &ExamEvent,
    capture: &Capture,
    exam: &Exam,
    planned: &mut Vec<NewDelivery>,
) -> anyhow::Result<()> {
    let db = n.db();
    let Some(department) = exam.department_id else {
        return Ok(());
    };
    let Some(contacts) = found(notifications::department_contacts(db, department).await)? else {
        return Ok(());
    };
    let participant = match capture.participant_id {
        Some(p) => found(proctoring::find_participant(db, exam.id, p).await)?,
        None => None,
    };
    let name = participant.map_or_else(|| capture.external_id.clone(), |p| p.name);
    let reason = capture.reason.as_deref().unwrap_or("alert");
    let mut seen: Vec<String> = Vec::new();
    for to in &contacts.contact_emails {
        let to = to.trim().to_lowercase();
        if to.is_empty() || seen.contains(&to) {
            continue;
        }
        seen.push(to.clone());
        if let Some(account) = notifications::account_of_email(db, &to).await?
            && (account.disabled
                || !account_receives_internal(
                    account.user_id,
                    account.role,
                    account.departments,
                    Some(DepartmentId(department)),
                ))
        {
            tracing::debug!(
                event_id = event.id.0,
                "a contact who may not see the exam is not told"
            );
            continue;
        }
        let lang = Lang::from_locale(notifications::locale_of_email(db, &to).await?.as_deref());
        let reason_label = proctoring_reason_label(lang, reason);
        let link = n.exam_link(exam.id);
        let context = json!({
            "department": contacts.name,
            "exam": { "id": exam.id, "code": exam.code, "title": exam.title },
            "participant": { "name": name, "user_id": capture.external_id },
            "capture": {
                "id": capture.id,
                "file_name": capture.file_name,
                "distance": capture.distance.map(|d| format!("{d:.3}")),
                "threshold": exam.threshold,
            },
            "reason_label": reason_label,
            "links": { "exam": link },
        });
        let rendered =
            n.0.templates
                .render(Template::ProctoringAlert, lang, context)?;
        let who = format!("{name} ({})", capture.external_id);
        let digest = crate::digest::proctoring_line(lang, &exam.code, &who, &reason_label, link);
        planned.push(NewDelivery {
            channel: Channel::Email,
            target: to.clone(),
            endpoint_id: None,
            event_id: None,
            exam_event_id: Some(event.id.0),
            incident_id: None,
            message_type: event.message_type.clone(),
            message_id: message_id(),
            payload: serde_json::to_string(&EmailPayload {
                to,
                mail: rendered,
                digest: Some(digest),
            })?,
        });
    }
    Ok(())
}
