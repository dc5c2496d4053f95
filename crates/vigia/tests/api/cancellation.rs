//! Clients that give up in the middle of a request: the transaction they started is rolled
//! back and its connection goes back to the pool clean, so later requests are unaffected.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::Connection;
use vigia_store::Backend as StoreBackend;

use crate::backend_tests;
use crate::helpers::TestApp;
use crate::incidents::{campus, report};

/// Connections of this test's PostgreSQL database left inside a transaction while idle, seen
/// from a connection of its own (one of the pool's could be such a connection itself).
async fn idle_in_transaction(app: &TestApp) -> i64 {
    let StoreBackend::Postgres { .. } = app.db.backend() else {
        return 0;
    };
    let mut conn = sqlx::PgConnection::connect(&app.config.database.url)
        .await
        .expect("connect");
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut conn)
    .await
    .expect("pg_stat_activity")
}

/// Incidents stored without any event (every creation writes one in its transaction).
async fn without_events(app: &TestApp) -> i64 {
    let sql = "SELECT COUNT(*) FROM incidents i \
               WHERE NOT EXISTS (SELECT 1 FROM incident_events e WHERE e.incident_id = i.id)";
    app.scalar(sql, &[])
        .await
        .expect("count incidents without events")
}

backend_tests! {
    async fn creates_cancelled_mid_transaction_leave_no_connection_inside_one(app: TestApp) {
        let c = campus(&app).await;
        let body = json!({ "category_id": c.leak, "title": "Fuga cancelada",
            "description": "El cliente se rinde a los pocos milisegundos." });
        // Clients that give up 0.5 to 6 ms into a create, eight at a time. A connection left
        // inside a transaction is found after the round that left it (the next borrower of
        // that connection would otherwise end the transaction, its own statements inside).
        let mut left = Vec::new();
        for round in 0..80_u64 {
            let mut attempts = tokio::task::JoinSet::new();
            for n in 0..8_u64 {
                let timeout = Duration::from_micros(500 + ((round * 8 + n) % 23) * 250);
                let client = reqwest::Client::builder().timeout(timeout).build().expect("client");
                let request = client
                    .post(format!("{}/api/v1/incidents", app.url))
                    .bearer_auth(&c.reporter.token)
                    .json(&body);
                attempts.spawn(async move { request.send().await.map(|r| r.status()) });
            }
            while let Some(attempt) = attempts.join_next().await {
                if let Ok(status) = attempt.expect("task") {
                    assert_eq!(status, StatusCode::CREATED);
                }
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
            let idle = idle_in_transaction(&app).await;
            if idle > 0 {
                left.push((round, idle));
            }
        }
        assert!(left.is_empty(), "(round, connections left inside a transaction): {left:?}");
        // Everything after works, and every stored incident has its first event.
        for _ in 0..16 {
            report(&app, &c.reporter, body.clone()).await;
        }
        assert_eq!(without_events(&app).await, 0, "incidents stored without their first event");
        assert_eq!(idle_in_transaction(&app).await, 0);
    }
}
