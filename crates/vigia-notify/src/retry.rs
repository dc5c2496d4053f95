//! Retry decisions as values: how an attempt's result is classified, how long to wait.

use std::time::Duration;

use crate::config::RetryPolicy;

/// What one attempt's result means for the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Worth trying again, after `after` if the receiver said so.
    Retry {
        after: Option<Duration>,
    },
    /// Trying again will not help.
    Permanent,
    /// The webhook endpoint is gone for good (HTTP 410): disable it.
    Gone,
}

/// Classifies an HTTP response status: 2xx delivered; 408, 429 and 5xx retried; 410 gone;
/// anything else (redirects included — they are not followed) permanent.
pub fn classify_status(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        410 => Verdict::Gone,
        408 | 429 | 500..=599 => Verdict::Retry { after: retry_after },
        _ => Verdict::Permanent,
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(raw: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let raw = raw.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at =
        time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc2822).ok()?;
    let delta = at - now;
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// The wait before attempt `next_attempt` (2 for the first retry): Vigía's one backoff rule
/// ([`vigia_domain::backoff::backoff`]) over `policy`. A receiver's `Retry-After` wins when it
/// is longer, capped at `policy.max` too.
pub fn backoff(policy: &RetryPolicy, next_attempt: u32, retry_after: Option<Duration>) -> Duration {
    let computed = vigia_domain::backoff::backoff(
        next_attempt.saturating_sub(1),
        policy.base,
        policy.max,
        &mut rand::rng(),
    );
    match retry_after {
        Some(asked) if asked > computed => asked.min(policy.max),
        _ => computed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_the_spec_asks() {
        assert_eq!(classify_status(200, None), Verdict::Delivered);
        assert_eq!(classify_status(204, None), Verdict::Delivered);
        assert_eq!(classify_status(410, None), Verdict::Gone);
        assert_eq!(classify_status(500, None), Verdict::Retry { after: None });
        assert_eq!(
            classify_status(429, Some(Duration::from_secs(3))),
            Verdict::Retry {
                after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(classify_status(404, None), Verdict::Permanent);
        assert_eq!(classify_status(301, None), Verdict::Permanent);
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        let now = time::macros::datetime!(2026-11-23 12:00:00 UTC);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_stays_jittered_within_bounds_and_honours_retry_after() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        for _ in 0..50 {
            let first = backoff(&policy, 2, None);
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2));
            let third = backoff(&policy, 4, None);
            assert!(third >= Duration::from_secs(4) && third <= Duration::from_secs(8));
            let late = backoff(&policy, 30, None);
            assert!(late >= Duration::from_secs(30) && late <= Duration::from_secs(60));
        }
        let asked = backoff(&policy, 2, Some(Duration::from_secs(20)));
        assert_eq!(asked, Duration::from_secs(20));
        let too_long = backoff(&policy, 2, Some(Duration::from_secs(3600)));
        assert_eq!(too_long, Duration::from_secs(60));
    }
}
