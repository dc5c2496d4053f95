//! `vigia seed incidents`: synthetic incidents for load tests and demos.
//!
//! Incidents are spread uniformly over the last `days` days. Their status is random but
//! weighted by age, as in a working installation: most incidents of the last day are open,
//! most older than a week are resolved or closed. Timestamps are consistent with the status
//! (acknowledged, resolved and closed in that order, never in the future) and the SLA columns
//! are what the lifecycle would leave. The store loads them in batches, one transaction each,
//! with their `created` events ([`incidents::stats::load_synthetic`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use vigia_domain::Timestamp;
use vigia_domain::catalog::{CategorySpec, DepartmentSpec, Urgency};
use vigia_domain::ids::{CategoryId, DepartmentId, UserId, ZoneId};
use vigia_domain::incidents::{
    AssignmentStrategy, IncidentVisibility, SlaClock, SlaPolicy, Source, Status,
};
use vigia_store::incidents::stats::{DAY_MS, SyntheticIncident};
use vigia_store::{ChangeAuthor, Db, catalog, incidents};

/// What `vigia seed incidents` loads.
#[derive(Debug, Clone, Copy)]
pub struct SeedOptions {
    pub count: u64,
    /// Incidents per transaction.
    pub batch: usize,
    /// Creation times fall within this many days before now.
    pub days: i64,
    /// The same seed loads the same incidents (relative to now).
    pub seed: u64,
}

/// Makes sure there is a category to file incidents under: the demo campus on a database
/// without users, otherwise one department with three categories. Returns what it did.
pub async fn ensure_catalog(db: &Db) -> anyhow::Result<Option<&'static str>> {
    if !catalog::list_categories(db).await?.is_empty() {
        return Ok(None);
    }
    if crate::demo::seed(db).await? {
        return Ok(Some(
            "loaded the demo campus (see `vigia serve --demo` for its accounts)",
        ));
    }
    let actor = ChangeAuthor::system();
    let spec = DepartmentSpec::parse("General", &[]).map_err(invalid)?;
    let department =
        catalog::create_department(db, &spec, AssignmentStrategy::Manual, &actor).await?;
    for (es, en, urgency) in [
        ("Mantenimiento general", "General maintenance", "medium"),
        ("Seguridad", "Security", "high"),
        ("Limpieza", "Cleaning", "low"),
    ] {
        let spec = CategorySpec::parse(es, Some(en), Some(department.id.0), Some(urgency))
            .map_err(invalid)?;
        catalog::create_category(db, &spec, &actor).await?;
    }
    Ok(Some(
        "created a department \"General\" with three categories",
    ))
}

fn invalid(errors: Vec<vigia_domain::FieldError>) -> anyhow::Error {
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    anyhow::anyhow!("invalid seed catalog: {}", list.join("; "))
}

/// Loads `options.count` synthetic incidents with a progress bar on the terminal; returns how
/// many were loaded and how long it took.
pub async fn incidents(db: &Db, options: &SeedOptions) -> anyhow::Result<(u64, Duration)> {
    let catalog = Catalog::read(db).await?;
    let mut rng = Rng(options.seed);
    let now = Timestamp::now();
    let bar = ProgressBar::new(options.count);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} incidents ({per_sec}, {eta} left)",
        )
        .context("progress bar template")?,
    );
    let started = Instant::now();
    let mut loaded = 0u64;
    while loaded < options.count {
        let size = (options.count - loaded).min(options.batch.max(1) as u64);
        let batch: Vec<SyntheticIncident> = (0..size)
            .map(|n| catalog.incident(&mut rng, now, options.days, loaded + n + 1))
            .collect();
        loaded += incidents::stats::load_synthetic(db, &batch)
            .await
            .with_context(|| format!("cannot store incidents {}..", loaded + 1))?;
        bar.set_position(loaded);
    }
    bar.finish();
    Ok((loaded, started.elapsed()))
}

/// What synthetic incidents are filed under.
struct Catalog {
    categories: Vec<(CategoryId, Option<DepartmentId>, Urgency)>,
    departments: Vec<DepartmentId>,
    zones: Vec<ZoneId>,
    staff: HashMap<DepartmentId, Vec<UserId>>,
    policies: HashMap<(CategoryId, Urgency), SlaPolicy>,
}

