//! Tokens: the [`TokenSigner`] that turns access-token claims into a JWT (the same key the
//! PSU verifies, handed in by the application, since extensions do not depend on drivers),
//! and opaque random tokens (refresh tokens, e-mail links) that are stored only as SHA-256.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::BoxError;

/// Signs access-token claims into a compact JWT.
///
/// Implemented for closures, so the PSU's own configuration can sign:
/// `MagAuth::new(config, move |c: &serde_json::Value| jwt.sign(c).map_err(Into::into))`
/// with `jwt` a `magmobo::auth::JwtConfig`. [`Hs256Signer`] signs with a shared secret.
pub trait TokenSigner: Send + Sync + 'static {
    /// The signed token for `claims` (a JSON object).
    fn sign(&self, claims: &serde_json::Value) -> Result<String, BoxError>;
}

impl<F> TokenSigner for F
where
    F: Fn(&serde_json::Value) -> Result<String, BoxError> + Send + Sync + 'static,
{
    fn sign(&self, claims: &serde_json::Value) -> Result<String, BoxError> {
        self(claims)
    }
}

/// Signs HS256 tokens with a shared secret (Supabase's JWT secret).
pub struct Hs256Signer {
    key: jsonwebtoken::EncodingKey,
}

impl std::fmt::Debug for Hs256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hs256Signer(***)")
    }
}

impl Hs256Signer {
    /// A signer with `secret` (the PSU must verify with the same secret).
    pub fn new(secret: &str) -> Self {
        Hs256Signer {
            key: jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        }
    }
}

impl TokenSigner for Hs256Signer {
    fn sign(&self, claims: &serde_json::Value) -> Result<String, BoxError> {
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }
}

/// A fresh opaque token: 256 random bits, URL-safe base64 (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A six-digit one-time code for e-mails.
pub fn otp() -> String {
    format!("{:06}", rand::rng().next_u32() % 1_000_000)
}

/// Lower-case hex SHA-256 of `value`.
pub fn sha256_hex(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn random_tokens_differ_and_hash_to_hex() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(sha256_hex(&a).len(), 64);
        assert_eq!(otp().len(), 6);
    }

    #[test]
    fn closures_are_signers() {
        let signer = |_: &serde_json::Value| -> Result<String, BoxError> { Ok("t".into()) };
        assert_eq!(
            TokenSigner::sign(&signer, &serde_json::json!({})).unwrap(),
            "t"
        );
        let hs = Hs256Signer::new("a-secret-that-is-long-enough-for-hs256!!");
        assert_eq!(
            hs.sign(&serde_json::json!({"sub": "x"}))
                .unwrap()
                .split('.')
                .count(),
            3
        );
    }
}
