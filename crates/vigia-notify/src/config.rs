//! Notification settings, resolved from the configuration file by the binary.

use std::time::Duration;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    /// Plain text (local relays, tests).
    None,
    /// Plain connection upgraded with STARTTLS (usually port 587); refused if the server
    /// does not offer it.
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

impl SmtpMode {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "none" => Some(SmtpMode::None),
            "starttls" => Some(SmtpMode::Starttls),
            "tls" => Some(SmtpMode::Tls),
            _ => None,
        }
    }
}

/// When to try again and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt; it doubles each time (with jitter).
    pub base: Duration,
    /// Longest delay between attempts (also caps a server's Retry-After).
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_secs(5),
            max: Duration::from_secs(3600),
        }
    }
}

/// `[email]`.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub enabled: bool,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_mode: SmtpMode,
    /// Empty: no authentication.
    pub smtp_user: String,
    pub smtp_password: String,
    /// A PEM file of extra root certificates to trust for STARTTLS/TLS (a relay with a private
    /// CA); empty: the system's roots only.
    pub smtp_ca_file: String,
    /// `Vigía <vigia@example.org>`.
    pub from: String,
    /// Told at once about every new emergency or high-urgency incident.
    pub emergency_recipients: Vec<String>,
    /// Receive the scheduled global report's link.
    pub report_recipients: Vec<String>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub digest: DigestPolicy,
}

/// When a recipient's e-mails are gathered into a digest instead of sent one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestPolicy {
    /// E-mails a minute (with a burst of as many) sent to one recipient one by one; beyond
    /// it, the digestible ones are held for a digest. 0: never.
    pub after_per_minute: u32,
    /// How long a digest gathers, from the first e-mail it holds.
    pub window: Duration,
}

impl Default for DigestPolicy {
    fn default() -> Self {
        Self {
            after_per_minute: 6,
            window: Duration::from_secs(300),
        }
    }
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            smtp_host: "localhost".into(),
            smtp_port: 25,
            smtp_mode: SmtpMode::None,
            smtp_user: String::new(),
            smtp_password: String::new(),
            smtp_ca_file: String::new(),
            from: "Vigía <vigia@localhost>".into(),
            emergency_recipients: Vec::new(),
            report_recipients: Vec::new(),
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            digest: DigestPolicy::default(),
        }
    }
}

/// `[webhooks]`.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Whole-request timeout of one attempt.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Allow loopback, private and link-local targets (tests, private networks).
    pub allow_private_targets: bool,
    /// Disable an endpoint after this many consecutive failed attempts.
    pub disable_after_failures: u32,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            retry: RetryPolicy::default(),
            allow_private_targets: false,
            disable_after_failures: 50,
        }
    }
}

/// The signed links e-mails carry to a department's report of an incident.
#[derive(Debug, Clone)]
pub struct ReportLinkSettings {
    /// Signs the links (derived from the server's secret, so every node verifies them).
    pub key: vigia_domain::links::LinkKey,
    /// How long a link opens its report.
    pub ttl: Duration,
}

impl Default for ReportLinkSettings {
    fn default() -> Self {
        Self {
            key: vigia_domain::links::LinkKey::random(),
            ttl: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Everything the notifier needs.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Where people reach Vigía, for links in messages.
    pub public_url: String,
    pub email: EmailSettings,
    pub webhooks: WebhookSettings,
    pub report_links: ReportLinkSettings,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            email: EmailSettings::default(),
            webhooks: WebhookSettings::default(),
            report_links: ReportLinkSettings::default(),
        }
    }
}
