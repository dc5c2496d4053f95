//! Incremental evaluation of alert rules: one sliding window per subject and rule.
//!
//! A window keeps only the detections of the rule's labels that are inside it, in time order,
//! with their running count and confidence sum. A detection in order is appended and the ones
//! that fell out of the window are dropped from the front: constant amortized cost, no rescan.
//! A late detection is inserted at its place from the back (cost: the detections newer than
//! it, bounded by the allowed lateness); one older than the window's start no longer changes
//! the window and is ignored by the rule (it is still stored and counted).

use std::collections::{HashMap, VecDeque};

use super::input::Confidence;
use super::rules::{RuleSpec, Severity};
use crate::ids::{AlertRuleId, SubjectId};

/// A rule whose condition holds after a detection: the caller checks silences, raises the
/// alert and then calls [`RuleWindow::raised`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub count: u32,
    pub sum_micros: u64,
    /// The window's start (excluded) and end (included; the newest detection's time), in ms.
    pub window_start: i64,
    pub window_end: i64,
    pub severity: Severity,
}

impl Candidate {
    pub fn average(&self) -> Confidence {
        Confidence::from_micros((self.sum_micros / u64::from(self.count.max(1))) as i64)
    }
}

/// One subject's window for one rule.
#[derive(Debug, Clone, Default)]
pub struct RuleWindow {
    /// (time in ms, confidence in millionths), oldest first.
    entries: VecDeque<(i64, u32)>,
    sum: u64,
    newest: Option<i64>,
    last_alert: Option<i64>,
}

impl RuleWindow {
    /// A window that remembers when the last alert of its rule and subject was raised.
    pub fn new(last_alert: Option<i64>) -> Self {
        Self {
            last_alert,
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds one detection (of one of the rule's labels) taken at `at` ms and says whether the
    /// rule's condition now holds outside the cooldown.
    pub fn observe(
        &mut self,
        spec: &RuleSpec,
        at: i64,
        confidence: Confidence,
    ) -> Option<Candidate> {
        if let Some(newest) = self.newest
            && at <= newest - spec.window_ms
        {
            return None; // older than the window: cannot change it
        }
        let micros = confidence.micros();
        let mut index = self.entries.len();
        while index > 0 && self.entries[index - 1].0 > at {
            index -= 1;
        }
        self.entries.insert(index, (at, micros));
        self.sum += u64::from(micros);
        let newest = self.newest.map_or(at, |n| n.max(at));
        self.newest = Some(newest);
        while let Some(&(oldest, micros)) = self.entries.front() {
            if oldest > newest - spec.window_ms {
                break;
            }
            self.entries.pop_front();
            self.sum -= u64::from(micros);
        }
        let count = self.entries.len() as u64;
        if count < u64::from(spec.min_count)
            || self.sum <= u64::from(spec.confidence_floor.micros()) * count
        {
            return None;
        }
        if let Some(last) = self.last_alert
            && newest < last + spec.cooldown_ms
        {
            return None;
        }
        Some(Candidate {
            count: count as u32,
            sum_micros: self.sum,
            window_start: newest - spec.window_ms,
            window_end: newest,
            severity: Severity::of(self.sum, count),
        })
    }

    /// Records that an alert was raised at `at` ms (starts the cooldown).
    pub fn raised(&mut self, at: i64) {
        self.last_alert = Some(self.last_alert.map_or(at, |last| last.max(at)));
    }

    /// True when nothing in this window can matter any more at `now` ms: its newest detection
    /// left the window and the cooldown is over (a later detection starts afresh either way).
    fn is_idle(&self, spec: &RuleSpec, now: i64) -> bool {
        let newest = self.newest.unwrap_or(i64::MIN / 2);
        let last = self.last_alert.unwrap_or(i64::MIN / 2);
        newest <= now - spec.window_ms && now >= last + spec.cooldown_ms
    }
}

/// Every window of one node, keyed by subject and rule.
#[derive(Debug, Default)]
pub struct RuleEngine {
    windows: HashMap<(SubjectId, AlertRuleId), RuleWindow>,
}

impl RuleEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the window of `subject` and `rule` is in memory (otherwise the caller loads its
    /// recent past with [`RuleEngine::hydrate`] first).
    pub fn contains(&self, subject: SubjectId, rule: AlertRuleId) -> bool {
        self.windows.contains_key(&(subject, rule))
    }

    /// Builds a window from stored detections (time ms, confidence) and the last alert's time,
    /// without raising anything for them (they were evaluated when they arrived).
    pub fn hydrate(
        &mut self,
        subject: SubjectId,
        rule: AlertRuleId,
        spec: &RuleSpec,
        last_alert: Option<i64>,
        past: impl IntoIterator<Item = (i64, Confidence)>,
    ) {
        let mut window = RuleWindow::new(last_alert);
        for (at, confidence) in past {
            let _ = window.observe(spec, at, confidence);
        }
        self.windows.insert((subject, rule), window);
    }

    /// Feeds one detection of a label `spec` watches.
    pub fn observe(
        &mut self,
        subject: SubjectId,
        rule: AlertRuleId,
        spec: &RuleSpec,
        at: i64,
        confidence: Confidence,
    ) -> Option<Candidate> {
        self.windows
            .entry((subject, rule))
            .or_default()
            .observe(spec, at, confidence)
    }

    pub fn raised(&mut self, subject: SubjectId, rule: AlertRuleId, at: i64) {
        self.windows.entry((subject, rule)).or_default().raised(at);
    }

    /// Drops every window of a rule (changed or deleted) or of a subject (erased).
    pub fn forget_rule(&mut self, rule: AlertRuleId) {
        self.windows.retain(|(_, r), _| *r != rule);
    }

    pub fn forget_subject(&mut self, subject: SubjectId) {
        self.windows.retain(|(s, _), _| *s != subject);
    }

    /// Drops windows that can no longer matter at `now` ms (memory stays proportional to the
    /// subjects active within a window or a cooldown). `spec_of` gives each rule's spec.
    pub fn evict_idle<'a>(
        &mut self,
        now: i64,
        spec_of: impl Fn(AlertRuleId) -> Option<&'a RuleSpec>,
    ) {
        self.windows
            .retain(|(_, rule), window| match spec_of(*rule) {
                Some(spec) => !window.is_idle(spec, now),
                None => false,
            });
    }

    pub fn windows(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
