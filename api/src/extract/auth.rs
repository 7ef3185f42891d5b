//! Bearer-token authentication: `Authorization: Bearer <access_token>`.
//!
//! - [`CurrentAccount`]: the route needs an account. No token, a malformed, expired, tampered,
//!   `alg: none` or wrongly signed token, or a token of an account that no longer exists →
//!   `unauthorized`.
//! - [`MaybeAccount`]: the route takes an account when given. No `Authorization` header →
//!   `None`; a header that is present but does not authenticate → `unauthorized` (a caller who
//!   tried to sign in is told that it failed rather than silently treated as anonymous).

use std::ops::Deref;

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use shared::{
    auth::jwt::JwtError,
    store::accounts::{self, Account},
};

use crate::{error::ApiError, state::AppState};

/// The account the request's bearer token belongs to.
#[derive(Clone, Debug)]
pub struct CurrentAccount(pub Account);

impl Deref for CurrentAccount {
    type Target = Account;
    fn deref(&self) -> &Account {
        &self.0
    }
}

/// The account of the bearer token, or `None` when the request has no `Authorization` header.
#[derive(Clone, Debug)]
pub struct MaybeAccount(pub Option<Account>);

impl MaybeAccount {
    pub fn id(&self) -> Option<uuid::Uuid> {
        self.0.as_ref().map(|a| a.id)
    }
}

impl FromRequestParts<AppState> for CurrentAccount {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match bearer_token(parts)? {
            Some(token) => authenticate(state, token).await.map(CurrentAccount),
            None => Err(ApiError::unauthorized(
                "an access token is required (Authorization: Bearer <access_token>)",
            )),
        }
    }
}

impl FromRequestParts<AppState> for MaybeAccount {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match bearer_token(parts)? {
            Some(token) => authenticate(state, token).await.map(|a| MaybeAccount(Some(a))),
            None => Ok(MaybeAccount(None)),
        }
    }
}

/// The token of the `Authorization` header: `None` without the header, `unauthorized` when the
/// header is not `Bearer <token>`.
fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || ApiError::unauthorized("the Authorization header must be `Bearer <access_token>`");
    let value = value.to_str().map_err(|_| malformed())?.trim();
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(Some(token))
}

async fn authenticate(state: &AppState, token: &str) -> Result<Account, ApiError> {
    let claims = state.jwt.verify(token).map_err(|e| match e {
        JwtError::Expired => ApiError::unauthorized("the access token has expired; sign in again"),
        _ => ApiError::unauthorized("the access token is invalid"),
    })?;
    accounts::get_account(&state.db, claims.sub)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account of this access token no longer exists"))
}
