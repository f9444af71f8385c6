//! [`SmtpMailer`]: confirmation and recovery mail over SMTP, through lettre's async transport
//! (a connection pool; STARTTLS or implicit TLS on rustls).
//!
//! Why lettre: SMTP's edge cases (dot-stuffing, 8BITMIME, AUTH mechanisms, STARTTLS, header
//! encoding of non-ASCII subjects and names) are what a well-kept crate gets right and a
//! hand-written client gets wrong.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use magmobo_core::async_trait;

use crate::error::BoxError;
use crate::mail::{Mail, Mailer};

/// How long one delivery may take (connect, TLS, AUTH, DATA) before it fails.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// Why an SMTP mailer could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    /// The URL is not an SMTP URL lettre understands.
    #[error(
        "'{url}' is not an SMTP URL ({why}): use smtp://user:pass@host:587?tls=required (STARTTLS), smtps://user:pass@host:465 (TLS) or smtp://host:25 (a local relay, no TLS)"
    )]
    Url {
        /// The URL, password masked.
        url: String,
        /// What lettre said.
        why: String,
    },
    /// Built outside a Tokio runtime (the connection pool runs a task on it).
    #[error(
        "SmtpMailer::new must be called inside a Tokio runtime: its connection pool runs there"
    )]
    NoRuntime,
    /// The sender is not an address.
    #[error("'{0}' is not a sender address: use name@example.com or \"Name <name@example.com>\"")]
    From(String),
}

/// Sends mail through an SMTP server.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for the server at `url`, sending as `from`:
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS, the usual submission port),
    /// `smtps://user:pass@host:465` (implicit TLS), or `smtp://host:25` (no TLS: a relay on
    /// the same machine or network only). Nothing is sent or connected until the first mail.
    /// Call it inside a Tokio runtime (the connection pool runs a task there).
    pub fn new(url: &str, from: &str) -> Result<SmtpMailer, SmtpConfigError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SmtpConfigError::NoRuntime);
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| SmtpConfigError::Url {
                url: magmobo_core::redact_url(url),
                why: e.to_string(),
            })?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from = from
            .parse::<Mailbox>()
            .map_err(|_| SmtpConfigError::From(from.to_owned()))?;
        Ok(SmtpMailer { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), BoxError> {
        let to: Mailbox = mail.to.parse()?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())?;
        self.transport.send(message).await?;
        tracing::info!(target: "magauth", to = %mail.to, subject = %mail.subject, "mail sent over SMTP");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_runtime_is_an_error_not_a_panic() {
        let e = SmtpMailer::new("smtp://127.0.0.1:2525", "a@example.com");
        assert!(matches!(e, Err(SmtpConfigError::NoRuntime)), "{e:?}");
    }

    #[tokio::test]
    async fn bad_urls_and_senders_are_refused_with_the_password_masked() {
        let e = SmtpMailer::new("http://bob:hunter2@mail.example", "a@example.com")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("bob:***@mail.example") && !e.contains("hunter2"),
            "{e}"
        );
        let e = SmtpMailer::new("smtp://127.0.0.1:2525", "not an address")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("not a sender address"), "{e}");
    }

    #[tokio::test]
    async fn a_valid_url_builds_without_connecting() {
        let mailer = SmtpMailer::new(
            "smtps://user:pw@mail.example:465",
            "Project <noreply@example.com>",
        );
        assert!(mailer.is_ok(), "{mailer:?}");
    }
}
