//! Passwords: argon2id with the crate's defaults (OWASP's 19 MiB, 2 passes), stored as PHC
//! strings so parameters can be raised later without breaking old hashes. Hashing runs on
//! the blocking pool: it takes tens of milliseconds on purpose.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::{Error, Result};

/// Hashes `password` with argon2id and a fresh salt.
pub async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Hash(e.to_string()))
    })
    .await
    .map_err(|e| Error::Hash(e.to_string()))?
}

/// Whether `password` matches the PHC string `stored`. `None` for `stored` still spends the
/// time of one verification (against a fixed dummy hash), so an unknown e-mail answers as
/// slowly as a wrong password and timing does not reveal which accounts exist.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let (stored, real) = match stored {
            Some(s) => (s, true),
            None => (dummy_hash()?, false),
        };
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| Error::Corrupt(format!("password hash: {e}")))?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && real)
    })
    .await
    .map_err(|e| Error::Hash(e.to_string()))?
}

fn dummy_hash() -> Result<String> {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h.clone());
    }
    let salt = SaltString::generate(&mut OsRng);
    let h = Argon2::default()
        .hash_password(b"magauth-dummy-password", &salt)
        .map_err(|e| Error::Hash(e.to_string()))?
        .to_string();
    Ok(DUMMY.get_or_init(|| h).clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let h = super::hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(
            super::verify("correct horse".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!super::verify("wrong".into(), Some(h)).await.unwrap());
        assert!(!super::verify("x".into(), None).await.unwrap());
    }
}
