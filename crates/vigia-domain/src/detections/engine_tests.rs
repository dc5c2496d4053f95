use super::*;

const MIN: i64 = 60_000;

fn conf(x: f64) -> Confidence {
    Confidence::parse("c", x).expect("confidence")
}

fn seed() -> RuleSpec {
    RuleSpec::seed_default()
}

/// Feeds `n` detections at `conf`, one a second from `from` ms; returns the last answer.
fn feed(window: &mut RuleWindow, spec: &RuleSpec, from: i64, n: i64, c: f64) -> Option<Candidate> {
    let mut last = None;
    for i in 0..n {
        last = window.observe(spec, from + i * 1000, conf(c));
    }
    last
}

#[test]
fn nine_detections_raise_nothing_and_the_tenth_raises_the_alert() {
    let spec = seed();
    let mut w = RuleWindow::new(None);
    assert_eq!(feed(&mut w, &spec, 0, 9, 0.9), None, "9 is below min_count");
    let candidate = w.observe(&spec, 9_000, conf(0.9)).expect("the 10th raises");
    assert_eq!(candidate.count, 10);
    assert_eq!(candidate.severity, Severity::High);
    assert_eq!(candidate.window_end, 9_000);
    assert_eq!(candidate.window_start, 9_000 - 15 * MIN);
}

#[test]
fn a_detection_exactly_one_window_older_than_the_newest_is_outside_it() {
    let spec = seed();
    let mut w = RuleWindow::new(None);
    // one at t=0, nine at exactly t=15min: the window (15min - 15min, 15min] excludes t=0
    assert_eq!(w.observe(&spec, 0, conf(0.9)), None);
    for _ in 0..8 {
        assert_eq!(w.observe(&spec, 15 * MIN, conf(0.9)), None);
    }
    assert_eq!(
        w.observe(&spec, 15 * MIN, conf(0.9)),
        None,
        "only 9 are inside"
    );
    assert_eq!(w.len(), 9, "the one at the boundary was dropped");
    // the same with the first 1 ms later is inside: 10 detections
    let mut w = RuleWindow::new(None);
    w.observe(&spec, 1, conf(0.9));
    for _ in 0..8 {
        w.observe(&spec, 15 * MIN, conf(0.9));
    }
    let c = w
        .observe(&spec, 15 * MIN, conf(0.9))
        .expect("10 inside, 1 ms in");
    assert_eq!(c.count, 10);
}

#[test]
fn an_average_of_exactly_the_floor_raises_nothing_and_just_above_it_does() {
    let spec = seed();
    let mut w = RuleWindow::new(None);
    assert_eq!(
        feed(&mut w, &spec, 0, 10, 0.5),
        None,
        "average exactly 0.5 is not above 0.5"
    );
    let mut w = RuleWindow::new(None);
    feed(&mut w, &spec, 0, 9, 0.5);
    let c = w.observe(&spec, 9_000, conf(0.500001)).expect("just above");
    assert_eq!(c.severity, Severity::Medium);
}

#[test]
fn an_average_of_exactly_0_8_is_medium_and_above_it_high() {
    let spec = seed();
    let mut w = RuleWindow::new(None);
    let c = feed(&mut w, &spec, 0, 10, 0.8).expect("raised");
    assert_eq!(c.sum_micros, 8_000_000, "ten times 0.8 sums exactly");
    assert_eq!(c.severity, Severity::Medium);
    assert_eq!(c.average(), conf(0.8));
    let mut w = RuleWindow::new(None);
    feed(&mut w, &spec, 0, 9, 0.8);
    assert_eq!(
        w.observe(&spec, 9_000, conf(0.800001)).map(|c| c.severity),
        Some(Severity::High)
    );
}

#[test]
fn a_low_floor_rule_raises_low_severity_alerts() {
    let mut spec = seed();
    spec.confidence_floor = conf(0.1);
    let mut w = RuleWindow::new(None);
    assert_eq!(
        feed(&mut w, &spec, 0, 10, 0.3).map(|c| c.severity),
        Some(Severity::Low)
    );
}

