//! Attempt limits on the endpoints where a client guesses (a password, a six-digit code):
//! GCRA token buckets (the `governor` crate) keyed by endpoint and e-mail address, and by
//! endpoint and client IP. The check runs before any password hash or database read, so a
//! flood costs a map lookup, not an argon2 hash. Over a limit the answer is GoTrue's 429
//! `over_request_rate_limit` with `Retry-After`, as supabase-js expects.
//!
//! Buckets live in this instance's memory (several instances each allow the limit; the
//! limits are about guessing, where a small factor changes nothing). Keys an attacker makes
//! up (e-mail addresses) are dropped once their bucket is full again, checked every few
//! thousand attempts, so memory stays bounded by the attempts of the last refill period.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::config::{RateLimit, RateLimits};
use crate::error::{ApiError, Error};

type Buckets = RateLimiter<String, HashMapStateStore<String>, DefaultClock>;

/// How many checks between two sweeps of full buckets.
const SWEEP_EVERY: u64 = 4096;

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
    per_email: Option<Buckets>,
    per_ip: Option<Buckets>,
    checks: AtomicU64,
}

impl Limiter {
    /// Buckets for `limits`; a zero burst or refill time is a configuration error.
    pub(crate) fn new(limits: &RateLimits) -> Result<Self, Error> {
        let buckets = |limit: &RateLimit, what: &str| -> Result<Option<Buckets>, Error> {
            if !limits.enabled {
                return Ok(None);
            }
            let quota = NonZeroU32::new(limit.burst)
                .and_then(|burst| Some(Quota::with_period(limit.refill_every)?.allow_burst(burst)))
                .ok_or_else(|| {
                    Error::Config(format!(
                        "rate_limits.{what} needs burst >= 1 and refill_every > 0 \
                         (or set rate_limits.enabled = false)"
                    ))
                })?;
            Ok(Some(RateLimiter::hashmap(quota)))
        };
        Ok(Limiter {
            per_email: buckets(&limits.per_email, "per_email")?,
            per_ip: buckets(&limits.per_ip, "per_ip")?,
            checks: AtomicU64::new(0),
        })
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
        if self.per_email.is_none() && self.per_ip.is_none() {
            return Ok(());
        }
        self.sweep_now_and_then();
        let label = attempt.label();
        if let (Some(buckets), Some(ip)) = (&self.per_ip, ip) {
            // Parsed and printed again, so `::ffff:1.2.3.4` spellings cannot make new buckets.
            let ip = ip
                .parse::<IpAddr>()
                .map_or_else(|_| ip.to_owned(), |a| a.to_string());
            take(buckets, format!("{label}:{ip}"), attempt, "ip")?;
        }
        if let (Some(buckets), Some(account)) = (&self.per_email, account) {
            let account: String = account
                .trim()
                .to_lowercase()
                .chars()
                .take(MAX_KEY_EMAIL)
                .collect();
            take(buckets, format!("{label}:{account}"), attempt, "account")?;
        }
        Ok(())
    }

    fn sweep_now_and_then(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        for buckets in [&self.per_email, &self.per_ip].into_iter().flatten() {
            buckets.retain_recent();
            buckets.shrink_to_fit();
        }
    }
}

fn take(buckets: &Buckets, key: String, attempt: Attempt, by: &str) -> Result<(), ApiError> {
    buckets.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(buckets.clock().now());
        let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        tracing::info!(
            target: "magauth",
            attempt = attempt.label(),
            by,
            retry_after,
            "attempt over the rate limit"
        );
        ApiError::too_many_requests(retry_after.max(1))
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
