//! One attempt of one delivery: send, log the attempt, decide what comes next. The caller is a
//! `notification.deliver` job (its lease is the only one: a delivery has no claim of its own);
//! logging a retry enqueues the job of the next attempt in the same transaction.

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use vigia_domain::Timestamp;
use vigia_store::StoreError;
use vigia_store::notifications::{
    self, AttemptRecord, AttemptResult, Channel, Delivery, DeliveryStatus, digest,
};
use vigia_store::webhooks;

use crate::Notifier;
use crate::config::RetryPolicy;
use crate::mail::{MailVerdict, error_chain};
use crate::plan::EmailPayload;
use crate::retry::{Verdict, backoff, classify_status, parse_retry_after};
use crate::signature::signature_header;
use crate::ssrf::check_url;

/// What became of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// It arrived (now or before).
    Delivered,
    /// It failed; the next attempt is queued to run after this long.
    RetryAfter(Duration),
    /// No further attempt: the delivery is dead (replay revives it).
    GiveUp(String),
    /// Nothing was sent: attempt `number` was already made (this job ran before, and its
    /// process died after logging it), or the delivery was finished or replayed since.
    AlreadyDone,
    /// Not sent on its own: its recipient is over their rate, so it waits in this digest.
    Held { digest_id: i64 },
}

/// Performs attempt `number` of delivery `id` (from its `notification.deliver` job) and logs
/// it. Safe to run twice: an attempt whose number the log already has is not made again, and
/// a delivered or dead delivery is not sent again.
#[tracing::instrument(skip(n))]
pub async fn attempt(n: &Notifier, id: i64, number: u32) -> anyhow::Result<AttemptOutcome> {
    let db = n.db();
    let delivery = notifications::find(db, id).await?;
    let made = u32::try_from(delivery.attempts).unwrap_or(u32::MAX);
    if made >= number
        || matches!(
            delivery.status,
            DeliveryStatus::Delivered | DeliveryStatus::Dead
        )
    {
        return Ok(AttemptOutcome::AlreadyDone);
    }
    if let Some(digest_id) = delivery.digest_id {
        // Held before (this job ran, and its process died after holding it).
        return Ok(AttemptOutcome::Held { digest_id });
    }
    match delivery.channel {
        Channel::Email => attempt_email(n, delivery).await,
        Channel::Webhook => attempt_webhook(n, delivery).await,
        Channel::Upload => Ok(AttemptOutcome::GiveUp(
            "report uploads are attempted by the reports stage".into(),
        )),
    }
}

/// What one send produced, before the retry decision.
struct Sent {
    verdict: Verdict,
    status_code: Option<i64>,
    error: Option<String>,
    latency_ms: i64,
}

/// Logs the attempt and turns the verdict into the outcome, giving up once `policy` is spent.
async fn conclude(
    n: &Notifier,
    delivery: &Delivery,
    at: Timestamp,
    sent: Sent,
    policy: &RetryPolicy,
    force_dead: Option<String>,
    ends_streak_of: Option<i64>,
) -> anyhow::Result<AttemptOutcome> {
    let attempt_no = u32::try_from(delivery.attempts + 1).unwrap_or(u32::MAX);
    let (result, next, outcome) = match (&sent.verdict, force_dead) {
        (Verdict::Delivered, _) => (AttemptResult::Delivered, None, AttemptOutcome::Delivered),
        (_, Some(reason)) => (AttemptResult::Failed, None, AttemptOutcome::GiveUp(reason)),
        (Verdict::Retry { after }, None) if attempt_no < policy.max_attempts => {
            let wait = backoff(policy, attempt_no + 1, *after);
            let next = Timestamp::from_millis(at.millis() + wait.as_millis() as i64);
            (
                AttemptResult::Retry,
                Some(next),
                AttemptOutcome::RetryAfter(wait),
            )
        }
        (Verdict::Retry { .. }, None) => {
            let reason = format!(
                "gave up after {attempt_no} attempts: {}",
                sent.error.clone().unwrap_or_default()
            );
            (AttemptResult::Failed, None, AttemptOutcome::GiveUp(reason))
        }
        (Verdict::Permanent | Verdict::Gone, None) => {
            let reason = sent.error.clone().unwrap_or_else(|| "refused".into());
            (AttemptResult::Failed, None, AttemptOutcome::GiveUp(reason))
        }
    };
    let error = match &outcome {
        AttemptOutcome::GiveUp(reason) => Some(reason.clone()),
        _ => sent.error,
    };
    let record = AttemptRecord {
        at,
        result,
        status_code: sent.status_code,
        latency_ms: sent.latency_ms,
        error,
        next_attempt_at: next,
        ends_streak_of: ends_streak_of.filter(|_| result == AttemptResult::Delivered),
    };
    notifications::record_attempt(n.db(), delivery.id, &record).await?;
    tracing::info!(
        delivery_id = delivery.id,
        channel = delivery.channel.as_str(),
        attempt = attempt_no,
        status_code = sent.status_code,
        ?outcome,
        "delivery attempt"
    );
    Ok(outcome)
}