const TITLES: [&str; 8] = [
    "Fuga de agua en el baño",
    "Luminaria apagada",
    "Puerta que no cierra",
    "Proyector sin señal",
    "Wi-Fi intermitente",
    "Derrame en el pasillo",
    "Ascensor detenido",
    "Ventana rota",
];

impl Catalog {
    async fn read(db: &Db) -> anyhow::Result<Self> {
        let categories: Vec<_> = catalog::list_categories(db)
            .await?
            .into_iter()
            .map(|c| {
                (
                    c.id,
                    c.default_department_id.map(DepartmentId),
                    c.default_urgency,
                )
            })
            .collect();
        anyhow::ensure!(
            !categories.is_empty(),
            "synthetic incidents need at least one category"
        );
        let mut policies = HashMap::new();
        for &(category, _, _) in &categories {
            for urgency in Urgency::ALL {
                let policy = incidents::sla_policy(db, category, urgency).await?;
                policies.insert((category, urgency), policy);
            }
        }
        let mut staff: HashMap<DepartmentId, Vec<UserId>> = HashMap::new();
        for (department, user) in incidents::stats::assignable_staff(db).await? {
            staff.entry(department).or_default().push(user);
        }
        Ok(Self {
            categories,
            departments: catalog::list_departments(db)
                .await?
                .into_iter()
                .map(|d| d.id)
                .collect(),
            zones: catalog::list_zones(db)
                .await?
                .into_iter()
                .map(|z| z.id)
                .collect(),
            staff,
            policies,
        })
    }

    /// The `n`th synthetic incident.
    fn incident(&self, rng: &mut Rng, now: Timestamp, days: i64, n: u64) -> SyntheticIncident {
        let (category, default_department, default_urgency) = rng
            .pick(&self.categories)
            .unwrap_or((CategoryId(0), None, Urgency::Medium));
        let department = match default_department {
            Some(d) if rng.percent(90) => Some(d),
            _ => rng.pick(&self.departments).or(default_department),
        };
        let urgency = if rng.percent(60) {
            default_urgency
        } else {
            rng.pick(&Urgency::ALL).unwrap_or(default_urgency)
        };
        let created = Timestamp::from_millis(now.millis() - rng.between(0, days.max(1) * DAY_MS));
        let status = status_for_age(rng, now.millis() - created.millis());
        let policy = self
            .policies
            .get(&(category, urgency))
            .copied()
            .unwrap_or_else(|| SlaPolicy::suggested_for(urgency));
        let mut clock = SlaClock::start(&policy, created);
        let at_most_now = |t: i64| Timestamp::from_millis(t.min(now.millis()));
        let ack_ms = policy.acknowledge_within_secs() * 1000;
        let resolve_ms = policy.resolve_within_secs() * 1000;
        let acknowledged = (status != Status::New)
            .then(|| at_most_now(created.millis() + rng.between(60_000, 2 * ack_ms)));
        let resolved = acknowledged
            .filter(|_| matches!(status, Status::Resolved | Status::Closed))
            .map(|a| at_most_now(a.millis() + rng.between(300_000, resolve_ms * 3 / 2)));
        let closed = resolved
            .filter(|_| status == Status::Closed)
            .map(|r| at_most_now(r.millis() + rng.between(0, 2 * DAY_MS)));
        let paused = acknowledged
            .filter(|_| status == Status::OnHold)
            .map(|a| at_most_now(a.millis() + rng.between(0, resolve_ms / 2)));
        if let Some(since) = paused {
            clock.pause(since);
        }
        let resolve_due = matches!(
            status,
            Status::New | Status::Acknowledged | Status::InProgress
        )
        .then(|| clock.resolve_due(now));
        let assignee = department
            .filter(|_| status != Status::New || rng.percent(50))
            .and_then(|d| self.staff.get(&d))
            .and_then(|members| rng.pick(members));
        let public = rng.percent(70);
        let votes = if public {
            let r = rng.below(1000) as f64 / 1000.0;
            (r * r * r * 120.0) as i64
        } else {
            0
        };
        let updated = [acknowledged, resolved, closed, paused]
            .into_iter()
            .flatten()
            .fold(created, Timestamp::max);
        SyntheticIncident {
            category_id: category,
            department_id: department,
            assignee_id: assignee,
            title: format!("{} #{n}", TITLES[(n % TITLES.len() as u64) as usize]),
            description: "Incidente sintético generado por `vigia seed incidents`.".into(),
            zone_id: rng.pick(&self.zones).filter(|_| rng.percent(90)),
            urgency,
            status,
            source: if rng.percent(60) {
                Source::Web
            } else {
                Source::Api
            },
            visibility: if public {
                IncidentVisibility::Public
            } else {
                IncidentVisibility::Private
            },
            votes,
            version: match status {
                Status::New => 1,
                Status::Acknowledged => 2,
                Status::InProgress => 3,
                Status::OnHold | Status::Resolved => 4,
                Status::Closed => 5,
            },
            sla: clock.record(),
            acknowledge_due_at: clock.acknowledge_due(),
            resolve_due_at: resolve_due,
            acknowledged_at: acknowledged,
            resolved_at: resolved,
            closed_at: closed,
            created_at: created,
            updated_at: updated,
        }
    }
}

