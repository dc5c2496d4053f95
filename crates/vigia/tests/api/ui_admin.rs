//! The administrators' operations pages over HTTP, as a browser without JavaScript uses them:
//! zones typed as coordinates, webhooks (the secret shown once, the SSRF rule next to the URL),
//! jobs (cancel, retry, a refused retry told on the page), schedules (pause) and settings —
//! each change made by the API's handler with its rules. The map clicks, the delivery log
//! against a live receiver and the custom report's download are the browser tests'
//! (`tests/browser/tests/admin_ops.test.mjs`).

use reqwest::StatusCode;
use vigia_domain::Timestamp;
use vigia_store::jobs::{self, JobId, JobState, NewJob, Task};

use vigia_jobs::JobMetrics;

use crate::backend_tests;
use crate::helpers::TestApp;
use crate::jobs::{registry, worker_with};
use crate::ui_console::Browser;

backend_tests! {
    async fn zones_typed_as_coordinates_are_saved_by_the_api_rules_with_errors_by_their_fields(app: TestApp) {
        let admin = app.admin().await;
        let mut browser = Browser::signed_in(&app, &admin).await;
        assert_eq!(browser.get("/admin/zones").await.status, StatusCode::OK);

        let two = browser
            .post("/admin/zones", &[("name", "Patio"), ("shape", "polygon"), ("polygon", "-12.1350, -77.0220\n-12.1352, -77.0210")])
            .await;
        assert_eq!(two.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", two.html);
        assert!(two.html.contains("id=\"z-polygon-e\""), "{}", two.html);
        assert!(two.html.contains("al menos 3 vértices distintos"), "{}", two.html);
        let words = browser
            .post("/admin/zones", &[("name", "Patio"), ("shape", "polygon"), ("polygon", "-12.1350, -77.0220\njunto al patio")])
            .await;
        assert_eq!(words.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(words.html.contains("La línea 2 no es una latitud"), "{}", words.html);
        let far = browser
            .post("/admin/zones", &[("name", "Patio"), ("shape", "polygon"), ("polygon", "-12.1, -77.0\n-12.2, -77.0\n95.0, -77.1")])
            .await;
        assert_eq!(far.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(far.html.contains("latitud entre -90 y 90"), "{}", far.html);
        let zones = app.get("/api/v1/zones", Some(&admin.token)).await;
        assert_eq!(zones.body.as_array().map(Vec::len), Some(0), "nothing was created");

        let created = browser
            .post("/admin/zones", &[("name", "Patio"), ("shape", "polygon"), ("polygon", "-12.1350, -77.0220\n-12.1352 -77.0210\n-12.1360, -77.0215")])
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
        let zones = app.get("/api/v1/zones", Some(&admin.token)).await;
        let zone = &zones.body[0];
        assert_eq!(zone["polygon"].as_array().map(Vec::len), Some(3));
        let id = zone["id"].as_i64().expect("id");
        let page = browser.get(&format!("/admin/zones/{id}")).await;
        assert!(page.html.contains("-12.135200, -77.021000"), "{}", page.html);

        let circle = browser
            .post(&format!("/admin/zones/{id}"), &[("name", "Patio"), ("shape", "circle"), ("center_lat", "-12,1355"), ("center_lon", "-77.0215"), ("radius_m", "30")])
            .await;
        assert_eq!(circle.status, StatusCode::SEE_OTHER, "{}", circle.html);
        let zone = app.get(&format!("/api/v1/zones/{id}"), Some(&admin.token)).await;
        assert_eq!(zone.body["radius_m"], 30.0);
        assert_eq!(zone.body["center"]["lat"], -12.1355);
        assert!(zone.body["polygon"].is_null());
    }

    async fn webhooks_show_their_secret_once_and_refuse_a_private_address_next_to_the_url(app: TestApp) {
        let admin = app.admin().await;
        let mut browser = Browser::signed_in(&app, &admin).await;
        let page = browser.get("/admin/webhooks").await;
        // The proctoring types are offered, each with what it carries.
        for (value, hint) in [
            ("media.analyzed", "cada resultado de supervisión"),
            ("proctoring.alert", "solo alertas de supervisión: ALERT y ALERT_FINAL"),
            ("proctoring.reviewed", "revisiones de alertas de supervisión"),
        ] {
            assert!(page.html.contains(&format!("value=\"{value}\"> <code>{value}</code> ({hint})")), "{value}: {}", page.html);
        }
        let private = browser
            .post("/admin/webhooks", &[("url", "http://127.0.0.1:9/vigia"), ("event_types", "incident.created")])
            .await;
        assert_eq!(private.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", private.html);
        assert!(private.html.contains("id=\"w-url-e\""), "{}", private.html);
        assert!(private.html.contains("dirección privada"), "{}", private.html);
        let none = browser.post("/admin/webhooks", &[("url", "https://hooks.example.org/vigia")]).await;
        assert!(none.html.contains("id=\"w-types-e\""), "{}", none.html);

        let created = browser
            .post("/admin/webhooks", &[("url", "https://hooks.example.org/vigia"), ("description", "Operaciones"), ("event_types", "incident.created"), ("event_types", "incident.status_changed")])
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.html);
        let secret = created.html.split("id=\"new-webhook-secret\">").nth(1).and_then(|s| s.split('<').next()).expect("secret shown").to_owned();
        assert!(secret.starts_with("whsec_"), "{secret}");
        let list = browser.get("/admin/webhooks").await;
        assert!(list.html.contains("hooks.example.org") && !list.html.contains(&secret));

        let hooks = app.get("/api/v1/webhooks", Some(&admin.token)).await;
        let id = hooks.body[0]["id"].as_i64().expect("id");
        assert_eq!(browser.get(&format!("/admin/webhooks/{id}")).await.status, StatusCode::OK);
        let disabled = browser
            .post(&format!("/admin/webhooks/{id}"), &[("url", "https://hooks.example.org/vigia"), ("description", "Operaciones"), ("event_types", "*")])
            .await;
        assert_eq!(disabled.status, StatusCode::SEE_OTHER, "{}", disabled.html);
        let hook = app.get(&format!("/api/v1/webhooks/{id}"), Some(&admin.token)).await;
        assert_eq!(hook.body["enabled"], false);
        assert_eq!(hook.body["event_types"], serde_json::json!(["*"]));
    }

    async fn jobs_are_cancelled_and_retried_from_the_page_and_a_refused_retry_is_told(app: TestApp) {
        let admin = app.admin().await;
        let mut browser = Browser::signed_in(&app, &admin).await;
        let mut config = app.config.clone();
        config.jobs.test_handlers = true;
        // A job that fails for good: the worker dead-letters it, the page lists it.
        let dead: JobId = jobs::enqueue(&app.db, &NewJob::new(&Task::Fail { reason: "el receptor respondió 400".into() }), Timestamp::now())
            .await
            .expect("enqueue")
            .expect("new job");
        assert_eq!(worker_with(&app, &config).drain(Timestamp::now(), 10).await.expect("drain"), 1);
        let list = browser.get("/admin/jobs").await;
        assert!(list.html.contains(&format!("id=\"job-{}\" data-state=\"dead\"", dead.0)), "{}", list.html);
        assert!(list.html.contains("el receptor respondió 400"));
        let retried = browser.post(&format!("/admin/jobs/{}/retry", dead.0), &[("state", "dead"), ("kind", "")]).await;
        assert_eq!(retried.status, StatusCode::SEE_OTHER);
        assert_eq!(retried.location.as_deref(), Some("/admin/jobs?state=dead&kind=&done=retried"));
        let job = jobs::find(&app.db, dead).await.expect("job");
        assert_eq!((job.state, job.attempts), (JobState::Queued, 0));
        let again = browser.post(&format!("/admin/jobs/{}/retry", dead.0), &[("state", "dead"), ("kind", "")]).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.html);
        assert!(again.html.contains("role=\"alert\""), "{}", again.html);

        // A job waiting for its time is cancelled from the page.
        let later = NewJob {
            run_at: Some(Timestamp::now().plus_seconds(3600)),
            ..NewJob::new(&Task::Noop { n: 1 })
        };
        let waiting: JobId = jobs::enqueue(&app.db, &later, Timestamp::now()).await.expect("enqueue").expect("new job");
        let cancelled = browser.post(&format!("/admin/jobs/{}/cancel", waiting.0), &[("state", "queued"), ("kind", "noop")]).await;
        assert_eq!(cancelled.location.as_deref(), Some("/admin/jobs?state=queued&kind=noop&done=cancelled"));
        assert_eq!(jobs::find(&app.db, waiting).await.expect("job").state, JobState::Cancelled);

        // A schedule paused from its page stays paused for the API.
        let registry = registry(&app, &config);
        let scheduler = vigia_jobs::Scheduler::new(
            app.db.clone(),
            vigia::jobs::schedule_defs(&config).expect("schedules"),
            &registry,
            JobMetrics::new(),
        );
        scheduler.sync(Timestamp::now()).await.expect("sync");
        assert!(browser.get("/admin/schedules").await.html.contains("schedule-cleanup"));
        let paused = browser.post("/admin/schedules/cleanup/pause", &[("enabled", "0"), ("back", "one")]).await;
        assert_eq!(paused.location.as_deref(), Some("/admin/schedules/cleanup?saved=1"));
        let schedule = app.get("/api/v1/schedules/cleanup", Some(&admin.token)).await;
        assert_eq!(schedule.body["paused"], true);
        let page = browser.get("/admin/schedules/cleanup").await;
        assert!(page.html.contains("en pausa"), "{}", page.html);
        let ran = browser.post("/admin/schedules/cleanup/run", &[]).await;
        assert_eq!(ran.location.as_deref(), Some("/admin/schedules/cleanup?ran=1"));
        let history = browser.get("/admin/schedules/cleanup").await;
        assert!(history.html.contains("manual"), "{}", history.html);
    }

    async fn a_setting_the_api_refuses_is_shown_next_to_its_field_and_left_as_it_was(app: TestApp) {
        let admin = app.admin().await;
        let mut browser = Browser::signed_in(&app, &admin).await;
        browser.get("/admin/settings").await;
        let refused = browser.post("/admin/settings/registration.enabled", &[("value", "quizás")]).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.html);
        assert!(refused.html.contains("id=\"s-registration_enabled-e\""), "{}", refused.html);
        let before = app.get("/api/v1/settings/registration.enabled", Some(&admin.token)).await;
        let saved = browser.post("/admin/settings/registration.enabled", &[("value", "false")]).await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER);
        let after = app.get("/api/v1/settings/registration.enabled", Some(&admin.token)).await;
        assert_eq!(after.body["value"], false);
        assert_ne!(before.body["value"], serde_json::json!("quizás"));
    }
}
