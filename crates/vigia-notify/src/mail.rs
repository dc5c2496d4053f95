//! Sending e-mail over SMTP (lettre): plain, STARTTLS or TLS, optional authentication.
//! Connections are reused: a pool of up to [`POOL_SIZE`] open sessions to the relay, each
//! closed after a minute unused, so a burst of deliveries does not pay a TCP (and TLS, and
//! AUTH) handshake per message.

use anyhow::Context;
use lettre::message::{Mailbox, MultiPart, header};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{EmailSettings, SmtpMode};
use crate::templates::RenderedEmail;

/// How one send ended.
#[derive(Debug)]
pub struct SendResult {
    /// The SMTP reply code, when the server answered.
    pub code: Option<u16>,
    pub verdict: MailVerdict,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailVerdict {
    Delivered,
    /// Connection failures, timeouts and 4xx replies.
    Retry,
    /// 5xx replies and messages that cannot be built.
    Permanent,
}

/// TLS settings that also trust `email.smtp_ca_file`'s certificates; `None` without one. The
/// host name is still verified against the certificate.
fn tls_with_private_ca(settings: &EmailSettings) -> anyhow::Result<Option<TlsParameters>> {
    if settings.smtp_ca_file.is_empty() {
        return Ok(None);
    }
    let path = &settings.smtp_ca_file;
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read email.smtp_ca_file {path}"))?;
    let ca = Certificate::from_pem(&pem)
        .with_context(|| format!("email.smtp_ca_file {path} holds no PEM certificate"))?;
    let tls = TlsParameters::builder(settings.smtp_host.clone())
        .add_root_certificate(ca)
        .build_rustls()
        .context("cannot set up TLS for the SMTP relay")?;
    Ok(Some(tls))
}

/// SMTP sessions kept open to the relay at most (deliveries running at once beyond it wait).
pub const POOL_SIZE: u32 = 16;

/// An SMTP client for the configured relay.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(settings: &EmailSettings) -> anyhow::Result<Self> {
        let host = settings.smtp_host.as_str();
        let private_ca = tls_with_private_ca(settings)?;
        let builder = match (settings.smtp_mode, private_ca) {
            (SmtpMode::None, _) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            (SmtpMode::Starttls, None) => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                    .with_context(|| format!("cannot set up STARTTLS to {host}"))?
            }
            (SmtpMode::Starttls, Some(tls)) => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    .tls(Tls::Required(tls))
            }
            (SmtpMode::Tls, None) => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .with_context(|| format!("cannot set up TLS to {host}"))?,
            (SmtpMode::Tls, Some(tls)) => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(Tls::Wrapper(tls))
            }
        };
        let mut builder = builder
            .port(settings.smtp_port)
            .timeout(Some(settings.timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(POOL_SIZE)
                    .idle_timeout(std::time::Duration::from_secs(60)),
            );
        if !settings.smtp_user.is_empty() {
            builder = builder.credentials(Credentials::new(
                settings.smtp_user.clone(),
                settings.smtp_password.clone(),
            ));
        }
        let from: Mailbox = settings
            .from
            .parse()
            .with_context(|| format!("email.from {:?} is not an address", settings.from))?;
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    /// Sends one message. `message_id` becomes the Message-ID header, the same on every attempt.
    pub async fn send(&self, to: &str, message_id: &str, mail: &RenderedEmail) -> SendResult {
        let to: Mailbox = match to.parse() {
            Ok(to) => to,
            Err(e) => return permanent(format!("invalid recipient {to:?}: {e}")),
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject)
            .message_id(Some(format!("<{message_id}@vigia>")))
            .header(header::MIME_VERSION_1_0)
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ));
        let message = match message {
            Ok(m) => m,
            Err(e) => return permanent(format!("cannot build the message: {e}")),
        };
        match self.transport.send(message).await {
            Ok(response) => SendResult {
                code: code_number(&response.code().to_string()),
                verdict: MailVerdict::Delivered,
                error: None,
            },
            Err(e) => SendResult {
                code: e.status().and_then(|c| code_number(&c.to_string())),
                verdict: if e.is_permanent() {
                    MailVerdict::Permanent
                } else {
                    MailVerdict::Retry
                },
                error: Some(error_chain(&e)),
            },
        }
    }
}

fn permanent(error: String) -> SendResult {
    SendResult {
        code: None,
        verdict: MailVerdict::Permanent,
        error: Some(error),
    }
}

fn code_number(code: &str) -> Option<u16> {
    code.parse().ok()
}

/// An error with its causes, `a: b: c`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
