//! Detection ingestion shared by HTTP and MQTT: check, store (one grouped write per batch),
//! then feed the accepted detections to this node's rule engine and raise the alerts it finds.
//!
//! Rules are evaluated after the batch committed, under one lock per node: a window that is
//! not in memory yet (first detection of a subject since start) is rebuilt from the stored
//! detections first, so a restart neither forgets a window nor restarts a cooldown.

mod raise;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use vigia_domain::detections::{Confidence, IngestPolicy, RuleEngine, ValidDetection};
use vigia_domain::ids::{AlertRuleId, SubjectId};
use vigia_domain::{FieldError, Timestamp};
use vigia_store::detections::alerts::{self, Alert};
use vigia_store::detections::devices::Device;
use vigia_store::detections::ingest::{self, Outcome};
use vigia_store::detections::rules::{self, AlertRule, SilenceRecord};
use vigia_store::{Db, StoreResult};

use crate::realtime::detections::Tally;

/// How long cached rules and silences are trusted before they are read again (changes made
/// on this node apply at once; this bounds those made on another node).
const CACHE_TTL: Duration = Duration::from_secs(5);

/// How many of a subject's newest stored detections are read to find where a rebuilt window
/// ends (past the batch's own).
const LATEST: i64 = 256;

/// One detection's fate, as ingestion answers it.
#[derive(Debug, Clone)]
pub enum ItemResult {
    Accepted {
        id: i64,
    },
    Duplicate,
    /// Refused: the subject has not consented (counted).
    Refused(FieldError),
    /// Not a valid detection (nothing stored).
    Invalid(Vec<FieldError>),
}

/// What a batch came to.
#[derive(Debug, Clone, Default)]
pub struct BatchResult {
    pub items: Vec<ItemResult>,
    pub alerts: Vec<Alert>,
}

struct Cached {
    rules: Arc<Vec<AlertRule>>,
    silences: Arc<Vec<SilenceRecord>>,
    loaded: Option<Instant>,
}

struct EngineState {
    engine: RuleEngine,
    /// Ids already in a window rebuilt from storage, so a batch that committed before the
    /// rebuild does not count twice. Cleared with each eviction pass.
    hydrated: HashSet<i64>,
    last_eviction: Instant,
}

/// The node's ingestion service. Cheap to share (inside `AppState`).
pub struct Ingestion {
    pub policy: IngestPolicy,
    /// What the `detections` real-time topic publishes each second.
    tally: Tally,
    cache: std::sync::Mutex<Cached>,
    state: Mutex<EngineState>,
}

impl std::fmt::Debug for Ingestion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestion").finish_non_exhaustive()
    }
}

impl Ingestion {
    pub fn new(policy: IngestPolicy, tally: Tally) -> Self {
        Self {
            policy,
            tally,
            cache: std::sync::Mutex::new(Cached {
                rules: Arc::new(Vec::new()),
                silences: Arc::new(Vec::new()),
                loaded: None,
            }),
            state: Mutex::new(EngineState {
                engine: RuleEngine::new(),
                hydrated: HashSet::new(),
                last_eviction: Instant::now(),
            }),
        }
    }

