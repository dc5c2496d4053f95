//! `vigia simulate`: virtual devices sending realistic detections to a running Vigía over
//! HTTP (batch endpoint) or MQTT, with scripted stress episodes that must raise alerts, a
//! progress bar and a summary. Subjects (`SIM-0001`, …, with consent) and devices
//! (`sim-cam-001`, …) are created in the database if missing; each device gets a fresh key.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use vigia_domain::Timestamp;
use vigia_domain::auth::{API_KEY_PREFIX, random_secret, secret_hash};
use vigia_domain::ids::{DepartmentId, DeviceId, UserId};
use vigia_store::detections::devices::{self, DeviceFields, DeviceKey};
use vigia_store::detections::subjects::{self, SubjectFields};
use vigia_store::users::{self, UserFilter};
use vigia_store::{ChangeAuthor, Db, StoreError, catalog};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    pub devices: usize,
    pub subjects: usize,
    /// Detections per second, all devices together.
    pub rate: u64,
    pub duration: Option<Duration>,
    /// Base URL of the server (HTTP mode).
    pub url: String,
    /// Broker (MQTT mode), e.g. `mqtt://127.0.0.1:1883`.
    pub mqtt: Option<String>,
    pub progress: bool,
}

/// What happened.
#[derive(Debug, Default)]
pub struct Summary {
    pub sent: AtomicU64,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub invalid: AtomicU64,
    pub alerts: AtomicU64,
    pub failed_requests: AtomicU64,
}

impl Summary {
    pub fn line(&self, elapsed: Duration) -> String {
        let sent = self.sent.load(Ordering::Relaxed);
        format!(
            "sent {sent} detections in {:.1} s ({:.0}/s): accepted {}, refused {}, invalid {}, alerts raised {}, failed requests {}",
            elapsed.as_secs_f64(),
            sent as f64 / elapsed.as_secs_f64().max(0.001),
            self.accepted.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.invalid.load(Ordering::Relaxed),
            self.alerts.load(Ordering::Relaxed),
            self.failed_requests.load(Ordering::Relaxed),
        )
    }
}

/// A device ready to send: code and its key.
struct SimDevice {
    code: String,
    key: String,
}

/// Creates (or reuses) the simulated subjects and devices; returns the devices with fresh keys.
async fn prepare(db: &Db, options: &Options) -> anyhow::Result<(Vec<SimDevice>, Vec<String>)> {
    let department = match catalog::list_departments(db).await?.first() {
        Some(d) => d.id,
        None => {
            crate::seed::ensure_catalog(db).await?;
            catalog::list_departments(db)
                .await?
                .first()
                .map(|d| d.id)
                .context("no department to put simulated subjects in")?
        }
    };
    let admin = users::list(
        db,
        &UserFilter {
            role: Some(vigia_domain::users::Role::Admin),
            ..Default::default()
        },
        None,
        1,
    )
    .await?
    .items
    .first()
    .map(|u| u.id)
    .context("no admin account: create one first (`vigia user create --role admin`)")?;
    let actor = ChangeAuthor {
        label: "simulator".into(),
        request_id: None,
    };
    let mut codes = Vec::with_capacity(options.subjects);
    for i in 1..=options.subjects {
        let code = format!("SIM-{i:04}");
        let fields = SubjectFields {
            code: code.clone(),
            name: format!("Sujeto simulado {i}"),
            department_id: DepartmentId(department.0),
            zone_id: None,
        };
        match subjects::create(db, &fields, true, &actor).await {
            Ok(_) | Err(StoreError::Duplicate { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        codes.push(code);
    }
    let existing = devices::list(db, None, 100_000).await?.items;
    let mut sims = Vec::with_capacity(options.devices);
    for i in 1..=options.devices {
        let code = format!("sim-cam-{i:03}");
        let secret = random_secret(API_KEY_PREFIX);
        let key = DeviceKey {
            key_prefix: secret.chars().take(12).collect(),
            key_hash: secret_hash(&secret),
        };
        match existing.iter().find(|d| d.code == code) {
            Some(device) => {
                devices::rotate_key(db, DeviceId(device.id.0), &key, UserId(admin.0), &actor)
                    .await?;
            }
            None => {
                let fields = DeviceFields {
                    code: code.clone(),
                    name: format!("Cámara simulada {i}"),
                    zone_id: None,
                    location: None,
                    active: true,
                };
                devices::create(db, &fields, &key, UserId(admin.0), &actor).await?;
            }
        }
        sims.push(SimDevice { code, key: secret });
    }
    Ok((sims, codes))
}

/// A small deterministic generator (xorshift), enough for label mixes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1_000_000.0
    }
}

/// The everyday mix of labels (percent).
const MIX: [(&str, u64); 9] = [
    ("neutral", 50),
    ("happy", 20),
    ("fatigue", 8),
    ("surprised", 5),
    ("sad", 4),
    ("stress", 4),
    ("angry", 5),
    ("fear", 3),
    ("disgust", 1),
];

fn everyday(rng: &mut Rng) -> &'static str {
    let mut roll = rng.below(100);
    for (label, share) in MIX {
        if roll < share {
            return label;
        }
        roll -= share;
    }
    "neutral"
}

