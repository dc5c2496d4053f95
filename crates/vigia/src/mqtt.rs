//! MQTT ingestion: Vigía subscribes (QoS 1) to `vigia/devices/+/detections` and
//! `vigia/devices/+/heartbeat` on the broker of `detections.mqtt_url`, and runs each message
//! through the same checks, storage and rules as the HTTP endpoints.
//!
//! A device authenticates each message with its API key in the payload (`"key"`); the key
//! must belong to the device whose code is in the topic, and be neither revoked nor expired.
//! Messages are acknowledged to the broker (manual PUBACK) only after their detections
//! committed, so the broker redelivers what was not stored; redelivered detections are
//! recognised by their `client_id`. A message that cannot be used (not JSON, wrong or revoked
//! key, unknown device) is logged and counted — on the device named in the topic when there
//! is one — and acknowledged, so it is not redelivered forever; the connection stays up.
//! A lost connection is retried with exponential backoff (0.5 s up to 30 s), and the
//! subscriptions are renewed on every connection, so a broker that was down at start or
//! restarted needs no restart of Vigía.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use vigia_domain::FieldError;
use vigia_domain::Timestamp;
use vigia_domain::auth::secret_hash;
use vigia_domain::detections::ValidDetection;
use vigia_http::AppState;
use vigia_http::routes::detections::{DetectionIn, MAX_BATCH, check};
use vigia_store::detections::devices::{self, Device};

pub const DETECTIONS: &str = "vigia/devices/+/detections";
pub const HEARTBEAT: &str = "vigia/devices/+/heartbeat";

/// Counters of this node's MQTT ingestion (also logged).
#[derive(Debug, Default)]
pub struct MqttStats {
    pub messages: AtomicU64,
    pub invalid: AtomicU64,
    pub accepted: AtomicU64,
    pub connections: AtomicU64,
}

