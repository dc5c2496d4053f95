//! Cron expressions, checked when the configuration is loaded.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;
use vigia_domain::Timestamp;

/// A parsed cron expression, evaluated in UTC: five fields (`min hour day month weekday`), or
/// six with seconds first; `@hourly`-style aliases work too.
#[derive(Debug, Clone)]
pub struct CronExpr {
    raw: String,
    cron: Cron,
}

impl CronExpr {
    /// Parses `raw`; the error explains what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("is empty; expected a cron expression such as \"*/15 * * * *\"".into());
        }
        let cron = Cron::from_str(trimmed).map_err(|e| {
            format!(
                "{trimmed:?} is not a valid cron expression ({e}); expected e.g. \"*/15 * * * *\""
            )
        })?;
        let parsed = Self {
            raw: trimmed.to_owned(),
            cron,
        };
        // A pattern that never matches (e.g. 30 February) is as wrong as a typo.
        if parsed.next_after(Timestamp::from_millis(0)).is_none() {
            return Err(format!("{trimmed:?} never fires"));
        }
        Ok(parsed)
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The first time strictly after `after` that the expression matches.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start: DateTime<Utc> = DateTime::from_timestamp_millis(after.millis())?;
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        Some(Timestamp::from_millis(next.timestamp_millis()))
    }
}

impl std::fmt::Display for CronExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> Timestamp {
        Timestamp::parse_rfc3339(rfc3339).expect("valid time")
    }

    #[test]
    fn every_fifteen_minutes_fires_on_the_quarter_hours() {
        let cron = CronExpr::parse("*/15 * * * *").expect("valid");
        assert_eq!(
            cron.next_after(at("2026-01-01T10:07:30Z")),
            Some(at("2026-01-01T10:15:00Z"))
        );
        assert_eq!(
            cron.next_after(at("2026-01-01T10:15:00Z")),
            Some(at("2026-01-01T10:30:00Z")),
            "strictly after"
        );
    }

    #[test]
    fn six_fields_count_seconds() {
        let cron = CronExpr::parse("*/2 * * * * *").expect("valid");
        assert_eq!(
            cron.next_after(at("2026-01-01T10:00:00.500Z")),
            Some(at("2026-01-01T10:00:02Z"))
        );
    }

    #[test]
    fn malformed_expressions_are_rejected_with_the_reason() {
        for bad in ["", "not a cron", "61 * * * *", "* * * *", "0 0 30 2 *"] {
            let error = CronExpr::parse(bad).expect_err(bad);
            assert!(!error.is_empty());
        }
        assert!(
            CronExpr::parse("every minute")
                .expect_err("rejected")
                .contains("not a valid cron")
        );
        assert!(
            CronExpr::parse("0 0 30 2 *")
                .expect_err("rejected")
                .contains("never fires")
        );
    }
}
