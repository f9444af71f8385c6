//! Outgoing e-mail (confirmation, password recovery) through the [`Mailer`] trait, so an
//! application picks its transport. [`MemoryMailer`] keeps messages in memory, for
//! development and tests; `SmtpMailer` (feature `smtp`) sends them through an SMTP server.

use std::sync::{Arc, Mutex};

use magmobo_core::async_trait;

use crate::error::BoxError;

/// Why a mail is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// Confirm the address after sign-up.
    Confirmation,
    /// Reset a forgotten password.
    Recovery,
}

/// One e-mail: the one-time code and the `token_hash` that `POST /verify` accepts, and a
/// ready link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Why it is sent.
    pub kind: MailKind,
    /// Recipient.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body (contains the code and the link).
    pub body: String,
    /// The six-digit code (`POST /verify` with `email` and `token`).
    pub otp: String,
    /// The hash for `POST /verify` with `token_hash` (or `GET /verify?token=`).
    pub token_hash: String,
    /// The confirmation link.
    pub link: String,
}

/// Sends e-mail.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Sends `mail`.
    async fn send(&self, mail: &Mail) -> Result<(), BoxError>;
}

/// Keeps every mail in memory (development and tests); clones share the outbox.
#[derive(Debug, Clone, Default)]
pub struct MemoryMailer {
    outbox: Arc<Mutex<Vec<Mail>>>,
}

impl MemoryMailer {
    /// An empty outbox.
    pub fn new() -> Self {
        MemoryMailer::default()
    }

    /// Every mail sent so far, oldest first.
    pub fn sent(&self) -> Vec<Mail> {
        self.outbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The newest mail sent to `to`.
    pub fn last_to(&self, to: &str) -> Option<Mail> {
        self.sent().into_iter().rev().find(|m| m.to == to)
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, mail: &Mail) -> Result<(), BoxError> {
        tracing::info!(target: "magauth", to = %mail.to, subject = %mail.subject, "mail kept in memory");
        self.outbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(mail.clone());
        Ok(())
    }
}
