//! What a filter may tell about people, and search words taken literally.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, TestUser};
use crate::incidents::{campus, report};

/// The ids `who` lists with `GET /api/v1/incidents?{query}`.
async fn listed(app: &TestApp, who: &TestUser, query: &str) -> Vec<i64> {
    let page = app
        .get(
            &format!("/api/v1/incidents?limit=100&{query}"),
            Some(&who.token),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{query}: {:?}", page.body);
    page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect()
}

/// The ids `who` exports with `GET /api/v1/exports/incidents?format=ndjson&{query}`.
async fn exported(app: &TestApp, who: &TestUser, query: &str) -> Vec<i64> {
    let reply = app
        .client
        .get(format!(
            "{}/api/v1/exports/incidents?format=ndjson&{query}",
            app.url
        ))
        .bearer_auth(&who.token)
        .send()
        .await
        .expect("export");
    assert_eq!(reply.status(), StatusCode::OK);
    let text = reply.text().await.expect("body");
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("line")["id"]
                .as_i64()
                .expect("id")
        })
        .collect()
}

backend_tests! {
    async fn a_filter_on_a_person_matches_only_incidents_whose_people_the_caller_is_shown(app: TestApp) {
        let c = campus(&app).await;
        let body = |visibility: &str| json!({ "category_id": c.leak, "title": "Tubería rota en el baño",
            "description": "Sale agua sin parar desde la mañana.", "visibility": visibility });
        let public = report(&app, &c.reporter, body("public")).await["id"].as_i64().expect("id");
        let private = report(&app, &c.reporter, body("private")).await["id"].as_i64().expect("id");
        let assigned = app.put(&format!("/api/v1/incidents/{public}/assignee"), Some(&c.staff_a.token), json!({ "assignee_id": c.staff_a.id })).await;
        assert_eq!(assigned.status, StatusCode::OK, "{:?}", assigned.body);

        // Another reporter and another department's staff see the public incident, without
        // its people...
        for stranger in [&c.other, &c.staff_b] {
            assert_eq!(listed(&app, stranger, "").await, [public], "{}", stranger.email);
            let shown = app.get(&format!("/api/v1/incidents/{public}"), Some(&stranger.token)).await;
            assert!(shown.body["reporter_id"].is_null() && shown.body["assignee_id"].is_null(), "{:?}", shown.body);
            // ...so a filter on its reporter or assignee must not find it either.
            for query in [format!("reporter={}", c.reporter.id), format!("assignee={}", c.staff_a.id)] {
                assert_eq!(listed(&app, stranger, &query).await, Vec::<i64>::new(), "{query} as {}", stranger.email);
                assert_eq!(listed(&app, stranger, &format!("{query}&status=new")).await, Vec::<i64>::new(), "{query} as {}", stranger.email);
                assert_eq!(exported(&app, stranger, &query).await, Vec::<i64>::new(), "export {query} as {}", stranger.email);
            }
        }
        // Those who are shown the people still find them by them.
        let by_reporter = format!("reporter={}", c.reporter.id);
        let by_assignee = format!("assignee={}", c.staff_a.id);
        assert_eq!(listed(&app, &c.reporter, &by_reporter).await, [private, public]);
        assert_eq!(listed(&app, &c.reporter, &by_assignee).await, [public]);
        assert_eq!(listed(&app, &c.staff_a, &by_reporter).await, [private, public]);
        assert_eq!(listed(&app, &c.staff_a, &by_assignee).await, [public]);
        assert_eq!(exported(&app, &c.staff_a, &by_reporter).await.len(), 2);
        assert_eq!(listed(&app, &c.admin, &by_reporter).await, [private, public]);
        assert_eq!(listed(&app, &c.admin, &by_assignee).await, [public]);
    }

    async fn search_words_with_like_wildcards_match_only_themselves(app: TestApp) {
        let c = campus(&app).await;
        let mut ids = Vec::new();
        for title in ["Fuga al 100% del tanque", "Tubo_roto en el patio", "Ruta C:\\agua cortada", "Puerta sin cerrar"] {
            let body = json!({ "category_id": c.leak, "title": title, "description": "Reportado por la mañana.", "visibility": "public" });
            ids.push(report(&app, &c.reporter, body).await["id"].as_i64().expect("id"));
        }
        assert_eq!(listed(&app, &c.admin, "").await.len(), 4);
        for (q, expected) in [("%25", vec![ids[0]]), ("_", vec![ids[1]]), ("%5C", vec![ids[2]]),
            ("100%25", vec![ids[0]]), ("o_r", vec![ids[1]]), ("%25%25", vec![]), ("__", vec![]), ("puerta", vec![ids[3]])] {
            assert_eq!(listed(&app, &c.admin, &format!("q={q}")).await, expected, "q={q}");
            assert_eq!(listed(&app, &c.other, &format!("q={q}")).await, expected, "q={q} as a reporter");
        }
        let board = app.get("/api/v1/public/incidents?q=%25", None).await;
        assert_eq!(board.body["items"].as_array().expect("items").len(), 1, "{:?}", board.body);
    }
}
