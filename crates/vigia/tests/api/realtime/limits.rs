//! Limits: a client that stops reading, the replay window, message sizes.

use super::*;

/// A client with a tiny receive buffer that stops reading.
async fn stalled_client(app: &TestApp, token: &str) -> Socket {
    let addr = app.url.trim_start_matches("http://").to_owned();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket
        .connect(addr.parse().expect("addr"))
        .await
        .expect("connect");
    let mut request = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .expect("handshake");
    socket
        .send(Message::Text(
            json!({ "type": "subscribe", "topics": ["incidents"] })
                .to_string()
                .into(),
        ))
        .await
        .expect("subscribe");
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_while_others_keep_receiving() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.realtime.queue_capacity = 32;
        config.realtime.socket_send_buffer_bytes = 8192;
    })
    .await
    .expect("app");
    let c = campus(&app).await;
    let id = report(&app, &c.reporter, public_leak(&c, "public")).await["id"]
        .as_i64()
        .expect("id");
    let mut reader = connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
    reader.subscribe(&["incidents"], None).await;
    let mut stalled = stalled_client(&app, &c.admin.token).await;

    // Comments until the stalled client's buffers and queue overflow (the metric says so),
    // checked after each one so the stalled client starts reading right after it was cut off.
    let mut sent = 0;
    let mut seen_ids: Vec<i64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        comment(&app, &c.staff_a, id, "internal").await;
        sent += 1;
        let event = reader
            .expect_event(SECOND * 5, "incident.comment_added")
            .await;
        seen_ids.push(
            event["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("event id"),
        );
        let text = app
            .client
            .get(format!("{}/metrics", app.url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if text.contains("vigia_realtime_slow_consumer_disconnects_total 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled client was never disconnected after {sent} events"
        );
    }
    eprintln!("the stalled client was disconnected after {sent} events");
    // The stalled client, once it reads, finds what was buffered for it, then a 4008 close: it
    // is cut off, not merely late.
    let mut stalled_events = 0;
    let mut close_code = None;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = stalled.next().await {
            match message {
                Ok(Message::Close(frame)) => {
                    close_code = Some(frame.map(|f| u16::from(f.code)));
                    break;
                }
                Ok(Message::Text(text)) if text.as_str().contains("incident.comment_added") => {
                    stalled_events += 1
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "no close within 10 s after reading resumed");
    assert!(
        stalled_events < sent,
        "the stalled client got {stalled_events} of {sent} events: it was not cut off"
    );
    eprintln!("it got {stalled_events} events, then the close {close_code:?}");
    // The close frame follows what was queued, and says why.
    assert_eq!(
        close_code,
        Some(Some(4008)),
        "the stalled client is told it was too slow"
    );
    // The healthy client got every event once, in order, and nothing more.
    assert!(
        seen_ids.windows(2).all(|w| w[0] < w[1]),
        "events arrive once each and in order: {seen_ids:?}"
    );
    reader.expect_silence(SECOND / 2).await;
    comment(&app, &c.staff_a, id, "public").await;
    reader.expect_event(SECOND, "incident.comment_added").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_beyond_the_replay_window_asks_for_a_resync_and_limits_hold() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.realtime.replay_window_secs = 1;
        config.realtime.max_connections_per_user = 2;
        config.realtime.max_message_bytes = 1024;
    })
    .await
    .expect("app");
    let c = campus(&app).await;
    let id = report(&app, &c.reporter, public_leak(&c, "public")).await["id"]
        .as_i64()
        .expect("id");
    let mut client = connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
    client.subscribe(&["incidents"], None).await;
    comment(&app, &c.staff_a, id, "public").await;
    let last = client.expect_event(SECOND, "incident.comment_added").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    drop(client);
    comment(&app, &c.staff_a, id, "public").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut late = connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
    late.send(json!({ "type": "subscribe", "topics": ["incidents"], "last_event_id": last }))
        .await;
    let resync = late.expect_event(SECOND, "resync_required").await;
    assert_eq!(resync["data"]["last_event_id"], last);
    late.expect_event(SECOND, "subscribed").await;
    comment(&app, &c.staff_a, id, "public").await;
    late.expect_event(SECOND, "incident.comment_added").await;

    // Bad input is answered, not fatal.
    late.send(json!({ "type": "subscribe", "topics": ["everything"] }))
        .await;
    assert!(
        late.expect_event(SECOND, "error").await["data"]["detail"]
            .as_str()
            .expect("detail")
            .contains("unknown topic")
    );

    // Two connections per user here: the third is refused with 429.
    let _second = connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
    let third = try_connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
        }
        other => panic!("expected 429, got {:?}", other.map(|_| "a connection")),
    }
    let sse = app
        .client
        .get(format!("{}/api/v1/stream", app.url))
        .bearer_auth(&c.admin.token)
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), StatusCode::TOO_MANY_REQUESTS);

    // A message over the size limit closes the socket with 1009.
    late.send(json!({ "type": "subscribe", "topics": ["x".repeat(2048)] }))
        .await;
    let closed = late.next_within(SECOND).await.expect("close");
    assert_eq!(closed["type"], "_closed");
    assert_eq!(closed["code"], 1009);
}
