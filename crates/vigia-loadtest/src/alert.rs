//! `vigia-loadtest alert-latency`: how long after the detection that triggers an alert is
//! acknowledged does the alert reach an open WebSocket client (bench/detections.sh).
//!
//! Sets up a department, a device and one consenting subject per probe (the default rule's
//! cooldown is per subject, so each probe needs a fresh one). A probe sends nine `stress`
//! detections in one batch (under the rule's `min_count` of 10: no alert), then the tenth on
//! its own, and times from the tenth's `201` to the `alert.raised` of that subject on a
//! WebSocket subscribed to `alerts`. Probes run one at a time on an otherwise idle server.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::client::Incoming;

#[derive(clap::Args)]
pub struct AlertArgs {
    /// The server, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An administrator (makes the department, subjects and device, and listens for alerts).
    #[arg(long)]
    email: String,
    #[arg(long)]
    password: String,
    /// Alerts raised and timed, one after the other.
    #[arg(long, default_value_t = 50)]
    probes: usize,
}

pub async fn alert_latency(args: AlertArgs) -> anyhow::Result<()> {
    crate::require_loopback(&args.url)?;
    if args.probes == 0 {
        bail!("--probes must be at least 1");
    }
    let http = reqwest::Client::new();
    let token = crate::login(&http, &args.url, &args.email, &args.password).await?;
    let api = Api {
        http: &http,
        url: &args.url,
        token: &token,
    };
    let run = format!("{:08x}", rand::random::<u32>());
    let department = api
        .post(
            "/api/v1/departments",
            &json!({ "name": format!("Latency {run}"), "contact_emails": [] }),
        )
        .await?["id"]
        .as_i64()
        .context("no department id")?;
    let key = api
        .post(
            "/api/v1/devices",
            &json!({ "code": format!("lat-{run}"), "name": "Latency probe" }),
        )
        .await?["key"]
        .as_str()
        .context("no device key")?
        .to_owned();
    let ws_url = format!("{}/ws", args.url.replacen("http://", "ws://", 1));
    let mut socket = crate::connect(&ws_url, &token, &["alerts"]).await?;

    let mut after_ack = Vec::with_capacity(args.probes);
    let mut after_send = Vec::with_capacity(args.probes);
    for probe in 0..args.probes {
        let subject = format!("LAT-{run}-{probe:04}");
        api.post(
            "/api/v1/subjects",
            &json!({ "code": subject, "name": subject, "department_id": department, "consent": true }),
        )
        .await?;
        let now = time::OffsetDateTime::now_utc();
        let detection = |i: usize| {
            let at = now - time::Duration::milliseconds(10 * (10 - i as i64));
            json!({
                "client_id": format!("{subject}-{i}"), "subject": subject, "label": "stress",
                "confidence": 0.9, "timestamp": at.format(&Rfc3339).expect("an RFC 3339 time"),
            })
        };
        let nine: Vec<Value> = (0..9).map(detection).collect();
        let sent = api
            .with_key(&key)
            .post("/api/v1/detections/batch", &json!({ "detections": nine }))
            .await?;
        if sent["accepted"] != 9 {
            bail!("the nine detections were not all accepted: {sent}");
        }
        let send = Instant::now();
        let tenth = api
            .with_key(&key)
            .post("/api/v1/detections", &detection(9))
            .await?;
        let ack = Instant::now();
        if tenth["alerts_raised"] != 1 {
            bail!("the tenth detection raised no alert: {tenth}");
        }
        let arrived = wait_for_alert(&mut socket, &subject).await?;
        // An alert that arrived before the answer counts as 0: it was not late.
        after_ack.push(arrived.saturating_duration_since(ack));
        after_send.push(arrived.saturating_duration_since(send));
    }
    println!(
        "{} alerts: detection acknowledged → alert on the WebSocket {}; detection sent → alert {}",
        args.probes,
        summary(&mut after_ack),
        summary(&mut after_send)
    );
    Ok(())
}

/// Reads the socket until the `alert.raised` of `subject` arrives; returns when it did.
async fn wait_for_alert(
    socket: &mut crate::client::Client,
    subject: &str,
) -> anyhow::Result<Instant> {
    let needle = format!("\"subject_code\":\"{subject}\"");
    let wait = async {
        loop {
            match socket.next().await? {
                Incoming::Text(text)
                    if text.contains("\"alert.raised\"") && text.contains(&needle) =>
                {
                    return Ok(Instant::now());
                }
                Incoming::Text(_) | Incoming::Other => {}
                Incoming::Closed => bail!("the WebSocket closed while waiting for an alert"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .with_context(|| format!("no alert.raised for {subject} within 10 s"))?
}

fn summary(durations: &mut [Duration]) -> String {
    durations.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |p: f64| {
        ms(durations[((durations.len() as f64 * p).ceil() as usize).clamp(1, durations.len()) - 1])
    };
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.5),
        at(0.99),
        ms(*durations.last().expect("at least one probe"))
    )
}

/// JSON calls with one credential.
struct Api<'a> {
    http: &'a reqwest::Client,
    url: &'a str,
    token: &'a str,
}

impl<'a> Api<'a> {
    fn with_key(&self, key: &'a str) -> Api<'a> {
        Api {
            http: self.http,
            url: self.url,
            token: key,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(self.token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status} {body}");
        }
        Ok(body)
    }
}