/// `mqtt://host:port` (port 1883 by default) → host and port.
pub fn parse_url(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .with_context(|| format!("detections.mqtt_url {url:?} must look like mqtt://host:1883"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse().with_context(|| {
                format!("detections.mqtt_url {url:?}: the port is not a number")
            })?,
        ),
        None => (rest, 1883),
    };
    if host.is_empty() {
        bail!("detections.mqtt_url {url:?} names no host");
    }
    Ok((host.to_owned(), port))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectionsMessage {
    key: String,
    detections: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatMessage {
    key: String,
    firmware: Option<String>,
}

/// Runs until `shutdown`: connects, subscribes, ingests; reconnects with backoff.
pub async fn run(state: AppState, url: String, shutdown: CancellationToken, stats: Arc<MqttStats>) {
    let (host, port) = match parse_url(&url) {
        Ok(parts) => parts,
        Err(error) => {
            tracing::error!(%error, "MQTT ingestion is off");
            return;
        }
    };
    let client_id = format!("vigia-ingest-{:08x}", rand_id());
    let mut options = MqttOptions::new(client_id, host.clone(), port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_manual_acks(true)
        .set_clean_session(true)
        .set_max_packet_size(32 * 1024 * 1024, 32 * 1024 * 1024);
    let (client, mut events) = AsyncClient::new(options, 1024);
    let work = Arc::new(Semaphore::new(8));
    let mut backoff = Duration::from_millis(500);
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            event = events.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(500);
                stats.connections.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%host, port, "MQTT connected; subscribing to device topics");
                for topic in [DETECTIONS, HEARTBEAT] {
                    if let Err(error) = client.try_subscribe(topic, QoS::AtLeastOnce) {
                        tracing::error!(%error, topic, "cannot subscribe");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                stats.messages.fetch_add(1, Ordering::Relaxed);
                let Ok(permit) = work.clone().acquire_owned().await else {
                    break;
                };
                let (state, client, stats) = (state.clone(), client.clone(), stats.clone());
                tokio::spawn(async move {
                    let stored = handle(&state, &publish, &stats).await;
                    drop(permit);
                    // Not acknowledged when storage failed: the broker delivers it again.
                    if stored && let Err(error) = client.ack(&publish).await {
                        tracing::warn!(%error, "cannot acknowledge an MQTT message");
                    }
                });
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, %host, port, retry_in_ms = backoff.as_millis() as u64,
                    "MQTT connection lost or refused; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    let _ = client.try_disconnect();
}

fn rand_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id()
}

/// Handles one message; `false` only when it should be delivered again (storage failed).
async fn handle(state: &AppState, publish: &Publish, stats: &MqttStats) -> bool {
    let mut parts = publish.topic.split('/');
    let (Some("vigia"), Some("devices"), Some(code), Some(kind), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return invalid(
            state,
            None,
            stats,
            "topic is not vigia/devices/{code}/{kind}",
        )
        .await;
    };
    match kind {
        "detections" => match serde_json::from_slice::<DetectionsMessage>(&publish.payload) {
            Ok(message) => detections(state, code, message, stats).await,
            Err(error) => {
                invalid(
                    state,
                    Some(code),
                    stats,
                    &format!("not a detections message: {error}"),
                )
                .await
            }
        },
        "heartbeat" => match serde_json::from_slice::<HeartbeatMessage>(&publish.payload) {
            Ok(message) => match device(state, code, &message.key).await {
                Ok(device) => {
                    let firmware = message
                        .firmware
                        .as_deref()
                        .map(|f| f.chars().take(100).collect::<String>());
                    devices::heartbeat(&state.db, device.id, firmware.as_deref())
                        .await
                        .is_ok()
                }
                Err(why) => invalid(state, Some(code), stats, &why).await,
            },
            Err(error) => {
                invalid(
                    state,
                    Some(code),
                    stats,
                    &format!("not a heartbeat message: {error}"),
                )
                .await
            }
        },
        other => {
            invalid(
                state,
                Some(code),
                stats,
                &format!("unknown message kind {other:?}"),
            )
            .await
        }
    }
}

/// The device of `code` if `key` is its key, valid now.
async fn device(state: &AppState, code: &str, key: &str) -> Result<Device, String> {
    match devices::by_key_hash(&state.db, &secret_hash(key)).await {
        Ok(device) if device.code == code && device.active => Ok(device),
        Ok(device) if device.code != code => Err(format!(
            "the key belongs to device {:?}, not {code:?}",
            device.code
        )),
        Ok(_) => Err("the device is deactivated".into()),
        Err(_) => Err("unknown, revoked or expired key".into()),
    }
}

async fn detections(
    state: &AppState,
    code: &str,
    message: DetectionsMessage,
    stats: &MqttStats,
) -> bool {
    let device = match device(state, code, &message.key).await {
        Ok(device) => device,
        Err(why) => return invalid(state, Some(code), stats, &why).await,
    };
    if message.detections.is_empty() || message.detections.len() > MAX_BATCH {
        return invalid(
            state,
            Some(code),
            stats,
            "a message carries 1 to 10000 detections",
        )
        .await;
    }
    let now = Timestamp::now();
    let drafts: Vec<Result<ValidDetection, Vec<FieldError>>> = message
        .detections
        .into_iter()
        .map(|item| match serde_json::from_value::<DetectionIn>(item) {
            Ok(wire) => check(state, &device, &wire, now),
            Err(error) => Err(vec![FieldError::new("detection", error.to_string())]),
        })
        .collect();
    match state.ingestion.ingest(&state.db, &device, drafts).await {
        Ok(result) => {
            let accepted = result
                .items
                .iter()
                .filter(|i| matches!(i, vigia_http::detections::ItemResult::Accepted { .. }))
                .count();
            let rejected = result
                .items
                .iter()
                .filter(|i| matches!(i, vigia_http::detections::ItemResult::Invalid(_)))
                .count();
            stats.accepted.fetch_add(accepted as u64, Ordering::Relaxed);
            if rejected > 0 {
                tracing::warn!(
                    device = code,
                    rejected,
                    "MQTT detections refused as invalid"
                );
            }
            true
        }
        Err(error) => {
            tracing::error!(%error, device = code, "cannot store MQTT detections; the broker will deliver them again");
            false
        }
    }
}

/// Logs and counts a message that cannot be used; it is acknowledged (`true`).
async fn invalid(state: &AppState, code: Option<&str>, stats: &MqttStats, why: &str) -> bool {
    stats.invalid.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        device = code.unwrap_or("?"),
        why,
        "invalid MQTT message counted and dropped"
    );
    if let Some(code) = code
        && let Err(error) = devices::count_invalid_by_code(&state.db, code).await
    {
        tracing::warn!(%error, "cannot count an invalid MQTT message");
    }
    true
}