async fn attempt_email(n: &Notifier, delivery: Delivery) -> anyhow::Result<AttemptOutcome> {
    let policy = n.config().email.retry;
    let at = Timestamp::now();
    let Some(mailer) = &n.0.mailer else {
        let reason = "e-mail is disabled ([email] enabled = false)".to_owned();
        let sent = Sent {
            verdict: Verdict::Permanent,
            status_code: None,
            error: Some(reason),
            latency_ms: 0,
        };
        return conclude(n, &delivery, at, sent, &policy, None, None).await;
    };
    let is_digest = delivery.message_type == digest::DIGEST_TYPE;
    let stored = if is_digest {
        match crate::digest::write(n, &delivery).await? {
            Some(payload) => payload,
            None => {
                let reason = "the digest carries no e-mail";
                notifications::mark_dead(n.db(), delivery.id, reason).await?;
                return Ok(AttemptOutcome::GiveUp(reason.into()));
            }
        }
    } else {
        delivery.payload.clone()
    };
    let payload: EmailPayload = match serde_json::from_str(&stored) {
        Ok(p) => p,
        Err(e) => {
            let sent = Sent {
                verdict: Verdict::Permanent,
                status_code: None,
                error: Some(format!("unreadable stored message: {e}")),
                latency_ms: 0,
            };
            return conclude(n, &delivery, at, sent, &policy, None, None).await;
        }
    };
    if payload.digest.is_some()
        && delivery.attempts == 0
        && crate::digest::over_rate(n, &payload.to).await?
    {
        let digest_id = crate::digest::hold(n, &delivery, &payload.to).await?;
        return Ok(AttemptOutcome::Held { digest_id });
    }
    let started = Instant::now();
    let result = mailer
        .send(&payload.to, &delivery.message_id, &payload.mail)
        .await;
    let sent = Sent {
        verdict: match result.verdict {
            MailVerdict::Delivered => Verdict::Delivered,
            MailVerdict::Retry => Verdict::Retry { after: None },
            MailVerdict::Permanent => Verdict::Permanent,
        },
        status_code: result.code.map(i64::from),
        error: result.error,
        latency_ms: started.elapsed().as_millis() as i64,
    };
    conclude(n, &delivery, at, sent, &policy, None, None).await
}

async fn attempt_webhook(n: &Notifier, delivery: Delivery) -> anyhow::Result<AttemptOutcome> {
    let settings = &n.config().webhooks;
    let policy = settings.retry;
    let db = n.db();
    let at = Timestamp::now();
    let endpoint = match delivery.endpoint_id {
        Some(id) => match webhooks::find(db, id).await {
            Ok(e) => Some(e),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let Some(endpoint) = endpoint else {
        let reason = "the endpoint was deleted";
        notifications::mark_dead(db, delivery.id, reason).await?;
        return Ok(AttemptOutcome::GiveUp(reason.into()));
    };
    if !endpoint.enabled {
        let reason = format!(
            "the endpoint is disabled: {}",
            endpoint
                .disabled_reason
                .as_deref()
                .unwrap_or("by an administrator")
        );
        notifications::mark_dead(db, delivery.id, &reason).await?;
        return Ok(AttemptOutcome::GiveUp(reason));
    }
    let url = match check_url(&endpoint.url, settings.allow_private_targets) {
        Ok(url) => url,
        Err(refused) => {
            let sent = Sent {
                verdict: Verdict::Permanent,
                status_code: None,
                error: Some(format!("refused to send to {}: {refused}", endpoint.url)),
                latency_ms: 0,
            };
            return conclude(n, &delivery, at, sent, &policy, None, None).await;
        }
    };
    let timestamp = at.millis() / 1000;
    let secrets = endpoint.active_secrets(at);
    let body = delivery.payload.clone().into_bytes();
    let signature = signature_header(&secrets, &delivery.message_id, timestamp, &body)?;
    let started = Instant::now();
    let response =
        n.0.http
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", &delivery.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
    let sent = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, time::OffsetDateTime::now_utc()));
            let verdict = classify_status(status, retry_after);
            let error = if verdict == Verdict::Delivered {
                None
            } else {
                let text = response.text().await.unwrap_or_default();
                let snippet: String = text.chars().take(200).collect();
                Some(format!("HTTP {status}: {snippet}").trim_end().to_owned())
            };
            Sent {
                verdict,
                status_code: Some(i64::from(status)),
                error,
                latency_ms: started.elapsed().as_millis() as i64,
            }
        }
        Err(e) => Sent {
            // Timeouts and connection failures are worth retrying; a refused address (SSRF
            // guard in the resolver) is not, but it surfaces as a connect error too, so it is
            // told apart by its message.
            verdict: if error_chain(&e).contains("refused: ") {
                Verdict::Permanent
            } else {
                Verdict::Retry { after: None }
            },
            status_code: None,
            error: Some(if e.is_timeout() {
                format!("timed out after {} ms", settings.timeout.as_millis())
            } else {
                error_chain(&e)
            }),
            latency_ms: started.elapsed().as_millis() as i64,
        },
    };
    let force_dead = match sent.verdict {
        Verdict::Delivered => None,
        Verdict::Gone => {
            let reason = "the endpoint answered 410 Gone";
            webhooks::record_failure(
                db,
                endpoint.id,
                i64::from(settings.disable_after_failures),
                Some(reason),
            )
            .await?;
            Some(format!("{reason}: endpoint disabled"))
        }
        _ => {
            let disabled = webhooks::record_failure(
                db,
                endpoint.id,
                i64::from(settings.disable_after_failures),
                None,
            )
            .await?;
            disabled.then(|| {
                format!(
                    "endpoint disabled after {} consecutive failed attempts: {}",
                    settings.disable_after_failures,
                    sent.error.clone().unwrap_or_default()
                )
            })
        }
    };
    conclude(
        n,
        &delivery,
        at,
        sent,
        &policy,
        force_dead,
        Some(endpoint.id),
    )
    .await
}
