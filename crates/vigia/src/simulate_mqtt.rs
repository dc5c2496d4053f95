//! The simulator's MQTT side: one publisher connection, QoS 1.

use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::Value;

pub async fn connect(url: &str) -> anyhow::Result<AsyncClient> {
    let (host, port) = crate::mqtt::parse_url(url)?;
    let mut options = MqttOptions::new(format!("vigia-sim-{}", std::process::id()), host, port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(32 * 1024 * 1024, 32 * 1024 * 1024);
    let (client, mut events) = AsyncClient::new(options, 1024);
    tokio::spawn(async move {
        loop {
            if let Err(error) = events.poll().await {
                tracing::warn!(%error, "simulator: MQTT connection lost; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    Ok(client)
}

pub async fn publish(client: &AsyncClient, device: &str, payload: &Value) {
    let topic = format!("vigia/devices/{device}/detections");
    if let Err(error) = client
        .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
        .await
    {
        tracing::warn!(%error, "simulator: cannot publish");
    }
}
