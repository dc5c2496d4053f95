//! A burst must not flood an inbox: beyond `[email] digest_after_per_minute` e-mails a minute
//! to one recipient, the rest are gathered into one digest e-mail, the most urgent first;
//! emergencies still go out at once. Through a real SMTP server (aiosmtpd).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vigia_domain::users::Role;

use crate::helpers::{Backend, TestApp, TestUser, spawn_app_with};
use crate::notify::{SmtpServer, free_port, mail_config, setup, to};

const CONTACT: &str = "mantenimiento@utec.pe";

async fn report(app: &TestApp, who: &TestUser, category: i64, urgency: &str, n: usize) -> String {
    let reply = app
        .post(
            "/api/v1/incidents",
            Some(&who.token),
            json!({
                "category_id": category, "title": format!("Fuga número {n}"),
                "description": "Sale agua sin parar.", "urgency": urgency,
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["code"].as_str().expect("code").to_owned()
}

async fn contact_deliveries(app: &TestApp, admin: &TestUser) -> Vec<Value> {
    let reply = app
        .get(
            "/api/v1/notifications/deliveries?channel=email&limit=100",
            Some(&admin.token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d["target"] == CONTACT)
        .collect()
}

async fn a_burst_reaches_a_contact_as_a_few_mails_and_one_digest_with_the_most_urgent_first(
    backend: Backend,
) {
    let port = free_port();
    let smtp = SmtpServer::start(port).await;
    let Some(app) = spawn_app_with(backend, |c| {
        mail_config(c, port);
        c.email.digest_after_per_minute = 3;
        c.email.digest_window_secs = 2;
    })
    .await
    else {
        return;
    };
    let s = setup(&app).await;
    let reporter = app.user(Role::Reporter).await;

    // Nine incidents routed to the department at once, medium and high in turn.
    let mut codes = Vec::new();
    for n in 0..9 {
        let urgency = if n % 2 == 0 { "medium" } else { "high" };
        codes.push((
            report(&app, &reporter, s.category, urgency, n).await,
            urgency,
        ));
    }
    // The contact had their three; the other six wait for the digest, which is sent once its
    // window (2 s) has passed: 3 + 1 messages.
    let to_contact = |all: &[Value]| -> Vec<Value> {
        all.iter().filter(|m| to(m) == CONTACT).cloned().collect()
    };
    let mut mails = Vec::new();
    for _ in 0..300 {
        mails = to_contact(&smtp.messages());
        if mails.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mails.len(), 4, "{mails:#?}");
    let digests: Vec<&Value> = mails
        .iter()
        .filter(|m| m["subject"] == "[Vigía] 6 avisos agrupados")
        .collect();
    assert_eq!(digests.len(), 1, "one digest of six: {mails:#?}");
    let text = digests[0]["text"].as_str().expect("text");
    let singles: Vec<&String> = codes
        .iter()
        .map(|(code, _)| code)
        .filter(|code| {
            mails
                .iter()
                .any(|m| m["subject"].as_str().unwrap_or("").contains(code.as_str()))
        })
        .collect();
    assert_eq!(singles.len(), 3, "three sent one by one: {mails:#?}");
    let held: Vec<&(String, &str)> = codes
        .iter()
        .filter(|(code, _)| !singles.contains(&code))
        .collect();
    assert_eq!(held.len(), 6);
    let position = |code: &str| {
        text.find(code)
            .unwrap_or_else(|| panic!("{code} is not in the digest: {text}"))
    };
    let last_high = held
        .iter()
        .filter(|(_, u)| *u == "high")
        .map(|(c, _)| position(c))
        .max();
    let first_medium = held
        .iter()
        .filter(|(_, u)| *u == "medium")
        .map(|(c, _)| position(c))
        .min();
    if let (Some(high), Some(medium)) = (last_high, first_medium) {
        assert!(high < medium, "the most urgent first: {text}");
    }
    assert!(
        text.contains("https://vigia.utec.pe/console?status=new"),
        "{text}"
    );

    // The log says which digest carried each held e-mail, delivered with it (the attempt is
    // logged just after the SMTP server took the message).
    let mut log = contact_deliveries(&app, &s.admin).await;
    for _ in 0..100 {
        if log
            .iter()
            .any(|d| d["message_type"] == "notification.digest" && d["status"] == "delivered")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        log = contact_deliveries(&app, &s.admin).await;
    }
    let digest = log
        .iter()
        .find(|d| d["message_type"] == "notification.digest")
        .expect("the digest delivery");
    assert_eq!(digest["status"], "delivered");
    let carried: Vec<&Value> = log
        .iter()
        .filter(|d| d["digest_id"] == digest["id"])
        .collect();
    assert_eq!(carried.len(), 6, "{log:#?}");
    assert!(
        carried
            .iter()
            .all(|d| d["status"] == "delivered" && d["attempts"] == 0),
        "{carried:#?}"
    );

    // Over the rate still, an emergency goes out at once, on its own.
    let emergency = report(&app, &reporter, s.category, "emergency", 99).await;
    let mut alone = None;
    for _ in 0..200 {
        alone = to_contact(&smtp.messages())
            .into_iter()
            .find(|m| m["subject"].as_str().unwrap_or("").contains(&emergency));
        if alone.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(alone.is_some(), "the emergency was not mailed at once");
    let log = contact_deliveries(&app, &s.admin).await;
    let digests = log
        .iter()
        .filter(|d| d["message_type"] == "notification.digest")
        .count();
    assert_eq!(digests, 1, "the emergency opened no digest: {log:#?}");
}

macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await
                }
            )+
        }
    };
}

on_both_backends!(
    a_burst_reaches_a_contact_as_a_few_mails_and_one_digest_with_the_most_urgent_first
);
