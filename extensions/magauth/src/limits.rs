//! Attempt limits on the endpoints where a client guesses (a password, a six-digit code):
//! token buckets (magmobo-core's `ratelimit`) keyed by endpoint and e-mail address, and by
//! endpoint and client IP. The check runs before any password hash or database read, so a
//! flood costs a map lookup, not an argon2 hash. Over a limit the answer is GoTrue's 429
//! `over_request_rate_limit` with `Retry-After`, as supabase-js expects.
//!
//! With a RAM slot that holds global buckets (Redis), the limits hold across every instance
//! ([`Limiter::share`]); otherwise each instance keeps its own. The IP bucket is checked
//! first, so made-up e-mail addresses cost an attacker their own address's budget, and idle
//! buckets are swept, which keeps memory bounded.

use std::net::IpAddr;
use std::sync::Arc;

use magmobo_core::ratelimit::{BucketExchange, Limit, RateLimiter, retry_after_secs};

use crate::config::{RateLimit, RateLimits};
use crate::error::{ApiError, Error};

/// The longest e-mail kept as a key (longer ones are cut: they are not valid anyway).
const MAX_KEY_EMAIL: usize = 320;

/// A limited endpoint; each has its own buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// `POST /token?grant_type=password`.
    SignIn,
    /// `POST /verify` and the e-mail link.
    Verify,
    /// `POST /recover`.
    Recover,
    /// `POST /factors/{id}/verify`.
    FactorVerify,
}

impl Attempt {
    fn label(self) -> &'static str {
        match self {
            Attempt::SignIn => "signin",
            Attempt::Verify => "verify",
            Attempt::Recover => "recover",
            Attempt::FactorVerify => "factor",
        }
    }
}

/// The buckets of one MagAuth instance.
pub(crate) struct Limiter {
    per_email: Option<Arc<RateLimiter>>,
    per_ip: Option<Arc<RateLimiter>>,
    mail_per_address: Option<Arc<RateLimiter>>,
    mail_total: Option<Arc<RateLimiter>>,
}

impl Limiter {
    /// Buckets for `limits`; a zero burst or refill time is a configuration error.
    pub(crate) fn new(limits: &RateLimits) -> Result<Self, Error> {
        let buckets = |limit: &RateLimit, what: &str| -> Result<Option<Arc<RateLimiter>>, Error> {
            if !limits.enabled {
                return Ok(None);
            }
            if limit.burst == 0 || limit.refill_every.is_zero() {
                return Err(Error::Config(format!(
                    "rate_limits.{what} needs burst >= 1 and refill_every > 0 \
                     (or set rate_limits.enabled = false)"
                )));
            }
            let rate = 1.0 / limit.refill_every.as_secs_f64();
            Ok(Some(Arc::new(RateLimiter::new(Limit::new(
                rate,
                f64::from(limit.burst),
            )))))
        };
        Ok(Limiter {
            per_email: buckets(&limits.per_email, "per_email")?,
            per_ip: buckets(&limits.per_ip, "per_ip")?,
            mail_per_address: buckets(&limits.mail_per_address, "mail_per_address")?,
            mail_total: buckets(&limits.mail_total, "mail_total")?,
        })
    }

    /// Gives back what [`Limiter::check_mail`] took for a mail that could not be sent, so a
    /// retry is not refused for a mail nobody received.
    pub(crate) fn mail_not_sent(&self, kind: &str, to: &str) {
        if let Some(buckets) = &self.mail_per_address {
            buckets.give_back(&mail_key(kind, to), 1.0);
        }
        if let Some(buckets) = &self.mail_total {
            buckets.give_back("all", 1.0);
        }
    }

    /// Takes one mail of `kind` to `to` from the address's bucket and the project's; over
    /// either, GoTrue's 429 `over_email_send_rate_limit`.
    pub(crate) fn check_mail(&self, kind: &str, to: &str) -> Result<(), ApiError> {
        let over = |seconds: u64, message: String| {
            tracing::info!(target: "magauth", kind, retry_after = seconds, "mail over the send limit");
            ApiError::over_email_send_rate_limit(seconds, message)
        };
        if let Some(buckets) = &self.mail_per_address {
            buckets.take(&mail_key(kind, to), 1.0).map_err(|wait| {
                let seconds = retry_after_secs(wait);
                over(
                    seconds,
                    format!(
                        "For security purposes, you can only request this after {seconds} seconds."
                    ),
                )
            })?;
        }
        if let Some(buckets) = &self.mail_total {
            buckets.take("all", 1.0).map_err(|wait| {
                over(
                    retry_after_secs(wait),
                    "email rate limit exceeded".to_owned(),
                )
            })?;
        }
        Ok(())
    }