/// Runs the simulation until `duration` or `stop`; returns the summary.
pub async fn run(
    db: &Db,
    options: Options,
    stop: CancellationToken,
) -> anyhow::Result<Arc<Summary>> {
    if options.devices == 0 || options.subjects == 0 || options.rate == 0 {
        bail!("--devices, --subjects and --rate must be at least 1");
    }
    let (sims, codes) = prepare(db, &options).await?;
    let summary = Arc::new(Summary::default());
    let started = Instant::now();
    let bar = options.progress.then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let mqtt = match &options.mqtt {
        Some(url) => Some(crate::simulate_mqtt::connect(url).await?),
        None => None,
    };
    let http = reqwest::Client::new();
    let url = format!(
        "{}/api/v1/detections/batch",
        options.url.trim_end_matches('/')
    );
    let tick = Duration::from_millis(200);
    let per_tick = (options.rate as f64 * tick.as_secs_f64()).max(1.0) as usize;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    let mut sequence = Timestamp::now().millis();
    let mut interval = tokio::time::interval(tick);
    let mut episode: Option<(usize, Instant)> = None;
    let mut next_episode = Instant::now() + Duration::from_secs(5);
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = interval.tick() => {}
        }
        if options.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        let now = Instant::now();
        if episode.is_none() && now >= next_episode {
            episode = Some((rng.below(codes.len() as u64) as usize, now));
        }
        if let Some((_, began)) = episode
            && now.duration_since(began) > Duration::from_secs(20)
        {
            episode = None;
            next_episode = now + Duration::from_secs(60);
        }
        let mut batches: Vec<Vec<Value>> = vec![Vec::new(); sims.len()];
        let at = Timestamp::now().millis();
        for i in 0..per_tick {
            sequence += 1;
            let device = i % sims.len();
            let subject = &codes[rng.below(codes.len() as u64) as usize];
            let label = everyday(&mut rng);
            let confidence = 0.4 + rng.unit() * 0.55;
            batches[device].push(detection(
                &sims[device].code,
                sequence,
                subject,
                label,
                confidence,
                at,
            ));
        }
        if let Some((subject, _)) = episode {
            // A stress episode: one clear stress detection per tick for this subject.
            sequence += 1;
            let label = if rng.below(4) == 0 { "sad" } else { "stress" };
            let confidence = 0.85 + rng.unit() * 0.1;
            batches[0].push(detection(
                &sims[0].code,
                sequence,
                &codes[subject],
                label,
                confidence,
                at,
            ));
        }
        for (device, batch) in sims.iter().zip(batches) {
            if batch.is_empty() {
                continue;
            }
            summary
                .sent
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            let body = json!({ "detections": batch });
            if let Some(client) = &mqtt {
                let mut payload = body;
                payload["key"] = json!(device.key);
                crate::simulate_mqtt::publish(client, &device.code, &payload).await;
                summary.accepted.fetch_add(
                    payload["detections"].as_array().map_or(0, Vec::len) as u64,
                    Ordering::Relaxed,
                );
                continue;
            }
            while in_flight.len() >= 16 {
                in_flight.join_next().await;
            }
            let (http, url, key, summary) = (
                http.clone(),
                url.clone(),
                device.key.clone(),
                summary.clone(),
            );
            in_flight.spawn(async move { send(&http, &url, &key, &body, &summary).await });
        }
        if let Some(bar) = &bar {
            bar.set_message(summary.line(started.elapsed()));
        }
    }
    while in_flight.join_next().await.is_some() {}
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(summary)
}

fn detection(
    device: &str,
    sequence: i64,
    subject: &str,
    label: &str,
    confidence: f64,
    at: i64,
) -> Value {
    json!({
        "client_id": format!("{device}-{sequence}"),
        "subject": subject,
        "label": label,
        "confidence": (confidence * 1000.0).round() / 1000.0,
        "timestamp": Timestamp::from_millis(at).to_rfc3339(),
    })
}

async fn send(http: &reqwest::Client, url: &str, key: &str, body: &Value, summary: &Summary) {
    let reply = http.post(url).bearer_auth(key).json(body).send().await;
    let answer: Option<Value> = match reply {
        Ok(response) if response.status().is_success() => response.json().await.ok(),
        Ok(response) => {
            tracing::warn!(status = %response.status(), "the server refused a simulated batch");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "cannot send a simulated batch");
            None
        }
    };
    let Some(answer) = answer else {
        summary.failed_requests.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let count = |field: &str| answer[field].as_u64().unwrap_or(0);
    summary
        .accepted
        .fetch_add(count("accepted"), Ordering::Relaxed);
    summary
        .refused
        .fetch_add(count("refused"), Ordering::Relaxed);
    summary
        .invalid
        .fetch_add(count("invalid"), Ordering::Relaxed);
    summary
        .alerts
        .fetch_add(count("alerts_raised"), Ordering::Relaxed);
}