    /// Rules or silences changed on this node: read them again before the next evaluation, and
    /// drop the windows of `rule` (its parameters may have changed).
    pub async fn invalidate(&self, rule: Option<AlertRuleId>) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.loaded = None;
        }
        if let Some(rule) = rule {
            self.state.lock().await.engine.forget_rule(rule);
        }
    }

    /// A subject was erased: forget its windows.
    pub async fn forget_subject(&self, subject: SubjectId) {
        self.state.lock().await.engine.forget_subject(subject);
    }

    async fn cached(&self, db: &Db) -> StoreResult<(Arc<Vec<AlertRule>>, Arc<Vec<SilenceRecord>>)> {
        if let Ok(cache) = self.cache.lock()
            && cache.loaded.is_some_and(|at| at.elapsed() < CACHE_TTL)
        {
            return Ok((cache.rules.clone(), cache.silences.clone()));
        }
        let all = rules::list(db).await?;
        let active: Vec<AlertRule> = all.into_iter().filter(|r| r.active).collect();
        // Silences that may still matter: late detections are evaluated at their own time.
        let silences = rules::list_silences(db, Timestamp::now().millis() - 86_400_000).await?;
        let (rules, silences) = (Arc::new(active), Arc::new(silences));
        if let Ok(mut cache) = self.cache.lock() {
            cache.rules = rules.clone();
            cache.silences = silences.clone();
            cache.loaded = Some(Instant::now());
        }
        Ok((rules, silences))
    }

    /// Checks, stores and evaluates a batch from `device`. `drafts` are the items already
    /// read from the wire: a valid detection or the errors that made it invalid.
    pub async fn ingest(
        &self,
        db: &Db,
        device: &Device,
        drafts: Vec<Result<ValidDetection, Vec<FieldError>>>,
    ) -> StoreResult<BatchResult> {
        let mut items: Vec<ItemResult> = Vec::with_capacity(drafts.len());
        let mut valid = Vec::with_capacity(drafts.len());
        let mut positions = Vec::with_capacity(drafts.len());
        for (i, draft) in drafts.into_iter().enumerate() {
            match draft {
                Ok(detection) => {
                    positions.push(i);
                    valid.push(detection);
                    items.push(ItemResult::Duplicate); // replaced below
                }
                Err(errors) => items.push(ItemResult::Invalid(errors)),
            }
        }
        if valid.is_empty() {
            return Ok(BatchResult {
                items,
                alerts: Vec::new(),
            });
        }
        let outcomes = ingest::ingest(db, device.id, valid.clone()).await?;
        let mut accepted = Vec::new();
        for ((position, outcome), detection) in positions.iter().zip(outcomes).zip(valid) {
            items[*position] = match outcome {
                Outcome::Accepted(a) => {
                    accepted.push((a, detection));
                    ItemResult::Accepted { id: a.id }
                }
                Outcome::Duplicate => ItemResult::Duplicate,
                Outcome::UnknownSubject => ItemResult::Invalid(vec![FieldError::new(
                    "subject",
                    format!("no subject has the code {:?}", detection.subject),
                )]),
                Outcome::NoConsent => ItemResult::Refused(FieldError::new(
                    "subject",
                    format!(
                        "subject {:?} has not consented to monitoring: the detection was refused and counted",
                        detection.subject
                    ),
                )),
            };
        }
        self.tally.add(
            accepted
                .iter()
                .map(|(a, d)| (a.department, d.label.as_str())),
        );
        let alerts = if accepted.is_empty() {
            Vec::new()
        } else {
            self.evaluate(db, device, &accepted).await?
        };
        Ok(BatchResult { items, alerts })
    }

    /// Feeds accepted detections to the rules; raises (and stores) what they find.
    async fn evaluate(
        &self,
        db: &Db,
        device: &Device,
        accepted: &[(ingest::Accepted, ValidDetection)],
    ) -> StoreResult<Vec<Alert>> {
        let (rules, silences) = self.cached(db).await?;
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let mut state = self.state.lock().await;
        if state.last_eviction.elapsed() > Duration::from_secs(60) {
            let by_id: HashMap<AlertRuleId, _> = rules.iter().map(|r| (r.id, r.spec())).collect();
            let now = Timestamp::now().millis();
            state.engine.evict_idle(now, |id| by_id.get(&id));
            state.hydrated.clear();
            state.last_eviction = Instant::now();
        }
        let mut raised = Vec::new();
        let own: HashSet<i64> = accepted.iter().map(|(x, _)| x.id).collect();
        for rule in rules.iter() {
            let spec = rule.spec();
            for (a, detection) in accepted {
                if !spec.watches(&detection.label) {
                    continue;
                }
                if !state.engine.contains(a.subject, rule.id) {
                    // The window will end at or after both this detection and the newest one
                    // stored before this batch: what is older than that, less a window, cannot
                    // be in it, so a late detection does not read the subject's whole past.
                    // (If the batch's own are all that is found, read from this detection.)
                    let stored = ingest::latest(db, a.subject, &rule.labels, LATEST)
                        .await?
                        .into_iter()
                        .find(|(id, _)| !own.contains(id))
                        .map(|(_, at)| at);
                    let end =
                        stored.map_or(detection.at.millis(), |n| n.max(detection.at.millis()));
                    let since = end - spec.window_ms;
                    let past = ingest::recent(db, a.subject, &rule.labels, since).await?;
                    let last = alerts::last_raised(db, a.subject, rule.id).await?;
                    let mut loaded = Vec::new();
                    for (id, at, confidence) in past {
                        if !own.contains(&id) {
                            state.hydrated.insert(id);
                            loaded.push((at, Confidence::from_micros(confidence)));
                        }
                    }
                    state
                        .engine
                        .hydrate(a.subject, rule.id, &spec, last, loaded);
                }
                if state.hydrated.contains(&a.id) {
                    continue;
                }
                let Some(candidate) = state.engine.observe(
                    a.subject,
                    rule.id,
                    &spec,
                    detection.at.millis(),
                    detection.confidence,
                ) else {
                    continue;
                };
                let at = Timestamp::from_millis(candidate.window_end);
                if let Some(silence) = silences
                    .iter()
                    .find(|s| s.silence().mutes(rule.id, a.subject, device.id, at))
                {
                    rules::count_suppressed(db, silence.id).await?;
                    continue;
                }
                let alert = raise::raise(db, rule, a, device, &candidate).await?;
                state
                    .engine
                    .raised(a.subject, rule.id, candidate.window_end);
                raised.push(alert);
            }
        }
        Ok(raised)
    }
}
