//! Access tokens: HS256 JWTs with `sub` (the account id), `iss = "llmops"`, `iat` and `exp`.
//! Verification pins the algorithm, the issuer and the expiry, so a token signed with another
//! key, with `alg: none`, with another issuer or past its expiry is refused.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Secret;

/// The `iss` claim of every token this service issues and accepts.
pub const ISSUER: &str = "llmops";

/// Clock skew tolerated on `exp`, in seconds.
const LEEWAY_SECS: u64 = 5;

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account id.
    pub sub: Uuid,
    pub iss: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
}

/// A freshly signed token and the moment it expires (Unix seconds).
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is invalid")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    #[error("cannot sign an access token")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// The signing and verifying keys, built once from the secret.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    pub fn new(secret: &Secret, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.validate_exp = true;
        validation.leeway = LEEWAY_SECS;
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            ttl,
        }
    }

    /// The token lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs a token for the account, valid for the configured lifetime.
    pub fn issue(&self, account_id: Uuid) -> Result<IssuedToken, JwtError> {
        self.issue_at(account_id, jsonwebtoken::get_current_timestamp())
    }

    /// Signs a token as if issued at `now` (Unix seconds).
    pub fn issue_at(&self, account_id: Uuid, now: u64) -> Result<IssuedToken, JwtError> {
        let claims = Claims {
            sub: account_id,
            iss: ISSUER.to_owned(),
            iat: now,
            exp: now.saturating_add(self.ttl.as_secs()),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(JwtError::Sign)?;
        Ok(IssuedToken {
            token,
            expires_at: claims.exp,
        })
    }

    /// Checks the signature, the algorithm, the issuer and the expiry; returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => JwtError::Expired,
                _ => JwtError::Invalid(e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> JwtKeys {
        JwtKeys::new(&Secret::new(secret), Duration::from_secs(3600))
    }

    fn b64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn an_issued_token_verifies_and_carries_the_account() {
        let keys = keys("a-secret-of-enough-length");
        let id = Uuid::new_v4();
        let issued = keys.issue(id).unwrap();
        let claims = keys.verify(&issued.token).unwrap();
        assert_eq!(claims.sub, id);
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.exp, issued.expires_at);
        assert_eq!(claims.exp - claims.iat, 3600);
    }

    #[test]
    fn a_token_signed_with_another_key_is_invalid() {
        let token = keys("another-secret-entirely")
            .issue(Uuid::new_v4())
            .unwrap()
            .token;
        let err = keys("a-secret-of-enough-length")
            .verify(&token)
            .unwrap_err();
        assert!(matches!(err, JwtError::Invalid(_)), "{err:?}");
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let keys = keys("a-secret-of-enough-length");
        let long_ago = jsonwebtoken::get_current_timestamp() - 7200;
        let token = keys.issue_at(Uuid::new_v4(), long_ago).unwrap().token;
        assert!(matches!(keys.verify(&token), Err(JwtError::Expired)));
    }

    #[test]
    fn a_token_of_another_issuer_is_invalid() {
        let secret = "a-secret-of-enough-length";
        let now = jsonwebtoken::get_current_timestamp();
        let claims = serde_json::json!({"sub": Uuid::new_v4(), "iss": "someone-else", "iat": now, "exp": now + 60});
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            keys(secret).verify(&token),
            Err(JwtError::Invalid(_))
        ));
    }

    #[test]
    fn a_token_without_sub_or_with_another_hmac_algorithm_is_invalid() {
        let secret = "a-secret-of-enough-length";
        let now = jsonwebtoken::get_current_timestamp();
        let key = EncodingKey::from_secret(secret.as_bytes());
        let no_sub = serde_json::json!({"iss": ISSUER, "iat": now, "exp": now + 60});
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &no_sub, &key).unwrap();
        assert!(matches!(
            keys(secret).verify(&token),
            Err(JwtError::Invalid(_))
        ));

        let claims =
            serde_json::json!({"sub": Uuid::new_v4(), "iss": ISSUER, "iat": now, "exp": now + 60});
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &key).unwrap();
        assert!(matches!(
            keys(secret).verify(&token),
            Err(JwtError::Invalid(_))
        ));
    }

    #[test]
    fn an_unsigned_alg_none_token_is_invalid() {
        let keys = keys("a-secret-of-enough-length");
        let now = jsonwebtoken::get_current_timestamp();
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64(
            serde_json::json!({"sub": Uuid::new_v4(), "iss": ISSUER, "iat": now, "exp": now + 60})
                .to_string()
                .as_bytes(),
        );
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert!(
                matches!(keys.verify(&token), Err(JwtError::Invalid(_))),
                "{token}"
            );
        }
    }

    #[test]
    fn an_edited_payload_breaks_the_signature() {
        let keys = keys("a-secret-of-enough-length");
        let mine = keys.issue(Uuid::new_v4()).unwrap().token;
        let theirs = keys.issue(Uuid::new_v4()).unwrap().token;
        let parts: Vec<&str> = mine.split('.').collect();
        let other_payload = theirs.split('.').nth(1).unwrap();
        let forged = format!("{}.{}.{}", parts[0], other_payload, parts[2]);
        assert!(matches!(keys.verify(&forged), Err(JwtError::Invalid(_))));
    }

    #[test]
    fn garbage_is_invalid() {
        let keys = keys("a-secret-of-enough-length");
        for token in ["", "abc", "a.b.c", "....", "eyJ.eyJ.sig"] {
            assert!(
                matches!(keys.verify(token), Err(JwtError::Invalid(_))),
                "{token:?}"
            );
        }
    }
}
