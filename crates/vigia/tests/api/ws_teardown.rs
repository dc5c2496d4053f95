//! A WebSocket the server closes gives its TCP connection (and file descriptor) back at once,
//! not whenever the next event happens to be broadcast.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::backend_tests;
use crate::helpers::TestApp;
use crate::incidents::{campus, report};
use crate::realtime::{Credential, connect_ws};

backend_tests! {
    async fn a_websocket_closed_by_the_server_ends_its_tcp_connection_without_a_broadcast(app: TestApp) {
        let c = campus(&app).await;
        let mut client = connect_ws(&app.url, Credential::Bearer(&c.reporter.token)).await;
        client.subscribe(&["incidents"], None).await;
        // One broadcast after the connection registered: the hub's fan-out now knows it.
        report(&app, &c.reporter, json!({
            "category_id": c.leak, "title": "Tubería rota en el baño del 3er piso",
            "description": "Sale agua sin parar desde la mañana.", "visibility": "public"
        }))
        .await;
        client.expect_event(Duration::from_secs(1), "incident.created").await;

        // Signing out closes the connection with 4003 ...
        let logout = app.post("/api/v1/auth/logout", Some(&c.reporter.token), json!({})).await;
        assert_eq!(logout.status, StatusCode::NO_CONTENT);
        let closed = client.next_within(Duration::from_secs(1)).await;
        assert_eq!(closed, Some(json!({ "type": "_closed", "code": 4003 })));

        // ... and the server ends the TCP connection too, though nothing is broadcast after.
        let mut tcp = client.into_tcp();
        let mut buf = [0u8; 256];
        let ended = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the server kept the closed WebSocket's TCP connection open for 2 s");
    }
}
