//! Settings, with GoTrue's defaults where it has them (`GOTRUE_JWT_EXP` 3600 s, minimum
//! password length 6, e-mail auto-confirmed as in Supabase's local development). Attempt
//! limits are on by default, generous enough that a person never meets them, tight enough
//! that guessing a password or a six-digit code is hopeless.

use std::time::Duration;

/// How MagAuth behaves.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Where the API lives (no trailing slash).
    pub prefix: String,
    /// Lifetime of access tokens (`expires_in`).
    pub access_token_ttl: Duration,
    /// Shortest password accepted at sign-up and on change (`weak_password` below it).
    pub min_password_length: usize,
    /// When true, sign-up returns the user without a session and mails a confirmation;
    /// sign-in is refused (`email_not_confirmed`) until `POST /verify`. Off by default.
    pub confirm_email: bool,
    /// When true, `POST /signup` is refused (`signup_disabled`).
    pub disable_signup: bool,
    /// Base URL put in e-mail links (`{site_url}{prefix}/verify?token=...`).
    pub site_url: String,
    /// How long codes and links in e-mails stay valid.
    pub email_token_ttl: Duration,
    /// Whether a password change signs out every other session of the user.
    pub revoke_sessions_on_password_change: bool,
    /// The `role` claim of access tokens (GoTrue's `JWT_DEFAULT_GROUP_NAME`): the database
    /// role a signed-in user runs as.
    pub role: String,
    /// Limits on sign-in (password grant), verify, recover and factor verification, per
    /// e-mail address and per client IP (over them: GoTrue's 429 `over_request_rate_limit`
    /// with `Retry-After`), and on mails sent (429 `over_email_send_rate_limit`).
    pub rate_limits: RateLimits,
}

/// One token bucket: `burst` attempts at once, then one more every `refill_every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Attempts allowed at once (at least 1).
    pub burst: u32,
    /// Time to earn one attempt back (more than zero).
    pub refill_every: Duration,
}

impl RateLimit {
    /// `burst` attempts at once, one more every `refill_every`.
    pub fn new(burst: u32, refill_every: Duration) -> Self {
        RateLimit {
            burst,
            refill_every,
        }
    }
}

/// Attempt limits of MagAuth's guessable endpoints. Each endpoint (sign-in, verify, recover,
/// factor verify) has its own buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// When false, nothing is limited (a proxy in front already does it).
    pub enabled: bool,
    /// Per e-mail address (per account for factor verification): stops password and code
    /// guessing against one account from many addresses. Default: 10 at once, then one per
    /// 6 s.
    pub per_email: RateLimit,
    /// Per client IP address: stops one client from trying many accounts. Default: 60 at
    /// once, then one per second (offices and mobile carriers share addresses).
    pub per_ip: RateLimit,
    /// Mails of one kind (confirmation, recovery) to one address: GoTrue's
    /// `SMTP_MAX_FREQUENCY`, so nobody can bomb an inbox through `/recover`. Default: one,
    /// then one per 60 s.
    pub mail_per_address: RateLimit,
    /// Mails sent by this project in all: GoTrue's `RATE_LIMIT_EMAIL_SENT`, which keeps an
    /// abused form from spending the SMTP provider's quota. Default: 30 at once, then one
    /// per 2 minutes (30 an hour).
    pub mail_total: RateLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            enabled: true,
            per_email: RateLimit::new(10, Duration::from_secs(6)),
            per_ip: RateLimit::new(60, Duration::from_secs(1)),
            mail_per_address: RateLimit::new(1, Duration::from_secs(60)),
            mail_total: RateLimit::new(30, Duration::from_secs(120)),
        }
    }
}

impl RateLimits {
    /// No limits.
    pub fn off() -> Self {
        RateLimits {
            enabled: false,
            ..RateLimits::default()
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            prefix: "/auth/v1".to_owned(),
            access_token_ttl: Duration::from_secs(3600),
            min_password_length: 6,
            confirm_email: false,
            disable_signup: false,
            site_url: "http://localhost:3000".to_owned(),
            email_token_ttl: Duration::from_secs(24 * 3600),
            revoke_sessions_on_password_change: true,
            role: "authenticated".to_owned(),
            rate_limits: RateLimits::default(),
        }
    }
}
