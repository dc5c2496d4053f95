//! Revocation reaches every open real-time connection: signing out or being disabled closes
//! each connection of that user, whatever it was doing, within a second, on every node.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use vigia_domain::users::Role;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app};
use crate::incidents::{Campus, campus, report};
use crate::realtime::{Credential, WsClient, connect_ws};

/// How soon a revoked connection must be closed: a close frame with 4003, then the end of the
/// stream (a socket left open is a connection still open, whatever frame it got).
const BOUND: Duration = Duration::from_secs(1);

/// Waits for the server to close `client`: the close code it sent, then the stream's end.
async fn expect_closed(client: &mut WsClient, what: &str) -> u16 {
    let deadline = tokio::time::Instant::now() + BOUND;
    let mut code = None;
    loop {
        match tokio::time::timeout_at(deadline, client.socket.next()).await {
            Err(_) => panic!("{what}: still open after {BOUND:?} (close code so far: {code:?})"),
            Ok(None | Some(Err(_))) => break,
            Ok(Some(Ok(Message::Close(frame)))) => code = frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
        }
    }
    code.unwrap_or_else(|| panic!("{what}: the stream ended without a close frame"))
}

/// One trial: `user` files an incident and connects (in the order `trial` picks), then is
/// signed out or disabled through `via`; the connection, on `node`, must close within
/// [`BOUND`].
async fn trial(via: &TestApp, node: &TestApp, c: &Campus, user: &TestUser, trial: usize) {
    let incident = json!({ "category_id": c.leak, "title": format!("Prueba {trial}"),
        "description": "Para revocar una conexión abierta.", "visibility": "public" });
    let mut client = if trial % 4 < 2 {
        // Filed just before connecting: the hub may fan the event out while the connection
        // registers.
        report(via, user, incident).await;
        let mut client = connect_ws(&node.url, Credential::Bearer(&user.token)).await;
        client
            .send(json!({ "type": "subscribe", "topics": ["incidents"] }))
            .await;
        client
    } else {
        // Connected, then the event received: the hub's fan-out holds the connection.
        let mut client = connect_ws(&node.url, Credential::Bearer(&user.token)).await;
        client.subscribe(&["incidents"], None).await;
        report(via, user, incident).await;
        client
            .expect_event(Duration::from_secs(5), "incident.created")
            .await;
        client
    };
    let what = if trial.is_multiple_of(2) {
        let reply = via
            .patch(
                &format!("/api/v1/users/{}", user.id),
                Some(&c.admin.token),
                json!({ "disabled": true }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        format!("trial {trial}, disabled")
    } else {
        let reply = via
            .post("/api/v1/auth/logout", Some(&user.token), json!({}))
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        format!("trial {trial}, signed out")
    };
    assert_eq!(expect_closed(&mut client, &what).await, 4003, "{what}");
}

backend_tests! {
    async fn every_revoked_connection_closes_within_a_second_in_twenty_trials(app: TestApp) {
        let c = campus(&app).await;
        for n in 0..20 {
            let user = app.user(Role::Reporter).await;
            trial(&app, &app, &c, &user, n).await;
        }
    }
}

/// Two nodes on one PostgreSQL database: a user disabled or signed out through one loses their
/// connections to the other within the same bound, not at the other's next periodic check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_through_one_node_closes_connections_on_another() {
    let Some(a) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let b = a.spawn_peer().await;
    let c = campus(&a).await;
    for n in 0..8 {
        let user = a.user(Role::Reporter).await;
        trial(&a, &b, &c, &user, n).await;
    }
}
