//! A connection's life: its credential expiring, protocol pings and closes.

use super::*;

/// A connection closes with 4001 when its access token expires, unless the client sends a
/// fresh token first; an SSE stream ends with a `closed` message saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closes_when_its_token_expires_unless_renewed_in_band() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.http.access_token_ttl_secs = 3;
    })
    .await
    .expect("app");
    let admin = app.admin().await;
    let refresh = |token: String| {
        let app = &app;
        async move {
            let reply = app
                .post(
                    "/api/v1/auth/refresh",
                    None,
                    json!({ "refresh_token": token }),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            (
                reply.body["access_token"]
                    .as_str()
                    .expect("access")
                    .to_owned(),
                reply.body["refresh_token"]
                    .as_str()
                    .expect("refresh")
                    .to_owned(),
            )
        }
    };
    let (first, next) = refresh(admin.refresh_token.clone()).await;
    let issued = Instant::now();
    let mut kept = connect_ws(&app.url, Credential::Bearer(&first)).await;
    kept.subscribe(&["incidents"], None).await;
    let mut lapsed = connect_ws(&app.url, Credential::Bearer(&first)).await;
    lapsed.subscribe(&["incidents"], None).await;
    let sse = app
        .client
        .get(format!("{}/api/v1/stream", app.url))
        .bearer_auth(&first)
        .send()
        .await
        .expect("sse");
    let mut sse = SseClient::new(sse);
    assert_eq!(
        sse.next_within(SECOND).await.expect("subscribed")["type"],
        "subscribed"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (second, _) = refresh(next).await;
    kept.send(json!({ "type": "authenticate", "token": second }))
        .await;
    let renewed = kept.expect_event(SECOND, "authenticated").await;
    assert!(renewed["data"]["expires_at"].is_string(), "{renewed}");

    let closed = lapsed
        .next_within(Duration::from_secs(4))
        .await
        .expect("close");
    assert_eq!(closed, json!({ "type": "_closed", "code": 4001 }));
    assert!(
        issued.elapsed() >= Duration::from_secs(2),
        "closed at expiry, not before"
    );
    let ended = sse.next_within(SECOND).await.expect("closed message");
    assert_eq!(ended["type"], "closed", "{ended}");
    assert_eq!(ended["data"]["code"], 4001);

    // The renewed connection is still live, and lapses at its own token's expiry.
    kept.send(json!({ "type": "ping" })).await;
    assert_eq!(kept.expect_event(SECOND, "pong").await["type"], "pong");
    let closed = kept
        .next_within(Duration::from_secs(4))
        .await
        .expect("close");
    assert_eq!(closed, json!({ "type": "_closed", "code": 4001 }));
}

/// The server writes frames into the socket itself; tungstenite's own replies (a pong, the
/// echo of a client's close) take the same path, in order with the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_pings_are_answered_and_a_clients_close_is_echoed() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await.expect("app");
    let c = campus(&app).await;
    let mut client = connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
    client.subscribe(&["incidents"], None).await;

    client
        .socket
        .send(Message::Ping(b"faro".to_vec().into()))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(SECOND, async {
        loop {
            match client.socket.next().await.expect("open").expect("frame") {
                Message::Pong(payload) => return payload,
                Message::Text(_) => {}
                other => panic!("expected a pong, got {other:?}"),
            }
        }
    })
    .await
    .expect("a pong within a second");
    assert_eq!(&pong[..], b"faro");

    // Events still arrive after the pong, whole.
    let id = report(&app, &c.reporter, public_leak(&c, "public")).await["id"]
        .as_i64()
        .expect("id");
    let created = client.expect_event(SECOND, "incident.created").await;
    assert_eq!(created["data"]["incident_id"], id);

    client
        .socket
        .send(Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: 1000.into(),
                reason: "bye".into(),
            },
        )))
        .await
        .expect("close");
    let echo = tokio::time::timeout(SECOND, async {
        loop {
            match client.socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("expected the close echoed, got {other:?}"),
            }
        }
    })
    .await
    .expect("the close echoed within a second");
    assert_eq!(echo.map(|f| u16::from(f.code)), Some(1000));
}
