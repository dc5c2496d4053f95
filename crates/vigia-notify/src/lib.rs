//! Vigía's outbound notifications: e-mail over SMTP and Standard Webhooks, with a
//! per-attempt delivery log in the store.
//!
//! The API is two plain async functions the job queue's handlers call, with retry decisions
//! as values: [`plan`] turns one stored incident event (and [`plan_exam`] one exam event) into delivery rows (idempotent per
//! event, channel and target), each enqueued with the `notification.deliver` job of its first
//! attempt, and [`attempt`] performs one attempt of one delivery, logs it (enqueueing the next
//! attempt's job when it failed and may be retried), and answers [`AttemptOutcome`]. There is
//! no queue, poller or lease here: the job queue is the only one.

mod attempt;
pub mod config;
mod digest;
pub mod mail;
mod plan;
mod plan_alert;
mod plan_exam;
pub mod retry;
pub mod signature;
pub mod ssrf;
pub mod templates;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use vigia_domain::links::ReportLinkClaims;
use vigia_store::Db;

/// The path a department's report of an incident is served at (with a link's `?key=`), the
/// same as its object key.
pub fn report_path(department_id: i64, incident_id: i64) -> String {
    format!("/reports/incidents/{department_id}/incident_{incident_id}.json")
}

pub use attempt::{AttemptOutcome, attempt};
pub use config::{
    DigestPolicy, EmailSettings, NotifyConfig, ReportLinkSettings, RetryPolicy, SmtpMode,
    WebhookSettings,
};
pub use plan::{plan, send_report_email, send_test_webhook, webhook_body};
pub use plan_exam::plan_exam;

/// What `plan` and `attempt` need: the database, settings, an SMTP client, an HTTP client
/// guarded against SSRF, and the templates. Cheap to clone.
#[derive(Clone)]
pub struct Notifier(Arc<Inner>);

struct Inner {
    db: Db,
    config: NotifyConfig,
    mailer: Option<mail::Mailer>,
    http: reqwest::Client,
    templates: templates::Templates,
}

impl Notifier {
    pub fn new(db: Db, config: NotifyConfig) -> anyhow::Result<Self> {
        let mailer = if config.email.enabled {
            Some(mail::Mailer::new(&config.email)?)
        } else {
            None
        };
        let http = reqwest::Client::builder()
            .timeout(config.webhooks.timeout)
            .connect_timeout(config.webhooks.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("Vigia-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(ssrf::GuardedResolver {
                allow_private: config.webhooks.allow_private_targets,
            })
            .build()
            .context("cannot build the webhook HTTP client")?;
        Ok(Self(Arc::new(Inner {
            db,
            mailer,
            http,
            templates: templates::Templates::new()?,
            config,
        })))
    }

    pub fn db(&self) -> &Db {
        &self.0.db
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.0.config
    }

    /// `{public_url}/alerts/{id}`: the alert's page for staff.
    pub fn alert_link(&self, id: i64) -> String {
        format!("{}/alerts/{id}", self.public_url())
    }

    /// `{public_url}/proctoring/exams/{id}/live`: an exam's live proctoring view.
    pub fn exam_link(&self, id: i64) -> String {
        format!("{}/proctoring/exams/{id}/live", self.public_url())
    }

    /// `{public_url}/incidents/{code}`.
    pub fn incident_link(&self, code: &str) -> String {
        format!("{}/incidents/{code}", self.public_url())
    }

    /// The capability URL of one department's report of one incident, for an e-mail's
    /// recipient who may have no account:
    /// `{public_url}/reports/incidents/{department}/incident_{id}.json?key={token}` (the path of
    /// the stored report; the token is signed with the server's link key, see
    /// `vigia_domain::links`).
    pub fn report_link(&self, link: &vigia_store::report_links::ReportLink) -> String {
        let token = self.0.config.report_links.key.sign(&ReportLinkClaims {
            link_id: link.id,
            incident: link.incident_id,
            department: link.department_id,
            expires_at: link.expires_at,
        });
        format!(
            "{}{}?key={token}",
            self.public_url(),
            report_path(link.department_id.0, link.incident_id.0)
        )
    }

    fn public_url(&self) -> &str {
        self.0.config.public_url.trim_end_matches('/')
    }
}
