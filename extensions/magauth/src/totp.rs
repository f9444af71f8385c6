//! TOTP (RFC 6238) as authenticator apps compute it: HMAC-SHA1, 30-second steps, six
//! digits, secrets in unpadded base32. One step of clock drift either way is accepted.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;

const STEP: i64 = 30;

/// A fresh 160-bit secret in unpadded base32 (what `otpauth://` URIs carry).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    data_encoding::BASE32_NOPAD.encode(&bytes)
}

/// The six-digit code of `secret` (base32) at Unix time `at`; `None` for a bad secret.
pub fn code(secret: &str, at: i64) -> Option<String> {
    let key = data_encoding::BASE32_NOPAD.decode(secret.as_bytes()).ok()?;
    Some(hotp(&key, (at / STEP) as u64, 6))
}

/// Whether `candidate` is the code at `at` or one step before or after.
pub fn check(secret: &str, candidate: &str, at: i64) -> bool {
    let candidate = candidate.trim();
    if candidate.len() != 6 || !candidate.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    [-STEP, 0, STEP].iter().any(|drift| {
        code(secret, at + drift).is_some_and(|c| subtle_eq(c.as_bytes(), candidate.as_bytes()))
    })
}

fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[19] & 0x0f);
    let bin = (u32::from(hash[offset] & 0x7f) << 24)
        | (u32::from(hash[offset + 1]) << 16)
        | (u32::from(hash[offset + 2]) << 8)
        | u32::from(hash[offset + 3]);
    format!(
        "{:0width$}",
        bin % 10u32.pow(digits),
        width = digits as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        let key = b"12345678901234567890";
        // RFC 6238 appendix B, truncated to six digits.
        for (t, expected) in [
            (59u64, "287082"),
            (1_111_111_109, "081804"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(hotp(key, t / 30, 6), expected, "t={t}");
        }
        let secret = data_encoding::BASE32_NOPAD.encode(key);
        assert_eq!(code(&secret, 59).as_deref(), Some("287082"));
        assert!(check(&secret, "287082", 59 + 30));
        assert!(!check(&secret, "287082", 59 + 90));
        assert!(!check(&secret, "28708", 59));
        assert_eq!(new_secret().len(), 32);
    }
}
