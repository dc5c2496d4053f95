//! Catalogs: departments, categories, zones; validation and referential rules.

use reqwest::StatusCode;
use serde_json::json;
use vigia_domain::users::Role;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests! {
    async fn admins_build_the_catalog_and_everyone_signed_in_reads_it(app: TestApp) {
        let admin = app.admin().await;
        let department = app.department(&admin, "Mantenimiento").await;
        let category = app
            .post("/api/v1/categories", Some(&admin.token), json!({
                "name_es": "Fuga de agua", "name_en": "Water leak",
                "default_department_id": department, "default_urgency": "high"
            }))
            .await;
        assert_eq!(category.status, StatusCode::CREATED, "{:?}", category.body);
        assert_eq!(category.body["default_urgency"], "high");
        let zone = app
            .post("/api/v1/zones", Some(&admin.token), json!({
                "name": "Pabellón A", "center": { "lat": -12.1352, "lon": -77.0222 }, "radius_m": 40.0
            }))
            .await;
        assert_eq!(zone.status, StatusCode::CREATED, "{:?}", zone.body);

        let reporter = app.user(Role::Reporter).await;
        let categories = app.get("/api/v1/categories", Some(&reporter.token)).await;
        assert_eq!(categories.body[0]["name_es"], "Fuga de agua");
        let departments = app.get("/api/v1/departments", Some(&reporter.token)).await;
        assert_eq!(departments.body[0]["contact_emails"], json!([]), "reporters do not see contacts");
        let staff = app.user(Role::Staff).await;
        let departments = app.get("/api/v1/departments", Some(&staff.token)).await;
        assert_eq!(departments.body[0]["contact_emails"], json!(["equipo@utec.pe"]));
        assert_eq!(app.get("/api/v1/categories", None).await.status, StatusCode::UNAUTHORIZED);

        let inside = app.post("/api/v1/zones/locate", Some(&reporter.token), json!({ "lat": -12.1353, "lon": -77.0222 })).await;
        assert_eq!(inside.body["zones"][0]["name"], "Pabellón A");
        let outside = app.post("/api/v1/zones/locate", Some(&reporter.token), json!({ "lat": -12.2, "lon": -77.0 })).await;
        assert_eq!(outside.body["zones"], json!([]));
    }

    async fn an_unknown_department_in_a_category_is_a_422_and_creates_nothing(app: TestApp) {
        let admin = app.admin().await;
        let before = app.snapshot().await;
        let reply = app
            .post("/api/v1/categories", Some(&admin.token), json!({ "name_es": "Robo", "default_department_id": 999 }))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reply.error_field(), Some("default_department_id"));
        let reply = app.post("/api/v1/categories", Some(&admin.token), json!({ "name_es": "Robo", "default_urgency": "urgent" })).await;
        assert_eq!(reply.error_field(), Some("default_urgency"));
        assert_eq!(app.snapshot().await, before);
    }

    async fn invalid_zones_name_every_bad_field(app: TestApp) {
        let admin = app.admin().await;
        let before = app.snapshot().await;
        let reply = app
            .post("/api/v1/zones", Some(&admin.token), json!({
                "name": "", "center": { "lat": 95.0, "lon": 0.0 }, "radius_m": -1.0,
                "polygon": [{ "lat": 0.0, "lon": 0.0 }, { "lat": 1.0, "lon": 1.0 }]
            }))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<&str> = reply.body["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
        assert_eq!(fields, ["name", "center.lat", "radius_m", "polygon"]);
        assert_eq!(app.snapshot().await, before);
    }

    async fn a_department_in_use_cannot_be_deleted_and_duplicates_conflict(app: TestApp) {
        let admin = app.admin().await;
        let department = app.department(&admin, "Seguridad").await;
        let dup = app.post("/api/v1/departments", Some(&admin.token), json!({ "name": "Seguridad" })).await;
        assert_eq!(dup.status, StatusCode::CONFLICT);
        let category = app
            .post("/api/v1/categories", Some(&admin.token), json!({ "name_es": "Robo", "default_department_id": department }))
            .await;
        let before = app.snapshot().await;
        let blocked = app.delete(&format!("/api/v1/departments/{department}"), Some(&admin.token)).await;
        assert_eq!(blocked.status, StatusCode::CONFLICT, "{:?}", blocked.body);
        assert_eq!(app.snapshot().await, before);
        let id = category.body["id"].as_i64().expect("id");
        assert_eq!(app.delete(&format!("/api/v1/categories/{id}"), Some(&admin.token)).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.delete(&format!("/api/v1/departments/{department}"), Some(&admin.token)).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get(&format!("/api/v1/departments/{department}"), Some(&admin.token)).await.status, StatusCode::NOT_FOUND);
    }

    async fn updates_replace_the_entity_and_are_audited(app: TestApp) {
        let admin = app.admin().await;
        let department = app.department(&admin, "TI").await;
        let updated = app
            .put(&format!("/api/v1/departments/{department}"), Some(&admin.token), json!({ "name": "Tecnologías de la Información", "contact_emails": ["ti@utec.pe"] }))
            .await;
        assert_eq!(updated.status, StatusCode::OK);
        assert_eq!(updated.body["contact_emails"], json!(["ti@utec.pe"]));
        let audit = app.get(&format!("/api/v1/audit?entity=department&entity_id={department}&action=department.updated"), Some(&admin.token)).await;
        assert_eq!(audit.body["items"][0]["before"]["name"], "TI");
        assert_eq!(audit.body["items"][0]["after"]["name"], "Tecnologías de la Información");
    }
}
