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

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
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

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match bearer_token(parts)? {
            Some(token) => authenticate(state, token)
                .await
                .map(|a| MaybeAccount(Some(a))),
            None => Ok(MaybeAccount(None)),
        }
    }
}

/// The token of the `Authorization` header: `None` without the header, `unauthorized` when the
/// header is not `Bearer <token>`.
pub(crate) fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed =
        || ApiError::unauthorized("the Authorization header must be `Bearer <access_token>`");
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::{
        Router,
        body::{Body, to_bytes},
        http::Request,
        routing::get,
    };
    use serde_json::Value;
    use shared::{backends::Backends, config::Config, store::accounts::NewAccount};
    use tower::ServiceExt;

    use super::*;

    fn parts(authorization: Option<&str>) -> Parts {
        let mut req = Request::get("/");
        if let Some(value) = authorization {
            req = req.header(header::AUTHORIZATION, value);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_bearer_token_is_read_from_the_authorization_header() {
        assert_eq!(bearer_token(&parts(None)).unwrap(), None);
        assert_eq!(
            bearer_token(&parts(Some("Bearer abc"))).unwrap(),
            Some("abc")
        );
        assert_eq!(
            bearer_token(&parts(Some("bearer  abc "))).unwrap(),
            Some("abc")
        );
        for bad in ["Bearer", "Bearer ", "Basic abc", "abc", "Token abc"] {
            assert!(
                matches!(
                    bearer_token(&parts(Some(bad))),
                    Err(ApiError::Unauthorized(_))
                ),
                "{bad:?}"
            );
        }
    }

    /// A real state on a throwaway SQLite file, with one account and its token.
    async fn state_with_account() -> (AppState, String, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("llmops-auth-{}", uuid::Uuid::new_v4()));
        let data_dir = dir.display().to_string();
        let config = Config::try_parse_from([
            "llmops-api",
            "--data-dir",
            data_dir.as_str(),
            "--database-url",
            &format!("sqlite://{data_dir}/llmops.db"),
            "--jwt-secret",
            "unit-test-secret-0123456789",
        ])
        .unwrap();
        let backends = Backends::connect(&config).await.unwrap();
        let secret = config.jwt_secret.clone().unwrap();
        let state = AppState::new(backends, Arc::new(config), secret);
        let account = accounts::insert_account(
            &state.db,
            NewAccount {
                id: uuid::Uuid::new_v4(),
                email: "ada@example.com",
                name: "ada",
                password_hash: "unused",
                at_ms: 0,
            },
        )
        .await
        .unwrap();
        let token = state.jwt.issue(account.id).unwrap().token;
        (state, token, dir)
    }

    /// The answers of a `MaybeAccount` route and a `CurrentAccount` route: statuses and bodies.
    async fn call(state: &AppState, authorization: Option<&str>) -> ((u16, u16), Value) {
        let app = Router::new()
            .route(
                "/maybe",
                get(|MaybeAccount(a): MaybeAccount| async move {
                    a.map_or("anonymous".to_owned(), |a| a.email)
                }),
            )
            .route(
                "/required",
                get(|CurrentAccount(a): CurrentAccount| async move { a.email }),
            )
            .with_state(state.clone());
        let mut out = Vec::new();
        for path in ["/maybe", "/required"] {
            let mut req = Request::get(path);
            if let Some(value) = authorization {
                req = req.header(header::AUTHORIZATION, value);
            }
            let response = app
                .clone()
                .oneshot(req.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status().as_u16();
            let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            out.push((
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            ));
        }
        let [maybe, required]: [(u16, Value); 2] = out.try_into().unwrap();
        (
            (maybe.0, required.0),
            serde_json::json!([maybe.1, required.1]),
        )
    }

    #[tokio::test]
    async fn maybe_account_is_none_without_a_header_and_unauthorized_with_a_bad_one() {
        let (state, token, dir) = state_with_account().await;

        let (statuses, bodies) = call(&state, None).await;
        assert_eq!(statuses, (200, 401), "{bodies}");
        assert_eq!(bodies[0], "anonymous");
        assert_eq!(bodies[1]["code"], "unauthorized");

        let (statuses, bodies) = call(&state, Some(&format!("Bearer {token}"))).await;
        assert_eq!(statuses, (200, 200), "{bodies}");
        assert_eq!(
            bodies,
            serde_json::json!(["ada@example.com", "ada@example.com"])
        );

        let (statuses, bodies) = call(&state, Some("Bearer not-a-token")).await;
        assert_eq!(statuses, (401, 401), "{bodies}");
        assert_eq!(bodies[0]["code"], "unauthorized");

        let stranger = state.jwt.issue(uuid::Uuid::new_v4()).unwrap().token;
        let (statuses, _) = call(&state, Some(&format!("Bearer {stranger}"))).await;
        assert_eq!(statuses, (401, 401), "a token of no account");

        drop(state);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A store that fails while a token is checked is a fault of ours, not the caller's: 503
    /// from both extractors and from the task family's caller, never 401.
    #[tokio::test]
    async fn a_store_fault_while_authenticating_is_no_401() {
        let (state, token, dir) = state_with_account().await;
        match &state.db {
            shared::store::Db::Sqlite { read, write, .. } => {
                read.close().await;
                write.close().await;
            }
            shared::store::Db::Postgres(pool) => pool.close().await,
        }
        let (statuses, bodies) = call(&state, Some(&format!("Bearer {token}"))).await;
        assert_eq!(statuses, (503, 503), "{bodies}");
        assert_eq!(bodies[0]["code"], "fail");

        let app = Router::new()
            .route(
                "/task",
                get(|caller: crate::routes::tasks::TaskCaller| async move {
                    format!("{:?}", caller.account_id())
                }),
            )
            .with_state(state.clone());
        let request = Request::get("/task")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), 503);
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["code"], "fail", "the task family's bare body: {body}");
        assert!(body.get("data").is_none(), "{body}");

        drop(state);
        let _ = std::fs::remove_dir_all(dir);
    }
}
