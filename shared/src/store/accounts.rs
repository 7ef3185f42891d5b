//! Accounts: email (normalised, unique), display name, Argon2id password hash, avatar and
//! login bookkeeping. Times are Unix milliseconds.

use uuid::Uuid;

use super::{Db, StoreError};
use crate::{with_pool, with_read_pool};

/// An account row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub avatar: String,
    pub last_login_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A new account row. `email` must already be normalised.
pub struct NewAccount<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub at_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum InsertAccountError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The columns of [`Account`], as a literal so that `concat!` can build whole statements.
macro_rules! columns {
    () => {
        "id, email, name, password_hash, avatar, last_login_at, created_at, updated_at"
    };
}

/// Inserts the account; a taken email is [`InsertAccountError::EmailTaken`].
pub async fn insert_account(db: &Db, new: NewAccount<'_>) -> Result<Account, InsertAccountError> {
    let inserted = with_pool!(db, pool => sqlx::query_as::<_, Account>(concat!(
        "INSERT INTO accounts (id, email, name, password_hash, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING ", columns!()))
        .bind(new.id)
        .bind(new.email)
        .bind(new.name)
        .bind(new.password_hash)
        .bind(new.at_ms)
        .fetch_one(pool).await);
    inserted.map_err(|e| match &e {
        // The primary key is a fresh v4 UUID, so the email is the only key that can clash.
        sqlx::Error::Database(db_err) if db_err.is_unique_violation() => {
            InsertAccountError::EmailTaken
        }
        _ => InsertAccountError::Store(e.into()),
    })
}

/// The account with this (normalised) email.
pub async fn find_account_by_email(db: &Db, email: &str) -> Result<Option<Account>, StoreError> {
    Ok(with_pool!(db, pool => sqlx::query_as::<_, Account>(
        concat!("SELECT ", columns!(), " FROM accounts WHERE email = $1"))
        .bind(email).fetch_optional(pool).await)?)
}

pub async fn get_account(db: &Db, id: Uuid) -> Result<Option<Account>, StoreError> {
    Ok(with_read_pool!(db, pool => sqlx::query_as::<_, Account>(
        concat!("SELECT ", columns!(), " FROM accounts WHERE id = $1"))
        .bind(id).fetch_optional(pool).await)?)
}

/// Records a successful login.
pub async fn touch_last_login(db: &Db, id: Uuid, at_ms: i64) -> Result<(), StoreError> {
    with_pool!(db, pool => sqlx::query(
        "UPDATE accounts SET last_login_at = $2, updated_at = $2 WHERE id = $1")
        .bind(id).bind(at_ms).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(())
}
