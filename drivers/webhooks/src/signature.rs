//! Signing and verifying deliveries with the Standard Webhooks scheme
//! (<https://www.standardwebhooks.com>), so receivers can use any of its libraries.
//!
//! The signed content is `"{id}.{timestamp}.{body}"`: the id lets a receiver drop duplicates
//! (delivery is at least once), the timestamp lets it refuse replays older than its
//! tolerance, and the body is covered byte for byte. A secret written `whsec_<base64>` is
//! decoded to its key bytes as the scheme says; any other secret is used as raw bytes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a Standard Webhooks secret whose key is base64 after it.
const SECRET_PREFIX: &str = "whsec_";

fn key(secret: &str) -> Result<Vec<u8>> {
    match secret.strip_prefix(SECRET_PREFIX) {
        Some(encoded) => STANDARD.decode(encoded).map_err(|_| Error::InvalidSecret),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

fn mac(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Result<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(&key(secret)?).map_err(|_| Error::InvalidSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The `webhook-signature` header value for one delivery: `v1,<base64 HMAC-SHA256>`.
pub fn sign(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> Result<String> {
    let digest = mac(secret, id, &timestamp.to_string(), body)?
        .finalize()
        .into_bytes();
    Ok(format!("v1,{}", STANDARD.encode(digest)))
}

/// Checks a received delivery: `timestamp` and `header` are the `webhook-timestamp` and
/// `webhook-signature` header values, `body` the raw request body. Fails when the timestamp
/// is further than `tolerance` from now (either way: a replay, or a skewed clock) or when no
/// `v1` signature in the header (space-separated, as during secret rotation) matches.
pub fn verify_signature(
    secret: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
    tolerance: Duration,
) -> Result<()> {
    let sent: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Error::InvalidTimestamp(timestamp.to_owned()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let skew = Duration::from_secs(now.abs_diff(sent));
    if skew > tolerance {
        return Err(Error::TimestampOutOfTolerance { skew, tolerance });
    }
    let expected = mac(secret, id, timestamp.trim(), body)?;
    let matched = header
        .split_whitespace()
        .filter_map(|candidate| candidate.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        // `verify_slice` compares in constant time.
        .any(|signature| expected.clone().verify_slice(&signature).is_ok());
    if matched {
        Ok(())
    } else {
        Err(Error::SignatureMismatch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::{sign, verify_signature};
    use crate::Error;

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    const TOLERANCE: Duration = Duration::from_secs(300);

    type Case<'a> = (&'a str, String, &'a [u8], String, Option<&'a str>);

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's test suite.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn verification_cases() {
        let (secret, id, body) = ("s3cret", "evt_1", br#"{"a":1}"#.as_slice());
        let fresh = now();
        let good = sign(secret, id, fresh, body).unwrap();
        let stale = now() - 3600;
        let stale_sig = sign(secret, id, stale, body).unwrap();
        // (name, timestamp, body, header, expected error kind)
        let cases: Vec<Case<'_>> = vec![
            ("valid", fresh.to_string(), body, good.clone(), None),
            (
                "rotation: second of two signatures",
                fresh.to_string(),
                body,
                format!("v1,AAAA {good}"),
                None,
            ),
            (
                "tampered body",
                fresh.to_string(),
                br#"{"a":2}"#,
                good.clone(),
                Some("mismatch"),
            ),
            (
                "old timestamp",
                stale.to_string(),
                body,
                stale_sig,
                Some("tolerance"),
            ),
            (
                "timestamp not a number",
                "soon".into(),
                body,
                good.clone(),
                Some("timestamp"),
            ),
            (
                "other scheme",
                fresh.to_string(),
                body,
                good.replace("v1,", "v2,"),
                Some("mismatch"),
            ),
        ];
        for (name, timestamp, body, header, expected) in cases {
            let verdict = verify_signature(secret, id, &timestamp, body, &header, TOLERANCE);
            match (expected, verdict) {
                (None, Ok(())) => {}
                (Some("mismatch"), Err(Error::SignatureMismatch))
                | (Some("tolerance"), Err(Error::TimestampOutOfTolerance { .. }))
                | (Some("timestamp"), Err(Error::InvalidTimestamp(_))) => {}
                (expected, verdict) => panic!("{name}: expected {expected:?}, got {verdict:?}"),
            }
        }
    }
}
