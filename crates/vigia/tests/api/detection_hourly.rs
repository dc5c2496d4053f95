//! The hourly detection rollups behind `/detections/stats`: whole hours read from them and the
//! partial edge hours from the minute rollups give the figures of the raw detections; erasure
//! and retention treat them like the minute rollups.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::Value;
use vigia_domain::Timestamp;

use crate::backend_tests;
use crate::devices::{detection, device, plant, subject};
use crate::helpers::TestApp;

const HOUR: i64 = 3_600_000;
const LABELS: [&str; 4] = ["stress", "happy", "sad", "neutral"];

/// One raw detection: (subject code, label, device key index, at ms).
type Raw = (String, &'static str, usize, i64);

/// Detections of three subjects on two devices spread over the 5 hours before `top` (an hour
/// start), a few minutes apart, so every hour holds some and no minute holds two of a subject.
fn spread(top: i64) -> Vec<Raw> {
    (0..150)
        .map(|i: i64| {
            let code = format!("EMP{:03}", [1, 3, 4][(i % 3) as usize]);
            let label = LABELS[((i / 3) % 4) as usize];
            (code, label, (i % 2) as usize, top - 5 * HOUR + i * 119_000)
        })
        .collect()
}

async fn send(app: &TestApp, keys: &[String], raw: &[Raw]) {
    for (k, key) in keys.iter().enumerate() {
        let items: Vec<Value> = raw
            .iter()
            .enumerate()
            .filter(|(_, r)| r.2 == k)
            .map(|(i, (code, label, _, at))| detection(&format!("h-{i}"), code, label, 0.8, *at))
            .collect();
        let sent = items.len() as i64;
        let reply = app
            .post(
                "/api/v1/detections/batch",
                Some(key),
                serde_json::json!({ "detections": items }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(
            reply.body["accepted"].as_i64(),
            Some(sent),
            "{:?}",
            reply.body
        );
    }
}

async fn stats(app: &TestApp, token: &str, from: i64, to: i64) -> Value {
    let path = format!(
        "/api/v1/detections/stats?from={}&to={}",
        urlencode(&Timestamp::from_millis(from).to_rfc3339()),
        urlencode(&Timestamp::from_millis(to).to_rfc3339())
    );
    let reply = app.get(&path, Some(token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// Label counts, per-hour label counts, (total, stress) per subject code and count per device
/// index of the raw detections in `[from, to)`.
type Figures = (
    BTreeMap<String, i64>,
    BTreeMap<(i64, String), i64>,
    BTreeMap<String, (i64, i64)>,
    BTreeMap<usize, i64>,
);

fn expected(raw: &[Raw], from: i64, to: i64) -> Figures {
    let mut f = Figures::default();
    for (code, label, dev, at) in raw.iter().filter(|r| r.3 >= from && r.3 < to) {
        *f.0.entry((*label).to_owned()).or_default() += 1;
        *f.1.entry((at.div_euclid(HOUR) * HOUR, (*label).to_owned()))
            .or_default() += 1;
        let s = f.2.entry(code.clone()).or_default();
        s.0 += 1;
        if matches!(*label, "stress" | "sad") {
            s.1 += 1;
        }
        *f.3.entry(*dev).or_default() += 1;
    }
    f
}

/// An hour as the API writes it (RFC 3339), in ms.
fn hour_ms(value: &Value) -> i64 {
    serde_json::from_value::<Timestamp>(value.clone())
        .expect("an RFC 3339 hour")
        .millis()
}

fn answered(body: &Value, devices: &[i64]) -> Figures {
    let mut f = Figures::default();
    for l in body["labels"].as_array().expect("labels") {
        f.0.insert(
            l["label"].as_str().expect("label").to_owned(),
            l["count"].as_i64().expect("count"),
        );
    }
    for h in body["per_hour"].as_array().expect("per_hour") {
        f.1.insert(
            (
                hour_ms(&h["hour"]),
                h["label"].as_str().expect("label").to_owned(),
            ),
            h["count"].as_i64().expect("count"),
        );
    }
    for s in body["top_subjects"].as_array().expect("top_subjects") {
        f.2.insert(
            s["code"].as_str().expect("code").to_owned(),
            (
                s["total"].as_i64().expect("total"),
                s["stress"].as_i64().expect("stress"),
            ),
        );
    }
    for d in body["devices"].as_array().expect("devices") {
        let id = d["device_id"].as_i64().expect("device_id");
        let index = devices.iter().position(|x| *x == id).expect("one of ours");
        f.3.insert(index, d["count"].as_i64().expect("count"));
    }
    f
}

/// Rows of an hourly table matching `condition` (constant SQL), read from the database.
async fn hourly_rows(app: &TestApp, table: &str, condition: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE {condition}");
    app.scalar(&sql, &[]).await.expect("count")
}

backend_tests! {
    async fn stats_over_whole_and_partial_hours_equal_the_figures_of_the_raw_detections(app: TestApp) {
        let p = plant(&app).await;
        subject(&app, &p.admin, "EMP003", p.department, true).await;
        subject(&app, &p.admin, "EMP004", p.department, true).await;
        let (second, second_key) = device(&app, &p.admin, "cam-02").await;
        let top = Timestamp::now().millis().div_euclid(HOUR) * HOUR;
        let raw = spread(top);
        send(&app, &[p.key.clone(), second_key], &raw).await;
        let devices = [p.device, second];
        // Partial hour, three whole hours, partial hour; then inside one hour; then whole hours.
        for (from, to) in [
            (top - 5 * HOUR + 17 * 60_000, top - HOUR + 23 * 60_000),
            (top - 3 * HOUR + 5 * 60_000, top - 3 * HOUR + 50 * 60_000),
            (top - 4 * HOUR, top - HOUR),
            (top - 6 * HOUR, top + HOUR),
        ] {
            let body = stats(&app, &p.admin.token, from, to).await;
            assert_eq!(answered(&body, &devices), expected(&raw, from, to), "[{from}, {to}): {body}");
        }
    }

    async fn stats_by_default_cover_the_24_whole_hours_ending_with_the_current_one(app: TestApp) {
        let p = plant(&app).await;
        subject(&app, &p.admin, "EMP003", p.department, true).await;
        subject(&app, &p.admin, "EMP004", p.department, true).await;
        let (second, second_key) = device(&app, &p.admin, "cam-02").await;
        let asked_at = Timestamp::now().millis();
        let raw = spread(asked_at.div_euclid(HOUR) * HOUR);
        send(&app, &[p.key.clone(), second_key], &raw).await;
        let reply = app.get("/api/v1/detections/stats", Some(&p.admin.token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let (from, to) = (hour_ms(&reply.body["from"]), hour_ms(&reply.body["to"]));
        assert_eq!(to.rem_euclid(HOUR), 0, "ends on a whole hour: {}", reply.body["to"]);
        assert!(to > asked_at && to <= Timestamp::now().millis() + HOUR, "the current hour's end");
        assert_eq!(to - from, 24 * HOUR);
        assert_eq!(answered(&reply.body, &[p.device, second]), expected(&raw, from, to));
    }

    async fn erasing_a_subject_folds_its_hourly_rows_into_the_anonymous_aggregate(app: TestApp) {
        let p = plant(&app).await;
        subject(&app, &p.admin, "EMP003", p.department, true).await;
        subject(&app, &p.admin, "EMP004", p.department, true).await;
        let top = Timestamp::now().millis().div_euclid(HOUR) * HOUR;
        let raw: Vec<Raw> = spread(top).into_iter().map(|mut r| { r.2 = 0; r }).collect();
        send(&app, std::slice::from_ref(&p.key), &raw).await;
        let (from, to) = (top - 5 * HOUR + 17 * 60_000, top + HOUR);
        let before = stats(&app, &p.admin.token, from, to).await;
        let erased = app.delete(&format!("/api/v1/subjects/{}", p.subject), Some(&p.admin.token)).await;
        assert_eq!(erased.status, StatusCode::OK, "{:?}", erased.body);
        let condition = format!("subject_id = {}", p.subject);
        assert_eq!(hourly_rows(&app, "detection_hourly_subjects", &condition).await, 0);
        assert!(hourly_rows(&app, "detection_hourly_subjects", "subject_id = 0").await > 0);
        let after = stats(&app, &p.admin.token, from, to).await;
        assert_eq!(after["labels"], before["labels"], "the counts stay, anonymous");
        assert_eq!(after["per_hour"], before["per_hour"]);
        assert_eq!(after["devices"], before["devices"]);
        let codes: Vec<&str> = after["top_subjects"].as_array().expect("top").iter()
            .filter_map(|s| s["code"].as_str()).collect();
        assert_eq!(codes.len(), 2, "{codes:?}");
        assert!(!codes.contains(&"EMP001"), "{codes:?}");
    }

    async fn retention_deletes_the_hourly_rows_of_hours_that_ended_before_the_limit(app: TestApp) {
        let p = plant(&app).await;
        subject(&app, &p.admin, "EMP003", p.department, true).await;
        subject(&app, &p.admin, "EMP004", p.department, true).await;
        let top = Timestamp::now().millis().div_euclid(HOUR) * HOUR;
        send(&app, std::slice::from_ref(&p.key), &spread(top).into_iter().map(|mut r| { r.2 = 0; r }).collect::<Vec<_>>()).await;
        let limit = top - 3 * HOUR + 30 * 60_000;
        vigia_store::detections::privacy::purge(&app.db, limit, limit).await.expect("purge");
        let kept_from = top - 3 * HOUR;
        for table in ["detection_hourly_labels", "detection_hourly_subjects", "detection_hourly_devices"] {
            assert_eq!(hourly_rows(&app, table, &format!("hour < {kept_from}")).await, 0, "{table}");
            assert!(hourly_rows(&app, table, &format!("hour = {kept_from}")).await > 0, "{table}: the straddling hour stays");
        }
        let body = stats(&app, &p.admin.token, top - 6 * HOUR, top + HOUR).await;
        let hours: Vec<i64> = body["per_hour"].as_array().expect("per_hour").iter()
            .map(|h| hour_ms(&h["hour"])).collect();
        assert!(!hours.is_empty() && hours.iter().all(|h| *h >= kept_from), "{hours:?}");
    }
}
