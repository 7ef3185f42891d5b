//! App API keys: the credentials of the service API (`Authorization: Bearer app-…`). A key is
//! shown once when created; the store keeps only its SHA-256 and a masked form.
//!
//! Why SHA-256 and not a password hash (Argon2, as for passwords): a key is 32 random bytes,
//! so there is nothing to guess and no dictionary to slow down; a slow hash would only add
//! its cost to every service request. A fast hash still keeps a leaked table useless.

use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Db, StoreError};
use crate::{with_pool, with_read_pool};

/// Every app key starts with this, so a key is recognisable wherever it leaks.
pub const KEY_PREFIX: &str = "app-";

/// A new key: `app-` and 32 random bytes in hex.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let mut key = String::with_capacity(KEY_PREFIX.len() + 64);
    key.push_str(KEY_PREFIX);
    key.push_str(&to_hex(&bytes));
    key
}

/// The stored form of a key: its SHA-256, in hex.
pub fn hash_key(key: &str) -> String {
    to_hex(&Sha256::digest(key.as_bytes()))
}

/// What a listing shows: the prefix, the first and the last four characters of the secret.
pub fn mask_key(key: &str) -> String {
    let secret = key.strip_prefix(KEY_PREFIX).unwrap_or(key);
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 8 {
        return format!("{KEY_PREFIX}****");
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{KEY_PREFIX}{head}…{tail}")
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key as listed.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub app_id: Uuid,
    pub masked_key: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// Stores a new key of the app by its hash.
pub async fn insert_key(
    db: &Db,
    id: Uuid,
    app_id: Uuid,
    key: &str,
    at_ms: i64,
) -> Result<(), StoreError> {
    with_pool!(db, pool => sqlx::query(
        "INSERT INTO app_api_keys (id, app_id, key_hash, masked_key, created_at)
         VALUES ($1, $2, $3, $4, $5)")
        .bind(id).bind(app_id).bind(hash_key(key)).bind(mask_key(key)).bind(at_ms)
        .execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// The app's keys, oldest first.
pub async fn list_keys(db: &Db, app_id: Uuid) -> Result<Vec<ApiKey>, StoreError> {
    Ok(with_read_pool!(db, pool => sqlx::query_as::<_, ApiKey>(
        "SELECT id, app_id, masked_key, created_at, last_used_at FROM app_api_keys
         WHERE app_id = $1 ORDER BY created_at, id")
        .bind(app_id).fetch_all(pool).await)?)
}

/// The key a presented secret belongs to, if any.
pub async fn find_by_key(db: &Db, key: &str) -> Result<Option<ApiKey>, StoreError> {
    Ok(with_read_pool!(db, pool => sqlx::query_as::<_, ApiKey>(
        "SELECT id, app_id, masked_key, created_at, last_used_at FROM app_api_keys
         WHERE key_hash = $1")
        .bind(hash_key(key)).fetch_optional(pool).await)?)
}

/// Deletes the app's key; returns whether it existed.
pub async fn delete_key(db: &Db, app_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
    let n = with_pool!(db, pool => sqlx::query(
        "DELETE FROM app_api_keys WHERE id = $1 AND app_id = $2")
        .bind(id).bind(app_id).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Records a use of the key.
pub async fn touch_key(db: &Db, id: Uuid, at_ms: i64) -> Result<(), StoreError> {
    with_pool!(db, pool => sqlx::query("UPDATE app_api_keys SET last_used_at = $2 WHERE id = $1")
        .bind(id).bind(at_ms).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_hashed_and_masked() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 64);
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
        assert_eq!(hash_key(&a).len(), 64);
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let masked = mask_key(&a);
        assert!(masked.starts_with(&a[..8]) && masked.ends_with(&a[a.len() - 4..]));
        assert!(!masked.contains(&a[8..a.len() - 4]));
    }
}
