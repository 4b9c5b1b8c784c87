//! Email over SMTP with lettre: STARTTLS, implicit TLS or (for a relay on
//! localhost or a test server) plain, always with rustls, never OpenSSL.
//!
//! Invariants: one connection pool per channel, built on the first send so
//! it lives on the runtime that uses it (lettre's pool spawns a cleanup task
//! when built, which needs a running Tokio runtime); a 5xx reply or a message
//! that cannot be built is permanent, a connection, TLS or 4xx problem is
//! transient; the password never appears in an error (lettre does not print
//! credentials, and [`scrub`](super::channel::scrub) removes any echoed code).

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::channel::{Channel, Delivery, SendError};
use crate::config::{SmtpConfig, SmtpSecurity};

/// Per SMTP command; lettre's default of 60 s would hold a worker slot (and
/// a graceful shutdown) for a minute on a dead server.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

type Transport = AsyncSmtpTransport<Tokio1Executor>;

pub struct SmtpChannel {
    config: SmtpConfig,
    /// A bad `notify.smtp.from` fails every message permanently (and is
    /// reported once at start-up) instead of stopping the server.
    from: Result<Mailbox, String>,
    transport: OnceLock<Result<Transport, String>>,
}

impl SmtpChannel {
    pub fn new(config: &SmtpConfig) -> Self {
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|_| "notify.smtp.from is not a valid email address".to_owned());
        if let Err(e) = &from {
            tracing::error!("{e}: every email will fail");
        }
        Self {
            config: config.clone(),
            from,
            transport: OnceLock::new(),
        }
    }

    fn build_transport(config: &SmtpConfig) -> Result<Transport, String> {
        let host = config.host.as_str();
        let builder = match config.security {
            SmtpSecurity::Starttls => {
                Transport::starttls_relay(host).map_err(|e| format!("smtp: bad TLS setup for {host}: {e}"))?
            }
            SmtpSecurity::Tls => Transport::relay(host).map_err(|e| format!("smtp: bad TLS setup for {host}: {e}"))?,
            SmtpSecurity::None => Transport::builder_dangerous(host),
        };
        let mut builder = builder.port(config.port).timeout(Some(COMMAND_TIMEOUT));
        if let Some(user) = &config.username {
            let password = config
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(builder.build())
    }

    /// Connects, says hello, upgrades to TLS and authenticates as a send
    /// would, then quits without sending anything (`forge doctor`).
    pub async fn test_connection(config: &SmtpConfig) -> Result<(), String> {
        let transport = Self::build_transport(config)?;
        match transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the server did not answer NOOP".to_owned()),
            Err(e) => Err(format!("{e}")),
        }
    }

    fn transport(&self) -> Result<&Transport, SendError> {
        self.transport
            .get_or_init(|| Self::build_transport(&self.config))
            .as_ref()
            .map_err(|e| SendError::permanent(e.clone()))
    }

    fn message(&self, msg: &Delivery) -> Result<Message, SendError> {
        let from = self.from.as_ref().map_err(|e| SendError::permanent(e.clone()))?;
        let to = msg
            .to
            .parse::<Mailbox>()
            .map_err(|_| SendError::permanent("smtp: recipient is not a valid email address"))?;
        let builder = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(msg.subject.clone());
        let text = body(msg.body.expose());
        let built = match &msg.html {
            None => builder.header(ContentType::TEXT_PLAIN).body(text),
            Some(html) => builder.multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text))
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(body(html.expose())),
                    ),
            ),
        };
        built.map_err(|e| SendError::permanent(format!("smtp: cannot build the message: {e}")))
    }
}

/// 7bit when it can be, else quoted-printable: the code stays readable in
/// the raw message, which base64 would hide from a human reader.
fn body(text: &str) -> Body {
    let text = text.to_owned();
    if text.is_ascii() {
        Body::new(text)
    } else {
        Body::new_with_encoding(text, ContentTransferEncoding::QuotedPrintable).unwrap_or_else(Body::new)
    }
}

#[async_trait]
impl Channel for SmtpChannel {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, msg: &Delivery) -> Result<(), SendError> {
        let message = self.message(msg)?;
        let transport = self.transport()?;
        match transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() || e.is_client() => Err(SendError::permanent(format!("smtp: {e}"))),
            Err(e) => Err(SendError::transient(format!("smtp: {e}"))),
        }
    }
}
