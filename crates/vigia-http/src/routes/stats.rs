//! Statistics for dashboards and the public rankings. Staff and API keys count only their
//! departments' incidents: the scope comes from [`ReadScope`], as for every incident read, and
//! the store narrows it to the departments (see [`vigia_store::incidents::stats`]). Reporters
//! get the basic counts of their own and the public incidents; the workload is for staff.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vigia_domain::Timestamp;
use vigia_domain::auth::Principal;
use vigia_domain::ids::{CategoryId, DepartmentId};
use vigia_domain::incidents::ReadScope;
use vigia_domain::users::Role;
use vigia_store::incidents::stats::{self, Ranked, StatsFilter, Workload};

use super::{Routes, op};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Query};
use crate::state::AppState;

pub fn router(routes: Routes) -> Routes {
    let routes = op!(routes, incident_stats);
    let routes = op!(routes, staff_stats);
    op!(routes, rankings)
}

/// The range a query covers when it names none.
const DEFAULT_RANGE_DAYS: i64 = 30;
/// The longest range a query may cover (the per-day series has one entry per day).
const MAX_RANGE_DAYS: i64 = 366;

/// The incidents a caller's figures count: a person's [`ReadScope`]; an API key with
/// `reports:read` counts its departments' incidents, as their staff would.
fn stats_scope(principal: &Principal) -> ReadScope {
    match principal {
        Principal::ApiKey(key) => ReadScope::Limited {
            departments: key.departments.clone(),
            reporter: None,
            staff: true,
        },
        person => ReadScope::of(person),
    }
}

