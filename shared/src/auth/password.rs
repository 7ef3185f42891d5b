//! Password hashes: Argon2id (the crate's defaults: m = 19 MiB, t = 2, p = 1) in PHC string
//! form. Hashing is CPU-bound, so the async wrappers run it on a blocking thread.

use std::sync::LazyLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier, password_hash};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("cannot hash the password: {0}")]
    Hash(password_hash::Error),
    #[error("the stored password hash is malformed: {0}")]
    MalformedHash(password_hash::Error),
    #[error("the password hashing thread failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Hashes a password with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(PasswordError::Hash)
}

/// Whether the password matches the stored hash.
pub fn verify(password: &str, hash: &str) -> Result<bool, PasswordError> {
    match Argon2::default().verify_password(password.as_bytes(), hash) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(PasswordError::MalformedHash(e)),
    }
}

/// [`hash`] on a blocking thread.
pub async fn hash_blocking(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash(&password)).await?
}

/// [`verify`] on a blocking thread.
pub async fn verify_blocking(password: String, hash: String) -> Result<bool, PasswordError> {
    tokio::task::spawn_blocking(move || verify(&password, &hash)).await?
}

/// A hash of a random password, computed once.
static DUMMY_HASH: LazyLock<Option<String>> =
    LazyLock::new(|| hash(&uuid::Uuid::new_v4().to_string()).ok());

/// Spends the same work as a real verification and answers `false`: used when the account does
/// not exist, so an unknown email and a wrong password take the same time.
pub async fn verify_nothing_blocking(password: String) -> Result<bool, PasswordError> {
    tokio::task::spawn_blocking(move || {
        if let Some(dummy) = DUMMY_HASH.as_deref() {
            let _ = verify(&password, dummy);
        }
        false
    })
    .await
    .map_err(PasswordError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_salted_and_verifies_only_its_password() {
        let a = hash("correct horse 1").unwrap();
        let b = hash("correct horse 1").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse 1", &a).unwrap());
        assert!(!verify("correct horse 2", &a).unwrap());
    }

    #[test]
    fn a_malformed_stored_hash_is_an_error_not_a_match() {
        assert!(matches!(
            verify("pw", "not a phc string"),
            Err(PasswordError::MalformedHash(_))
        ));
    }

    #[tokio::test]
    async fn the_blocking_wrappers_agree_with_the_plain_functions() {
        let h = hash_blocking("s3cretpass".into()).await.unwrap();
        assert!(
            verify_blocking("s3cretpass".into(), h.clone())
                .await
                .unwrap()
        );
        assert!(!verify_blocking("other".into(), h).await.unwrap());
        assert!(!verify_nothing_blocking("s3cretpass".into()).await.unwrap());
    }
}
