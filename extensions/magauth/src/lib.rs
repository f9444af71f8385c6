//! MagAuth: end-user accounts for MagMoBo, speaking GoTrue's (Supabase Auth's) HTTP API
//! under `/auth/v1`, so supabase-js `auth` calls work unchanged.
//!
//! Why it looks like this:
//! - **Access tokens are the PSU's tokens.** MagAuth signs HS256 JWTs with a
//!   [`TokenSigner`] the application builds from the same secret the PSU verifies, and it
//!   authenticates every request through the board's PSU. Claims follow GoTrue (`sub`,
//!   `role: authenticated`, `aud`, `session_id`, `aal`, `amr`...), so MagGate's policies and
//!   PostgreSQL RLS written for Supabase see the user.
//! - **Refresh tokens rotate on every use and are stored only as SHA-256.** Presenting one
//!   that was already rotated ends the whole session (reuse detection: the token chain may
//!   be stolen) and publishes `auth.refresh.reused`.
//! - **Passwords use argon2id** ([`password`]); an unknown e-mail costs the same time as a
//!   wrong password, and both answer `invalid_credentials` and publish `auth.login.failed`
//!   with a SHA-256 of the e-mail (never the e-mail or password) and the client address.
//! - **Guessable endpoints are rate limited** ([`RateLimits`], `limits.rs`): sign-in, verify,
//!   recover and factor verification per e-mail and per client IP, checked before any
//!   password hash is computed, answering GoTrue's 429 with `Retry-After`.
//! - **TOTP second factors** ([`totp`], GoTrue's `/factors`) raise a session to `aal2`;
//!   enforcing it is left to policies reading the `aal` claim, as in Supabase.
//! - **Tables are portable migrations** through the board's Storage (`_magmobo_auth_*`,
//!   hidden from introspection), so SQLite, PostgreSQL and MariaDB behave the same.
//!
//! Endpoints, shapes and what is not built: docs/auth.md.

mod config;
mod error;
mod extension;
mod limits;
mod mail;
mod mfa;
pub mod password;
mod routes;
mod service;
mod shapes;
#[cfg(feature = "smtp")]
mod smtp;
pub mod store;
mod tokens;
pub mod totp;

pub use config::{AuthConfig, RateLimit, RateLimits};
pub use error::{ApiError, BoxError, Error, Result};
pub use extension::MagAuth;
pub use mail::{Mail, MailKind, Mailer, MemoryMailer};
#[cfg(feature = "smtp")]
pub use smtp::{SmtpConfigError, SmtpMailer};
pub use tokens::{Hs256Signer, TokenSigner, random_token, sha256_hex};
