//! The aggregates a global report adds to [`incident_stats`]: mean times to acknowledge and
//! resolve, and SLA breaches as of a point in time.
//!
//! [`incident_stats`]: crate::incidents::stats::incident_stats

use vigia_domain::Timestamp;

use crate::{Db, StoreResult, composed, direct, direct_read};

/// Service figures over the incidents created in a period, as of a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ServiceFigures {
    /// Incidents created in the period.
    pub created: i64,
    /// Incidents resolved in the period (whenever created).
    pub resolved: i64,
    /// Of those created, how many were acknowledged, and the mean seconds it took.
    pub acknowledged: i64,
    pub mean_acknowledge_secs: Option<f64>,
    /// Of those created, how many are resolved, and the mean seconds it took.
    pub resolved_of_created: i64,
    pub mean_resolve_secs: Option<f64>,
    /// Of those created, acknowledged late or still unacknowledged past the target at `as_of`.
    pub acknowledge_breaches: i64,
    /// Of those created, resolved late or still unresolved past the target at `as_of`
    /// (time on hold does not count).
    pub resolve_breaches: i64,
    /// Incidents with either breach.
    pub breached_incidents: i64,
}

/// The SLA breach conditions as of `$T` (an acknowledgement or resolution after `$T` counts as
/// not yet done), mirroring `SlaClock::is_acknowledge_breached` / `is_resolve_breached`.
fn breach_conditions(t: &str) -> (String, String) {
    let ack = format!(
        "(CASE WHEN acknowledged_at <= {t} THEN acknowledged_at ELSE {t} END) > acknowledge_due_at"
    );
    let at = format!("(CASE WHEN resolved_at <= {t} THEN resolved_at ELSE {t} END)");
    let resolve = format!(
        "{at} > sla_started_at + sla_resolve_secs * 1000 + sla_paused_total_ms \
         + (CASE WHEN sla_paused_since IS NOT NULL AND resolved_at IS NULL THEN {at} - sla_paused_since ELSE 0 END)"
    );
    (ack, resolve)
}

type FiguresRow = (
    i64,
    i64,
    Option<f64>,
    i64,
    Option<f64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Mean times and SLA breaches of the incidents created in `[from, to)`, and the incidents
/// resolved in it: two statements, one pass over each index range, run at once.
#[tracing::instrument(skip(db))]
pub async fn service_figures(
    db: &Db,
    from: Timestamp,
    to: Timestamp,
    as_of: Timestamp,
) -> StoreResult<ServiceFigures> {
    let (ack, resolve) = breach_conditions("$3");
    let created = format!(
        "SELECT COUNT(*) AS created, COUNT(acknowledged_at) AS acknowledged, \
           CAST(AVG(acknowledged_at - created_at) / 1000.0 AS DOUBLE PRECISION) AS mtta, \
           COUNT(resolved_at) AS resolved_of_created, \
           CAST(AVG(resolved_at - created_at) / 1000.0 AS DOUBLE PRECISION) AS mttr, \
           CAST(SUM(CASE WHEN {ack} THEN 1 ELSE 0 END) AS BIGINT) AS acknowledge_breaches, \
           CAST(SUM(CASE WHEN {resolve} THEN 1 ELSE 0 END) AS BIGINT) AS resolve_breaches, \
           CAST(SUM(CASE WHEN {ack} OR {resolve} THEN 1 ELSE 0 END) AS BIGINT) AS breached \
         FROM incidents WHERE created_at >= $1 AND created_at < $2"
    );
    const RESOLVED: &str =
        "SELECT COUNT(*) AS resolved FROM incidents WHERE resolved_at >= $1 AND resolved_at < $2";
    let (from, to, as_of) = (from.millis(), to.millis(), as_of.millis());
    // On SQLite one after the other on one reader; on PostgreSQL at once.
    let (row, resolved): (FiguresRow, i64) = direct_read!(db,
        sqlite: |conn| {
            let row = direct::query_optional(conn, &created, &[&from, &to, &as_of], |r| {
                Ok((
                    r.get("created")?,
                    r.get("acknowledged")?,
                    r.get("mtta")?,
                    r.get("resolved_of_created")?,
                    r.get("mttr")?,
                    r.get("acknowledge_breaches")?,
                    r.get("resolve_breaches")?,
                    r.get("breached")?,
                ))
            })?;
            let resolved = direct::query_optional(conn, RESOLVED, &[&from, &to], |r| r.get("resolved"))?;
            Ok((row.unwrap_or_default(), resolved.unwrap_or(0)))
        },
        postgres: |pool| Ok(tokio::try_join!(
            sqlx::query_as(composed(&created))
                .bind(from)
                .bind(to)
                .bind(as_of)
                .fetch_one(pool),
            sqlx::query_scalar(RESOLVED).bind(from).bind(to).fetch_one(pool),
        )?),
    )?;
    let (created, acknowledged, mtta, resolved_of_created, mttr, ack_b, res_b, either) = row;
    Ok(ServiceFigures {
        created,
        resolved,
        acknowledged,
        mean_acknowledge_secs: mtta,
        resolved_of_created,
        mean_resolve_secs: mttr,
        acknowledge_breaches: ack_b.unwrap_or(0),
        resolve_breaches: res_b.unwrap_or(0),
        breached_incidents: either.unwrap_or(0),
    })
}
