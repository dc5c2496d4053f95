//! E-mail: who is told about what, in which language, over plain, STARTTLS and TLS relays,
//! and what happens when the relay is down.

use super::*;

// --- e-mail ----------------------------------------------------------------------------------------

async fn urgent_incidents_mail_the_guard_and_the_department_in_each_readers_language(
    backend: Backend,
) {
    let port = free_port();
    let smtp = SmtpServer::start(port).await;
    let Some(app) = spawn_app_with(backend, |c| mail_config(c, port)).await else {
        return;
    };
    let s = setup(&app).await;
    let reporter = app.user(Role::Reporter).await;
    let incident = report(&app, &reporter, s.category).await;
    let (id, code) = (
        incident["id"].as_i64().expect("id"),
        incident["code"].as_str().expect("code").to_owned(),
    );

    // The guard (emergency recipient) and both department contacts, one message each.
    let messages = smtp.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages = if smtp.messages().len() > messages.len() {
        smtp.messages()
    } else {
        messages
    };
    assert_eq!(messages.len(), 3, "{messages:#?}");
    let find = |address: &str| {
        messages
            .iter()
            .find(|m| to(m) == address.to_lowercase())
            .unwrap_or_else(|| panic!("no message to {address}: {messages:#?}"))
            .clone()
    };
    let guard = find("guardia@utec.pe");
    assert_eq!(guard["mail_from"], "vigia@utec.pe");
    assert!(
        guard["subject"]
            .as_str()
            .expect("subject")
            .starts_with("[ALTA]"),
        "{guard:#?}"
    );
    let link = format!("https://vigia.utec.pe/incidents/{code}");
    assert!(guard["text"].as_str().expect("text").contains(&link));

    let spanish = find("mantenimiento@utec.pe");
    assert_eq!(
        spanish["subject"],
        format!("[{code}] Nuevo incidente para Mantenimiento: Tubería rota en el baño")
    );
    let text = spanish["text"].as_str().expect("text");
    assert!(
        text.contains("Urgencia: alta") && text.contains("Pabellón A, 3er piso"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Ver el incidente: {link}")),
        "{text}"
    );
    let report_link = "https://vigia.utec.pe/reports/incidents/";
    assert!(
        text.contains(report_link) && text.contains(&format!("/incident_{id}.json?key=")),
        "{text}"
    );
    let html = spanish["html"]
        .as_str()
        .expect("html")
        .replace("&#x2f;", "/");
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");

    let boss = app
        .get("/api/v1/users?role=staff&limit=200", Some(&s.admin.token))
        .await;
    let boss_email = boss.body["items"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["locale"] == "en")
        .and_then(|u| u["email"].as_str())
        .expect("english user")
        .to_owned();
    let english = find(&boss_email);
    assert!(
        english["subject"]
            .as_str()
            .expect("subject")
            .contains("New incident for Mantenimiento")
    );
    assert!(
        english["text"]
            .as_str()
            .expect("text")
            .contains("Urgency: high")
    );

    // The log says who was notified and that it arrived.
    let log = wait_deliveries(
        &app,
        &s.admin,
        &format!("incident={id}&channel=email"),
        |d| d.len() == 3 && d.iter().all(|d| d["status"] == "delivered"),
    )
    .await;
    for d in &log {
        assert_eq!(d["attempt_log"][0]["outcome"], "delivered");
        assert_eq!(d["attempt_log"][0]["status_code"], 250);
        assert_eq!(d["message_type"], "incident.created");
    }
    assert!(guard["message_id"].as_str().expect("id").contains("msg_"));

    // The reporter opted in (in English) and hears about the status change; the staff member
    // making the change is not the reporter.
    let reply = app
        .patch(
            "/api/v1/me",
            Some(&reporter.token),
            json!({ "notify_status_changes": true, "locale": "en" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["notify_status_changes"], true);
    let reply = app
        .post(
            &format!("/api/v1/incidents/{id}/transitions"),
            Some(&s.staff.token),
            json!({ "to": "acknowledged" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let messages = smtp.wait_for(4).await;
    let notice = messages
        .iter()
        .find(|m| to(m) == reporter.email.to_lowercase())
        .expect("status mail to the reporter");
    assert!(
        notice["subject"]
            .as_str()
            .expect("subject")
            .contains("Your report is now: acknowledged")
    );
    assert!(
        notice["text"]
            .as_str()
            .expect("text")
            .contains("went from \"new\" to \"acknowledged\"")
    );
}

async fn mail_waits_for_a_smtp_server_that_is_down_and_arrives_when_it_is_back(backend: Backend) {
    let port = free_port();
    let Some(app) = spawn_app_with(backend, |c| {
        mail_config(c, port);
        c.email.emergency_recipients = vec![];
    })
    .await
    else {
        return;
    };
    let s = setup(&app).await;
    let reporter = app.user(Role::Reporter).await;
    let incident = report(&app, &reporter, s.category).await;
    let id = incident["id"].as_i64().expect("id");
    let query = format!("incident={id}&channel=email");
    // Nobody listens: attempts fail and are scheduled again.
    let failed = wait_deliveries(&app, &s.admin, &query, |d| {
        d.len() == 2
            && d.iter()
                .all(|d| d["status"] == "failed" && d["attempts"].as_i64() >= Some(2))
    })
    .await;
    for d in &failed {
        assert_eq!(d["attempt_log"][0]["outcome"], "retry");
        assert!(
            d["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{d:#?}"
        );
        assert!(d["next_attempt_at"].is_string());
    }
    // The server comes up; the retries get through.
    let smtp = SmtpServer::start(port).await;
    let delivered = wait_deliveries(&app, &s.admin, &query, |d| {
        d.len() == 2 && d.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    for d in &delivered {
        let log = d["attempt_log"].as_array().expect("log");
        assert!(log.len() >= 3, "{d:#?}");
        assert_eq!(log.last().expect("last")["outcome"], "delivered");
        assert!(
            log[..log.len() - 1]
                .iter()
                .all(|a| a["outcome"] == "retry" && a["status_code"].is_null())
        );
    }
    let messages = smtp.wait_for(2).await;
    assert_eq!(
        messages.len(),
        2,
        "each message exactly once: {messages:#?}"
    );
    let mut recipients: Vec<String> = messages.iter().map(to).collect();
    recipients.sort();
    assert!(recipients.contains(&"mantenimiento@utec.pe".to_owned()));
}

async fn an_sla_breach_mails_the_escalation_contacts_once_per_breach(backend: Backend) {
    let port = free_port();
    let smtp = SmtpServer::start(port).await;
    let Some(app) = spawn_app_with(backend, |c| mail_config(c, port)).await else {
        return;
    };
    let s = setup(&app).await;
    let reporter = app.user(Role::Reporter).await;
    let incident = report(&app, &reporter, s.category).await;
    let code = incident["code"].as_str().expect("code").to_owned();
    let before = smtp.wait_for(3).await.len();
    // A month later nobody acknowledged or resolved it: both targets are breached.
    let later = vigia_domain::Timestamp::now().plus_seconds(30 * 86_400);
    let escalated = vigia_store::incidents::escalation::escalate_breaches(&app.db, later, 500)
        .await
        .expect("escalate");
    assert!(!escalated.is_empty(), "the breach is escalated");
    let expected = before + escalated.len();
    let messages = smtp.wait_for(expected).await;
    let to_boss: Vec<&Value> = messages
        .iter()
        .filter(|m| to(m) == "jefatura@utec.pe")
        .collect();
    assert_eq!(to_boss.len(), escalated.len(), "{messages:#?}");
    assert!(
        to_boss
            .iter()
            .all(|m| m["subject"].as_str().expect("subject").contains(&code)),
        "{to_boss:#?}"
    );
    // The next sweep finds nothing new, so nobody is mailed twice.
    let again = vigia_store::incidents::escalation::escalate_breaches(&app.db, later, 500)
        .await
        .expect("escalate again");
    assert!(again.is_empty());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        smtp.messages().len(),
        expected,
        "no second e-mail for the same breach"
    );
}

/// A test CA and a certificate it signed for `localhost`, made with the `openssl` command:
/// `(dir, ca.pem, server.pem, server.key)`.
fn test_certificates() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name);
    std::fs::write(
        path("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl (Debian package openssl)");
        assert!(status.success(), "openssl {args:?} failed");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Vigia Test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let (ca, cert, key) = (path("ca.pem"), path("server.pem"), path("server.key"));
    (dir, ca, cert, key)
}

async fn mail_goes_over_starttls_to_a_relay_that_requires_a_login(backend: Backend) {
    secure_mail(backend, "starttls").await;
}

async fn mail_goes_over_implicit_tls_to_a_relay_that_requires_a_login(backend: Backend) {
    secure_mail(backend, "tls").await;
}

/// Mail through a relay that speaks TLS (`mode`: `starttls` or `tls`), presents a certificate
/// from a private CA and requires a login.
async fn secure_mail(backend: Backend, mode: &'static str) {
    let (_certs, ca, cert, key) = test_certificates();
    let port = free_port();
    let tls_kind = if mode == "tls" {
        "implicit"
    } else {
        "starttls"
    };
    let smtp = SmtpServer::start_with(
        port,
        &[
            cert.to_str().expect("path"),
            key.to_str().expect("path"),
            "vigia",
            "s3creto-smtp",
            tls_kind,
        ],
    )
    .await;
    let Some(app) = spawn_app_with(backend, |c| {
        mail_config(c, port);
        c.email.smtp_host = "localhost".into();
        c.email.smtp_mode = mode.into();
        c.email.smtp_user = "vigia".into();
        c.email.smtp_password = "s3creto-smtp".into();
        c.email.smtp_ca_file = ca.to_string_lossy().into_owned();
    })
    .await
    else {
        return;
    };
    let s = setup(&app).await;
    let reporter = app.user(Role::Reporter).await;
    report(&app, &reporter, s.category).await;
    let messages = smtp.wait_for(3).await;
    for message in &messages {
        assert_eq!(message["tls"], true, "sent over TLS ({mode}): {message:#?}");
        assert_eq!(
            message["authenticated"], true,
            "sent after AUTH: {message:#?}"
        );
    }
}

async fn the_scheduled_global_report_is_mailed_to_its_recipients(backend: Backend) {
    let port = free_port();
    let smtp = SmtpServer::start(port).await;
    let Some(app) = spawn_app_with(backend, |c| {
        mail_config(c, port);
        c.email.report_recipients = vec!["direccion@utec.pe".into()];
    })
    .await
    else {
        return;
    };
    // What the `report_global` schedule enqueues, run by a worker with the application's
    // handlers; the application's own workers send the e-mail it plans.
    let worker = vigia_jobs::Worker::new(
        app.db.clone(),
        Arc::new(crate::jobs::registry(&app, &app.config)),
        vigia::jobs::worker_config(&app.config),
        vigia_jobs::JobMetrics::new(),
    );
    let now = vigia_domain::Timestamp::now();
    let job = vigia_store::jobs::NewJob::new(&vigia_store::jobs::Task::GlobalReport {});
    vigia_store::jobs::enqueue(&app.db, &job, now)
        .await
        .expect("enqueue");
    worker.drain(now, 100).await.expect("drain");
    let messages = smtp.wait_for(1).await;
    assert_eq!(to(&messages[0]), "direccion@utec.pe", "{messages:#?}");
    let text = messages[0]["text"].as_str().expect("text");
    assert!(
        text.contains("https://vigia.utec.pe/api/v1/reports/")
            && text.contains("download?format=json"),
        "the e-mail links the report: {text}"
    );
}

on_both_backends!(
    urgent_incidents_mail_the_guard_and_the_department_in_each_readers_language,
    the_scheduled_global_report_is_mailed_to_its_recipients,
    mail_goes_over_starttls_to_a_relay_that_requires_a_login,
    mail_goes_over_implicit_tls_to_a_relay_that_requires_a_login,
    an_sla_breach_mails_the_escalation_contacts_once_per_breach,
    mail_waits_for_a_smtp_server_that_is_down_and_arrives_when_it_is_back,
);