    /// Holds the limits across the instances sharing `exchange`; the tasks end when this
    /// limiter is dropped.
    pub(crate) fn share(&self, exchange: &Arc<dyn BucketExchange>) {
        for (buckets, namespace) in [
            (&self.per_email, "auth:account:"),
            (&self.per_ip, "auth:ip:"),
            (&self.mail_per_address, "auth:mail:"),
            (&self.mail_total, "auth:mails:"),
        ] {
            if let Some(buckets) = buckets {
                buckets.share(exchange.clone(), namespace, "MagAuth");
            }
        }
    }

    /// Takes one attempt from the client's IP bucket and the account's bucket (`account`: an
    /// e-mail address or, for factors, a user id). The IP is checked first, so a client over
    /// its own limit cannot drain an account's bucket any further.
    pub(crate) fn check(
        &self,
        attempt: Attempt,
        account: Option<&str>,
        ip: Option<&str>,
    ) -> Result<(), ApiError> {
        let label = attempt.label();
        if let (Some(buckets), Some(ip)) = (&self.per_ip, ip) {
            // Parsed and printed again, so `::ffff:1.2.3.4` spellings cannot make new buckets.
            let ip = ip
                .parse::<IpAddr>()
                .map_or_else(|_| ip.to_owned(), |a| a.to_string());
            take(buckets, &format!("{label}:{ip}"), attempt, "ip")?;
        }
        if let (Some(buckets), Some(account)) = (&self.per_email, account) {
            let account: String = account
                .trim()
                .to_lowercase()
                .chars()
                .take(MAX_KEY_EMAIL)
                .collect();
            take(buckets, &format!("{label}:{account}"), attempt, "account")?;
        }
        Ok(())
    }
}

/// The per-address mail bucket of `kind` mails to `to`.
fn mail_key(kind: &str, to: &str) -> String {
    format!("{kind}:{}", to.trim().to_lowercase())
}

fn take(buckets: &RateLimiter, key: &str, attempt: Attempt, by: &str) -> Result<(), ApiError> {
    buckets.take(key, 1.0).map_err(|wait| {
        let retry_after = retry_after_secs(wait);
        tracing::info!(
            target: "magauth",
            attempt = attempt.label(),
            by,
            retry_after,
            "attempt over the rate limit"
        );
        ApiError::too_many_requests(retry_after)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(email_burst: u32, ip_burst: u32) -> Limiter {
        let limits = RateLimits {
            enabled: true,
            per_email: RateLimit::new(email_burst, Duration::from_secs(60)),
            per_ip: RateLimit::new(ip_burst, Duration::from_secs(60)),
            ..RateLimits::default()
        };
        Limiter::new(&limits).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn each_account_and_each_ip_has_its_own_bucket() {
        let l = limiter(2, 100);
        let ip = Some("10.0.0.1");
        assert!(l.check(Attempt::SignIn, Some("a@x.io"), ip).is_ok());
        assert!(l.check(Attempt::SignIn, Some(" A@X.io "), ip).is_ok());
        let over = l.check(Attempt::SignIn, Some("a@x.io"), ip).unwrap_err();
        assert_eq!(
            (over.status, over.error_code.as_str()),
            (429, "over_request_rate_limit")
        );
        assert!(over.retry_after.is_some_and(|s| (1..=60).contains(&s)));
        assert!(l.check(Attempt::SignIn, Some("b@x.io"), ip).is_ok());
        // Another endpoint has its own buckets.
        assert!(l.check(Attempt::Recover, Some("a@x.io"), ip).is_ok());

        let l = limiter(100, 1);
        assert!(l.check(Attempt::Verify, Some("a@x.io"), ip).is_ok());
        assert!(l.check(Attempt::Verify, Some("b@x.io"), ip).is_err());
        assert!(
            l.check(Attempt::Verify, Some("b@x.io"), Some("10.0.0.2"))
                .is_ok()
        );
    }

    #[test]
    fn off_limits_nothing_and_bad_limits_are_a_configuration_error() {
        let l = Limiter::new(&RateLimits::off()).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..1000 {
            assert!(
                l.check(Attempt::SignIn, Some("a@x.io"), Some("::1"))
                    .is_ok()
            );
        }
        let zero = RateLimits {
            per_email: RateLimit::new(0, Duration::from_secs(1)),
            ..RateLimits::default()
        };
        assert!(Limiter::new(&zero).is_err());
        let instant = RateLimits {
            per_ip: RateLimit::new(5, Duration::ZERO),
            ..RateLimits::default()
        };
        assert!(Limiter::new(&instant).is_err());
    }
}