/// Parses the creation range: `[created_from, created_to)`, by default the 30 days up to now.
fn parse_range(
    created_from: Option<Timestamp>,
    created_to: Option<Timestamp>,
    now: Timestamp,
) -> ApiResult<(Timestamp, Timestamp)> {
    let to = created_to.unwrap_or(now);
    let from = created_from.unwrap_or(to.plus_seconds(-DEFAULT_RANGE_DAYS * 86_400));
    if from >= to {
        return Err(ApiError::field("created_from", "must be before created_to"));
    }
    if to.millis() - from.millis() > MAX_RANGE_DAYS * stats::DAY_MS {
        return Err(ApiError::field(
            "created_from",
            format!("the range may span at most {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok((from, to))
}

// --- counts ------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Start of the range (inclusive). Default: 30 days before `created_to`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_from: Option<Timestamp>,
    /// End of the range (exclusive). Default: now. At most 366 days after `created_from`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_to: Option<Timestamp>,
    pub department: Option<i64>,
    pub category: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotalsOut {
    /// Incidents created in the range.
    pub created: i64,
    /// Of those, the ones not yet resolved.
    pub open: i64,
    /// Incidents resolved in the range, whenever they were created.
    pub resolved: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusCountOut {
    pub status: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UrgencyCountOut {
    pub urgency: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryCountOut {
    pub category_id: i64,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DepartmentCountOut {
    /// Null for incidents not routed to any department yet.
    pub department_id: Option<i64>,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneCountOut {
    /// Null for incidents without a zone.
    pub zone_id: Option<i64>,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayOut {
    /// A UTC date, e.g. `2026-03-01`.
    pub date: String,
    /// Incidents created that day (within the range).
    pub created: i64,
    /// Incidents resolved that day (within the range).
    pub resolved: i64,
}

/// Counts of the incidents created in the range. Every status and urgency is listed;
/// categories, departments and zones only when they have incidents.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsOut {
    #[schema(value_type = String, format = DateTime)]
    pub created_from: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub created_to: Timestamp,
    /// Which incidents are counted: `all` (admins), `departments` (the caller's departments'),
    /// or `own_and_public` (a reporter's own incidents and the public ones).
    pub counted: String,
    pub totals: TotalsOut,
    pub by_status: Vec<StatusCountOut>,
    pub by_urgency: Vec<UrgencyCountOut>,
    pub by_category: Vec<CategoryCountOut>,
    pub by_department: Vec<DepartmentCountOut>,
    pub by_zone: Vec<ZoneCountOut>,
    /// Every UTC date of the range, oldest first.
    pub per_day: Vec<DayOut>,
}

/// Incident counts by status, urgency, category, department and zone, and created and resolved
/// per day. Admins count every incident; staff and API keys with `reports:read` their
/// departments'; reporters the basic figures of what they may see: their own incidents and the
/// public ones (`counted` says which).
#[utoipa::path(get, path = "/api/v1/stats", tag = "stats", params(StatsQuery), security(("bearer" = [])),
    responses((status = 200, body = StatsOut), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
async fn incident_stats(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<StatsOut>> {
    let reporter = match &auth.0 {
        Principal::User(u) if u.role == Role::Reporter => Some(u.user_id),
        _ => {
            auth.require_staff()?;
            None
        }
    };
    let (created_from, created_to) = parse_range(q.created_from, q.created_to, Timestamp::now())?;
    let filter = StatsFilter {
        created_from,
        created_to,
        department: q.department.map(DepartmentId),
        category: q.category.map(CategoryId),
    };
    let scope = stats_scope(&auth.0);
    let (s, counted) = match reporter {
        Some(me) => (
            stats::reporter_stats(&state.db, me, &filter).await?,
            "own_and_public",
        ),
        None if scope == ReadScope::All => (
            stats::incident_stats(&state.db, &scope, &filter).await?,
            "all",
        ),
        None => (
            stats::incident_stats(&state.db, &scope, &filter).await?,
            "departments",
        ),
    };
    let totals = TotalsOut {
        created: s.by_status.iter().map(|c| c.count).sum(),
        open: s
            .by_status
            .iter()
            .filter(|c| c.key.is_open())
            .map(|c| c.count)
            .sum(),
        resolved: s.per_day.iter().map(|d| d.resolved).sum(),
    };
    Ok(Json(StatsOut {
        created_from,
        created_to,
        counted: counted.into(),
        totals,
        by_status: s
            .by_status
            .into_iter()
            .map(|c| StatusCountOut {
                status: c.key.as_str().into(),
                count: c.count,
            })
            .collect(),
        by_urgency: s
            .by_urgency
            .into_iter()
            .map(|c| UrgencyCountOut {
                urgency: c.key.as_str().into(),
                count: c.count,
            })
            .collect(),
        by_category: s
            .by_category
            .into_iter()
            .map(|c| CategoryCountOut {
                category_id: c.key.0,
                count: c.count,
            })
            .collect(),
        by_department: s
            .by_department
            .into_iter()
            .map(|c| DepartmentCountOut {
                department_id: c.key.map(|d| d.0),
                count: c.count,
            })
            .collect(),
        by_zone: s
            .by_zone
            .into_iter()
            .map(|c| ZoneCountOut {
                zone_id: c.key.map(|z| z.0),
                count: c.count,
            })
            .collect(),
        per_day: s
            .per_day
            .into_iter()
            .map(|d| DayOut {
                date: d.date.to_string(),
                created: d.created,
                resolved: d.resolved,
            })
            .collect(),
    }))
}

// --- staff workload ----------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StaffStatsQuery {
    /// Start of the range (inclusive). Default: 30 days before `created_to`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_from: Option<Timestamp>,
    /// End of the range (exclusive). Default: now.
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_to: Option<Timestamp>,
    pub department: Option<i64>,
}

/// Workload of a department or an assignee, over incidents created in the range.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkloadOut {
    /// Not yet resolved.
    pub open: i64,
    /// Open and past the acknowledge target (status `new`) or the resolve target (otherwise).
    pub overdue: i64,
    /// Mean seconds from creation to acknowledgement; null when none was acknowledged.
    pub mean_time_to_acknowledge_secs: Option<f64>,
    /// Mean seconds from creation to resolution; null when none was resolved.
    pub mean_time_to_resolve_secs: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DepartmentWorkloadOut {
    pub department_id: i64,
    pub name: String,
    #[serde(flatten)]
    pub workload: WorkloadOut,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssigneeWorkloadOut {
    /// Null for the unassigned incidents.
    pub assignee_id: Option<i64>,
    pub display_name: Option<String>,
    #[serde(flatten)]
    pub workload: WorkloadOut,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StaffStatsOut {
    #[schema(value_type = String, format = DateTime)]
    pub created_from: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub created_to: Timestamp,
    /// Every department in the caller's scope.
    pub departments: Vec<DepartmentWorkloadOut>,
    /// Every assignee with incidents in the range, the unassigned last.
    pub assignees: Vec<AssigneeWorkloadOut>,
}

fn workload_out<K>(w: &Workload<K>) -> WorkloadOut {
    WorkloadOut {
        open: w.open,
        overdue: w.overdue,
        mean_time_to_acknowledge_secs: w.mean_acknowledge_secs,
        mean_time_to_resolve_secs: w.mean_resolve_secs,
    }
}

/// Open and overdue incidents and mean times to acknowledge and resolve, per department and per
/// assignee, over incidents created in the range (staff and admins). Staff see their
/// departments only.
#[utoipa::path(get, path = "/api/v1/stats/staff", tag = "stats", params(StaffStatsQuery), security(("bearer" = [])),
    responses((status = 200, body = StaffStatsOut), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
async fn staff_stats(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<StaffStatsQuery>,
) -> ApiResult<Json<StaffStatsOut>> {
    auth.user()?;
    auth.require_staff()?;
    let now = Timestamp::now();
    let (created_from, created_to) = parse_range(q.created_from, q.created_to, now)?;
    let filter = StatsFilter {
        created_from,
        created_to,
        department: q.department.map(DepartmentId),
        category: None,
    };
    let s = stats::staff_stats(&state.db, &stats_scope(&auth.0), &filter, now).await?;
    Ok(Json(StaffStatsOut {
        created_from,
        created_to,
        departments: s
            .departments
            .iter()
            .map(|w| DepartmentWorkloadOut {
                department_id: w.key.0,
                name: w.name.clone().unwrap_or_default(),
                workload: workload_out(w),
            })
            .collect(),
        assignees: s
            .assignees
            .iter()
            .map(|w| AssigneeWorkloadOut {
                assignee_id: w.key.map(|u| u.0),
                display_name: w.name.clone(),
                workload: workload_out(w),
            })
            .collect(),
    }))
}

// --- public rankings ---------------------------------------------------------------------------

/// The most incidents a ranking lists per group.
const MAX_RANKING: u32 = 50;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RankingQuery {
    /// Incidents per zone and per category: 1 to 50, default 10.
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
}

/// A public incident in a ranking: no personal data.
#[derive(Debug, Serialize, ToSchema)]
pub struct RankedOut {
    pub id: i64,
    pub code: String,
    pub title: String,
    pub votes: i64,
    pub status: String,
    pub zone_id: Option<i64>,
    pub category_id: i64,
}

impl From<Ranked> for RankedOut {
    fn from(r: Ranked) -> Self {
        Self {
            id: r.id.0,
            code: r.code.to_string(),
            title: r.title,
            votes: r.votes,
            status: r.status.as_str().into(),
            zone_id: r.zone_id.map(|z| z.0),
            category_id: r.category_id.0,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneRankingOut {
    pub zone_id: i64,
    /// Most voted first.
    pub incidents: Vec<RankedOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryRankingOut {
    pub category_id: i64,
    /// Most voted first.
    pub incidents: Vec<RankedOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RankingsOut {
    /// Zones with public incidents.
    pub by_zone: Vec<ZoneRankingOut>,
    /// Categories with public incidents.
    pub by_category: Vec<CategoryRankingOut>,
}

/// The most voted public incidents per zone and per category. No sign-in needed.
#[utoipa::path(get, path = "/api/v1/public/rankings", tag = "stats", params(RankingQuery),
    responses((status = 200, body = RankingsOut), (status = 422, body = Problem)))]
async fn rankings(
    State(state): State<AppState>,
    Query(q): Query<RankingQuery>,
) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(10);
    if !(1..=MAX_RANKING).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("must be between 1 and {MAX_RANKING}"),
        ));
    }
    let r = stats::rankings(&state.db, limit).await?;
    let out = RankingsOut {
        by_zone: r
            .by_zone
            .into_iter()
            .map(|(zone, items)| ZoneRankingOut {
                zone_id: zone.0,
                incidents: items.into_iter().map(RankedOut::from).collect(),
            })
            .collect(),
        by_category: r
            .by_category
            .into_iter()
            .map(|(category, items)| CategoryRankingOut {
                category_id: category.0,
                incidents: items.into_iter().map(RankedOut::from).collect(),
            })
            .collect(),
    };
    let cache = HeaderValue::from_static("public, max-age=30");
    Ok(([(header::CACHE_CONTROL, cache)], Json(out)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_defaults_to_thirty_days_and_must_be_short_and_ordered() {
        let now = Timestamp::from_millis(100 * stats::DAY_MS);
        let (from, to) = parse_range(None, None, now).expect("default range");
        assert_eq!((from.millis(), to), (70 * stats::DAY_MS, now));
        assert!(parse_range(Some(now), Some(now), now).is_err());
        let long_ago = Timestamp::from_millis(now.millis() - 367 * stats::DAY_MS);
        assert!(parse_range(Some(long_ago), None, now).is_err());
    }
}