#[test]
fn the_cooldown_blocks_until_exactly_its_end() {
    let spec = seed();
    let mut w = RuleWindow::new(None);
    let first = feed(&mut w, &spec, 0, 10, 0.9).expect("first alert");
    w.raised(first.window_end);
    assert_eq!(
        w.observe(&spec, 10_000, conf(0.9)),
        None,
        "inside the cooldown"
    );
    let end = first.window_end + spec.cooldown_ms;
    // keep the window full up to the cooldown's end
    feed(&mut w, &spec, end - 10_000, 9, 0.9);
    assert_eq!(
        w.observe(&spec, end - 1, conf(0.9)),
        None,
        "1 ms before the end"
    );
    let again = w
        .observe(&spec, end, conf(0.9))
        .expect("exactly at the end");
    assert_eq!(again.window_end, end);
}

#[test]
fn a_candidate_not_raised_starts_no_cooldown() {
    // a silenced candidate: the caller does not call raised(), so the next detection raises
    let spec = seed();
    let mut w = RuleWindow::new(None);
    assert!(feed(&mut w, &spec, 0, 10, 0.9).is_some());
    assert!(w.observe(&spec, 10_000, conf(0.9)).is_some());
}

#[test]
fn out_of_order_arrival_raises_the_same_alert_as_in_order() {
    let spec = seed();
    let times = [9, 3, 7, 0, 5, 1, 8, 2, 6, 4].map(|s: i64| s * 1000);
    let mut w = RuleWindow::new(None);
    let mut answers = Vec::new();
    for at in times {
        answers.push(w.observe(&spec, at, conf(0.9)));
    }
    let raised: Vec<_> = answers.iter().flatten().collect();
    assert_eq!(raised.len(), 1, "{answers:?}");
    assert_eq!(raised[0].count, 10);
    assert_eq!(
        raised[0].window_end, 9_000,
        "the window ends at the newest detection"
    );
    assert!(answers[..9].iter().all(Option::is_none));
}

#[test]
fn a_late_detection_older_than_the_window_changes_nothing() {
    let spec = seed();
    let mut w = RuleWindow::new(None);
    feed(&mut w, &spec, 20 * MIN, 9, 0.9);
    let newest = 20 * MIN + 8_000;
    assert_eq!(w.observe(&spec, newest - 15 * MIN, conf(0.9)), None);
    assert_eq!(w.len(), 9, "too late to count");
    let late_but_inside = w.observe(&spec, newest - 15 * MIN + 1, conf(0.9));
    assert_eq!(late_but_inside.map(|c| c.count), Some(10));
}

#[test]
fn the_window_keeps_only_what_is_inside_it() {
    let spec = seed();
    let mut w = RuleWindow::new(None);
    for i in 0..10_000 {
        w.observe(&spec, i * 1000, conf(0.1));
    }
    assert_eq!(w.len(), 900, "15 minutes at one a second, start excluded");
}

#[test]
fn the_engine_hydrates_without_raising_and_remembers_the_last_alert() {
    let spec = seed();
    let mut engine = RuleEngine::new();
    let (s, r) = (SubjectId(1), AlertRuleId(1));
    assert!(!engine.contains(s, r));
    engine.hydrate(s, r, &spec, Some(0), (0..9).map(|i| (i * 1000, conf(0.9))));
    assert!(engine.contains(s, r));
    // the tenth would raise, but the last alert at t=0 is within the cooldown
    assert_eq!(engine.observe(s, r, &spec, 9_000, conf(0.9)), None);
    let mut fresh = RuleEngine::new();
    fresh.hydrate(s, r, &spec, None, (0..9).map(|i| (i * 1000, conf(0.9))));
    assert!(fresh.observe(s, r, &spec, 9_000, conf(0.9)).is_some());
}

#[test]
fn idle_windows_are_evicted_and_active_ones_kept() {
    let spec = seed();
    let mut engine = RuleEngine::new();
    engine.observe(SubjectId(1), AlertRuleId(1), &spec, 0, conf(0.9));
    engine.observe(SubjectId(2), AlertRuleId(1), &spec, 60 * MIN, conf(0.9));
    engine.evict_idle(61 * MIN, |_| Some(&spec));
    assert!(!engine.contains(SubjectId(1), AlertRuleId(1)));
    assert!(engine.contains(SubjectId(2), AlertRuleId(1)));
    engine.evict_idle(61 * MIN, |_| None);
    assert_eq!(engine.windows(), 0, "windows of a deleted rule go");
}