/// A status drawn with weights that depend on the incident's age.
fn status_for_age(rng: &mut Rng, age_ms: i64) -> Status {
    // new, acknowledged, in_progress, on_hold, resolved, closed
    let weights: [u64; 6] = if age_ms < DAY_MS {
        [45, 20, 25, 5, 5, 0]
    } else if age_ms < 7 * DAY_MS {
        [8, 7, 20, 5, 25, 35]
    } else {
        [1, 1, 2, 1, 15, 80]
    };
    let mut roll = rng.below(weights.iter().sum());
    for (status, weight) in Status::ALL.into_iter().zip(weights) {
        if roll < weight {
            return status;
        }
        roll -= weight;
    }
    Status::Closed
}

/// SplitMix64: small, fast and good enough for synthetic data (not for secrets).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below(hi.saturating_sub(lo).max(0) as u64) as i64
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        let i = self.below(items.len() as u64) as usize;
        items.get(i).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let category = CategoryId(1);
        Catalog {
            categories: vec![(category, Some(DepartmentId(1)), Urgency::High)],
            departments: vec![DepartmentId(1)],
            zones: vec![ZoneId(1)],
            staff: HashMap::from([(DepartmentId(1), vec![UserId(7)])]),
            policies: HashMap::new(),
        }
    }

    #[test]
    fn synthetic_timestamps_follow_the_lifecycle_and_never_reach_the_future() {
        let catalog = catalog();
        let mut rng = Rng(3);
        let now = Timestamp::from_millis(1_800_000_000_000);
        for n in 0..5_000 {
            let i = catalog.incident(&mut rng, now, 90, n);
            assert!(i.created_at <= now && i.created_at.millis() > now.millis() - 90 * DAY_MS);
            assert_eq!(i.acknowledged_at.is_some(), i.status != Status::New);
            assert_eq!(
                i.resolved_at.is_some(),
                matches!(i.status, Status::Resolved | Status::Closed)
            );
            assert_eq!(i.closed_at.is_some(), i.status == Status::Closed);
            let order = [
                Some(i.created_at),
                i.acknowledged_at,
                i.resolved_at,
                i.closed_at,
            ];
            let times: Vec<Timestamp> = order.into_iter().flatten().collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]), "{i:?}");
            assert!(i.updated_at <= now && i.updated_at >= i.created_at);
            assert_eq!(
                i.resolve_due_at.is_none(),
                !matches!(
                    i.status,
                    Status::New | Status::Acknowledged | Status::InProgress
                )
            );
            assert_eq!(i.sla.paused_since.is_some(), i.status == Status::OnHold);
            if i.visibility == IncidentVisibility::Private {
                assert_eq!(i.votes, 0);
            }
        }
    }

    #[test]
    fn old_incidents_are_mostly_closed_and_new_ones_mostly_open() {
        let mut rng = Rng(9);
        let open = |rng: &mut Rng, age| {
            (0..1000)
                .filter(|_| status_for_age(rng, age).is_open())
                .count()
        };
        assert!(open(&mut rng, 3_600_000) > 800);
        assert!(open(&mut rng, 30 * DAY_MS) < 100);
    }
}
