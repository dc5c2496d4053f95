//! The devices pages without a browser, on both databases: their forms go through the API's
//! handlers (what they create is what the API shows), a device's key is shown once, a refused
//! form names its field and changes nothing, and staff cannot reach the admin pages.

use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::TestApp;
use crate::ui_console::Browser;

backend_tests! {
    async fn the_device_pages_create_through_the_api_and_show_a_key_once(app: TestApp) {
        let admin = app.admin().await;
        let department = app.department(&admin, "Producción").await;
        let mut browser = Browser::signed_in(&app, &admin).await;
        assert_eq!(browser.get("/admin/subjects").await.status, StatusCode::OK);

        // A subject without a code: the error by its field, what was typed kept, nothing stored.
        let department_id = department.to_string();
        let refused = browser
            .post("/admin/subjects", &[("code", ""), ("name", "Ana Quispe"), ("department_id", &department_id), ("consent", "true")])
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.html);
        assert!(refused.html.contains("id=\"s-code-e\""), "{}", refused.html);
        assert!(refused.html.contains("Ana Quispe"));
        let none = app.get("/api/v1/subjects", Some(&admin.token)).await;
        assert_eq!(none.body["items"].as_array().map(Vec::len), Some(0));

        let created = browser
            .post("/admin/subjects", &[("code", "EMP001"), ("name", "Ana Quispe"), ("department_id", &department_id), ("consent", "true")])
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
        let subjects = app.get("/api/v1/subjects", Some(&admin.token)).await;
        let subject = &subjects.body["items"][0];
        assert_eq!(subject["code"], "EMP001");
        assert_eq!(subject["consent"], true);
        assert!(subject["consent_by"].is_string(), "who recorded it: {subject}");
        let id = subject["id"].as_i64().expect("id");
        assert_eq!(created.location.as_deref(), Some(format!("/admin/subjects/{id}?saved=1").as_str()));

        // Consent withdrawn from the page: the API's subject has none.
        browser.get(&format!("/admin/subjects/{id}")).await;
        let withdrawn = browser.post(&format!("/admin/subjects/{id}/consent"), &[("give", "false")]).await;
        assert_eq!(withdrawn.status, StatusCode::SEE_OTHER);
        let one = app.get(&format!("/api/v1/subjects/{id}"), Some(&admin.token)).await;
        assert_eq!(one.body["consent"], false);

        // A device: the key in the answer is a working device key, and is not shown again.
        browser.get("/admin/devices").await;
        let made = browser
            .post("/admin/devices", &[("code", "cam-01"), ("name", "Cámara 1"), ("location", "Nave 2"), ("active", "true")])
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.html);
        let key = made
            .html
            .split("id=\"new-key-secret\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .expect("the key is on the page")
            .to_owned();
        let beat = app.post("/api/v1/devices/heartbeat", Some(&key), json!({ "firmware": "edge-1.0" })).await;
        assert_eq!(beat.status, StatusCode::OK, "{:?}", beat.body);
        let again = browser.get("/admin/devices").await;
        assert!(!again.html.contains(&key), "the key is shown once");
        assert!(again.html.contains("cam-01"));

        // A bad device code is refused by its field.
        let bad = browser.post("/admin/devices", &[("code", "cam 02/x"), ("name", "Cámara 2")]).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.html.contains("id=\"d-code-e\""), "{}", bad.html);

        // A window report is listed on the reports page under its own kind, and readable.
        let objects = vigia_store::Objects::open(&app.config.storage_url(), &app.config.s3_options()).expect("objects");
        let window = vigia_reports::Period::window_before(vigia_domain::Timestamp::now(), 15);
        let record = vigia_reports::detections::run(&app.db, &objects, window, &app.config.detections.labels, "test")
            .await
            .expect("report");
        let reports = browser.get("/reports").await;
        assert!(reports.html.contains("Informe de detecciones"), "{}", reports.html);
        let report = browser.get(&format!("/reports/{}", record.id)).await;
        assert_eq!(report.status, StatusCode::OK);
        assert!(report.html.contains("totals.detections"), "{}", report.html);

        // Staff see the dashboard and silences, not the admin pages.
        let staff = app.staff_in(&admin, department).await;
        let mut staff_browser = Browser::signed_in(&app, &staff).await;
        assert_eq!(staff_browser.get("/detections").await.status, StatusCode::OK);
        assert_eq!(staff_browser.get("/detections/live").await.status, StatusCode::OK);
        assert_eq!(staff_browser.get("/silences").await.status, StatusCode::OK);
        assert_eq!(staff_browser.get("/admin/devices").await.status, StatusCode::FORBIDDEN);
        assert_eq!(staff_browser.get("/admin/subjects").await.status, StatusCode::FORBIDDEN);
    }
}
