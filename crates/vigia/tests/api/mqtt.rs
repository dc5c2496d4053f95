//! MQTT ingestion through real Mosquitto brokers: the shared one on 127.0.0.1:1883, and one
//! started by the test on a port of its own when the test needs to stop and restart it.

use std::time::Duration;

use reqwest::StatusCode;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{Value, json};

use crate::devices::{device, stress_run, subject};
use crate::helpers::{Backend, TestApp, TestUser, spawn_app_with};

/// A publisher on `port`, its event loop driven in the background.
async fn publisher(port: u16) -> AsyncClient {
    let id = format!("test-pub-{}", uuid::Uuid::new_v4().simple());
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(options, 64);
    tokio::spawn(async move {
        loop {
            if events.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    client
}

/// Publishes `payload` every 300 ms until `done` holds (detections are idempotent by client
/// id, so a message the subscriber saw twice counts once), for at most 30 s.
async fn publish_until<F, Fut>(client: &AsyncClient, topic: &str, payload: &Value, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        let _ = client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if done().await {
            return;
        }
    }
    panic!("the published message was not ingested within 30 s");
}

async fn stored(app: &TestApp, admin: &TestUser) -> i64 {
    let overview = app
        .get("/api/v1/detections/overview", Some(&admin.token))
        .await;
    overview.body["detections_last_hour"].as_i64().unwrap_or(-1)
}

async fn invalid_count(app: &TestApp, admin: &TestUser, device: i64) -> i64 {
    let reply = app
        .get(&format!("/api/v1/devices/{device}"), Some(&admin.token))
        .await;
    reply.body["invalid"].as_i64().unwrap_or(-1)
}

async fn setup(app: &TestApp) -> (TestUser, i64, String, String) {
    let admin = app.admin().await;
    let department = app.department(&admin, "Planta").await;
    let code = format!("cam-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    subject(app, &admin, "EMP001", department, true).await;
    let (device_id, key) = device(app, &admin, &code).await;
    (admin, device_id, code, key)
}

/// Runs `body` on both backends with MQTT ingestion pointed at `port`.
macro_rules! mqtt_tests {
    ($(async fn $name:ident($app:ident, $port:ident) $body:block)*) => {
        $(
            mod $name {
                use super::*;
                async fn run(backend: Backend, $port: u16) {
                    let url = format!("mqtt://127.0.0.1:{}", $port);
                    let Some($app) = spawn_app_with(backend, |c| c.detections.mqtt_url = url).await else { return };
                    $body
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() { run(Backend::Sqlite, port_for(stringify!($name))).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() { run(Backend::Postgres, port_for(stringify!($name))).await }
            }
        )*
    };
}

/// The shared broker for most tests; a free port for the test that runs its own.
fn port_for(test: &str) -> u16 {
    if test.contains("broker_down") {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        socket.local_addr().expect("addr").port()
    } else {
        1883
    }
}

/// A Mosquitto of the test's own on `port`, stopped (by its pid) when dropped.
struct OwnBroker(std::process::Child);

impl OwnBroker {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("mosquitto")
            .args(["-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto is installed (apt-get install mosquitto)");
        Self(child)
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

mqtt_tests! {
    async fn detections_over_mqtt_are_stored_bad_payloads_counted_and_a_revoked_key_refused(app, port) {
        let (admin, device_id, code, key) = setup(&app).await;
        let client = publisher(port).await;
        let topic = format!("vigia/devices/{code}/detections");
        let payload = json!({ "key": key, "detections": stress_run("m", "EMP001", 3, 0.6) });
        publish_until(&client, &topic, &payload, || async { stored(&app, &admin).await == 3 }).await;

        // Not JSON, and a key of no device: logged, counted on the device, connection kept.
        client.publish(&topic, QoS::AtLeastOnce, false, "no es json").await.expect("publish");
        let forged = json!({ "key": "vak_forged", "detections": stress_run("f", "EMP001", 1, 0.6) });
        client.publish(&topic, QoS::AtLeastOnce, false, forged.to_string()).await.expect("publish");
        let more = json!({ "key": key, "detections": stress_run("n", "EMP001", 2, 0.6) });
        publish_until(&client, &topic, &more, || async { stored(&app, &admin).await == 5 }).await;
        assert_eq!(invalid_count(&app, &admin, device_id).await, 2, "both bad messages counted");

        let beat = json!({ "key": key, "firmware": "mqtt-1.0" });
        let heartbeat_topic = format!("vigia/devices/{code}/heartbeat");
        publish_until(&client, &heartbeat_topic, &beat, || async {
            app.get(&format!("/api/v1/devices/{device_id}"), Some(&admin.token)).await.body["firmware"] == "mqtt-1.0"
        }).await;

        let device = app.get(&format!("/api/v1/devices/{device_id}"), Some(&admin.token)).await;
        let key_id = device.body["api_key_id"].as_i64().expect("key id");
        let revoked = app.delete(&format!("/api/v1/api-keys/{key_id}"), Some(&admin.token)).await;
        assert_eq!(revoked.status, StatusCode::OK);
        let after = json!({ "key": key, "detections": stress_run("z", "EMP001", 1, 0.6) });
        let before = invalid_count(&app, &admin, device_id).await;
        publish_until(&client, &topic, &after, || async { invalid_count(&app, &admin, device_id).await > before }).await;
        assert_eq!(stored(&app, &admin).await, 5, "a revoked key stores nothing");
    }

    async fn ingestion_resumes_when_a_broker_down_at_start_comes_up_and_restarts(app, port) {
        let (admin, _device, code, key) = setup(&app).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let broker = OwnBroker::start(port);
        let client = publisher(port).await;
        let topic = format!("vigia/devices/{code}/detections");
        let first = json!({ "key": key, "detections": stress_run("b1", "EMP001", 2, 0.6) });
        publish_until(&client, &topic, &first, || async { stored(&app, &admin).await == 2 }).await;

        drop(broker);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _broker = OwnBroker::start(port);
        let second = json!({ "key": key, "detections": stress_run("b2", "EMP001", 3, 0.6) });
        publish_until(&client, &topic, &second, || async { stored(&app, &admin).await == 5 }).await;
    }
}
