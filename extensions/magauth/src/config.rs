//! Settings, with GoTrue's defaults where it has them (`GOTRUE_JWT_EXP` 3600 s, minimum
//! password length 6, e-mail auto-confirmed as in Supabase's local development).

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
        }
    }
}
