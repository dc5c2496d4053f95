//! What arrives, to whom, within how long, and what a reconnecting client gets.

use super::*;

backend_tests! {
    async fn every_message_type_arrives_within_a_second_of_the_rest_call_that_causes_it(app: TestApp) {
        let c = campus(&app).await;
        let mut admin = connect_ws(&app.url, Credential::Bearer(&c.admin.token)).await;
        admin.subscribe(&["incidents"], None).await;
        admin.send(json!({ "type": "ping" })).await;
        admin.expect_event(SECOND, "pong").await;

        let started = Instant::now();
        let id = report(&app, &c.reporter, public_leak(&c, "public")).await["id"].as_i64().expect("id");
        let created = admin.expect_event(SECOND - started.elapsed(), "incident.created").await;
        assert_eq!(created["data"]["incident_id"], id);
        assert_eq!(created["data"]["actor"], format!("user:{}", c.reporter.id));
        assert!(created["id"].as_str().is_some_and(|s| s.parse::<i64>().is_ok()), "{created}");
        assert!(created["ts"].is_string());
        // Auto-assignment may follow creation; drain it.
        while let Some(extra) = admin.next_within(Duration::from_millis(200)).await {
            assert_eq!(extra["data"]["incident_id"], id, "{extra}");
        }

        let kinds = [
            "incident.status_changed", "incident.comment_added", "incident.assignee_changed",
            "incident.attachment_added", "incident.voted", "incident.department_assigned",
        ];
        for kind in kinds {
            let started = Instant::now();
            match kind {
                "incident.status_changed" => {
                    let r = app.post(&format!("/api/v1/incidents/{id}/transitions"), Some(&c.staff_a.token), json!({ "to": "acknowledged" })).await;
                    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                }
                "incident.comment_added" => comment(&app, &c.staff_a, id, "public").await,
                "incident.assignee_changed" => {
                    let r = app.put(&format!("/api/v1/incidents/{id}/assignee"), Some(&c.staff_a.token), json!({ "assignee_id": c.staff_a.id })).await;
                    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                }
                "incident.attachment_added" => attach(&app, &c.reporter, id).await,
                "incident.voted" => {
                    let r = app.post(&format!("/api/v1/incidents/{id}/votes"), Some(&c.other.token), json!({})).await;
                    assert!(r.status.is_success(), "{:?}", r.body);
                }
                _ => {
                    let r = app.put(&format!("/api/v1/incidents/{id}/department"), Some(&c.admin.token), json!({ "department_id": c.dept_b })).await;
                    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                }
            }
            let message = admin.expect_event(SECOND.saturating_sub(started.elapsed()), kind).await;
            assert_eq!(message["data"]["incident_id"], id);
            // Moving departments may also unassign; drain what follows the same call.
            while let Some(extra) = admin.next_within(Duration::from_millis(100)).await {
                assert_eq!(extra["data"]["incident_id"], id, "{extra}");
            }
        }
    }

    async fn a_reporter_receives_neither_anothers_private_incident_nor_internal_comments(app: TestApp) {
        let c = campus(&app).await;
        let mut owner = connect_ws(&app.url, Credential::Subprotocol(&c.reporter.token)).await;
        owner.subscribe(&["incidents"], None).await;
        let mut stranger = connect_ws(&app.url, Credential::Bearer(&c.other.token)).await;
        stranger.subscribe(&["incidents"], None).await;
        let mut staff = connect_ws(&app.url, Credential::Bearer(&c.staff_a.token)).await;
        staff.subscribe(&[&format!("department:{}", c.dept_a)], None).await;

        let private = report(&app, &c.reporter, public_leak(&c, "private")).await["id"].as_i64().expect("id");
        owner.expect_event(SECOND, "incident.created").await;
        staff.expect_event(SECOND, "incident.created").await;
        comment(&app, &c.staff_a, private, "internal").await;
        staff.expect_event(SECOND, "incident.comment_added").await;
        comment(&app, &c.staff_a, private, "public").await;
        let seen = staff.expect_event(SECOND, "incident.comment_added").await;
        let public_comment = owner.expect_event(SECOND, "incident.comment_added").await;
        assert_eq!(public_comment["id"], seen["id"], "the owner gets the public comment, not the internal one");
        assert_eq!(public_comment["data"]["visibility"], "public");

        // A public incident is the sentinel: the stranger's first message must be about it.
        let public = report(&app, &c.reporter, public_leak(&c, "public")).await["id"].as_i64().expect("id");
        let first = stranger.expect_event(SECOND, "incident.created").await;
        assert_eq!(first["data"]["incident_id"], public, "{first}");
        assert!(first["data"].get("actor").is_none(), "strangers do not learn who reported: {first}");
        stranger.expect_silence(Duration::from_millis(300)).await;

        // Without credentials, or with a bad token, there is no connection.
        assert!(try_connect_ws(&app.url, Credential::Bearer("nope")).await.is_err());
        let plain = app.get("/ws", Some(&c.reporter.token)).await;
        assert_eq!(plain.status, StatusCode::BAD_REQUEST);
        assert!(plain.is_problem());
    }

    async fn credentials_stay_checked_while_a_connection_is_open(app: TestApp) {
        let c = campus(&app).await;
        let mut staff = connect_ws(&app.url, Credential::Bearer(&c.staff_a.token)).await;
        staff.subscribe(&["incidents"], None).await;
        let mut reporter = connect_ws(&app.url, Credential::Bearer(&c.reporter.token)).await;
        reporter.subscribe(&["incidents"], None).await;
        let mut other = connect_ws(&app.url, Credential::Subprotocol(&c.other.token)).await;
        other.subscribe(&["incidents"], None).await;

        report(&app, &c.reporter, public_leak(&c, "private")).await;
        staff.expect_event(SECOND, "incident.created").await;
        reporter.expect_event(SECOND, "incident.created").await;

        // The staff member moves to another department: from then on, department A's private
        // incidents no longer reach their open connection.
        let moved = app
            .patch(&format!("/api/v1/users/{}", c.staff_a.id), Some(&c.admin.token), json!({ "departments": [c.dept_b] }))
            .await;
        assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
        report(&app, &c.reporter, public_leak(&c, "private")).await;
        reporter.expect_event(SECOND, "incident.created").await;
        staff.expect_silence(Duration::from_millis(500)).await;

        // A fresh token of another user is refused; a garbage one too; the connection stays.
        reporter.send(json!({ "type": "authenticate", "token": c.other.token })).await;
        let refused = next_control(&mut reporter, SECOND).await;
        assert_eq!(refused["type"], "error", "{refused}");
        assert!(refused["data"]["detail"].as_str().expect("detail").contains("another user"), "{refused}");
        reporter.send(json!({ "type": "authenticate", "token": "not-a-token" })).await;
        assert_eq!(next_control(&mut reporter, SECOND).await["type"], "error");
        reporter.send(json!({ "type": "ping" })).await;
        assert_eq!(next_control(&mut reporter, SECOND).await["type"], "pong");

        // Signing out closes the reporter's connection with 4003.
        let logout = app.post("/api/v1/auth/logout", Some(&c.reporter.token), json!({})).await;
        assert_eq!(logout.status, StatusCode::NO_CONTENT);
        let closed = next_control(&mut reporter, SECOND).await;
        assert_eq!(closed, json!({ "type": "_closed", "code": 4003 }));

        // Disabling an account closes its connections with 4003 too.
        let disabled = app
            .patch(&format!("/api/v1/users/{}", c.other.id), Some(&c.admin.token), json!({ "disabled": true }))
            .await;
        assert_eq!(disabled.status, StatusCode::OK, "{:?}", disabled.body);
        let closed = next_control(&mut other, SECOND).await;
        assert_eq!(closed, json!({ "type": "_closed", "code": 4003 }));

        // A browser's session cookie opens a WebSocket only from this server's pages.
        let login = app
            .client
            .post(format!("{}/api/v1/auth/login", app.url))
            .json(&json!({ "email": c.admin.email, "password": c.admin.password, "cookie": true }))
            .send()
            .await
            .expect("login");
        let session = login
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("vigia_session="))
            .and_then(|v| v.split(';').next())
            .expect("session cookie")
            .to_owned();
        expect_handshake_status(try_connect_ws(&app.url, Credential::Cookie(&session, None)).await, 403);
        expect_handshake_status(
            try_connect_ws(&app.url, Credential::Cookie(&session, Some("https://evil.example"))).await,
            403,
        );
        let mut browser = connect_ws(&app.url, Credential::Cookie(&session, Some(&app.url))).await;
        browser.subscribe(&["incidents"], None).await;
        // EventSource on a same-origin page sends the cookie without an Origin: reading is allowed.
        let sse = app
            .client
            .get(format!("{}/api/v1/stream", app.url))
            .header("cookie", format!("vigia_session={session}"))
            .send()
            .await
            .expect("sse");
        assert_eq!(sse.status(), StatusCode::OK);
        let mut sse = SseClient::new(sse);
        assert_eq!(sse.next_within(SECOND).await.expect("subscribed")["type"], "subscribed");
        report(&app, &c.staff_b, public_leak(&c, "private")).await;
        browser.expect_event(SECOND, "incident.created").await;
        assert_eq!(sse.next_within(SECOND).await.expect("event")["type"], "incident.created");
    }

    async fn reconnecting_with_the_last_event_id_gets_exactly_the_missed_events(app: TestApp) {
        let c = campus(&app).await;
        let id = report(&app, &c.reporter, public_leak(&c, "public")).await["id"].as_i64().expect("id");
        let mut first = connect_ws(&app.url, Credential::Bearer(&c.staff_a.token)).await;
        first.subscribe(&[&format!("incident:{id}")], None).await;
        comment(&app, &c.staff_a, id, "public").await;
        let last = first.expect_event(SECOND, "incident.comment_added").await["id"].as_str().expect("id").to_owned();
        drop(first);

        // Missed while away: three changes, one of them internal (staff may see it).
        comment(&app, &c.staff_a, id, "internal").await;
        app.post(&format!("/api/v1/incidents/{id}/transitions"), Some(&c.staff_a.token), json!({ "to": "acknowledged" })).await;
        comment(&app, &c.reporter, id, "public").await;
        let history = app.get(&format!("/api/v1/incidents/{id}/events?limit=500"), Some(&c.staff_a.token)).await;
        let missed: Vec<String> = history.body["items"].as_array().expect("items").iter()
            .filter(|e| e["id"].as_i64().expect("id") > last.parse::<i64>().expect("id"))
            .map(|e| e["id"].as_i64().expect("id").to_string())
            .collect();
        assert_eq!(missed.len(), 3);

        let mut again = connect_ws(&app.url, Credential::Bearer(&c.staff_a.token)).await;
        again.subscribe(&[&format!("incident:{id}")], Some(&last)).await;
        let mut replayed = Vec::new();
        for _ in 0..3 {
            let message = again.next_within(SECOND).await.expect("a missed event");
            replayed.push(message["id"].as_str().expect("event id").to_owned());
        }
        assert_eq!(replayed, missed);
        // Then live, no duplicate.
        comment(&app, &c.staff_a, id, "public").await;
        let live = again.expect_event(SECOND, "incident.comment_added").await;
        assert!(live["id"].as_str().expect("id").parse::<i64>().expect("id") > missed[2].parse::<i64>().expect("id"));
        again.expect_silence(Duration::from_millis(300)).await;

        // The same over SSE with Last-Event-ID: the missed events, then nothing else.
        let response = app.client.get(format!("{}/api/v1/stream?topics=incident:{id}", app.url))
            .bearer_auth(&c.staff_a.token)
            .header("last-event-id", &last)
            .send().await.expect("stream");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut sse = SseClient::new(response);
        assert_eq!(sse.next_within(SECOND).await.expect("ack")["type"], "subscribed");
        let mut ids = Vec::new();
        for _ in 0..4 {
            let (event_id, message) = sse.next_event_within(SECOND).await.expect("event");
            assert_eq!(Some(message["id"].as_str().expect("id")), event_id.as_deref());
            ids.push(message["id"].as_str().expect("id").to_owned());
        }
        assert_eq!(&ids[..3], &missed[..]);
        assert_eq!(ids[3], live["id"].as_str().expect("id"));
    }
}
