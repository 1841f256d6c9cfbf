//! Passwords (argon2id) and bearer tokens (random, stored only as SHA-256 hashes).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Hashes a password with argon2id and a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// True when `password` matches the stored PHC string.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fresh bearer token (256 random bits, base64url) and the hash it is stored under.
pub fn new_token() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// The key a token is stored under.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Checks a username: 3 to 32 characters of `a-z A-Z 0-9 _ . -`.
pub fn valid_username(username: &str) -> bool {
    (3..=32).contains(&username.len())
        && username
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
}

/// Shortest and longest accepted passwords, in characters (so at most 1 KiB).
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=256;

/// A new account record with a fresh id and hashed password (operator tools; handlers hash
/// in the [`crate::passwords::PasswordPool`]). Blocking: argon2 takes tens of milliseconds.
pub fn new_account(
    username: &str,
    password: &str,
    region: &str,
    role: crate::store::Role,
    tier: crate::store::Tier,
) -> Result<crate::store::Account, argon2::password_hash::Error> {
    Ok(crate::store::Account {
        id: hex::encode(rand::random::<[u8; 16]>()),
        username: username.to_string(),
        password_hash: hash_password(password)?,
        region: region.to_string(),
        role,
        tier,
        created_at_ms: crate::now_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens() {
        let stored = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &stored));
        assert!(!verify_password("wrong horse", &stored));
        assert!(!verify_password("correct horse", "not a hash"));
        let (token, hash) = new_token();
        assert_eq!(token_hash(&token), hash);
        assert_ne!(new_token().0, token);
        assert!(valid_username("ada_l.0-x"));
        assert!(!valid_username("ab"));
        assert!(!valid_username("../etc"));
        assert!(!valid_username("名前です"));
    }
}
