//! Digest e-mails: beyond `[email] digest_after_per_minute` e-mails a minute to one recipient,
//! the digestible ones (everything but emergencies and reports) are held and gathered into one
//! e-mail sent when the digest's window ends: how many, one line each with the most urgent
//! first, and a link to the list. The store keeps who is carried by which digest
//! ([`vigia_store::notifications::digest`]); this module decides and writes the message.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use vigia_domain::Timestamp;
use vigia_store::notifications::digest;
use vigia_store::notifications::{Delivery, IncidentBrief};
use vigia_store::rate_limits::{self, Quota};

use crate::Notifier;
use crate::plan::{EmailPayload, message_id};
use crate::templates::{Lang, Template, urgency_label};

/// One held e-mail's line in a digest, written when the e-mail is planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestLine {
    pub lang: Lang,
    pub code: String,
    pub title: String,
    /// `low` … `high`: orders the lines, the most urgent first.
    pub urgency: String,
    pub urgency_label: String,
    /// What the held e-mail was about (its subject).
    pub what: String,
    pub link: String,
}

/// The digest line of an e-mail about `brief` with `template`, when it may be held: not for
/// emergencies (they always go out at once) and only for messages about one incident.
pub(crate) fn line(
    n: &Notifier,
    template: Template,
    brief: &IncidentBrief,
    lang: Lang,
) -> Option<DigestLine> {
    let digestible = matches!(
        template,
        Template::IncidentAssigned | Template::StatusChanged | Template::IncidentEscalated
    );
    if !digestible || brief.urgency == "emergency" {
        return None;
    }
    let code = vigia_domain::incidents::IncidentCode::from_sequence(brief.id.max(0) as u64);
    let what = match (template, lang) {
        (Template::IncidentAssigned, Lang::Es) => "nuevo incidente para tu departamento",
        (Template::IncidentAssigned, Lang::En) => "new incident for your department",
        (Template::StatusChanged, Lang::Es) => "cambió de estado",
        (Template::StatusChanged, Lang::En) => "status changed",
        (_, Lang::Es) => "escalado: fuera de plazo",
        (_, Lang::En) => "escalated: past its deadline",
    };
    Some(DigestLine {
        lang,
        code: code.to_string(),
        title: brief.title.clone(),
        urgency: brief.urgency.clone(),
        urgency_label: urgency_label(lang, &brief.urgency),
        what: what.to_owned(),
        link: n.incident_link(&code.to_string()),
    })
}

/// The digest line of a final proctoring alert's e-mail: the exam's code, who, why, and the
/// exam's live view. Always digestible: a burst of alerts from one exam must not flood an
/// inbox (the incident each one opens has its own e-mail).
pub(crate) fn proctoring_line(
    lang: Lang,
    exam_code: &str,
    who: &str,
    reason_label: &str,
    link: String,
) -> DigestLine {
    let what = match lang {
        Lang::Es => format!("alerta final de supervisión: {reason_label}"),
        Lang::En => format!("final proctoring alert: {reason_label}"),
    };
    DigestLine {
        lang,
        code: exam_code.to_owned(),
        title: who.to_owned(),
        urgency: "high".into(),
        urgency_label: urgency_label(lang, "high"),
        what,
        link,
    }
}

/// Whether e-mail `delivery` (first attempt, digestible) must be held: its recipient had
/// their share this minute. Counts it against the recipient's rate when it may go.
pub(crate) async fn over_rate(n: &Notifier, to: &str) -> anyhow::Result<bool> {
    let policy = n.config().email.digest;
    if policy.after_per_minute == 0 {
        return Ok(false);
    }
    let quota = Quota {
        burst: policy.after_per_minute,
        period: Duration::from_secs(60),
    };
    let key = format!("mail:{to}");
    Ok(rate_limits::take(n.db(), &key, quota, Timestamp::now())
        .await?
        .is_err())
}

/// Holds `delivery` for its recipient's digest; returns the digest's id.
pub(crate) async fn hold(n: &Notifier, delivery: &Delivery, to: &str) -> anyhow::Result<i64> {
    let window = n.config().email.digest.window;
    let due = Timestamp::from_millis(
        Timestamp::now()
            .millis()
            .saturating_add(i64::try_from(window.as_millis()).unwrap_or(i64::MAX)),
    );
    let id = digest::hold(n.db(), delivery.id, to, &message_id(), due).await?;
    tracing::debug!(
        delivery_id = delivery.id,
        digest_id = id,
        "e-mail held for a digest"
    );
    Ok(id)
}

/// Closes digest `delivery` and writes its message from the e-mails it carries; `None` when it
/// carries none (nothing to send).
pub(crate) async fn write(n: &Notifier, delivery: &Delivery) -> anyhow::Result<Option<String>> {
    if delivery.payload.is_empty() {
        digest::close(n.db(), delivery.id, &delivery.target).await?;
    } else if delivery.payload != digest::CLOSED {
        return Ok(Some(delivery.payload.clone()));
    }
    let carried = digest::carried(n.db(), delivery.id).await?;
    let mut lines: Vec<DigestLine> = carried
        .iter()
        .filter_map(|d| {
            serde_json::from_str::<EmailPayload>(&d.payload)
                .ok()?
                .digest
        })
        .collect();
    if lines.is_empty() {
        return Ok(None);
    }
    // The most urgent first; among equals, in the order they were held.
    lines.sort_by_key(|l| std::cmp::Reverse(urgency_rank(&l.urgency)));
    let lang = lines[0].lang;
    let list_link = format!(
        "{}/console?status=new",
        n.incident_link("").trim_end_matches("/incidents/")
    );
    let context = json!({ "count": lines.len(), "items": lines, "list_link": list_link });
    let mail = n.0.templates.render(Template::Digest, lang, context)?;
    let payload = serde_json::to_string(&EmailPayload {
        to: delivery.target.clone(),
        mail,
        digest: None,
    })?;
    digest::write(n.db(), delivery.id, &payload).await?;
    Ok(Some(payload))
}

fn urgency_rank(urgency: &str) -> u8 {
    match urgency {
        "emergency" => 4,
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgencies_rank_from_emergency_down_to_low() {
        let mut urgencies = vec!["low", "high", "medium", "emergency", "unknown"];
        urgencies.sort_by_key(|u| std::cmp::Reverse(urgency_rank(u)));
        assert_eq!(urgencies, ["emergency", "high", "medium", "low", "unknown"]);
    }
}
